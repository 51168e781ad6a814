//! A stop signal while the scheduler finishes its agents: the scheduler is started again
//! only once the one asked to stop is gone (the real `fo_scheduler` dies on its port beside
//! another). Its own test binary: the stop flag is process-wide and stays set.

use holdfast_sandbox::standin::{Behaviour, StandIn};
use holdfast_site::scheduler::{quiesce, Control};
use std::time::Duration;

#[test]
fn a_scheduler_asked_to_stop_is_not_started_beside_itself() {
    let dir = tempfile::tempdir().unwrap();
    let si = StandIn::create(
        dir.path(),
        &format!("{:x}d", std::process::id() % 0xfff),
        Behaviour {
            stop_delay_secs: 3,
            refuse_stop: false,
            agents: 1,
        },
    )
    .unwrap();
    si.start().unwrap();
    let schedulers = || {
        si.processes()
            .into_iter()
            .filter(|p| p.name == si.scheduler_name)
            .count()
    };
    assert_eq!(schedulers(), 1);
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(1));
        holdfast_core::interrupt::request();
    });
    let r = quiesce(&si.config_for(Control::Init, 30), None);
    assert!(r.is_err(), "the stop signal ends the wait");
    assert_eq!(
        schedulers(),
        1,
        "a second scheduler was started beside the first"
    );
    assert_eq!(si.starts(), 2);
    assert!(si.is_running());
}
