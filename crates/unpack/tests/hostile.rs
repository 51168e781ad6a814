//! Hostile archives: bombs, traversal, links pointing outside, device files, truncation,
//! absurd nesting. Each bad member is recorded, the rest unpacks, nothing lands outside the
//! repository and the temporary folder is cleaned up.

mod common;
use common::*;
use holdfast_unpack::{upload_files, UnpackConfig, UnpackOptions};
use std::path::Path;

fn up(
    s: &holdfast_sandbox::scratch::ScratchSite,
    f: &Path,
    cfg: &UnpackConfig,
) -> (i32, holdfast_unpack::UnpackSummary) {
    upload_files(
        &s.site,
        std::slice::from_ref(&f.to_path_buf()),
        cfg,
        &UnpackOptions::default(),
    )
    .unwrap()
    .remove(0)
}

fn names(s: &holdfast_sandbox::scratch::ScratchSite, upload: i32) -> Vec<String> {
    rows(s, upload).into_iter().map(|r| r.0).collect()
}

fn temp_empty(s: &holdfast_sandbox::scratch::ScratchSite) {
    let tmp = holdfast_unpack::engine::temp_root(&s.site.repo, &UnpackConfig::default());
    assert_eq!(
        std::fs::read_dir(tmp).unwrap().count(),
        0,
        "temporary folder left behind"
    );
}

#[test]
fn bomb_member_is_skipped_and_the_rest_unpacks() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    // A tiny member that inflates to 200 MB (bzip2 of zeros: a ratio of a million).
    sh(
        &w,
        "head -c 200000000 /dev/zero | bzip2 -9 > zeros.bz2 && echo fine > ok.txt \
         && tar czf ../bomb.tar.gz zeros.bz2 ok.txt",
    );
    let (id, sum) = up(&s, &d.path().join("bomb.tar.gz"), &UnpackConfig::default());
    assert_eq!(sum.errors.len(), 1, "{:?}", sum.errors);
    assert!(
        sum.errors[0].contains("zeros.bz2") && sum.errors[0].contains("bomb"),
        "{:?}",
        sum.errors
    );
    assert!(names(&s, id).contains(&"ok.txt".to_string()));
    assert!(sum.bytes < 50_000_000);
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);

    // The total limit holds too.
    let cfg = UnpackConfig {
        max_expanded_bytes: 1000,
        ..Default::default()
    };
    make_tree(&w.join("p"));
    sh(&w, "tar cf ../big.tar p");
    let (_, sum) = up(&s, &d.path().join("big.tar"), &cfg);
    assert!(
        sum.errors.iter().any(|e| e.contains("expands beyond")),
        "{:?}",
        sum.errors
    );
    temp_empty(&s);
}

#[test]
fn traversal_links_and_devices_stay_inside() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    let script = r#"
import tarfile, io
t = tarfile.open('evil.tar', 'w', format=tarfile.GNU_FORMAT)
def add(name, data=b'x', **kw):
    i = tarfile.TarInfo(name); i.size = len(data)
    for k, v in kw.items(): setattr(i, k, v)
    t.addfile(i, io.BytesIO(data) if i.type in (tarfile.REGTYPE,) else None)
