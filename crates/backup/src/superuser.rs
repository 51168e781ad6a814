//! How holdfast reaches PostgreSQL as a superuser, for `pg_dumpall` and the restore.
//!
//! FOSSology's installer creates its role `fossy` with `LOGIN CREATEDB` only. That is enough
//! for the site's own work, but `pg_dumpall` reads `pg_authid` (the roles and their
//! passwords) and a restore creates databases and roles: both need a superuser. As
//! FOSSology's own scripts do (`su postgres -c psql` in `install/db/dbcreate`), holdfast by
//! default runs the PostgreSQL tools as the `postgres` OS user over the server's local socket
//! (peer authentication, no password anywhere). A site whose database server is elsewhere
//! names a superuser role in `[backup.superuser]` instead, with its password in a file only
//! its owner may read (or in libpq's `~/.pgpass`); the password reaches the tools through a
//! private pgpass file, never a command line.

use crate::BackupError;
use holdfast_site::dbconf::{DbConf, PgEnv};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `[backup.superuser]` in holdfast.toml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuperuserConfig {
    /// OS user whose name is also a superuser role, reached over the local socket with peer
    /// authentication (holdfast runs the tools as that user when it runs as root).
    pub os_user: String,
    /// Folder of the server's local socket. Unset: Db.conf's `host` when it is a folder,
    /// else the first of /var/run/postgresql, /run/postgresql, /tmp that holds the socket
    /// for Db.conf's port.
    pub socket_dir: Option<PathBuf>,
    /// A superuser role to log in as with a password over Db.conf's host and port, instead of
    /// the OS user. For a database server on another machine.
    pub user: Option<String>,
    /// File holding `user`'s password (mode 0600 or stricter). Unset: libpq's `~/.pgpass`.
    pub password_file: Option<PathBuf>,
}

impl Default for SuperuserConfig {
    fn default() -> Self {
        SuperuserConfig {
            os_user: "postgres".into(),
            socket_dir: None,
            user: None,
            password_file: None,
        }
    }
}

/// Folders where a local server's socket usually is (Debian, Red Hat, PostgreSQL's default).
const SOCKET_DIRS: [&str; 3] = ["/var/run/postgresql", "/run/postgresql", "/tmp"];

/// The `application_name` of holdfast's superuser sessions: a restore finds by it the
/// statement a killed run left running in the server.
pub const APPLICATION_NAME: &str = "holdfast";

/// A resolved way to run PostgreSQL client tools as a superuser.
#[derive(Debug, Clone)]
pub enum Superuser {
    /// The OS user over the local socket (peer authentication).
    Peer {
        os_user: String,
        socket_dir: PathBuf,
        port: u16,
    },
    /// A role with a password over TCP (the password stays in the DbConf, never printed).
    Password { conf: DbConf },
}

impl Superuser {
    /// Resolves `[backup.superuser]` against the site's `Db.conf`.
    pub fn resolve(cfg: &SuperuserConfig, site_db: &DbConf) -> Result<Superuser, BackupError> {
        if let Some(user) = &cfg.user {
            let mut conf = site_db.with_dbname("postgres");
            conf.params.insert("user".into(), user.clone());
            conf.params.remove("password");
            if let Some(file) = &cfg.password_file {
                conf.params
                    .insert("password".into(), read_password_file(file)?);
            }
            return Ok(Superuser::Password { conf });
        }
        let port = site_db.port();
        let socket_dir = match &cfg.socket_dir {
            Some(d) => d.clone(),
            None => find_socket_dir(site_db).ok_or_else(|| {
                BackupError::Config(format!(
                    "no PostgreSQL socket for port {port} in {} or Db.conf's host {:?}: set \
                     [backup.superuser] socket_dir to the server's unix_socket_directories, or \
                     user and password_file for a superuser role over TCP",
                    SOCKET_DIRS.join(", "),
                    site_db.host()
                ))
            })?,
        };
        Ok(Superuser::Peer {
            os_user: cfg.os_user.clone(),
            socket_dir,
            port,
        })
    }

