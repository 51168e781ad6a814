//! Slimming on a scratch site (real PostgreSQL, real files) whose uploads are written row by
//! row, so that every case the rules name is present on purpose: nested containers, a
//! container shared by two uploads, a pfile that is a container in one upload and a leaf in
//! another, a container without children, an upload whose gold is gone, a hard-linked one.

mod common;

use common::{assert_leaves_readable, disk_bytes, name_of, sql_counts};
use holdfast_sandbox::scratch::ScratchSite;
use holdfast_site::db;
use holdfast_slim::{apply, site_report, ApplyOptions, KeepReason};
use std::collections::BTreeSet;

const C: i32 = 1 << 29;
const A: i32 = 1 << 28;
const DIR: i32 = (1 << 18) | (1 << 29) | 0o040755;
const ADIR: i32 = DIR | A;
const REG: i32 = 0o100644;

struct Fx {
    s: ScratchSite,
    c: postgres::Client,
}

impl Fx {
    fn new(dir: &std::path::Path) -> Fx {
        let s = ScratchSite::create(dir, "UTF8").unwrap();
        let c = s.site.connect().unwrap();
        Fx { s, c }
    }

    /// A pfile row and its `files` entry; `seed` makes distinct contents of `len` bytes.
    fn pfile(&mut self, seed: u8, len: usize) -> (i32, Vec<u8>) {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u32 * 31 + seed as u32 * 7) as u8 ^ seed)
            .collect();
        let n = name_of(&data);
        let pk: i32 = self
            .c
            .query_one(
                "INSERT INTO pfile (pfile_sha1, pfile_md5, pfile_size) VALUES ($1, $2, $3) \
                 RETURNING pfile_pk",
                &[&n.sha1.to_uppercase(), &n.md5.to_uppercase(), &(len as i64)],
            )
            .unwrap()
            .get(0);
        let path = self.s.site.repo.path("files", &n.to_string()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &data).unwrap();
        (pk, data)
    }

    /// An upload whose gold is `pfile` (hard-linked from `files`, as FOSSology stores it).
    fn upload(&mut self, name: &str, gold: i32, data: &[u8]) -> i32 {
        let n = name_of(data).to_string();
        let g = self.s.site.repo.path("gold", &n).unwrap();
        std::fs::create_dir_all(g.parent().unwrap()).unwrap();
        std::fs::hard_link(self.s.site.repo.path("files", &n).unwrap(), &g).unwrap();
        self.c
            .query_one(
                "INSERT INTO upload (upload_filename, pfile_fk, upload_mode) VALUES ($1, $2, 96) \
                 RETURNING upload_pk",
                &[&name, &gold],
            )
            .unwrap()
            .get(0)
    }

    fn row(&mut self, upload: i32, parent: Option<i32>, name: &str, pfile: i32, mode: i32) -> i32 {
        self.c
            .query_one(
                "INSERT INTO uploadtree_a (parent, realparent, upload_fk, pfile_fk, ufile_mode, ufile_name) \
                 VALUES ($1, $1, $2, $3, $4, $5) RETURNING uploadtree_pk",
                &[&parent, &upload, &pfile, &mode, &name],
            )
            .unwrap()
            .get(0)
    }

    /// A container row with an `artifact.dir` under it; returns the artifact dir's row.
    fn container(&mut self, upload: i32, parent: Option<i32>, name: &str, pfile: i32) -> i32 {
        let r = self.row(upload, parent, name, pfile, C | REG);
        self.row(upload, Some(r), "artifact.dir", 0, ADIR)
    }
}

struct Site {
    fx: Fx,
    /// pfile keys by role.
    t1: i32,
    zip: i32,
    shared: i32,
    cgz: i32,
    empty: i32,
    d: i32,
    h: i32,
    golds: [i32; 3],
    leaves: Vec<(i32, Vec<u8>)>,
    uploads: [i32; 3],
}