add('../../evil.txt', b'escape')
add('/tmp/holdfast-abs-evil', b'absolute')
add('ok.txt', b'fine\n')
add('esc', type=tarfile.SYMTYPE, linkname='/etc/passwd', size=0)
add('up', type=tarfile.SYMTYPE, linkname='../../..', size=0)
add('up/through-link.txt', b'via symlink')
add('hl', type=tarfile.LNKTYPE, linkname='/etc/passwd', size=0)
add('hl2', type=tarfile.LNKTYPE, linkname='ok.txt', size=0)
add('dev0', type=tarfile.CHRTYPE, devmajor=1, devminor=3, size=0)
add('fifo', type=tarfile.FIFOTYPE, size=0)
t.close()
"#;
    std::fs::write(w.join("mk.py"), script).unwrap();
    run(&w, "python3", &["mk.py"]);
    let (id, sum) = up(&s, &w.join("evil.tar"), &UnpackConfig::default());
    let errs = sum.errors.join("\n");
    assert!(
        errs.contains("../../evil.txt") && errs.contains("(..)"),
        "{errs}"
    );
    assert!(
        errs.contains("member hl:") && errs.contains("outside"),
        "{errs}"
    );
    assert!(errs.contains("member dev0: device file"), "{errs}");
    // A named pipe is a row without a file, as ununpack records it (mode 010000).
    assert!(!errs.contains("member fifo"), "{errs}");
    let n = names(&s, id);
    // As GNU tar (which ununpack runs), nothing is written through a link of the archive.
    assert!(
        errs.contains("member up/through-link.txt: written through the symbolic link up"),
        "{errs}"
    );
    for want in ["ok.txt", "hl2", "esc", "up", "holdfast-abs-evil"] {
        assert!(n.contains(&want.to_string()), "{want} missing from {n:?}");
    }
    assert!(n.contains(&"fifo".to_string()), "{n:?}");
    assert!(!n.contains(&"evil.txt".to_string()));
    assert!(!d.path().join("evil.txt").exists() && !Path::new("/evil.txt").exists());
    assert!(!Path::new("/tmp/holdfast-abs-evil").exists());
    // The hard link inside the archive is the same file as its target.
    let mut c = s.site.connect().unwrap();
    let pf: Vec<i32> = c
        .query(
            "SELECT pfile_fk FROM uploadtree_a WHERE upload_fk = $1 AND ufile_name IN ('ok.txt', 'hl2')",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(pf.len(), 2);
    assert_eq!(pf[0], pf[1]);
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

#[test]
fn truncated_and_corrupt_archives_keep_what_they_can() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    make_tree(&w.join("p"));
    sh(
        &w,
        "tar cf full.tar p && head -c $(( $(stat -c %s full.tar) - 2000000 )) full.tar > ../cut.tar \
         && zip -qr full.zip p && head -c $(( $(stat -c %s full.zip) - 1000 )) full.zip > ../cut.zip \
         && gzip -c full.tar > full.tar.gz && head -c $(( $(stat -c %s full.tar.gz) / 2 )) full.tar.gz > ../cut.tar.gz",
    );
    // A tar file GNU tar cannot list gets no row at all from FOSSology's ununpack (its
    // FindCmd gives up on it), and none from holdfast: said as a note.
    let (id, sum) = up(&s, &d.path().join("cut.tar"), &UnpackConfig::default());
    assert!(
        sum.notes.iter().any(|n| n.contains("tar cannot list it")),
        "{:?}",
        sum.notes
    );
    assert!(names(&s, id).is_empty());
    for f in ["cut.zip", "cut.tar.gz"] {
        let (id, sum) = up(&s, &d.path().join(f), &UnpackConfig::default());
        assert!(!sum.errors.is_empty(), "{f}: no error recorded");
        assert!(
            sum.errors.iter().all(|e| e.contains(f)),
            "{f}: {:?}",
            sum.errors
        );
        check_shape(&s, id);
        assert_partial(&s, id, sum.errors.len());
    }
    temp_empty(&s);
}

#[test]
fn absurd_nesting_stops_at_the_depth_limit() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    sh(
        &w,
        "echo core > f0 && for i in 1 2 3 4 5 6 7 8; do gzip -c f$((i-1)) > f$i; rm f$((i-1)); done && mv f8 ../deep.gz",
    );
    let cfg = UnpackConfig {
        max_depth: 4,
        ..Default::default()
    };
    let (id, sum) = up(&s, &d.path().join("deep.gz"), &cfg);
    assert_eq!(sum.errors.len(), 1, "{:?}", sum.errors);
    assert!(sum.errors[0].contains("nested deeper than 4"));
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    let containers = rows(&s, id)
        .iter()
        .filter(|r| holdfast_unpack::classify(r.1) == holdfast_unpack::Class::Container)
        .count();
    assert_eq!(containers, 4);
}

