//! `holdfast config init`: a sample holdfast.toml with every key at its default, commented
//! out, so the file changes nothing until a line is edited (as `borgmatic config generate`).
//! `holdfast completions SHELL` and `holdfast man` live here too: first-run helpers.

use crate::config::{Config, Context};
use crate::exit;
use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Write a sample configuration: every key with its default, commented out.
    Init {
        /// Write here instead of stdout (refused if it exists).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Print the configuration in effect (the file and the defaults for what it leaves out).
    Show,
}

/// A TOML value on one line (strings quoted, arrays inline).
fn toml_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => toml::Value::String(s.clone()).to_string(),
        serde_json::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

mod docs {
    include!(concat!(env!("OUT_DIR"), "/config_docs.rs"));
}

/// A struct of the configuration: the crate folder it lives in and its name.
#[derive(Clone, Copy)]
struct Struct<'a> {
    krate: &'a str,
    name: &'a str,
}

impl<'a> Struct<'a> {
    /// The doc sentence and the type of field `key`.
    fn field(self, key: &str) -> Option<(&'static str, &'static str)> {
        docs::FIELDS
            .iter()
            .find(|(c, s, f, _, _)| *c == self.krate && *s == self.name && *f == key)
            .map(|(_, _, _, ty, doc)| (*ty, *doc))
    }

    /// The struct named `ty`, looked for in this crate first (that is how it is imported).
    fn resolve(self, ty: &str) -> Option<Struct<'static>> {
        let all: Vec<Struct<'static>> = docs::FIELDS
            .iter()
            .filter(|(_, s, _, _, _)| *s == ty)
            .map(|(c, s, _, _, _)| Struct { krate: c, name: s })
            .collect();
        all.iter()
            .find(|s| s.krate == self.krate)
            .or_else(|| all.first())
            .copied()
    }
}

fn section(
    out: &mut String,
    name: &str,
    doc: &str,
    obj: &serde_json::Map<String, serde_json::Value>,
    of: Option<Struct<'_>>,
) {
    out.push('\n');
    if !doc.is_empty() {
        let _ = writeln!(out, "# {doc}");
    }
    let _ = writeln!(out, "# [{name}]");
    let mut nested = Vec::new();
    let mut empty_tables = Vec::new();
    for (k, v) in obj {
        let (ty, doc) = of.and_then(|s| s.field(k)).unwrap_or(("", ""));
        let inner = of.and_then(|s| s.resolve(ty));
        match v {
            serde_json::Value::Object(o) if !o.is_empty() || inner.is_some() => {
                nested.push((k, o.clone(), inner, doc))
            }
            serde_json::Value::Object(_) => empty_tables.push((k, doc)),
            v => {
                if !doc.is_empty() {
                    let _ = writeln!(out, "# {doc}");
                }
                match v {
                    serde_json::Value::Null => {
                        let _ = writeln!(out, "# {k} = ...  (not set by default)");
                    }
                    v => {
                        let _ = writeln!(out, "# {k} = {}", toml_value(v));
                    }
                }
            }
        }
    }
    for (k, doc) in empty_tables {
        if !doc.is_empty() {
            let _ = writeln!(out, "# {doc}");
        }
        let _ = writeln!(out, "# [{name}.{k}]  (a table, empty by default)");
    }
    for (k, o, inner, doc) in nested {
        let path = format!("{name}.{k}");
        let doc = if OPTIONAL_TABLES.contains(&path.as_str()) {
            format!("{doc} Not set by default: remove the `# ` of the [{path}] line too.")
        } else {
            doc.to_string()
        };
        section(out, &path, doc.trim(), &o, inner);
    }
}

/// Tables that are absent by default (`Option` in the configuration): the sample shows them
/// with the defaults their keys get once the table is there.
const OPTIONAL_TABLES: [&str; 1] = ["notify.smtp"];

/// The sample text.
pub fn sample() -> String {
    let mut c = Config::default();
    c.notify.smtp = Some(Default::default());
    let v = serde_json::to_value(c).expect("the configuration serialises");
    let mut out = String::from(
        "# holdfast configuration (/etc/holdfast/holdfast.toml), written by `holdfast config init`.\n\
         # Every key is shown at its default and commented out, under a line saying what it is:\n\
         # remove the `# ` of a key's line to change it. More in `holdfast <command> --help` and\n\
         # the guides in /usr/share/doc/holdfast (docs/ in the source). FOSSology's own settings\n\
         # are read from its fossology.conf and Db.conf, never repeated here.\n",
    );
    let top = Struct {
        krate: "cli",
        name: "Config",
    };
    if let serde_json::Value::Object(sections) = v {
        for (name, sec) in sections {
            if let serde_json::Value::Object(o) = sec {
                let (ty, doc) = top.field(&name).unwrap_or(("", ""));
                section(&mut out, &name, doc, &o, top.resolve(ty));
            }
        }
    }
    out
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let output = match cmd {
        Cmd::Init { output } => output,
        Cmd::Show => {
            print!("{}", toml::to_string(&ctx.config)?);
            return Ok(exit::code(exit::OK));
        }
    };
    let text = sample();
    match output {
        None => print!("{text}"),
        Some(p) => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
                .with_context(|| {
                    format!("cannot create {} (it must not exist yet)", p.display())
                })?;
            f.write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", p.display()))?;
            println!("wrote {}", p.display());
        }
    }
    Ok(exit::code(exit::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `# key = value` (a key line of the sample).
    fn key_line(l: &str) -> Option<&str> {
        let rest = l.strip_prefix("# ")?;
        let (k, _) = rest.split_once(" = ")?;
        k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            .then_some(k)
    }

    #[test]
    fn every_key_has_its_explanation_and_default() {
        let text = sample();
        let lines: Vec<&str> = text.lines().collect();
        let mut keys = 0;
        for (i, l) in lines.iter().enumerate() {
            let Some(k) = key_line(l) else { continue };
            keys += 1;
            let before = lines[i - 1];
            assert!(
                before.starts_with("# ")
                    && before.len() > 12
                    && key_line(before).is_none()
                    && !before.starts_with("# ["),
                "key {k} has no explanation above it:\n{}\n{l}",
                before
            );
        }
        assert!(keys > 80, "{keys} keys:\n{text}");
        for must in [
            "# target = ",
            "# lock_file = ",
            "# listen = ",
            "# [backup.superuser]",
        ] {
            assert!(text.contains(must), "{must} missing:\n{text}");
        }
        // Uncommented (the keys that have a default), the sample is the default configuration.
        // (The optional tables too: then they hold their keys' defaults.)
        let mut toml_text = String::new();
        for l in &lines {
            if let Some(h) = l.strip_prefix("# [") {
                toml_text.push_str(&format!("[{}\n", h.split("  (").next().unwrap()));
            } else if key_line(l).is_some() && !l.contains("= ...  (") {
                toml_text.push_str(&l[2..]);
                toml_text.push('\n');
            }
        }
        let back: Config =
            toml::from_str(&toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
        let mut want = Config::default();
        want.notify.smtp = Some(Default::default());
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(want).unwrap()
        );
    }
}
