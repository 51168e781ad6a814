//! Readers for each archive format, feeding the [`Collector`]. The `artifact.meta` texts
//! come from the commands FOSSology's ununpack runs (see `fossology`).

use crate::detect::detect;
use crate::engine::{process, Collector, Ctx, Item, ReadSeek, Src};
use crate::hash::read_full;
use crate::tree::*;
use std::fmt::Write as _;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

pub(crate) fn read_zip(c: &mut Collector, r: Box<dyn ReadSeek>) -> Result<(), String> {
    let mut za = zip::ZipArchive::new(r).map_err(|e| format!("not a readable zip: {e}"))?;
    if za.has_duplicate_names() {
        // The zip crate keeps one entry per name (the later, as unzip's extraction leaves).
        c.ctx.record(
            &c.trail,
            None,
            "its central directory names some members more than once; only the last entry of each such name is read",
        );
    }
    // Byte ranges (local header to end of data) of the members taken so far, by start.
    let mut taken: std::collections::BTreeMap<u64, (u64, String)> = Default::default();
    for i in 0..za.len() {
        if !c.go_on() {
            break;
        }
        let name = za
            .name_for_index(i)
            .and_then(|r| r.ok())
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("#{i}"));
        // Several directory entries naming one stream expand it many times over (the
        // "overlapping zip" bomb); Info-ZIP refuses such archives, we skip the overlaps.
        match za.by_index_raw(i).map(|f| {
            let start = f.header_start();
            let end = f
                .data_start()
                .unwrap_or(start)
                .saturating_add(f.compressed_size());
            (start, end.max(start + 1))
        }) {
            Ok((start, end)) => {
                let before = taken.range(..end).next_back();
                if let Some((_, (_, other))) = before.filter(|(_, (e, _))| *e > start) {
                    c.ctx.record(
                        &c.trail,
                        Some(&name),
                        format!("its data overlaps member {other} (an overlapping-entries zip bomb); skipped"),
                    );
                    continue;
                }
                taken.insert(start, (end, name.clone()));
            }
            Err(e) => {
                c.ctx
                    .record(&c.trail, Some(&name), format!("cannot read: {e}; skipped"));
                continue;
            }
        }
        let mut f = match za.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                c.ctx
                    .record(&c.trail, Some(&name), format!("cannot read: {e}; skipped"));
                continue;
            }
        };
        let raw = f.name_raw().to_vec();
        let mode = f.unix_mode().unwrap_or(0o644);
        // unzip makes folders inside ununpack's set-group-id folder (they keep that bit)
        // and restores no set-id bits on files.
        if f.is_dir() {
            c.dir(&raw, S_ISGID | 0o755);
        } else if f.is_symlink() {
            c.symlink(&raw, mode);
        } else {
            let size = f.size();
            c.file(&raw, mode & 0o777, &mut f, Some(size));
        }
    }
    Ok(())
}

pub(crate) fn read_ar(c: &mut Collector, r: Box<dyn ReadSeek>) -> Result<(), String> {
    let mut r = io::BufReader::new(r);
    crate::ar::read_each(&mut r, |h, data| {
        c.file(&h.name, h.mode, data, Some(h.size));
        c.go_on()
    })
    .map_err(|e| format!("corrupt or truncated: {e}"))
}

