//! Reading one member out of its container, under the member's and the upload's limits.

use super::{Ctx, Src};
use crate::budget::Stop;
use crate::hash::{read_full, Hashes, Sink, CHUNK};
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

/// Members up to this size are kept in memory instead of a temporary file.
const SMALL: usize = 1 << 20;

#[derive(Debug)]
pub(super) enum CaptureError {
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
pub(super) fn capture(
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

/// Captures a whole stream under the limits for a container of `container_size` bytes.
pub(crate) fn capture_within(
    ctx: &Ctx,
    r: &mut dyn Read,
    container_size: u64,
) -> Result<(Src, Option<Hashes>), String> {
    capture(ctx, r, ctx.member_limit(container_size), None).map_err(|e| e.to_string())
}
