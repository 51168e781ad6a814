//! The drill's world, all inside one scratch folder:
//!
//! ```text
//! <scratch>/<machine>/site/     FOSSology-shaped site: pg/ (its own PostgreSQL cluster),
//!                               etc/fossology/ (fossology.conf, Db.conf), repository/
//! <scratch>/<machine>/standin/  the scheduler stand-in and its `fossology` init script
//! <scratch>/<machine>/etc/holdfast/holdfast.toml
//! <scratch>/backup-server/      the backup target (a local folder, or the folder an sshd
//!                               on loopback serves as ssh://...), shared by the machines
//! <scratch>/archives*/          the real archives the uploads were made from
//! ```
//!
//! Every holdfast command a drill runs is the real `holdfast` binary with `--config` pointing at
//! the scratch holdfast.toml and `FO_SYSCONFDIR` at the scratch FOSSology configuration.

use anyhow::{bail, Context, Result};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use holdfast_site::foconf::HostRange;
use holdfast_site::Site;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A backup server reached over ssh (the tests start a real sshd on loopback).
#[derive(Debug, Clone)]
pub struct SshServer {
    pub user: String,
    pub port: u16,
    pub identity: PathBuf,
    /// Extra ssh options (`-o StrictHostKeyChecking=no`, ...).
    pub options: Vec<String>,
}

/// Runs the real `holdfast` binary against the scratch site.
#[derive(Debug, Clone)]
pub struct Holdfast {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl Holdfast {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config").arg(&self.config).args(args);
        c.envs(&self.env).env_remove("HOLDFAST_CONFIG");
        c.stdin(std::process::Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Result<Output> {
        tracing::info!("holdfast {}", args.join(" "));
        self.command(args)
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))
    }

    /// Runs and fails with holdfast's own error line when it exits non-zero.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!(
                "`holdfast {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }
}

/// What a drill site is made of.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    /// `[REPOSITORY]` lines as (host folder, from, to); one disk by default.
    pub hosts: Vec<HostRange>,
    /// `full` or `gold`.
    pub mode: String,
    /// Process name tag for the stand-in (at most 6 characters).
    pub tag: String,
    /// holdfast starts the scheduler through the init script, whose start resets cut-off
    /// queue rows as `fo_scheduler --reset` does. Off: a bare start, so only holdfast itself
    /// can make a cut-off job ready to run again (what plug-pull-job proves).
    pub reset_on_start: bool,
}

impl Default for SiteSpec {
    fn default() -> Self {
        SiteSpec {
            hosts: vec![HostRange::new("localhost", "*", "00", "ff")],
            mode: "full".into(),
            tag: format!("{:x}", std::process::id() % 0xffffff),
            reset_on_start: true,
        }
    }
}

pub struct DrillSite {
    pub root: PathBuf,
    pub scratch: ScratchSite,
    pub standin: StandIn,
    /// The backup target as holdfast.toml names it.
    pub target: String,
    /// The target folder on this machine (for a loopback ssh server, the folder it serves).
    pub target_dir: PathBuf,
    pub ssh: Option<SshServer>,
    pub holdfast: Holdfast,
    pub spec: SiteSpec,
}

impl DrillSite {
    /// Builds, in `drill_root/machine`, the scratch site (cluster, configuration, empty
    /// repository), the stand-in scheduler (started) and holdfast.toml; the backup target is
    /// `drill_root/backup-server`, shared by every machine of the drill.
    pub fn create(
        drill_root: &Path,
        machine: &str,
        bin: &Path,
        ssh: Option<SshServer>,
        spec: SiteSpec,
    ) -> Result<DrillSite> {
        std::fs::create_dir_all(drill_root.join(machine))?;
        let drill_root = drill_root.canonicalize()?;
        let root = drill_root.join(machine);
        let mut scratch = ScratchSite::create(&root.join("site"), "UTF8")
            .context("cannot create the scratch site (is PostgreSQL installed?)")?;
        set_hosts(&mut scratch.site, &spec.hosts)?;
        let standin = StandIn::create(
            &root.join("standin"),
            &spec.tag,
            Behaviour {
                stop_delay_secs: 1,
                refuse_stop: false,
                agents: 1,
            },
        )?;
        write_init_wrapper(&standin, &scratch.site)?;
        let target_dir = drill_root.join("backup-server");
        std::fs::create_dir_all(&target_dir)?;
        let target = match &ssh {
            Some(s) => format!(
                "ssh://{}@127.0.0.1:{}{}",
                s.user,
                s.port,
                target_dir.display()
            ),
            None => target_dir.display().to_string(),
        };
        let config = root.join("etc/holdfast/holdfast.toml");
        let mut env = BTreeMap::new();
        env.insert(
            "FO_SYSCONFDIR".to_string(),
            scratch.conf_dir().display().to_string(),
        );
        let d = DrillSite {
            holdfast: Holdfast {
                bin: bin.to_path_buf(),
                config,
                env,
            },
            root,
            scratch,
            standin,
            target,
            target_dir,
            ssh,
            spec,
        };
        d.write_config()?;
        d.standin.start()?;
        Ok(d)
    }

