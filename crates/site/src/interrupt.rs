//! Ctrl-C and SIGTERM become a flag that long work polls, so every path out of a backup
//! runs its clean-up (restarting the scheduler) instead of dying mid-way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Registers SIGINT, SIGTERM and SIGHUP handlers once; later calls are no-ops.
pub fn install() {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let _ = signal_hook_register(sig, flag.clone());
        }
        flag
    });
}

fn signal_hook_register(sig: i32, flag: Arc<AtomicBool>) -> std::io::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let ptr = Arc::into_raw(flag) as usize;
        HANDLER_FLAG.store(ptr, Ordering::SeqCst);
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaction(sig, &act, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

static HANDLER_FLAG: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn on_signal(_sig: i32) {
    let ptr = HANDLER_FLAG.load(Ordering::SeqCst);
    if ptr != 0 {
        // SAFETY: the pointer came from Arc::into_raw and is never freed.
        let flag = unsafe { &*(ptr as *const AtomicBool) };
        flag.store(true, Ordering::SeqCst);
    }
}

/// True once a stop signal arrived.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// An error to return when [`requested`] is seen.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by a signal; cleaned up and stopped")]
pub struct Interrupted;

pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}
