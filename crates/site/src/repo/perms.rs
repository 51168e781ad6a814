//! Owner and modes of what holdfast creates in the repository: the ones FOSSology's own code
//! gives, whoever runs holdfast (root or the FOSSology user).
//!
//! What FOSSology does, read from its source:
//! - The installer (`fo-postinstall`) makes the repository root and its parent
//!   `PROJECTUSER:PROJECTGROUP` (`fossy:fossy`), mode `2770`.
//! - `_RepMkDirs` (libfossrepo.c) creates each missing folder with `mkdir(dir, 0770)` under
//!   umask 0; Linux adds the set-group-id bit (and the group) of the parent, so below the root
//!   every folder is `2770`, or `0770` under a parent without the bit.
//! - Files enter through `fo_RepImport`, which `chmod`s a file bound for `files` to
//!   `S_ISGID|0664` and hard-links it in (wget_agent's gold file is the same inode as its
//!   `files` copy, so it ends up `2664` too; a file `fo_RepFwrite` writes itself is `2660`).
//!   The agents run as `PROJECTUSER`, so that user owns everything.
//!
//! [`Owner`] carries the user and group named in `fossology.conf` (`[DIRECTORIES]`). When
//! holdfast runs as root it gives them away; run as the FOSSology user it already owns them
//! (and sets the group when it is a member). A user or group that does not exist on this
//! machine is reported once and the files stay with whoever created them.

use nix::unistd::{Gid, Group, Uid, User};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Mode of a folder `_RepMkDirs` creates (before the parent's set-group-id bit).
pub const DIR_MODE: u32 = 0o770;
/// Mode of the repository root (and its parent) as FOSSology's installer leaves them.
pub const ROOT_MODE: u32 = 0o2770;
/// Mode of a stored file after `fo_RepImport`.
pub const FILE_MODE: u32 = 0o2664;
const S_ISGID: u32 = 0o2000;

#[derive(Debug, Clone, Copy, Default)]
struct Ids {
    uid: Option<Uid>,
    gid: Option<Gid>,
}

/// The FOSSology user and group that own the repository.
#[derive(Debug, Clone)]
pub struct Owner {
    pub user: String,
    pub group: String,
    ids: Arc<OnceLock<Ids>>,
    warned: Arc<OnceLock<()>>,
}

impl PartialEq for Owner {
    fn eq(&self, o: &Self) -> bool {
        self.user == o.user && self.group == o.group
    }
}

impl Owner {
    pub fn named(user: &str, group: &str) -> Self {
        Owner {
            user: user.into(),
            group: group.into(),
            ids: Arc::default(),
            warned: Arc::default(),
        }
    }

    /// The user and group this process runs as (scratch sites: nothing to give away).
    pub fn current() -> Self {
        let user = User::from_uid(Uid::effective())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| Uid::effective().to_string());
        let group = Group::from_gid(Gid::effective())
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| Gid::effective().to_string());
        Owner::named(&user, &group)
    }

    fn warn_once(&self, why: String) {
        if self.warned.set(()).is_ok() {
            tracing::warn!("{why}");
        }
    }

    fn ids(&self) -> Ids {
        *self.ids.get_or_init(|| {
            let uid = User::from_name(&self.user).ok().flatten().map(|u| u.uid);
            let gid = Group::from_name(&self.group).ok().flatten().map(|g| g.gid);
            if uid.is_none() || gid.is_none() {
                self.warn_once(format!(
                    "fossology.conf [DIRECTORIES] names user {:?} and group {:?}, but {} does not exist here: \
                     repository files holdfast creates keep the owner of the process that creates them \
                     (create the user and group as FOSSology's installer does, or correct PROJECTUSER/PROJECTGROUP)",
                    self.user,
                    self.group,
                    if uid.is_none() { "the user" } else { "the group" }
                ));
            }
            Ids { uid, gid }
        })
    }

    /// Gives `path` to the FOSSology user and group, as far as this process may.
    pub fn chown(&self, path: &Path) -> io::Result<()> {
        let Ids { uid, gid } = self.ids();
        if uid.is_none() && gid.is_none() {
            return Ok(());
        }
        let root = Uid::effective().is_root();
        // Not root: only the group can change, and only to one of ours.
        let want_uid = if root { uid } else { None };
        match nix::unistd::chown(path, want_uid, gid) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EPERM) if !root => {
                self.warn_once(format!(
                    "cannot give {} to group {:?}: this user ({}) is not in it; run holdfast as root or as {:?}",
                    path.display(),
                    self.group,
                    Uid::effective(),
                    self.user
                ));
                Ok(())
            }
            Err(e) => Err(io::Error::other(format!(
                "cannot give {} to {}:{}: {e}",
                path.display(),
                self.user,
                self.group
            ))),
        }
    }

    /// Gives every folder and file under `dir` (itself included) to the FOSSology user and
    /// group, as FOSSology's installer does when the repository's group is wrong (`chown
    /// --recursive`). Only root can; for anyone else this does nothing. Returns how many
    /// entries changed hands.
    pub fn chown_tree(&self, dir: &Path) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let Ids {
            uid: Some(uid),
            gid: Some(gid),
        } = self.ids()
        else {
            return Ok(0);
        };
        if !Uid::effective().is_root() {
            return Ok(0);
        }
        let mut changed = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p)?;
            if m.uid() != uid.as_raw() || m.gid() != gid.as_raw() {
                let mode = m.mode() & 0o7777;
                std::os::unix::fs::lchown(&p, Some(uid.as_raw()), Some(gid.as_raw()))?;
                // chown clears set-group-id on some files: keep the mode it had.
                if !m.file_type().is_symlink() && mode & S_ISGID != 0 {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
                }
                changed += 1;
            }
            if m.is_dir() {
                for e in std::fs::read_dir(&p)? {
                    stack.push(e?.path());
                }
            }
        }
        Ok(changed)
    }

    /// Owner and mode of a stored file, as FOSSology's import leaves them.
    pub fn finish_file(&self, path: &Path) -> io::Result<()> {
        // chown first: it may clear set-group-id bits.
        self.chown(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
    }

    /// Creates one folder as `_RepMkDirs` does; `false` when it already existed.
    pub(crate) fn make_dir(&self, dir: &Path, mode: Option<u32>) -> io::Result<bool> {
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(false),
            Err(e) => return Err(e),
        }
        let mode = mode.unwrap_or_else(|| {
            let parent_gid_bit = dir
                .parent()
                .and_then(|p| std::fs::metadata(p).ok())
                .map(|m| m.permissions().mode() & S_ISGID)
                .unwrap_or(0);
            DIR_MODE | parent_gid_bit
        });
        self.chown(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
        Ok(true)
    }
}

