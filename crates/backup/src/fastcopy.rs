//! Restoring a local snapshot at the speed of the disk: several files in flight, each copied
//! by the kernel (`std::io::copy` between files is `copy_file_range` on Linux), names that
//! share an inode in the snapshot made one inode again as they are written (no second pass),
//! and each file given the mode, owner and mtime its snapshot recorded (or, for lists
//! without them, the snapshot copy's own, as `rsync -a` would).
//!
//! Files named by their content (`<sha1>.<md5>.<size>`) under the folders a copy is asked to
//! prove are read once, hashed as they are written, and compared with their name; a copy that
//! rotted on the backup server comes back in [`Copied::damaged`] (names that share an inode
//! are hashed once). Other files go through the kernel's `copy_file_range`.

use crate::content::BadFile;
use crate::BackupError;
use holdfast_core::progress::{Progress, Unit};
use holdfast_site::pfile::PfileName;
use holdfast_store::objects::Naming;
use holdfast_store::pool::{Entry, Meta};
use holdfast_store::proof::{hash_file, judge, pfile_of, ContentHash, Proof};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

/// Files in flight at once: a restore waits on the disk (a cold source's folders and inodes
/// above all), not the CPU.
const IN_FLIGHT: usize = 16;

/// What a copy did.
#[derive(Debug, Default, Clone)]
pub struct Copied {
    pub files: u64,
    pub bytes: u64,
    /// Names made hard links of an inode already written.
    pub linked: u64,
    /// Files already there with their size (an earlier, interrupted restore's).
    pub skipped: u64,
    /// Content-named files whose content matched their name.
    pub proved: u64,
    /// Content-named files whose content did not match their name (paths relative to the
    /// destination, sorted).
    pub damaged: Vec<BadFile>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Gives `path` its recorded owner, mode and mtime (owner first: chown clears set-group-id).
/// A symbolic link is refused, not followed: what a remote store sent could point anywhere,
/// and this runs as root.
pub fn apply(path: &Path, m: &Meta) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |write: bool| {
        File::options()
            .read(!write)
            .write(write)
            // Nor a FIFO waited on.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let f = open(true).or_else(|_| open(false))?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file, as every listed repository file is",
        ));
    }
    apply_open(&f, m)
}

/// [`apply`] to a file already open (one just written: no path looked up again).
fn apply_open(f: &File, m: &Meta) -> std::io::Result<()> {
    if nix::unistd::Uid::effective().is_root() {
        std::os::unix::fs::fchown(f, Some(m.uid), Some(m.gid))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(safe_mode(m.mode)))?;
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::new(m.mtime.max(0) as u64, m.mtime_nsec.min(999_999_999));
    f.set_times(std::fs::FileTimes::new().set_modified(t))
}

/// The permission bits of a recorded mode a restore gives back: never set-user-id or sticky,
/// and set-group-id only on a file no one can run (a repository file's is group
/// inheritance; on a program it would run with the recorded group, root's if a list says so).
fn safe_mode(mode: u32) -> u32 {
    let mode = mode & 0o2777;
    if mode & 0o111 != 0 {
        mode & 0o777
    } else {
        mode
    }
}

/// Copies `from` into `to` through a large buffer, hashing every byte written.
fn copy_hashing(
    from: &Path,
    r: &mut File,
    to: &Path,
    w: &mut File,
) -> Result<(String, String, u64), BackupError> {
    let mut h = ContentHash::default();
    holdfast_core::fs::read_pieces(r, io(from), |piece| {
        h.update(piece);
        w.write_all(piece).map_err(io(to))
    })?;
    Ok(h.finish())
}

