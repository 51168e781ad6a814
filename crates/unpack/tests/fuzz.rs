//! A bounded mutation fuzz of every reader, run in CI: valid archives of each format are
//! mutated (bit flips, byte overwrites, truncations, deleted and repeated ranges, biased
//! towards the headers) and each mutant goes through the unpacker as a top-level upload.
//!
//! Asserted for every mutant: no panic (not even one the reader boundary would catch), no
//! hang (a watchdog aborts the run, saving the mutant, if one takes longer than
//! [`DEADLINE`]), and nothing written anywhere but the repository and the temporary folder
//! (the working folder stays empty, the temporary folder is emptied, every repository file
//! is named by its content). `HOLDFAST_FUZZ_MUTANTS` changes the number per seed
//! (default 600, ISO images a sixth of that: 10,300 in all); `HOLDFAST_FUZZ_SEED` the
//! random seed.
//!
//! A mutant that fails is saved as `target/fuzz-failures/<seed>-<n>.bin`; copy it next to
//! this file's regression list ([`REGRESSIONS`]) to keep it tested.

use holdfast_unpack::engine::{process_bytes, Ctx};
use holdfast_unpack::{UnpackConfig, UnpackOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest one mutant may take (generous: debug build, shared CI cores).
const DEADLINE: Duration = Duration::from_secs(60);

/// Inputs that once broke a reader, kept as regressions (bytes, what they were).
const REGRESSIONS: &[(&[u8], &str)] = &[(
    b"!<arch>\n/9              0           0     0     644     4         `\nabc\n",
    "ar crate 0.9: GNU long-name reference with no // table sliced out of range",
)];

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        if v.is_empty() {
            v.push(0);
        }
        // Half the positions fall in the first 512 bytes, where the headers are.
        let pos = |rng: &mut Rng, len: usize| {
            if rng.below(2) == 0 {
                rng.below(len.min(512))
            } else {
                rng.below(len)
            }
        };
        let len = v.len();
        match rng.below(7) {
            0 => {
                let p = pos(rng, len);
                v[p] ^= 1 << rng.below(8);
            }
            1 => {
                for _ in 0..1 + rng.below(8) {
                    let p = pos(rng, len);
                    v[p] = [0, 0xff, 0x7f, 0x80, 0x01, rng.next() as u8][rng.below(6)];
                }
            }
            2 => v.truncate(pos(rng, len)),
            3 => {
                let a = pos(rng, len);
                let b = (a + 1 + rng.below(64)).min(len);
                v.drain(a..b);
            }
            4 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let chunk = v[a..b].to_vec();
                let at = pos(rng, len);
                for _ in 0..1 + rng.below(3) {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            5 => {
                // A header field set to a large number: sizes and counts.
                let p = pos(rng, len);
                let end = (p + 4).min(len);
                for b in &mut v[p..end] {
                    *b = 0xff;
                }
            }
            _ => {
                let a = rng.below(len);
                let b = rng.below(len);
                let n = (1 + rng.below(32)).min(len - a).min(len - b);
                let chunk = v[a..a + n].to_vec();
                v[b..b + n].copy_from_slice(&chunk);
            }
        }
    }
    v
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Valid, small archives of every format the unpacker reads.
fn seeds(dir: &Path) -> Vec<(String, Vec<u8>)> {
    for tool in [
        "tar", "gzip", "bzip2", "xz", "zstd", "lz4", "zip", "7z", "cpio", "dpkg-deb", "xorriso",
        "ar",
    ] {
        holdfast_testkit::require(tool);
    }
    let t = dir.join("t");
    std::fs::create_dir_all(t.join("d/sub")).unwrap();
    std::fs::write(t.join("d/a.txt"), "alpha alpha alpha\n".repeat(20)).unwrap();
    std::fs::write(t.join("d/sub/b.c"), "int main(void) { return 0; }\n").unwrap();
    std::fs::write(t.join("d/empty"), "").unwrap();
    std::os::unix::fs::symlink("a.txt", t.join("d/link")).unwrap();
    sh(
        &t,
        "tar cf ../x.tar d && tar --format=gnu -cf ../gnu.tar d && tar --format=pax -cf ../pax.tar d \
         && gzip -c ../x.tar > ../x.tar.gz && bzip2 -c ../x.tar > ../x.tar.bz2 \
         && xz -c ../x.tar > ../x.tar.xz && xz -c d/a.txt > ../a.txt.xz && xz --format=lzma -c d/a.txt > ../a.lzma \
         && zstd -q -c ../x.tar > ../x.tar.zst && lz4 -q -c d/a.txt > ../a.lz4 && gzip -c d/a.txt > ../a.gz \
         && zip -qry ../x.zip d && 7z a -bd ../x.7z d >/dev/null \
         && find d | cpio -o -H newc --quiet > ../x.cpio && find d | cpio -o -H odc --quiet > ../odc.cpio \
         && ar rc ../x.a d/a.txt d/sub/b.c d/empty \
         && mkdir -p p/DEBIAN p/usr/share/doc/p && cp d/a.txt p/usr/share/doc/p/ \
         && printf 'Package: p\\nVersion: 1\\nArchitecture: all\\nMaintainer: m <m@x>\\nDescription: d\\n' > p/DEBIAN/control \
         && dpkg-deb --root-owner-group -Zgzip -b p ../x.deb >/dev/null \
         && xorriso -as mkisofs -quiet -R -o ../x.iso d 2>/dev/null",
    );
    let mut out = Vec::new();
    for name in [
        "x.tar",
        "gnu.tar",
        "pax.tar",
        "x.tar.gz",
        "x.tar.bz2",
        "x.tar.xz",
        "a.txt.xz",
        "a.lzma",
        "x.tar.zst",
        "a.lz4",
        "a.gz",
        "x.zip",
        "x.7z",
        "x.cpio",
        "odc.cpio",
        "x.a",
        "x.deb",
        "x.iso",
    ] {
        out.push((name.to_string(), std::fs::read(dir.join(name)).unwrap()));
    }
    out
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn mutants_of_every_format() {
    let per_seed: usize = std::env::var("HOLDFAST_FUZZ_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let rng_seed: u64 = std::env::var("HOLDFAST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d);
    let d = tempfile::tempdir().unwrap();
    let sandbox = d.path().join("sandbox");
    let (repo_dir, tmp_dir, cwd) = (
        sandbox.join("repo"),
        sandbox.join("tmp"),
        sandbox.join("cwd"),
    );
    for p in [&repo_dir, &tmp_dir, &cwd] {
        std::fs::create_dir_all(p).unwrap();
    }
    let seeds = seeds(d.path());
    // Relative paths a reader might wrongly write to would land here.
    std::env::set_current_dir(&cwd).unwrap();

    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let group = String::from_utf8(Command::new("id").arg("-gn").output().unwrap().stdout).unwrap();
    let conf = format!(
        "[FOSSOLOGY]\naddress = localhost\nport = 24693\npath = {}\ndepth = 3\n\n[REPOSITORY]\nlocalhost[] = * 00 ff\n\n[DIRECTORIES]\nPROJECTGROUP={}\nPROJECTUSER={}\n",
        repo_dir.display(),
        group.trim(),
        user.trim()
    );
    let fo = holdfast_site::foconf::FoConf::parse(&conf, Path::new("fossology.conf")).unwrap();
    let repo = holdfast_site::repo::Repository::from_conf(&fo);
    let cfg = UnpackConfig {
        temp_dir: Some(tmp_dir.clone()),
        max_seconds: 30,
        ..Default::default()
    };

    // Panics are counted even when the reader boundary catches them.
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let messages = messages.clone();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, SeqCst);
            messages.lock().unwrap().push(info.to_string());
        }));
    }
    // The watchdog: the start of the running mutant (ms since `t0`, 0 when idle).
    let t0 = Instant::now();
    let started = Arc::new(AtomicU64::new(0));
    let current: Arc<Mutex<(String, Vec<u8>)>> = Arc::default();
    let failures = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    {
        let (started, current, failures) = (started.clone(), current.clone(), failures.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let s = started.load(SeqCst);
            let now = t0.elapsed().as_millis() as u64;
            if s > 0 && now.saturating_sub(s) > DEADLINE.as_millis() as u64 {
                let (name, bytes) = current.lock().unwrap().clone();
                let _ = std::fs::create_dir_all(&failures);
                let path = failures.join(format!("{name}.bin"));
                let _ = std::fs::write(&path, bytes);
                eprintln!(
                    "fuzz: mutant {name} still running after {DEADLINE:?} (a hang); saved as {}",
                    path.display()
                );
                std::process::abort();
            }
        });
    }

    let mut inputs: Vec<(String, Vec<u8>)> = REGRESSIONS
        .iter()
        .enumerate()
        .map(|(i, (b, _))| (format!("regression-{i}"), b.to_vec()))
        .collect();
    let mut rng = Rng(rng_seed | 1);
    for (name, seed) in &seeds {
        inputs.push((format!("{name}-seed"), seed.clone()));
        // bsdtar reads ISO images in a child process: slower, so fewer of them.
        let n = if name.ends_with(".iso") {
            per_seed / 6
        } else {
            per_seed
        };
        for i in 0..n {
            inputs.push((format!("{name}-{rng_seed:x}-{i}"), mutate(seed, &mut rng)));
        }
    }
    let mut failed = Vec::new();
    let mut per_format: std::collections::HashMap<String, Duration> = Default::default();
    let mut errors = 0usize;
    let run_start = Instant::now();
    for (name, bytes) in &inputs {
        *current.lock().unwrap() = (name.clone(), bytes.clone());
        let started_ms = t0.elapsed().as_millis() as u64 + 1;
        started.store(started_ms, SeqCst);
        let before = PANICS.load(SeqCst);
        let tmp = tempfile::tempdir_in(&tmp_dir).unwrap();
        let mut ctx = Ctx::new(
            repo.clone(),
            cfg.clone(),
            UnpackOptions::default(),
            tmp.path().to_path_buf(),
            name.clone(),
            indicatif::ProgressBar::hidden(),
        );
        ctx.set_gold_size(bytes.len() as u64);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            process_bytes(&ctx, bytes.clone(), name)
        }));
        started.store(0, SeqCst);
        let fmt = name.split('-').next().unwrap_or("").to_string();
        *per_format.entry(fmt).or_default() +=
            Duration::from_millis(t0.elapsed().as_millis() as u64 + 1)
                .saturating_sub(Duration::from_millis(started_ms));
        errors += ctx.errors.lock().unwrap().len();
        let leftover = std::fs::read_dir(tmp.path()).unwrap().count();
        drop(tmp);
        let why = if outcome.is_err() {
            Some("panic reached the upload".to_string())
        } else if PANICS.load(SeqCst) > before {
            Some(format!(
                "a reader panicked (caught at the boundary): {}",
                messages.lock().unwrap().last().cloned().unwrap_or_default()
            ))
        } else if leftover > 0 {
            Some(format!("{leftover} temporary files left behind"))
        } else {
            None
        };
        if let Some(why) = why {
            std::fs::create_dir_all(&failures).unwrap();
            let path = failures.join(format!("{name}.bin"));
            std::fs::write(&path, bytes).unwrap();
            failed.push(format!("{name}: {why} (saved as {})", path.display()));
        }
    }
    let took = run_start.elapsed();
    let _ = std::panic::take_hook();
    let mut slow: Vec<_> = per_format.into_iter().collect();
    slow.sort_by_key(|s| std::cmp::Reverse(s.1));
    eprintln!("fuzz: time per format {slow:?}");
    eprintln!(
        "fuzz: {} inputs ({} seeds) in {:.1} s, {errors} member errors recorded, {} failures",
        inputs.len(),
        seeds.len(),
        took.as_secs_f64(),
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert!(inputs.len() >= 10_000 || per_seed != 600);

    // Nothing written outside the repository and the temporary folder.
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "wrote to the cwd"
    );
    assert_eq!(std::fs::read_dir(&tmp_dir).unwrap().count(), 0, "temp left");
    let mut top: Vec<String> = std::fs::read_dir(&sandbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    top.sort();
    assert_eq!(top, ["cwd", "repo", "tmp"]);
    // Every repository file sits under files/ and is named by its content.
    let mut stored = 0;
    for e in walkdir::WalkDir::new(&repo_dir) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            assert!(e.file_type().is_dir(), "{}", e.path().display());
            continue;
        }
        let rel = e.path().strip_prefix(&repo_dir).unwrap();
        assert!(
            rel.starts_with("localhost/files"),
            "written outside files/: {}",
            rel.display()
        );
        let h = holdfast_unpack::hash::hash_file(e.path()).unwrap();
        assert_eq!(
            e.file_name().to_string_lossy(),
            h.pfile_name(),
            "{}",
            rel.display()
        );
        stored += 1;
    }
    assert!(stored > 50, "only {stored} files stored");
}
