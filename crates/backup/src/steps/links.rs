//! Rolling: the previous day's files linked into the new tree, beside the new files' send
//! and, when the tree is begun as the spare day, from the night's start.

use super::Run;
use crate::{nightly, precopy, BackupError};
use holdfast_core::threads::joined;
use holdfast_store::{Files, LayoutKind};
use std::time::Instant;

/// What linking the previous tree's files did: links made, the paths that tree lacks, secs.
pub(super) struct Linked {
    pub(super) links: u64,
    pub(super) lacking: Vec<String>,
    pub(super) secs: f64,
}

impl Run<'_> {
    /// Rolling: the new tree links every file of the previous one it keeps (`paths`); None
    /// for the other layouts.
    pub(super) fn link_previous(
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

    /// What the previous tree lacks is sent from the site instead: returns those paths.
    pub(super) fn settle(&self, night: &mut nightly::Night, linked: Linked) -> Vec<String> {
        tracing::info!(
            secs = linked.secs,
            linked = linked.links,
            "previous day's files linked"
        );
        night.take_from_site(&self.site.repo.root, linked.lacking)
    }

    /// Links `paths` from the previous tree ([`Self::link_previous`]); what it lacks is
    /// taken from the site.
    pub(super) fn link(
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
    pub(super) fn send_lacking(
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
    pub(super) fn link_and_send(
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
    pub(super) fn beside_early<R>(
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
pub(super) struct Sent {
    pub(super) stats: holdfast_store::TransferStats,
    pub(super) paths: Vec<String>,
    pub(super) looked: Option<Vec<String>>,
}

/// The new tree readied while the night is planned (see [`Run::ready_early`]).
pub(super) struct Readied {
    linked: Linked,
    /// On a walk night, the paths the tree still lacked after the links.
    looked: Option<Vec<String>>,
}

/// The paths being readied early and the thread readying them.
pub(super) type Readying<'s, 'e> = (
    &'e [String],
    std::thread::ScopedJoinHandle<'s, Result<Readied, BackupError>>,
);