fn build(dir: &std::path::Path) -> Site {
    let mut fx = Fx::new(dir);
    let (g1, g1d) = fx.pfile(1, 3000);
    let (t1, _) = fx.pfile(2, 9000);
    let (l1, l1d) = fx.pfile(3, 1500);
    let (zip, zipd) = fx.pfile(4, 2500);
    let (l2, l2d) = fx.pfile(5, 700);
    let (meta, _) = fx.pfile(6, 120);
    let (shared, _) = fx.pfile(7, 4100);
    let (l5, l5d) = fx.pfile(8, 333);
    let (g2, g2d) = fx.pfile(9, 5000);
    let (cgz, _) = fx.pfile(10, 1200);
    let (l3, l3d) = fx.pfile(11, 4000);
    let (empty, _) = fx.pfile(12, 22);
    let (h, hd) = fx.pfile(13, 6000);
    let (l6, l6d) = fx.pfile(14, 64);
    let (g3, g3d) = fx.pfile(15, 800);
    let (d, _) = fx.pfile(16, 2000);
    let (l4, l4d) = fx.pfile(17, 900);

    // Upload 1: a.tar.gz > a.tar > {src/x.c, src/y.zip > z.txt, artifact.meta, s.bz2 > l5}
    let u1 = fx.upload("a.tar.gz", g1, &g1d);
    let ad = fx.container(u1, None, "a.tar.gz", g1);
    let ad = fx.container(u1, Some(ad), "a.tar", t1);
    fx.row(u1, Some(ad), "artifact.meta", meta, A | REG);
    let src = fx.row(u1, Some(ad), "src", 0, DIR);
    fx.row(u1, Some(src), "x.c", l1, REG);
    let zd = fx.container(u1, Some(src), "y.zip", zip);
    fx.row(u1, Some(zd), "z.txt", l2, REG);
    let sd = fx.container(u1, Some(ad), "s.bz2", shared);
    fx.row(u1, Some(sd), "s", l5, REG);

    // Upload 2: b.tar > {y.zip as a leaf, x.c, c.gz > c, empty.zip (no children), h.gz > h6,
    // s.bz2 > s}
    let u2 = fx.upload("b.tar", g2, &g2d);
    let bd = fx.container(u2, None, "b.tar", g2);
    fx.row(u2, Some(bd), "y.zip", zip, REG);
    fx.row(u2, Some(bd), "x.c", l1, REG);
    let cd = fx.container(u2, Some(bd), "c.gz", cgz);
    fx.row(u2, Some(cd), "c", l3, REG);
    // As FOSSology writes an archive that held nothing: an empty artifact folder under it.
    fx.container(u2, Some(bd), "empty.zip", empty);
    let hdir = fx.container(u2, Some(bd), "h.gz", h);
    fx.row(u2, Some(hdir), "h", l6, REG);
    let sd = fx.container(u2, Some(bd), "s.bz2", shared);
    fx.row(u2, Some(sd), "s", l5, REG);
    // h.gz also lives in a snapshot made with `cp -al`: a second link to its inode.
    let hn = name_of(&hd).to_string();
    std::fs::hard_link(
        fx.s.site.repo.path("files", &hn).unwrap(),
        fx.s.root.join("repository/snapshot-h.gz"),
    )
    .unwrap();

    // Upload 3: d.tgz > d.tar > e.txt, and maintenance has deleted its gold.
    let u3 = fx.upload("d.tgz", g3, &g3d);
    let dd = fx.container(u3, None, "d.tgz", g3);
    let dd = fx.container(u3, Some(dd), "d.tar", d);
    fx.row(u3, Some(dd), "e.txt", l4, REG);
    // (and its copy in `files`, which the unpacker would fall back to).
    for kind in ["gold", "files"] {
        let p =
            fx.s.site
                .repo
                .path(kind, &name_of(&g3d).to_string())
                .unwrap();
        std::fs::remove_file(p).unwrap();
    }
    let _ = zipd;

    Site {
        fx,
        t1,
        zip,
        shared,
        cgz,
        empty,
        d,
        h,
        golds: [g1, g2, g3],
        leaves: vec![
            (l1, l1d),
            (l2, l2d),
            (l3, l3d),
            (l4, l4d),
            (l5, l5d),
            (l6, l6d),
        ],
        uploads: [u1, u2, u3],
    }
}

