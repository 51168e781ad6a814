//! A listed tree restored from a backup server as tar streams (a real sshd and the server's
//! GNU tar): every byte, a file's names one file again, content-named files proved as they
//! are written, the store's modes without set-user-id, folders made by the caller's maker,
//! and what the server lacks or holds as something else reported, not made. A server
//! without GNU tar is told apart, for rsync to serve.

mod common;

use common::target;
use holdfast_store::proof::{hash_reader, pfile_of};
use holdfast_store::stream::Wanted;
use holdfast_testkit::sshd::{tool_first, Sshd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A content-named file holding `data` at `rel` under `tree`; returns its path.
fn named(tree: &Path, dir: &str, data: &[u8]) -> String {
    let (sha1, md5, size) = hash_reader(data).unwrap();
    let rel = format!("{dir}/{}/{sha1}.{md5}.{size}", &sha1[..2]);
    std::fs::create_dir_all(tree.join(&rel).parent().unwrap()).unwrap();
    std::fs::write(tree.join(&rel), data).unwrap();
    rel
}

#[test]
fn a_listed_tree_streams_back_whole_proved_linked_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let root = dir.path().join("store");
    let tree = root.join("day/repository");
    // 4,500 files, every third with a `files` twin (a hard link), spread over four streams.
    let mut paths = Vec::new();
    for i in 0..4_500u32 {
        let gold = named(
            &tree,
            "h/gold",
            format!("file {i} ").repeat(1 + i as usize % 50).as_bytes(),
        );
        std::fs::set_permissions(tree.join(&gold), std::fs::Permissions::from_mode(0o640)).unwrap();
        paths.push(gold.clone());
        if i % 3 == 0 {
            let twin = gold.replacen("h/gold/", "h/files/", 1);
            std::fs::create_dir_all(tree.join(&twin).parent().unwrap()).unwrap();
            std::fs::hard_link(tree.join(&gold), tree.join(&twin)).unwrap();
            paths.push(twin);
        }
    }
    // Not content-named, set-user-id on the store; a rotten copy; one the store lost; a link
    // where a file was.
    std::fs::write(tree.join("h/report"), b"a report").unwrap();
    std::fs::set_permissions(
        tree.join("h/report"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    paths.push("h/report".into());
    let rotten = named(&tree, "h/gold", b"rotten later");
    std::fs::write(tree.join(&rotten), b"Rotten later").unwrap();
    let lost = named(&tree, "h/gold", b"lost later");
    std::fs::remove_file(tree.join(&lost)).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"not the site's").unwrap();
    let linked = named(&tree, "h/gold", b"a link later");
    std::fs::remove_file(tree.join(&linked)).unwrap();
    std::os::unix::fs::symlink(&secret, tree.join(&linked)).unwrap();
    paths.extend([rotten.clone(), lost.clone(), linked.clone()]);

    let t = target(&sshd, &root);
    assert!(t.can_stream(), "Debian's tar is GNU tar");
    let dest = dir.path().join("back");
    std::fs::create_dir(&dest).unwrap();
    let made = AtomicU64::new(0);
    let make_dir = |p: &Path| {
        std::fs::DirBuilder::new().create(p)?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o2770))?;
        made.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    };
    let wanted: Vec<Wanted> = paths.iter().map(|p| Wanted::same(p)).collect();
    let done = t
        .stream_listed(
            "day/repository",
            &wanted,
            &dest,
            &make_dir,
            &pfile_of,
            "test restore",
        )
        .unwrap();

    let bad: Vec<&str> = done.bad.iter().map(|(p, _)| p.as_str()).collect();
    let mut want = vec![lost.as_str(), linked.as_str(), rotten.as_str()];
    want.sort();
    assert_eq!(bad, want, "{:?}", done.bad);
    let why = |p: &str| &done.bad.iter().find(|(b, _)| b == p).unwrap().1;
    assert!(
        why(&lost).contains("missing from the snapshot"),
        "{}",
        why(&lost)
    );
    assert!(
        why(&linked).contains("not a regular file"),
        "{}",
        why(&linked)
    );
    assert!(
        std::fs::symlink_metadata(dest.join(&linked)).is_err(),
        "no link made"
    );
    assert!(!dest.join(&lost).exists());
    assert_eq!(std::fs::read(&secret).unwrap(), b"not the site's");

    let twins = paths.iter().filter(|p| p.starts_with("h/files/")).count() as u64;
    assert_eq!(done.linked, twins);
    assert_eq!(done.files, paths.len() as u64 - twins - 2);
    // Every content-named name but the three bad ones, twins included.
    assert_eq!(done.proved, paths.len() as u64 - 1 - 3);
    for p in paths.iter().filter(|p| !want.contains(&p.as_str())) {
        assert_eq!(
            std::fs::read(dest.join(p)).unwrap(),
            std::fs::read(tree.join(p)).unwrap(),
            "{p}"
        );
        if let Some(rest) = p.strip_prefix("h/files/") {
            assert_eq!(
                std::fs::metadata(dest.join(p)).unwrap().ino(),
                std::fs::metadata(dest.join("h/gold").join(rest))
                    .unwrap()
                    .ino(),
                "{p} and its gold file are one file"
            );
        }
    }
    let mode = |p: &str| std::fs::metadata(dest.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode(&paths[0]), 0o640);
    assert_eq!(mode("h/report"), 0o755, "never set-user-id");
    // The folders came from the maker: h, h/gold, h/files and their hashed folders.
    let dirs = walk_dirs(&dest);
    assert_eq!(made.load(Ordering::Relaxed), dirs.len() as u64);
    for d in &dirs {
        assert_eq!(
            std::fs::metadata(d).unwrap().mode() & 0o7777,
            0o2770,
            "{d:?}"
        );
    }
}

