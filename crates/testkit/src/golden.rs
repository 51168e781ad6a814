//! FOSSology's own agents' output on 20 inputs (`../shared/fossology-golden` beside the
//! clone): the CSV dumps of the tables they wrote, the inputs, and loading those rows into a
//! scratch database as FOSSology wrote them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One table as text: column name to value (NULL and empty are both "").
pub type Table = Vec<BTreeMap<String, String>>;

/// The golden folder; panics naming where it was looked for when it is not there (tests
/// never skip for want of it).
pub fn dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("../shared/fossology-golden");
    assert!(
        dir.join("expected/uploadtree_a.csv").is_file(),
        "the golden data is missing: expected {} (FOSSology's own agents' output; CI puts \
         shared/ beside the clone at ../shared). Copy shared/fossology-golden there.",
        dir.display()
    );
    dir
}

/// A `psql --csv` file.
pub fn read_csv(p: &Path) -> Table {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => rec.push(std::mem::take(&mut field)),
            (false, '\n') => {
                rec.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut rec));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !rec.is_empty() {
        rec.push(field);
        records.push(rec);
    }
    let head = records.remove(0);
    records
        .into_iter()
        .map(|r| head.iter().cloned().zip(r).collect())
        .collect()
}

/// `expected/<table>.csv`.
pub fn expected(table: &str) -> Table {
    read_csv(&dir().join(format!("expected/{table}.csv")))
}

/// The tables FOSSology wrote that a reunpack needs, in an order their keys allow.
pub const REUNPACK_TABLES: &[&str] = &[
    "mimetype",
    "pfile",
    "upload",
    "uploadtree_a",
    "job",
    "jobqueue",
    "agent",
    "ununpack_ars",
];

/// Inserts `rows` into `table` as they are (text values cast by the table's own types).
pub fn load(c: &mut postgres::Client, table: &str, rows: &Table) {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::Value::Object(
                r.iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            )
        })
        .collect();
    let json = serde_json::Value::Array(rows).to_string();
    c.execute(
        &format!(
            "INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::text::json)"
        ),
        &[&json],
    )
    .unwrap_or_else(|e| panic!("loading {table}: {e}"));
}

/// Puts every input into the site's `gold` under its content name (what a gold-only
/// backup keeps).
pub fn put_gold(site: &holdfast_site::Site) {
    for e in std::fs::read_dir(dir().join("inputs")).unwrap() {
        let src = e.unwrap().path();
        let data = std::fs::read(&src).unwrap();
        let name = pfile_name(&data);
        let p = site.repo.path("gold", &name).unwrap();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
    }
}

/// `sha1.md5.size` of some bytes, with the system's tools (no hashing crate here).
fn pfile_name(data: &[u8]) -> String {
    let sum = |prog: &str| -> String {
        use std::io::Write;
        let mut child = std::process::Command::new(prog)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{prog}: {e}"));
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    format!("{}.{}.{}", sum("sha1sum"), sum("md5sum"), data.len())
}

/// Sets every sequence the way FOSSology's schema update does (`core-schema.dat`:
/// `setval(seq, greatest(1, max(pk)))`), so keys are numbered from where FOSSology's start
/// (2 on an empty table). A no-op on a database FOSSology's own schema made.
pub fn fossology_sequences(c: &mut postgres::Client) {
    let seqs = c
        .query(
            "SELECT s.relname, t.relname, a.attname
             FROM pg_class s JOIN pg_depend d ON d.objid = s.oid AND d.deptype = 'a'
             JOIN pg_class t ON t.oid = d.refobjid
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
             WHERE s.relkind = 'S'",
            &[],
        )
        .unwrap();
    for r in seqs {
        let (seq, table, col): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        c.batch_execute(&format!(
            "SELECT setval('\"{seq}\"', (SELECT greatest(1, max(\"{col}\")) FROM \"{table}\"))"
        ))
        .unwrap();
    }
}
