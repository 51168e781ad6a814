//! A scratch FOSSology site with real uploads made by real tools (tar, gzip, xz, zip).
#![allow(dead_code)]

use holdfast_sandbox::scratch::ScratchSite;
use holdfast_site::db::{self, Reference};
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Fixture {
    pub s: ScratchSite,
    pub uploads: Vec<i32>,
    pub dir: tempfile::TempDir,
}

pub fn run(cwd: &Path, prog: &str, args: &[&str]) {
    holdfast_testkit::require(prog);
    let out = Command::new(prog)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A source tree whose contents are unique to `tag`.
pub fn tree(dir: &Path, tag: &str) {
    std::fs::create_dir_all(dir.join("src/sub")).unwrap();
    std::fs::write(dir.join("README"), format!("hello holdfast {tag}\n")).unwrap();
    std::fs::write(
        dir.join("src/main.c"),
        format!("/* {tag} */\nint main(void) {{ return 0; }}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("COPYING"),
        format!("GPL-2.0 license text {tag}\n").repeat(500),
    )
    .unwrap();
    let bin: Vec<u8> = (0..200_000u32)
        .map(|i| {
            (i.wrapping_mul(2654435761)
                .wrapping_add(tag.len() as u32 * 77)
                >> 13) as u8
        })
        .chain(tag.bytes())
        .collect();
    std::fs::write(dir.join("src/sub/data.bin"), bin).unwrap();
}

/// Three uploads: a .tar.gz holding a nested .zip, a .zip, a .tar.xz.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let work = dir.path().join("work");
    for t in ["one", "two", "three", "inner"] {
        tree(&work.join(t), t);
    }
    run(&work, "zip", &["-qr", "one/inner.zip", "inner"]);
    run(&work, "tar", &["czf", "one.tar.gz", "one"]);
    run(&work, "zip", &["-qr", "two.zip", "two"]);
    run(&work, "tar", &["cJf", "three.tar.xz", "three"]);
    let paths: Vec<PathBuf> = ["one.tar.gz", "two.zip", "three.tar.xz"]
        .iter()
        .map(|p| work.join(p))
        .collect();
    let done = upload_files(
        &s.site,
        &paths,
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap();
    let uploads = done.iter().map(|(u, _)| *u).collect();
    Fixture { s, uploads, dir }
}

pub fn files_root(s: &ScratchSite) -> PathBuf {
    s.site.repo.root.join("localhost/files")
}

/// Every file under `files`, by relative path, with its bytes.
pub fn snapshot(s: &ScratchSite) -> BTreeMap<PathBuf, Vec<u8>> {
    let root = files_root(s);
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(&root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// The `files` references of one upload.
pub fn refs(s: &ScratchSite, upload: i32) -> Vec<Reference> {
    let mut c = s.site.connect().unwrap();
    db::references(&mut c, Some(upload))
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "files")
        .collect()
}

pub fn path(s: &ScratchSite, r: &Reference) -> PathBuf {
    s.site.repo.path(&r.kind, &r.name).unwrap()
}

/// The `files` reference of the row named `name` in `upload`.
pub fn named(s: &ScratchSite, upload: i32, name: &str) -> Reference {
    let mut c = s.site.connect().unwrap();
    let pk: i32 = c
        .query_one(
            "SELECT pfile_fk FROM uploadtree_a WHERE upload_fk = $1 AND ufile_name = $2 LIMIT 1",
            &[&upload, &name],
        )
        .unwrap()
        .get(0);
    refs(s, upload)
        .into_iter()
        .find(|r| r.pfile_pk == pk)
        .unwrap()
}

/// Sends this test process SIGTERM, as an operator's Ctrl-C or `systemctl stop` would, and
/// waits until holdfast's stop flag has it (the flag is process-wide: one test binary each).
pub fn stop_signal() {
    holdfast_site::interrupt::install();
    run(
        Path::new("/"),
        "kill",
        &["-TERM", &std::process::id().to_string()],
    );
    for _ in 0..100 {
        if holdfast_site::interrupt::requested() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(holdfast_site::interrupt::requested());
}

/// A job on `upload` cut off by the backup: its ununpack row had started, nomos waits behind.
pub fn cut_off_job(f: &Fixture, upload: i32) -> (i32, i32) {
    let mut c = f.s.site.connect().unwrap();
    let job: i32 = c
        .query_one(
            "INSERT INTO job (job_name, job_upload_fk) VALUES ('reunpack', $1) RETURNING job_pk",
            &[&upload],
        )
        .unwrap()
        .get(0);
    let args = upload.to_string();
    let unpack: i32 = c
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_schedinfo, jq_endtext) \
             VALUES ($1, 'ununpack', $2, now(), 'pid 4242', 'Started') RETURNING jq_pk",
            &[&job, &args],
        )
        .unwrap()
        .get(0);
    let nomos: i32 = c
        .query_one(
            "INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args) VALUES ($1, 'nomos', $2) RETURNING jq_pk",
            &[&job, &args],
        )
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO jobdepends (jdep_jq_fk, jdep_jq_depends_fk) VALUES ($1, $2)",
        &[&nomos, &unpack],
    )
    .unwrap();
    c.execute(
        "INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success) \
         SELECT max(agent_pk), $1, true FROM agent WHERE agent_name = 'ununpack'",
        &[&upload],
    )
    .unwrap();
    (unpack, nomos)
}

/// Whether queue row `jq` is marked started (not handed back to the scheduler).
pub fn job_started(c: &mut postgres::Client, jq: i32) -> bool {
    c.query_one(
        "SELECT jq_starttime IS NOT NULL FROM jobqueue WHERE jq_pk = $1",
        &[&jq],
    )
    .unwrap()
    .get(0)
}
