//! End to end: real slapd with the stoney tree, client XML files in real homes, a real SMTP
//! server with STARTTLS and AUTH on loopback. Checks who gets which mail with which text,
//! that a second run sends nothing new, that a problem that clears is resolved once, that
//! SMTP down then up delivers everything once, and that templates override and fall back.

mod common;

use common::*;
use holdfast_notify::directory::LdapDirectory;
use holdfast_notify::mail::SmtpConfig;
use holdfast_notify::run::{check, Options};
use holdfast_notify::{NotifyConfig, Task};
use holdfast_testkit::slapd::Slapd;
use holdfast_testkit::smtp::{Smtp, SmtpOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

const NOW: &str = "2026-11-21T10:00:00Z";

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    slapd: Slapd,
    cfg: NotifyConfig,
}

fn home(root: &Path, uid: &str) -> PathBuf {
    let h = root.join("homes").join(uid);
    std::fs::create_dir_all(&h).unwrap();
    h
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let sep = |v: &str| client("sepiola", v);
    let good = sep("2.5.0");
    let mut ldif = tree();
    ldif += &reseller(
        "1000001",
        &["R1 Desk <desk@r1.example>"],
        &["quota", "schedule", "unsuccessful", "upgrade", "nobackup"],
        "R1 Backup <backup@r1.example>",
        "preferredLanguage: en\nsstNotificationWarningLevel: 85\nsstBackupWarningOn: TRUE\nsstBackupWarningDays: 0\nsstBackupWarningNumbers: 1\nsstNotificationWarningMedium: mail\n",
    );
    ldif += &reseller(
        "1000002",
        &["ops@r2.example", "Boss <boss@r2.example>"],
        &["quota"],
        "R2 <noreply@r2.example>",
        "sstNotificationWarningLevel: 90\nsstBackupWarningOn: TRUE\nsstNotificationWarningMedium: mail\n",
    );
    ldif += &person(
        "3000001",
        "Anna Muster",
        &["anna@x.example", "anna@home.example"],
        "de-CH",
    );
    ldif += &person("3000002", "Nomail Person", &[], "en");

    // 4000001: 90 % used, own mail; a healthy computer.
    let h = home(&root, "4000001");
    started(&h, "pc", "2026-11-21T02:00:05+01:00", "11", &good);
    ended(&h, "pc", "2026-11-21T02:20:00+01:00", "11", "1", &good);
    daily(&h, "pc", "02", "00", "+01:00", &good);
    ldif += &account("4000001", &h, "1000001", "mail: it@a1.example\nsstQuota: 10737418240\nsstBackupSize: 8589934592\nsstIncrementSize: 1073741824\n");
    // 4000002: 50 % used: no warning.
    let h = home(&root, "4000002");
    started(&h, "pc", "2026-11-21T02:00:05+01:00", "21", &good);
    ended(&h, "pc", "2026-11-21T02:20:00+01:00", "21", "1", &good);
    daily(&h, "pc", "02", "00", "+01:00", &good);
    // A second computer: the last run succeeded, a newer one is under way.
    ended(&h, "nas", "2026-11-20T02:30:00+01:00", "22", "1", &good);
    started(&h, "nas", "2026-11-21T09:30:00+00:00", "23", &good);
    ldif += &account(
        "4000002",
        &h,
        "1000001",
        "mail: it@a2.example\nsstQuota: 1000\nsstBackupSize: 400\nsstIncrementSize: 100\n",
    );
    // 4000003: last start four days ago, daily plan: schedule warning to the person (German).
    let h = home(&root, "4000003");
    started(&h, "pc-sched", "2026-11-17T02:00:00+01:00", "31", &good);
    ended(
        &h,
        "pc-sched",
        "2026-11-17T02:30:00+01:00",
        "31",
        "1",
        &good,
    );
    daily(&h, "pc-sched", "02", "00", "+01:00", &good);
    ldif += &account("4000003", &h, "1000001", "sstBelongsToPersonUID: 3000001\n");
    // 4000004: one computer failed, one started two days ago and never ended.
    let h = home(&root, "4000004");
    started(&h, "pc", "2026-11-21T02:00:00+01:00", "41", &good);
    ended(&h, "pc", "2026-11-21T02:05:00+01:00", "41", "0", &good);
    daily(&h, "pc", "02", "00", "+01:00", &good);
    started(&h, "srv", "2026-11-19T02:00:00+01:00", "42", &good);
    no_schedule(&h, "srv", &good);
    ldif += &account("4000004", &h, "1000001", "mail: it@a4.example\n");
    // 4000005: client too old.
    let h = home(&root, "4000005");
    let old = sep("2.1.0");
    started(&h, "laptop", "2026-11-21T02:00:00+01:00", "51", &old);
    ended(&h, "laptop", "2026-11-21T02:10:00+01:00", "51", "1", &old);
    daily(&h, "laptop", "02", "00", "+01:00", &old);
    ldif += &account("4000005", &h, "1000001", "mail: it@a5.example\n");
    // 4000006: never used for 30 days, customer warnings off: reseller only.
    let h = home(&root, "4000006");
    set_mtime(&h, t("2026-10-22T10:00:00Z"));
    ldif += &account(
        "4000006",
        &h,
        "1000001",
        "mail: it@a6.example\nsstBackupWarningOn: FALSE\n",
    );
    // 4000007: never used but new: nothing.
    let h = home(&root, "4000007");
    set_mtime(&h, t("2026-11-20T10:00:00Z"));
    ldif += &account("4000007", &h, "1000001", "mail: it@a7.example\n");
    // 4000008: reseller 2, 95 % used, the person has no mail: reseller only, R2's template.
    let h = home(&root, "4000008");
    started(&h, "pc", "2026-11-21T02:00:05+01:00", "81", &good);
    ended(&h, "pc", "2026-11-21T02:20:00+01:00", "81", "1", &good);
    ldif += &account(
        "4000008",
        &h,
        "1000002",
        "sstBelongsToPersonUID: 3000002\nsstQuota: 1000\nsstBackupSize: 950\nsstIncrementSize: 0\n",
    );
    // 4000009: the client quirks: -23:00 near midnight, -00:00, leading zeros, a truncated
    // end file and a garbage schedule on a second computer.
    let h = home(&root, "4000009");
    started(&h, "quirky", "2026-11-20T23:30:00-23:00", "91", &good);
    ended(&h, "quirky", "2026-11-20T23:40:00-23:00", "91", "01", &good);
    daily(&h, "quirky", "023", "030", "+01:00", &good);
    started(&h, "broken", "2026-11-21T01:00:00-00:00", "92", &good);
    std::fs::write(
        meta(&h, "broken").join("backupEnded.xml"),
        "<backup_ended><enddate>2026-11-2",
    )
    .unwrap();
    std::fs::write(
        meta(&h, "broken").join("scheduler.xml"),
        "\u{0}\u{1}garbage",
    )
    .unwrap();
    ldif += &account("4000009", &h, "1000001", "mail: it@a9.example\n");

    let ldif_path = root.join("world.ldif");
    std::fs::write(&ldif_path, ldif).unwrap();
    let slapd = Slapd::start_with(&root.join("slapd"), &[ldif_path]).unwrap();

    // Themes: R1 is the default reseller and has a broken customer quota template; R2
    // overrides the reseller quota message.
    let themes = root.join("themes");
    let r1 = themes.join("selfcare.r1.example/templates/services/backup");
    let r2 = themes.join("1000002/templates/services/backup");
    std::fs::create_dir_all(&r1).unwrap();
    std::fs::create_dir_all(&r2).unwrap();
    std::fs::write(
        r1.join("quota.customer.en.txt"),
        "Subject: {{ acount }}\n\nbroken\n",
    )
    .unwrap();
    std::fs::write(
        r2.join("quota.reseller.en.txt"),
        "Subject: R2 quota {{ account }}{% if resolved %} ok{% endif %}\n\n{% if resolved %}ok{% else %}{{ account }}: {{ used }}/{{ quota }} bytes = {{ percent }}% > {{ threshold }}%{% endif %}\n",
    )
    .unwrap();

    let mut cfg = NotifyConfig {
        state: root.join("state.sqlite"),
        outbox: root.join("outbox"),
        server_name: Some("backup-test".into()),
        themes_dir: Some(themes),
        default_reseller: Some("1000001".into()),
        ..Default::default()
    };
    cfg.themes
        .insert("1000001".into(), "selfcare.r1.example".into());
    cfg.min_versions.insert("Sepiola".into(), "2.4.0".into());
    World {
        _tmp: tmp,
        root,
        slapd,
        cfg,
    }
}

