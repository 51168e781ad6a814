//! `fossology.conf`: the INI file that says where the repository lives, how it is split over
//! host directories and which user and group own it. Only the facts holdfast needs are kept.
//!
//! Read the way FOSSology's `fossconfig.c` reads it: each line is searched (not matched from
//! its start) for a `;` comment, a `[GROUP]`, a `key = value` or a `key[] = value`, so
//! `#path = /srv/old` sets `path` (`#` starts no comment there) and a line of lone words
//! (`# a note`) is an error that stops FOSSology; a line not ended by a newline is not read.
//! Group and key names are case-sensitive, a value runs to the end of its line (quotes are
//! part of it), `$KEY` is replaced by an earlier key of the same group, `host[] = …` lines
//! add to that host's list wherever they appear in the group, and a group that appears twice
//! keeps only its last appearance.
//! `[REPOSITORY]` lines are checked as FOSSology's scheduler checks them at start
//! (`fo_RepValidate`): a line it would refuse is an error here too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One `[REPOSITORY]` line: `host[] = TYPE FROM TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRange {
    pub host: String,
    /// `*` or one of `gold`, `files`, `logs`, `license`, `test`.
    pub kind: String,
    /// The first and last name prefix this line covers, as written: hex digits of any width,
    /// each compared with as many leading characters of a name as it has (`* 0 7` covers
    /// names from `0…` to `7…`, `* 00 7f` the same names).
    pub from: String,
    pub to: String,
}

