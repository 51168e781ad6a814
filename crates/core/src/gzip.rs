//! gzip written with libdeflate, a member per piece.
//!
//! libdeflate compresses a whole buffer at once: 35-45% less CPU than zlib at the same level
//! and a smaller result (a night's dump: 0.20 s and 8.1 MB against zlib-rs's 0.31 s and
//! 8.6 MB). On two cores the night's dump and list compete with the copy for the CPU.
//! The output is ordinary gzip: its members are decoded one after the other by `gunzip`,
//! `zcat` and flate2's `MultiGzDecoder`.

use std::io::Write;

/// Writes each piece it is handed between two flushes as one gzip member.
pub struct Members<W: Write> {
    inner: W,
    compressor: libdeflater::Compressor,
    pending: Vec<u8>,
    out: Vec<u8>,
    members: u64,
}

impl<W: Write> Members<W> {
    /// `level` 0 (stored) to 12; out-of-range levels are clamped.
    pub fn new(inner: W, level: i32) -> Self {
        let level = libdeflater::CompressionLvl::new(level.clamp(0, 12))
            .unwrap_or_else(|_| libdeflater::CompressionLvl::default());
        Members {
            inner,
            compressor: libdeflater::Compressor::new(level),
            pending: Vec::new(),
            out: Vec::new(),
            members: 0,
        }
    }

    fn member(&mut self) -> std::io::Result<()> {
        let bound = self.compressor.gzip_compress_bound(self.pending.len());
        if self.out.len() < bound {
            self.out.resize(bound, 0);
        }
        let n = self
            .compressor
            .gzip_compress(&self.pending, &mut self.out)
            .map_err(|e| std::io::Error::other(format!("gzip: {e:?}")))?;
        self.inner.write_all(&self.out[..n])?;
        self.pending.clear();
        self.members += 1;
        Ok(())
    }

    /// Writes what is pending (an empty member if nothing was ever written, so that the
    /// result is a gzip file) and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if !self.pending.is_empty() || self.members == 0 {
            self.member()?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for Members<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Ends the current member.
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            self.member()?;
        }
        Ok(())
    }
}

/// `data` as gzip, in members of 1 MiB of input (a bounded output buffer, the same ratio).
pub fn compress(data: &[u8], level: i32) -> Vec<u8> {
    let mut w = Members::new(Vec::new(), level);
    for piece in data.chunks(1 << 20) {
        // Writing into memory cannot fail; libdeflate's bound is exact.
        w.write_all(piece).expect("in memory");
        w.flush().expect("in memory");
    }
    w.finish().expect("in memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(z)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    #[test]
    fn members_decode_to_the_input_and_empty_input_is_still_gzip() {
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| {
                format!(
                    "localhost/files/{:08x}\t{}\n",
                    i.wrapping_mul(2654435761),
                    i % 7
                )
                .into_bytes()
            })
            .collect();
        assert!(text.len() > 3 << 20);
        let z = compress(&text, 6);
        assert!(z.len() < text.len() / 2, "{} of {}", z.len(), text.len());
        // Several members, each a gzip header of its own.
        assert!(z.windows(3).filter(|w| *w == [0x1f, 0x8b, 8]).count() >= 4);
        assert_eq!(gunzip(&z), text);
        let empty = compress(b"", 6);
        assert_eq!(&empty[..2], &[0x1f, 0x8b]);
        assert!(gunzip(&empty).is_empty());
        // The system's gzip reads it too.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.gz");
        std::fs::write(&p, &z).unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&p)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, text);
    }
}
