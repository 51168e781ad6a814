//! The rolling layout's new day: every file the previous day holds is hard-linked into the
//! new tree by its path (names carry the content, so an mtime a scan touched changes
//! nothing), without rsync comparing the two trees.

use crate::target::{nul_separated, sh_quote, Target};
use crate::StoreError;
use std::collections::BTreeMap;

/// Folders linked at once (cold lookups in the previous tree overlap).
const LINKERS: usize = 16;
/// `cp` processes linking at once on a backup server (sessions: sshd allows 10 a connection).
const REMOTE_LINKERS: usize = 4;

/// Rolling layout: hard-links `paths` from the previous snapshot's tree (`from`) into the
/// new one (`to`), both relative to the target. Names carry the content, so every file the
/// previous day holds is linked whatever its mtime; a path already in `to` is left alone.
/// Returns how many were linked and the paths the previous tree lacks (to be sent instead).
pub fn link_tree(
    target: &Target,
    from: &str,
    to: &str,
    paths: &[String],
) -> Result<(u64, Vec<String>), StoreError> {
    let mut lacking = Vec::new();
    if paths.is_empty() {
        return Ok((0, lacking));
    }
    match (target.local_path(from), target.local_path(to)) {
        (Some(from), Some(to)) => {
            // One task per folder, many in flight: on a cold cache each lookup in the
            // previous tree waits for the disk, so the waits overlap.
            let mut by_dir: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
            for p in paths {
                by_dir
                    .entry(p.rsplit_once('/').map(|(d, _)| d).unwrap_or(""))
                    .or_default()
                    .push(p);
            }
            let lacking = std::sync::Mutex::new(lacking);
            let linked = std::sync::atomic::AtomicU64::new(0);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(LINKERS)
                .build()
                .map_err(|e| StoreError::Io {
                    path: to.display().to_string(),
                    source: std::io::Error::other(e),
                })?;
            let groups: Vec<(&str, Vec<&String>)> = by_dir.into_iter().collect();
            pool.install(|| {
                use rayon::prelude::*;
                groups.par_iter().try_for_each(|(dir, files)| {
                    holdfast_core::interrupt::check().map_err(|_| StoreError::Interrupted)?;
                    let parent = to.join(dir);
                    holdfast_core::fs::create_dir_all_mode(&parent, holdfast_core::fs::PRIVATE_DIR)
                        .map_err(|source| StoreError::Io {
                            path: parent.display().to_string(),
                            source,
                        })?;
                    for p in files {
                        match std::fs::hard_link(from.join(p), to.join(p)) {
                            Ok(()) => {
                                linked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                                lacking.lock().expect("not poisoned").push((*p).clone())
                            }
                            Err(source) => {
                                return Err(StoreError::Io {
                                    path: from.join(p).display().to_string(),
                                    source,
                                })
                            }
                        }
                    }
                    Ok(())
                })
            })?;
            let mut lacking = lacking.into_inner().expect("not poisoned");
            lacking.sort();
            Ok((linked.into_inner(), lacking))
        }
        _ => {
            // One `cp` looks its files up in the previous tree one at a time, each waiting
            // for the server's disk when cold: a few run side by side on folders of their
            // own (one in the run's shell, the others in sessions).
            let chunks = by_folders(
                paths,
                if paths.len() < 2_000 {
                    1
                } else {
                    REMOTE_LINKERS
                },
            );
            let script = link_script(target, from, to);
            let inputs: Vec<Vec<u8>> = chunks.into_iter().map(nul_separated).collect();
            let outs = target.run_side_by_side(&script, &inputs);
            for (input, out) in inputs.iter().zip(outs) {
                match lacking_in(target, to, &out?) {
                    Ok(l) => lacking.extend(l),
                    // Two made the same new folder at once: this part again, alone.
                    Err(_) if inputs.len() > 1 => {
                        let again = target.run_script_with_input(&script, input)?;
                        lacking.extend(lacking_in(target, to, &again)?)
                    }
                    Err(e) => return Err(e),
                }
            }
            lacking.sort();
            Ok((paths.len() as u64 - lacking.len() as u64, lacking))
        }
    }
}

/// `paths` (sorted) cut into at most `n` runs of about equal length, a folder never split.
fn by_folders(paths: &[String], n: usize) -> Vec<&[String]> {
    fn folder(p: &str) -> &str {
        p.rsplit_once('/').map_or("", |(d, _)| d)
    }
    let mut out = Vec::new();
    let mut rest = paths;
    while !rest.is_empty() {
        let left = n.saturating_sub(out.len()).max(1);
        let mut cut = rest.len().div_ceil(left).min(rest.len());
        while cut < rest.len() && folder(&rest[cut]) == folder(&rest[cut - 1]) {
            cut += 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

/// The server's script that links the paths on its stdin from `from` into `to`; it prints
/// what `cp` said.
fn link_script(target: &Target, from: &str, to: &str) -> String {
    let to_q = sh_quote(&target.path(to));
    // cp goes on past a name it cannot find and says which: those are sent instead.
    // Folders it makes get the previous day's modes and owners.
    format!(
        "mkdir -p {to_q} && cd {} && {{ xargs -0 -r cp -l -n --parents --preserve=mode,ownership -t {to_q} -- 2>&1 >/dev/null || true; }}",
        sh_quote(&target.path(from)),
    )
}

/// The paths `cp` could not find in the previous tree, from what it said; anything else it
/// said is an error.
fn lacking_in(target: &Target, to: &str, said: &[u8]) -> Result<Vec<String>, StoreError> {
    let mut lacking = Vec::new();
    for line in String::from_utf8_lossy(said).lines() {
        let Some(rest) = line.split("cannot stat '").nth(1) else {
            return Err(StoreError::Io {
                path: target.path(to),
                source: std::io::Error::other(format!("linking the previous day's files: {line}")),
            });
        };
        if let Some((p, _)) = rest.split_once('\'') {
            lacking.push(p.to_string());
        }
    }
    Ok(lacking)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cut_between_folders_only() {
        let paths: Vec<String> = ["a/1", "a/2", "a/3", "b/1", "c/1", "c/2", "d/1", "d/2"]
            .map(String::from)
            .to_vec();
        let parts = by_folders(&paths, 3);
        assert_eq!(parts.concat(), paths);
        assert!(parts.len() <= 3);
        for w in parts.windows(2) {
            let (a, b) = (w[0].last().unwrap(), &w[1][0]);
            assert_ne!(a.split('/').next(), b.split('/').next(), "{parts:?}");
        }
        assert_eq!(by_folders(&paths, 1), vec![&paths[..]]);
        assert_eq!(by_folders(&paths[..3], 4), vec![&paths[..3]]);
    }
}
