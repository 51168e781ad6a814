//! Putting an unpacked file into `files`, and members where meta commands expect them.

use super::{Ctx, Item, Src};
use crate::hash::Hashes;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// Where holdfast puts members for meta commands that name their path:
/// `<temporary root>/holdfast/<top file>.dir/...`, like ununpack's own layout.
pub(super) fn meta_root(ctx: &Ctx) -> PathBuf {
    ctx.tmp
        .parent()
        .map(|p| p.join("holdfast"))
        .unwrap_or_else(|| ctx.tmp.join("holdfast"))
}

/// Puts a member at its fixed place under the top file's folder (each container level a
/// `<name>.dir` folder, as ununpack lays them out); `None` when the place is taken (another
/// unpack of the same upload at this moment) or cannot be made.
pub(super) fn place_member(ctx: &Ctx, item: &Item) -> Option<PathBuf> {
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
pub(super) fn store(ctx: &Ctx, src: &Src, h: &Hashes, container: bool) {
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
    // Unique per writer: two tasks may store the same content at once.
    let part = target.with_extension(format!(
        "part{}-{}",
        std::process::id(),
        ctx.counter.fetch_add(1, Relaxed)
    ));
    // FOSSology's owner and mode are set before a file takes its name: one that has its
    // name is skipped by every later run, so a crash in between must not leave it wrong.
    let res = (|| -> io::Result<()> {
        ctx.repo.ensure_parent(&target)?;
        let finish = |p: &std::path::Path| ctx.repo.finish_file(p);
        match src {
            Src::Temp(p) => {
                finish(p)?;
                if std::fs::rename(p, &target).is_err() {
                    std::fs::copy(p, &part)?;
                    finish(&part)?;
                    std::fs::rename(&part, &target)?;
                    let _ = std::fs::remove_file(p);
                }
                ctx.budget.temp_sub(h.size);
            }
            Src::Mem(v) => {
                std::fs::write(&part, &v[..])?;
                finish(&part)?;
                std::fs::rename(&part, &target)?;
            }
            Src::Fixed(p) => {
                if std::fs::hard_link(p, &target).is_ok() {
                    // The gold's own inode, as in FOSSology: its owner and mode are the file's.
                    finish(&target)?;
                } else {
                    std::fs::copy(p, &part)?;
                    finish(&part)?;
                    std::fs::rename(&part, &target)?;
                }
            }
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&part);
    }
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
