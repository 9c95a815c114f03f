//! Executing a plan: one verified step at a time, with checkpoints,
//! rollback and resume.
//!
//! ```text
//! runner (the run loop: batches, checkpoints, lease, stop requests)
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

pub(crate) mod actions;
pub(crate) mod context;
pub mod dry_run;
pub mod events;
pub(crate) mod guard;
pub mod lease;
pub mod operation;
pub mod ops;
pub mod poll;
pub mod rundir;
pub mod runner;
pub mod services;
pub mod state;
pub(crate) mod undo;
pub(crate) mod verify;
pub(crate) mod wait;

/// Node labels the run keeps in the swarm, so that progress survives the
/// machine that runs swarm-upgrade.
pub const LABEL_RUN: &str = "swarm-upgrade.run";
pub const LABEL_AVAILABILITY: &str = "swarm-upgrade.availability";
pub const LABEL_DONE: &str = "swarm-upgrade.done";

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
