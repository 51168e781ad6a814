//! A message that cannot be made (here: the reseller's `sstMailFrom` has no address) is an
//! error of the run, and neither the warning nor its resolution is remembered as told: once
//! the sender is fixed, the next run tells them.

mod common;

use common::*;
use holdfast_notify::run::{check, Options};
use holdfast_notify::state::{Key, State};
use holdfast_notify::Task;

#[test]
fn a_message_that_cannot_be_built_is_not_remembered_as_sent_or_resolved() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let h = root.join("homes/4000001");
    std::fs::create_dir_all(&h).unwrap();
    let dir = |from: &str, size: u64| {
        let mut s = tree();
        s += &reseller(
            "1000001",
            &["desk@r1.example"],
            &["quota"],
            from,
            "sstNotificationWarningLevel: 80\n",
        );
        s += &account(
            "4000001",
            &h,
            "1000001",
            &format!("mail: it@a.example\nsstNotificationWarningMedium: mail\nsstBackupWarningOn: TRUE\nsstQuota: 1000\nsstBackupSize: {size}\nsstIncrementSize: 0\n"),
        );
        let p = root.join("world.ldif");
        std::fs::write(&p, s).unwrap();
        ldif_directory(&p)
    };
    let cfg = notify_config(root);
    let opts = |now: &str| Options {
        tasks: vec![Task::Quota],
        now: t(now),
        ..Default::default()
    };
    let open = || {
        State::open(&cfg.state)
            .unwrap()
            .active_since(&Key {
                task: "quota",
                account: "4000001",
                prefix: "",
            })
            .unwrap()
    };
    let bad = "Backup Team";
    let good = "R1 <backup@r1.example>";

    // The sender cannot be read: an error, no mail, nothing remembered.
    let r = check(&dir(bad, 990), &cfg, &opts("2026-11-21T07:00:00Z")).unwrap();
    assert!(r.mails.is_empty(), "{:?}", r.mails);
    assert!(
        r.errors.iter().any(|e| e.contains("sender")),
        "{:?}",
        r.errors
    );
    assert!(r.incomplete());
    assert_eq!(open(), None);

    // Fixed an hour later: both sides are told now, not a period later.
    let r = check(&dir(good, 990), &cfg, &opts("2026-11-21T08:00:00Z")).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.mails.len(), 2, "{:?}", r.mails);
    assert!(open().is_some());

    // The problem clears while the sender is broken again: the warning stays open...
    let r = check(&dir(bad, 10), &cfg, &opts("2026-11-21T09:00:00Z")).unwrap();
    assert!(r.mails.is_empty(), "{:?}", r.mails);
    assert!(!r.errors.is_empty());
    assert!(
        open().is_some(),
        "a resolution nobody was told of is not remembered"
    );

    // ...and its "resolved" message goes out once the sender is fixed.
    let r = check(&dir(good, 10), &cfg, &opts("2026-11-21T10:00:00Z")).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.mails.len(), 2, "{:?}", r.mails);
    assert!(
        r.mails.iter().all(|m| m.subject.contains("esolved")),
        "{:?}",
        r.mails
    );
    assert_eq!(open(), None);
}
