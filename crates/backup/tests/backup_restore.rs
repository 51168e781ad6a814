//! Full backup then restore on real parts: a scratch PostgreSQL cluster, real rsync, a
//! scheduler stand-in; the restored site must equal the original.

mod common;

use common::*;
use holdfast_backup::{backup, restore, RestoreOptions};
use holdfast_sandbox::standin::Behaviour;
use holdfast_store::layout;

#[test]
fn full_backup_then_restore_reproduces_database_and_repository() {
    let mut f = fixture(6, Behaviour::default(), 30);
    // A leftover unpack folder that must not be backed up.
    let junk = f.site().repo.root.join("localhost/ununpack/3l/x");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("tmp"), b"temporary").unwrap();
    let site = f.site().clone();

    let out = backup(&site, "demo-site", &f.sched, &f.cfg).unwrap();
    assert_eq!(out.snapshot, "current");
    assert!(out.scheduler_restarted);
    assert!(
        f.standin.is_running(),
        "scheduler must run again after the backup"
    );
    let m = &out.manifest;
    assert_eq!(m.site, "demo-site");
    assert_eq!(m.mode, "full");
    assert_eq!(m.database.encoding, "UTF8");
    assert_eq!(m.database.sha256.len(), 64);
    assert!(m.database.bytes > 0 && m.database.raw_bytes > m.database.bytes);
    assert_eq!(
        m.repository.files, 18,
        "6 uploads x (gold, files copy, leaf)"
    );
    // The sample queues one nomos job per upload: recorded as unfinished.
    assert_eq!(m.jobs.unfinished.len(), 6);
    assert!(m
        .jobs
        .unfinished
        .iter()
        .all(|r| r.jq_type == "nomos" && !r.started));
    let snap = f.target_dir().join("current/repository");
    assert!(!snap.join("localhost/ununpack").exists());
    // Stoney monitoring files.
    let meta = f.target_dir().join(".sepiola_backup");
    let started = holdfast_stoney::parse::backup_started(
        &std::fs::read_to_string(meta.join("backupStarted.xml")).unwrap(),
    )
    .unwrap();
    let ended = holdfast_stoney::parse::backup_ended(
        &std::fs::read_to_string(meta.join("backupEnded.xml")).unwrap(),
    )
    .unwrap();
    assert_eq!(started.id, ended.id);
    assert!(ended.success);
    holdfast_stoney::parse::scheduler(
        &std::fs::read_to_string(meta.join("scheduler.xml")).unwrap(),
    )
    .unwrap();

    let counts = row_counts(&site);
    let dump = pg_dump(&site.db);
    std::fs::remove_dir_all(junk).unwrap();
    let (files, links) = tree(&site.repo.root);
    assert!(!links.is_empty(), "gold and files share inodes");

    // Destroy: the database and the whole repository.
    {
        let mut su = f.scratch.cluster.superuser_client().unwrap();
        su.batch_execute("DROP DATABASE fossology WITH (FORCE)")
            .unwrap();
    }
    std::fs::remove_dir_all(&site.repo.root).unwrap();

    let starts_before = f.standin.starts();
    let r = restore(
        &site,
        &f.sched,
        &f.cfg,
        &Default::default(),
        &RestoreOptions::default(),
    )
    .unwrap();
    assert!(r.is_whole(), "missing: {:?}", r.verify.missing);
    assert_eq!(r.verify.checked, 18);
    assert_eq!(r.scheduler_restarted, Some(true));
    assert_eq!(f.standin.starts(), starts_before + 1);
    assert_eq!(row_counts(&site), counts);
    assert_eq!(
        pg_dump(&site.db),
        dump,
        "restored database differs from the original"
    );
    let (files2, links2) = tree(&site.repo.root);
    assert_eq!(files2, files, "same names and sizes");
    assert_eq!(links2, links, "same inode sharing");

    // A second backup links everything unchanged to the first and copies only the new upload.
    f.add_uploads(1);
    let out2 = backup(&site, "demo-site", &f.sched, &f.cfg).unwrap();
    // gold + leaf copied; the `files` twin of the gold is a hard link, not a transfer.
    assert_eq!(out2.manifest.repository.new_files, 2);
    assert_eq!(out2.manifest.repository.files, 21);
    let snaps = layout::snapshots(&f.cfg.target().unwrap()).unwrap();
    assert_eq!(snaps.len(), 2);
    assert!(snaps[0].name.starts_with("day."));
    let (_, cross) = tree(&f.target_dir());
    assert!(
        cross.iter().any(|g| g.iter().any(|p| p.starts_with("day."))
            && g.iter().any(|p| p.starts_with("current/"))),
        "unchanged files are hard links between snapshots"
    );
}

