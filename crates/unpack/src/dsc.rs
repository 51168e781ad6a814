//! Debian source packages: a `.dsc` control file next to its tarballs in the same folder
//! of an archive is unpacked with `dpkg-source -x` (patches applied, as FOSSology does)
//! into an `artifact.unpacked` folder under the `.dsc` row, which becomes a container.
//!
//! The tarballs are taken from the repository, where they were stored a moment ago under
//! their content names; `dpkg-source` works in a folder inside our temporary folder, and
//! its output is read back like any archive (never trusted for paths). It runs under the
//! upload's budget ([`crate::budget::run_limited`]): what it writes counts against the bytes
//! the upload has left, and it is killed on a stop signal or at the deadline.

use crate::engine::{collect, Ctx, Member, Members};
use crate::tree::{Node, BIT_CONTAINER};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Why a `.dsc` is not unpacked when a file it lists is missing.
const NOT_BESIDE: &str = "is not next to it";

/// Names listed in the `Files:` field of a `.dsc`.
pub(crate) fn files_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_files = false;
    for line in text.lines() {
        if line.starts_with("Files:") {
            in_files = true;
        } else if in_files && line.starts_with(' ') {
            if let Some(name) = line.split_whitespace().nth(2) {
                out.push(name.to_string());
            }
        } else {
            in_files = false;
        }
    }
    out
}

pub(crate) fn expand(ctx: &Ctx, trail: &str, depth: u32, members: &mut Members) {
    let dscs: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(&m.2, Member::File(n) if n.dsc))
        .map(|(i, _)| i)
        .collect();
    for i in dscs {
        let (comps, node) = match &members[i] {
            (_, c, Member::File(n)) => (c.clone(), n.clone()),
            _ => continue,
        };
        let dsc_trail = format!("{trail}/{}", comps.join("/"));
        // ununpack marks the .dsc a container before it runs dpkg-source, so it stays
        // one (with no children) when dpkg-source fails.
        let res = unpack_one(ctx, &dsc_trail, depth, &comps, &node, members);
        if let (_, _, Member::File(n)) = &mut members[i] {
            n.mode |= BIT_CONTAINER;
            if let Ok(dir) = &res {
                n.children = vec![dir.clone()];
            }
        }
        // A file the .dsc lists is not beside it: dpkg-source fails the same way for
        // ununpack, which still ends successfully; said, not an error of this unpack.
        // Any other failure (a limit, a damaged tarball) is one.
        if let Err(e) = res {
            if e.contains(NOT_BESIDE) {
                ctx.note(&dsc_trail, None, e);
            } else {
                ctx.record(&dsc_trail, None, e);
            }
        }
    }
}

