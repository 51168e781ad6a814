//! A stop signal during a snapshot stops the copy at the next directory and leaves no
//! half-made snapshot in place (its own process: the signal flag is process-wide).

use holdfast_server::snapshot::{rotate, SnapError};
use holdfast_stoney::account::Intervals;

#[test]
fn sigint_stops_a_snapshot_and_leaves_the_set_consistent() {
    let t = tempfile::tempdir().unwrap();
    let h = t.path().join("home");
    for d in 0..50 {
        std::fs::create_dir_all(h.join(format!("incoming/pc/d{d}"))).unwrap();
        std::fs::write(h.join(format!("incoming/pc/d{d}/f")), "x").unwrap();
    }
    std::fs::create_dir_all(h.join(".snapshots")).unwrap();
    let iv = Intervals {
        daily: 3,
        ..Intervals::default()
    };
    rotate(&h, &iv, "daily").unwrap();
    holdfast_site::interrupt::install();
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT).unwrap();
    assert!(holdfast_site::interrupt::requested());
    let e = rotate(&h, &iv, "daily").unwrap_err();
    match &e {
        SnapError::Tree { source, .. } => {
            assert_eq!(source.source.kind(), std::io::ErrorKind::Interrupted, "{e}")
        }
        other => panic!("{other}"),
    }
    // daily.0 is untouched; the partial copy is only an incomplete tree in the server's
    // own area, which the next run discards
    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(h.join(d))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(".snapshots"), ["daily.0"]);
    assert_eq!(names(".holdfast"), ["incomplete.daily", "lock"]);
    assert_eq!(
        std::fs::read_dir(h.join(".snapshots/daily.0/pc"))
            .unwrap()
            .count(),
        50
    );
}
