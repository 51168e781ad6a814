//! Slimming a site built by the real unpacker from real nested archives made by real tools
//! (tar, gzip, zip): the report against an independent SQL count, apply against the disk,
//! and the way back: a slimmed container recovered from gold byte for byte.

mod common;

use common::{assert_leaves_readable, disk_bytes, name_of, run, sql_counts};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_site::db;
use holdfast_slim::{apply, site_report, ApplyOptions, Class, KeepReason};
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bytes that do not compress, so containers have real sizes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// a.tar.gz = {src/main.c, src/z.zip = {notes.txt, data.gz = gzip(data.bin)}, README};
/// b.tar = {z.zip, main.c, extra.bin}.
fn archives(dir: &Path) -> (PathBuf, PathBuf) {
    let w = dir.join("w");
    std::fs::create_dir_all(w.join("a/src")).unwrap();
    std::fs::create_dir_all(w.join("b")).unwrap();
    std::fs::write(w.join("data.bin"), noise(1, 40_000)).unwrap();
    std::fs::write(w.join("notes.txt"), b"notes: nothing to see\n".repeat(40)).unwrap();
    run(&w, "gzip", &["-n", "-k", "data.bin"]);
    run(
        &w,
        "zip",
        &["-X", "-q", "z.zip", "notes.txt", "data.bin.gz"],
    );
    let main_c = b"int main(void) { return 0; }\n".repeat(30);
    std::fs::write(w.join("a/src/main.c"), &main_c).unwrap();
    std::fs::write(w.join("a/README"), b"read me\n").unwrap();
    std::fs::copy(w.join("z.zip"), w.join("a/src/z.zip")).unwrap();
    run(&w, "tar", &["czf", "a.tar.gz", "-C", "a", "src", "README"]);
    std::fs::copy(w.join("z.zip"), w.join("b/z.zip")).unwrap();
    std::fs::write(w.join("b/main.c"), &main_c).unwrap();
    std::fs::write(w.join("b/extra.bin"), noise(2, 30_000)).unwrap();
    run(
        &w,
        "tar",
        &["cf", "b.tar", "-C", "b", "z.zip", "main.c", "extra.bin"],
    );
    (w.join("a.tar.gz"), w.join("b.tar"))
}

