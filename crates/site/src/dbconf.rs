//! `Db.conf`: `key=value;` lines that joined make a libpq connection string.
//!
//! The password never leaves this module in a form that could reach a command line or a log:
//! child processes get it through a private `PGPASSFILE` ([`DbConf::pg_env`]), and `Debug`
//! prints it masked.

use std::collections::BTreeMap;
use std::io::Write;
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

    /// FOSSology strips all whitespace and `#` comments, then splits on `;`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut params = BTreeMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            for pair in compact.split(';').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("expected key=value; found {pair:?}"))?;
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
        let mut passfile = None;
        if let Some(pw) = self.get("password") {
            let mut f = tempfile::Builder::new()
                .prefix("holdfast-pgpass")
                .tempfile()?;
            let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
            writeln!(f, "*:*:*:{}:{}", esc(self.user()), esc(pw))?;
            f.flush()?;
            // tempfile creates 0600 files already; libpq refuses anything looser.
            vars.push((
                "PGPASSFILE".to_string(),
                f.path().to_string_lossy().into_owned(),
            ));
            passfile = Some(f);
        }
        Ok(PgEnv {
            vars,
            _passfile: passfile,
        })
    }
}

/// Environment variables for PostgreSQL client tools; keeps the pgpass file alive.
pub struct PgEnv {
    pub vars: Vec<(String, String)>,
    _passfile: Option<tempfile::NamedTempFile>,
}

impl PgEnv {
    pub fn apply(&self, cmd: &mut std::process::Command) {
        cmd.env_remove("PGPASSWORD");
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd.arg("--no-password");
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
    fn missing_dbname_is_an_error() {
        assert!(DbConf::parse("host=x;").is_err());
    }
}
