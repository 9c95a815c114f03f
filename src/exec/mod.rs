//! Executing a plan: one verified step at a time, with checkpoints,
//! rollback and resume.
//!
//! ```text
//! runner (the run loop: batches, checkpoints, stop requests)
//!   └─ heartbeat (the lease: every batch boundary, and every TTL/3 in the background)
//!   └─ actions/<one per step kind>  ──►  ops::Ops  (live cluster, or the simulator)
//!        ├─ guard   (quorum, asked live before a manager goes down)
//!        ├─ verify  (V1–V4 after a restart)
//!        └─ poll    (every wait)
//!   └─ undo (a failed node brought back: its actions' scripts, verify, availability)
//! events ──► rundir (journal, state) and the UI
//! ```
//! Each action also describes what it does as [`operation::Operation`]s:
//! `--dry-run` prints them ([`dry_run`]), and the tests compare them with
//! what the actions really do.
//!
//! # Invariants
//!
//! What every path of the executor keeps (README, "What swarm-upgrade
//! promises"). `tests/fault_matrix.rs` checks them after every event of
//! every simulated run, with every fault at every step of the plans.
//! - **I1** The tool never stops a manager's engine unless the live quorum
//!   guard ([`guard`]) says quorum survives it, on every path: the stop step,
//!   verify's one engine restart, the undo of a failed node, the rollback
//!   plan, a resumed run. Otherwise the run stops with that engine running.
//! - **I2** When a run stops, for any reason and any exit code, every node
//!   it drained has its original availability back, or carries the labels
//!   [`LABEL_RUN`] and [`LABEL_AVAILABILITY`] (set in the same update as the
//!   drain), from which the next `apply`/`resume`, from any machine, gives
//!   it back.
//! - **I3** A command that was not delivered (a transport error) is a
//!   precondition failure: nothing happened, nothing is rolled back
//!   (`StepError::Halt`); the run stops resumable (exit 6) and the step runs
//!   again once the host is reachable. SSH masters that died are
//!   re-established (same options, strict host keys) before the next command;
//!   a command cut while it ran is sent again by the transport (every command
//!   of ours can run twice), a hook (`Cmd::at_most_once`) is not: its
//!   transport error halts here like one not delivered.
//! - **I4** `--dry-run` changes nothing: it only renders the actions'
//!   descriptions ([`dry_run`] takes no [`ops::Ops`]).
//! - **I5** One live run per swarm: the lease is renewed at every batch
//!   boundary and every TTL/3 while a batch runs; a run whose lease is
//!   another's or gone takes no further node down and stops at its next
//!   safe point (exit 6), the reason journaled (`lease-lost`).
//! - **I6** Every command reaches the host of the swarm node it is meant for
//!   (commands name nodes by swarm node ID; see `cluster` for how hosts are
//!   matched to nodes).

pub(crate) mod actions;
pub mod boot;
pub(crate) mod context;
mod control;
pub mod dry_run;
pub mod events;
pub(crate) mod guard;
mod heartbeat;
pub mod lease;
pub mod operation;
pub mod ops;
pub mod poll;
pub mod rundir;
pub mod runner;
pub mod services;
mod skip;
pub mod state;
pub(crate) mod undo;
pub(crate) mod verify;
pub(crate) mod wait;

/// Node labels the run keeps in the swarm, so that progress survives the
/// machine that runs swarm-upgrade.
pub const LABEL_RUN: &str = "swarm-upgrade.run";
pub const LABEL_AVAILABILITY: &str = "swarm-upgrade.availability";
pub const LABEL_DONE: &str = "swarm-upgrade.done";
/// Set with [`LABEL_DONE`] by a restart run: the run that restarted the
/// node. A restart planned from the swarm alone (another machine) gives a
/// node drained by that same run its availability back without taking it
/// down again (its version, unlike an upgrade's, cannot tell).
pub const LABEL_RESTARTED: &str = "swarm-upgrade.restarted";

/// The `name=version` lines a playbook prints last, without apt's chatter.
pub(crate) fn package_lines(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| l.contains('=') && !l.contains(' '))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
