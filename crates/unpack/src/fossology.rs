//! FOSSology's ununpack command table (`ununpack_globals.h`) and `FindCmd` (`utils.c`):
//! which files are unpacked, with which masks for their members' modes, which `mimetype`
//! they get, and the `artifact.meta` commands. The file type comes from libmagic, as in
//! ununpack, with ununpack's own corrections (`.dsc` files, "octet" files 7z can read,
//! Office files, self-extracting zips, tar files `tar -t` refuses).

use crate::detect::Kind;
use std::cell::RefCell;
use std::path::Path;
use std::process::{Command, Stdio};

/// How ununpack handles one table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `zcat`/`bzcat`/`pdftotext` into `artifact.dir` (CMD_PACK).
    Pack,
    /// An archive command run in `artifact.dir` (CMD_ARC), `ar x` (CMD_AR), `isoinfo`
    /// (CMD_ISO).
    Arc,
    /// `rpm2cpio` into `artifact.unpacked` (CMD_RPM).
    Rpm,
    /// `dpkg-source -x` into `artifact.unpacked` (CMD_DEB).
    Deb,
    /// `zstd -d` / `lzip -d` into `artifact.dir` (CMD_ZSTD, CMD_LZIP).
    Stream,
    /// Disk images and partition tables: FOSSology needs sleuthkit and its `departition`
    /// for these; holdfast treats them as a FOSSology without those tools does (a file).
    Unavailable,
}

/// One row of the command table.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub magic: &'static str,
    pub how: How,
    /// `ModeMaskDir`, `ModeMaskReg`: what of a member's `st_mode` goes into `ufile_mode`.
    pub dmask: u32,
    pub fmask: u32,
    /// The `artifact.meta` command (`MetaCmd`): program and its arguments before the file.
    pub meta: Option<&'static [&'static str]>,
}

const fn e(magic: &'static str, how: How, dmask: u32, fmask: u32) -> Entry {
    Entry {
        magic,
        how,
        dmask,
        fmask,
        meta: None,
    }
}

const fn m(
    magic: &'static str,
    how: How,
    dmask: u32,
    fmask: u32,
    meta: &'static [&'static str],
) -> Entry {
    Entry {
        magic,
        how,
        dmask,
        fmask,
        meta: Some(meta),
    }
}

const D: u32 = 0o177000;
const ALL: u32 = 0o177777;
const UNZIP_META: &[&str] = &["unzip", "-Zhzv"];
const DPKG_META: &[&str] = &["dpkg", "-I"];
const ISO_META: &[&str] = &["isoinfo", "-d", "-i"];