fn directory(w: &World) -> LdapDirectory {
    let sc = holdfast_server::ServerConfig {
        ldap_url: Some(w.slapd.url.clone()),
        bind_dn: Some(w.slapd.bind_dn.clone()),
        password_file: Some(w.slapd.password_file.clone()),
        base_dn: Some(BASE.into()),
        host: Some("backup-test".into()),
        ..Default::default()
    };
    LdapDirectory::new(&sc).unwrap()
}

/// An SMTP relay with STARTTLS and a login, in the world's folder.
fn tls_smtp(w: &World) -> Smtp {
    Smtp::start(
        &w.root.join("smtp"),
        SmtpOptions {
            tls: true,
            auth: Some(("holdfast".into(), "s3cret".into())),
        },
    )
    .unwrap()
}

fn smtp_cfg(s: &Smtp) -> SmtpConfig {
    let (u, p) = s.opts.auth.clone().unwrap();
    let pw = s.dir.join("smtp.secret");
    std::fs::write(&pw, format!("{p}\n")).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(s.port),
        security: "starttls".into(),
        username: Some(u),
        password_file: Some(pw),
        ca_file: Some(s.cert_pem()),
        timeout_secs: 10,
    }
}

fn opts(now: &str) -> Options {
    Options {
        now: t(now),
        ..Default::default()
    }
}

