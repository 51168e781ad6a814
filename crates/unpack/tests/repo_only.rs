//! The gold-only restore: `files` is rebuilt from gold with `repo_only`, the database dump
//! stays byte-identical, every file the database names is back, nothing is rewritten.

mod common;
use common::*;
use holdfast_unpack::{unpack_upload, upload_files, UnpackConfig, UnpackOptions};
use std::collections::BTreeSet;
use std::path::Path;

fn dump(s: &holdfast_sandbox::scratch::ScratchSite) -> Vec<u8> {
    let bin = holdfast_sandbox::cluster::pg_bin_dir()
        .unwrap()
        .join("pg_dumpall");
    let env = s.cluster.superuser_conf().pg_env().unwrap();
    let mut cmd = std::process::Command::new(bin);
    env.apply(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pg_dumpall (15.14 and later) writes a random \restrict key per run: not data.
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

fn files_set(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
}

#[test]
fn repo_only_rebuilds_files_and_leaves_the_dump_identical() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let src = d.path().join("src");
    make_tree(&src.join("inner"));
    sh(
        &src,
        "zip -qr inner.zip inner && tar czf ../nested.tar.gz inner.zip inner \
         && tar cJf ../plain.tar.xz inner",
    );
    let cfg = UnpackConfig::default();
    let ups = upload_files(
        &s.site,
        &[
            d.path().join("nested.tar.gz"),
            d.path().join("plain.tar.xz"),
        ],
        &cfg,
        &UnpackOptions::default(),
    )
    .unwrap();
    let files = s.site.repo.root.join("localhost/files");
    let before = files_set(&files);
    let dump_before = dump(&s);

    // Lose `files` entirely; keep gold.
    std::fs::remove_dir_all(&files).unwrap();
    let opts = UnpackOptions {
        repo_only: true,
        ..Default::default()
    };
    for (up, _) in &ups {
        let sum = unpack_upload(&s.site, *up, &cfg, &opts).unwrap();
        assert!(sum.errors.is_empty(), "{:?}", sum.errors);
        assert!(sum.unreproduced.is_empty(), "{:?}", sum.unreproduced);
        assert_eq!(sum.rows, 0);
        assert!(sum.written > 0);
        // Plain files come from the rows; containers are still looked at and unpacked.
        assert!(
            sum.plain_by_rows > 0 && sum.plain_by_rows < sum.files,
            "{} of {} files taken as plain from the rows",
            sum.plain_by_rows,
            sum.files
        );
        check_shape(&s, *up);
    }
    assert_eq!(
        files_set(&files),
        before,
        "same repository names after the rebuild"
    );
    let dump_after = dump(&s);
    if dump_after != dump_before {
        std::fs::write("/tmp/hf-dump-before.sql", &dump_before).unwrap();
        std::fs::write("/tmp/hf-dump-after.sql", &dump_after).unwrap();
        panic!("repo-only changed the database (see /tmp/hf-dump-*.sql)");
    }

    // Again: everything is there already, nothing is rewritten (same inodes).
    use std::os::unix::fs::MetadataExt;
    let inodes = |root: &Path| -> Vec<u64> {
        walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.metadata().unwrap().ino())
            .collect()
    };
    let ino = inodes(&files);
    let sum = unpack_upload(&s.site, ups[0].0, &cfg, &opts).unwrap();
    assert_eq!(sum.written, 0);
    assert_eq!(inodes(&files), ino);
}

