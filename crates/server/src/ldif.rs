//! A small LDIF (RFC 2849) reader and writer for the directory's file fallback: content
//! records only (no change records), `attr: value`, `attr:: base64`, folded lines and
//! comments. The file is kept as a list of chunks so that rewriting it after a size update
//! changes only the entries that changed and keeps comments and layout elsewhere.

use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::Path;

/// One entry: its DN and attributes (names lower-cased; values in file order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub dn: String,
    /// Attribute name as first written, for writing it back.
    names: BTreeMap<String, String>,
    attrs: BTreeMap<String, Vec<String>>,
}

/// What the stoney model reads from an entry.
impl holdfast_stoney::account::Attributes for Entry {
    fn dn(&self) -> &str {
        &self.dn
    }
    fn all(&self, attr: &str) -> &[String] {
        Entry::all(self, attr)
    }
}

impl Entry {
    pub fn new(dn: &str) -> Entry {
        Entry {
            dn: dn.into(),
            ..Entry::default()
        }
    }

    /// All values of `attr` (case-insensitive name); empty when absent.
    pub fn all(&self, attr: &str) -> &[String] {
        self.attrs
            .get(&attr.to_ascii_lowercase())
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// The first value of `attr`.
    pub fn get(&self, attr: &str) -> Option<&str> {
        self.all(attr).first().map(|s| s.as_str())
    }

    pub fn push(&mut self, attr: &str, value: String) {
        let key = attr.to_ascii_lowercase();
        self.names.entry(key.clone()).or_insert_with(|| attr.into());
        self.attrs.entry(key).or_default().push(value);
    }

    /// Replaces all values of `attr`; an empty list removes it.
    pub fn replace(&mut self, attr: &str, values: Vec<String>) {
        let key = attr.to_ascii_lowercase();
        if values.is_empty() {
            self.attrs.remove(&key);
            self.names.remove(&key);
        } else {
            self.names.entry(key.clone()).or_insert_with(|| attr.into());
            self.attrs.insert(key, values);
        }
    }

    /// True when some value of `attr` equals `value`, ignoring ASCII case.
    pub fn has(&self, attr: &str, value: &str) -> bool {
        self.all(attr).iter().any(|v| v.eq_ignore_ascii_case(value))
    }

    /// LDIF text of this entry (no trailing blank line). `objectClass` is written first.
    pub fn to_ldif(&self) -> String {
        let mut out = String::new();
        line(&mut out, "dn", &self.dn);
        let mut keys: Vec<&String> = self.attrs.keys().collect();
        keys.sort_by_key(|k| (k.as_str() != "objectclass", k.as_str() != "uid"));
        for k in keys {
            let name = self.names.get(k).map(|s| s.as_str()).unwrap_or(k);
            for v in &self.attrs[k] {
                line(&mut out, name, v);
            }
        }
        out
    }
}

/// Values that must be base64 in LDIF: not a SAFE-STRING per RFC 2849.
fn needs_base64(v: &str) -> bool {
    let b = v.as_bytes();
    match b.first() {
        None => false,
        Some(b' ' | b':' | b'<') => true,
        _ => {
            b.last() == Some(&b' ')
                || b.iter()
                    .any(|&c| c == 0 || c == b'\n' || c == b'\r' || c > 127)
        }
    }
}

fn line(out: &mut String, name: &str, v: &str) {
    if needs_base64(v) {
        let enc = base64::engine::general_purpose::STANDARD.encode(v.as_bytes());
        out.push_str(&format!("{name}:: {enc}\n"));
    } else {
        out.push_str(&format!("{name}: {v}\n"));
    }
}

/// Part of an LDIF file: text kept verbatim (comments, blank lines, `version:`) or an entry.
#[derive(Debug, Clone)]
pub enum Chunk {
    Text(String),
    Entry {
        raw: String,
        entry: Entry,
        dirty: bool,
    },
}

/// Parsed LDIF file.
#[derive(Debug, Clone, Default)]
pub struct Ldif {
    pub chunks: Vec<Chunk>,
}

/// A parse error with its 1-based line number.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl Ldif {
    pub fn parse(text: &str) -> Result<Ldif, ParseError> {
        let mut chunks = Vec::new();
        let mut text_buf = String::new();
        // (first line number, raw lines) of the entry being read
        let mut block: Vec<(usize, &str)> = Vec::new();
        let flush_block =
            |block: &mut Vec<(usize, &str)>, chunks: &mut Vec<Chunk>| -> Result<(), ParseError> {
                if block.is_empty() {
                    return Ok(());
                }
                let raw: String = block.iter().map(|(_, l)| format!("{l}\n")).collect();
                let entry = parse_entry(block)?;
                chunks.push(Chunk::Entry {
                    raw,
                    entry,
                    dirty: false,
                });
                block.clear();
                Ok(())
            };
        for (i, l) in text.lines().enumerate() {
            let n = i + 1;
            if l.trim().is_empty() {
                flush_block(&mut block, &mut chunks)?;
                text_buf.push_str(l);
                text_buf.push('\n');
                continue;
            }
            if block.is_empty() && (l.starts_with('#') || l.starts_with("version:")) {
                text_buf.push_str(l);
                text_buf.push('\n');
                continue;
            }
            if block.is_empty() && !text_buf.is_empty() {
                chunks.push(Chunk::Text(std::mem::take(&mut text_buf)));
            }
            block.push((n, l));
        }
        flush_block(&mut block, &mut chunks)?;
        if !text_buf.is_empty() {
            chunks.push(Chunk::Text(text_buf));
        }
        Ok(Ldif { chunks })
    }

