//! Stopping and starting the scheduler the ways FOSSology ships it (init script,
//! `fossology.service`, `fo_scheduler` run directly as in Docker): graceful first, the kill
//! path only after the timeout, and the scheduler left as it was found.

use holdfast_sandbox::standin::{Behaviour, StandIn};
use holdfast_site::scheduler::{quiesce, Control};
use std::time::{Duration, Instant};

fn standin(n: u32, stop_delay_secs: u32) -> (tempfile::TempDir, StandIn) {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("{:x}c{n}", std::process::id() % 0xfff);
    let si = StandIn::create(
        dir.path(),
        &tag,
        Behaviour {
            stop_delay_secs,
            refuse_stop: false,
            agents: 2,
        },
    )
    .unwrap();
    (dir, si)
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn init_script_graceful_stop_waits_for_the_agents_and_start_brings_it_back() {
    let (_d, si) = standin(1, 2);
    si.start().unwrap();
    let began = Instant::now();
    let q = quiesce(&si.config_for(Control::Init, 30), None).unwrap();
    assert!(
        began.elapsed() >= Duration::from_millis(1900),
        "agents not waited for"
    );
    assert!(!si.is_running());
    assert_eq!(si.requests(), vec!["--shutdown"], "graceful only");
    assert!(q.report.was_running && !q.report.killed);
    q.restart().unwrap();
    assert!(si.is_running());
    assert_eq!(si.starts(), 2);
    assert_eq!(
        si.args(),
        "--reset --verbose=1",
        "started as the init script starts it"
    );
}

#[test]
fn systemd_unit_is_stopped_gracefully_and_started_by_systemctl() {
    let (_d, si) = standin(2, 1);
    si.start().unwrap();
    let cfg = si.config_for(Control::Systemd, 30);
    let q = quiesce(&cfg, None).unwrap();
    assert!(!si.is_running());
    assert_eq!(si.requests(), vec!["--shutdown"]);
    drop(q); // every way out starts it again
    assert!(si.is_running());
    assert!(
        si.systemctl_calls()
            .contains(&"start fossology.service".to_string()),
        "{:?}",
        si.systemctl_calls()
    );
    assert_eq!(
        cfg.start_hint(),
        format!("{} start fossology.service", cfg.systemctl)
    );
}

#[test]
fn a_docker_style_scheduler_is_asked_directly_and_restarted_with_its_command_line() {
    let (_d, si) = standin(3, 1);
    si.start_direct(&["--log", "/dev/stdout", "--verbose=3", "--reset"])
        .unwrap();
    let q = quiesce(&si.config_for(Control::Direct, 30), None).unwrap();
    assert!(!si.is_running());
    assert_eq!(si.requests(), vec!["--shutdown"]);
    q.restart().unwrap();
    wait_until("restarted", || si.is_running());
    assert_eq!(si.starts(), 2);
    assert_eq!(si.args(), "--log /dev/stdout --verbose=3 --reset");
    assert!(
        si.processes().iter().any(|p| p.name == si.scheduler_name),
        "runs under its own name again: {:?}",
        si.processes()
    );
}

#[test]
fn the_kill_path_is_used_only_after_the_graceful_timeout() {
    // The agents would take a minute to finish; the graceful stop gets 2 s.
    let (_d, si) = standin(4, 60);
    si.start().unwrap();
    let began = Instant::now();
    let q = quiesce(&si.config_for(Control::Init, 2), None).unwrap();
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "killed before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(20),
        "waited for the agents: {took:?}"
    );
    assert_eq!(si.requests(), vec!["--shutdown", "--kill"]);
    assert!(q.report.killed);
    assert!(!si.is_running());
    q.restart().unwrap();
    assert!(si.is_running());
}