/// A rebuild trusts the rows about which members are plain files: a zip whose row says it is
/// a plain file is stored but not opened again, so a file only inside it is named as not
/// rebuilt. (With the zip's row intact the same rebuild brings that file back.)
#[test]
fn a_rebuild_opens_only_what_the_rows_call_a_container() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("only-in-zip.txt"), "found only inside z.zip\n").unwrap();
    std::fs::write(src.join("beside.txt"), "beside the zip\n").unwrap();
    sh(
        &src,
        "zip -q z.zip only-in-zip.txt && tar czf ../p.tgz z.zip beside.txt",
    );
    let cfg = UnpackConfig::default();
    let ups = upload_files(
        &s.site,
        &[d.path().join("p.tgz")],
        &cfg,
        &UnpackOptions::default(),
    )
    .unwrap();
    let up = ups[0].0;
    let inside = holdfast_unpack::hash::hash_file(&src.join("only-in-zip.txt"))
        .unwrap()
        .pfile_name();
    let files = s.site.repo.root.join("localhost/files");
    let opts = UnpackOptions {
        repo_only: true,
        ..Default::default()
    };
    let rebuild = || {
        std::fs::remove_dir_all(&files).unwrap();
        unpack_upload(&s.site, up, &cfg, &opts).unwrap()
    };

    let sum = rebuild();
    assert!(sum.unreproduced.is_empty(), "{:?}", sum.unreproduced);
    assert!(s.site.repo.path("files", &inside).unwrap().is_file());

    let changed = s
        .site
        .connect()
        .unwrap()
        .execute(
            &format!(
                "UPDATE uploadtree_a SET ufile_mode = ufile_mode & ~{} \
                 WHERE upload_fk = $1 AND ufile_name = 'z.zip'",
                holdfast_site::mode::BIT_CONTAINER
            ),
            &[&up],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let sum = rebuild();
    assert!(!s.site.repo.path("files", &inside).unwrap().exists());
    assert!(
        sum.unreproduced.iter().any(|u| u.contains(&inside)),
        "{:?}",
        sum.unreproduced
    );
    let zip = holdfast_unpack::hash::hash_file(&src.join("z.zip"))
        .unwrap()
        .pfile_name();
    assert!(s.site.repo.path("files", &zip).unwrap().is_file());
}

