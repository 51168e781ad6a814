//! Proof of files where they are on a file-system target: hashed here for a local folder
//! (many in flight), by the server's `sha1sum` and `md5sum` over ssh (the files do not cross
//! the network), a hard link proved before read once.

use super::pending_repo;
use crate::manifest::REPO_DIR;
use crate::proof::{judge, pfile_of, prove_file, prove_linked, Proof, Proven};
use crate::store::Plan;
use crate::target::{nul_separated, sh_quote, Target};
use crate::StoreError;
use holdfast_core::progress::Progress;
use holdfast_site::pfile::PfileName;
use rayon::prelude::*;
use std::collections::HashMap;

impl Target {
    /// Proves `paths` (relative to `base` on the target); one result per path, in order.
    /// With `linked`, a file is read once for all its hard links under one name.
    pub(super) fn prove_at(
        &self,
        base: &str,
        paths: &[String],
        progress: &Progress,
        linked: Option<&Proven>,
    ) -> Result<Vec<Proof>, StoreError> {
        if let Some(root) = self.local_path(base) {
            let prove = |p: &String| {
                let r = match linked {
                    Some(proven) => prove_linked(&root.join(p), proven),
                    None => prove_file(&root.join(p)),
                };
                if let Proof::Good(n) = r {
                    progress.inc(n);
                }
                r
            };
            // More files in flight than cores: a cold file waits on the disk, not the CPU.
            return Ok(
                holdfast_core::threads::io_pool().install(|| paths.par_iter().map(prove).collect())
            );
        }
        match linked {
            Some(proven) => self.prove_remote_linked(base, paths, progress, proven),
            None => {
                let hashed = self.prove_remote(base, paths, progress, false)?;
                Ok(hashed.proofs.into_iter().map(|(p, _)| p).collect())
            }
        }
    }

    /// An incremental holds only what its chain lacked (`--compare-dest`): each file is
    /// proved in the newest piece holding it, the pending one first, where a restore takes it
    /// from. A file no piece holds is bad (copied again into the pending piece).
    pub(super) fn prove_in_chain(
        &self,
        plan: &Plan,
        paths: &[String],
        progress: &Progress,
        proven: &Proven,
    ) -> Result<Vec<Proof>, StoreError> {
        let mut dirs = vec![pending_repo(plan)];
        dirs.extend(
            plan.builds_on
                .iter()
                .rev()
                .map(|n| format!("{n}/{REPO_DIR}")),
        );
        let holders = self.holders(&dirs, paths)?;
        let mut out = vec![Proof::Bad("in no snapshot of its chain".into()); paths.len()];
        for (d, dir) in dirs.iter().enumerate() {
            let idx: Vec<usize> = (0..paths.len())
                .filter(|&i| holders[i] == Some(d))
                .collect();
            if idx.is_empty() {
                continue;
            }
            let here: Vec<String> = idx.iter().map(|&i| paths[i].clone()).collect();
            for (i, p) in idx
                .into_iter()
                .zip(self.prove_at(dir, &here, progress, Some(proven))?)
            {
                out[i] = p;
            }
        }
        Ok(out)
    }