    /// One line for `--dry-run` and logs (never the password).
    pub fn describe(&self) -> String {
        match self {
            Superuser::Peer {
                os_user,
                socket_dir,
                port,
            } => format!(
                "as OS user {os_user} (role {os_user}, peer authentication) over the socket {}/.s.PGSQL.{port}",
                socket_dir.display()
            ),
            Superuser::Password { conf } => format!(
                "as role {} with a password (from {}) on {}:{}",
                conf.user(),
                if conf.get("password").is_some() {
                    "backup.superuser.password_file"
                } else {
                    "~/.pgpass"
                },
                conf.host(),
                conf.port()
            ),
        }
    }

    /// `program` (pg_dumpall, psql) set up to connect as the superuser; `args` follow the
    /// connection options. Keep the returned environment alive until the child has exited.
    pub fn command(
        &self,
        program: &str,
        args: &[&str],
    ) -> Result<(Command, Option<PgEnv>), BackupError> {
        match self {
            Superuser::Peer {
                os_user,
                socket_dir,
                port,
            } => {
                let as_other = nix::unistd::geteuid().is_root()
                    && nix::unistd::User::from_uid(nix::unistd::geteuid())
                        .ok()
                        .flatten()
                        .is_none_or(|u| u.name != *os_user);
                let mut cmd = Command::new(program);
                if as_other {
                    switch_user(&mut cmd, os_user)?;
                }
                // The OS user may not be able to enter the current folder.
                cmd.current_dir("/");
                for k in [
                    "PGPASSWORD",
                    "PGPASSFILE",
                    "PGSERVICE",
                    "PGHOST",
                    "PGHOSTADDR",
                ] {
                    cmd.env_remove(k);
                }
                cmd.env("PGAPPNAME", APPLICATION_NAME);
                cmd.arg("-h")
                    .arg(socket_dir)
                    .args(["-p", &port.to_string(), "-U", os_user]);
                cmd.args(args);
                Ok((cmd, None))
            }
            Superuser::Password { conf } => {
                let env = conf.pg_env().map_err(|source| BackupError::Io {
                    path: "pgpass".into(),
                    source,
                })?;
                let mut cmd = Command::new(program);
                env.apply(&mut cmd);
                cmd.env("PGAPPNAME", APPLICATION_NAME);
                if conf.get("password").is_none() {
                    // No password file: let libpq find ~/.pgpass.
                    cmd.env_remove("PGPASSFILE");
                }
                cmd.args(args);
                Ok((cmd, Some(env)))
            }
        }
    }

