//! Where a pool keeps a repository file.
//!
//! FOSSology files a content-named file three hashed folders deep (`files/ab/cd/ef/<name>`),
//! so nearly every new file of a scan day comes with a new folder, 4 KB on ext4: a pool that
//! copied the repository's tree grew by ~1.2x the new data. A pool of **objects** keeps each
//! content once, at `objects/<ab>/<name>` (the 256 folders are made with the pool), however
//! many paths name it (a gold file and its `files` twin are one inode in the repository and
//! one object here), and any file not named by its content (logs, reports) at
//! `paths/<its path>`. Content-named files reach their objects through `.incoming/`: rsync
//! cannot rename, so it copies them there under their names (flat) and each is then renamed
//! to its object (a rename is whole or absent, as rsync's own temporary names are). To a
//! local target [`crate::local_send`] writes each under a temporary name in `.incoming/` and
//! renames it to its object at once.
//!
//! Pools made before objects kept the repository's tree (`repository/`): every reader still
//! understands one, and the next backup turns it into objects ([`make_pool`]).

use crate::layout::POOL;
use crate::manifest::REPO_DIR;
use crate::proof::pfile_of;
use crate::store::TransferStats;
use crate::target::{sh_quote, Target};
use crate::StoreError;
use holdfast_core::fs::PRIVATE_DIR;
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

pub const OBJECTS: &str = "objects";
pub const PATHS: &str = "paths";
/// Inside the pool: where rsync leaves content-named files before they become objects.
pub const INCOMING: &str = ".incoming";

/// How a folder on a target names the repository files it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Under their repository paths (day and base folders; pools made before objects).
    Paths,
    /// A pool of objects.
    Objects,
}

impl Naming {
    /// Where `path` (repository-relative) is, relative to the folder.
    pub fn rel(self, path: &str) -> Cow<'_, str> {
        match self {
            Naming::Paths => Cow::Borrowed(path),
            Naming::Objects => Cow::Owned(object_rel(path)),
        }
    }
}

/// A snapshot's repository files on a target: the folder and how it names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub base: String,
    pub naming: Naming,
}

impl Home {
    pub fn paths(base: String) -> Home {
        Home {
            base,
            naming: Naming::Paths,
        }
    }

    /// Where `path` (repository-relative) is, relative to [`Home::base`].
    pub fn rel<'a>(&self, path: &'a str) -> Cow<'a, str> {
        self.naming.rel(path)
    }

    /// Where `path` is, relative to the target.
    pub fn target_rel(&self, path: &str) -> String {
        format!("{}/{}", self.base, self.rel(path))
    }
}

/// Where a pool of objects keeps repository path `path`, relative to the pool.
pub fn object_rel(path: &str) -> String {
    match pfile_of(path) {
        Some(_) => {
            let name = path.rsplit('/').next().unwrap_or(path);
            format!("{OBJECTS}/{}/{name}", name[..2].to_ascii_lowercase())
        }
        None => format!("{PATHS}/{path}"),
    }
}

/// The pool's home on `target`: a pool of objects, unless the target holds a pool made
/// before them.
pub fn pool_home(target: &Target) -> Result<Home, StoreError> {
    let tree = format!("{POOL}/{REPO_DIR}");
    if target.exists(&tree)? {
        return Ok(Home::paths(tree));
    }
    Ok(Home {
        base: POOL.to_string(),
        naming: Naming::Objects,
    })
}

/// Makes the pool of objects: its 256 folders for a new store; for a pool made before
/// objects, its tree's files linked to their objects first ([`migrate`]).
pub fn make_pool(target: &Target) -> Result<Home, StoreError> {
    let moved = format!("{POOL}/{MOVED}");
    if target.exists(&moved)? {
        // A run killed after the switch, while the old tree was being deleted.
        target.remove_all(&moved)?;
    }
    if !target.exists(&format!("{POOL}/{OBJECTS}/ff"))? {
        let dirs: Vec<String> = (0..=255u8)
            .map(|b| format!("{POOL}/{OBJECTS}/{b:02x}"))
            .chain([format!("{POOL}/{PATHS}")])
            .collect();
        match target.local_path("") {
            Some(_) => {
                for d in &dirs {
                    target.mkdir_p(d)?;
                }
            }
            None => {
                let quoted: Vec<String> = dirs.iter().map(|d| sh_quote(&target.path(d))).collect();
                target.run_script(&format!("mkdir -p {}", quoted.join(" ")))?;
            }
        }
    }
    if target.exists(&format!("{POOL}/{REPO_DIR}"))? {
        migrate(target)?;
    }
    Ok(Home {
        base: POOL.to_string(),
        naming: Naming::Objects,
    })
}