/// cpio: the portable ASCII (odc, 070707) and new ASCII (newc/crc, 070701/2) formats.
pub(crate) fn read_cpio(c: &mut Collector, r: Box<dyn ReadSeek>) -> Result<(), String> {
    let mut r = io::BufReader::new(r);
    let mut pos: u64 = 0;
    fn take(r: &mut dyn Read, n: usize, pos: &mut u64) -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; n];
        let k = read_full(r, &mut b).map_err(|e| e.to_string())?;
        *pos += k as u64;
        if k < n {
            return Err("truncated".into());
        }
        Ok(b)
    }
    fn num(b: &[u8], radix: u32) -> Result<u64, String> {
        let s = std::str::from_utf8(b).map_err(|_| "bad header".to_string())?;
        u64::from_str_radix(s.trim_end_matches('\0'), radix).map_err(|_| "bad header".into())
    }
    loop {
        if !c.go_on() {
            break;
        }
        let magic = take(&mut r, 6, &mut pos)?;
        let (mode, size, namesize, newc) = match &magic[..] {
            b"070701" | b"070702" => {
                let h = take(&mut r, 104, &mut pos)?;
                let f = |i: usize| num(&h[i * 8..i * 8 + 8], 16);
                (f(1)?, f(6)?, f(11)?, true)
            }
            b"070707" => {
                let h = take(&mut r, 70, &mut pos)?;
                (
                    num(&h[12..18], 8)?,
                    num(&h[59..70], 8)?,
                    num(&h[53..59], 8)?,
                    false,
                )
            }
            _ => return Err(format!("corrupt header at byte {}", pos - 6)),
        };
        if namesize > 65536 {
            return Err("corrupt header (name too long)".into());
        }
        let mut name = take(&mut r, namesize as usize, &mut pos)?;
        while name.last() == Some(&0) {
            name.pop();
        }
        if newc {
            let pad = (4 - pos % 4) % 4;
            take(&mut r, pad as usize, &mut pos)?;
        }
        if name == b"TRAILER!!!" {
            break;
        }
        let mode = mode as u32;
        match mode & S_IFMT {
            S_IFREG => {
                let mut lim = (&mut r).take(size);
                c.file(&name, mode, &mut lim, Some(size));
                if c.stopped {
                    break;
                }
                let rest = io::copy(&mut lim, &mut io::sink()).map_err(|e| e.to_string())?;
                let _ = rest;
                pos += size;
            }
            S_IFDIR => {
                c.dir(&name, mode);
                take(&mut r, size as usize, &mut pos)?;
            }
            S_IFLNK => {
                c.symlink(&name, mode);
                take(&mut r, size.min(1 << 20) as usize, &mut pos)?;
            }
            S_IFIFO => {
                c.fifo(&name, mode);
                take(&mut r, size.min(1 << 20) as usize, &mut pos)?;
            }
            _ => {
                c.special(&name, "device file");
                take(&mut r, size.min(1 << 20) as usize, &mut pos)?;
            }
        }
        if newc {
            let pad = (4 - pos % 4) % 4;
            take(&mut r, pad as usize, &mut pos)?;
        }
    }
    Ok(())
}

pub(crate) fn read_7z(c: &mut Collector, r: Box<dyn ReadSeek>) -> Result<(), String> {
    let mut a = sevenz_rust2::ArchiveReader::new(r, sevenz_rust2::Password::empty())
        .map_err(|e| format!("not a readable 7z archive: {e}"))?;
    a.for_each_entries(|e, rd| {
        let raw = e.name.replace('\\', "/").into_bytes();
        let unix = if e.has_windows_attributes && e.windows_attributes & 0x8000 != 0 {
            e.windows_attributes >> 16
        } else {
            0o644
        };
        if e.is_directory {
            c.dir(&raw, unix);
        } else if unix & S_IFMT == S_IFLNK {
            c.symlink(&raw, unix);
            // The link's text is stored data too: charged, and a spent budget ends the loop.
            c.drain_skipped(&raw, rd).map_err(io::Error::other)?;
        } else {
            c.file(&raw, unix, rd, Some(e.size));
        }
        Ok(c.go_on())
    })
    .map_err(|e| format!("corrupt or truncated: {e}"))
}

/// ISO 9660, RAR, CAB: `bsdtar` turns the image into a tar stream on a pipe (nothing is
/// written to disk under the archive's names), which the tar reader then takes apart.
pub(crate) fn read_bsdtar(c: &mut Collector, path: &Path) -> Result<(), String> {
    let mut cmd = std::process::Command::new("bsdtar");
    cmd.args(["-cf", "-", "--format=pax"])
        .arg(format!("@{}", path.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let budget = &c.ctx.budget;
    let ((res, errs), status) =
        crate::budget::run_limited(budget, &mut cmd, None, None, |child| {
            let mut stderr = child.stderr.take().expect("piped");
            let errs = std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stderr.read_to_string(&mut s);
                s
            });
            let stdout = child.stdout.take().expect("piped");
            let res = crate::engine::read_tar(c, Box::new(stdout));
            // Stopped early: bsdtar must not wait on a full pipe nobody reads.
            if c.stopped {
                holdfast_core::child::kill_group(child.id(), nix::sys::signal::Signal::SIGKILL);
            }
            (res, errs.join().unwrap_or_default())
        })?;
    res?;
    if c.stopped {
        return Ok(());
    }
    if !status.success() {
        return Err(format!(
            "bsdtar failed: {}",
            errs.lines().next().unwrap_or("no message")
        ));
    }
    Ok(())
}

