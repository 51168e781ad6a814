//! The recursive unpacker: turns one gold file into a [`Node`] tree and fills `files`.
//!
//! Members are never extracted under their archive names: every extracted file goes to a
//! numbered file in a private temporary folder (or stays in memory when small), so `../`,
//! absolute paths and symbolic links cannot make us write anywhere else. Archive paths only
//! become row names. Each file is hashed while it is written, its type is detected from its
//! first bytes, containers are unpacked in turn (in parallel, on rayon's pool), and finally
//! the file is moved into the repository under its content name unless that name is already
//! there. A member's ratio and depth limits stop that member; the upload's [`Budget`] (bytes,
//! members, temporary disk, time, stop signals) is shared by every member and nested
//! container, and once spent it winds the whole upload down, recording what was left out.
//! Readers run behind a panic boundary ([`guard`]): a reader that panics on hostile input
//! becomes a recorded error for its container, and the rest of the upload goes on.

use crate::budget::{Budget, Stop};
use crate::detect::{detect, Kind, HEAD};
use crate::fossology::{find_cmd, Found};
use crate::hash::{hash_bytes, read_full, Hashes, Sink, CHUNK};
use crate::tree::*;
use crate::{UnpackConfig, UnpackOptions};
use holdfast_site::mode::{REPO_FILE_MODE, UNPACK_DIR_MODE};
use holdfast_site::repo::Repository;
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Members up to this size are kept in memory instead of a temporary file.
const SMALL: usize = 1 << 20;
/// Output below this size never counts as a bomb, whatever the ratio.
const RATIO_FLOOR: u64 = 16 << 20;
/// In-memory members in flight before extraction processes them itself.
const INFLIGHT_CAP: u64 = 256 << 20;
/// Temporary-file bytes waiting to be processed before extraction processes them itself, so
/// members read ahead of the workers cannot fill the disk.
const TEMP_AHEAD_CAP: u64 = 1 << 30;

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

/// Counts the bytes read through it.
struct Counted<R>(R, Arc<AtomicU64>);
impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n as u64, Relaxed);
        Ok(n)
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

/// Shared state of one upload's unpack.
pub struct Ctx {
    pub repo: Repository,
    pub cfg: UnpackConfig,
    pub opts: UnpackOptions,
    pub tmp: PathBuf,
    pub label: String,
    counter: AtomicU64,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub written: AtomicU64,
    inflight: AtomicU64,
    pub errors: Mutex<Vec<String>>,
    /// Repository files this unpack created (see [`Ctx::drop_unnamed`]).
    created: Mutex<Vec<(String, PathBuf)>>,
    /// What ununpack does the same way (see [`Ctx::note`]).
    pub notes: Mutex<Vec<String>>,
    pub progress: ProgressBar,
    /// The upload's shared limits (see [`Ctx::set_gold_size`]).
    pub budget: Budget,
    /// `<name>.dir` of the top file under the fixed meta folder (see `place_member`).
    pub top_dir: std::sync::OnceLock<PathBuf>,
    /// In a repository-only rebuild, the files the upload's rows hold only as plain files
    /// (see `holdfast_site::db::uploadtree::plain_file_names`).
    pub plain: Option<std::collections::HashSet<String>>,
    /// Members taken as plain files from [`Ctx::plain`], without looking at their content.
    pub plain_by_rows: AtomicU64,
}

impl Ctx {
    pub fn new(
        repo: Repository,
        cfg: UnpackConfig,
        opts: UnpackOptions,
        tmp: PathBuf,
        label: String,
        progress: ProgressBar,
    ) -> Self {
        let budget = Budget::new(
            cfg.max_expanded_bytes,
            cfg.max_members,
            cfg.max_temp_bytes,
            cfg.max_seconds,
        );
        Ctx {
            repo,
            cfg,
            opts,
            tmp,
            label,
            counter: AtomicU64::new(0),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            written: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            created: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
            progress,
            budget,
            top_dir: std::sync::OnceLock::new(),
            plain: None,
            plain_by_rows: AtomicU64::new(0),
        }
    }

    /// Caps the whole upload at `max_ratio` times its gold size too (at least 16 MiB), so
    /// nested bombs (42.zip) stop early even though each level alone looks harmless.
    pub fn set_gold_size(&mut self, size: u64) {
        let by_ratio = self.cfg.max_ratio.saturating_mul(size).max(RATIO_FLOOR);
        self.budget.cap_bytes(by_ratio);
    }

    pub(crate) fn temp_path(&self) -> PathBuf {
        self.tmp
            .join(format!("{}", self.counter.fetch_add(1, Relaxed)))
    }

    pub fn record(&self, trail: &str, member: Option<&str>, why: impl std::fmt::Display) {
        let msg = match member {
            Some(m) => format!("{}: {trail}: member {m}: {why}", self.label),
            None => format!("{}: {trail}: {why}", self.label),
        };
        tracing::warn!("{msg}");
        self.errors.lock().unwrap().push(msg);
    }

