//! The one interface every backup target implements: [`Store`].
//!
//! `holdfast_backup` only orchestrates (stop the scheduler, dump, restart, report); where
//! and how a snapshot's files are laid out, sent, listed, committed, proved, pruned and
//! brought back is the store's business. [`Target`](crate::Target) implements it for a local
//! folder and for `ssh://` (rsync over ssh, POSIX tools on the server); an object store
//! implements it on its own type.

use crate::layout::{Layout, Snapshot};
use crate::manifest::Manifest;
use crate::proof::{Proof, Proven};
use crate::rsync::RsyncStats;
use crate::StoreError;
use holdfast_core::progress::Progress;
use std::io::{Read, Write};
use std::path::Path;

/// Numbers of one transfer (files and bytes seen, sent).
pub type TransferStats = RsyncStats;

/// What the next snapshot is and what it builds on (from [`Store::plan`]).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The layout the snapshot is made in (it also holds the retention).
    pub layout: Layout,
    /// `full` or `incremental` (goes into the manifest).
    pub kind: String,
    /// Snapshot names an incremental builds on (goes into the manifest).
    pub builds_on: Vec<String>,
    /// Snapshots whose copies of unchanged files the new one reuses (linked, compared with,
    /// or already in the pool): a verification's damaged files in them are copied again.
    pub reuses: Vec<String>,
    /// True when the snapshot is a list of files in a shared pool: the orchestrator passes
    /// the repository's file list to [`Store::send_repository`] and
    /// [`Store::write_file_list`].
    pub lists_files: bool,
    /// Pool layout: the newest snapshot, whose listed files the pool is known to hold.
    pub previous: Option<String>,
    /// File-system layouts: absolute paths on the target of earlier repository copies to
    /// hard-link unchanged files to (`--link-dest`). A rotating chain's pieces (`builds_on`)
    /// are not linked: the new piece leaves their files out, looked up by holdfast itself,
    /// never with rsync's `--compare-dest` (see `TargetStore::copy_args`).
    pub link_dest: Vec<String>,
    /// Rolling on btrfs: the day the pending tree is a snapshot of; it already holds every
    /// file that day holds, so nothing is linked.
    pub snapshot_of: Option<String>,
    /// Rolling with hard links: the pending tree is a pruned day's, kept aside for this
    /// (see [`crate::layout`]); these are the files it held (sorted). They are not linked
    /// again, and those tonight's list lacks leave it before the commit.
    pub recycled: Option<std::sync::Arc<Vec<String>>>,
    /// With `recycled`: how many of the previous day's files the spare lacks (the nights'
    /// new files since the spare's day), the links this night makes before its kept files
    /// are in place.
    pub spare_lacks: Option<u64>,
    /// Pool layout on a file-system target: where the pool keeps repository files.
    pub pool: Option<crate::objects::Home>,
    /// The snapshots there when the plan was made, oldest first, each with its dump's path:
    /// a dump is sent against the newest one's of the same path (see [`Store::send_dump`]).
    pub dumps: Vec<(String, String)>,
}

/// The repository being backed up.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The repository root on this machine.
    pub root: &'a Path,
    /// Folders under the root that are copied (`<host>/<type>`, host-less `<type>`, and
    /// `report`-style extras); a folder missing on disk is skipped.
    pub dirs: &'a [String],
    /// The operator's extra rsync options (`backup.rsync_args`); stores without rsync ignore
    /// them.
    pub rsync_args: &'a [String],
}

/// See [`Store::folder_maker`]: called with each repository-relative path to be sent; what
/// it cannot make, the send makes (or says why not).
pub type FolderMaker<'a> = Box<dyn Fn(&str) + Sync + 'a>;

