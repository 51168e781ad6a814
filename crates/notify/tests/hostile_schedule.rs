//! A client writes its own `scheduler.xml`: one that plans every minute since 1990, in many
//! prefixes, must not make the check list millions of instants per prefix.

mod common;

use common::*;
use holdfast_notify::run::{check, Options};
use std::time::{Duration, Instant};

/// A scheduler.xml that plans every minute since 1990, in many prefixes, costs the run
/// little: the misses are counted per day, not listed one by one (5 million per prefix).
#[test]
fn a_schedule_of_every_minute_for_decades_is_counted_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let h = root.join("homes/4000001");
    let cl = client("sepiola", "2.5.0");
    let minutes: String = (0..60)
        .map(|m| format!("<minute_selected>{m}</minute_selected>"))
        .collect();
    let hours: String = (0..24)
        .map(|h| format!("<hour_selected>{h}</hour_selected>"))
        .collect();
    for i in 0..100 {
        let prefix = format!("pc{i:03}");
        started(&h, &prefix, "1990-01-01T00:00:00+00:00", "1", &cl);
        std::fs::write(
            meta(&h, &prefix).join("scheduler.xml"),
            format!("<online_backup_schedule><custom_online_backup><minutes>{minutes}</minutes><hours>{hours}</hours><timezone>+00:00</timezone></custom_online_backup>{cl}</online_backup_schedule>"),
        )
        .unwrap();
    }
    let mut ldif = tree();
    ldif += &reseller(
        "1000001",
        &["desk@r1.example"],
        &["schedule"],
        "R1 <backup@r1.example>",
        "sstBackupWarningOn: TRUE\n",
    );
    ldif += &account("4000001", &h, "1000001", "mail: it@a.example\n");
    let ldif_path = root.join("world.ldif");
    std::fs::write(&ldif_path, ldif).unwrap();
    let opts = Options {
        tasks: vec![holdfast_notify::Task::Schedule],
        now: t("2026-11-21T10:00:00Z"),
        dry_run: true,
    };
    let t0 = Instant::now();
    let r = check(&ldif_directory(&ldif_path), &notify_config(root), &opts).unwrap();
    let took = t0.elapsed();
    assert_eq!(r.events.len(), 100, "{:?}", r.errors);
    // Bounded loosely (a loaded machine is slow); listing the instants takes minutes.
    assert!(took < Duration::from_secs(20), "{took:?}");
    // Ten years (the cap) of minutes: 3660 * 1440.
    assert!(r.mails[0].body.contains("5270400"), "{}", r.mails[0].body);
}
