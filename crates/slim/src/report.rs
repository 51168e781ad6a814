//! `holdfast slim report`: files and bytes by class, per upload and for the whole site.
//!
//! Per upload, a pfile counts once in the class that must be kept (leaf, then artifact, then
//! container). The site total counts every pfile once, however many uploads name it, so the
//! per-upload rows add up to more than the total when uploads share files (`shared`).
//! `removable` is what `slim apply --containers` would free now, byte for byte.

use crate::inventory::{Class, Inventory, KeepReason, Verdict};
use holdfast_core::human_bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A number of files and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub files: u64,
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

/// A container that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptContainer {
    pub pfile_pk: i32,
    pub name: String,
    pub bytes: u64,
    pub present: bool,
    pub reasons: Vec<KeepReason>,
}

impl KeptContainer {
    pub fn why(&self) -> String {
        self.reasons
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadReport {
    pub upload_pk: i32,
    pub filename: String,
    pub gold_present: bool,
    pub gold_bytes: u64,
    pub leaves: Count,
    pub containers: Count,
    pub artifacts: Count,
    /// Files of this upload that other uploads name too.
    pub shared: Count,
    /// Containers `slim apply --containers` would remove now, and the bytes that frees.
    pub removable: Count,
    /// Containers removed on purpose (recorded): rebuildable from gold.
    pub slimmed: Count,
    /// Safe containers absent without a record yet (see [`Totals::unrecorded`]).
    pub unrecorded: Count,
    /// Files absent without a slimming record: damage, for `holdfast recover`.
    pub missing: Count,
    /// Containers that are not safe to remove.
    pub kept: Vec<KeptContainer>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub uploads: usize,
    /// Distinct gold files.
    pub gold: Count,
    pub leaves: Count,
    pub containers: Count,
    pub artifacts: Count,
    /// Files named by more than one upload (each counted once).
    pub shared: Count,
    pub removable: Count,
    pub slimmed: Count,
    /// Safe containers already absent but not recorded yet (a slim unpack never stored
    /// them); `slim apply` records them.
    pub unrecorded: Count,
    pub missing: Count,
    pub kept: Count,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub uploads: Vec<UploadReport>,
    pub total: Totals,
    /// Every container kept (each once), with its reasons.
    pub kept: Vec<KeptContainer>,
}

/// Builds the report from an inventory; `only` limits the per-upload rows (the totals stay
/// site-wide, since sharing and safety are).
pub fn report(inv: &Inventory, only: Option<i32>) -> Report {
    let verdicts = inv.verdicts();
    let mut kept: BTreeMap<i32, KeptContainer> = BTreeMap::new();
    for (pk, v) in &verdicts {
        if let Verdict::Keep(reasons) = v {
            let p = &inv.pfiles[pk];
            kept.insert(
                *pk,
                KeptContainer {
                    pfile_pk: *pk,
                    name: p.name.clone(),
                    bytes: p.size,
                    present: p.present(),
                    reasons: reasons.clone(),
                },
            );
        }
    }

    let mut rows: BTreeMap<i32, UploadReport> = inv
        .uploads
        .values()
        .filter(|u| only.is_none_or(|o| o == u.pk))
        .map(|u| {
            (
                u.pk,
                UploadReport {
                    upload_pk: u.pk,
                    filename: u.filename.clone(),
                    gold_present: u.gold_present,
                    gold_bytes: u
                        .gold
                        .and_then(|g| inv.pfiles.get(&g))
                        .map_or(0, |p| p.size),
                    ..Default::default()
                },
            )
        })
        .collect();
    let mut t = Totals {
        uploads: inv.uploads.len(),
        ..Default::default()
    };

    for p in inv.pfiles.values() {
        let uploads = p.uploads();
        let shared = uploads.len() > 1;
        if shared {
            t.shared.add(p.size);
        }
        if !p.gold_of.is_empty() {
            t.gold.add(p.size);
        }
        let Some(class) = p.class() else { continue };
        let verdict = verdicts.get(&p.pk);
        // Absent on purpose: a safe container with a record.
        let slimmed = matches!(verdict, Some(Verdict::Absent)) && p.recorded;
        let unrecorded = matches!(verdict, Some(Verdict::Absent)) && !p.recorded;
        let removable = matches!(verdict, Some(Verdict::Remove));
        // A short copy of a removable container is counted where it is going.
        let missing = !p.present() && !slimmed && !unrecorded && !removable;
        bump(
            &mut t.leaves,
            &mut t.artifacts,
            &mut t.containers,
            class,
            p.size,
        );
        if removable {
            t.removable.add(p.size);
        }
        if slimmed {
            t.slimmed.add(p.size);
        }
        if unrecorded {
            t.unrecorded.add(p.size);
        }
        if missing {
            t.missing.add(p.size);
        }
        if kept.contains_key(&p.pk) {
            t.kept.add(p.size);
        }
        for u in uploads {
            let Some(row) = rows.get_mut(&u) else {
                continue;
            };
            let Some(class) = p.class_in(u) else { continue };
            bump(
                &mut row.leaves,
                &mut row.artifacts,
                &mut row.containers,
                class,
                p.size,
            );
            if shared {
                row.shared.add(p.size);
            }
            if removable && class == Class::Container {
                row.removable.add(p.size);
            }
            if slimmed {
                row.slimmed.add(p.size);
            }
            if unrecorded {
                row.unrecorded.add(p.size);
            }
            if missing {
                row.missing.add(p.size);
            }
            if class == Class::Container {
                if let Some(k) = kept.get(&p.pk) {
                    row.kept.push(k.clone());
                }
            }
        }
    }
    Report {
        uploads: rows.into_values().collect(),
        total: t,
        kept: kept.into_values().collect(),
    }
}

fn bump(leaves: &mut Count, artifacts: &mut Count, containers: &mut Count, c: Class, b: u64) {
    match c {
        Class::Leaf => leaves.add(b),
        Class::Artifact => artifacts.add(b),
        Class::Container => containers.add(b),
    }
}

fn cell(c: &Count) -> String {
    format!("{} / {}", c.files, human_bytes(c.bytes))
}

impl Report {
    /// The plain table: one line per upload, the site total, then the kept containers.
    pub fn render(&self) -> String {
        let head = [
            "upload",
            "leaves",
            "containers",
            "artifacts",
            "shared",
            "removable",
            "slimmed",
            "missing",
        ];
        let mut lines: Vec<[String; 8]> = vec![head.map(String::from)];
        for u in &self.uploads {
            lines.push([
                format!("{} {}", u.upload_pk, u.filename),
                cell(&u.leaves),
                cell(&u.containers),
                cell(&u.artifacts),
                cell(&u.shared),
                cell(&u.removable),
                cell(&u.slimmed),
                cell(&u.missing),
            ]);
        }
        let t = &self.total;
        lines.push([
            format!("total ({} uploads)", t.uploads),
            cell(&t.leaves),
            cell(&t.containers),
            cell(&t.artifacts),
            cell(&t.shared),
            cell(&t.removable),
            cell(&t.slimmed),
            cell(&t.missing),
        ]);
        let mut widths = [0usize; 8];
        for l in &lines {
            for (w, c) in widths.iter_mut().zip(l) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            if i + 1 == lines.len() {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * 7));
                out.push('\n');
            }
            let cells: Vec<String> = l
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(j, (c, w))| {
                    if j == 0 {
                        format!("{c:<w$}")
                    } else {
                        format!("{c:>w$}")
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out.push_str(&format!(
            "files/bytes; each file counted once in the total. Removing containers frees {} ({} files); gold files: {}.\n",
            human_bytes(t.removable.bytes),
            t.removable.files,
            cell(&t.gold),
        ));
        if t.unrecorded.files > 0 {
            out.push_str(&format!(
                "{} safe containers ({}) are absent but not recorded yet (a slim unpack never stored them): `holdfast slim apply --containers` records them.\n",
                t.unrecorded.files,
                human_bytes(t.unrecorded.bytes)
            ));
        }
        if t.missing.files > 0 {
            out.push_str(&format!(
                "{} files ({}) are missing without a slimming record: run `holdfast check-repo` and `holdfast recover`.\n",
                t.missing.files,
                human_bytes(t.missing.bytes)
            ));
        }
        let goldless: Vec<String> = self
            .uploads
            .iter()
            .filter(|u| !u.gold_present)
            .map(|u| format!("{} {}", u.upload_pk, u.filename))
            .collect();
        if !goldless.is_empty() {
            out.push_str(&format!(
                "Uploads whose gold is missing (their files cannot be rebuilt, nothing of theirs is removed): {}\n",
                goldless.join(", ")
            ));
        }
        let shown: Vec<&KeptContainer> = self
            .kept
            .iter()
            .filter(|k| {
                self.uploads
                    .iter()
                    .any(|u| u.kept.iter().any(|x| x.pfile_pk == k.pfile_pk))
            })
            .collect();
        if !shown.is_empty() {
            out.push_str(&format!(
                "Containers kept ({}, {}):\n",
                shown.len(),
                human_bytes(shown.iter().map(|k| k.bytes).sum())
            ));
            for k in shown {
                out.push_str(&format!(
                    "  pfile {} {} ({}): {}\n",
                    k.pfile_pk,
                    k.name,
                    human_bytes(k.bytes),
                    k.why()
                ));
            }
        }
        out
    }
}
