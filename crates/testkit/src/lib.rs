//! Real services for tests, each started on loopback in a temporary folder and stopped on
//! drop: `sshd` ([`sshd::Sshd`]), `slapd` ([`slapd::Slapd`], the stoney tree), and
//! helpers to check that the tools tests use are present.
//! Scratch PostgreSQL sites come from `holdfast_sandbox::scratch`, since the demo and the
//! drills use them too.

pub mod golden;
pub mod s3;
pub mod slapd;
pub mod smtp;
pub mod sshd;

use std::path::PathBuf;

/// Path of a program the tests need; panics with the package to install when it is missing.
pub fn require(tool: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = PathBuf::from(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("{tool} is not installed: run scripts/test.sh, which installs every tool the tests use");
}

/// A short random tag for names that must not collide between parallel tests.
pub fn tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{:x}{:02x}", std::process::id() % 0xfff, n % 0xff)
}
