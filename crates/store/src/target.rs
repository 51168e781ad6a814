//! Where backups go: a local folder or `ssh://user@host[:port]/path` on a backup server.
//!
//! Every operation the layouts need (list, rename, remove, write a small file atomically,
//! stream a big one, sync) exists for both kinds. Remote operations run plain POSIX tools
//! through the system `ssh` (BatchMode, so a missing key fails at once instead of prompting),
//! with every argument shell-quoted.

use crate::remote_shell::RemoteShell;
use crate::StoreError;
use holdfast_core::fs::{PRIVATE_DIR, PRIVATE_FILE};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// SSH settings for remote targets (`[backup] ssh_identity`, `ssh_options`).
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// Private key file (`ssh -i`).
    pub identity: Option<PathBuf>,
    /// Extra arguments for `ssh`, e.g. `["-o", "StrictHostKeyChecking=accept-new"]`.
    pub options: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Target {
    Local {
        root: PathBuf,
    },
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        root: String,
        ssh: SshOptions,
        /// The long-lived shell for small scripts ([`crate::remote_shell`]).
        shell: RemoteShell,
    },
}

/// `paths` as the input of `xargs -0`: each followed by a NUL.
pub fn nul_separated<'a>(paths: impl IntoIterator<Item = &'a String>) -> Vec<u8> {
    let mut input = Vec::new();
    for p in paths {
        input.extend_from_slice(p.as_bytes());
        input.push(0);
    }
    input
}

/// Look-up scripts run at once on a backup server: each a session over the run's connection,
/// which sshd allows 10 of by default (`MaxSessions`), the shell and an rsync among them.
const REMOTE_LOOKERS: usize = 4;

/// Lists this long or longer go to a backup server in parts side by side (look-ups, fetches).
pub(crate) const SIDE_BY_SIDE_FROM: usize = 4_000;

/// `items` cut for [`REMOTE_LOOKERS`] scripts side by side: one script waits for each cold
/// look-up on the server's disk in turn, a few keep it busy. Small lists go whole.
pub(crate) fn in_parts<T>(items: &[T]) -> Vec<&[T]> {
    if items.len() < SIDE_BY_SIDE_FROM {
        vec![items]
    } else {
        items.chunks(items.len().div_ceil(REMOTE_LOOKERS)).collect()
    }
}

/// A perl program for a backup server that runs `look` on each record `records` reads
/// from stdin, the records cut into [`LOOK_FORKS`] slices looked up by child processes at
/// once (a cold disk answers many look-ups at once: 78,000 took 4.3 s in one process, 2.1 s
/// in four), their outputs printed in the records' order. A child that fails fails it all:
/// a lost answer must not read as one. `prelude` runs first (arguments into variables).
pub(crate) fn forked_perl(prelude: &str, records: &str, look: &str) -> String {
    format!(
        r#"{prelude}
sub records {{ {records} }}
sub look {{ {look} }}
my @r = records();
my $w = @r < 256 ? 1 : {LOOK_FORKS};
my $per = int((@r + $w - 1) / $w) || 1;
my @kids;
for (my $i = 0; $i < @r; $i += $per) {{
  my $end = $i + $per - 1; $end = $#r if $end > $#r;
  if ($w == 1) {{ look($_) for @r[$i .. $end]; last }}
  pipe(my $from, my $to) or die "pipe: $!\n";
  my $pid = fork; defined $pid or die "fork: $!\n";
  if (!$pid) {{ close $from; select $to; look($_) for @r[$i .. $end]; close $to or exit 1; exit 0 }}
  close $to; push @kids, [$pid, $from];
}}
for my $k (@kids) {{
  my ($pid, $from) = @$k;
  {{ local $/; my $o = <$from>; print $o if defined $o }}
  waitpid $pid, 0; $? == 0 or die "a look-up process failed: $?\n";
}}"#
    )
}

/// Child processes of one [`forked_perl`] program.
const LOOK_FORKS: usize = 4;

/// [`Target::holders_sized`] on the server: for each `size` and `path` line pair on stdin,
/// the index of the first folder (the arguments) holding `path` as a regular file of that
/// size (`-`: any), or `-`.
fn holders_perl() -> String {
    forked_perl(
        "my @d = @ARGV;",
        "my @l = <STDIN>; chomp @l; map { [$l[2 * $_], $l[2 * $_ + 1]] } 0 .. int(@l / 2) - 1",
        r#"my ($s, $p) = @{$_[0]}; my $at = "-";
  for my $i (0 .. $#d) {
    my @st = lstat "$d[$i]/$p";
    if (@st && -f _ && ($s eq "-" || $st[7] == $s)) { $at = $i; last }
  }
  print "$at\n";"#,
    )
}

/// The server's script for [`Target::holders_sized`] over `dirs` (absolute): perl where the
/// server has it (the shell's `read` takes a system call per byte, and `stat` a process per
/// file), else the shell.
pub(crate) fn holders_script(dirs: &[String]) -> String {
    let tries: String = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let f = format!("{}/\"$p\"", sh_quote(d));
            format!(
                "if [ -f {f} ] && [ ! -L {f} ] && {{ [ \"$s\" = - ] || [ \"$(stat -c %s -- {f})\" = \"$s\" ]; }}; then echo {i}; continue; fi; "
            )
        })
        .collect();
    let dirs: Vec<String> = dirs.iter().map(|d| sh_quote(d)).collect();
    format!(
        "if command -v perl >/dev/null 2>&1; then exec perl -e {} -- {}; fi\n\
         while IFS= read -r s && IFS= read -r p; do {tries}echo -; done",
        sh_quote(&holders_perl()),
        dirs.join(" ")
    )
}

