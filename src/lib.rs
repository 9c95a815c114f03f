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
pub mod hooks;
mod inventory;
mod launch;
mod logging;
pub mod observe;
pub mod plan;
pub mod playbook;
mod report;
pub mod transport;
mod ui;
pub mod version;
pub mod window;

use clap::Parser;

use crate::exec::lease::Control;

/// Parses arguments, runs the command, prints errors; returns the exit code.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && report::json_requested(&args) => {
            let err = error::usage(e.render().to_string().trim_end().to_string());
            report::print_error(&err, true);
            return exit_code::USAGE;
        }
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::SUCCESS
            };
        }
    };
    let json = cli.command.output() == cli::Output::Json;
    if let Err(err) = logging::init(cli.verbose, cli.quiet, cli.log_file.as_deref()) {
        report::print_error(&err, json);
        return error::exit_code_of(&err);
    }
    tracing::debug!(
        version = env!("CARGO_PKG_VERSION"),
        command = cli.command.name(),
        "start"
    );
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
        cli::Command::Completions(args) => cli::docs::completions(args),
        cli::Command::Man => cli::docs::man(),
    };
    match result {
        Ok(code) => {
            tracing::debug!(exit_code = code, "done");
            code
        }
        Err(err) => {
            let code = error::exit_code_of(&err);
            tracing::debug!(exit_code = code, "failed: {err:#}");
            // `plan` and `check` print one JSON document, which already says
            // that it is blocked: a second document would break its readers.
            let reported = code == exit_code::BLOCKED
                && matches!(cli.command, cli::Command::Plan(_) | cli::Command::Check(_));
            report::print_error(&err, json && !reported);
            code
        }
    }
}
