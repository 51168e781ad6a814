//! `recover` and `check-repo` on the rows FOSSology's own agents wrote (the golden set in
//! `../shared/fossology-golden`): with `files` gone and gold kept, recovering rebuilds every
//! file the rows name except the `artifact.meta` files whose text names a path, and each of
//! those is reported with exactly that reason.

use holdfast_recover::{check_repo, recover_upload, MissingReason};
use holdfast_testkit::golden;
use holdfast_unpack::UnpackConfig;

#[test]
fn recover_rebuilds_fossologys_uploads_and_names_what_cannot_come_back() {
    let d = tempfile::tempdir().unwrap();
    let s = holdfast_sandbox::scratch::ScratchSite::create(&d.path().join("site"), "UTF8").unwrap();
    let mut c = s.site.connect().unwrap();
    for t in golden::REUNPACK_TABLES {
        golden::load(&mut c, t, &golden::expected(t));
    }
    golden::put_gold(&s.site);

    // Before: the one meta file that names FOSSology's temporary folder is not counted as
    // damage; check-repo says why it cannot come back.
    let before = check_repo(&mut c, &s.site.repo, None).unwrap();
    let never: Vec<(i32, String)> = before
        .iter()
        .flat_map(|u| {
            u.not_reproducible
                .iter()
                .map(move |n| (u.upload_pk, n.why.clone()))
        })
        .collect();
    assert_eq!(never.len(), 1, "{never:#?}");
    assert_eq!(
        never[0].0, 9,
        "nested.tar.gz holds the zip whose meta names the folder"
    );
    assert!(
        never[0].1.contains("temporary unpack folder"),
        "{}",
        never[0].1
    );

    let cfg = UnpackConfig::default();
    let mut left = Vec::new();
    for u in golden::expected("upload") {
        let up: i32 = u["upload_pk"].parse().unwrap();
        let out = recover_upload(&s.site, &cfg, up).unwrap();
        for m in out.missing {
            left.push((up, m));
        }
    }
    // What stays missing: the meta files of the zip, jar and zstd uploads (they name the
    // repository path of FOSSology's run, elsewhere) and of the nested zip (a random
    // temporary folder), each not rebuildable for that reason and not data lost.
    let ups: Vec<i32> = left.iter().map(|(u, _)| *u).collect();
    assert_eq!(ups, vec![7, 8, 9, 14], "{left:#?}");
    for (up, m) in &left {
        match &m.reason {
            MissingReason::NotReproducible { artifact, why } => {
                assert!(artifact.ends_with("artifact.meta"), "{artifact}");
                let want = if *up == 9 {
                    "temporary unpack folder"
                } else {
                    "repository"
                };
                assert!(why.contains(want), "upload {up}: {why}");
                assert!(!m.reason.is_loss());
            }
            r => panic!(
                "upload {up}: {} is missing for another reason: {r:?}",
                m.name
            ),
        }
    }
    // After: check-repo has nothing else missing.
    let after = check_repo(&mut c, &s.site.repo, None).unwrap();
    let missing: Vec<(i32, u64)> = after
        .iter()
        .filter(|u| u.missing_files > 0)
        .map(|u| (u.upload_pk, u.missing_files))
        .collect();
    assert_eq!(missing, vec![(7, 1), (8, 1), (14, 1)]);
}
