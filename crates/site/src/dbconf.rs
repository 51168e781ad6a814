//! `Db.conf`: `key=value;` lines that joined make a libpq connection string.
//!
//! The password never leaves this module in a form that could reach a command line or a log:
//! child processes get it through a `PGPASSFILE` that is an anonymous in-memory file
//! ([`DbConf::pg_env`]), and `Debug` and parse errors never show it.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub struct DbConf {
    pub params: BTreeMap<String, String>,
}

impl std::fmt::Debug for DbConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<_, _> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), if k == "password" { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("DbConf").field("params", &shown).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbConfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Syntax { path: PathBuf, why: String },
}

impl DbConf {
    pub fn load(path: &Path) -> Result<Self, DbConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| DbConfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|why| DbConfError::Syntax {
            path: path.to_path_buf(),
            why,
        })
    }

    /// FOSSology skips a line that begins with `#` (a `#` later is part of the value: a
    /// password may hold one), strips all whitespace, then splits on `;`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut params = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            for pair in compact.split(';').filter(|p| !p.is_empty()) {
                // A note after a value's `;` (FOSSology's agents read a line to its first `;`).
                if pair.starts_with('#') {
                    break;
                }
                // The text is never echoed: a broken line may be the password.
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    format!(
                        "line {}: expected key=value; (the line is not shown, it may hold the password)",
                        n + 1
                    )
                })?;
                params.insert(k.to_string(), v.to_string());
            }
        }
        if !params.contains_key("dbname") {
            return Err("no dbname= entry".into());
        }
        Ok(DbConf { params })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
    pub fn dbname(&self) -> &str {
        self.get("dbname").unwrap_or("fossology")
    }
    pub fn user(&self) -> &str {
        self.get("user").unwrap_or("fossy")
    }
    pub fn host(&self) -> &str {
        self.get("host").unwrap_or("localhost")
    }
    pub fn port(&self) -> u16 {
        self.get("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(5432)
    }

    pub fn render(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{k}={v};\n"))
            .collect()
    }

    /// A copy pointing at another database on the same server.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut c = self.clone();
        c.params.insert("dbname".into(), dbname.into());
        c
    }

    /// Connection settings for the `postgres` crate.
    pub fn pg_config(&self) -> postgres::Config {
        let mut c = postgres::Config::new();
        c.dbname(self.dbname()).user(self.user());
        let host = self.host();
        c.host(host).port(self.port());
        if let Some(p) = self.get("password") {
            c.password(p);
        }
        c.connect_timeout(std::time::Duration::from_secs(10));
        c.application_name("holdfast");
        c
    }

    /// Environment for `psql`, `pg_dumpall` and friends. The password goes into a 0600
    /// pgpass file that lives as long as the returned guard.
    pub fn pg_env(&self) -> std::io::Result<PgEnv> {
        let mut vars = vec![
            ("PGHOST".to_string(), self.host().to_string()),
            ("PGPORT".to_string(), self.port().to_string()),
            ("PGUSER".to_string(), self.user().to_string()),
            ("PGDATABASE".to_string(), self.dbname().to_string()),
            ("PGCONNECT_TIMEOUT".to_string(), "10".to_string()),
        ];
        let mut passfd = None;
        if let Some(pw) = self.get("password") {
            let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
            let fd = memfd_pgpass(&format!("*:*:*:{}:{}\n", esc(self.user()), esc(pw)))?;
            vars.push((
                "PGPASSFILE".to_string(),
                format!("/proc/self/fd/{}", fd.as_raw_fd()),
            ));
            passfd = Some(fd);
        }
        Ok(PgEnv { vars, passfd })
    }
}

/// The pgpass text in an anonymous memory file (0600, close-on-exec): it never exists on a
/// disk, and no kill of holdfast can leave it behind. [`PgEnv::apply`] hands it to one child.
fn memfd_pgpass(text: &str) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscalls; the descriptor is owned at once.
    let fd = unsafe { libc::memfd_create(c"holdfast-pgpass".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(fd);
    // libpq ignores a password file that group or others could read.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    Ok(OwnedFd::from(f))
}

/// Environment variables for PostgreSQL client tools; holds the in-memory pgpass.
pub struct PgEnv {
    pub vars: Vec<(String, String)>,
    passfd: Option<OwnedFd>,
}

impl PgEnv {
    /// Sets the variables on `cmd` and lets its process (and its children, such as the
    /// `pg_dump`s of `pg_dumpall`) inherit the pgpass descriptor, which stays close-on-exec
    /// for every other child.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        cmd.env_remove("PGPASSWORD");
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd.arg("--no-password");
        if let Some(fd) = &self.passfd {
            let raw = fd.as_raw_fd();
            // SAFETY: fcntl is async-signal-safe; it touches only this descriptor.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(cmd, move || {
                    if libc::fcntl(raw, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_whitespace_and_comments() {
        let c = DbConf::parse("dbname = fossology;\n host=localhost; # the server\nuser=fossy;\npassword=se cret;\nport=5433;\n").unwrap();
        assert_eq!(c.dbname(), "fossology");
        assert_eq!(c.port(), 5433);
        assert_eq!(c.get("password"), Some("secret"));
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(DbConf::parse(&c.render()).unwrap(), c);
    }

    #[test]
    fn a_hash_inside_a_value_is_part_of_it() {
        let c =
            DbConf::parse("# Db.conf\ndbname=fossology;\nuser=fossy;\npassword=Xk#9q2;\n").unwrap();
        assert_eq!(c.get("password"), Some("Xk#9q2"));
        assert_eq!(DbConf::parse(&c.render()).unwrap(), c);
    }

    #[test]
    fn a_broken_line_is_not_echoed() {
        let e = DbConf::parse("dbname=fossology;\npasswordS3cr3t\n").unwrap_err();
        assert!(!e.contains("S3cr3t"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn the_password_reaches_a_child_from_memory_only() {
        let c = DbConf::parse("dbname=x;user=u;password=p:w").unwrap();
        let env = c.pg_env().unwrap();
        let file = &env.vars.iter().find(|(k, _)| k == "PGPASSFILE").unwrap().1;
        assert!(file.starts_with("/proc/self/fd/"), "{file}");
        // The child (not holdfast) reads it through its own /proc/self.
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg("stat -L -c %a \"$PGPASSFILE\"; cat \"$PGPASSFILE\"");
        env.apply(&mut cmd); // appends --no-password: sh's $0 here
        let out = cmd.output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text, "600\n*:*:*:u:p\\:w\n");
        // A child that was not given it cannot read it.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("cat {file}"))
            .output()
            .unwrap();
        assert!(!out.status.success());
    }

    #[test]
    fn missing_dbname_is_an_error() {
        assert!(DbConf::parse("host=x;").is_err());
    }
}
