//! Archives made by the real tools, unpacked by holdfast, compared with what an independent
//! extractor (`bsdtar`, `7z`, `gzip`) gets from the same archive, with the database shape
//! checked against FOSSology's (bits, artifacts, nested set).

mod common;
use common::*;
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::path::{Path, PathBuf};

fn upload(
    s: &holdfast_sandbox::scratch::ScratchSite,
    f: &Path,
) -> (i32, holdfast_unpack::UnpackSummary) {
    let mut r = upload_files(
        &s.site,
        std::slice::from_ref(&f.to_path_buf()),
        &UnpackConfig::default(),
        &UnpackOptions::default(),
    )
    .unwrap();
    r.remove(0)
}

/// Uploads every archive and compares its leaves with the independent extractor's.
fn compare(s: &holdfast_sandbox::scratch::ScratchSite, work: &Path, cases: &[(PathBuf, &[&str])]) {
    for (i, (file, nested)) in cases.iter().enumerate() {
        let (up, sum) = upload(s, file);
        assert!(
            sum.errors.is_empty(),
            "{}: {:?}",
            file.display(),
            sum.errors
        );
        let ours = db_leaves(s, up);
        let theirs = independent_leaves(file, &work.join(format!("ind{i}")), nested);
        assert!(!ours.is_empty(), "{}: no leaves", file.display());
        assert_eq!(ours, theirs, "{}: leaves differ", file.display());
        check_shape(s, up);
    }
}

#[test]
fn tar_gz_upload_matches_bsdtar_and_has_fossology_shape() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let src = d.path().join("src");
    make_tree(&src.join("proj"));
    sh(&src, "tar czf ../proj.tar.gz proj");
    let gz = d.path().join("proj.tar.gz");
    let (up, sum) = upload(&s, &gz);
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    assert_eq!(
        db_leaves(&s, up),
        independent_leaves(&gz, &d.path().join("x"), &[])
    );
    check_shape(&s, up);
    let r = rows(&s, up);
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
    let bits = |i: usize| r[i].1 as u32;
    // As FOSSology's ununpack records its top file: the repository copy (02664) under the
    // default mask 0177000, so a regular file with the set-group-id bit.
    assert_eq!(
        bits(0),
        0o102000 | 1 << 29,
        "top: regular file + set-group-id + container"
    );
    assert_eq!(
        bits(1) & (1 << 28 | 1 << 29 | 0o040000),
        1 << 28 | 1 << 29 | 0o040000
    );
    assert_eq!(
        bits(2),
        0o100000 | 1 << 29,
        "proj.tar: container, not artifact"
    );
    // A symbolic link is a row without pfile, never followed.
    let mut c = s.site.connect().unwrap();
    let link: (i32, i32) = c
        .query_one(
            "SELECT ufile_mode, pfile_fk FROM uploadtree_a WHERE upload_fk = $1 AND ufile_name = 'link'",
            &[&up],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((link.0 as u32 & 0o170000, link.1), (0o120000, 0));
    // gold is in `gold` and hard-linked into `files`.
    let name = holdfast_unpack::hash::hash_file(&gz).unwrap().pfile_name();
    use std::os::unix::fs::MetadataExt;
    let g = std::fs::metadata(s.site.repo.path("gold", &name).unwrap()).unwrap();
    let f = std::fs::metadata(s.site.repo.path("files", &name).unwrap()).unwrap();
    assert_eq!((g.ino(), g.dev()), (f.ino(), f.dev()));
    // The temporary folder is gone.
    let tmp = holdfast_unpack::engine::temp_root(&s.site.repo, &UnpackConfig::default());
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
}