/// [`holders_script`]'s input: a line with the size (`-`: any) and one with the path, each.
fn holders_input(asked: &[(&str, Option<u64>)]) -> Vec<u8> {
    asked
        .iter()
        .flat_map(|(p, size)| match size {
            Some(s) => format!("{s}\n{p}\n").into_bytes(),
            None => format!("-\n{p}\n").into_bytes(),
        })
        .collect()
}

pub use holdfast_core::shell::quote as sh_quote;

/// A `--files-from` list for rsync runs that read from a target. rsync hands a list kept on
/// this machine to a remote sender a few names at a time, in time that grows with the
/// square of its length (8,000 names 7.7 s, 16,000 30 s; RsyncProject/rsync#695): a remote
/// target's list is written on the server and read there (`--files-from=:path`; 8,000
/// names 1.8 s), and removed when this is dropped (one a killed run left, after a day, by
/// the next run's shell).
pub enum FilesFrom<'a> {
    Here(tempfile::NamedTempFile),
    There { target: &'a Target, path: String },
}

/// A remote list's name in the target's root: this, then `mktemp`'s letters.
pub(crate) const REMOTE_LIST: &str = ".holdfast-list.";

/// `paths` one a line, as `--files-from` reads them.
pub(crate) fn list_text<S: AsRef<str>>(paths: &[S]) -> String {
    let mut text = String::new();
    for p in paths {
        text.push_str(p.as_ref());
        text.push('\n');
    }
    text
}

/// A temporary `--files-from` list on this machine.
pub(crate) fn list_file<S: AsRef<str>>(paths: &[S]) -> Result<tempfile::NamedTempFile, StoreError> {
    let io = |source| StoreError::Io {
        path: "file list".into(),
        source,
    };
    let mut f = tempfile::NamedTempFile::new().map_err(io)?;
    std::io::Write::write_all(&mut f, list_text(paths).as_bytes()).map_err(io)?;
    Ok(f)
}

impl FilesFrom<'_> {
    /// rsync's argument naming the list.
    pub fn arg(&self) -> String {
        match self {
            FilesFrom::Here(f) => format!("--files-from={}", f.path().display()),
            FilesFrom::There { path, .. } => format!("--files-from=:{path}"),
        }
    }
}

impl Drop for FilesFrom<'_> {
    fn drop(&mut self) {
        if let FilesFrom::There { target, path } = self {
            if let Err(e) = target.run_remote(&format!("rm -f {}", sh_quote(path))) {
                tracing::debug!(list = %path, %e, "cannot remove a file list on the backup server");
            }
        }
    }
}

/// How every script on the backup server begins (in a session of its own, or in the run's
/// shell). umask 077: dumps, manifests and lists are 0600 and folders 0700 on the server too;
/// pipefail: a failing step inside a pipeline fails the script (dash before 0.5.13 has no
/// pipefail, and a failing `set` would end the script there); LC_ALL=C: tools' messages are
/// parsed (cp's "cannot stat"), and ssh passes the site's LANG on to the server (Debian's
/// SendEnv/AcceptEnv LANG LC_*).
pub(crate) const PRELUDE: &str = "LC_ALL=C; export LC_ALL; umask 077; \
     if (set -o pipefail) 2>/dev/null; then set -o pipefail; fi";

