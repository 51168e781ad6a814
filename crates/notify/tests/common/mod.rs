//! A stoney world for the notification tests: an LDIF tree with resellers, people and
//! accounts whose homes hold client XML files, a real slapd and a real SMTP server.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

pub const BASE: &str = "dc=stoney-cloud,dc=org";

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub fn tree() -> String {
    let mut s = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: stoney-cloud\no: stoney cloud\n\n"
    );
    for ou in [
        "ou=people",
        "ou=services",
        "ou=backup,ou=services",
        "ou=accounts,ou=backup,ou=services",
        "ou=configuration,ou=backup,ou=services",
        "ou=reseller,ou=configuration,ou=backup,ou=services",
    ] {
        let name = ou.split(',').next().unwrap().trim_start_matches("ou=");
        s += &format!("dn: {ou},{BASE}\nobjectClass: organizationalUnit\nou: {name}\n\n");
    }
    s
}

pub fn reseller(
    uid: &str,
    mail_to: &[&str],
    warnings: &[&str],
    from: &str,
    defaults: &str,
) -> String {
    let r = format!("uid={uid},ou=reseller,ou=configuration,ou=backup,ou=services,{BASE}");
    let mut s = format!("dn: {r}\nobjectClass: account\nuid: {uid}\n\n");
    s += &format!("dn: ou=notifications,{r}\nobjectClass: organizationalUnit\nobjectClass: sstBackupNotifications\nou: notifications\n");
    for m in mail_to {
        s += &format!("sstMailTo: {m}\n");
    }
    for w in warnings {
        s += &format!("sstNotificationWarning: {w}\n");
    }
    s += &format!("\ndn: ou=settings,{r}\nobjectClass: organizationalUnit\nobjectClass: sstBackupSettings\nou: settings\nsstMailFrom: {from}\n{defaults}\n");
    s
}

pub fn person(uid: &str, cn: &str, mails: &[&str], lang: &str) -> String {
    let mut s = format!(
        "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nobjectClass: sstPerson\nuid: {uid}\ncn: {cn}\nsn: {cn}\npreferredLanguage: {lang}\n"
    );
    for m in mails {
        s += &format!("mail: {m}\n");
    }
    s + "\n"
}

/// An account entry; `extra` holds further attribute lines.
pub fn account(uid: &str, home: &Path, reseller: &str, extra: &str) -> String {
    // sstQuota is required by the schema; without sizes the quota task cannot judge.
    let quota = if extra.contains("sstQuota") {
        ""
    } else {
        "sstQuota: 1099511627776\n"
    };
    format!(
        "dn: uid={uid},ou=accounts,ou=backup,ou=services,{BASE}\nobjectClass: account\nobjectClass: sstBackup\nobjectClass: sstRelationship\nuid: {uid}\nhost: backup-test\nhomeDirectory: {}\nsstIsActive: TRUE\nsstBelongsToResellerUID: {reseller}\nsstBelongsToCustomerUID: 2000001\n{quota}{extra}\n",
        home.display()
    )
}

pub fn meta(home: &Path, prefix: &str) -> PathBuf {
    let m = home.join("incoming").join(prefix).join(".sepiola_backup");
    std::fs::create_dir_all(&m).unwrap();
    m
}

pub fn client(id: &str, v: &str) -> String {
    format!("<client><identifier>{id}</identifier><version>{v}</version><operatingsystem>Linux</operatingsystem></client>")
}

pub fn started(home: &Path, prefix: &str, date: &str, id: &str, cl: &str) {
    std::fs::write(
        meta(home, prefix).join("backupStarted.xml"),
        format!("<?xml version=\"1.0\"?>\n<backup_started><startdate>{date}</startdate><id>{id}</id>{cl}</backup_started>\n"),
    )
    .unwrap();
}

pub fn ended(home: &Path, prefix: &str, date: &str, id: &str, ok: &str, cl: &str) {
    std::fs::write(
        meta(home, prefix).join("backupEnded.xml"),
        format!("<?xml version=\"1.0\"?>\n<backup_ended><enddate>{date}</enddate><id>{id}</id><success>{ok}</success>{cl}</backup_ended>\n"),
    )
    .unwrap();
}

/// Daily at `hh:mm` in `tz`, written with leading zeros as the clients do.
pub fn daily(home: &Path, prefix: &str, hh: &str, mm: &str, tz: &str, cl: &str) {
    std::fs::write(
        meta(home, prefix).join("scheduler.xml"),
        format!("<?xml version=\"1.0\"?>\n<online_backup_schedule><custom_online_backup><minutes><minute_selected>{mm}</minute_selected></minutes><hours><hour_selected>{hh}</hour_selected></hours><days_of_month><every_day_of_month>*</every_day_of_month></days_of_month><months><everymonth>*</everymonth></months><days_of_week><every_day_of_week>*</every_day_of_week></days_of_week><timezone>{tz}</timezone></custom_online_backup>{cl}</online_backup_schedule>\n"),
    )
    .unwrap();
}

pub fn no_schedule(home: &Path, prefix: &str, cl: &str) {
    std::fs::write(
        meta(home, prefix).join("scheduler.xml"),
        format!("<online_backup_schedule><no_schedule/>{cl}</online_backup_schedule>"),
    )
    .unwrap();
}

/// Sets a path's modification time (the age of an account's home).
pub fn set_mtime(p: &Path, when: DateTime<Utc>) {
    let st = std::process::Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(when.to_rfc3339())
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Notification settings with the state and outbox in `root`, no SMTP (the outbox is the
/// delivery).
pub fn notify_config(root: &Path) -> holdfast_notify::NotifyConfig {
    holdfast_notify::NotifyConfig {
        state: root.join("state.sqlite"),
        outbox: root.join("outbox"),
        server_name: Some("backup-test".into()),
        ..Default::default()
    }
}

/// The directory an LDIF file holds, as `holdfast server` reads one.
pub fn ldif_directory(ldif: &Path) -> holdfast_notify::directory::LdapDirectory {
    holdfast_notify::directory::LdapDirectory::new(&holdfast_server::ServerConfig {
        ldif: Some(ldif.to_path_buf()),
        base_dn: Some(BASE.into()),
        host: Some("backup-test".into()),
        ..Default::default()
    })
    .unwrap()
}
