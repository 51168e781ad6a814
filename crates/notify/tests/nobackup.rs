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