/// Creates `dir` and every missing folder above it up to the repository `root`, with
/// FOSSology's owner and modes. A missing root is created as the installer leaves it.
pub fn create_dir_all(root: &Path, dir: &Path, owner: &Owner) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if !root.is_dir() {
        if let Some(parent) = root.parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                if let Some(grand) = parent.parent() {
                    std::fs::create_dir_all(grand)?;
                }
                owner.make_dir(parent, Some(ROOT_MODE))?;
            }
        }
        owner.make_dir(root, Some(ROOT_MODE))?;
    }
    let Ok(below) = dir.strip_prefix(root) else {
        // Not inside the repository: plain folders.
        return std::fs::create_dir_all(dir);
    };
    let mut p = root.to_path_buf();
    for c in below.components() {
        p.push(c);
        owner.make_dir(&p, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn folders_follow_mkdir_0770_and_inherit_set_group_id() {
        let t = tempfile::tempdir().unwrap();
        let owner = Owner::current();
        let root = t.path().join("srv/repository");
        create_dir_all(&root, &root.join("localhost/files/ab"), &owner).unwrap();
        assert_eq!(mode(&root), 0o2770);
        assert_eq!(mode(&t.path().join("srv")), 0o2770);
        assert_eq!(mode(&root.join("localhost")), 0o2770);
        assert_eq!(mode(&root.join("localhost/files/ab")), 0o2770);
        // A parent without the bit gives none, as mkdir does.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o770)).unwrap();
        create_dir_all(&root, &root.join("other/gold"), &owner).unwrap();
        assert_eq!(mode(&root.join("other")), 0o770);
        assert_eq!(mode(&root.join("other/gold")), 0o770);
        let f = root.join("other/gold/x");
        std::fs::write(&f, "x").unwrap();
        owner.finish_file(&f).unwrap();
        assert_eq!(mode(&f), FILE_MODE);
    }
}