/// Inside the pool: the tree of a pool made before objects, once every file of it is an
/// object too, while it is deleted.
const MOVED: &str = ".repository-moved";

/// Turns a pool made before objects into one: every file of its tree is hard-linked to its
/// object (one per content), then the tree is renamed aside in one step and deleted. Until
/// that step the tree is whole and readers use it; after it the objects are. A run killed
/// before it links again what it had not linked (a link already there is kept).
fn migrate(target: &Target) -> Result<(), StoreError> {
    let tree = format!("{POOL}/{REPO_DIR}");
    let files = target.files_below(&tree, true)?;
    tracing::info!(
        files = files.len(),
        "moving a pool made before objects to objects, once (its hashed folders are freed)"
    );
    let placed = one_per_object(&files);
    match target.local_path(POOL) {
        Some(root) => {
            for (object, path) in &placed {
                let (from, to) = (root.join(REPO_DIR).join(path), root.join(object));
                let io = |source| StoreError::Io {
                    path: to.display().to_string(),
                    source,
                };
                let dir = to.parent().expect("an object is in a folder");
                if !dir.is_dir() {
                    holdfast_core::fs::create_dir_all_mode(dir, PRIVATE_DIR).map_err(io)?;
                }
                match std::fs::hard_link(&from, &to) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
                    _ => {}
                }
            }
        }
        None => {
            let script = link_script(&target.path(POOL), &placed);
            target.run_script_with_input("sh -s", script.as_bytes())?;
        }
    }
    target.rename(&tree, &format!("{POOL}/{MOVED}"))?;
    target.remove_all(&format!("{POOL}/{MOVED}"))
}

/// A shell script that hard-links each `repository/<path>` of `placed` to its object, then
/// fails unless every object is there.
fn link_script(pool: &str, placed: &BTreeMap<String, String>) -> String {
    let mut s = into_folders(pool, placed, "ln", |p| format!("{REPO_DIR}/{p}"));
    s.push_str("while IFS= read -r o; do [ -f \"$o\" ] || { echo \"not linked: $o\" >&2; exit 1; }; done <<'EOF'\n");
    for object in placed.keys() {
        s.push_str(object);
        s.push('\n');
    }
    s.push_str("EOF\n");
    s
}

/// Of `paths`, one per object (the first met), with the object it goes to.
pub fn one_per_object(paths: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in paths {
        out.entry(object_rel(p)).or_insert_with(|| p.clone());
    }
    out
}

