//! The `holdfast` binary end to end for backup, snapshots, restore, verify and schedule:
//! exit codes and one-line errors.

mod common;

use common::holdfast;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use std::path::Path;
use std::process::{Command, Output};

fn stderr_line(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(s.lines().count(), 1, "one line: {s}");
    s
}

#[test]
fn missing_configuration_gives_one_clear_line() {
    let d = tempfile::tempdir().unwrap();
    let o = holdfast(&d.path().join("nope.toml"), &["backup"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_line(&o);
    assert!(e.contains("nope.toml"), "{e}");

    // A holdfast.toml whose FOSSology configuration folder is empty.
    let cfg = d.path().join("h.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nconf_dir = \"{}\"\n",
            d.path().join("etc").display()
        ),
    )
    .unwrap();
    let o = holdfast(&cfg, &["backup"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_line(&o);
    assert!(e.contains("fossology.conf"), "{e}");
}

#[test]
fn schedule_install_writes_the_cron_entry_and_show_prints_it() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("h.toml");
    let cron = d.path().join("cron.d/holdfast");
    std::fs::write(
        &cfg,
        format!(
            "[backup]\nschedule = \"01:45\"\ncron_file = \"{}\"\n",
            cron.display()
        ),
    )
    .unwrap();
    let o = holdfast(&cfg, &["schedule", "install", "--system", "cron"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&cron).unwrap();
    assert!(text.contains("\n45 1 * * * root "), "{text}");
    assert!(text.contains(&format!("--config {}", cfg.display())));
    let o = holdfast(&cfg, &["schedule", "show"]);
    assert!(String::from_utf8_lossy(&o.stdout).ends_with(&text));
}

/// A site with sample uploads, its scheduler's stand-in running, and a configuration
/// (`h.toml`, with `backup_keys` added to `[backup]`) backing it up into `<d>/target`.
fn backed_up_site(
    d: &tempfile::TempDir,
    scratch: &holdfast_sandbox::scratch::ScratchSite,
    backup_keys: &str,
) -> (StandIn, std::path::PathBuf) {
    let sources = holdfast_sandbox::sample::find_gz(4);
    holdfast_sandbox::sample::populate(&scratch.site, &sources).unwrap();
    let standin = StandIn::create(
        &d.path().join("sched"),
        &holdfast_testkit::tag(),
        Behaviour::default(),
    )
    .unwrap();
    standin.start().unwrap();
    let sc = standin.config(30);
    let q = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cfg = d.path().join("h.toml");
    std::fs::write(
        &cfg,
        format!(
            "[site]\nconf_dir = \"{}\"\nname = \"cli\"\n[scheduler]\nstop_command = [{}]\nstart_command = [{}]\nprocess_names = [{}]\nstop_timeout_secs = 30\n[backup]\ntarget = \"{}\"\nlock_file = \"{}\"\n{backup_keys}",
            scratch.conf_dir().display(),
            q(&sc.stop_command),
            q(&sc.start_command),
            q(&sc.process_names),
            d.path().join("target").display(),
            d.path().join("lock").display()
        ),
    )
    .unwrap();
    (standin, cfg)
}

#[test]
fn backup_snapshots_restore_verify_through_the_binary() {
    let (d, scratch) = common::scratch();
    let (standin, cfg) = backed_up_site(&d, &scratch, "");
    let o = holdfast(&cfg, &["backup"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("snapshot current"));
    let o = holdfast(&cfg, &["snapshots"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("current") && out.contains("full"), "{out}");

    let o = holdfast(&cfg, &["verify"]);
    assert_eq!(o.status.code(), Some(0));
    // Lose a file: verify names it and exits 3.
    let root = &scratch.site.repo.root;
    let victim = walk_first_file(&root.join("localhost/files"));
    std::fs::remove_file(&victim).unwrap();
    let o = holdfast(&cfg, &["verify"]);
    assert_eq!(o.status.code(), Some(3));
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(String::from_utf8_lossy(&o.stdout).contains(&name));

    let o = holdfast(&cfg, &["restore", "--dry-run"]);
    assert!(o.status.success());
    assert!(!victim.exists(), "dry run changes nothing");
    // No terminal and no --yes: the live site is not replaced.
    let o = holdfast(&cfg, &["restore"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_line(&o).contains("--yes"), "{}", stderr_line(&o));
    assert!(!victim.exists(), "a refused restore changes nothing");
    let o = holdfast(&cfg, &["restore", "--yes"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(victim.exists());
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 missing"));
    assert!(standin.is_running());

    let o = holdfast(&cfg, &["restore", "day.nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_line(&o).contains("holdfast snapshots"));

    // The snapshot's content proves itself; the output survives a reader that leaves early.
    let o = holdfast(&cfg, &["verify", "--snapshot", "current"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 damaged"));
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --config {} snapshots | head -c 1",
            env!("CARGO_BIN_EXE_holdfast"),
            cfg.display()
        ))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));

    // A recovery waits for no backup: while one holds the lock it refuses (exit 4).
    {
        let _held = holdfast_backup::lock::acquire(&d.path().join("lock")).unwrap();
        let o = holdfast(&cfg, &["recover", "--all"]);
        assert_eq!(o.status.code(), Some(4), "{}", stderr_line(&o));
    }

    // A backup that walks the repository (every backup.full_walk_days, or --full-walk: a
    // night between walks copies what the database added and cannot see a loss behind its
    // back) finds a file the database names missing, says so and fails.
    std::fs::remove_file(&victim).unwrap();
    let o = holdfast(&cfg, &["backup", "--full-walk"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("lacks 1 file(s)") && e.contains(&name) && e.contains("holdfast check-repo"),
        "{e}"
    );
    assert!(standin.is_running());
}

/// A rolling store of hard-linked days: where the store's file system gives each folder a
/// block of its own (ext4 as mkfs makes it), `backup --dry-run` and the store's first night
/// say what that costs and how to make a store that keeps such folders in their inodes; on
/// such a store (ext4 with `inline_data`) neither says it, and the measurement leaves nothing
/// behind. Real ext4 images, loop-mounted.
#[test]
fn a_hard_linked_store_is_told_what_its_folders_cost_on_its_file_system() {
    for (options, costly) in [
        (&[][..], true),
        (&["-O", "inline_data", "-I", "512"][..], false),
    ] {
        let (d, scratch) = common::scratch();
        let fs = holdfast_testkit::LoopFs::ext4(&d.path().join("fs"), 1024, options);
        std::os::unix::fs::symlink(&fs.mount, d.path().join("target")).unwrap();
        let (standin, cfg) = backed_up_site(&d, &scratch, "");
        let said = |text: &str| text.contains("takes 4.0 KiB") && text.contains("inline_data");

        let o = holdfast(&cfg, &["backup", "--dry-run"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(out.contains("day trees: hard links"), "{out}");
        assert_eq!(said(&out), costly, "{options:?}: {out}");
        // And what that makes for this repository's folders.
        assert_eq!(
            out.contains("folders: ") && out.contains("of folder blocks in each day tree"),
            costly,
            "{out}"
        );

        let o = holdfast(&cfg, &["backup"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert_eq!(said(&err), costly, "{options:?}: {err}");
        // Said as the store begins, not every night.
        let o = holdfast(&cfg, &["backup"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(!said(&err), "{err}");

        let left: Vec<_> = std::fs::read_dir(&fs.mount)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".folder-probe"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(standin.is_running());
    }
}

/// `backup --dry-run` counts over the folders the backup copies, report folders too: a new
/// report is one file it would copy, and after the backup none; the dry run makes no snapshot.
#[test]
fn a_dry_run_counts_what_the_backup_would_copy_and_makes_nothing() {
    let (d, scratch) = common::scratch();
    let (standin, cfg) = backed_up_site(&d, &scratch, "");
    let o = holdfast(&cfg, &["backup"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snapshots = || String::from_utf8_lossy(&holdfast(&cfg, &["snapshots"]).stdout).into_owned();
    let before = snapshots();
    let report = scratch.site.repo.root.join("report");
    std::fs::create_dir_all(&report).unwrap();
    std::fs::write(
        report.join("SPDX2TV_upload.spdx"),
        "SPDXVersion: SPDX-2.3\n",
    )
    .unwrap();
    let dry_run = || {
        let o = holdfast(&cfg, &["backup", "--dry-run"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };

    let out = dry_run();
    assert!(out.contains("\"report\""), "{out}");
    assert!(out.contains("would copy 1 new file(s)"), "{out}");
    assert_eq!(snapshots(), before, "a dry run makes no snapshot");

    let o = holdfast(&cfg, &["backup"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dry_run().contains("would copy 0 new file(s)"));
    assert!(standin.is_running());
}

fn walk_first_file(dir: &Path) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::metadata(&p).unwrap().len() > 0 {
                return p;
            }
        }
    }
    panic!("no file under {}", dir.display());
}

#[test]
fn a_report_whose_name_no_list_carries_is_left_out_and_named_and_the_rest_backed_up() {
    use std::os::unix::ffi::OsStrExt;
    let (d, scratch) = common::scratch();
    let (standin, cfg) = backed_up_site(&d, &scratch, "layout = \"pool\"\n");
    // Reports are named after uploads: any bytes a user's archive name had.
    let report = scratch.site.repo.root.join("report");
    std::fs::create_dir_all(&report).unwrap();
    let plain = "SPDX2TV_sp ace 'q' \"dq\" ü #1.spdx";
    std::fs::write(report.join(plain), "plain").unwrap();
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.spdx");
    std::fs::write(report.join(latin1), "latin-1").unwrap();
    std::fs::write(report.join("two\nlines.spdx"), "newline").unwrap();
    let paths = d.path().join("target/pool/paths/report");
    for night in ["first (a walk)", "second (from the database)"] {
        let o = holdfast(&cfg, &["backup"]);
        // Written, but incomplete: exit 3, the files named with escapes and the fix.
        assert_eq!(
            o.status.code(),
            Some(3),
            "{night}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        let e = err.lines().last().unwrap_or_default();
        assert!(
            e.starts_with("holdfast: ")
                && e.contains("without 2 file(s)")
                && e.contains("report/caf\\xe9.spdx")
                && e.contains("report/two\\nlines.spdx")
                && e.contains("rename them"),
            "{night}: {e}"
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("snapshot "),
            "{night}"
        );
        assert_eq!(std::fs::read_to_string(paths.join(plain)).unwrap(), "plain");
        assert!(standin.is_running(), "{night}: the scheduler runs again");
    }
    // Renamed, they are taken by the next backup, which is whole again.
    std::fs::rename(report.join(latin1), report.join("cafe.spdx")).unwrap();
    std::fs::rename(
        report.join("two\nlines.spdx"),
        report.join("two lines.spdx"),
    )
    .unwrap();
    let o = holdfast(&cfg, &["backup"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(paths.join("cafe.spdx")).unwrap(),
        "latin-1"
    );
    assert_eq!(
        std::fs::read_to_string(paths.join("two lines.spdx")).unwrap(),
        "newline"
    );
}
