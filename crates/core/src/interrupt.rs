//! Ctrl-C, SIGTERM and SIGHUP become a flag that long work polls, so every path out of a
//! backup runs its clean-up (restarting the scheduler) instead of dying mid-way.
//!
//! The handlers only set an atomic (`signal_hook::flag::register`). A second signal of the
//! same kind while the first is being handled does not kill holdfast either: the clean-up
//! must finish, and SIGKILL remains for an operator who really means it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The signals that ask holdfast to stop.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Registers the stop-signal handlers once; later calls are no-ops.
pub fn install() {
    flag();
}

fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in STOP_SIGNALS {
            if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
                // Only fails for forbidden signals (SIGKILL, SIGSTOP); never for these.
                eprintln!("holdfast: cannot watch signal {sig}: {e}");
            }
        }
        flag
    })
}

/// True once a stop signal arrived (false when [`install`] was never called).
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Sets the flag as a signal would (for a watchdog thread or a test).
pub fn request() {
    flag().store(true, Ordering::SeqCst);
}

/// The one error for "a stop signal ended this": the CLI turns it into exit code 130.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by a signal; cleaned up and stopped")]
pub struct Interrupted;

/// `Err(Interrupted)` once a stop signal arrived.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}

impl From<Interrupted> for std::io::Error {
    fn from(_: Interrupted) -> Self {
        std::io::Error::new(std::io::ErrorKind::Interrupted, Interrupted)
    }
}

/// True when `e` (or its cause chain) is [`Interrupted`].
pub fn is_interrupted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<Interrupted>() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_some_and(|i| i.is::<Interrupted>()) {
                return true;
            }
        }
        cur = c.source();
    }
    false
}
