//! Fetching files back from a backup server over ssh: the list rsync reads is on the server
//! (a list forwarded from here slows with the square of its length), a long list goes in
//! parts at once, and a file's names stay one file.

mod common;

use common::target;
use holdfast_store::target::FilesFrom;
use holdfast_testkit::sshd::Sshd;
use std::os::unix::fs::MetadataExt;

#[test]
fn a_long_list_comes_back_whole_in_parts_its_twins_linked() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let root = dir.path().join("store");
    let tree = root.join("day/repository");
    // 4,500 content-named files; every third has a `files` twin (a hard link).
    let mut paths = Vec::new();
    for i in 0..4_500u32 {
        let name = format!("{i:040x}.{i:032x}.{}", i % 97);
        let gold = format!("h/gold/{:02x}/{name}", i % 64);
        std::fs::create_dir_all(tree.join(&gold).parent().unwrap()).unwrap();
        std::fs::write(tree.join(&gold), "x".repeat((i % 97) as usize)).unwrap();
        paths.push(gold.clone());
        if i % 3 == 0 {
            let files = format!("h/files/{:02x}/{name}", i % 64);
            std::fs::create_dir_all(tree.join(&files).parent().unwrap()).unwrap();
            std::fs::hard_link(tree.join(&gold), tree.join(&files)).unwrap();
            paths.push(files);
        }
    }
    let t = target(&sshd, &root);

    // The list is on the server while it is needed, and gone after.
    let lists = || {
        std::fs::read_dir(&root)
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".holdfast-list.")
            })
            .count()
    };
    {
        let list = t.files_from(&paths[..3]).unwrap();
        let FilesFrom::There { path, .. } = &list else {
            panic!("a remote target's list is kept here")
        };
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            paths[..3].join("\n") + "\n"
        );
        assert_eq!(list.arg(), format!("--files-from=:{path}"));
    }
    assert_eq!(lists(), 0);

    let dest = dir.path().join("back");
    let args: Vec<String> = ["-rlpgoD", "-H", "--numeric-ids", "--stats"]
        .map(String::from)
        .to_vec();
    let stats = t
        .fetch_listed("day/repository", &paths, &args, &dest, "test fetch")
        .unwrap();
    assert_eq!(stats.files, paths.len() as u64);
    assert_eq!(lists(), 0);
    for p in &paths {
        assert_eq!(
            std::fs::read(dest.join(p)).unwrap(),
            std::fs::read(tree.join(p)).unwrap(),
            "{p}"
        );
        if let Some(gold) = p.strip_prefix("h/files/") {
            let gold = dest.join("h/gold").join(gold);
            assert_eq!(
                std::fs::metadata(dest.join(p)).unwrap().ino(),
                std::fs::metadata(gold).unwrap().ino(),
                "{p} and its gold file are one file"
            );
        }
    }
}