#[test]
fn report_matches_sql_and_apply_frees_exactly_the_reported_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = build(dir.path());
    let repo = st.fx.s.site.repo.clone();
    let c = &mut st.fx.c;

    let r = site_report(c, &repo, None).unwrap();
    // Classes, per upload and in total, against an independent SQL count.
    for u in &r.uploads {
        let [l, a, k] = sql_counts(c, Some(u.upload_pk));
        assert_eq!(
            (u.leaves.files, u.leaves.bytes),
            l,
            "upload {} leaves",
            u.upload_pk
        );
        assert_eq!(
            (u.artifacts.files, u.artifacts.bytes),
            a,
            "upload {} artifacts",
            u.upload_pk
        );
        assert_eq!(
            (u.containers.files, u.containers.bytes),
            k,
            "upload {} containers",
            u.upload_pk
        );
    }
    let [l, a, k] = sql_counts(c, None);
    assert_eq!((r.total.leaves.files, r.total.leaves.bytes), l);
    assert_eq!((r.total.artifacts.files, r.total.artifacts.bytes), a);
    assert_eq!((r.total.containers.files, r.total.containers.bytes), k);
    // y.zip is a leaf in upload 2, so site-wide it counts as a leaf, once.
    assert_eq!(r.total.leaves.files, 7);
    // Shared: x.c, y.zip, s.bz2, s (each once in the total).
    assert_eq!(r.total.shared.files, 4);
    assert_eq!(r.total.shared.bytes, 1500 + 2500 + 4100 + 333);
    let u1 = &r.uploads[0];
    assert_eq!(u1.shared.bytes, 1500 + 2500 + 4100 + 333);

    // Removable: a.tar, c.gz and the shared s.bz2 (once) and nothing else.
    let removable: BTreeSet<i32> = [st.t1, st.cgz, st.shared].into();
    assert_eq!(r.total.removable.files, 3);
    assert_eq!(r.total.removable.bytes, 9000 + 1200 + 4100);
    assert_eq!(r.uploads[0].removable.bytes, 9000 + 4100);
    assert_eq!(r.uploads[1].removable.bytes, 1200 + 4100);
    // Kept, each with the reason the rules give.
    let why = |pk: i32| {
        r.kept
            .iter()
            .find(|k| k.pfile_pk == pk)
            .unwrap_or_else(|| panic!("pfile {pk} kept"))
            .reasons
            .clone()
    };
    assert_eq!(
        why(st.zip),
        vec![KeepReason::UsedAs {
            upload: st.uploads[1],
            class: holdfast_slim::Class::Leaf
        }]
    );
    assert_eq!(
        why(st.empty),
        vec![KeepReason::NoChildren {
            upload: st.uploads[1]
        }]
    );
    assert_eq!(
        why(st.d),
        vec![KeepReason::GoldMissing {
            upload: st.uploads[2]
        }]
    );
    assert_eq!(why(st.h), vec![KeepReason::HardLinked { links: 2 }]);
    assert!(why(st.golds[0]).contains(&KeepReason::IsGold {
        upload: st.uploads[0]
    }));
    assert!(why(st.golds[2]).contains(&KeepReason::GoldMissing {
        upload: st.uploads[2]
    }));
    let table = r.render();
    assert!(
        table.contains(&format!(
            "upload {} uses the same pfile as a leaf",
            st.uploads[1]
        )),
        "{table}"
    );

    // Dry run changes nothing.
    let before = disk_bytes(&repo.root);
    let dry = apply(
        c,
        &repo,
        &ApplyOptions {
            dry_run: true,
            max: None,
        },
    )
    .unwrap();
    assert_eq!(dry.freed_bytes, r.total.removable.bytes);
    assert_eq!(disk_bytes(&repo.root), before);
    assert!(holdfast_slim::slimmed(c).unwrap().is_empty());

    // Apply frees exactly the reported bytes, measured on disk.
    let done = apply(c, &repo, &ApplyOptions::default()).unwrap();
    let got: BTreeSet<i32> = done.removed.iter().map(|s| s.pfile_pk).collect();
    assert_eq!(got, removable);
    assert_eq!(done.freed_bytes, r.total.removable.bytes);
    assert_eq!(before - disk_bytes(&repo.root), r.total.removable.bytes);
    assert_eq!(
        assert_leaves_readable(c, &repo),
        8,
        "7 leaves and artifact.meta"
    );
    for (pk, data) in &st.leaves {
        let p = repo.path("files", &name_of(data).to_string()).unwrap();
        assert_eq!(&std::fs::read(p).unwrap(), data, "leaf pfile {pk}");
    }
    // The kept container that is a leaf elsewhere is still there.
    assert!(repo
        .path(
            "files",
            &r.kept.iter().find(|k| k.pfile_pk == st.zip).unwrap().name
        )
        .unwrap()
        .is_file());

    // Verification calls them slimmed, not missing (only upload 3's gold is really missing, in `gold` and `files`).
    assert_eq!(
        holdfast_slim::slimmed(c).unwrap(),
        removable.iter().copied().collect()
    );
    let v = db::verify(c, &repo, None).unwrap();
    let slimmed: BTreeSet<i32> = v.slimmed.iter().map(|r| r.pfile_pk).collect();
    assert_eq!(slimmed, removable);
    let missing: BTreeSet<(&str, i32)> = v
        .missing
        .iter()
        .map(|r| (r.kind.as_str(), r.pfile_pk))
        .collect();
    assert_eq!(
        missing,
        [("gold", st.golds[2]), ("files", st.golds[2])].into()
    );

    // The report now shows them as slimmed, and nothing removable; a rerun does nothing.
    let r2 = site_report(c, &repo, None).unwrap();
    assert_eq!(r2.total.removable.files, 0);
    assert_eq!(r2.total.slimmed.bytes, r.total.removable.bytes);
    // Upload 3's gold is gone (its `files` copy is the only missing entry), nothing else.
    assert_eq!(r2.total.missing.files, 1);
    assert_eq!(r2.total.missing.bytes, 800);
    assert!(!r2.uploads[2].gold_present && r2.uploads[0].gold_present);
    assert!(r2.render().contains("gold is missing"), "{}", r2.render());
    let again = apply(c, &repo, &ApplyOptions::default()).unwrap();
    assert!(again.removed.is_empty() && again.freed_bytes == 0);
    assert_eq!(before - disk_bytes(&repo.root), r.total.removable.bytes);

    // A new upload uses slimmed c.gz as a leaf: the record no longer excuses its absence.
    let u4: i32 = c
        .query_one(
            "INSERT INTO upload (upload_filename, pfile_fk, upload_mode) VALUES ('c.gz', $1, 96) RETURNING upload_pk",
            &[&st.cgz],
        )
        .unwrap()
        .get(0);
    c.execute(
        "INSERT INTO uploadtree_a (upload_fk, pfile_fk, ufile_mode, ufile_name) VALUES ($1, $2, $3, 'c.gz')",
        &[&u4, &st.cgz, &REG],
    )
    .unwrap();
    assert!(!holdfast_slim::slimmed(c).unwrap().contains(&st.cgz));
    let v = db::verify(c, &repo, Some(u4)).unwrap();
    assert_eq!(
        v.missing.len(),
        2,
        "gold and files entry of the new upload: {:?}",
        v.missing
    );
    let fix = apply(c, &repo, &ApplyOptions::default()).unwrap();
    assert_eq!(fix.dropped_records, vec![st.cgz]);
}

