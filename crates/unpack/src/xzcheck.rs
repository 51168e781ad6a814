//! The rest of xz's integrity rules. The decoder checks each block's CRC32/CRC64/SHA-256,
//! but not the stream's index (which records every block's size), the backward size in
//! the footer, the footer flags against the header's, minimal size encodings or the
//! stream padding, so it accepts streams `xz -t` rejects (xz-utils' own `bad-0-backward_size`,
//! `bad-2-index-*`, `bad-1-vli-1`, `bad-3-index-uncomp-overflow`, ...). [`verify`] walks the
//! container from the end, as `xz --list` does, and checks all of it, and that the sizes the
//! index records add up to what was decoded.

use crate::hash::read_full;
use std::io::{Read, Seek, SeekFrom};

const HEADER_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0];

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads a variable-length integer; minimal encodings of at most 9 bytes only.
fn vli(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(*pos).ok_or("truncated number")?;
        *pos += 1;
        v |= ((byte & 0x7F) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err("number not in its shortest encoding".into());
            }
            return Ok(v);
        }
    }
    Err("number longer than 9 bytes".into())
}

fn check_size(check: u8) -> u64 {
    match check {
        0 => 0,
        1..=3 => 4,
        4..=6 => 8,
        7..=9 => 16,
        10..=12 => 32,
        _ => 64,
    }
}

fn at(r: &mut dyn ReadSeekDyn, pos: u64, n: u64) -> Result<Vec<u8>, String> {
    if n > 64 << 20 {
        return Err(format!("a {n}-byte index or header"));
    }
    r.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
    let mut b = vec![0u8; n as usize];
    if read_full(r, &mut b).map_err(|e| e.to_string())? < b.len() {
        return Err("truncated".into());
    }
    Ok(b)
}

/// Compressed and uncompressed size of the LZMA2 data at `pos` (at most `max` bytes read).
fn lzma2_sizes(r: &mut dyn ReadSeekDyn, pos: u64, max: u64) -> Result<(u64, u64), String> {
    let (mut c, mut u) = (0u64, 0u64);
    loop {
        if c >= max {
            return Err("LZMA2 data runs past its block".into());
        }
        let head = at(r, pos + c, (max - c).min(6))?;
        let ctl = head[0];
        let need = |n: usize| {
            if head.len() < n {
                Err("LZMA2 data runs past its block".to_string())
            } else {
                Ok(())
            }
        };
        match ctl {
            0 => return Ok((c + 1, u)),
            1 | 2 => {
                need(3)?;
                let size = u16::from_be_bytes([head[1], head[2]]) as u64 + 1;
                c += 3 + size;
                u += size;
            }
            0x80..=0xFF => {
                need(5)?;
                let unpacked =
                    ((ctl as u64 & 0x1F) << 16 | u16::from_be_bytes([head[1], head[2]]) as u64) + 1;
                let packed = u16::from_be_bytes([head[3], head[4]]) as u64 + 1;
                c += if ctl >= 0xC0 { 6 } else { 5 } + packed;
                u += unpacked;
            }
            _ => return Err(format!("bad LZMA2 chunk control byte {ctl:#x}")),
        }
    }
}

pub(crate) trait ReadSeekDyn: Read + Seek {}
impl<T: Read + Seek> ReadSeekDyn for T {}

