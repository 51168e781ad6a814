//! The daily job's expired snapshot made into its new one.
//!
//! Building a snapshot from nothing makes a folder and a link per name, and expiring the
//! oldest unlinks every name again: on ext4 each costs the kernel ~11 µs of CPU, so a million
//! names cost ~22 s of CPU per account and day however little changed. [`refresh_tree`]
//! takes the snapshot the rotation would expire and changes only what differs from what
//! [`crate::copy::copy_tree`] would make: a name that already is the link to the reference's
//! unchanged file stays (for a file with several names: each name that already is the inode
//! its first name settles on); every other name is made again exactly as `copy_tree` makes
//! it, and names `incoming/` no longer has go. The result is the same tree, inode for inode.
//!
//! Sound because a server snapshot never changes while it is one (root's, read-only for the
//! account) and is refreshed in `.holdfast/`, out of the account's reach; the size cache keys
//! a snapshot by its folder's mtime, which the new snapshot gets anew.

use crate::copy::{
    claim, copy_new_dir, dir_owner, each_source_entry, first_name, kind, link_to_first, make_entry,
    make_file, open_source_dir, settle, unchanged, Claim, CopyStats, Counters, Owner,
};
use crate::tree::{child, each_entry_ino, err, finish_dir, open_dir, open_dir_at, TreeError};
use nix::dir::Type;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag};
use nix::unistd::UnlinkatFlags;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::Ordering;

type Result<T> = std::result::Result<T, TreeError>;

/// Makes `dst`, an earlier snapshot of `src` that is no longer needed, what
/// [`crate::copy::copy_tree`]`(src, reference, dst, owner)` would have made.
pub fn refresh_tree(
    src: &Path,
    reference: Option<&Path>,
    dst: &Path,
    owner: Owner,
) -> Result<CopyStats> {
    crate::tree::io_pool().install(|| {
        let sfd = open_dir(src)?;
        let rfd = reference.and_then(|r| open_dir(r).ok());
        let dfd = open_dir(dst)?;
        let st = nix::sys::stat::fstat(&sfd).map_err(|e| err(src, e))?;
        let c = Counters::default();
        c.dirs.fetch_add(1, Ordering::Relaxed);
        refresh_dir(&sfd, rfd.as_ref(), &dfd, src, dst, &c, owner)?;
        finish_dir(&dfd, &st, dst, Some(dir_owner(owner)))?;
        Ok(c.stats())
    })
}

/// A name the old folder holds: its inode and, when the filesystem says, its type.
type Old = (u64, Option<Type>);

fn old_entries(fd: &OwnedFd, path: &Path) -> Result<HashMap<CString, Old>> {
    let mut old = HashMap::new();
    each_entry_ino(fd, path, |name, t, ino| {
        old.insert(name.to_owned(), (ino, t));
        Ok(())
    })?;
    Ok(old)
}