/// (subject, sorted envelope recipients) of every message.
fn summary(msgs: &[Value]) -> Vec<(String, Vec<String>)> {
    let mut v: Vec<(String, Vec<String>)> = msgs
        .iter()
        .map(|m| {
            let mut to: Vec<String> = m["rcpt_tos"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            to.sort();
            (m["subject"].as_str().unwrap().to_string(), to)
        })
        .collect();
    v.sort();
    v
}

fn find<'a>(msgs: &'a [Value], subject: &str) -> &'a Value {
    msgs.iter()
        .find(|m| m["subject"] == subject)
        .unwrap_or_else(|| panic!("no message {subject:?} in {:#?}", summary(msgs)))
}

#[test]
fn every_task_reaches_exactly_the_right_people() {
    holdfast_testkit::require("slapd");
    let mut w = world();
    let tls = tls_smtp(&w);
    w.cfg.smtp = Some(smtp_cfg(&tls));
    let dir = directory(&w);

    let r = check(&dir, &w.cfg, &opts(NOW)).unwrap();
    assert_eq!(r.accounts, 9);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.flush.sent, 12, "{:?}", r.flush);
    let msgs = tls.messages();
    let s = summary(&msgs);
    let desk = vec!["desk@r1.example".to_string()];
    let expected: Vec<(String, Vec<String>)> = vec![
        (
            "Backup failed (computer pc)".into(),
            vec!["it@a4.example".into()],
        ),
        (
            "Backup failed (computer srv)".into(),
            vec!["it@a4.example".into()],
        ),
        (
            "Backup space almost full (account 4000001)".into(),
            vec!["it@a1.example".into()],
        ),
        (
            "Geplante Backups wurden nicht ausgeführt (Computer pc-sched)".into(),
            vec!["anna@home.example".into(), "anna@x.example".into()],
        ),
        (
            "Please update your backup program (computer laptop)".into(),
            vec!["it@a5.example".into()],
        ),
        (
            "R2 quota 4000008".into(),
            vec!["boss@r2.example".into(), "ops@r2.example".into()],
        ),
        (
            "[nobackup] never used: account 4000006".into(),
            desk.clone(),
        ),
        ("[quota] 90.0% used: account 4000001".into(), desk.clone()),
        (
            "[schedule] 4 missed: account 4000003 prefix pc-sched".into(),
            desk.clone(),
        ),
        (
            "[unsuccessful] failed: account 4000004 prefix pc".into(),
            desk.clone(),
        ),
        (
            "[unsuccessful] never ended: account 4000004 prefix srv".into(),
            desk.clone(),
        ),
        (
            "[upgrade] sepiola 2.1.0: account 4000005 prefix laptop".into(),
            desk.clone(),
        ),
    ];
    assert_eq!(s, expected);
    // Every mail went out: the dashboard names the recipients from the rules, not the outbox.
    let d = holdfast_notify::dashboard::gather(&holdfast_server::ServerConfig::default(), &w.cfg);
    assert!(d.outbox.is_empty());
    let q = d
        .warnings
        .iter()
        .find(|x| x.warning.task == "quota" && x.warning.account == "4000001")
        .unwrap_or_else(|| panic!("{:?}", d.warnings));
    assert_eq!(
        q.warning.recipients,
        // (R1's sstMailTo carries a display name.)
        vec![
            "R1 Desk <desk@r1.example>".to_string(),
            "it@a1.example".into()
        ]
    );
    assert!(q.waiting_to.is_empty());
    for m in &msgs {
        assert_eq!(m["tls"], true);
        assert_eq!(m["auth"], "holdfast");
    }

    // Exact texts: the customer quota mail (built-in, after the broken R1 template fell
    // back) and R2's own reseller template.
    let q = find(&msgs, "Backup space almost full (account 4000001)");
    assert_eq!(q["mail_from"], "backup@r1.example");
    assert_eq!(
        q["body"].as_str().unwrap(),
        "Hello,\n\nYour backup account 4000001 uses 9.0 GiB of 10.0 GiB (90.0%), which is above the warning level of 85%.\n\
         Free: 1.0 GiB. When the space is full, backups stop.\n\n\
         Please delete data you no longer need from the backup, or ask your provider for more space.\n\n\
         -- \nstoney backup on backup-test\nThis message was sent automatically at 2026-11-21 10:00 UTC.\n"
    );
    assert_eq!(r.broken_templates.len(), 1, "{:?}", r.broken_templates);
    assert!(r.broken_templates[0]
        .contains("selfcare.r1.example/templates/services/backup/quota.customer.en.txt"));
    let r2 = find(&msgs, "R2 quota 4000008");
    assert_eq!(
        r2["body"].as_str().unwrap(),
        "4000008: 950/1000 bytes = 95.0% > 90%\n"
    );
    assert_eq!(r2["mail_from"], "noreply@r2.example");
    let sched = find(
        &msgs,
        "Geplante Backups wurden nicht ausgeführt (Computer pc-sched)",
    );
    let body = sched["body"].as_str().unwrap();
    assert!(body.starts_with("Guten Tag Anna Muster\n"), "{body}");
    assert!(
        body.contains("4 geplante Backups fehlen, das letzte am 2026-11-21 01:00 UTC"),
        "{body}"
    );
    let srv = find(&msgs, "Backup failed (computer srv)");
    assert!(srv["body"]
        .as_str()
        .unwrap()
        .contains("started at 2026-11-19 01:00 UTC but never finished"));

    // Nobody on the customer side for 4000008 (person without mail) is reported.
    assert!(
        r.nobody
            .iter()
            .any(|n| n.contains("4000008") && n.contains("3000002")),
        "{:?}",
        r.nobody
    );
    // The quirks are findings, not crashes.
    assert!(
        r.findings
            .iter()
            .any(|f| f.contains("broken/.sepiola_backup/backupEnded.xml")),
        "{:?}",
        r.findings
    );
    assert!(r
        .findings
        .iter()
        .any(|f| f.contains("broken/.sepiola_backup/scheduler.xml")));
    // sstBackupLastSuccessfulBackup written per prefix, with the -23:00 offset folded to +01:00.
    let out = w
        .slapd
        .ldapsearch("(uid=4000009)", &["sstBackupLastSuccessfulBackup"])
        .unwrap();
    assert!(
        out.contains("sstBackupLastSuccessfulBackup: quirky:20261120T224000Z"),
        "{out}"
    );
    let out = w
        .slapd
        .ldapsearch("(uid=4000002)", &["sstBackupLastSuccessfulBackup"])
        .unwrap();
    assert!(out.contains("nas:20261120T013000Z"), "{out}");
    assert!(out.contains("pc:20261121T012000Z"), "{out}");
    let out = w
        .slapd
        .ldapsearch("(uid=4000003)", &["sstBackupLastSuccessfulBackup"])
        .unwrap();
    assert!(out.contains("pc-sched:20261117T013000Z"), "{out}");

    // A second run an hour later sends nothing new.
    let r = check(&dir, &w.cfg, &opts("2026-11-21T11:00:00Z")).unwrap();
    assert!(r.mails.is_empty(), "{:?}", r.mails);
    assert_eq!(r.flush.sent, 0);
    assert_eq!(tls.messages().len(), 12);

    // The quota problem clears: one "resolved" mail per side, once.
    dir.inner.set_sizes("4000001", 1, 1).unwrap();
    let r = check(&dir, &w.cfg, &opts("2026-11-21T12:00:00Z")).unwrap();
    assert_eq!(r.resolved(), 1);
    let msgs = tls.messages();
    assert_eq!(msgs.len(), 14);
    let res = find(&msgs, "[quota] resolved: account 4000001");
    assert!(res["body"]
        .as_str()
        .unwrap()
        .contains("warning first sent 2026-11-21 10:00 UTC"));
    find(&msgs, "Resolved: backup space (account 4000001)");
    let r = check(&dir, &w.cfg, &opts("2026-11-21T13:00:00Z")).unwrap();
    assert!(r.mails.is_empty());
    // A day later the still-open problems are repeated (once per period).
    let r = check(&dir, &w.cfg, &opts("2026-11-22T10:30:00Z")).unwrap();
    assert!(r.events.iter().any(|e| e.task == Task::Upgrade && e.sent));
}

