//! `holdfast demo`: a FOSSology-shaped site backed up, destroyed, restored and verified, on
//! local folders, with a real PostgreSQL cluster and uploads made from real archives.

use crate::commands::backup::human_bytes;
use crate::config::Context;
use crate::exit;
use holdfast_backup::{BackupConfig, RestoreOptions};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_sandbox::standin::{Behaviour, StandIn};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
#[command(
    long_about = "Builds a FOSSology-shaped site in a folder (its own PostgreSQL cluster, \
fossology.conf, Db.conf, and a repository filled with uploads made from real .gz files found \
under /usr/share/doc), runs a scheduler stand-in, backs the site up to a local folder, destroys \
the database and the repository, restores them and verifies the site is whole, printing each \
step with its time. Needs no configuration file."
)]
pub struct Args {
    /// Folder to build everything in (default: a new temporary folder, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of uploads to create.
    #[arg(long, default_value_t = 300)]
    pub uploads: usize,
    /// Keep the folder (site, backups) afterwards to look at.
    #[arg(long)]
    pub keep: bool,
}

struct Steps {
    n: usize,
    began: Instant,
}

impl Steps {
    fn step<T>(&mut self, what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        self.n += 1;
        let t = Instant::now();
        let r = f();
        println!(
            "[{:>2}] {:<58} {:>6.2} s{}",
            self.n,
            what,
            t.elapsed().as_secs_f64(),
            if r.is_err() { "  FAILED" } else { "" }
        );
        r
    }
}

/// Names and sizes of every file, and how many names share an inode with another.
fn census(root: &Path) -> (Vec<(String, u64)>, usize) {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, u64)>, linked: &mut usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                walk(root, &e.path(), files, linked);
            } else if m.is_file() {
                if m.nlink() > 1 {
                    *linked += 1;
                }
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                files.push((rel, m.len()));
            }
        }
    }
    let mut files = Vec::new();
    let mut linked = 0;
    walk(root, root, &mut files, &mut linked);
    files.sort();
    (files, linked)
}

fn counts(site: &holdfast_site::Site) -> anyhow::Result<Vec<(String, i64)>> {
    let mut c = site.connect()?;
    Ok(holdfast_site::db::row_counts(
        &mut c,
        &["pfile", "upload", "uploadtree_a", "job", "jobqueue"],
    )?)
}

pub fn run(args: Args, _ctx: &Context) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("holdfast-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    println!("holdfast demo in {}\n", dir.display());
    let mut s = Steps {
        n: 0,
        began: Instant::now(),
    };
    let scratch = s.step("create a PostgreSQL cluster and FOSSology database", || {
        ScratchSite::create(&dir.join("site"), "UTF8")
    })?;
    let site = scratch.site.clone();
    let sources = holdfast_sandbox::sample::find_gz(args.uploads);
    if sources.is_empty() {
        anyhow::bail!("no .gz files under /usr/share/doc to make uploads from (install any Debian package with docs)");
    }
    let stats = s.step(
        &format!("import {} uploads from real .gz files", sources.len()),
        || holdfast_sandbox::sample::populate(&site, &sources),
    )?;
    println!(
        "      {} uploads, {} repository files, {}; one queued nomos job each",
        stats.uploads,
        stats.files,
        human_bytes(stats.bytes)
    );
    let standin = s.step(
        "start the scheduler stand-in (stops slowly, like agents)",
        || {
            let st = StandIn::create(
                &dir.join("scheduler"),
                "demo",
                Behaviour {
                    stop_delay_secs: 1,
                    refuse_stop: false,
                    agents: 2,
                },
            )?;
            st.start()?;
            Ok(st)
        },
    )?;
    let sched = standin.config(60);
    let cfg = BackupConfig {
        target: dir.join("backups").display().to_string(),
        lock_file: dir.join("backup.lock"),
        keep: 3,
        ..Default::default()
    };
    let out = s.step(
        "back up: stop scheduler, pg_dumpall | gzip, rsync, restart",
        || Ok(holdfast_backup::backup(&site, "demo", &sched, &cfg)?),
    )?;
    let m = &out.manifest;
    println!(
        "      snapshot {}/{}: {} files, {}, dump {} (sha256 {}...), {} unfinished jobs recorded; scheduler running again: {}",
        out.target,
        out.snapshot,
        m.repository.files,
        human_bytes(m.repository.bytes),
        human_bytes(m.database.bytes),
        &m.database.sha256[..12],
        m.jobs.unfinished.len(),
        standin.is_running()
    );
    let more = holdfast_sandbox::sample::find_gz(args.uploads + 20)
        .into_iter()
        .skip(args.uploads)
        .collect::<Vec<_>>();
    let out2 = s.step(
        &format!("add {} uploads, back up again (a new day)", more.len()),
        || {
            holdfast_sandbox::sample::populate(&site, &more)?;
            Ok(holdfast_backup::backup(&site, "demo", &sched, &cfg)?)
        },
    )?;
    println!(
        "      {} new files copied ({}), the other {} hard-linked to the previous snapshot",
        out2.manifest.repository.new_files,
        human_bytes(out2.manifest.repository.new_bytes),
        out2.manifest.repository.files - out2.manifest.repository.new_files
    );
    let target = cfg.target()?;
    for snap in holdfast_store::layout::snapshots(&target)? {
        println!(
            "      snapshot {:<24} {} files",
            snap.name, snap.manifest.repository.files
        );
    }
    let before_counts = counts(&site)?;
    let (before_files, before_linked) = census(&site.repo.root);
    s.step("DISASTER: drop the database, delete the repository", || {
        let mut su = scratch.cluster.superuser_client()?;
        su.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", site.db.dbname()))?;
        std::fs::remove_dir_all(&site.repo.root)?;
        Ok(())
    })?;
    let r = s.step(
        "restore latest: stop, recreate DB, load dump, rsync, start",
        || {
            Ok(holdfast_backup::restore(
                &site,
                &sched,
                &cfg,
                &Default::default(),
                &RestoreOptions::default(),
            )?)
        },
    )?;
    println!(
        "      database {:.2} s, repository {:.2} s; verify: {} references checked, {} missing",
        r.db_secs,
        r.repo_secs,
        r.verify.checked,
        r.verify.missing.len()
    );
    let same = s.step("compare with the site before the disaster", || {
        let after_counts = counts(&site)?;
        let (after_files, after_linked) = census(&site.repo.root);
        println!(
            "      rows {:?}\n      files {} -> {}, hard-linked names {} -> {}",
            after_counts,
            before_files.len(),
            after_files.len(),
            before_linked,
            after_linked
        );
        Ok(after_counts == before_counts
            && after_files == before_files
            && after_linked == before_linked)
    })?;
    drop(standin);
    drop(scratch);
    println!(
        "\n{} in {:.1} s",
        if same && r.is_whole() {
            "site restored whole"
        } else {
            "RESTORE INCOMPLETE"
        },
        s.began.elapsed().as_secs_f64()
    );
    if args.keep || args.dir.is_some() {
        println!("site and backups kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(exit::code(if same && r.is_whole() {
        exit::OK
    } else {
        exit::INCOMPLETE
    }))
}
