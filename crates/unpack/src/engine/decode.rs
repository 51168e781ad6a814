//! Decoders for single compressed streams, strict about their own integrity checks.

use super::ReadSeek;
use crate::detect::Kind;
use crate::hash::CHUNK;
use std::io::{self, Read};

pub(crate) fn decoder<'r>(
    kind: Kind,
    r: Box<dyn ReadSeek + 'r>,
) -> io::Result<Box<dyn Read + Send + 'r>> {
    let r = io::BufReader::with_capacity(CHUNK, r);
    Ok(match kind {
        Kind::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Kind::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        // A hostile header must not make the decoder allocate gigabytes (xz -9 needs 65 MiB).
        Kind::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(r, true, 512 << 10)),
        Kind::Lzma => {
            let mut d = lzma_rust2::LzmaReader::new_mem_limit(r, 1 << 20, None)
                .map_err(io::Error::other)?;
            // A declared size reached before the stream's end is an error, as for xz.
            d.set_relaxed_end_condition(false);
            Box::new(d)
        }
        Kind::Lzip => Box::new(lzma_rust2::LzipReader::new(r)),
        Kind::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Kind::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(r)),
        _ => return Err(io::Error::other("not a compressed stream")),
    })
}

/// Strict decoders: a stream that fails its own integrity check is an error. The oracle is
/// the format's own tool (`xz -t`, `gzip -t`, ...): every single-byte corruption of a small
/// stream that the tool rejects must fail to decode here too.
#[cfg(test)]
mod strict {
    use super::{decoder, Kind};
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    fn tool(prog: &str, args: &[&str], input: &[u8]) -> Option<(bool, Vec<u8>)> {
        let mut c = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut stdin = c.stdin.take().unwrap();
        let data = input.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = c.wait_with_output().ok()?;
        let _ = w.join();
        Some((out.status.success(), out.stdout))
    }

    fn ours(kind: Kind, data: &[u8]) -> Result<Vec<u8>, String> {
        let r: Box<dyn super::ReadSeek> = Box::new(std::io::Cursor::new(data.to_vec()));
        let mut d = decoder(kind, r).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        d.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Returns the corruptions the tool rejects but we accept.
    fn check(kind: Kind, prog: &str, compress: &[&str]) -> Vec<String> {
        let plain: Vec<u8> = (0..3000u32)
            .flat_map(|i| format!("line {i} of the test text\n").into_bytes())
            .collect();
        let Some((true, packed)) = tool(prog, compress, &plain) else {
            panic!("{prog} cannot compress (install it)");
        };
        assert_eq!(ours(kind, &packed).unwrap(), plain, "{prog}: clean stream");
        let mut missed = Vec::new();
        // Every byte of the headers and trailers (checks, sizes, index), a sample between.
        let n = packed.len();
        for i in (0..n).filter(|&i| i < 48 || i + 48 >= n || i % 7 == 0) {
            let mut bad = packed.clone();
            bad[i] ^= 0x55;
            let (ok, _) = tool(prog, &["-d", "-c"], &bad).unwrap();
            if !ok && ours(kind, &bad).is_ok() {
                missed.push(format!("{prog}: byte {i} of {}", packed.len()));
            }
        }
        missed
    }

    /// Legacy `.lzma` has no check, but a declared size reached before the stream ends is
    /// corrupt (`xz -t` says so; xz-utils' `bad-too_small_size-*`).
    #[test]
    fn lzma_declared_size_must_match_the_stream() {
        let plain = b"hello hello hello hello hello\n".repeat(40);
        let Some((true, packed)) = tool("xz", &["--format=lzma", "-c"], &plain) else {
            panic!("xz cannot compress (install xz-utils)");
        };
        let with_size = |n: u64| {
            let mut b = packed.clone();
            b[5..13].copy_from_slice(&n.to_le_bytes());
            b
        };
        assert_eq!(ours(Kind::Lzma, &packed).unwrap(), plain);
        assert_eq!(
            ours(Kind::Lzma, &with_size(plain.len() as u64)).unwrap(),
            plain
        );
        let small = with_size(plain.len() as u64 / 2);
        assert!(
            !tool("xz", &["--format=lzma", "-d", "-c"], &small)
                .unwrap()
                .0
        );
        assert!(ours(Kind::Lzma, &small).is_err());
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let mut missed = Vec::new();
        missed.extend(check(Kind::Xz, "xz", &["-c", "--check=crc64"]));
        missed.extend(check(Kind::Xz, "xz", &["-c", "--check=sha256"]));
        missed.extend(check(Kind::Xz, "xz", &["-c", "--check=crc32"]));
        missed.extend(check(Kind::Gzip, "gzip", &["-c"]));
        missed.extend(check(Kind::Bzip2, "bzip2", &["-c"]));
        missed.extend(check(Kind::Zstd, "zstd", &["-c", "-q", "--check"]));
        missed.extend(check(Kind::Lz4, "lz4", &["-c", "-q", "--content-size"]));
        assert!(missed.is_empty(), "{} accepted: {missed:#?}", missed.len());
    }
}