    /// [`Target::prove_remote`], reading a hard link proved before under the same name
    /// once: the server's `stat` names each file's device and inode first (skipped while
    /// nothing is proved: no file can be taken then; the hashing script states them itself),
    /// and only the others are hashed.
    fn prove_remote_linked(
        &self,
        base: &str,
        paths: &[String],
        progress: &Progress,
        proven: &Proven,
    ) -> Result<Vec<Proof>, StoreError> {
        let key = |want: &PfileName, (dev, ino, ctime): Inode| {
            proven.inode_key(dev, ino, (ctime, 0), want)
        };
        let looked_up = !proven.is_empty();
        let ids = if looked_up {
            self.remote_inodes(base, paths)?
        } else {
            HashMap::new()
        };
        let mut out = vec![Proof::Unprovable; paths.len()];
        let mut todo = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let earlier = pfile_of(p)
                .zip(ids.get(p.as_str()))
                .and_then(|(want, &id)| proven.get(key(&want, id), &want));
            match earlier {
                Some(proof) => {
                    proven.count_reused(&proof);
                    if let Proof::Good(n) = proof {
                        progress.inc(n);
                    }
                    out[i] = proof;
                }
                None => todo.push(i),
            }
        }
        let read: Vec<String> = todo.iter().map(|&i| paths[i].clone()).collect();
        let Hashed {
            proofs,
            before: stated,
        } = self.prove_remote(base, &read, progress, !looked_up)?;
        // Remembered when the file `stat` named before hashing (the look-up's, or the
        // script's own) is the one after it: nothing was put in its place meanwhile.
        let before = if looked_up { ids } else { stated };
        for (i, (proof, after)) in todo.into_iter().zip(proofs) {
            let p = &paths[i];
            if let Some((want, id)) = pfile_of(p).zip(after) {
                if before.get(p.as_str()) == Some(&id) {
                    proven.put(key(&want, id), &proof);
                }
            }
            out[i] = proof;
        }
        Ok(out)
    }

    /// The device and inode of each content-named file of `paths` under `base` on an ssh
    /// target (missing files are left out).
    fn remote_inodes(&self, base: &str, paths: &[String]) -> Result<Inodes, StoreError> {
        let input = nul_separated(paths.iter().filter(|p| pfile_of(p).is_some()));
        let script = format!(
            "cd {} || exit 1; xargs -0 -r stat -c '%d %i %Z %n' -- 2>/dev/null; exit 0",
            sh_quote(&self.path(base))
        );
        let out = self.run_script_with_input(&script, &input)?;
        Ok(parse_inodes(&String::from_utf8_lossy(&out)))
    }

    /// Hashes `paths` under `base` on an ssh target with the server's `sha1sum` and `md5sum`.
    /// Each proof comes with the inode `stat` names after the hashing; with `stat_before`,
    /// also the inodes it named before it.
    fn prove_remote(
        &self,
        base: &str,
        paths: &[String],
        progress: &Progress,
        stat_before: bool,
    ) -> Result<Hashed, StoreError> {
        // Only content-named files are worth hashing; the others are unprovable anyway.
        let input = nul_separated(paths.iter().filter(|p| pfile_of(p).is_some()));
        // The two hashes run side by side: two cores busy, and the second reader of a file
        // finds it in the page cache the first one filled.
        let before = if stat_before {
            "xargs -0 -r stat -c '%d %i %Z %n' -- < \"$t\" > \"$b\" 2>/dev/null;"
        } else {
            ""
        };
        let script = format!(
            "cd {} || exit 1; t=$(mktemp) || exit 1; m=$(mktemp) || {{ rm -f \"$t\"; exit 1; }}; \
             b=$(mktemp) || {{ rm -f \"$t\" \"$m\"; exit 1; }}; \
             cat > \"$t\"; {before} \
             xargs -0 -r md5sum -- < \"$t\" > \"$m\" 2>/dev/null & \
             xargs -0 -r sha1sum -- < \"$t\" 2>/dev/null; wait; echo @@; \
             cat \"$m\"; echo @@; \
             xargs -0 -r stat -c '%s %d %i %Z %n' -- < \"$t\" 2>/dev/null; echo @@; \
             cat \"$b\"; rm -f \"$t\" \"$m\" \"$b\"; exit 0",
            sh_quote(&self.path(base))
        );
        let out = self.run_script_with_input(&script, &input)?;
        let text = String::from_utf8_lossy(&out);
        let mut parts = text.split("@@\n");
        let parse = |part: Option<&str>, sep: &str| -> HashMap<String, String> {
            part.unwrap_or("")
                .lines()
                .filter_map(|l| {
                    let (a, b) = l.split_once(sep)?;
                    Some((b.to_string(), a.to_string()))
                })
                .collect()
        };
        let sha1 = parse(parts.next(), "  ");
        let md5 = parse(parts.next(), "  ");
        let stat: HashMap<&str, (u64, Inode)> = parts
            .next()
            .unwrap_or("")
            .lines()
            .filter_map(|l| {
                let (size, rest) = l.split_once(' ')?;
                let (id, p) = parse_inode_line(rest)?;
                Some((p, (size.parse().ok()?, id)))
            })
            .collect();
        let before = parse_inodes(parts.next().unwrap_or(""));
        let proofs = paths
            .iter()
            .map(|p| {
                let Some(want) = pfile_of(p) else {
                    return (Proof::Unprovable, None);
                };
                match (sha1.get(p), md5.get(p), stat.get(p.as_str())) {
                    (Some(s), Some(m), Some(&(n, id))) => {
                        let r = judge(&want, s, m, n);
                        if let Proof::Good(n) = r {
                            progress.inc(n);
                        }
                        (r, Some(id))
                    }
                    _ => (
                        Proof::Bad("missing or unreadable on the backup server".into()),
                        None,
                    ),
                }
            })
            .collect();
        Ok(Hashed { proofs, before })
    }
}

/// A file's device, inode number and change time (seconds), as `stat -c '%d %i %Z'` names
/// them.
type Inode = (u64, u64, i64);

/// Repository-relative paths and their inodes.
type Inodes = HashMap<String, Inode>;

/// What [`Target::prove_remote`] found: each path's proof with the inode `stat` named after
/// the hashing, and the inodes it named before it (when asked).
struct Hashed {
    proofs: Vec<(Proof, Option<Inode>)>,
    before: Inodes,
}

/// Each path's inode from `stat -c '%d %i %Z %n'` lines.
fn parse_inodes(text: &str) -> Inodes {
    text.lines()
        .filter_map(parse_inode_line)
        .map(|(id, p)| (p.to_string(), id))
        .collect()
}

/// `<device> <inode> <change time> <path>` (from `stat -c '%d %i %Z %n'`).
fn parse_inode_line(l: &str) -> Option<(Inode, &str)> {
    let mut it = l.splitn(4, ' ');
    let dev = it.next()?.parse().ok()?;
    let ino = it.next()?.parse().ok()?;
    let ctime = it.next()?.parse().ok()?;
    Some(((dev, ino, ctime), it.next()?))
}
