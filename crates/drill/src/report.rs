//! What a drill measured: pass or fail, each step with its time, the recovery time, and the
//! data lost. Printed as text for an operator and as JSON for scripts and monitoring.

use holdfast_site::db::Reference;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One timed step of a drill (build the site, back up, destroy, restore, verify...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub secs: f64,
    /// Part of the recovery (counted in `recovery_secs`) rather than of the set-up.
    pub recovery: bool,
    pub detail: String,
}

/// One assertion of a drill; a drill passes when every check passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// The data a recovery did not bring back.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataLost {
    /// Seconds between the snapshot the site was restored from and the moment of loss:
    /// everything done on the site in that window is gone.
    pub restored_state_age_secs: Option<f64>,
    /// The snapshot restored from.
    pub snapshot: Option<String>,
    /// Files the restored database names that the repository does not have.
    pub missing: Vec<Reference>,
    /// Repository files the restored database does not know (newer than the backup).
    pub unknown: Vec<String>,
}

/// How big the drilled site was, to turn recovery times into rates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SiteSize {
    pub uploads: usize,
    /// Distinct gold files and their bytes.
    pub gold_bytes: u64,
    /// Distinct `files` entries and their bytes (what a full backup copies besides gold).
    pub files: usize,
    pub files_bytes: u64,
}

impl SiteSize {
    pub fn of(refs: &[Reference], uploads: usize) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut s = SiteSize {
            uploads,
            ..Default::default()
        };
        for r in refs {
            if seen.insert((r.kind.as_str(), r.name.as_str())) {
                if r.kind == "gold" {
                    s.gold_bytes += r.size;
                } else {
                    s.files += 1;
                    s.files_bytes += r.size;
                }
            }
        }
        s
    }
    /// Repository bytes: gold and files (a file named by both counts once on disk, twice
    /// here only if it is both an upload's gold and a member of another: rare).
    pub fn bytes(&self) -> u64 {
        self.gold_bytes + self.files_bytes
    }
}

/// One kill point of plug-pull-job: where the agent died and how the site came back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KillPoint {
    pub point: usize,
    pub upload: i32,
    /// The agent that was killed: `holdfast` (holdfast's unpacker, rows in one transaction)
    /// or `ununpack stand-in` (FOSSology's way: a row per file, each committed alone).
    #[serde(default)]
    pub agent: String,
    /// Seconds into the agent's run when it got SIGKILL.
    pub after_secs: f64,
    /// How far it had come (rows committed or not).
    pub phase: String,
    /// Repository files it had created.
    pub files_written: usize,
    /// Of those, files the power cut left short under their final name.
    pub truncated: usize,
    /// From the first check to a verified upload: the recovery time of this point.
    pub recovery_secs: f64,
    /// Files of the upload that were missing or short at the kill and are back.
    pub files_recovered: usize,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillReport {
    pub scenario: String,
    pub passed: bool,
    /// Seconds from the start of the recovery to a verified site.
    pub recovery_secs: f64,
    pub data_lost: DataLost,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    /// The scratch folder the drill ran in (kept with `--keep`, removed otherwise).
    pub scratch: String,
    /// Seed of the random choices (kill points), to repeat a drill exactly.
    pub seed: u64,
    /// plug-pull-job: each kill point; the drill's recovery time is the longest of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kill_points: Vec<KillPoint>,
    /// The site the drill built, before the disaster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteSize>,
    /// Recovery time per GB of repository (gold and files), from `site`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_secs_per_gb: Option<f64>,
}

impl DrillReport {
    pub fn new(scenario: &str, scratch: &str, seed: u64) -> Self {
        DrillReport {
            scenario: scenario.to_string(),
            passed: false,
            recovery_secs: 0.0,
            data_lost: DataLost::default(),
            steps: Vec::new(),
            checks: Vec::new(),
            scratch: scratch.to_string(),
            seed,
            kill_points: Vec::new(),
            site: None,
            rto_secs_per_gb: None,
        }
    }

    pub fn check(&mut self, what: &str, ok: bool, detail: impl Into<String>) -> bool {
        let detail = detail.into();
        if ok {
            tracing::info!("check passed: {what}");
        } else {
            tracing::warn!("check FAILED: {what}: {detail}");
        }
        self.checks.push(Check {
            what: what.to_string(),
            ok,
            detail,
        });
        ok
    }

