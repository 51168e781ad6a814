//! A listed restore from a backup server as tar streams: `tar` on the server reads the files
//! and this process writes them, hashing content-named ones as they are written (no second
//! read to prove them). rsync's per-file exchange and its own checksums cost more than the
//! copy itself here (a whole site's day tree over a loopback sshd, cold: four rsync runs
//! 17.5-18.3 s, four tar streams 14.7-15.9 s).
//!
//! Nothing the server sends is taken on trust: only names on the list are written, hard
//! links only to names this stream has written, and anything but a file or a link to one is
//! reported, not made. A server without GNU tar 1.29 or later (a list read verbatim) is
//! left to rsync.

use crate::proof::{judge, ContentHash, Proof};
use crate::target::{list_text, sh_quote, Target};
use crate::StoreError;
use holdfast_core::progress::{Progress, Unit};
use holdfast_site::pfile::PfileName;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// What a streamed restore did.
#[derive(Debug, Default)]
pub struct Streamed {
    pub files: u64,
    pub bytes: u64,
    /// Names made hard links of a file the stream had written.
    pub linked: u64,
    /// Content-named files whose content matched their name.
    pub proved: u64,
    /// Listed names not restored as they should be: (path, why), sorted.
    pub bad: Vec<(String, String)>,
}

impl Streamed {
    fn add(&mut self, o: Streamed) {
        self.files += o.files;
        self.bytes += o.bytes;
        self.linked += o.linked;
        self.proved += o.proved;
        self.bad.extend(o.bad);
    }
}

/// sha1, md5 (lower-case hex) and size of what was written.
type Hashed = (String, String, u64);

/// Which names to prove: the content name a path must match, if any.
pub type Provable<'a> = dyn Fn(&str) -> Option<PfileName> + Sync + 'a;

/// Makes one folder whose parent exists the way the site wants it; `false` if it was there.
pub type MakeDir<'a> = dyn Fn(&Path) -> std::io::Result<bool> + Sync + 'a;

/// A name on the backup server (relative to the streamed folder) and the paths under the
/// destination its content goes to: a day tree's path and itself, or a pool's object and
/// every repository path it holds (written once, the others linked to it).
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub name: Cow<'a, str>,
    pub at: Vec<&'a str>,
}

impl<'a> Wanted<'a> {
    /// `path` under its own name.
    pub fn same(path: &'a str) -> Wanted<'a> {
        Wanted {
            name: Cow::Borrowed(path),
            at: vec![path],
        }
    }
}

impl AsRef<str> for Wanted<'_> {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

/// The folders a stream's files need, made as the files come (beside the copy, not before
/// it: a site's 124,000 folders take 2.9 s), one maker at a time: two streams making the same
/// folder would see it before it has its owner and mode.
struct Folders<'a> {
    dest: &'a Path,
    make_dir: &'a MakeDir<'a>,
    lock: std::sync::Mutex<()>,
}

impl Folders<'_> {
    /// Makes the missing folders above `file`, inside `dest`.
    fn make_above(&self, file: &Path) -> std::io::Result<()> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut missing = Vec::new();
        let mut d = file.parent();
        while let Some(dir) = d.filter(|d| *d != self.dest && d.starts_with(self.dest)) {
            if dir.is_dir() {
                break;
            }
            missing.push(dir);
            d = dir.parent();
        }
        for dir in missing.into_iter().rev() {
            (self.make_dir)(dir)?;
        }
        Ok(())
    }
}

/// tar's messages for a listed name the server does not have: reported as missing, the rest
/// restored.
const MISSING: &str = ": Cannot stat: No such file or directory";
const FAILED: &str = "tar: Exiting with failure status due to previous errors";

impl Target {
    /// Whether this target is a backup server whose `tar` can stream a list verbatim.
    pub fn can_stream(&self) -> bool {
        self.is_remote()
            && self
                .run_remote(
                    "tar --no-recursion --verbatim-files-from -cf /dev/null -T /dev/null \
                     2>/dev/null && echo yes",
                )
                .is_ok_and(|out| out.starts_with(b"yes"))
    }