/// git's own source tarball carries t/t5000/huge-and-future.tar: 2 KiB that extract to a
/// 64 GiB file. The same made here with GNU tar's sparse format.
#[test]
fn sparse_tar_claiming_64_gib_is_stopped() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    sh(
        &w,
        "truncate -s 64G huge && echo tail >> huge && tar --sparse -czf ../huge.tar.gz huge && rm huge",
    );
    let small = std::fs::metadata(d.path().join("huge.tar.gz"))
        .unwrap()
        .len();
    assert!(small < 100_000, "the bomb is small: {small} bytes");
    let (id, sum) = up(&s, &d.path().join("huge.tar.gz"), &UnpackConfig::default());
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("member huge") && e.contains("expands beyond")),
        "{:?}",
        sum.errors
    );
    assert!(sum.bytes < 100_000_000, "{} bytes expanded", sum.bytes);
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// A nested bomb (like 42.zip): every level looks harmless alone, the whole expands to
/// 10 GB from a gold file of a few KiB; the upload-wide cap stops it early.
#[test]
fn nested_bomb_is_capped_by_the_upload_budget() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    sh(
        &w,
        "head -c 1000000 /dev/zero | bzip2 -9 > z.bz2 \
         && mkdir a && for i in $(seq 100); do cp z.bz2 a/z$i.bz2; done && tar cjf inner.tar.bz2 a \
         && mkdir b && for i in $(seq 100); do cp inner.tar.bz2 b/i$i.tar.bz2; done && tar cjf ../nest.tar.bz2 b",
    );
    let gold = std::fs::metadata(d.path().join("nest.tar.bz2"))
        .unwrap()
        .len();
    assert!(gold < 20_000, "gold is small: {gold}");
    let t = std::time::Instant::now();
    let (id, sum) = up(&s, &d.path().join("nest.tar.bz2"), &UnpackConfig::default());
    assert!(
        sum.errors.iter().any(|e| e.contains("expands beyond")),
        "{:?}",
        sum.errors
    );
    assert!(sum.bytes < 100_000_000, "{} bytes expanded", sum.bytes);
    assert!(t.elapsed().as_secs() < 60);
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// The overlapping-entries zip bomb: 100 central-directory entries all naming one deflate
/// stream of 50 MiB of zeros, 55 KB that would expand to 5.2 GB. Only the first entry is
/// unpacked; each overlapping one is a recorded error, and the upload stays in its budget.
#[test]
fn overlapping_zip_entries_are_caught() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let script = r#"
import zlib, struct
data = b'\0' * (50 << 20)
c = zlib.compressobj(9, zlib.DEFLATED, -15)
comp = c.compress(data) + c.flush()
crc = zlib.crc32(data)
local = struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 8, 0, 0, crc, len(comp), len(data), 1, 0) + b'a' + comp
cd = b''
for i in range(100):
    n = b'f%03d' % i
    cd += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 8, 0, 0, crc, len(comp), len(data), len(n), 0, 0, 0, 0, 0, 0) + n
eocd = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 100, 100, len(cd), len(local), 0)
open('overlap.zip', 'wb').write(local + cd + eocd)
"#;
    std::fs::write(d.path().join("mk.py"), script).unwrap();
    run(d.path(), "python3", &["mk.py"]);
    let zip = d.path().join("overlap.zip");
    let gold = std::fs::metadata(&zip).unwrap().len();
    assert!(gold < 60_000, "the bomb is small: {gold}");
    let (id, sum) = up(&s, &zip, &UnpackConfig::default());
    let overlaps = sum
        .errors
        .iter()
        .filter(|e| e.contains("overlaps member f000"))
        .count();
    assert_eq!(overlaps, 99, "{:?}", &sum.errors[..sum.errors.len().min(3)]);
    assert!(sum.bytes <= 1000 * gold + gold, "{} bytes kept", sum.bytes);
    let n = names(&s, id);
    assert!(n.contains(&"f000".to_string()), "{n:?}");
    assert!(!n.contains(&"f001".to_string()), "{n:?}");
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// One budget for the whole upload: 100 members of 5 MiB of zeros, each harmless alone
/// (well under the per-member ratio), add up to 500 MB from a gold file of a few KiB. The
/// upload stops at its budget with a recorded error; the members before it keep their rows.
#[test]
fn many_small_bombs_share_one_budget() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    // Written by a stream of zeros: no 500 MB on the test machine's disk.
    let script = r#"
import tarfile, io
class Zeros(io.RawIOBase):
    def __init__(self, n): self.n = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
t = tarfile.open('many.tar.bz2', 'w:bz2')
for i in range(100):
    info = tarfile.TarInfo('m/z%03d' % i); info.size = 5 << 20
    t.addfile(info, io.BufferedReader(Zeros(info.size)))
