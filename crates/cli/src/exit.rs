#![allow(dead_code)] // some helpers are used only by commands still being built
//! Exit codes scripts can rely on, and the one-line error report.

use std::process::ExitCode;

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
pub const INCOMPLETE: u8 = 3;
pub const LOCKED: u8 = 4;
pub const INTERRUPTED: u8 = 130;

/// An error that carries its own exit code (incomplete restore, lock held).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    pub code: u8,
    pub message: String,
}

pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

/// The number behind an exit code a command returned (std keeps it opaque).
pub fn number(code: ExitCode) -> u8 {
    [OK, FAILURE, 2, INCOMPLETE, LOCKED, INTERRUPTED]
        .into_iter()
        .find(|&n| ExitCode::from(n) == code)
        .unwrap_or(FAILURE)
}

/// `-q`: whatever a command prints to stdout goes to /dev/null, so a successful run under
/// cron prints nothing (errors still go to stderr, log lines to the system log).
pub fn silence_stdout() {
    use std::os::fd::AsRawFd;
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1 only replaces what stdout points at; `null` stays valid
        // for the call and is closed after.
        unsafe {
            libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO);
        }
    }
}

/// Prints `holdfast: <error>` on one line (the cause chain with -v) and picks the exit code;
/// returns the code and the line (for the system log).
pub fn report(e: &anyhow::Error, verbose: u8) -> (u8, String) {
    let mut line = e.to_string();
    if verbose > 0 {
        for cause in e.chain().skip(1) {
            line.push_str(&format!("\n  caused by: {cause}"));
        }
    } else if let Some(root) = e.chain().skip(1).last() {
        // The root cause usually names the file or server; keep it on the same line.
        let root = root.to_string();
        if !line.contains(&root) {
            line.push_str(&format!(": {root}"));
        }
    }
    eprintln!("holdfast: {line}");
    // A signal that arrived during the run is why it failed, whatever error a killed child
    // (pg_dumpall, rsync) left behind: exit 130 as shells expect after Ctrl-C.
    let code = if let Some(c) = e.downcast_ref::<CodedError>() {
        c.code
    } else if holdfast_core::interrupt::requested()
        || e.chain()
            .any(|c| c.is::<holdfast_core::interrupt::Interrupted>())
    {
        INTERRUPTED
    } else {
        FAILURE
    };
    (code, line)
}

/// Prints `text` to stdout. A reader that went away (`holdfast verify | head -1`) is not an
/// error: the rest is dropped quietly instead of panicking on EPIPE.
pub fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("holdfast: cannot write to stdout: {e}");
        }
    }
}
