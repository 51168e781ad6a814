//! A target's long-lived shell on a real sshd: each script's output, errors and exit status
//! come back as from a session of its own, a script cannot harm the shell, a shell that went
//! away is started again, and a script never waits for another thread's.

mod common;

use common::target;
use holdfast_store::target::{SshOptions, Target};
use holdfast_store::StoreError;
use holdfast_testkit::sshd::Sshd;
use std::time::{Duration, Instant};

/// The process id of the shell a script ran in (a subshell keeps its parent's `$$`).
fn shell_pid(t: &Target) -> String {
    String::from_utf8(t.run_script("echo $$").unwrap())
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn scripts_share_one_shell_and_come_back_as_from_their_own_session() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let t = target(&sshd, &dir.path().join("store"));
    t.check().unwrap();
    let first = shell_pid(&t);
    assert_eq!(shell_pid(&t), first, "a second session for a small script");

    // Every byte value, NULs and newlines included, and no trailing newline.
    let all: Vec<u8> = (0..=255u8).collect();
    let bytes = dir.path().join("store/bytes");
    std::fs::write(&bytes, &all).unwrap();
    let got = t.run_script(&format!("cat {}", bytes.display())).unwrap();
    assert_eq!(got, all);
    // The one-shot sessions' settings: C messages, a private umask.
    assert_eq!(t.run_script("umask").unwrap(), b"0077\n");
    assert_eq!(t.run_script("echo $LC_ALL").unwrap(), b"C\n");

    // A failing script: its status and stderr, as from a session of its own.
    match t.run_script("echo partial; echo 'no such thing' >&2; exit 3") {
        Err(StoreError::Remote { why, .. }) => assert_eq!(why, "no such thing"),
        other => panic!("{other:?}"),
    }
    // A script that is not even shell, one that ends its shell, one that reads stdin:
    // each fails or ends alone, and the shell goes on.
    assert!(matches!(
        t.run_script("if then fi ((("),
        Err(StoreError::Remote { .. })
    ));
    assert_eq!(t.run_script("echo a; exit 0; echo b").unwrap(), b"a\n");
    assert_eq!(
        t.run_script("cat; echo read-nothing").unwrap(),
        b"read-nothing\n"
    );
    assert_eq!(
        shell_pid(&t),
        first,
        "the shell did not survive its scripts"
    );

    // Its private folder on the server goes with it.
    let folder = String::from_utf8(t.run_script("echo \"$d\"").unwrap()).unwrap();
    let folder = std::path::PathBuf::from(folder.trim());
    assert!(folder.is_dir(), "{folder:?}");
    t.close();
    let until = Instant::now() + Duration::from_secs(5);
    while folder.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!folder.exists(), "{folder:?} left on the server");
    // After close, a new shell.
    assert_ne!(shell_pid(&t), first);
    t.close();
}

/// A script's input goes down the shell's stream byte for byte, and none of it, however
/// much it looks like shell or like the protocol's own lines, is run.
#[test]
fn a_scripts_input_reaches_it_whole_and_is_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let store = dir.path().join("store");
    let t = target(&sshd, &store);
    t.check().unwrap();
    let first = shell_pid(&t);
    let pwned = dir.path().join("pwned");
    let mut input: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    input.extend_from_slice(
        format!(
            "\nHOLDFAST-INPUT-END\ntouch {p}\nholdfast-shell 0 0 0\n'; touch {p}; '",
            p = pwned.display()
        )
        .as_bytes(),
    );
    let got = store.join("got");
    let out = t
        .run_script_with_input(&format!("cat > {}; echo $$", got.display()), &input)
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        first,
        "not in the shell"
    );
    assert_eq!(std::fs::read(&got).unwrap(), input);
    assert!(!pwned.exists(), "a line of the input was run");

    // Empty input; a script that reads part of its input; a failing one: each alone.
    assert_eq!(t.run_script_with_input("wc -c", b"").unwrap(), b"0\n");
    assert_eq!(
        t.run_script_with_input("head -c 3", b"abcdef\necho no\n")
            .unwrap(),
        b"abc"
    );
    match t.run_script_with_input("cat >/dev/null; echo 'it failed' >&2; exit 4", b"x") {
        Err(StoreError::Remote { why, .. }) => assert_eq!(why, "it failed"),
        other => panic!("{other:?}"),
    }
    // Up to a megabyte goes down the shell; more (a big site's file list) by a session.
    for (n, shell) in [(1_000_000u64, true), (3_000_000, false)] {
        let data: Vec<u8> = (0..n).map(|i| (i * 7919 % 251) as u8).collect();
        let out = t
            .run_script_with_input(&format!("cat > {}; echo $$", got.display()), &data)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap().trim() == first,
            shell,
            "{n}"
        );
        assert_eq!(std::fs::read(&got).unwrap(), data);
        t.write_atomic("lists/big", &data).unwrap();
        assert_eq!(std::fs::read(store.join("lists/big")).unwrap(), data);
    }
    assert_eq!(
        shell_pid(&t),
        first,
        "the shell did not survive its scripts"
    );
    t.close();
}