/// Removes an old name (a whole folder if it is one).
fn remove_old(
    dfd: &OwnedFd,
    name: &CStr,
    t: Option<Type>,
    dpath: &Path,
    c: &Counters,
) -> Result<()> {
    let p = child(dpath, name);
    let unlinked = if t == Some(Type::Directory) {
        Err(nix::errno::Errno::EISDIR)
    } else {
        nix::unistd::unlinkat(dfd, name, UnlinkatFlags::NoRemoveDir)
    };
    match unlinked {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(nix::errno::Errno::EISDIR) => {
            crate::tree::remove_tree(&p)?;
        }
        Err(e) => return Err(err(&p, e)),
    }
    c.removed.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// True when the old name already is what `copy_tree` would make for the source file `st`:
/// the link to the reference's unchanged file.
fn in_place(
    rfd: Option<&OwnedFd>,
    name: &CStr,
    st: &FileStat,
    old: Option<Old>,
    owner: Owner,
) -> bool {
    let (Some(rfd), Some((ino, t))) = (rfd, old) else {
        return false;
    };
    kind(st) == SFlag::S_IFREG
        && t != Some(Type::Directory)
        && unchanged(rfd, name, st, owner).is_some_and(|r| r.st_ino == ino)
}

/// A name of a file with several names in `incoming/` (the Perl client's rsync `-H`). Its
/// names must end up as one inode, the one `copy_tree` gives the first name it meets: so the
/// first name stays when it already is the reference's unchanged file, as a single name
/// would, and a later name stays when it already is the inode the first one settled on.
/// Any other name is made again as `copy_tree` makes it: a later name links to the first
/// one's file, or is made by itself while that is not there yet.
#[allow(clippy::too_many_arguments)]
fn refresh_multi(
    sfd: &OwnedFd,
    rfd: Option<&OwnedFd>,
    dfd: &OwnedFd,
    name: &CStr,
    st: &FileStat,
    p: &Path,
    dpath: &Path,
    mut prior: Option<Old>,
    c: &Counters,
    owner: Owner,
) -> Result<()> {
    let dest = child(dpath, name);
    // a later name need not look at the reference; a would-be first name that does not
    // stay removes its old name before claiming, so a claimed path never holds a stale inode
    let first_met = first_name(c, st).is_some();
    let stays = !first_met && in_place(rfd, name, st, prior, owner);
    if !first_met && !stays {
        if let Some((_, t)) = prior.take() {
            remove_old(dfd, name, t, dpath, c)?;
        }
    }
    let mine = Claim {
        path: dest.clone(),
        ino: prior.filter(|_| stays).map(|(ino, _)| ino),
    };
    match claim(c, st, mine) {
        None if stays => {
            c.linked.fetch_add(1, Ordering::Relaxed);
            c.kept.fetch_add(1, Ordering::Relaxed);
        }
        None => {
            let made = make_file(sfd, rfd, dfd, name, st, p, c, owner);
            let ino = nix::sys::stat::fstatat(dfd, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .ok()
                .map(|d| d.st_ino);
            settle(c, st, ino);
            made?;
        }
        Some(first) => {
            let old_file = prior.filter(|(_, t)| *t != Some(Type::Directory));
            if first.ino.is_some() && first.ino == old_file.map(|(ino, _)| ino) {
                c.hardlinked.fetch_add(1, Ordering::Relaxed);
                c.kept.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            if let Some((_, t)) = prior {
                remove_old(dfd, name, t, dpath, c)?;
            }
            if !link_to_first(c, &first.path, &dest) {
                make_file(sfd, rfd, dfd, name, st, p, c, owner)?;
            }
        }
    }
    Ok(())
}

fn refresh_dir(
    sfd: &OwnedFd,
    rfd: Option<&OwnedFd>,
    dfd: &OwnedFd,
    path: &Path,
    dpath: &Path,
    c: &Counters,
    owner: Owner,
) -> Result<()> {
    let mut old = old_entries(dfd, dpath)?;
    let subdirs = each_source_entry(sfd, path, |name, p, st| {
        let prior = old.remove(name);
        if kind(st) == SFlag::S_IFREG && st.st_nlink > 1 {
            return refresh_multi(sfd, rfd, dfd, name, st, p, dpath, prior, c, owner);
        }
        if in_place(rfd, name, st, prior, owner) {
            c.linked.fetch_add(1, Ordering::Relaxed);
            c.kept.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if let Some((_, t)) = prior {
            remove_old(dfd, name, t, dpath, c)?;
        }
        make_entry(sfd, rfd, dfd, name, st, p, dpath, c, owner)
    })?;
    let subdirs: Vec<(CString, Option<Old>)> = subdirs
        .into_iter()
        .map(|n| {
            let prior = old.remove(&n);
            (n, prior)
        })
        .collect();
    // what the source no longer has
    for (name, (_, t)) in old {
        remove_old(dfd, &name, t, dpath, c)?;
    }
    subdirs
        .par_iter()
        .try_for_each(|(name, prior)| -> Result<()> {
            let p = child(path, name);
            let dp = child(dpath, name);
            let Some((csub, rsub, st)) = open_source_dir(sfd, rfd, name, &p, c)? else {
                if let Some((_, t)) = prior {
                    remove_old(dfd, name, *t, dpath, c)?;
                }
                return Ok(());
            };
            // an old folder of that name is refreshed; anything else of that name goes
            let dsub = match prior.and_then(|_| open_dir_at(dfd, name, &dp).ok()) {
                Some(dsub) => {
                    c.dirs.fetch_add(1, Ordering::Relaxed);
                    refresh_dir(&csub, rsub.as_ref(), &dsub, &p, &dp, c, owner)?;
                    dsub
                }
                None => {
                    if let Some((_, t)) = prior {
                        remove_old(dfd, name, *t, dpath, c)?;
                    }
                    copy_new_dir(dfd, name, &csub, rsub.as_ref(), &p, &dp, c, owner)?
                }
            };
            finish_dir(&dsub, &st, &p, Some(dir_owner(owner)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::copy_tree;
    use std::collections::BTreeMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    /// Everything a snapshot promises about one name, relative to its root: type, content or
    /// target, mode, owner, mtime, whether it is the reference's inode, and its hard-link
    /// group inside the tree.
    fn describe(root: &Path, reference: &Path) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut groups: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
        for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let what = if m.is_dir() {
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {:?}", std::fs::read_link(e.path()).unwrap())
            } else {
                groups.entry(m.ino()).or_default().push(rel.clone());
                let shared = std::fs::symlink_metadata(reference.join(&rel))
                    .is_ok_and(|r| r.ino() == m.ino());
                format!(
                    "{:?} shared={shared}",
                    String::from_utf8_lossy(&std::fs::read(e.path()).unwrap())
                )
            };
            // a symlink's own mode and time are whatever making it gave
            let mode_time = if m.file_type().is_symlink() {
                String::new()
            } else {
                format!("{:o} {}.{}", m.mode() & 0o7777, m.mtime(), m.mtime_nsec())
            };
            out.insert(rel, format!("{what} {}:{} {mode_time}", m.uid(), m.gid()));
        }
        for names in groups.values().filter(|g| g.len() > 1) {
            for n in names {
                let v = out.get_mut(n).unwrap();
                v.push_str(&format!(" linked-with={names:?}"));
            }
        }
        out
    }

    /// The refreshed `recycled` tree is what the fresh copy `fresh` is (both against the
    /// reference `s2`), hard-link groups included, and was counted alike.
    fn same_as_fresh(t: &Path, refreshed: CopyStats, fresh: CopyStats) {
        let reference = t.join("s2");
        assert_eq!(
            describe(&t.join("recycled"), &reference),
            describe(&t.join("fresh"), &reference),
            "the refreshed snapshot is what a fresh copy makes"
        );
        assert_eq!(
            CopyStats {
                kept: 0,
                removed: 0,
                ..refreshed
            },
            fresh,
            "and was counted alike"
        );
    }

    /// Who owns a snapshot in these tests: whoever runs them.
    fn me() -> Owner {
        Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }

    fn write(p: &Path, data: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[test]
    fn a_refreshed_snapshot_equals_a_fresh_copy_inode_for_inode() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("incoming");
        let s = |n: &str| t.path().join(n);
        let me = me();
        for (f, d) in [
            ("pc/same", "unchanged all along"),
            ("pc/a", "a1"),
            ("pc/sub/b", "b1"),
            ("pc/e", "e1"),
            ("pc/gone", "deleted on day 3"),
            ("pc/dir2file/x", "its folder becomes a file"),
            ("pc/file2dir", "becomes a folder"),
            ("pc/old/deep/f", "a whole tree deleted"),
            ("pc/twin", "two names"),
            ("pc/run.sh", "#!/bin/sh"),
        ] {
            write(&src.join(f), d);
        }
        std::fs::set_permissions(
            src.join("pc/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::hard_link(src.join("pc/twin"), src.join("pc/sub/twin2")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("pc/etc")).unwrap();
        std::os::unix::fs::symlink("x", src.join("pc/ln")).unwrap();
        nix::unistd::mkfifo(
            &src.join("pc/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        copy_tree(&src, None, &s("s1"), me).unwrap();

        // day 2: b and e change, c is new
        write(&src.join("pc/sub/b"), "b2, longer");
        write(&src.join("pc/e"), "e2 (then unchanged)");
        write(&src.join("pc/c"), "c2");
        copy_tree(&src, Some(&s("s1")), &s("s2"), me).unwrap();
        let s2_before = describe(&s("s2"), &s("s2"));

        // day 3: deletions, type changes, a touched mtime, a third name, a new folder
        std::fs::remove_file(src.join("pc/gone")).unwrap();
        std::fs::remove_dir_all(src.join("pc/dir2file")).unwrap();
        write(&src.join("pc/dir2file"), "now a file");
        std::fs::remove_file(src.join("pc/file2dir")).unwrap();
        write(&src.join("pc/file2dir/y"), "now a folder");
        std::fs::remove_dir_all(src.join("pc/old")).unwrap();
        std::fs::remove_file(src.join("pc/ln")).unwrap();
        std::os::unix::fs::symlink("y", src.join("pc/ln")).unwrap();
        let a = std::fs::File::options()
            .write(true)
            .open(src.join("pc/a"))
            .unwrap();
        a.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        std::fs::hard_link(src.join("pc/twin"), src.join("pc/twin3")).unwrap();
        write(&src.join("pc/sub/b"), "b3");
        write(&src.join("pc/new/deeper/d"), "d3");

        let fresh = copy_tree(&src, Some(&s("s2")), &s("fresh"), me).unwrap();
        std::fs::rename(s("s1"), s("recycled")).unwrap();
        let same_ino = std::fs::metadata(s("recycled/pc/same")).unwrap().ino();
        let refreshed = refresh_tree(&src, Some(&s("s2")), &s("recycled"), me).unwrap();

        same_as_fresh(t.path(), refreshed, fresh);
        assert_eq!(
            std::fs::metadata(s("recycled/pc/same")).unwrap().ino(),
            same_ino,
            "an unchanged name stays as it was"
        );
        // kept: same and run.sh (s2 links both to s1's files); c is the reference's but s1
        // never had it
        assert_eq!(refreshed.kept, 2, "{refreshed:?}");
        // removed: a (mtime touched), e (s1's is not the reference's), sub/b, gone, dir2file (a folder), file2dir (a file),
        // old (a tree), twin and sub/twin2 (their new third name, met first, has no reference:
        // its copy is what all three names become, as in a fresh copy), the two symlinks
        assert_eq!(refreshed.removed, 11, "{refreshed:?}");
        assert_eq!(
            describe(&s("s2"), &s("s2")),
            s2_before,
            "the reference is untouched"
        );
    }

    #[test]
    fn names_of_one_file_stay_as_they_are_when_it_is_unchanged() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("incoming");
        let s = |n: &str| t.path().join(n);
        let me = me();
        let link = |a: &str, b: &str| {
            std::fs::create_dir_all(src.join(b).parent().unwrap()).unwrap();
            std::fs::hard_link(src.join(a), src.join(b)).unwrap();
        };
        // rsync -H uploads: pairs in one folder, a pair across folders, three names
        for n in 0..20 {
            write(&src.join(format!("pc/pairs/p{n}")), &format!("pair {n}"));
            link(&format!("pc/pairs/p{n}"), &format!("pc/pairs/q{n}"));
        }
        write(&src.join("pc/up"), "a name in a folder and one below");
        link("pc/up", "pc/deep/down");
        write(&src.join("pc/trio/a"), "three names");
        link("pc/trio/a", "pc/trio/b");
        link("pc/trio/a", "pc/trio/c");
        write(&src.join("pc/changed1"), "rewritten on day 3");
        link("pc/changed1", "pc/changed2");
        write(&src.join("pc/split1"), "split on day 3");
        link("pc/split1", "pc/split2");
        write(&src.join("pc/join1"), "joined on day 3");
        write(&src.join("pc/join2"), "a file of its own");
        copy_tree(&src, None, &s("s1"), me).unwrap();
        copy_tree(&src, Some(&s("s1")), &s("s2"), me).unwrap();

        // day 3: one file's content changes under both names, a pair splits, two files join
        std::fs::write(src.join("pc/changed1"), "rewritten on day 3, longer").unwrap();
        std::fs::remove_file(src.join("pc/split2")).unwrap();
        write(&src.join("pc/split2"), "now a file of its own");
        std::fs::remove_file(src.join("pc/join2")).unwrap();
        link("pc/join1", "pc/join2");

        let fresh = copy_tree(&src, Some(&s("s2")), &s("fresh"), me).unwrap();
        std::fs::rename(s("s1"), s("recycled")).unwrap();
        let unchanged: Vec<String> = (0..20)
            .flat_map(|n| [format!("pc/pairs/p{n}"), format!("pc/pairs/q{n}")])
            .chain(
                [
                    "pc/up",
                    "pc/deep/down",
                    "pc/trio/a",
                    "pc/trio/b",
                    "pc/trio/c",
                ]
                .map(String::from),
            )
            .collect();
        let ino = |rel: &str| std::fs::metadata(s("recycled").join(rel)).unwrap().ino();
        let before: Vec<u64> = unchanged.iter().map(|r| ino(r)).collect();
        let refreshed = refresh_tree(&src, Some(&s("s2")), &s("recycled"), me).unwrap();

        same_as_fresh(t.path(), refreshed, fresh);
        let after: Vec<u64> = unchanged.iter().map(|r| ino(r)).collect();
        assert_eq!(
            after, before,
            "every name of an unchanged file stays as it was"
        );
        // the 45 names above and split1 (now a single name, unchanged) stay; the rest does
        // not (changed1/2 changed, split2 is new content, a joined pair is made again
        // under at least one name)
        assert!((46..=47).contains(&refreshed.kept), "{refreshed:?}");
    }
}