#[test]
fn compressors_and_archivers() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let src = d.path().join("src");
    make_tree(&src.join("proj"));
    let out = d.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    sh(
        &src,
        "tar cjf ../out/p.tar.bz2 proj && tar cJf ../out/p.tar.xz proj \
         && tar --zstd -cf ../out/p.tar.zst proj && tar cf - proj | lz4 -q > ../out/p.tar.lz4 \
         && tar cf - proj | xz --format=lzma > ../out/p.tar.lzma \
         && tar --format=v7 -cf ../out/p-v7.tar proj && tar --format=posix -cf ../out/p-pax.tar proj \
         && zip -qry ../out/p.zip proj \
         && find proj | cpio -o -H newc --quiet > ../out/p-newc.cpio \
         && find proj | cpio -o -H odc --quiet > ../out/p-odc.cpio \
         && gzip -c proj/COPYING > ../out/COPYING.gz \
         && cd proj && ar rc ../../out/p.a README COPYING src/main.c",
    );
    let none: &[&str] = &[];
    let cases: Vec<(PathBuf, &[&str])> = [
        "p.tar.bz2",
        "p.tar.xz",
        "p.tar.zst",
        "p.tar.lz4",
        "p.tar.lzma",
        "p-v7.tar",
        "p-pax.tar",
        "p.zip",
        "p-newc.cpio",
        "p-odc.cpio",
        "COPYING.gz",
        "p.a",
    ]
    .iter()
    .map(|n| (out.join(n), none))
    .collect();
    compare(&s, d.path(), &cases);
    // .tar.xz unpacks straight as tar, as FOSSology's `tar -J` does.
    let xz = rows_of(&s, "p.tar.xz");
    assert_eq!(xz[0].0, "p.tar.xz");
    assert_eq!(xz[2].0, "proj");
    // zip: artifact.meta beside artifact.dir.
    let z = rows_of(&s, "p.zip");
    assert!(z
        .iter()
        .any(|r| r.0 == "artifact.meta" && r.1 as u32 & (1 << 28) != 0));
}

#[test]
fn nested_archives() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let src = d.path().join("src");
    make_tree(&src.join("inner"));
    sh(
        &src,
        "zip -qr inner.zip inner && mkdir -p mid && mv inner.zip mid/ && cp inner/README mid/ \
         && tar czf mid/again.tar.gz inner && tar cjf outer.tar.bz2 mid && 7z a -bd -bso0 ../nest.7z outer.tar.bz2 inner/COPYING",
    );
    let f = d.path().join("nest.7z");
    compare(
        &s,
        d.path(),
        &[(f, &[".tar.bz2", ".zip", ".tar.gz"] as &[&str])],
    );
}

#[test]
fn packages_rpm_deb_iso() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let src = d.path().join("src");
    make_tree(&src.join("proj"));
    let top = d.path().display().to_string();
    // A .deb built by dpkg-deb.
    sh(
        &src,
        "mkdir -p pkg/DEBIAN pkg/usr/share/hello && cp -r proj pkg/usr/share/hello/ \
         && printf 'Package: hello\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@t>\\nDescription: test\\n' > pkg/DEBIAN/control \
         && dpkg-deb --root-owner-group -Zxz --build pkg ../hello.deb >/dev/null",
    );
    // An RPM built by rpmbuild.
    let spec = format!(
        "Name: hello\nVersion: 1.0\nRelease: 1\nSummary: test\nLicense: GPL-2.0\nBuildArch: noarch\n\
         %description\ntest package\n%install\nmkdir -p %{{buildroot}}/usr/share/hello\n\
         cp -r {top}/src/proj %{{buildroot}}/usr/share/hello/\n%files\n/usr/share/hello\n"
    );
    std::fs::write(src.join("hello.spec"), spec).unwrap();
    sh(
        &src,
        &format!(
            "rpmbuild --quiet --define '_topdir {top}/rpm' --define '__os_install_post %{{nil}}' -bb hello.spec >/dev/null 2>&1 \
             && cp {top}/rpm/RPMS/noarch/*.rpm {top}/hello.rpm"
        ),
    );
    // An ISO 9660 image (Rock Ridge) made by xorriso.
    sh(
        &src,
        "xorriso -as mkisofs -R -o ../proj.iso proj 2>/dev/null",
    );
    let none: &[&str] = &[];
    compare(
        &s,
        d.path(),
        &[
            (
                d.path().join("hello.deb"),
                &[".tar.xz", ".tar.gz", ".tar.zst"] as &[&str],
            ),
            (d.path().join("hello.rpm"), none),
            (d.path().join("proj.iso"), none),
        ],
    );
    let deb = rows_of(&s, "hello.deb");
    let meta = deb
        .iter()
        .position(|r| r.0 == "artifact.meta")
        .expect("deb meta");
    assert!(deb[meta].1 as u32 & (1 << 28) != 0);
    let rpm = rows_of(&s, "hello.rpm");
    let names: Vec<&str> = rpm.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        &names[..4],
        ["hello.rpm", "artifact.unpacked", "artifact.dir", "usr"]
    );
    assert!(names.contains(&"artifact.meta"));
    let unpacked = rpm[1].1 as u32;
    assert_eq!(
        unpacked & (1 << 28 | 1 << 29),
        1 << 28 | 1 << 29,
        "payload: artifact container"
    );
}

