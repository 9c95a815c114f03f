//! What the executor reports. The executor never prints: it emits events;
//! the journal stores them and the UI (bars, plain lines, JSON) shows them.

use serde::Serialize;

use crate::plan::{Action, Step};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    RunStarted {
        run_id: String,
        steps: usize,
        /// Steps already done (a resumed run).
        done: usize,
    },
    StepStarted {
        index: usize,
        node: Option<String>,
        action: Action,
    },
    /// Output or progress of a step worth keeping (script output, waits).
    StepOutput {
        index: usize,
        node: Option<String>,
        text: String,
    },
    StepFinished {
        index: usize,
        node: Option<String>,
        action: Action,
        elapsed_ms: u64,
        /// For a wait: the sleep before the poll that saw the change, so
        /// (with that poll's answer time) at most how late it saw it;
        /// absent when the first poll already saw it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detect_ms: Option<u64>,
        /// For a wait: how long the poll that saw the change took (long when
        /// a request waited for the change itself, e.g. an engine starting).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_poll_ms: Option<u64>,
    },
    StepFailed {
        index: usize,
        node: Option<String>,
        action: Action,
        error: String,
    },
    RollbackStarted {
        node: String,
        reason: String,
    },
    RollbackFinished {
        node: String,
        ok: bool,
        detail: String,
    },
    /// A stop was requested; the run stops at the next safe point.
    StopRequested,
    /// The run's lease is no longer its own: it stops at the next safe point.
    LeaseLost {
        reason: String,
    },
    /// `swarm-upgrade pause` marked the run's lease: it waits at this safe
    /// point (no engine down), renewing its lease, until `continue`.
    Paused,
    /// `swarm-upgrade continue`: the paused run goes on.
    Continued,
    /// `swarm-upgrade abort`: the run stops at this safe point, resumable.
    Aborted,
    /// No maintenance window is open: the next node starts when one opens.
    WaitingForWindow {
        opens_at: String,
    },
    /// What the run cost in remote round trips, per host (recorded just
    /// before `run-finished`; `bench lab` reports it).
    Traffic {
        hosts: std::collections::BTreeMap<String, crate::exec::ops::Traffic>,
    },
    RunFinished {
        status: crate::exec::state::RunStatus,
        elapsed_ms: u64,
    },
}

impl Event {
    pub fn step_started(step: &Step) -> Event {
        Event::StepStarted {
            index: step.index,
            node: step.node.clone(),
            action: step.action,
        }
    }
}

/// A journal line: the event plus when and in which run.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub ts: String,
    pub run_id: &'a str,
    #[serde(flatten)]
    pub event: &'a Event,
}
