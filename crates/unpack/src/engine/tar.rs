//! The tar reader: every common variant, with the tar crate's own reading capped.

use super::Collector;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Most bytes the tar crate may read between two members by itself (headers, GNU long
/// names and pax records, which it holds in memory): a long-name "bomb" is an error.
const TAR_HEADER_CAP: u64 = 64 << 20;

/// The stream under a tar reader: what the tar crate reads on its own is capped at
/// [`TAR_HEADER_CAP`] per member; member data is read (and charged) by us.
struct TarFeed<'r> {
    inner: Box<dyn Read + Send + 'r>,
    ours: Arc<std::sync::atomic::AtomicBool>,
    outside: Arc<AtomicU64>,
    /// What it may read on its own before the next member: the cap, plus the stored data
    /// of a sparse member it skips itself.
    allow: Arc<AtomicU64>,
}

impl Read for TarFeed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.ours.load(Relaxed)
            && self.outside.fetch_add(n as u64, Relaxed) + n as u64 > self.allow.load(Relaxed)
        {
            return Err(io::Error::other(format!(
                "a tar header record (GNU long name or pax) larger than {TAR_HEADER_CAP} bytes"
            )));
        }
        Ok(n)
    }
}

/// Reads a tar stream (every common variant: v7, ustar, GNU, pax, sparse).
pub(crate) fn read_tar(c: &mut Collector, r: Box<dyn Read + Send + '_>) -> Result<(), String> {
    let ours = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outside = Arc::new(AtomicU64::new(0));
    let allow = Arc::new(AtomicU64::new(TAR_HEADER_CAP));
    let feed = TarFeed {
        inner: r,
        ours: ours.clone(),
        outside: outside.clone(),
        allow: allow.clone(),
    };
    let mut ar = tar::Archive::new(feed);
    let entries = ar.entries().map_err(|e| e.to_string())?;
    for e in entries {
        let mut e = e.map_err(|e| format!("corrupt or truncated: {e}"))?;
        outside.store(0, Relaxed);
        let raw = e.path_bytes().into_owned();
        let mode = e.header().mode().unwrap_or(0o644);
        use tar::EntryType::*;
        ours.store(true, Relaxed);
        match e.header().entry_type() {
            Regular | Continuous | GNUSparse => {
                let size = e.size();
                c.file(&raw, mode, &mut e, Some(size));
            }
            Directory => c.dir(&raw, mode),
            Symlink => c.symlink(&raw, mode),
            Link => {
                let target = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                c.link(&raw, &target, mode);
            }
            Char | Block => c.special(&raw, "device file"),
            Fifo => c.fifo(&raw, mode),
            XHeader | XGlobalHeader | GNULongName | GNULongLink => {}
            other => c.special(&raw, &format!("tar entry of type {other:?}")),
        }
        // Sparse members read back with their holes; the tar crate skips their stored data.
        let sparse = e.header().entry_type() == GNUSparse;
        allow.store(
            TAR_HEADER_CAP
                + if sparse {
                    e.header().entry_size().unwrap_or(0)
                } else {
                    0
                },
            Relaxed,
        );
        let drained = if c.stopped || sparse {
            Ok(())
        } else {
            c.drain(&mut e)
        };
        ours.store(false, Relaxed);
        drained?;
        if !c.go_on() {
            break;
        }
    }
    Ok(())
}
