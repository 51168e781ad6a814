//! Sending: every message is first written to the outbox folder (`<id>.eml` with its
//! envelope in `<id>.json`, lettre's file transport), then the outbox is flushed over SMTP
//! when `[notify.smtp]` is set. A message leaves the outbox only after the SMTP server
//! accepted it, so when the server is down messages wait and go out on the next run; nothing
//! is lost. A message the server refuses for good (5xx) moves to `outbox/rejected/`.
//! Without SMTP the outbox is the delivery (the embedded default): another program may pick
//! the files up.

use lettre::message::{header::ContentType, Mailbox, Mailboxes};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{FileTransport, Message, SmtpTransport, Transport};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[notify.smtp]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 with STARTTLS, 465 with TLS, 25 without.
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (loopback relays only).
    pub security: String,
    pub username: Option<String>,
    /// File holding the SMTP password (mode 0600); never logged.
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust, e.g. a site CA or a test server's certificate.
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> SmtpConfig {
        SmtpConfig {
            host: "localhost".into(),
            port: None,
            security: "starttls".into(),
            username: None,
            password_file: None,
            ca_file: None,
            timeout_secs: 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("outbox {path}: {source} (check [notify] outbox and its permissions)")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SMTP settings: {0} (fix [notify.smtp])")]
    Config(String),
    #[error("message for {to}: {why}")]
    Message { to: String, why: String },
    #[error("cannot write the message to the outbox {path}: {why}")]
    Queue { path: PathBuf, why: String },
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// What a flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Flush {
    pub sent: usize,
    pub waiting: usize,
    pub rejected: usize,
    /// Why messages are still waiting (the SMTP server's error), for the log.
    pub error: Option<String>,
}

pub struct Mailer {
    outbox: PathBuf,
    files: FileTransport,
    smtp: Option<(String, SmtpTransport)>,
}

fn build_smtp(c: &SmtpConfig) -> Result<(String, SmtpTransport), MailError> {
    let host = c.host.trim();
    if host.is_empty() {
        return Err(MailError::Config("host is empty".into()));
    }
    let tls = || -> Result<TlsParameters, MailError> {
        let mut b = TlsParameters::builder(host.to_string());
        if let Some(ca) = &c.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| MailError::Config(format!("ca_file {}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| MailError::Config(format!("ca_file {}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| MailError::Config(e.to_string()))
    };
    let (tls, port) = match c.security.trim().to_ascii_lowercase().as_str() {
        "starttls" | "" => (Tls::Required(tls()?), 587),
        "tls" | "ssl" | "smtps" => (Tls::Wrapper(tls()?), 465),
        "none" => (Tls::None, 25),
        other => {
            return Err(MailError::Config(format!(
                "security {other:?}: use starttls, tls or none"
            )))
        }
    };
    let port = c.port.unwrap_or(port);
    let mut b = SmtpTransport::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(c.timeout_secs.max(1))));
    if let Some(user) = &c.username {
        let pw = match &c.password_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| MailError::Config(format!("password_file {}: {e}", p.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            None => {
                return Err(MailError::Config(
                    "username is set but password_file is not".into(),
                ))
            }
        };
        b = b.credentials(Credentials::new(user.clone(), pw));
    }
    Ok((format!("{host}:{port}"), b.build()))
}

impl Mailer {
    pub fn new(outbox: &Path, smtp: Option<&SmtpConfig>) -> Result<Mailer, MailError> {
        std::fs::create_dir_all(outbox).map_err(|source| MailError::Outbox {
            path: outbox.into(),
            source,
        })?;
        Ok(Mailer {
            outbox: outbox.into(),
            files: FileTransport::with_envelope(outbox),
            smtp: smtp.map(build_smtp).transpose()?,
        })
    }

    /// Builds the message (bad addresses are skipped and returned as notes).
    pub fn build(m: &Mail) -> Result<(Message, Vec<String>), MailError> {
        let err = |why: String| MailError::Message {
            to: m.to.join(", "),
            why,
        };
        let from: Mailbox = m
            .from
            .parse()
            .map_err(|e| err(format!("sender {:?}: {e}", m.from)))?;
        let mut notes = Vec::new();
        let mut to = Mailboxes::new();
        for a in &m.to {
            match a.parse::<Mailbox>() {
                Ok(mb) => to.push(mb),
                Err(e) => notes.push(format!("skipped recipient {a:?}: {e}")),
            }
        }
        if to.iter().next().is_none() {
            return Err(err("no valid recipient".into()));
        }
        let msg = Message::builder()
            .from(from)
            .mailbox(lettre::message::header::To::from(to))
            .subject(m.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| err(e.to_string()))?;
        Ok((msg, notes))
    }

    /// Writes the message to the outbox; returns its id and notes about skipped addresses.
    pub fn queue(&self, m: &Mail) -> Result<(String, Vec<String>), MailError> {
        let (msg, notes) = Self::build(m)?;
        let id = self.files.send(&msg).map_err(|e| MailError::Queue {
            path: self.outbox.clone(),
            why: e.to_string(),
        })?;
        Ok((id.to_string(), notes))
    }

    /// Ids of the messages waiting in the outbox, oldest first.
    pub fn waiting(&self) -> Vec<String> {
        let mut v: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&self.outbox)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let p = e.path();
                        let id = p.file_name()?.to_str()?.strip_suffix(".eml")?.to_string();
                        let t = e.metadata().ok()?.modified().ok()?;
                        Some((t, id))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Sends what waits in the outbox over SMTP. Stops at the first connection problem
    /// (the rest waits for the next run).
    pub fn flush(&self) -> Flush {
        let ids = self.waiting();
        let Some((server, smtp)) = &self.smtp else {
            return Flush {
                waiting: ids.len(),
                ..Default::default()
            };
        };
        let mut f = Flush::default();
        for (i, id) in ids.iter().enumerate() {
            let (env, raw) = match self.files.read(id) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("outbox message {id} is unreadable, moved aside: {e}");
                    self.set_aside(id);
                    f.rejected += 1;
                    continue;
                }
            };
            match smtp.send_raw(&env, &raw) {
                Ok(_) => {
                    let _ = std::fs::remove_file(self.outbox.join(format!("{id}.eml")));
                    let _ = std::fs::remove_file(self.outbox.join(format!("{id}.json")));
                    f.sent += 1;
                }
                Err(e) if e.is_permanent() => {
                    tracing::warn!("SMTP server {server} refused message {id} for good, moved to outbox/rejected: {e}");
                    self.set_aside(id);
                    f.rejected += 1;
                }
                Err(e) => {
                    f.waiting = ids.len() - i;
                    f.error = Some(format!(
                        "SMTP server {server}: {e}; {} message(s) wait in {} for the next run",
                        f.waiting,
                        self.outbox.display()
                    ));
                    break;
                }
            }
        }
        f
    }

    fn set_aside(&self, id: &str) {
        let dir = self.outbox.join("rejected");
        let _ = std::fs::create_dir_all(&dir);
        for ext in ["eml", "json"] {
            let name = format!("{id}.{ext}");
            let _ = std::fs::rename(self.outbox.join(&name), dir.join(&name));
        }
    }
}