#[test]
fn a_scheduler_the_operator_stopped_stays_stopped() {
    for control in [Control::Init, Control::Systemd, Control::Direct] {
        let (_d, si) = standin(5, 0);
        si.start().unwrap();
        let init = si.dir.join("init.d/fossology");
        let st = std::process::Command::new(init)
            .arg("graceful-stop")
            .status()
            .unwrap();
        assert!(st.success());
        wait_until("operator's stop", || !si.is_running());
        let cfg = si.config_for(control, 30);
        let q = quiesce(&cfg, None).unwrap();
        assert!(!q.report.was_running, "{control:?}");
        assert_eq!(si.requests().len(), 1, "{control:?}: nothing more asked");
        q.restart().unwrap();
        drop(quiesce(&cfg, None).unwrap());
        assert!(!si.is_running(), "{control:?}: started by holdfast");
        assert_eq!(si.starts(), 1, "{control:?}");
    }
}

#[test]
fn a_scheduler_a_dead_run_left_stopped_is_started_by_the_next_run() {
    for control in [Control::Init, Control::Direct] {
        let (_d, si) = standin(6, 0);
        match control {
            Control::Direct => si.start_direct(&["--reset", "--verbose=2"]).unwrap(),
            _ => si.start().unwrap(),
        }
        let cfg = si.config_for(control, 30);
        // A run stops the scheduler and dies without starting it again.
        std::mem::forget(quiesce(&cfg, None).unwrap());
        assert!(!si.is_running());
        let q = quiesce(&cfg, None)
            .unwrap_or_else(|e| panic!("{control:?}: {e}: {:?}", si.processes()));
        assert!(q.report.was_running, "{control:?}");
        assert_eq!(si.requests().len(), 1, "{control:?}: nothing to stop");
        q.restart().unwrap();
        wait_until("started again", || si.is_running());
        if control == Control::Direct {
            assert_eq!(si.args(), "--reset --verbose=2", "as it ran before");
        }
        // The next run stops it and starts it again as usual.
        drop(quiesce(&cfg, None).unwrap());
        assert!(si.is_running());
    }
}

#[test]
fn a_run_killed_while_starting_the_scheduler_again_leaves_one_scheduler_not_two() {
    let (_d, si) = standin(7, 0);
    si.start().unwrap();
    let cfg = si.config_for(Control::Init, 2);
    // A run stops the scheduler, then dies while starting it again: that start is still
    // under way (no process under the scheduler's name yet) when the next command looks.
    std::mem::forget(quiesce(&cfg, None).unwrap());
    assert!(!si.is_running());
    let late_start = std::thread::spawn({
        let init = si.dir.join("init.d/fossology");
        move || {
            std::thread::sleep(Duration::from_millis(50));
            std::process::Command::new(init)
                .arg("start")
                .status()
                .unwrap()
        }
    });
    holdfast_site::scheduler::resume_stopped(&cfg).unwrap();
    assert!(late_start.join().unwrap().success());
    wait_until("running", || si.is_running());
    std::thread::sleep(Duration::from_millis(500));
    let schedulers = si
        .processes()
        .into_iter()
        .filter(|p| p.name == si.scheduler_name)
        .count();
    assert_eq!(schedulers, 1, "{:?}", si.processes());
    assert_eq!(
        si.starts(),
        2,
        "the first start and the dead run's, none more"
    );
}

/// A start command that exits 0 proves nothing (systemd's `start` of the unit it generated
/// from FOSSology's init script does nothing while the unit is "active (exited)"): the
/// restart reports that no scheduler came up, and the note stays for the next run.
#[test]
fn a_start_that_starts_nothing_is_an_error_and_the_next_run_starts_it() {
    let (_d, si) = standin(8, 0);
    si.start().unwrap();
    let mut cfg = si.config(30);
    let real_start = std::mem::replace(&mut cfg.start_command, vec!["true".into()]);
    let q = quiesce(&cfg, None).unwrap();
    assert!(!si.is_running());
    let e = q.restart().unwrap_err().to_string();
    assert!(e.contains("did not start"), "{e}");
    assert!(!si.is_running());
    cfg.start_command = real_start;
    let said = holdfast_site::scheduler::resume_stopped(&cfg).unwrap();
    assert!(said.is_some_and(|s| s.contains("started")));
    assert!(si.is_running());
}