#[test]
fn smtp_down_then_up_delivers_everything_once() {
    let mut w = world();
    let mut smtp = Smtp::start(
        &w.root.join("smtp"),
        SmtpOptions {
            tls: true,
            auth: Some(("u".into(), "p".into())),
        },
    )
    .unwrap();
    w.cfg.smtp = Some(smtp_cfg(&smtp));
    let dir = directory(&w);
    smtp.stop();
    let r = check(&dir, &w.cfg, &opts(NOW)).unwrap();
    assert_eq!(r.mails.len(), 12);
    assert_eq!((r.flush.sent, r.flush.waiting), (0, 12));
    assert!(
        r.flush.error.as_deref().unwrap().contains("wait in"),
        "{:?}",
        r.flush
    );
    assert!(r.incomplete());
    smtp.restart().unwrap();
    assert!(smtp.messages().is_empty());
    let r = check(&dir, &w.cfg, &opts("2026-11-21T11:00:00Z")).unwrap();
    assert!(r.mails.is_empty(), "nothing new was decided");
    assert_eq!((r.flush.sent, r.flush.waiting), (12, 0));
    let r = check(&dir, &w.cfg, &opts("2026-11-21T12:00:00Z")).unwrap();
    assert_eq!(r.flush.sent, 0);
    assert_eq!(smtp.messages().len(), 12);
    assert_eq!(
        std::fs::read_dir(&w.cfg.outbox)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_file())
            .count(),
        0
    );
}

