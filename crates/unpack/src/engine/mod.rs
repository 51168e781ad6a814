//! The recursive unpacker: turns one gold file into a [`Node`] tree and fills `files`.
//!
//! Members are never extracted under their archive names: every extracted file goes to a
//! numbered file in a private temporary folder (or stays in memory when small), so `../`,
//! absolute paths and symbolic links cannot make us write anywhere else. Archive paths only
//! become row names. Each file is hashed while it is written, its type is detected from its
//! first bytes, containers are unpacked in turn (in parallel, on rayon's pool), and finally
//! the file is moved into the repository under its content name unless that name is already
//! there. A member's ratio and depth limits stop that member; the upload's
//! [`Budget`](crate::budget::Budget) (bytes, members, temporary disk, time, stop signals) is
//! shared by every member and nested container, and once spent it winds the whole upload
//! down, recording what was left out.
//! Readers run behind a panic boundary ([`guard`]): a reader that panics on hostile input
//! becomes a recorded error for its container, and the rest of the upload goes on.
//!
//! Here: one file's way through ([`process`]). Beside it: the upload's shared state (`ctx`),
//! reading a member under its limits (`capture`), gathering a container's members
//! (`collect`) and laying them out as folders (`folders`), opening each kind of container
//! (`containers`, `decode`, `tar`), and putting files into `files` (`store`).

mod capture;
mod collect;
mod containers;
mod ctx;
mod decode;
mod folders;
mod store;
mod tar;

pub(crate) use capture::capture_within;
pub(crate) use collect::{collect, Collector, Member, Members};
pub use ctx::Ctx;
pub(crate) use decode::decoder;
pub(crate) use tar::read_tar;

use crate::detect::{detect, Kind, HEAD};
use crate::fossology::{find_cmd, Found};
use crate::hash::{hash_bytes, read_full, Hashes, CHUNK};
use crate::tree::*;
use crate::UnpackConfig;
use containers::{have_bsdtar, meta_node, unpack};
use holdfast_site::repo::Repository;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use store::{meta_root, place_member, store};

pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// Where a file's bytes are.
#[derive(Clone)]
pub enum Src {
    Mem(Arc<Vec<u8>>),
    /// A temporary file we own (moved into the repository when stored).
    Temp(PathBuf),
    /// A file we do not own (the gold file).
    Fixed(PathBuf),
}

impl Src {
    pub fn open(&self) -> io::Result<Box<dyn ReadSeek>> {
        Ok(match self {
            Src::Mem(v) => Box::new(Cursor::new(ArcBytes(v.clone()))),
            Src::Temp(p) | Src::Fixed(p) => {
                Box::new(io::BufReader::with_capacity(CHUNK, File::open(p)?))
            }
        })
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Src::Mem(v) => v.len() as u64,
            Src::Temp(p) | Src::Fixed(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        }
    }

    /// A path on disk, writing memory contents to a temporary file when needed.
    pub(crate) fn on_disk(&self, ctx: &Ctx) -> io::Result<PathBuf> {
        match self {
            Src::Mem(v) => {
                let p = ctx.temp_path();
                std::fs::write(&p, &v[..])?;
                Ok(p)
            }
            Src::Temp(p) | Src::Fixed(p) => Ok(p.clone()),
        }
    }
}

struct ArcBytes(Arc<Vec<u8>>);
impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// One file waiting to be classified, unpacked and stored.
pub struct Item {
    pub src: Src,
    pub hashes: Option<Hashes>,
    pub name: String,
    /// Low `st_mode` bits, already masked.
    pub mode: u32,
    pub artifact: bool,
    /// The path inside the upload, for messages.
    pub trail: String,
    /// The name on disk as a [`raw_comp`] string (`FindCmd` looks at it).
    pub raw_name: String,
}

