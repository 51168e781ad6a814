//! Proving a repository file by its name: FOSSology names each stored file
//! `<sha1>.<md5>.<size>` of its content (see `holdfast_site::pfile`), so a copy is proved by
//! hashing it, with no index of ours. Files not named by content (logs, reports) are
//! "unprovable": they exist, nothing more can be said.

use holdfast_site::pfile::PfileName;
use md5::Md5;
use sha1::{Digest, Sha1};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The outcome of proving one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Good(u64),
    Unprovable,
    Bad(String),
}

/// The pfile name `path` ends in, when it is named by its content.
fn wanted(path: &Path) -> Option<PfileName> {
    PfileName::parse(&path.file_name()?.to_string_lossy())
}

/// Hashes `path` and compares it with its pfile name.
pub fn prove_file(path: &Path) -> Proof {
    let Some(want) = wanted(path) else {
        return Proof::Unprovable;
    };
    match hash_file(path) {
        Ok((sha1, md5, size)) => judge(&want, &sha1, &md5, size),
        Err(e) => Proof::Bad(format!("unreadable: {e}")),
    }
}

/// Hashes the file at `path` once for all the places it stands: a hard link already proved
/// under the same name (same device, inode, change time and name) takes that proof from
/// `proven`. The key comes from the open file: what is read is what it names.
pub fn prove_linked(path: &Path, proven: &Proven) -> Proof {
    use std::os::unix::fs::MetadataExt;
    let Some(want) = wanted(path) else {
        return Proof::Unprovable;
    };
    let unreadable = |e: std::io::Error| Proof::Bad(format!("unreadable: {e}"));
    let file = match holdfast_core::fs::open_noatime(path) {
        Ok(f) => f,
        Err(e) => return unreadable(e),
    };
    let key = match file.metadata() {
        Ok(m) => proven.inode_key(m.dev(), m.ino(), (m.ctime(), m.ctime_nsec()), &want),
        Err(e) => return unreadable(e),
    };
    if let Some(p) = proven.reuse(key, &want) {
        return p;
    }
    let proof = match hash_reader(file) {
        Ok((sha1, md5, size)) => judge(&want, &sha1, &md5, size),
        Err(e) => unreadable(e),
    };
    proven.put(key, &proof);
    proof
}

/// Proofs already made in this run, by what the store holds (a pool object, an inode under
/// one name): `verify --all` reads a file that several snapshots share once, not once per
/// snapshot. Keys are 128-bit hashes keyed at random per run (a million files cost ~20 MB,
/// and no one can choose names that collide); a file is only ever judged against the name
/// its key includes, so a shared proof is the proof the file would get again.
#[derive(Default)]
pub struct Proven {
    hashers: (std::hash::RandomState, std::hash::RandomState),
    good: Mutex<HashSet<u128>>,
    bad: Mutex<HashMap<u128, String>>,
    reused: AtomicU64,
    reused_bytes: AtomicU64,
}

impl Proven {
    /// The key of a file by its device, inode, change time and the name it is proved
    /// against. Hard links share all but the name; a file made later on a freed inode
    /// number, or linked again since, has another change time and is read again.
    pub fn inode_key(&self, dev: u64, ino: u64, ctime: (i64, i64), want: &PfileName) -> u128 {
        self.key(&[
            b"inode",
            &dev.to_le_bytes(),
            &ino.to_le_bytes(),
            &ctime.0.to_le_bytes(),
            &ctime.1.to_le_bytes(),
            want.sha1.as_bytes(),
            want.md5.as_bytes(),
            &want.size.to_le_bytes(),
        ])
    }

    /// The key of an object by its path in the store (one object, one content).
    pub fn object_key(&self, path: &str) -> u128 {
        self.key(&[b"object", path.as_bytes()])
    }

    /// Whether no proof is remembered yet (none can be taken from it).
    pub fn is_empty(&self) -> bool {
        self.good.lock().expect("not poisoned").is_empty()
            && self.bad.lock().expect("not poisoned").is_empty()
    }