impl Target {
    /// Parses `/path`, `file:///path` or `ssh://[user@]host[:port]/path`.
    pub fn parse(spec: &str, ssh: SshOptions) -> Result<Target, StoreError> {
        let bad = |why: &str| StoreError::BadTarget {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        if let Some(rest) = spec.strip_prefix("ssh://") {
            let (authority, path) = rest
                .split_once('/')
                .ok_or_else(|| bad("no path after the host"))?;
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_string()), h),
                None => (None, authority),
            };
            let (host, port) = match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| bad("the port is not a number"))?,
                    ),
                ),
                None => (hostport.to_string(), None),
            };
            if host.is_empty() {
                return Err(bad("no host"));
            }
            if path.is_empty() {
                return Err(bad("no path after the host"));
            }
            return Ok(Target::Ssh {
                user,
                host,
                port,
                root: format!("/{}", path.trim_end_matches('/')),
                ssh,
                shell: RemoteShell::default(),
            });
        }
        let path = spec.strip_prefix("file://").unwrap_or(spec);
        if path.is_empty() {
            return Err(bad("empty path (set backup.target in holdfast.toml)"));
        }
        if !path.starts_with('/') {
            return Err(bad("a local target must be an absolute path"));
        }
        if spec.contains("://") && !spec.starts_with("file://") {
            return Err(bad("only ssh:// and local paths are supported"));
        }
        Ok(Target::Local {
            root: PathBuf::from(path),
        })
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, Target::Ssh { .. })
    }

    /// The target as the operator wrote it (no secrets exist in it).
    pub fn display(&self) -> String {
        match self {
            Target::Local { root } => root.display().to_string(),
            Target::Ssh {
                user,
                host,
                port,
                root,
                ..
            } => format!(
                "ssh://{}{host}{}{root}",
                user.as_ref().map(|u| format!("{u}@")).unwrap_or_default(),
                port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
        }
    }

    /// Absolute path of `rel` on the machine that holds the target.
    pub fn path(&self, rel: &str) -> String {
        let root = match self {
            Target::Local { root } => root.display().to_string(),
            Target::Ssh { root, .. } => root.clone(),
        };
        if rel.is_empty() {
            root
        } else {
            format!("{}/{}", root.trim_end_matches('/'), rel)
        }
    }

    pub fn local_path(&self, rel: &str) -> Option<PathBuf> {
        match self {
            Target::Local { .. } => Some(PathBuf::from(self.path(rel))),
            Target::Ssh { .. } => None,
        }
    }

    /// `rsync` destination or source for `rel`: a path, or `[user@]host:path`.
    pub fn rsync_location(&self, rel: &str) -> String {
        match self {
            Target::Local { .. } => self.path(rel),
            Target::Ssh { user, host, .. } => format!(
                "{}{host}:{}",
                user.as_ref().map(|u| format!("{u}@")).unwrap_or_default(),
                self.path(rel)
            ),
        }
    }

    /// The `ssh` argv (without the remote command) for this target.
    pub fn ssh_argv(&self) -> Vec<String> {
        let Target::Ssh {
            user,
            host,
            port,
            ssh,
            ..
        } = self
        else {
            return Vec::new();
        };
        let mut v = vec!["ssh".to_string()];
        v.extend(self.ssh_opts());
        let _ = (port, ssh);
        v.push(format!(
            "{}{host}",
            user.as_ref().map(|u| format!("{u}@")).unwrap_or_default()
        ));
        v
    }

    fn ssh_opts(&self) -> Vec<String> {
        let Target::Ssh { port, ssh, .. } = self else {
            return Vec::new();
        };
        // ssh takes the first value it sees for an option: the operator's come first.
        let mut v = ssh.options.clone();
        // One connection for the many small commands and rsync runs of a run, and for this
        // process alone: the `ssh -O exit` that ends it must not end another run's rsync.
        let control = format!("ControlPath=/tmp/holdfast-ssh-%C-{}", std::process::id());
        v.extend(
            [
                "BatchMode=yes",
                "ConnectTimeout=15",
                "ControlMaster=auto",
                &control,
                "ControlPersist=20",
            ]
            .iter()
            .flat_map(|o| ["-o".to_string(), o.to_string()]),
        );
        if let Some(p) = port {
            v.push("-p".into());
            v.push(p.to_string());
        }
        if let Some(id) = &ssh.identity {
            v.push("-i".into());
            v.push(id.display().to_string());
        }
        v
    }

    /// `rsync -e` value for a remote target.
    pub fn rsync_rsh(&self) -> Option<String> {
        if !self.is_remote() {
            return None;
        }
        let mut v = vec!["ssh".to_string()];
        v.extend(self.ssh_opts().iter().map(|s| sh_quote(s)));
        Some(v.join(" "))
    }

    pub(crate) fn remote(&self, script: &str) -> Command {
        tracing::trace!(script = %script.chars().take(80).collect::<String>(), "a session of its own");
        let argv = self.ssh_argv();
        let mut c = Command::new(&argv[0]);
        let script = format!("{PRELUDE}; {script}");
        c.args(&argv[1..]).arg("--").arg(script);
        c.stdin(Stdio::null());
        holdfast_core::child::tie_to_parent(&mut c);
        c
    }

    /// Runs a shell script on the backup server; returns its stdout. In the target's
    /// long-lived shell when it can, else in a session of its own.
    pub(crate) fn run_remote(&self, script: &str) -> Result<Vec<u8>, StoreError> {
        if let Some(ran) = self.in_shell(script, None) {
            return ran;
        }
        let out = self
            .remote(script)
            .output()
            .map_err(|e| self.unreachable(format!("cannot run ssh: {e}")))?;
        if out.status.code() == Some(255) {
            return Err(self.unreachable(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        if !out.status.success() {
            return Err(self.failed(script, &out.stderr));
        }
        Ok(out.stdout)
    }

    /// Runs a shell script on the backup server (remote targets only).
    pub fn run_script(&self, script: &str) -> Result<Vec<u8>, StoreError> {
        self.run_remote(script)
    }

    /// `script` run in the target's long-lived shell; `None`: it must have a session.
    fn in_shell(&self, script: &str, input: Option<&[u8]>) -> Option<Result<Vec<u8>, StoreError>> {
        let Target::Ssh { shell, .. } = self else {
            return None;
        };
        let began = std::time::Instant::now();
        let ran = shell.run(&self.ssh_argv(), &self.path(""), script, input)?;
        tracing::trace!(
            secs = began.elapsed().as_secs_f64(),
            input = input.map_or(0, <[u8]>::len),
            script = %script.chars().take(80).collect::<String>(),
            "ran in the server's shell"
        );
        Some(match ran {
            Ok(ran) if ran.code == 0 => Ok(ran.stdout),
            Ok(ran) => Err(self.failed(script, &ran.stderr)),
            Err(why) => Err(self.unreachable(why)),
        })
    }

    /// `script` started in a session of its own, its stdin, stdout and stderr piped.
    pub(crate) fn spawn_piped(&self, script: &str) -> Result<std::process::Child, StoreError> {
        let mut c = self.remote(script);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn()
            .map_err(|e| self.unreachable(format!("cannot run ssh: {e}")))
    }

    /// Runs a shell script on the backup server with `input` on its stdin; returns its stdout.
    pub fn run_script_with_input(&self, script: &str, input: &[u8]) -> Result<Vec<u8>, StoreError> {
        if let Some(ran) = self.in_shell(script, Some(input)) {
            return ran;
        }
        let mut child = self.spawn_piped(script)?;
        let mut stdin = child.stdin.take().expect("piped");
        let input = input.to_vec();
        // Written from a thread: the script may answer before it has read everything.
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().map_err(|e| self.io("ssh", e))?;
        let wrote = writer.join().unwrap_or(Ok(()));
        if out.status.code() == Some(255) {
            return Err(self.unreachable(String::from_utf8_lossy(&out.stderr).trim().to_string()));
        }
        if !out.status.success() || wrote.is_err() {
            return Err(self.failed(script, &out.stderr));
        }
        Ok(out.stdout)
    }

    /// `script` run once for each of `inputs`, on its stdin, all at once (one in the run's
    /// shell, the others in sessions of their own): for scripts that wait on the server's
    /// disk path by path. The outputs in `inputs`' order.
    pub fn run_side_by_side(
        &self,
        script: &str,
        inputs: &[Vec<u8>],
    ) -> Vec<Result<Vec<u8>, StoreError>> {
        std::thread::scope(|s| {
            let running: Vec<_> = inputs
                .iter()
                .map(|input| s.spawn(|| self.run_script_with_input(script, input)))
                .collect();
            running
                .into_iter()
                .map(|h| h.join().expect("a thread running a script panicked"))
                .collect()
        })
    }

    /// `paths` as a `--files-from` list for an rsync that reads from this target.
    pub fn files_from<S: AsRef<str>>(&self, paths: &[S]) -> Result<FilesFrom<'_>, StoreError> {
        if let Target::Local { .. } = self {
            return Ok(FilesFrom::Here(list_file(paths)?));
        }
        let script = format!(
            "f=$(mktemp {}XXXXXX) && cat >\"$f\" && printf '%s' \"$f\"",
            sh_quote(&self.path(REMOTE_LIST))
        );
        let out = self.run_script_with_input(&script, list_text(paths).as_bytes())?;
        let path = String::from_utf8_lossy(&out).into_owned();
        if path.is_empty() {
            return Err(self.failed(&script, b"mktemp named no file"));
        }
        Ok(FilesFrom::There { target: self, path })
    }

    /// `script` failed on the server, saying `stderr`.
    pub(crate) fn failed(&self, script: &str, stderr: &[u8]) -> StoreError {
        StoreError::Remote {
            target: self.display(),
            what: script.to_string(),
            why: String::from_utf8_lossy(stderr).trim().to_string(),
        }
    }

    pub(crate) fn unreachable(&self, why: String) -> StoreError {
        StoreError::Unreachable {
            target: self.display(),
            why,
        }
    }

    pub(crate) fn io(&self, what: &str, e: std::io::Error) -> StoreError {
        StoreError::Io {
            path: format!("{} ({what})", self.display()),
            source: e,
        }
    }

    /// Makes sure the target's root exists and can be written.
    pub fn check(&self) -> Result<(), StoreError> {
        match self {
            Target::Local { root } => {
                holdfast_core::fs::create_dir_all_mode(root, PRIVATE_DIR)
                    .map_err(|e| self.unreachable(e.to_string()))?;
                let probe = root.join(".holdfast-probe");
                std::fs::write(&probe, b"")
                    .and_then(|_| std::fs::remove_file(&probe))
                    .map_err(|e| self.unreachable(format!("cannot write there: {e}")))
            }
            Target::Ssh { .. } => {
                let root = sh_quote(&self.path(""));
                self.run_remote(&format!(
                    "mkdir -p {root} && touch {root}/.holdfast-probe && rm -f {root}/.holdfast-probe && command -v rsync >/dev/null"
                ))
                .map_err(|e| match e {
                    StoreError::Remote { why, .. } => self.unreachable(format!(
                        "cannot write the target folder or no rsync there: {why}"
                    )),
                    e => e,
                })?;
                Ok(())
            }
        }
    }

    /// Makes sure the target's root exists, making and writing nothing: for commands that
    /// only read (a wrong path or an unmounted disk must not look like an empty store).
    pub fn check_readable(&self) -> Result<(), StoreError> {
        let missing = || StoreError::NotThere {
            target: self.display(),
        };
        match self {
            Target::Local { root } => match std::fs::metadata(root) {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(self.unreachable("not a folder".into())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
                Err(e) => Err(self.unreachable(e.to_string())),
            },
            Target::Ssh { .. } => {
                let root = sh_quote(&self.path(""));
                let out = self.run_remote(&format!(
                    "if test -d {root}; then command -v rsync >/dev/null && echo ok; else echo missing; fi"
                ))?;
                match String::from_utf8_lossy(&out).trim() {
                    "ok" => Ok(()),
                    "missing" => Err(missing()),
                    _ => Err(self.unreachable("no rsync on the backup server".into())),
                }
            }
        }
    }

    pub fn mkdir_p(&self, rel: &str) -> Result<(), StoreError> {
        match self {
            Target::Local { .. } => {
                holdfast_core::fs::create_dir_all_mode(Path::new(&self.path(rel)), PRIVATE_DIR)
                    .map_err(|e| self.io(rel, e))
            }
            Target::Ssh { .. } => self
                .run_remote(&format!("mkdir -p {}", sh_quote(&self.path(rel))))
                .map(|_| ()),
        }
    }

    /// Paths, relative to folder `rel`, of everything below it that is not a folder; with
    /// `regular_only`, of regular files alone. Remote: one `find` over ssh.
    pub fn files_below(&self, rel: &str, regular_only: bool) -> Result<Vec<String>, StoreError> {
        match self.local_path(rel) {
            Some(root) => {
                let mut out = Vec::new();
                for e in walkdir::WalkDir::new(&root) {
                    let e = e.map_err(|e| StoreError::Io {
                        path: root.display().to_string(),
                        source: e.into(),
                    })?;
                    let t = e.file_type();
                    if (regular_only && t.is_file()) || (!regular_only && !t.is_dir()) {
                        if let Ok(r) = e.path().strip_prefix(&root) {
                            out.push(r.to_string_lossy().into_owned());
                        }
                    }
                }
                Ok(out)
            }
            None => {
                let kind = if regular_only { "-type f" } else { "! -type d" };
                let out = self.run_script(&format!(
                    "cd {} && find . {kind} -print0",
                    sh_quote(&self.path(rel))
                ))?;
                Ok(out
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(|n| {
                        let n = String::from_utf8_lossy(n);
                        n.strip_prefix("./").unwrap_or(&n).to_string()
                    })
                    .collect())
            }
        }
    }

    /// Names in folder `rel` (none when it does not exist).
    pub fn list(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        let mut names = match self {
            Target::Local { .. } => match std::fs::read_dir(self.path(rel)) {
                Ok(d) => d
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(self.io(rel, e)),
            },
            Target::Ssh { .. } => {
                let p = sh_quote(&self.path(rel));
                let out = self.run_remote(&format!("if [ -d {p} ]; then ls -1A {p}; fi"))?;
                String::from_utf8_lossy(&out)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            }
        };
        names.sort();
        Ok(names)
    }

    pub fn exists(&self, rel: &str) -> Result<bool, StoreError> {
        match self {
            Target::Local { .. } => Ok(Path::new(&self.path(rel)).symlink_metadata().is_ok()),
            Target::Ssh { .. } => {
                let p = sh_quote(&self.path(rel));
                let out = self.run_remote(&format!("if [ -e {p} ]; then echo y; fi"))?;
                Ok(out.starts_with(b"y"))
            }
        }
    }

    /// For each of `paths`, the first of the folders `dirs` (relative) holding it as a regular
    /// file. Remote: one script over ssh for them all.
    pub fn holders(
        &self,
        dirs: &[String],
        paths: &[String],
    ) -> Result<Vec<Option<usize>>, StoreError> {
        let asked: Vec<(&str, Option<u64>)> = paths.iter().map(|p| (p.as_str(), None)).collect();
        self.holders_sized(dirs, &asked)
    }

    /// For each `(path, size)`, the first of the folders `dirs` (relative) holding it as a
    /// regular file, of that size when one is given. Remote: one script over ssh for them
    /// all, a `stat` only where a file is there and its size is asked.
    pub fn holders_sized(
        &self,
        dirs: &[String],
        asked: &[(&str, Option<u64>)],
    ) -> Result<Vec<Option<usize>>, StoreError> {
        if let Target::Local { .. } = self {
            use rayon::prelude::*;
            let dirs: Vec<String> = dirs.iter().map(|d| self.path(d)).collect();
            // Many at a time: on a cold cache each look-up waits for the disk.
            return Ok(holdfast_core::threads::io_pool().install(|| {
                asked
                    .par_iter()
                    .map(|(p, size)| {
                        dirs.iter().position(|d| {
                            Path::new(d)
                                .join(p)
                                .symlink_metadata()
                                .is_ok_and(|m| m.is_file() && size.is_none_or(|s| m.len() == s))
                        })
                    })
                    .collect()
            }));
        }
        let dirs: Vec<String> = dirs.iter().map(|d| self.path(d)).collect();
        let script = holders_script(&dirs);
        let inputs: Vec<Vec<u8>> = in_parts(asked).into_iter().map(holders_input).collect();
        let mut answers: Vec<Option<usize>> = Vec::with_capacity(asked.len());
        for out in self.run_side_by_side(&script, &inputs) {
            answers.extend(
                String::from_utf8_lossy(&out?)
                    .lines()
                    .map(|l| l.parse().ok()),
            );
        }
        if answers.len() != asked.len() {
            return Err(StoreError::Remote {
                target: self.display(),
                what: "look up files in earlier snapshots".into(),
                why: format!("{} answers for {} files", answers.len(), asked.len()),
            });
        }
        Ok(answers)
    }

    /// Renames `from` to `to` (both relative); `to` must not exist. On the disk once this
    /// returns.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.rename_then(from, to, true)
    }

    /// [`Target::rename`] that leaves the rename to reach the disk with the next sync: for a
    /// step that a crash may undo (the next run begins it again) and a later sync vouches for.
    pub fn rename_unsynced(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.rename_then(from, to, false)
    }

    fn rename_then(&self, from: &str, to: &str, sync: bool) -> Result<(), StoreError> {
        match self {
            Target::Local { .. } => {
                let to_p = self.path(to);
                if Path::new(&to_p).exists() {
                    return Err(self.io(
                        to,
                        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists"),
                    ));
                }
                std::fs::rename(self.path(from), &to_p).map_err(|e| self.io(from, e))?;
                if !sync {
                    return Ok(());
                }
                holdfast_core::fs::sync_dir(Path::new(&to_p).parent().unwrap_or(Path::new("/")))
                    .map_err(|e| self.io(to, e))
            }
            Target::Ssh { .. } => {
                let sync = if sync {
                    format!(" && sync {}", sh_quote(&self.path("")))
                } else {
                    String::new()
                };
                self.run_remote(&format!(
                    "mv -T -n {} {} && [ ! -e {} ]{sync}",
                    sh_quote(&self.path(from)),
                    sh_quote(&self.path(to)),
                    sh_quote(&self.path(from)),
                ))
                .map(|_| ())
            }
        }
    }

    /// Removes `rel` and everything under it.
    pub fn remove_all(&self, rel: &str) -> Result<(), StoreError> {
        if rel.is_empty() || rel.contains("..") {
            return Err(self.io(
                rel,
                std::io::Error::other("refusing to remove the target root"),
            ));
        }
        match self {
            Target::Local { .. } => {
                let p = PathBuf::from(self.path(rel));
                match p.symlink_metadata() {
                    // A pruned hard-linked day is ~200,000 entries: unlinked many at a time.
                    Ok(m) if m.is_dir() => holdfast_core::tree::remove_tree(&p)
                        .map(|_| ())
                        .map_err(|e| std::io::Error::new(e.source.kind(), e.to_string())),
                    Ok(_) => std::fs::remove_file(&p),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                }
                .map_err(|e| self.io(rel, e))
            }
            Target::Ssh { .. } => self
                .run_remote(&format!("rm -rf -- {}", sh_quote(&self.path(rel))))
                .map(|_| ()),
        }
    }

    /// Removes the files `paths` (relative to folder `rel`); one already gone is no error.
    pub fn remove_files(&self, rel: &str, paths: &[String]) -> Result<(), StoreError> {
        match self.local_path(rel) {
            Some(root) => {
                for p in paths {
                    match std::fs::remove_file(root.join(p)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(StoreError::Io {
                                path: root.join(p).display().to_string(),
                                source: e,
                            })
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            None => self
                .run_script_with_input(
                    &format!("cd {} && xargs -0 -r rm -f --", sh_quote(&self.path(rel))),
                    &nul_separated(paths),
                )
                .map(|_| ()),
        }
    }

    /// Writes a small file (0600): into a temporary name, synced, then renamed over `rel`.
    pub fn write_atomic(&self, rel: &str, data: &[u8]) -> Result<(), StoreError> {
        let tmp = format!("{rel}.tmp");
        match self {
            Target::Local { .. } => {
                let p = PathBuf::from(self.path(rel));
                if let Some(parent) = p.parent() {
                    holdfast_core::fs::create_dir_all_mode(parent, PRIVATE_DIR)
                        .map_err(|e| self.io(rel, e))?;
                }
                holdfast_core::fs::write_atomic(&p, data, PRIVATE_FILE).map_err(|e| self.io(rel, e))
            }
            Target::Ssh { .. } => {
                let p = sh_quote(&self.path(rel));
                let t = sh_quote(&self.path(&tmp));
                let script = format!(
                    "mkdir -p \"$(dirname {p})\" && cat > {t} && sync {t} && mv -f {t} {p} && sync \"$(dirname {p})\""
                );
                match self.run_script_with_input(&script, data) {
                    Err(StoreError::Remote { target, why, .. }) => Err(StoreError::Remote {
                        target,
                        what: format!("write {rel}"),
                        why,
                    }),
                    other => other.map(|_| ()),
                }
            }
        }
    }

    /// Reads a small file; `None` when it does not exist.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Target::Local { .. } => match std::fs::read(self.path(rel)) {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io(rel, e)),
            },
            Target::Ssh { .. } => {
                let p = sh_quote(&self.path(rel));
                let out = self.run_remote(&format!("if [ -f {p} ]; then echo y; cat {p}; fi"))?;
                match out.strip_prefix(b"y\n") {
                    Some(d) => Ok(Some(d.to_vec())),
                    None => Ok(None),
                }
            }
        }
    }

    /// `file` inside every (non-hidden) folder of the root that has one, in one round trip:
    /// (folder name, contents).
    pub fn read_children(&self, file: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        match self {
            Target::Local { .. } => {
                for name in self.list("")? {
                    if name.starts_with('.') {
                        continue;
                    }
                    if let Some(d) = self.read(&format!("{name}/{file}"))? {
                        out.push((name, d));
                    }
                }
            }
            Target::Ssh { .. } => {
                let f = sh_quote(file);
                let data = self.run_remote(&format!(
                    "cd {} 2>/dev/null || exit 0; for d in *; do [ -f \"$d\"/{f} ] || continue; \
                     printf '%s\\n%s\\n' \"$d\" \"$(wc -c < \"$d\"/{f})\"; cat \"$d\"/{f}; done",
                    sh_quote(&self.path(""))
                ))?;
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let mut next_line = || -> Option<String> {
                        let i = rest.iter().position(|&b| b == b'\n')?;
                        let line = String::from_utf8_lossy(&rest[..i]).trim().to_string();
                        rest = &rest[i + 1..];
                        Some(line)
                    };
                    let (Some(name), Some(len)) = (next_line(), next_line()) else {
                        break;
                    };
                    let len: usize = len.parse().unwrap_or(0).min(rest.len());
                    out.push((name, rest[..len].to_vec()));
                    rest = &rest[len..];
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Opens a stream that writes `rel` (the database dump); call [`Sink::finish`] to complete.
    pub fn create(&self, rel: &str) -> Result<Sink, StoreError> {
        match self {
            Target::Local { .. } => {
                let p = PathBuf::from(self.path(rel));
                if let Some(parent) = p.parent() {
                    holdfast_core::fs::create_dir_all_mode(parent, PRIVATE_DIR)
                        .map_err(|e| self.io(rel, e))?;
                }
                // 0600 from the first byte: the dump holds every role's password hash.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(PRIVATE_FILE)
                    .open(&p)
                    .map_err(|e| self.io(rel, e))?;
                holdfast_core::fs::chmod(&p, PRIVATE_FILE).map_err(|e| self.io(rel, e))?;
                Ok(Sink::File(f, rel.to_string()))
            }
            Target::Ssh { .. } => {
                let p = sh_quote(&self.path(rel));
                let script = format!("mkdir -p \"$(dirname {p})\" && cat > {p} && sync {p}");
                let mut c = self.remote(&script);
                c.stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let child = c
                    .spawn()
                    .map_err(|e| self.unreachable(format!("cannot run ssh: {e}")))?;
                Ok(Sink::Ssh(child, self.display(), rel.to_string()))
            }
        }
    }

    /// Opens `rel` for reading (the database dump on restore).
    pub fn open(&self, rel: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        match self {
            Target::Local { .. } => Ok(Box::new(
                std::fs::File::open(self.path(rel)).map_err(|e| self.io(rel, e))?,
            )),
            Target::Ssh { .. } => {
                let mut c = self.remote(&format!("cat {}", sh_quote(&self.path(rel))));
                c.stdout(Stdio::piped()).stderr(Stdio::null());
                let mut child = c
                    .spawn()
                    .map_err(|e| self.unreachable(format!("cannot run ssh: {e}")))?;
                let out = child.stdout.take().expect("piped");
                Ok(Box::new(ChildReader { child, out }))
            }
        }
    }

    /// The whole of a file of a few MB at most (a list, a manifest): over ssh in the run's
    /// shell when it is free, not a session of its own. Big files are streamed ([`Self::open`]).
    pub fn read_all(&self, rel: &str) -> Result<Vec<u8>, StoreError> {
        let io = |source| StoreError::Io {
            path: format!("{} {rel}", self.display()),
            source,
        };
        match self.in_shell(&format!("cat {}", sh_quote(&self.path(rel))), None) {
            Some(Err(StoreError::Remote { why, .. })) => Err(io(std::io::Error::other(why))),
            Some(ran) => ran,
            None => {
                let mut all = Vec::new();
                self.open(rel)?.read_to_end(&mut all).map_err(io)?;
                Ok(all)
            }
        }
    }

    /// Ends the shared SSH connection (nothing to do for a local target).
    pub fn close(&self) {
        if let Target::Ssh { shell, .. } = self {
            shell.stop();
            let argv = self.ssh_argv();
            let _ = Command::new(&argv[0])
                .args(&argv[1..argv.len() - 1])
                .args(["-O", "exit"])
                .arg(&argv[argv.len() - 1])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Flushes everything written under the target to disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        match self {
            Target::Local { root } => {
                holdfast_core::fs::syncfs(root).map_err(|e| self.io("syncfs", e))
            }
            Target::Ssh { .. } => self
                .run_remote(&format!("sync -f {}", sh_quote(&self.path(""))))
                .map(|_| ()),
        }
    }
}

struct ChildReader {
    child: Child,
    out: std::process::ChildStdout,
}

impl Read for ChildReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.out.read(buf)?;
        if n == 0 {
            let st = self.child.wait()?;
            if !st.success() {
                return Err(std::io::Error::other(format!(
                    "reading from the backup server failed: ssh {st}"
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for ChildReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file being streamed to the target.
pub enum Sink {
    File(std::fs::File, String),
    Ssh(Child, String, String),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File(f, _) => f.write(buf),
            Sink::Ssh(c, _, _) => c.stdin.as_mut().expect("piped").write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f, _) => f.flush(),
            Sink::Ssh(c, _, _) => c.stdin.as_mut().expect("piped").flush(),
        }
    }
}

impl Sink {
    /// Flushes, syncs and closes; for SSH waits for the remote side to confirm.
    pub fn finish(self) -> Result<(), StoreError> {
        match self {
            Sink::File(f, rel) => f.sync_all().map_err(|e| StoreError::Io {
                path: rel,
                source: e,
            }),
            Sink::Ssh(mut child, target, rel) => {
                drop(child.stdin.take());
                let out = child.wait_with_output().map_err(|e| StoreError::Io {
                    path: rel.clone(),
                    source: e,
                })?;
                if !out.status.success() {
                    return Err(StoreError::Remote {
                        target,
                        what: format!("write {rel}"),
                        why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    });
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t =
            Target::parse("ssh://bk@backup.example:2222/srv/b/", SshOptions::default()).unwrap();
        assert_eq!(t.display(), "ssh://bk@backup.example:2222/srv/b");
        assert_eq!(t.rsync_location("x"), "bk@backup.example:/srv/b/x");
        assert!(t.rsync_rsh().unwrap().contains("-p 2222"));
        let l = Target::parse("/var/backups/h", SshOptions::default()).unwrap();
        assert_eq!(l.path("a/b"), "/var/backups/h/a/b");
        assert!(Target::parse("relative/x", SshOptions::default()).is_err());
        assert!(Target::parse("s3://bucket/x", SshOptions::default()).is_err());
        assert!(Target::parse("ssh://host", SshOptions::default()).is_err());
        assert!(Target::parse("ssh://h:port/x", SshOptions::default()).is_err());
    }

    /// The server's look-up in earlier snapshots, run here with perl and with the shell,
    /// answers as a target on this machine does.
    #[test]
    fn holders_are_found_alike_with_perl_or_without() {
        assert!(crate::server_sh::has_perl());
        let t = tempfile::tempdir().unwrap();
        let odd = "it's $HOME `x` a b";
        for (rel, data) in [
            ("a/one", "12345"),
            ("a/dir/two", "abc"),
            ("b/one", "123456"),
            ("b/three", "3"),
            (&format!("b/{odd}") as &str, "odd"),
        ] {
            let p = t.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        std::os::unix::fs::symlink("one", t.path().join("a/ln")).unwrap();
        std::fs::create_dir(t.path().join("a/sub")).unwrap();
        let asked: Vec<(&str, Option<u64>)> = vec![
            ("one", Some(6)),
            ("one", Some(5)),
            ("one", None),
            ("one", Some(7)),
            ("dir/two", Some(3)),
            ("ln", None),
            ("sub", None),
            ("three", None),
            ("gone", None),
            (odd, Some(3)),
        ];
        let want = vec![
            Some(1),
            Some(0),
            Some(0),
            None,
            Some(0),
            None,
            None,
            Some(1),
            None,
            Some(1),
        ];
        let dirs = ["a".to_string(), "b".to_string()];
        let local = Target::parse(t.path().to_str().unwrap(), SshOptions::default()).unwrap();
        assert_eq!(local.holders_sized(&dirs, &asked).unwrap(), want);

        let script = holders_script(&dirs.map(|d| local.path(&d)));
        let bin = t.path().join("bin");
        // The server's answers, with perl and without.
        let answers = |input: &[u8], perl: bool| -> Vec<Option<usize>> {
            let tools: &[&str] = &["stat"];
            let out = crate::server_sh::run(&script, input, (!perl).then_some((&*bin, tools)));
            assert!(out.status.success(), "perl {perl}: {out:?}");
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| l.parse().ok())
                .collect()
        };
        for perl in [true, false] {
            assert_eq!(answers(&holders_input(&asked), perl), want, "perl {perl}");
        }

        // Enough for perl's children: the answers in the records' order.
        let many: Vec<(String, Option<u64>)> = (0..600)
            .map(|i| match i % 3 {
                0 => ("one".to_string(), Some(6)),
                1 => ("dir/two".to_string(), None),
                _ => (format!("gone{i}"), None),
            })
            .collect();
        let want: Vec<Option<usize>> = (0..600).map(|i| [Some(1), Some(0), None][i % 3]).collect();
        let many: Vec<(&str, Option<u64>)> = many.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        for perl in [true, false] {
            assert_eq!(answers(&holders_input(&many), perl), want, "perl {perl}");
        }
    }

    #[test]
    fn local_operations() {
        let d = tempfile::tempdir().unwrap();
        let t = Target::parse(d.path().to_str().unwrap(), SshOptions::default()).unwrap();
        t.check().unwrap();
        t.write_atomic("a/m.json", b"{}").unwrap();
        assert_eq!(t.read("a/m.json").unwrap().unwrap(), b"{}");
        assert_eq!(t.read("nope").unwrap(), None);
        t.rename("a", "b").unwrap();
        assert_eq!(t.list("").unwrap(), vec!["b".to_string()]);
        // Unsynced or not, a rename never replaces what is there.
        t.write_atomic("c/m.json", b"[]").unwrap();
        assert!(t.rename_unsynced("c", "b").is_err());
        assert!(t.rename("c", "b").is_err());
        assert_eq!(t.read("b/m.json").unwrap().unwrap(), b"{}");
        t.rename_unsynced("c", "d").unwrap();
        assert_eq!(t.read("d/m.json").unwrap().unwrap(), b"[]");
        t.remove_all("d").unwrap();
        assert!(t.remove_all("").is_err());
        t.remove_all("b").unwrap();
        assert!(!t.exists("b").unwrap());
    }
}
