//! The directory module against a real slapd loaded with the shipped schema and example LDIF.

use holdfast_server::directory::{Directory, Error};
use holdfast_server::ServerConfig;
use holdfast_testkit::slapd::Slapd;

fn config(s: &Slapd) -> ServerConfig {
    ServerConfig {
        ldap_url: Some(s.url.clone()),
        bind_dn: Some(s.bind_dn.clone()),
        password_file: Some(s.password_file.clone()),
        base_dn: Some(s.base.clone()),
        ldap_timeout_secs: 5,
        ..ServerConfig::default()
    }
}

#[test]
fn reads_and_writes_the_stoney_tree_over_ldap() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = Slapd::start(tmp.path()).unwrap();
    let d = Directory::open(&config(&slapd)).unwrap();

    let accs = d.accounts_for_host("backup-01.stoney-cloud.org").unwrap();
    let uids: Vec<_> = accs.iter().map(|a| a.uid.as_str()).collect();
    assert_eq!(uids, ["4000001", "4000002"]);
    assert_eq!(accs[1].quota, Some(536870912));
    assert_eq!(accs[1].person_uid.as_deref(), Some("3000001"));
    assert!(accs[1].mail.is_empty());
    assert_eq!(accs[0].intervals.monthly, 3);
    assert_eq!(d.accounts().unwrap().len(), 3);

    // an injected filter matches nothing instead of everything
    assert!(d.account("*").unwrap().is_none());
    assert!(d.account("4000001)(uid=*").unwrap().is_none());
    assert!(d.accounts_for_host("*)(objectClass=*").unwrap().is_empty());
    // a uid that needs DN escaping reaches no other entry
    assert!(matches!(
        d.set_sizes("x,ou=people", 1, 1),
        Err(Error::NoAccount { .. })
    ));

    let p = d.person("3000001").unwrap().unwrap();
    assert_eq!(p.mail.len(), 2);
    assert_eq!(p.preferred_language.as_deref(), Some("en-GB"));
    let n = d.reseller_notifications("1000001").unwrap().unwrap();
    assert_eq!(n.mail_to.len(), 2);
    assert!(n.wants("unsuccessful"));
    let s = d.reseller_settings("1000001").unwrap().unwrap();
    assert_eq!(s.warning_level, Some(85));
    assert!(d.reseller_notifications("4242").unwrap().is_none());

    d.set_sizes("4000002", 1234567, 89).unwrap();
    let t = "2026-11-21T01:02:03Z".parse().unwrap();
    d.set_last_successful_backup("4000001", "pc-anna", t)
        .unwrap();
    d.set_last_successful_backup("4000001", "fossology", t)
        .unwrap();
    // what slapd holds, read with ldapsearch rather than our own client
    let out = slapd
        .ldapsearch("(uid=4000002)", &["sstBackupSize", "sstIncrementSize"])
        .unwrap();
    assert!(out.contains("sstBackupSize: 1234567"), "{out}");
    assert!(out.contains("sstIncrementSize: 89"), "{out}");
    let out = slapd
        .ldapsearch("(uid=4000001)", &["sstBackupLastSuccessfulBackup"])
        .unwrap();
    assert!(
        out.contains("sstBackupLastSuccessfulBackup: pc-anna:20261121T010203Z"),
        "{out}"
    );
    assert!(
        out.contains("sstBackupLastSuccessfulBackup: fossology:20261121T010203Z"),
        "{out}"
    );
    assert_eq!(
        out.matches("sstBackupLastSuccessfulBackup:").count(),
        2,
        "{out}"
    );
}