t.close()
"#;
    std::fs::write(d.path().join("mk.py"), script).unwrap();
    run(d.path(), "python3", &["mk.py"]);
    let gold = std::fs::metadata(d.path().join("many.tar.bz2"))
        .unwrap()
        .len();
    assert!(gold < 16_000, "gold is small: {gold}");
    let t = std::time::Instant::now();
    let (id, sum) = up(&s, &d.path().join("many.tar.bz2"), &UnpackConfig::default());
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("expands beyond its budget of 16777216 bytes")),
        "{:?}",
        sum.errors
    );
    // The tar itself (its first 16 MiB) is the only thing charged beyond the members.
    assert!(sum.bytes <= 16 << 20, "{} bytes kept", sum.bytes);
    assert!(t.elapsed().as_secs() < 60);
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// The `ar` 0.9 crasher (a GNU long-name reference with no `//` table), alone, inside a tar
/// and inside a `.deb`: a recorded member error each time, and the rest unpacks.
#[test]
fn ar_crasher_is_a_member_error() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    sh(
        &w,
        r#"printf '!<arch>\n/9              0           0     0     644     4         `\nabc\n' > x.a"#,
    );
    let (id, sum) = up(&s, &w.join("x.a"), &UnpackConfig::default());
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("x.a") && e.contains("offset 9")),
        "{:?}",
        sum.errors
    );
    assert!(names(&s, id).contains(&"x.a".to_string()));

    // A .deb whose data.tar carries the crasher, and which ends with a crashing member.
    sh(
        &w,
        r#"mkdir -p pkg/DEBIAN pkg/usr/share/doc/p && printf 'Package: p\nVersion: 1\nArchitecture: all\nMaintainer: m <m@x>\nDescription: d\n' > pkg/DEBIAN/control \
         && cp x.a pkg/usr/share/doc/p/ && echo docs > pkg/usr/share/doc/p/README \
         && dpkg-deb --root-owner-group -Zgzip -b pkg p.deb >/dev/null \
         && printf '/9              0           0     0     644     4         `\nabc\n' >> p.deb \
         && echo fine > good.txt && tar cf ../crash.tar good.txt x.a p.deb"#,
    );
    let (id, sum) = up(&s, &d.path().join("crash.tar"), &UnpackConfig::default());
    let errs = sum.errors.join("\n");
    assert!(errs.contains("crash.tar/x.a"), "{errs}");
    assert!(errs.contains("crash.tar/p.deb"), "{errs}");
    assert!(
        errs.contains("p.deb/data.tar.gz/") && errs.contains("doc/p/x.a"),
        "{errs}"
    );
    let n = names(&s, id);
    for want in [
        "good.txt",
        "x.a",
        "p.deb",
        "README",
        "control",
        "debian-binary",
    ] {
        assert!(n.contains(&want.to_string()), "{want} missing from {n:?}");
    }
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// A Debian source package whose tarball is 2 GiB of zeros (320 KB of concatenated xz
/// streams): `dpkg-source` may write only what the upload has left, the temporary folder
/// never holds more than the budget, and the .dsc gets a recorded error.
#[test]
fn dsc_with_a_bomb_tarball_stays_in_budget() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    let script = r#"
import tarfile, hashlib, subprocess
i = tarfile.TarInfo('bomb-1.0/zeros'); i.size = 2 << 30
hdr = i.tobuf(format=tarfile.GNU_FORMAT)
xz = lambda b: subprocess.run(['xz', '-1', '-T1'], input=b, capture_output=True, check=True).stdout
block = xz(b'\0' * (64 << 20))
dirent = tarfile.TarInfo('bomb-1.0/'); dirent.type = tarfile.DIRTYPE
data = xz(dirent.tobuf(format=tarfile.GNU_FORMAT) + hdr) + block * 32 + xz(b'\0' * 1024)
open('bomb_1.0.tar.xz', 'wb').write(data)
md5 = hashlib.md5(data).hexdigest()
open('bomb_1.0.dsc', 'w').write(f'''Format: 3.0 (native)
Source: bomb
Version: 1.0
Files:
 {md5} {len(data)} bomb_1.0.tar.xz
''')
"#;
    std::fs::write(w.join("mk.py"), script).unwrap();
    run(&w, "python3", &["mk.py"]);
    sh(
        &w,
        "rm mk.py && tar cf ../src.tar bomb_1.0.dsc bomb_1.0.tar.xz",
    );
    let gold = std::fs::metadata(d.path().join("src.tar")).unwrap().len();
    // A ratio of 100 keeps the test quick; the point is the same at 1000.
    let cfg = UnpackConfig {
        max_ratio: 100,
        ..Default::default()
    };
    let budget = 100 * gold;
    // Samples the temporary folder's size while the upload runs.
    let tmp = holdfast_unpack::engine::temp_root(&s.site.repo, &UnpackConfig::default());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(holdfast_unpack::budget::dir_size(&tmp));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    let (id, sum) = up(&s, &d.path().join("src.tar"), &cfg);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    let errs = sum.errors.join("\n");
    assert!(errs.contains("src.tar/bomb_1.0.dsc: dpkg-source"), "{errs}");
    assert!(
        peak <= budget,
        "temp peaked at {peak} bytes, budget {budget}"
    );
    assert!(peak > 0, "the sampler saw nothing");
    assert!(names(&s, id).contains(&"bomb_1.0.dsc".to_string()));
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// Clashing member paths, settled as extraction onto disk settles them, every member with a
/// row or a recorded error naming it, and nothing in `files/` without a row.
#[test]
fn clashing_names_each_get_a_row_or_an_error() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    let script = r#"
import tarfile, io
t = tarfile.open('clash.tar', 'w', format=tarfile.GNU_FORMAT)
def add(name, data=b'', **kw):
    i = tarfile.TarInfo(name); i.size = len(data)
    for k, v in kw.items(): setattr(i, k, v)
    t.addfile(i, io.BytesIO(data) if i.type == tarfile.REGTYPE else None)
