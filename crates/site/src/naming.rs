//! Names as FOSSology's ununpack gives them: `ufile_name` rows, artifact names and the names
//! of the files its unpack commands write.

pub const ARTIFACT_DIR: &str = "artifact.dir";
pub const ARTIFACT_UNPACKED: &str = "artifact.unpacked";
pub const ARTIFACT_META: &str = "artifact.meta";

/// `ufile_name` for a file named `raw` on disk (`DBInsertUploadTree`): the name goes
/// through `PQescapeStringConn`, which refuses bytes that are not valid in the client
/// encoding (then the row gets an empty name), and every byte that is not printable ASCII,
/// `/` and `\` becomes `~` (UTF-8 bytes too, one `~` per byte). `utf8_client`: the
/// connection's client encoding is UTF8 (libpq takes the database's encoding; a
/// `SQL_ASCII` database accepts any byte).
pub fn ufile_name(raw: &[u8], utf8_client: bool) -> String {
    if utf8_client && std::str::from_utf8(raw).is_err() {
        return String::new();
    }
    raw.iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) && b != b'/' && b != b'\\' {
                b as char
            } else {
                '~'
            }
        })
        .collect()
}

/// `RemovePostfix`: drops the last extension unless it starts with a digit (`a.tar.gz` →
/// `a.tar`, `hello.1` stays).
pub fn remove_postfix(name: &str) -> &str {
    match name.rfind('.') {
        Some(i) if !name[i + 1..].starts_with(|c: char| c.is_ascii_digit()) => &name[..i],
        _ => name,
    }
}

/// The file a single-stream decompressor (`zcat`, `bzcat`, `pdftotext`) writes for a
/// member named `name`: ununpack removes the postfix twice from `name.dir`, so once from
/// the name. For the top file the upload's own name is used the same way.
pub fn pack_output_name(name: &str) -> &str {
    remove_postfix(name)
}

/// `ExtractZstd`'s output name and `--format`: the name up to the first `.` followed by
/// `zst`, `tzst`, `lzma`, `xz`, `txz` or `lz4` (any case, prefix match), else the whole name.
pub fn zstd_output_name(name: &str) -> (&str, Option<&'static str>) {
    let b = name.as_bytes();
    for (i, _) in name.match_indices('.') {
        let ext = &b[i + 1..];
        let has =
            |p: &str| ext.len() >= p.len() && ext[..p.len()].eq_ignore_ascii_case(p.as_bytes());
        let fmt = if has("zst") || has("tzst") {
            Some("zstd")
        } else if has("lzma") {
            Some("lzma")
        } else if has("xz") || has("txz") {
            Some("xz")
        } else if has("lz4") || has("tlz4") {
            Some("lz4")
        } else {
            None
        };
        if fmt.is_some() {
            return (&name[..i], fmt);
        }
    }
    (name, None)
}

/// `ExtractLzip`'s output name: the name up to the first `.` followed by `lz` or `tlz`
/// (any case, prefix match), else the whole name.
pub fn lzip_output_name(name: &str) -> &str {
    let b = name.as_bytes();
    for (i, _) in name.match_indices('.') {
        let ext = &b[i + 1..];
        let has =
            |p: &str| ext.len() >= p.len() && ext[..p.len()].eq_ignore_ascii_case(p.as_bytes());
        if has("lz") || has("tlz") {
            return &name[..i];
        }
    }
    name
}

/// The name ununpack gives an artifact from its file name on disk.
pub fn artifact_name(disk_name: &str) -> &'static str {
    let n = disk_name.len();
    if n > 4 && disk_name.ends_with(".dir") {
        ARTIFACT_DIR
    } else if n > 9 && disk_name.ends_with(".unpacked") {
        ARTIFACT_UNPACKED
    } else if n > 5 && disk_name.ends_with(".meta") {
        ARTIFACT_META
    } else {
        "artifact"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_ununpack_stores_them() {
        // Golden data: ünïcødé.txt, back\slash.txt, latin\351.txt (not UTF-8).
        assert_eq!(
            ufile_name("ünïcødé.txt".as_bytes(), true),
            "~~n~~c~~d~~.txt"
        );
        assert_eq!(ufile_name(b"back\\slash.txt", true), "back~slash.txt");
        assert_eq!(ufile_name(b"latin\xe9.txt", true), "");
        assert_eq!(ufile_name(b"latin\xe9.txt", false), "latin~.txt");
        assert_eq!(
            ufile_name(b"it's a \"quote\".txt", true),
            "it's a \"quote\".txt"
        );
        assert_eq!(ufile_name(b"a\tb\x7f", true), "a~b~");
    }

    #[test]
    fn postfixes() {
        assert_eq!(remove_postfix("NEWS.gz"), "NEWS");
        assert_eq!(remove_postfix("hello.1.gz"), "hello.1");
        assert_eq!(remove_postfix("hello.1"), "hello.1");
        assert_eq!(remove_postfix("noext"), "noext");
        assert_eq!(remove_postfix("spec.pdf"), "spec");
        assert_eq!(zstd_output_name("zs.txt.zst"), ("zs.txt", Some("zstd")));
        assert_eq!(zstd_output_name("a.TZST"), ("a", Some("zstd")));
        assert_eq!(zstd_output_name("x.tar.lz4"), ("x.tar", Some("lz4")));
        assert_eq!(zstd_output_name("data"), ("data", None));
        assert_eq!(artifact_name("x.tar.gz.dir"), ARTIFACT_DIR);
        assert_eq!(artifact_name("x.dsc.unpacked"), ARTIFACT_UNPACKED);
        assert_eq!(artifact_name("x.zip.meta"), ARTIFACT_META);
    }
}