#[test]
fn a_shell_that_went_away_is_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let t = target(&sshd, &dir.path().join("store"));
    t.check().unwrap();
    let first = shell_pid(&t);
    // The server ends it between two scripts (an idle connection dropped, sshd restarted).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let second = shell_pid(&t);
    assert_ne!(second, first);
    assert_eq!(
        shell_pid(&t),
        second,
        "the new shell serves the next scripts"
    );
    t.close();
}

#[test]
fn a_script_never_waits_for_another_threads() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let t = target(&sshd, &dir.path().join("store"));
    let first = shell_pid(&t);
    let (slow, fast) = std::thread::scope(|s| {
        let slow = s.spawn(|| {
            let began = Instant::now();
            let pid = t.run_script("sleep 2; echo $$").unwrap();
            (
                String::from_utf8(pid).unwrap().trim().to_string(),
                began.elapsed(),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        let began = Instant::now();
        let pid = shell_pid(&t);
        (slow.join().unwrap(), (pid, began.elapsed()))
    });
    assert_eq!(slow.0, first, "the slow script ran in the shell");
    assert_ne!(fast.0, first, "the other ran in a session of its own");
    assert!(fast.1 < slow.1, "{fast:?} waited for {slow:?}");
    t.close();
}

/// Another target of this process ends the shared connection (`close`): the shell went with
/// it while idle, and the next script runs in a new one, not into an error.
#[test]
fn a_connection_ended_by_another_target_costs_no_script() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let a = target(&sshd, &dir.path().join("store"));
    let b = target(&sshd, &dir.path().join("store"));
    let first = shell_pid(&a);
    b.check().unwrap();
    for _ in 0..5 {
        b.close();
        assert!(a.exists("nothing").is_ok_and(|there| !there));
    }
    assert_ne!(shell_pid(&a), first);
    a.close();
}

/// What a second holdfast process runs: a target on the same server, closed at its end.
#[test]
#[ignore = "helper run by another test in a child process"]
fn close_child() {
    let Ok(spec) = std::env::var("HOLDFAST_CLOSE_CHILD") else {
        return;
    };
    let (port, key, root) = serde_json::from_str::<(u16, String, String)>(&spec).unwrap();
    let t = Target::parse(
        &format!("ssh://{}@127.0.0.1:{port}{root}", Sshd::user()),
        SshOptions {
            identity: Some(key.into()),
            options: [
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ]
            .map(String::from)
            .to_vec(),
        },
    )
    .unwrap();
    t.check().unwrap();
    t.close();
}

/// Another holdfast process on the same server (`holdfast snapshots` during a backup) ends
/// its own connection at its end, not the one this run's transfers are using.
#[test]
fn another_process_closing_its_connection_leaves_this_ones() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let root = dir.path().join("store");
    let t = target(&sshd, &root);
    let shell = shell_pid(&t);
    std::thread::scope(|s| {
        // A session of its own (a script with input), as an rsync is.
        let long = s.spawn(|| t.run_script_with_input("sleep 2; echo done", b""));
        std::thread::sleep(Duration::from_millis(500));
        let spec = serde_json::to_string(&(
            sshd.port,
            sshd.client_key.display().to_string(),
            root.display().to_string(),
        ))
        .unwrap();
        let st = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "close_child", "--test-threads=1"])
            .env("HOLDFAST_CLOSE_CHILD", spec)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(long.join().unwrap().unwrap(), b"done\n");
    });
    assert_eq!(
        shell_pid(&t),
        shell,
        "the other process ended this one's shell"
    );
    t.close();
}

/// No server there: the error is ssh's own, at once, as it was from a session of its own.
#[test]
fn no_server_is_unreachable_with_sshs_reason() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Target::parse(
        &format!("ssh://nobody@127.0.0.1:{port}/srv"),
        SshOptions::default(),
    )
    .unwrap();
    let began = Instant::now();
    match t.run_script("true") {
        Err(StoreError::Unreachable { why, .. }) => {
            assert!(why.contains("refused"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert!(began.elapsed() < Duration::from_secs(10));
}

/// The shell keeps its outputs in the target's root (the backup disk, not a `/tmp` that may
/// be full), and the folder a shell killed on the server left is removed by the next one.
#[test]
fn the_shells_folder_is_in_the_targets_root_and_a_dead_ones_goes() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd")).unwrap();
    let root = dir.path().join("store");
    std::fs::create_dir_all(&root).unwrap();
    let dead = root.join(".holdfast-shell.2147483646");
    let live = root.join(format!(".holdfast-shell.{}", std::process::id()));
    for d in [&dead, &live] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("o"), b"left").unwrap();
    }
    let t = target(&sshd, &root);
    let pid = shell_pid(&t);
    let folder = String::from_utf8(t.run_script("echo \"$d\"").unwrap()).unwrap();
    let folder = std::path::PathBuf::from(folder.trim());
    assert_eq!(folder, root.join(format!(".holdfast-shell.{pid}")));
    assert!(!dead.exists(), "a dead shell's folder stayed");
    assert!(live.exists(), "a live process's folder was removed");
    t.close();
    let until = Instant::now() + Duration::from_secs(5);
    while folder.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!folder.exists(), "{folder:?} left");
}
