//! The pre-copy, while FOSSology's scheduler runs: the night's new files (or the whole
//! repository, walked) sent ahead, so the pass with the scheduler stopped has little left.

use super::links::Sent;
use super::{kept, ready, Pre, Readying, Run};
use crate::{nightly, precopy, BackupError};
use holdfast_core::threads::joined;
use holdfast_store::Files;
use std::collections::BTreeSet;
use std::time::Instant;

impl Run<'_> {
    /// A pre-copy that builds on the previous snapshot's list (`p`): the night's new files
    /// (from the database, or from a walk on a walk night) sent while the scheduler runs.
    pub(crate) fn precopy_night(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
        walk_night: bool,
    ) -> Result<Pre, BackupError> {
        self.beside_early(p, walk_night, |readied| {
            self.precopy_planned(client, p, walk_night, readied)
        })
    }

    /// [`Self::precopy_night`] once the early links (if any) are under way.
    fn precopy_planned(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
        walk_night: bool,
        readied: Option<Readying<'_, '_>>,
    ) -> Result<Pre, BackupError> {
        let t = Instant::now();
        let early_paths = readied.as_ref().map(|(paths, _)| *paths);
        let mut night = if walk_night {
            let night = crate::walk::from_walk(
                holdfast_store::pool::walk(&self.site.repo.root, self.dirs),
                &p.list,
            );
            tracing::info!(
                secs = t.elapsed().as_secs_f64(),
                files = night.list.len(),
                new = night.send.len(),
                "the repository walked and matched against the previous list"
            );
            night
        } else {
            let night = self.night(client, p)?;
            tracing::info!(
                secs = t.elapsed().as_secs_f64(),
                new = night.send.len(),
                "the database's new rows matched against the previous list"
            );
            night
        };
        let keep = kept(&night);
        let whole: Vec<String> = night
            .send
            .iter()
            .filter(|(_, w)| **w)
            .map(|(p, _)| p.clone())
            .collect();
        // The kept files already in place are sampled while the new files go out (each
        // waits on the disk for other files); where a whole tree is linked, after.
        let ready = ready(self.cfg, self.plan, &keep);
        let (sent, damaged_early) = std::thread::scope(|s| {
            let checker = ready.as_deref().map(|r| s.spawn(|| self.heal(Some(r))));
            let sent = self.link_and_send(p, &mut night, &keep, whole, readied);
            let damaged = checker.map(joined);
            (sent, damaged)
        });
        let Sent {
            mut stats,
            paths: mut whole,
            looked,
        } = sent?;
        if walk_night
            && (self.plan.recycled.is_some()
                || self.plan.snapshot_of.is_some()
                || !self.plan.builds_on.is_empty())
        {
            // A walk trusts no tree it did not link itself: a day begun as the spare day or
            // as a snapshot of the previous one is looked at for every file it keeps, a
            // rotating chain's pieces for every file the incremental leaves to them. The
            // files linked early were looked at beside the walk.
            let lacking = match (looked, early_paths) {
                (Some(mut lacking), Some(early)) => {
                    let rest = holdfast_store::pool::not_in(&keep, early);
                    if !rest.is_empty() {
                        lacking.extend(self.target.missing(self.plan, &rest)?);
                    }
                    lacking
                }
                _ => self.target.missing(self.plan, &keep)?,
            };
            let extra = night.take_from_site(&self.site.repo.root, lacking);
            self.send_lacking(&extra, &mut stats)?;
            whole.extend(extra);
        }
        // Sure to be in the copy: whole before, still there after, named by content.
        let copied: BTreeSet<String> = whole
            .into_iter()
            .filter(|p| precopy::content_name(p).is_some() && self.site.repo.root.join(p).is_file())
            .collect();
        let damaged = match damaged_early {
            Some(d) => self.checked_kept(&keep, d)?,
            None => {
                // Files being written are not in the copy yet: the delta pass sends them.
                let names: Vec<String> = night
                    .list
                    .keys()
                    .filter(|k| night.send.get(*k) != Some(&false))
                    .cloned()
                    .collect();
                self.heal(Some(&names))?
            }
        };
        tracing::info!(
            secs = t.elapsed().as_secs_f64(),
            named = night.named,
            new_files = stats.transferred_files,
            "new files pre-copied while the scheduler runs"
        );
        Ok(Pre::Db(night, copied, stats, damaged))
    }

    /// A pre-copy of the whole repository (no previous list to build on).
    pub(crate) fn precopy_walk(&self) -> Result<Pre, BackupError> {
        let t = Instant::now();
        let before = precopy::list(&self.site.repo.root, self.dirs);
        let names: Vec<String> = before.keys().cloned().collect();
        let stats = self.target.send_repository(
            self.plan,
            self.src,
            Files::All {
                list: self.plan.lists_files.then_some(&names[..]),
            },
        )?;
        let after = precopy::list(&self.site.repo.root, self.dirs);
        // Sampled among the files there before and after the copy: it holds them all.
        let held: Vec<String> = names
            .into_iter()
            .filter(|p| after.contains_key(p))
            .collect();
        let damaged = self.heal(Some(&held))?;
        tracing::info!(
            secs = t.elapsed().as_secs_f64(),
            files = before.len(),
            new_files = stats.transferred_files,
            "repository pre-copied while the scheduler runs"
        );
        Ok(Pre::Walk(precopy::copied(&before, &after), stats, damaged))
    }
}
