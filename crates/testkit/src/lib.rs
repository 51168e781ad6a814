//! Real services for tests, each started on loopback in a temporary folder and stopped on
//! drop: `sshd` ([`sshd::Sshd`]), `slapd` ([`slapd::Slapd`], the stoney tree), and
//! helpers to check that the tools tests use are present; [`bench`] holds what the benchmark
//! examples share (median, load, a cold cache).
//! Scratch PostgreSQL sites come from `holdfast_sandbox::scratch`, since the demo and the
//! drills use them too.

pub mod bench;
pub mod golden;
pub mod s3;
pub mod slapd;
pub mod smtp;
pub mod sshd;

use std::path::PathBuf;

/// Path of a program the tests need; panics with the package to install when it is missing.
pub fn require(tool: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = PathBuf::from(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("{tool} is not installed: run scripts/test.sh, which installs every tool the tests use");
}

/// A short random tag for names that must not collide between parallel tests.
pub fn tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{:x}{:02x}", std::process::id() % 0xfff, n % 0xff)
}

/// A file system in an image file, loop-mounted for one test (needs root, as the test suite
/// runs). Unmounted and deleted when dropped.
pub struct LoopFs {
    pub mount: PathBuf,
    image: PathBuf,
}

impl LoopFs {
    /// Makes a `mb` MiB btrfs under `dir` and mounts it at `dir/mnt`.
    pub fn btrfs(dir: &std::path::Path, mb: u64) -> LoopFs {
        LoopFs::make(
            dir,
            mb,
            &[require("mkfs.btrfs").to_str().unwrap(), "-q", "-f"],
        )
    }

    /// Makes a `mb` MiB ext4 under `dir` with mkfs.ext4's defaults and `options` (such as
    /// `-O inline_data -I 512`), and mounts it at `dir/mnt`.
    pub fn ext4(dir: &std::path::Path, mb: u64, options: &[&str]) -> LoopFs {
        let mkfs = require("mkfs.ext4");
        let mut argv = vec![mkfs.to_str().unwrap(), "-q", "-F"];
        argv.extend_from_slice(options);
        LoopFs::make(dir, mb, &argv)
    }

    fn make(dir: &std::path::Path, mb: u64, mkfs: &[&str]) -> LoopFs {
        let image = dir.join("fs.img");
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&mount).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(mb << 20)
            .unwrap();
        let run = |c: &mut std::process::Command| {
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(std::process::Command::new(mkfs[0])
            .args(&mkfs[1..])
            .arg(&image));
        run(std::process::Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(&image)
            .arg(&mount));
        LoopFs { mount, image }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.mount)
            .status();
        let _ = std::fs::remove_file(&self.image);
    }
}
