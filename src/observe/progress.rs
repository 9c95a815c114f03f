//! The run as an operator follows it from outside: the executor's step
//! events folded into the run's state, each node's state, and the
//! milestones worth telling someone (a node started, upgraded, failed,
//! rolled back; the run started or ended). Pure: the caller gives the
//! time, so notifications and metrics are testable to the byte.

use std::collections::BTreeMap;

use crate::exec::events::Event;
use crate::exec::state::{RunState, RunStatus, StepStatus};
use crate::facts::model::Role;
use crate::plan::{Action, Plan};

/// Upgrade run or rollback run (`swarm-upgrade rollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Upgrade,
    Rollback,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Upgrade => "upgrade",
            Kind::Rollback => "rollback",
        }
    }
}

/// Where a node stands in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Pending,
    Running,
    /// At the run's target and verified (upgraded, or reverted in a
    /// rollback run).
    Done,
    Failed,
    /// Its upgrade failed and was undone: its old engine runs again.
    RolledBack,
    /// Not part of the run: already at the target, not upgradable, or
    /// left out with `--skip-node`.
    Skipped,
}

impl NodeState {
    pub const ALL: [NodeState; 6] = [
        NodeState::Pending,
        NodeState::Running,
        NodeState::Done,
        NodeState::Failed,
        NodeState::RolledBack,
        NodeState::Skipped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NodeState::Pending => "pending",
            NodeState::Running => "running",
            NodeState::Done => "done",
            NodeState::Failed => "failed",
            NodeState::RolledBack => "rolled-back",
            NodeState::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodeProgress {
    pub name: String,
    pub role: Role,
    /// The engine version before the run.
    pub from: String,
    pub state: NodeState,
    /// When its first step ran in this process (seconds since the epoch).
    pub started_at: Option<f64>,
    /// How long its steps took, from its first step to its verification.
    pub seconds: Option<f64>,
}

/// A finished step's duration, for the metrics.
#[derive(Debug, Clone)]
pub struct StepTime {
    pub node: Option<String>,
    pub action: Action,
    pub seconds: f64,
}

/// Something worth telling an operator who is not watching the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Milestone {
    RunStarted {
        steps: usize,
        done: usize,
    },
    RunEnded {
        status: RunStatus,
        elapsed_ms: u64,
        /// Why it stopped, when it did not finish.
        reason: Option<String>,
    },
    NodeStarted {
        node: usize,
    },
    NodeDone {
        node: usize,
    },
    NodeFailed {
        node: usize,
        error: String,
    },
    NodeRolledBack {
        node: usize,
        ok: bool,
        detail: String,
    },
    /// Paused at a safe point (`swarm-upgrade pause`, or after the canary
    /// with `--pause-after-canary`): an operator is expected to act.
    RunPaused,
    RunContinued,
    /// No maintenance window is open: the next node waits for `opens_at`.
    WaitingForWindow {
        opens_at: String,
    },
}

/// Why a running run is not making progress, on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// For `swarm-upgrade continue` (or `abort`).
    Continue,
    /// For a maintenance window, which opens at this time.
    Window(String),
}

