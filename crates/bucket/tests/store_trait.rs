//! The bucket behind holdfast's one target interface (`holdfast_store::Store`), driven the
//! way a copy job drives any store: plan, send what is missing, list, dump, prove, commit;
//! then list, prove, fetch and stream the dump back for a restore.

mod common;

use common::*;
use holdfast_bucket::BucketStore;
use holdfast_core::progress::{Progress, Unit};
use holdfast_store::layout::{Layout, LayoutKind};
use holdfast_store::proof::Proof;
use holdfast_store::store::{Files, Place, Source};
use holdfast_store::Store;
use std::io::Read;

fn pool(keep: usize) -> Layout {
    Layout {
        kind: LayoutKind::Pool,
        keep,
        full_every: 1,
        day_trees: Default::default(),
    }
}

#[test]
fn a_copy_through_the_store_trait_lands_whole_and_comes_back() {
    let w = world();
    let s: Box<dyn Store> = Box::new(BucketStore::open(&w.cfg).unwrap());
    s.check().unwrap();
    assert!(s
        .plan(&Layout {
            kind: LayoutKind::Rolling,
            keep: 2,
            full_every: 1,
            day_trees: Default::default(),
        })
        .is_err());
    let files = contents(20, 12, 2500);
    let snap = snapshot(&w.primary_dir(), day(1), &files);
    let list = holdfast_store::pool::read_list(&w.primary(), &snap.name).unwrap();
    let root = w.primary_dir().join("pool/repository");
    let src = Source {
        root: &root,
        dirs: &[],
        rsync_args: &[],
    };
    let plan = s.plan(&pool(2)).unwrap();
    assert!(plan.lists_files && plan.previous.is_none());
    assert_eq!(s.missing(&plan, &list).unwrap(), list);
    let st = s
        .send_repository(&plan, &src, Files::Only(&list[..5]))
        .unwrap();
    assert_eq!(st.transferred_files, 5);
    assert_eq!(s.missing(&plan, &list).unwrap(), list[5..].to_vec());
    let st = s
        .send_repository(&plan, &src, Files::All { list: Some(&list) })
        .unwrap();
    assert_eq!(st.transferred_files, 7, "only what the bucket lacked");
    s.write_file_list(&plan, &list).unwrap();
    assert_eq!(s.pending_files(&plan).unwrap(), list);
    let mut up = s.create_dump(&plan, "db/fossology.sql.gz").unwrap();
    let dump = std::fs::read(w.primary_dir().join(&snap.name).join("db/fossology.sql.gz")).unwrap();
    std::io::Write::write_all(&mut up, &dump).unwrap();
    up.finish().unwrap();
    let progress = Progress::new("prove", 0, Unit::Bytes);
    let proofs = s.prove(Place::Pending(&plan), &list, &progress).unwrap();
    assert!(
        proofs.iter().all(|p| matches!(p, Proof::Good(_))),
        "{proofs:?}"
    );
    assert!(
        s.snapshots().unwrap().is_empty(),
        "nothing listed before the commit"
    );
    let name = s.commit(&plan, &mut snap.manifest.clone()).unwrap();
    assert_eq!(name, snap.name);
    let listed = s.snapshots().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(s.snapshot_files(&listed[0]).unwrap(), list);
    assert!(
        s.read(".partial/files.list.gz").unwrap().is_none(),
        "the pending folder is emptied"
    );

    // Back: the dump streams, the files are fetched, damage is proved.
    let mut got = Vec::new();
    s.open(&format!("{name}/db/fossology.sql.gz"))
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(got == dump);
    let dest = w.dir.path().join("restored");
    let st = s.fetch_files(&listed[0], &list, &dest).unwrap();
    assert_eq!(st.transferred_files, 12);
    for d in &files {
        assert!(std::fs::read(dest.join(repo_rel(d))).unwrap() == *d);
    }
    let p = w.object_file(&repo_rel(&files[3]));
    let mut data = std::fs::read(&p).unwrap();
    data[0] ^= 1;
    std::fs::write(&p, data).unwrap();
    let proofs = s
        .prove(Place::Snapshot(&listed[0]), &list, &progress)
        .unwrap();
    let bad: Vec<&String> = list
        .iter()
        .zip(&proofs)
        .filter(|(_, p)| matches!(p, Proof::Bad(_)))
        .map(|(l, _)| l)
        .collect();
    assert_eq!(bad, vec![&repo_rel(&files[3])]);

    // The next snapshot builds on this one; retention keeps two.
    for n in 2..=3 {
        let more = contents(20 + n as u64, 3, 900);
        let snap = snapshot(&w.primary_dir(), day(n), &more);
        let list = holdfast_store::pool::read_list(&w.primary(), &snap.name).unwrap();
        let plan = s.plan(&pool(2)).unwrap();
        assert!(plan.previous.is_some());
        s.write_file_list(&plan, &list).unwrap();
        s.send_repository(&plan, &src, Files::Only(&list)).unwrap();
        s.send_dump(
            &plan,
            &w.primary_dir().join(&snap.name).join("db/fossology.sql.gz"),
            "db/fossology.sql.gz",
        )
        .unwrap();
        s.commit(&plan, &mut snap.manifest.clone()).unwrap();
    }
    let names: Vec<String> = s.snapshots().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names.len(), 2);
    assert!(!names.contains(&name));
    assert!(!w.object_file(&repo_rel(&files[0])).exists(), "collected");
}

