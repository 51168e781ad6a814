//! FOSSology-compatible recursive unpacker.
//!
//! [`upload_files`] imports files the way FOSSology's upload page and its `ununpack` and
//! `adj2nest` agents would: the file goes to `gold` (hard-linked into `files`), rows go to
//! `pfile`, `upload`, `job`/`jobqueue`, and the unpacked tree goes to `uploadtree_a` with
//! FOSSology's container/artifact/directory bits, `artifact.dir`/`artifact.unpacked`/
//! `artifact.meta` nodes and nested-set numbers; `upload_mode` gets bits 1<<5 (unpacked) and
//! 1<<6 (nested set done) and `ununpack_ars` a success row. [`unpack_upload`] unpacks an
//! existing upload again from its gold file; with [`UnpackOptions::repo_only`] it only
//! refills the repository and leaves every table alone (the gold-only restore).
//!
//! Unpacking is deterministic: the same gold gives the same row names and the same
//! repository file names, so a database restored beside a repository rebuilt from gold
//! finds every file. Files already in the repository are never rewritten. Formats are
//! detected by content ([`detect`]); the walk itself is in [`engine`], each format's reader
//! in [`formats`], the database side in [`db`], and the row model in [`tree`].

mod ar;
pub mod budget;
mod clash;
pub mod db;
pub mod detect;
mod dsc;
pub mod engine;
mod formats;
pub mod fossology;
pub mod hash;
pub mod tree;
mod xzcheck;

pub use tree::{classify, Class};

use holdfast_site::Site;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `[unpack]` in holdfast.toml: limits against hostile archives and parallelism.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnpackConfig {
    /// Most bytes one upload may expand to, all files together (and never more than
    /// `max_ratio` times its gold file).
    pub max_expanded_bytes: u64,
    /// Most a member may expand relative to its container (FOSSology uses 1000); members
    /// under 16 MiB are never held to it.
    pub max_ratio: u64,
    /// Deepest nesting of containers that is unpacked; deeper ones stay plain files.
    pub max_depth: u32,
    /// Most members (files, folders, links) one upload may have.
    pub max_members: u64,
    /// Most bytes of temporary files one upload may hold at once (members waiting to be
    /// processed, what `dpkg-source` and `bsdtar` write); 0 = the expanded-bytes budget.
    pub max_temp_bytes: u64,
    /// Longest one upload may take to unpack, in seconds; 0 = no limit.
    pub max_seconds: u64,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Temporary folder; default `<repository>/<hostname>/ununpack` like FOSSology's own.
    pub temp_dir: Option<PathBuf>,
}

impl Default for UnpackConfig {
    fn default() -> Self {
        UnpackConfig {
            max_expanded_bytes: 200 << 30,
            max_ratio: 1000,
            max_depth: 32,
            max_members: 5_000_000,
            max_temp_bytes: 0,
            max_seconds: 4 * 3600,
            threads: 0,
            temp_dir: None,
        }
    }
}

/// How to unpack an existing upload.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Write repository files only; leave every table untouched (the plan's switch).
    pub repo_only: bool,
    /// Do not keep containers in `files` (see repository slimming).
    pub slim: bool,
    /// Show a progress bar on a terminal.
    pub progress: bool,
    /// FOSSology's `ununpack -I`: no rows for version-control folders (`.git`, `.svn`,
    /// `.hg`, `.bzr`, `CVS`); their files still go to the repository. For an existing
    /// upload it is also taken from the upload's `jq_cmd_args`.
    pub ignore_scm: bool,
    /// FOSSology's `ununpack -E a,b`: no rows for files or folders whose path contains one
    /// of these substrings. For an existing upload also taken from its `jq_cmd_args`.
    pub exclude: Vec<String>,
    /// The database's client encoding is not UTF8 (a `SQL_ASCII` database): names that
    /// are not UTF-8 are kept (with `~` for each such byte) instead of becoming empty, as
    /// libpq's escaping decides for ununpack. Set from the database by the entry points.
    pub sql_ascii: bool,
    /// FOSSology folder (`folder_pk`) a new upload is listed in; default: the root folder.
    pub folder: Option<i32>,
    /// FOSSology group (`group_pk`) that gets admin permission on a new upload; default:
    /// the uploading user's group.
    pub group: Option<i32>,
}

