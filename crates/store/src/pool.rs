//! The pool layout's file lists and garbage collection (see [`crate::layout`]).
//!
//! A list is the repository's regular files at backup time, one path per line relative to the
//! repository root, sorted, gzip-compressed. Each line may carry, after a tab, the file's
//! mode, owner, group and mtime as the snapshot recorded them (`0100644 999 999
//! 1700000000.5`), which a restore gives back; lines of older lists are bare paths. Every
//! layout writes one (the rolling layout's next run links what it lists); restoring a pool
//! snapshot copies its list out of the pool; hard links between listed files (gold and its
//! `files` twin) come back because they share one object ([`crate::objects`]).

use crate::layout::{FILE_LIST, PARTIAL};
use crate::target::Target;
use crate::StoreError;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// What a snapshot recorded about a file besides its path and content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
}

impl Meta {
    pub fn of_stat(st: &nix::sys::stat::FileStat) -> Meta {
        Meta {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec as u32,
        }
    }

    pub fn of(m: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::MetadataExt;
        Meta {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        // Writing into memory cannot fail.
        let _ = write!(
            out,
            "{:o} {} {} {}.{:09}",
            self.mode, self.uid, self.gid, self.mtime, self.mtime_nsec
        );
    }

    fn decode(s: &str) -> Option<Meta> {
        let mut w = s.split(' ');
        let mode = u32::from_str_radix(w.next()?, 8).ok()?;
        let uid = w.next()?.parse().ok()?;
        let gid = w.next()?.parse().ok()?;
        let (sec, nsec) = w.next()?.split_once('.')?;
        if w.next().is_some() {
            return None;
        }
        Some(Meta {
            mode,
            uid,
            gid,
            mtime: sec.parse().ok()?,
            mtime_nsec: nsec.parse().ok()?,
        })
    }
}

/// One line of a list: a repository-relative path and, when recorded, its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub meta: Option<Meta>,
}

impl Entry {
    fn parse(line: &str) -> Entry {
        match split_meta(line) {
            Some((end, meta)) => Entry {
                path: line[..end].to_string(),
                meta: Some(meta),
            },
            None => Entry {
                path: line.to_string(),
                meta: None,
            },
        }
    }
}

/// Where a line's path ends, and the metadata after it, when it has any (a tab in a path
/// is part of the path unless what follows the last one is metadata).
fn split_meta(line: &str) -> Option<(usize, Meta)> {
    let (p, m) = line.rsplit_once('\t')?;
    Meta::decode(m).map(|meta| (p.len(), meta))
}

/// A path relative to the repository root as lists carry it (and rsync's `--files-from`):
/// lines of UTF-8. None for a name that is not UTF-8 or holds a line break (a report named
/// after an upload can be either): such a file is left out of every list ([`walk`] names
/// them apart).
fn list_name(rel: &Path) -> Option<String> {
    let rel = rel.to_str()?;
    (!rel.contains(['\n', '\r'])).then(|| rel.to_string())
}

/// The regular files under `dirs` of a site's repository, from one walk
/// ([`holdfast_core::tree::files`]: folders read in parallel, symlinks not followed).
#[derive(Debug, Default)]
pub struct Walked {
    /// Each file a list can carry, with its metadata and size, sorted by path.
    pub files: Vec<(Entry, u64)>,
    /// The files no list can carry (see [`list_name`]), shown with escapes, sorted.
    pub unlisted: Vec<String>,
}

impl Walked {
    pub fn names(&self) -> Vec<String> {
        self.files.iter().map(|(e, _)| e.path.clone()).collect()
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.files.into_iter().map(|(e, _)| e).collect()
    }
}

/// Walks `root/<dir>` for each of `dirs` once.
pub fn walk(root: &Path, dirs: &[String]) -> Walked {
    use std::os::unix::ffi::OsStrExt;
    let mut w = Walked::default();
    for f in holdfast_core::tree::files(root, dirs) {
        match list_name(&f.rel) {
            Some(path) => w.files.push((
                Entry {
                    path,
                    meta: Some(Meta::of_stat(&f.stat)),
                },
                f.stat.st_size as u64,
            )),
            None => w
                .unlisted
                .push(f.rel.as_os_str().as_bytes().escape_ascii().to_string()),
        }
    }
    w.files.sort_unstable_by(|a, b| a.0.path.cmp(&b.0.path));
    w.unlisted.sort_unstable();
    w
}

