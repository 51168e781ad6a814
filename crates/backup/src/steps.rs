//! The steps of one run that copy the repository: the pre-copy while the scheduler runs,
//! then its last pass with the scheduler stopped, for each way a night finds its change (the
//! database's new rows on the previous snapshot's list, a walk matched against that list,
//! or the whole repository), and the dump that runs beside the last pass. [`crate::backup`]
//! decides which, stops and starts the scheduler and makes the snapshot.

use crate::backup::{ask_database, heal, heal_at, missing_files};
use crate::config::BackupConfig;
use crate::BackupError;
use crate::{nightly, precopy};
use holdfast_core::threads::joined;
use holdfast_site::Site;
use holdfast_store::{Files, LayoutKind, Plan, Source, Store};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

/// What every step of a run reads: the site, the configuration, the target and its plan,
/// the folders copied.
pub(crate) struct Run<'a> {
    pub(crate) site: &'a Site,
    pub(crate) cfg: &'a BackupConfig,
    pub(crate) target: &'a dyn Store,
    pub(crate) plan: &'a Plan,
    pub(crate) src: &'a Source<'a>,
    pub(crate) types: &'static [&'static str],
    pub(crate) dirs: &'a [String],
    /// Makes a new file's folder ahead of its copy (see [`Store::folder_maker`]).
    pub(crate) folders: Option<holdfast_store::FolderMaker<'a>>,
}

/// What the pre-copy did.
pub(crate) enum Pre {
    None,
    /// Walked: the files the pre-copy is sure to hold, its stats, damaged files.
    Walk(
        BTreeSet<String>,
        holdfast_store::rsync::RsyncStats,
        Vec<String>,
    ),
    /// A database night: its plan, the files sure to be in the copy, stats, damaged files.
    Db(
        nightly::Night,
        BTreeSet<String>,
        holdfast_store::rsync::RsyncStats,
        Vec<String>,
    ),
}

/// What the copy with the scheduler stopped gives the snapshot.
pub(crate) struct Copied {
    pub(crate) entries: Vec<holdfast_store::pool::Entry>,
    /// The list is on the target already (written while the new files went out).
    pub(crate) written: bool,
    pub(crate) stats: holdfast_store::rsync::RsyncStats,
    pub(crate) damaged: Vec<String>,
    pub(crate) missing: Vec<holdfast_site::db::Reference>,
    pub(crate) unnamed: Vec<String>,
    pub(crate) unlisted: Vec<String>,
}

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

