//! The `pfile` table: one row per distinct file content, named `<sha1>.<md5>.<size>`.

use crate::pfile::PfileName;
use std::collections::HashSet;

/// A file's hashes as FOSSology keys a pfile (hex in any case; stored upper case).
#[derive(Debug, Clone, Copy)]
pub struct PfileHashes<'a> {
    pub sha1: &'a str,
    pub md5: &'a str,
    pub sha256: &'a str,
    pub size: u64,
}

/// Finds or adds the pfile rows of `files`; returns each one's `pfile_pk` by name.
///
/// FOSSology's only unique key on pfile is `pfile_md5_sha1_sha256_size_ukey` (md5, sha1,
/// sha256, size), but a pfile is named, and found by its agents, by sha1, md5 and size:
/// rows from before FOSSology stored sha256 have it NULL, which no unique key matches. So a
/// row with the same name is reused (its missing sha256 filled in), and only files with no
/// row are inserted; the unique key keeps a concurrent twin from being added twice.
pub fn upsert(
    c: &mut impl postgres::GenericClient,
    files: &[PfileHashes],
) -> Result<std::collections::HashMap<PfileName, i32>, postgres::Error> {
    let mut seen = HashSet::new();
    let (mut s1, mut m5, mut s256, mut sz) = (vec![], vec![], vec![], vec![]);
    for f in files {
        if seen.insert(PfileName::new(f.sha1, f.md5, f.size)) {
            s1.push(f.sha1.to_ascii_uppercase());
            m5.push(f.md5.to_ascii_uppercase());
            s256.push(f.sha256.to_ascii_uppercase());
            sz.push(f.size as i64);
        }
    }
    let args: [&(dyn postgres::types::ToSql + Sync); 4] = [&s1, &m5, &s256, &sz];
    c.execute(
        "UPDATE pfile p SET pfile_sha256 = u.h
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(s, m, h, z)
         WHERE p.pfile_sha1 = u.s AND p.pfile_md5 = u.m AND p.pfile_size = u.z
           AND p.pfile_sha256 IS NULL",
        &args,
    )?;
    c.execute(
        "INSERT INTO pfile (pfile_sha1, pfile_md5, pfile_sha256, pfile_size)
         SELECT u.s, u.m, u.h, u.z
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(s, m, h, z)
         WHERE NOT EXISTS (SELECT 1 FROM pfile p
                           WHERE p.pfile_sha1 = u.s AND p.pfile_md5 = u.m AND p.pfile_size = u.z)
         ON CONFLICT (pfile_md5, pfile_sha1, pfile_sha256, pfile_size) DO NOTHING",
        &args,
    )?;
    // The lowest key when old data holds twins of one name.
    let rows = c.query(
        "SELECT min(p.pfile_pk), p.pfile_sha1, p.pfile_md5, p.pfile_size
         FROM pfile p JOIN unnest($1::text[], $2::text[], $3::int8[]) AS u(s, m, z)
           ON p.pfile_sha1 = u.s AND p.pfile_md5 = u.m AND p.pfile_size = u.z
         GROUP BY 2, 3, 4",
        &[&s1, &m5, &sz],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let size: i64 = r.get(3);
            (PfileName::new(r.get(1), r.get(2), size as u64), r.get(0))
        })
        .collect())
}

/// The name of a pfile from its (nullable) columns, as a LEFT JOIN gives them.
pub fn name_of(sha1: Option<String>, md5: Option<String>, size: Option<i64>) -> Option<PfileName> {
    Some(PfileName::new(&sha1?, &md5?, size? as u64))
}

/// `(pfile_pk, name, size)` of each of `pks` that exists.
pub fn names(
    c: &mut impl postgres::GenericClient,
    pks: &[i32],
) -> Result<Vec<(i32, PfileName, u64)>, postgres::Error> {
    Ok(c.query(
        "SELECT pfile_pk, pfile_sha1, pfile_md5, pfile_size FROM pfile \
             WHERE pfile_pk = ANY($1)",
        &[&pks],
    )?
    .iter()
    .map(|r| {
        let size: i64 = r.get(3);
        (
            r.get(0),
            PfileName::new(r.get(1), r.get(2), size as u64),
            size as u64,
        )
    })
    .collect())
}

/// `InitCmd`: every name in `names` (ununpack's command table, in its order) has a
/// `mimetype` row, added when missing; returns their keys by name.
pub fn init_mimetypes(
    c: &mut impl postgres::GenericClient,
    names: &[&str],
) -> Result<std::collections::HashMap<String, i32>, postgres::Error> {
    let mut out = std::collections::HashMap::new();
    for name in names {
        let pk = match c.query_opt(
            "SELECT mimetype_pk FROM mimetype WHERE mimetype_name = $1 ORDER BY mimetype_pk LIMIT 1",
            &[name],
        )? {
            Some(r) => r.get(0),
            None => c
                .query_one(
                    "INSERT INTO mimetype (mimetype_name) VALUES ($1) RETURNING mimetype_pk",
                    &[name],
                )?
                .get(0),
        };
        out.insert(name.to_string(), pk);
    }
    Ok(out)
}

/// Finds or adds the pfiles of `files` ([`upsert`], `DBInsertPfile`) and gives them the
/// `mimetype_pk` their command has (`mimes`, same order as `files`), when it differs: the
/// later command wins, and ununpack never clears one.
pub fn upsert_with_mimetypes(
    c: &mut impl postgres::GenericClient,
    files: &[PfileHashes],
    mimes: &[Option<i32>],
) -> Result<std::collections::HashMap<PfileName, i32>, postgres::Error> {
    let pks = upsert(c, files)?;
    let mut by_pk: std::collections::HashMap<i32, i32> = std::collections::HashMap::new();
    for (f, m) in files.iter().zip(mimes) {
        if let Some(m) = m {
            by_pk.insert(pks[&PfileName::new(f.sha1, f.md5, f.size)], *m);
        }
    }
    let (pk, mt): (Vec<i32>, Vec<i32>) = by_pk.into_iter().unzip();
    c.execute(
        "UPDATE pfile p SET pfile_mimetypefk = u.t
         FROM unnest($1::int4[], $2::int4[]) AS u(pk, t)
         WHERE p.pfile_pk = u.pk AND p.pfile_mimetypefk IS DISTINCT FROM u.t",
        &[&pk, &mt],
    )?;
    Ok(pks)
}
