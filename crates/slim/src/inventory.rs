//! What the database and the repository say about every pfile, and which containers may go.
//!
//! One pass reads the uploads, every file row of their `uploadtree` tables (with whether the
//! row has children), the pfiles and the `holdfast_slimmed` record; then each `files` entry
//! is looked at on disk once. The verdict on a container is site-wide, because one pfile is
//! one file in `files` however many uploads name it.

use crate::{Result, SlimError};
use holdfast_site::db::uploadtree::{self, TreeTable};
use holdfast_site::db::{self, pfiles, uploads};
use holdfast_site::mode;
use holdfast_site::pfile::PfileName;
use holdfast_site::repo::Repository;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;

/// What a file row is. When one pfile has several roles in one upload, the one that must be
/// kept wins: leaf, then artifact, then container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Leaf,
    Artifact,
    Container,
}

impl Class {
    /// Classifies an `uploadtree.ufile_mode` ([`mode::classify`]); `None` for directories
    /// (they have no file).
    pub fn of_mode(ufile_mode: i32) -> Option<Class> {
        match mode::classify(ufile_mode) {
            mode::Class::Directory => None,
            mode::Class::Container => Some(Class::Container),
            mode::Class::Artifact => Some(Class::Artifact),
            mode::Class::Leaf => Some(Class::Leaf),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Leaf => "leaf",
            Class::Artifact => "artifact",
            Class::Container => "container",
        }
    }
}

/// Why a container stays in `files`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum KeepReason {
    /// It is an upload's gold file (its `files` entry is a hard link to the gold).
    IsGold { upload: i32 },
    /// The same pfile is a leaf or an artifact in an upload: agents read it there.
    UsedAs { upload: i32, class: Class },
    /// An upload that contains it has no gold to rebuild it from.
    GoldMissing { upload: i32 },
    /// Unpacking it left no children, so its content exists nowhere else.
    NoChildren { upload: i32 },
    /// Its inode has other links (a snapshot, a copy): removing it would free nothing.
    HardLinked { links: u64 },
    /// FOSSology's package agent reads this container itself and has not yet.
    PackageAgent { mimetype: String },
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepReason::IsGold { upload } => write!(f, "it is the gold file of upload {upload}"),
            KeepReason::UsedAs { upload, class } => {
                write!(
                    f,
                    "upload {upload} uses the same pfile as a {}",
                    class.as_str()
                )
            }
            KeepReason::GoldMissing { upload } => write!(
                f,
                "the gold of upload {upload} is missing, so it could not be rebuilt"
            ),
            KeepReason::NoChildren { upload } => write!(
                f,
                "unpacking it in upload {upload} left no children (its content is nowhere else)"
            ),
            KeepReason::HardLinked { links } => write!(
                f,
                "its inode has {links} links, so removing it would free nothing"
            ),
            KeepReason::PackageAgent { mimetype } => write!(
                f,
                "FOSSology's package agent reads it ({mimetype}) and has no record of it yet"
            ),
        }
    }
}

/// A pfile's `files` entry on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    /// Present with the size its name says.
    Present { dev: u64, ino: u64, nlink: u64 },
    /// A regular file of another size (cut short by a crash): there, so never recorded as
    /// absent, and of no use as it is.
    Short { dev: u64, ino: u64, nlink: u64 },
    /// Absent, not a regular file, or no `[REPOSITORY]` line covers it.
    Absent,
}

/// One pfile and every way the site uses it.
#[derive(Debug, Clone)]
pub struct Pfile {
    pub pk: i32,
    pub name: String,
    pub size: u64,
    /// (upload, class) of every file row naming it (distinct).
    pub uses: BTreeSet<(i32, Class)>,
    /// Uploads whose gold it is.
    pub gold_of: BTreeSet<i32>,
    /// Uploads where a container row of it has no children.
    pub childless_in: BTreeSet<i32>,
    pub disk: Disk,
    /// Recorded in `holdfast_slimmed`.
    pub recorded: bool,
    /// The mimetype pkgagent would still read it for ([`db::pkgagent_pending`]).
    pub pkgagent: Option<String>,
}

impl Pfile {
    pub fn present(&self) -> bool {
        matches!(self.disk, Disk::Present { .. })
    }

