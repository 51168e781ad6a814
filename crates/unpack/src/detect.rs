//! Format detection by content (magic numbers), never by file name. Which files are
//! unpacked, and how, is decided by ununpack's rules in `fossology` (libmagic); this tells
//! the readers apart (a tar inside an xz, a real 7z archive) and guards the readers.
//!
//! Unpacked: gzip, bzip2, xz (a `.tar.xz` straight as tar, like FOSSology's `tar -J`),
//! lzma, lzip, zstd, lz4, tar (v7, ustar, GNU, pax, sparse), zip/jar/war, ar and `.deb`,
//! cpio (newc, crc, odc), RPM (its payload), 7z, ISO 9660 (through `bsdtar`), RAR and CAB
//! (through `bsdtar` when installed) and Debian source packages (`.dsc` with its tarballs,
//! through `dpkg-source`), PDF (`pdftotext`), Unix `compress` (`gzip -dc`), and what only
//! the `7z` program reads. Leaves, with the reason: old binary cpio, UPX and disk images (FAT/NTFS/ext: FOSSology needs external tools and root
//! helpers for these; not worth the risk in a restore tool). A file that only looks like a
//! weak-magic format (lzma, v7 tar, .dsc) and fails to unpack is a plain leaf.

/// What a file is, as far as unpacking goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Leaf,
    Gzip,
    Bzip2,
    Xz,
    Lzma,
    Lzip,
    Zstd,
    Lz4,
    Tar,
    Zip,
    Ar,
    Deb,
    Cpio,
    Rpm,
    SevenZ,
    Iso,
    /// RAR and CAB: read through `bsdtar` when it is installed.
    Bsdtar,
    /// A Debian source control file (`.dsc`).
    Dsc,
    /// Unix `compress` (`.Z`): `gzip -dc`, as ununpack's `zcat`.
    Compress,
    /// PDF: `pdftotext -htmlmeta` output, as ununpack does.
    Pdf,
    /// What only the `7z` program reads (Office files, PE executables, other "data").
    SevenZTool,
}

impl Kind {
    /// Single compressed streams: one child, the name without its last extension.
    pub fn is_pack(self) -> bool {
        matches!(
            self,
            Kind::Gzip | Kind::Bzip2 | Kind::Xz | Kind::Lzma | Kind::Lzip | Kind::Zstd | Kind::Lz4
        )
    }

    /// Magic numbers that real data may match by chance: a failure to unpack means "leaf".
    pub fn weak(self) -> bool {
        matches!(self, Kind::Lzma | Kind::Tar | Kind::Dsc)
    }

    /// FOSSology's mode masks (directories, regular files) for members a command creates
    /// (`ModeMaskDir`, `ModeMaskReg` of its command table row).
    pub fn masks(self) -> (u32, u32) {
        match self {
            Kind::Tar | Kind::Ar | Kind::Deb | Kind::Xz => (0o177000, 0o177777),
            Kind::Cpio | Kind::Iso => (0o177777, 0o177777),
            Kind::Pdf => (0o100000, 0o100000),
            _ => (0o177000, 0o177000),
        }
    }
}

/// How many leading bytes [`detect`] wants (ISO 9660 has its magic at 32 KiB).
pub const HEAD: usize = 32774;

pub fn detect(head: &[u8]) -> Kind {
    let s = |m: &[u8]| head.starts_with(m);
    if s(&[0x1f, 0x8b]) {
        Kind::Gzip
    } else if s(b"BZh") && head.len() > 3 && (b'1'..=b'9').contains(&head[3]) {
        Kind::Bzip2
    } else if s(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Kind::Xz
    } else if s(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Kind::Zstd
    } else if s(&[0x04, 0x22, 0x4d, 0x18]) {
        Kind::Lz4
    } else if s(b"LZIP") {
        Kind::Lzip
    } else if s(b"PK\x03\x04") || s(b"PK\x05\x06") {
        Kind::Zip
    } else if s(&[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c]) {
        Kind::SevenZ
    } else if s(b"!<arch>\n") {
        if head.get(8..21) == Some(b"debian-binary") {
            Kind::Deb
        } else {
            Kind::Ar
        }
    } else if s(&[0xed, 0xab, 0xee, 0xdb]) {
        Kind::Rpm
    } else if s(b"070701") || s(b"070702") || s(b"070707") {
        Kind::Cpio
    } else if s(b"Rar!\x1a\x07") || s(b"MSCF\0\0\0\0") {
        Kind::Bsdtar
    } else if is_tar(head) {
        Kind::Tar
    } else if head.get(32769..32774) == Some(b"CD001") {
        Kind::Iso
    } else if is_lzma(head) {
        Kind::Lzma
    } else if is_dsc(head) {
        Kind::Dsc
    } else {
        Kind::Leaf
    }
}

fn is_tar(h: &[u8]) -> bool {
    if h.len() < 512 {
        return false;
    }
    if &h[257..262] == b"ustar" {
        return true;
    }
    // Old (v7) tar: no magic, only the header checksum.
    let field = &h[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    if h[0] == 0 {
        return false;
    }
    let sum: u32 = h[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    sum == want
}

fn is_lzma(h: &[u8]) -> bool {
    // .lzma (LZMA-alone): properties byte (lc/lp/pb), a power-of-two-ish dictionary and
    // an uncompressed size that is either unknown (all 0xff) or plausible.
    if h.len() < 13 || h[0] > 224 {
        return false;
    }
    let dict = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
    let size = u64::from_le_bytes(h[5..13].try_into().unwrap());
    h[0] == 0x5d
        && dict >= 4096
        && (dict.is_power_of_two() || (dict / 3).is_power_of_two())
        && (size == u64::MAX || size < (1 << 40))
}

fn is_dsc(h: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(&h[..h.len().min(8192)]) else {
        return false;
    };
    let body = text
        .strip_prefix("-----BEGIN PGP SIGNED MESSAGE-----\n")
        .map(|t| t.split_once("\n\n").map(|x| x.1).unwrap_or(""))
        .unwrap_or(text);
    let field = |f: &str| body.starts_with(&format!("{f}: ")) || body.contains(&format!("\n{f}: "));
    // A Files: line of a .dsc is "<md5> <size> <name>" (debian/copyright has Files: too).
    let files_line = body.split_once("\nFiles:").is_some_and(|(_, rest)| {
        rest.lines().nth(1).is_some_and(|l| {
            let mut w = l.split_whitespace();
            w.next()
                .is_some_and(|m| m.len() == 32 && m.bytes().all(|b| b.is_ascii_hexdigit()))
                && w.next()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                && w.next().is_some()
        })
    });
    field("Source") && field("Version") && files_line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Kind::Gzip);
        assert_eq!(detect(b"BZh91AY&SY"), Kind::Bzip2);
        assert_eq!(detect(b"!<arch>\ndebian-binary   "), Kind::Deb);
        assert_eq!(detect(b"!<arch>\nfoo.o/          "), Kind::Ar);
        assert_eq!(detect(b"hello world"), Kind::Leaf);
        assert_eq!(detect(b""), Kind::Leaf);
        assert_eq!(
            detect(b"Format: 3.0 (quilt)\nSource: hello\nVersion: 1-1\nFiles:\n 0123456789abcdef0123456789abcdef 1 x.tar.gz\n"),
            Kind::Dsc
        );
        // debian/copyright (machine-readable format) is not a .dsc.
        assert_eq!(
            detect(b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nSource: https://x\n\nFiles: *\nCopyright: 2000 X\n"),
            Kind::Leaf
        );
    }
}