    /// Runs `sql` with `psql` as the superuser in database `dbname`; returns its rows, one
    /// line each (`-At`).
    pub fn query(&self, psql: &str, dbname: &str, sql: &str) -> Result<Vec<String>, BackupError> {
        let (mut cmd, _env) = self.command(
            psql,
            &[
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                dbname,
                "-c",
                sql,
            ],
        )?;
        holdfast_core::child::tie_to_parent(&mut cmd);
        cmd.stdin(Stdio::null());
        let out = cmd.output().map_err(|e| {
            BackupError::Load(format!(
                "cannot run {psql}: {e} (install postgresql-client, or set backup.psql)"
            ))
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(BackupError::Load(format!(
                "{} ({}) failed: {}{}",
                first_words(sql),
                self.describe(),
                stderr.trim(),
                self.hint(&stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// What to do when `stderr` says the superuser connection was refused (nothing for errors
    /// of the statement itself, where it would send the operator the wrong way).
    pub fn hint(&self, stderr: &str) -> &'static str {
        const REFUSED: [&str; 7] = [
            "authentication failed",
            "pg_hba.conf",
            "could not connect",
            "connection to server",
            "no password supplied",
            "permission denied",
            "must be superuser",
        ];
        let refused = REFUSED.iter().any(|p| stderr.contains(p))
            || (stderr.contains("role \"") && stderr.contains("does not exist"));
        if !refused {
            return "";
        }
        match self {
            Superuser::Peer { .. } => {
                " (run holdfast as root so it can run the tools as that OS user, or set \
                 [backup.superuser] user and password_file)"
            }
            Superuser::Password { .. } => {
                " (check [backup.superuser] user and password_file; the role must be a superuser)"
            }
        }
    }
}

/// Runs `cmd` as `os_user`: its uid and primary group (supplementary groups dropped), with
/// the user's HOME, USER and LOGNAME.
///
/// Done in the child between fork and exec (not through `runuser`): `runuser` forks the tool
/// as its own child, which loses holdfast's `PR_SET_PDEATHSIG`, so a `kill -9` of holdfast
/// left a psql loading the dump that the next restore met. The kernel clears the death signal
/// on a change of uid, so [`holdfast_core::child::tie_to_parent`] (whose `pre_exec` runs after
/// the standard library's `setuid`) sets it again for the new user.
fn switch_user(cmd: &mut Command, os_user: &str) -> Result<(), BackupError> {
    use std::os::unix::process::CommandExt;
    let user = nix::unistd::User::from_name(os_user)
        .map_err(|e| BackupError::Config(format!("cannot look up OS user {os_user}: {e}")))?
        .ok_or_else(|| {
            BackupError::Config(format!(
                "no OS user {os_user} on this machine: set [backup.superuser] os_user to the \
                 user the PostgreSQL server runs as (peer authentication), or user and \
                 password_file for a superuser role"
            ))
        })?;
    cmd.uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .env("HOME", &user.dir)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name);
    Ok(())
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The socket folder of a local server on Db.conf's port.
fn find_socket_dir(db: &DbConf) -> Option<PathBuf> {
    let name = format!(".s.PGSQL.{}", db.port());
    let host = db.host();
    let from_conf = host.starts_with('/').then(|| PathBuf::from(host));
    from_conf
        .into_iter()
        .chain(SOCKET_DIRS.iter().map(PathBuf::from))
        .find(|d| d.join(&name).exists())
}

/// Reads a password file, refusing one others may read.
fn read_password_file(path: &Path) -> Result<String, BackupError> {
    let text = holdfast_core::fs::read_secret(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => BackupError::Config(format!(
            "{} (backup.superuser.password_file): {e}",
            path.display()
        )),
        _ => BackupError::Io {
            path: path.display().to_string(),
            source: e,
        },
    })?;
    let pw = text.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        return Err(BackupError::Config(format!(
            "{} (backup.superuser.password_file) is empty: put the superuser's password on its first line",
            path.display()
        )));
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_login_hint_comes_only_with_login_errors() {
        let su = Superuser::Peer {
            os_user: "postgres".into(),
            socket_dir: "/run/postgresql".into(),
            port: 5432,
        };
        for refused in [
            "psql: error: connection to server on socket \"/run/postgresql/.s.PGSQL.5432\" failed: FATAL:  Peer authentication failed for user \"postgres\"",
            "psql: error: connection to server at \"db\" (10.0.0.2), port 5432 failed: FATAL:  role \"admin\" does not exist",
            "ERROR:  must be superuser to create roles",
        ] {
            assert!(su.hint(refused).contains("run holdfast as root"), "{refused}");
        }
        for statement in [
            "ERROR:  database \"fossology\" already exists",
            "ERROR:  invalid locale name: \"de_CH.UTF-8\"",
        ] {
            assert_eq!(su.hint(statement), "", "{statement}");
        }
    }

    #[test]
    fn password_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let db = DbConf::parse("dbname=fossology;host=db.example.org;user=fossy;").unwrap();
        let cfg = SuperuserConfig {
            user: Some("admin".into()),
            password_file: Some(f.clone()),
            ..Default::default()
        };
        let e = Superuser::resolve(&cfg, &db).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let su = Superuser::resolve(&cfg, &db).unwrap();
        let d = su.describe();
        assert!(
            d.contains("role admin") && d.contains("db.example.org"),
            "{d}"
        );
        assert!(!d.contains("s3cret") && !format!("{su:?}").contains("s3cret"));
        let (cmd, _env) = su.command("pg_dumpall", &["-l", "fossology"]).unwrap();
        assert!(!format!("{cmd:?}").contains("s3cret"));
    }

    #[test]
    fn socket_dir_comes_from_config_or_db_conf() {
        let dir = tempfile::tempdir().unwrap();
        let db = DbConf::parse(&format!(
            "dbname=fossology;host={};port=6543;user=fossy;",
            dir.path().display()
        ))
        .unwrap();
        // No socket there yet: nothing found (unless a server really listens on 6543).
        std::fs::write(dir.path().join(".s.PGSQL.6543"), "").unwrap();
        match Superuser::resolve(&SuperuserConfig::default(), &db).unwrap() {
            Superuser::Peer {
                socket_dir, port, ..
            } => {
                assert_eq!(socket_dir, dir.path());
                assert_eq!(port, 6543);
            }
            other => panic!("{other:?}"),
        }
    }
}