    /// Writes what `wanted` names (relative to the folder `base` of this backup server; each
    /// name and path a plain relative path) under the local folder `dest` (which exists;
    /// folders in it are made with `make_dir` as needed), as tar streams in parts at once
    /// (every name of one file name in the same part, so its links come back). Paths `prove`
    /// gives a content name are hashed as written and judged by it.
    pub fn stream_listed(
        &self,
        base: &str,
        wanted: &[Wanted],
        dest: &Path,
        make_dir: &MakeDir,
        prove: &Provable,
        what: &str,
    ) -> Result<Streamed, StoreError> {
        let names = wanted.iter().map(|w| w.name.as_ref());
        let paths = wanted.iter().flat_map(|w| w.at.iter().copied());
        if let Some(p) = names.chain(paths).find(|p| !plain(p)) {
            return Err(StoreError::Io {
                path: p.to_string(),
                source: std::io::Error::other("not a plain path inside the repository"),
            });
        }
        if let Some(w) = wanted.iter().find(|w| w.at.is_empty()) {
            return Err(StoreError::Io {
                path: w.name.to_string(),
                source: std::io::Error::other("asked for with nowhere to go"),
            });
        }
        let parts = crate::target_store::by_name(wanted, crate::target_store::REMOTE_FETCHERS);
        let places: usize = wanted.iter().map(|w| w.at.len()).sum();
        let progress = Progress::new(what, places as u64, Unit::Items);
        let folders = Folders {
            dest,
            make_dir,
            lock: std::sync::Mutex::new(()),
        };
        let to = Landing {
            dest,
            folders: &folders,
            prove,
            progress: &progress,
            what,
        };
        let results: Vec<Result<Streamed, StoreError>> = std::thread::scope(|s| {
            let runs: Vec<_> = parts
                .iter()
                .filter(|p| !p.is_empty())
                .map(|part| s.spawn(|| self.stream_part(base, part, &to)))
                .collect();
            runs.into_iter()
                .map(|r| {
                    r.join().unwrap_or_else(|_| {
                        Err(StoreError::Io {
                            path: dest.display().to_string(),
                            source: std::io::Error::other("a restore stream panicked"),
                        })
                    })
                })
                .collect()
        });
        progress.finish();
        let mut done = Streamed::default();
        for r in results {
            done.add(r?);
        }
        done.bad.sort();
        Ok(done)
    }

