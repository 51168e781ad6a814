//! `holdfast server ...`: the backup server side. `check` lives in `server_check.rs`.

use crate::config::Context;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Run the warning checks (quota, schedule, unsuccessful, upgrade, nobackup) and mail them.
    Check(super::server_check::Args),
}

pub fn run(cmd: Cmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Check(a) => super::server_check::run(a, ctx),
    }
}
