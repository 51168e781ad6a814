//! What the backup-server dashboard of `holdfast serve` shows, gathered from the files the
//! jobs write (never from a walk of the homes): the server status file (accounts, quota,
//! sizes, newest snapshot, job runs), the warning state (open warnings, the newest client
//! run per prefix) and the outbox (mails waiting, with their recipients and subjects).

use crate::state::{OpenWarning, PrefixRuns, State};
use crate::NotifyConfig;
use holdfast_server::status::Status;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct AccountRow {
    pub uid: String,
    pub quota: Option<u64>,
    /// Backup plus snapshots, the number quota is checked against.
    pub used: Option<u64>,
    /// Used of quota, 0-100 (None without a quota).
    pub percent: Option<u32>,
    pub last_snapshot: Option<String>,
    pub measured_at: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxMail {
    pub id: String,
    pub to: Vec<String>,
    pub subject: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct WarningRow {
    #[serde(flatten)]
    pub warning: OpenWarning,
    /// Addresses of the mails for this account still waiting in the outbox.
    pub waiting_to: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    pub job: String,
    pub at: Option<String>,
    pub accounts: u32,
    pub errors: u32,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub host: String,
    pub accounts: Vec<AccountRow>,
    pub prefixes: Vec<PrefixRuns>,
    pub warnings: Vec<WarningRow>,
    pub outbox: Vec<OutboxMail>,
    pub runs: Vec<JobRun>,
    /// Problems reading the sources (shown on the page, never fatal).
    pub notes: Vec<String>,
}

/// Reads one outbox mail's envelope (`<id>.json`, lettre's file transport) and subject.
fn outbox_mail(dir: &Path, id: &str) -> OutboxMail {
    let to = std::fs::read(dir.join(format!("{id}.json")))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.get("forward_path").and_then(|f| f.as_array()).map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default();
    let subject = std::fs::read(dir.join(format!("{id}.eml")))
        .ok()
        .and_then(|b| {
            let head = String::from_utf8_lossy(&b[..b.len().min(16 * 1024)]).into_owned();
            head.lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix("Subject: ").map(String::from))
        })
        .unwrap_or_default();
    OutboxMail {
        id: id.to_string(),
        to,
        subject,
    }
}

/// Everything the dashboard shows, as of now.
pub fn gather(server: &holdfast_server::ServerConfig, notify: &NotifyConfig) -> Dashboard {
    let status = Status::load(&server.state_dir);
    let mut notes = Vec::new();
    let accounts = status
        .accounts
        .iter()
        .map(|(uid, a)| {
            let used = match (a.backup_bytes, a.snapshot_bytes) {
                (None, None) => None,
                (b, s) => Some(b.unwrap_or(0) + s.unwrap_or(0)),
            };
            let percent = match (used, a.quota) {
                (Some(u), Some(q)) if q > 0 => {
                    Some(((u as f64 / q as f64) * 100.0).min(100.0) as u32)
                }
                _ => None,
            };
            AccountRow {
                uid: uid.clone(),
                quota: a.quota,
                used,
                percent,
                last_snapshot: a
                    .last_snapshot
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                measured_at: a
                    .measured_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
                error: a.error.clone(),
            }
        })
        .collect();
    let (open, prefixes) = if notify.state.exists() {
        match State::open(&notify.state) {
            Ok(s) => (
                s.open_warnings().unwrap_or_else(|e| {
                    notes.push(e.to_string());
                    Vec::new()
                }),
                s.prefix_runs().unwrap_or_else(|e| {
                    notes.push(e.to_string());
                    Vec::new()
                }),
            ),
            Err(e) => {
                notes.push(e.to_string());
                (Vec::new(), Vec::new())
            }
        }
    } else {
        (Vec::new(), Vec::new())
    };
    let mut ids: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(&notify.outbox)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.strip_suffix(".eml")?.to_string();
                    Some((e.metadata().ok()?.modified().ok()?, name))
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    let outbox: Vec<OutboxMail> = ids
        .iter()
        .map(|(_, id)| outbox_mail(&notify.outbox, id))
        .collect();
    let warnings = open
        .into_iter()
        .map(|w| {
            let mut to: Vec<String> = outbox
                .iter()
                .filter(|m| m.subject.contains(&w.account))
                .flat_map(|m| m.to.iter().cloned())
                .collect();
            to.sort();
            to.dedup();
            WarningRow {
                warning: w,
                waiting_to: to,
            }
        })
        .collect();
    let runs = status
        .runs
        .iter()
        .map(|(job, r)| JobRun {
            job: job.clone(),
            at: r.at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
            accounts: r.accounts,
            errors: r.errors,
            seconds: r.seconds,
        })
        .collect();
    Dashboard {
        host: if status.host.is_empty() {
            server.host_name()
        } else {
            status.host.clone()
        },
        accounts,
        prefixes,
        warnings,
        outbox,
        runs,
        notes,
    }
}

/// Prometheus lines for the warning state and the outbox (the status file's own metrics
/// come from `holdfast_server::metrics`).
pub fn metrics(d: &Dashboard) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP holdfast_server_open_warnings Warnings sent and not resolved, by account.\n\
         # TYPE holdfast_server_open_warnings gauge"
    );
    let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
    for a in &d.accounts {
        per.insert(&a.uid, 0);
    }
    for w in &d.warnings {
        *per.entry(&w.warning.account).or_default() += 1;
    }
    for (uid, n) in per {
        let _ = writeln!(
            o,
            "holdfast_server_open_warnings{{uid=\"{}\"}} {n}",
            esc(uid)
        );
    }
    let _ = writeln!(
        o,
        "# HELP holdfast_server_outbox_mails Mails waiting in the outbox.\n\
         # TYPE holdfast_server_outbox_mails gauge\nholdfast_server_outbox_mails {}",
        d.outbox.len()
    );
    let _ = writeln!(
        o,
        "# HELP holdfast_server_client_last_success_timestamp_seconds When the checks first saw the newest successful client run, by account and prefix.\n\
         # TYPE holdfast_server_client_last_success_timestamp_seconds gauge"
    );
    for p in &d.prefixes {
        if let Some(t) = p
            .last_success
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        {
            let _ = writeln!(
                o,
                "holdfast_server_client_last_success_timestamp_seconds{{uid=\"{}\",prefix=\"{}\"}} {}",
                esc(&p.account),
                esc(&p.prefix),
                t.timestamp()
            );
        }
    }
    o
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