    fn stream_part(
        &self,
        base: &str,
        part: &[&Wanted],
        to: &Landing,
    ) -> Result<Streamed, StoreError> {
        let what = to.what;
        // 64 KiB records: fewer, larger writes into ssh.
        let script = format!(
            "cd {} && exec tar -cf - -b 128 --no-recursion --verbatim-files-from -T -",
            sh_quote(&self.path(base))
        );
        let mut child = self.spawn_piped(&script)?;
        let (mut stdin, stdout, mut stderr) = (
            child.stdin.take().expect("piped"),
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let list = list_text(part);
        let (unpacked, err) = std::thread::scope(|s| {
            // tar reads the list as it goes: fed beside the read, or both would wait.
            s.spawn(move || stdin.write_all(list.as_bytes()));
            let err = s.spawn(move || {
                let mut e = Vec::new();
                let _ = stderr.read_to_end(&mut e);
                e
            });
            let unpacked = unpack(stdout, part, to);
            if unpacked.is_err() {
                let _ = child.kill();
            }
            (unpacked, err.join().unwrap_or_default())
        });
        let status = child.wait().map_err(|e| self.io("ssh", e))?;
        let (mut done, seen) = unpacked?;
        if status.code() == Some(255) {
            return Err(self.unreachable(String::from_utf8_lossy(&err).trim().to_string()));
        }
        // Only names the server lacks may fail the stream (tar's exit 2, saying so for each):
        // a stream cut off between two files (a lost connection, a killed tar) is an error,
        // not files missing.
        let text = String::from_utf8_lossy(&err);
        // ssh's own words (a warning about its shared connection) are not tar's.
        let known = |l: &str| !l.starts_with("tar: ") || l.ends_with(MISSING) || l == FAILED;
        let lacking = status.code() == Some(2)
            && text.lines().any(|l| l.ends_with(MISSING))
            && text.lines().all(known);
        if !status.success() && !lacking {
            return Err(self.failed(&format!("tar of {what}"), &err));
        }
        // Asked for and not sent (tar said the server has no such name).
        let missing: Vec<(String, String)> = part
            .iter()
            .filter(|w| !seen.contains(w.name.as_ref()))
            .flat_map(|w| w.at.iter())
            .map(|p| {
                (
                    p.to_string(),
                    format!("missing from the snapshot on the store ({what}): not restored"),
                )
            })
            .collect();
        done.bad.extend(missing);
        Ok(done)
    }
}

/// A relative path of plain names: nothing a stream may write outside its folder.
fn plain(p: &str) -> bool {
    p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Where and how a stream's files are written.
struct Landing<'a> {
    dest: &'a Path,
    folders: &'a Folders<'a>,
    prove: &'a Provable<'a>,
    progress: &'a Progress,
    what: &'a str,
}

/// Writes the files of the tar stream `from` that `part` asks for; returns what it did and
/// every name the stream had.
fn unpack(
    from: impl Read,
    part: &[&Wanted],
    into: &Landing,
) -> Result<(Streamed, HashSet<String>), StoreError> {
    let Landing {
        dest,
        folders,
        prove,
        progress,
        what,
    } = *into;
    let listed: HashMap<&str, &Wanted> = part.iter().map(|w| (w.name.as_ref(), *w)).collect();
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    let hostile = |why: String| StoreError::Io {
        path: dest.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {why}")),
    };
    let mut done = Streamed::default();
    // Names written by this stream: where their first copy is, and their content's hash
    // when it was hashed.
    let mut written: HashMap<String, (PathBuf, Option<Hashed>)> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, from));
    let mut buf = vec![0u8; 1 << 20];
    for entry in archive.entries().map_err(io(dest))? {
        holdfast_core::interrupt::check().map_err(|_| StoreError::Interrupted)?;
        let mut entry = entry.map_err(|e| hostile(format!("the stream broke off: {e}")))?;
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| hostile("a name that is not UTF-8 was sent".into()))?;
        let w = match listed.get(name.as_str()) {
            Some(w) if seen.insert(name.clone()) => *w,
            _ => {
                return Err(hostile(format!(
                    "the server sent {name:?}, which was not asked for"
                )))
            }
        };
        let wants: Vec<(&str, PfileName)> =
            w.at.iter()
                .filter_map(|p| prove(p).map(|n| (*p, n)))
                .collect();
        let kind = entry.header().entry_type();
        let (first, rest, hashed) = if kind.is_file() {
            let first = dest.join(w.at[0]);
            let size = entry.size();
            let _ = std::fs::remove_file(&first);
            let mut f = create(&first, folders).map_err(io(&first))?;
            let mut h = (!wants.is_empty()).then(ContentHash::default);
            let mut n = 0u64;
            loop {
                let got = match entry.read(&mut buf) {
                    Ok(0) => break,
                    Ok(got) => got,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(hostile(format!("the stream broke off in {name}: {e}"))),
                };
                if let Some(h) = &mut h {
                    h.update(&buf[..got]);
                }
                f.write_all(&buf[..got]).map_err(io(&first))?;
                n += got as u64;
            }
            if n != size {
                return Err(hostile(format!("the stream ended inside {name}")));
            }
            give_attributes(&f, entry.header()).map_err(io(&first))?;
            done.files += 1;
            done.bytes += n;
            (first, &w.at[1..], h.map(ContentHash::finish))
        } else if kind.is_hard_link() {
            let (first, hashed) = entry
                .link_name_bytes()
                .and_then(|l| String::from_utf8(l.into_owned()).ok())
                .and_then(|l| written.get(&l).cloned())
                .ok_or_else(|| hostile(format!("{name} was sent as a link to a name not sent")))?;
            let hashed = match hashed {
                None if !wants.is_empty() => {
                    Some(crate::proof::hash_file(&first).map_err(io(&first))?)
                }
                h => h,
            };
            (first, &w.at[..], hashed)
        } else {
            // A link or a device where the snapshot should have a file: not made (this runs
            // as root, and a link could point anywhere).
            for p in &w.at {
                done.bad.push((
                    p.to_string(),
                    format!(
                        "not a regular file in the snapshot on the store ({what}): not restored"
                    ),
                ));
            }
            progress.inc(w.at.len() as u64);
            continue;
        };
        for p in rest {
            let to = dest.join(p);
            let _ = std::fs::remove_file(&to);
            link(&first, &to, folders).map_err(io(&to))?;
            done.linked += 1;
        }
        if let Some((sha1, md5, size)) = &hashed {
            for (p, want) in &wants {
                match judge(want, sha1, md5, *size) {
                    Proof::Bad(why) => done.bad.push((p.to_string(), why)),
                    _ => done.proved += 1,
                }
            }
        }
        written.insert(name, (first, hashed));
        progress.inc(w.at.len() as u64);
    }
    Ok((done, seen))
}

