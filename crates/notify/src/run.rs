//! One check run over every account: read, judge, write `sstBackupLastSuccessfulBackup`,
//! tell the recipients, flush the outbox.
//!
//! A warning is sent when its task reports `Warn` and the state store says it is due (never
//! sent, or last sent a period ago); a task that reports `Clear` for a warning that was sent
//! gets one "resolved" message. Nothing about one account (a bad file, a missing person, a
//! broken template, an unreachable person lookup) stops the others: each becomes a line in
//! the [`Report`]. A dry run judges and renders everything but writes nothing: no mail, no
//! state, no directory change.

use crate::checks::{self, Outcome};
use crate::client::{self, PrefixFiles};
use crate::mail::{Flush, Mail, MailError, Mailer};
use crate::model::{Account, Audience, Directory, Reseller, Task};
use crate::recipients;
use crate::state::{BeginError, Key, State, StateError};
use crate::NotifyConfig;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot list the backup accounts: {0}")]
    Accounts(String),
    #[error(transparent)]
    State(#[from] StateError),
    /// Another run holds the state (exit code 4 in the CLI).
    #[error("another check run is using {0}; wait for it to finish")]
    Busy(String),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Lock(holdfast_core::lock::LockError),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub tasks: Vec<Task>,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tasks: Task::ALL.to_vec(),
            dry_run: false,
            now: Utc::now(),
        }
    }
}

/// One warning or resolution decided in a run.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub task: Task,
    pub account: String,
    pub prefix: String,
    pub resolved: bool,
    /// False when the warning was already sent within the period (nothing sent again).
    pub sent: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub accounts: usize,
    pub prefixes: usize,
    pub events: Vec<Event>,
    /// Messages written to the outbox (or, in a dry run, that would be).
    pub mails: Vec<Mail>,
    /// Bad client files and directory values.
    pub findings: Vec<String>,
    /// Warnings that found nobody to tell on one side, and skipped addresses.
    pub nobody: Vec<String>,
    pub broken_templates: Vec<String>,
    /// `sstBackupLastSuccessfulBackup` values written (or that would be).
    pub last_successful_updates: usize,
    pub errors: Vec<String>,
    pub flush: Flush,
    /// A stop signal ended the run between accounts (what was sent is remembered; queued
    /// messages wait in the outbox for the next run).
    pub interrupted: bool,
    /// Seconds spent listing the accounts, judging them, and flushing the outbox.
    pub seconds: Timing,
}

#[derive(Debug, Default, Serialize)]
pub struct Timing {
    pub directory: f64,
    pub accounts: f64,
    pub flush: f64,
}

impl Report {
    pub fn warnings(&self) -> usize {
        self.events.iter().filter(|e| !e.resolved && e.sent).count()
    }
    pub fn resolved(&self) -> usize {
        self.events.iter().filter(|e| e.resolved).count()
    }
    /// True when the run left something the operator must look at (a message or recipient
    /// the SMTP server refused for good is one: it waits in `outbox/rejected/`, or the
    /// directory holds a dead address).
    pub fn incomplete(&self) -> bool {
        !self.errors.is_empty()
            || !self.broken_templates.is_empty()
            || self.flush.error.is_some()
            || self.flush.rejected > 0
            || !self.flush.refused.is_empty()
    }
}

