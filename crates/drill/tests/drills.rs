//! The five disaster-recovery scenarios, each run end to end on a site built from real
//! archives, with real PostgreSQL, rsync, and (for the remote ones) a real sshd on loopback.
//! A scenario passes only if every check of its report passes, which includes the guard's
//! proof that nothing outside the scratch folder was touched; a decoy "production" site next
//! to the scratch folder must come out byte-identical.

mod common;

use holdfast_drill::report::DrillReport;
use holdfast_drill::site::SshServer;
use holdfast_drill::{DrillOptions, Scenario};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_testkit::sshd::Sshd;
use std::path::Path;
use std::time::Instant;

fn options(scratch: &Path) -> DrillOptions {
    let mut o = DrillOptions::new(scratch.to_path_buf(), common::holdfast_bin());
    o.seed = Some(42);
    o.kills = 3;
    o.keep = std::env::var_os("DRILL_KEEP").is_some();
    o
}

fn ssh_server(sshd: &Sshd) -> SshServer {
    let args = sshd.ssh_args();
    // ssh_args = -i KEY -p PORT -o ...: keep the -o options for holdfast.toml.
    let options = args
        .iter()
        .skip_while(|a| *a != "-o")
        .cloned()
        .collect::<Vec<_>>();
    SshServer {
        user: Sshd::user(),
        port: sshd.port,
        identity: sshd.client_key.clone(),
        options,
    }
}

fn assert_passed(r: &DrillReport, checks: &[&str]) {
    let text = r.to_text();
    eprintln!("{text}");
    assert!(r.passed, "drill failed:\n{text}");
    for c in checks {
        assert!(
            r.checks.iter().any(|x| x.what.contains(c) && x.ok),
            "no passed check {c:?} in:\n{text}"
        );
    }
    assert!(
        r.checks
            .iter()
            .any(|c| c.what.starts_with("nothing outside the scratch folder") && c.ok),
        "the guard did not run:\n{text}"
    );
    assert!(r.recovery_secs > 0.0, "recovery not timed:\n{text}");
}

/// A pg_dumpall-free fingerprint of a site's database: every table's rows, in order.
fn db_print(s: &ScratchSite) -> String {
    let mut c = s.site.connect().unwrap();
    let mut out = String::new();
    for t in ["upload", "pfile", "uploadtree_a", "job", "jobqueue"] {
        for r in c
            .query(
                format!("SELECT t::text FROM {t} t ORDER BY 1").as_str(),
                &[],
            )
            .unwrap()
        {
            out.push_str(&r.get::<_, String>(0));
            out.push('\n');
        }
    }
    out
}