#[test]
fn ldap_down_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut slapd = Slapd::start(tmp.path()).unwrap();
    let cfg = config(&slapd);
    let d = Directory::open(&cfg).unwrap();
    slapd.stop();
    let e = Directory::open(&cfg)
        .err()
        .expect("open must fail when slapd is down");
    assert!(matches!(e, Error::Down { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&slapd.url) && msg.contains("ldap_url"),
        "{msg}"
    );
    // an open handle fails its next request instead of hanging
    let e = d.set_sizes("4000001", 1, 1).unwrap_err();
    assert!(matches!(e, Error::Ldap { .. }), "{e}");

    // wrong password: a bind error that names the DN, never the password
    let mut bad = cfg.clone();
    let pw = tmp.path().join("wrong.secret");
    std::fs::write(&pw, "not-the-password\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    bad.password_file = Some(pw);
    let tmp2 = tempfile::tempdir().unwrap();
    let slapd2 = Slapd::start(tmp2.path()).unwrap();
    bad.ldap_url = Some(slapd2.url.clone());
    let e = Directory::open(&bad).err().unwrap();
    assert!(matches!(e, Error::Bind { .. }), "{e}");
    assert!(!e.to_string().contains("not-the-password"));
}

#[test]
fn shipped_cn_config_schema_loads_into_slapd_d() {
    // stoney.ldif is the cn=config form of stoney.schema: slapadd it into a slapd.d tree
    let tmp = tempfile::tempdir().unwrap();
    let dir = holdfast_testkit::slapd::ldap_dir();
    let d = tmp.path().join("slapd.d");
    std::fs::create_dir_all(&d).unwrap();
    let mut ldif = String::from(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n",
    );
    for s in ["core", "cosine", "inetorgperson", "nis"] {
        ldif += &std::fs::read_to_string(format!("/etc/ldap/schema/{s}.ldif")).unwrap();
        ldif += "\n";
    }
    ldif += &std::fs::read_to_string(dir.join("stoney.ldif")).unwrap();
    let boot = tmp.path().join("boot.ldif");
    std::fs::write(&boot, ldif).unwrap();
    let out = std::process::Command::new(holdfast_testkit::require("slapadd"))
        .args(["-n", "0", "-F"])
        .arg(&d)
        .arg("-l")
        .arg(&boot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(holdfast_testkit::require("slaptest"))
        .arg("-F")
        .arg(&d)
        .arg("-u")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = std::fs::read_dir(d.join("cn=config/cn=schema"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(
        names.iter().any(|n| n.ends_with("stoney.ldif")),
        "{names:?}"
    );
}

#[test]
fn size_limits_are_reported_not_silently_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ldif = String::new();
    for i in 0..600 {
        ldif += &format!(
            "dn: uid=7{i:06},ou=accounts,ou=backup,ou=services,dc=stoney-cloud,dc=org\n\
             objectClass: account\nobjectClass: sstBackup\nuid: 7{i:06}\nhost: big.test\n\
             sstQuota: 1\n\n"
        );
    }
    let extra = tmp.path().join("many.ldif");
    std::fs::write(&extra, ldif).unwrap();
    let slapd = Slapd::start_with(
        &tmp.path().join("slapd"),
        &[
            holdfast_testkit::slapd::ldap_dir().join("example.ldif"),
            extra,
        ],
    )
    .unwrap();
    // an ordinary (anonymous) search hits slapd's default size limit of 500...
    let out = std::process::Command::new(holdfast_testkit::require("ldapsearch"))
        .args([
            "-x",
            "-LLL",
            "-H",
            &slapd.url,
            "-b",
            &slapd.base,
            "(host=big.test)",
            "dn",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "expected sizeLimitExceeded");
    // holdfast says so instead of working on a cut list...
    let mut cfg = ServerConfig {
        ldap_url: Some(slapd.url.clone()),
        ..ServerConfig::default()
    };
    let d = Directory::open(&cfg).unwrap();
    let e = d.accounts_for_host("big.test").unwrap_err();
    assert!(matches!(e, Error::SizeLimit { .. }), "{e}");
    assert!(e.to_string().contains("size=unlimited"), "{e}");
    // ...and a bind DN without the limit gets every account, in pages
    cfg.bind_dn = Some(slapd.bind_dn.clone());
    cfg.password_file = Some(slapd.password_file.clone());
    let d = Directory::open(&cfg).unwrap();
    assert_eq!(d.accounts_for_host("big.test").unwrap().len(), 600);
}

/// slapd restarted under a long run (an upgrade, a crash): the next request connects and
/// binds again instead of failing, and every later one of the run with it.
#[test]
fn a_restarted_slapd_is_reconnected_to() {
    let tmp = tempfile::tempdir().unwrap();
    let mut slapd = Slapd::start(tmp.path()).unwrap();
    let d = Directory::open(&config(&slapd)).unwrap();
    assert_eq!(d.accounts().unwrap().len(), 3);
    slapd.restart().unwrap();
    assert_eq!(d.accounts().unwrap().len(), 3);
    assert!(d.person("3000001").unwrap().is_some());
    d.set_sizes("4000002", 42, 7).unwrap();
    // Down for good: an error naming the server, not a hang.
    slapd.stop();
    match d.accounts() {
        Err(e) => assert!(e.to_string().contains(&slapd.url), "{e}"),
        Ok(a) => panic!("read {} accounts from a stopped slapd", a.len()),
    }
}
