//! The copy's pass with the scheduler stopped, one way for each way the night found its
//! change: the database's new rows, a walk, or the whole repository.

use super::links::Sent;
use super::{in_place, into_entries, kept, ready, Copied, Readying, Run};
use crate::backup::{ask_database, missing_files};
use crate::{nightly, precopy, BackupError};
use holdfast_core::threads::joined;
use holdfast_store::rsync::RsyncStats;
use holdfast_store::{Files, LayoutKind};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

impl Run<'_> {
    /// A database night copied with the scheduler stopped (no pre-copy): the new files sent,
    /// the kept ones linked (rolling) or left in place, the list written meanwhile.
    pub(super) fn copy_night(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
    ) -> Result<Copied, BackupError> {
        self.beside_early(p, false, |readied| self.copy_planned(client, p, readied))
    }

    /// [`Self::copy_night`] once the early links (if any) are under way.
    fn copy_planned(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
        readied: Option<Readying<'_, '_>>,
    ) -> Result<Copied, BackupError> {
        let t = Instant::now();
        let in_place = in_place(self.cfg, self.plan);
        // Whether rows were deleted is asked while the new files go out: the answer only
        // takes files out of the list (and the tree, at the commit).
        let (mut night, carried) = self.plan_night(client, p, false)?;
        tracing::debug!(
            secs = t.elapsed().as_secs_f64(),
            new = night.send.len(),
            "the database's new rows matched against the previous list"
        );
        let keep = kept(&night);
        let send: Vec<String> = night.send.keys().cloned().collect();
        // In place nothing is linked that could turn out lacking, so the list is
        // final once planned: the writer has it (written and synced while the new
        // files go out) and gives it back as the snapshot's entries. Nothing here
        // copies it: the dump keeps both cores busy meanwhile. A tree begun as the
        // spare day links a few files: its writer gets a copy, right unless a link
        // finds a file lacking that the site lacks too (then written again below).
        let ready = ready(self.cfg, self.plan, &keep);
        let listed = night.list.len();
        let early = if in_place {
            Some(std::mem::take(&mut night.list))
        } else {
            ready.as_ref().map(|_| night.list.clone())
        };
        let (sent, damaged, wrote, asked) = std::thread::scope(|s| {
            let asking = s.spawn(|| nightly::still_named(client, &p.marks));
            // As in the pre-copy: kept files in place are sampled while the new ones
            // go out.
            let checker = ready.as_deref().map(|r| s.spawn(|| self.heal(Some(r))));
            let writer = early.map(|list| {
                s.spawn(move || {
                    let entries = into_entries(list);
                    self.target
                        .write_file_entries(self.plan, &entries)
                        .map(|()| entries)
                })
            });
            let sent = self.link_and_send(p, &mut night, &keep, send, readied);
            (
                sent,
                checker.map(joined),
                writer.map(joined),
                joined(asking),
            )
        });
        let Sent {
            stats, paths: send, ..
        } = sent?;
        let wrote = wrote.transpose()?;
        let deletions = carried.deletions(p, &self.site.repo.root, asked?);
        night.settle(&deletions);
        let gone: HashSet<&str> = deletions.gone.iter().map(|g| g.as_str()).collect();
        let (entries, written) = match wrote {
            // Files leave the list only by `take_from_site`'s removal or the deletions.
            Some(entries) if gone.is_empty() && (in_place || night.list.len() == listed) => {
                (entries, true)
            }
            Some(mut entries) if in_place => {
                entries.retain(|e| !gone.contains(e.path.as_str()));
                (entries, false)
            }
            _ => (into_entries(std::mem::take(&mut night.list)), false),
        };
        let mut damaged = match damaged {
            Some(d) => self.checked_kept(&keep, d)?,
            None => {
                let names: Vec<String> = entries.iter().map(|e| e.path.clone()).collect();
                self.heal(Some(&names))?
            }
        };
        damaged.retain(|d| !gone.contains(d.as_str()));
        tracing::info!(
            named = night.named,
            sent = send.len(),
            dropped = night.dropped,
            "copied what the database says is new"
        );
        Ok(Copied {
            entries,
            written,
            stats,
            damaged,
            missing: night.missing,
            unnamed: night.unnamed,
            unlisted: night.unlisted,
        })
    }

    /// The last pass after a database night's pre-copy, the scheduler stopped: what the
    /// database added since is sent, what left it dropped.
    pub(super) fn delta_after_night(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
        before: nightly::Night,
        copied: BTreeSet<String>,
        pre_stats: RsyncStats,
        damaged: Vec<String>,
    ) -> Result<Copied, BackupError> {
        let rolling = self.cfg.layout == LayoutKind::Rolling;
        let mut night = self.night(client, p)?;
        // Rolling: what the previous day holds that the pre-copy did not link yet.
        let more: Vec<String> = kept(&night)
            .into_iter()
            .filter(|k| !before.list.contains_key(k))
            .collect();
        self.link(p, &mut night, more)?;
        let mut list = std::mem::take(&mut night.list);
        let mut missing = std::mem::take(&mut night.missing);
        // Files in the pre-copy (sent, or linked from the previous day) gone since: the
        // snapshot keeps them while the database names them, else they leave it.
        let mut drop = Vec::new();
        for (path, meta) in before.list {
            if list.contains_key(&path) {
                continue;
            }
            let in_copy = copied.contains(&path) || (rolling && !before.send.contains_key(&path));
            if !in_copy {
                continue;
            }
            match missing.iter().position(|r| precopy::names(r, &path)) {
                Some(i) => {
                    missing.remove(i);
                    list.insert(path, meta);
                }
                None => drop.push(path),
            }
        }
        let (sent, new_files, stats) = self.delta_pass(&night.send, &copied, &drop, &pre_stats)?;
        tracing::info!(
            sent,
            dropped = drop.len(),
            new_files,
            "delta pass over what the database added since the pre-copy"
        );
        Ok(Copied {
            entries: into_entries(list),
            written: false,
            stats,
            damaged,
            missing,
            unnamed: night.unnamed,
            unlisted: night.unlisted,
        })
    }

    /// A walk night's end, the scheduler stopped: every row checked against the pre-copy's
    /// walk, the files the walk's list lacks now sent, those gone dropped.
    pub(super) fn settle_walk(
        &self,
        client: &mut postgres::Client,
        before: nightly::Night,
        copied: BTreeSet<String>,
        pre_stats: RsyncStats,
        damaged: Vec<String>,
    ) -> Result<Copied, BackupError> {
        let rolling = self.cfg.layout == LayoutKind::Rolling;
        let night = crate::walk::settle(self.site, self.types, self.dirs, client, &before)?;
        let missing = if night.missing.is_empty() {
            Vec::new()
        } else {
            missing_files(client, self.site, self.types, night.missing.clone())?
        };
        // Files the pre-copy put in the tree (sent, or linked) that left the list.
        let drop: Vec<String> = before
            .list
            .keys()
            .filter(|p| !night.list.contains_key(*p))
            .filter(|p| copied.contains(*p) || (rolling && !before.send.contains_key(*p)))
            .cloned()
            .collect();
        let (sent, new_files, stats) = self.delta_pass(&night.send, &copied, &drop, &pre_stats)?;
        tracing::info!(
            looked_up = night.named,
            sent,
            dropped = drop.len(),
            new_files,
            "delta pass over what the walk's list lacks now"
        );
        Ok(Copied {
            entries: into_entries(night.list),
            written: false,
            stats,
            damaged,
            missing,
            unnamed: night.unnamed,
            unlisted: night.unlisted,
        })
    }

    /// The whole copy with the scheduler stopped (no pre-copy, or no previous list): the
    /// database's check and the walk for the list beside it.
    pub(super) fn copy_stopped(
        &self,
        client: &mut postgres::Client,
    ) -> Result<Copied, BackupError> {
        // The scheduler is stopped: nothing moves in the repository. The database's check and
        // the walk for the list read it beside the copy: on a cold cache each warms folders and
        // inodes for the others (one after another they took 15.7 s of a rolling night whose
        // rsync alone walks in 9).
        let root = &self.site.repo.root;
        let c = &mut *client;
        let (asked, walked, stats) = std::thread::scope(|s| {
            let checker = s.spawn(move || ask_database(c, self.site, self.types));
            let (walked, stats) = if self.plan.lists_files {
                // The pool's copy takes its list from the walk.
                let walked = holdfast_store::pool::walk(root, self.dirs);
                let names = walked.names();
                let list = Some(&names[..]);
                (
                    walked,
                    self.target
                        .send_repository(self.plan, self.src, Files::All { list }),
                )
            } else {
                let walker = s.spawn(|| holdfast_store::pool::walk(root, self.dirs));
                let stats =
                    self.target
                        .send_repository(self.plan, self.src, Files::All { list: None });
                (joined(walker), stats)
            };
            (joined(checker), walked, stats)
        });
        let ((missing, named), stats, mut walked) = (asked?, stats?, walked);
        let damaged = self.heal(Some(&walked.names()))?;
        let unlisted = std::mem::take(&mut walked.unlisted);
        let entries = walked.into_entries();
        let unnamed = nightly::unnamed(self.site, self.types, &entries, &named);
        Ok(Copied {
            entries,
            written: false,
            stats,
            damaged,
            missing,
            unnamed,
            unlisted,
        })
    }

    /// The last pass after a walked pre-copy, the scheduler stopped: what changed since the
    /// pre-copy is sent or dropped.
    pub(super) fn delta_after_walk(
        &self,
        client: &mut postgres::Client,
        copied: BTreeSet<String>,
        pre_stats: RsyncStats,
        damaged: Vec<String>,
    ) -> Result<Copied, BackupError> {
        // As above: the check and the walk read the stopped repository side by side.
        let root = &self.site.repo.root;
        let c = &mut *client;
        let (asked, mut walked) = std::thread::scope(|s| {
            let checker = s.spawn(move || ask_database(c, self.site, self.types));
            let walked = holdfast_store::pool::walk(root, self.dirs);
            (joined(checker), walked)
        });
        let (missing, named) = asked?;
        let now = precopy::wholeness(&walked);
        let delta = precopy::delta(&copied, &now, &missing);
        let delta_stats = self.target.send_repository(
            self.plan,
            self.src,
            Files::Delta {
                send: &delta.send,
                drop: &delta.drop,
            },
        )?;
        tracing::info!(
            sent = delta.send.len(),
            dropped = delta.drop.len(),
            kept = delta.keep.len(),
            new_files = delta_stats.transferred_files,
            "delta pass over what changed since the pre-copy"
        );
        let missing = precopy::still_missing(missing, &delta.keep);
        let stats = night_transfer(&pre_stats, &delta_stats);
        let unlisted = std::mem::take(&mut walked.unlisted);
        // Kept from the pre-copy, gone from the site: no metadata to record.
        let mut entries = walked.into_entries();
        entries.extend(
            delta
                .keep
                .into_iter()
                .map(|path| holdfast_store::pool::Entry { path, meta: None }),
        );
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let unnamed = nightly::unnamed(self.site, self.types, &entries, &named);
        Ok(Copied {
            entries,
            written: false,
            stats,
            damaged,
            missing,
            unnamed,
            unlisted,
        })
    }

    /// The last pass after a pre-copy, the scheduler stopped: sends what `send` names that
    /// the pre-copy does not hold (`copied`) and drops `drop`. Returns how many were sent, how
    /// many the transfer counted new, and the night's transfer (the pre-copy's, `pre`, with it).
    fn delta_pass(
        &self,
        send: &BTreeMap<String, bool>,
        copied: &BTreeSet<String>,
        drop: &[String],
        pre: &RsyncStats,
    ) -> Result<(usize, u64, RsyncStats), BackupError> {
        let send: Vec<String> = send
            .keys()
            .filter(|k| !copied.contains(*k))
            .cloned()
            .collect();
        let delta =
            self.target
                .send_repository(self.plan, self.src, Files::Delta { send: &send, drop })?;
        Ok((
            send.len(),
            delta.transferred_files,
            night_transfer(pre, &delta),
        ))
    }
}

/// What a night with a pre-copy sent: the new files of the pre-copy and of its last pass
/// (the snapshot's files and bytes are counted from its list afterwards).
fn night_transfer(pre: &RsyncStats, delta: &RsyncStats) -> RsyncStats {
    RsyncStats {
        transferred_files: pre.transferred_files + delta.transferred_files,
        transferred_bytes: pre.transferred_bytes + delta.transferred_bytes,
        ..Default::default()
    }
}