    /// Its class in `upload` (the role that must be kept wins), if the upload's tree names it.
    pub fn class_in(&self, upload: i32) -> Option<Class> {
        self.uses
            .iter()
            .filter(|(u, _)| *u == upload)
            .map(|(_, c)| *c)
            .min()
    }

    /// Its class over the whole site.
    pub fn class(&self) -> Option<Class> {
        self.uses.iter().map(|(_, c)| *c).min()
    }

    /// Uploads that name it (tree or gold).
    pub fn uploads(&self) -> BTreeSet<i32> {
        self.uses
            .iter()
            .map(|(u, _)| *u)
            .chain(self.gold_of.iter().copied())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub pk: i32,
    pub filename: String,
    pub gold: Option<i32>,
    pub gold_present: bool,
}

/// What may happen to a pfile that is a container somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Safe, present: removing it frees its size.
    Remove,
    /// Safe and already absent: recorded as slimmed (or to be recorded).
    Absent,
    /// Must stay, for these reasons.
    Keep(Vec<KeepReason>),
}

/// The site as slimming sees it.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub uploads: BTreeMap<i32, Upload>,
    pub pfiles: BTreeMap<i32, Pfile>,
}

impl Inventory {
    /// Reads every upload from the database (safety is site-wide, so never only one) and
    /// stats each `files` entry once.
    pub fn load(c: &mut postgres::Client, repo: &Repository) -> Result<Inventory> {
        let mut inv = Inventory::default();
        let mut tables: BTreeMap<TreeTable, Vec<i32>> = BTreeMap::new();
        for u in uploads::all(c)? {
            let Some(table) = TreeTable::new(u.table.clone()) else {
                return Err(SlimError::BadTable {
                    upload: u.pk,
                    table: u.table,
                });
            };
            tables.entry(table).or_default().push(u.pk);
            inv.uploads.insert(
                u.pk,
                Upload {
                    pk: u.pk,
                    filename: u.filename,
                    gold: u.gold,
                    gold_present: false,
                },
            );
        }

        // Every file row, and whether it has children.
        let mut rows = Vec::new();
        for (table, uploads) in &tables {
            rows.extend(uploadtree::file_rows(c, table, uploads)?);
        }

        let mut wanted: Vec<i32> = rows.iter().map(|r| r.pfile).collect();
        wanted.extend(inv.uploads.values().filter_map(|u| u.gold));
        wanted.sort_unstable();
        wanted.dedup();
        for (pk, name, size) in pfiles::names(c, &wanted)? {
            inv.pfiles.insert(
                pk,
                Pfile {
                    pk,
                    name: name.to_string(),
                    size,
                    uses: BTreeSet::new(),
                    gold_of: BTreeSet::new(),
                    childless_in: BTreeSet::new(),
                    disk: Disk::Absent,
                    recorded: false,
                    pkgagent: None,
                },
            );
        }

        for uploadtree::FileRow {
            upload,
            pfile,
            mode,
            has_children,
        } in rows
        {
            let Some(class) = Class::of_mode(mode) else {
                continue;
            };
            let Some(p) = inv.pfiles.get_mut(&pfile) else {
                // A row naming a pfile that does not exist: nothing to classify or free.
                tracing::warn!(upload, pfile, "uploadtree row names a missing pfile row");
                continue;
            };
            p.uses.insert((upload, class));
            if class == Class::Container && !has_children {
                p.childless_in.insert(upload);
            }
        }
        let recorded = recorded_pfiles(c)?;
        let mut pending = db::pkgagent_pending(c)?;
        for p in inv.pfiles.values_mut() {
            p.recorded = recorded.contains_key(&p.pk);
            p.pkgagent = pending.remove(&p.pk);
            p.disk = stat(repo, &p.name, p.size);
        }
        // The unpacker falls back to the gold's copy in `files`, as FOSSology does.
        for u in inv.uploads.values_mut() {
            if let Some(p) = u.gold.and_then(|g| inv.pfiles.get_mut(&g)) {
                p.gold_of.insert(u.pk);
                u.gold_present =
                    p.present() || PfileName::parse(&p.name).is_some_and(|n| repo.has("gold", &n));
            }
        }
        Ok(inv)
    }