/// A safe container a crash left short is removed like any other (the gold rebuilds it
/// whole), never recorded as already absent while its short bytes stay in `files`.
#[test]
fn a_short_container_is_removed_not_recorded_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = build(dir.path());
    let repo = st.fx.s.site.repo.clone();
    let c = &mut st.fx.c;
    let r = c
        .query_one(
            "SELECT pfile_sha1, pfile_md5, pfile_size FROM pfile WHERE pfile_pk = $1",
            &[&st.t1],
        )
        .unwrap();
    let t1 = holdfast_site::pfile::PfileName::new(r.get(0), r.get(1), r.get::<_, i64>(2) as u64)
        .to_string();
    let path = repo.path("files", &t1).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4500)
        .unwrap();
    let done = apply(c, &repo, &ApplyOptions::default()).unwrap();
    assert!(
        !done.recorded_absent.iter().any(|s| s.pfile_pk == st.t1),
        "{:?}",
        done.recorded_absent
    );
    assert!(done.removed.iter().any(|s| s.pfile_pk == st.t1));
    assert!(!path.exists(), "the short copy stayed in files");
    assert!(holdfast_slim::slimmed(c).unwrap().contains(&st.t1));
}

#[test]
fn interrupted_apply_finishes_on_rerun_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = build(dir.path());
    let repo = st.fx.s.site.repo.clone();
    let c = &mut st.fx.c;
    let reported = site_report(c, &repo, None).unwrap().total.removable;
    let before = disk_bytes(&repo.root);

    // A run cut short after one container.
    let first = apply(
        c,
        &repo,
        &ApplyOptions {
            dry_run: false,
            max: Some(1),
        },
    )
    .unwrap();
    assert_eq!(first.removed.len(), 1);
    assert_eq!(first.remaining, 2);
    // A crash between recording and unlinking: the record exists, the file too.
    let next = [st.t1, st.cgz, st.shared]
        .into_iter()
        .find(|pk| *pk != first.removed[0].pfile_pk)
        .unwrap();
    let name: String = {
        let r = c
            .query_one(
                "SELECT pfile_sha1, pfile_md5, pfile_size FROM pfile WHERE pfile_pk = $1",
                &[&next],
            )
            .unwrap();
        holdfast_site::pfile::PfileName::new(r.get(0), r.get(1), r.get::<_, i64>(2) as u64)
            .to_string()
    };
    db::record_slimmed(c, &[(next, name.clone(), 0)]).unwrap();
    assert!(repo.path("files", &name).unwrap().is_file());
    // Meanwhile nothing is reported missing: present files never are.
    assert!(db::verify(c, &repo, Some(st.uploads[0]))
        .unwrap()
        .missing
        .is_empty());

    let rest = apply(c, &repo, &ApplyOptions::default()).unwrap();
    assert_eq!(rest.removed.len(), 2);
    assert_eq!(first.freed_bytes + rest.freed_bytes, reported.bytes);
    assert_eq!(before - disk_bytes(&repo.root), reported.bytes);
    assert_eq!(holdfast_slim::slimmed(c).unwrap().len(), 3);
    assert!(!repo.path("files", &name).unwrap().exists());
    assert_eq!(
        assert_leaves_readable(c, &repo),
        8,
        "7 leaves and artifact.meta"
    );
}

