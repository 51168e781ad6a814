//! The Debian package's files are what holdfast itself writes. The systemd units are
//! committed under `packaging/systemd/` and must match what `holdfast schedule install` writes
//! for /usr/bin/holdfast (`HOLDFAST_BLESS=1` rewrites them). The sample configuration, the
//! completions and the man page are written by the release binary when scripts/build-deb.sh
//! builds the package (nothing generated is committed): here they are checked to come out
//! of `holdfast` whole.

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
fn packaged_units_are_what_holdfast_writes() {
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
    let bless = std::env::var_os("HOLDFAST_BLESS").is_some();
    for (rel, want) in [
        ("packaging/systemd/holdfast-backup.service", svc.text),
        ("packaging/systemd/holdfast-backup.timer", timer.text),
        ("packaging/systemd/holdfast-serve.service", serve.text),
    ] {
        let p = root().join(rel);
        if bless {
            std::fs::write(&p, &want).unwrap();
            continue;
        }
        let have = std::fs::read_to_string(&p).unwrap_or_default();
        assert!(
            have == want,
            "{rel} is out of date: run HOLDFAST_BLESS=1 cargo test -p holdfast --test packaging"
        );
    }
}

#[test]
fn generated_package_files_come_out_whole() {
    let sample = holdfast(&["config", "init"]);
    assert!(sample.contains("\n# [backup]\n") && sample.contains("\n# target = "));
    let bash = holdfast(&["completions", "bash"]);
    assert!(bash.contains("complete -F _holdfast") && bash.contains("restore"));
    let zsh = holdfast(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef holdfast"), "{}", &zsh[..80]);
    let fish = holdfast(&["completions", "fish"]);
    assert!(fish.contains("complete -c holdfast"));
    let man = holdfast(&["man"]);
    assert!(man.contains(".TH holdfast") && man.contains("backup"));
}

/// No two files of the package land on the same path (docs/README.md once overwrote the top
/// README), and every asset's source exists.
#[test]
fn package_assets_do_not_collide() {
    let manifest = root().join("crates/cli/Cargo.toml");
    let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let assets = doc["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for a in assets {
        let a = a.as_array().unwrap();
        let (src, dest) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
        // Generated at package build time or built: only their names matter here.
        let generated = src.contains("target/");
        let sources: Vec<PathBuf> = match src.rsplit_once("/*") {
            Some((dir, ext)) => {
                let dir = root().join("crates/cli").join(dir);
                let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().ends_with(ext))
                    .collect();
                v.sort();
                assert!(!v.is_empty(), "{src} names no file");
                v
            }
            None => vec![PathBuf::from(src)],
        };
        for s in sources {
            let name = s.file_name().unwrap().to_string_lossy().into_owned();
            let to = if dest.ends_with('/') {
                format!("{dest}{name}")
            } else {
                dest.to_string()
            };
            if !generated && !s.is_absolute() {
                let full = root().join("crates/cli").join(&s);
                assert!(full.exists(), "asset {} is missing", full.display());
            }
            if let Some(first) = seen.insert(to.clone(), s.clone()) {
                panic!(
                    "{} and {} both install to /{to}",
                    first.display(),
                    s.display()
                );
            }
        }
    }
    assert!(seen.contains_key("usr/share/doc/holdfast/README.md"));
    assert!(seen.contains_key("usr/share/doc/holdfast/docs/README.md"));
}