/// The name a content-named file is staged under in `.incoming/`: its own.
fn staged(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Renames each file `(object, path)` of `placed` from `<pool>/.incoming/<name>` to
/// `<pool>/<object>`, replacing an object there (a fresh copy of a damaged one), then
/// removes `.incoming`. A file rsync did not stage (it vanished from the site meanwhile,
/// which rsync accepts) is skipped; one staged and not moved is an error.
pub fn place(
    target: &Target,
    pool: &str,
    placed: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let Some(root) = target.local_path(pool) else {
        let script = move_script(&target.path(pool), placed);
        return target
            .run_script_with_input("sh -s", script.as_bytes())
            .map(|_| ());
    };
    for (object, path) in placed {
        let (from, to) = (root.join(INCOMING).join(staged(path)), root.join(object));
        let io = |source| StoreError::Io {
            path: from.display().to_string(),
            source,
        };
        if from.symlink_metadata().is_err() {
            continue;
        }
        let dir = to.parent().expect("an object is in a folder");
        if !dir.is_dir() {
            // A prefix the pool was not made with (upper-case hex).
            holdfast_core::fs::create_dir_all_mode(dir, PRIVATE_DIR).map_err(io)?;
        }
        std::fs::rename(&from, &to).map_err(io)?;
    }
    target.remove_all(&format!("{pool}/{INCOMING}"))
}

/// The start of a shell script, run in `pool`, that gives each object of `placed` its file
/// with `command` (`mv` or `ln`: sources, then the object's folder; the object has the
/// source's name): one command per folder and up to 200 files. A failing command does not
/// stop the script: the caller's check that follows says what is missing.
fn into_folders(
    pool: &str,
    placed: &BTreeMap<String, String>,
    command: &str,
    source: impl Fn(&str) -> String,
) -> String {
    let mut by_dir: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (object, path) in placed {
        let dir = object.rsplit_once('/').map_or("", |(d, _)| d);
        by_dir.entry(dir).or_default().push(source(path));
    }
    let mut s = format!("cd {} || exit 1\n", sh_quote(pool));
    for (dir, sources) in by_dir {
        let d = sh_quote(dir);
        s.push_str(&format!("[ -d {d} ] || mkdir -p {d} || exit 1\n"));
        for chunk in sources.chunks(200) {
            s.push_str(command);
            s.push_str(" --");
            for p in chunk {
                s.push(' ');
                s.push_str(&sh_quote(p));
            }
            s.push_str(&format!(" {d}/ 2>/dev/null || :\n"));
        }
    }
    s
}

/// A shell script that moves the staged files of `placed` to their objects, fails if one
/// staged was left behind (one that vanished before rsync staged it is not there), and
/// removes `.incoming`. With perl on the server (Debian's `perl-base` is essential) in one
/// process: a night's two thousand new files go to some 256 folders, and a `mv` for each
/// folder took a quarter of a second over ssh; without it, with `mv`.
fn move_script(pool: &str, placed: &BTreeMap<String, String>) -> String {
    let mut s = format!(
        "cd {} || exit 1\nif command -v perl >/dev/null 2>&1; then\nperl -e {} <<'{PLACE_END}'\n",
        sh_quote(pool),
        sh_quote(PLACE_PERL)
    );
    for (object, path) in placed {
        s.push_str(&format!("{INCOMING}/{}\t{object}\n", staged(path)));
    }
    s.push_str(&format!("{PLACE_END}\nelse\n"));
    let mv = into_folders(pool, placed, "mv -f", |p| {
        format!("{INCOMING}/{}", staged(p))
    });
    s.push_str(&mv);
    s.push_str(&format!(
        "fi\n\
         if [ -n \"$(find {INCOMING} -type f -print 2>/dev/null | head -n 1)\" ]; then \
         echo 'staged files could not be moved into the pool' >&2; exit 1; fi\n\
         rm -rf {INCOMING}\n"
    ));
    s
}

/// Ends [`move_script`]'s list: no content name has a `-`.
const PLACE_END: &str = "HOLDFAST-PLACE-END";

/// Renames each `staged<TAB>object` line's file, making the object's folder if need be; one
/// not staged is passed over. A failure is said and left to the check that follows.
const PLACE_PERL: &str = r#"while (my $l = <STDIN>) {
  chomp $l; my ($f, $t) = split /\t/, $l, 2;
  next unless lstat $f;
  next if rename $f, $t;
  (my $d = $t) =~ s{/[^/]*\z}{}; my $p = "";
  for (split m{/}, $d) { $p .= ($p eq "" ? "" : "/") . $_; mkdir $p, 0700 unless -d $p }
  rename $f, $t or print STDERR "$f: $!\n";
}"#;

