//! A scratch PostgreSQL cluster: started for the demo, the drills and the tests, stopped on drop.
//!
//! PostgreSQL refuses to run as root. When holdfast runs as root (CI, an operator's shell) the
//! cluster is created and run as the `postgres` system user through `runuser`; the data
//! folder is handed to that user and its ancestors made traversable.

use anyhow::{bail, Context, Result};
use holdfast_site::db::{quote_ident, quote_literal};
use holdfast_site::dbconf::DbConf;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    pub data: PathBuf,
    pub port: u16,
    /// Superuser name and password (password authentication on TCP).
    pub superuser: String,
    pub password: String,
    os_user: Option<String>,
    running: bool,
}

/// The folder with `initdb`, `pg_ctl` and `postgres`: `PG_BIN`, PATH, or Debian's newest.
pub fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// A TCP port on loopback that nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().unwrap().port()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Cluster {
    /// Creates a new cluster in `data` (which must not exist or be empty) and starts it.
    pub fn start(data: &Path) -> Result<Cluster> {
        Self::start_on(data, free_port())
    }

    /// [`Cluster::start`] trying `port` first.
    fn start_on(data: &Path, port: u16) -> Result<Cluster> {
        let bin = pg_bin_dir().context("no PostgreSQL server found (install postgresql)")?;
        std::fs::create_dir_all(data)?;
        let data = data.canonicalize()?;
        let os_user = is_root().then(|| "postgres".to_string());
        if let Some(user) = &os_user {
            let u = nix::unistd::User::from_name(user)?
                .with_context(|| format!("no system user {user} to run PostgreSQL as"))?;
            nix::unistd::chown(&data, Some(u.uid), Some(u.gid))?;
            // The postgres user must be able to reach the folder.
            let mut a = data.parent();
            while let Some(dir) = a {
                let mode = std::fs::metadata(dir)?.permissions().mode();
                if mode & 0o001 == 0 {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o001))?;
                }
                a = dir.parent();
            }
        }
        let password: String = {
            use rand::Rng;
            rand::rng()
                .sample_iter(&rand::distr::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect()
        };
        let pwfile = data.join("pwfile");
        std::fs::write(&pwfile, &password)?;
        if let Some(user) = &os_user {
            let u = nix::unistd::User::from_name(user)?.unwrap();
            nix::unistd::chown(&pwfile, Some(u.uid), Some(u.gid))?;
        }
        let pgdata = data.join("pgdata");
        let mut c = Cluster {
            data: data.clone(),
            port,
            superuser: "postgres".into(),
            password,
            os_user,
            running: false,
        };
        c.run(
            Command::new(bin.join("initdb"))
                .arg("-D")
                .arg(&pgdata)
                .args(["-U", "postgres", "-E", "UTF8", "--locale=C"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        )?;
        std::fs::remove_file(&pwfile)?;
        // The socket goes into the data folder and /tmp (where holdfast looks for a local
        // server's socket, besides Debian's /var/run/postgresql): the superuser tools reach
        // the cluster there as they reach a real one.
        // The port was free when chosen, but another test's server (or a connection's own
        // end) may take it before PostgreSQL binds it: a new port then, a few times.
        let log = data.join("postgres.log");
        for attempt in 1.. {
            let logged = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let opts = format!(
                "-p {} -k {},/tmp -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
                c.port,
                data.display()
            );
            let started = c.run(
                Command::new(bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(&pgdata)
                    .arg("-l")
                    .arg(&log)
                    .args(["-o", &opts, "-w", "-t", "60", "start"]),
                "pg_ctl start",
            );
            let Err(e) = started else { break };
            let said = std::fs::read(&log).unwrap_or_default();
            let said =
                String::from_utf8_lossy(&said[(logged as usize).min(said.len())..]).into_owned();
            let taken = said.contains("Address already in use") || said.contains("lock file");
            if !taken || attempt == 5 {
                bail!("{e}\n{}: {}", log.display(), said.trim());
            }
            c.port = free_port();
        }
        c.running = true;
        Ok(c)
    }

    fn run(&self, cmd: &mut Command, what: &str) -> Result<()> {
        let mut full = match &self.os_user {
            Some(u) => {
                let mut r = Command::new("runuser");
                r.args(["-u", u, "--"])
                    .arg(cmd.get_program())
                    .args(cmd.get_args());
                r
            }
            None => {
                let mut r = Command::new(cmd.get_program());
                r.args(cmd.get_args());
                r
            }
        };
        full.current_dir("/");
        let out = full
            .output()
            .with_context(|| format!("cannot run {what}"))?;
        if !out.status.success() {
            bail!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Connection facts for the superuser.
    pub fn superuser_conf(&self) -> DbConf {
        self.conf("postgres", &self.superuser.clone(), &self.password.clone())
    }

    pub fn conf(&self, dbname: &str, user: &str, password: &str) -> DbConf {
        let text = format!(
            "dbname={dbname};host=127.0.0.1;port={};user={user};password={password};",
            self.port
        );
        DbConf::parse(&text).expect("well-formed Db.conf")
    }

    pub fn superuser_client(&self) -> Result<postgres::Client> {
        Ok(self.superuser_conf().pg_config().connect(postgres::NoTls)?)
    }

    /// The folder of the cluster's local socket.
    pub fn socket_dir(&self) -> &Path {
        &self.data
    }

    /// Creates the site's role and database as FOSSology's installer does
    /// (`install/db/dbcreate` runs `fossologyinit.sql` as postgres: `create role fossy with
    /// createdb login`, the database owned by it, `uuid-ossp` in it), then applies
    /// FOSSology's schema and install rows as that role, as `fossinit.php` does; returns the
    /// site's `Db.conf`.
    pub fn create_site_db(
        &self,
        dbname: &str,
        user: &str,
        password: &str,
        encoding: &str,
    ) -> Result<DbConf> {
        let mut su = self.superuser_client()?;
        let exists = su
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])?
            .is_some();
        let ident = quote_ident(user);
        let lit = quote_literal(password);
        if !exists {
            su.batch_execute(&format!(
                "CREATE ROLE {ident} WITH CREATEDB LOGIN PASSWORD {lit}"
            ))?;
        }
        su.batch_execute(&format!(
            "CREATE DATABASE {} OWNER {ident} ENCODING {} TEMPLATE template0",
            quote_ident(dbname),
            quote_literal(encoding)
        ))?;
        self.conf(dbname, &self.superuser.clone(), &self.password.clone())
            .pg_config()
            .connect(postgres::NoTls)?
            .batch_execute("CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\"")?;
        let conf = self.conf(dbname, user, password);
        let mut c = conf.pg_config().connect(postgres::NoTls)?;
        c.batch_execute(holdfast_site::SCHEMA_SQL)
            .context("apply FOSSology's schema")?;
        Ok(conf)
    }

    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        if let Some(bin) = pg_bin_dir() {
            let _ = self.run(
                Command::new(bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(self.data.join("pgdata"))
                    .args(["-m", "immediate", "-w", "stop"]),
                "pg_ctl stop",
            );
        }
        self.running = false;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port taken between its choice and PostgreSQL's start costs a new port, not the run.
    #[test]
    fn a_port_taken_before_the_start_gives_way_to_another() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let t = tempfile::tempdir().unwrap();
        let c = Cluster::start_on(&t.path().join("c"), port).unwrap();
        assert_ne!(c.port, port);
        let log = std::fs::read_to_string(c.data.join("postgres.log")).unwrap();
        assert!(log.contains("Address already in use"), "{log}");
        let mut client = postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres password={} dbname=postgres",
                c.port, c.password
            ),
            postgres::NoTls,
        )
        .unwrap();
        assert_eq!(
            client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
            1
        );
    }
}
