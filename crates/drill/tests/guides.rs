//! The operator guides cannot rot: every ```` ```sh ```` block of `docs/full-backup.md` runs
//! against a scratch site built from real archives (real PostgreSQL, rsync, and a real sshd
//! as the backup server), every block of `docs/backup-server.md` against the example stoney
//! directory, and the disaster-recovery pages run inside the drills (tests/drills.rs). A
//! page that gains commands but no test fails `every_page_with_commands_is_run`.

mod common;

use holdfast_drill::guide;
use holdfast_drill::site::{DrillSite, SiteSpec, SshServer};
use holdfast_testkit::sshd::Sshd;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn run(page: &str, work: &Path, env: &BTreeMap<String, String>) -> guide::PageRun {
    let text = std::fs::read_to_string(docs_dir().join(page)).unwrap();
    // The guides say `holdfast`: the binary under test comes first on PATH.
    let bin_dir = work.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let link = bin_dir.join("holdfast");
    if !link.exists() {
        std::os::unix::fs::symlink(common::holdfast_bin(), &link).unwrap();
    }
    let r = guide::run_page(page, &text, work, env, &[bin_dir]).unwrap();
    assert!(
        r.ok,
        "{page}: the command block at {} failed:\n{}",
        r.failed_at.as_deref().unwrap_or("?"),
        r.output
    );
    r
}

#[test]
fn full_backup_guide_runs_against_a_scratch_site_over_ssh() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&t.path().join("sshd")).unwrap();
    let args = sshd.ssh_args();
    let ssh = SshServer {
        user: Sshd::user(),
        port: sshd.port,
        identity: sshd.client_key.clone(),
        options: args.iter().skip_while(|a| *a != "-o").cloned().collect(),
    };
    let root = t.path().join("drill");
    let site = DrillSite::create(
        &root,
        "server",
        &common::holdfast_bin(),
        Some(ssh),
        SiteSpec::default(),
    )
    .unwrap();
    let arch = holdfast_drill::archives::build(&root.join("archives"), 2, "g").unwrap();
    let ups = site.upload(&arch).unwrap();
    assert_eq!(ups.len(), 2);
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut env = site.guide_env();
    env.insert(
        "RESTORE_TEST".into(),
        root.join("restore-test").display().to_string(),
    );
    let r = run("full-backup.md", &work, &env);
    assert!(r.blocks >= 8, "only {} blocks", r.blocks);
    // What the guide promised happened: a snapshot on the backup server, the cron file
    // written where the configuration says, the scratch restore made, the site whole.
    let snaps: Vec<String> = std::fs::read_dir(&site.target_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(snaps.iter().any(|s| s == "current"), "{snaps:?}");
    let cron = std::fs::read_to_string(site.root.join("etc/cron.d/holdfast")).unwrap();
    assert!(
        cron.contains("holdfast") && cron.contains("backup"),
        "{cron}"
    );
    assert!(root.join("restore-test/repository").is_dir());
    let mut c = site.connect().unwrap();
    let v = holdfast_site::db::verify(&mut c, &site.site().repo, None).unwrap();
    assert!(v.is_whole() && v.checked > 0);
}

