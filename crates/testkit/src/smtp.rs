//! A real SMTP server on a loopback port (Python's `aiosmtpd`), storing every message it
//! receives as `<n>.eml` plus `<n>.json` (envelope sender and recipients, decoded subject
//! and text body with `\n` line ends, whether the session used TLS and who authenticated).
//!
//! Optionally it offers STARTTLS with a throwaway self-signed certificate for 127.0.0.1
//! (`cert_pem()` for the client to trust) and requires AUTH (PLAIN/LOGIN) after STARTTLS.
//! `stop()` and `restart()` simulate an outage on the same port; `refuse()` makes it answer
//! `550` to chosen recipients (a dead mailbox).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = r#"
import asyncio, json, os, sys, ssl, threading, email, email.policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, store = int(sys.argv[1]), sys.argv[2]
cert, key, user, password = (sys.argv[3:7] + ["", "", "", ""])[:4]
os.makedirs(store, exist_ok=True)

refuse = os.path.join(os.path.dirname(store), "refuse")

def dead():
    try:
        with open(refuse) as f:
            return f.read().split()
    except FileNotFoundError:
        return []

class Store:
    n = 0
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address in dead():
            return "553 5.1.8 <%s>: sender address rejected" % address
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in dead():
            return "550 5.1.1 <%s>: user unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        Store.n += 1
        base = os.path.join(store, "%04d-%d" % (Store.n, os.getpid()))
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        info = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["From"] or ""),
            "to": str(msg["To"] or ""),
            "subject": str(msg["Subject"] or ""),
            # Line ends as written (the wire uses CRLF), one final newline.
            "body": (body.get_content().replace("\r\n", "\n").rstrip("\n") + "\n") if body is not None else "",
            "tls": session.ssl is not None,
            "auth": (session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None),
        }
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        os.rename(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump(info, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 OK stored"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
        and auth_data.password.decode() == password
    return AuthResult(success=ok, auth_data=auth_data, handled=False)

kw = {}
if cert:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kw.update(tls_context=ctx, require_starttls=True)
if user:
    kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(cert))
c = Controller(Store(), hostname="127.0.0.1", port=port, **kw)
c.start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// Options: plain SMTP by default; `tls` adds STARTTLS (required), `auth` requires a login.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    pub tls: bool,
    pub auth: Option<(String, String)>,
}

pub struct Smtp {
    pub dir: PathBuf,
    pub port: u16,
    pub opts: SmtpOptions,
    child: Option<Child>,
}

fn python() -> PathBuf {
    // Debian's python3-aiosmtpd lives with the system interpreter, not a pyenv one.
    let sys = PathBuf::from("/usr/bin/python3");
    if sys.is_file() {
        sys
    } else {
        crate::require("python3")
    }
}

impl Smtp {
    /// Starts the server in `dir`; messages are stored in `dir/messages`.
    pub fn start(dir: &Path, opts: SmtpOptions) -> Result<Smtp> {
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize()?;
        std::fs::write(dir.join("smtpd.py"), SERVER)?;
        if opts.tls {
            let st = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost",
                ])
                .arg("-keyout")
                .arg(dir.join("key.pem"))
                .arg("-out")
                .arg(dir.join("cert.pem"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("openssl")?;
            if !st.success() {
                bail!("openssl could not make a test certificate");
            }
        }
        let mut s = Smtp {
            dir,
            port: holdfast_sandbox::cluster::free_port(),
            opts,
            child: None,
        };
        s.restart()?;
        Ok(s)
    }

    /// The folder where received messages land.
    pub fn messages_dir(&self) -> PathBuf {
        self.dir.join("messages")
    }

    /// The server certificate (PEM) when STARTTLS is on.
    pub fn cert_pem(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// Answers `550 user unknown` to these recipient addresses, and `553 sender address
    /// rejected` to these senders, from now on (replacing any earlier list).
    pub fn refuse(&self, addresses: &[&str]) {
        std::fs::write(self.dir.join("refuse"), addresses.join("\n")).unwrap();
    }

    /// Stops the server (connections are refused until `restart`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let mut cmd = Command::new(python());
        cmd.arg(self.dir.join("smtpd.py"))
            .arg(self.port.to_string())
            .arg(self.messages_dir());
        let (cert, key) = if self.opts.tls {
            (self.cert_pem(), self.dir.join("key.pem"))
        } else {
            (PathBuf::new(), PathBuf::new())
        };
        cmd.arg(cert).arg(key);
        if let Some((u, p)) = &self.opts.auth {
            cmd.arg(u).arg(p);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("smtpd.log"))?)
            .spawn()
            .context("start aiosmtpd (install python3-aiosmtpd)")?;
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                bail!(
                    "aiosmtpd exited ({st}): {}",
                    std::fs::read_to_string(self.dir.join("smtpd.log")).unwrap_or_default()
                );
            }
            if Instant::now() > until {
                bail!("aiosmtpd did not listen on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Every message received so far (the JSON summaries), oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.messages_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}
