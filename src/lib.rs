//! swarm-upgrade: upgrade the Docker Engine of a Docker Swarm cluster, one
//! verified node at a time.
//!
//! ```text
//! cli (arguments) ─► cluster: inventory ─► connections (transport: SSH) ─► facts (host script + engine API)
//!                             └─► checks + hazards ─► plan                               (pure from here)
//!                  ─► launch: state dir, lock, lease ─► exec::runner (the run loop)
//!                                                       └─► exec::actions (one per step kind) ─► Ops
//!                                                       └─► events ─► journal (exec::rundir), ui,
//!                                                                     observe (--notify, --metrics-file)
//! ```
//! - [`facts`] is plain data; [`checks`] and [`plan`] are pure functions of it.
//! - [`cluster`] owns "inventory → connections → facts → checks → plan" for
//!   every command; `launch` starts, continues and reverts runs; the CLI only
//!   parses arguments and renders.
//! - [`exec`] runs a plan against anything that implements [`exec::ops::Ops`]:
//!   the live cluster (`cluster::live`), or the simulator (the
//!   `swarm-upgrade-sim` crate, for tests and benchmarks).
//!
//! Where things go:
//! - a new **action** (a kind of step): a module in `exec/actions/` that
//!   implements `Action` (it runs, and describes its operations for the dry
//!   run), a variant of [`plan::Action`], and the planner's step lists;
//!   `tests/actions.rs` then checks that it does what it describes;
//! - a new **check**: a module in `checks/` with one pure function of the
//!   facts, listed in `checks/mod.rs`, with its pass/warn/block tests beside it;
//! - a new **hazard** of one engine release: an entry in `hazards/*.yaml`
//!   (data, no Rust), with its detects / does-not-detect test in
//!   `hazards/tests.rs`;
//! - a new **upgrade method**: a playbook in `playbooks/` (shell scripts as
//!   data), compiled in by [`playbook`], chosen per host in `version::resolve`.

pub mod checks;
mod cli;
pub mod cluster;
mod engine;
pub mod error;
pub mod exec;
mod exit_code;
pub mod facts;
mod files;
pub mod hazards;
mod inventory;
mod launch;
pub mod observe;
pub mod plan;
pub mod playbook;
pub mod transport;
mod ui;
pub mod version;
pub mod window;

use clap::Parser;

use crate::exec::lease::Control;

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
        cli::Command::Check(args) => cli::check::run(args, cli.quiet),
        cli::Command::Plan(args) => cli::plan::run(args, cli.quiet),
        cli::Command::Apply(args) => cli::apply::apply(args, cli.quiet),
        cli::Command::Restart(args) => cli::apply::restart(args, cli.quiet),
        cli::Command::Resume(args) => cli::apply::resume(args, cli.quiet),
        cli::Command::Status(args) => cli::status::run(args),
        cli::Command::Rollback(args) => cli::apply::rollback(args, cli.quiet),
        cli::Command::Pause(args) => cli::control::run(args, Control::Pause),
        cli::Command::Continue(args) => cli::control::run(args, Control::Run),
        cli::Command::Abort(args) => cli::control::run(args, Control::Abort),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            error::exit_code_of(&err)
        }
    }
}
