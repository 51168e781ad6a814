//! The rolling layout's new day: every file the previous day holds is hard-linked into the
//! new tree by its path (names carry the content, so an mtime a scan touched changes
//! nothing), without rsync comparing the two trees.

use crate::target::{nul_separated, sh_quote, Target};
use crate::StoreError;
use std::collections::BTreeMap;

/// Folders linked at once (cold lookups in the previous tree overlap).
const LINKERS: usize = 16;
/// `cp` processes linking at once on a backup server (sessions: sshd allows 10 a connection).
const REMOTE_LINKERS: usize = 4;

/// Rolling layout: hard-links `paths` from the previous snapshot's tree (`from`) into the
/// new one (`to`), both relative to the target. Names carry the content, so every file the
/// previous day holds is linked whatever its mtime; a path already in `to` is left alone.
/// Returns how many were linked and the paths the previous tree lacks (to be sent instead).
pub fn link_tree(
    target: &Target,
    from: &str,
    to: &str,
    paths: &[String],
) -> Result<(u64, Vec<String>), StoreError> {
    let mut lacking = Vec::new();
    if paths.is_empty() {
        return Ok((0, lacking));
    }
    match (target.local_path(from), target.local_path(to)) {
        (Some(from), Some(to)) => {
            // One task per folder, many in flight: on a cold cache each lookup in the
            // previous tree waits for the disk, so the waits overlap.
            let mut by_dir: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
            for p in paths {
                by_dir
                    .entry(p.rsplit_once('/').map(|(d, _)| d).unwrap_or(""))
                    .or_default()
                    .push(p);
            }
            let lacking = std::sync::Mutex::new(lacking);
            let linked = std::sync::atomic::AtomicU64::new(0);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(LINKERS)
                .build()
                .map_err(|e| StoreError::Io {
                    path: to.display().to_string(),
                    source: std::io::Error::other(e),
                })?;
            let groups: Vec<(&str, Vec<&String>)> = by_dir.into_iter().collect();
            pool.install(|| {
                use rayon::prelude::*;
                groups.par_iter().try_for_each(|(dir, files)| {
                    holdfast_core::interrupt::check().map_err(|_| StoreError::Interrupted)?;
                    let parent = to.join(dir);
                    holdfast_core::fs::create_dir_all_mode(&parent, holdfast_core::fs::PRIVATE_DIR)
                        .map_err(|source| StoreError::Io {
                            path: parent.display().to_string(),
                            source,
                        })?;
                    for p in files {
                        match std::fs::hard_link(from.join(p), to.join(p)) {
                            Ok(()) => {
                                linked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                                lacking.lock().expect("not poisoned").push((*p).clone())
                            }
                            Err(source) => {
                                return Err(StoreError::Io {
                                    path: from.join(p).display().to_string(),
                                    source,
                                })
                            }
                        }
                    }
                    Ok(())
                })
            })?;
            let mut lacking = lacking.into_inner().expect("not poisoned");
            lacking.sort();
            Ok((linked.into_inner(), lacking))
        }
        _ => {
            // Each cold look-up in the previous tree waits for the server's disk: a few
            // scripts run side by side on folders of their own (one in the run's shell, the
            // others in sessions), each with children of its own where perl does it.
            let chunks = by_folders(
                paths,
                if paths.len() < 2_000 {
                    1
                } else {
                    REMOTE_LINKERS
                },
            );
            let script = link_script(target, from, to);
            let inputs: Vec<Vec<u8>> = chunks.into_iter().map(nul_separated).collect();
            let outs = target.run_side_by_side(&script, &inputs);
            for (input, out) in inputs.iter().zip(outs) {
                match lacking_in(target, to, &out?) {
                    Ok(l) => lacking.extend(l),
                    // Two made the same new folder at once: this part again, alone.
                    Err(_) if inputs.len() > 1 => {
                        let again = target.run_script_with_input(&script, input)?;
                        lacking.extend(lacking_in(target, to, &again)?)
                    }
                    Err(e) => return Err(e),
                }
            }
            lacking.sort();
            Ok((paths.len() as u64 - lacking.len() as u64, lacking))
        }
    }
}