impl Waiting {
    pub fn name(&self) -> &'static str {
        match self {
            Waiting::Continue => "continue",
            Waiting::Window(_) => "window",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Progress {
    pub run_id: String,
    pub cluster_id: String,
    pub target: String,
    pub kind: Kind,
    pub nodes: Vec<NodeProgress>,
    /// `None` until the run starts.
    pub status: Option<RunStatus>,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub last_event_at: Option<f64>,
    pub steps_total: usize,
    pub steps_done: usize,
    /// Finished steps by plan index.
    pub step_times: BTreeMap<usize, StepTime>,
    /// What the run waits for at a safe point, if anything.
    pub waiting: Option<Waiting>,
    /// The last thing that went wrong, for the run's end.
    problem: Option<String>,
    /// Per node (index into `nodes`): the index of its last step in the plan.
    last_step: BTreeMap<usize, usize>,
}

impl Progress {
    /// The run about to execute `plan` from `state` (a resumed run starts
    /// with what is done), without the nodes left out by `skip_nodes`.
    pub fn new(plan: &Plan, state: &RunState, skip_nodes: &[String]) -> Progress {
        let mut nodes = vec![];
        let mut last_step = BTreeMap::new();
        for n in &plan.nodes {
            let steps: Vec<_> = plan
                .steps
                .iter()
                .filter(|s| s.node.as_deref() == Some(n.name.as_str()))
                .collect();
            let status = |a: Action| {
                steps
                    .iter()
                    .find(|s| s.action == a)
                    .map(|s| state.step(s.index).status)
            };
            let all_done = !steps.is_empty() && steps.iter().all(|s| state.done(s.index));
            let state_now = if steps.is_empty()
                || skip_nodes.contains(&n.name)
                || steps
                    .iter()
                    .any(|s| state.step(s.index).status == StepStatus::Skipped)
            {
                NodeState::Skipped
            } else if status(Action::Verify) == Some(StepStatus::Done) || all_done {
                NodeState::Done
            } else if steps
                .iter()
                .any(|s| state.step(s.index).status == StepStatus::Failed)
            {
                NodeState::Failed
            } else if state.rolled_back.contains(&n.name) {
                NodeState::RolledBack
            } else {
                NodeState::Pending
            };
            if let Some(last) = steps.last() {
                last_step.insert(nodes.len(), last.index);
            }
            nodes.push(NodeProgress {
                name: n.name.clone(),
                role: n.role,
                from: n.current.clone(),
                state: state_now,
                started_at: None,
                seconds: None,
            });
        }
        Progress {
            run_id: state.run_id.clone(),
            cluster_id: plan.cluster_id.clone(),
            target: plan
                .nodes
                .first()
                .filter(|_| plan.reverts_run.is_some())
                .map(|n| n.target.to_string())
                .unwrap_or_else(|| plan.target.to_string()),
            kind: if plan.reverts_run.is_some() {
                Kind::Rollback
            } else {
                Kind::Upgrade
            },
            nodes,
            status: None,
            started_at: None,
            finished_at: None,
            last_event_at: None,
            steps_total: plan.steps.len(),
            steps_done: state.count(StepStatus::Done),
            step_times: BTreeMap::new(),
            waiting: None,
            problem: None,
            last_step,
        }
    }

    fn node_of(&self, name: &Option<String>) -> Option<usize> {
        let name = name.as_deref()?;
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Folds `event`, seen at `now` (seconds since the epoch), into the
    /// progress; returns the milestones it makes.
    pub fn observe(&mut self, event: &Event, now: f64) -> Vec<Milestone> {
        let mut out = vec![];
        if !matches!(event, Event::StepOutput { .. }) {
            self.last_event_at = Some(now);
        }
        match event {
            Event::RunStarted { steps, done, .. } => {
                self.status = Some(RunStatus::Running);
                self.started_at = Some(now);
                self.finished_at = None;
                self.problem = None;
                self.steps_total = *steps;
                self.steps_done = *done;
                out.push(Milestone::RunStarted {
                    steps: *steps,
                    done: *done,
                });
            }
            Event::StepStarted { node, .. } => {
                self.waiting = None;
                if let Some(i) = self.node_of(node) {
                    let n = &mut self.nodes[i];
                    if matches!(
                        n.state,
                        NodeState::Pending | NodeState::Failed | NodeState::RolledBack
                    ) {
                        n.state = NodeState::Running;
                        n.started_at = Some(now);
                        n.seconds = None;
                        out.push(Milestone::NodeStarted { node: i });
                    }
                }
            }
            Event::StepFinished {
                index,
                node,
                action,
                elapsed_ms,
                ..
            } => {
                self.steps_done += 1;
                self.step_times.insert(
                    *index,
                    StepTime {
                        node: node.clone(),
                        action: *action,
                        seconds: *elapsed_ms as f64 / 1000.0,
                    },
                );
                if let Some(i) = self.node_of(node) {
                    // Upgraded once verified at the target; a node with no
                    // verify step (at the target already, only given its
                    // availability back) once its last step is done.
                    let last = self.last_step.get(&i) == Some(index);
                    let n = &mut self.nodes[i];
                    if n.state == NodeState::Running && (*action == Action::Verify || last) {
                        n.state = NodeState::Done;
                        n.seconds = n.started_at.map(|t| (now - t).max(0.0));
                        out.push(Milestone::NodeDone { node: i });
                    }
                }
            }
            Event::StepFailed {
                index,
                node,
                action,
                error,
            } => {
                self.problem = Some(format!(
                    "step {index} ({} {}) failed: {error}",
                    action.name(),
                    node.as_deref().unwrap_or("swarm")
                ));
                if let Some(i) = self.node_of(node)
                    && self.nodes[i].state != NodeState::Failed
                {
                    self.nodes[i].state = NodeState::Failed;
                    out.push(Milestone::NodeFailed {
                        node: i,
                        error: format!("{} failed: {error}", action.name()),
                    });
                }
            }
            Event::RollbackFinished { node, ok, detail } => {
                if let Some(i) = self.node_of(&Some(node.clone())) {
                    self.nodes[i].state = if *ok {
                        NodeState::RolledBack
                    } else {
                        NodeState::Failed
                    };
                    out.push(Milestone::NodeRolledBack {
                        node: i,
                        ok: *ok,
                        detail: detail.clone(),
                    });
                }
            }
            Event::StopRequested => {
                self.problem
                    .get_or_insert_with(|| "stop requested (Ctrl-C)".into());
            }
            Event::LeaseLost { reason } => {
                self.problem = Some(format!("the run lease was lost: {reason}"));
            }
            Event::RunFinished { status, elapsed_ms } => {
                self.status = Some(*status);
                self.waiting = None;
                self.finished_at = Some(now);
                // A node stopped in the middle (Ctrl-C, a lost host) is
                // neither done nor failed: it waits for `resume`.
                for n in &mut self.nodes {
                    if n.state == NodeState::Running {
                        n.state = NodeState::Pending;
                    }
                }
                out.push(Milestone::RunEnded {
                    status: *status,
                    elapsed_ms: *elapsed_ms,
                    reason: (*status != RunStatus::Done)
                        .then(|| self.problem.clone())
                        .flatten(),
                });
            }
            // Said once per wait: a run renews its lease while paused, and
            // the window check repeats until one opens.
            Event::Paused => {
                if self.waiting != Some(Waiting::Continue) {
                    self.waiting = Some(Waiting::Continue);
                    out.push(Milestone::RunPaused);
                }
            }
            Event::Continued => {
                self.waiting = None;
                out.push(Milestone::RunContinued);
            }
            Event::WaitingForWindow { opens_at } => {
                let w = Waiting::Window(opens_at.clone());
                if self.waiting.as_ref() != Some(&w) {
                    self.waiting = Some(w);
                    out.push(Milestone::WaitingForWindow {
                        opens_at: opens_at.clone(),
                    });
                }
            }
            Event::RollbackStarted { .. } | Event::StepOutput { .. } | Event::Traffic { .. } => {}
            Event::Aborted => {
                self.problem = Some("aborted with `swarm-upgrade abort`".into());
            }
        }
        out
    }
}
