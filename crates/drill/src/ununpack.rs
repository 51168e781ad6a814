//! A stand-in for FOSSology's `ununpack` agent as it writes an upload, so that plug-pull-job
//! also kills the writer the real site runs, not only holdfast's.
//!
//! What matters for a kill is how ununpack writes (`src/ununpack/agent/utils.c`,
//! `AddToRepository`, and `ununpack.c`): it records its start in `ununpack_ars`
//! (`ars_success` false), then, file by file in tree order, hard-links the extracted file
//! into the repository (`fo_RepImport`, no `fsync`), inserts its `pfile` row when missing
//! and its `uploadtree_a` row (parent first), each statement on its own (autocommit, no
//! transaction); only at the end it sets `upload_mode` bit 5 and `realparent`, and marks its
//! `ununpack_ars` row successful. Killed halfway, it leaves some rows committed, the rest
//! missing, and the upload not marked unpacked. (FOSSology's own rerun then writes no rows,
//! since the upload has some: holdfast's unpacker replaces such rows; see
//! `holdfast_unpack::db::store_tree`.)
//!
//! The extraction itself (ununpack runs external tools into a temporary folder of the
//! repository) is done before the agent starts, by holdfast's unpacker into a private
//! folder under `<repository>/<host>/ununpack/`, as ununpack's temporary folder is: the
//! killed process is the writer, a bash script driving one `psql` session synchronously
//! (each statement answered before the next file), as the agent drives libpq.

use crate::site::DrillSite;
use anyhow::{anyhow, Context, Result};
use holdfast_unpack::{UnpackConfig, UnpackOptions};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The writer, ready to run for one upload.
pub struct Agent {
    /// The script and its arguments (run it in its own process group to kill it).
    pub script: PathBuf,
    pub plan: PathBuf,
    /// `uploadtree_a` rows a whole run writes.
    pub rows: usize,
    /// The extracted files (ununpack's temporary folder); removed by [`Agent::clean`].
    pub temp: PathBuf,
    pub upload: i32,
}

/// Where the writer halts for the plug to be pulled (see
/// [`holdfast_site::db::standin::ununpack_writer_script`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// This many rows committed, the next file linked into the repository.
    Rows(usize),
    /// Every row committed, no end mark yet.
    AllRows,
    /// `upload_mode` bit 5 set (the first end mark), `realparent` not yet.
    ModeMarked,
    /// `realparent` set too; the `ununpack_ars` row is not yet successful.
    ParentsSet,
}

impl Agent {
    /// The writer, halting at `stop`.
    pub fn command(&self, stop: Stop) -> Command {
        let at = match stop {
            Stop::Rows(n) => n.clamp(1, self.rows.saturating_sub(1).max(1)),
            Stop::AllRows => self.rows,
            Stop::ModeMarked => self.rows + 1,
            Stop::ParentsSet => self.rows + 2,
        };
        let _ = std::fs::remove_file(self.halted_file());
        let mut c = Command::new("bash");
        c.arg(&self.script)
            .arg(&self.plan)
            .arg(self.upload.to_string())
            .arg(at.to_string());
        c
    }

    /// Whether the writer has halted where it was told to.
    pub fn halted(&self) -> bool {
        self.halted_file().exists()
    }

    fn halted_file(&self) -> PathBuf {
        let mut p = self.plan.clone().into_os_string();
        p.push(".stopped");
        PathBuf::from(p)
    }

    pub fn clean(&self) {
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

/// Extracts upload `upload`'s gold as ununpack would before it writes, and writes the plan
/// and the writer script into `dir`.
pub fn prepare(site: &DrillSite, upload: i32, dir: &Path) -> Result<Agent> {
    std::fs::create_dir_all(dir)?;
    let s = site.site();
    let mut c = site.connect()?;
    let up = holdfast_unpack::db::load_upload(&mut c, upload)?;
    let gold = s
        .repo
        .path("gold", &up.gold.to_string())
        .ok_or_else(|| anyhow!("no [REPOSITORY] line covers gold"))?;
    // ununpack's temporary folder: <repository>/<host>/ununpack/<dir>, same file system.
    let host = s
        .repo
        .host_dirs()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the repository has no host folder"))?;
    let temp = host.join("ununpack").join(format!("standin-{upload}"));
    let _ = std::fs::remove_dir_all(&temp);
    let mut private = s.clone();
    private.repo.root = temp.clone();
    let (node, _) = holdfast_unpack::unpack_tree(
        &private,
        &gold,
        &up.filename,
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .with_context(|| format!("extracting upload {upload} for the stand-in ununpack"))?;
    let flat = node.flatten();
    let mut plan = String::new();
    for (i, f) in flat.iter().enumerate() {
        let parent = f.parent.map_or(-1, |p| p as i64);
        let hex: String = f.node.name.bytes().map(|b| format!("{b:02x}")).collect();
        let (mut sha1, mut md5, mut sha256, mut size, mut src, mut dst) = Default::default();
        if let Some(h) = &f.node.pfile {
            let name = h.pfile_name();
            src = private
                .repo
                .path("files", &name)
                .filter(|p| p.exists())
                .ok_or_else(|| anyhow!("the stand-in's extraction has no file {name}"))?
                .display()
                .to_string();
            dst = s
                .repo
                .path("files", &name)
                .ok_or_else(|| anyhow!("no [REPOSITORY] line covers files"))?
                .display()
                .to_string();
            sha1 = h.sha1.to_ascii_uppercase();
            md5 = h.md5.to_ascii_uppercase();
            sha256 = h.sha256.to_ascii_uppercase();
            size = h.size.to_string();
        }
        writeln!(
            plan,
            "{i}\t{parent}\t{}\t{hex}\t{sha1}\t{md5}\t{sha256}\t{size}\t{src}\t{dst}",
            f.node.mode
        )?;
    }
    let plan_path = dir.join(format!("plan-{upload}.tsv"));
    std::fs::write(&plan_path, plan)?;
    let script = dir.join("standin-ununpack");
    write_script(site, &script)?;
    Ok(Agent {
        script,
        plan: plan_path,
        rows: flat.len(),
        temp,
        upload,
    })
}

fn write_script(site: &DrillSite, path: &Path) -> Result<()> {
    let text = holdfast_site::db::standin::ununpack_writer_script(
        &site.standin.dir.join("pgpass"),
        &site.site().db,
    );
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// `uploadtree_a` rows upload `upload` has.
pub fn rows(c: &mut postgres::Client, upload: i32) -> Result<i64> {
    Ok(holdfast_site::db::standin::tree_rows(c, upload)?)
}
