//! Proving a repository file by its name: FOSSology names each stored file
//! `<sha1>.<md5>.<size>` of its content (see `holdfast_site::pfile`), so a copy is proved by
//! hashing it, with no index of ours. Files not named by content (logs, reports) are
//! "unprovable": they exist, nothing more can be said.

use holdfast_site::pfile::PfileName;
use md5::Md5;
use sha1::{Digest, Sha1};
use std::io::Read;
use std::path::Path;

/// The outcome of proving one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Good(u64),
    Unprovable,
    Bad(String),
}

/// Hashes `path` and compares it with its pfile name.
pub fn prove_file(path: &Path) -> Proof {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(want) = PfileName::parse(&name) else {
        return Proof::Unprovable;
    };
    match hash_file(path) {
        Ok((sha1, md5, size)) => judge(&want, &sha1, &md5, size),
        Err(e) => Proof::Bad(format!("unreadable: {e}")),
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
    use super::hash_file;
    use std::time::{Duration, SystemTime};

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
