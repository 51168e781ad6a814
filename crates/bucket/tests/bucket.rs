//! The pool layout in a real S3 bucket (rclone serve s3 on loopback), filled by the copy
//! `holdfast copy` runs: incremental copies, multipart uploads, verify against the names,
//! retention and garbage collection. A copy killed with -9 is in `e2e.rs`.

mod common;

use common::*;
use holdfast_bucket::copy::{collect_garbage, prune, snapshots, SWEEP_DUE};
use holdfast_bucket::{fetch, verify};

#[test]
fn copies_only_what_the_bucket_lacks_in_parts_when_big_and_fetches_back_whole() {
    let w = world();
    let b = w.bucket();
    let mut files = contents(1, 20, 3000);
    // Bigger than the 5 MiB threshold: sent in 3 parts.
    files.push(contents(2, 1, 12 << 20).remove(0));
    let s1 = snapshot(&w.primary_dir(), day(1), &files);
    let r1 = w.copy().unwrap().copied.remove(0);
    assert_eq!((r1.files, r1.new_files, r1.proved), (21, 21, 21));
    let total: u64 = files.iter().map(|f| f.len() as u64).sum();
    assert_eq!(r1.new_bytes, total);

    // The next day: 3 new files, 2 gone from the site.
    let mut day2 = files[2..].to_vec();
    day2.extend(contents(3, 3, 5000));
    let s2 = snapshot(&w.primary_dir(), day(2), &day2);
    let r2 = w.copy().unwrap().copied.remove(0);
    assert_eq!(
        (r2.files, r2.new_files),
        (22, 3),
        "only the new files are sent"
    );
    let new_bytes: u64 = day2[day2.len() - 3..].iter().map(|f| f.len() as u64).sum();
    assert_eq!(r2.new_bytes, new_bytes);
    // Copying again sends nothing.
    assert!(w.copy().unwrap().copied.is_empty());

    let names: Vec<String> = snapshots(&b).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec![s1.name.clone(), s2.name.clone()]);
    for n in &names {
        let v = verify(&b, Some(n)).unwrap();
        assert!(v.is_ok(), "{v:?}");
    }

    // Fetched back, the folder is a pool-layout target holding the snapshot byte for byte.
    let into = w.dir.path().join("fetched");
    let f = fetch(&b, None, &into).unwrap();
    assert_eq!(f.snapshot, s2.name);
    assert!(f.bad.is_empty(), "{:?}", f.bad);
    for data in &day2 {
        let got = std::fs::read(into.join("pool/repository").join(repo_rel(data))).unwrap();
        assert!(got == *data);
    }
    let t = f.target().unwrap();
    let listed = holdfast_store::layout::snapshots(&t).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, s2.name);
    assert_eq!(
        std::fs::read(into.join(&s2.name).join("db/fossology.sql.gz")).unwrap(),
        std::fs::read(w.primary_dir().join(&s2.name).join("db/fossology.sql.gz")).unwrap()
    );
    // A second fetch resumes: nothing to fetch again.
    let again = fetch(&b, None, &into).unwrap();
    assert_eq!(again.fetched_files, 0);
}

#[test]
fn a_flipped_byte_in_a_bucket_object_is_found_by_verify() {
    let w = world();
    let b = w.bucket();
    let files = contents(4, 8, 4000);
    let s = snapshot(&w.primary_dir(), day(1), &files);
    w.copy().unwrap();
    assert!(verify(&b, None).unwrap().is_ok());

    let victim = repo_rel(&files[5]);
    let p = w.object_file(&victim);
    let mut data = std::fs::read(&p).unwrap();
    data[1234] ^= 0x01;
    std::fs::write(&p, &data).unwrap();
    let dump = w
        .server
        .object_path(&format!("site-a/{}/db/fossology.sql.gz", s.name));
    let mut d = std::fs::read(&dump).unwrap();
    d[10] ^= 0x80;
    std::fs::write(&dump, &d).unwrap();
    let gone = repo_rel(&files[1]);
    std::fs::remove_file(w.object_file(&gone)).unwrap();
    w.server.settle();

    let v = verify(&b, None).unwrap();
    assert!(!v.is_ok());
    let bad: Vec<&str> = v.bad.iter().map(|x| x.path.as_str()).collect();
    let mut want = vec![victim.as_str(), gone.as_str()];
    want.sort();
    assert_eq!(bad, want, "{:?}", v.bad);
    assert!(v
        .bad
        .iter()
        .any(|x| x.why.contains("does not match the name")));
    assert!(v.bad.iter().any(|x| x.why.contains("missing")));
    assert!(
        v.dump_problem.as_deref().unwrap_or("").contains("sha256"),
        "{v:?}"
    );
    assert_eq!(v.files, 8);
}

#[test]
fn a_source_file_that_does_not_match_its_name_is_not_copied() {
    let w = world();
    let b = w.bucket();
    let files = contents(5, 4, 2000);
    let s = snapshot(&w.primary_dir(), day(1), &files);
    let p = w
        .primary_dir()
        .join("pool/repository")
        .join(repo_rel(&files[2]));
    let mut data = std::fs::read(&p).unwrap();
    data[7] ^= 0x10;
    std::fs::write(&p, &data).unwrap();
    let r = w.copy().unwrap().copied.remove(0);
    assert_eq!(r.damaged, [repo_rel(&files[2])]);
    assert!(!w.object_file(&repo_rel(&files[2])).exists());
    // Listed without it, the manifest naming it damaged: what arrived verifies.
    let listed = snapshots(&b).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, s.name);
    assert_eq!(listed[0].manifest.repository.damaged, [repo_rel(&files[2])]);
    let v = verify(&b, None).unwrap();
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(v.files, 3);
}