struct Ctx<'a> {
    cfg: &'a NotifyConfig,
    dir: &'a dyn Directory,
    state: State,
    mailer: Option<Mailer>,
    templates: crate::templates::Templates,
    limits: checks::Limits,
    opts: &'a Options,
    server: String,
    resellers: HashMap<String, Option<Reseller>>,
    report: Report,
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Runs the checks over every account of `dir`.
pub fn check(
    dir: &dyn Directory,
    cfg: &NotifyConfig,
    opts: &Options,
) -> Result<Report, CheckError> {
    // One run at a time: the lock sits beside the state file.
    let _lock = if opts.dry_run {
        None
    } else {
        let dir = cfg
            .state
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let lock = holdfast_core::lock::acquire(
            &dir.join("check.lock"),
            holdfast_core::lock::LockMode::Exclusive,
        );
        Some(lock.map_err(|e| match e {
            holdfast_core::lock::LockError::Held { path, .. } => {
                CheckError::Busy(path.display().to_string())
            }
            e => CheckError::Lock(e),
        })?)
    };
    let state = if opts.dry_run {
        if cfg.state.exists() {
            State::open(&cfg.state)?
        } else {
            State::in_memory()
        }
    } else {
        State::open(&cfg.state)?
    };
    let mailer = if opts.dry_run {
        None
    } else {
        Some(Mailer::new(&cfg.outbox, cfg.smtp.as_ref())?)
    };
    let server = cfg
        .server_name
        .clone()
        .unwrap_or_else(|| nix_hostname().unwrap_or_else(|| "backup server".into()));
    let mut c = Ctx {
        cfg,
        dir,
        state,
        mailer,
        templates: cfg.templates(),
        limits: cfg.limits(),
        opts,
        server,
        resellers: HashMap::new(),
        report: Report::default(),
    };
    let t0 = std::time::Instant::now();
    let accounts = dir.accounts().map_err(CheckError::Accounts)?;
    c.report.seconds.directory = t0.elapsed().as_secs_f64();
    let t0 = std::time::Instant::now();
    c.report.accounts = accounts.len();
    c.state.begin().map_err(|e| match e {
        BeginError::Busy(p) => CheckError::Busy(p),
        BeginError::State(s) => CheckError::State(s),
    })?;
    if let Some(m) = &c.mailer {
        let n = m.discard_staged()?;
        if n > 0 {
            tracing::warn!(
                messages = n,
                "dropped the messages of a run that ended before it recorded them; this run queues them again"
            );
        }
    }
    for a in accounts {
        if holdfast_site::interrupt::requested() {
            c.report.interrupted = true;
            break;
        }
        c.account(a)?;
    }
    c.report.seconds.accounts = t0.elapsed().as_secs_f64();
    let t0 = std::time::Instant::now();
    // The messages join the outbox just before the state that says they were sent is
    // committed: a run that dies earlier sends nothing and is done again by the next. The
    // flush comes after, under the run's lock, so two runs never send one message twice.
    if let Some(m) = &c.mailer {
        m.publish()?;
    }
    c.state.commit()?;
    if let Some(m) = c.mailer.as_ref().filter(|_| !c.report.interrupted) {
        c.report.flush = m.flush();
        if let Some(e) = &c.report.flush.error {
            tracing::warn!("{e}");
        }
    }
    c.report.seconds.flush = t0.elapsed().as_secs_f64();
    Ok(c.report)
}

/// When an account's home was made (its age, for nobackup): the folder's birth time, or its
/// modification time when that is earlier (a home restored with its times) or the file system
/// keeps none. Not the modification time alone: the size job's `.quota` renews it every day.
fn made_at(home: &std::fs::Metadata) -> Option<DateTime<Utc>> {
    let born = home.created().ok();
    let changed = home.modified().ok();
    born.into_iter()
        .chain(changed)
        .min()
        .map(DateTime::<Utc>::from)
}