struct RpmHeader {
    tags: Vec<(u32, u32, u32, u32)>,
    store: Vec<u8>,
}

fn read_header(r: &mut dyn Read, pad: bool) -> Result<(RpmHeader, u64), String> {
    let mut h = [0u8; 16];
    if read_full(r, &mut h).map_err(|e| e.to_string())? < 16 || h[..3] != [0x8e, 0xad, 0xe8] {
        return Err("bad RPM header".into());
    }
    let n = u32::from_be_bytes(h[8..12].try_into().unwrap());
    let size = u32::from_be_bytes(h[12..16].try_into().unwrap());
    if n > 100_000 || size > 256 << 20 {
        return Err("RPM header too large".into());
    }
    let mut idx = vec![0u8; n as usize * 16];
    let mut store = vec![0u8; size as usize];
    if read_full(r, &mut idx).map_err(|e| e.to_string())? < idx.len()
        || read_full(r, &mut store).map_err(|e| e.to_string())? < store.len()
    {
        return Err("truncated RPM header".into());
    }
    let mut used = 16 + idx.len() as u64 + store.len() as u64;
    if pad && !used.is_multiple_of(8) {
        let mut p = vec![0u8; (8 - used % 8) as usize];
        read_full(r, &mut p).map_err(|e| e.to_string())?;
        used += p.len() as u64;
    }
    let tags = idx
        .chunks(16)
        .map(|c| {
            let w = |i: usize| u32::from_be_bytes(c[i..i + 4].try_into().unwrap());
            (w(0), w(4), w(8), w(12))
        })
        .collect();
    Ok((RpmHeader { tags, store }, used))
}

impl RpmHeader {
    fn string(&self, tag: u32) -> Option<String> {
        let &(_, ty, off, _) = self.tags.iter().find(|t| t.0 == tag)?;
        if !matches!(ty, 6 | 8 | 9) {
            return None;
        }
        let s = self.store.get(off as usize..)?;
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        Some(String::from_utf8_lossy(&s[..end]).to_string())
    }
}

/// RPM: `artifact.meta` (header fields) and `artifact.unpacked` (the cpio payload, which
/// is unpacked in turn).
pub(crate) fn unpack_rpm(ctx: &Ctx, item: &Item, depth: u32) -> (Vec<Node>, Option<String>) {
    let res = (|| -> Result<(Vec<u8>, u64), String> {
        let mut r = item.src.open().map_err(|e| e.to_string())?;
        let mut lead = [0u8; 96];
        if read_full(&mut r, &mut lead).map_err(|e| e.to_string())? < 96 {
            return Err("truncated RPM lead".into());
        }
        let (_, sig) = read_header(&mut r, true)?;
        let (hdr, main) = read_header(&mut r, false)?;
        let mut t = String::from("RPM package\n");
        for (tag, label) in [
            (1000, "Name"),
            (1001, "Version"),
            (1002, "Release"),
            (1022, "Architecture"),
            (1014, "License"),
            (1004, "Summary"),
            (1015, "Packager"),
            (1011, "Vendor"),
            (1020, "URL"),
            (1044, "Source RPM"),
            (1124, "Payload format"),
            (1125, "Payload compressor"),
            (1005, "Description"),
        ] {
            if let Some(v) = hdr.string(tag) {
                let _ = writeln!(t, "{label}: {v}");
            }
        }
        Ok((t.into_bytes(), 96 + sig + main))
    })();
    let (meta, offset) = match res {
        Ok(x) => x,
        Err(e) => return (vec![], Some(e)),
    };
    // The meta file comes from `rpm -qip`, as ununpack makes it (see `fossology`).
    let _ = meta;
    let mut out = vec![];
    let payload = (|| -> Result<Box<dyn Read + Send>, String> {
        let mut r = item.src.open().map_err(|e| e.to_string())?;
        r.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
        let mut head = [0u8; 16];
        let n = read_full(&mut r, &mut head).map_err(|e| e.to_string())?;
        r.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
        let kind = detect(&head[..n]);
        if kind.is_pack() {
            crate::engine::decoder(kind, r).map_err(|e| e.to_string())
        } else {
            Ok(Box::new(r))
        }
    })();
    let mut payload = match payload {
        Ok(p) => p,
        Err(e) => return (out, Some(e)),
    };
    match crate::engine::capture_within(ctx, &mut payload, item.src.len()) {
        Ok((src, hashes)) => {
            out.push(process(
                ctx,
                Item {
                    src,
                    hashes,
                    name: "artifact.unpacked".into(),
                    mode: S_IFREG,
                    artifact: true,
                    trail: format!("{}/artifact.unpacked", item.trail),
                    raw_name: "artifact.unpacked".into(),
                },
                depth + 1,
                false,
            ));
            (out, None)
        }
        Err(e) => (out, Some(e)),
    }
}

