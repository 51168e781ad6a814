//! Sending: every message is first written to the outbox folder (`<id>.eml` with its
//! envelope in `<id>.json`, lettre's file transport), then the outbox is flushed over SMTP
//! when `[notify.smtp]` is set. A message leaves the outbox only after the SMTP server
//! accepted it, so when the server is down messages wait and go out on the next run; nothing
//! is lost. A message the server refuses for good (5xx to every recipient, or to its data)
//! moves to `outbox/rejected/`; a recipient refused among others is left out and reported; a refusal of the session itself (connecting, TLS, EHLO, AUTH,
//! MAIL FROM) leaves every message waiting, as an outage does.
//! Without SMTP the outbox is the delivery (the embedded default): another program may pick
//! the files up.

use lettre::address::Envelope;
use lettre::message::{header::ContentType, Mailbox, Mailboxes};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{Certificate, SmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail as MailFrom, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::{FileTransport, Message, Transport};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[notify.smtp]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// The SMTP relay's host name or address.
    pub host: String,
    /// Default: 587 with STARTTLS, 465 with TLS, 25 without.
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (loopback relays only).
    pub security: String,
    /// User to log in as (with `password_file`); unset: no login.
    pub username: Option<String>,
    /// File holding the SMTP password (mode 0600); never logged.
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust, e.g. a site CA or a test server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for the relay before the mails stay in the outbox for the next run.
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
    /// Recipients the server refused for good while the message's other recipients got it
    /// (`address: reply`).
    pub refused: Vec<String>,
    /// Why messages are still waiting (the SMTP server's error), for the log.
    pub error: Option<String>,
}

pub struct Mailer {
    outbox: PathBuf,
    files: FileTransport,
    /// Where a run's messages wait until its state is committed ([`Mailer::publish`]): a
    /// run that dies before that leaves them here, and the next run, which will queue them
    /// again, drops them ([`Mailer::discard_staged`]) instead of sending them twice.
    staged: FileTransport,
    smtp: Option<Smtp>,
}

const STAGING: &str = "staging";

/// The relay and how to open a session with it. holdfast speaks the SMTP transaction itself
/// (lettre's transport reports a refused login like a refused message) so that only replies
/// to a message's own RCPT and DATA can set that message aside.
struct Smtp {
    /// `host:port`, for messages.
    server: String,
    host: String,
    port: u16,
    tls: Tls,
    timeout: Duration,
    credentials: Option<Credentials>,
}

type SmtpError = lettre::transport::smtp::Error;

/// What became of one message in a session.
enum Delivery {
    /// Sent, to all recipients but these (`address: reply`).
    Sent(Vec<String>),
    /// Refused for good: set aside.
    Refused(String),
    /// Refused for now (4xx): it waits for the next run.
    Deferred(String),
    /// The session failed (a network error, or a reply to MAIL FROM): this message and the
    /// rest wait.
    Broken(String),
}

impl Smtp {
    /// Connects, secures and logs in, as lettre's own transport does. Any failure here is
    /// the session's, never a message's.
    fn connect(&self) -> Result<SmtpConnection, SmtpError> {
        let hello = ClientId::default();
        let wrapper = match &self.tls {
            Tls::Wrapper(p) => Some(p),
            _ => None,
        };
        let mut c = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &hello,
            wrapper,
            None,
        )?;
        if let Tls::Required(p) = &self.tls {
            c.starttls(p, &hello)?;
        }
        if let Some(cr) = &self.credentials {
            c.auth(DEFAULT_MECHANISMS, cr)?;
        }
        Ok(c)
    }
}

/// A reply about this message (4xx or 5xx); other errors (network, TLS, a garbled reply) are
/// the session's.
fn judge(e: SmtpError) -> Delivery {
    if e.is_permanent() {
        Delivery::Refused(e.to_string())
    } else if e.is_transient() {
        Delivery::Deferred(e.to_string())
    } else {
        Delivery::Broken(e.to_string())
    }
}

/// One mail transaction on an open session: MAIL FROM, RCPT TO each recipient, DATA.
fn deliver(c: &mut SmtpConnection, env: &Envelope, raw: &[u8]) -> Delivery {
    let mut opts = vec![];
    let non_ascii = env
        .from()
        .into_iter()
        .chain(env.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !c.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Delivery::Refused(
                "an address is not ASCII and the server lacks SMTPUTF8".into(),
            );
        }
        opts.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        if !c.server_info().supports_feature(Extension::EightBitMime) {
            return Delivery::Refused("8-bit message and the server lacks 8BITMIME".into());
        }
        opts.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    // The sender is the message's (a reseller's sstMailFrom, or default_from): a refusal of
    // it keeps this message waiting, not the others. A login the relay wants (530, 535) and
    // a lost connection are the session's.
    if let Err(e) = c.command(MailFrom::new(env.from().cloned(), opts)) {
        let code = e.status().map(|c| c.to_string());
        return match code.as_deref() {
            Some("530") | Some("535") | None => Delivery::Broken(e.to_string()),
            Some(_) => Delivery::Deferred(format!("sender refused: {e}")),
        };
    }
    // One message per side, as queued, and the relay's answer per RCPT decides: a dead
    // address is left out and the others still get it, with no new outbox file and no
    // state per address.
    let mut refused = vec![];
    for to in env.to() {
        match c.command(Rcpt::new(to.clone(), vec![])) {
            Ok(_) => {}
            Err(e) if e.is_permanent() => refused.push(format!("{to}: {e}")),
            Err(e) => return judge(e),
        }
    }
    if refused.len() == env.to().len() {
        return Delivery::Refused(refused.join("; "));
    }
    if let Err(e) = c.command(Data) {
        return judge(e);
    }
    match c.message(raw) {
        Ok(_) => Delivery::Sent(refused),
        Err(e) => judge(e),
    }
}