#[test]
fn reunpack_with_db_inserts_no_second_tree_and_missing_gold_is_named() {
    let d = tempfile::tempdir().unwrap();
    let (s, up) = one_tgz_upload(d.path());
    let cfg = UnpackConfig::default();
    let count = |s: &holdfast_sandbox::scratch::ScratchSite| -> i64 {
        s.site
            .connect()
            .unwrap()
            .query_one(
                "SELECT count(*) FROM uploadtree_a WHERE upload_fk = $1",
                &[&up],
            )
            .unwrap()
            .get(0)
    };
    let n = count(&s);
    let sum = unpack_upload(&s.site, up, &cfg, &UnpackOptions::default()).unwrap();
    assert_eq!(sum.rows, 0);
    assert_eq!(count(&s), n);

    // Gold gone (and its copy in files): a clear error naming the upload.
    let name = holdfast_unpack::hash::hash_file(&d.path().join("p.tgz"))
        .unwrap()
        .pfile_name();
    std::fs::remove_file(s.site.repo.path("gold", &name).unwrap()).unwrap();
    std::fs::remove_file(s.site.repo.path("files", &name).unwrap()).unwrap();
    let e = unpack_upload(
        &s.site,
        up,
        &cfg,
        &UnpackOptions {
            repo_only: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains(&format!("upload {up}")), "{e}");
    assert!(matches!(
        e,
        holdfast_unpack::UnpackError::GoldMissing { .. }
    ));
    assert!(matches!(
        unpack_upload(&s.site, 999, &cfg, &UnpackOptions::default()),
        Err(holdfast_unpack::UnpackError::NoUpload(999))
    ));
}

/// Rows FOSSology's ununpack left when it died: it commits a row per file and marks the
/// upload unpacked only at its end (`upload_mode` bit 5, then its `ununpack_ars` row ended
/// and successful). A reunpack replaces rows of an upload no unpack of which ever ended
/// (killed between the end marks included: bit 5 set, its start row not ended) with the
/// whole tree, and keeps the rows of a finished one, of one FOSSology's reunpack page
/// reset (`ars_success` false on an ended row: the analyses refer to those rows), and of an
/// upload marked unpacked whose agent rows were purged.
#[test]
fn reunpack_replaces_rows_of_an_unpack_that_never_finished_and_keeps_finished_ones() {
    let d = tempfile::tempdir().unwrap();
    let (s, up) = one_tgz_upload(d.path());
    let cfg = UnpackConfig::default();
    let mut c = s.site.connect().unwrap();
    let whole = rows(&s, up);
    // What the dead agent left: a stray row (its tree differs from a whole one), upload_mode
    // as given, its start row in ununpack_ars when `started`.
    let mut leave = |bit5: bool, started: bool| {
        c.batch_execute(&format!(
            "DELETE FROM ununpack_ars WHERE upload_fk = {up};
             UPDATE uploadtree_a SET ufile_name = 'half-written' WHERE upload_fk = {up}
                 AND uploadtree_pk = (SELECT max(uploadtree_pk) FROM uploadtree_a WHERE upload_fk = {up});
             UPDATE upload SET upload_mode = upload_mode & ~32 | {} WHERE upload_pk = {up};",
            if bit5 { 32 } else { 0 }
        ))
        .unwrap();
        if started {
            c.execute(
                "INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success)
                 SELECT max(agent_pk), $1, false FROM agent",
                &[&up],
            )
            .unwrap();
        }
    };
    let stray = |s: &holdfast_sandbox::scratch::ScratchSite| {
        rows(s, up).iter().any(|(name, _)| name == "half-written")
    };
    let opts = UnpackOptions::default();
    for (bit5, started) in [(false, true), (true, true), (false, false)] {
        leave(bit5, started);
        assert!(stray(&s));
        let sum = unpack_upload(&s.site, up, &cfg, &opts).unwrap();
        assert_eq!(
            sum.rows as usize,
            whole.len(),
            "bit 5 {bit5}, started {started}"
        );
        assert_eq!(rows(&s, up), whole, "bit 5 {bit5}, started {started}");
        assert!(sum.unreproduced.is_empty(), "{:?}", sum.unreproduced);
        check_shape(&s, up);
    }
    // A finished unpack's rows stay, and so do those of an upload marked unpacked with no
    // agent rows left.
    leave(true, false);
    let sum = unpack_upload(&s.site, up, &cfg, &opts).unwrap();
    assert_eq!(sum.rows, 0);
    assert!(stray(&s));
    let mut c = s.site.connect().unwrap();
    c.execute(
        "INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success)
         SELECT max(agent_pk), $1, true FROM agent",
        &[&up],
    )
    .unwrap();
    c.execute(
        "UPDATE upload SET upload_mode = upload_mode & ~32 WHERE upload_pk = $1",
        &[&up],
    )
    .unwrap();
    let sum = unpack_upload(&s.site, up, &cfg, &opts).unwrap();
    assert_eq!(sum.rows, 0);
    assert!(stray(&s));
    assert_eq!(rows(&s, up).len(), whole.len());
    // The reunpack page's reset: every row unsuccessful, the finished one with its end time.
    c.execute(
        "UPDATE ununpack_ars SET ars_success = false, ars_endtime = now() WHERE upload_fk = $1",
        &[&up],
    )
    .unwrap();
    c.execute(
        "UPDATE upload SET upload_mode = upload_mode | 32 WHERE upload_pk = $1",
        &[&up],
    )
    .unwrap();
    let sum = unpack_upload(&s.site, up, &cfg, &opts).unwrap();
    assert_eq!(sum.rows, 0);
    assert!(stray(&s));
}

/// A scratch site with one upload: `make_tree` as `p.tgz`.
fn one_tgz_upload(dir: &Path) -> (holdfast_sandbox::scratch::ScratchSite, i32) {
    let s = site(dir);
    let src = dir.join("src");
    make_tree(&src.join("p"));
    sh(&src, "tar czf ../p.tgz p");
    let ups = upload_files(
        &s.site,
        &[dir.join("p.tgz")],
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap();
    (s, ups[0].0)
}