#[test]
fn plug_pull_backup() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    // A local target keeps the three killed backups quick; total-loss covers ssh.
    let o = options(&t.path().join("scratch"));
    let start = Instant::now();
    let r = holdfast_drill::run(Scenario::PlugPullBackup, &o).unwrap();
    assert_passed(
        &r,
        &[
            "the last good snapshot is intact",
            "at least one backup was killed mid-way",
            "rsync was killed mid-copy at least once",
            "the next backup succeeded",
            "the last good snapshot's repository is whole",
            "the newest snapshot holds every upload",
        ],
    );
    assert!(
        r.steps
            .iter()
            .filter(|s| s.name.starts_with("plug pull"))
            .count()
            == 3
    );
    eprintln!(
        "plug-pull-backup took {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

/// The unpack agent is killed at ten random points of its work, a power cut leaves files it
/// wrote short under their final names, and each time the guide's in-place repair finds
/// the upload and every short file, sets them aside, and the scheduler's rerun completes it.
/// Then the repair itself is killed, three times during `recover --all` and three times
/// during a gold-only restore's rebuild: each resume completes without rewriting a file
/// that came through.
#[test]
fn plug_pull_job_at_ten_random_kill_points() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let mut o = options(&t.path().join("scratch"));
    o.kills = 10;
    let start = Instant::now();
    let r = holdfast_drill::run(Scenario::PlugPullJob, &o).unwrap();
    assert_passed(
        &r,
        &[
            "the agent was killed mid-write at 10 random points",
            "check-repo names the cut-off upload",
            "check-repo names every file the power cut left short",
            "is whole again, in place",
            "every recovered upload has the tree a clean unpack of its archive makes",
            "no file in the repository is shorter than its name says",
            "nothing is missing after the recoveries",
            "recover --all was killed at 3 random points",
            "gold-only restore was killed at 3 random points",
        ],
    );
    for what in ["recover --all", "gold-only restore"] {
        for k in 1..=3 {
            for c in [
                "the resumed repair made the repository whole, nothing short left",
                "the resume only wrote what was not back yet",
            ] {
                let name = format!("{what}, kill {k}: {c}");
                assert!(
                    r.checks.iter().any(|x| x.what == name && x.ok),
                    "no passed check {name:?}"
                );
            }
        }
    }
    assert_eq!(r.kill_points.len(), 10, "{}", r.to_text());
    assert!(r.kill_points.iter().all(|k| k.passed));
    // Half of them killed the stand-in for FOSSology's ununpack: at each place between its
    // last row and its last end mark, and mid-write.
    let standin: Vec<&str> = r
        .kill_points
        .iter()
        .filter(|k| k.agent == "ununpack stand-in")
        .map(|k| k.phase.as_str())
        .collect();
    assert_eq!(standin.len(), 5, "{}", r.to_text());
    for end in [
        "no end mark",
        "upload_mode marked",
        "realparent set",
        "next file linked",
    ] {
        assert!(
            standin.iter().any(|p| p.ends_with(end)),
            "no stand-in kill with {end:?}: {standin:?}"
        );
    }
    // The power cut did leave short files, and they came back.
    let short: usize = r.kill_points.iter().map(|k| k.truncated).sum();
    let back: usize = r.kill_points.iter().map(|k| k.files_recovered).sum();
    assert!(short > 0 && back >= short, "{}", r.to_text());
    assert!(r.data_lost.missing.is_empty());
    eprintln!("plug-pull-job took {:.1} s", start.elapsed().as_secs_f64());
}

/// FOSSology's own agent's half-written states: the stand-in ununpack (a row per file, each
/// committed alone, end marks last) is SIGKILLed between its end marks (`upload_mode`
/// marked, `ununpack_ars` not successful: ununpack's own rerun takes that upload as not
/// unpacked, and keeps its rows) and with part of its rows committed, and the power cut
/// shortens what it linked into the repository. The guide's repair and the scheduler's rerun
/// must give the upload the whole tree a clean unpack makes (its `artifact.meta` files name
/// the killed agent's temporary folder: only a new tree can have them all), nothing short
/// left.
#[test]
fn plug_pull_job_kills_a_fossology_style_agent_mid_write_and_between_its_end_marks() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let mut o = options(&t.path().join("scratch"));
    o.kills = 4;
    o.resume_kills = 0;
    let r = holdfast_drill::run(Scenario::PlugPullJob, &o).unwrap();
    assert_passed(
        &r,
        &[
            "the agent was killed mid-write at 4 random points",
            "check-repo names every file the power cut left short",
            "every recovered upload has the tree a clean unpack of its archive makes",
            "no file in the repository is shorter than its name says",
        ],
    );
    let standin: Vec<_> = r
        .kill_points
        .iter()
        .filter(|k| k.agent == "ununpack stand-in")
        .collect();
    assert_eq!(standin.len(), 2, "{}", r.to_text());
    assert!(r.kill_points.iter().all(|k| k.passed), "{}", r.to_text());
    // "D of N rows, where it halted"
    let rows = |phase: &str| -> (usize, usize) {
        let (a, b) = phase
            .split_once(" of ")
            .unwrap_or_else(|| panic!("phase {phase:?}"));
        let all = b.split_whitespace().next().unwrap().parse().unwrap();
        (a.parse().unwrap(), all)
    };
    // Between the end marks: every row committed, upload_mode marked.
    let (done, all) = rows(&standin[0].phase);
    assert!(
        done == all && standin[0].phase.ends_with(", upload_mode marked"),
        "{}",
        r.to_text()
    );
    // Mid-write: some rows committed, some not.
    let (done, all) = rows(&standin[1].phase);
    assert!(done > 0 && done < all, "{}", r.to_text());
    assert!(
        standin.iter().all(|k| k.files_written > 0),
        "{}",
        r.to_text()
    );
    assert!(r.kill_points.iter().any(|k| k.agent == "holdfast"));
}

