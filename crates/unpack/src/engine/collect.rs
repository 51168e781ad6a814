//! Gathering a container's members while they are read, each processed on rayon's pool.

use super::capture::{capture, CaptureError};
use super::folders::build_tree;
use super::{guard, process, Ctx, Item, Src};
use crate::budget::Stop;
use crate::detect::Kind;
use crate::hash::CHUNK;
use crate::tree::*;
use holdfast_site::mode::UNPACK_DIR_MODE;
use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

/// In-memory members in flight before extraction processes them itself.
const INFLIGHT_CAP: u64 = 256 << 20;
/// Temporary-file bytes waiting to be processed before extraction processes them itself, so
/// members read ahead of the workers cannot fill the disk.
const TEMP_AHEAD_CAP: u64 = 1 << 30;

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

    /// Reads what is left of a member nobody wants, as work charged to the upload's budget
    /// and polled per chunk (a skipped bomb must not be decompressed for free, nor past a
    /// deadline or a stop signal). Once the budget is spent it stops reading: `stopped`.
    pub(crate) fn drain(&mut self, r: &mut dyn Read) -> Result<(), String> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let k = r
                .read(&mut buf)
                .map_err(|e| format!("corrupt or truncated: {e}"))? as u64;
            if k == 0 {
                return Ok(());
            }
            let charged = self.ctx.budget.charge(k);
            self.ctx.budget.refund(k);
            if let Err(s) = charged {
                self.stopped = true;
                return Err(s.to_string());
            }
        }
    }

    /// [`Collector::drain`] for member `raw` that is not kept: a spent budget is recorded on
    /// it (the rest of the container is skipped); only a read error is returned.
    pub(crate) fn drain_skipped(&mut self, raw: &[u8], r: &mut dyn Read) -> Result<(), String> {
        match self.drain(r) {
            Err(e) if self.stopped => {
                self.ctx.record(
                    &self.trail,
                    Some(&String::from_utf8_lossy(raw)),
                    format!("{e}; the rest of the container is skipped"),
                );
                Ok(())
            }
            r => r,
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
                // Skipped alone: readers of streams need its data consumed. A read error
                // shows again at the next member.
                let _ = self.drain_skipped(raw, r);
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
                self.ctx.budget.refund(src.len());
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
            // Thrown away: its bytes go back to the kept and temp budgets.
            self.ctx.budget.refund(src.len());
            if let Src::Temp(p) = &src {
                self.ctx.drop_temp(p);
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
