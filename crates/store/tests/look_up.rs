//! Look-ups on a backup server over ssh (which of a rotating chain's pieces holds each file,
//! with its size): a big list goes in parts, each looked up by several processes, and the
//! answers come back in order, as a target on this machine gives them.

mod common;

use common::target;
use holdfast_store::target::{SshOptions, Target};
use holdfast_testkit::sshd::Sshd;

#[test]
fn a_big_list_is_answered_in_order_as_on_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let root = dir.path().join("store");
    // Two pieces; 6,000 names asked: in the first, in the second with another size, in
    // neither, a link, a folder.
    let mut asked: Vec<(String, Option<u64>)> = Vec::new();
    for i in 0..6_000u32 {
        let p = format!("h/files/{:02x}/f{i}", i % 50);
        let piece = match i % 5 {
            0 => Some("base"),
            1 | 2 => Some("inc"),
            _ => None,
        };
        if let Some(piece) = piece {
            let at = root.join(piece).join(&p);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(&at, "x".repeat(i as usize % 7)).unwrap();
        }
        let size = (i % 2 == 0).then_some(i as u64 % 7 + u64::from(i % 5 == 2));
        asked.push((p, size));
    }
    std::os::unix::fs::symlink("x", root.join("base/h/link")).unwrap();
    asked.push(("h/link".into(), None));
    asked.push(("h/files".into(), None));
    let asked: Vec<(&str, Option<u64>)> = asked.iter().map(|(p, s)| (p.as_str(), *s)).collect();
    let dirs = ["base".to_string(), "inc".to_string()];

    let here = Target::parse(root.to_str().unwrap(), SshOptions::default()).unwrap();
    let want = here.holders_sized(&dirs, &asked).unwrap();
    let found = want.iter().filter(|h| h.is_some()).count();
    assert!(found > 2_000 && found < 4_000, "{found} of {}", asked.len());
    assert_eq!(
        want[want.len() - 2..],
        [None, None],
        "a link and a folder are no file"
    );

    let far = target(&sshd, &root);
    assert_eq!(far.holders_sized(&dirs, &asked).unwrap(), want);
}