fn unpack_one(
    ctx: &Ctx,
    trail: &str,
    depth: u32,
    comps: &[String],
    dsc: &Node,
    members: &Members,
) -> Result<Node, String> {
    let repo_file = |n: &Node| {
        n.pfile
            .as_ref()
            .and_then(|h| ctx.repo.path("files", &h.pfile_name()))
            .filter(|p| p.is_file())
    };
    let dsc_path = repo_file(dsc).ok_or("the .dsc is not in the repository")?;
    let text = std::fs::read_to_string(&dsc_path).map_err(|e| e.to_string())?;
    let parent = &comps[..comps.len() - 1];
    let work = ctx.temp_path();
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let mut inputs = 0;
    let res = (|| {
        let mut size = 0;
        for name in files_of(&text) {
            if name.contains('/') || name.starts_with('.') {
                return Err(format!("lists a file with a bad name: {name}"));
            }
            let sib = members.iter().find_map(|(_, c, m)| match m {
                Member::File(n)
                    if c.len() == comps.len() && c[..parent.len()] == *parent && n.name == name =>
                {
                    Some(n)
                }
                _ => None,
            });
            let sib = sib
                .ok_or_else(|| format!("{name} (listed in the .dsc) {NOT_BESIDE}; not unpacked"))?;
            let from = repo_file(sib).ok_or_else(|| {
                format!("{name} is not in the repository (slim mode keeps no containers); .dsc not unpacked")
            })?;
            size += sib.pfile.as_ref().map(|h| h.size).unwrap_or(0);
            if std::fs::hard_link(&from, work.join(&name)).is_err() {
                std::fs::copy(&from, work.join(&name)).map_err(|e| e.to_string())?;
            }
        }
        let dsc_name = comps.last().cloned().unwrap_or_default();
        std::fs::write(work.join(&dsc_name), &text).map_err(|e| e.to_string())?;
        // The inputs sit in the work folder too: what dpkg-source may write is what is left.
        inputs = size + text.len() as u64;
        ctx.budget.temp_add(inputs).map_err(|s| s.to_string())?;
        // As ununpack runs it: checksums and signature checked (a missing or damaged
        // tarball fails the unpack, the .dsc stays a container without children).
        let mut cmd = std::process::Command::new("dpkg-source");
        cmd.args(["--no-copy", "-x", &dsc_name, "out"])
            .current_dir(&work)
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let left = ctx.budget.bytes_left().min(ctx.budget.temp_left());
        let root = work.join("out");
        let (stderr, status) =
            crate::budget::run_limited(&ctx.budget, &mut cmd, Some(&root), None, |child| {
                let mut s = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut s);
                }
                s
            })
            .map_err(|e| format!("dpkg-source -x stopped: {e}"))?;
        if !status.success() {
            return Err(format!(
                "dpkg-source -x failed (it may write at most the {left} bytes this upload has left): {}",
                stderr.lines().last().unwrap_or("no message")
            ));
        }
        // Its output sits in the temporary folder until read back below.
        let written = crate::budget::dir_size(&root);
        if let Err(s) = ctx.budget.temp_add(written) {
            ctx.budget.temp_sub(written);
            return Err(s.to_string());
        }
        let (dir, err) = collect(ctx, crate::detect::Kind::Dsc, trail, depth + 1, size, |c| {
            read_tree(c, &root, true)
        });
        ctx.budget.temp_sub(written);
        if let Some(e) = err {
            ctx.record(trail, None, e);
        }
        Ok(dir)
    })();
    let _ = std::fs::remove_dir_all(&work);
    ctx.budget.temp_sub(inputs);
    res
}

/// Feeds a folder tree (written by dpkg-source) to a collector; links are not followed.
/// With `with_root`, the folder's own mode is the artifact folder's (dpkg-source makes it).
pub(crate) fn read_tree(
    c: &mut crate::engine::Collector,
    root: &Path,
    with_root: bool,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if with_root {
        let mode = std::fs::metadata(root)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        c.dir(b".", mode);
    }
    for e in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
    {
        let e = e.map_err(|e| e.to_string())?;
        let rel = e.path().strip_prefix(root).map_err(|e| e.to_string())?;
        let raw = rel.as_os_str().as_bytes();
        let meta = e.metadata().map_err(|e| e.to_string())?;
        let mode = meta.permissions().mode();
        let ft = e.file_type();
        if ft.is_dir() {
            c.dir(raw, mode);
        } else if ft.is_symlink() {
            c.symlink(raw, mode);
        } else if ft.is_file() {
            let mut f = std::fs::File::open(e.path()).map_err(|e| e.to_string())?;
            c.file(raw, mode, &mut f, Some(meta.len()));
        }
        if !c.go_on() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn files_field() {
        let t = "Format: 3.0 (quilt)\nSource: hello\nFiles:\n aa 10 hello_1.orig.tar.gz\n bb 20 hello_1-1.debian.tar.xz\nChecksums-Sha256:\n cc 10 x\n";
        assert_eq!(
            super::files_of(t),
            ["hello_1.orig.tar.gz", "hello_1-1.debian.tar.xz"]
        );
    }
}