/// The gzip-compressed text of a list: each path, then a tab and its metadata when it has
/// any. libdeflate at level 6 ([`holdfast_core::gzip`]): a whole-site list of 84,000 lines
/// is 4.5 MB in 0.09 s of CPU (zlib-rs: 4.7 MB in 0.16 s; its level 1 uses fixed Huffman
/// codes only, 7.3 MB), and every snapshot keeps one.
fn gzip_lines<'a>(lines: impl Iterator<Item = (&'a str, Option<&'a Meta>)>) -> Vec<u8> {
    let mut text = Vec::new();
    for (path, meta) in lines {
        text.extend_from_slice(path.as_bytes());
        if let Some(m) = meta {
            text.push(b'\t');
            m.encode_into(&mut text);
        }
        text.push(b'\n');
    }
    holdfast_core::gzip::compress(&text, 6)
}

/// The gzip-compressed text of a list with metadata.
pub fn encode_entries(list: &[Entry]) -> Vec<u8> {
    gzip_lines(list.iter().map(|e| (e.path.as_str(), e.meta.as_ref())))
}

pub fn decode_entries(r: impl Read) -> std::io::Result<Vec<Entry>> {
    // Whole, then split: one allocation per entry (its path) rather than two, on the
    // night's critical path (a large site's list is ~100k lines).
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, r))
        .read_to_end(&mut text)?;
    let text = String::from_utf8(text)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let e = Entry::parse(l);
            check_inside(i, &e.path)?;
            Ok(e)
        })
        .collect()
}

/// Whether `path` names a place under the repository: relative, no empty, `.` or `..` part.
/// Lists are read from the backup server; a restore writes, chowns and chmods as root
/// where they point, so a list naming `/root/.ssh/authorized_keys` or `../../etc/shadow`
/// is refused whole, as an altered list.
pub fn is_inside(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// An error naming line `i` of a list when its `path` is not [`is_inside`].
fn check_inside(i: usize, path: &str) -> std::io::Result<()> {
    if is_inside(path) {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!(
            "line {}: {path:?} is not a path inside the repository (absolute, or with an \
             empty, . or .. part): the list was altered, or is not holdfast's",
            i + 1
        ),
    ))
}

/// Reads snapshot `name`'s list with metadata from the target.
pub fn read_entries(target: &Target, name: &str) -> Result<Vec<Entry>, StoreError> {
    let rel = format!("{name}/{FILE_LIST}");
    let r = std::io::Cursor::new(target.read_all(&rel)?);
    decode_entries(r).map_err(|e| StoreError::Io {
        path: format!("{} {rel}", target.display()),
        source: e,
    })
}

/// Lists the regular files under `root/<dir>` for each of `dirs` (relative paths), sorted.
pub fn list_files(root: &Path, dirs: &[String]) -> Vec<String> {
    walk(root, dirs).names()
}

/// The gzip-compressed text of a list.
pub fn encode(list: &[String]) -> Vec<u8> {
    gzip_lines(list.iter().map(|l| (l.as_str(), None)))
}

/// The paths of a list (its metadata left out).
pub fn decode(r: impl Read) -> std::io::Result<Vec<String>> {
    BufReader::new(flate2::read::MultiGzDecoder::new(r))
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut l = l?;
            if let Some((end, _)) = split_meta(&l) {
                l.truncate(end);
            }
            check_inside(i, &l)?;
            Ok(l)
        })
        .collect()
}

/// The paths of `before` that `now` lacks, in `before`'s order.
pub fn not_in(before: &[String], now: &[String]) -> Vec<String> {
    by_presence(before, String::as_str, now, String::as_str, false)
}

/// [`not_in`] for two lists of entries.
pub fn entries_not_in(before: &[Entry], now: &[Entry]) -> Vec<String> {
    by_presence(before, |e| e.path.as_str(), now, |e| e.path.as_str(), false)
}

