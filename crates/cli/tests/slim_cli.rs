//! `holdfast upload --slim`, `slim report`, `slim apply`, `check-repo` and `recover` through
//! the binary, on a scratch site (real PostgreSQL) with real nested archives, and the
//! scheduler stand-in stopped for the apply and started again after it.

use holdfast_sandbox::scratch::ScratchSite;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cwd: &Path, prog: &str, args: &[&str]) {
    holdfast_testkit::require(prog);
    let st = Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .status()
        .unwrap();
    assert!(st.success(), "{prog} {args:?}");
}

/// p<i>.tar.gz = {README, src/lib.c, src/src.zip = {blob.bin.gz, notes.txt}}.
fn archive(dir: &Path, i: u32) -> PathBuf {
    let w = dir.join(format!("work/p{i}"));
    std::fs::create_dir_all(w.join("src")).unwrap();
    std::fs::write(w.join("README"), format!("project {i}\n")).unwrap();
    std::fs::write(
        w.join("src/lib.c"),
        format!("int f{i}(void) {{ return {i}; }}\n"),
    )
    .unwrap();
    let bin: Vec<u8> = (0..200_000u32)
        .map(|k| ((k ^ (i * 7919)).wrapping_mul(2654435761) >> 9) as u8)
        .collect();
    std::fs::write(w.join("blob.bin"), bin).unwrap();
    std::fs::write(w.join("notes.txt"), format!("notes {i}\n").repeat(50)).unwrap();
    run(&w, "gzip", &["-n", "blob.bin"]);
    run(
        &w,
        "zip",
        &["-X", "-q", "src/src.zip", "blob.bin.gz", "notes.txt"],
    );
    std::fs::remove_file(w.join("blob.bin.gz")).unwrap();
    std::fs::remove_file(w.join("notes.txt")).unwrap();
    run(
        &dir.join("work"),
        "tar",
        &["czf", &format!("p{i}.tar.gz"), &format!("p{i}")],
    );
    dir.join(format!("work/p{i}.tar.gz"))
}

fn holdfast(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = holdfast(config, args);
    assert!(
        out.status.success(),
        "holdfast {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(config: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(config, args)).unwrap()
}

fn disk_bytes(root: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut sum = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                sum += m.len();
            }
        }
    }
    sum
}

struct Fixture {
    dir: tempfile::TempDir,
    s: ScratchSite,
    standin: StandIn,
    config: PathBuf,
}

/// A scratch site, the scheduler stand-in running, and a holdfast.toml pointing at both.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let standin = StandIn::create(
        &dir.path().join("standin"),
        &holdfast_testkit::tag(),
        Behaviour::default(),
    )
    .unwrap();
    standin.start().unwrap();
    let sched = standin.config(30);
    let q = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\nconf_dir = \"{}\"\n[scheduler]\nstop_command = [{}]\nstart_command = [{}]\n\
             process_names = [{}]\nstop_timeout_secs = 30\nstale_row_grace_secs = 1\n\
             [backup]\nlock_file = \"{}\"\n",
            s.conf_dir().display(),
            q(&sched.stop_command),
            q(&sched.start_command),
            q(&sched.process_names),
            dir.path().join("backup.lock").display(),
        ),
    )
    .unwrap();
    Fixture {
        dir,
        s,
        standin,
        config,
    }
}

