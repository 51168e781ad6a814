//! Log lines to stderr (and optionally syslog/journald through /dev/log).

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// `default` is the filter with neither -v nor -q (HOLDFAST_LOG overrides all three).
pub fn init(verbose: u8, quiet: bool, syslog: bool, default: &str) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => default,
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = EnvFilter::try_from_env("HOLDFAST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time();
    let sys = syslog.then(|| {
        fmt::layer()
            .with_writer(SyslogWriter::default)
            .with_ansi(false)
            .with_target(false)
            .without_time()
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(sys)
        .try_init();
}

/// Writes each log line as one datagram to /dev/log (RFC 3164 framing, facility daemon).
#[derive(Default)]
struct SyslogWriter {
    buf: Vec<u8>,
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
        // priority: daemon(3)*8 + info(6)
        let msg = format!("<30>holdfast[{}]: {}", std::process::id(), text);
        if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
            let _ = sock.send_to(msg.as_bytes(), "/dev/log");
        }
    }
}