/// [`not_in`] for a list of paths against a list of entries.
pub fn paths_not_in(before: &[String], now: &[Entry]) -> Vec<String> {
    by_presence(before, String::as_str, now, |e| e.path.as_str(), false)
}

/// The paths of `a` that `b` holds too, in `a`'s order.
pub fn shared(a: &[String], b: &[String]) -> Vec<String> {
    by_presence(a, String::as_str, b, String::as_str, true)
}

/// The paths of `before` that `now` holds (`present`) or lacks (not `present`), in
/// `before`'s order. Lists are written sorted: both sorted, one merging pass; an unsorted one
/// (written by hand) is searched, hashed first when `now` is the unsorted one.
fn by_presence<A, B>(
    before: &[A],
    pa: fn(&A) -> &str,
    now: &[B],
    pb: fn(&B) -> &str,
    present: bool,
) -> Vec<String> {
    if !(before.is_sorted_by(|x, y| pa(x) <= pa(y)) && now.is_sorted_by(|x, y| pb(x) <= pb(y))) {
        let lacks = lacks(now, pb);
        return before
            .iter()
            .map(pa)
            .filter(|p| lacks(p) != present)
            .map(str::to_string)
            .collect();
    }
    let mut now = now.iter().map(pb).peekable();
    let mut out = Vec::new();
    for p in before.iter().map(pa) {
        while now.next_if(|n| *n < p).is_some() {}
        if (now.peek() == Some(&p)) == present {
            out.push(p.to_string());
        }
    }
    out
}

/// Whether a path is missing from `now` (each item's path given by `path`).
fn lacks<T>(now: &[T], path: fn(&T) -> &str) -> impl Fn(&str) -> bool + '_ {
    let hashed: Option<HashSet<&str>> =
        (!now.is_sorted_by(|a, b| path(a) <= path(b))).then(|| now.iter().map(path).collect());
    move |p| match &hashed {
        Some(set) => !set.contains(p),
        None => now.binary_search_by(|e| path(e).cmp(p)).is_err(),
    }
}

/// Reads snapshot `name`'s list from the target.
pub fn read_list(target: &Target, name: &str) -> Result<Vec<String>, StoreError> {
    read_list_at(target, &format!("{name}/{FILE_LIST}"))
}

/// Reads the paths of the list at `rel` on the target.
pub fn read_list_at(target: &Target, rel: &str) -> Result<Vec<String>, StoreError> {
    let r = std::io::Cursor::new(target.read_all(rel)?);
    decode(r).map_err(|e| StoreError::Io {
        path: format!("{} {rel}", target.display()),
        source: e,
    })
}

/// The newest kept snapshot's name and list (see [`collect_dropped`]); None without one.
pub fn newest_list(target: &Target) -> Result<Option<(String, Vec<String>)>, StoreError> {
    match kept_lists(target)?.into_iter().next() {
        Some(name) => {
            let list = read_list(target, &name)?;
            Ok(Some((name, list)))
        }
        None => Ok(None),
    }
}

/// Deletes the pool files among `dropped` (what pruned snapshots listed) that no kept
/// snapshot lists; returns how many were unlisted. Kept lists are read newest first and only
/// until every candidate is found, so a night that prunes a snapshot while nothing left the
/// repository reads two lists and walks nothing (a full [`collect_garbage`] walks the pool
/// and reads every list). `newest` is [`newest_list`], read beside the pruned lists; read
/// again if it is no longer the newest. Fails closed as that one does.
pub fn collect_dropped(
    target: &Target,
    dropped: Vec<String>,
    newest: Option<(String, Vec<String>)>,
) -> Result<u64, StoreError> {
    let home = crate::objects::pool_home(target)?;
    let lists = kept_lists(target)?;
    let mut newest = match (lists.first(), newest) {
        (Some(n), Some((name, list))) if *n == name => Some(list),
        (Some(n), _) => Some(read_list(target, n)?),
        (None, _) => None,
    };
    // A path the newest list still names keeps its pool file (the path gives the file): the
    // two sorted lists are compared as they are, and only what is left is mapped to pool
    // files and looked for under other paths (a twin, the same content uploaded again).
    let mut dropped = match &newest {
        Some(list) => not_in(&dropped, list),
        None => dropped,
    };
    if dropped.is_empty() {
        return Ok(0);
    }
    dropped = in_pool(&home, dropped);
    for s in lists {
        if dropped.is_empty() {
            break;
        }
        let list = match newest.take() {
            Some(l) => l,
            None => read_list(target, &s)?,
        };
        dropped = not_in(&dropped, &in_pool(&home, list));
    }
    if !dropped.is_empty() {
        target.remove_files(&home.base, &dropped)?;
    }
    Ok(dropped.len() as u64)
}