/// Makes the folders `items` need under `dst` (which exists), parents first, with `make_dir`;
/// returns how many were new. A level at a time, each level's folders at once (below).
pub(crate) fn make_dirs(
    dst: &Path,
    items: &[Entry],
    make_dir: &(dyn Fn(&Path) -> std::io::Result<bool> + Sync),
) -> Result<u64, BackupError> {
    let mut all: HashSet<&Path> = HashSet::new();
    for e in items {
        let mut p = Path::new(&e.path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            if !all.insert(d) {
                break;
            }
            p = d.parent();
        }
    }
    let mut levels: BTreeMap<usize, Vec<&Path>> = BTreeMap::new();
    for d in all {
        levels.entry(d.components().count()).or_default().push(d);
    }
    // A level's folders at once (their parents are made): a site's 100,000 folders one at a
    // time took 4 s of a restore over ssh.
    let mut made = 0;
    for level in levels.into_values() {
        made += holdfast_core::threads::io_pool().install(|| {
            level
                .par_iter()
                .map(|d| {
                    let p = dst.join(d);
                    make_dir(&p).map(u64::from).map_err(io(&p))
                })
                .sum::<Result<u64, BackupError>>()
        })?;
    }
    Ok(made)
}

/// The content name `path` must match when it is named by its content under one of the
/// folders `prove_under`.
pub(crate) fn provable(prove_under: &[String], path: &str) -> Option<PfileName> {
    prove_under
        .iter()
        .any(|d| {
            path.strip_prefix(d.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .then(|| pfile_of(path))
        .flatten()
}

/// Copies `items` (repository paths, at `src` as `naming` names them) into the folder `dst`. `make_dir` creates one folder whose
/// parent exists the way the site wants it (FOSSology's owner and modes), `false` when it
/// was there. Content-named files under the
/// folders `prove_under` (relative to `src`, e.g. `localhost/files`) are hashed as they are
/// written, or read back when an earlier run left them there, and compared with their name.
/// Returns what was done.
pub fn copy(
    src: &Path,
    naming: Naming,
    dst: &Path,
    items: &[Entry],
    make_dir: &(dyn Fn(&Path) -> std::io::Result<bool> + Sync),
    prove_under: &[String],
    what: &str,
) -> Result<Copied, BackupError> {
    let provable = |path: &str| provable(prove_under, path);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(IN_FLIGHT)
        .build()
        .map_err(|e| BackupError::Io {
            path: dst.display().to_string(),
            source: std::io::Error::other(e),
        })?;
    // Which names share an inode in the snapshot and the source's own metadata (cold reads
    // of its folders and inodes: many in flight), while the folders are made.
    let began = std::time::Instant::now();
    let (stats, made) = pool.install(|| {
        rayon::join(
            || {
                items
                    .par_iter()
                    .map(|e| {
                        let p = src.join(&*naming.rel(&e.path));
                        // Lost from the store, or not a file there (a link could point
                        // anywhere): the rest is restored, this one reported.
                        match std::fs::symlink_metadata(&p) {
                            Ok(m) if m.is_file() => {
                                Ok(Ok((m.dev(), m.ino(), Meta::of(&m), m.len())))
                            }
                            Ok(_) => Ok(Err("not a regular file in the snapshot on the store")),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                                Ok(Err("missing from the snapshot on the store"))
                            }
                            Err(e) => Err(io(&p)(e)),
                        }
                    })
                    .collect::<Result<Vec<Result<(u64, u64, Meta, u64), &str>>, BackupError>>()
            },
            || make_dirs(dst, items, make_dir),
        )
    });
    let (stats, made) = (stats?, made?);
    tracing::info!(
        secs = began.elapsed().as_secs_f64(),
        folders = made,
        "listed files read, folders made"
    );
    let mut groups: BTreeMap<(u64, u64), Vec<usize>> = BTreeMap::new();
    let mut lost = Vec::new();
    for (i, s) in stats.iter().enumerate() {
        match s {
            Ok(s) => groups.entry((s.0, s.1)).or_default().push(i),
            Err(why) => lost.push(BadFile {
                path: items[i].path.clone(),
                why: format!("{why} ({what}): not restored"),
            }),
        }
    }
    let total: u64 = stats.iter().flatten().map(|s| s.3).sum();
    let progress = Progress::new(what, total, Unit::Bytes);
    let done = Mutex::new(Copied {
        damaged: lost,
        ..Default::default()
    });
    let began = std::time::Instant::now();
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    pool.install(|| {
        groups
            .par_iter()
            .try_for_each(|g| -> Result<(), BackupError> {
                holdfast_core::interrupt::check().map_err(|_| BackupError::Interrupted)?;
                let first = &items[g[0]];
                let (_, _, own, len) = stats[g[0]].expect("a grouped file is a file");
                let meta = first.meta.unwrap_or(own);
                let from = src.join(&*naming.rel(&first.path));
                let to = dst.join(&first.path);
                let mut c = Copied::default();
                // The group's names that its content must match (twins: one inode, one hash).
                let names: Vec<(usize, PfileName)> = g
                    .iter()
                    .filter_map(|&i| provable(&items[i].path).map(|n| (i, n)))
                    .collect();
                // A file already there with its size (an interrupted restore's, or the live
                // site's) is kept when it proves its names; one that does not is copied
                // again from the store, which may hold a good copy.
                let kept = std::fs::symlink_metadata(&to)
                    .ok()
                    .filter(|m| m.is_file() && m.len() == len)
                    .and_then(|_| {
                        if names.is_empty() {
                            return Some(None);
                        }
                        let h = hash_file(&to);
                        let good = h.as_ref().is_ok_and(|(sha1, md5, size)| {
                            names
                                .iter()
                                .all(|(_, w)| matches!(judge(w, sha1, md5, *size), Proof::Good(_)))
                        });
                        good.then_some(Some(h))
                    });
                let hashed = if let Some(hashed) = kept {
                    c.skipped += 1;
                    apply(&to, &meta).map_err(io(&to))?;
                    hashed
                } else {
                    let _ = std::fs::remove_file(&to);
                    let mut r = holdfast_core::fs::open_noatime_with(&from, libc::O_NOFOLLOW)
                        .map_err(io(&from))?;
                    let mut w = File::create(&to).map_err(io(&to))?;
                    let hashed = if names.is_empty() {
                        std::io::copy(&mut r, &mut w).map_err(io(&to))?;
                        None
                    } else {
                        Some(Ok(copy_hashing(&from, &mut r, &to, &mut w)?))
                    };
                    apply_open(&w, &meta).map_err(io(&to))?;
                    c.files += 1;
                    c.bytes += len;
                    hashed
                };
                if let Some(h) = hashed {
                    for (i, want) in &names {
                        let proof = match &h {
                            Ok((sha1, md5, size)) => judge(want, sha1, md5, *size),
                            Err(e) => Proof::Bad(format!("unreadable: {e}")),
                        };
                        match proof {
                            Proof::Bad(why) => c.damaged.push(BadFile {
                                path: items[*i].path.clone(),
                                why,
                            }),
                            _ => c.proved += 1,
                        }
                    }
                }
                progress.inc(len);
                for &i in &g[1..] {
                    let other = dst.join(&items[i].path);
                    let same = std::fs::symlink_metadata(&other)
                        .ok()
                        .zip(std::fs::symlink_metadata(&to).ok())
                        .is_some_and(|(a, b)| a.ino() == b.ino() && a.dev() == b.dev());
                    if !same {
                        let _ = std::fs::remove_file(&other);
                        std::fs::hard_link(&to, &other).map_err(io(&other))?;
                        c.linked += 1;
                    }
                }
                let mut d = done.lock().expect("not poisoned");
                d.files += c.files;
                d.bytes += c.bytes;
                d.linked += c.linked;
                d.skipped += c.skipped;
                d.proved += c.proved;
                d.damaged.append(&mut c.damaged);
                Ok(())
            })
    })?;
    progress.finish();
    tracing::info!(secs = began.elapsed().as_secs_f64(), "files copied");
    let mut done = done.into_inner().expect("not poisoned");
    done.damaged.sort();
    Ok(done)
}

/// Gives every listed file under `root` its recorded metadata (after an rsync restore from
/// a remote target, which cannot know what the list recorded). A listed file the store did
/// not give (lost there, or not a file) is skipped: the restore's checks report it.
pub fn apply_all(root: &Path, items: &[Entry]) -> Result<u64, BackupError> {
    items
        .par_iter()
        .filter_map(|e| e.meta.map(|m| (root.join(&e.path), m)))
        .map(|(p, m)| match apply(&p, &m) {
            Ok(()) => Ok(1),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::error!(file = %p.display(), "listed but not restored: missing from the store");
                Ok(0)
            }
            Err(e) => Err(io(&p)(e)),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_metadata_goes_to_regular_files_only_and_without_special_bits() {
        let d = tempfile::tempdir().unwrap();
        let m = Meta {
            mode: 0o106755,
            uid: nix::unistd::Uid::effective().as_raw(),
            gid: nix::unistd::Gid::effective().as_raw(),
            mtime: 1_600_000_000,
            mtime_nsec: 0,
        };
        let file = d.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        apply(&file, &m).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&file) & 0o7777, 0o755);
        // A repository file's set-group-id (a file no one runs) is given back.
        apply(
            &file,
            &Meta {
                mode: 0o102664,
                ..m
            },
        )
        .unwrap();
        assert_eq!(mode(&file) & 0o7777, 0o2664);

        // A link to a file elsewhere is refused, and that file is left as it was.
        let elsewhere = d.path().join("elsewhere");
        std::fs::write(&elsewhere, b"y").unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert!(apply(&link, &m).is_err());
        assert_eq!(mode(&elsewhere) & 0o7777, 0o600);

        // A FIFO is refused at once, not waited on.
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(apply(&fifo, &m).is_err());
        assert_eq!(mode(&fifo) & 0o7777, 0o600);
    }

    #[test]
    fn copies_links_and_keeps_metadata() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/x"), vec![7u8; 300_000]).unwrap();
        std::fs::hard_link(src.join("a/b/x"), src.join("a/y")).unwrap();
        std::fs::write(src.join("a/z"), b"zz").unwrap();
        let recorded = Meta {
            mode: 0o100640,
            uid: nix::unistd::Uid::effective().as_raw(),
            gid: nix::unistd::Gid::effective().as_raw(),
            mtime: 1_600_000_000,
            mtime_nsec: 250_000_000,
        };
        let items = vec![
            Entry {
                path: "a/b/x".into(),
                meta: Some(recorded),
            },
            Entry {
                path: "a/y".into(),
                meta: Some(recorded),
            },
            Entry {
                path: "a/z".into(),
                meta: None,
            },
        ];
        std::fs::create_dir(&dst).unwrap();
        let run = || {
            copy(
                &src,
                Naming::Paths,
                &dst,
                &items,
                &make_dir,
                &[],
                "test copy",
            )
            .unwrap()
        };
        let c = run();
        assert_eq!((c.files, c.linked, c.skipped), (2, 1, 0));
        let x = std::fs::metadata(dst.join("a/b/x")).unwrap();
        let y = std::fs::metadata(dst.join("a/y")).unwrap();
        assert_eq!(x.ino(), y.ino(), "one inode again");
        assert_eq!(x.len(), 300_000);
        assert_eq!(x.mode(), 0o100640);
        assert_eq!((x.mtime(), x.mtime_nsec()), (1_600_000_000, 250_000_000));
        let z = std::fs::metadata(dst.join("a/z")).unwrap();
        let zs = std::fs::metadata(src.join("a/z")).unwrap();
        assert_eq!(z.mtime(), zs.mtime(), "no record: the snapshot copy's own");
        // Run again (a resumed restore): nothing copied twice.
        let c = run();
        assert_eq!((c.files, c.linked, c.skipped), (0, 0, 2));
    }

    /// Makes one folder; false when it was there already (what restore's folder maker says).
    fn make_dir(p: &Path) -> std::io::Result<bool> {
        std::fs::create_dir(p)
            .map(|_| true)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(false),
                _ => Err(e),
            })
    }

    /// `<sha1>.<md5>.<size>` of `data`.
    fn pfile_name(data: &[u8]) -> String {
        use md5::Md5;
        use sha1::{Digest, Sha1};
        format!(
            "{}.{}.{}",
            hex::encode(Sha1::digest(data)),
            hex::encode(Md5::digest(data)),
            data.len()
        )
    }

    #[test]
    fn hashes_what_it_writes_and_names_rotten_copies() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        let good: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut rotten = b"the content its name was made from".to_vec();
        let (good_name, rotten_name) = (pfile_name(&good), pfile_name(&rotten));
        rotten[5] ^= 1; // one flipped bit on the backup server
        let files = "h/files/ab/cd/ef";
        std::fs::create_dir_all(src.join(files)).unwrap();
        std::fs::create_dir_all(src.join("h/gold/ab/cd/ef")).unwrap();
        std::fs::create_dir_all(src.join("h/logs")).unwrap();
        std::fs::write(src.join(files).join(&good_name), &good).unwrap();
        std::fs::write(src.join(files).join(&rotten_name), &rotten).unwrap();
        // A gold/files twin of the rotten file (one inode) and a file outside the
        // proved folders that merely looks content-named.
        std::fs::hard_link(
            src.join(files).join(&rotten_name),
            src.join("h/gold/ab/cd/ef").join(&rotten_name),
        )
        .unwrap();
        std::fs::write(src.join("h/logs").join(&good_name), b"not checked").unwrap();
        let items: Vec<Entry> = [
            format!("{files}/{good_name}"),
            format!("{files}/{rotten_name}"),
            format!("h/gold/ab/cd/ef/{rotten_name}"),
            format!("h/logs/{good_name}"),
        ]
        .into_iter()
        .map(|path| Entry { path, meta: None })
        .collect();
        std::fs::create_dir(&dst).unwrap();
        let under = ["h/gold".to_string(), "h/files".to_string()];
        let run = || {
            copy(
                &src,
                Naming::Paths,
                &dst,
                &items,
                &make_dir,
                &under,
                "test copy",
            )
            .unwrap()
        };
        let c = run();
        assert_eq!((c.files, c.linked, c.proved), (3, 1, 1));
        let bad: Vec<&str> = c.damaged.iter().map(|b| b.path.as_str()).collect();
        assert_eq!(
            bad,
            [
                format!("{files}/{rotten_name}"),
                format!("h/gold/ab/cd/ef/{rotten_name}")
            ],
            "both names of the rotten inode, nothing else"
        );
        assert!(
            c.damaged[0].why.contains("does not match"),
            "{:?}",
            c.damaged
        );
        assert_eq!(
            std::fs::read(dst.join(files).join(&good_name)).unwrap(),
            good
        );
        // A resumed run keeps what the first one left that proves, and copies again what
        // does not (the store may hold it good; here it is rotten there too: still named).
        let c = run();
        assert_eq!(
            (c.files, c.skipped, c.proved, c.damaged.len()),
            (1, 2, 1, 2)
        );
        assert_eq!(
            std::fs::read(dst.join(files).join(&rotten_name)).unwrap(),
            rotten
        );
        // Nothing asked to be proved: nothing is.
        std::fs::create_dir(d.path().join("dst2")).unwrap();
        let c = copy(
            &src,
            Naming::Paths,
            &d.path().join("dst2"),
            &items,
            &make_dir,
            &[],
            "test copy",
        )
        .unwrap();
        assert_eq!((c.files, c.proved, c.damaged.len()), (3, 0, 0));
    }
}