#[test]
fn gold_only_guide_runs_against_a_scratch_site() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("drill");
    let site = DrillSite::create(
        &root,
        "gold",
        &common::holdfast_bin(),
        None,
        SiteSpec::default(),
    )
    .unwrap();
    let arch = holdfast_drill::archives::build(&root.join("archives"), 2, "o").unwrap();
    let ups = site.upload(&arch).unwrap();
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut env = site.guide_env();
    env.insert(
        "REPOSITORY".into(),
        site.site().repo.root.display().to_string(),
    );
    env.insert("UPLOAD".into(), ups[0].to_string());
    let r = run("gold-only.md", &work, &env);
    assert!(r.blocks >= 6, "only {} blocks", r.blocks);
    // The guide made a gold-only snapshot, restored it, and left the site whole with the
    // recovery it queued on record.
    use holdfast_store::manifest::{Manifest, MANIFEST_FILE, REPO_DIR};
    let current = site.target_dir.join("current");
    let text = std::fs::read_to_string(current.join(MANIFEST_FILE)).unwrap();
    let manifest: Manifest = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest.mode, "gold");
    assert!(current.join(REPO_DIR).join("localhost/gold").is_dir());
    assert!(!current.join(REPO_DIR).join("localhost/files").exists());
    let mut c = site.connect().unwrap();
    let v = holdfast_site::db::verify(&mut c, &site.site().repo, None).unwrap();
    assert!(v.is_whole() && v.checked > 0, "{:?}", v.missing);
    let queued: i64 = c
        .query_one(
            "SELECT count(*) FROM holdfast_recovery WHERE upload_fk = $1 AND state = 'queued'",
            &[&ups[0]],
        )
        .unwrap()
        .get(0);
    assert_eq!(queued, 1);
}

#[test]
fn backup_server_guide_runs_against_the_example_directory() {
    let _one = common::one_at_a_time();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().canonicalize().unwrap();
    let ldif = root.join("directory.ldif");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/ldap/example.ldif"),
        &ldif,
    )
    .unwrap();
    let key = root.join("client_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let mut env = BTreeMap::new();
    let p = |x: &str| root.join(x).display().to_string();
    env.insert("HOLDFAST_CONFIG".to_string(), p("etc/holdfast.toml"));
    env.insert(
        "SERVER_HOST".to_string(),
        "backup-01.stoney-cloud.org".to_string(),
    );
    env.insert("HOMES_ROOT".to_string(), p("homes"));
    env.insert("SERVER_STATE".to_string(), p("state"));
    env.insert("STONEY_LDIF".to_string(), ldif.display().to_string());
    env.insert("CLIENT_KEY".to_string(), p("client_key.pub"));
    env.insert("SERVER_CRON_FILE".to_string(), p("cron.d/holdfast-server"));
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(root.join("cron.d")).unwrap(); // /etc/cron.d exists on a server
    let before = std::fs::read_to_string(&ldif).unwrap();
    let r = run("backup-server.md", &work, &env);
    assert!(r.output.contains("4000001"), "{}", r.output);
    let keys = walk(&root.join("homes"))
        .into_iter()
        .find(|p| p.ends_with(".ssh/authorized_keys"))
        .expect("the account's authorized_keys was written");
    let pubkey = std::fs::read_to_string(root.join("client_key.pub")).unwrap();
    assert!(std::fs::read_to_string(keys)
        .unwrap()
        .contains(pubkey.trim()));
    assert!(root.join("cron.d/holdfast-server").is_file());
    // The sizes went into the directory.
    let after = std::fs::read_to_string(&ldif).unwrap();
    assert_ne!(before, after, "server size wrote nothing to the directory");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every page under docs/ with commands is run somewhere: here, by a drill, or by the test
/// of the engineer who owns it (gold-only.md, templates.md).
#[test]
fn every_page_with_commands_is_run() {
    let here = ["full-backup.md", "backup-server.md", "gold-only.md"];
    let elsewhere = ["templates.md", "slimming.md"];
    for path in walk(&docs_dir()) {
        if path.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let rel = path.strip_prefix(docs_dir()).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if guide::blocks(&text).is_empty() {
            continue;
        }
        let by_drill = holdfast_drill::Scenario::ALL
            .iter()
            .any(|s| s.guide_page() == rel);
        assert!(
            here.contains(&rel.as_str()) || elsewhere.contains(&rel.as_str()) || by_drill,
            "docs/{rel} has ```sh blocks that no test runs: add it to a test, or mark output as ```text"
        );
        // The embedded copy the drills follow is the page on disk.
        if let Some(embedded) = guide::page(&rel) {
            assert_eq!(
                embedded, text,
                "docs/{rel} changed since the drill crate was built"
            );
        }
    }
}
