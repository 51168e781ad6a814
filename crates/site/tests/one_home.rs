//! One home for the FOSSology model: no crate but this one runs SQL against FOSSology's
//! tables or defines its mode bits. Reads the other crates' sources (not their tests, which
//! check rows with their own queries on purpose).

use std::path::{Path, PathBuf};

/// Words that start an SQL statement (upper case, as every statement here is written).
const STATEMENTS: &[&str] = &[
    "SELECT ",
    "INSERT INTO",
    "UPDATE ",
    "DELETE FROM",
    "CREATE TABLE",
    "ALTER TABLE",
    "TRUNCATE ",
];

/// A line naming one of these is about holdfast's own tables or PostgreSQL's catalogs.
const OWN: &[&str] = &["holdfast_", "pg_"];

/// Files allowed SQL that is not about FOSSology's tables, and why.
const ALLOWED: &[(&str, &str)] = &[
    ("notify/src/state.rs", "notify's own SQLite state file"),
    (
        "backup/src/dump.rs",
        "pg_dumpall's stream and the server's catalogs",
    ),
    (
        "sandbox/src/cluster.rs",
        "scratch clusters: roles and databases",
    ),
    (
        "sandbox/src/busy.rs",
        "the stand-in agents' work: bash that runs psql as FOSSology's agents run SQL",
    ),
    (
        "testkit/src/golden.rs",
        "loads FOSSology's golden CSV dumps, table by table, for the comparison test",
    ),
];

/// The same bits the site crate defines, spelled as shifts.
const MODE_BITS: &[&str] = &["1 << 29", "1 << 28", "1 << 18", "1<<29", "1<<28"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `k` occurs in `t` not right after a letter, digit or `_`.
fn has_word(t: &str, k: &str) -> bool {
    t.match_indices(k).any(|(i, _)| {
        !t[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn only_the_site_crate_speaks_sql_to_fossology_and_defines_its_bits() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for e in std::fs::read_dir(crates).unwrap().flatten() {
        let src = e.path().join("src");
        if e.file_name() != "site" && src.is_dir() {
            sources(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "found the other crates' sources");
    let mut bad = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(crates)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if ALLOWED.iter().any(|(a, _)| *a == rel) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests at the end of a file may build rows by hand.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in code.lines().enumerate() {
            let t = line.trim_start();
            // A row lock, not a statement.
            let t = &t.replace("FOR UPDATE", "FOR_UPDATE");
            if t.starts_with("//") {
                continue;
            }
            let sql =
                STATEMENTS.iter().any(|k| has_word(t, k)) && !OWN.iter().any(|o| t.contains(o));
            let bits = MODE_BITS.iter().any(|b| t.contains(b));
            if sql || bits {
                bad.push(format!("{rel}:{}: {t}", i + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "SQL on FOSSology's tables or its mode bits outside crates/site (move them to \
         holdfast_site::db or holdfast_site::mode):\n{}",
        bad.join("\n")
    );
}
