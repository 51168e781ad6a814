//! A FOSSology-shaped sample site made from real compressed files, for the demo, the tests
//! and the drills.
//!
//! Each given `.gz` file becomes one upload, as FOSSology would store it: the file is the
//! upload's gold (in `gold` and, hard-linked, in `files`), its decompressed content is the
//! one unpacked child (in `files`), with `pfile`, `upload` and `uploadtree_a` rows (container,
//! artifact directory, leaf), and a finished `ununpack` job plus a queued `nomos` job.

use holdfast_site::db::uploadtree::{self, TreeTable};
use holdfast_site::db::{jobs, uploads};
use holdfast_site::pfile::PfileName;
use holdfast_site::{mode, naming, Site};
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
    // FOSSology's installer makes `fossy` (its key differs between sites).
    let user = holdfast_site::users::upload_user(&mut c)?;
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
        let origin = src.display().to_string();
        let upload = uploads::insert(
            &mut tx,
            &uploads::NewUpload {
                filename: &fname,
                origin: &origin,
                pfile: gold_pk,
                user,
                mode: mode::UPLOAD_FILE | mode::UPLOAD_UNPACKED | mode::UPLOAD_NESTED,
            },
        )?;
        // Modes as FOSSology's ununpack gives a compressed file, its artifact folder and
        // the decompressed file.
        let masked = |m: u32| (m & mode::MASK_DEFAULT) as i32;
        let table = TreeTable::default();
        let row = |parent, realparent, pfile, mode, (lft, rgt), name| uploadtree::NewRow {
            parent,
            realparent,
            upload,
            pfile,
            mode,
            lft,
            rgt,
            name,
        };
        let root = uploadtree::insert(
            &mut tx,
            &table,
            &row(
                None,
                None,
                gold_pk,
                mode::BIT_CONTAINER as i32 | masked(mode::REPO_FILE_MODE),
                (1, 6),
                &fname,
            ),
        )?;
        let dir = uploadtree::insert(
            &mut tx,
            &table,
            &row(
                Some(root),
                Some(root),
                0,
                (mode::BIT_CONTAINER | mode::BIT_ARTIFACT) as i32 | masked(mode::UNPACK_DIR_MODE),
                (2, 5),
                naming::ARTIFACT_DIR,
            ),
        )?;
        uploadtree::insert(
            &mut tx,
            &table,
            &row(
                Some(dir),
                Some(root),
                leaf_pk,
                (mode::S_IFREG | 0o644) as i32,
                (3, 4),
                naming::pack_output_name(&fname),
            ),
        )?;
        let job = jobs::insert_job(&mut tx, &fname, upload, user)?;
        let args = upload.to_string();
        jobs::insert_queue_row(&mut tx, job, "ununpack", &args, true)?;
        jobs::insert_queue_row(&mut tx, job, "nomos", &args, false)?;
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
