//! Each branch of the seed's recipient rule, through a real slapd and a real SMTP server:
//! warning off -> the customer is not told; the account's `mail` AND medium `mail` -> the
//! account's addresses; otherwise (medium `sms`, medium unset, no mail) -> the person's
//! `mail`; a person without mail or no person -> nobody, noted. The reseller is told
//! independently, only for the tasks it lists; an account without `sstBackupWarningOn` takes
//! its reseller's default. Every delivered message carries MIME-Version, Message-ID and Date.

mod common;

use common::*;
use holdfast_notify::directory::LdapDirectory;
use holdfast_notify::mail::SmtpConfig;
use holdfast_notify::run::{check, Options};
use holdfast_notify::{NotifyConfig, Task};
use holdfast_testkit::slapd::Slapd;
use holdfast_testkit::smtp::{Smtp, SmtpOptions};
use std::collections::BTreeMap;

#[test]
fn every_branch_of_the_seed_rule_gets_exactly_its_mails() {
    holdfast_testkit::require("slapd");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut ldif = tree();
    // R1 wants quota warnings and turns customer warnings on by default; R2 wants none.
    ldif += &reseller(
        "1000001",
        &["desk@r1.example"],
        &["quota"],
        "R1 <backup@r1.example>",
        "sstNotificationWarningLevel: 80\nsstBackupWarningOn: TRUE\n",
    );
    ldif += &reseller(
        "1000002",
        &["desk@r2.example"],
        &["schedule"],
        "R2 <backup@r2.example>",
        "sstNotificationWarningLevel: 80\n",
    );
    ldif += &person(
        "3000001",
        "Anna",
        &["anna@p.example", "anna2@p.example"],
        "en",
    );
    ldif += &person("3000002", "Nomail", &[], "en");
    let full = "sstQuota: 1000\nsstBackupSize: 900\nsstIncrementSize: 50\n";
    let on = "sstBackupWarningOn: TRUE\n";
    let accounts: [(&str, &str, String); 9] = [
        // own mail and medium mail: the account's addresses
        ("4000001", "1000001", format!("{on}mail: own@a.example\nmail: own2@a.example\nsstNotificationWarningMedium: mail\nsstBelongsToPersonUID: 3000001\n")),
        // own mail but medium sms: the person's
        ("4000002", "1000001", format!("{on}mail: own@b.example\nsstNotificationWarningMedium: sms\nsstBelongsToPersonUID: 3000001\n")),
        // own mail, no medium anywhere: the person's
        ("4000003", "1000001", format!("{on}mail: own@c.example\nsstBelongsToPersonUID: 3000001\n")),
        // no own mail, medium mail: the person's
        ("4000004", "1000001", format!("{on}sstNotificationWarningMedium: mail\nsstBelongsToPersonUID: 3000001\n")),
        // warnings off: the customer is not told (the reseller still is)
        ("4000005", "1000001", "sstBackupWarningOn: FALSE\nmail: own@e.example\nsstNotificationWarningMedium: mail\n".into()),
        // the person has no mail: nobody on the customer side
        ("4000006", "1000001", format!("{on}sstBelongsToPersonUID: 3000002\n")),
        // no mail, no person: nobody
        ("4000007", "1000001", on.into()),
        // no sstBackupWarningOn: R1's default TRUE applies
        ("4000008", "1000001", "mail: own@h.example\nsstNotificationWarningMedium: mail\n".into()),
        // R2: warnings on by the account, but R2 does not list quota: the customer only
        ("4000009", "1000002", format!("{on}mail: own@i.example\nsstNotificationWarningMedium: mail\n")),
    ];
    for (uid, r, extra) in &accounts {
        let h = root.join("homes").join(uid);
        std::fs::create_dir_all(&h).unwrap();
        ldif += &account(uid, &h, r, &format!("{full}{extra}"));
    }
    let ldif_path = root.join("world.ldif");
    std::fs::write(&ldif_path, ldif).unwrap();
    let slapd = Slapd::start_with(&root.join("slapd"), &[ldif_path]).unwrap();
    let smtp = Smtp::start(
        &root.join("smtp"),
        SmtpOptions {
            tls: false,
            auth: None,
        },
    )
    .unwrap();
    let dir = LdapDirectory::new(&holdfast_server::ServerConfig {
        ldap_url: Some(slapd.url.clone()),
        bind_dn: Some(slapd.bind_dn.clone()),
        password_file: Some(slapd.password_file.clone()),
        base_dn: Some(BASE.into()),
        host: Some("backup-test".into()),
        ..Default::default()
    })
    .unwrap();
    let cfg = NotifyConfig {
        state: root.join("state.sqlite"),
        outbox: root.join("outbox"),
        server_name: Some("backup-test".into()),
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(smtp.port),
            security: "none".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let opts = Options {
        tasks: vec![Task::Quota],
        now: t("2026-11-21T12:00:00Z"),
        ..Default::default()
    };
    let r = check(&dir, &cfg, &opts).unwrap();
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    assert_eq!(r.flush.sent, r.mails.len(), "{:?}", r.flush);

    // account -> (customer recipients, reseller recipients), from what SMTP received
    let mut got: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let msgs = smtp.messages();
    for m in &msgs {
        let subject = m["subject"].as_str().unwrap();
        let uid = subject
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 7)
            .unwrap()
            .to_string();
        let mut to: Vec<String> = m["rcpt_tos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        to.sort();
        let e = got.entry(uid).or_default();
        if subject.starts_with("[quota]") {
            e.1.extend(to);
        } else {
            e.0.extend(to);
        }
    }
    let person = vec!["anna2@p.example".to_string(), "anna@p.example".into()];
    let desk = vec!["desk@r1.example".to_string()];
    let want: BTreeMap<String, (Vec<String>, Vec<String>)> = [
        (
            "4000001",
            (
                vec!["own2@a.example".into(), "own@a.example".into()],
                desk.clone(),
            ),
        ),
        ("4000002", (person.clone(), desk.clone())),
        ("4000003", (person.clone(), desk.clone())),
        ("4000004", (person.clone(), desk.clone())),
        ("4000005", (vec![], desk.clone())),
        ("4000006", (vec![], desk.clone())),
        ("4000007", (vec![], desk.clone())),
        ("4000008", (vec!["own@h.example".into()], desk.clone())),
        ("4000009", (vec!["own@i.example".into()], vec![])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want);
    // the gaps are reported, the choice (warnings off) is not a gap
    let nobody = r.nobody.join("\n");
    assert!(
        nobody.contains("account 4000006: person 3000002 has no mail"),
        "{nobody}"
    );
    assert!(
        nobody.contains("account 4000007: no mail and no sstBelongsToPersonUID"),
        "{nobody}"
    );
    assert!(!nobody.contains("4000005"), "{nobody}");

    // what mail clients expect of each delivered message
    for e in std::fs::read_dir(smtp.messages_dir()).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "eml") {
            let raw = std::fs::read_to_string(e.path()).unwrap();
            let head = raw.split("\r\n\r\n").next().unwrap();
            for h in [
                "MIME-Version: 1.0",
                "Message-ID: <",
                "Date: ",
                "Content-Type: text/plain; charset=utf-8",
            ] {
                assert!(head.contains(h), "{h} missing:\n{head}");
            }
        }
    }
}