/// A new file at `to`, never through a link someone left there; its folders made if missing.
fn create(to: &Path, folders: &Folders) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = || {
        std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(to)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            folders.make_above(to)?;
            open()
        }
        r => r,
    }
}

/// `to` made a hard link of `first`; its folders made if missing.
fn link(first: &Path, to: &Path, folders: &Folders) -> std::io::Result<()> {
    match std::fs::hard_link(first, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            folders.make_above(to)?;
            std::fs::hard_link(first, to)
        }
        r => r,
    }
}

/// The owner and permission bits the store's copy has (as `rsync -pgo --numeric-ids` gives
/// them; a recorded list's are given after): never set-user-id or sticky.
fn give_attributes(f: &std::fs::File, h: &tar::Header) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if nix::unistd::Uid::effective().is_root() {
        let uid = h.uid().ok().and_then(|u| u32::try_from(u).ok());
        let gid = h.gid().ok().and_then(|g| u32::try_from(g).ok());
        std::os::unix::fs::fchown(f, uid, gid)?;
    }
    let mode = h.mode().map_err(std::io::Error::other)? & 0o777;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar stream of `(name, entry)`: a file's bytes, or a hard link to a name.
    fn stream(entries: &[(&str, Result<&[u8], &str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, what) in entries {
            let mut h = tar::Header::new_gnu();
            // Written raw: the builder refuses names a hostile server could send.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_mode(0o640);
            match what {
                Ok(data) => {
                    h.set_size(data.len() as u64);
                    h.set_cksum();
                    b.append(&h, *data).unwrap();
                }
                Err(first) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_link_name(first).unwrap();
                    h.set_size(0);
                    h.set_cksum();
                    b.append(&h, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// Unpacks `bytes` asked for as `part` (each name under itself) into a new folder;
    /// returns the folder too.
    fn unpack_into(
        bytes: &[u8],
        part: &[&str],
    ) -> (
        tempfile::TempDir,
        Result<(Streamed, HashSet<String>), StoreError>,
    ) {
        let wanted: Vec<Wanted> = part.iter().map(|p| Wanted::same(p)).collect();
        unpack_wanted(bytes, &wanted)
    }

    /// Unpacks `bytes` asked for as `wanted` into a new folder's `dest`; returns the folder.
    fn unpack_wanted(
        bytes: &[u8],
        wanted: &[Wanted],
    ) -> (
        tempfile::TempDir,
        Result<(Streamed, HashSet<String>), StoreError>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let make_dir = |p: &Path| std::fs::create_dir(p).map(|_| true);
        let folders = Folders {
            dest: &dest,
            make_dir: &make_dir,
            lock: std::sync::Mutex::new(()),
        };
        let progress = Progress::new("test", 0, Unit::Items);
        let landing = Landing {
            dest: &dest,
            folders: &folders,
            prove: &|p| crate::proof::pfile_of(p),
            progress: &progress,
            what: "test restore",
        };
        let refs: Vec<&Wanted> = wanted.iter().collect();
        let r = unpack(bytes, &refs, &landing);
        (dir, r)
    }

    fn err_of(r: Result<(Streamed, HashSet<String>), StoreError>) -> String {
        match r {
            Ok(_) => panic!("a hostile stream was taken"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_stream_writes_what_was_asked_links_twins_and_proves_names() {
        let data = b"some file's content";
        let (sha1, md5, size) = crate::proof::hash_reader(&data[..]).unwrap();
        let name = format!("{sha1}.{md5}.{size}");
        let gold = format!("h/gold/{name}");
        let twin = format!("h/files/{name}");
        let rotten = format!("h/gold/{sha1}.{md5}.{}", size + 1);
        let bytes = stream(&[
            (&gold, Ok(data)),
            (&twin, Err(&gold)),
            (&rotten, Ok(data)),
            ("h/notes", Ok(b"x")),
        ]);
        let part = [gold.as_str(), &twin, &rotten, "h/notes", "h/lost"];
        let (dir, r) = unpack_into(&bytes, &part);
        let (done, seen) = r.unwrap();
        let dest = dir.path().join("dest");
        assert_eq!(std::fs::read(dest.join(&gold)).unwrap(), data);
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &str| std::fs::metadata(dest.join(p)).unwrap().ino();
        assert_eq!(ino(&gold), ino(&twin), "the twin is the gold file's inode");
        assert_eq!(
            std::fs::metadata(dest.join("h/notes")).unwrap().mode() & 0o7777,
            0o640
        );
        assert_eq!((done.files, done.linked, done.proved), (3, 1, 2));
        assert_eq!(done.bytes, 2 * data.len() as u64 + 1);
        assert_eq!(done.bad.len(), 1);
        assert_eq!(done.bad[0].0, rotten, "{:?}", done.bad);
        // Not sent: the caller reports it.
        assert!(!seen.contains("h/lost") && seen.len() == 4);
    }

    /// A pool's object comes once and lands at every path it holds, each proved.
    #[test]
    fn an_object_lands_at_every_path_it_holds() {
        let data = b"one object, two paths";
        let (sha1, md5, size) = crate::proof::hash_reader(&data[..]).unwrap();
        let name = format!("{sha1}.{md5}.{size}");
        let object = format!("objects/{}/{name}", &sha1[..2]);
        let (gold, twin) = (format!("h/gold/{name}"), format!("h/files/{name}"));
        let w = Wanted {
            name: Cow::Borrowed(&object),
            at: vec![&gold, &twin],
        };
        let (dir, r) = unpack_wanted(&stream(&[(&object, Ok(data))]), &[w]);
        let (done, seen) = r.unwrap();
        let dest = dir.path().join("dest");
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &str| std::fs::metadata(dest.join(p)).unwrap().ino();
        assert_eq!(std::fs::read(dest.join(&gold)).unwrap(), data);
        assert_eq!(ino(&gold), ino(&twin));
        assert!(
            !dest.join("objects").exists(),
            "nothing under the object's name"
        );
        assert_eq!((done.files, done.linked, done.proved), (1, 1, 2));
        assert!(done.bad.is_empty() && seen.contains(&object));
    }

    #[test]
    fn a_hostile_stream_writes_nothing_outside_what_was_asked() {
        // A name not asked for, one climbing out, one sent twice.
        for (bytes, part) in [
            (stream(&[("h/other", Ok(b"x"))]), vec!["h/asked"]),
            (stream(&[("../escape", Ok(b"x"))]), vec!["h/asked"]),
            (
                stream(&[("h/asked", Ok(b"x")), ("h/asked", Ok(b"y"))]),
                vec!["h/asked"],
            ),
        ] {
            let (dir, r) = unpack_into(&bytes, &part);
            assert!(err_of(r).contains("which was not asked for"));
            assert!(!dir.path().join("escape").exists());
            assert!(!dir.path().join("dest/h/other").exists());
        }
        // A link to a name the stream did not write (a file of the restoring machine).
        let (_dir, r) = unpack_into(&stream(&[("h/a", Err("/etc/shadow"))]), &["h/a"]);
        assert!(err_of(r).contains("a link to a name not sent"));
        // A stream that ends inside a file.
        let full = stream(&[("h/a", Ok(&[7u8; 4000]))]);
        let (_dir, r) = unpack_into(&full[..512 + 1000], &["h/a"]);
        let e = err_of(r);
        assert!(
            e.contains("ended inside h/a") || e.contains("broke off"),
            "{e}"
        );
    }

    #[test]
    fn only_plain_relative_paths_may_be_asked_for() {
        for p in ["h/gold/x", "a"] {
            assert!(plain(p), "{p}");
        }
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "h/../../x",
            "./x",
            "h/./x",
            "h//x",
            "h/",
        ] {
            assert!(!plain(p), "{p}");
        }
    }
}
