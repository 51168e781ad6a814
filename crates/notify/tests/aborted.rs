//! A check run that dies after it queued some messages (a panic, an error, a kill) has its
//! state rolled back: the next run decides the same warnings again, and each goes out once.

mod common;

use common::*;
use holdfast_notify::directory::LdapDirectory;
use holdfast_notify::run::{check, Options};
use holdfast_notify::{Account, Directory, Person, Reseller, Task};
use std::path::PathBuf;

/// The real directory (an LDIF file), except that reading the home of `dies_at` panics.
struct DiesAt {
    inner: LdapDirectory,
    dies_at: Option<&'static str>,
}

impl Directory for DiesAt {
    fn accounts(&self) -> Result<Vec<Account>, String> {
        self.inner.accounts()
    }
    fn person(&self, uid: &str) -> Result<Option<Person>, String> {
        self.inner.person(uid)
    }
    fn reseller(&self, uid: &str) -> Result<Option<Reseller>, String> {
        self.inner.reseller(uid)
    }
    fn set_last_successful(
        &self,
        uid: &str,
        values: &[(String, chrono::DateTime<chrono::Utc>)],
    ) -> Result<(), String> {
        self.inner.set_last_successful(uid, values)
    }
    fn home(&self, a: &Account) -> Result<PathBuf, String> {
        if self.dies_at == Some(a.uid.as_str()) {
            panic!("the run dies at account {}", a.uid);
        }
        self.inner.home(a)
    }
}

fn emls(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_run_that_dies_midway_sends_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut ldif = tree();
    ldif += &reseller(
        "1000001",
        &["desk@r1.example"],
        &["quota"],
        "R1 <backup@r1.example>",
        "sstNotificationWarningLevel: 80\nsstBackupWarningOn: TRUE\n",
    );
    // Accounts are read in uid order: the first is told before the run dies at the second.
    for uid in ["4000001", "4000002"] {
        let h = root.join("homes").join(uid);
        std::fs::create_dir_all(&h).unwrap();
        ldif += &account(
            uid,
            &h,
            "1000001",
            &format!("sstQuota: 1000\nsstBackupSize: 990\nsstIncrementSize: 5\nmail: it@{uid}.example\nsstNotificationWarningMedium: mail\n"),
        );
    }
    let ldif_path = root.join("world.ldif");
    std::fs::write(&ldif_path, ldif).unwrap();
    let dir = |dies_at| DiesAt {
        inner: ldif_directory(&ldif_path),
        dies_at,
    };
    let cfg = notify_config(root);
    let opts = Options {
        tasks: vec![Task::Quota],
        now: t("2026-11-21T07:00:00Z"),
        ..Default::default()
    };

    let d = dir(Some("4000002"));
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&d, &cfg, &opts)));
    assert!(died.is_err(), "the run was to die at the second account");
    assert!(emls(&cfg.outbox).is_empty(), "{:?}", emls(&cfg.outbox));

    let r = check(&dir(None), &cfg, &opts).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // Two accounts, each told and its reseller told: four messages, each once.
    assert_eq!(r.mails.len(), 4, "{:?}", r.mails);
    assert_eq!(emls(&cfg.outbox).len(), 4, "{:?}", emls(&cfg.outbox));
    assert!(emls(&cfg.outbox.join("staging")).is_empty());
}