/// Containers that may go, counted from the database alone: a container somewhere, never a
/// leaf, artifact or gold, with children in every upload that has it.
fn sql_removable(c: &mut postgres::Client) -> BTreeMap<i32, u64> {
    c.query(
        "SELECT p.pfile_pk, p.pfile_size FROM pfile p \
         WHERE EXISTS (SELECT 1 FROM uploadtree t WHERE t.pfile_fk = p.pfile_pk \
                       AND t.ufile_mode & (1<<29) <> 0 AND t.ufile_mode & (1<<18) = 0) \
           AND NOT EXISTS (SELECT 1 FROM uploadtree t WHERE t.pfile_fk = p.pfile_pk \
                       AND t.ufile_mode & (1<<29) = 0) \
           AND NOT EXISTS (SELECT 1 FROM upload u WHERE u.pfile_fk = p.pfile_pk) \
           AND NOT EXISTS (SELECT 1 FROM uploadtree t WHERE t.pfile_fk = p.pfile_pk \
                       AND NOT EXISTS (SELECT 1 FROM uploadtree k WHERE k.parent = t.uploadtree_pk))",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
    .collect()
}

fn pfile_of(c: &mut postgres::Client, upload: i32, name: &str) -> Vec<(i32, i32)> {
    c.query(
        "SELECT pfile_fk, ufile_mode FROM uploadtree WHERE upload_fk = $1 AND ufile_name = $2",
        &[&upload, &name],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
fn real_nested_archives_slim_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let (a, b) = archives(dir.path());
    let repo = s.site.repo.clone();
    let full = UnpackOptions::default();
    let ua = upload_files(&s.site, &[a], &UnpackConfig::default(), &full).unwrap()[0].0;
    // The second upload was made with a shallower limit: its z.zip stayed a plain file.
    let shallow = UnpackConfig {
        max_depth: 1,
        ..Default::default()
    };
    let ub = upload_files(&s.site, &[b], &shallow, &full).unwrap()[0].0;
    let mut c = s.site.connect().unwrap();
    let za = pfile_of(&mut c, ua, "z.zip");
    let zb = pfile_of(&mut c, ub, "z.zip");
    eprintln!("z.zip in a: {za:?}, in b: {zb:?}");
    assert_eq!(za.len(), 1);
    assert_eq!(za[0].0, zb[0].0, "the same pfile in both uploads");
    assert_eq!(Class::of_mode(za[0].1), Some(Class::Container));
    assert_eq!(Class::of_mode(zb[0].1), Some(Class::Leaf));
    let zip = za[0].0;

    let r = site_report(&mut c, &repo, None).unwrap();
    print!("{}", r.render());
    for u in &r.uploads {
        let [l, ar, k] = sql_counts(&mut c, Some(u.upload_pk));
        assert_eq!(
            (u.leaves.files, u.leaves.bytes),
            l,
            "upload {}",
            u.upload_pk
        );
        assert_eq!(
            (u.artifacts.files, u.artifacts.bytes),
            ar,
            "upload {}",
            u.upload_pk
        );
        assert_eq!(
            (u.containers.files, u.containers.bytes),
            k,
            "upload {}",
            u.upload_pk
        );
    }
    let [l, ar, k] = sql_counts(&mut c, None);
    assert_eq!((r.total.leaves.files, r.total.leaves.bytes), l);
    assert_eq!((r.total.artifacts.files, r.total.artifacts.bytes), ar);
    assert_eq!((r.total.containers.files, r.total.containers.bytes), k);
    let removable = sql_removable(&mut c);
    assert_eq!(r.total.removable.files, removable.len() as u64);
    assert_eq!(r.total.removable.bytes, removable.values().sum::<u64>());
    // a.tar and data.bin.gz at least; z.zip is kept because upload b uses it as a leaf.
    assert!(removable.len() >= 2, "{removable:?}");
    assert!(!removable.contains_key(&zip));
    let kept = r
        .kept
        .iter()
        .find(|k| k.pfile_pk == zip)
        .expect("z.zip kept");
    assert_eq!(
        kept.reasons,
        vec![KeepReason::UsedAs {
            upload: ub,
            class: Class::Leaf
        }]
    );

    // Keep the containers' bytes to compare after recovery.
    let names: BTreeMap<i32, String> = c
        .query(
            "SELECT pfile_pk, pfile_sha1, pfile_md5, pfile_size FROM pfile WHERE pfile_pk = ANY($1)",
            &[&removable.keys().copied().collect::<Vec<_>>()],
        )
        .unwrap()
        .iter()
        .map(|row| {
            let n = holdfast_site::pfile::PfileName::new(row.get(1), row.get(2), row.get::<_, i64>(3) as u64);
            (row.get(0), n.to_string())
        })
        .collect();
    let originals: BTreeMap<i32, Vec<u8>> = names
        .iter()
        .map(|(pk, n)| (*pk, std::fs::read(repo.path("files", n).unwrap()).unwrap()))
        .collect();

    let before = disk_bytes(&repo.root);
    let done = apply(&mut c, &repo, &ApplyOptions::default()).unwrap();
    assert_eq!(done.freed_bytes, r.total.removable.bytes);
    assert_eq!(before - disk_bytes(&repo.root), r.total.removable.bytes);
    let leaves = assert_leaves_readable(&mut c, &repo);
    assert!(leaves >= 6, "{leaves}");
    assert!(
        repo.path("files", &kept.name).unwrap().is_file(),
        "z.zip still there"
    );
    for n in names.values() {
        assert!(!repo.path("files", n).unwrap().exists());
    }
    let v = db::verify(&mut c, &repo, None).unwrap();
    assert!(v.missing.is_empty(), "{:?}", v.missing);
    assert_eq!(
        v.slimmed
            .iter()
            .map(|r| r.pfile_pk)
            .collect::<BTreeSet<_>>(),
        removable.keys().copied().collect()
    );

    // check-repo: slimmed, rebuildable; not damage.
    let checks = holdfast_recover::check_repo(&mut c, &repo, None).unwrap();
    assert!(checks.iter().all(|k| k.missing_files == 0));
    assert!(checks[0].is_whole());
    // The second upload's depth limit left z.zip unpacked: incomplete, whatever slim does.
    assert!(
        checks[1]
            .unpack_incomplete
            .as_deref()
            .is_some_and(|s| s.contains("nested deeper than 1")),
        "{:?}",
        checks[1].unpack_incomplete
    );
    assert_eq!(checks[0].slimmed_files, removable.len() as u64);
    assert_eq!(checks[0].slimmed_bytes, r.total.removable.bytes);

    // Recovery on demand brings every slimmed container of upload a back, byte for byte.
    let out = holdfast_recover::recover_upload(&s.site, &UnpackConfig::default(), ua).unwrap();
    eprintln!("recovered: {out:?}");
    for (pk, n) in &names {
        let back = std::fs::read(repo.path("files", n).unwrap())
            .unwrap_or_else(|e| panic!("slimmed pfile {pk} {n} not recovered: {e}"));
        assert_eq!(&back, &originals[pk], "pfile {pk}");
        assert_eq!(name_of(&back).to_string(), *n);
    }
    assert_eq!(disk_bytes(&repo.root), before);
}

#[test]
fn slim_upload_stores_no_container_and_verifies_as_slimmed() {
    let dir = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&dir.path().join("site"), "UTF8").unwrap();
    let (a, b) = archives(dir.path());
    let repo = s.site.repo.clone();
    // b.tar first, in full, with its z.zip as a leaf; then a.tar.gz slim (`upload --slim`).
    let shallow = UnpackConfig {
        max_depth: 1,
        ..Default::default()
    };
    let ub = upload_files(&s.site, &[b], &shallow, &UnpackOptions::default()).unwrap()[0].0;
    let slim = UnpackOptions {
        slim: true,
        ..Default::default()
    };
    let ua = upload_files(&s.site, &[a], &UnpackConfig::default(), &slim).unwrap()[0].0;
    let mut c = s.site.connect().unwrap();
    assert!(assert_leaves_readable(&mut c, &repo) >= 6);
    let zip = pfile_of(&mut c, ua, "z.zip")[0].0;
    assert_eq!(pfile_of(&mut c, ub, "z.zip")[0].0, zip);

    // The unpack never stored a.tar or data.bin.gz: nothing to remove, all to record.
    let r = site_report(&mut c, &repo, None).unwrap();
    let containers = sql_removable(&mut c);
    assert!(containers.len() >= 2, "{containers:?}");
    assert_eq!(r.total.removable.files, 0);
    assert_eq!(r.total.unrecorded.files, containers.len() as u64);
    assert_eq!(r.total.unrecorded.bytes, containers.values().sum::<u64>());
    assert!(r.render().contains("not recorded yet"), "{}", r.render());

    // What `holdfast upload --slim` does after unpacking.
    let recorded = holdfast_slim::record_unstored(&mut c, &repo, &[ua]).unwrap();
    let recorded: BTreeMap<i32, u64> = recorded.iter().map(|s| (s.pfile_pk, s.bytes)).collect();
    assert_eq!(recorded, containers);
    let v = db::verify(&mut c, &repo, None).unwrap();
    assert!(v.missing.is_empty(), "{:?}", v.missing);
    assert_eq!(
        v.slimmed
            .iter()
            .map(|r| r.pfile_pk)
            .collect::<BTreeSet<_>>(),
        containers.keys().copied().collect()
    );
    // z.zip, a leaf of upload b, is there and was not recorded.
    assert!(!recorded.contains_key(&zip));
    let checks = holdfast_recover::check_repo(&mut c, &repo, Some(ua)).unwrap();
    assert_eq!(checks[0].missing_files, 0);
    assert_eq!(checks[0].slimmed_files, containers.len() as u64);
    assert!(checks[0].is_whole());

    // Recovery brings them back, each with the content its name (from the database) says.
    holdfast_recover::recover_upload(&s.site, &UnpackConfig::default(), ua).unwrap();
    for pk in containers.keys() {
        let r = v.slimmed.iter().find(|r| r.pfile_pk == *pk).unwrap();
        let back = std::fs::read(repo.path("files", &r.name).unwrap()).unwrap();
        assert_eq!(name_of(&back).to_string(), r.name);
    }
}