    pub fn failed_checks(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    /// Sets `passed` and `recovery_secs` from the checks and steps.
    pub fn finish(&mut self) {
        self.passed = !self.checks.is_empty() && self.checks.iter().all(|c| c.ok);
        self.recovery_secs = self
            .steps
            .iter()
            .filter(|s| s.recovery)
            .map(|s| s.secs)
            .sum();
        // Kill points are separate disasters: the recovery time is the worst one's.
        if !self.kill_points.is_empty() {
            self.recovery_secs = self
                .kill_points
                .iter()
                .map(|k| k.recovery_secs)
                .fold(0.0, f64::max);
        }
        self.rto_secs_per_gb = self
            .site
            .as_ref()
            .filter(|s| s.bytes() > 0)
            .map(|s| self.recovery_secs / (s.bytes() as f64 / 1e9));
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(s, "drill {}: {verdict}", self.scenario);
        let _ = writeln!(s, "  recovery time: {:.1} s", self.recovery_secs);
        if let (Some(site), Some(per_gb)) = (&self.site, self.rto_secs_per_gb) {
            let _ = writeln!(
                s,
                "  site: {} uploads, {:.1} MB gold, {} files ({:.1} MB): {} per GB of repository",
                site.uploads,
                site.gold_bytes as f64 / 1e6,
                site.files,
                site.files_bytes as f64 / 1e6,
                human_secs(per_gb)
            );
        }
        let d = &self.data_lost;
        match (d.restored_state_age_secs, &d.snapshot) {
            (Some(age), Some(snap)) => {
                let _ = writeln!(
                    s,
                    "  data lost: work of the last {} (restored snapshot {snap}), {} file(s) missing, {} file(s) the database does not know",
                    human_secs(age),
                    d.missing.len(),
                    d.unknown.len()
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "  data lost: {} file(s) missing, {} file(s) the database does not know",
                    d.missing.len(),
                    d.unknown.len()
                );
            }
        }
        for m in d.missing.iter().take(20) {
            let _ = writeln!(
                s,
                "    missing: upload {} {} {}",
                m.upload_fk, m.kind, m.name
            );
        }
        for u in d.unknown.iter().take(20) {
            let _ = writeln!(s, "    unknown: {u}");
        }
        if !self.kill_points.is_empty() {
            let _ = writeln!(
                s,
                "  kill points:  #  upload  agent             killed at  phase                                   written  short  recovered  recovery"
            );
            for k in &self.kill_points {
                let _ = writeln!(
                    s,
                    "              {:>2}  {:>6}  {:<16}  {:>7.2} s  {:<38}  {:>7}  {:>5}  {:>9}  {:>6.1} s{}",
                    k.point,
                    k.upload,
                    k.agent,
                    k.after_secs,
                    k.phase,
                    k.files_written,
                    k.truncated,
                    k.files_recovered,
                    k.recovery_secs,
                    if k.passed { "" } else { "  FAILED" }
                );
            }
        }
        let _ = writeln!(s, "  steps:");
        for st in &self.steps {
            let mark = if st.recovery { "*" } else { " " };
            let _ = writeln!(
                s,
                "   {mark}{:>7.2} s  {}{}",
                st.secs,
                st.name,
                if st.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", st.detail)
                }
            );
        }
        let _ = writeln!(s, "  checks:");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "    [{}] {}{}",
                if c.ok { "ok" } else { "FAIL" },
                c.what,
                if c.ok || c.detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.detail)
                }
            );
        }
        let _ = writeln!(
            s,
            "  (* = recovery step; seed {}; scratch {})",
            self.seed, self.scratch
        );
        s
    }
}

pub fn human_secs(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 7200.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs < 172_800.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.1} days", secs / 86400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_only_when_every_check_passes() {
        let mut r = DrillReport::new("database-loss", "/tmp/x", 7);
        r.finish();
        assert!(!r.passed, "a drill that checked nothing did not pass");
        r.check("a", true, "");
        r.steps.push(Step {
            name: "restore".into(),
            secs: 2.0,
            recovery: true,
            detail: String::new(),
        });
        r.steps.push(Step {
            name: "build".into(),
            secs: 5.0,
            recovery: false,
            detail: String::new(),
        });
        r.finish();
        assert!(r.passed);
        assert_eq!(r.recovery_secs, 2.0);
        r.check("b", false, "two files missing");
        r.finish();
        assert!(!r.passed);
        let text = r.to_text();
        assert!(text.contains("FAILED"), "{text}");
        assert!(text.contains("[FAIL] b: two files missing"), "{text}");
        let back: DrillReport = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back.checks.len(), 2);
    }
}