/// A download cut off (the S3 server gone mid-object) is an error to the reader, never an
/// early end: a restore must not load a truncated dump, nor verify call a good one damaged.
#[test]
fn a_read_cut_off_is_an_error_not_a_short_object() {
    let World { dir, server, cfg } = world();
    let s = BucketStore::open(&cfg).unwrap();
    let data: Vec<u8> = (0..64u32 << 20)
        .map(|i| i.wrapping_mul(2_654_435_761) as u8)
        .collect();
    s.write_atomic("db/big.sql.gz", &data).unwrap();
    let mut r = s.open("db/big.sql.gz").unwrap();
    let mut first = vec![0u8; 1 << 20];
    r.read_exact(&mut first).unwrap();
    assert_eq!(first, data[..1 << 20]);
    drop(server);
    let mut rest = Vec::new();
    let got = r.read_to_end(&mut rest);
    assert!(
        got.is_err(),
        "read {} of {} bytes and then a clean end",
        (1 << 20) + rest.len(),
        data.len()
    );
    drop(dir);
}

/// Files not named by their content (reports, logs) come back from the bucket as the snapshot
/// holds them, replacing what the site has under their name, and two of them whose names
/// differ only by an extension download side by side without mixing.
#[test]
fn reports_come_back_as_the_snapshot_holds_them() {
    let w = world();
    let s = BucketStore::open(&w.cfg).unwrap();
    let root = w.primary_dir().join("pool/repository");
    let report = |n: usize, tag: u8| -> Vec<u8> {
        (0..3u32 << 20).map(|i| (i as u8) ^ tag ^ n as u8).collect()
    };
    let list: Vec<String> = vec!["localhost/report/x".into(), "localhost/report/x.pdf".into()];
    for (n, rel) in list.iter().enumerate() {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, report(n, 0)).unwrap();
    }
    let snap = snapshot(&w.primary_dir(), day(1), &contents(5, 1, 100));
    let src = Source {
        root: &root,
        dirs: &[],
        rsync_args: &[],
    };
    let plan = s.plan(&pool(2)).unwrap();
    s.write_file_list(&plan, &list).unwrap();
    s.send_repository(&plan, &src, Files::Only(&list)).unwrap();
    s.send_dump(
        &plan,
        &w.primary_dir().join(&snap.name).join("db/fossology.sql.gz"),
        "db/fossology.sql.gz",
    )
    .unwrap();
    s.commit(&plan, &mut snap.manifest.clone()).unwrap();
    let listed = s.snapshots().unwrap();

    let dest = w.dir.path().join("site");
    for round in 0..5 {
        // The site's own copy: another report under the same name.
        let mine = dest.join(&list[0]);
        std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
        std::fs::write(&mine, b"the live site's newer report").unwrap();
        s.fetch_files(&listed[0], &list, &dest)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        for (n, rel) in list.iter().enumerate() {
            assert!(
                std::fs::read(dest.join(rel)).unwrap() == report(n, 0),
                "round {round}: {rel} is not the snapshot's"
            );
        }
    }
}

