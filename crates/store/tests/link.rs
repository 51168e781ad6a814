//! The rolling layout's new day on a backup server over ssh: a big day is linked by several
//! scripts at once (perl's children, or `cp`), on a real sshd, and comes out as one would
//! make it.

mod common;

use common::target;
use holdfast_store::link::link_tree;
use holdfast_testkit::sshd::Sshd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn a_big_day_is_linked_in_parts_whole_with_the_folders_modes() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let root = dir.path().join("store");
    let prev = root.join("day1/repository");
    // 3,000 files in 300 folders, and 40 its list names that the tree lacks (lost on the
    // server): those are sent instead.
    let mut paths = Vec::new();
    for i in 0..3_000u32 {
        let p = format!("h/files/{:02x}/{:02x}/f{i}", i % 30, i % 10);
        let at = prev.join(&p);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(&at, i.to_string()).unwrap();
        paths.push(p);
    }
    let new: Vec<String> = (0..40)
        .map(|i| format!("h/files/0{}/0{}/gone{i}", i % 3, i % 3))
        .collect();
    paths.extend(new.iter().cloned());
    paths.sort();
    std::fs::set_permissions(
        prev.join("h/files/07"),
        std::fs::Permissions::from_mode(0o2750),
    )
    .unwrap();
    let t = target(&sshd, &root);
    // A fresh day: every part makes folders others make too.
    for to in ["day2/repository", "day3/repository"] {
        let (linked, mut lacking) = link_tree(&t, "day1/repository", to, &paths).unwrap();
        lacking.sort();
        let mut want = new.clone();
        want.sort();
        assert_eq!(lacking, want);
        assert_eq!(linked, 3_000);
        for p in paths.iter().filter(|p| !p.contains("/gone")) {
            let (a, b) = (prev.join(p), root.join(to).join(p));
            assert_eq!(
                std::fs::metadata(&a).unwrap().ino(),
                std::fs::metadata(&b).unwrap().ino(),
                "{p} not linked"
            );
        }
        let mode = std::fs::metadata(root.join(to).join("h/files/07"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o2750, "the folder's mode");
    }
    // Again onto a day that has most of it (a recycled spare day): nothing twice, nothing lost.
    let (_, lacking) = link_tree(&t, "day1/repository", "day2/repository", &paths).unwrap();
    assert_eq!(lacking.len(), new.len());
    // A whole folder gone from the previous day (a damaged store) is an error naming it.
    std::fs::remove_dir_all(prev.join("h/files/1d")).unwrap();
    let err = link_tree(&t, "day1/repository", "day4/repository", &paths).unwrap_err();
    assert!(err.to_string().contains("h/files/1d"), "{err}");
    t.close();
}