    /// Records what FOSSology's ununpack does the same way (a command that fails for it
    /// too, a file it skips): said, but not an error of this unpack.
    pub fn note(&self, trail: &str, member: Option<&str>, why: impl std::fmt::Display) {
        let msg = match member {
            Some(m) => format!("{}: {trail}: member {m}: {why}", self.label),
            None => format!("{}: {trail}: {why}", self.label),
        };
        tracing::info!("{msg}");
        self.notes.lock().unwrap().push(msg);
    }

    /// The most bytes a member of a container of `container_size` bytes may expand to.
    fn member_limit(&self, container_size: u64) -> u64 {
        let ratio = self
            .cfg
            .max_ratio
            .saturating_mul(container_size)
            .max(RATIO_FLOOR);
        ratio.min(self.budget.bytes_limit())
    }

    /// Takes out the repository files this unpack created that no row of `root` names
    /// (members a later one of the same name replaced; everything, after an interrupted
    /// unpack, with `root` `None`), so nothing sits in `files` without a row. Only for a new
    /// upload: an unpack of an existing upload refills files its old rows name.
    pub fn drop_unnamed(&self, root: Option<&Node>) -> usize {
        let mut named = Vec::new();
        if let Some(r) = root {
            r.pfiles(&mut named);
        }
        let named: std::collections::HashSet<String> =
            named.iter().map(|h| h.pfile_name()).collect();
        self.drop_created_unless(&named)
    }

    /// Takes out the repository files this unpack created whose name is not in `named`.
    pub fn drop_created_unless(&self, named: &std::collections::HashSet<String>) -> usize {
        let mut n = 0;
        for (name, path) in self.created.lock().unwrap().drain(..) {
            if !named.contains(&name) && std::fs::remove_file(&path).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Removes a temporary file of ours and gives its bytes back to the temp budget.
    fn drop_temp(&self, p: &Path) {
        if let Ok(m) = std::fs::metadata(p) {
            self.budget.temp_sub(m.len());
        }
        let _ = std::fs::remove_file(p);
    }
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

#[derive(Debug)]
enum CaptureError {
    Io(io::Error),
    TooBig(u64),
    Stop(Stop),
}

impl std::fmt::Display for CaptureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaptureError::Io(e) => write!(f, "{e}"),
            CaptureError::TooBig(n) => write!(
                f,
                "expands beyond {n} bytes (decompression bomb? raise [unpack] max_ratio or max_expanded_bytes to allow it); skipped"
            ),
            CaptureError::Stop(s) => write!(f, "{s}; skipped"),
        }
    }
}

