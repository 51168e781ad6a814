//! What a folder of a hard-linked day tree costs where the store lives: measured on the
//! target's own machine (locally, and over ssh with the target's `stat`), on real file
//! systems in loop-mounted images, and leaving nothing behind.

mod common;

use common::*;
use holdfast_sandbox::standin::Behaviour;
use holdfast_store::folders;
use holdfast_testkit::LoopFs;

#[test]
fn a_folders_cost_is_measured_where_the_store_lives() {
    let f = fixture(1, Behaviour::default(), 30);
    let sshd = holdfast_testkit::sshd::Sshd::start(&f.dir.path().join("sshd")).unwrap();
    let inline = ["-O", "inline_data", "-I", "512"];
    // 1 GiB images: mkfs.ext4 gives smaller ones 1 KiB blocks.
    let cases = [
        (
            "ext4",
            LoopFs::ext4(&f.dir.path().join("ext4"), 1024, &[]),
            4096,
        ),
        (
            "ext4 inline_data",
            LoopFs::ext4(&f.dir.path().join("inline"), 1024, &inline),
            0,
        ),
        ("btrfs", LoopFs::btrfs(&f.dir.path().join("btrfs"), 512), 0),
    ];
    for (name, fs, cost) in &cases {
        let dir = fs.mount.join("target");
        std::fs::create_dir(&dir).unwrap();
        for ssh in [false, true] {
            let mut cfg = holdfast_backup::BackupConfig {
                target: dir.display().to_string(),
                ..f.cfg.clone()
            };
            if ssh {
                over_ssh(&mut cfg, &sshd, &dir);
            }
            let target = cfg.target().unwrap();
            assert_eq!(folders::cost(&target), Some(*cost), "{name}, ssh {ssh}");
            assert_eq!(
                folders::advice(&target).is_some(),
                *cost > 0,
                "{name}, ssh {ssh}"
            );
            // Closed first: over ssh the run's shell keeps its folder there until then.
            target.close();
            let left = std::fs::read_dir(&dir).unwrap().count();
            assert_eq!(left, 0, "{name}, ssh {ssh}: the probe is removed");
        }
    }
    // A target that cannot be measured says so (None), it does not guess.
    let cfg = holdfast_backup::BackupConfig {
        target: f.dir.path().join("no/such/folder").display().to_string(),
        ..f.cfg.clone()
    };
    assert_eq!(folders::cost(&cfg.target().unwrap()), None);
}