/// Each object of a pool on this machine (`base`) hard-linked under `dest` at its paths, as
/// a fetch copies them; a missing object is left out. `None`: `dest` is on another file
/// system, and they must be copied. Many at a time: on a cold cache each waits for the disk.
pub(crate) fn link_under(
    base: &Path,
    by_object: &BTreeMap<String, Vec<&String>>,
    dest: &Path,
) -> Result<Option<TransferStats>, StoreError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| StoreError::Io { path, source }
    };
    let link = |(object, paths): (&String, &Vec<&String>)| {
        let from = base.join(object);
        let Ok(meta) = from.symlink_metadata() else {
            return Ok(Some(TransferStats::default()));
        };
        for p in paths {
            let to = dest.join(p);
            if let Some(d) = to.parent() {
                std::fs::create_dir_all(d).map_err(io(d))?;
            }
            let _ = std::fs::remove_file(&to);
            match std::fs::hard_link(&from, &to) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Ok(None),
                Err(e) => return Err(io(&to)(e)),
            }
        }
        Ok(Some(TransferStats {
            files: 1,
            bytes: meta.len(),
            transferred_files: 1,
            transferred_bytes: meta.len(),
            ..Default::default()
        }))
    };
    let each: Vec<Option<TransferStats>> = holdfast_core::threads::io_pool()
        .install(|| by_object.par_iter().map(link).collect::<Result<_, _>>())?;
    let mut stats = TransferStats::default();
    for s in each {
        let Some(s) = s else { return Ok(None) };
        stats.add(&s);
    }
    Ok(Some(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str =
        "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567.0123456789abcdef0123456789abcdef.42";

    #[test]
    fn content_named_files_share_one_object_and_others_keep_their_paths() {
        let gold = format!("localhost/gold/0a/1b/2c/{NAME}");
        let files = format!("localhost/files/0a/1b/2c/{NAME}");
        assert_eq!(object_rel(&gold), format!("objects/0a/{NAME}"));
        assert_eq!(object_rel(&files), object_rel(&gold));
        assert_eq!(
            object_rel("localhost/logs/00/00/00/0000123"),
            "paths/localhost/logs/00/00/00/0000123"
        );
        assert_eq!(object_rel("report/a.docx"), "paths/report/a.docx");
        let upper = NAME.to_ascii_uppercase();
        assert_eq!(
            object_rel(&format!("x/{upper}")),
            format!("objects/0a/{upper}")
        );
        let one = one_per_object(&[files.clone(), gold.clone(), "report/a".into()]);
        assert_eq!(one.len(), 2);
        assert_eq!(
            one[&format!("objects/0a/{NAME}")],
            files,
            "the first path met"
        );
    }

    #[test]
    fn a_new_pool_has_its_folders_and_one_made_before_becomes_objects() {
        let t = tempfile::tempdir().unwrap();
        let target = Target::parse(t.path().to_str().unwrap(), Default::default()).unwrap();
        let home = make_pool(&target).unwrap();
        assert_eq!(home.naming, Naming::Objects);
        assert!(
            t.path().join("pool/objects/00").is_dir() && t.path().join("pool/objects/ff").is_dir()
        );
        assert_eq!(
            home.target_rel(&format!("h/files/0a/1b/2c/{NAME}")),
            format!("pool/objects/0a/{NAME}")
        );

        // A tree as rsync -H made it: a gold file and its files twin, and a log.
        let old = tempfile::tempdir().unwrap();
        let tree = old.path().join("pool/repository");
        let (gold, files, log) = (
            tree.join(format!("h/gold/0a/1b/2c/{NAME}")),
            tree.join(format!("h/files/0a/1b/2c/{NAME}")),
            tree.join("h/logs/00/00/00/0000001"),
        );
        for p in [&gold, &files, &log] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        }
        std::fs::write(&gold, b"content").unwrap();
        std::fs::hard_link(&gold, &files).unwrap();
        std::fs::write(&log, b"log").unwrap();
        let target = Target::parse(old.path().to_str().unwrap(), Default::default()).unwrap();
        assert_eq!(
            pool_home(&target).unwrap(),
            Home::paths("pool/repository".into())
        );
        let home = make_pool(&target).unwrap();
        assert_eq!(home.naming, Naming::Objects);
        assert_eq!(pool_home(&target).unwrap(), home);
        let pool = old.path().join("pool");
        assert_eq!(
            std::fs::read(pool.join(format!("objects/0a/{NAME}"))).unwrap(),
            b"content"
        );
        assert_eq!(
            std::fs::read(pool.join("paths/h/logs/00/00/00/0000001")).unwrap(),
            b"log"
        );
        assert!(!tree.exists() && !pool.join(MOVED).exists());
    }

    /// The server's script, run here: with perl, and with `mv` on a server without it.
    #[test]
    fn staged_files_are_moved_to_their_objects_with_perl_or_without() {
        let upper = NAME.to_ascii_uppercase().replacen("0A", "0B", 1);
        let gone = NAME.replacen("0a", "0c", 1);
        let placed: BTreeMap<String, String> = [&NAME.to_string(), &upper, &gone]
            .into_iter()
            .map(|n| (object_rel(n), format!("h/files/0a/1b/2c/{n}")))
            .collect();
        assert!(crate::server_sh::has_perl());
        for perl in [true, false] {
            let t = tempfile::tempdir().unwrap();
            let pool = t.path().join("pool");
            std::fs::create_dir_all(pool.join("objects/0a")).unwrap();
            std::fs::create_dir_all(pool.join(INCOMING)).unwrap();
            // Staged: two; the third vanished from the site before rsync staged it.
            for n in [NAME, &upper] {
                std::fs::write(pool.join(INCOMING).join(n), n).unwrap();
            }
            let script = move_script(pool.to_str().unwrap(), &placed);
            let bin = t.path().join("bin");
            let tools: &[&str] = &["mv", "mkdir", "find", "head", "rm"];
            let run = || crate::server_sh::run(&script, b"", (!perl).then_some((&*bin, tools)));
            let out = run();
            assert!(out.status.success(), "perl {perl}: {out:?}");
            for n in [NAME, &upper] {
                assert_eq!(
                    std::fs::read(pool.join(object_rel(n))).unwrap(),
                    n.as_bytes()
                );
            }
            assert!(!pool.join(object_rel(&gone)).exists());
            assert!(!pool.join(INCOMING).exists(), "perl {perl}");

            // A file that cannot go to its object is an error, and stays staged.
            std::fs::create_dir_all(pool.join(INCOMING)).unwrap();
            std::fs::write(pool.join(INCOMING).join(NAME), "again").unwrap();
            std::fs::remove_dir_all(pool.join("objects/0a")).unwrap();
            std::fs::write(pool.join("objects/0a"), "in the way").unwrap();
            let out = run();
            assert!(!out.status.success(), "perl {perl}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("could not be moved") || err.contains("objects/0a"),
                "perl {perl}: {err}"
            );
            // perl ran, and said which file and why.
            assert_eq!(perl, err.contains(&format!("{INCOMING}/{NAME}: ")), "{err}");
            assert!(pool.join(INCOMING).join(NAME).exists());
        }
    }

    /// A night's worth of staged files, their list longer than an argument can be: the
    /// server's script is given on its stdin (`sh -s`), and every file reaches its object,
    /// folders made where the pool lacks them.
    #[test]
    fn a_night_of_staged_files_reaches_its_objects() {
        let t = tempfile::tempdir().unwrap();
        let pool = t.path().join("pool");
        std::fs::create_dir_all(pool.join("objects/00")).unwrap();
        std::fs::create_dir_all(pool.join(INCOMING)).unwrap();
        let names: Vec<String> = (0..2000u32)
            .map(|i| format!("{:02x}{:038x}.{:032x}.{}", i % 24, i, i, i + 1))
            .collect();
        let placed: BTreeMap<String, String> = names
            .iter()
            .map(|n| (object_rel(n), format!("h/files/0a/1b/2c/{n}")))
            .collect();
        for n in &names {
            std::fs::write(pool.join(INCOMING).join(n), n).unwrap();
        }
        let script = move_script(pool.to_str().unwrap(), &placed);
        let out = crate::server_sh::run("exec sh -s", script.as_bytes(), None);
        assert!(out.status.success(), "{out:?}");
        for n in &names {
            assert_eq!(
                std::fs::read(pool.join(object_rel(n))).unwrap(),
                n.as_bytes()
            );
        }
        assert!(!pool.join(INCOMING).exists());
    }

    #[test]
    fn objects_on_this_machine_are_linked_at_each_of_their_paths() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let (base, dest) = (t.path().join("pool"), t.path().join("stage"));
        std::fs::create_dir_all(base.join("objects/ab")).unwrap();
        std::fs::write(base.join("objects/ab/one"), b"12345").unwrap();
        let (gold, files, gone) = (
            "h/gold/ab/cd/ef/one".to_string(),
            "h/files/ab/cd/ef/one".to_string(),
            "h/files/cd/ef/01/two".to_string(),
        );
        let by_object: BTreeMap<String, Vec<&String>> = [
            ("objects/ab/one".to_string(), vec![&gold, &files]),
            ("objects/cd/two".to_string(), vec![&gone]),
        ]
        .into_iter()
        .collect();
        let stats = link_under(&base, &by_object, &dest).unwrap().unwrap();
        assert_eq!((stats.transferred_files, stats.transferred_bytes), (1, 5));
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let object = ino(&base.join("objects/ab/one"));
        assert_eq!(ino(&dest.join(&gold)), object);
        assert_eq!(ino(&dest.join(&files)), object);
        assert!(!dest.join(&gone).exists(), "a missing object is left out");
    }
}