#[test]
fn total_loss_over_ssh_leaves_a_decoy_production_site_alone() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let decoy = ScratchSite::create(&t.path().join("production"), "UTF8").unwrap();
    let before = db_print(&decoy);
    let sshd = Sshd::start(&t.path().join("sshd")).unwrap();
    let mut o = options(&t.path().join("scratch"));
    o.ssh = Some(ssh_server(&sshd));
    o.watch = vec![decoy.root.join("etc"), decoy.root.join("repository")];
    let r = holdfast_drill::run(Scenario::TotalLoss, &o).unwrap();
    assert_passed(
        &r,
        &[
            "every command of disaster-recovery/total-loss.md succeeded",
            "the database is back as it was",
            "every file the database names is in the repository",
            "gold and files still share inodes",
        ],
    );
    assert!(r.data_lost.missing.is_empty());
    assert_eq!(
        db_print(&decoy),
        before,
        "the decoy production database changed"
    );
    // The scratch folder is gone afterwards (no --keep).
    if !o.keep {
        let left: Vec<_> = std::fs::read_dir(t.path().join("scratch"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "scratch not cleaned: {left:?}");
    }
}

/// The whole data center: site and backup server (sshd A) gone; the off-site copy on a
/// second server (sshd B) is all there is, and the total-loss guide restores from it.
/// A gold-only total loss on a site whose fourth upload holds a nested zip: its
/// `artifact.meta` names the temporary folder it was unpacked in, so no reunpack makes it
/// again byte for byte. The guide's restore still succeeds (found at 200 uploads by
/// bench/drill-scale.sh: the restore exited 3 for such files although nothing was lost).
#[test]
fn total_loss_from_a_gold_only_backup_with_a_nested_zip() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let mut o = options(t.path());
    o.mode = Some("gold".into());
    o.uploads = 4;
    let r = holdfast_drill::run(Scenario::TotalLoss, &o).unwrap();
    assert_passed(
        &r,
        &[
            "every command of disaster-recovery/total-loss.md succeeded",
            "the database is back as it was",
        ],
    );
    assert!(r.data_lost.missing.is_empty(), "{}", r.to_text());
}

#[test]
fn site_and_backup_loss_restores_from_the_offsite_copy() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let a = Sshd::start(&t.path().join("sshd-a")).unwrap();
    let b = Sshd::start(&t.path().join("sshd-b")).unwrap();
    let mut o = options(&t.path().join("scratch"));
    o.ssh = Some(ssh_server(&a));
    o.offsite_ssh = Some(ssh_server(&b));
    let r = holdfast_drill::run(Scenario::SiteAndBackupLoss, &o).unwrap();
    assert_passed(
        &r,
        &[
            "the backup's snapshot is on the off-site copy",
            "every command of disaster-recovery/total-loss.md succeeded",
            "the database is back as it was",
            "every file the database names is in the repository",
        ],
    );
    assert!(r.data_lost.missing.is_empty());
    assert!(
        r.data_lost
            .snapshot
            .as_deref()
            .is_some_and(|s| s.starts_with("snap.")),
        "restored from the copy's pool snapshot: {:?}",
        r.data_lost.snapshot
    );
}

#[test]
fn database_loss_reports_unknown_and_missing_files() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let r = holdfast_drill::run(Scenario::DatabaseLoss, &options(t.path())).unwrap();
    assert_passed(
        &r,
        &[
            "reported as unknown to the database",
            "the guide's verify named the file the disk lost",
            "after the guide's recovery from gold nothing is missing",
        ],
    );
    assert!(r.data_lost.missing.is_empty());
    assert!(!r.data_lost.unknown.is_empty());
}

