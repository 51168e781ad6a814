//! [`Store`] for file-system targets: a local folder, or a folder on a backup server over
//! ssh. Files travel with the system `rsync` (hard links kept, change judged by name and
//! size), or, listed ones to a local folder, with [`local_send`] (the same rules); the
//! layouts are the folders of [`crate::layout`]; files are proved where they are (hashed
//! here for a local target, by `sha1sum`/`md5sum` on the backup server for ssh, so they do
//! not cross the network).

use crate::layout::{self, Layout, LayoutKind, Snapshot, FILE_LIST, PARTIAL, POOL};
use crate::local_send;
use crate::manifest::{Manifest, REPO_DIR};
use crate::objects::{Home, Naming, INCOMING, PATHS};
use crate::proof::{pfile_of, Proof, Proven};
use crate::rsync::{base_args, fetch_args, tree_filters, Rsync};
use crate::store::{
    DumpSent, Files, FolderMaker, Place, Plan, Source, Store, TransferStats, Upload,
};
use crate::target::{
    in_parts, list_file, nul_separated, sh_quote, Sink, Target, SIDE_BY_SIDE_FROM,
};

mod chain;
mod prove;
use crate::StoreError;
use holdfast_core::fs::PRIVATE_DIR;
use holdfast_core::progress::Progress;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

impl Upload for Sink {
    fn finish(self: Box<Self>) -> Result<(), StoreError> {
        Sink::finish(*self)
    }
}

/// Where the repository files of the snapshot being made go.
fn pending_home(plan: &Plan) -> Home {
    match &plan.pool {
        Some(home) => home.clone(),
        None if plan.layout.kind == LayoutKind::Pool => Home {
            base: POOL.to_string(),
            naming: Naming::Objects,
        },
        None => Home::paths(format!("{PARTIAL}/{REPO_DIR}")),
    }
}

/// Where the repository files of a folder snapshot being made go.
fn pending_repo(plan: &Plan) -> String {
    pending_home(plan).base
}

/// [`Store::missing`] on the server: each NUL-ended name on stdin that is not there.
fn lacking_perl() -> String {
    crate::target::forked_perl(
        "",
        r#"local $/ = "\0"; my @n = <STDIN>; chomp @n; @n"#,
        r#"lstat $_[0] or print "$_[0]\0""#,
    )
}

/// The server's script for [`Store::missing`] under `root`: prints the names it lacks,
/// NUL-separated; perl where the server has it (the shell's `read` takes a system call per
/// byte).
fn lacking_script(root: &str) -> String {
    format!(
        "cd {} 2>/dev/null || {{ cat; exit 0; }}\n\
         if command -v perl >/dev/null 2>&1; then exec perl -e {}; fi\n\
         tr '\\0' '\\n' | while IFS= read -r p; do [ -e \"$p\" ] || printf '%s\\0' \"$p\"; done",
        sh_quote(root),
        sh_quote(&lacking_perl())
    )
}

/// rsync runs at once when a backup server gives a long list back: one waits for the
/// server's disk file by file (a whole-site restore over ssh: 28 s in one run, 18 s in four).
pub(crate) const REMOTE_FETCHERS: usize = 4;

/// `paths` in `n` parts, every path of one file name in the same part: a content name's
/// paths (a gold file and its `files` twin) are one file's names, which `-H` keeps linked
/// only within one run.
pub(crate) fn by_name<S: AsRef<str>>(paths: &[S], n: usize) -> Vec<Vec<&S>> {
    use std::hash::{Hash, Hasher};
    let mut parts = vec![Vec::new(); n];
    for item in paths {
        let p = item.as_ref();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        p.rsplit('/').next().unwrap_or(p).hash(&mut h);
        parts[(h.finish() % n as u64) as usize].push(item);
    }
    parts
}

