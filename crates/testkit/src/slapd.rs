//! A real OpenLDAP `slapd` on a loopback port, with the stoney schema and example tree that
//! holdfast ships in `crates/server/ldap/`. The database is filled with `slapadd` before the
//! server starts (fast, no bind needed); the root DN may read and write everything.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The folder with `stoney.schema`, `stoney.ldif` (cn=config form) and `example.ldif`.
pub fn ldap_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../server/ldap"))
}

/// Base DN of the shipped example tree.
pub const BASE: &str = "dc=stoney-cloud,dc=org";
/// Root DN of the test server.
pub const ROOT_DN: &str = "cn=admin,dc=stoney-cloud,dc=org";

pub struct Slapd {
    pub dir: PathBuf,
    pub port: u16,
    /// `ldap://127.0.0.1:<port>/`
    pub url: String,
    pub base: String,
    pub bind_dn: String,
    /// File holding the root DN's password (mode 0600), as `[server] password_file` wants.
    pub password_file: PathBuf,
    child: Option<Child>,
}

impl Slapd {
    /// Starts slapd in `dir` with the shipped schema and `example.ldif`.
    pub fn start(dir: &Path) -> Result<Slapd> {
        Self::start_with(dir, &[ldap_dir().join("example.ldif")])
    }

    /// Starts slapd in `dir` with the shipped schema, loaded with the given LDIF files in order.
    pub fn start_with(dir: &Path, ldifs: &[PathBuf]) -> Result<Slapd> {
        crate::require("slapd");
        let slapadd = crate::require("slapadd");
        std::fs::create_dir_all(dir.join("db"))?;
        let dir = dir.canonicalize()?;
        let password = format!("pw-{}", crate::tag());
        let password_file = dir.join("ldap.secret");
        std::fs::write(&password_file, format!("{password}\n"))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))?;
        }
        let schema = ldap_dir().join("stoney.schema").canonicalize()?;
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include {schema}\n\
             pidfile {d}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             maxsize 67108864\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {password}\n\
             directory {d}/db\n",
            schema = schema.display(),
            d = dir.display()
        );
        let conf_path = dir.join("slapd.conf");
        std::fs::write(&conf_path, conf)?;
        for ldif in ldifs {
            let out = Command::new(&slapadd)
                .arg("-q")
                .arg("-f")
                .arg(&conf_path)
                .arg("-l")
                .arg(ldif)
                .output()
                .context("run slapadd")?;
            if !out.status.success() {
                bail!(
                    "slapadd {} failed: {}",
                    ldif.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let port = holdfast_sandbox::cluster::free_port();
        let url = format!("ldap://127.0.0.1:{port}/");
        let mut s = Slapd {
            dir,
            port,
            url,
            base: BASE.into(),
            bind_dn: ROOT_DN.into(),
            password_file,
            child: None,
        };
        s.run()?;
        Ok(s)
    }

    /// Stops slapd and starts it again on the same port with the same data (a restart an
    /// LDAP client has to survive).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.run()
    }

    /// Starts slapd on this instance's port and waits until a root bind succeeds.
    fn run(&mut self) -> Result<()> {
        let s = self;
        let port = s.port;
        s.child = Some(
            Command::new(crate::require("slapd"))
                .arg("-f")
                .arg(s.dir.join("slapd.conf"))
                .arg("-h")
                .arg(&s.url)
                .args(["-d", "0"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(s.dir.join("slapd.log"))?)
                .spawn()
                .context("start slapd")?,
        );
        let until = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(Ok(Some(st))) = s.child.as_mut().map(|c| c.try_wait()) {
                bail!(
                    "slapd exited ({st}): {}",
                    std::fs::read_to_string(s.dir.join("slapd.log")).unwrap_or_default()
                );
            }
            if Instant::now() > until {
                bail!(
                    "slapd did not listen on port {port}: {}",
                    std::fs::read_to_string(s.dir.join("slapd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // A listening port is not a serving slapd (and a connect to a free ephemeral port can
        // meet itself): ready means a root bind succeeds.
        let pw = s.password_file_no_newline()?;
        loop {
            let ok = Command::new(crate::require("ldapwhoami"))
                .args(["-x", "-H", &s.url, "-D", &s.bind_dn, "-y"])
                .arg(&pw)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("run ldapwhoami")?
                .success();
            if ok {
                return Ok(());
            }
            if Instant::now() > until {
                bail!(
                    "slapd on port {port} did not accept a root bind: {}",
                    std::fs::read_to_string(s.dir.join("slapd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (to test what happens when LDAP is down). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `ldapsearch` as the root DN and returns its LDIF output (for cross-checks that
    /// do not go through holdfast's own client).
    pub fn ldapsearch(&self, filter: &str, attrs: &[&str]) -> Result<String> {
        let out = Command::new(crate::require("ldapsearch"))
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url, "-D"])
            .arg(&self.bind_dn)
            .arg("-y")
            .arg(self.password_file_no_newline()?)
            .args(["-b", &self.base, filter])
            .args(attrs)
            .output()
            .context("run ldapsearch")?;
        if !out.status.success() {
            bail!(
                "ldapsearch failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    // ldapsearch -y uses the file's bytes verbatim, newline included.
    fn password_file_no_newline(&self) -> Result<PathBuf> {
        let p = self.dir.join("ldap.secret.raw");
        if !p.exists() {
            let pw = std::fs::read_to_string(&self.password_file)?;
            std::fs::write(&p, pw.trim_end())?;
        }
        Ok(p)
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
