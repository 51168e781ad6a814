//! Archives made by the real tools, unpacked by holdfast, compared with what an independent
//! extractor gets from the same archive, with the database shape checked.

mod common;
use common::*;
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};

#[test]
fn tar_gz_upload_matches_bsdtar_and_has_fossology_shape() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let src = d.path().join("src");
    make_tree(&src.join("proj"));
    sh(&src, "tar czf ../proj.tar.gz proj");
    let gz = d.path().join("proj.tar.gz");
    let res = upload_files(
        &s.site,
        std::slice::from_ref(&gz),
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap();
    let (up, sum) = &res[0];
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    assert_eq!(
        db_leaves(&s, *up),
        independent_leaves(&gz, &d.path().join("x"), &[])
    );
    check_shape(&s, *up);
    let r = rows(&s, *up);
    let names: Vec<&str> = r.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        &names[..5],
        [
            "proj.tar.gz",
            "artifact.dir",
            "proj.tar",
            "artifact.dir",
            "proj"
        ]
    );
    // gold is in `gold` and hard-linked into `files`.
    let name = holdfast_unpack::hash::hash_file(&gz).unwrap().pfile_name();
    use std::os::unix::fs::MetadataExt;
    let g = std::fs::metadata(s.site.repo.path("gold", &name).unwrap()).unwrap();
    let f = std::fs::metadata(s.site.repo.path("files", &name).unwrap()).unwrap();
    assert_eq!((g.ino(), g.dev()), (f.ino(), f.dev()));
}