/// Reads a member completely: into memory when small, else into a temporary file while a
/// second thread hashes. Stops at `limit` bytes, or when the upload's budget is spent (every
/// chunk is charged to it as it is read).
fn capture(
    ctx: &Ctx,
    r: &mut dyn Read,
    limit: u64,
    hint: Option<u64>,
) -> Result<(Src, Option<Hashes>), CaptureError> {
    let budget = &ctx.budget;
    budget.check().map_err(CaptureError::Stop)?;
    // Allocate what the header announces (capped), not a full buffer per small member.
    let cap = hint.map_or(64 << 10, |h| h.min(SMALL as u64) as usize + 1);
    let mut first = Vec::with_capacity(cap);
    let max_first = (SMALL as u64).min(limit.saturating_add(1));
    (&mut *r)
        .take(max_first)
        .read_to_end(&mut first)
        .map_err(CaptureError::Io)?;
    let n = first.len() as u64;
    let give_back = |total: u64, e: CaptureError| {
        budget.refund(total);
        e
    };
    budget
        .charge(n)
        .map_err(|s| give_back(n, CaptureError::Stop(s)))?;
    if n > limit {
        return Err(give_back(n, CaptureError::TooBig(limit)));
    }
    if n < SMALL as u64 {
        if first.capacity() > first.len() + first.len() / 4 + 4096 {
            first.shrink_to_fit();
        }
        return Ok((Src::Mem(Arc::new(first)), None));
    }
    let path = ctx.temp_path();
    let file = File::create(&path).map_err(|e| give_back(n, CaptureError::Io(e)))?;
    let sink = Sink::spawn(Some(file));
    let mut total = n;
    // Thrown away: the file goes, its bytes go back to the kept and temp budgets.
    let fail = |total: u64, e: CaptureError| {
        let _ = std::fs::remove_file(&path);
        budget.temp_sub(total);
        give_back(total, e)
    };
    if let Err(s) = budget.temp_add(n) {
        drop(sink);
        return Err(fail(total, CaptureError::Stop(s)));
    }
    if let Err(e) = sink.send(first) {
        return Err(fail(total, CaptureError::Io(e)));
    }
    loop {
        let mut buf = vec![0u8; CHUNK];
        let k = match read_full(r, &mut buf) {
            Ok(k) => k as u64,
            Err(e) => {
                drop(sink);
                return Err(fail(total, CaptureError::Io(e)));
            }
        };
        if k == 0 {
            break;
        }
        total += k;
        // Both always count `k`, so `fail` gives back exactly what was taken.
        let charged = budget.charge(k);
        let temped = budget.temp_add(k);
        let over = match charged.and(temped) {
            Err(s) => Err(CaptureError::Stop(s)),
            Ok(()) if total > limit => Err(CaptureError::TooBig(limit)),
            Ok(()) => Ok(()),
        };
        if let Err(e) = over {
            drop(sink);
            return Err(fail(total, e));
        }
        buf.truncate(k as usize);
        if let Err(e) = sink.send(buf) {
            return Err(fail(total, CaptureError::Io(e)));
        }
    }
    match sink.finish() {
        Ok(h) => Ok((Src::Temp(path), Some(h))),
        Err(e) => Err(fail(total, CaptureError::Io(e))),
    }
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

/// Where holdfast puts members for meta commands that name their path:
/// `<temporary root>/holdfast/<top file>.dir/...`, like ununpack's own layout.
fn meta_root(ctx: &Ctx) -> PathBuf {
    ctx.tmp
        .parent()
        .map(|p| p.join("holdfast"))
        .unwrap_or_else(|| ctx.tmp.join("holdfast"))
}

/// Puts a member at its fixed place under the top file's folder (each container level a
/// `<name>.dir` folder, as ununpack lays them out); `None` when the place is taken (another
/// unpack of the same upload at this moment) or cannot be made.
fn place_member(ctx: &Ctx, item: &Item) -> Option<PathBuf> {
    let top = ctx.top_dir.get()?;
    let parts: Vec<&str> = item.trail.split('/').skip(1).collect();
    let (last, dirs) = parts.split_last()?;
    let mut p = top.clone();
    for d in dirs {
        if d.starts_with("artifact.") {
            continue;
        }
        p.push(format!("{d}.dir"));
    }
    std::fs::create_dir_all(&p).ok()?;
    p.push(last);
    let put = |p: &Path| match &item.src {
        Src::Mem(v) => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, v))
            .is_ok(),
        Src::Temp(q) | Src::Fixed(q) => {
            std::fs::hard_link(q, p).is_ok() || (!p.exists() && std::fs::copy(q, p).is_ok())
        }
    };
    if put(&p) {
        return Some(p);
    }
    // Taken: by an unpack of this upload running now, or left by one that was killed. The
    // same bytes serve either way; other bytes can only be a damaged leftover, replaced.
    if same_bytes(&p, &item.src) {
        return Some(p);
    }
    let _ = std::fs::remove_file(&p);
    put(&p).then_some(p)
}

/// Whether the file at `p` holds exactly the member's bytes.
fn same_bytes(p: &Path, src: &Src) -> bool {
    use std::io::Read;
    let Ok(mut a) = std::fs::File::open(p) else {
        return false;
    };
    let mut b: Box<dyn Read> = match src {
        Src::Mem(v) => Box::new(std::io::Cursor::new(v.as_slice())),
        Src::Temp(q) | Src::Fixed(q) => match std::fs::File::open(q) {
            Ok(f) => Box::new(f),
            Err(_) => return false,
        },
    };
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = match a.read(&mut x) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
        if n == 0 {
            return b.read(&mut y[..1]).is_ok_and(|m| m == 0);
        }
    }
}

/// Moves a file into `files` under its content name, unless that name is already there.
fn store(ctx: &Ctx, src: &Src, h: &Hashes, container: bool) {
    ctx.files.fetch_add(1, Relaxed);
    ctx.bytes.fetch_add(h.size, Relaxed);
    let cleanup = || {
        if let Src::Temp(p) = src {
            ctx.drop_temp(p);
        }
    };
    if ctx.opts.slim && container {
        cleanup();
        return;
    }
    let name = h.pfile_name();
    let Some(target) = ctx.repo.path("files", &name) else {
        ctx.record(
            &name,
            None,
            "FOSSology's repository refuses this name; not stored",
        );
        cleanup();
        return;
    };
    if std::fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == h.size) {
        cleanup();
        return;
    }
    let res = (|| -> io::Result<()> {
        ctx.repo.ensure_parent(&target)?;
        // Unique per writer: two tasks may store the same content at once.
        let part = target.with_extension(format!(
            "part{}-{}",
            std::process::id(),
            ctx.counter.fetch_add(1, Relaxed)
        ));
        match src {
            Src::Temp(p) => {
                if std::fs::rename(p, &target).is_err() {
                    std::fs::copy(p, &part)?;
                    std::fs::rename(&part, &target)?;
                    let _ = std::fs::remove_file(p);
                }
                ctx.budget.temp_sub(h.size);
            }
            Src::Mem(v) => {
                std::fs::write(&part, &v[..])?;
                std::fs::rename(&part, &target)?;
            }
            Src::Fixed(p) => {
                if std::fs::hard_link(p, &target).is_err() {
                    std::fs::copy(p, &part)?;
                    std::fs::rename(&part, &target)?;
                }
            }
        }
        // FOSSology's owner and mode (a hard-linked gold file shares them, as in FOSSology).
        ctx.repo.finish_file(&target)
    })();
    match res {
        Ok(()) => {
            ctx.written.fetch_add(1, Relaxed);
            ctx.created.lock().unwrap().push((name, target));
        }
        Err(_) if std::fs::metadata(&target).is_ok_and(|m| m.len() == h.size) => cleanup(),
        Err(e) => {
            ctx.record(
                &name,
                None,
                format!("cannot store {}: {e}", target.display()),
            );
            cleanup();
        }
    }
}