/// Runs untrusted parsing code; a panic becomes `Err` with its message instead of taking the
/// upload down (readers of crates we do not control included).
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        format!("the reader crashed on malformed input ({msg}); rest of this container skipped")
    })
}

/// Up to this many leading bytes go to libmagic (its own default read size).
const MAGIC_BYTES: usize = 1 << 20;

/// Processes one file: find its command as ununpack's `FindCmd` does, unpack it if it is a
/// container, store it; returns its row.
pub fn process(ctx: &Ctx, item: Item, depth: u32, top: bool) -> Node {
    let hashes = match item.hashes.clone() {
        Some(h) => h,
        None => match &item.src {
            Src::Mem(v) => hash_bytes(v),
            Src::Temp(p) | Src::Fixed(p) => match crate::hash::hash_file(p) {
                Ok(h) => h,
                Err(e) => {
                    ctx.record(&item.trail, None, format!("cannot read: {e}"));
                    return Node::plain(&item.name, item.mode, vec![]);
                }
            },
        },
    };
    // A rebuild knows from the rows which members are plain files: it stores them as they
    // are, which skips libmagic (three quarters of a rebuild's CPU otherwise).
    if !top
        && ctx
            .plain
            .as_ref()
            .is_some_and(|p| p.contains(&hashes.pfile_name()))
    {
        ctx.plain_by_rows.fetch_add(1, Relaxed);
        store(ctx, &item.src, &hashes, false);
        let mode = item.mode | if item.artifact { BIT_ARTIFACT } else { 0 };
        let mut node = Node::plain(&item.name, mode, vec![]);
        node.pfile = Some(hashes);
        return node;
    }
    let head = match &item.src {
        Src::Mem(v) => v[..v.len().min(MAGIC_BYTES)].to_vec(),
        _ => {
            let mut buf = vec![0u8; MAGIC_BYTES];
            let n = item
                .src
                .open()
                .and_then(|mut r| read_full(&mut r, &mut buf))
                .unwrap_or(0);
            buf.truncate(n);
            buf
        }
    };
    // ununpack looks at the top file under its repository name (never `*.dsc`).
    let disk_name = if top {
        hashes.pfile_name()
    } else {
        String::from_utf8_lossy(&comp_bytes(&item.raw_name)).to_string()
    };
    let spill = std::cell::RefCell::new(None::<PathBuf>);
    let path_of = || -> Option<PathBuf> {
        match &item.src {
            Src::Mem(v) => {
                if spill.borrow().is_none() {
                    let p = ctx.temp_path();
                    std::fs::write(&p, &v[..]).ok()?;
                    *spill.borrow_mut() = Some(p);
                }
                spill.borrow().clone()
            }
            Src::Temp(p) | Src::Fixed(p) => Some(p.clone()),
        }
    };
    let found = if item.artifact && item.name == holdfast_site::naming::ARTIFACT_META {
        // The meta text is never unpacked (ununpack gives it no command).
        Found::Default
    } else {
        find_cmd(&disk_name, &head, &path_of)
    };
    if let Some(p) = spill.take() {
        let _ = std::fs::remove_file(p);
    }
    if found == Found::Skip {
        ctx.note(
            &item.trail,
            None,
            "looks like a tar file but tar cannot list it; FOSSology gives it no row, neither does holdfast",
        );
        if let Src::Temp(p) = &item.src {
            let _ = std::fs::remove_file(p);
        }
        let mut n = Node::plain(&item.name, item.mode, vec![]);
        n.skip = true;
        return n;
    }
    let kind = found.kind(detect(&head[..head.len().min(HEAD)]));
    let kind = if kind == Kind::Bsdtar && !have_bsdtar() {
        Kind::Leaf
    } else {
        kind
    };
    let kind = if kind != Kind::Leaf && depth >= ctx.cfg.max_depth {
        ctx.record(
            &item.trail,
            None,
            format!(
                "nested deeper than {} containers; kept as a file, not unpacked",
                ctx.cfg.max_depth
            ),
        );
        Kind::Leaf
    } else {
        kind
    };
    let mut mode = item.mode;
    if item.artifact && !top {
        mode |= BIT_ARTIFACT;
    }
    let mut children = Vec::new();
    // Like ununpack, a file with a command is a container even when its command fails.
    let container = kind != Kind::Leaf;
    if top {
        // The meta command and ununpack itself read the top file from `files`.
        store(ctx, &item.src, &hashes, false);
        ctx.top_dir
            .get_or_init(|| meta_root(ctx).join(format!("{}.dir", hashes.pfile_name())));
    }
    if container && kind != Kind::Dsc {
        let (kids, err) = guard(|| unpack(ctx, kind, &item, &hashes, depth))
            .unwrap_or_else(|e| (vec![], Some(e)));
        if let Some(e) = err {
            ctx.record(
                &item.trail,
                None,
                format!("{kind:?} unpacked only in part: {e}"),
            );
        }
        children = kids;
    }
    if container {
        mode |= BIT_CONTAINER;
        if let Some(cmd) = found.entry().and_then(|e| e.meta) {
            let names_path = found.mime().is_some_and(crate::fossology::meta_names_path);
            // The text of some meta commands names the file's path. ununpack runs them on the
            // top file in `files` and on members in its temporary folder (a new random name
            // each time); holdfast puts members at a fixed place instead, so its own uploads
            // give the same meta file on every unpack.
            let (at, placed) = if top {
                (ctx.repo.path("files", &hashes.pfile_name()), false)
            } else if names_path {
                match place_member(ctx, &item) {
                    Some(p) => (Some(p), true),
                    None => (item.src.on_disk(ctx).ok(), false),
                }
            } else {
                (item.src.on_disk(ctx).ok(), false)
            };
            if let Some(text) = at
                .as_deref()
                .and_then(|p| crate::fossology::run_meta(cmd, p))
            {
                children.push(meta_node(ctx, &item, text, depth));
            }
            if let Some(p) = &at {
                if placed || (matches!(item.src, Src::Mem(_)) && !top) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }
    if !top {
        store(ctx, &item.src, &hashes, container);
    }
    ctx.progress.set_message(format!(
        "{} files, {} MB",
        ctx.files.load(Relaxed),
        ctx.bytes.load(Relaxed) >> 20
    ));
    let mut node = Node::plain(&item.name, mode, children);
    node.pfile = Some(hashes);
    node.dsc = kind == Kind::Dsc;
    node.mime = found.mime();
    node
}

/// Unpacks `bytes` as the top file of an upload named `name` (the fuzz test's entry point:
/// one place to follow [`Item`]'s fields).
pub fn process_bytes(ctx: &Ctx, bytes: Vec<u8>, name: &str) -> Node {
    let item = Item {
        src: Src::Mem(Arc::new(bytes)),
        hashes: None,
        name: name.to_string(),
        mode: S_IFREG,
        artifact: false,
        trail: name.to_string(),
        raw_name: raw_comp(name.as_bytes()),
    };
    process(ctx, item, 0, true)
}

/// The upload's temporary folder: `<repo>/<hostname>/ununpack/holdfast-*` like FOSSology's
/// own (backups exclude it), or `[unpack] temp_dir`.
pub fn temp_root(repo: &Repository, cfg: &UnpackConfig) -> PathBuf {
    if let Some(d) = &cfg.temp_dir {
        return d.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    repo.root.join(host).join("ununpack")
}

#[cfg(test)]
mod tests {
    #[test]
    fn guard_turns_a_panic_into_an_error() {
        assert_eq!(super::guard(|| 7), Ok(7));
        let v: Vec<u8> = vec![1, 2];
        let e = super::guard(|| v[5]).unwrap_err();
        assert!(
            e.contains("reader crashed") && e.contains("index out of bounds"),
            "{e}"
        );
    }
}
