//! What the CLI tests share: a scratch FOSSology site in a temporary folder, a holdfast
//! configuration naming it, and the binary run with that configuration.
#![allow(dead_code)]

use holdfast_sandbox::scratch::ScratchSite;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

/// A temporary folder and a scratch site (`UTF8`) in its `site` sub-folder. Keep both
/// bindings: the site (declared last) stops its cluster before the folder goes.
pub fn scratch() -> (TempDir, ScratchSite) {
    let d = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&d.path().join("site"), "UTF8").unwrap();
    (d, s)
}

/// Writes `<dir>/holdfast.toml`: a `[site]` section naming the site's configuration folder,
/// followed by `site_keys` (more keys of `[site]`), then `rest` (other sections). Returns
/// its path.
pub fn config(d: &TempDir, s: &ScratchSite, site_keys: &str, rest: &str) -> PathBuf {
    let cfg = d.path().join("holdfast.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nconf_dir = {:?}\n{site_keys}{rest}",
            s.conf_dir().display().to_string()
        ),
    )
    .unwrap();
    cfg
}

/// The holdfast binary with `--config config` (and no `HOLDFAST_CONFIG` or systemd
/// `JOURNAL_STREAM` from outside).
pub fn command(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    c.arg("--config")
        .arg(config)
        .env_remove("HOLDFAST_CONFIG")
        .env_remove("JOURNAL_STREAM");
    c
}

/// Runs holdfast with `args` to the end.
pub fn holdfast(config: &Path, args: &[&str]) -> Output {
    command(config).args(args).output().unwrap()
}

/// `<dir>/<name>.tar.gz` made of the folder `<dir>/<name>` with the system `tar`.
pub fn tar_gz(dir: &Path, name: &str) -> PathBuf {
    let tgz = dir.join(format!("{name}.tar.gz"));
    let st = Command::new("tar")
        .args([
            "czf",
            tgz.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
            name,
        ])
        .status()
        .unwrap();
    assert!(st.success(), "tar of {name}");
    tgz
}

/// `holdfast upload --json ARCHIVE` with `cfg`, which must succeed: its summary.
pub fn upload_json(cfg: &Path, archive: &Path) -> serde_json::Value {
    let o = holdfast(cfg, &["upload", "--json", archive.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}