add('dup.txt', b'first copy\n')
add('dup.txt', b'second copy\n')
add('f', b'a file that becomes a folder\n')
add('f/inner.txt', b'inside f\n')
add('g/inner.txt', b'inside g\n')
add('g', b'a file where a folder with members is\n')
add('e', type=tarfile.DIRTYPE)
add('e', b'a file replacing an empty folder\n')
add('lnk', type=tarfile.SYMTYPE, linkname='g')
add('lnk/through.txt', b'written through a link\n')
add('latin\xe9.txt'.encode('latin-1').decode('utf-8', 'surrogateescape'), b'e acute\n')
add('latin\xfc.txt'.encode('latin-1').decode('utf-8', 'surrogateescape'), b'u umlaut\n')
t.close()
"#;
    std::fs::write(w.join("mk.py"), script).unwrap();
    run(&w, "python3", &["mk.py"]);
    let (id, sum) = up(&s, &w.join("clash.tar"), &UnpackConfig::default());
    let errs = sum.errors.join("\n");
    let member_err = |m: &str, why: &str| {
        assert!(
            sum.errors
                .iter()
                .any(|e| e.contains(&format!("clash.tar: member {m}: {why}"))),
            "{m}: {why}\n{errs}"
        )
    };
    member_err("dup.txt", "the archive has this path again later");
    member_err("f", "replaced by a folder of the same name");
    member_err("g", "a folder of this name with members in it came earlier");
    member_err("e", "an empty folder replaced by a later member");
    member_err("lnk/through.txt", "written through the symbolic link lnk");
    let r = rows(&s, id);
    let count = |n: &str| r.iter().filter(|x| x.0 == n).count();
    assert_eq!(count("dup.txt"), 1);
    assert_eq!(count("inner.txt"), 2);
    assert_eq!(count("through.txt"), 0);
    assert_eq!(count("lnk"), 1);
    assert_eq!(count("e"), 1);
    // The kept dup.txt is the second copy.
    let mut c = s.site.connect().unwrap();
    let size: i64 = c
        .query_one(
            "SELECT p.pfile_size FROM uploadtree_a t JOIN pfile p ON p.pfile_pk = t.pfile_fk
             WHERE t.upload_fk = $1 AND t.ufile_name = 'dup.txt'",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(size, "second copy\n".len() as i64);
    // Names equal after `~` mangling: two rows (FOSSology's), or one row and an error. A
    // name that is not valid UTF-8 is stored empty in a UTF8 database, as FOSSology's is.
    let latin = r
        .iter()
        .filter(|x| x.0.starts_with("latin") || (x.0.is_empty() && x.1 & 0o170000 == 0o100000))
        .count();
    let latin_errs = sum
        .errors
        .iter()
        .filter(|e| e.contains("member latin"))
        .count();
    assert_eq!(latin + latin_errs, 2, "{r:?}\n{errs}");
    // Nothing in files/ without a row: every stored file is named by some row.
    let named: std::collections::HashSet<String> = c
        .query(
            "SELECT lower(p.pfile_sha1) || '.' || lower(p.pfile_md5) || '.' || p.pfile_size
             FROM uploadtree_a t JOIN pfile p ON p.pfile_pk = t.pfile_fk WHERE t.upload_fk = $1",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let files = s.site.repo.root.join("localhost/files");
    for e in walkdir::WalkDir::new(&files) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let n = e.file_name().to_string_lossy().to_string();
            assert!(named.contains(&n), "{n} is in files/ without a row");
        }
    }
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// Strict decoders: an xz stream whose index lies about its blocks (its CRC32 re-sealed, so
/// only the structure is wrong, as in xz-utils' `bad-2-index-*`) is an error that names
/// it, for a `.tar.xz` read straight as tar and for a plain `.xz`; `xz -t` is the oracle.
#[test]
fn xz_with_a_lying_index_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    make_tree(&w.join("p"));
    let script = r#"
import struct, zlib, sys
def lie(src, dst):
    b = bytearray(open(src, 'rb').read())
    l = len(b)
    backward = (struct.unpack('<I', b[l-8:l-4])[0] + 1) * 4
    i = l - 12 - backward
    # index: 0x00, count, then (unpadded, uncompressed) per block: bump the first
    # uncompressed size's low bits.
    p = i + 1
    while b[p] & 0x80: p += 1
    p += 1
    while b[p] & 0x80: p += 1
    p += 1
    b[p] ^= 0x04
    end = l - 12 - 4
    b[end:end+4] = struct.pack('<I', zlib.crc32(bytes(b[i:end])) & 0xffffffff)
    open(dst, 'wb').write(b)