/// Uploads over 500 MB keep their rows in a table of their own (`uploadtree_<pk>`): the
/// same site with upload 2 moved there gives the same report and removes the same files.
#[test]
fn per_upload_uploadtree_tables_are_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = build(dir.path());
    let repo = st.fx.s.site.repo.clone();
    let c = &mut st.fx.c;
    let before = site_report(c, &repo, None).unwrap();
    let u2 = st.uploads[1];
    c.batch_execute(&format!(
        "CREATE TABLE uploadtree_{u2} (CHECK (upload_fk = {u2})) INHERITS (uploadtree); \
         INSERT INTO uploadtree_{u2} SELECT * FROM uploadtree_a WHERE upload_fk = {u2}; \
         DELETE FROM uploadtree_a WHERE upload_fk = {u2}; \
         UPDATE upload SET uploadtree_tablename = 'uploadtree_{u2}' WHERE upload_pk = {u2};"
    ))
    .unwrap();
    let after = site_report(c, &repo, None).unwrap();
    assert_eq!(after, before);
    let done = apply(c, &repo, &ApplyOptions::default()).unwrap();
    let got: BTreeSet<i32> = done.removed.iter().map(|s| s.pfile_pk).collect();
    assert_eq!(got, [st.t1, st.cgz, st.shared].into());
    // z.zip, a leaf only in upload 2's own table, was kept (not in `got`); the record
    // excuses the rest.
    assert!(repo
        .path(
            "files",
            &before
                .kept
                .iter()
                .find(|k| k.pfile_pk == st.zip)
                .unwrap()
                .name
        )
        .unwrap()
        .is_file());
    let v = db::verify(c, &repo, Some(u2)).unwrap();
    assert!(v.missing.is_empty(), "{:?}", v.missing);
    assert_eq!(v.slimmed.len(), 2, "c.gz and s.bz2 of upload 2");
}

