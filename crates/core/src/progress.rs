//! Progress of the long phases (copy, verify, restore, waiting for agents): an indicatif bar
//! with rate and ETA when stderr is a terminal, otherwise an `info` log line every
//! [`LOG_EVERY`] (cron mail, journald and log files get a few lines, not a bar's redraws).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a log line is written when there is no terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(15);

static BARS: AtomicBool = AtomicBool::new(true);

/// Turns bars off (`-q`, `--json`); log lines still follow the log level.
pub fn set_bars(on: bool) {
    BARS.store(on, Ordering::SeqCst);
}

/// Counted in bytes (shown as sizes and a byte rate) or in items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Items,
}

pub struct Progress {
    what: String,
    unit: Unit,
    total: AtomicU64,
    done: AtomicU64,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// A phase of `total` units (0 when unknown).
    pub fn new(what: &str, total: u64, unit: Unit) -> Progress {
        let bar = (BARS.load(Ordering::SeqCst) && std::io::stderr().is_terminal()).then(|| {
            let template = match unit {
                Unit::Bytes => "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                Unit::Items => "{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
            };
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_message(what.to_string());
            b
        });
        Progress {
            what: what.to_string(),
            unit,
            total: AtomicU64::new(total),
            done: AtomicU64::new(0),
            bar,
            started: Instant::now(),
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// A spinner-like phase with no known size (waiting for agents): log lines only.
    pub fn waiting(what: &str) -> Progress {
        Progress::new(what, 0, Unit::Items)
    }

    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.show(done);
    }

    pub fn set(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.show(done);
    }

    /// The size once it is known (rsync says it after its file list).
    pub fn set_total(&self, total: u64) {
        if self.total.swap(total, Ordering::Relaxed) != total {
            if let Some(b) = &self.bar {
                b.set_length(total);
            }
        }
    }

    pub fn set_message(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{} {msg}", self.what));
        }
    }

    fn show(&self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < LOG_EVERY {
            return;
        }
        *last = Instant::now();
        tracing::info!("{}", self.line(done));
    }

    /// `what: 1.2 GiB of 4.0 GiB (30%), 85.0 MiB/s, about 33 s left`.
    pub fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let amount = |n: u64| match self.unit {
            Unit::Bytes => crate::bytes::human_bytes(n),
            Unit::Items => n.to_string(),
        };
        let rate = match self.unit {
            Unit::Bytes => crate::bytes::human_rate(done, secs),
            Unit::Items if secs > 0.0 => format!("{:.0}/s", done as f64 / secs),
            Unit::Items => "-".into(),
        };
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 {
            return format!(
                "{}: {} so far, {rate}, {secs:.0} s",
                self.what,
                amount(done)
            );
        }
        let pct = done as f64 * 100.0 / total as f64;
        let eta = if done > 0 && done < total {
            let left = secs * (total - done) as f64 / done as f64;
            format!(", about {left:.0} s left")
        } else {
            String::new()
        };
        format!(
            "{}: {} of {} ({pct:.0}%), {rate}{eta}",
            self.what,
            amount(done),
            amount(total)
        )
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_rate_and_eta() {
        let p = Progress::new("verify current", 4096, Unit::Bytes);
        std::thread::sleep(Duration::from_millis(20));
        let l = p.line(1024);
        assert!(
            l.starts_with("verify current: 1.0 KiB of 4.0 KiB (25%), "),
            "{l}"
        );
        assert!(l.contains("/s") && l.contains("s left"), "{l}");
    }
}