#[test]
fn dry_run_and_single_task_change_nothing() {
    let w = world();
    let dir = directory(&w);
    let o = Options {
        tasks: vec![Task::Schedule],
        dry_run: true,
        now: t(NOW),
    };
    let r = check(&dir, &w.cfg, &o).unwrap();
    let subjects: Vec<&str> = r.mails.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        vec![
            "Geplante Backups wurden nicht ausgeführt (Computer pc-sched)",
            "[schedule] 4 missed: account 4000003 prefix pc-sched"
        ]
    );
    assert!(r.last_successful_updates > 0);
    assert!(!w.cfg.state.exists() && !w.cfg.outbox.exists());
    let out = w
        .slapd
        .ldapsearch("(uid=4000003)", &["sstBackupLastSuccessfulBackup"])
        .unwrap();
    assert!(!out.contains("pc-sched"), "{out}");
}

fn rejected(w: &World) -> usize {
    std::fs::read_dir(w.cfg.outbox.join("rejected"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_refused_login_sets_nothing_aside_and_the_next_run_sends_everything() {
    let mut w = world();
    let smtp = tls_smtp(&w);
    let mut sc = smtp_cfg(&smtp);
    // A rotated password: the relay answers 535, a 5xx about the session, not the messages.
    let stale = w.root.join("stale.secret");
    std::fs::write(&stale, "old\n").unwrap();
    std::fs::set_permissions(&stale, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    sc.password_file = Some(stale);
    w.cfg.smtp = Some(sc);
    let dir = directory(&w);
    let r = check(&dir, &w.cfg, &opts(NOW)).unwrap();
    assert_eq!(r.mails.len(), 12);
    assert_eq!(
        (r.flush.sent, r.flush.waiting, r.flush.rejected),
        (0, 12, 0),
        "{:?}",
        r.flush
    );
    let e = r.flush.error.as_deref().unwrap();
    assert!(e.contains("535") && e.contains("wait in"), "{e}");
    assert!(r.incomplete());
    assert_eq!(rejected(&w), 0);

    // The password is fixed: the next run sends what waited, once.
    w.cfg.smtp = Some(smtp_cfg(&smtp));
    let r = check(&dir, &w.cfg, &opts("2026-11-21T11:00:00Z")).unwrap();
    assert!(r.mails.is_empty(), "nothing new was decided");
    assert_eq!(
        (r.flush.sent, r.flush.waiting, r.flush.rejected),
        (12, 0, 0)
    );
    assert!(!r.incomplete(), "{:?}", r.flush);
    assert_eq!(smtp.messages().len(), 12);
}

#[test]
fn a_refused_recipient_sets_only_its_message_aside_and_the_run_is_incomplete() {
    let mut w = world();
    let smtp = tls_smtp(&w);
    smtp.refuse(&["it@a5.example"]);
    w.cfg.smtp = Some(smtp_cfg(&smtp));
    // Nothing else to report: the refusal alone makes the run incomplete.
    std::fs::remove_file(
        w.root
            .join("themes/selfcare.r1.example/templates/services/backup/quota.customer.en.txt"),
    )
    .unwrap();
    let dir = directory(&w);
    let r = check(&dir, &w.cfg, &opts(NOW)).unwrap();
    assert!(r.errors.is_empty() && r.broken_templates.is_empty());
    assert_eq!(
        (r.flush.sent, r.flush.waiting, r.flush.rejected),
        (11, 0, 1),
        "{:?}",
        r.flush
    );
    assert!(r.incomplete(), "a message set aside needs a person");
    assert_eq!(rejected(&w), 1);
    assert_eq!(smtp.messages().len(), 11);
}

#[test]
fn a_dead_address_does_not_keep_the_warning_from_the_others() {
    let mut w = world();
    let smtp = tls_smtp(&w);
    // Anna's first mailbox was deleted; her second one works.
    smtp.refuse(&["anna@x.example"]);
    w.cfg.smtp = Some(smtp_cfg(&smtp));
    let dir = directory(&w);
    let r = check(&dir, &w.cfg, &opts(NOW)).unwrap();
    assert_eq!(
        (r.flush.sent, r.flush.waiting, r.flush.rejected),
        (12, 0, 0),
        "{:?}",
        r.flush
    );
    assert_eq!(r.flush.refused.len(), 1, "{:?}", r.flush);
    assert!(r.flush.refused[0].starts_with("anna@x.example: "));
    assert!(r.incomplete(), "the dead address is reported");
    let msgs = smtp.messages();
    let sched = find(
        &msgs,
        "Geplante Backups wurden nicht ausgeführt (Computer pc-sched)",
    );
    assert_eq!(sched["rcpt_tos"], serde_json::json!(["anna@home.example"]));
    assert_eq!(rejected(&w), 0);
}

/// One reseller's sender refused by the relay: its messages wait (the run is incomplete),
/// every other message goes out, and nothing is set aside.
#[test]
fn a_refused_sender_keeps_its_messages_waiting_and_not_the_others() {
    let mut w = world();
    let smtp = tls_smtp(&w);
    smtp.refuse(&["backup@r1.example"]);
    w.cfg.smtp = Some(smtp_cfg(&smtp));
    let dir = directory(&w);
    let r = check(&dir, &w.cfg, &opts(NOW)).unwrap();
    let held = r.flush.waiting;
    assert!(held > 0, "{:?}", r.flush);
    assert!(
        r.flush.sent > 0,
        "the other resellers' messages went out: {:?}",
        r.flush
    );
    assert_eq!(r.flush.rejected, 0, "{:?}", r.flush);
    assert!(r.incomplete());
    assert!(smtp
        .messages()
        .iter()
        .all(|m| m["mail_from"] != "backup@r1.example"));
    // The relay takes that sender again: the next run sends what waited.
    smtp.refuse(&[]);
    let r = check(&dir, &w.cfg, &opts("2026-11-21T11:00:00Z")).unwrap();
    assert_eq!((r.flush.sent, r.flush.waiting), (held, 0), "{:?}", r.flush);
    let r1 = smtp
        .messages()
        .iter()
        .filter(|m| m["mail_from"] == "backup@r1.example")
        .count();
    assert_eq!(r1, held, "only that sender's messages waited");
}