/// Checks the xz container in `r` (`len` bytes) whose streams decoded to `decoded` bytes.
pub(crate) fn verify(r: &mut dyn ReadSeekDyn, len: u64, decoded: u64) -> Result<(), String> {
    let mut end = len;
    let mut total: u64 = 0;
    let mut streams = 0;
    let round4 = |n: u64| n.checked_add(3).map(|x| x & !3);
    loop {
        // Stream padding: zero bytes in fours (read in large pieces: it may be long).
        loop {
            let n = end.min(1 << 16);
            let tail = at(r, end - n, n)?;
            let zeros = tail.iter().rev().take_while(|&&b| b == 0).count() as u64;
            end -= zeros / 4 * 4;
            if zeros < n || n == 0 || !zeros.is_multiple_of(4) {
                break;
            }
        }
        if end == 0 {
            if streams == 0 {
                return Err("no xz stream".into());
            }
            break;
        }
        if end < 24 {
            return Err(if streams == 0 {
                "truncated stream".into()
            } else {
                "stream padding is not a multiple of four bytes, or garbage before a stream".into()
            });
        }
        let foot = at(r, end - 12, 12)?;
        if &foot[10..12] != b"YZ" {
            return Err(
                "bad stream footer magic (truncated, or padding not a multiple of four)".into(),
            );
        }
        if crc32(&foot[4..10]) != le32(&foot[0..4]) {
            return Err("stream footer CRC32 mismatch".into());
        }
        if foot[8] != 0 || foot[9] & 0xF0 != 0 {
            return Err("unsupported stream flags in the footer".into());
        }
        let backward = (le32(&foot[4..8]) as u64 + 1) * 4;
        let index_start = (end - 12)
            .checked_sub(backward)
            .ok_or("backward size points before the file")?;
        let index = at(r, index_start, backward)?;
        if index[0] != 0 {
            return Err("backward size does not point at the index".into());
        }
        let mut pos = 1;
        let count = vli(&index, &mut pos)?;
        if count > backward / 2 {
            return Err("index record count larger than the index".into());
        }
        let mut records = Vec::with_capacity(count as usize);
        let mut blocks: u64 = 0;
        for _ in 0..count {
            let unpadded = vli(&index, &mut pos)?;
            let uncomp = vli(&index, &mut pos)?;
            if !(5..=(1 << 63)).contains(&unpadded) {
                return Err("index records an impossible block size".into());
            }
            blocks = round4(unpadded)
                .and_then(|u| blocks.checked_add(u))
                .ok_or("index block sizes overflow")?;
            total = total
                .checked_add(uncomp)
                .ok_or("index uncompressed sizes overflow")?;
            records.push((unpadded, uncomp));
        }
        while pos % 4 != 0 {
            if index.get(pos) != Some(&0) {
                return Err("index padding is not zero".into());
            }
            pos += 1;
        }
        if pos + 4 != index.len() {
            return Err("backward size does not match the index".into());
        }
        if crc32(&index[..pos]) != le32(&index[pos..]) {
            return Err("index CRC32 mismatch".into());
        }
        let start = index_start
            .checked_sub(blocks)
            .and_then(|s| s.checked_sub(12))
            .ok_or("index records more data than the stream has")?;
        let head = at(r, start, 12)?;
        if head[..6] != HEADER_MAGIC {
            return Err("index and stream header do not agree on where the stream starts".into());
        }
        if crc32(&head[6..8]) != le32(&head[8..12]) {
            return Err("stream header CRC32 mismatch".into());
        }
        if head[6..8] != foot[8..10] {
            return Err("stream header and footer flags differ".into());
        }
        let check = check_size(head[7]);
        let mut bpos = start + 12;
        for (unpadded, uncomp) in records {
            let size = at(r, bpos, 1)?[0];
            if size == 0 {
                return Err("index records more blocks than the stream has".into());
            }
            let hsize = (size as u64 + 1) * 4;
            let h = at(r, bpos, hsize)?;
            let n = h.len();
            if crc32(&h[..n - 4]) != le32(&h[n - 4..]) {
                return Err("block header CRC32 mismatch".into());
            }
            let flags = h[1];
            if flags & 0x3C != 0 {
                return Err("reserved block header flags set".into());
            }
            let comp = unpadded
                .checked_sub(hsize + check)
                .filter(|&c| c > 0)
                .ok_or("index records a block smaller than its header and check")?;
            let mut p = 2;
            if flags & 0x40 != 0 && vli(&h, &mut p)? != comp {
                return Err("block header and index disagree on the compressed size".into());
            }
            if flags & 0x80 != 0 && vli(&h, &mut p)? != uncomp {
                return Err("block header and index disagree on the uncompressed size".into());
            }
            // With LZMA2 last in the filter chain (BCJ and delta keep sizes), its chunk
            // headers give the block's true sizes without decoding.
            let mut last = 0;
            for _ in 0..(flags & 3) + 1 {
                last = vli(&h, &mut p)?;
                let props = vli(&h, &mut p)?;
                p = p
                    .checked_add(props as usize)
                    .ok_or("bad filter properties")?;
            }
            if p > n - 4 {
                return Err("block header filter flags overrun it".into());
            }
            if last == 0x21 {
                let (c, u) = lzma2_sizes(r, bpos + hsize, comp)?;
                if c != comp || u != uncomp {
                    return Err(format!(
                        "the index records a block of {comp} compressed and {uncomp} uncompressed bytes; it holds {c} and {u}"
                    ));
                }
            }
            bpos += round4(unpadded).ok_or("block size overflows")?;
        }
        streams += 1;
        end = start;
    }
    if total != decoded {
        return Err(format!(
            "the index records {total} uncompressed bytes but the stream holds {decoded}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn xz(data: &[u8], args: &[&str]) -> Vec<u8> {
        use std::io::Write;
        let mut c = std::process::Command::new("xz")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("xz installed");
        c.stdin.take().unwrap().write_all(data).unwrap();
        c.wait_with_output().unwrap().stdout
    }

    fn xz_t(data: &[u8]) -> bool {
        use std::io::Write;
        let mut c = std::process::Command::new("xz")
            .args(["-t", "-q", "-q"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _ = c.stdin.take().unwrap().write_all(data);
        c.wait().unwrap().success()
    }

    fn check(data: &[u8], decoded: u64) -> Result<(), String> {
        verify(&mut Cursor::new(data), data.len() as u64, decoded)
    }

    /// Re-seals a CRC32 after the bytes it covers were changed, so only the structure is bad.
    fn reseal(b: &mut [u8], from: usize, to: usize) {
        let c = crc32(&b[from..to]).to_le_bytes();
        b[to..to + 4].copy_from_slice(&c);
    }

    #[test]
    fn good_streams_pass_and_structural_lies_fail() {
        let plain = b"holdfast xz check\n".repeat(500);
        let n = plain.len() as u64;
        let one = xz(&plain, &["-c", "--block-size=4000"]);
        check(&one, n).unwrap();
        // Two streams with padding between them.
        let mut two = one.clone();
        two.extend([0u8; 8]);
        two.extend(&one);
        check(&two, 2 * n).unwrap();
        assert!(xz_t(&two));

        // The oracle agrees with each lie below; each has its CRC re-sealed.
        let mut cases: Vec<(&str, Vec<u8>, u64)> = Vec::new();
        // The index claims one more uncompressed byte (bad-2-index-*).
        let mut b = one.clone();
        let l = b.len();
        let backward = (le32(&b[l - 8..l - 4]) as usize + 1) * 4;
        let istart = l - 12 - backward;
        // Record 1's uncompressed size is the second number after the count.
        let mut p = istart + 1;
        vli(&b, &mut p).unwrap();
        vli(&b, &mut p).unwrap();
        b[p] ^= 1;
        reseal(&mut b, istart, l - 12 - 4);
        cases.push(("index uncompressed size", b, n));
        // The backward size is off by four (bad-0-backward_size).
        let mut b = one.clone();
        b[l - 8] = b[l - 8].wrapping_add(1);
        let crc = crc32(&b[l - 8..l - 2]).to_le_bytes();
        b[l - 12..l - 8].copy_from_slice(&crc);
        cases.push(("backward size", b, n));
        // Footer flags differ from the header's.
        let mut b = one.clone();
        b[l - 3] ^= 0x01;
        let crc = crc32(&b[l - 8..l - 2]).to_le_bytes();
        b[l - 12..l - 8].copy_from_slice(&crc);
        cases.push(("footer flags", b, n));
        // Padding of two bytes at the end (bad-0pad-empty).
        let mut b = one.clone();
        b.extend([0u8; 2]);
        cases.push(("odd padding", b, n));
        for (what, bad, n) in cases {
            assert!(!xz_t(&bad), "{what}: xz -t accepts it, the test is wrong");
            assert!(check(&bad, n).is_err(), "{what}: accepted");
        }
        // Decoded size not what the index says.
        assert!(check(&one, n - 1).is_err());
        assert!(check(b"", 0).is_err());
    }
}