fn build_smtp(c: &SmtpConfig) -> Result<Smtp, MailError> {
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
    // A password in clear crosses only the machine itself.
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if c.username.is_some() && matches!(tls, Tls::None) && !loopback {
        return Err(MailError::Config(format!(
            "security = \"none\" would send the password for {host} in clear: use starttls \
             or tls, or a relay on this machine (localhost)"
        )));
    }
    let mut credentials = None;
    if let Some(user) = &c.username {
        let pw = match &c.password_file {
            Some(p) => holdfast_core::fs::read_secret(p)
                .map_err(|e| MailError::Config(format!("password_file {}: {e}", p.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
            None => {
                return Err(MailError::Config(
                    "username is set but password_file is not".into(),
                ))
            }
        };
        credentials = Some(Credentials::new(user.clone(), pw));
    }
    Ok(Smtp {
        server: format!("{host}:{port}"),
        host: host.to_string(),
        port,
        tls,
        timeout: Duration::from_secs(c.timeout_secs.max(1)),
        credentials,
    })
}

/// A Message-ID unique to this message: time, process, a counter and randomness from the
/// kernel, at the sender's domain (RFC 5322 3.6.4).
fn message_id(domain: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut rnd = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut rnd));
    format!(
        "<{}.{}.{}.{:016x}@{domain}>",
        now.as_nanos(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        u64::from_le_bytes(rnd)
    )
}

impl Mailer {
    pub fn new(outbox: &Path, smtp: Option<&SmtpConfig>) -> Result<Mailer, MailError> {
        let staging = outbox.join(STAGING);
        std::fs::create_dir_all(&staging).map_err(|source| MailError::Outbox {
            path: staging.clone(),
            source,
        })?;
        Ok(Mailer {
            outbox: outbox.into(),
            files: FileTransport::with_envelope(outbox),
            staged: FileTransport::with_envelope(&staging),
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
        let id = message_id(from.email.domain());
        // lettre adds Date itself, encodes a non-ASCII subject (RFC 2047) and picks 7bit,
        // quoted-printable or base64 for the body; MIME-Version and Message-ID are ours
        let msg = Message::builder()
            .from(from)
            .mailbox(lettre::message::header::To::from(to))
            .subject(m.subject.clone())
            .message_id(Some(id))
            .header(lettre::message::header::MIME_VERSION_1_0)
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| err(e.to_string()))?;
        Ok((msg, notes))
    }

    /// Stages the message for the outbox ([`Mailer::publish`] puts it there); returns its id
    /// and notes about skipped addresses.
    pub fn queue(&self, m: &Mail) -> Result<(String, Vec<String>), MailError> {
        let (msg, notes) = Self::build(m)?;
        let id = self.staged.send(&msg).map_err(|e| MailError::Queue {
            path: self.outbox.join(STAGING),
            why: e.to_string(),
        })?;
        Ok((id.to_string(), notes))
    }

    fn staged_files(&self) -> Result<Vec<std::fs::DirEntry>, MailError> {
        let dir = self.outbox.join(STAGING);
        let err = |source| MailError::Outbox {
            path: dir.clone(),
            source,
        };
        std::fs::read_dir(&dir)
            .map_err(err)?
            .map(|e| e.map_err(err))
            .collect()
    }

    /// Moves the staged messages into the outbox, the `.json` envelope before its `.eml`
    /// (what [`Mailer::waiting`] lists); returns how many.
    pub fn publish(&self) -> Result<usize, MailError> {
        let mut files = self.staged_files()?;
        files.sort_by_key(|e| e.path().extension().is_some_and(|x| x == "eml"));
        let mut n = 0;
        for e in files {
            let to = self.outbox.join(e.file_name());
            std::fs::rename(e.path(), &to).map_err(|source| MailError::Outbox {
                path: to.clone(),
                source,
            })?;
            n += usize::from(to.extension().is_some_and(|x| x == "eml"));
        }
        Ok(n)
    }

    /// Drops what a run that died before committing its state staged; returns how many
    /// messages.
    pub fn discard_staged(&self) -> Result<usize, MailError> {
        let mut n = 0;
        for e in self.staged_files()? {
            let p = e.path();
            std::fs::remove_file(&p).map_err(|source| MailError::Outbox {
                path: p.clone(),
                source,
            })?;
            n += usize::from(p.extension().is_some_and(|x| x == "eml"));
        }
        Ok(n)
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

    /// Sends what waits in the outbox over SMTP, in one session. A failure of the session
    /// stops the flush (the rest waits for the next run); a message's own refusal sets only
    /// that message aside.
    pub fn flush(&self) -> Flush {
        let ids = self.waiting();
        let Some(smtp) = &self.smtp else {
            return Flush {
                waiting: ids.len(),
                ..Default::default()
            };
        };
        let mut f = Flush::default();
        if ids.is_empty() {
            return f;
        }
        let server = &smtp.server;
        let mut why = None;
        let mut conn = match smtp.connect() {
            Ok(c) => c,
            Err(e) => {
                f.waiting = ids.len();
                why = Some(e.to_string());
                return self.waits(f, server, why);
            }
        };
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
            match deliver(&mut conn, &env, &raw) {
                Delivery::Sent(refused) => {
                    let _ = std::fs::remove_file(self.outbox.join(format!("{id}.eml")));
                    let _ = std::fs::remove_file(self.outbox.join(format!("{id}.json")));
                    f.sent += 1;
                    for r in refused {
                        tracing::warn!("SMTP server {server} refused recipient {r} of message {id}; the other recipients got it");
                        f.refused.push(r);
                    }
                    continue;
                }
                Delivery::Refused(e) => {
                    tracing::warn!("SMTP server {server} refused message {id} for good, moved to outbox/rejected: {e}");
                    self.set_aside(id);
                    f.rejected += 1;
                }
                Delivery::Deferred(e) => {
                    tracing::warn!("SMTP server {server} deferred message {id}: {e}");
                    f.waiting += 1;
                    why.get_or_insert(e);
                }
                Delivery::Broken(e) => {
                    f.waiting += ids.len() - i;
                    why = Some(e);
                    conn.abort();
                    return self.waits(f, server, why);
                }
            }
            // a refused transaction is ended before the next one
            if let Err(e) = conn.command(Rset) {
                f.waiting += ids.len() - i - 1;
                why = Some(e.to_string());
                conn.abort();
                return self.waits(f, server, why);
            }
        }
        let _ = conn.quit();
        self.waits(f, server, why)
    }

    /// Says why messages still wait (the run is then incomplete).
    fn waits(&self, mut f: Flush, server: &str, why: Option<String>) -> Flush {
        if f.waiting > 0 {
            f.error = Some(format!(
                "SMTP server {server}: {}; {} message(s) wait in {} for the next run",
                why.unwrap_or_default(),
                f.waiting,
                self.outbox.display()
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_stays_private_and_off_the_wire_in_clear() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let pw = d.path().join("smtp.secret");
        std::fs::write(&pw, "s3cret\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let cfg = |host: &str, security: &str| SmtpConfig {
            host: host.into(),
            security: security.into(),
            username: Some("backup".into()),
            password_file: Some(pw.clone()),
            ..Default::default()
        };
        let e = build_smtp(&cfg("mail.example.org", "starttls"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(build_smtp(&cfg("mail.example.org", "starttls")).is_ok());
        let e = build_smtp(&cfg("mail.example.org", "none")).err().unwrap();
        assert!(e.to_string().contains("in clear"), "{e}");
        for host in ["localhost", "127.0.0.1", "::1"] {
            assert!(build_smtp(&cfg(host, "none")).is_ok(), "{host}");
        }
    }

    #[test]
    fn messages_carry_the_headers_mail_clients_expect() {
        let m = Mail {
            from: "Rückversicherung Backup <backup@ruck.example>".into(),
            to: vec![
                "Anna Müller <anna@x.example>".into(),
                "not an address".into(),
            ],
            subject: "Datensicherung läuft nicht".into(),
            body: "Grüezi Anna\n\nIhre Sicherung für »pc« fehlt.\n".into(),
        };
        let (msg, notes) = Mailer::build(&m).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        let text = String::from_utf8(msg.formatted()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        for h in [
            "MIME-Version: 1.0\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Message-ID: <",
            "Date: ",
            "Subject: Datensicherung =?utf-8?b?",
        ] {
            assert!(head.contains(h), "{h:?} missing in\n{head}");
        }
        assert!(head.contains("Content-Transfer-Encoding: "));
        assert!(
            head.is_ascii() && body.is_ascii(),
            "8-bit text left unencoded"
        );
        let (again, _) = Mailer::build(&m).unwrap();
        let id = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("Message-ID:"))
                .unwrap()
                .to_string()
        };
        let text2 = String::from_utf8(again.formatted()).unwrap();
        assert_ne!(id(&text), id(&text2), "every message its own id");
        assert!(id(&text).ends_with("@ruck.example>"), "{}", id(&text));
    }
}
