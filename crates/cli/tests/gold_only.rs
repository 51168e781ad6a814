//! Gold-only end to end on real parts: `mode = "gold"` backup of a site with real uploads and
//! a job cut off by the backup, the site destroyed (database and repository), restored, the
//! repository rebuilt from gold identical to the original, the cut-off job handed back; then
//! `holdfast check-repo` and `holdfast recover` through the binary, and a `recover --all`
//! killed halfway that a second run finishes.

use holdfast_backup::{backup, restore, BackupConfig, Mode, RestoreOptions};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn run(cwd: &Path, prog: &str, args: &[&str]) {
    holdfast_testkit::require(prog);
    let out = Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{prog}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `n` uploads (.tar.gz, each with a nested .zip), every one with its own contents.
fn uploads(s: &ScratchSite, dir: &Path, n: usize) -> Vec<i32> {
    let mut paths = Vec::new();
    for i in 0..n {
        let w = dir.join(format!("work/p{i}"));
        std::fs::create_dir_all(w.join("src")).unwrap();
        std::fs::write(w.join("README"), format!("project {i}\n")).unwrap();
        std::fs::write(
            w.join("src/lib.c"),
            format!("int f{i}(void) {{ return {i}; }}\n"),
        )
        .unwrap();
        let bin: Vec<u8> = (0..400_000u32)
            .map(|k| ((k ^ (i as u32 * 7919)).wrapping_mul(2654435761) >> 9) as u8)
            .collect();
        std::fs::write(w.join("src/blob.bin"), bin).unwrap();
        run(&w, "zip", &["-qr", "src.zip", "src"]);
        run(
            &dir.join("work"),
            "tar",
            &["czf", &format!("p{i}.tar.gz"), &format!("p{i}")],
        );
        paths.push(dir.join(format!("work/p{i}.tar.gz")));
    }
    upload_files(
        &s.site,
        &paths,
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap()
    .into_iter()
    .map(|(u, _)| u)
    .collect()
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn config(dir: &Path, s: &ScratchSite) -> PathBuf {
    let p = dir.join("holdfast.toml");
    std::fs::write(
        &p,
        format!("[site]\nconf_dir = \"{}\"\n", s.conf_dir().display()),
    )
    .unwrap();
    p
}

fn holdfast(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn gold_only_backup_wipe_restore_gives_back_the_same_repository() {
    holdfast_testkit::require("rsync");
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
    let ups = uploads(&s, dir.path(), 3);
    // A job the backup cuts off: its unpack row had started on upload 2.
    let mut c = s.site.connect().unwrap();
    let job: i32 = c
        .query_one(
            "INSERT INTO job (job_name, job_upload_fk) VALUES ('p1.tar.gz', $1) RETURNING job_pk",
            &[&ups[1]],
        )
        .unwrap()
        .get(0);
    let jq: i32 = c
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime) VALUES ($1, 'ununpack', $2, now()) RETURNING jq_pk",
            &[&job, &ups[1].to_string()],
        )
        .unwrap()
        .get(0);
    drop(c);
    let files_root = s.site.repo.root.join("localhost/files");
    let original = files(&files_root);
    let gold = files(&s.site.repo.root.join("localhost/gold"));

    let cfg = BackupConfig {
        target: dir.path().join("target").display().to_string(),
        lock_file: dir.path().join("backup.lock"),
        mode: Mode::Gold,
        ..Default::default()
    };
    let out = backup(&s.site, "gold-site", &sched, &cfg).unwrap();
    assert_eq!(out.manifest.mode, "gold");
    let snap = dir.path().join("target/current/repository/localhost");
    assert!(snap.join("gold").is_dir());
    assert!(
        !snap.join("files").exists(),
        "a gold-only snapshot holds no files"
    );
    assert_eq!(files(&snap.join("gold")), gold);

    // Destroy the site: database and repository.
    {
        let mut su = s.cluster.superuser_client().unwrap();
        su.batch_execute("DROP DATABASE fossology WITH (FORCE)")
            .unwrap();
    }
    std::fs::remove_dir_all(&s.site.repo.root).unwrap();

    let r = restore(
        &s.site,
        &sched,
        &cfg,
        &UnpackConfig::default(),
        &RestoreOptions::default(),
    )
    .unwrap();
    let rebuild = r.rebuild.clone().expect("a gold-only restore rebuilds");
    assert!(r.is_whole(), "missing: {:?}", r.verify.missing);
    assert!(rebuild.missing.is_empty(), "{:?}", rebuild.missing);
    assert_eq!(rebuild.cut_off_uploads, vec![ups[1]]);
    assert_eq!(rebuild.rebuilt[0], ups[1], "cut-off upload first");
    assert_eq!(rebuild.requeued, vec![jq]);
    assert_eq!(
        files(&files_root),
        original,
        "the repository is the original one"
    );
    let mut c = s.site.connect().unwrap();
    let reset: bool = c
        .query_one(
            "SELECT jq_starttime IS NULL AND jq_endtime IS NULL FROM jobqueue WHERE jq_pk = $1",
            &[&jq],
        )
        .unwrap()
        .get(0);
    assert!(reset, "the scheduler will run the cut-off job again");

    // The binary: check-repo says whole (exit 0), then finds deleted files (exit 3, JSON).
    let conf = config(dir.path(), &s);
    let o = holdfast(&conf, &["check-repo", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The largest file: an unpacked payload (a meta file whose text names a temporary folder
    // can never come back and is reported as such, not as missing).
    let victim = files_root.join(original.iter().max_by_key(|(_, v)| v.len()).unwrap().0);
    std::fs::remove_file(&victim).unwrap();
    let o = holdfast(&conf, &["check-repo", "--json", "--files"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{} {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["incomplete_uploads"], 1, "{v}");
    let up = &v["uploads"][0];
    assert_eq!(up["missing_files"], 1);
    assert_eq!(up["gold_present"], true);
    assert_eq!(
        up["missing"][0]["name"].as_str().unwrap(),
        victim.file_name().unwrap().to_str().unwrap()
    );
    let u = up["upload_pk"].as_i64().unwrap().to_string();
    let o = holdfast(&conf, &["recover", "--upload", &u, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("would be rebuilt from gold"));
    assert!(!victim.exists(), "dry run changes nothing");
    let o = holdfast(&conf, &["recover", "--upload", &u, "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let jobs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(jobs[0]["state"], "done", "{jobs}");
    assert_eq!(files(&files_root), original);
}

#[test]
fn recover_all_killed_halfway_continues_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let ups = uploads(&s, dir.path(), 6);
    let files_root = s.site.repo.root.join("localhost/files");
    let original = files(&files_root);
    std::fs::remove_dir_all(&files_root).unwrap();
    let conf = config(dir.path(), &s);

    // First run: killed (SIGKILL, no clean-up) once the first upload is done.
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("--config")
        .arg(&conf)
        .args(["-v", "recover", "--all", "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in err.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("rebuild 1/6 uploads") {
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    assert!(seen.iter().any(|l| l.contains("rebuild 1/6")), "{seen:#?}");
    let mut c = s.site.connect().unwrap();
    let left = holdfast_site::db::verify(&mut c, &s.site.repo, None)
        .unwrap()
        .missing
        .len();
    assert!(left > 0, "killed before the end");

    let o = holdfast(&conf, &["recover", "--all", "--jobs", "2", "--json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let whole = report["already_whole"].as_u64().unwrap();
    let rebuilt = report["rebuilt"].as_array().unwrap().len() as u64;
    assert!(
        whole >= 1,
        "the upload done before the kill is not redone: {report}"
    );
    assert_eq!(whole + rebuilt, ups.len() as u64);
    assert!(
        report["requeued"].as_array().unwrap().is_empty(),
        "no requeue on a live site"
    );
    assert_eq!(files(&files_root), original);
}