    /// The verdict on every pfile that is a container somewhere.
    pub fn verdicts(&self) -> BTreeMap<i32, Verdict> {
        self.pfiles
            .values()
            .filter(|p| p.uses.iter().any(|(_, c)| *c == Class::Container))
            .map(|p| (p.pk, self.verdict(p)))
            .collect()
    }

    fn verdict(&self, p: &Pfile) -> Verdict {
        let mut why: Vec<KeepReason> = Vec::new();
        why.extend(
            p.gold_of
                .iter()
                .map(|&upload| KeepReason::IsGold { upload }),
        );
        why.extend(
            p.uses
                .iter()
                .filter(|(_, c)| *c != Class::Container)
                .map(|&(upload, class)| KeepReason::UsedAs { upload, class }),
        );
        for &(upload, _) in &p.uses {
            if !self.uploads.get(&upload).is_some_and(|u| u.gold_present) {
                why.push(KeepReason::GoldMissing { upload });
            }
        }
        why.extend(
            p.childless_in
                .iter()
                .map(|&upload| KeepReason::NoChildren { upload }),
        );
        why.extend(p.pkgagent.iter().map(|m| KeepReason::PackageAgent {
            mimetype: m.clone(),
        }));
        if let Disk::Present { nlink, .. } | Disk::Short { nlink, .. } = p.disk {
            if nlink > 1 && why.is_empty() {
                why.push(KeepReason::HardLinked { links: nlink });
            }
        }
        why.sort();
        why.dedup();
        if !why.is_empty() {
            Verdict::Keep(why)
        } else if p.present() || matches!(p.disk, Disk::Short { .. }) {
            // A short copy of a safe container goes too: the gold rebuilds it whole.
            Verdict::Remove
        } else {
            Verdict::Absent
        }
    }
}

/// The raw `holdfast_slimmed` rows (pfile → bytes); empty when the table does not exist.
pub fn recorded_pfiles(c: &mut postgres::Client) -> Result<HashMap<i32, u64>> {
    Ok(db::slimmed_records(c)?)
}

/// A `files` entry on disk: present only as a regular file of the size its name says.
pub fn stat(repo: &Repository, name: &str, size: u64) -> Disk {
    match repo
        .path("files", name)
        .and_then(|p| std::fs::symlink_metadata(p).ok())
    {
        Some(m) if m.is_file() && m.len() == size => Disk::Present {
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
        },
        Some(m) if m.is_file() => Disk::Short {
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
        },
        _ => Disk::Absent,
    }
}

/// Which of `pfiles` are, right now, an upload's gold or a leaf or artifact in a tree:
/// the last check before files are removed, against rows written since the inventory was read.
pub fn used_as_non_container(
    c: &mut postgres::Client,
    pfiles: &[i32],
) -> Result<std::collections::HashSet<i32>> {
    Ok(uploadtree::used_as_non_container(c, pfiles)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIT_CONTAINER: i32 = mode::BIT_CONTAINER as i32;
    const BIT_ARTIFACT: i32 = mode::BIT_ARTIFACT as i32;
    const BIT_DIRECTORY: i32 = mode::BIT_DIRECTORY_LEGACY as i32;

    #[test]
    fn classes_from_fossology_modes() {
        // FOSSology marks directories (artifact ones too) as containers: they hold no file.
        assert_eq!(
            Class::of_mode(BIT_DIRECTORY | BIT_CONTAINER | 0o040755),
            None
        );
        assert_eq!(
            Class::of_mode(BIT_DIRECTORY | BIT_CONTAINER | BIT_ARTIFACT | 0o040755),
            None
        );
        assert_eq!(Class::of_mode(0o040755), None);
        assert_eq!(
            Class::of_mode(BIT_CONTAINER | 0o100644),
            Some(Class::Container)
        );
        // A package that is also an artifact is still a container (rebuildable).
        assert_eq!(
            Class::of_mode(BIT_CONTAINER | BIT_ARTIFACT | 0o100644),
            Some(Class::Container)
        );
        assert_eq!(
            Class::of_mode(BIT_ARTIFACT | 0o100644),
            Some(Class::Artifact)
        );
        assert_eq!(Class::of_mode(0o100644), Some(Class::Leaf));
        assert_eq!(Class::of_mode(0o120777), Some(Class::Leaf));
        // The role that must be kept wins.
        assert!(Class::Leaf < Class::Artifact && Class::Artifact < Class::Container);
    }
}