#[allow(dead_code)]
fn _arc(v: Vec<u8>) -> Src {
    Src::Mem(Arc::new(v))
}

/// What only the `7z` program reads (ununpack's `7z x -y -pjunk` for Office files, PE
/// executables and "data" 7z can open): extracted into a private folder, read back as a
/// tree (links are not followed).
pub(crate) fn read_7z_tool(c: &mut Collector, path: &Path) -> Result<(), String> {
    let work = c.ctx.temp_path();
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let res = extract_7z(&c.ctx.budget, path, &work)
        .and_then(|()| crate::dsc::read_tree(c, &work, false));
    let _ = std::fs::remove_dir_all(&work);
    res
}

/// `7z x` into `work`, held to the upload's budget: it writes to disk, so a bomb must be
/// stopped while it writes, not found afterwards.
fn extract_7z(budget: &crate::budget::Budget, path: &Path, work: &Path) -> Result<(), String> {
    let mut cmd = std::process::Command::new("7z");
    cmd.args(["x", "-y", "-pjunk"])
        .arg(format!("-o{}", work.display()))
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let (errs, status) = crate::budget::run_limited(budget, &mut cmd, Some(work), None, |child| {
        let mut s = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    })?;
    if !status.success() {
        let why = errs.lines().find(|l| !l.trim().is_empty());
        return Err(format!(
            "7z exited with {status}: {}",
            why.unwrap_or("no message")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::budget::Budget;

    /// A 7z of 64 MiB of zeros (a few KB packed) against a 1 MiB budget: `7z x` is killed
    /// while it writes, and the error says why.
    #[test]
    fn seven_z_tool_is_held_to_the_budget() {
        holdfast_testkit::require("7z");
        let dir = tempfile::tempdir().unwrap();
        let zeros = dir.path().join("zeros");
        std::fs::write(&zeros, vec![0u8; 64 << 20]).unwrap();
        let arc = dir.path().join("bomb.7z");
        let ok = std::process::Command::new("7z")
            .args(["a", "-bd"])
            .arg(&arc)
            .arg(&zeros)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
        std::fs::remove_file(&zeros).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let small = Budget::new(1 << 20, 100, 1 << 20, 0);
        let e = super::extract_7z(&small, &arc, &work).unwrap_err();
        assert!(e.contains("decompression bomb"), "{e}");
        let written: u64 = walkdir::WalkDir::new(&work)
            .into_iter()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        assert!(written <= 1 << 20, "7z wrote {written} bytes");
        // Within budget, the same archive comes out whole.
        let big = Budget::new(128 << 20, 100, 128 << 20, 0);
        let work2 = dir.path().join("work2");
        std::fs::create_dir(&work2).unwrap();
        super::extract_7z(&big, &arc, &work2).unwrap();
        assert_eq!(
            std::fs::metadata(work2.join("zeros")).unwrap().len(),
            64 << 20
        );
    }
}
