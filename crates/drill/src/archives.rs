//! Real archives for drill sites: made by the real `tar`, `gzip`, `xz` and `zip` from text the
//! machine already has (license texts, package documentation), so a drill site's repository
//! holds what a FOSSology repository holds: uploads unpacked into many small files, gold and
//! files sharing inodes.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Folders every Debian machine has (base-files, and packages holdfast itself needs).
const SOURCES: &[&str] = &[
    "/usr/share/common-licenses",
    "/usr/share/doc/bash",
    "/usr/share/doc/tar",
    "/usr/share/doc/gzip",
    "/usr/share/doc/rsync",
    "/usr/share/doc/coreutils",
    "/usr/share/doc/openssh-client",
    "/usr/share/doc/xz-utils",
    "/usr/share/doc/zip",
    "/usr/share/doc/bzip2",
    "/usr/share/doc/findutils",
    "/usr/share/doc/grep",
    "/usr/share/doc/sed",
];

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Builds `n` distinct archives in `dir` (tar.gz, zip, tar.xz in turn), each from one source
/// folder, with a per-archive note so no two archives are the same upload.
pub fn build(dir: &Path, n: usize, salt: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let sources: Vec<&str> = SOURCES
        .iter()
        .copied()
        .filter(|s| Path::new(s).is_dir())
        .collect();
    if sources.is_empty() {
        bail!("no documentation folders to build archives from (install base-files)");
    }
    let mut out = Vec::new();
    for i in 0..n {
        let src = Path::new(sources[i % sources.len()]);
        let base = src.file_name().unwrap().to_string_lossy().to_string();
        let stage = dir.join(format!("stage-{i}"));
        let top = stage.join(format!("{base}-{salt}{i}"));
        std::fs::create_dir_all(&top)?;
        run(
            Command::new("cp").arg("-rL").arg(src).arg(top.join("doc")),
            "cp",
        )?;
        std::fs::write(
            top.join("UPLOAD-NOTE.txt"),
            format!("drill upload {salt}{i} built from {}\n", src.display()),
        )?;
        let name = top.file_name().unwrap().to_string_lossy().to_string();
        let archive = match i % 3 {
            0 => {
                let a = dir.join(format!("{name}.tar.gz"));
                run(
                    Command::new("tar")
                        .arg("-czf")
                        .arg(&a)
                        .arg("-C")
                        .arg(&stage)
                        .arg(&name),
                    "tar -czf",
                )?;
                a
            }
            1 => {
                let a = dir.join(format!("{name}.zip"));
                run(
                    Command::new("zip")
                        .arg("-qr")
                        .arg(&a)
                        .arg(&name)
                        .current_dir(&stage),
                    "zip",
                )?;
                a
            }
            _ => {
                let a = dir.join(format!("{name}.tar.xz"));
                run(
                    Command::new("tar")
                        .arg("-cJf")
                        .arg(&a)
                        .arg("-C")
                        .arg(&stage)
                        .arg(&name),
                    "tar -cJf",
                )?;
                a
            }
        };
        std::fs::remove_dir_all(&stage)?;
        out.push(archive);
    }
    Ok(out)
}

/// Builds `n` archives whose every file is new to the repository: nested containers as the
/// plan's uploads have them (a `.tar.gz` holding a folder, a `.zip` and a `.tar.xz`), made
/// from the machine's documentation with one line naming the archive appended to every text
/// file, so each archive's files have their own hashes and an unpack of it writes them all.
pub fn build_unique(dir: &Path, n: usize, salt: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let sources: Vec<&str> = SOURCES
        .iter()
        .copied()
        .filter(|s| Path::new(s).is_dir())
        .collect();
    if sources.len() < 3 {
        bail!("too few documentation folders to build archives from (install base-files)");
    }
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("drill-{salt}{i}");
        let stage = dir.join(format!("stage-{salt}{i}"));
        let top = stage.join(&name);
        std::fs::create_dir_all(&top)?;
        let stamp = format!("\n[drill upload {salt}{i}]\n");
        let part = |k: usize| Path::new(sources[(i * 3 + k) % sources.len()]);
        for (k, sub) in ["doc", "zip", "xz"].iter().enumerate() {
            let d = stage.join(format!("{sub}-{name}"));
            run(Command::new("cp").arg("-rL").arg(part(k)).arg(&d), "cp")?;
            stamp_files(&d, &stamp)?;
        }
        std::fs::rename(stage.join(format!("doc-{name}")), top.join("doc"))?;
        run(
            Command::new("zip")
                .arg("-qr")
                .arg(top.join("nested.zip"))
                .arg(format!("zip-{name}"))
                .current_dir(&stage),
            "zip",
        )?;
        run(
            Command::new("tar")
                .arg("-cJf")
                .arg(top.join("nested.tar.xz"))
                .arg("-C")
                .arg(&stage)
                .arg(format!("xz-{name}")),
            "tar -cJf",
        )?;
        let a = dir.join(format!("{name}.tar.gz"));
        run(
            Command::new("tar")
                .arg("-czf")
                .arg(&a)
                .arg("-C")
                .arg(&stage)
                .arg(&name),
            "tar -czf",
        )?;
        std::fs::remove_dir_all(&stage)?;
        out.push(a);
    }
    Ok(out)
}

/// Appends `stamp` to every plain regular file under `dir`; compressed ones are left whole
/// (a stamp after their data would be trailing garbage) and so are shared between archives.
fn stamp_files(dir: &Path, stamp: &str) -> Result<()> {
    use std::io::Write;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let n = e.file_name().to_string_lossy().to_string();
                if [".gz", ".bz2", ".xz", ".zst", ".zip"]
                    .iter()
                    .any(|x| n.ends_with(x))
                {
                    continue;
                }
                let mut f = std::fs::OpenOptions::new().append(true).open(e.path())?;
                f.write_all(stamp.as_bytes())?;
            }
        }
    }
    Ok(())
}