impl Target {
    /// Fetches `paths` (relative to the folder `base` of this target) into `dest`, rsync
    /// given `args` and a list of them; from a backup server, a long list in
    /// [`REMOTE_FETCHERS`] parts at once ([`by_name`]).
    pub fn fetch_listed<S: AsRef<str>>(
        &self,
        base: &str,
        paths: &[S],
        args: &[String],
        dest: &Path,
        what: &str,
    ) -> Result<TransferStats, StoreError> {
        let parts = if matches!(self, Target::Ssh { .. }) && paths.len() >= SIDE_BY_SIDE_FROM {
            by_name(paths, REMOTE_FETCHERS)
        } else {
            vec![paths.iter().collect()]
        };
        let lists = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| self.files_from(p))
            .collect::<Result<Vec<_>, _>>()?;
        let runs: Vec<Rsync> = lists
            .iter()
            .map(|list| {
                let mut args = args.to_vec();
                args.push(list.arg());
                Rsync {
                    args,
                    rsh: self.rsync_rsh(),
                    src: format!("{}/", self.rsync_location(base)),
                    dest: format!("{}/", dest.display()),
                    what: what.to_string(),
                }
            })
            .collect();
        Rsync::run_side_by_side(&runs, what)
    }

    /// Where the repository files of `snap` are.
    pub fn snapshot_home(&self, snap: &Snapshot) -> Result<Home, StoreError> {
        if snap.manifest.layout == "pool" {
            return crate::objects::pool_home(self);
        }
        Ok(Home::paths(format!("{}/{REPO_DIR}", snap.name)))
    }

    /// Sends `paths` into a pool of objects: the content-named ones, one path per object,
    /// each straight to its object on a local target, else through `.incoming/` (see
    /// [`crate::objects`]); the others into `paths/` (rsync compares them by size) with
    /// `args` besides [`base_args`] and the list.
    fn send_objects(
        &self,
        home: &Home,
        src: &Source,
        paths: &[String],
        args: &[String],
        what: &str,
    ) -> Result<TransferStats, StoreError> {
        let (named, other): (Vec<String>, Vec<String>) =
            paths.iter().cloned().partition(|p| pfile_of(p).is_some());
        let mut stats = TransferStats::default();
        if !named.is_empty() {
            let mut placed = crate::objects::one_per_object(&named);
            if let Some(root) = self
                .local_path(&home.base)
                .filter(|_| src.rsync_args.is_empty())
            {
                // On this machine each goes straight to its object, many at a time.
                let pairs: Vec<(&str, &str)> = placed
                    .iter()
                    .map(|(object, path)| (path.as_str(), object.as_str()))
                    .collect();
                let how = local_send::How {
                    replace_into: Some(PRIVATE_DIR),
                    stage: Some(root.join(INCOMING)),
                    ..Default::default()
                };
                let sent = local_send::send_pairs(
                    &local_send::Send {
                        src: src.root,
                        dest: &root,
                        how: &how,
                        what: &format!("{what} of the repository to {}", self.display()),
                    },
                    &pairs,
                )?;
                stats.add(&sent.stats);
                // The staging folder: empty now, or holding a killed run's leftovers.
                self.remove_all(&format!("{}/{INCOMING}", home.base))?;
                placed.retain(|_, path| sent.others.contains(path));
            }
            if !placed.is_empty() {
                let firsts: Vec<String> = placed.values().cloned().collect();
                // Flat (`--no-relative`: no folders to make and remove), each under its
                // name; the list is the picked folders' files already, so no folder rules.
                // A killed run's leftovers there are whole files (rsync renames each into
                // place).
                let mut flat = vec!["--no-relative".to_string()];
                flat.extend(src.rsync_args.iter().cloned());
                stats.add(&self.send_paths(
                    src,
                    &firsts,
                    &format!("{}/{INCOMING}", home.base),
                    &flat,
                    None,
                    what,
                )?);
                let t = std::time::Instant::now();
                crate::objects::place(self, &home.base, &placed)?;
                tracing::debug!(
                    secs = t.elapsed().as_secs_f64(),
                    files = placed.len(),
                    "new files placed in the pool"
                );
            }
        }
        stats.add(&self.send_paths(
            src,
            &other,
            &format!("{}/{PATHS}", home.base),
            args,
            None,
            what,
        )?);
        Ok(stats)
    }

    /// Sends `paths` from `src` into `dest` (on the target): with rsync (`args` after
    /// [`base_args`] and a files-from list), or, when the target is on this machine and a
    /// `how` is given ([`Self::local_how`]), as [`local_send`] does it that way (rsync then
    /// sends only what it leaves: anything but regular files).
    fn send_paths(
        &self,
        src: &Source,
        paths: &[String],
        dest: &str,
        args: &[String],
        how: Option<&local_send::How>,
        what: &str,
    ) -> Result<TransferStats, StoreError> {
        let mut stats = TransferStats::default();
        let what = format!("{what} of the repository to {}", self.display());
        let left;
        let mut paths = paths;
        if let (Some(how), Some(root)) = (how, self.local_path(dest)) {
            let sent = local_send::send(
                &local_send::Send {
                    src: src.root,
                    dest: &root,
                    how,
                    what: &what,
                },
                paths,
            )?;
            stats.add(&sent.stats);
            left = sent.others;
            paths = &left;
        }
        if paths.is_empty() {
            return Ok(stats);
        }
        let f = list_file(paths)?;
        let mut all = base_args();
        all.extend(args.iter().cloned());
        all.push(format!("--files-from={}", f.path().display()));
        stats.add(
            &Rsync {
                args: all,
                rsh: self.rsync_rsh(),
                src: format!("{}/", src.root.display()),
                dest: format!("{}/", self.rsync_location(dest)),
                what,
            }
            .run()?,
        );
        Ok(stats)
    }

    /// How a local copy into the pending tree stands for `--link-dest`; `None` when rsync
    /// copies: the operator gave rsync options of their own (`backup.rsync_args`).
    fn local_how(plan: &Plan, src: &Source, missing_ok: bool) -> Option<local_send::How> {
        src.rsync_args.is_empty().then(|| local_send::How {
            flat: false,
            link_dest: plan
                .link_dest
                .iter()
                .map(std::path::PathBuf::from)
                .collect(),
            missing_ok,
            replace_into: None,
            stage: None,
        })
    }

    /// Writes `paths` of a pool of objects under the local folder `dest`, under their
    /// paths: each object is copied once (into a folder inside `dest`, so that it can be
    /// renamed from there) and its other paths made hard links of it, as the repository
    /// keeps a gold file and its `files` twin. A path whose object is missing is left out.
    fn fetch_objects(
        &self,
        home: &Home,
        paths: &[String],
        dest: &Path,
        link: bool,
    ) -> Result<TransferStats, StoreError> {
        let io = |p: &Path| {
            let path = p.display().to_string();
            move |source| StoreError::Io { path, source }
        };
        let mut by_object: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        for p in paths {
            by_object
                .entry(home.rel(p).into_owned())
                .or_default()
                .push(p);
        }
        std::fs::create_dir_all(dest).map_err(io(dest))?;
        if let Some(base) = self.local_path(&home.base).filter(|_| link) {
            if let Some(stats) = crate::objects::link_under(&base, &by_object, dest)? {
                return Ok(stats);
            }
        }
        let staging = tempfile::Builder::new()
            .prefix(".holdfast-objects.")
            .tempdir_in(dest)
            .map_err(io(dest))?;
        let objects: Vec<&String> = by_object.keys().collect();
        let mut args = base_args();
        args.push("--ignore-missing-args".into());
        let stats = self.fetch_listed(
            &home.base,
            &objects,
            &args,
            staging.path(),
            &format!("fetch of {} files from {}", objects.len(), self.display()),
        )?;
        for (object, paths) in by_object {
            let from = staging.path().join(&object);
            if from.symlink_metadata().is_err() {
                continue;
            }
            let first = dest.join(paths[0]);
            if let Some(d) = first.parent() {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            std::fs::rename(&from, &first).map_err(io(&first))?;
            for p in &paths[1..] {
                let to = dest.join(p);
                if let Some(d) = to.parent() {
                    std::fs::create_dir_all(d).map_err(io(d))?;
                }
                let _ = std::fs::remove_file(&to);
                std::fs::hard_link(&first, &to).map_err(io(&to))?;
            }
        }
        Ok(stats)
    }

    /// [`Store::fetch_files`]; with `link`, a pool's objects on this machine are hard-linked
    /// under `dest` rather than copied ([`Store::stage_files`]).
    fn fetch(
        &self,
        snap: &Snapshot,
        paths: &[String],
        dest: &Path,
        link: bool,
    ) -> Result<TransferStats, StoreError> {
        let mut total = TransferStats::default();
        if paths.is_empty() {
            return Ok(total);
        }
        // An incremental's files are spread over its chain: each piece gives what it has.
        let chain = Store::chain(self, snap)?;
        for s in chain.iter().rev() {
            let home = self.snapshot_home(s)?;
            if home.naming == Naming::Objects {
                total.add(&self.fetch_objects(&home, paths, dest, link)?);
                continue;
            }
            let mut args = fetch_args();
            args.push("--ignore-missing-args".into());
            if chain.len() > 1 {
                // The newest piece that has a file wins; older ones do not overwrite it.
                args.push("--ignore-existing".into());
            }
            let what = format!(
                "fetch of {} files from {} {}",
                paths.len(),
                self.display(),
                s.name
            );
            let stats = self.fetch_listed(&home.base, paths, &args, dest, &what)?;
            total.files += stats.files;
            total.bytes += stats.bytes;
            total.transferred_files += stats.transferred_files;
            total.transferred_bytes += stats.transferred_bytes;
            total.sent += stats.sent;
        }
        Ok(total)
    }

    fn repo_rsync(&self, plan: &Plan, src: &Source, args: Vec<String>, what: &str) -> Rsync {
        Rsync {
            args,
            rsh: self.rsync_rsh(),
            src: format!("{}/", src.root.display()),
            dest: format!("{}/", self.rsync_location(&pending_repo(plan))),
            what: format!("{what} of the repository to {}", self.display()),
        }
    }

    /// rsync options shared by both passes: filters, the operator's extras and the earlier
    /// copies to link to. Never `--compare-dest`: with `-H`, rsync 3.5.0 leaves out without
    /// a word (or hangs on) a hard-link group an earlier piece holds part of
    /// (RsyncProject/rsync#126), as a gold file and the `files` twin a recovery linked to it
    /// again are; a chain's pieces are looked at first instead ([`Self::not_in_chain`],
    /// [`Self::chain_copy`]).
    fn copy_args(plan: &Plan, src: &Source) -> Vec<String> {
        let mut args = tree_filters(src.root, src.dirs);
        args.extend(src.rsync_args.iter().cloned());
        for d in &plan.link_dest {
            args.push(format!("--link-dest={d}"));
        }
        args
    }

    /// Copies the whole repository. `list` (pool layout): the repository's files now.
    fn full_copy(
        &self,
        plan: &Plan,
        src: &Source,
        list: Option<&[String]>,
    ) -> Result<TransferStats, StoreError> {
        let home = pending_home(plan);
        if home.naming == Naming::Objects {
            return self.fill_pool(plan, src, &home, list);
        }
        if !plan.builds_on.is_empty() {
            return self.chain_copy(plan, src);
        }
        let mut args = base_args();
        // Snapshot folders must match the source exactly.
        args.push("--delete".into());
        args.extend(Self::copy_args(plan, src));
        self.repo_rsync(plan, src, args, "copy").run()
    }

    /// The pool's copy of the whole repository. A repository file's name is its content, so
    /// what the pool lacks is exactly the names the previous snapshot's list lacks (plus
    /// files not named by content, such as logs and reports, which rsync compares by size):
    /// nothing is done per unchanged file. Without a readable previous list, all are sent.
    fn fill_pool(
        &self,
        plan: &Plan,
        src: &Source,
        home: &Home,
        list: Option<&[String]>,
    ) -> Result<TransferStats, StoreError> {
        let walked;
        let list = match list {
            Some(l) => l,
            None => {
                walked = crate::pool::list_files(src.root, src.dirs);
                &walked
            }
        };
        let prev = match &plan.previous {
            Some(prev) => crate::pool::read_list(self, prev).unwrap_or_default(),
            None => Vec::new(),
        };
        let mut todo: Vec<String> = crate::pool::not_in(list, &prev)
            .into_iter()
            .chain(list.iter().filter(|p| pfile_of(p).is_none()).cloned())
            .collect();
        todo.sort_unstable();
        todo.dedup();
        self.send_objects(home, src, &todo, &Self::copy_args(plan, src), "copy")
    }

    /// The delta pass after a pre-copy: sends `send`, and (outside the pool, which only
    /// gains files) removes from the snapshot every listed file the source lacks: `drop`,
    /// and a file of `send` gone since it was listed.
    ///
    /// Not rsync's `--delete-missing-args`: the receivers of rsync's 2026 security releases
    /// (3.4.3, Debian's 3.2.7-1+deb12u5) reject the mode-0 entry it sends for a missing file
    /// ("invalid file mode 00", protocol error, exit 2: RsyncProject/rsync#910), so the pass
    /// skips missing names (`--ignore-missing-args`) and removes them itself.
    fn delta_copy(
        &self,
        plan: &Plan,
        src: &Source,
        send: &[String],
        drop: &[String],
    ) -> Result<TransferStats, StoreError> {
        let home = pending_home(plan);
        if home.naming == Naming::Objects {
            // The pool only gains files.
            return self.send_objects(&home, src, send, &Self::copy_args(plan, src), "delta copy");
        }
        let mut paths = if plan.builds_on.is_empty() {
            send.to_vec()
        } else {
            self.not_in_chain(plan, src, send)?
        };
        paths.extend(drop.iter().cloned());
        if paths.is_empty() {
            return Ok(Default::default());
        }
        let mut args = vec!["--ignore-missing-args".to_string()];
        args.extend(Self::copy_args(plan, src));
        let stats = self.send_paths(
            src,
            &paths,
            &pending_repo(plan),
            &args,
            Self::local_how(plan, src, true).as_ref(),
            "delta copy",
        )?;
        // looked at after the copy, so a file gone while it ran goes too
        let gone: Vec<String> = paths
            .into_iter()
            .filter(|p| {
                std::fs::symlink_metadata(src.root.join(p))
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            })
            .collect();
        if !gone.is_empty() {
            self.remove_files(&pending_repo(plan), &gone)?;
        }
        Ok(stats)
    }

    /// Copies `paths` again (`rsync -I` writes a new file, so a hard link to a rotten copy
    /// is broken).
    fn copy_again(
        &self,
        plan: &Plan,
        src: &Source,
        paths: &[String],
    ) -> Result<TransferStats, StoreError> {
        let home = pending_home(plan);
        if home.naming == Naming::Objects {
            // Each is written anew and renamed over its damaged object.
            return self.send_objects(
                &home,
                src,
                paths,
                src.rsync_args,
                "fresh copy of damaged files",
            );
        }
        let f = list_file(paths)?;
        let mut args: Vec<String> = base_args()
            .into_iter()
            .filter(|a| a != "--size-only")
            .collect();
        args.push("--ignore-times".into());
        args.push(format!("--files-from={}", f.path().display()));
        let mut r = self.repo_rsync(plan, src, args, "");
        r.what = format!("fresh copy of damaged files to {}", self.display());
        let stats = r.run()?;
        std::mem::drop(f);
        Ok(stats)
    }

    /// Copies exactly `paths` from `src.root` (no folder rules: the root is another
    /// store's repository folder or a staging folder).
    fn copy_only(
        &self,
        plan: &Plan,
        src: &Source,
        paths: &[String],
    ) -> Result<TransferStats, StoreError> {
        if paths.is_empty() {
            return Ok(Default::default());
        }
        let home = pending_home(plan);
        if home.naming == Naming::Objects {
            return self.send_objects(&home, src, paths, src.rsync_args, "copy");
        }
        let mut args = src.rsync_args.to_vec();
        for d in &plan.link_dest {
            args.push(format!("--link-dest={d}"));
        }
        self.send_paths(
            src,
            paths,
            &pending_repo(plan),
            &args,
            Self::local_how(plan, src, false).as_ref(),
            "copy",
        )
    }

    /// Regular files under `rel` on the target, relative to it, sorted.
    pub fn list_tree(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        match self.local_path(rel) {
            Some(root) => {
                for e in walkdir::WalkDir::new(&root) {
                    let e = e.map_err(|e| StoreError::Io {
                        path: root.display().to_string(),
                        source: e.into(),
                    })?;
                    if e.file_type().is_file() {
                        if let Ok(r) = e.path().strip_prefix(&root) {
                            out.push(r.to_string_lossy().into_owned());
                        }
                    }
                }
            }
            None => {
                let p = sh_quote(&self.path(rel));
                let data = self.run_script(&format!(
                    "if [ -d {p} ]; then cd {p} && find . -type f | sed 's|^\\./||'; fi"
                ))?;
                out.extend(
                    String::from_utf8_lossy(&data)
                        .lines()
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                );
            }
        }
        out.sort();
        Ok(out)
    }
}

