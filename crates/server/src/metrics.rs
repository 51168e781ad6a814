//! Prometheus text exposition (format 0.0.4) of the backup server's state: accounts, bytes,
//! quota, age of the newest snapshot, errors. `holdfast serve` returns [`render`] on
//! `/metrics`; it reads the status file the jobs write and never walks a tree.

use crate::status::Status;
use chrono::{DateTime, Utc};
use std::fmt::Write;

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// Renders `status` as of `now`.
pub fn render(status: &Status, now: DateTime<Utc>) -> String {
    let mut o = String::new();
    head(
        &mut o,
        "holdfast_server_accounts",
        "Backup accounts this server handles.",
    );
    let _ = writeln!(o, "holdfast_server_accounts {}", status.accounts.len());

    type Get = fn(&crate::status::AccountStatus) -> Option<u64>;
    let per_account: [(&str, &str, Get); 5] = [
        (
            "holdfast_server_quota_bytes",
            "Quota of the account (sstQuota).",
            |a| a.quota,
        ),
        (
            "holdfast_server_backup_bytes",
            "Bytes of the current backup (incoming/), each inode once.",
            |a| a.backup_bytes,
        ),
        (
            "holdfast_server_snapshot_bytes",
            "Bytes only the snapshots hold, each inode once.",
            |a| a.snapshot_bytes,
        ),
        (
            "holdfast_server_backup_allocated_bytes",
            "Disk space of the current backup.",
            |a| a.backup_allocated,
        ),
        (
            "holdfast_server_snapshot_allocated_bytes",
            "Disk space only the snapshots use.",
            |a| a.snapshot_allocated,
        ),
    ];
    for (name, help, get) in per_account {
        head(&mut o, name, help);
        for (uid, a) in &status.accounts {
            if let Some(v) = get(a) {
                let _ = writeln!(o, "{name}{{uid=\"{}\"}} {v}", escape(uid));
            }
        }
    }
    head(
        &mut o,
        "holdfast_server_last_snapshot_age_seconds",
        "Seconds since the newest snapshot of the account was taken.",
    );
    for (uid, a) in &status.accounts {
        if let Some(t) = a.last_snapshot {
            let age = (now - t).num_milliseconds().max(0) as f64 / 1000.0;
            let _ = writeln!(
                o,
                "holdfast_server_last_snapshot_age_seconds{{uid=\"{}\"}} {age}",
                escape(uid)
            );
        }
    }
    head(
        &mut o,
        "holdfast_server_account_error",
        "1 when the last run failed for the account (missing home, I/O error), else 0.",
    );
    for (uid, a) in &status.accounts {
        let _ = writeln!(
            o,
            "holdfast_server_account_error{{uid=\"{}\"}} {}",
            escape(uid),
            u8::from(a.error.is_some())
        );
    }
    head(
        &mut o,
        "holdfast_server_errors",
        "Accounts that failed in the last run of the job.",
    );
    for (job, r) in &status.runs {
        let _ = writeln!(
            o,
            "holdfast_server_errors{{job=\"{}\"}} {}",
            escape(job),
            r.errors
        );
    }
    head(
        &mut o,
        "holdfast_server_last_run_timestamp_seconds",
        "Unix time the job last ran.",
    );
    for (job, r) in &status.runs {
        if let Some(at) = r.at {
            let _ = writeln!(
                o,
                "holdfast_server_last_run_timestamp_seconds{{job=\"{}\"}} {}",
                escape(job),
                at.timestamp()
            );
        }
    }
    o
}

/// Renders the status file of `[server] state_dir` as of now.
pub fn render_from_config(cfg: &crate::ServerConfig) -> String {
    render(&Status::load(&cfg.state_dir), Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AccountStatus, RunStatus};

    #[test]
    fn renders_gauges_with_escaped_labels() {
        let now: DateTime<Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let mut s = Status::default();
        s.accounts.insert(
            "4000001".into(),
            AccountStatus {
                quota: Some(100),
                backup_bytes: Some(40),
                snapshot_bytes: Some(2),
                last_snapshot: Some("2026-11-21T11:00:00Z".parse().unwrap()),
                ..AccountStatus::default()
            },
        );
        s.accounts.insert(
            "we\"ird".into(),
            AccountStatus {
                error: Some("home missing".into()),
                ..AccountStatus::default()
            },
        );
        s.runs.insert(
            "size".into(),
            RunStatus {
                at: Some(now),
                accounts: 2,
                errors: 1,
                seconds: 0.5,
            },
        );
        let m = render(&s, now);
        assert!(m.contains("holdfast_server_accounts 2\n"), "{m}");
        assert!(m.contains("holdfast_server_backup_bytes{uid=\"4000001\"} 40\n"));
        assert!(m.contains("holdfast_server_last_snapshot_age_seconds{uid=\"4000001\"} 3600\n"));
        assert!(m.contains("holdfast_server_account_error{uid=\"we\\\"ird\"} 1\n"));
        assert!(m.contains("holdfast_server_errors{job=\"size\"} 1\n"));
        // every sample line is `name{labels} value` or `name value`
        for l in m.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
