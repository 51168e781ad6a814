//! The operator guides as programs: every ```` ```sh ```` block of a guide page is a command an
//! operator types, and the drills and tests run exactly those blocks, in order, so a guide
//! cannot say something holdfast no longer does.
//!
//! Conventions the guides follow: ```` ```sh ```` blocks are commands and are run; blocks of any
//! other language (`toml`, `text`, `ini`, `console`) are file contents or sample output and are
//! not. Site-specific values are shell variables the page lists at its top (`HOLDFAST_CONFIG`,
//! `FO_SYSCONFDIR`, `BACKUP_TARGET`, ...); the drill sets them to its scratch site, the operator
//! to the real one. The blocks of one page run in one `bash -euo pipefail`, so a variable set in
//! one block is seen by the next, and the first failing command stops the page.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Every guide page, embedded so the installed binary carries the pages its drills follow.
pub const PAGES: &[(&str, &str)] = &[
    (
        "full-backup.md",
        include_str!("../../../docs/full-backup.md"),
    ),
    (
        "backup-server.md",
        include_str!("../../../docs/backup-server.md"),
    ),
    (
        "disaster-recovery/plug-pull-backup.md",
        include_str!("../../../docs/disaster-recovery/plug-pull-backup.md"),
    ),
    (
        "disaster-recovery/plug-pull-job.md",
        include_str!("../../../docs/disaster-recovery/plug-pull-job.md"),
    ),
    (
        "disaster-recovery/total-loss.md",
        include_str!("../../../docs/disaster-recovery/total-loss.md"),
    ),
    (
        "disaster-recovery/database-loss.md",
        include_str!("../../../docs/disaster-recovery/database-loss.md"),
    ),
    (
        "disaster-recovery/agent-storage-loss.md",
        include_str!("../../../docs/disaster-recovery/agent-storage-loss.md"),
    ),
    (
        "disaster-recovery/busy-backup.md",
        include_str!("../../../docs/disaster-recovery/busy-backup.md"),
    ),
];

/// The text of an embedded page, e.g. `disaster-recovery/total-loss.md`.
pub fn page(name: &str) -> Option<&'static str> {
    PAGES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// One runnable block: where it starts (1-based line of the opening fence) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub line: usize,
    pub text: String,
}

/// The ```` ```sh ```` blocks of a Markdown page, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<(usize, bool, String, String)> = None; // (line, run, fence, text)
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut current {
            None => {
                let fence_len = trimmed.chars().take_while(|c| *c == '`').count();
                if fence_len >= 3 {
                    let info = trimmed[fence_len..].trim();
                    let lang = info.split_whitespace().next().unwrap_or("");
                    current = Some((i + 1, lang == "sh", "`".repeat(fence_len), String::new()));
                }
            }
            Some((start, run, fence, text)) => {
                if trimmed.starts_with(fence.as_str()) && trimmed.trim_matches('`').is_empty() {
                    if *run {
                        out.push(Block {
                            line: *start,
                            text: std::mem::take(text),
                        });
                    }
                    current = None;
                } else {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    out
}

/// The outcome of running a page.
#[derive(Debug, Clone)]
pub struct PageRun {
    pub page: String,
    pub blocks: usize,
    pub ok: bool,
    pub secs: f64,
    /// The block that failed, as `page:line`.
    pub failed_at: Option<String>,
    pub output: String,
}

/// Runs every block of `markdown` (named `page`) in one bash, in `workdir`, with `env` set and
/// `path_first` put at the front of `PATH` (the folder with the `holdfast` under test).
pub fn run_page(
    page: &str,
    markdown: &str,
    workdir: &Path,
    env: &BTreeMap<String, String>,
    path_first: &[PathBuf],
) -> std::io::Result<PageRun> {
    let bl = blocks(markdown);
    let mut script = String::from("set -euo pipefail\n");
    for b in &bl {
        script.push_str(&format!("echo '::block {page}:{}' >&2\n", b.line));
        script.push_str(&b.text);
    }
    script.push_str("echo '::end' >&2\n");
    let script_path = workdir.join(format!(".guide-{}.sh", page.replace('/', "_")));
    std::fs::write(&script_path, &script)?;
    let mut path = path_first
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>();
    path.push(std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
    let start = Instant::now();
    let out = Command::new("bash")
        .arg(&script_path)
        .current_dir(workdir)
        .envs(env)
        .env("PATH", path.join(":"))
        .stdin(Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ok = out.status.success() && stderr.contains("::end");
    let failed_at = if ok {
        None
    } else {
        stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("::block "))
            .map(str::to_string)
    };
    Ok(PageRun {
        page: page.to_string(),
        blocks: bl.len(),
        ok,
        secs: start.elapsed().as_secs_f64(),
        failed_at,
        output: format!("{stdout}{stderr}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sh_blocks_are_commands() {
        let md = "# T\n\n```sh\nholdfast backup\n```\n\n```toml\n[backup]\n```\n\n````sh\necho '```'\n````\n```text\nout\n```\n";
        let b = blocks(md);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].line, 3);
        assert_eq!(b[0].text, "holdfast backup\n");
        assert_eq!(b[1].text, "echo '```'\n");
    }

    #[test]
    fn a_failing_block_is_named() {
        let t = tempfile::tempdir().unwrap();
        let md = "```sh\nX=1\n```\n\n```sh\ntest \"$X\" = 1\nfalse\n```\n";
        let r = run_page("p.md", md, t.path(), &BTreeMap::new(), &[]).unwrap();
        assert!(!r.ok);
        assert_eq!(r.failed_at.as_deref(), Some("p.md:5"));
        let md = "```sh\nX=1\n```\n\n```sh\ntest \"$X\" = 1\n```\n";
        let r = run_page("p.md", md, t.path(), &BTreeMap::new(), &[]).unwrap();
        assert!(r.ok, "{}", r.output);
        assert_eq!(r.blocks, 2);
    }

    #[test]
    fn every_page_has_commands() {
        for (name, text) in PAGES {
            assert!(!blocks(text).is_empty(), "{name} has no ```sh block");
        }
    }
}