impl Store for Target {
    fn display(&self) -> String {
        Target::display(self)
    }

    fn check(&self) -> Result<(), StoreError> {
        Target::check(self)
    }

    fn check_readable(&self) -> Result<(), StoreError> {
        Target::check_readable(self)
    }

    fn close(&self) {
        Target::close(self)
    }

    fn as_target(&self) -> Option<&Target> {
        Some(self)
    }

    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Target::read(self, rel)
    }

    fn write_atomic(&self, rel: &str, data: &[u8]) -> Result<(), StoreError> {
        Target::write_atomic(self, rel, data)
    }

    fn open(&self, rel: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        Target::open(self, rel)
    }

    fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        layout::snapshots(self)
    }

    fn snapshot_files(&self, snap: &Snapshot) -> Result<Vec<String>, StoreError> {
        if snap.manifest.layout == "pool" {
            return crate::pool::read_list(self, &snap.name);
        }
        // A nightly rolling day's tree, and a rotating base (a whole copy), hold what the list
        // names (files the list lacks leave the tree before the commit): the list is read
        // instead of every folder walked (a folder per file on FOSSology's three hashed
        // levels, cold), and a file lost from the tree since is still asked for. An online
        // night writes no list (a day begun as a btrfs snapshot may carry the day before's);
        // a rotating incremental holds part of its list, and is walked.
        let whole = match snap.manifest.layout.as_str() {
            "rolling" => true,
            "rotating" => snap.manifest.builds_on.is_empty(),
            _ => false,
        };
        let listed = whole
            && snap.manifest.list_is_its_own()
            && self.exists(&format!("{}/{FILE_LIST}", snap.name))?;
        if listed {
            let mut list = crate::pool::read_list(self, &snap.name)?;
            list.sort_unstable();
            return Ok(list);
        }
        self.list_tree(&format!("{}/{REPO_DIR}", snap.name))
    }

    fn plan(&self, layout: &Layout) -> Result<Plan, StoreError> {
        layout.prepare(self)
    }

    fn send_repository(
        &self,
        plan: &Plan,
        src: &Source,
        files: Files,
    ) -> Result<TransferStats, StoreError> {
        match files {
            Files::All { list } => self.full_copy(plan, src, list.filter(|_| plan.lists_files)),
            Files::Delta { send, drop } => self.delta_copy(plan, src, send, drop),
            Files::Again(paths) => {
                if plan.layout.kind == LayoutKind::Rolling && !paths.is_empty() {
                    layout::note_replaced(self)?;
                }
                self.copy_again(plan, src, paths)
            }
            Files::Only(paths) => self.copy_only(plan, src, paths),
        }
    }

    fn folder_maker<'a>(&'a self, plan: &'a Plan, src: &'a Source) -> Option<FolderMaker<'a>> {
        // A snapshot day only: a hard-linked day's folders come with its link pass, and the
        // pool has no folder per file; and only where `delta_copy` sends locally.
        plan.snapshot_of.as_ref()?;
        let how = Self::local_how(plan, src, true)?;
        let dest = self.local_path(&pending_repo(plan))?;
        Some(Box::new(move |rel: &str| {
            let s = local_send::Send {
                src: src.root,
                dest: &dest,
                how: &how,
                what: "folders",
            };
            // The send tries again what fails here, and says why.
            let _ = s.make_folders_for(rel);
        }))
    }

    fn read_ahead(&self, plan: &Plan, src: &Source) {
        // rsync reads the tree it brings up to date and the trees it links from a folder and
        // an inode at a time: on a cold cache each read waits for the disk. Read in parallel
        // beforehand (while the site is walked), its reads find them cached. The pool copies
        // by its lists and walks nothing; a store over ssh is read by the far side.
        if pending_home(plan).naming == Naming::Objects {
            return;
        }
        let Some(dest) = self.local_path(&pending_repo(plan)) else {
            return;
        };
        let trees: Vec<PathBuf> = plan
            .link_dest
            .iter()
            .map(PathBuf::from)
            .chain([dest])
            .collect();
        for tree in trees {
            let dirs = src.dirs.to_vec();
            // Detached: it only reads, and ends with the walk or the process.
            std::thread::spawn(move || holdfast_core::tree::read_ahead(&tree, &dirs));
        }
    }

    fn pending_files(&self, plan: &Plan) -> Result<Vec<String>, StoreError> {
        if plan.lists_files {
            let rel = format!("{PARTIAL}/{FILE_LIST}");
            if Target::exists(self, &rel)? {
                return crate::pool::read_list(self, PARTIAL);
            }
            return Ok(Vec::new());
        }
        self.list_tree(&pending_repo(plan))
    }

    fn create_dump(&self, _plan: &Plan, rel: &str) -> Result<Box<dyn Upload>, StoreError> {
        Ok(Box::new(self.create(&format!("{PARTIAL}/{rel}"))?))
    }

    fn send_dump(&self, plan: &Plan, local: &Path, rel: &str) -> Result<DumpSent, StoreError> {
        // The previous snapshot's dump of the same name is the basis rsync sends against.
        let prev = plan
            .dumps
            .iter()
            .rev()
            .find(|(_, file)| file == rel)
            .map(|(name, _)| name);
        let dir = |snap: &str| match rel.rsplit_once('/') {
            Some((d, _)) => format!("{snap}/{d}"),
            None => snap.to_string(),
        };
        let dest_dir = dir(PARTIAL);
        self.mkdir_p(&dest_dir)?;
        let mut args: Vec<String> = [
            "--perms",
            "--chmod=F600",
            "--stats",
            // Local targets too: the numbers then say what a remote one would cost.
            "--no-whole-file",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(p) = &prev {
            // Used as the delta basis; an unchanged dump becomes a hard link to it.
            args.push(format!("--link-dest={}", self.path(&dir(p))));
        }
        let stats = Rsync {
            args,
            rsh: self.rsync_rsh(),
            src: local.display().to_string(),
            dest: format!("{}/", self.rsync_location(&dest_dir)),
            what: format!("copy of the database dump to {}", self.display()),
        }
        .run()?;
        // Durable at the commit, which syncs before the manifest that vouches for it.
        Ok(DumpSent {
            sent: stats.sent,
            against: prev.cloned(),
        })
    }

    fn write_file_list(&self, _plan: &Plan, list: &[String]) -> Result<(), StoreError> {
        Target::write_atomic(
            self,
            &format!("{PARTIAL}/{FILE_LIST}"),
            &crate::pool::encode(list),
        )
    }

    fn write_file_entries(
        &self,
        _plan: &Plan,
        list: &[crate::pool::Entry],
    ) -> Result<(), StoreError> {
        Target::write_atomic(
            self,
            &format!("{PARTIAL}/{FILE_LIST}"),
            &crate::pool::encode_entries(list),
        )
    }

    fn drop_unlisted(
        &self,
        plan: &Plan,
        from: &str,
        before: &[crate::pool::Entry],
        now: &[crate::pool::Entry],
    ) -> Result<(), StoreError> {
        let t = std::time::Instant::now();
        let recycled = plan.recycled.as_deref().map(|h| &h[..]);
        let spare = plan
            .layout
            .drop_unrecycled_known(self, recycled, before, now)?;
        if plan.layout.drop_unlisted_known(self, from, before, now)? || spare {
            tracing::debug!(
                secs = t.elapsed().as_secs_f64(),
                "files no longer listed dropped before the commit"
            );
        }
        Ok(())
    }

    fn link_previous(
        &self,
        plan: &Plan,
        from: &str,
        paths: &[String],
    ) -> Result<(u64, Vec<String>), StoreError> {
        if plan.snapshot_of.is_some() {
            // A snapshot of that day: they are all there already.
            return Ok((paths.len() as u64, Vec::new()));
        }
        // Begun as the spare day: what it shares with the previous day is there already.
        let todo = match &plan.recycled {
            Some(held) => crate::pool::not_in(paths, held),
            None => paths.to_vec(),
        };
        let there = (paths.len() - todo.len()) as u64;
        let (linked, lacking) = crate::link::link_tree(
            self,
            &format!("{from}/{REPO_DIR}"),
            &pending_repo(plan),
            &todo,
        )?;
        Ok((there + linked, lacking))
    }

    fn commit(&self, plan: &Plan, manifest: &mut Manifest) -> Result<String, StoreError> {
        plan.layout.commit(self, manifest)
    }

    fn prove_with(
        &self,
        place: Place,
        paths: &[String],
        progress: &Progress,
        proven: &Proven,
    ) -> Result<Vec<Proof>, StoreError> {
        if let Place::Pending(plan) = place {
            if !plan.builds_on.is_empty() {
                return self.prove_in_chain(plan, paths, progress, proven);
            }
        }
        let home = match place {
            Place::Pending(plan) => pending_home(plan),
            Place::Snapshot(snap) => self.snapshot_home(snap)?,
        };
        if home.naming == Naming::Paths {
            return self.prove_at(&home.base, paths, progress, Some(proven));
        }
        // An object's name is the file's: it is proved against the same name. A gold file
        // and its `files` twin are one object (often an upload's largest file), and the
        // snapshots share their objects: each is hashed once a run.
        let rel: Vec<String> = paths.iter().map(|p| home.rel(p).into_owned()).collect();
        let key = |r: &str| proven.object_key(&format!("{}/{r}", home.base));
        let mut once: Vec<&str> = rel.iter().map(String::as_str).collect();
        once.sort_unstable();
        once.dedup();
        // Each object's proof, and whether this call read it.
        let mut known: HashMap<&str, (Proof, bool)> = HashMap::with_capacity(once.len());
        let mut todo = Vec::new();
        for r in once {
            match pfile_of(r).and_then(|want| proven.get(key(r), &want)) {
                Some(p) => {
                    known.insert(r, (p, false));
                }
                None => todo.push(r.to_string()),
            }
        }
        let proofs = self.prove_at(&home.base, &todo, progress, None)?;
        for (r, p) in todo.iter().zip(proofs) {
            proven.put(key(r), &p);
            known.insert(r, (p, true));
        }
        // `prove_at` counted the first path of each object it read; the progress counts
        // every path's bytes: the twins' and those proved before too.
        let mut first = HashSet::new();
        Ok(rel
            .iter()
            .map(|r| {
                let (proof, read) = &known[r.as_str()];
                if !read {
                    proven.count_reused(proof);
                }
                if let Proof::Good(n) = proof {
                    if !(*read && first.insert(r.as_str())) {
                        progress.inc(*n);
                    }
                }
                proof.clone()
            })
            .collect())
    }

    fn prune(&self, layout: &Layout) -> Result<Vec<String>, StoreError> {
        let newest = layout::snapshots(self)?
            .last()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        layout.prune(self, &newest)
    }

    fn collect_garbage(&self) -> Result<u64, StoreError> {
        crate::pool::collect_garbage(self)
    }

    fn fetch_files(
        &self,
        snap: &Snapshot,
        paths: &[String],
        dest: &Path,
    ) -> Result<TransferStats, StoreError> {
        self.fetch(snap, paths, dest, false)
    }

    fn stage_files(
        &self,
        snap: &Snapshot,
        paths: &[String],
        dest: &Path,
    ) -> Result<TransferStats, StoreError> {
        self.fetch(snap, paths, dest, true)
    }

    fn local_files(&self, snap: &Snapshot) -> Option<std::path::PathBuf> {
        if !snap.manifest.builds_on.is_empty() {
            return None;
        }
        let home = self.snapshot_home(snap).ok()?;
        // A pool of objects does not hold files under their paths.
        (home.naming == Naming::Paths)
            .then(|| self.local_path(&home.base))
            .flatten()
    }

    fn missing(&self, plan: &Plan, paths: &[String]) -> Result<Vec<String>, StoreError> {
        // A rotating incremental holds what its chain's pieces hold: only the rest is looked
        // for in the new piece.
        let not_in_pieces;
        let paths = if plan.builds_on.is_empty() {
            paths
        } else {
            not_in_pieces = self.not_in_pieces(plan, paths)?;
            &not_in_pieces
        };
        let home = pending_home(plan);
        if let Some(root) = self.local_path(&home.base) {
            // Many at a time: on a cold cache each look-up waits for the disk.
            return Ok(holdfast_core::threads::io_pool().install(|| {
                paths
                    .par_iter()
                    .filter(|p| root.join(&*home.rel(p)).symlink_metadata().is_err())
                    .cloned()
                    .collect()
            }));
        }
        let rel: Vec<String> = paths.iter().map(|p| home.rel(p).into_owned()).collect();
        let script = lacking_script(&self.path(&home.base));
        let inputs: Vec<Vec<u8>> = in_parts(&rel).into_iter().map(nul_separated).collect();
        let outs = self
            .run_side_by_side(&script, &inputs)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let lacking: HashSet<&[u8]> = outs
            .iter()
            .flat_map(|out| out.split(|&b| b == 0))
            .filter(|n| !n.is_empty())
            .collect();
        Ok(paths
            .iter()
            .zip(&rel)
            .filter(|(_, r)| lacking.contains(r.as_bytes()))
            .map(|(p, _)| p.clone())
            .collect())
    }

    fn restore_repository(&self, snap: &Snapshot, dest: &Path) -> Result<(), StoreError> {
        let chain = Store::chain(self, snap)?;
        // A rotating chain's pieces hold what each night sent, and a file deleted since the
        // base stays in the base: only what the tip's own list names is fetched.
        let holds: Option<std::collections::HashSet<String>> = if chain.len() > 1 {
            Store::own_entries(self, snap)?.map(|l| l.into_iter().map(|e| e.path).collect())
        } else {
            None
        };
        // Newest first: a file in two pieces (a rotten copy healed into a later one) comes
        // from the newest, and the older piece's copy is not fetched.
        let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
        for s in chain.into_iter().rev() {
            let home = self.snapshot_home(&s)?;
            if home.naming == Naming::Objects {
                let list = crate::pool::read_list(self, &s.name)?;
                self.fetch_objects(&home, &list, dest, false)?;
                continue;
            }
            let what = crate::store::restore_what(&self.display(), &s.name);
            let files: Vec<String> = if s.manifest.layout == "pool" {
                crate::pool::read_list(self, &s.name)?
            } else if let Some(holds) = &holds {
                let mine: Vec<String> = Store::snapshot_files(self, &s)?
                    .into_iter()
                    .filter(|p| holds.contains(p) && !taken.contains(p))
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                taken.extend(mine.iter().cloned());
                mine
            } else if matches!(self, Target::Ssh { .. }) {
                // Listed, to be fetched in parts at once.
                Store::snapshot_files(self, &s)?
            } else {
                Rsync {
                    args: fetch_args(),
                    rsh: None,
                    src: format!("{}/", self.rsync_location(&home.base)),
                    dest: format!("{}/", dest.display()),
                    what,
                }
                .run()?;
                continue;
            };
            let mut args = fetch_args();
            if snap.manifest.list_is_its_own() {
                // The restore made the list's folders as the site wants them: they keep
                // those modes, not the store's.
                args.push("--no-implied-dirs".into());
            }
            self.fetch_listed(&home.base, &files, &args, dest, &what)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's look-up of a night's files, run here with perl and with the shell.
    #[test]
    fn lacking_files_are_found_alike_with_perl_or_without() {
        assert!(crate::server_sh::has_perl());
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("day");
        let odd = "it's $HOME `x` a b";
        for rel in ["a/one", "a/two", odd] {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, rel).unwrap();
        }
        // A link is there, as a file on this machine's target is (lstat).
        std::os::unix::fs::symlink("a/one", root.join("ln")).unwrap();
        let asked: Vec<String> = ["a/one", "a/gone", odd, "ln", "b/c", "a/two"]
            .map(String::from)
            .to_vec();
        let input = nul_separated(&asked);
        let bin = t.path().join("bin");
        for perl in [true, false] {
            let tools: &[&str] = &["tr", "cat"];
            let without = (!perl).then_some((&*bin, tools));
            let out =
                crate::server_sh::run(&lacking_script(root.to_str().unwrap()), &input, without);
            assert!(out.status.success(), "perl {perl}: {out:?}");
            assert_eq!(out.stdout, b"a/gone\0b/c\0", "perl {perl}");
            // No such folder: every name is lacking.
            let none = t.path().join("no-day");
            let out =
                crate::server_sh::run(&lacking_script(none.to_str().unwrap()), &input, without);
            assert!(out.status.success(), "perl {perl}: {out:?}");
            assert_eq!(out.stdout, input, "perl {perl}");
        }

        // Enough names for perl's children: every seventh lacking, answered in order.
        let many: Vec<String> = (0..1_000).map(|i| format!("m/{}/{i}", i % 13)).collect();
        for (i, p) in many.iter().enumerate().filter(|(i, _)| i % 7 != 0) {
            std::fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
            std::fs::write(root.join(p), i.to_string()).unwrap();
        }
        let want = nul_separated(many.iter().step_by(7));
        for perl in [true, false] {
            let tools: &[&str] = &["tr", "cat"];
            let without = (!perl).then_some((&*bin, tools));
            let script = lacking_script(root.to_str().unwrap());
            let out = crate::server_sh::run(&script, &nul_separated(&many), without);
            assert!(out.status.success(), "perl {perl}: {out:?}");
            assert_eq!(out.stdout, want, "perl {perl}");
        }
    }

    /// A child of the server's perl that fails makes the look-up fail: its names must not
    /// read as there.
    #[test]
    fn a_failed_look_up_child_fails_the_look_up() {
        let script = crate::target::forked_perl(
            "",
            r#"local $/ = "\0"; my @n = <STDIN>; chomp @n; @n"#,
            r#"exit 3 if $_[0] eq "x500"; print "$_[0]\0""#,
        );
        let input = nul_separated(&(0..1_000).map(|i| format!("x{i}")).collect::<Vec<_>>());
        let out = crate::server_sh::run(&format!("perl -e {}", sh_quote(&script)), &input, None);
        assert!(!out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("a look-up process failed"));
    }
}