/// Which repository files a [`Store::send_repository`] call sends.
#[derive(Debug, Clone, Copy)]
pub enum Files<'a> {
    /// The whole repository. `list`: its files now, when [`Plan::lists_files`].
    All { list: Option<&'a [String]> },
    /// After a pre-copy: send `send`, and take `drop` (gone from the site since) out of the
    /// new snapshot (a pool keeps them; the list decides).
    Delta {
        send: &'a [String],
        drop: &'a [String],
    },
    /// Send these again even though the target has them (their copies are damaged).
    Again(&'a [String]),
    /// Exactly these files, no folder rules (a copy from another store: the source root is
    /// a staging folder or another target's repository folder).
    Only(&'a [String]),
}

/// Whose repository files [`Store::prove`] hashes.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// The snapshot being made (after [`Store::send_repository`], before commit).
    Pending(&'a Plan),
    Snapshot(&'a Snapshot),
}

/// What [`Store::send_dump`] did.
#[derive(Debug, Clone, Default)]
pub struct DumpSent {
    /// Bytes that crossed the wire.
    pub sent: u64,
    /// The snapshot whose dump served as the delta basis.
    pub against: Option<String>,
}

/// A file being streamed to a store; [`Upload::finish`] makes it durable. Dropped without
/// `finish`, the upload is abandoned (the snapshot it belongs to is never committed).
pub trait Upload: Write + Send {
    fn finish(self: Box<Self>) -> Result<(), StoreError>;
}

/// A backup target: owns the snapshot layout end to end.
///
/// Paths (`rel`) are relative to the target's root, `/`-separated. A snapshot is visible
/// (listed by [`Store::snapshots`]) only once its manifest is written, and the manifest is
/// written last, after everything it vouches for is durable.
///
/// # What an object-store implementation must provide
///
/// * **Small objects and streams**: [`read`](Store::read) (`None` when absent),
///   [`write_atomic`](Store::write_atomic) (whole or not at all: a single PUT),
///   [`open`](Store::open) (streamed GET of the dump). Verification records
///   (`.verify/<stamp>.json`) and the stoney monitor files go through these.
/// * **Listing**: [`snapshots`](Store::snapshots) returns only snapshots whose manifest
///   object exists and parses, oldest first; [`snapshot_files`](Store::snapshot_files) the
///   repository-relative paths a snapshot holds (its file list).
/// * **A backup**: [`plan`](Store::plan) accepts the pool layout only (refuse the others
///   with [`StoreError::BadTarget`]), sets `lists_files` and `previous`, and finishes or
///   discards what a killed run left; [`send_repository`](Store::send_repository) uploads
///   the files the pool lacks (objects named by their repository path; a name present is a
///   file present, since FOSSology names files by content; multipart for big ones);
///   [`create_dump`](Store::create_dump) / [`send_dump`](Store::send_dump) put the dump
///   under the pending snapshot; [`write_file_list`](Store::write_file_list) its list
///   ([`crate::pool::encode`]); [`commit`](Store::commit) writes the manifest object last
///   and then applies the layout's retention ([`prune`](Store::prune)).
/// * **Proof**: [`prove`](Store::prove) hashes objects against their names
///   ([`crate::proof::judge`]) for verify and for the check before a commit.
/// * **Retention**: [`prune`](Store::prune) removes snapshots beyond `layout.keep` (manifest
///   object first, so a half-removed snapshot is never listed), then
///   [`collect_garbage`](Store::collect_garbage) deletes pool objects no kept list names,
///   failing closed (an unreadable list deletes nothing).
/// * **Restore and copies**: [`fetch_files`](Store::fetch_files) writes some of a
///   snapshot's files under a local folder (the default
///   [`restore_repository`](Store::restore_repository) fetches them all; hard links
///   between gold and its `files` twin may come back as copies). A copy job
///   (`holdfast copy`) sends a snapshot from one store to another with `fetch_files` on
///   the source and `plan`/`send_repository(Files::Only)`/`prove`/`write_file_list`/
///   `create_dump`/`commit` on the destination; overriding [`missing`](Store::missing)
///   (HEAD or LIST) lets a resumed copy skip what a killed one already uploaded.
pub trait Store: Send + Sync {
    /// The target as the operator wrote it (no secrets in it).
    fn display(&self) -> String;
    /// Makes sure the target exists and can be written.
    fn check(&self) -> Result<(), StoreError>;
    /// Makes sure the target exists, changing nothing (commands that only read).
    fn check_readable(&self) -> Result<(), StoreError> {
        self.check()
    }
    /// Ends shared connections.
    fn close(&self) {}
    /// A file-system target (local or ssh) exposes its location (for `require_mount` and
    /// tools that need a path); other stores return `None`.
    fn as_target(&self) -> Option<&crate::Target> {
        None
    }

    /// Reads a small file; `None` when it does not exist.
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a small file whole or not at all (private to the backup's owner).
    fn write_atomic(&self, rel: &str, data: &[u8]) -> Result<(), StoreError>;
    /// Opens a file for streaming (the dump).
    fn open(&self, rel: &str) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Complete snapshots (those with a readable manifest), oldest first.
    fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError>;
    /// Repository-relative paths of the repository files `snap` holds, sorted.
    fn snapshot_files(&self, snap: &Snapshot) -> Result<Vec<String>, StoreError>;

    /// Finishes or clears what an interrupted run left, and decides what the next snapshot
    /// is in `layout`.
    fn plan(&self, layout: &Layout) -> Result<Plan, StoreError>;
    /// Sends repository files into the pending snapshot.
    fn send_repository(
        &self,
        plan: &Plan,
        src: &Source,
        files: Files,
    ) -> Result<TransferStats, StoreError>;
    /// Makes the folders a repository path will need in the pending snapshot ahead of its
    /// send, where that shortens the night: on a snapshot day each new folder first copies
    /// metadata the day before shares, one at a time, so making them while the new files are
    /// still being looked up on the site takes that off the send. None: the send makes
    /// them itself.
    fn folder_maker<'a>(&'a self, _plan: &'a Plan, _src: &'a Source) -> Option<FolderMaker<'a>> {
        None
    }
    /// Before a whole copy into the pending snapshot (a walk night): starts reading the
    /// store's trees that copy walks (the one it brings up to date, those it links from)
    /// into the cache, in the background. The default reads nothing.
    fn read_ahead(&self, _plan: &Plan, _src: &Source) {}
    /// Repository-relative paths the pending snapshot holds now, sorted.
    fn pending_files(&self, plan: &Plan) -> Result<Vec<String>, StoreError>;
    /// Streams the dump into `rel` of the pending snapshot.
    fn create_dump(&self, plan: &Plan, rel: &str) -> Result<Box<dyn Upload>, StoreError>;
    /// Sends a dump written locally into `rel` of the pending snapshot, against the newest
    /// snapshot's dump of the same name where the store can send differences. The dump is
    /// durable once the snapshot is committed.
    fn send_dump(&self, plan: &Plan, local: &Path, rel: &str) -> Result<DumpSent, StoreError>;
    /// Writes the pending snapshot's file list (when [`Plan::lists_files`]).
    fn write_file_list(&self, plan: &Plan, list: &[String]) -> Result<(), StoreError>;
    /// Writes the pending snapshot's file list with each file's recorded mode, owner and
    /// mtime (any layout: the next night builds on it, a restore gives the metadata back).
    /// The default keeps the paths only, for a store that lists files.
    fn write_file_entries(
        &self,
        plan: &Plan,
        list: &[crate::pool::Entry],
    ) -> Result<(), StoreError> {
        if !plan.lists_files {
            return Ok(());
        }
        let paths: Vec<String> = list.iter().map(|e| e.path.clone()).collect();
        self.write_file_list(plan, &paths)
    }
    /// Rolling: the files of the previous snapshot `from` (whose list is `before`) that
    /// tonight's list `now` lacks leave the tree being made now, while the dump may still
    /// run, rather than at the commit, which would read both lists again. The default leaves
    /// it to the commit.
    fn drop_unlisted(
        &self,
        _plan: &Plan,
        _from: &str,
        _before: &[crate::pool::Entry],
        _now: &[crate::pool::Entry],
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// The snapshot's own list, or None when it has none of its own: older rolling and
    /// rotating snapshots, and online rolling nights (a btrfs day may carry the day before's,
    /// see [`crate::manifest::Manifest::list_is_its_own`]). A list that is there but cannot
    /// be read, or names places outside the repository, is an error.
    fn own_entries(
        &self,
        snap: &crate::layout::Snapshot,
    ) -> Result<Option<Vec<crate::pool::Entry>>, StoreError> {
        if !snap.manifest.list_is_its_own() {
            return Ok(None);
        }
        match self.file_entries(&snap.name) {
            Ok(l) => Ok(Some(l)),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
    /// Reads a snapshot's list with what it recorded about each file (`None` for the
    /// metadata of lists that have none).
    fn file_entries(&self, snap: &str) -> Result<Vec<crate::pool::Entry>, StoreError> {
        let rel = format!("{snap}/{}", crate::layout::FILE_LIST);
        let data = self.read(&rel)?.ok_or_else(|| StoreError::Io {
            path: format!("{} {rel}", self.display()),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no file list"),
        })?;
        crate::pool::decode_entries(&data[..]).map_err(|e| StoreError::Io {
            path: format!("{} {rel}", self.display()),
            source: e,
        })
    }
    /// Rolling layout: hard-links `paths` of snapshot `from` into the pending snapshot.
    /// Returns how many were linked and the paths `from` lacks (the caller sends those).
    /// The default links nothing (every path is sent).
    fn link_previous(
        &self,
        _plan: &Plan,
        _from: &str,
        paths: &[String],
    ) -> Result<(u64, Vec<String>), StoreError> {
        Ok((0, paths.to_vec()))
    }
    /// Makes everything durable, writes the manifest last (with its sequence: one past the
    /// store's highest, set here), makes the snapshot visible and applies the layout's
    /// retention. Returns the snapshot's name.
    fn commit(&self, plan: &Plan, manifest: &mut Manifest) -> Result<String, StoreError>;

    /// Hashes `paths` (repository-relative) at `place` against their names; one result per
    /// path, in order. A missing file is [`Proof::Bad`].
    fn prove(
        &self,
        place: Place,
        paths: &[String],
        progress: &Progress,
    ) -> Result<Vec<Proof>, StoreError> {
        self.prove_with(place, paths, progress, &Proven::default())
    }

    /// [`Store::prove`], taking a file the store holds once for several places (a pool
    /// object, a hard link) from `proven` when an earlier call proved it, and adding the
    /// files it reads there.
    fn prove_with(
        &self,
        place: Place,
        paths: &[String],
        progress: &Progress,
        proven: &Proven,
    ) -> Result<Vec<Proof>, StoreError>;

    /// Removes the snapshots `layout` no longer keeps; returns their names.
    fn prune(&self, layout: &Layout) -> Result<Vec<String>, StoreError>;
    /// Deletes pool files no kept snapshot lists; returns how many. Fails closed.
    fn collect_garbage(&self) -> Result<u64, StoreError>;

    /// Writes `paths` (repository-relative, as [`Store::snapshot_files`] names them) of
    /// `snap` under `dest`, keeping the relative paths. Used to copy a snapshot to another
    /// store.
    fn fetch_files(
        &self,
        snap: &Snapshot,
        paths: &[String],
        dest: &Path,
    ) -> Result<TransferStats, StoreError>;

    /// [`Store::fetch_files`] for files that are read once and deleted (a copy's staging):
    /// a store on this machine may hard-link them from itself instead of copying. Nothing
    /// may change what it writes.
    fn stage_files(
        &self,
        snap: &Snapshot,
        paths: &[String],
        dest: &Path,
    ) -> Result<TransferStats, StoreError> {
        self.fetch_files(snap, paths, dest)
    }

    /// Writes the repository files of `snap` (its whole chain) under `dest`.
    fn restore_repository(&self, snap: &Snapshot, dest: &Path) -> Result<(), StoreError> {
        let files = self.snapshot_files(snap)?;
        self.fetch_files(snap, &files, dest).map(|_| ())
    }

    /// A folder on this machine holding `snap`'s files under their repository paths, when
    /// there is one (a local target, not an incremental): a copy reads from it directly.
    fn local_files(&self, _snap: &Snapshot) -> Option<std::path::PathBuf> {
        None
    }

    /// Of `paths`, those the pending snapshot's store does not hold yet (a copy resumed
    /// after a kill sends only these; a walk night sends those its tree lacks). A rotating
    /// incremental holds what its chain's pieces hold too. The default says none is held.
    fn missing(&self, _plan: &Plan, paths: &[String]) -> Result<Vec<String>, StoreError> {
        Ok(paths.to_vec())
    }

    /// A snapshot by name, or the newest when `name` is `None`.
    fn find(&self, name: Option<&str>) -> Result<Snapshot, StoreError> {
        let all = self.snapshots()?;
        let found = match name {
            None => all.into_iter().last(),
            Some(n) => all.into_iter().find(|s| s.name == n),
        };
        found.ok_or_else(|| StoreError::NoSnapshot {
            target: self.display(),
            name: name.map(str::to_string),
        })
    }

    /// The snapshots a restore of `snap` needs, base first.
    fn chain(&self, snap: &Snapshot) -> Result<Vec<Snapshot>, StoreError> {
        let mut out = Vec::new();
        for n in &snap.manifest.builds_on {
            out.push(self.find(Some(n))?);
        }
        out.push(snap.clone());
        Ok(out)
    }
}

/// What a restore of `snapshot`'s repository from `target` is called in its progress and
/// errors.
pub fn restore_what(target: &str, snapshot: &str) -> String {
    format!("restore of the repository from {target} {snapshot}")
}
