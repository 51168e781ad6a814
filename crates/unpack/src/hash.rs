//! One pass, three digests: SHA-1 and MD5 name a repository file, SHA-256 fills
//! `pfile_sha256`. Large streams hash on a second thread so decompression and hashing
//! overlap (the two cores of a small server are both busy).

use md5::Md5;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc;

/// Digests and size of one file, hex in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hashes {
    pub sha1: String,
    pub md5: String,
    pub sha256: String,
    pub size: u64,
}

impl Hashes {
    /// The repository name `<sha1>.<md5>.<size>`.
    pub fn pfile_name(&self) -> String {
        format!("{}.{}.{}", self.sha1, self.md5, self.size)
    }
}

#[derive(Default, Clone)]
pub struct Hasher {
    sha1: Sha1,
    md5: Md5,
    sha256: Sha256,
    size: u64,
}

impl Hasher {
    pub fn update(&mut self, b: &[u8]) {
        self.sha1.update(b);
        self.md5.update(b);
        self.sha256.update(b);
        self.size += b.len() as u64;
    }

    pub fn finish(self) -> Hashes {
        Hashes {
            sha1: hex::encode(self.sha1.finalize()),
            md5: hex::encode(self.md5.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
            size: self.size,
        }
    }
}

pub fn hash_bytes(b: &[u8]) -> Hashes {
    let mut h = Hasher::default();
    h.update(b);
    h.finish()
}

pub const CHUNK: usize = 256 * 1024;

/// Hashes a file on disk, reading on this thread and hashing on another.
pub fn hash_file(path: &Path) -> io::Result<Hashes> {
    let mut f = File::open(path)?;
    let sink = Sink::spawn(None);
    loop {
        // A stop signal ends even the hashing of a large gold file promptly.
        holdfast_core::interrupt::check()?;
        let mut buf = vec![0u8; CHUNK];
        let n = read_full(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        sink.send(buf)?;
    }
    sink.finish()
}

/// Reads until `buf` is full or the reader ends.
pub fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A background thread that hashes chunks and (optionally) writes them to a file.
pub struct Sink {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    handle: Option<std::thread::JoinHandle<io::Result<Hashes>>>,
}

impl Sink {
    pub fn spawn(mut out: Option<File>) -> Sink {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let handle = std::thread::spawn(move || {
            let mut h = Hasher::default();
            let mut err = None;
            for chunk in rx {
                h.update(&chunk);
                if let (Some(f), None) = (out.as_mut(), err.as_ref()) {
                    if let Err(e) = f.write_all(&chunk) {
                        err = Some(e);
                    }
                }
            }
            match err {
                Some(e) => Err(e),
                None => Ok(h.finish()),
            }
        });
        Sink {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn send(&self, chunk: Vec<u8>) -> io::Result<()> {
        self.tx
            .as_ref()
            .expect("sink open")
            .send(chunk)
            .map_err(|_| io::Error::other("hashing thread stopped"))
    }

    pub fn finish(mut self) -> io::Result<Hashes> {
        drop(self.tx.take());
        self.handle
            .take()
            .expect("sink running")
            .join()
            .map_err(|_| io::Error::other("hashing thread panicked"))?
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let h = hash_bytes(b"abc");
        assert_eq!(h.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(h.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            h.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            h.pfile_name(),
            "a9993e364706816aba3e25717850c26c9cd0d89d.900150983cd24fb0d6963f7d28e17f72.3"
        );
    }

    #[test]
    fn file_hash_matches_bytes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        assert_eq!(hash_file(&p).unwrap(), hash_bytes(&data));
    }
}