    fn key(&self, parts: &[&[u8]]) -> u128 {
        let hash = |h: &std::hash::RandomState| {
            let mut s = h.build_hasher();
            for p in parts {
                std::hash::Hasher::write(&mut s, p);
                std::hash::Hasher::write_u8(&mut s, 0xff);
            }
            std::hash::Hasher::finish(&s)
        };
        (u128::from(hash(&self.hashers.0)) << 64) | u128::from(hash(&self.hashers.1))
    }

    /// The proof already made for `key`, if any.
    pub fn get(&self, key: u128, want: &PfileName) -> Option<Proof> {
        if self.good.lock().expect("not poisoned").contains(&key) {
            return Some(Proof::Good(want.size));
        }
        let why = self.bad.lock().expect("not poisoned").get(&key)?.clone();
        Some(Proof::Bad(why))
    }

    /// [`Proven::get`] for one path, counted as reused when found.
    pub fn reuse(&self, key: u128, want: &PfileName) -> Option<Proof> {
        let p = self.get(key, want)?;
        self.count_reused(&p);
        Some(p)
    }

    /// Counts one path's proof taken from an earlier one instead of read.
    pub fn count_reused(&self, proof: &Proof) {
        self.reused.fetch_add(1, Ordering::Relaxed);
        if let Proof::Good(n) = proof {
            self.reused_bytes.fetch_add(*n, Ordering::Relaxed);
        }
    }

    /// Remembers the proof made for `key`.
    pub fn put(&self, key: u128, proof: &Proof) {
        match proof {
            Proof::Good(_) => {
                self.good.lock().expect("not poisoned").insert(key);
            }
            Proof::Bad(why) => {
                self.bad
                    .lock()
                    .expect("not poisoned")
                    .insert(key, why.clone());
            }
            Proof::Unprovable => {}
        }
    }

    /// How many proofs were taken from earlier ones, and the bytes they stand for (not read).
    pub fn reused(&self) -> (u64, u64) {
        (
            self.reused.load(Ordering::Relaxed),
            self.reused_bytes.load(Ordering::Relaxed),
        )
    }
}

/// Compares hashes and size (however they were computed) with the name.
pub fn judge(want: &PfileName, sha1: &str, md5: &str, size: u64) -> Proof {
    if size != want.size {
        return Proof::Bad(format!("size {size}, name says {}", want.size));
    }
    if sha1 != want.sha1 || md5 != want.md5 {
        return Proof::Bad(format!(
            "content sha1 {sha1} md5 {md5} does not match the name"
        ));
    }
    Proof::Good(size)
}

/// sha1 and md5 (lower-case hex) and size of a file, read once.
pub fn hash_file(path: &Path) -> std::io::Result<(String, String, u64)> {
    hash_reader(holdfast_core::fs::open_noatime(path)?)
}

/// sha1 and md5 (lower-case hex) and size of a stream, read once.
pub fn hash_reader(mut r: impl Read) -> std::io::Result<(String, String, u64)> {
    let mut h = ContentHash::default();
    holdfast_core::fs::read_pieces(
        &mut r,
        |e| e,
        |piece| {
            h.update(piece);
            Ok(())
        },
    )?;
    Ok(h.finish())
}

/// sha1, md5 and size of bytes fed in pieces (a copy hashes what it writes with it).
#[derive(Default, Clone)]
pub struct ContentHash {
    sha1: Sha1,
    md5: Md5,
    size: u64,
}

impl ContentHash {
    pub fn update(&mut self, data: &[u8]) {
        self.sha1.update(data);
        self.md5.update(data);
        self.size += data.len() as u64;
    }

    /// sha1 and md5 (lower-case hex) and size.
    pub fn finish(self) -> (String, String, u64) {
        (
            hex::encode(self.sha1.finalize()),
            hex::encode(self.md5.finalize()),
            self.size,
        )
    }
}