/// Archive members in reading order: (sequence, path components, member).
pub(crate) type Members = Vec<(usize, Vec<String>, Member)>;

/// One entry of an archive, before the tree is built.
pub(crate) enum Member {
    File(Node),
    Dir(u32),
    Symlink(u32),
    /// A hard link to an earlier member (its path components).
    Link(Vec<String>, u32),
}

/// Collects archive members: spawns file processing on the pool while reading goes on.
pub(crate) struct Collector<'a, 's> {
    pub(crate) ctx: &'s Ctx,
    scope: &'a rayon::Scope<'s>,
    depth: u32,
    pub(crate) trail: String,
    dmask: u32,
    fmask: u32,
    limit: u64,
    seq: usize,
    out: Arc<Mutex<Members>>,
    pub(crate) stopped: bool,
    /// The mode an archive gives its own top folder (`./` in a tar).
    root_mode: Option<u32>,
    /// ISO images: ununpack's `ExtractISO` makes every folder itself (02770) and writes
    /// every file through the shell (0644), whatever Rock Ridge says.
    fixed_modes: bool,
    /// Size of the container, and whether its members are checked as ununpack's
    /// `IsInflatedFile` does (members straight in a `.dir` folder).
    container_size: u64,
    check_inflated: bool,
}

impl<'a, 's> Collector<'a, 's> {
    /// Splits and checks a member path; `None` (recorded) when it must be skipped.
    fn path(&self, raw: &[u8]) -> Option<Vec<String>> {
        let mut comps = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    self.ctx.record(
                        &self.trail,
                        Some(&String::from_utf8_lossy(raw)),
                        "path leads out of the archive (..); skipped",
                    );
                    return None;
                }
                _ => comps.push(raw_comp(c)),
            }
        }
        Some(comps)
    }

    fn admit(&mut self, raw: &[u8]) -> Option<Vec<String>> {
        if self.stopped {
            return None;
        }
        if self.excluded(raw) {
            return None;
        }
        if let Err(s) = self.ctx.budget.count_member() {
            self.stop(raw, &s);
            return None;
        }
        self.path(raw).filter(|c| !c.is_empty())
    }

    /// The upload's budget is spent: records this member as the first one left out of this
    /// container, and reads no further.
    pub(crate) fn stop(&mut self, raw: &[u8], why: &Stop) {
        self.ctx.record(
            &self.trail,
            Some(&String::from_utf8_lossy(raw)),
            format!("{why}; this member and the rest of the container are skipped"),
        );
        self.stopped = true;
    }

    /// Polls the upload's budget between members; false (recorded) once it is spent.
    pub(crate) fn go_on(&mut self) -> bool {
        if self.stopped {
            return false;
        }
        match self.ctx.budget.check() {
            Ok(()) => true,
            Err(s) => {
                self.ctx.record(
                    &self.trail,
                    None,
                    format!("{s}; the rest of the container is skipped"),
                );
                self.stopped = true;
                false
            }
        }
    }

    /// ununpack's `-E`: a path containing one of the patterns gets no row, is not stored and
    /// not unpacked.
    fn excluded(&self, raw: &[u8]) -> bool {
        let ex = &self.ctx.opts.exclude;
        if ex.is_empty() {
            return false;
        }
        let path = format!("{}/{}", self.trail, String::from_utf8_lossy(raw));
        ex.iter()
            .any(|e| !e.is_empty() && path.contains(e.as_str()))
    }

    fn push(&mut self, comps: Vec<String>, m: Member) {
        let seq = self.seq;
        self.seq += 1;
        self.out.lock().unwrap().push((seq, comps, m));
    }

    pub(crate) fn dir(&mut self, raw: &[u8], mode: u32) {
        if self.path(raw).is_some_and(|c| c.is_empty()) {
            // `./` in a tar: tar gives the extraction folder (`artifact.dir`) its mode.
            if !self.fixed_modes {
                self.root_mode = Some((S_IFDIR | (mode & !S_IFMT)) & self.dmask);
            }
            return;
        }
        let mode = if self.fixed_modes {
            UNPACK_DIR_MODE
        } else {
            S_IFDIR | (mode & !S_IFMT)
        };
        if let Some(c) = self.admit(raw) {
            self.push(c, Member::Dir(mode & self.dmask));
        }
    }

    /// Symbolic links and named pipes get rows without a file; ununpack masks them with
    /// its default mask (`0177000`), so a link is `0120000` and a pipe `010000`.
    pub(crate) fn symlink(&mut self, raw: &[u8], mode: u32) {
        let _ = mode;
        if let Some(c) = self.admit(raw) {
            self.push(c, Member::Symlink(S_IFLNK));
        }
    }

    pub(crate) fn fifo(&mut self, raw: &[u8], mode: u32) {
        if let Some(c) = self.admit(raw) {
            self.push(c, Member::Symlink(S_IFIFO | (mode & 0o7000)));
        }
    }

    pub(crate) fn link(&mut self, raw: &[u8], target: &[u8], mode: u32) {
        if let Some(c) = self.admit(raw) {
            match self.path(target) {
                Some(t) => self.push(
                    c,
                    Member::Link(t, (S_IFREG | (mode & !S_IFMT)) & self.fmask),
                ),
                None => self.ctx.record(
                    &self.trail,
                    Some(&String::from_utf8_lossy(raw)),
                    "hard link points outside the archive; skipped",
                ),
            }
        }
    }

    pub(crate) fn special(&mut self, raw: &[u8], what: &str) {
        if self.admit(raw).is_some() {
            self.ctx.record(
                &self.trail,
                Some(&String::from_utf8_lossy(raw)),
                format!("{what} not extracted"),
            );
        }
    }

    /// Reads a regular member's data and queues it. `expect` is the size the header says.
    pub(crate) fn file(&mut self, raw: &[u8], mode: u32, r: &mut dyn Read, expect: Option<u64>) {
        let Some(comps) = self.admit(raw) else {
            if !self.stopped {
                // Skipped alone: readers of streams need its data consumed.
                let _ = io::copy(r, &mut io::sink());
            }
            return;
        };
        let member = String::from_utf8_lossy(raw).to_string();
        let (src, hashes) = match capture(self.ctx, r, self.limit, expect) {
            Ok(x) => x,
            Err(CaptureError::Stop(s)) => {
                self.stop(raw, &s);
                return;
            }
            Err(e) => {
                self.ctx.record(&self.trail, Some(&member), e);
                return;
            }
        };
        if let Some(want) = expect {
            if src.len() < want {
                self.ctx.record(
                    &self.trail,
                    Some(&member),
                    format!("truncated: {} of {want} bytes present; skipped", src.len()),
                );
                if let Src::Temp(p) = &src {
                    self.ctx.drop_temp(p);
                }
                return;
            }
        }
        if comps.len() == 1 && self.check_inflated && inflated(src.len(), self.container_size) {
            self.ctx.note(
                &self.trail,
                Some(&member),
                "more than 1000 times the size of its archive; FOSSology's ununpack skips such a \
                 file (no row, not stored) and so does holdfast",
            );
            if let Src::Temp(p) = &src {
                let _ = std::fs::remove_file(p);
            }
            return;
        }
        let raw_name = comps.last().cloned().unwrap_or_default();
        let mode = if self.fixed_modes {
            S_IFREG | 0o644
        } else {
            S_IFREG | (mode & !S_IFMT)
        };
        let item = Item {
            src,
            hashes,
            name: row_name(&raw_name, self.ctx.opts.utf8_names()),
            mode: mode & self.fmask,
            artifact: false,
            trail: format!("{}/{}", self.trail, comps.join("/")),
            raw_name,
        };
        let seq = self.seq;
        self.seq += 1;
        let out = self.out.clone();
        let ctx = self.ctx;
        let depth = self.depth;
        let small = match &item.src {
            Src::Mem(v) => v.len() as u64,
            _ => 0,
        };
        let run = move |item: Item| {
            let trail = item.trail.clone();
            match guard(|| process(ctx, item, depth + 1, false)) {
                Ok(node) => out.lock().unwrap().push((seq, comps, Member::File(node))),
                Err(e) => ctx.record(&trail, None, e),
            }
        };
        if ctx.inflight.load(Relaxed) > INFLIGHT_CAP
            || ctx.budget.temp_used() > TEMP_AHEAD_CAP.min(ctx.budget.temp_left())
        {
            run(item);
            return;
        }
        ctx.inflight.fetch_add(small, Relaxed);
        self.scope.spawn(move |_| {
            run(item);
            ctx.inflight.fetch_sub(small, Relaxed);
        });
    }
}