#[test]
fn agent_storage_loss_over_ssh_restores_one_disk_only() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&t.path().join("sshd")).unwrap();
    let mut o = options(&t.path().join("scratch"));
    o.ssh = Some(ssh_server(&sshd));
    let r = holdfast_drill::run(Scenario::AgentStorageLoss, &o).unwrap();
    assert_passed(
        &r,
        &[
            "every file the database names is back",
            "the surviving disk was left alone",
            "the agent's job is ready to run again",
        ],
    );
}

#[test]
fn a_drill_refuses_a_site_outside_its_scratch_folder() {
    let t = tempfile::tempdir().unwrap();
    let g = holdfast_drill::guard::ScratchGuard::new(&t.path().join("scratch"), &[]);
    let decoy = holdfast_site::Site::scratch(
        Path::new("/etc/fossology"),
        Path::new("/srv/fossology/repository"),
        holdfast_site::dbconf::DbConf::parse("dbname=fossology;host=localhost;port=5432;").unwrap(),
    );
    let err = g.admit_site(&decoy, 5999).unwrap_err().to_string();
    assert!(
        err.contains("/etc/fossology") && err.contains("outside the scratch folder"),
        "{err}"
    );
}

#[test]
fn holdfast_drill_command_prints_a_json_report() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let bin = common::holdfast_bin();
    let out = std::process::Command::new(&bin)
        .args([
            "drill",
            "database-loss",
            "--json",
            "--seed",
            "7",
            "--scratch",
        ])
        .arg(t.path())
        .env_remove("HOLDFAST_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: DrillReport = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(r.scenario, "database-loss");
    assert_eq!(r.seed, 7);
    assert!(r.passed && r.recovery_secs > 0.0);
    assert!(r.data_lost.restored_state_age_secs.is_some());
    // The drill folder is removed afterwards; nothing else was made in --scratch.
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);

    // Drilling the production site is refused with one line that says what to do instead.
    let out = std::process::Command::new(&bin)
        .args(["drill", "total-loss", "--production", "--scratch"])
        .arg(t.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--production refused"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_drill_on_a_copy_of_a_real_site_leaves_the_site_and_its_backups_alone() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    // The "real" site: its own cluster, repository, scheduler stand-in, and a backup.
    let real = holdfast_drill::site::DrillSite::create(
        &t.path().join("real"),
        "server",
        &common::holdfast_bin(),
        None,
        holdfast_drill::site::SiteSpec::default(),
    )
    .unwrap();
    let arch = holdfast_drill::archives::build(&t.path().join("archives"), 3, "r").unwrap();
    real.upload(&arch).unwrap();
    real.holdfast.ok(&["backup"]).unwrap();
    let before = db_print(&real.scratch);
    let mut o = options(&t.path().join("scratch"));
    o.copy_of = Some(real.holdfast.config.clone());
    o.watch = vec![
        real.target_dir.clone(),
        real.scratch.conf_dir().to_path_buf(),
        real.site().repo.root.clone(),
    ];
    let r = holdfast_drill::run(Scenario::DatabaseLoss, &o).unwrap();
    assert_passed(&r, &["reported as unknown to the database"]);
    assert!(
        r.steps[0].detail.starts_with("3 uploads"),
        "the copy has the real site's uploads: {}",
        r.steps[0].detail
    );
    assert_eq!(db_print(&real.scratch), before, "the real database changed");
}

#[test]
fn agent_storage_loss_from_a_gold_only_backup() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let mut o = options(t.path());
    o.mode = Some("gold".into());
    let r = holdfast_drill::run(Scenario::AgentStorageLoss, &o).unwrap();
    assert_passed(
        &r,
        &[
            "every file the database names is back",
            "the surviving disk was left alone",
            "the agent's job is ready to run again",
        ],
    );
    assert!(
        r.steps
            .iter()
            .any(|s| s.detail.contains("snapshot") && s.name == "nightly backup"),
        "{}",
        r.to_text()
    );
}

#[test]
fn busy_backup_every_kind_restores_whole() {
    // Its agents load both cores: alone, as the other busy drills.
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let r = holdfast_drill::run(Scenario::BusyBackup, &options(t.path())).unwrap();
    assert_passed(
        &r,
        &[
            "the online backup never stopped the scheduler",
            "three snapshots taken",
            "every command of disaster-recovery/busy-backup.md succeeded",
        ],
    );
}
