//! The files the Debian package ships (`packaging/`) are what holdfast itself writes: the
//! sample configuration (`config init`), the systemd units for /usr/bin/holdfast, the
//! completions and the man page. `HOLDFAST_BLESS=1` rewrites them (scripts/build-deb.sh
//! does, before it builds). Without it the units must match exactly; the sample, the
//! completions and the man page follow every option any crate adds, so they are only
//! checked to be there and to parse (the package script regenerates them).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn holdfast(args: &[&str]) -> String {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(&empty)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn packaged_files_are_what_holdfast_writes() {
    use holdfast_backup::schedule;
    let exe = Path::new("/usr/bin/holdfast");
    let conf = Path::new("/etc/holdfast/holdfast.toml");
    let job = schedule::backup_job(
        &holdfast_backup::BackupConfig::default(),
        &schedule::ScheduleConfig::default(),
    )
    .unwrap();
    let [svc, timer] = schedule::job_units(&job, exe, conf).unwrap();
    let serve = schedule::serve_unit(exe, conf, &[]);
    let files = [
        (
            "packaging/holdfast.toml.sample",
            holdfast(&["config", "init"]),
        ),
        ("packaging/systemd/holdfast-backup.service", svc.text),
        ("packaging/systemd/holdfast-backup.timer", timer.text),
        ("packaging/systemd/holdfast-serve.service", serve.text),
        (
            "packaging/completions/holdfast.bash",
            holdfast(&["completions", "bash"]),
        ),
        ("packaging/holdfast.1", holdfast(&["man"])),
    ];
    let bless = std::env::var_os("HOLDFAST_BLESS").is_some();
    for (rel, want) in files {
        let p = root().join(rel);
        if bless {
            std::fs::write(&p, &want).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&p).unwrap_or_default();
        if rel.contains("systemd/") {
            assert!(
                have == want,
                "{rel} is out of date: run HOLDFAST_BLESS=1 cargo test -p holdfast --test packaging"
            );
        } else {
            assert!(!have.is_empty(), "{rel} is missing");
        }
    }
}