/// Runs `read` with a collector, waits for every queued member, and builds the folder tree
/// under the container's artifact folder (`artifact.dir`, or `artifact.unpacked` for a
/// Debian source package), with the modes ununpack records: the folder is made by
/// ununpack (`02770`) unless the archive itself sets its mode (a tar's `./`).
pub(crate) fn collect<F>(
    ctx: &Ctx,
    kind: Kind,
    trail: &str,
    depth: u32,
    container_size: u64,
    read: F,
) -> (Node, Option<String>)
where
    F: FnOnce(&mut Collector) -> Result<(), String> + Send,
{
    let (dmask, fmask) = kind.masks();
    let out = Arc::new(Mutex::new(Vec::new()));
    let limit = ctx.member_limit(container_size);
    let mut err = None;
    let mut root_mode = None;
    rayon::scope(|s| {
        let mut c = Collector {
            ctx,
            scope: s,
            depth,
            trail: trail.to_string(),
            dmask,
            fmask,
            limit,
            seq: 0,
            out: out.clone(),
            stopped: false,
            root_mode: None,
            fixed_modes: kind == Kind::Iso,
            container_size,
            check_inflated: kind != Kind::Dsc,
        };
        match guard(|| read(&mut c)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => err = Some(e),
        }
        root_mode = c.root_mode;
    });
    let mut members = std::mem::take(&mut *out.lock().unwrap());
    members.sort_by_key(|m| m.0);
    let mut members = crate::clash::settle(ctx, trail, members);
    crate::dsc::expand(ctx, trail, depth, &mut members);
    let kids = build_tree(ctx, trail, members, dmask, fmask);
    let name = if kind == Kind::Dsc {
        holdfast_site::naming::ARTIFACT_UNPACKED
    } else {
        holdfast_site::naming::ARTIFACT_DIR
    };
    let mode = root_mode.unwrap_or(UNPACK_DIR_MODE & dmask);
    (Node::artifact_dir(name, mode, kids), err)
}