impl Run<'_> {
    /// A database night copied with the scheduler stopped (no pre-copy): the new files sent,
    /// the kept ones linked (rolling) or left in place, the list written meanwhile.
    pub(crate) fn copy_night(
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
    pub(crate) fn delta_after_night(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
        before: nightly::Night,
        copied: BTreeSet<String>,
        pre_stats: holdfast_store::rsync::RsyncStats,
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
        let (sent, new_files, stats) = delta_pass(
            self.target,
            self.plan,
            self.src,
            &night.send,
            &copied,
            &drop,
            &pre_stats,
        )?;
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
    pub(crate) fn settle_walk(
        &self,
        client: &mut postgres::Client,
        before: nightly::Night,
        copied: BTreeSet<String>,
        pre_stats: holdfast_store::rsync::RsyncStats,
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
        let (sent, new_files, stats) = delta_pass(
            self.target,
            self.plan,
            self.src,
            &night.send,
            &copied,
            &drop,
            &pre_stats,
        )?;
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
    pub(crate) fn copy_stopped(
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
    pub(crate) fn delta_after_walk(
        &self,
        client: &mut postgres::Client,
        copied: BTreeSet<String>,
        pre_stats: holdfast_store::rsync::RsyncStats,
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
        let stats = holdfast_store::rsync::RsyncStats {
            transferred_files: pre_stats.transferred_files + delta_stats.transferred_files,
            transferred_bytes: pre_stats.transferred_bytes + delta_stats.transferred_bytes,
            ..Default::default()
        };
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
}

/// What linking the previous tree's files did: links made, the paths that tree lacks, secs.
struct Linked {
    links: u64,
    lacking: Vec<String>,
    secs: f64,
}

impl Run<'_> {
    /// Rolling: the new tree links every file of the previous one it keeps (`paths`); None
    /// for the other layouts.
    fn link_previous(
        &self,
        p: &nightly::Previous,
        paths: &[String],
    ) -> Option<Result<Linked, holdfast_store::StoreError>> {
        (self.cfg.layout == LayoutKind::Rolling && !paths.is_empty()).then(|| {
            let t = Instant::now();
            self.target
                .link_previous(self.plan, &p.snapshot.name, paths)
                .map(|(links, lacking)| Linked {
                    links,
                    lacking,
                    secs: t.elapsed().as_secs_f64(),
                })
        })
    }

    /// [`heal`] with this run's site, configuration, target and plan.
    fn heal(&self, list: Option<&[String]>) -> Result<Vec<String>, BackupError> {
        heal(self.site, self.cfg, self.target, self.plan, self.src, list)
    }

    /// The sample's result for a night that sampled the files in place while linking the rest
    /// (see `ready`), then the files it linked that a verification found damaged (they are
    /// checked once in the tree, and copied again from the site).
    fn checked_kept(
        &self,
        keep: &[String],
        sampled: Result<Vec<String>, BackupError>,
    ) -> Result<Vec<String>, BackupError> {
        let mut damaged = sampled?;
        if !in_place(self.cfg, self.plan) {
            damaged.extend(heal_at(
                self.site,
                self.target,
                self.plan,
                self.src,
                Some(keep),
                0.0,
            )?);
            damaged.sort();
            damaged.dedup();
        }
        Ok(damaged)
    }

    /// The night's plan: the database's new rows on the previous snapshot's list (`p`).
    fn night(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
    ) -> Result<nightly::Night, BackupError> {
        self.plan_night(client, p, true).map(|(night, _)| night)
    }

    /// [`nightly::plan`] for this run (`ask`: whether rows were deleted, at once).
    fn plan_night(
        &self,
        client: &mut postgres::Client,
        p: &nightly::Previous,
        ask: bool,
    ) -> Result<(nightly::Night, nightly::Carried), BackupError> {
        nightly::plan(
            self.site,
            self.types,
            self.dirs,
            p,
            client,
            self.folders.as_ref(),
            ask,
        )
    }

    /// What the previous tree lacks is sent from the site instead: returns those paths.
    fn settle(&self, night: &mut nightly::Night, linked: Linked) -> Vec<String> {
        tracing::info!(
            secs = linked.secs,
            linked = linked.links,
            "previous day's files linked"
        );
        night.take_from_site(&self.site.repo.root, linked.lacking)
    }

    /// Links `paths` from the previous tree ([`Self::link_previous`]); what it lacks is
    /// taken from the site.
    fn link(
        &self,
        p: &nightly::Previous,
        night: &mut nightly::Night,
        paths: Vec<String>,
    ) -> Result<(), BackupError> {
        if let Some(linked) = self.link_previous(p, &paths) {
            self.settle(night, linked?);
        }
        Ok(())
    }

    /// Files a tree turned out to lack (the previous day's, a spare's) go from the site.
    fn send_lacking(
        &self,
        extra: &[String],
        stats: &mut holdfast_store::TransferStats,
    ) -> Result<(), BackupError> {
        if !extra.is_empty() {
            stats.add(&self.target.send_repository(
                self.plan,
                self.src,
                Files::Delta {
                    send: extra,
                    drop: &[],
                },
            )?);
        }
        Ok(())
    }

    /// Rolling: the previous day's files are linked into the new tree while the new ones go
    /// out from the site (disjoint sets, both waiting on the disk: the waits overlap); what
    /// the previous tree lacked follows. Links begun early (`readied`) are not made again;
    /// a kept path sent tonight as well (not whole, or judged by size) goes once they are
    /// done: a link and a copy of one name at once could collide.
    fn link_and_send(
        &self,
        p: &nightly::Previous,
        night: &mut nightly::Night,
        keep: &[String],
        mut send: Vec<String>,
        readied: Option<Readying<'_, '_>>,
    ) -> Result<Sent, BackupError> {
        use holdfast_store::pool::{not_in, shared};
        use std::borrow::Cow;
        let t = Instant::now();
        let (early, handle) = readied.unzip();
        // Borrowed where nothing was readied early: most nights of most layouts.
        let (keep_rest, send_now, late): (Cow<[String]>, Cow<[String]>, _) = match early {
            Some(early) => (
                not_in(keep, early).into(),
                not_in(&send, early).into(),
                shared(&send, early),
            ),
            None => (keep.into(), send[..].into(), Vec::new()),
        };
        let (linked, stats) = std::thread::scope(|s| {
            let linker = s.spawn(|| self.link_previous(p, &keep_rest));
            let stats = self.target.send_repository(
                self.plan,
                self.src,
                Files::Delta {
                    send: &send_now,
                    drop: &[],
                },
            );
            let linked = joined(linker);
            (linked, stats)
        });
        let mut stats = stats?;
        let mut linked = linked.transpose()?;
        let mut looked = None;
        if let Some(handle) = handle {
            let readied = joined(handle)?;
            // A lacking file the night no longer keeps is deleted, or sent already.
            let lacking = shared(&readied.linked.lacking, keep);
            looked = readied.looked.map(|l| shared(&l, keep));
            linked = Some(match linked {
                Some(mut l) => {
                    l.links += readied.linked.links;
                    l.lacking.extend(lacking);
                    l.secs = l.secs.max(readied.linked.secs);
                    l
                }
                None => Linked {
                    lacking,
                    ..readied.linked
                },
            });
        }
        let extra = match linked {
            Some(linked) => self.settle(night, linked),
            None => Vec::new(),
        };
        self.send_lacking(&[&extra[..], &late[..]].concat(), &mut stats)?;
        send.extend(extra);
        tracing::info!(
            secs = t.elapsed().as_secs_f64(),
            files = send.len(),
            "new files sent"
        );
        Ok(Sent {
            stats,
            paths: send,
            looked,
        })
    }

    /// Rolling begun as the spare day: the previous day's files named by their content. The
    /// night keeps them unless the database deleted them (those leave the tree before the
    /// commit, see `drop_unlisted`), so they are linked before the night knows its list.
    /// None elsewhere.
    fn early_paths(&self, p: &nightly::Previous) -> Option<Vec<String>> {
        (self.cfg.layout == LayoutKind::Rolling && self.plan.recycled.is_some()).then(|| {
            p.list
                .iter()
                .filter(|e| precopy::content_name(&e.path).is_some())
                .map(|e| e.path.clone())
                .collect()
        })
    }

    /// Runs `planned` (the night's plan and copy) with the new tree readied beside it from
    /// the start (see [`Self::early_paths`]), where there is one to ready.
    fn beside_early<R>(
        &self,
        p: &nightly::Previous,
        walk_night: bool,
        planned: impl FnOnce(Option<Readying<'_, '_>>) -> R,
    ) -> R {
        let early = self.early_paths(p);
        std::thread::scope(|s| {
            let readied = early.as_deref().map(|paths| {
                (
                    paths,
                    s.spawn(move || self.ready_early(p, paths, walk_night)),
                )
            });
            planned(readied)
        })
    }

    /// Links `paths` (see [`Self::early_paths`]) into the new tree while the night is
    /// planned (a walk, the database's rows): neither waits for the other. On a walk night
    /// the tree is then looked at for each (see `precopy_night`), beside the walk too.
    fn ready_early(
        &self,
        p: &nightly::Previous,
        paths: &[String],
        walk_night: bool,
    ) -> Result<Readied, BackupError> {
        let t = Instant::now();
        let (links, lacking) = self
            .target
            .link_previous(self.plan, &p.snapshot.name, paths)?;
        let looked = if walk_night {
            // What the links found lacking is sent from the site already.
            let missing = self.target.missing(self.plan, paths)?;
            Some(holdfast_store::pool::not_in(&missing, &lacking))
        } else {
            None
        };
        Ok(Readied {
            linked: Linked {
                links,
                lacking,
                secs: t.elapsed().as_secs_f64(),
            },
            looked,
        })
    }
}

/// What [`Run::link_and_send`] did: the transfer, every path sent and, on a walk night
/// readied early, the kept files the tree lacked when it was looked at.
struct Sent {
    stats: holdfast_store::TransferStats,
    paths: Vec<String>,
    looked: Option<Vec<String>>,
}

/// The new tree readied while the night is planned (see [`Run::ready_early`]).
struct Readied {
    linked: Linked,
    /// On a walk night, the paths the tree still lacked after the links.
    looked: Option<Vec<String>>,
}

/// The paths being readied early and the thread readying them.
type Readying<'s, 'e> = (
    &'e [String],
    std::thread::ScopedJoinHandle<'s, Result<Readied, BackupError>>,
);

/// The database as the stopped scheduler left it, and the marks the next night starts from.
pub(crate) struct Dumped {
    pub(crate) database: holdfast_store::manifest::DumpInfo,
    pub(crate) spooled: Option<crate::dump::Spooled>,
    pub(crate) marks: Option<holdfast_site::changes::Marks>,
    pub(crate) secs: f64,
}

/// Dumps the database on a connection of its own, beside the copy's last pass.
pub(crate) fn dump_stopped(
    site: &Site,
    cfg: &BackupConfig,
    target: &dyn Store,
    plan: &Plan,
    dump_rel: &str,
) -> Result<Dumped, BackupError> {
    let t = Instant::now();
    let mut c = crate::connect(site)?;
    // rsync: the dump is written here and sent as soon as it is whole, beside the copy.
    let (database, spooled) = crate::dump::into_snapshot(
        &site.db,
        &mut c,
        cfg,
        target,
        plan,
        dump_rel,
        crate::dump::Source::Cluster,
    )?;
    let secs = t.elapsed().as_secs_f64();
    // With the scheduler stopped no agent adds rows: the next night starts from here.
    // Read on the dump's connection, which ends before the copy: off the night's path.
    let marks = match holdfast_site::changes::marks(&mut c) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(
                "cannot read the database's marks (the next backup walks the repository): {}",
                crate::pg_why(&e)
            );
            None
        }
    };
    Ok(Dumped {
        database,
        spooled,
        marks,
        secs,
    })
}

/// The files of the night's list it does not send: kept from the previous snapshot.
fn kept(night: &nightly::Night) -> Vec<String> {
    night
        .list
        .keys()
        .filter(|k| !night.send.contains_key(*k))
        .cloned()
        .collect()
}

/// The last pass after a pre-copy, the scheduler stopped: sends what `send` names that the
/// pre-copy does not hold (`copied`) and drops `drop`. Returns how many were sent, how many
/// the transfer counted new, and the night's transfer (the pre-copy's, `pre`, with it).
fn delta_pass(
    target: &dyn Store,
    plan: &Plan,
    src: &Source,
    send: &BTreeMap<String, bool>,
    copied: &BTreeSet<String>,
    drop: &[String],
    pre: &holdfast_store::rsync::RsyncStats,
) -> Result<(usize, u64, holdfast_store::rsync::RsyncStats), BackupError> {
    let send: Vec<String> = send
        .keys()
        .filter(|k| !copied.contains(*k))
        .cloned()
        .collect();
    let delta = target.send_repository(plan, src, Files::Delta { send: &send, drop })?;
    let stats = holdfast_store::rsync::RsyncStats {
        transferred_files: pre.transferred_files + delta.transferred_files,
        transferred_bytes: pre.transferred_bytes + delta.transferred_bytes,
        ..Default::default()
    };
    Ok((send.len(), delta.transferred_files, stats))
}

/// Whether the new snapshot holds every kept file before anything is sent: the pool and a
/// snapshot day do; a hard-linked day has them only once linked.
pub(crate) fn in_place(cfg: &BackupConfig, plan: &Plan) -> bool {
    cfg.layout != LayoutKind::Rolling || plan.snapshot_of.is_some()
}

/// The kept files the new snapshot holds before anything is linked, sampled while the new
/// files go out: all of them where they are in place, those the spare day holds in a
/// hard-linked day begun as it; None when a whole tree is still to link.
fn ready<'a>(
    cfg: &BackupConfig,
    plan: &Plan,
    keep: &'a [String],
) -> Option<std::borrow::Cow<'a, [String]>> {
    if in_place(cfg, plan) {
        return Some(keep.into());
    }
    let held = plan.recycled.as_ref()?;
    Some(holdfast_store::pool::shared(keep, held).into())
}

fn into_entries(
    list: std::collections::BTreeMap<String, Option<holdfast_store::pool::Meta>>,
) -> Vec<holdfast_store::pool::Entry> {
    list.into_iter()
        .map(|(path, meta)| holdfast_store::pool::Entry { path, meta })
        .collect()
}