lie(sys.argv[1], sys.argv[2]); lie(sys.argv[3], sys.argv[4])
"#;
    std::fs::write(w.join("lie.py"), script).unwrap();
    sh(
        &w,
        "tar cf p.tar p && xz -k p.tar && cp p/COPYING c.txt && xz -k c.txt \
         && python3 lie.py p.tar.xz ../bad.tar.xz c.txt.xz ../bad.txt.xz \
         && ! xz -t ../bad.tar.xz 2>/dev/null && ! xz -t ../bad.txt.xz 2>/dev/null",
    );
    // A plain `.xz` is not unpacked (FOSSology leaves an empty artifact.dir), so its lying
    // index never yields content: nothing below the top file and its empty artifact folder.
    let (id, _) = up(&s, &d.path().join("bad.txt.xz"), &UnpackConfig::default());
    let names: Vec<String> = rows(&s, id).into_iter().map(|x| x.0).collect();
    assert_eq!(names, ["bad.txt.xz", "artifact.dir"], "{names:?}");
    let f = "bad.tar.xz";
    let (id, sum) = up(&s, &d.path().join(f), &UnpackConfig::default());
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains(&format!("{f}: ")) && e.contains("corrupt xz stream")),
        "{f}: {:?}",
        sum.errors
    );
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// A GNU long-name record of 100 MB (the tar crate holds such records in memory): an error
/// naming the archive, not an allocation the size of the record; members before it stay.
#[test]
fn tar_long_name_bomb_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let w = d.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    let script = r#"
import tarfile, io
t = tarfile.open('ln.tar', 'w', format=tarfile.GNU_FORMAT)
i = tarfile.TarInfo('ok.txt'); i.size = 5; t.addfile(i, io.BytesIO(b'fine\n'))
i = tarfile.TarInfo('a' * 100_000_000); i.size = 4; t.addfile(i, io.BytesIO(b'long'))
t.close()
"#;
    std::fs::write(w.join("mk.py"), script).unwrap();
    sh(&w, "python3 mk.py && gzip -1 ln.tar && mv ln.tar.gz ..");
    let (id, sum) = up(&s, &d.path().join("ln.tar.gz"), &UnpackConfig::default());
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("ln.tar.gz/ln.tar") && e.contains("larger than 67108864 bytes")),
        "{:?}",
        sum.errors
    );
    assert!(names(&s, id).contains(&"ok.txt".to_string()));
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
    temp_empty(&s);
}

/// Temporary disk is part of the budget: members read ahead of the workers wait in the
/// temporary folder, so past half the temp budget the reader processes members itself.
/// Sixteen 2 MiB members against a 6 MiB temp budget: all unpack, none is refused.
#[test]
fn members_waiting_to_be_processed_stay_in_the_temp_budget() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let script = r#"
import tarfile, io, os
t = tarfile.open('wide.tar', 'w')
for i in range(16):
    # Text, not random bytes: random data sometimes looks like an archive to 7z's probe,
    # which is not what this test is about.
    data = (('member %02d\n' % i) * (1 << 18))[:2 << 20].encode()
    info = tarfile.TarInfo('w/r%02d.bin' % i); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
t.close()
"#;
    std::fs::write(d.path().join("mk.py"), script).unwrap();
    run(d.path(), "python3", &["mk.py"]);
    let cfg = UnpackConfig {
        max_temp_bytes: 6 << 20,
        threads: 2,
        ..Default::default()
    };
    let (id, sum) = up(&s, &d.path().join("wide.tar"), &cfg);
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    let n = names(&s, id);
    assert_eq!(
        n.iter().filter(|x| x.ends_with(".bin")).count(),
        16,
        "{n:?}"
    );
    check_shape(&s, id);
    temp_empty(&s);
}

/// A zip whose central directory names a member twice: the later entry is read (as unzip
/// leaves it) and the duplicate is recorded, not dropped silently.
#[test]
fn zip_with_a_name_twice_is_recorded() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let script = r#"
import zipfile, warnings
warnings.simplefilter('ignore')
with zipfile.ZipFile('dup.zip', 'w') as z:
    z.writestr('same.txt', 'first copy\n')
    z.writestr('other.txt', 'other\n')
    z.writestr('same.txt', 'second copy\n')
"#;
    std::fs::write(d.path().join("mk.py"), script).unwrap();
    run(d.path(), "python3", &["mk.py"]);
    let (id, sum) = up(&s, &d.path().join("dup.zip"), &UnpackConfig::default());
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("dup.zip: its central directory names some members more than once")),
        "{:?}",
        sum.errors
    );
    let mut c = s.site.connect().unwrap();
    let size: i64 = c
        .query_one(
            "SELECT p.pfile_size FROM uploadtree_a t JOIN pfile p ON p.pfile_pk = t.pfile_fk
             WHERE t.upload_fk = $1 AND t.ufile_name = 'same.txt'",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(size, "second copy\n".len() as i64);
    assert!(names(&s, id).contains(&"other.txt".to_string()));
    check_shape(&s, id);
    assert_partial(&s, id, sum.errors.len());
}

