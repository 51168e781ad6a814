//! Running the system `rsync`, watching for Ctrl-C, and reading its `--stats`.
//!
//! Change is judged by name and size only (`--size-only`, no `-t`): FOSSology resets a
//! repository file's mtime on every read, and its files never change under the same name.
//! Without `-t`, `--link-dest` hard-links every unchanged file to the previous snapshot
//! instead of copying the ones a scan touched, so a scan day costs the new files only.

use crate::StoreError;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Numbers from `rsync --stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RsyncStats {
    /// Regular files in the source (each name counted, hard links included).
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Regular files actually transferred (new ones).
    pub transferred_files: u64,
    pub transferred_bytes: u64,
    /// Bytes rsync sent over the wire (`Total bytes sent`), protocol included.
    #[serde(default)]
    pub sent: u64,
    /// Of the data, what was sent literally (the rest was found in the basis file).
    #[serde(default)]
    pub literal: u64,
}

impl RsyncStats {
    /// Adds the counts of another transfer of the same night.
    pub fn add(&mut self, o: &RsyncStats) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.transferred_files += o.transferred_files;
        self.transferred_bytes += o.transferred_bytes;
        self.sent += o.sent;
        self.literal += o.literal;
    }
}

/// One rsync run.
#[derive(Debug, Clone, Default)]
pub struct Rsync {
    pub args: Vec<String>,
    /// `-e` for SSH.
    pub rsh: Option<String>,
    pub src: String,
    pub dest: String,
    /// What to call the run in errors ("copy of the repository to ...").
    pub what: String,
}

/// The options every repository copy uses: recursive, links, perms, owner, group, devices,
/// hard links, numeric ids, name+size judging; no times.
pub fn base_args() -> Vec<String> {
    [
        "-rlpgoD",
        "-H",
        "--numeric-ids",
        "--size-only",
        "--stats",
        "--no-inc-recursive",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// [`base_args`] for a copy back from the store (a restore, a fetch): files and folders
/// only. A link, device or FIFO the store holds is not made: the caller runs as root, and a
/// link could point anywhere.
pub fn fetch_args() -> Vec<String> {
    let mut args = base_args();
    args.push("--no-links".into());
    args.push("--no-D".into());
    args
}

/// rsync filter rules that pick `dirs` under `root` (`<host>/<type>` folders, host-less
/// `<type>` folders, extras such as `report`) and leave out the temporary `ununpack`
/// folders. A folder missing on disk gets no rule.
pub fn tree_filters(root: &std::path::Path, dirs: &[String]) -> Vec<String> {
    let mut f = vec!["--filter=- /*/ununpack/".to_string()];
    let mut tops: Vec<&str> = Vec::new();
    for d in dirs {
        let top = d.split('/').next().unwrap_or(d);
        if !tops.contains(&top) {
            tops.push(top);
        }
    }
    for top in tops {
        if dirs.iter().any(|d| d == top) {
            // The whole folder is data (a host-less type folder, or an extra).
            if !is_extra(top) || root.join(top).is_dir() {
                f.push(format!("--filter=+ /{top}/"));
            }
            continue;
        }
        f.push(format!("--filter=+ /{top}/"));
        for d in dirs.iter().filter(|d| d.starts_with(&format!("{top}/"))) {
            f.push(format!("--filter=+ /{d}/"));
        }
        f.push(format!("--filter=- /{top}/*"));
    }
    f.push("--filter=- /*".to_string());
    f
}

/// Folders under the repository root, beside the host folders, that are copied when present.
pub const EXTRA_DIRS: [&str; 3] = ["report", "ReportImport", "DecisionImport"];

fn is_extra(d: &str) -> bool {
    EXTRA_DIRS.contains(&d)
}

impl Rsync {
    pub fn command(&self) -> Command {
        let mut c = Command::new("rsync");
        c.args(&self.args);
        // One overall progress line (bytes, percent), read by `run` for the progress bar.
        c.arg("--info=progress2");
        if let Some(rsh) = &self.rsh {
            c.arg("-e").arg(rsh);
        }
        c.arg(&self.src).arg(&self.dest);
        c
    }

    /// Runs rsync to the end; a stop signal kills it and returns `Interrupted`.
    pub fn run(&self) -> Result<RsyncStats, StoreError> {
        Self::run_side_by_side(std::slice::from_ref(self), &self.what)
    }

    /// `runs` at once, their progress shown as one (`what`): each waits on the disk of the
    /// far side file by file, and a few keep it busy. The counts summed; the first failure.
    pub fn run_side_by_side(runs: &[Rsync], what: &str) -> Result<RsyncStats, StoreError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let progress = Arc::new(holdfast_core::progress::Progress::new(
            what,
            0,
            holdfast_core::progress::Unit::Bytes,
        ));
        let parts: Arc<Vec<(AtomicU64, AtomicU64)>> =
            Arc::new(runs.iter().map(|_| Default::default()).collect());
        let results: Vec<Result<RsyncStats, StoreError>> = std::thread::scope(|s| {
            let running: Vec<_> = runs
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let (progress, parts) = (progress.clone(), parts.clone());
                    s.spawn(move || {
                        r.run_reporting(Box::new(move |done, total| {
                            parts[i].0.store(done, Ordering::Relaxed);
                            parts[i].1.store(total, Ordering::Relaxed);
                            let sum = |f: fn(&(AtomicU64, AtomicU64)) -> u64| -> u64 {
                                parts.iter().map(f).sum()
                            };
                            progress.set_total(sum(|p| p.1.load(Ordering::Relaxed)));
                            progress.set(sum(|p| p.0.load(Ordering::Relaxed)));
                        }))
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|h| h.join().expect("a thread running rsync panicked"))
                .collect()
        });
        progress.finish();
        let mut all = RsyncStats::default();
        for r in results {
            all.add(&r?);
        }
        Ok(all)
    }

    /// [`Rsync::run`], telling `report` the bytes done and the total as rsync says them.
    fn run_reporting(
        &self,
        report: Box<dyn Fn(u64, u64) + Send>,
    ) -> Result<RsyncStats, StoreError> {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tracing::debug!(src = %self.src, dest = %self.dest, args = ?self.args, "rsync");
        holdfast_core::child::tie_to_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| StoreError::Rsync {
            what: self.what.clone(),
            code: -1,
            why: format!("cannot run rsync: {e} (install the rsync package)"),
        })?;
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let t_out = std::thread::spawn(move || {
            // `--info=progress2` lines (ended by \r) feed the progress; the rest is --stats.
            let mut all = Vec::new();
            let mut line = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b == b'\r' || b == b'\n' {
                        if let Some((done, total)) = parse_progress(&String::from_utf8_lossy(&line))
                        {
                            report(done, total);
                        }
                        if b == b'\n' {
                            all.extend_from_slice(&line);
                            all.push(b'\n');
                        }
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
            all.extend_from_slice(&line);
            String::from_utf8_lossy(&all).into_owned()
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let began = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().map_err(|e| StoreError::Io {
                path: "rsync".into(),
                source: e,
            })? {
                break st;
            }
            if holdfast_core::interrupt::requested() {
                // The whole group: rsync's own receiver/generator children go too.
                holdfast_core::child::kill_group(child.id(), nix::sys::signal::Signal::SIGTERM);
                let _ = child.wait();
                return Err(StoreError::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = t_out.join().unwrap_or_default();
        let stderr = t_err.join().unwrap_or_default();
        let code = status.code().unwrap_or(-1);
        tracing::debug!(secs = began.elapsed().as_secs_f64(), code, "rsync done");
        // 24: files vanished while copying (a cleanup ran); the copy is still consistent.
        if code != 0 && code != 24 {
            let last = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(3)
                .collect::<Vec<_>>()
                .join("; ");
            let full = stderr.contains("No space left")
                || stderr.contains("Disk quota exceeded")
                || stderr.contains("quota");
            let hint = match code {
                _ if full => format!(
                    " (disk full on {}: free space or raise the quota)",
                    self.dest
                ),
                255 | 12 | 10 | 5 if self.rsh.is_some() => {
                    " (check the target address, the SSH key and that rsync is installed there)"
                        .to_string()
                }
                _ => String::new(),
            };
            return Err(StoreError::Rsync {
                what: self.what.clone(),
                code,
                why: format!("{last}{hint}"),
            });
        }
        Ok(parse_stats(&stdout))
    }
}

/// `  1,234,567  45%  12.34MB/s    0:00:12 (xfr#3, to-chk=0/10)`: (bytes done, total).
pub fn parse_progress(line: &str) -> Option<(u64, u64)> {
    let mut words = line.split_whitespace();
    let done: u64 = words.next()?.replace(',', "").parse().ok()?;
    let pct: u64 = words.next()?.strip_suffix('%')?.parse().ok()?;
    let total = (done * 100).checked_div(pct).unwrap_or(0);
    Some((done, total.max(done)))
}

fn number_after(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|rest| {
            rest.trim_start_matches(':')
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
                .filter(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Reads the lines of `--stats` that matter.
pub fn parse_stats(out: &str) -> RsyncStats {
    // "Number of files: 1,234 (reg: 1,000, dir: 234)"
    let files = out
        .lines()
        .find(|l| l.starts_with("Number of files:"))
        .and_then(|l| l.split("reg: ").nth(1))
        .map(|r| {
            r.chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(|c| c.is_ascii_digit())
                .collect::<String>()
        })
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RsyncStats {
        files,
        bytes: number_after(out, "Total file size"),
        transferred_files: number_after(out, "Number of regular files transferred"),
        transferred_bytes: number_after(out, "Total transferred file size"),
        sent: number_after(out, "Total bytes sent"),
        literal: number_after(out, "Literal data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_progress() {
        assert_eq!(
            parse_progress("     1,234,567  50%   12.34MB/s    0:00:12 (xfr#3, to-chk=0/10)"),
            Some((1_234_567, 2_469_134))
        );
        assert_eq!(parse_progress("Number of files: 3"), None);
    }

    #[test]
    fn reads_stats() {
        let s = "\nNumber of files: 1,234 (reg: 1,000, dir: 234)\nNumber of created files: 3\nNumber of regular files transferred: 12\nTotal file size: 5,678,901 bytes\nTotal transferred file size: 4,321 bytes\nLiteral data: 1,200 bytes\nMatched data: 3,121 bytes\nTotal bytes sent: 1,987\n";
        assert_eq!(
            parse_stats(s),
            RsyncStats {
                files: 1000,
                bytes: 5_678_901,
                transferred_files: 12,
                transferred_bytes: 4321,
                sent: 1987,
                literal: 1200,
            }
        );
    }
}