/// ununpack's `IsInflatedFile`: a file straight in a container's `.dir` folder that is more
/// than 1000 times the container's size (integer division) is skipped as a bomb.
pub(crate) fn inflated(size: u64, container_size: u64) -> bool {
    container_size > 0 && size / container_size > 1000
}

/// `artifact.dir` made by ununpack for a container of `kind` with one child.
pub(crate) fn artifact_dir_of(kind: Kind, kids: Vec<Node>) -> Node {
    let (dmask, _) = kind.masks();
    Node::artifact_dir(
        holdfast_site::naming::ARTIFACT_DIR,
        UNPACK_DIR_MODE & dmask,
        kids,
    )
}

#[derive(Default)]
struct TDir {
    mode: Option<u32>,
    dirs: BTreeMap<String, TDir>,
    leaves: BTreeMap<String, Node>,
}

fn build_tree(ctx: &Ctx, trail: &str, members: Members, dmask: u32, fmask: u32) -> Vec<Node> {
    let utf8 = ctx.opts.utf8_names();
    let mut root = TDir::default();
    let mut links = Vec::new();
    for (_, comps, m) in members {
        match m {
            Member::Link(t, mode) => links.push((comps, t, mode)),
            other => insert(&mut root, &comps, other, utf8),
        }
    }
    for (comps, target, mode) in links {
        let Some(n) = find(&mut root, &target) else {
            ctx.record(
                trail,
                Some(&comps.join("/")),
                format!(
                    "hard link to {} points outside the archive (not one of its members); skipped",
                    target.join("/")
                ),
            );
            continue;
        };
        let mut link = n.clone();
        link.mode = (n.mode & !0o177777) | mode;
        // ununpack walks a folder last entry first, so it reaches the link before the
        // file it links to, and `fo_RepImport` then chmods their shared inode to 02664:
        // the file the link points to is recorded with that mode.
        n.mode = (n.mode & !0o177777) | (REPO_FILE_MODE & fmask);
        insert(&mut root, &comps, Member::File(link), utf8);
    }
    into_nodes(root, dmask, utf8)
}

fn insert(d: &mut TDir, comps: &[String], m: Member, utf8: bool) {
    let (name, parents) = comps.split_last().expect("non-empty path");
    let mut d = d;
    for p in parents {
        d.leaves.remove(p);
        d = d.dirs.entry(p.clone()).or_default();
    }
    match m {
        Member::Dir(mode) => {
            d.leaves.remove(name);
            d.dirs.entry(name.clone()).or_default().mode = Some(mode);
        }
        Member::File(mut n) => {
            if n.skip {
                return;
            }
            n.name = row_name(name, utf8);
            d.dirs.remove(name);
            d.leaves.insert(name.clone(), n);
        }
        Member::Symlink(mode) => {
            d.dirs.remove(name);
            d.leaves.insert(
                name.clone(),
                Node::plain(&row_name(name, utf8), mode, vec![]),
            );
        }
        Member::Link(..) => {}
    }
}

fn find<'t>(d: &'t mut TDir, comps: &[String]) -> Option<&'t mut Node> {
    let (name, parents) = comps.split_last()?;
    let mut d = d;
    for p in parents {
        d = d.dirs.get_mut(p)?;
    }
    d.leaves.get_mut(name)
}

/// Folders an archive implies but does not list are made by the extracting tool inside a
/// set-group-id folder, so they inherit that bit.
const IMPLIED_DIR_MODE: u32 = S_IFDIR | S_ISGID | 0o755;

fn into_nodes(d: TDir, dmask: u32, utf8: bool) -> Vec<Node> {
    let mut out: Vec<Node> = d.leaves.into_values().collect();
    for (name, sub) in d.dirs {
        let mode = sub.mode.unwrap_or(IMPLIED_DIR_MODE & dmask);
        out.push(Node::dir(
            &row_name(&name, utf8),
            mode,
            into_nodes(sub, dmask, utf8),
        ));
    }
    out
}

