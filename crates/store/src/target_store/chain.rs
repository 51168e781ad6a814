//! A rotating chain's new piece: what no earlier piece holds with the site's size, looked up
//! by holdfast itself (never rsync's `--compare-dest`, see `Target::copy_args`).

use super::pending_repo;
use crate::manifest::REPO_DIR;
use crate::store::{Plan, Source, TransferStats};
use crate::target::{sh_quote, Target};
use crate::StoreError;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The repository folders of the plan's chain, relative to the target, oldest first.
fn pieces(plan: &Plan) -> Vec<String> {
    plan.builds_on
        .iter()
        .map(|n| format!("{n}/{REPO_DIR}"))
        .collect()
}

impl Target {
    /// Of `paths`, those no piece of the plan's chain holds as a regular file.
    pub(super) fn not_in_pieces(
        &self,
        plan: &Plan,
        paths: &[String],
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .holders(&pieces(plan), paths)?
            .into_iter()
            .zip(paths)
            .filter(|(h, _)| h.is_none())
            .map(|(_, p)| p.clone())
            .collect())
    }

    /// Of `paths` (on the site), those no piece of the plan's chain holds with the site's
    /// size: what `--compare-dest` would send.
    pub(super) fn not_in_chain(
        &self,
        plan: &Plan,
        src: &Source,
        paths: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let sizes: Vec<Option<u64>> = holdfast_core::threads::io_pool().install(|| {
            paths
                .par_iter()
                .map(|p| {
                    std::fs::symlink_metadata(src.root.join(p))
                        .ok()
                        .map(|m| m.len())
                })
                .collect()
        });
        // Gone from the site: nothing to compare, sent as rsync would (it is skipped).
        let asked: Vec<(&str, Option<u64>)> = paths
            .iter()
            .zip(&sizes)
            .filter_map(|(p, s)| s.map(|s| (p.as_str(), Some(s))))
            .collect();
        let held: HashSet<&str> = self
            .holders_sized(&pieces(plan), &asked)?
            .into_iter()
            .zip(&asked)
            .filter(|(h, _)| h.is_some())
            .map(|(_, (p, _))| *p)
            .collect();
        Ok(paths
            .iter()
            .filter(|p| !held.contains(p.as_str()))
            .cloned()
            .collect())
    }

    /// A chain's new piece of the whole repository: every file of the site no earlier piece
    /// holds with its size (as `rsync --compare-dest --delete` made it; see
    /// [`Self::copy_args`]). The pieces are listed once each, with sizes.
    pub(super) fn chain_copy(
        &self,
        plan: &Plan,
        src: &Source,
    ) -> Result<TransferStats, StoreError> {
        let mut held: HashMap<String, Vec<u64>> = HashMap::new();
        for n in &plan.builds_on {
            for (p, size) in self.sized_tree(&self.path(&format!("{n}/{REPO_DIR}")), src.dirs)? {
                held.entry(p).or_default().push(size);
            }
        }
        let send: Vec<String> = crate::pool::walk(src.root, src.dirs)
            .files
            .into_iter()
            .filter(|(e, size)| !held.get(&e.path).is_some_and(|s| s.contains(size)))
            .map(|(e, _)| e.path)
            .collect();
        // What a killed run left in the piece may be gone from the site since.
        let pending = pending_repo(plan);
        self.remove_all(&pending)?;
        self.mkdir_p(&pending)?;
        let mut args = vec!["--ignore-missing-args".to_string()];
        args.extend(Self::copy_args(plan, src));
        self.send_paths(
            src,
            &send,
            &pending,
            &args,
            Self::local_how(plan, src, true).as_ref(),
            "copy",
        )
    }

    /// The regular files of a repository copy in the folder `dir` (as the target names it)
    /// under its `tops` folders, relative, with their sizes. Locally its folders are read
    /// many at a time.
    fn sized_tree(&self, dir: &str, tops: &[String]) -> Result<Vec<(String, u64)>, StoreError> {
        if let Target::Local { .. } = self {
            return Ok(crate::pool::walk(Path::new(dir), tops)
                .files
                .into_iter()
                .map(|(e, size)| (e.path, size))
                .collect());
        }
        let d = sh_quote(dir);
        let data = self.run_script(&format!(
            "if [ -d {d} ]; then cd {d} && find . -type f -printf '%s %P\\0'; fi"
        ))?;
        Ok(data
            .split(|&b| b == 0)
            .filter_map(|r| {
                let r = String::from_utf8_lossy(r);
                let (size, p) = r.split_once(' ')?;
                Some((p.to_string(), size.parse().ok()?))
            })
            .collect())
    }
}