/// FOSSology's Docker set-up makes a SQL_ASCII database: an upload's name may be Latin-1
/// bytes, which the report shows (lossily) instead of stopping on.
#[test]
fn a_name_that_is_not_utf8_is_reported_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let s = ScratchSite::create(&d.path().join("site"), "SQL_ASCII").unwrap();
    let mut c = s.site.connect().unwrap();
    c.batch_execute(
        "INSERT INTO upload (upload_filename, upload_mode) VALUES (E'caf\\351.tar', 96)",
    )
    .unwrap();
    let r = site_report(&mut c, &s.site.repo, None).unwrap();
    let text = format!("{r:?}");
    assert!(text.contains("caf\u{fffd}.tar"), "{text}");
    let names = db::uploads::names(&mut c, None).unwrap();
    assert_eq!(names.len(), 1);
    assert_eq!(names[0].1, "caf\u{fffd}.tar");
}

/// FOSSology's package agent opens RPMs and `.dsc` files in `files` itself: such a container
/// stays until the agent has recorded it (a `pkg_rpm` row), then it may go like any other.
#[test]
fn a_package_the_package_agent_has_not_read_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = build(dir.path());
    let repo = st.fx.s.site.repo.clone();
    let c = &mut st.fx.c;
    c.execute(
        "INSERT INTO mimetype (mimetype_name) SELECT 'application/x-rpm' \
         WHERE NOT EXISTS (SELECT 1 FROM mimetype WHERE mimetype_name = 'application/x-rpm')",
        &[],
    )
    .unwrap();
    c.execute(
        "UPDATE pfile SET pfile_mimetypefk = \
         (SELECT mimetype_pk FROM mimetype WHERE mimetype_name = 'application/x-rpm') \
         WHERE pfile_pk = $1",
        &[&st.t1],
    )
    .unwrap();
    let r = site_report(c, &repo, None).unwrap();
    let kept = r.kept.iter().find(|k| k.pfile_pk == st.t1).expect("kept");
    assert_eq!(
        kept.reasons,
        vec![KeepReason::PackageAgent {
            mimetype: "application/x-rpm".into()
        }]
    );
    assert!(r.render().contains("package agent reads it"));

    // Once pkgagent has recorded it, it is a container like any other.
    c.execute(
        "INSERT INTO pkg_rpm (pkg_name, pkg_arch, version, rpm_filename, license, packager, \
         release, build_date, vendor, pfile_fk) \
         VALUES ('a', 'x86_64', '1', 'a.rpm', 'MIT', 'p', '1', 'today', 'v', $1)",
        &[&st.t1],
    )
    .unwrap();
    let r = site_report(c, &repo, None).unwrap();
    assert!(!r.kept.iter().any(|k| k.pfile_pk == st.t1));
    assert_eq!(r.total.removable.files, 3);
}
