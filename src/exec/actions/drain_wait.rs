//! What a drain waits for before it drains: the node's services must keep
//! running without it. A drain stops the node's tasks before they start
//! elsewhere, so the conditions are judged on the nodes that stay up: not
//! this node, and not a node of its batch drained already (in a batch, the
//! next drain waits for the previous one's tasks to run again).
//!
//! - [`Condition::Replicas`] (batches of two or more nodes): every service
//!   with two or more replicas that runs a task on the node also runs one
//!   elsewhere; two workers drained at the same instant can take a
//!   service's every replica down together.
//! - [`Condition::Budgets`] (issue 14): every service labelled with a
//!   disruption budget (`swarm-upgrade.min-available` / `max-unavailable`,
//!   [`crate::facts::budget`]) keeps it.
//!
//! One poll reads the node's services and their tasks once and judges every
//! condition, within the drain timeout; then the node is left untouched and
//! the run stops resumable.

use crate::exec::context::{Cx, StepCx, StepError, VIA_STALE};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::{Ops, Task};
use crate::exec::poll::{self, Attempt, Unmet};
use crate::exec::state::StepStatus;
use crate::exec::wait;
use crate::facts::budget;
use crate::facts::model::ServiceFacts;
use crate::plan::{self, PlanNode, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Condition {
    Replicas,
    Budgets,
}

impl Condition {
    /// What holds once the wait is over (the dry run's "until").
    fn holds(self) -> &'static str {
        match self {
            Condition::Replicas => {
                "every service of the node runs a replica on a node that stays up"
            }
            Condition::Budgets => {
                "the services of the node with a disruption budget keep it without the node"
            }
        }
    }

    /// Said once, when the first poll finds the condition unmet.
    fn waiting(self) -> &'static str {
        match self {
            Condition::Replicas => "waiting for replicas elsewhere before draining",
            Condition::Budgets => "waiting for disruption budgets before draining",
        }
    }

    /// The services that break the condition, given the running tasks of the
    /// node's services and the nodes going down.
    fn unmet(
        self,
        node_id: &str,
        services: &[ServiceFacts],
        tasks: &[Task],
        down: &[&str],
    ) -> Result<Vec<String>, StepError> {
        match self {
            Condition::Replicas => Ok(wait::last_replicas_on(services, tasks, node_id, down)),
            Condition::Budgets => {
                let mut short = vec![];
                for svc in services {
                    let b = match budget::of(svc) {
                        Ok(Some(b)) => b,
                        Ok(None) => continue,
                        Err(e) => return Err(StepError::Precondition(e)),
                    };
                    let staying = tasks
                        .iter()
                        .filter(|t| t.service_id == svc.id && t.state == "running")
                        .filter(|t| !down.contains(&t.node_id.as_str()))
                        .count() as u64;
                    if staying < b.min_running {
                        short.push(format!(
                            "{} ({staying} running elsewhere, budget {})",
                            svc.name, b.min_running
                        ));
                    }
                }
                Ok(short)
            }
        }
    }

    fn timed_out(self, cx: &Cx<'_>, services: &str) -> StepError {
        StepError::Precondition(match self {
            Condition::Replicas => {
                format!("draining this node now would stop every running replica of {services}")
            }
            Condition::Budgets => format!(
                "draining this node now would break the disruption budget of {services} (waited {}); \
                 scale the service up or lower its swarm-upgrade.* label, then resume",
                humantime::format_duration(cx.opts.drain_timeout)
            ),
        })
    }
}

/// The conditions the drain of `step` waits for.
pub(super) fn conditions(cx: &Cx<'_>, step: &Step) -> Vec<Condition> {
    let mut out = vec![];
    if cx.batch_nodes(step).len() > 1 {
        out.push(Condition::Replicas);
    }
    // Only when a service had a budget when the plan was made (a budget
    // added mid-run counts from the next run): otherwise nothing is asked.
    if cx
        .facts
        .cluster
        .services
        .iter()
        .any(|s| !matches!(budget::of(s), Ok(None)))
    {
        out.push(Condition::Budgets);
    }
    out
}

