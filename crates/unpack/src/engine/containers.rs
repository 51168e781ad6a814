//! Opening each kind of container: the archive readers, single streams, external tools.

use super::capture::{capture, CaptureError};
use super::collect::{artifact_dir_of, collect, inflated};
use super::{decoder, process, read_tar, Ctx, Item, Src};
use crate::detect::{detect, Kind};
use crate::hash::{read_full, Hashes, CHUNK};
use crate::tree::*;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Counts the bytes read through it.
struct Counted<R>(R, Arc<AtomicU64>);
impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n as u64, Relaxed);
        Ok(n)
    }
}

pub(super) fn have_bsdtar() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(|| {
        std::process::Command::new("bsdtar")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Unpacks a container; returns the container's children and an error if it broke off.
pub(super) fn unpack(
    ctx: &Ctx,
    kind: Kind,
    item: &Item,
    h: &Hashes,
    depth: u32,
) -> (Vec<Node>, Option<String>) {
    let trail = item.trail.as_str();
    let open = || item.src.open().map_err(|e| e.to_string());
    match kind {
        Kind::Xz => {
            // ununpack runs `tar -JxSf` on every xz file: a .tar.xz unpacks straight as
            // tar (no .tar in between), any other xz leaves `artifact.dir` empty.
            let mut head = vec![0u8; 512];
            let is_tar = open()
                .and_then(|r| decoder(kind, r).map_err(|e| e.to_string()))
                .and_then(|mut d| read_full(&mut d, &mut head).map_err(|e| e.to_string()))
                .is_ok_and(|n| n == 512 && detect(&head) == Kind::Tar);
            if is_tar {
                return wrap(collect(ctx, Kind::Xz, trail, depth, h.size, |c| {
                    let decoded = Arc::new(AtomicU64::new(0));
                    let mut r = Counted(
                        decoder(kind, open()?).map_err(|e| e.to_string())?,
                        decoded.clone(),
                    );
                    read_tar(c, Box::new(&mut r))?;
                    if c.stopped {
                        return Ok(());
                    }
                    // tar stops at its end marker: read the rest, so the stream's checks
                    // are read and its index can be held against what it holds.
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        let k = r
                            .read(&mut buf)
                            .map_err(|e| format!("corrupt xz stream: {e}"))?;
                        if k == 0 {
                            break;
                        }
                        c.ctx.budget.charge(k as u64).map_err(|s| s.to_string())?;
                        c.ctx.budget.refund(k as u64);
                    }
                    crate::xzcheck::verify(&mut open()?, h.size, decoded.load(Relaxed))
                        .map_err(|e| format!("corrupt xz stream: {e}"))
                }));
            }
            ctx.note(
                trail,
                None,
                "not a tar file inside; FOSSology's tar -J leaves its artifact.dir empty, so does holdfast",
            );
            (vec![artifact_dir_of(kind, vec![])], None)
        }
        Kind::Compress | Kind::Pdf => unpack_tool(ctx, kind, item, depth),
        k if k.is_pack() => unpack_pack(ctx, kind, item, h, depth),
        Kind::Tar => wrap(collect(ctx, kind, trail, depth, h.size, |c| {
            read_tar(c, open()?)
        })),
        Kind::Zip => wrap(collect(ctx, kind, trail, depth, h.size, |c| {
            crate::formats::read_zip(c, open()?)
        })),
        Kind::Ar | Kind::Deb => wrap(collect(ctx, kind, trail, depth, h.size, |c| {
            crate::formats::read_ar(c, open()?)
        })),
        Kind::Cpio => wrap(collect(ctx, kind, trail, depth, h.size, |c| {
            crate::formats::read_cpio(c, open()?)
        })),
        Kind::SevenZ => wrap(collect(ctx, kind, trail, depth, h.size, |c| {
            crate::formats::read_7z(c, open()?)
        })),
        Kind::Iso | Kind::Bsdtar | Kind::SevenZTool => {
            let path = match item.src.on_disk(ctx) {
                Ok(p) => p,
                Err(e) => return (vec![artifact_dir_of(kind, vec![])], Some(e.to_string())),
            };
            let res = collect(ctx, kind, trail, depth, h.size, |c| {
                if kind == Kind::SevenZTool {
                    crate::formats::read_7z_tool(c, &path)
                } else {
                    crate::formats::read_bsdtar(c, &path)
                }
            });
            if matches!(item.src, Src::Mem(_)) {
                let _ = std::fs::remove_file(&path);
            }
            wrap(res)
        }
        Kind::Rpm => crate::formats::unpack_rpm(ctx, item, depth),
        Kind::Dsc => (
            vec![],
            Some("Debian source packages are unpacked with their tarballs".into()),
        ),
        _ => (vec![], None),
    }
}

fn wrap((dir, err): (Node, Option<String>)) -> (Vec<Node>, Option<String>) {
    (vec![dir], err)
}

pub(crate) fn meta_node(ctx: &Ctx, item: &Item, text: Vec<u8>, depth: u32) -> Node {
    let mut n = process(
        ctx,
        Item {
            src: Src::Mem(Arc::new(text)),
            hashes: None,
            name: holdfast_site::naming::ARTIFACT_META.into(),
            // ununpack copies the container's stat to its meta row, with the same mask.
            mode: item.mode & !(BIT_CONTAINER | BIT_ARTIFACT),
            artifact: true,
            trail: format!("{}/artifact.meta", item.trail),
            raw_name: holdfast_site::naming::ARTIFACT_META.into(),
        },
        // Metadata is text: never unpack it.
        u32::MAX - 1,
        false,
    );
    n.mode &= !BIT_CONTAINER;
    let _ = depth;
    n
}

/// The name a single-stream decompressor gives its output (`zcat`/`bzcat`: the name less
/// its postfix; `zstd`/`lz4`/`lzma`: `ExtractZstd`'s rule; `lzip`: `ExtractLzip`'s).
fn pack_name(kind: Kind, raw_name: &str) -> String {
    use holdfast_site::naming::*;
    match kind {
        Kind::Zstd | Kind::Lz4 | Kind::Lzma => zstd_output_name(raw_name).0.to_string(),
        Kind::Lzip => lzip_output_name(raw_name).to_string(),
        _ => pack_output_name(raw_name).to_string(),
    }
}

/// Processes the one file a single-stream container gives, under its `artifact.dir`.
fn pack_child(
    ctx: &Ctx,
    kind: Kind,
    item: &Item,
    src: Src,
    hashes: Option<Hashes>,
    depth: u32,
) -> Node {
    if inflated(src.len(), item.src.len()) {
        ctx.note(
            &item.trail,
            None,
            "unpacks to more than 1000 times its size; FOSSology's ununpack skips the result \
             (no row, not stored) and so does holdfast",
        );
        // Thrown away: its bytes go back to the kept and temp budgets.
        ctx.budget.refund(src.len());
        if let Src::Temp(p) = &src {
            ctx.drop_temp(p);
        }
        return artifact_dir_of(kind, vec![]);
    }
    let raw_name = pack_name(kind, &item.raw_name);
    let (_, fmask) = kind.masks();
    let name = row_name(&raw_name, ctx.opts.utf8_names());
    let child = process(
        ctx,
        Item {
            src,
            hashes,
            trail: format!("{}/{}", item.trail, name),
            name,
            mode: (S_IFREG | 0o644) & fmask,
            artifact: false,
            raw_name,
        },
        depth + 1,
        false,
    );
    artifact_dir_of(kind, vec![child])
}

/// A single compressed stream: `artifact.dir` with the decompressed file.
fn unpack_pack(
    ctx: &Ctx,
    kind: Kind,
    item: &Item,
    h: &Hashes,
    depth: u32,
) -> (Vec<Node>, Option<String>) {
    let limit = ctx.member_limit(h.size);
    let res = item
        .src
        .open()
        .and_then(|r| decoder(kind, r))
        .map_err(CaptureError::Io)
        .and_then(|mut d| capture(ctx, &mut d, limit, None));
    let (src, hashes) = match res {
        Ok(x) => x,
        Err(e @ (CaptureError::TooBig(_) | CaptureError::Stop(_))) => {
            ctx.record(&item.trail, None, e);
            return (vec![artifact_dir_of(kind, vec![])], None);
        }
        Err(e) => return (vec![artifact_dir_of(kind, vec![])], Some(e.to_string())),
    };
    if kind == Kind::Xz {
        let checked = item
            .src
            .open()
            .map_err(|e| e.to_string())
            .and_then(|mut r| crate::xzcheck::verify(&mut r, h.size, src.len()));
        if let Err(e) = checked {
            if let Src::Temp(p) = &src {
                ctx.drop_temp(p);
            }
            return (vec![], Some(format!("corrupt xz stream: {e}")));
        }
    }
    if let Err(s) = ctx.budget.count_member() {
        if let Src::Temp(p) = &src {
            ctx.drop_temp(p);
        }
        return (vec![artifact_dir_of(kind, vec![])], Some(s.to_string()));
    }
    (vec![pack_child(ctx, kind, item, src, hashes, depth)], None)
}

/// Containers ununpack hands to a program whose output is one file: `pdftotext -htmlmeta`
/// for PDF, `zcat` (here `gzip -dc`) for Unix `compress`.
fn unpack_tool(ctx: &Ctx, kind: Kind, item: &Item, depth: u32) -> (Vec<Node>, Option<String>) {
    let empty = || vec![artifact_dir_of(kind, vec![])];
    let path = match item.src.on_disk(ctx) {
        Ok(p) => p,
        Err(e) => return (empty(), Some(e.to_string())),
    };
    let out = ctx.temp_path();
    let mut cmd = std::process::Command::new(if kind == Kind::Pdf {
        "pdftotext"
    } else {
        "gzip"
    });
    if kind == Kind::Pdf {
        cmd.arg("-htmlmeta").arg(&path).arg(&out);
    } else {
        match std::fs::File::create(&out) {
            Ok(f) => {
                cmd.arg("-dc").arg(&path).stdout(f);
            }
            Err(e) => return (empty(), Some(e.to_string())),
        }
    }
    cmd.stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Held to the upload's budget like every other child: a `.Z` or PDF bomb stops at the
    // bytes left, not at the disk's end.
    // One member out, held to its ratio of what goes in, as a `.gz` member read in process.
    let input = std::fs::metadata(&path).map_or(0, |m| m.len());
    let cap = ctx.member_limit(input);
    let status =
        crate::budget::run_limited(&ctx.budget, &mut cmd, None, Some(cap), |_| ()).map(|((), s)| s);
    if matches!(item.src, Src::Mem(_)) {
        let _ = std::fs::remove_file(&path);
    }
    match &status {
        Ok(s) if s.success() => {}
        // It fails the same way for ununpack, which keeps whatever it wrote.
        Ok(s) => ctx.note(
            &item.trail,
            None,
            format!("{kind:?} converter exited with {s}"),
        ),
        Err(e) => {
            let _ = std::fs::remove_file(&out);
            return (empty(), Some(format!("{kind:?} converter: {e}")));
        }
    }
    if !out.is_file() {
        return (empty(), None);
    }
    // What the tool wrote is kept bytes and temporary space, as a captured member's are:
    // uncharged, every `.Z` or PDF could write up to the whole budget again.
    let size = std::fs::metadata(&out).map_or(0, |m| m.len());
    let charged = ctx.budget.charge(size);
    let temped = ctx.budget.temp_add(size);
    if let Err(s) = charged.and(temped).and_then(|()| ctx.budget.count_member()) {
        ctx.drop_temp(&out);
        ctx.budget.refund(size);
        return (empty(), Some(s.to_string()));
    }
    (
        vec![pack_child(ctx, kind, item, Src::Temp(out), None, depth)],
        None,
    )
}