    pub fn site(&self) -> &Site {
        &self.scratch.site
    }

    /// holdfast.toml for this drill: every path inside the scratch folder.
    pub fn config_text(&self) -> String {
        let mut sched = self.standin.config(30);
        let init = self.standin.dir.join("fossology").display().to_string();
        sched.stop_command = vec![init.clone(), "graceful-stop".into()];
        if self.spec.reset_on_start {
            sched.start_command = vec![init, "start".into()];
        }
        let q = |s: &str| toml_str(s);
        let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
        let mut t = format!(
            "# holdfast.toml of a drill: every path lies in {root}\n\
             [site]\nconf_dir = {conf}\nname = \"drill\"\n\n\
             [scheduler]\nstop_command = [{stop}]\nstart_command = [{start}]\n\
             process_names = [{names}]\nstop_timeout_secs = 30\nstale_row_grace_secs = 1\n\
             state_dir = {state}\n\n\
             [backup]\ntarget = {target}\nmode = {mode}\nkeep = 5\n\
             cron_file = {cron}\nlock_file = {lock}\n",
            root = self.root.display(),
            conf = q(&self.scratch.conf_dir().display().to_string()),
            stop = list(&sched.stop_command),
            start = list(&sched.start_command),
            names = list(&sched.process_names),
            state = q(&self.root.join("run").display().to_string()),
            target = q(&self.target),
            mode = q(&self.spec.mode),
            cron = q(&self.root.join("etc/cron.d/holdfast").display().to_string()),
            lock = q(&self.root.join("run/holdfast.lock").display().to_string()),
        );
        if let Some(s) = &self.ssh {
            t.push_str(&format!(
                "ssh_identity = {}\nssh_options = [{}]\n",
                q(&s.identity.display().to_string()),
                list(&s.options)
            ));
        }
        t
    }

    pub fn write_config(&self) -> Result<()> {
        let p = &self.holdfast.config;
        std::fs::create_dir_all(p.parent().unwrap())?;
        std::fs::create_dir_all(self.root.join("etc/cron.d"))?;
        std::fs::create_dir_all(self.root.join("run"))?;
        std::fs::write(p, self.config_text())?;
        Ok(())
    }

    /// Restores the newest snapshot of the real site described by `real_config` (a
    /// holdfast.toml) into this scratch site: the `[backup]` section says where the snapshots
    /// are; the site, scheduler, lock and cron settings stay this drill's. Returns the uploads.
    pub fn restore_copy_of(&self, real_config: &Path) -> Result<Vec<i32>> {
        let text = std::fs::read_to_string(real_config)
            .with_context(|| format!("cannot read {}", real_config.display()))?;
        let backup = backup_section(&text)
            .with_context(|| format!("{} has no [backup] section", real_config.display()))?;
        let mut own = self.config_text();
        // This drill's [backup] section goes; the real one comes in, with our lock and cron.
        if let Some(i) = own.find("\n[backup]") {
            own.truncate(i + 1);
        }
        own.push_str("[backup]\n");
        for line in backup.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            if !matches!(key, "lock_file" | "cron_file") {
                own.push_str(line);
                own.push('\n');
            }
        }
        own.push_str(&format!(
            "lock_file = {}\ncron_file = {}\n",
            toml_str(&self.root.join("run/copy.lock").display().to_string()),
            toml_str(&self.root.join("etc/cron.d/copy").display().to_string())
        ));
        let cfg = self.root.join("etc/holdfast/copy-of-site.toml");
        std::fs::write(&cfg, own)?;
        let copy = Holdfast {
            config: cfg,
            ..self.holdfast.clone()
        };
        let out = copy.run(&["restore", "--yes"])?;
        if !matches!(out.status.code(), Some(0) | Some(3)) {
            bail!(
                "cannot restore a copy of the site from {}: {}",
                real_config.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut c = self.connect()?;
        Ok(holdfast_site::db::uploads::keys(&mut c)?)
    }

    /// Imports `archives` as uploads and unpacks them (FOSSology's rows and repository files).
    pub fn upload(&self, archives: &[PathBuf]) -> Result<Vec<i32>> {
        let done = holdfast_unpack::upload_files(
            self.site(),
            archives,
            &holdfast_unpack::UnpackConfig::default(),
            &holdfast_unpack::UnpackOptions::default(),
        )
        .context("cannot build the drill site's uploads")?;
        Ok(done.into_iter().map(|(pk, _)| pk).collect())
    }

    pub fn connect(&self) -> Result<postgres::Client> {
        Ok(self.site().connect()?)
    }

    /// Environment for guide pages: the variables they document, set to this drill's site.
    pub fn guide_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert(
            "HOLDFAST_CONFIG".into(),
            self.holdfast.config.display().to_string(),
        );
        env.insert(
            "FO_SYSCONFDIR".into(),
            self.scratch.conf_dir().display().to_string(),
        );
        env.insert("BACKUP_TARGET".into(), self.target.clone());
        env.insert(
            "FOSSOLOGY_INIT".into(),
            self.standin.dir.join("fossology").display().to_string(),
        );
        env.insert(
            "SCHEDULER_PROCESSES".into(),
            format!(
                "\"{}\", \"{}\"",
                self.standin.scheduler_name, self.standin.agent_name
            ),
        );
        env.insert(
            "HOLDFAST_CRON_FILE".into(),
            self.root.join("etc/cron.d/holdfast").display().to_string(),
        );
        env.insert(
            "HOLDFAST_LOCK_FILE".into(),
            self.root.join("run/holdfast.lock").display().to_string(),
        );
        env.insert(
            "REPOSITORY".into(),
            self.site().repo.root.display().to_string(),
        );
        let (key, opts) = match &self.ssh {
            Some(s) => (
                s.identity.display().to_string(),
                s.options
                    .iter()
                    .map(|o| toml_str(o))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => (String::new(), String::new()),
        };
        env.insert("BACKUP_SSH_KEY".into(), key);
        env.insert("BACKUP_SSH_OPTIONS".into(), opts);
        env
    }
}

/// The lines of the `[backup]` section of a holdfast.toml, as written.
fn backup_section(text: &str) -> Option<String> {
    let mut out = None::<String>;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if out.is_some() {
                break;
            }
            if t == "[backup]" {
                out = Some(String::new());
            }
            continue;
        }
        if let Some(o) = &mut out {
            o.push_str(line);
            o.push('\n');
        }
    }
    out
}

