//! `fossology.conf`: the INI file that says where the repository lives and how it is split
//! over host directories. Only the facts holdfast needs are kept.

use std::path::{Path, PathBuf};

/// One `[REPOSITORY]` line: `host[] = TYPE FROM TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRange {
    pub host: String,
    /// `*` or one of `gold`, `files`, `logs`, `license`.
    pub kind: String,
    /// First two hex digits of the names this host holds, inclusive.
    pub from: u8,
    pub to: u8,
}

impl HostRange {
    pub fn covers(&self, kind: &str, prefix: u8) -> bool {
        (self.kind == "*" || self.kind == kind) && (self.from..=self.to).contains(&prefix)
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
    pub hosts: Vec<HostRange>,
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
        let mut conf = FoConf {
            path: PathBuf::from("/srv/fossology/repository"),
            depth: 3,
            address: "localhost".into(),
            port: 24693,
            hosts: Vec::new(),
        };
        let mut section = String::new();
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_ascii_uppercase();
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(lineno, format!("expected KEY = VALUE, found {line:?}")));
            };
            let key = key.trim();
            let value = value.trim().trim_matches('"');
            match section.as_str() {
                "FOSSOLOGY" => match key {
                    "path" => conf.path = PathBuf::from(value),
                    "depth" => {
                        conf.depth = value
                            .parse()
                            .map_err(|_| err(lineno, format!("depth {value:?} is not a number")))?
                    }
                    "address" => conf.address = value.to_string(),
                    "port" => {
                        conf.port = value
                            .parse()
                            .map_err(|_| err(lineno, format!("port {value:?} is not a number")))?
                    }
                    _ => {}
                },
                "REPOSITORY" => {
                    let host = key.trim_end_matches("[]").trim().to_string();
                    let parts: Vec<&str> = value.split_whitespace().collect();
                    let [kind, from, to] = parts[..] else {
                        return Err(err(
                            lineno,
                            format!("expected `{host}[] = TYPE FROM TO`, found {value:?}"),
                        ));
                    };
                    let hex = |s: &str| {
                        u8::from_str_radix(s, 16).map_err(|_| {
                            err(lineno, format!("{s:?} is not a two-digit hex prefix"))
                        })
                    };
                    conf.hosts.push(HostRange {
                        host,
                        kind: kind.to_string(),
                        from: hex(from)?,
                        to: hex(to)?,
                    });
                }
                _ => {}
            }
        }
        if conf.depth == 0 || conf.depth > 19 {
            return Err(err(
                0,
                format!("depth {} is out of range 1..=19", conf.depth),
            ));
        }
        Ok(conf)
    }

    /// The distinct host directory names, in the order they first appear.
    pub fn host_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for h in &self.hosts {
            if !out.contains(&h.host) {
                out.push(h.host.clone());
            }
        }
        out
    }

    /// Writes a `fossology.conf` with one host for everything (used for scratch sites).
    pub fn render(&self) -> String {
        let mut s = format!(
            "[FOSSOLOGY]\naddress = {}\nport = {}\npath = {}\ndepth = {}\n\n[REPOSITORY]\n",
            self.address,
            self.port,
            self.path.display(),
            self.depth
        );
        for h in &self.hosts {
            s.push_str(&format!(
                "{}[] = {} {:02x} {:02x}\n",
                h.host, h.kind, h.from, h.to
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_depth_and_host_ranges() {
        let text = "; comment\n[FOSSOLOGY]\naddress = localhost\nport = 24693\npath = /srv/fossology/repository\ndepth = 3\n\n[REPOSITORY]\nlocalhost[] = * 00 7f\ndisk2[] = * 80 ff\ndisk2[] = gold 00 ff\n[HOSTS]\nlocalhost = localhost AGENT_DIR 3\n";
        let c = FoConf::parse(text, Path::new("fossology.conf")).unwrap();
        assert_eq!(c.path, PathBuf::from("/srv/fossology/repository"));
        assert_eq!(c.depth, 3);
        assert_eq!(c.hosts.len(), 3);
        assert!(c.hosts[0].covers("files", 0x7f));
        assert!(!c.hosts[0].covers("files", 0x80));
        assert!(c.hosts[2].covers("gold", 0x00));
        assert!(!c.hosts[2].covers("files", 0x00));
        assert_eq!(c.host_names(), vec!["localhost", "disk2"]);
        let again = FoConf::parse(&c.render(), Path::new("x")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn bad_range_names_file_and_line() {
        let e = FoConf::parse(
            "[REPOSITORY]\nlocalhost[] = * 00 zz\n",
            Path::new("/etc/f.conf"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/f.conf:2"), "{e}");
    }
}
