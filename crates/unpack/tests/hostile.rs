//! Hostile archives: bombs, traversal, links pointing outside, device files, truncation,
//! absurd nesting. Each bad member is recorded, the rest unpacks, nothing lands outside the
//! repository and the temporary folder is cleaned up.

mod common;
use common::*;
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::path::Path;

fn up(
    s: &holdfast_site::scratch::ScratchSite,
    f: &Path,
    cfg: &UnpackConfig,
) -> (i32, holdfast_unpack::UnpackSummary) {
    upload_files(
        &s.site,
        std::slice::from_ref(&f.to_path_buf()),
        cfg,
        &UnpackOptions::default(),
    )
    .unwrap()
    .remove(0)
}

fn names(s: &holdfast_site::scratch::ScratchSite, upload: i32) -> Vec<String> {
    rows(s, upload).into_iter().map(|r| r.0).collect()
}

fn temp_empty(s: &holdfast_site::scratch::ScratchSite) {
    let tmp = holdfast_unpack::engine::temp_root(&s.site.repo, &UnpackConfig::default());
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "temporary folder left behind"
    );
}

#[test]
fn bomb_member_is_skipped_and_the_rest_unpacks() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    // A tiny member that inflates to 200 MB (bzip2 of zeros: a ratio of a million).
    sh(
        &w,
        "head -c 200000000 /dev/zero | bzip2 -9 > zeros.bz2 && echo fine > ok.txt \
         && tar czf ../bomb.tar.gz zeros.bz2 ok.txt",
    );
    let (id, sum) = up(&s, &d.path().join("bomb.tar.gz"), &UnpackConfig::default());
    assert_eq!(sum.errors.len(), 1, "{:?}", sum.errors);
    assert!(
        sum.errors[0].contains("zeros.bz2") && sum.errors[0].contains("bomb"),
        "{:?}",
        sum.errors
    );
    assert!(names(&s, id).contains(&"ok.txt".to_string()));
    assert!(sum.bytes < 50_000_000);
    check_shape(&s, id);
    temp_empty(&s);

    // The total limit holds too.
    let cfg = UnpackConfig {
        max_expanded_bytes: 1000,
        ..Default::default()
    };
    make_tree(&w.join("p"));
    sh(&w, "tar cf ../big.tar p");
    let (_, sum) = up(&s, &d.path().join("big.tar"), &cfg);
    assert!(
        sum.errors.iter().any(|e| e.contains("expands beyond")),
        "{:?}",
        sum.errors
    );
    temp_empty(&s);
}

#[test]
fn traversal_links_and_devices_stay_inside() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    let script = r#"
import tarfile, io
t = tarfile.open('evil.tar', 'w', format=tarfile.GNU_FORMAT)
def add(name, data=b'x', **kw):
    i = tarfile.TarInfo(name); i.size = len(data)
    for k, v in kw.items(): setattr(i, k, v)
    t.addfile(i, io.BytesIO(data) if i.type in (tarfile.REGTYPE,) else None)
add('../../evil.txt', b'escape')
add('/tmp/holdfast-abs-evil', b'absolute')
add('ok.txt', b'fine\n')
add('esc', type=tarfile.SYMTYPE, linkname='/etc/passwd', size=0)
add('up', type=tarfile.SYMTYPE, linkname='../../..', size=0)
add('up/through-link.txt', b'via symlink')
add('hl', type=tarfile.LNKTYPE, linkname='/etc/passwd', size=0)
add('hl2', type=tarfile.LNKTYPE, linkname='ok.txt', size=0)
add('dev0', type=tarfile.CHRTYPE, devmajor=1, devminor=3, size=0)
add('fifo', type=tarfile.FIFOTYPE, size=0)
t.close()
"#;
    std::fs::write(w.join("mk.py"), script).unwrap();
    run(&w, "python3", &["mk.py"]);
    let (id, sum) = up(&s, &w.join("evil.tar"), &UnpackConfig::default());
    let errs = sum.errors.join("\n");
    assert!(
        errs.contains("../../evil.txt") && errs.contains("(..)"),
        "{errs}"
    );
    assert!(
        errs.contains("member hl:") && errs.contains("outside"),
        "{errs}"
    );
    assert!(errs.contains("member dev0: device file"), "{errs}");
    assert!(errs.contains("member fifo: named pipe"), "{errs}");
    let n = names(&s, id);
    for want in [
        "ok.txt",
        "hl2",
        "esc",
        "through-link.txt",
        "holdfast-abs-evil",
    ] {
        assert!(n.contains(&want.to_string()), "{want} missing from {n:?}");
    }
    assert!(!n.contains(&"evil.txt".to_string()));
    assert!(!d.path().join("evil.txt").exists() && !Path::new("/evil.txt").exists());
    assert!(!Path::new("/tmp/holdfast-abs-evil").exists());
    // The hard link inside the archive is the same file as its target.
    let mut c = s.site.connect().unwrap();
    let pf: Vec<i32> = c
        .query(
            "SELECT pfile_fk FROM uploadtree_a WHERE upload_fk = $1 AND ufile_name IN ('ok.txt', 'hl2')",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(pf.len(), 2);
    assert_eq!(pf[0], pf[1]);
    check_shape(&s, id);
    temp_empty(&s);
}

