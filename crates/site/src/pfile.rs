//! pfile names: a stored file is named by its content, `<sha1>.<md5>.<size>` in lower case.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PfileName {
    pub sha1: String,
    pub md5: String,
    pub size: u64,
}

impl PfileName {
    /// From the database's columns (FOSSology stores the hashes in upper case).
    pub fn new(sha1: &str, md5: &str, size: u64) -> Self {
        PfileName {
            sha1: sha1.trim().to_ascii_lowercase(),
            md5: md5.trim().to_ascii_lowercase(),
            size,
        }
    }

    /// Parses a repository file name; `None` for anything else (temporary files and the like).
    pub fn parse(name: &str) -> Option<Self> {
        let (sha1, md5, size) = Self::split(name)?;
        Some(PfileName {
            sha1: sha1.to_ascii_lowercase(),
            md5: md5.to_ascii_lowercase(),
            size,
        })
    }

    /// The size a repository file name carries, checked as [`PfileName::parse`] checks it but
    /// without building the name (a night sums ~100k of them).
    pub fn size_of(name: &str) -> Option<u64> {
        Self::split(name).map(|(_, _, size)| size)
    }

    fn split(name: &str) -> Option<(&str, &str, u64)> {
        // By position: `<40 hex>.<32 hex>.<digits>`.
        let b = name.as_bytes();
        // Without an early exit the check runs branch-free (a night checks ~100k names).
        let hex = |r: std::ops::Range<usize>| {
            b[r].iter().fold(true, |ok, c| {
                ok & ((c.wrapping_sub(b'0') < 10) | ((c | 0x20).wrapping_sub(b'a') < 6))
            })
        };
        if b.len() < 75 || b[40] != b'.' || b[73] != b'.' || !hex(0..40) || !hex(41..73) {
            return None;
        }
        let size = &name[74..];
        if !size.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((&name[..40], &name[41..73], size.parse().ok()?))
    }
}

impl fmt::Display for PfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.sha1, self.md5, self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_lowercases() {
        let n = PfileName::new(
            "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
            "D41D8CD98F00B204E9800998ECF8427E",
            0,
        );
        let s = n.to_string();
        assert_eq!(
            s,
            "da39a3ee5e6b4b0d3255bfef95601890afd80709.d41d8cd98f00b204e9800998ecf8427e.0"
        );
        assert_eq!(PfileName::parse(&s), Some(n));
        assert_eq!(PfileName::parse("tmp.1234"), None);
        assert_eq!(PfileName::size_of(&s.replace(".0", ".1234")), Some(1234));
        let upper = s.to_ascii_uppercase();
        assert_eq!(
            PfileName::size_of(&upper),
            Some(0),
            "FOSSology's hex, any case"
        );
        let odd = |at: usize, c: &str| format!("{}{c}{}", &s[..at], &s[at + 1..]);
        for bad in [
            "tmp.1234",
            &s.replace(".0", ".x"),
            &s.replace(".0", ".+1"),
            &format!("{s}.1"),
            &s[1..],
            &odd(39, "g"),
            &odd(41, "G"),
            &odd(40, "_"),
            &odd(72, "/"),
        ] {
            assert_eq!(PfileName::size_of(bad), None, "{bad}");
            assert_eq!(PfileName::parse(bad), None, "{bad}");
        }
    }
}