/// FOSSology's Docker set-up makes a SQL_ASCII database, whose text may hold any bytes. The
/// backup (pg_dumpall as the superuser: FOSSology's `fossy` is not one) and the restore keep
/// the encoding and the bytes.
#[test]
fn sql_ascii_database_round_trips_with_its_encoding_and_bytes() {
    let f = fixture_in(2, Behaviour::default(), 30, "SQL_ASCII");
    let site = f.site().clone();
    let raw = |site: &holdfast_site::Site| -> (String, String) {
        let mut c = site.connect().unwrap();
        let r = c
            .query_one(
                "SELECT pg_encoding_to_char(d.encoding)::text, \
                 (SELECT string_agg(encode(ufile_name::bytea, 'hex'), ',' ORDER BY uploadtree_pk) FROM uploadtree_a) \
                 FROM pg_database d WHERE d.datname = current_database()",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    {
        let mut c = site.connect().unwrap();
        // Latin-1 "café" and a lone 0xff: not UTF-8, kept as bytes by SQL_ASCII.
        c.batch_execute(
            "UPDATE uploadtree_a SET ufile_name = E'caf\\351-\\377.txt' \
             WHERE uploadtree_pk = (SELECT max(uploadtree_pk) FROM uploadtree_a)",
        )
        .unwrap();
    }
    let before = raw(&site);
    assert_eq!(before.0, "SQL_ASCII");
    assert!(before.1.contains("636166e92dff2e747874"), "{}", before.1);
    let fossy_is_superuser: bool = site
        .connect()
        .unwrap()
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        !fossy_is_superuser,
        "the site role is FOSSology's, not a superuser"
    );

    let out = backup(&site, "ascii", &f.sched, &f.cfg).unwrap();
    assert_eq!(out.manifest.database.encoding, "SQL_ASCII");
    {
        let mut su = f.scratch.cluster.superuser_client().unwrap();
        su.batch_execute("DROP DATABASE fossology WITH (FORCE)")
            .unwrap();
    }
    let r = restore(
        &site,
        &f.sched,
        &f.cfg,
        &Default::default(),
        &RestoreOptions::default(),
    )
    .unwrap();
    assert!(r.is_whole(), "missing: {:?}", r.verify.missing);
    assert_eq!(raw(&site), before);
}

#[test]
fn restore_into_a_scratch_folder_and_database_leaves_the_site_alone() {
    let f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.compression = holdfast_backup::Compression::Zstd;
    backup(&site, "s", &f.sched, &cfg).unwrap();
    let starts = f.standin.starts();
    let (into, r) = f.restore_scratch(&cfg, None);
    assert!(r.is_whole(), "{:?}", r.verify.missing);
    assert_eq!(r.dbname, "fossology_restore");
    assert_eq!(
        f.standin.starts(),
        starts,
        "scheduler untouched by a scratch restore"
    );
    let scratch = holdfast_site::Site::open(Some(&into.join("etc/fossology"))).unwrap();
    assert_eq!(scratch.db.dbname(), "fossology_restore");
    assert_eq!(row_counts(&scratch), row_counts(&site));
    assert_eq!(pg_dump(&scratch.db), pg_dump(&site.db));
    assert_eq!(tree(&into.join("repository")), tree(&site.repo.root));

    // A scratch restore never drops the live database (nor PostgreSQL's own), whatever --db
    // says; nothing is touched.
    let counts = row_counts(&site);
    for name in [site.db.dbname().to_string(), "postgres".into()] {
        let opts = holdfast_backup::RestoreOptions {
            scratch: Some(f.dir.path().join(format!("into-{name}"))),
            dbname: Some(name.clone()),
            drop_scratch_db: true,
            ..Default::default()
        };
        let e = restore(&site, &f.sched, &cfg, &Default::default(), &opts).unwrap_err();
        assert!(e.to_string().contains(&format!("--db {name} names")), "{e}");
    }
    assert_eq!(row_counts(&site), counts);
    assert_eq!(f.standin.starts(), starts);
}

#[test]
fn gold_mode_copies_no_files_and_restore_rebuilds_them_from_gold() {
    let f = fixture(4, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut cfg = f.cfg.clone();
    cfg.mode = holdfast_backup::Mode::Gold;
    let out = backup(&site, "gold-site", &f.sched, &cfg).unwrap();
    assert_eq!(out.manifest.mode, "gold");
    assert_eq!(out.manifest.repository.files, 4, "gold files only");
    let snap = f.target_dir().join("current/repository/localhost");
    assert!(snap.join("gold").is_dir());
    assert!(!snap.join("files").exists());
    let (files, _) = tree(&site.repo.root);

    {
        let mut su = f.scratch.cluster.superuser_client().unwrap();
        su.batch_execute("DROP DATABASE fossology WITH (FORCE)")
            .unwrap();
    }
    std::fs::remove_dir_all(&site.repo.root).unwrap();
    let r = restore(
        &site,
        &f.sched,
        &cfg,
        &Default::default(),
        &RestoreOptions::default(),
    )
    .unwrap();
    let rebuild = r.rebuild.as_ref().expect("gold snapshots are rebuilt");
    assert_eq!(rebuild.rebuilt.len(), 4, "{rebuild:?}");
    assert!(
        r.is_whole(),
        "missing after rebuild: {:?}",
        r.verify.missing
    );
    let (files2, _) = tree(&site.repo.root);
    for (name, size) in &files {
        assert_eq!(files2.get(name), Some(size), "{name} back with its size");
    }
}

/// FOSSology's delete agent removes an upload's files before the rows that name them, and a
/// stop (or the snapshot point of an online backup) can fall between the two: those files
/// are not lost data. With a cut-off `DELETE UPLOAD` job, the backup and its restore set
/// them aside. A file gone from an upload nobody deletes is still missing, and so are the
/// files of an upload under a folder being deleted (delagent may only unlink it).
#[test]
fn files_of_uploads_being_deleted_are_set_aside_not_missing() {
    let f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut sched = f.sched.clone();
    sched.stale_row_grace_secs = 1;
    let mut c = site.connect().unwrap();
    let ups = upload_pks(&mut c);
    let (by_upload, in_folder, kept) = (ups[0], ups[1], ups[2]);
    let folder: i32 = c
        .query_one(
            "INSERT INTO folder (folder_name, user_fk, folder_desc, folder_perm) \
             VALUES ('doomed', 1, '', 0) RETURNING folder_pk",
            &[],
        )
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO foldercontents (parent_fk, foldercontents_mode, child_id) \
         VALUES (1, 1, $1), ($1, 2, $2)",
        &[&folder, &in_folder],
    )
    .unwrap();
    for (u, args) in [
        (by_upload, format!("DELETE UPLOAD {by_upload}")),
        (0, format!("DELETE FOLDER 1 {folder}")),
    ] {
        c.execute(
            "WITH j AS (INSERT INTO job (job_name, job_upload_fk, job_user_fk) \
                 VALUES ('Delete', NULLIF($1, 0), 1) RETURNING job_pk) \
             INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime) \
                 SELECT job_pk, 'delagent', $2, now() FROM j",
            &[&u, &args],
        )
        .unwrap();
    }
    // The agents removed their uploads' files and were cut off before the rows; one file of
    // an upload nobody deletes is lost as well.
    let refs =
        |u: i32, c: &mut postgres::Client| holdfast_site::db::references(c, Some(u)).unwrap();
    let remove = |r: &holdfast_site::db::Reference| {
        for p in site.repo.candidates(&r.kind, &r.name) {
            let _ = std::fs::remove_file(p);
        }
    };
    let doomed = refs(by_upload, &mut c);
    doomed.iter().for_each(remove);
    let mut lost = refs(in_folder, &mut c);
    lost.push(refs(kept, &mut c).pop().unwrap());
    lost.iter().for_each(remove);
    drop(c);
    let key = |v: &[holdfast_site::db::Reference]| {
        let mut k: Vec<_> = v.iter().map(|r| (r.kind.clone(), r.pfile_pk)).collect();
        k.sort();
        k
    };

    for online in [false, true] {
        let cfg = holdfast_backup::BackupConfig {
            online,
            ..f.cfg.clone()
        };
        let out = backup(&site, "s", &sched, &cfg).unwrap();
        assert_eq!(key(&out.missing), key(&lost), "online {online}");
        assert_eq!(
            key(&out.manifest.repository.being_deleted),
            key(&doomed),
            "online {online}"
        );
        let into = f.dir.path().join(format!("restored-{online}"));
        let opts = RestoreOptions {
            scratch: Some(into),
            drop_scratch_db: true,
            ..Default::default()
        };
        let r = restore(&site, &sched, &cfg, &Default::default(), &opts).unwrap();
        assert_eq!(key(&r.verify.missing), key(&lost), "online {online}");
        assert_eq!(
            key(&r.verify.being_deleted),
            key(&doomed),
            "online {online}"
        );
    }

    // `check-repo` (and the pages) agree: the upload being deleted is not damage and is not
    // offered to `recover`; the others are incomplete (one without gold to rebuild from).
    let checks =
        holdfast_recover::check_repo(&mut site.connect().unwrap(), &site.repo, None).unwrap();
    let state = |u: i32| {
        let c = checks.iter().find(|c| c.upload_pk == u).unwrap();
        (c.is_whole(), c.recoverable())
    };
    assert_eq!(state(by_upload), (true, false));
    assert_eq!(state(in_folder), (false, false), "its gold is gone too");
    assert_eq!(state(kept), (false, true));

    // The nights after look at what they set aside again: still aside while the job is
    // pending (a walk, then a night from the database's rows), missing once it failed.
    for (night, found_by) in [(0, "walk"), (1, "database")] {
        let out = backup(&site, "s", &sched, &f.cfg).unwrap();
        assert_eq!(out.manifest.repository.found_by, found_by);
        assert_eq!(key(&out.missing), key(&lost), "night {night}");
        let aside = &out.manifest.repository.being_deleted;
        assert_eq!(key(aside), key(&doomed), "night {night}");
    }
    site.connect()
        .unwrap()
        .batch_execute(
            "UPDATE jobqueue SET jq_endtime = now(), jq_end_bits = 2 WHERE jq_type = 'delagent'",
        )
        .unwrap();
    let out = backup(&site, "s", &sched, &f.cfg).unwrap();
    assert_eq!(out.manifest.repository.found_by, "database");
    let all: Vec<_> = lost.iter().chain(&doomed).cloned().collect();
    assert_eq!(key(&out.missing), key(&all), "the delete job failed");
    assert!(out.manifest.repository.being_deleted.is_empty());
}

/// An upload whose first unpack a stop (or a snapshot point) cut off mid-write: half its
/// rows (in `table`), an `ununpack_ars` row never ended, not marked unpacked, its queue row
/// started.
fn cut_off_first_unpack(site: &holdfast_site::Site, upload: i32, table: &str) -> i64 {
    let mut c = site.connect().unwrap();
    c.batch_execute(&format!(
        "DELETE FROM ununpack_ars WHERE upload_fk = {upload};
         INSERT INTO agent (agent_name, agent_rev, agent_desc)
           SELECT 'ununpack', 'test', 'ununpack' WHERE NOT EXISTS
             (SELECT 1 FROM agent WHERE agent_name = 'ununpack');
         INSERT INTO ununpack_ars (agent_fk, upload_fk, ars_success)
           SELECT max(agent_pk), {upload}, false FROM agent WHERE agent_name = 'ununpack';
         UPDATE upload SET upload_mode = upload_mode & ~32 WHERE upload_pk = {upload};
         DELETE FROM {table} WHERE upload_fk = {upload} AND lft > (
           SELECT (min(lft) + max(rgt)) / 2 FROM {table} WHERE upload_fk = {upload});
         WITH j AS (INSERT INTO job (job_name, job_upload_fk) VALUES ('cut', {upload})
                    RETURNING job_pk)
         INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_endtext)
           SELECT job_pk, 'ununpack', '{upload}', now(), 'Started' FROM j;"
    ))
    .unwrap();
    tree_rows(&mut c, upload)
}