    pub fn read(path: &Path) -> Result<Ldif, crate::directory::Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| crate::directory::Error::LdifRead {
                path: path.into(),
                source: e,
            })?;
        Ldif::parse(&text).map_err(|e| crate::directory::Error::LdifParse {
            path: path.into(),
            source: e,
        })
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.chunks.iter().filter_map(|c| match c {
            Chunk::Entry { entry, .. } => Some(entry),
            Chunk::Text(_) => None,
        })
    }

    pub fn entry_mut(&mut self, dn: &str) -> Option<&mut Entry> {
        let want = normalize_dn(dn);
        self.chunks.iter_mut().find_map(|c| match c {
            Chunk::Entry { entry, dirty, .. } if normalize_dn(&entry.dn) == want => {
                *dirty = true;
                Some(entry)
            }
            _ => None,
        })
    }

    /// The file text: unchanged entries verbatim, changed ones re-serialised.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.chunks {
            match c {
                Chunk::Text(t) => out.push_str(t),
                Chunk::Entry {
                    raw, dirty: false, ..
                } => out.push_str(raw),
                Chunk::Entry { entry, .. } => out.push_str(&entry.to_ldif()),
            }
        }
        out
    }
}

fn parse_entry(block: &[(usize, &str)]) -> Result<Entry, ParseError> {
    // unfold: a line starting with one space continues the previous one
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (n, l) in block {
        if let Some(rest) = l.strip_prefix(' ') {
            match lines.last_mut() {
                Some((_, prev)) => prev.push_str(rest),
                None => {
                    return Err(ParseError {
                        line: *n,
                        msg: "continuation line without a line to continue".into(),
                    })
                }
            }
        } else if l.starts_with('#') {
            continue;
        } else {
            lines.push((*n, l.to_string()));
        }
    }
    let mut entry: Option<Entry> = None;
    for (n, l) in lines {
        let Some((name, rest)) = l.split_once(':') else {
            return Err(ParseError {
                line: n,
                msg: format!("expected `attribute: value`, found {l:?}"),
            });
        };
        let value = if let Some(b64) = rest.strip_prefix(':') {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| ParseError {
                    line: n,
                    msg: format!("bad base64 value of {name}: {e}"),
                })?;
            String::from_utf8(bytes).map_err(|_| ParseError {
                line: n,
                msg: format!("value of {name} is not UTF-8"),
            })?
        } else if rest.starts_with('<') {
            return Err(ParseError {
                line: n,
                msg: format!("URL values ({name}:<) are not supported"),
            });
        } else {
            rest.trim_start_matches(' ').to_string()
        };
        match &mut entry {
            None if name.eq_ignore_ascii_case("dn") => entry = Some(Entry::new(&value)),
            None => {
                return Err(ParseError {
                    line: n,
                    msg: format!("entry must start with `dn:`, found {name}"),
                })
            }
            Some(_) if name.eq_ignore_ascii_case("changetype") => {
                return Err(ParseError {
                    line: n,
                    msg: "change records are not supported; write plain entries".into(),
                })
            }
            Some(e) => e.push(name.trim(), value),
        }
    }
    entry.ok_or(ParseError {
        line: block[0].0,
        msg: "empty entry".into(),
    })
}

/// A DN in a form for comparing: lower case, no spaces around `,` and `=`.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|p| p.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folds_base64_and_keeps_unchanged_text() {
        let text = "# head\nversion: 1\n\ndn: uid=1,ou=a,dc=x\nobjectClass: account\nuid: 1\n\
                    description: long\n  folded\ncn:: w6Rsw7Y=\n\n# tail\ndn: uid=2,ou=a,dc=x\nuid: 2\n";
        let mut l = Ldif::parse(text).unwrap();
        assert_eq!(l.to_text(), text);
        let e: Vec<_> = l.entries().collect();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].get("DESCRIPTION"), Some("long folded"));
        assert_eq!(e[0].get("cn"), Some("älö"));
        l.entry_mut("UID=2, ou=a,dc=x")
            .unwrap()
            .replace("sstBackupSize", vec!["5".into()]);
        let out = l.to_text();
        assert!(
            out.starts_with("# head\nversion: 1\n\ndn: uid=1,ou=a,dc=x\nobjectClass: account\n")
        );
        assert!(
            out.contains("# tail\ndn: uid=2,ou=a,dc=x\nuid: 2\nsstBackupSize: 5\n"),
            "{out}"
        );
        let again = Ldif::parse(&out).unwrap();
        assert_eq!(
            again.entries().nth(1).unwrap().get("sstbackupsize"),
            Some("5")
        );
    }

    #[test]
    fn rejects_bad_lines_with_line_numbers() {
        let err = Ldif::parse("dn: x\nuid 1\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = Ldif::parse("uid: 1\n").unwrap_err();
        assert!(err.msg.contains("dn:"), "{err}");
        let err = Ldif::parse("dn: x\nchangetype: modify\n").unwrap_err();
        assert!(err.msg.contains("change records"));
    }

    #[test]
    fn unsafe_values_round_trip_as_base64() {
        let mut e = Entry::new("uid=1,dc=x");
        e.push("description", " leading space".into());
        e.push("cn", "Zoë".into());
        let text = e.to_ldif();
        assert!(text.contains("description:: "), "{text}");
        let back = Ldif::parse(&text).unwrap();
        let b = back.entries().next().unwrap();
        assert_eq!(b.get("description"), Some(" leading space"));
        assert_eq!(b.get("cn"), Some("Zoë"));
    }
}
