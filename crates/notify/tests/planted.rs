//! What a client plants in its home is never followed: a FIFO, a link to `/dev/zero`, a
//! `.sepiola_backup` that links into another account, a prefix named with a newline. Each is a
//! finding of its prefix, the run does not wait on any of them (bounded loosely: a loaded machine
//! is slow, a blocking read never ends), and the other
//! prefixes and accounts are still read and written to LDAP (real slapd).
//!
//! Its own test binary, one test: it raises SIGTERM, and the stop flag is process-wide.

mod common;

use common::*;
use holdfast_notify::directory::LdapDirectory;
use holdfast_notify::run::{check, CheckError, Options};
use holdfast_testkit::slapd::Slapd;
use std::time::{Duration, Instant};

fn last_successful(dir: &LdapDirectory, uid: &str) -> Vec<String> {
    let a = dir.inner.account(uid).unwrap().unwrap();
    let mut v: Vec<String> = a
        .last_successful
        .iter()
        .map(|(p, t)| format!("{p}:{}", t.format("%Y%m%dT%H%M%SZ")))
        .collect();
    v.sort();
    v
}

#[test]
fn planted_files_are_findings_and_everything_else_goes_on() {
    holdfast_testkit::require("slapd");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cl = client("Online Backup Perl Script", "2.0.11");
    let mut ldif = tree();
    ldif += &reseller(
        "1000001",
        &["desk@r1.example"],
        &["unsuccessful"],
        "R1 <backup@r1.example>",
        "sstBackupWarningOn: TRUE\nsstNotificationWarningMedium: mail\n",
    );
    // The victim: another account whose files the attacker links to.
    let victim = root.join("homes/4000002");
    ended(
        &victim,
        "secret-pc",
        "2026-11-21T03:00:00+01:00",
        "7",
        "1",
        &cl,
    );
    ldif += &account("4000002", &victim, "1000001", "mail: v@example.org\n");
    // The attacker: one good prefix and four planted ones.
    let h = root.join("homes/4000001");
    ended(&h, "good", "2026-11-21T02:20:00+01:00", "1", "1", &cl);
    let inc = h.join("incoming");
    std::fs::create_dir_all(inc.join("cross")).unwrap();
    std::os::unix::fs::symlink(
        victim.join("incoming/secret-pc/.sepiola_backup"),
        inc.join("cross/.sepiola_backup"),
    )
    .unwrap();
    let m = meta(&h, "zero");
    std::os::unix::fs::symlink("/dev/zero", m.join("backupEnded.xml")).unwrap();
    let m = meta(&h, "fifo");
    nix::unistd::mkfifo(
        &m.join("backupEnded.xml"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    ended(&h, "new\nline", "2026-11-21T02:30:00+01:00", "2", "1", &cl);
    ldif += &account("4000001", &h, "1000001", "mail: a@example.org\n");
    // a homeDirectory that climbs out: refused by the one home rule, the run goes on
    ldif += &account(
        "4000003",
        std::path::Path::new("/srv/backup/../../etc"),
        "1000001",
        "mail: c@example.org\n",
    );
    let ldif_path = root.join("world.ldif");
    std::fs::write(&ldif_path, ldif).unwrap();
    let slapd = Slapd::start_with(&root.join("slapd"), &[ldif_path]).unwrap();
    let dir = LdapDirectory::new(&holdfast_server::ServerConfig {
        ldap_url: Some(slapd.url.clone()),
        bind_dn: Some(slapd.bind_dn.clone()),
        password_file: Some(slapd.password_file.clone()),
        base_dn: Some(BASE.into()),
        host: Some("backup-test".into()),
        ..Default::default()
    })
    .unwrap();
    let cfg = holdfast_notify::NotifyConfig {
        state: root.join("state/notify.sqlite"),
        outbox: root.join("outbox"),
        server_name: Some("backup-test".into()),
        ..Default::default()
    };
    let opts = Options {
        now: t("2026-11-21T12:00:00Z"),
        ..Default::default()
    };

    // A second run while one holds the lock is refused and changes nothing.
    let held = holdfast_core::lock::acquire(
        &root.join("state/check.lock"),
        holdfast_core::lock::LockMode::Exclusive,
    )
    .unwrap();
    assert!(matches!(check(&dir, &cfg, &opts), Err(CheckError::Busy(_))));
    drop(held);

    let t0 = Instant::now();
    let r = check(&dir, &cfg, &opts).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let f = |s: &str| r.findings.iter().filter(|x| x.contains(s)).count();
    assert_eq!(
        f("incoming/cross/.sepiola_backup is a symlink"),
        1,
        "{:#?}",
        r.findings
    );
    assert_eq!(
        f("incoming/zero/.sepiola_backup/backupEnded.xml is a symlink"),
        1
    );
    assert_eq!(
        f("incoming/fifo/.sepiola_backup/backupEnded.xml is a FIFO"),
        1
    );
    assert_eq!(f("not printable"), 1, "{:#?}", r.findings);
    assert_eq!(f("account 4000003: homeDirectory /srv/backup/../../etc is not an absolute path without '..'"), 1, "{:#?}", r.findings);
    assert_eq!(r.accounts, 3);
    // The attacker's good prefix is written; nothing of the victim's leaked into its entry.
    assert_eq!(last_successful(&dir, "4000001"), ["good:20261121T012000Z"]);
    assert_eq!(
        last_successful(&dir, "4000002"),
        ["secret-pc:20261121T020000Z"]
    );
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
    // Nothing was mailed about the victim's prefix to the attacker.
    assert!(r.mails.iter().all(|m| !m.body.contains("secret-pc")));

    // SIGTERM: the run stops between accounts, says so, and leaves the lock free
    holdfast_site::interrupt::install();
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM).unwrap();
    let r = check(&dir, &cfg, &opts).unwrap();
    assert!(
        r.interrupted && r.events.is_empty() && r.mails.is_empty(),
        "{r:?}"
    );
    assert!(!holdfast_core::lock::is_held(
        &root.join("state/check.lock")
    ));
}