#[test]
fn slim_through_the_binary() {
    let Fixture {
        dir,
        s,
        standin,
        config,
    } = fixture();
    let p0 = archive(dir.path(), 0);
    let p1 = archive(dir.path(), 1);
    ok(&config, &["upload", p0.to_str().unwrap()]);
    ok(&config, &["upload", "--slim", p1.to_str().unwrap()]);
    let repo = &s.site.repo.root;

    // Upload 3 was unpacked slim: its containers are recorded, nothing missing.
    let r = json(&config, &["slim", "report", "--json"]);
    let t = &r["total"];
    assert_eq!(t["unrecorded"]["files"], 0, "{r:#}");
    assert_eq!(t["missing"]["files"], 0, "{r:#}");
    assert_eq!(r["uploads"][1]["removable"]["files"], 0);
    let slim2 = r["uploads"][1]["slimmed"]["files"].as_u64().unwrap();
    assert!(slim2 >= 2, "{r:#}");
    let removable = t["removable"]["bytes"].as_u64().unwrap();
    let removable_files = t["removable"]["files"].as_u64().unwrap();
    assert!(removable_files >= 2 && removable > 0, "{r:#}");
    let one = json(&config, &["slim", "report", "--json", "--upload", "2"]);
    assert_eq!(one["uploads"].as_array().unwrap().len(), 1);
    let text = ok(&config, &["slim", "report"]);
    assert!(text.contains("it is the gold file of upload 2"), "{text}");

    // --containers is required; --dry-run touches nothing.
    let bad = holdfast(&config, &["slim", "apply"]);
    assert_eq!(bad.status.code(), Some(2));
    let before = disk_bytes(repo);
    let dry = json(
        &config,
        &["slim", "apply", "--containers", "--dry-run", "--json"],
    );
    assert_eq!(dry["freed_bytes"].as_u64().unwrap(), removable);
    assert_eq!(disk_bytes(repo), before);

    // Never during a backup or restore: they hold the lock.
    {
        let _held = holdfast_backup::lock::acquire(&dir.path().join("backup.lock")).unwrap();
        let o = holdfast(&config, &["slim", "apply", "--containers"]);
        assert_eq!(
            o.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(disk_bytes(repo), before);
    }

    // Nor on a site a restore left half done: its rows and files do not agree yet.
    let half = holdfast_site::restoring::Restoring {
        snapshot: "day.x".into(),
        started: chrono::Utc::now(),
        pid: 1,
        database: "fossology".into(),
    };
    holdfast_site::restoring::mark(&s.site, &half).unwrap();
    let o = holdfast(&config, &["slim", "apply", "--containers"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("restore"), "{err}");
    holdfast_site::restoring::clear(&s.site).unwrap();
    assert_eq!(disk_bytes(repo), before);

    // Apply stops the scheduler, frees exactly the reported bytes, starts it again.
    let starts = standin.starts();
    let done = json(&config, &["slim", "apply", "--containers", "--json"]);
    assert_eq!(done["freed_bytes"].as_u64().unwrap(), removable);
    assert_eq!(before - disk_bytes(repo), removable);
    assert_eq!(standin.starts(), starts + 1);
    assert!(standin.is_running());

    // check-repo: whole, with the slimmed containers named as such.
    let out = ok(&config, &["check-repo"]);
    assert!(out.contains("slimmed, rebuildable"), "{out}");
    let chk = json(&config, &["check-repo", "--json", "--all"]);
    assert_eq!(chk["incomplete_uploads"], 0);
    assert_eq!(
        chk["slimmed_files"].as_u64().unwrap(),
        removable_files + slim2
    );

    // Recovering upload 2 (the first: FOSSology numbers from 2) brings its containers back: the repository is as before apply.
    ok(&config, &["recover", "--upload", "2"]);
    assert_eq!(disk_bytes(repo), before);
    let chk = json(&config, &["check-repo", "--json", "--all", "--upload", "2"]);
    assert_eq!(chk["uploads"][0]["slimmed_files"], 0);
    assert_eq!(chk["uploads"][0]["missing_files"], 0);
    let out = ok(&config, &["verify"]);
    assert!(out.contains("slimmed, rebuildable"), "{out}");
}

/// docs/slimming.md cannot rot: its command blocks run against a site with real uploads.
#[test]
fn slimming_guide_runs() {
    let f = fixture();
    let p0 = archive(f.dir.path(), 0);
    ok(&f.config, &["upload", p0.to_str().unwrap()]);
    let work = f.dir.path().join("work-guide");
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_holdfast"), bin.join("holdfast")).unwrap();
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/slimming.md");
    let text = std::fs::read_to_string(page).unwrap();
    let env = [(
        "HOLDFAST_CONFIG".to_string(),
        f.config.display().to_string(),
    )]
    .into();
    let before = disk_bytes(&f.s.site.repo.root);
    let r = holdfast_drill::guide::run_page("slimming.md", &text, &work, &env, &[bin]).unwrap();
    assert!(r.ok, "block {:?} failed:\n{}", r.failed_at, r.output);
    assert_eq!(r.blocks, 4);
    assert!(
        r.output.contains("Removing containers frees"),
        "{}",
        r.output
    );
    assert!(r.output.contains("slimmed, rebuildable"), "{}", r.output);
    assert!(work.join("slim-report.json").is_file());
    // The guide slimmed, then recovered upload 2: the repository is back as it was.
    assert_eq!(disk_bytes(&f.s.site.repo.root), before);
    assert!(f.standin.is_running());
}
