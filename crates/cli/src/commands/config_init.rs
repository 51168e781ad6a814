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

fn section(out: &mut String, name: &str, obj: &serde_json::Map<String, serde_json::Value>) {
    let _ = writeln!(out, "\n# [{name}]");
    let mut nested = Vec::new();
    let mut empty_tables = Vec::new();
    for (k, v) in obj {
        match v {
            serde_json::Value::Null => {
                let _ = writeln!(out, "# {k} = ...  (not set by default)");
            }
            serde_json::Value::Object(o) if !o.is_empty() || k == "smtp" => {
                nested.push((k, o.clone()))
            }
            serde_json::Value::Object(_) => empty_tables.push(k),
            v => {
                let _ = writeln!(out, "# {k} = {}", toml_value(v));
            }
        }
    }
    for k in empty_tables {
        let _ = writeln!(out, "# [{name}.{k}]  (a table, empty by default)");
    }
    for (k, o) in nested {
        section(out, &format!("{name}.{k}"), &o);
    }
}

/// The sample text.
pub fn sample() -> String {
    let v = serde_json::to_value(Config::default()).expect("the configuration serialises");
    let mut out = String::from(
        "# holdfast configuration (/etc/holdfast/holdfast.toml), written by `holdfast config init`.\n\
         # Every key is shown at its default and commented out: remove the `# ` of a line to\n\
         # change it. What each one means: `holdfast <command> --help` and the guides in\n\
         # /usr/share/doc/holdfast (docs/ in the source). FOSSology's own settings are read from\n\
         # its fossology.conf and Db.conf, never repeated here.\n",
    );
    if let serde_json::Value::Object(top) = v {
        for (name, sec) in top {
            if let serde_json::Value::Object(o) = sec {
                section(&mut out, &name, &o);
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
