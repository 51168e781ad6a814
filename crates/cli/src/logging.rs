//! Where log lines go: stderr for the person at the terminal, and the system log (journald with
//! native fields, else syslog through /dev/log) for the operator who reads it the next morning.
//!
//! The two have separate filters on purpose: `-q` silences stderr (cron mails nothing when a
//! run succeeds) but never the system log, which always gets every warning and error and the
//! one result line per run ([`result`]). Colour goes to stderr only when it is a terminal.

use std::io::IsTerminal;
use std::os::unix::net::UnixDatagram;
use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::{fmt, prelude::*, EnvFilter, Layer};

/// The classic syslog socket (journald serves it too where it runs).
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// Every system-log line carries this identifier (`journalctl -t holdfast`).
pub const IDENTIFIER: &str = "holdfast";
/// The target of the one result line per run; kept off stderr, where `exit::report` speaks.
pub const RESULT_TARGET: &str = "holdfast::result";

/// The span around a whole run (fields `command`, `site`, `snapshot`).
pub const RUN_SPAN: &str = "holdfast";

/// Where the system-log layer ended up writing (for `-vv` and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemLog {
    Off,
    Journald,
    Syslog,
}

/// `default` is the stderr filter with neither -v nor -q (HOLDFAST_LOG overrides it).
/// `syslog` asks for the system log; it is also used, without asking, when systemd runs us
/// with stderr connected to the journal (`JOURNAL_STREAM`), so units get native priorities.
pub fn init(verbose: u8, quiet: bool, syslog: bool, default: &str) -> SystemLog {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => default,
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "debug,holdfast=trace",
    };
    let stderr_filter =
        EnvFilter::try_from_env("HOLDFAST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let under_journal = stderr_is_journal();
    let want_system = syslog || under_journal;
    // The system log keeps steps (info) and above from holdfast, warnings from libraries,
    // whatever -q says; -vv adds debug there too.
    let system_level = if verbose >= 2 {
        "warn,holdfast=debug"
    } else {
        "warn,holdfast=info"
    };
    let journald = want_system
        .then(|| {
            tracing_journald::layer().ok().map(|l| {
                use tracing_journald::{Priority, PriorityMappings};
                // Same severities as the syslog writer: info is informational, not notice.
                l.with_syslog_identifier(IDENTIFIER.into())
                    .with_field_prefix(Some("HOLDFAST".into()))
                    .with_priority_mappings(PriorityMappings {
                        info: Priority::Informational,
                        debug: Priority::Debug,
                        ..PriorityMappings::new()
                    })
            })
        })
        .flatten();
    let kind = match (&journald, want_system) {
        (Some(_), _) => SystemLog::Journald,
        (None, true) => SystemLog::Syslog,
        (None, false) => SystemLog::Off,
    };
    let syslog_layer = (kind == SystemLog::Syslog).then(|| {
        fmt::layer()
            .with_writer(SyslogWriters)
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .with_filter(EnvFilter::new(system_level))
    });
    let journald = journald.map(|l| l.with_filter(EnvFilter::new(system_level)));
    // Under systemd with the native layer on, stderr would only repeat every line at info.
    let stderr = (!(under_journal && kind == SystemLog::Journald)).then(|| {
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
            .without_time()
            .with_filter(stderr_filter)
            // The run's span (command, site) is for the system log; the terminal knows.
            .with_filter(filter_fn(|m| {
                m.target() != RESULT_TARGET && !(m.is_span() && m.name() == RUN_SPAN)
            }))
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(journald)
        .with(syslog_layer)
        .try_init();
    kind
}

/// True when systemd connected our stderr to the journal: `JOURNAL_STREAM` names the
/// device and inode of that stream, and they match fd 2 (not inherited by a child that
/// redirected it).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// The one line per run the system log always gets: the command, its result and exit code,
/// and the error on failure (at error priority, so `journalctl -p err` shows every failed run).
/// The word for an exit code in result lines and metrics.
pub fn outcome(code: u8) -> &'static str {
    match code {
        0 => "success",
        3 => "incomplete",
        4 => "locked",
        130 => "interrupted",
        _ => "failure",
    }
}

pub fn result(command: &str, code: u8, secs: f64, error: Option<&str>) {
    let outcome = outcome(code);
    match error {
        None if code == 0 => tracing::info!(
            target: RESULT_TARGET,
            result = outcome,
            exit_code = code,
            secs,
            "holdfast {command}: success"
        ),
        // Not a success: `journalctl -p err` lists every run that was not.
        None => tracing::error!(
            target: RESULT_TARGET,
            result = outcome,
            exit_code = code,
            secs,
            "holdfast {command}: {outcome} (exit code {code})"
        ),
        Some(e) => tracing::error!(
            target: RESULT_TARGET,
            result = outcome,
            exit_code = code,
            secs,
            error = e,
            "holdfast {command}: {outcome}: {e}"
        ),
    }
}

/// Makes one syslog datagram per log line, with the line's own priority.
struct SyslogWriters;

impl<'a> fmt::MakeWriter<'a> for SyslogWriters {
    type Writer = SyslogWriter;
    fn make_writer(&'a self) -> SyslogWriter {
        SyslogWriter::new(Level::INFO)
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogWriter {
        SyslogWriter::new(*meta.level())
    }
}

/// Collects one formatted line and sends it to /dev/log on drop (RFC 3164 framing,
/// facility daemon).
struct SyslogWriter {
    level: Level,
    buf: Vec<u8>,
}

impl SyslogWriter {
    fn new(level: Level) -> Self {
        SyslogWriter {
            level,
            buf: Vec::new(),
        }
    }
}

/// syslog severity for a tracing level (err 3, warning 4, info 6, debug 7).
pub fn severity(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl std::io::Write for SyslogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        // daemon(3) * 8 + severity
        let msg = format!(
            "<{}>{IDENTIFIER}[{}]: {}",
            24 + severity(self.level),
            std::process::id(),
            text
        );
        if let Ok(sock) = UnixDatagram::unbound() {
            let _ = sock.send_to(msg.as_bytes(), SYSLOG_SOCKET);
        }
    }
}
