//! A small `ar` reader (GNU and BSD variants, as in `.deb` packages and static libraries)
//! that never trusts a header: every offset and size is checked, so malformed input is an
//! error, never a panic. (The `ar` crate 0.9 slices out of range on a GNU long-name reference
//! `/N` when the archive has no `//` name table.)
//!
//! Symbol tables (`/`, `/SYM64/`, `__.SYMDEF*`) and the GNU name table `//` are not members;
//! GNU names lose their trailing `/`, `/N` is looked up in the name table, BSD `#1/N` takes
//! the name from the first N bytes of the data.

use std::io::{self, Read};

pub(crate) const MAGIC: &[u8; 8] = b"!<arch>\n";

/// One member's header fields.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub name: Vec<u8>,
    pub mode: u32,
    pub size: u64,
}

fn field(h: &[u8], from: usize, to: usize, radix: u32, what: &str) -> Result<u64, String> {
    let s = std::str::from_utf8(&h[from..to]).map_err(|_| format!("corrupt header ({what})"))?;
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, radix).map_err(|_| format!("corrupt header ({what} {s:?})"))
}

/// Reads every member of an `ar` archive, calling `each` with its header and a reader of
/// exactly its data; `each` returns false to stop. Data `each` leaves unread is skipped.
pub(crate) fn read_each(
    r: &mut dyn Read,
    mut each: impl FnMut(&Header, &mut dyn Read) -> bool,
) -> Result<(), String> {
    let mut magic = [0u8; 8];
    if crate::hash::read_full(r, &mut magic).map_err(|e| e.to_string())? < 8 || &magic != MAGIC {
        return Err("not an ar archive (thin archives are not supported)".into());
    }
    let mut names: Vec<u8> = Vec::new();
    let mut odd = false;
    loop {
        if odd {
            // Members start at even offsets; the pad byte may be missing at the very end.
            let mut pad = [0u8; 1];
            if crate::hash::read_full(r, &mut pad).map_err(|e| e.to_string())? == 0 {
                return Ok(());
            }
        }
        let mut h = [0u8; 60];
        let n = crate::hash::read_full(r, &mut h).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(());
        }
        if n < 60 {
            return Err("truncated member header".into());
        }
        if &h[58..60] != b"`\n" {
            return Err("corrupt member header (no `\\n terminator)".into());
        }
        let size = field(&h, 48, 58, 10, "size")?;
        let mode = field(&h, 40, 48, 8, "mode")? as u32;
        odd = size % 2 == 1;
        let raw = &h[..16];
        let id = {
            let end = raw.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
            &raw[..end]
        };
        let mut data = (&mut *r).take(size);
        let mut name: Vec<u8>;
        if id == b"/" || id == b"/SYM64/" || id.starts_with(b"__.SYMDEF") {
            io::copy(&mut data, &mut io::sink()).map_err(|e| e.to_string())?;
            if data.limit() > 0 {
                return Err("truncated symbol table".into());
            }
            continue;
        } else if id == b"//" {
            if size > 64 << 20 {
                return Err("name table larger than 64 MiB".into());
            }
            names.clear();
            data.read_to_end(&mut names).map_err(|e| e.to_string())?;
            if (names.len() as u64) < size {
                return Err("truncated name table".into());
            }
            continue;
        } else if let Some(rest) = id.strip_prefix(b"#1/") {
            let len = std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|&l| l <= size && l <= 4096)
                .ok_or_else(|| "corrupt BSD long name".to_string())?;
            name = vec![0u8; len as usize];
            if crate::hash::read_full(&mut data, &mut name).map_err(|e| e.to_string())?
                < len as usize
            {
                return Err("truncated BSD long name".into());
            }
            while name.last() == Some(&0) {
                name.pop();
            }
        } else if id.len() > 1 && id[0] == b'/' && id[1..].iter().all(u8::is_ascii_digit) {
            let off: usize = std::str::from_utf8(&id[1..])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(usize::MAX);
            let Some(tail) = names.get(off..) else {
                return Err(format!(
                    "member name refers to offset {off} of a name table of {} bytes",
                    names.len()
                ));
            };
            let end = tail.iter().position(|&b| b == b'\n').unwrap_or(tail.len());
            name = tail[..end].to_vec();
            if name.last() == Some(&b'/') {
                name.pop();
            }
        } else {
            name = id.to_vec();
            if name.last() == Some(&b'/') {
                name.pop();
            }
        }
        let header = Header { name, mode, size };
        if !each(&header, &mut data) {
            return Ok(());
        }
        io::copy(&mut data, &mut io::sink()).map_err(|e| e.to_string())?;
        if data.limit() > 0 {
            return Err(format!(
                "member {} truncated",
                String::from_utf8_lossy(&header.name)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            "100644",
            data.len()
        )
        .into_bytes();
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(b'\n');
        }
        v
    }

    fn list(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut out = Vec::new();
        read_each(&mut &bytes[..], |h, r| {
            let mut d = Vec::new();
            r.read_to_end(&mut d).unwrap();
            out.push((String::from_utf8_lossy(&h.name).to_string(), d));
            true
        })?;
        Ok(out)
    }

    #[test]
    fn gnu_bsd_and_symbol_tables() {
        let mut a = MAGIC.to_vec();
        a.extend(member("/", b"\0\0\0\0"));
        a.extend(member("//", b"a-very-long-member-name.txt/\n"));
        a.extend(member("debian-binary", b"2.0\n"));
        a.extend(member("short.o/", b"abc"));
        a.extend(member("/0", b"long"));
        a.extend(member("#1/20", b"bsd-name-of-20-bytesdata"));
        let l = list(&a).unwrap();
        let names: Vec<&str> = l.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "debian-binary",
                "short.o",
                "a-very-long-member-name.txt",
                "bsd-name-of-20-bytes"
            ]
        );
        assert_eq!(l[1].1, b"abc");
        assert_eq!(l[3].1, b"data");
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        // The `ar` 0.9 crasher: a GNU long-name reference with no `//` table.
        let crasher =
            b"!<arch>\n/9              0           0     0     644     4         `\nabc\n";
        let e = list(crasher).unwrap_err();
        assert!(e.contains("offset 9"), "{e}");
        let mut a = MAGIC.to_vec();
        a.extend(member("x", b"12345678"));
        a.truncate(a.len() - 3);
        assert!(list(&a).unwrap_err().contains("truncated"));
        assert!(list(b"!<arch>\nshort").is_err());
        assert!(list(b"not an archive").is_err());
        let mut a = MAGIC.to_vec();
        a.extend(member("#1/99", b"ab"));
        assert!(list(&a).is_err());
    }
}