/// `strncasecmp(a, b, n)` as C has it: at most `n` bytes, ASCII case folded, a string ends
/// at its end (compared as a NUL byte).
fn strncasecmp(a: &[u8], b: &[u8], n: usize) -> std::cmp::Ordering {
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0).to_ascii_lowercase();
        let y = b.get(i).copied().unwrap_or(0).to_ascii_lowercase();
        if x != y || x == 0 {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

impl HostRange {
    pub fn new(host: &str, kind: &str, from: &str, to: &str) -> Self {
        HostRange {
            host: host.into(),
            kind: kind.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    /// Whether this line holds `name` of type `kind`, by `_RepGetHost`'s test.
    pub fn covers(&self, kind: &str, name: &str) -> bool {
        use std::cmp::Ordering::*;
        (self.kind == "*" || self.kind == kind)
            && strncasecmp(self.from.as_bytes(), name.as_bytes(), self.from.len()) != Greater
            && strncasecmp(self.to.as_bytes(), name.as_bytes(), self.to.len()) != Less
    }

    pub fn matches_kind(&self, kind: &str) -> bool {
        self.kind == "*" || self.kind == kind
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoConf {
    /// `[FOSSOLOGY] path`: the repository root.
    pub path: PathBuf,
    /// `[FOSSOLOGY] depth`: how many two-character directory levels a name is hashed into.
    pub depth: usize,
    /// `[FOSSOLOGY] address` and `port`: where `fo_cli` finds the scheduler.
    pub address: String,
    pub port: u16,
    /// `[REPOSITORY]` lines in file order (see [`crate::repo::Repository`] for the order
    /// FOSSology tries them in).
    pub hosts: Vec<HostRange>,
    /// `[DIRECTORIES] PROJECTUSER` and `PROJECTGROUP`: who owns the repository (`fossy`).
    pub project_user: String,
    pub project_group: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FoConfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {why}")]
    Syntax {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// Replaces `$KEY` by the value of `KEY` earlier in the same group (unknown keys: nothing).
fn substitute(value: &str, group: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if end == 0 {
            out.push('$');
        } else if let Some(v) = group.get(&after[..end]) {
            out.push_str(v);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// What `fossconfig.c`'s line pattern finds in one line.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// A `;` comment, or nothing the pattern matches (a blank line, an unterminated last one).
    Nothing,
    Group(&'a str),
    Key(&'a str, &'a str),
    List(&'a str, &'a str),
    /// Lone words: FOSSology refuses the file.
    Error(&'a str),
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_key(b: u8) -> bool {
    is_word(b) || b == b'.' || b == b'-'
}

fn skip_blanks(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
        i += 1;
    }
    i
}

/// Searches `line` (with its `\n`) as `fo_conf_pattern` does: the leftmost position where one
/// of comment, group, key, list or error matches, tried in that order at each position.
fn classify(line: &str) -> Line<'_> {
    let s = line.as_bytes();
    let Some(body) = line.strip_suffix('\n') else {
        return Line::Nothing;
    };
    let end = body.len();
    for p in 0..end {
        if s[p] == b';' {
            return Line::Nothing;
        }
        if s[p] == b'[' {
            let a = skip_blanks(s, p + 1);
            let mut b = a;
            while b < end && is_word(s[b]) {
                b += 1;
            }
            let c = skip_blanks(s, b);
            if b > a && c < end && s[c] == b']' && c + 1 == end {
                return Line::Group(&line[a..b]);
            }
        }
        let mut k = p;
        while k < end && is_key(s[k]) {
            k += 1;
        }
        if k > p {
            let key = &line[p..k];
            let (list, at) = if s[k..].starts_with(b"[]") {
                (true, k + 2)
            } else {
                (false, k)
            };
            let eq = skip_blanks(s, at);
            if eq < end && s[eq] == b'=' {
                // FOSSology keeps trailing blanks (a `\r`) in a value; none that works has any.
                let value = line[skip_blanks(s, eq + 1)..end].trim_end();
                return if list {
                    Line::List(key, value)
                } else {
                    Line::Key(key, value)
                };
            }
        }
        if !s[p].is_ascii_whitespace() {
            let mut w = p;
            while w < end && !s[w].is_ascii_whitespace() {
                w += 1;
            }
            if skip_blanks(s, w) == end {
                return Line::Error(line[p..w].trim_end());
            }
        }
    }
    Line::Nothing
}

impl FoConf {
    pub fn load(path: &Path) -> Result<Self, FoConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| FoConfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `fossology.conf`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, FoConfError> {
        let err = |line: usize, why: String| FoConfError::Syntax {
            path: origin.to_path_buf(),
            line,
            why,
        };
        // group -> (key -> value), the last appearance of a group replacing earlier ones.
        let mut groups: HashMap<String, HashMap<String, String>> = HashMap::new();
        let mut repo_lines: Vec<(usize, String, String)> = Vec::new();
        let mut section = String::new();
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let lineno = i + 1;
            let (key, value, list) = match classify(raw) {
                Line::Nothing => continue,
                Line::Error(word) => {
                    return Err(err(
                        lineno,
                        format!(
                            "{:?} is not KEY = VALUE, [GROUP] or a ; comment (FOSSology refuses the file at {word:?}; `#` starts no comment in fossology.conf, `;` does)",
                            raw.trim_end()
                        ),
                    ))
                }
                Line::Group(name) => {
                    section = name.to_string();
                    groups.insert(section.clone(), HashMap::new());
                    if section == "REPOSITORY" {
                        repo_lines.clear();
                    }
                    continue;
                }
                Line::Key(k, v) => (k, v, false),
                Line::List(k, v) => (k, v, true),
            };
            let Some(group) = groups.get_mut(&section) else {
                return Err(err(lineno, format!("key {key:?} is outside any [GROUP]")));
            };
            let value = substitute(value, group);
            if list {
                if section == "REPOSITORY" {
                    repo_lines.push((lineno, key.to_string(), value));
                }
                continue;
            }
            if section == "REPOSITORY" {
                return Err(err(
                    lineno,
                    format!(
                        "`{key} = {value}` is not a list, so FOSSology ignores it: write `{key}[] = {value}`"
                    ),
                ));
            }
            group.insert(key.to_string(), value);
        }

        let get = |g: &str, k: &str| groups.get(g).and_then(|g| g.get(k)).cloned();
        let num = |g: &str, k: &str, default: u64| -> Result<u64, FoConfError> {
            match get(g, k) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| err(0, format!("[{g}] {k} = {v:?} is not a number"))),
            }
        };
        let depth = num("FOSSOLOGY", "depth", 3)? as usize;
        if depth > 20 {
            return Err(err(
                0,
                format!("[FOSSOLOGY] depth = {depth} is out of range 0..=20"),
            ));
        }
        let port = num("FOSSOLOGY", "port", 24693)?;
        let mut hosts = Vec::new();
        for (lineno, host, value) in repo_lines {
            hosts.push(parse_repo_line(&host, &value).map_err(|why| err(lineno, why))?);
        }
        Ok(FoConf {
            path: PathBuf::from(
                get("FOSSOLOGY", "path").unwrap_or_else(|| "/srv/fossology/repository".into()),
            ),
            depth,
            address: get("FOSSOLOGY", "address").unwrap_or_else(|| "localhost".into()),
            port: u16::try_from(port)
                .map_err(|_| err(0, format!("[FOSSOLOGY] port = {port} is out of range")))?,
            hosts,
            project_user: get("DIRECTORIES", "PROJECTUSER")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "fossy".into()),
            project_group: get("DIRECTORIES", "PROJECTGROUP")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "fossy".into()),
        })
    }

    /// The distinct host directory names, in the order FOSSology tries them (by name).
    pub fn host_names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.hosts.iter().map(|h| h.host.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Writes a `fossology.conf` (used for scratch sites and restores into a folder).
    pub fn render(&self) -> String {
        let mut s = format!(
            "[FOSSOLOGY]\naddress = {}\nport = {}\npath = {}\ndepth = {}\n\n[REPOSITORY]\n",
            self.address,
            self.port,
            self.path.display(),
            self.depth
        );
        for h in &self.hosts {
            s.push_str(&format!("{}[] = {} {} {}\n", h.host, h.kind, h.from, h.to));
        }
        s.push_str(&format!(
            "\n[DIRECTORIES]\nPROJECTGROUP={}\nPROJECTUSER={}\n",
            self.project_group, self.project_user
        ));
        s
    }
}

/// One `[REPOSITORY]` value, checked as `fo_RepValidate` checks it.
fn parse_repo_line(host: &str, value: &str) -> Result<HostRange, String> {
    let refuse = |why: &str| {
        format!(
            "`{host}[] = {value}`: {why}; FOSSology's scheduler refuses to start with it \
             (write TYPE FROM TO, e.g. `{host}[] = * 00 ff`)"
        )
    };
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [kind, from, to] = parts[..] else {
        return Err(refuse("expected three fields"));
    };
    if !["*", "gold", "files", "logs", "license", "test"].contains(&kind) {
        return Err(refuse(&format!(
            "type {kind:?} is none of *, gold, files, logs, license, test"
        )));
    }
    let hex = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refuse(&format!("{s:?} is not a hex prefix")));
        }
        // strtoul saturates; a prefix this long never occurs in practice.
        Ok(u128::from_str_radix(s, 16).unwrap_or(u128::MAX))
    };
    if hex(from)? >= hex(to)? {
        return Err(refuse(&format!("{from} is not below {to}")));
    }
    Ok(HostRange::new(host, kind, from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FOSSology applies `#key = value` lines (its pattern is searched for, not anchored), so
    /// holdfast reads them too; a line of lone words stops FOSSology, and holdfast says why.
    #[test]
    fn hash_lines_are_read_as_fossology_reads_them() {
        let text = "[FOSSOLOGY]\npath = /data/repo\n#path = /srv/old\n; a comment\n\n\
                    [REPOSITORY]\n#localhost[] = * 00 ff\ndisk2[] = * 00 ff\n";
        let c = FoConf::parse(text, Path::new("f.conf")).unwrap();
        assert_eq!(c.path, PathBuf::from("/srv/old"));
        assert_eq!(c.host_names(), vec!["disk2", "localhost"]);
        let e = FoConf::parse(
            "[FOSSOLOGY]\n# a note for the admin\npath = /x\n",
            Path::new("f.conf"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("f.conf:2:") && e.contains("`;` does"), "{e}");
        // Like fgets and the pattern's closing newline: an unterminated last line is unread.
        let c = FoConf::parse("[FOSSOLOGY]\npath = /a\npath = /b", Path::new("f.conf")).unwrap();
        assert_eq!(c.path, PathBuf::from("/a"));
    }

    #[test]
    fn parses_paths_depth_and_host_ranges() {
        let text = "; comment\n[FOSSOLOGY]\naddress = localhost\nport = 24693\npath = /srv/fossology/repository\ndepth = 3\n\n[REPOSITORY]\nlocalhost[] = * 00 7f\ndisk2[] = * 80 ff\ndisk2[] = gold 00 ff\n[HOSTS]\nlocalhost = localhost AGENT_DIR 3\n[DIRECTORIES]\nPROJECTUSER=fo\nPROJECTGROUP=fog\n";
        let c = FoConf::parse(text, Path::new("fossology.conf")).unwrap();
        assert_eq!(c.path, PathBuf::from("/srv/fossology/repository"));
        assert_eq!(c.depth, 3);
        assert_eq!(c.hosts.len(), 3);
        assert!(c.hosts[0].covers("files", "7fab"));
        assert!(!c.hosts[0].covers("files", "80ab"));
        assert!(c.hosts[2].covers("gold", "00ab"));
        assert!(!c.hosts[2].covers("files", "00ab"));
        assert_eq!(c.host_names(), vec!["disk2", "localhost"]);
        assert_eq!(
            (c.project_user.as_str(), c.project_group.as_str()),
            ("fo", "fog")
        );
        let again = FoConf::parse(&c.render(), Path::new("x")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn prefixes_compare_with_their_own_width() {
        let lo = HostRange::new("a", "*", "0", "7");
        let hi = HostRange::new("b", "*", "8", "f");
        for name in ["00aa", "7fff", "7", "5e"] {
            assert!(
                lo.covers("gold", name) && !hi.covers("gold", name),
                "{name}"
            );
        }
        for name in ["8000", "ffff", "A1", "c"] {
            assert!(
                hi.covers("files", name) && !lo.covers("files", name),
                "{name}"
            );
        }
        let mixed = HostRange::new("m", "*", "00", "7");
        assert!(mixed.covers("files", "7fee") && !mixed.covers("files", "80"));
        let wide = HostRange::new("w", "*", "000", "7ff");
        assert!(wide.covers("files", "7ff0") && !wide.covers("files", "8000"));
        // Case does not matter (FOSSology's names are upper case in the database).
        assert!(HostRange::new("c", "*", "A0", "AF").covers("gold", "af12"));
    }

    #[test]
    fn lists_gather_across_the_group_and_a_repeated_group_replaces() {
        let c = FoConf::parse(
            "[REPOSITORY]\nb[] = * 80 ff\na[] = gold 00 7f\nb[] = files 00 7f\n",
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(c.hosts.len(), 3);
        let c = FoConf::parse(
            "[REPOSITORY]\nold[] = * 00 ff\n[FOSSOLOGY]\ndepth=2\n[REPOSITORY]\nnew[] = * 00 ff\n",
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(c.host_names(), vec!["new"]);
        assert_eq!(c.depth, 2);
    }

    #[test]
    fn variables_are_replaced_within_a_group() {
        let c = FoConf::parse(
            "[DIRECTORIES]\nPROJECT=fossology\nPROJECTUSER=$PROJECT-user\n",
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(c.project_user, "fossology-user");
        assert_eq!(c.project_group, "fossy");
    }

    #[test]
    fn lines_the_scheduler_refuses_name_file_and_line() {
        for (bad, why) in [
            ("localhost[] = * 00 zz", "not a hex prefix"),
            ("localhost[] = * 80 00", "not below"),
            ("localhost[] = * 00 00", "not below"),
            ("localhost[] = all 00 ff", "none of"),
            ("localhost[] = * 00", "three fields"),
            ("localhost = * 00 ff", "not a list"),
        ] {
            let e = FoConf::parse(&format!("[REPOSITORY]\n{bad}\n"), Path::new("/etc/f.conf"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("/etc/f.conf:2") && e.contains(why), "{bad}: {e}");
        }
    }
}