/// The table in ununpack's order (its `InitCmd` adds the `mimetype` rows in this order),
/// without the UPX row (FOSSology builds without it by default).
pub const TABLE: &[Entry] = &[
    e("application/gzip", How::Pack, D, D),
    e("application/x-gzip", How::Pack, D, D),
    e("application/x-compress", How::Pack, D, D),
    e("application/x-bzip", How::Pack, D, D),
    e("application/x-bzip2", How::Pack, D, D),
    e("application/pdf", How::Pack, 0o100000, 0o100000),
    e("application/x-pdf", How::Pack, 0o100000, 0o100000),
    m("application/x-zip", How::Arc, D, D, UNZIP_META),
    m("application/zip", How::Arc, D, D, UNZIP_META),
    e("application/x-tar", How::Arc, D, ALL),
    e("application/x-gtar", How::Arc, D, ALL),
    e("application/x-cpio", How::Arc, ALL, ALL),
    e("application/x-rar", How::Arc, D, D),
    e("application/x-cab", How::Arc, D, D),
    e("application/x-7z-compressed", How::Arc, D, D),
    e("application/x-7z-w-compressed", How::Arc, D, D),
    m("application/x-rpm", How::Rpm, D, D, &["rpm", "-qip"]),
    e("application/x-archive", How::Arc, D, ALL),
    m("application/x-debian-package", How::Arc, D, ALL, DPKG_META),
    m("application/x-iso", How::Arc, ALL, ALL, ISO_META),
    m("application/x-iso9660-image", How::Arc, ALL, ALL, ISO_META),
    e("application/x-fat", How::Unavailable, 0o177700, ALL),
    e("application/x-ntfs", How::Unavailable, 0o177700, ALL),
    e("application/x-ext2", How::Unavailable, ALL, ALL),
    e("application/x-ext3", How::Unavailable, ALL, ALL),
    e("application/x-x86_boot", How::Unavailable, D, D),
    e("application/x-debian-source", How::Deb, D, D),
    e("application/x-xz", How::Arc, D, ALL),
    m("application/jar", How::Arc, D, D, UNZIP_META),
    m("application/java-archive", How::Arc, D, D, UNZIP_META),
    e("application/x-dosexec", How::Arc, D, D),
    m(
        "application/vnd.debian.binary-package",
        How::Arc,
        D,
        ALL,
        DPKG_META,
    ),
    m("application/zstd", How::Stream, D, D, &["zstd", "-lv"]),
    e("application/x-lz4", How::Stream, D, D),
    e("application/x-lzma", How::Stream, D, D),
    m("application/x-lzip", How::Stream, D, D, &["lzip", "-lv"]),
];

/// The masks for members of a file no command unpacks (the default row).
pub const DEFAULT_MASK: u32 = D;

/// What ununpack decided for one regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A table row (index into [`TABLE`]).
    Cmd(usize),
    /// No row matches: an ordinary file.
    Default,
    /// `FindCmd` gave up (a tar file `tar -t` refuses): ununpack skips the file entirely,
    /// no row and no repository file.
    Skip,
}

impl Found {
    pub fn entry(self) -> Option<&'static Entry> {
        match self {
            Found::Cmd(i) => TABLE.get(i),
            _ => None,
        }
    }

    pub fn mime(self) -> Option<&'static str> {
        self.entry().map(|e| e.magic)
    }

    /// The holdfast reader for this row, given what the content looks like.
    pub fn kind(self, content: Kind) -> Kind {
        let Some(e) = self.entry() else {
            return Kind::Leaf;
        };
        match e.magic {
            "application/gzip" | "application/x-gzip" => Kind::Gzip,
            "application/x-compress" => Kind::Compress,
            "application/x-bzip" | "application/x-bzip2" => Kind::Bzip2,
            "application/pdf" | "application/x-pdf" => Kind::Pdf,
            "application/x-zip"
            | "application/zip"
            | "application/jar"
            | "application/java-archive" => Kind::Zip,
            "application/x-tar" | "application/x-gtar" => Kind::Tar,
            "application/x-cpio" => Kind::Cpio,
            "application/x-rar" | "application/x-cab" => Kind::Bsdtar,
            "application/x-7z-compressed" if content == Kind::SevenZ => Kind::SevenZ,
            "application/x-7z-compressed"
            | "application/x-7z-w-compressed"
            | "application/x-dosexec" => Kind::SevenZTool,
            "application/x-rpm" => Kind::Rpm,
            "application/x-archive" => Kind::Ar,
            "application/x-debian-package" | "application/vnd.debian.binary-package" => Kind::Deb,
            "application/x-iso" | "application/x-iso9660-image" => Kind::Iso,
            "application/x-debian-source" => Kind::Dsc,
            "application/x-xz" => Kind::Xz,
            "application/zstd" => Kind::Zstd,
            "application/x-lz4" => Kind::Lz4,
            "application/x-lzma" => Kind::Lzma,
            "application/x-lzip" => Kind::Lzip,
            _ => Kind::Leaf,
        }
    }
}

thread_local! {
    static COOKIE: RefCell<Option<magic::Cookie<magic::cookie::Load>>> = const { RefCell::new(None) };
}