#[test]
fn debian_source_package_is_unpacked_with_dpkg_source() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    make_tree(&w.join("hello-1.0"));
    sh(
        &w,
        "tar czf hello_1.0.orig.tar.gz hello-1.0 \
         && mkdir -p hello-1.0/debian/source hello-1.0/debian/patches \
         && echo '3.0 (quilt)' > hello-1.0/debian/source/format \
         && printf 'Source: hello\\nMaintainer: T <t@example.org>\\n\\nPackage: hello\\nArchitecture: all\\nDescription: t\\n x\\n' > hello-1.0/debian/control \
         && printf 'hello (1.0-1) unstable; urgency=low\\n\\n  * t\\n\\n -- T <t@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\\n' > hello-1.0/debian/changelog \
         && printf -- '--- a/README\\n+++ b/README\\n@@ -1 +1 @@\\n-hello holdfast\\n+hello patched\\n' > hello-1.0/debian/patches/01-readme.patch \
         && echo 01-readme.patch > hello-1.0/debian/patches/series \
         && dpkg-source -b hello-1.0 >/dev/null 2>&1 \
         && mkdir pkg && cp hello_1.0-1.dsc hello_1.0.orig.tar.gz hello_1.0-1.debian.tar.xz pkg/ \
         && tar cf ../srcpkg.tar pkg \
         && dpkg-source --no-check -x pkg/hello_1.0-1.dsc ref >/dev/null 2>&1",
    );
    let (up, sum) = upload(&s, &d.path().join("srcpkg.tar"));
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    check_shape(&s, up);
    // Leaves: both tarballs' contents plus the patched tree from dpkg-source.
    let mut want = independent_leaves(
        &d.path().join("srcpkg.tar"),
        &d.path().join("x"),
        &[".tar.gz", ".tar.xz", ".dsc"],
    );
    for e in walkdir::WalkDir::new(w.join("ref"))
        .into_iter()
        .filter_map(|e| e.ok())
    {
        if e.file_type().is_file() {
            want.push(sha1_of(e.path()));
        }
    }
    want.sort();
    assert_eq!(db_leaves(&s, up), want);
    let r = rows(&s, up);
    let i = r.iter().position(|x| x.0 == "hello_1.0-1.dsc").unwrap();
    assert_eq!(r[i].1 as u32 & (1 << 29), 1 << 29, ".dsc is a container");
    assert_eq!(r[i + 1].0, "artifact.unpacked");
    let patched = sha1_of(&w.join("ref/README"));
    assert!(db_leaves(&s, up).contains(&patched), "patches applied");
}

#[test]
fn ignore_scm_drops_version_control_rows_but_stores_files() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(w.join("p/.git/objects")).unwrap();
    std::fs::write(w.join("p/.git/objects/blob"), "scm only content\n").unwrap();
    std::fs::write(w.join("p/main.c"), "int x;\n").unwrap();
    sh(&w, "tar cf ../p.tar p");
    std::fs::create_dir_all(w.join("p/node_modules")).unwrap();
    std::fs::write(w.join("p/node_modules/dep.js"), "dep\n").unwrap();
    let opts = UnpackOptions {
        ignore_scm: true,
        exclude: vec!["node_modules".into()],
        ..Default::default()
    };
    let (up, _) = upload_files(
        &s.site,
        &[d.path().join("p.tar")],
        &UnpackConfig::default(),
        &opts,
    )
    .unwrap()
    .remove(0);
    let names: Vec<String> = rows(&s, up).into_iter().map(|r| r.0).collect();
    assert!(names.contains(&"main.c".to_string()));
    assert!(
        !names.iter().any(|n| n == ".git" || n == "blob"),
        "{names:?}"
    );
    check_shape(&s, up);
    let blob = holdfast_unpack::hash::hash_bytes(b"scm only content\n").pfile_name();
    assert!(s.site.repo.path("files", &blob).unwrap().is_file());
    let args: Option<String> = s
        .site
        .connect()
        .unwrap()
        .query_one(
            "SELECT jq_cmd_args FROM jobqueue WHERE jq_type = 'ununpack'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(args.as_deref(), Some("-I -E node_modules"));
}