fn have_bsdtar() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(|| {
        std::process::Command::new("bsdtar")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

pub(crate) fn decoder_pub<'r>(
    kind: Kind,
    r: Box<dyn ReadSeek + 'r>,
) -> io::Result<Box<dyn Read + Send + 'r>> {
    decoder(kind, r)
}

/// Captures a whole stream under the limits for a container of `container_size` bytes.
pub(crate) fn capture_pub(
    ctx: &Ctx,
    r: &mut dyn Read,
    container_size: u64,
) -> Result<(Src, Option<Hashes>), String> {
    capture(ctx, r, ctx.member_limit(container_size), None).map_err(|e| e.to_string())
}

fn decoder<'r>(kind: Kind, r: Box<dyn ReadSeek + 'r>) -> io::Result<Box<dyn Read + Send + 'r>> {
    let r = io::BufReader::with_capacity(CHUNK, r);
    Ok(match kind {
        Kind::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Kind::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        // A hostile header must not make the decoder allocate gigabytes (xz -9 needs 65 MiB).
        Kind::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(r, true, 512 << 10)),
        Kind::Lzma => {
            let mut d = lzma_rust2::LzmaReader::new_mem_limit(r, 1 << 20, None)
                .map_err(io::Error::other)?;
            // A declared size reached before the stream's end is an error, as for xz.
            d.set_relaxed_end_condition(false);
            Box::new(d)
        }
        Kind::Lzip => Box::new(lzma_rust2::LzipReader::new(r)),
        Kind::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Kind::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(r)),
        _ => return Err(io::Error::other("not a compressed stream")),
    })
}

/// Unpacks a container; returns the container's children and an error if it broke off.
fn unpack(
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
        if let Src::Temp(p) = &src {
            let _ = std::fs::remove_file(p);
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
    let status = crate::budget::run_limited(&ctx.budget, &mut cmd, None, |_| ()).map(|((), s)| s);
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
    if let Err(s) = ctx.budget.count_member() {
        let _ = std::fs::remove_file(&out);
        return (empty(), Some(s.to_string()));
    }
    (
        vec![pack_child(ctx, kind, item, Src::Temp(out), None, depth)],
        None,
    )
}

/// Most bytes the tar crate may read between two members by itself (headers, GNU long
/// names and pax records, which it holds in memory): a long-name "bomb" is an error.
const TAR_HEADER_CAP: u64 = 64 << 20;

/// The stream under a tar reader: what the tar crate reads on its own is capped at
/// [`TAR_HEADER_CAP`] per member; member data is read (and charged) by us.
struct TarFeed<'r> {
    inner: Box<dyn Read + Send + 'r>,
    ours: Arc<std::sync::atomic::AtomicBool>,
    outside: Arc<AtomicU64>,
    /// What it may read on its own before the next member: the cap, plus the stored data
    /// of a sparse member it skips itself.
    allow: Arc<AtomicU64>,
}

impl Read for TarFeed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.ours.load(Relaxed)
            && self.outside.fetch_add(n as u64, Relaxed) + n as u64 > self.allow.load(Relaxed)
        {
            return Err(io::Error::other(format!(
                "a tar header record (GNU long name or pax) larger than {TAR_HEADER_CAP} bytes"
            )));
        }
        Ok(n)
    }
}

/// Reads what is left of a member nobody wants, as work charged to the upload's budget
/// (a skipped bomb member must not be decompressed for free).
fn drain(c: &mut Collector, r: &mut dyn Read) -> Result<(), String> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let k = r
            .read(&mut buf)
            .map_err(|e| format!("corrupt or truncated: {e}"))? as u64;
        if k == 0 {
            return Ok(());
        }
        let charged = c.ctx.budget.charge(k);
        c.ctx.budget.refund(k);
        if let Err(s) = charged {
            c.stopped = true;
            return Err(s.to_string());
        }
    }
}