/// Hard links to a nested tar copy its whole unpacked subtree, and copies nest: 63 members
/// read would give about 10,200 rows. The copied rows count against `max_members`.
#[test]
fn hard_links_to_a_container_count_against_max_members() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let script = r#"
import tarfile, io, gzip
K, L = 20, 3
def tar_bytes(inner_name, inner):
    b = io.BytesIO(); t = tarfile.open(fileobj=b, mode='w', format=tarfile.GNU_FORMAT)
    i = tarfile.TarInfo(inner_name); i.size = len(inner); t.addfile(i, io.BytesIO(inner))
    for k in range(K):
        h = tarfile.TarInfo('h%d' % k); h.type = tarfile.LNKTYPE; h.linkname = inner_name
        t.addfile(h)
    t.close(); return b.getvalue()
data = tar_bytes('f', b'leaf\n')
for lvl in range(1, L): data = tar_bytes('t%d.tar' % lvl, data)
open('links.tar.gz', 'wb').write(gzip.compress(data, 9))
"#;
    std::fs::write(d.path().join("mk.py"), script).unwrap();
    run(d.path(), "python3", &["mk.py"]);
    let cfg = UnpackConfig {
        max_members: 200,
        ..Default::default()
    };
    let (id, sum) = up(&s, &d.path().join("links.tar.gz"), &cfg);
    let rows = names(&s, id).len();
    assert!(
        rows <= 200,
        "{rows} rows from an upload limited to 200 members"
    );
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("more than 200 members") && e.contains("hard link")),
        "{:?}",
        sum.errors
    );
    check_shape(&s, id);
    temp_empty(&s);
}

/// A member skipped for its name (`../z`) still has to be read through to get to the next
/// one: that is work, charged and polled per chunk. 200 MiB of xz'd zeros against a 16 MiB
/// work budget stop at the budget instead of being decompressed to the end.
#[test]
fn a_skipped_traversal_member_is_still_work() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let script = r#"
import tarfile, io
class Zeros(io.RawIOBase):
    def __init__(s, n): s.n = n
    def readable(s): return True
    def readinto(s, b):
        k = min(len(b), s.n); b[:k] = bytes(k); s.n -= k; return k
n = 200 << 20
with tarfile.open('sink.tar.xz', 'w:xz', format=tarfile.GNU_FORMAT, preset=0) as t:
    h = tarfile.TarInfo('../z'); h.size = n; t.addfile(h, Zeros(n))
    d = b'fine\n'; h = tarfile.TarInfo('ok.txt'); h.size = len(d); t.addfile(h, io.BytesIO(d))
"#;
    std::fs::write(d.path().join("mk.py"), script).unwrap();
    run(d.path(), "python3", &["mk.py"]);
    let cfg = UnpackConfig {
        max_expanded_bytes: 8 << 20,
        ..Default::default()
    };
    let (id, sum) = up(&s, &d.path().join("sink.tar.xz"), &cfg);
    assert!(
        sum.errors.iter().any(|e| e.contains("(..)")),
        "{:?}",
        sum.errors
    );
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("member ../z") && e.contains("counting skipped members")),
        "{:?}",
        sum.errors
    );
    check_shape(&s, id);
    temp_empty(&s);
}

/// Runs `tar_script` (Python) in `dir` with `run_Z(total, byte)` at hand: a `.Z` of one
/// repeated byte, LZW codes for ever longer runs, 16-bit, block mode.
fn make_tar_of_z(dir: &Path, tar_script: &str) {
    let run_z = r#"
import tarfile, io
def run_Z(total, byte):
    out = bytearray(b'\x1f\x9d\x90'); acc = nbits = 0
    def put(c, w):
        nonlocal acc, nbits
        acc |= c << nbits; nbits += w
        while nbits >= 8: out.append(acc & 0xff); acc >>= 8; nbits -= 8
    left, j, free, w = total, 0, 257, 9
    while left > 0:
        w = 9
        while free > (1 << w) - 1 and w < 16: w += 1
        if j == 0: code, n = byte, 1
        elif free < 65536 and free - 255 <= left: code, n = free, free - 255
        elif free < 65536: break
        else: code, n = 65535, 65280
        if n > left: break
        put(code, w); left -= n
        if j > 0 and free < 65536: free += 1
        j += 1
    for _ in range(left): put(byte, w)
    if nbits: out.append(acc & 0xff)
    return bytes(out)
"#;
    std::fs::write(dir.join("mk.py"), format!("{run_z}{tar_script}")).unwrap();
    run(dir, "python3", &["mk.py"]);
}