fn walk_dirs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.push(e.path());
                stack.push(e.path());
            }
        }
    }
    out
}

/// A test sshd in `dir` whose `tar` is the shell script `tar`.
fn with_tar(dir: &Path, tar: &str) -> Sshd {
    let path_first = tool_first(&dir.join("bin"), "tar", tar).unwrap();
    Sshd::start_with(&dir.join("sshd"), &path_first).unwrap()
}

/// A server whose `tar` is not GNU tar (BusyBox's, or one too old to read a list verbatim)
/// cannot stream; nor can a local store.
#[test]
fn a_server_without_gnu_tar_cannot_stream() {
    let dir = tempfile::tempdir().unwrap();
    let tar = "echo 'tar: unrecognized option --verbatim-files-from' >&2\nexit 1\n";
    let sshd = with_tar(dir.path(), tar);
    let t = target(&sshd, &dir.path().join("store"));
    assert!(!t.can_stream());
    let local =
        holdfast_store::Target::parse(&dir.path().display().to_string(), Default::default())
            .unwrap();
    assert!(!local.can_stream());
}

/// A stream cut off between two files (a lost connection, a tar killed on the server) fails
/// the restore: the files after the cut are not taken for files the store lacks.
#[test]
fn a_stream_cut_off_between_two_files_is_an_error_not_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    // The first file's header and its 512 bytes, then tar's exit for an error.
    let tar = "/usr/bin/tar \"$@\" | head -c 1024\nexit 2\n";
    let sshd = with_tar(dir.path(), tar);
    let root = dir.path().join("store");
    let tree = root.join("day/repository");
    // One file name in two folders: one stream.
    for (d, byte) in [("a", 1u8), ("b", 2u8)] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
        std::fs::write(tree.join(d).join("x"), [byte; 512]).unwrap();
    }
    let t = target(&sshd, &root);
    let dest = dir.path().join("back");
    std::fs::create_dir(&dest).unwrap();
    let make_dir = |p: &Path| std::fs::create_dir(p).map(|_| true);
    let err = t
        .stream_listed(
            "day/repository",
            &[Wanted::same("a/x"), Wanted::same("b/x")],
            &dest,
            &make_dir,
            &pfile_of,
            "test restore",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("tar of test restore"), "{err}");
    assert_eq!(std::fs::read(dest.join("a/x")).unwrap(), [1u8; 512]);
    assert!(!dest.join("b/x").exists());
}