/// Reads a tar stream (every common variant: v7, ustar, GNU, pax, sparse).
pub(crate) fn read_tar(c: &mut Collector, r: Box<dyn Read + Send + '_>) -> Result<(), String> {
    let ours = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outside = Arc::new(AtomicU64::new(0));
    let allow = Arc::new(AtomicU64::new(TAR_HEADER_CAP));
    let feed = TarFeed {
        inner: r,
        ours: ours.clone(),
        outside: outside.clone(),
        allow: allow.clone(),
    };
    let mut ar = tar::Archive::new(feed);
    let entries = ar.entries().map_err(|e| e.to_string())?;
    for e in entries {
        let mut e = e.map_err(|e| format!("corrupt or truncated: {e}"))?;
        outside.store(0, Relaxed);
        let raw = e.path_bytes().into_owned();
        let mode = e.header().mode().unwrap_or(0o644);
        use tar::EntryType::*;
        ours.store(true, Relaxed);
        match e.header().entry_type() {
            Regular | Continuous | GNUSparse => {
                let size = e.size();
                c.file(&raw, mode, &mut e, Some(size));
            }
            Directory => c.dir(&raw, mode),
            Symlink => c.symlink(&raw, mode),
            Link => {
                let target = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                c.link(&raw, &target, mode);
            }
            Char | Block => c.special(&raw, "device file"),
            Fifo => c.fifo(&raw, mode),
            XHeader | XGlobalHeader | GNULongName | GNULongLink => {}
            other => c.special(&raw, &format!("tar entry of type {other:?}")),
        }
        // Sparse members read back with their holes; the tar crate skips their stored data.
        let sparse = e.header().entry_type() == GNUSparse;
        allow.store(
            TAR_HEADER_CAP
                + if sparse {
                    e.header().entry_size().unwrap_or(0)
                } else {
                    0
                },
            Relaxed,
        );
        let drained = if c.stopped || sparse {
            Ok(())
        } else {
            drain(c, &mut e)
        };
        ours.store(false, Relaxed);
        drained?;
        if !c.go_on() {
            break;
        }
    }
    Ok(())
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

pub fn is_dir(p: &Path) -> bool {
    p.is_dir()
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

/// Strict decoders: a stream that fails its own integrity check is an error. The oracle is
/// the format's own tool (`xz -t`, `gzip -t`, ...): every single-byte corruption of a small
/// stream that the tool rejects must fail to decode here too.
#[cfg(test)]
mod strict {
    use super::{decoder, Kind};
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    fn tool(prog: &str, args: &[&str], input: &[u8]) -> Option<(bool, Vec<u8>)> {
        let mut c = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut stdin = c.stdin.take().unwrap();
        let data = input.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = c.wait_with_output().ok()?;
        let _ = w.join();
        Some((out.status.success(), out.stdout))
    }

    fn ours(kind: Kind, data: &[u8]) -> Result<Vec<u8>, String> {
        let r: Box<dyn super::ReadSeek> = Box::new(std::io::Cursor::new(data.to_vec()));
        let mut d = decoder(kind, r).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        d.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Returns the corruptions the tool rejects but we accept.
    fn check(kind: Kind, prog: &str, compress: &[&str]) -> Vec<String> {
        let plain: Vec<u8> = (0..3000u32)
            .flat_map(|i| format!("line {i} of the test text\n").into_bytes())
            .collect();
        let Some((true, packed)) = tool(prog, compress, &plain) else {
            panic!("{prog} cannot compress (install it)");
        };
        assert_eq!(ours(kind, &packed).unwrap(), plain, "{prog}: clean stream");
        let mut missed = Vec::new();
        // Every byte of the headers and trailers (checks, sizes, index), a sample between.
        let n = packed.len();
        for i in (0..n).filter(|&i| i < 48 || i + 48 >= n || i % 7 == 0) {
            let mut bad = packed.clone();
            bad[i] ^= 0x55;
            let (ok, _) = tool(prog, &["-d", "-c"], &bad).unwrap();
            if !ok && ours(kind, &bad).is_ok() {
                missed.push(format!("{prog}: byte {i} of {}", packed.len()));
            }
        }
        missed
    }

    /// Legacy `.lzma` has no check, but a declared size reached before the stream ends is
    /// corrupt (`xz -t` says so; xz-utils' `bad-too_small_size-*`).
    #[test]
    fn lzma_declared_size_must_match_the_stream() {
        let plain = b"hello hello hello hello hello\n".repeat(40);
        let Some((true, packed)) = tool("xz", &["--format=lzma", "-c"], &plain) else {
            panic!("xz cannot compress (install xz-utils)");
        };
        let with_size = |n: u64| {
            let mut b = packed.clone();
            b[5..13].copy_from_slice(&n.to_le_bytes());
            b
        };
        assert_eq!(ours(Kind::Lzma, &packed).unwrap(), plain);
        assert_eq!(
            ours(Kind::Lzma, &with_size(plain.len() as u64)).unwrap(),
            plain
        );
        let small = with_size(plain.len() as u64 / 2);
        assert!(
            !tool("xz", &["--format=lzma", "-d", "-c"], &small)
                .unwrap()
                .0
        );
        assert!(ours(Kind::Lzma, &small).is_err());
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let mut missed = Vec::new();
        missed.extend(check(Kind::Xz, "xz", &["-c", "--check=crc64"]));
        missed.extend(check(Kind::Xz, "xz", &["-c", "--check=sha256"]));
        missed.extend(check(Kind::Xz, "xz", &["-c", "--check=crc32"]));
        missed.extend(check(Kind::Gzip, "gzip", &["-c"]));
        missed.extend(check(Kind::Bzip2, "bzip2", &["-c"]));
        missed.extend(check(Kind::Zstd, "zstd", &["-c", "-q", "--check"]));
        missed.extend(check(Kind::Lz4, "lz4", &["-c", "-q", "--content-size"]));
        assert!(missed.is_empty(), "{} accepted: {missed:#?}", missed.len());
    }
}