/// The `[REPOSITORY]` host ranges of the real site behind a holdfast.toml (its
/// `[site] conf_dir`, else FOSSology's default places).
pub fn hosts_of(real_config: &Path) -> Result<Vec<HostRange>> {
    let text = std::fs::read_to_string(real_config)
        .with_context(|| format!("cannot read {}", real_config.display()))?;
    let mut conf_dir = None;
    let mut in_site = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_site = t == "[site]";
        } else if in_site {
            if let Some(v) = t.strip_prefix("conf_dir") {
                let v = v.trim_start().trim_start_matches('=').trim();
                conf_dir = Some(PathBuf::from(v.trim_matches('"')));
            }
        }
    }
    let site = Site::open(conf_dir.as_deref())?;
    Ok(site.fo.hosts)
}

/// Rewrites the site's `[REPOSITORY]` lines and creates the host folders.
pub fn set_hosts(site: &mut Site, hosts: &[HostRange]) -> Result<()> {
    site.fo.hosts = hosts.to_vec();
    site.repo = holdfast_site::repo::Repository::from_conf(&site.fo);
    site.write_conf()?;
    for d in site.repo.host_dirs() {
        std::fs::create_dir_all(d)?;
    }
    Ok(())
}

/// A `fossology` init script in the stand-in's folder (`start`, `stop`, `graceful-stop`), so
/// the guides' `"$FOSSOLOGY_INIT" start` works against the stand-in as against FOSSology.
/// Its start does what FOSSology's `fo_scheduler --reset` start does: queue rows an agent was
/// running when the scheduler died are made ready to run again.
fn write_init_wrapper(s: &StandIn, site: &Site) -> Result<()> {
    let d = s.dir.display();
    let sched = &s.scheduler_name;
    let db = &site.db;
    let pgpass = s.dir.join("pgpass");
    let esc = |x: &str| x.replace('\\', "\\\\").replace(':', "\\:");
    std::fs::write(
        &pgpass,
        format!(
            "*:*:*:{}:{}\n",
            esc(db.user()),
            esc(db.get("password").unwrap_or(""))
        ),
    )?;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600))?;
    let reset = format!(
        "PGPASSFILE={d}/pgpass PGCONNECT_TIMEOUT=5 psql -X -q -w -h {h} -p {p} -U {u} -d {n} -c \
         \"{sql}\" >/dev/null 2>&1 || true",
        sql = holdfast_site::db::jobs::SCHEDULER_RESET_SQL,
        h = db.host(),
        p = db.port(),
        u = db.user(),
        n = db.dbname()
    );
    let p = s.dir.join("fossology");
    std::fs::write(
        &p,
        format!(
            "#!/bin/bash\n# Stand-in for /etc/init.d/fossology.\ncase \"$1\" in\n  start)\n    [ -s {d}/scheduler.pid ] && kill -0 \"$(cat {d}/scheduler.pid)\" 2>/dev/null && exit 0\n    {reset}\n    exec {d}/start ;;\n  stop) exec {d}/{sched} --kill ;;\n  graceful-stop) exec {d}/stop ;;\n  *) echo \"usage: $0 start|stop|graceful-stop\" >&2; exit 2 ;;\nesac\n"
        ),
    )?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