fn nix_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Ctx<'_> {
    /// The account's reseller, cached for the run; a failed look-up is not cached (the
    /// directory may answer the next account).
    fn reseller(&mut self, uid: Option<&str>) -> Result<Option<Reseller>, String> {
        let Some(uid) = uid else { return Ok(None) };
        if let Some(r) = self.resellers.get(uid) {
            return Ok(r.clone());
        }
        let r = self
            .dir
            .reseller(uid)
            .map_err(|e| format!("reseller {uid}: lookup failed: {e}"))?;
        self.resellers.insert(uid.to_string(), r.clone());
        Ok(r)
    }

    fn account(&mut self, mut a: Account) -> Result<(), CheckError> {
        // sstIsActive FALSE: out of service, as for the snapshot job. Its client no longer
        // runs, so every task would warn for ever; what was open is closed without a mail.
        if !a.active {
            if !self.opts.dry_run {
                let n = self.state.close_account(&a.uid)?;
                if n > 0 {
                    tracing::info!(
                        account = %a.uid,
                        warnings = n,
                        "sstIsActive is FALSE: its open warnings are closed, no more are sent"
                    );
                }
            }
            return Ok(());
        }
        // Without its reseller the account's settings (its defaults) and half its recipients
        // are unknown: its warnings wait for the next run rather than go to nobody.
        let reseller = match self.reseller(a.reseller_uid.as_deref()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("account {}: {e}; its warnings wait for the next run", a.uid);
                self.report.errors.push(format!(
                    "account {}: {e}; its warnings wait for the next run",
                    a.uid
                ));
                return Ok(());
            }
        };
        if let Some(r) = &reseller {
            a.apply_defaults(&r.settings);
        }
        let now = self.opts.now;
        // a home that cannot be resolved is reported; the account-wide tasks still run
        let (prefixes, errs, created) = match self.dir.home(&a) {
            Ok(home) => {
                let (p, e) = client::read_account(&home);
                let created = std::fs::metadata(&home).ok().and_then(|m| made_at(&m));
                (p, e, created)
            }
            Err(e) => {
                let e = e
                    .strip_prefix(&format!("account {}: ", a.uid))
                    .map(str::to_string)
                    .unwrap_or(e);
                (Vec::new(), vec![e], None)
            }
        };
        for e in errs {
            tracing::warn!("account {}: {e}", a.uid);
            self.report.findings.push(format!("account {}: {e}", a.uid));
        }
        self.report.prefixes += prefixes.len();
        for p in &prefixes {
            for f in &p.findings {
                tracing::warn!("account {}: {f}", a.uid);
                self.report.findings.push(format!("account {}: {f}", a.uid));
            }
        }
        self.update_last_successful(&mut a, &prefixes);

        for task in self.opts.tasks.clone() {
            if task.per_prefix() {
                for p in &prefixes {
                    let outcome = match task {
                        Task::Schedule => checks::schedule(&a, p, now, &self.limits),
                        Task::Unsuccessful => {
                            let failures = self.failures(&a, p)?;
                            checks::unsuccessful(&a, p, failures, now, &self.limits)
                        }
                        _ => checks::upgrade(p, &self.limits),
                    };
                    self.act(&a, reseller.as_ref(), task, &p.prefix, outcome)?;
                }
            } else {
                let outcome = match task {
                    Task::Quota => checks::quota(&a),
                    _ => checks::nobackup(&a, created, &prefixes, now, &self.limits),
                };
                self.act(&a, reseller.as_ref(), task, "", outcome)?;
            }
        }
        Ok(())
    }

    fn failures(&mut self, a: &Account, p: &PrefixFiles) -> Result<u32, CheckError> {
        let Some(run) = checks::last_run_failed(p, self.opts.now, &self.limits) else {
            return Ok(0);
        };
        Ok(if self.opts.dry_run {
            self.state
                .failures_with(&a.uid, &p.prefix, &run.key, run.failed)?
        } else {
            self.state
                .record_run(&a.uid, &p.prefix, &run.key, run.failed, self.opts.now)?
        })
    }

    /// A prefix whose last finished run succeeded gets its `sstBackupLastSuccessfulBackup`
    /// moved up (also while a newer run is under way: the ended file is still a success).
    fn update_last_successful(&mut self, a: &mut Account, prefixes: &[PrefixFiles]) {
        for p in prefixes {
            let Some(e) = &p.ended else { continue };
            // an unstorable name was already reported as a finding of its prefix
            if !e.success || !client::printable_prefix(&p.prefix) {
                continue;
            }
            let end = e.end.with_timezone(&Utc);
            if a.last_successful_at(&p.prefix).is_some_and(|t| t >= end) {
                continue;
            }
            // one value per write, so one refused prefix does not hold back the others
            let value = [(p.prefix.clone(), end)];
            if !self.opts.dry_run {
                if let Err(e) = self.dir.set_last_successful(&a.uid, &value) {
                    self.report.errors.push(format!(
                        "account {} prefix {:?}: cannot write sstBackupLastSuccessfulBackup: {e}",
                        a.uid, p.prefix
                    ));
                    continue;
                }
            }
            self.report.last_successful_updates += 1;
            a.last_successful.insert(p.prefix.clone(), end);
        }
    }

    fn act(
        &mut self,
        a: &Account,
        reseller: Option<&Reseller>,
        task: Task,
        prefix: &str,
        outcome: Outcome,
    ) -> Result<(), CheckError> {
        let key = Key {
            task: task.keyword(),
            account: &a.uid,
            prefix,
        };
        match outcome {
            Outcome::Unknown(why) => {
                tracing::debug!(account = %a.uid, prefix, %task, "not judged: {why}");
            }
            Outcome::Warn(vars) => {
                let period = Duration::hours(self.cfg.period_hours as i64);
                let due = self.state.due(&key, self.opts.now, period)?;
                let since = self.state.active_since(&key)?;
                self.report.events.push(Event {
                    task,
                    account: a.uid.clone(),
                    prefix: prefix.into(),
                    resolved: false,
                    sent: due,
                });
                if due {
                    let since = since.unwrap_or(self.opts.now);
                    let Some(to) = self.send(a, reseller, task, prefix, vars, false, since)? else {
                        return Ok(());
                    };
                    if !self.opts.dry_run {
                        self.state.mark_sent(&key, self.opts.now)?;
                        self.state.set_recipients(&key, &to)?;
                    }
                }
            }
            Outcome::Clear => {
                if let Some(since) = self.state.active_since(&key)? {
                    self.report.events.push(Event {
                        task,
                        account: a.uid.clone(),
                        prefix: prefix.into(),
                        resolved: true,
                        sent: true,
                    });
                    if self
                        .send(a, reseller, task, prefix, Map::new(), true, since)?
                        .is_none()
                    {
                        return Ok(());
                    }
                    if !self.opts.dry_run {
                        self.state.mark_resolved(&key)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Queues the message of each side; returns who the rules named, or None when no side's
    /// message could be queued (the caller then remembers nothing, and the next run tries
    /// again).
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        a: &Account,
        reseller: Option<&Reseller>,
        task: Task,
        prefix: &str,
        vars: Map<String, Value>,
        resolved: bool,
        since: DateTime<Utc>,
    ) -> Result<Option<Vec<String>>, CheckError> {
        let r = recipients::resolve(a, task, reseller, self.dir);
        if let Some(e) = r.lookup_failed {
            // Nothing is queued and nothing remembered: the next run tells them.
            let e = format!("{e}; {task} kept for the next run");
            tracing::error!("{e}");
            self.report.errors.push(e);
            if let Some(ev) = self.report.events.last_mut() {
                ev.sent = false;
            }
            return Ok(None);
        }
        let mut named: Vec<String> = r.customer.iter().chain(&r.reseller).cloned().collect();
        named.sort();
        named.dedup();
        for n in &r.notes {
            tracing::info!("{n}");
        }
        // A customer who turned warnings off is a choice, not a gap.
        self.report.nobody.extend(
            r.notes
                .iter()
                .filter(|n| !n.contains("is not TRUE") && !n.contains(", not mail)"))
                .cloned(),
        );
        let from = r
            .from
            .clone()
            .unwrap_or_else(|| self.cfg.default_from.clone());
        let sides = [
            (Audience::Customer, &r.customer, r.customer_language.clone()),
            (Audience::Reseller, &r.reseller, r.reseller_language.clone()),
        ];
        // Sides whose message was queued, and sides whose message could not be made.
        let (mut queued, mut failed) = (0, 0);
        for (audience, to, lang) in sides {
            if to.is_empty() {
                continue;
            }
            let mut v = json!({
                "task": task.keyword(),
                "audience": audience.name(),
                "resolved": resolved,
                "since": ts(since),
                "account": a.uid,
                "prefix": prefix,
                "customer": a.customer_uid.clone().unwrap_or_default(),
                "reseller": a.reseller_uid.clone().unwrap_or_default(),
                "person": r.person_name.clone().unwrap_or_default(),
                "server": self.server,
                "now": ts(self.opts.now),
                "language": lang.clone().unwrap_or_else(|| self.cfg.default_language.clone()),
            });
            if let Value::Object(m) = &mut v {
                m.extend(vars.clone());
                if resolved {
                    // The resolved branch of a template may still name the task's values.
                    if let Value::Object(sample) =
                        crate::templates::sample_vars(task, audience, true)
                    {
                        for (k, s) in sample {
                            m.entry(k).or_insert(match s {
                                Value::Number(_) => json!(0),
                                _ => json!(""),
                            });
                        }
                    }
                }
            }
            let mut broken = Vec::new();
            let rendered = self.templates.render(
                a.reseller_uid.as_deref(),
                task,
                audience,
                lang.as_deref(),
                &v,
                &mut broken,
            );
            for b in broken {
                let line = b.to_string();
                if !self.report.broken_templates.contains(&line) {
                    self.report.broken_templates.push(line);
                }
            }
            let Some(rendered) = rendered else {
                self.report.errors.push(format!(
                    "account {}: no template for {task} ({}) rendered; message not sent",
                    a.uid,
                    audience.name()
                ));
                failed += 1;
                continue;
            };
            let mail = Mail {
                from: from.clone(),
                to: to.clone(),
                subject: rendered.subject,
                body: rendered.body,
            };
            if let Some(m) = &self.mailer {
                match m.queue(&mail) {
                    Ok((_, notes)) => self
                        .report
                        .nobody
                        .extend(notes.into_iter().map(|n| format!("account {}: {n}", a.uid))),
                    Err(e @ MailError::Message { .. }) => {
                        self.report.errors.push(format!("account {}: {e}", a.uid));
                        failed += 1;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            queued += 1;
            self.report.mails.push(mail);
        }
        if failed > 0 && queued == 0 {
            // Nobody was told: nothing is remembered, so the next run tries again.
            if let Some(ev) = self.report.events.last_mut() {
                ev.sent = false;
            }
            return Ok(None);
        }
        Ok(Some(named))
    }
}

/// Reads a `--now` value: RFC 3339 (`2026-11-21T10:00:00Z`).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2026-11-21T10:00:00Z: {e}"))
}
