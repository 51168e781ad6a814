//! Shared by the drill tests: the `holdfast` binary under test, and one drill at a time (each
//! drill runs a PostgreSQL cluster, a scheduler stand-in and real backups; the machine has
//! two cores shared by everything else).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The `holdfast` binary: `HOLDFAST_BIN`, or the workspace's debug build, rebuilt once per
/// test run so the drills never exercise a stale binary.
pub fn holdfast_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(b) = std::env::var_os("HOLDFAST_BIN") {
            return PathBuf::from(b);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
        let st = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "holdfast",
                "--bin",
                "holdfast",
                "--manifest-path",
            ])
            .arg(manifest)
            .status()
            .expect("run cargo build for the holdfast binary");
        assert!(st.success(), "cargo build -p holdfast failed");
        // target/debug/deps/<test> -> target/debug/holdfast
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .and_then(|p| p.parent())
            .unwrap()
            .join("holdfast");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// One drill at a time within this test binary.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
