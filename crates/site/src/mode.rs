//! FOSSology's mode bits. `uploadtree.ufile_mode`: the low `st_mode` bits of a file as FOSSology's ununpack saw it,
//! plus FOSSology's own flag bits (`src/ununpack/agent/ununpack.h`, `BITS_*`).

/// Has children (archives, compressed files, packages, and every folder).
pub const BIT_CONTAINER: u32 = 1 << 29;
/// Made by the unpacker (`artifact.dir`, `artifact.unpacked`, `artifact.meta`).
pub const BIT_ARTIFACT: u32 = 1 << 28;
pub const BIT_PROJECT: u32 = 1 << 27;
pub const BIT_REPLICA: u32 = 1 << 26;
pub const BIT_PACKAGE: u32 = 1 << 25;
/// Set on folders by holdfast before it matched ununpack (FOSSology never sets it); still
/// read so that rows written by older holdfast versions classify the same.
pub const BIT_DIRECTORY_LEGACY: u32 = 1 << 18;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_ISGID: u32 = 0o2000;

/// Mode ununpack's mask keeps when a row's parent command has none (`0177000`): the file
/// type and the set-user-id, set-group-id and sticky bits.
pub const MASK_DEFAULT: u32 = 0o177000;

/// What `fo_RepImport` leaves on a file it adds to `files` (`chmod(02664)`), and so what
/// ununpack sees on its top file and on any later hard link to a file it already imported.
pub const REPO_FILE_MODE: u32 = S_IFREG | 0o2664;
/// What ununpack's `MkDir` gives the folders it creates (`chmod(02770)`).
pub const UNPACK_DIR_MODE: u32 = S_IFDIR | 0o2770;

/// `upload.upload_mode` bits: a file upload (`wget_agent`, the upload page) ...
pub const UPLOAD_FILE: i32 = 1 << 3;
/// ... unpacked (ununpack) ...
pub const UPLOAD_UNPACKED: i32 = 1 << 5;
/// ... and numbered (adj2nest): 104 on a finished upload.
pub const UPLOAD_NESTED: i32 = 1 << 6;

/// What a row is, from its `ufile_mode` alone (used by repository slimming).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Class {
    /// A folder (from an archive, or an artifact folder): no pfile.
    Directory,
    /// A file with children (archive, compressed file, package): rebuildable from its parent.
    Container,
    /// A file the unpacker made (`artifact.meta`, ...), not a container.
    Artifact,
    /// An ordinary file (or symbolic link, named pipe).
    Leaf,
}

/// Classifies an `uploadtree.ufile_mode` value. A PDF's `artifact.dir` has no file type
/// bits at all (ununpack masks them away with `0100000`), so a container that is not a
/// regular file is a folder too.
pub fn classify(ufile_mode: i32) -> Class {
    let m = ufile_mode as u32;
    let kind = m & S_IFMT;
    if m & BIT_DIRECTORY_LEGACY != 0 || kind == S_IFDIR || (m & BIT_CONTAINER != 0 && kind == 0) {
        Class::Directory
    } else if m & BIT_CONTAINER != 0 {
        Class::Container
    } else if m & BIT_ARTIFACT != 0 {
        Class::Artifact
    } else {
        Class::Leaf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_fossology_rows() {
        // Modes as FOSSology's ununpack wrote them (golden data).
        assert_eq!(classify(0x30004400), Class::Directory); // artifact.dir
        assert_eq!(classify(0x30000000), Class::Directory); // a PDF's artifact.dir
        assert_eq!(classify(0x20004000), Class::Directory); // folder from a tar
        assert_eq!(classify(0x20008400), Class::Container); // top archive
        assert_eq!(classify(0x10008400), Class::Artifact); // artifact.meta
        assert_eq!(classify(0x8400), Class::Leaf);
        assert_eq!(classify(0xa000), Class::Leaf); // symbolic link
        assert_eq!(classify(0x1000), Class::Leaf); // named pipe
    }
}