/// The pfile name of a repository-relative path, when it is named by its content.
pub fn pfile_of(path: &str) -> Option<PfileName> {
    PfileName::parse(path.rsplit('/').next().unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::{hash_file, prove_linked, Proof, Proven};
    use std::time::{Duration, SystemTime};

    /// A content-named file holding `data`, in a new folder `dir` of `root`.
    fn named(root: &std::path::Path, dir: &str, data: &[u8]) -> std::path::PathBuf {
        let (sha1, md5, size) = super::hash_reader(data).unwrap();
        std::fs::create_dir_all(root.join(dir)).unwrap();
        let p = root.join(dir).join(format!("{sha1}.{md5}.{size}"));
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn a_hard_link_under_the_same_name_is_read_once() {
        let t = tempfile::tempdir().unwrap();
        let day1 = named(t.path(), "day1", b"a repository file");
        let day2 = t.path().join("day2").join(day1.file_name().unwrap());
        std::fs::create_dir(t.path().join("day2")).unwrap();
        std::fs::hard_link(&day1, &day2).unwrap();
        let proven = Proven::default();
        assert_eq!(prove_linked(&day1, &proven), Proof::Good(17));
        assert_eq!(proven.reused(), (0, 0));
        assert_eq!(prove_linked(&day2, &proven), Proof::Good(17));
        assert_eq!(proven.reused(), (1, 17));

        // A copy is another file: read, and proved on its own.
        let copy = named(t.path(), "day3", b"a repository file");
        assert_eq!(prove_linked(&copy, &proven), Proof::Good(17));
        assert_eq!(proven.reused(), (1, 17));

        // An inode proved under its name, linked under another, is judged against that
        // name: not taken.
        let other = named(t.path(), "other", b"another file");
        let alias = t.path().join("other").join(day1.file_name().unwrap());
        std::fs::hard_link(&other, &alias).unwrap();
        assert_eq!(prove_linked(&other, &proven), Proof::Good(12));
        assert!(matches!(prove_linked(&alias, &proven), Proof::Bad(_)));
        assert_eq!(proven.reused(), (1, 17));

        // A link made since changes the inode's change time: read again, not taken.
        let day4 = t.path().join("day4");
        std::fs::create_dir(&day4).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::hard_link(&day1, day4.join(day1.file_name().unwrap())).unwrap();
        assert_eq!(prove_linked(&day2, &proven), Proof::Good(17));
        assert_eq!(proven.reused(), (1, 17));
    }

    #[test]
    fn a_rotten_file_is_bad_under_every_link_of_it() {
        let t = tempfile::tempdir().unwrap();
        let day1 = named(t.path(), "day1", b"a repository file");
        std::fs::write(&day1, b"a repositorx file").unwrap();
        std::fs::create_dir(t.path().join("day2")).unwrap();
        let day2 = t.path().join("day2").join(day1.file_name().unwrap());
        std::fs::hard_link(&day1, &day2).unwrap();
        let proven = Proven::default();
        let first = prove_linked(&day1, &proven);
        assert!(matches!(first, Proof::Bad(_)), "{first:?}");
        assert_eq!(prove_linked(&day2, &proven), first);
        assert_eq!(proven.reused(), (1, 0));
        // A missing file is bad and nothing is remembered for it.
        std::fs::remove_file(&day2).unwrap();
        assert!(matches!(prove_linked(&day2, &proven), Proof::Bad(_)));
        assert_eq!(proven.reused(), (1, 0));
    }

    #[test]
    fn proving_a_file_leaves_its_access_time() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"content").unwrap();
        // Older than a day and than its change time: a plain read under relatime updates it.
        let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_times(
                std::fs::FileTimes::new()
                    .set_accessed(old)
                    .set_modified(old - Duration::from_secs(86_400)),
            )
            .unwrap();
        let before = std::fs::metadata(&p).unwrap().accessed().unwrap();
        hash_file(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().accessed().unwrap(), before);
    }
}