impl UnpackOptions {
    /// Whether names must be valid UTF-8 to be stored (see [`UnpackOptions::sql_ascii`]).
    pub fn utf8_names(&self) -> bool {
        !self.sql_ascii
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UnpackSummary {
    pub upload_pk: i32,
    /// Regular files seen (leaves, containers, artifacts).
    pub files: u64,
    pub bytes: u64,
    /// Files written to the repository (the others were already there).
    pub written: u64,
    /// Members that could not be unpacked: which archive, which member, why.
    pub errors: Vec<String>,
    /// What FOSSology's ununpack does the same way (a command that fails for it too, a file
    /// it skips): not errors, the rows are as FOSSology's.
    #[serde(default)]
    pub notes: Vec<String>,
    pub seconds: f64,
    /// uploadtree rows inserted (0 with `repo_only` or when the upload already had rows).
    pub rows: u64,
    /// Files the upload's rows name that this unpack did not produce and the repository
    /// lacks (artifacts that are not reproducible byte for byte, or members past a limit).
    pub unreproduced: Vec<String>,
    /// Members a rebuild stored as plain files because the rows say so, without asking
    /// libmagic (see `holdfast_site::db::uploadtree::plain_file_names`).
    #[serde(default)]
    pub plain_by_rows: u64,
}

impl UnpackSummary {
    pub fn mb_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }
}

impl std::fmt::Display for UnpackSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "upload {}: {} files, {:.1} MB in {:.2} s ({:.1} MB/s), {} written, {} rows, {} errors",
            self.upload_pk,
            self.files,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.mb_per_s(),
            self.written,
            self.rows,
            self.errors.len()
        )?;
        if !self.unreproduced.is_empty() {
            write!(f, ", {} files not reproducible", self.unreproduced.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cmd_args() {
        let o = super::UnpackOptions::default();
        assert_eq!(super::parse_cmd_args("", &o), (false, vec![]));
        assert_eq!(
            super::parse_cmd_args("-I -E 'node_modules,.min.js'", &o),
            (
                true,
                vec!["node_modules".to_string(), ".min.js".to_string()]
            )
        );
        assert_eq!(super::parse_cmd_args("-Evendor", &o).1, ["vendor"]);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("upload {0} does not exist")]
    NoUpload(i32),
    #[error("upload {upload}: its gold file {path} is missing, so it cannot be rebuilt")]
    GoldMissing { upload: i32, path: String },
    #[error("upload {upload}: gold file {path} does not match its name (hashes {found}); restore it from a backup")]
    GoldCorrupt {
        upload: i32,
        path: String,
        found: String,
    },
    #[error("{path}: {why}")]
    Input { path: String, why: String },
    #[error("repository: {0}")]
    Repo(String),
    #[error("database: {0}")]
    Db(#[from] postgres::Error),
    /// A stop signal arrived: temporary files are gone, a new upload is marked failed.
    #[error("{0}")]
    Interrupted(#[from] holdfast_core::Interrupted),
    #[error("not built yet")]
    NotBuilt,
}

/// What an existing upload's rows say, for a repository-only rebuild.
pub(crate) struct RowsSay {
    /// Every repository file the rows (and the upload's gold) name.
    named: std::collections::HashSet<String>,
    /// Those the rows hold only as plain files.
    plain: std::collections::HashSet<String>,
}

/// Unpacks one file (already stored as gold) into a tree, filling `files`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn unpack_gold(
    site: &Site,
    gold: &Path,
    known: Option<hash::Hashes>,
    name: &str,
    label: &str,
    cfg: &UnpackConfig,
    opts: &UnpackOptions,
    rows: Option<RowsSay>,
) -> Result<(tree::Node, UnpackSummary), UnpackError> {
    let start = Instant::now();
    let root = engine::temp_root(&site.repo, cfg);
    // FOSSology's own unpack folder (`<root>/<host>/ununpack`) is made like any repository
    // folder, so its agents can use it after holdfast did.
    site.repo
        .create_dir_all(&root)
        .map_err(|e| UnpackError::Repo(format!("cannot create {}: {e}", root.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix("holdfast-")
        .tempdir_in(&root)
        .map_err(|e| {
            UnpackError::Repo(format!("cannot create a folder in {}: {e}", root.display()))
        })?;
    let progress = if opts.progress {
        let pb =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
                .expect("valid template"),
        );
        pb.set_prefix(label.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut ctx = engine::Ctx::new(
        site.repo.clone(),
        cfg.clone(),
        opts.clone(),
        tmp.path().to_path_buf(),
        label.to_string(),
        progress,
    );
    ctx.set_gold_size(std::fs::metadata(gold).map(|m| m.len()).unwrap_or(0));
    let named = rows.map(|r| {
        ctx.plain = Some(r.plain);
        r.named
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.threads)
        .build()
        .map_err(|e| UnpackError::Repo(e.to_string()))?;
    let new_upload = known.is_some();
    let mut node = pool.install(|| {
        engine::process(
            &ctx,
            engine::Item {
                src: engine::Src::Fixed(gold.to_path_buf()),
                // Known when we just imported the file; otherwise hashed again, which also
                // proves the gold file still matches its name.
                hashes: known,
                name: holdfast_site::naming::ufile_name(name.as_bytes(), opts.utf8_names()),
                // ununpack's top file is the repository copy fo_RepImport made (02664),
                // under the default mask.
                mode: holdfast_site::mode::REPO_FILE_MODE & holdfast_site::mode::MASK_DEFAULT,
                artifact: false,
                trail: name.to_string(),
                raw_name: tree::raw_comp(name.as_bytes()),
            },
            0,
            true,
        )
    });
    ctx.progress.finish_and_clear();
    if let Some(d) = ctx.top_dir.get() {
        let _ = std::fs::remove_dir_all(d);
    }
    // Hashes are known for a new upload (see `Ctx::drop_unnamed`).
    // (Hashing the gold file polls the flag itself, without the budget.)
    if ctx.budget.stopped() == Some(&budget::Stop::Interrupted)
        || holdfast_core::interrupt::requested()
    {
        if new_upload {
            ctx.drop_unnamed(None);
        }
        // `tmp` goes with its contents as we return.
        return Err(UnpackError::Interrupted(holdfast_core::Interrupted));
    }
    if new_upload {
        ctx.drop_unnamed(Some(&node));
    } else if let Some(named) = &named {
        // A rebuild keeps only what the upload's rows name: an artifact that came out
        // different (a listing that names a path) must not sit in `files` under a new name.
        ctx.drop_created_unless(named);
    }
    node.sort();
    use std::sync::atomic::Ordering::Relaxed;
    let summary = UnpackSummary {
        upload_pk: 0,
        files: ctx.files.load(Relaxed),
        bytes: ctx.bytes.load(Relaxed),
        written: ctx.written.load(Relaxed),
        errors: std::mem::take(&mut *ctx.errors.lock().unwrap()),
        notes: std::mem::take(&mut *ctx.notes.lock().unwrap()),
        seconds: start.elapsed().as_secs_f64(),
        rows: 0,
        unreproduced: vec![],
        plain_by_rows: ctx.plain_by_rows.load(Relaxed),
    };
    drop(tmp);
    Ok((node, summary))
}

/// Unpacks `file` into `site`'s repository like an upload's gold, without touching the
/// database, and returns its tree: for a tool that writes the rows itself (the drills'
/// stand-in for FOSSology's ununpack, which commits them one at a time).
pub fn unpack_tree(
    site: &Site,
    file: &Path,
    name: &str,
    cfg: &UnpackConfig,
    opts: &UnpackOptions,
) -> Result<(tree::Node, UnpackSummary), UnpackError> {
    unpack_gold(site, file, None, name, name, cfg, opts, None)
}

/// Row options FOSSology keeps in `jq_cmd_args`: `-I` and `-E pattern,pattern`.
fn parse_cmd_args(args: &str, opts: &UnpackOptions) -> (bool, Vec<String>) {
    let mut scm = opts.ignore_scm;
    let mut exclude = opts.exclude.clone();
    let mut it = args.split_whitespace();
    while let Some(a) = it.next() {
        if a == "-I" {
            scm = true;
        } else if let Some(rest) = a.strip_prefix("-E") {
            let pats = if rest.is_empty() {
                it.next().unwrap_or("")
            } else {
                rest
            };
            let pats = pats.trim_matches(|c| c == '\'' || c == '"');
            exclude.extend(pats.split(',').filter(|p| !p.is_empty()).map(String::from));
        }
    }
    (scm, exclude)
}

/// ununpack's `SCM_REGEX` (`/\.git|\.hg|\.bzr|CVS/ROOT|\.svn/`), matched against a
/// file's path (a folder's ends in `/`).
fn is_scm_path(p: &str) -> bool {
    p.contains("/.git")
        || p.contains(".hg")
        || p.contains(".bzr")
        || p.contains("CVS/ROOT")
        || p.contains(".svn/")
}

/// Drops rows the upload's options exclude: with `-I` every row whose path matches
/// ununpack's version-control pattern (their files stay in the repository, as ununpack
/// stores them before it decides on the row), and paths containing an `-E` pattern (the
/// walk already skipped what is inside them).
fn prune(node: &mut tree::Node, path: &str, scm: bool, exclude: &[String]) {
    node.children.retain(|c| {
        let p = format!("{path}/{}", c.name);
        let dir = tree::classify(c.mode as i32) == tree::Class::Directory;
        let is_scm = is_scm_path(&if dir { format!("{p}/") } else { p.clone() });
        let excluded = exclude.iter().any(|e| p.contains(e.as_str()));
        !(excluded || scm && is_scm)
    });
    for c in &mut node.children {
        let p = format!("{path}/{}", c.name);
        prune(c, &p, scm, exclude);
    }
}

/// Unpacks upload `upload_pk` again from its gold file.
pub fn unpack_upload(
    site: &Site,
    upload_pk: i32,
    cfg: &UnpackConfig,
    opts: &UnpackOptions,
) -> Result<UnpackSummary, UnpackError> {
    let mut client = site.connect()?;
    let opts = &UnpackOptions {
        sql_ascii: !db::client_is_utf8(&mut client)?,
        ..opts.clone()
    };
    let up = db::load_upload(&mut client, upload_pk)?;
    // The upload's own ununpack options (-I, -E) apply to the walk as they did for ununpack.
    let (scm, exclude) = parse_cmd_args(&up.cmd_args, opts);
    let opts = &UnpackOptions {
        ignore_scm: scm,
        exclude,
        ..opts.clone()
    };
    let name = up.gold.to_string();
    let gold = site
        .repo
        .path("gold", &name)
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == up.gold.size))
        .or_else(|| {
            // FOSSology falls back to the copy in `files` when gold is gone.
            site.repo
                .path("files", &name)
                .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == up.gold.size))
        })
        .ok_or_else(|| UnpackError::GoldMissing {
            upload: upload_pk,
            path: site
                .repo
                .path("gold", &name)
                .map(|p| p.display().to_string())
                .unwrap_or(name.clone()),
        })?;
    let label = format!("upload {upload_pk}");
    let rows = if opts.repo_only {
        let table = holdfast_site::db::uploadtree::TreeTable::new(up.table.clone())
            .ok_or_else(|| UnpackError::Repo(format!("bad uploadtree table {:?}", up.table)))?;
        Some(RowsSay {
            named: holdfast_site::db::references(&mut client, Some(upload_pk))?
                .into_iter()
                .map(|r| r.name)
                .collect(),
            plain: holdfast_site::db::uploadtree::plain_file_names(&mut client, &table, upload_pk)?,
        })
    } else {
        None
    };
    let (node, mut summary) =
        unpack_gold(site, &gold, None, &up.filename, &label, cfg, opts, rows)?;
    summary.upload_pk = upload_pk;
    if let Some(h) = &node.pfile {
        if h.pfile_name() != name {
            return Err(UnpackError::GoldCorrupt {
                upload: upload_pk,
                path: gold.display().to_string(),
                found: h.pfile_name(),
            });
        }
    }
    if !opts.repo_only {
        let mut node = node;
        let top = node.name.clone();
        prune(&mut node, &top, opts.ignore_scm, &opts.exclude);
        let start = std::time::SystemTime::now();
        summary.rows = db::store_tree(&mut client, upload_pk, &up.table, &node, start)?;
        if summary.rows > 0 && !summary.errors.is_empty() {
            db::mark_partial(&mut client, upload_pk, None, &summary.errors)?;
        }
    }
    summary.unreproduced =
        db::unreproduced(&mut client, upload_pk, &up.table, &site.repo, opts.slim)?;
    for u in &summary.unreproduced {
        tracing::warn!("upload {upload_pk}: not rebuilt: {u}");
    }
    tracing::info!("{summary}");
    Ok(summary)
}

/// Copies a file, stopping (with `Interrupted`) within a chunk of a stop signal.
fn copy_interruptible(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut r = std::fs::File::open(from)?;
    let mut w = std::fs::File::create(to)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        holdfast_core::interrupt::check()?;
        let n = r.read(&mut buf)?;
        if n == 0 {
            return w.sync_all();
        }
        w.write_all(&buf[..n])?;
    }
}

/// Imports files as FOSSology uploads (gold, pfile, upload, job rows) and unpacks each.
pub fn upload_files(
    site: &Site,
    paths: &[PathBuf],
    cfg: &UnpackConfig,
    opts: &UnpackOptions,
) -> Result<Vec<(i32, UnpackSummary)>, UnpackError> {
    let mut client = site.connect()?;
    let opts = &UnpackOptions {
        sql_ascii: !db::client_is_utf8(&mut client)?,
        ..opts.clone()
    };
    let owner = db::Owner {
        folder: opts.folder,
        group: opts.group,
    };
    let mut out = Vec::new();
    for path in paths {
        holdfast_core::interrupt::check()?;
        let input = |why: String| UnpackError::Input {
            path: path.display().to_string(),
            why,
        };
        let meta = std::fs::metadata(path).map_err(|e| input(format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(input(
                "not a regular file; upload files, not folders".into(),
            ));
        }
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "upload".into());
        let h = hash::hash_file(path).map_err(|e| {
            if holdfast_core::interrupt::is_interrupted(&e) {
                UnpackError::Interrupted(holdfast_core::Interrupted)
            } else {
                input(format!("cannot read: {e}"))
            }
        })?;
        let gold = site.repo.path("gold", &h.pfile_name()).ok_or_else(|| {
            UnpackError::Repo(format!(
                "FOSSology's repository refuses the name {} (repository {})",
                h.pfile_name(),
                site.repo.root.display()
            ))
        })?;
        let wrote_gold = !std::fs::metadata(&gold).is_ok_and(|m| m.len() == h.size);
        if wrote_gold {
            let repo_err =
                |e: std::io::Error| UnpackError::Repo(format!("{}: {e}", gold.display()));
            site.repo.ensure_parent(&gold).map_err(repo_err)?;
            let part = gold.with_extension(format!("part{}", std::process::id()));
            if let Err(e) = copy_interruptible(path, &part) {
                let _ = std::fs::remove_file(&part);
                return Err(if holdfast_core::interrupt::is_interrupted(&e) {
                    UnpackError::Interrupted(holdfast_core::Interrupted)
                } else {
                    repo_err(e)
                });
            }
            site.repo.finish_file(&part).map_err(repo_err)?;
            std::fs::rename(&part, &gold).map_err(repo_err)?;
        }
        let start = std::time::SystemTime::now();
        let mut cmd_args = Vec::new();
        if opts.ignore_scm {
            cmd_args.push("-I".to_string());
        }
        if !opts.exclude.is_empty() {
            cmd_args.push(format!("-E {}", opts.exclude.join(",")));
        }
        let cmd_args = cmd_args.join(" ");
        let ids = match db::create_upload(
            &mut client,
            &filename,
            &h,
            (!cmd_args.is_empty()).then_some(cmd_args.as_str()),
            &owner,
        ) {
            Ok(ids) => ids,
            Err(e) => {
                // No row names the gold file this run added: take it away again, so a failed
                // upload leaves the repository as it found it.
                if wrote_gold {
                    let _ = std::fs::remove_file(&gold);
                }
                return Err(e);
            }
        };
        let label = format!("upload {} ({filename})", ids.upload_pk);
        let res = unpack_gold(
            site,
            &gold,
            Some(h.clone()),
            &filename,
            &label,
            cfg,
            opts,
            None,
        );
        let (node, mut summary) = match res {
            Ok(x) => x,
            Err(e) => {
                db::fail_jobs(&mut client, &ids, start, &e.to_string())?;
                return Err(e);
            }
        };
        summary.upload_pk = ids.upload_pk;
        let mut node = node;
        let top = node.name.clone();
        prune(&mut node, &top, opts.ignore_scm, &opts.exclude);
        let table = db::tree_table_for(&mut client, ids.upload_pk, h.size)?;
        summary.rows = db::store_tree(&mut client, ids.upload_pk, &table, &node, start)?;
        db::finish_jobs(&mut client, &ids, true, "Completed")?;
        if !summary.errors.is_empty() {
            db::mark_partial(
                &mut client,
                ids.upload_pk,
                Some(ids.jq_unpack),
                &summary.errors,
            )?;
        }
        tracing::info!("{summary}");
        out.push((ids.upload_pk, summary));
    }
    Ok(out)
}
