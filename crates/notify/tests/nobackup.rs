//! "Never used" reads an account's age from its home: the size job, which writes the home's
//! `.quota` every morning before the check, must not make an unused account look new.

mod common;

use chrono::{Duration, Utc};
use common::*;
use holdfast_notify::run::{check, Options};
use holdfast_notify::Task;

#[test]
fn an_unused_account_is_warned_about_though_the_size_job_writes_its_home_daily() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let h = root.join("homes/4000001");
    std::fs::create_dir_all(&h).unwrap();
    let mut ldif = tree();
    ldif += &reseller(
        "1000001",
        &["desk@r1.example"],
        &["nobackup"],
        "R1 <backup@r1.example>",
        "",
    );
    ldif += &account(
        "4000001",
        &h,
        "1000001",
        "mail: it@a.example\nsstNotificationWarningMedium: mail\nsstBackupWarningOn: TRUE\n",
    );
    let ldif_path = root.join("world.ldif");
    std::fs::write(&ldif_path, ldif).unwrap();

    let now = Utc::now();
    // The account was made 30 days ago, and the size job's first run wrote its `.quota`.
    holdfast_server::size::write_quota_file(&h, "1024 0 0").unwrap();
    set_mtime(&h, now - Duration::days(30));
    // This morning's run: nothing was ever backed up, so the same sizes.
    holdfast_server::size::write_quota_file(&h, "1024 0 0").unwrap();
    assert_eq!(
        std::fs::read_to_string(h.join(".quota")).unwrap(),
        "1024 0 0\n"
    );

    let dir = ldif_directory(&ldif_path);
    let cfg = notify_config(root);
    let opts = Options {
        tasks: vec![Task::Nobackup],
        now,
        ..Default::default()
    };
    let r = check(&dir, &cfg, &opts).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let mut to: Vec<String> = r.mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        vec!["desk@r1.example".to_string(), "it@a.example".into()],
        "{:?}",
        r.mails
    );
    // Its age is the home's first time, not this morning's.
    assert!(
        r.mails.iter().all(|m| m.body.contains("30 days ago")),
        "{:?}",
        r.mails
    );
}

/// An account whose client uploads data but no client files (a Perl client before 1.14,
/// plain rsync, or only unreadable files) is used: "never used" is not sent. An empty
/// prefix folder is no upload.
#[test]
fn an_account_with_uploaded_data_but_no_client_files_is_not_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut ldif = tree();
    ldif += &reseller(
        "1000001",
        &["desk@r1.example"],
        &["nobackup"],
        "R1 <backup@r1.example>",
        "",
    );
    let on = "mail: it@a.example\nsstNotificationWarningMedium: mail\nsstBackupWarningOn: TRUE\n";
    let homes: Vec<_> = ["4000001", "4000002", "4000003", "4000004"]
        .iter()
        .map(|uid| {
            let h = root.join("homes").join(uid);
            std::fs::create_dir_all(h.join("incoming")).unwrap();
            ldif += &account(uid, &h, "1000001", on);
            h
        })
        .collect();
    // 4000001: data, no .sepiola_backup; 4000002: only a truncated client file;
    // 4000003: an empty prefix folder; 4000004: what sepiola makes when a schedule is set,
    // before any backup (empty folders and scheduler.xml).
    std::fs::create_dir_all(homes[0].join("incoming/srv/etc")).unwrap();
    std::fs::write(
        homes[0].join("incoming/srv/etc/hosts"),
        "127.0.0.1 localhost\n",
    )
    .unwrap();
    std::fs::write(
        meta(&homes[1], "pc").join("backupEnded.xml"),
        "<backup_ended><enddate>2026-1",
    )
    .unwrap();
    std::fs::create_dir_all(homes[2].join("incoming/laptop")).unwrap();
    std::fs::write(
        meta(&homes[3], "desk").join("scheduler.xml"),
        "<scheduler><weekly/></scheduler>",
    )
    .unwrap();
    std::fs::create_dir_all(homes[3].join("incoming/desk/backup")).unwrap();
    let now = Utc::now();
    for h in &homes {
        set_mtime(h, now - Duration::days(30));
    }
    let ldif_path = root.join("world.ldif");
    std::fs::write(&ldif_path, ldif).unwrap();
    let opts = Options {
        tasks: vec![Task::Nobackup],
        now,
        ..Default::default()
    };
    let r = check(&ldif_directory(&ldif_path), &notify_config(root), &opts).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let warned: Vec<&str> = r
        .events
        .iter()
        .filter(|e| !e.resolved)
        .map(|e| e.account.as_str())
        .collect();
    assert_eq!(warned, ["4000003", "4000004"], "{:?}", r.mails);
}