/// A dump bigger than one server-side copy may move (S3: 5 GiB; 0 MiB here) still lands in
/// its snapshot: read back and sent again in parts at the commit.
#[test]
fn a_dump_beyond_one_server_copy_lands_whole() {
    let mut w = world();
    w.cfg.copy_max_mib = 0;
    let s = BucketStore::open(&w.cfg).unwrap();
    let snap = snapshot(&w.primary_dir(), day(1), &contents(7, 2, 300));
    let list = holdfast_store::pool::read_list(&w.primary(), &snap.name).unwrap();
    let root = w.primary_dir().join("pool/repository");
    let src = Source {
        root: &root,
        dirs: &[],
        rsync_args: &[],
    };
    let plan = s.plan(&pool(2)).unwrap();
    s.write_file_list(&plan, &list).unwrap();
    s.send_repository(&plan, &src, Files::Only(&list)).unwrap();
    let dump: Vec<u8> = (0..12u32 << 20)
        .map(|i| i.wrapping_mul(2_246_822_519).rotate_left(7) as u8)
        .collect();
    let local = w.dir.path().join("big.sql.gz");
    std::fs::write(&local, &dump).unwrap();
    s.send_dump(&plan, &local, "db/fossology.sql.gz").unwrap();
    let name = s.commit(&plan, &mut snap.manifest.clone()).unwrap();
    let mut got = Vec::new();
    s.open(&format!("{name}/db/fossology.sql.gz"))
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(got == dump, "{} bytes back of {}", got.len(), dump.len());
    assert_eq!(s.snapshot_files(&s.snapshots().unwrap()[0]).unwrap(), list);
}

/// Writes a report (a file not named by its content) at `rel` under `root`.
fn write_report(root: &std::path::Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
}

/// One run into the bucket as a copy drives it, from the repository at `root`: plan (keeping
/// `keep`), the list, `files`, `snap`'s dump, the commit. Returns how many files were sent.
fn run_once(
    s: &BucketStore,
    w: &World,
    root: &std::path::Path,
    snap: &holdfast_store::Snapshot,
    keep: usize,
    list: &[String],
    files: impl Fn(&[String]) -> Files<'_>,
) -> u64 {
    let plan = s.plan(&pool(keep)).unwrap();
    s.write_file_list(&plan, list).unwrap();
    let src = Source {
        root,
        dirs: &[],
        rsync_args: &[],
    };
    let st = s.send_repository(&plan, &src, files(list)).unwrap();
    s.send_dump(
        &plan,
        &w.primary_dir().join(&snap.name).join("db/fossology.sql.gz"),
        "db/fossology.sql.gz",
    )
    .unwrap();
    s.commit(&plan, &mut snap.manifest.clone()).unwrap();
    st.transferred_files
}

/// A report whose name object_store keeps percent-encoded in listings (non-ASCII, brackets)
/// is collected once no kept snapshot names it, and not sent again while one does.
#[test]
fn an_encoded_name_is_collected_and_not_resent() {
    let w = world();
    let s = BucketStore::open(&w.cfg).unwrap();
    let root = w.primary_dir().join("pool/repository");
    let odd = "localhost/report/Müller [1].txt".to_string();
    write_report(&root, &odd, b"a report named by its upload");
    let stored = || -> Vec<String> {
        walkdir::WalkDir::new(w.server.object_path("site-a/pool"))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("ller"))
            .collect()
    };
    let copy = |n: i64, list: Vec<String>| {
        let snap = snapshot(&w.primary_dir(), day(n), &contents(40 + n as u64, 1, 200));
        let mut list = list;
        list.extend(holdfast_store::pool::read_list(&w.primary(), &snap.name).unwrap());
        run_once(&s, &w, &root, &snap, 1, &list, |l| Files::All {
            list: Some(l),
        })
    };
    assert_eq!(copy(1, vec![odd.clone()]), 2);
    assert_eq!(stored().len(), 1);
    assert_eq!(copy(2, vec![odd.clone()]), 1, "the report was sent again");
    copy(3, vec![]);
    assert!(stored().is_empty(), "{:?} left in the bucket", stored());
}

/// A copy names every file not named by content among what it sends: one the bucket holds at
/// the same size (a report that did not change) is not sent again.
#[test]
fn a_copy_sends_a_report_again_only_when_its_size_changed() {
    let w = world();
    let s = BucketStore::open(&w.cfg).unwrap();
    let root = w.primary_dir().join("pool/repository");
    let report = "localhost/report/upload-7.spdx".to_string();
    write_report(&root, &report, b"SPDXVersion: SPDX-2.3");
    let copy = |n: i64| {
        let snap = snapshot(&w.primary_dir(), day(n), &contents(60 + n as u64, 1, 300));
        run_once(
            &s,
            &w,
            &root,
            &snap,
            2,
            std::slice::from_ref(&report),
            |l| Files::Only(l),
        )
    };
    assert_eq!(copy(1), 1);
    assert_eq!(copy(2), 0, "the unchanged report was sent again");
    write_report(
        &root,
        &report,
        b"SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0",
    );
    assert_eq!(copy(3), 1, "the changed report was not sent");
}