/// libmagic's answer for `bytes` (MIME type and encoding, as ununpack asks for it), or its
/// description with `describe`.
fn magic_of(bytes: &[u8], describe: bool) -> String {
    COOKIE.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = magic::Cookie::open(magic::cookie::Flags::MIME)
                .ok()
                .and_then(|k| k.load(&Default::default()).ok());
        }
        let Some(k) = c.as_ref() else {
            return String::new();
        };
        let flags = if describe {
            magic::cookie::Flags::empty()
        } else {
            magic::cookie::Flags::MIME
        };
        if k.set_flags(flags).is_err() {
            return String::new();
        }
        let out = k.buffer(bytes).unwrap_or_default();
        let _ = k.set_flags(magic::cookie::Flags::MIME);
        out
    })
}

/// Whether libmagic can be used (its database loads).
pub fn magic_available() -> bool {
    !magic_of(b"hello\n", false).is_empty()
}

fn quiet(prog: &str, args: &[&str], file: &Path) -> Option<i32> {
    Command::new(prog)
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .and_then(|s| s.code())
}

/// `IsDebianSourceFile`: named `*.dsc` and its first 500 bytes look like one.
fn is_debian_source(name: &str, head: &[u8]) -> bool {
    if !name.ends_with(".dsc") {
        return false;
    }
    let h = &head[..head.len().min(500)];
    let has = |s: &[u8]| h.windows(s.len()).any(|w| w == s);
    (has(b"-----BEGIN PGP SIGNED MESSAGE-----") && has(b"Source:"))
        || (has(b"Format:") && has(b"Source:") && has(b"Version:"))
}

/// `FindCmd`: the table row for a regular file. `name` is the file's name on disk (for the
/// top file FOSSology's repository name, which never ends in `.dsc`), `head` its first
/// bytes (libmagic reads at most the first megabyte), `path` the file itself for the
/// checks ununpack runs with external tools.
pub fn find_cmd(name: &str, head: &[u8], path: &dyn Fn() -> Option<std::path::PathBuf>) -> Found {
    let mut ty = magic_of(head, false);
    if name == ".bss" && ty.contains("octet") {
        ty = "text/plain".into();
    }
    if ty.contains("octet") {
        let desc = magic_of(head, true);
        if desc.contains("Debian binary package") {
            ty = "application/x-debian-package".into();
        } else if desc.contains("ISO 9660") {
            ty = "application/x-iso9660-image".into();
        } else if let Some(p) = path() {
            // 7z reads many formats libmagic calls "data"; ununpack tries it on each and
            // takes it when both listing and testing work (testing is only tried here when
            // listing worked: the outcome is the same).
            let l = quiet("7z", &["l", "-y"], &p);
            if l == Some(0) && quiet("7z", &["t", "-y", "-pjunk"], &p) == Some(0) {
                ty = "application/x-7z-w-compressed".into();
            }
        }
    } else if is_debian_source(name, head) {
        ty = "application/x-debian-source".into();
    } else if ty.contains("msword") || ty.contains("vnd.ms") {
        ty = "application/x-7z-w-compressed".into();
    } else if ty.contains("application/x-exe") || ty.contains("application/x-shellscript") {
        if let Some(p) = path() {
            if matches!(quiet("unzip", &["-q", "-l"], &p), Some(0 | 1 | 2 | 51)) {
                ty = "application/x-zip".into();
            }
        }
    } else if ty.contains("application/x-tar") {
        if let Some(p) = path() {
            if quiet("tar", &["-tf"], &p) != Some(0) {
                return Found::Skip;
            }
        }
    }
    TABLE
        .iter()
        .position(|e| ty.contains(e.magic) && available(e))
        .map_or(Found::Default, Found::Cmd)
}

