//! For benchmarks (bench/downtime.py): starts the scheduler stand-in with busy agents for the
//! FOSSology site whose configuration is in CONF_DIR, and leaves it running.
//!
//! Usage: busy_standin DIR TAG CONF_DIR [AGENTS]
//! Prints the holdfast.toml `[scheduler]` lines that drive it. Stop it with `DIR/stop`.

use holdfast_sandbox::standin::{Behaviour, StandIn};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        anyhow::bail!("usage: busy_standin DIR TAG CONF_DIR [AGENTS]");
    }
    let agents = args.get(4).map(|a| a.parse()).transpose()?.unwrap_or(2);
    let site = holdfast_site::Site::open(Some(std::path::Path::new(&args[3])))?;
    let s = StandIn::create(
        std::path::Path::new(&args[1]),
        &args[2],
        Behaviour {
            stop_delay_secs: 1,
            refuse_stop: false,
            agents,
        },
    )?;
    s.set_work(&holdfast_sandbox::busy::work_script(&site, &s.dir)?)?;
    s.start()?;
    let q = |p: std::path::PathBuf| format!("{:?}", p.display().to_string());
    println!(
        "[scheduler]\nstop_command = [{}]\nstart_command = [{}]\nkill_command = [{}, \"--kill\"]\nprocess_names = [{:?}, {:?}]\nstate_dir = {}",
        q(s.dir.join("stop")),
        q(s.dir.join("start")),
        q(s.dir.join(&s.scheduler_name)),
        s.scheduler_name,
        s.agent_name,
        q(s.dir.clone())
    );
    // Keep it running after this program ends.
    std::mem::forget(s);
    Ok(())
}