#[test]
fn retention_and_gc_keep_every_object_a_kept_snapshot_lists() {
    let mut w = world();
    w.cfg.keep = 2;
    let b = w.bucket();
    let all = contents(9, 12, 1500);
    let s1 = snapshot(&w.primary_dir(), day(1), &all[0..5]);
    w.copy().unwrap();
    let s2 = snapshot(&w.primary_dir(), day(2), &all[3..9]);
    w.copy().unwrap();
    // A stray object no snapshot lists, and one only a copy under way lists.
    let stray = contents(10, 2, 800);
    for (i, d) in stray.iter().enumerate() {
        let p = w.object_file(&repo_rel(d));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, d).unwrap();
        if i == 1 {
            let l = w
                .server
                .object_path("site-a/snap.2099-01-01T000000Z/files.list.gz");
            std::fs::create_dir_all(l.parent().unwrap()).unwrap();
            std::fs::write(l, holdfast_store::pool::encode(&[repo_rel(d)])).unwrap();
        }
    }
    w.server.settle();
    let s3 = snapshot(&w.primary_dir(), day(3), &all[6..12]);
    let r3 = w.copy().unwrap();
    assert_eq!(r3.pruned, vec![s1.name.clone()]);
    let names: Vec<String> = snapshots(&b).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec![s2.name.clone(), s3.name.clone()]);
    for (i, d) in all.iter().enumerate() {
        let kept = w.object_file(&repo_rel(d)).exists();
        assert_eq!(kept, i >= 3, "file {i}: kept only if s2 or s3 lists it");
    }
    // Retention reads lists, it does not list the pool: an object no list names waits for a
    // sweep (only a run stopped before its commit leaves one, and the next run marks the
    // bucket for it).
    assert!(w.object_file(&repo_rel(&stray[0])).exists());
    b.put_bytes(SWEEP_DUE, Vec::new()).unwrap();
    assert!(prune(&b, 2).unwrap().0.is_empty());
    assert!(
        !w.object_file(&repo_rel(&stray[0])).exists(),
        "stray collected by the sweep"
    );
    assert!(b.read(SWEEP_DUE).unwrap().is_none(), "the sweep is done");
    assert!(
        w.object_file(&repo_rel(&stray[1])).exists(),
        "a copy under way keeps what it sent"
    );
    assert!(
        !w.server
            .object_path(&format!("site-a/{}", s1.name))
            .exists(),
        "the pruned snapshot's objects are gone"
    );
    for n in &names {
        assert!(verify(&b, Some(n)).unwrap().is_ok());
    }
    // A kept list that cannot be read stops the collection before anything is deleted,
    // whether it reads the removed snapshot's objects or sweeps the pool.
    std::fs::write(
        w.server
            .object_path(&format!("site-a/{}/files.list.gz", s3.name)),
        b"not gzip",
    )
    .unwrap();
    let junk = contents(11, 1, 700).remove(0);
    let jp = w.object_file(&repo_rel(&junk));
    std::fs::create_dir_all(jp.parent().unwrap()).unwrap();
    std::fs::write(&jp, &junk).unwrap();
    w.server.settle();
    assert!(prune(&b, 1).is_err());
    assert!(
        w.object_file(&repo_rel(&all[3])).exists(),
        "only s2 named it"
    );
    assert!(collect_garbage(&b).is_err());
    assert!(jp.exists());
    b.put_bytes(SWEEP_DUE, Vec::new()).unwrap();
    assert!(prune(&b, 1).is_err());
    assert!(jp.exists());
    assert!(w.object_file(&repo_rel(&all[3])).exists());
    assert!(b.read(SWEEP_DUE).unwrap().is_some(), "still due");
}

#[test]
fn bad_credentials_and_a_readable_credentials_file_are_refused_clearly() {
    let w = world();
    let mut cfg = w.cfg.clone();
    let f = w.dir.path().join("wrong.credentials");
    std::fs::write(
        &f,
        "access_key_id = nobody\nsecret_access_key = n0tth3s3cret\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    cfg.credentials_file = Some(f.clone());
    let e = holdfast_bucket::Bucket::open(&cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("chmod 600") && e.contains("wrong.credentials"),
        "{e}"
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let b = holdfast_bucket::Bucket::open(&cfg).unwrap();
    let e = snapshots(&b).unwrap_err().to_string();
    assert!(e.contains("s3://offsite/site-a"), "{e}");
    assert!(!e.contains("n0tth3s3cret"), "the secret is not shown: {e}");
}

#[test]
fn object_lock_headers_and_checksums_go_with_every_write() {
    // rclone serve s3 accepts the object-lock headers without enforcing them: this proves
    // the locked write path (signed headers, SHA-256 checksums, multipart) works end to end.
    let mut w = world();
    w.cfg.lock_days = 7;
    w.cfg.lock_mode = "compliance".into();
    let b = w.bucket();
    let mut files = contents(12, 5, 2000);
    files.push(contents(13, 1, 6 << 20).remove(0));
    let s = snapshot(&w.primary_dir(), day(1), &files);
    let r = w.copy().unwrap().copied.remove(0);
    assert_eq!((r.snapshot.as_str(), r.new_files), (s.name.as_str(), 6));
    assert!(verify(&b, None).unwrap().is_ok());
    let mut bad = w.cfg.clone();
    bad.lock_mode = "forever".into();
    let e = holdfast_bucket::Bucket::open(&bad)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("lock_mode") && e.contains("governance"), "{e}");
}