/// `CheckCommands`: rows whose tool is missing are passed over.
fn available(e: &Entry) -> bool {
    match e.how {
        How::Unavailable => false,
        How::Pack if e.magic.contains("pdf") => have("pdftotext"),
        How::Pack if e.magic.contains("compress") => have("gzip"),
        How::Deb => have("dpkg-source"),
        _ => match e.magic {
            "application/x-rar" | "application/x-cab" => have("bsdtar"),
            "application/x-7z-w-compressed" | "application/x-dosexec" => have("7z"),
            _ => true,
        },
    }
}

/// Whether a program is on `PATH` (cached).
pub fn have(prog: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let map = SEEN.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(&v) = map.lock().unwrap().get(prog) {
        return v;
    }
    let v = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(d.join(prog))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    map.lock().unwrap().insert(prog.to_string(), v);
    v
}

/// Runs an `artifact.meta` command on `path`; its standard output is the meta file (rpm's
/// command sends its errors there too, as ununpack's `2>&1` does). `None` when the program
/// is missing.
pub fn run_meta(cmd: &[&str], path: &Path) -> Option<Vec<u8>> {
    let (prog, args) = cmd.split_first()?;
    if !have(prog) {
        return None;
    }
    let rpm = *prog == "rpm";
    let out = Command::new(prog)
        .args(args)
        .arg(path)
        .stdin(Stdio::null())
        .stderr(if rpm { Stdio::piped() } else { Stdio::null() })
        .output()
        .ok()?;
    let mut text = out.stdout;
    if rpm {
        text.extend_from_slice(&out.stderr);
    }
    Some(text)
}

/// Meta files whose text names the container's own path: they depend on where the file was
/// when it was unpacked (for a member, FOSSology's random temporary folder).
pub fn meta_names_path(magic: &str) -> bool {
    matches!(
        magic,
        "application/x-zip"
            | "application/zip"
            | "application/jar"
            | "application/java-archive"
            | "application/zstd"
            | "application/x-lzip"
    )
}

/// Whether an `artifact.meta` can never be rebuilt byte for byte: its text names the
/// temporary folder its container was unpacked in (a member, not the top file).
pub fn meta_never_reproducible(container_mime: Option<&str>, top: bool) -> bool {
    container_mime.is_some_and(meta_names_path) && !top
}

/// Why an `artifact.meta` cannot be rebuilt byte for byte, from its container's mimetype
/// and whether the container is the upload's top file; `None` when it can be.
pub fn irreproducible_meta(container_mime: Option<&str>, top: bool) -> Option<&'static str> {
    if !container_mime.is_some_and(meta_names_path) {
        return None;
    }
    Some(if top {
        "its text (unzip -Zhzv, zstd -lv or lzip -lv output) names the path the upload's file had \
         in the repository it was unpacked in; it is rebuilt only at that same path (not data lost)"
    } else {
        "its text (unzip -Zhzv, zstd -lv or lzip -lv output) names FOSSology's temporary unpack \
         folder, which is different on every unpack; it cannot be rebuilt byte for byte (not data lost)"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_order_is_ununpacks() {
        assert_eq!(TABLE.len(), 36);
        assert_eq!(TABLE[0].magic, "application/gzip");
        assert_eq!(TABLE[35].magic, "application/x-lzip");
    }

    #[test]
    fn libmagic_types_map_like_find_cmd() {
        if !magic_available() {
            return;
        }
        let none = || None;
        let gz = [
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            find_cmd("a.gz", &gz, &none).mime(),
            Some("application/gzip")
        );
        assert_eq!(find_cmd("a.txt", b"hello world\n", &none), Found::Default);
        let dsc = b"Format: 3.0 (quilt)\nSource: hello\nVersion: 1-1\n";
        assert_eq!(
            find_cmd("hello_1-1.dsc", dsc, &none).mime(),
            Some("application/x-debian-source")
        );
        assert_eq!(find_cmd("0123.abc.12", dsc, &none), Found::Default);
    }
}