pub(super) fn describe(cx: &Cx<'_>, n: &PlanNode, conditions: &[Condition], d: &mut Description) {
    let on = cx.asked(Some(n));
    for c in conditions {
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        d.until(c.holds(), Operation::api(on.clone(), Call::NodeTasks));
        d.when(
            "the node runs tasks",
            Operation::api(on.clone(), Call::Services { all: false }),
        );
        d.when(
            "the node runs tasks",
            Operation::api(on.clone(), Call::Tasks { all: false }),
        );
    }
}

/// Waits until every condition holds; a precondition error (the node
/// untouched) naming the unmet one when the drain timeout passes first.
pub(super) async fn wait<O: Ops>(
    s: &StepCx<'_, '_, O>,
    conditions: &[Condition],
) -> Result<(), StepError> {
    if conditions.is_empty() {
        return Ok(());
    }
    let node_id = s.id();
    let mut said: Vec<Condition> = vec![];
    let mut last: Option<Condition> = None;
    let result = poll::until(s.cx().opts.drain_timeout, async || {
        let down = drained_in_batch(s).await;
        let via = match s.via_last().await {
            Ok(v) => v,
            Err(e) => return Attempt::Fail(e),
        };
        let (services, tasks) = match services_on(s.ops(), &via, node_id).await {
            Ok(x) => x,
            Err(e) => {
                s.forget_via();
                return Attempt::NotYet(format!("{e:#}"));
            }
        };
        for &c in conditions {
            let unmet = match c.unmet(node_id, &services, &tasks, &down) {
                Ok(u) => u,
                Err(e) => return Attempt::Fail(e),
            };
            if unmet.is_empty() {
                continue;
            }
            last = Some(c);
            if !said.contains(&c) {
                said.push(c);
                s.output(format!("{}: {}", c.waiting(), unmet.join(", ")))
                    .await;
            }
            return Attempt::NotYet(unmet.join(", "));
        }
        Attempt::Done(())
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(Unmet::Failed(e)) => Err(e),
        // The services of the condition last unmet; a swarm that never
        // answered is the first condition's failure, as a drain would be.
        Err(Unmet::TimedOut(services)) => {
            Err(last.unwrap_or(conditions[0]).timed_out(s.cx(), &services))
        }
    }
}

/// This node and the nodes of its batch that are drained and not yet given
/// their availability back.
async fn drained_in_batch<'a, O: Ops>(s: &StepCx<'_, 'a, O>) -> Vec<&'a str> {
    let cx = s.cx();
    let st = s.run.state.lock().await;
    let drained = |id: &str| {
        let status = |a: plan::Action| {
            cx.steps_of(id)
                .iter()
                .find(|x| x.action == a)
                .map(|x| st.step(x.index).status)
        };
        status(plan::Action::Drain) == Some(StepStatus::Done)
            && status(plan::Action::RestoreAvailability) != Some(StepStatus::Done)
    };
    cx.batch_nodes(s.step)
        .iter()
        .copied()
        .filter(|id| *id == s.id() || drained(id))
        .collect()
}

/// The services with a running task on the node, and every running task of
/// theirs: three narrow requests rather than the whole swarm's tasks.
async fn services_on<O: Ops>(
    ops: &O,
    via: &str,
    node_id: &str,
) -> anyhow::Result<(Vec<ServiceFacts>, Vec<Task>)> {
    let mut ids: Vec<String> = ops
        .node_tasks(via, node_id)
        .await?
        .into_iter()
        .filter(|t| t.state == "running")
        .map(|t| t.service_id)
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok((vec![], vec![]));
    }
    let services = ops.services(via, Some(&ids)).await?;
    let tasks = ops.tasks(via, Some(&ids)).await?;
    Ok((services, tasks))
}