/// `.Z` files go through `gzip -dc`, whose output is kept like any member's: three 900 kB
/// outputs (each below FOSSology's ratio of 1000) against a 1 MiB budget stop the upload.
#[test]
fn compress_output_is_charged_to_the_upload_budget() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    make_tar_of_z(
        d.path(),
        r#"
t = tarfile.open('three.tar', 'w')
for name, b in (('a.Z', 65), ('b.Z', 66), ('c.Z', 67)):
    data = run_Z(900000, b)
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
t.close()
"#,
    );
    let out = std::process::Command::new("sh")
        .args(["-c", "tar xOf three.tar a.Z | gzip -dc | wc -c"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "900000");
    // One thread: `gzip` meets the file-size limit; two: a finished output is charged too
    // late. Either way the upload stops for its budget, not for one member's error.
    for threads in [1, 2] {
        let cfg = UnpackConfig {
            max_expanded_bytes: 1 << 20,
            threads,
            ..Default::default()
        };
        let (id, sum) = up(&s, &d.path().join("three.tar"), &cfg);
        assert!(
            sum.errors.iter().any(|e| e.contains("expands beyond")),
            "{threads} threads: {:?}",
            sum.errors
        );
        assert!(sum.bytes <= (1 << 20) + 20_000, "{} bytes kept", sum.bytes);
        check_shape(&s, id);
        temp_empty(&s);
    }
}

/// A `.Z` whose output passes what one member may expand to (its ratio, 16 MiB at least) is
/// skipped as a `.gz` member read in process is: the upload goes on with its other members.
#[test]
fn a_compress_member_over_its_ratio_is_skipped_not_the_upload() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    make_tar_of_z(
        d.path(),
        r#"
t = tarfile.open('mixed.tar', 'w')
data = run_Z(40000000, 65)
i = tarfile.TarInfo('big.Z'); i.size = len(data); t.addfile(i, io.BytesIO(data))
text = ''.join('line %d of a plain text file\\n' % n for n in range(4000)).encode()
i = tarfile.TarInfo('after.txt'); i.size = len(text); t.addfile(i, io.BytesIO(text))
t.close()
"#,
    );
    let (id, sum) = up(&s, &d.path().join("mixed.tar"), &UnpackConfig::default());
    assert!(
        sum.errors
            .iter()
            .any(|e| e.contains("one member may expand to")),
        "{:?}",
        sum.errors
    );
    assert!(
        !sum.errors.iter().any(|e| e.contains("expands beyond")),
        "the upload went on: {:?}",
        sum.errors
    );
    assert!(sum.bytes < (16 << 20), "{} bytes kept", sum.bytes);
    assert!(
        names(&s, id).iter().any(|n| n == "after.txt"),
        "{:?}",
        names(&s, id)
    );
    check_shape(&s, id);
    temp_empty(&s);
}

/// A member skipped for its ratio (as ununpack skips it) gives back what reading it took:
/// eight 16 MiB members of zeros, each in its own small tar.xz, against a 100 MiB budget
/// leave the budget whole for the rest.
#[test]
fn members_skipped_for_their_ratio_give_their_budget_back() {
    let d = tempfile::tempdir().unwrap();
    let s = site(d.path());
    let script = r#"
import tarfile, io, lzma
def tar_of(name, data, mode='w'):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode=mode) as t:
        i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
    return b.getvalue()
t = tarfile.open('ratio.tar', 'w')
def add(name, data):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
for k in range(8):
    add('z%d.tar.xz' % k, lzma.compress(tar_of('zeros%d' % k, bytes(16 << 20)), preset=9))
# Makes the gold big enough that the budget, not its ratio, is the limit.
add('pad.txt', b''.join(b'line %08d of padding\n' % i for i in range(10000)))
add('ok.txt', b'fine\n')
t.close()
"#;
    std::fs::write(d.path().join("mk.py"), script).unwrap();
    run(d.path(), "python3", &["mk.py"]);
    let cfg = UnpackConfig {
        max_expanded_bytes: 100 << 20,
        ..Default::default()
    };
    let (id, sum) = up(&s, &d.path().join("ratio.tar"), &cfg);
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    assert!(
        sum.notes
            .iter()
            .filter(|n| n.contains("1000 times"))
            .count()
            == 8,
        "{:?}",
        sum.notes
    );
    assert!(names(&s, id).contains(&"ok.txt".to_string()));
    check_shape(&s, id);
    temp_empty(&s);
}
