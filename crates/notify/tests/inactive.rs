//! A deactivated account (`sstIsActive: FALSE`) is out of service, as for the snapshot job:
//! its client no longer runs, so it gets no warnings, and what was open is closed quietly.

mod common;

use common::*;
use holdfast_notify::run::{check, Options};
use holdfast_notify::state::{Key, State};

#[test]
fn a_deactivated_account_gets_no_warnings_and_its_open_ones_close() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let h = root.join("homes/4000001");
    std::fs::create_dir_all(&h).unwrap();
    // Nearly full, and its client last ran seven weeks ago on a daily plan.
    let cl = client("sepiola", "2.5.0");
    started(&h, "pc", "2026-10-01T02:00:00+01:00", "1", &cl);
    ended(&h, "pc", "2026-10-01T02:30:00+01:00", "1", "1", &cl);
    daily(&h, "pc", "02", "00", "+01:00", &cl);
    let ldif = |active: &str| {
        let mut s = tree();
        s += &reseller(
            "1000001",
            &["desk@r1.example"],
            &["quota", "schedule"],
            "R1 <backup@r1.example>",
            "sstNotificationWarningLevel: 80\n",
        );
        s += &account(
            "4000001",
            &h,
            "1000001",
            "mail: it@a.example\nsstNotificationWarningMedium: mail\nsstBackupWarningOn: TRUE\nsstQuota: 1000\nsstBackupSize: 990\nsstIncrementSize: 5\n",
        )
        .replace("sstIsActive: TRUE", &format!("sstIsActive: {active}"));
        let p = root.join(format!("world-{active}.ldif"));
        std::fs::write(&p, s).unwrap();
        ldif_directory(&p)
    };
    let cfg = notify_config(root);
    let opts = |now: &str| Options {
        now: t(now),
        ..Default::default()
    };
    let open = |task: &str, prefix: &str| {
        State::open(&cfg.state)
            .unwrap()
            .active_since(&Key {
                task,
                account: "4000001",
                prefix,
            })
            .unwrap()
    };

    let r = check(&ldif("TRUE"), &cfg, &opts("2026-11-21T10:00:00Z")).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let subjects: Vec<&str> = r.mails.iter().map(|m| m.subject.as_str()).collect();
    assert!(subjects.iter().any(|s| s.contains("quota")), "{subjects:?}");
    assert!(
        subjects.iter().any(|s| s.contains("schedule")),
        "{subjects:?}"
    );
    assert!(open("quota", "").is_some() && open("schedule", "pc").is_some());

    // Deactivated: a day later, when the reminders would be due, nothing is sent.
    let r = check(&ldif("FALSE"), &cfg, &opts("2026-11-22T10:00:00Z")).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.mails.is_empty(), "{:?}", r.mails);
    assert!(r.events.is_empty(), "{:?}", r.events);
    assert_eq!(open("quota", ""), None);
    assert_eq!(open("schedule", "pc"), None);
}
