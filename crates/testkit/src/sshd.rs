//! A real OpenSSH server on a loopback port, with throwaway host and client keys.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    /// Private key that may log in as any user listed in `authorized_keys`.
    pub client_key: PathBuf,
    child: Child,
}

fn keygen(path: &Path) -> Result<()> {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .context("ssh-keygen")?;
    if !st.success() {
        bail!("ssh-keygen failed");
    }
    Ok(())
}

impl Sshd {
    /// Starts sshd in `dir`; the client key may log in as the user running the tests.
    pub fn start(dir: &Path) -> Result<Sshd> {
        Sshd::start_with(dir, "")
    }

    /// [`Sshd::start`] with `extra` lines of `sshd_config` (such as [`tool_first`]'s).
    pub fn start_with(dir: &Path, extra: &str) -> Result<Sshd> {
        let sshd = crate::require("sshd");
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        std::fs::create_dir_all("/run/sshd").ok();
        keygen(&dir.join("host_key"))?;
        keygen(&dir.join("client_key"))?;
        let pubkey = std::fs::read_to_string(dir.join("client_key.pub"))?;
        std::fs::write(dir.join("authorized_keys"), &pubkey)?;
        let port = holdfast_sandbox::cluster::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys .ssh/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             Subsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 100\n{extra}",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config)?;
        let child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log"))?)
            .spawn()
            .context("start sshd")?;
        let s = Sshd {
            client_key: dir.join("client_key"),
            dir,
            port,
            child,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > until {
                bail!(
                    "sshd did not listen on port {port}: {}",
                    std::fs::read_to_string(s.dir.join("sshd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }

    /// Options for `ssh` (and `rsync -e`) that reach this server without prompts.
    pub fn ssh_args(&self) -> Vec<String> {
        vec![
            "-i".into(),
            self.client_key.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    /// `ssh ...` as one string, for `rsync -e`.
    pub fn ssh_command(&self) -> String {
        format!("ssh {}", self.ssh_args().join(" "))
    }

    pub fn user() -> String {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "root".into())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `sshd_config` line that puts the shell script `script`, as the command `name` in a new
/// folder `dir`, first on the server's PATH: a server whose tools differ from this machine's.
pub fn tool_first(dir: &Path, name: &str, script: &str) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), format!("#!/bin/sh\n{script}"))?;
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755))?;
    Ok(format!(
        "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\n",
        dir.display()
    ))
}
