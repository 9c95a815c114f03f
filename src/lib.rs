//! swarm-upgrade: upgrade the Docker Engine of a Docker Swarm cluster, one
//! verified node at a time.
//!
//! ```text
//! inventory ──► transport (SSH) ──► facts ──► checks ──► plan ──► (apply)
//!                    └─► engine (Engine API over an SSH-forwarded socket) ─┘
//! ```
//! Facts are plain data; checks and the planner are pure functions of them.

pub mod checks;
mod cli;
pub mod cluster;
mod engine;
pub mod error;
pub mod exec;
mod exit_code;
pub mod facts;
mod files;
mod inventory;
mod launch;
pub mod plan;
pub mod playbook;
pub mod transport;
mod ui;
pub mod version;

use clap::Parser;

/// Parses arguments, runs the command, prints errors; returns the exit code.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::SUCCESS
            };
        }
    };
    let result = match &cli.command {
        cli::Command::Plan(args) => cli::plan::run(args, cli.quiet),
        cli::Command::Apply(args) => cli::apply::apply(args, cli.quiet),
        cli::Command::Resume(args) => cli::apply::resume(args, cli.quiet),
        cli::Command::Status(args) => cli::status::run(args),
        cli::Command::Rollback(args) => cli::apply::rollback(args, cli.quiet),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            error::exit_code_of(&err)
        }
    }
}