/// Where the pool keeps `paths` (relative to its home), sorted, each once.
fn in_pool(home: &crate::objects::Home, mut paths: Vec<String>) -> Vec<String> {
    if home.naming == crate::objects::Naming::Objects {
        paths = paths.iter().map(|p| home.rel(p).into_owned()).collect();
    }
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// The snapshots whose lists name pool files, newest first: a `.partial` waiting to be
/// committed, then every `snap.*` (their names are times). Only pool snapshots' lists name
/// pool files (every layout writes a list now).
fn kept_lists(target: &Target) -> Result<Vec<String>, StoreError> {
    let mut lists: Vec<String> = target
        .list("")?
        .into_iter()
        .filter(|n| n.starts_with("snap."))
        .collect();
    lists.sort_unstable_by(|a, b| b.cmp(a));
    if target.exists(&format!("{PARTIAL}/{FILE_LIST}"))? {
        lists.insert(0, PARTIAL.to_string());
    }
    Ok(lists)
}

/// Deletes pool files that no kept snapshot lists; returns how many.
///
/// Fails closed: the kept set is built in Rust from every `snap.*` list (and the list of a
/// `.partial` waiting to be committed), and any list that cannot be read or decoded, or a
/// pool listing that fails, ends the collection before anything is deleted. Only then are
/// the unlisted files removed (over ssh: their names on `rm`'s stdin, NUL-separated).
pub fn collect_garbage(target: &Target) -> Result<u64, StoreError> {
    let home = crate::objects::pool_home(target)?;
    let mut keep = HashSet::new();
    for s in kept_lists(target)? {
        keep.extend(
            read_list(target, &s)?
                .iter()
                .map(|p| home.rel(p).into_owned()),
        );
    }
    let all = target.files_below(&home.base, false)?;
    let gone: Vec<String> = all.into_iter().filter(|p| !keep.contains(p)).collect();
    if gone.is_empty() {
        return Ok(0);
    }
    target.remove_files(&home.base, &gone)?;
    Ok(gone.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_naming_a_place_outside_the_repository_is_refused_whole() {
        let meta = "\t100600 0 0 0.0";
        for bad in [
            "/root/.ssh/authorized_keys",
            "localhost/files/../../../etc/shadow",
            "..",
            "./localhost/files/x",
            "localhost//files/x",
            "localhost/files/",
            "",
        ] {
            let with = format!("localhost/files/ok\n{bad}{meta}\n");
            let e = decode_entries(&gzip_text(&with)[..]).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{bad:?}");
            assert!(e.to_string().contains("line 2"), "{e}");
            let without = format!("localhost/files/ok\n{bad}\n");
            assert!(decode(&gzip_text(&without)[..]).is_err(), "{bad:?}");
        }
        // Dots inside names are names.
        let fine = "localhost/files/a..b/.x/x.\n";
        assert_eq!(decode(&gzip_text(fine)[..]).unwrap().len(), 1);
    }

    fn gzip_text(t: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, t.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn lists_of_content_names_are_compressed_with_dynamic_codes() {
        // Names as FOSSology's repository holds them: sha1.md5.size, in hashed folders.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut hex = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from_digit((x % 16) as u32, 16).unwrap()
                })
                .collect()
        };
        let mut list: Vec<Entry> = (0..2000)
            .map(|i| {
                let (sha1, md5) = (hex(40), hex(32));
                Entry {
                    path: format!(
                        "localhost/files/{}/{}/{}/{sha1}.{md5}.{}",
                        &sha1[..2],
                        &sha1[2..4],
                        &sha1[4..6],
                        1000 + i
                    ),
                    meta: Some(Meta {
                        mode: 0o100660,
                        uid: 999,
                        gid: 999,
                        mtime: 1_700_000_000 + i,
                        mtime_nsec: (i as u32).wrapping_mul(2_654_435_761) % 1_000_000_000,
                    }),
                }
            })
            .collect();
        list.sort_by(|a, b| a.path.cmp(&b.path));
        let gz = encode_entries(&list);
        let plain: usize = list.iter().map(|e| e.path.len() + 40).sum();
        // Fixed Huffman codes (zlib-rs level 1) leave such a list at ~65% of its text.
        assert!(
            gz.len() * 2 < plain,
            "{} bytes of gzip for ~{plain} of text",
            gz.len()
        );
        assert_eq!(decode_entries(&gz[..]).unwrap(), list);
    }

    #[test]
    fn paths_come_without_metadata_and_a_tab_in_a_name_stays() {
        let meta = Meta {
            mode: 0o100644,
            uid: 1,
            gid: 2,
            mtime: 3,
            mtime_nsec: 4,
        };
        let list = vec![
            Entry {
                path: "a/b".into(),
                meta: Some(meta),
            },
            Entry {
                path: "a/tab\there".into(),
                meta: None,
            },
            Entry {
                path: "a/tab\tand meta".into(),
                meta: Some(meta),
            },
        ];
        let paths = decode(&encode_entries(&list)[..]).unwrap();
        assert_eq!(paths, ["a/b", "a/tab\there", "a/tab\tand meta"]);
    }

    #[test]
    fn what_a_list_lacks_is_found_sorted_or_not() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let before = s(&["a", "b", "c", "d"]);
        assert_eq!(not_in(&before, &s(&["a", "c", "e"])), ["b", "d"]);
        assert_eq!(not_in(&before, &s(&["e", "c", "a"])), ["b", "d"]);
        assert!(not_in(&before, &before).is_empty());
        assert_eq!(not_in(&before, &[]), ["a", "b", "c", "d"]);
    }

    #[test]
    fn what_a_list_of_entries_lacks_is_found_sorted_or_not() {
        let e = |v: &[&str]| {
            v.iter()
                .map(|x| Entry {
                    path: x.to_string(),
                    meta: None,
                })
                .collect::<Vec<_>>()
        };
        let before = e(&["a", "b", "c", "d"]);
        // Merged: a name past the end, one before the start, runs on both sides.
        assert_eq!(
            entries_not_in(&before, &e(&["0", "a", "c", "e"])),
            ["b", "d"]
        );
        assert_eq!(entries_not_in(&before, &e(&["b", "c"])), ["a", "d"]);
        // Searched: either list out of order.
        assert_eq!(entries_not_in(&before, &e(&["e", "c", "a"])), ["b", "d"]);
        assert_eq!(entries_not_in(&e(&["d", "b"]), &e(&["a", "b"])), ["d"]);
        assert!(entries_not_in(&before, &before).is_empty());
        assert_eq!(entries_not_in(&before, &[]), ["a", "b", "c", "d"]);
        // The same for a list of paths.
        let paths = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let held = paths(&["a", "b", "c", "d"]);
        assert_eq!(paths_not_in(&held, &e(&["0", "a", "c", "e"])), ["b", "d"]);
        assert_eq!(paths_not_in(&paths(&["d", "b"]), &e(&["a", "b"])), ["d"]);
        assert_eq!(paths_not_in(&held, &e(&["e", "c", "a"])), ["b", "d"]);
    }

    #[test]
    fn what_two_lists_share_is_found_sorted_or_not() {
        let paths = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let keep = paths(&["a", "b", "c", "d"]);
        // Merged: runs on both sides, names past either end.
        assert_eq!(shared(&keep, &paths(&["0", "b", "c", "e"])), ["b", "c"]);
        assert_eq!(shared(&keep, &paths(&["a", "d"])), ["a", "d"]);
        assert!(shared(&keep, &paths(&["e", "f"])).is_empty());
        assert!(shared(&keep, &[]).is_empty());
        // Searched: either list out of order, `a`'s order kept.
        assert_eq!(shared(&keep, &paths(&["d", "a"])), ["a", "d"]);
        assert_eq!(
            shared(&paths(&["d", "b", "a"]), &paths(&["a", "d"])),
            ["d", "a"]
        );
    }
}