/// The real directory, with slapd stopped at a chosen moment of the run: after the accounts
/// were listed (the reseller's look-up fails) or after the reseller was read (the person's).
struct GoesDown {
    inner: LdapDirectory,
    slapd: std::cell::RefCell<Slapd>,
    after_reseller: bool,
}

impl holdfast_notify::Directory for GoesDown {
    fn accounts(&self) -> Result<Vec<holdfast_notify::Account>, String> {
        let a = self.inner.accounts();
        if !self.after_reseller {
            self.slapd.borrow_mut().stop();
        }
        a
    }
    fn person(&self, uid: &str) -> Result<Option<holdfast_notify::Person>, String> {
        self.inner.person(uid)
    }
    fn reseller(&self, uid: &str) -> Result<Option<holdfast_notify::Reseller>, String> {
        let r = self.inner.reseller(uid);
        self.slapd.borrow_mut().stop();
        r
    }
    fn set_last_successful(
        &self,
        uid: &str,
        values: &[(String, chrono::DateTime<chrono::Utc>)],
    ) -> Result<(), String> {
        self.inner.set_last_successful(uid, values)
    }
    fn home(&self, a: &holdfast_notify::Account) -> Result<std::path::PathBuf, String> {
        self.inner.home(a)
    }
}

/// LDAP going down mid-run loses no warning: an account whose reseller or person cannot be
/// read gets no mail and nothing is remembered as told; the next run, with LDAP back, tells
/// the customer (through the person) and the reseller.
#[test]
fn a_warning_whose_recipients_could_not_be_read_waits_for_the_next_run() {
    holdfast_testkit::require("slapd");
    for after_reseller in [false, true] {
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
        ldif += &person("3000001", "Anna", &["anna@p.example"], "en");
        let h = root.join("homes/4000001");
        std::fs::create_dir_all(&h).unwrap();
        ldif += &account(
            "4000001",
            &h,
            "1000001",
            "sstQuota: 1000\nsstBackupSize: 990\nsstIncrementSize: 5\nsstBelongsToPersonUID: 3000001\n",
        );
        let ldif_path = root.join("world.ldif");
        std::fs::write(&ldif_path, ldif).unwrap();
        let cfg = NotifyConfig {
            state: root.join("state.sqlite"),
            outbox: root.join("outbox"),
            server_name: Some("backup-test".into()),
            ..Default::default()
        };
        let open = |slapd: &Slapd| {
            LdapDirectory::new(&holdfast_server::ServerConfig {
                ldap_url: Some(slapd.url.clone()),
                bind_dn: Some(slapd.bind_dn.clone()),
                password_file: Some(slapd.password_file.clone()),
                base_dn: Some(BASE.into()),
                host: Some("backup-test".into()),
                ..Default::default()
            })
            .unwrap()
        };
        let opts = |now: &str| Options {
            tasks: vec![Task::Quota],
            now: t(now),
            ..Default::default()
        };

        let slapd =
            Slapd::start_with(&root.join("slapd1"), std::slice::from_ref(&ldif_path)).unwrap();
        let down = GoesDown {
            inner: open(&slapd),
            slapd: std::cell::RefCell::new(slapd),
            after_reseller,
        };
        let r = check(&down, &cfg, &opts("2026-11-21T07:00:00Z")).unwrap();
        assert!(r.mails.is_empty(), "{after_reseller}: {:?}", r.mails);
        let errors = r.errors.join("\n");
        let want = if after_reseller {
            "cannot look up person 3000001"
        } else {
            "reseller 1000001: lookup failed"
        };
        assert!(errors.contains(want), "{after_reseller}: {errors}");
        assert!(errors.contains("next run"), "{errors}");

        // LDAP is back an hour later.
        let slapd = Slapd::start_with(&root.join("slapd2"), &[ldif_path]).unwrap();
        let r = check(&open(&slapd), &cfg, &opts("2026-11-21T08:00:00Z")).unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let mut to: Vec<String> = r.mails.iter().flat_map(|m| m.to.clone()).collect();
        to.sort();
        assert_eq!(
            to,
            vec!["anna@p.example".to_string(), "desk@r1.example".into()],
            "{after_reseller}"
        );
    }
}