#[test]
fn truncated_and_corrupt_archives_keep_what_they_can() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    make_tree(&w.join("p"));
    sh(
        &w,
        "tar cf full.tar p && head -c $(( $(stat -c %s full.tar) - 2000000 )) full.tar > ../cut.tar \
         && zip -qr full.zip p && head -c $(( $(stat -c %s full.zip) - 1000 )) full.zip > ../cut.zip \
         && gzip -c full.tar > full.tar.gz && head -c $(( $(stat -c %s full.tar.gz) / 2 )) full.tar.gz > ../cut.tar.gz",
    );
    for f in ["cut.tar", "cut.zip", "cut.tar.gz"] {
        let (id, sum) = up(&s, &d.path().join(f), &UnpackConfig::default());
        assert!(!sum.errors.is_empty(), "{f}: no error recorded");
        assert!(
            sum.errors.iter().all(|e| e.contains(f)),
            "{f}: {:?}",
            sum.errors
        );
        check_shape(&s, id);
    }
    temp_empty(&s);
}

#[test]
fn absurd_nesting_stops_at_the_depth_limit() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    sh(
        &w,
        "echo core > f0 && for i in 1 2 3 4 5 6 7 8; do gzip -c f$((i-1)) > f$i; rm f$((i-1)); done && mv f8 ../deep.gz",
    );
    let cfg = UnpackConfig {
        max_depth: 4,
        ..Default::default()
    };
    let (id, sum) = up(&s, &d.path().join("deep.gz"), &cfg);
    assert_eq!(sum.errors.len(), 1, "{:?}", sum.errors);
    assert!(sum.errors[0].contains("nested deeper than 4"));
    check_shape(&s, id);
    let containers = rows(&s, id)
        .iter()
        .filter(|r| holdfast_unpack::classify(r.1) == holdfast_unpack::Class::Container)
        .count();
    assert_eq!(containers, 4);
}

/// git's own source tarball carries t/t5000/huge-and-future.tar: 2 KiB that extract to a
/// 64 GiB file. The same made here with GNU tar's sparse format.
#[test]
fn sparse_tar_claiming_64_gib_is_stopped() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    sh(
        &w,
        "truncate -s 64G huge && echo tail >> huge && tar --sparse -czf ../huge.tar.gz huge && rm huge",
    );
    let small = std::fs::metadata(d.path().join("huge.tar.gz"))
        .unwrap()
        .len();
    assert!(small < 100_000, "the bomb is small: {small} bytes");
    let (id, sum) = up(&s, &d.path().join("huge.tar.gz"), &UnpackConfig::default());
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("member huge") && e.contains("expands beyond")),
        "{:?}",
        sum.errors
    );
    assert!(sum.bytes < 100_000_000, "{} bytes expanded", sum.bytes);
    check_shape(&s, id);
    temp_empty(&s);
}

/// A nested bomb (like 42.zip): every level looks harmless alone, the whole expands to
/// 10 GB from a gold file of a few KiB; the upload-wide cap stops it early.
#[test]
fn nested_bomb_is_capped_by_the_upload_budget() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    sh(
        &w,
        "head -c 1000000 /dev/zero | bzip2 -9 > z.bz2 \
         && mkdir a && for i in $(seq 100); do cp z.bz2 a/z$i.bz2; done && tar cjf inner.tar.bz2 a \
         && mkdir b && for i in $(seq 100); do cp inner.tar.bz2 b/i$i.tar.bz2; done && tar cjf ../nest.tar.bz2 b",
    );
    let gold = std::fs::metadata(d.path().join("nest.tar.bz2"))
        .unwrap()
        .len();
    assert!(gold < 20_000, "gold is small: {gold}");
    let t = std::time::Instant::now();
    let (id, sum) = up(&s, &d.path().join("nest.tar.bz2"), &UnpackConfig::default());
    assert!(
        sum.errors.iter().any(|e| e.contains("expands beyond")),
        "{:?}",
        sum.errors
    );
    assert!(sum.bytes < 100_000_000, "{} bytes expanded", sum.bytes);
    assert!(t.elapsed().as_secs() < 60);
    check_shape(&s, id);
    temp_empty(&s);
}