/// `paths` (sorted) cut into at most `n` runs of about equal length, a folder never split.
fn by_folders(paths: &[String], n: usize) -> Vec<&[String]> {
    fn folder(p: &str) -> &str {
        p.rsplit_once('/').map_or("", |(d, _)| d)
    }
    let mut out = Vec::new();
    let mut rest = paths;
    while !rest.is_empty() {
        let left = n.saturating_sub(out.len()).max(1);
        let mut cut = rest.len().div_ceil(left).min(rest.len());
        while cut < rest.len() && folder(&rest[cut]) == folder(&rest[cut - 1]) {
            cut += 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

/// The server's script that links the paths on its stdin from `from` into `to`; it prints,
/// as `cp` says it, each path the previous tree lacks. perl where the server has it: one
/// `cp` looks its files up one at a time, each waiting for the server's disk when cold,
/// where perl's children wait side by side (5,271 links into a spare day over ssh, cold:
/// four `cp` 1.25-1.70 s, four perl with four children each 0.89-0.93 s).
fn link_script(target: &Target, from: &str, to: &str) -> String {
    let (from_q, to_q) = (sh_quote(&target.path(from)), sh_quote(&target.path(to)));
    // cp goes on past a name it cannot find and says which: those are sent instead.
    // Folders it makes get the previous day's modes and owners.
    format!(
        "mkdir -p {to_q} && cd {from_q} || exit 1\n\
         if command -v perl >/dev/null 2>&1; then exec perl -e {} -- {from_q} {to_q}; fi\n\
         {{ xargs -0 -r cp -l -n --parents --preserve=mode,ownership -t {to_q} -- 2>&1 >/dev/null || true; }}",
        sh_quote(&link_perl()),
    )
}

/// [`link_script`]'s perl: `cp -l -n --parents --preserve=mode,ownership` for each name.
fn link_perl() -> String {
    crate::target::forked_perl(
        r#"my ($from, $to) = @ARGV;
sub up { $_[0] =~ m{^(.*)/[^/]+$} ? $1 : undef }
sub mk { my $d = shift; return if -d "$to/$d"; my $u = up($d); mk($u) if defined $u;
  if (mkdir "$to/$d", 0700) { my @s = lstat "$from/$d"; if (@s) { chown $s[4], $s[5], "$to/$d"; chmod $s[2] & 07777, "$to/$d" } }
  elsif (!-d "$to/$d") { die "cannot make folder $to/$d: $!\n" } }"#,
        r#"local $/ = "\0"; my @n = <STDIN>; chomp @n; @n"#,
        r#"my $p = $_[0]; return if link "$from/$p", "$to/$p"; return if $!{EEXIST};
  if ($!{ENOENT}) {
    if (!lstat "$from/$p") {
      # A lost file is sent from the site; a lost folder is a damaged day (as cp --parents).
      my $d = up($p); die "cannot stat folder $d of the previous day: $!\n" if defined $d && !-d "$from/$d";
      print "cp: cannot stat '$p': No such file or directory\n"; return
    }
    my $d = up($p); mk($d) if defined $d;
    return if link "$from/$p", "$to/$p"; return if $!{EEXIST};
  }
  die "cannot link $p: $!\n";"#,
    )
}

/// The paths `cp` could not find in the previous tree, from what it said; anything else it
/// said is an error.
fn lacking_in(target: &Target, to: &str, said: &[u8]) -> Result<Vec<String>, StoreError> {
    let mut lacking = Vec::new();
    for line in String::from_utf8_lossy(said).lines() {
        let Some(rest) = line.split("cannot stat '").nth(1) else {
            return Err(StoreError::Io {
                path: target.path(to),
                source: std::io::Error::other(format!("linking the previous day's files: {line}")),
            });
        };
        if let Some((p, _)) = rest.split_once('\'') {
            lacking.push(p.to_string());
        }
    }
    Ok(lacking)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn the_previous_day_is_linked_alike_with_perl_or_without() {
        assert!(crate::server_sh::has_perl());
        let t = tempfile::tempdir().unwrap();
        let target = Target::parse(t.path().to_str().unwrap(), Default::default()).unwrap();
        let from = t.path().join("day1");
        let mut paths: Vec<String> = (0..600)
            .map(|i| format!("h/files/{:02x}/{:02x}/f{i}", i % 20, i % 7))
            .collect();
        for p in &paths {
            std::fs::create_dir_all(from.join(p).parent().unwrap()).unwrap();
            std::fs::write(from.join(p), p).unwrap();
        }
        std::fs::set_permissions(
            from.join("h/files/07"),
            std::fs::Permissions::from_mode(0o2750),
        )
        .unwrap();
        paths.extend([
            "h/files/00/00/gone".to_string(),
            "h/files/01/01/gone".to_string(),
        ]);
        paths.sort();
        let bin = t.path().join("bin");
        for perl in [true, false] {
            let to = format!("day-{perl}");
            std::fs::create_dir_all(t.path().join(&to).join("h/files/00/00")).unwrap();
            // Already there: left alone (`cp -n`).
            std::fs::write(t.path().join(&to).join(&paths[0]), "kept").unwrap();
            let tools: &[&str] = &["mkdir", "xargs", "cp"];
            let without = (!perl).then_some((&*bin, tools));
            let script = link_script(&target, "day1", &to);
            let out = crate::server_sh::run(&script, &nul_separated(&paths), without);
            assert!(out.status.success(), "perl {perl}: {out:?}");
            let lacking = lacking_in(&target, &to, &out.stdout).unwrap();
            assert_eq!(
                lacking,
                ["h/files/00/00/gone", "h/files/01/01/gone"],
                "perl {perl}"
            );
            let day = t.path().join(&to);
            assert_eq!(std::fs::read(day.join(&paths[0])).unwrap(), b"kept");
            for p in paths.iter().skip(1).filter(|p| !p.ends_with("gone")) {
                let ino = |r: &std::path::Path| std::fs::metadata(r.join(p)).unwrap().ino();
                assert_eq!(ino(&from), ino(&day), "perl {perl}: {p} not linked");
            }
            let mode = std::fs::metadata(day.join("h/files/07")).unwrap().mode();
            assert_eq!(mode & 0o7777, 0o2750, "perl {perl}: the folder's mode");
        }
        // A folder lost from the previous day: an error naming it, either way.
        std::fs::remove_dir_all(from.join("h/files/0d")).unwrap();
        for perl in [true, false] {
            let tools: &[&str] = &["mkdir", "xargs", "cp"];
            let without = (!perl).then_some((&*bin, tools));
            let script = link_script(&target, "day1", &format!("lost-{perl}"));
            let out = crate::server_sh::run(&script, &nul_separated(&paths), without);
            // perl fails the script; cp says it and the caller reads it as an error.
            let read = lacking_in(&target, "x", &out.stdout).err();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                read.map(|e| e.to_string()).unwrap_or_default()
            );
            assert!(said.contains("h/files/0d"), "perl {perl}: {said}");
        }
    }

    #[test]
    fn paths_are_cut_between_folders_only() {
        let paths: Vec<String> = ["a/1", "a/2", "a/3", "b/1", "c/1", "c/2", "d/1", "d/2"]
            .map(String::from)
            .to_vec();
        let parts = by_folders(&paths, 3);
        assert_eq!(parts.concat(), paths);
        assert!(parts.len() <= 3);
        for w in parts.windows(2) {
            let (a, b) = (w[0].last().unwrap(), &w[1][0]);
            assert_ne!(a.split('/').next(), b.split('/').next(), "{parts:?}");
        }
        assert_eq!(by_folders(&paths, 1), vec![&paths[..]]);
        assert_eq!(by_folders(&paths[..3], 4), vec![&paths[..3]]);
    }
}
