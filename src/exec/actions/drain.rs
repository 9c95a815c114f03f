//! `drain`: the node's availability set to drain, with labels that record
//! the run and the availability to give back (so any machine can finish the
//! run). Asked of the quorum guard first: a drained manager is one step from
//! going down. In a parallel worker batch, drains go one at a time, each
//! after every service of the node has a replica running elsewhere: two
//! workers drained at the same instant can take a service's every replica
//! down together.

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::guard::{self, Expect};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::{NodeUpdate, Ops, Task};
use crate::exec::poll::{self, Attempt, Unmet};
use crate::exec::state::StepStatus;
use crate::exec::wait;
use crate::exec::{LABEL_AVAILABILITY, LABEL_RUN};
use crate::facts::model::{Availability, ServiceFacts};
use crate::plan::{self, PlanNode, Step};

pub(crate) struct Drain;

const ELSEWHERE: &str = "every service of the node runs a replica on a node that stays up";

/// The update that drains `n` for run `run_id`.
pub(crate) fn update(n: &PlanNode, run_id: &str) -> NodeUpdate {
    NodeUpdate {
        availability: Some(Availability::Drain),
        add_labels: vec![
            (LABEL_RUN.into(), run_id.to_string()),
            (LABEL_AVAILABILITY.into(), n.availability.name().into()),
        ],
        remove_labels: vec![],
    }
}

impl Action for Drain {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = Description::default();
        let Some(n) = cx.node_of(step) else {
            return d;
        };
        let on = cx.asked(Some(n));
        if cx.batch_nodes(step).len() > 1 {
            d.until(ELSEWHERE, Operation::api(on.clone(), Call::Info));
            d.until(ELSEWHERE, Operation::api(on.clone(), Call::NodeTasks));
            d.when(
                "the node runs tasks",
                Operation::api(on.clone(), Call::Services { all: false }),
            );
            d.when(
                "the node runs tasks",
                Operation::api(on.clone(), Call::Tasks { all: false }),
            );
        }
        super::drain_budget::describe(cx, n, &mut d);
        d.extend(guard::describe(cx, n));
        d.once(Operation::api(on.clone(), Call::Info));
        d.once(Operation::api(on, Call::UpdateNode(update(n, &cx.run_id))));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let n = s.node();
        let _one_at_a_time = if s.cx().batch_nodes(s.step).len() > 1 {
            let gate = s.run.drain_gate.lock().await;
            replicas_elsewhere(s).await?;
            Some(gate)
        } else {
            None
        };
        super::drain_budget::wait(s).await?;
        guard::check(s.run, n, Expect::Ready).await?;
        let via = s.via().await?;
        s.ops()
            .update_node(&via, &n.id, &update(n, &s.cx().run_id))
            .await
            .map_err(StepError::failed)?;
        Ok(None)
    }
}

/// Waits until every service with two or more replicas that runs a task on
/// the node also has a running task on a node that stays up: not this node,
/// and not a node of the batch that is drained already. A single-replica
/// service has no other replica to wait for (drain-feasibility warns about
/// its downtime).
async fn replicas_elsewhere<O: Ops>(s: &StepCx<'_, '_, O>) -> Result<(), StepError> {
    let node_id = s.id();
    let mut reported = false;
    let result = poll::until(s.cx().opts.drain_timeout, async || {
        let down = drained_in_batch(s).await;
        let via = match s.via().await {
            Ok(v) => v,
            Err(e) => return Attempt::Fail(e),
        };
        let lonely = match services_on(s.ops(), &via, node_id).await {
            Ok((services, tasks)) => wait::last_replicas_on(&services, &tasks, node_id, &down),
            Err(e) => vec![format!("{e:#}")],
        };
        if lonely.is_empty() {
            return Attempt::Done(());
        }
        if !reported {
            reported = true;
            s.output(format!(
                "waiting for replicas elsewhere before draining: {}",
                lonely.join(", ")
            ))
            .await;
        }
        Attempt::NotYet(lonely.join(", "))
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(Unmet::Failed(e)) => Err(e),
        Err(Unmet::TimedOut(lonely)) => Err(StepError::Precondition(format!(
            "draining this node now would stop every running replica of {lonely}"
        ))),
    }
}

/// This node and the nodes of its batch that are drained and not yet given
/// their availability back.
pub(super) async fn drained_in_batch<'a, O: Ops>(s: &StepCx<'_, 'a, O>) -> Vec<&'a str> {
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
pub(super) async fn services_on<O: Ops>(
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