/// A reunpack of `upload` cut off: its queue row started, its first unpack ended.
fn cut_off_reunpack(c: &mut postgres::Client, upload: i32) {
    c.batch_execute(&format!(
        "WITH j AS (INSERT INTO job (job_name, job_upload_fk) VALUES ('re', {upload})
                    RETURNING job_pk)
         INSERT INTO jobqueue (jq_job_fk, jq_type, jq_args, jq_starttime, jq_endtext)
           SELECT job_pk, 'ununpack', '{upload}', now(), 'Started' FROM j;"
    ))
    .unwrap();
}

fn upload_pks(c: &mut postgres::Client) -> Vec<i32> {
    c.query("SELECT upload_pk FROM upload ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Tree rows of `upload`, in `uploadtree_a` or a table of its own.
fn tree_rows(c: &mut postgres::Client, upload: i32) -> i64 {
    c.query_one(
        "SELECT count(*) FROM uploadtree WHERE upload_fk = $1",
        &[&upload],
    )
    .unwrap()
    .get(0)
}

/// FOSSology's ununpack writes rows only for an upload that has none (`ReunpackSwitch`),
/// so the half tree a cut-off unpack left would be marked unpacked by its rerun: a restore
/// removes those rows (full and gold mode) and keeps the rows of a reunpack cut off after an
/// unpack that ended.
#[test]
fn a_restore_removes_the_half_tree_of_a_cut_off_unpack_so_the_rerun_writes_it_whole() {
    let f = fixture(3, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut c = site.connect().unwrap();
    let uploads = upload_pks(&mut c);
    let (cut, reunpacked, big) = (uploads[0], uploads[1], uploads[2]);
    let whole = tree_rows(&mut c, reunpacked);
    let half = cut_off_first_unpack(&site, cut, "uploadtree_a");
    assert!(half > 0);
    // Over 500 MB, ununpack writes into a table of the upload's own, and names it in the
    // upload row only at its end.
    c.batch_execute(&format!(
        "CREATE TABLE uploadtree_{big} (LIKE uploadtree INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
           INCLUDING INDEXES);
         ALTER TABLE uploadtree_{big} INHERIT uploadtree;
         INSERT INTO uploadtree_{big} SELECT * FROM uploadtree_a WHERE upload_fk = {big};
         DELETE FROM uploadtree_a WHERE upload_fk = {big};"
    ))
    .unwrap();
    let big_half = cut_off_first_unpack(&site, big, &format!("uploadtree_{big}"));
    assert!(big_half > 0);
    // A reunpack cut off: the first unpack ended, so its rows are the tree.
    cut_off_reunpack(&mut c, reunpacked);
    drop(c);
    // Online snapshots: a stop would remove the half trees from the live site itself
    // (the next test).
    for mode in [holdfast_backup::Mode::Full, holdfast_backup::Mode::Gold] {
        let cfg = holdfast_backup::BackupConfig {
            mode,
            online: true,
            ..f.cfg.clone()
        };
        backup(&site, "s", &f.sched, &cfg).unwrap();
        let into = f.dir.path().join(format!("restored-{mode:?}"));
        let opts = RestoreOptions {
            scratch: Some(into.clone()),
            drop_scratch_db: false,
            dbname: Some(format!("cut_{mode:?}").to_lowercase()),
            ..Default::default()
        };
        let r = restore(&site, &f.sched, &cfg, &Default::default(), &opts).unwrap();
        assert_eq!(
            r.cut_off_trees,
            vec![(cut, half as u64), (big, big_half as u64)],
            "{mode:?}"
        );
        assert!(r.is_whole(), "{mode:?}: {:?}", r.verify.missing);
        let restored = holdfast_site::Site::open(Some(&into.join("etc/fossology"))).unwrap();
        let mut rc = restored.connect().unwrap();
        assert_eq!(
            tree_rows(&mut rc, cut),
            0,
            "{mode:?}: the rerun must find no rows"
        );
        assert_eq!(
            tree_rows(&mut rc, big),
            0,
            "{mode:?}: nor in the upload's own table"
        );
        assert_eq!(tree_rows(&mut rc, reunpacked), whole, "{mode:?}");
        let success: bool = rc
            .query_one(
                "SELECT bool_or(ars_success) IS TRUE FROM ununpack_ars WHERE upload_fk = $1",
                &[&cut],
            )
            .unwrap()
            .get(0);
        assert!(!success, "{mode:?}: the rerun must not skip it as unpacked");
    }
    // The live site is left as it was.
    let mut c = site.connect().unwrap();
    assert_eq!(tree_rows(&mut c, cut), half);
}

/// A stop that cut an unpack off (its agent killed mid-write) removes the rows it left
/// before the scheduler starts again: the `--reset` start's rerun then writes the whole tree
/// instead of marking the half one unpacked. A reunpack cut off keeps its rows.
#[test]
fn a_backup_that_cut_an_unpack_off_leaves_the_rerun_a_whole_tree() {
    let f = fixture(2, Behaviour::default(), 30);
    let site = f.site().clone();
    let mut c = site.connect().unwrap();
    let uploads = upload_pks(&mut c);
    let kept = tree_rows(&mut c, uploads[1]);
    let half = cut_off_first_unpack(&site, uploads[0], "uploadtree_a");
    cut_off_reunpack(&mut c, uploads[1]);
    let out = backup(&site, "s", &f.sched, &f.cfg).unwrap();
    assert!(out.scheduler_restarted);
    assert_eq!(
        tree_rows(&mut c, uploads[0]),
        0,
        "{half} rows left for the rerun to keep"
    );
    assert_eq!(tree_rows(&mut c, uploads[1]), kept);
}
