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
        let mut parts = name.split('.');
        let (sha1, md5, size) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || sha1.len() != 40
            || md5.len() != 32
            || !sha1
                .bytes()
                .chain(md5.bytes())
                .all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        Some(PfileName {
            sha1: sha1.to_ascii_lowercase(),
            md5: md5.to_ascii_lowercase(),
            size: size.parse().ok()?,
        })
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
    }
}
