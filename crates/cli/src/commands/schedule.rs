use crate::config::Context;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Not built yet.
    Todo,
}

pub fn run(_cmd: Cmd, _ctx: &Context) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this command is not built yet")
}
