//! Pre-copy: the repository is copied while FOSSology's scheduler runs, and only what changed
//! since is copied again once it is stopped (FOSSology's own `utils/backup/fo-backup` did the
//! same with two rsync passes).
//!
//! A copy taken while agents run is safe for files named by their content (a name is sha1,
//! md5 and size, and a file never changes under its name) once they are whole: a file whose
//! size still differs from its name's size was being written and is copied again. What the
//! delta pass sends is the repository as it is with the scheduler stopped, less what the
//! pre-copy already holds: files present before and after the pre-copy and whole at its
//! start. Files deleted since the pre-copy stay in the snapshot when the database (and so
//! the dump) still names them, and leave it otherwise. Files not named by content (reports,
//! logs under other names) are always sent again; rsync judges them by size.

use holdfast_site::db::Reference;
use holdfast_site::pfile::PfileName;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The repository's files under `dirs` (relative to `root`), each with true when it is whole:
/// its size is the one its name says, or its name is not a content name.
pub fn list(root: &Path, dirs: &[String]) -> BTreeMap<String, bool> {
    wholeness(&holdfast_store::pool::walk(root, dirs))
}

/// [`list`] from a walk already made. A name no list can carry is left out (named by the
/// walk's `unlisted`).
pub fn wholeness(w: &holdfast_store::pool::Walked) -> BTreeMap<String, bool> {
    w.files
        .iter()
        .map(|(e, size)| (e.path.clone(), whole(&e.path, *size)))
        .collect()
}

/// The pfile name a repository path ends in, when it is named by its content.
pub(crate) fn content_name(path: &str) -> Option<PfileName> {
    PfileName::parse(crate::content::name_of(path))
}

/// True when `size` is the size the name of `path` says, or it is not named by content.
pub(crate) fn whole(path: &str, size: u64) -> bool {
    content_name(path).is_none_or(|n| n.size == size)
}

/// The files the pre-copy is sure to hold: present and whole before it, still present after.
pub fn copied(before: &BTreeMap<String, bool>, after: &BTreeMap<String, bool>) -> BTreeSet<String> {
    before
        .iter()
        .filter(|(p, whole)| **whole && after.contains_key(*p) && content_name(p).is_some())
        .map(|(p, _)| p.clone())
        .collect()
}

/// What the delta pass does.
#[derive(Debug, Default, PartialEq)]
pub struct Delta {
    /// Files to send (new since the pre-copy, or not named by content).
    pub send: Vec<String>,
    /// Pre-copied files gone from the repository that the database no longer names: they
    /// leave the snapshot.
    pub drop: Vec<String>,
    /// Pre-copied files gone from the repository that the database still names: the
    /// snapshot keeps the pre-copied file (its name proves its content).
    pub keep: Vec<String>,
}

/// True when the repository path `p` is the file `r` names (its type folder and its name).
pub fn names(r: &Reference, p: &str) -> bool {
    let (dir, file) = p.rsplit_once('/').unwrap_or(("", p));
    file == r.name
        && (dir.starts_with(&format!("{}/", r.kind)) || dir.contains(&format!("/{}/", r.kind)))
}

/// Compares the repository now (`now`, scheduler stopped) with what the pre-copy holds;
/// `missing` are the files the database names that the repository lacks now.
pub fn delta(
    copied: &BTreeSet<String>,
    now: &BTreeMap<String, bool>,
    missing: &[Reference],
) -> Delta {
    let send = now
        .keys()
        .filter(|p| !copied.contains(*p))
        .cloned()
        .collect();
    let by_name: BTreeMap<&str, Vec<&Reference>> =
        missing.iter().fold(BTreeMap::new(), |mut m, r| {
            m.entry(r.name.as_str()).or_insert_with(Vec::new).push(r);
            m
        });
    let mut d = Delta {
        send,
        ..Default::default()
    };
    for p in copied.iter().filter(|p| !now.contains_key(*p)) {
        let file = p.rsplit('/').next().unwrap_or(p);
        let named = by_name
            .get(file)
            .is_some_and(|rs| rs.iter().any(|r| names(r, p)));
        if named {
            d.keep.push(p.clone());
        } else {
            d.drop.push(p.clone());
        }
    }
    d
}

/// `missing` without the files the snapshot keeps from the pre-copy.
pub fn still_missing(missing: Vec<Reference>, keep: &[String]) -> Vec<Reference> {
    missing
        .into_iter()
        .filter(|r| !keep.iter().any(|p| names(r, p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567.0123456789abcdef0123456789abcdef.5";
    const B: &str = "1123456789abcdef0123456789abcdef01234567.0123456789abcdef0123456789abcdef.5";
    const C: &str = "2123456789abcdef0123456789abcdef01234567.0123456789abcdef0123456789abcdef.5";

    fn m(items: &[(&str, bool)]) -> BTreeMap<String, bool> {
        items.iter().map(|(p, w)| (p.to_string(), *w)).collect()
    }

    fn r(kind: &str, name: &str) -> Reference {
        Reference {
            upload_fk: 1,
            kind: kind.into(),
            pfile_pk: 1,
            name: name.into(),
            size: 5,
        }
    }

    #[test]
    fn new_half_written_and_deleted_files() {
        let a = format!("localhost/files/01/23/45/{A}");
        let b = format!("localhost/gold/11/23/45/{B}");
        let c = format!("localhost/files/21/23/45/{C}");
        let half = format!("localhost/files/11/23/45/{B}");
        // Before the pre-copy: a, b whole, `half` being written; a report not named by content.
        let before = m(&[
            (&a, true),
            (&b, true),
            (&half, false),
            ("report/r.xlsx", true),
        ]);
        let after = m(&[
            (&a, true),
            (&b, true),
            (&half, true),
            ("report/r.xlsx", true),
        ]);
        let copied = copied(&before, &after);
        assert_eq!(copied, [a.clone(), b.clone()].into_iter().collect());
        // Stopped: c is new, a and b were deleted; the database still names b's gold.
        let now = m(&[(&c, true), (&half, true), ("report/r.xlsx", true)]);
        let missing = vec![r("gold", B), r("files", A.replace('0', "9").as_str())];
        let d = delta(&copied, &now, &missing);
        assert_eq!(
            d.send,
            vec![half.clone(), c.clone(), "report/r.xlsx".to_string()]
        );
        assert_eq!(d.drop, vec![a]);
        assert_eq!(d.keep, vec![b]);
        let left = still_missing(missing, &d.keep);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].kind, "files");
    }

    #[test]
    fn a_name_in_another_type_folder_is_not_the_same_file() {
        let p = format!("localhost/files/11/23/45/{B}");
        assert!(!names(&r("gold", B), &p));
        assert!(names(&r("files", B), &p));
        assert!(names(&r("gold", B), &format!("gold/11/23/45/{B}")));
    }
}
