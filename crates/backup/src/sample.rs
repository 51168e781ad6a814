//! A FOSSology-shaped sample site made from real compressed files, for the demo, the tests
//! and the drills.
//!
//! Each given `.gz` file becomes one upload, as FOSSology would store it: the file is the
//! upload's gold (in `gold` and, hard-linked, in `files`), its decompressed content is the
//! one unpacked child (in `files`), with `pfile`, `upload` and `uploadtree_a` rows (container,
//! artifact directory, leaf), and a finished `ununpack` job plus a queued `nomos` job.

use holdfast_site::pfile::PfileName;
use holdfast_site::Site;
use md5::Md5;
use sha1::{Digest, Sha1};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct SampleStats {
    pub uploads: usize,
    pub files: usize,
    pub bytes: u64,
}

fn name_of(data: &[u8]) -> PfileName {
    PfileName::new(
        &hex::encode(Sha1::digest(data)),
        &hex::encode(Md5::digest(data)),
        data.len() as u64,
    )
}

/// Inserts (or finds) the pfile row and writes the file of `kind` if missing; returns pfile_pk.
fn store(
    site: &Site,
    c: &mut impl postgres::GenericClient,
    kind: &str,
    data: &[u8],
    link_from: Option<&Path>,
) -> anyhow::Result<(i32, PathBuf)> {
    let n = name_of(data);
    let path = site
        .repo
        .pfile_path(kind, &n)
        .ok_or_else(|| anyhow::anyhow!("no [REPOSITORY] host covers {kind} {n}"))?;
    if !path.exists() {
        site.repo.ensure_parent(&path)?;
        match link_from {
            Some(src) => std::fs::hard_link(src, &path)?,
            None => std::fs::write(&path, data)?,
        }
        site.repo.finish_file(&path)?;
    }
    let sha256 = hex::encode(sha2::Sha256::digest(data));
    let pks = holdfast_site::db::upsert_pfiles(
        c,
        &[holdfast_site::db::PfileHashes {
            sha1: &n.sha1,
            md5: &n.md5,
            sha256: &sha256,
            size: n.size,
        }],
    )?;
    Ok((pks[&n], path))
}

/// Adds one upload per `.gz` file in `sources` to the site (database and repository).
pub fn populate(site: &Site, sources: &[PathBuf]) -> anyhow::Result<SampleStats> {
    let mut c = site.connect()?;
    let mut stats = SampleStats::default();
    for src in sources {
        let gold = std::fs::read(src)?;
        let mut inner = Vec::new();
        if flate2::read::MultiGzDecoder::new(&gold[..])
            .read_to_end(&mut inner)
            .is_err()
        {
            continue; // not a gzip file after all
        }
        let mut tx = c.transaction()?;
        let (gold_pk, gold_path) = store(site, &mut tx, "gold", &gold, None)?;
        store(site, &mut tx, "files", &gold, Some(&gold_path))?;
        let (leaf_pk, _) = store(site, &mut tx, "files", &inner, None)?;
        let fname = src
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let upload: i32 = tx
            .query_one(
                "INSERT INTO upload (upload_filename, user_fk, upload_mode, pfile_fk, upload_origin) \
                 VALUES ($1, 1, 104, $2, $3) RETURNING upload_pk",
                &[&fname, &gold_pk, &src.display().to_string()],
            )?
            .get(0);
        let root: i32 = tx
            .query_one(
                "INSERT INTO uploadtree_a (parent, realparent, upload_fk, pfile_fk, ufile_mode, lft, rgt, ufile_name) \
                 VALUES (NULL, NULL, $1, $2, $3, 1, 6, $4) RETURNING uploadtree_pk",
                &[&upload, &gold_pk, &((1 << 29) | 0o100644), &fname],
            )?
            .get(0);
        let dir: i32 = tx
            .query_one(
                "INSERT INTO uploadtree_a (parent, realparent, upload_fk, pfile_fk, ufile_mode, lft, rgt, ufile_name) \
                 VALUES ($1, $1, $2, 0, $3, 2, 5, 'artifact.dir') RETURNING uploadtree_pk",
                &[&root, &upload, &((1 << 28) | (1 << 18) | 0o40755)],
            )?
            .get(0);
        let leaf_name = fname.trim_end_matches(".gz").to_string();
        tx.execute(
            "INSERT INTO uploadtree_a (parent, realparent, upload_fk, pfile_fk, ufile_mode, lft, rgt, ufile_name) \
             VALUES ($1, $2, $3, $4, $5, 3, 4, $6)",
            &[&dir, &root, &upload, &leaf_pk, &0o100644, &leaf_name],
        )?;
        let job: i32 = tx
            .query_one(
                "INSERT INTO job (job_name, job_upload_fk, job_user_fk) VALUES ($1, $2, 1) RETURNING job_pk",
                &[&fname, &upload],
            )?
            .get(0);
        tx.execute(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_endtime, jq_end_bits, jq_endtext) \
             VALUES ($1, 'ununpack', $2, now(), now(), 1, 'Completed')",
            &[&job, &upload.to_string()],
        )?;
        tx.execute(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args) VALUES ($1, 'nomos', $2)",
            &[&job, &upload.to_string()],
        )?;
        tx.commit()?;
        stats.uploads += 1;
        stats.files += 3;
        stats.bytes += 2 * gold.len() as u64 + inner.len() as u64;
    }
    Ok(stats)
}

/// Real gzip files found on this machine (Debian keeps many under /usr/share/doc).
pub fn find_gz(limit: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new("/usr/share/doc")
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if out.len() >= limit {
            break;
        }
        if e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "gz") {
            out.push(e.path().to_path_buf());
        }
    }
    out
}
