//! The disruption-budget wait of `drain` (issue 14): before a node is
//! drained, every service of the node labelled with a budget
//! (`swarm-upgrade.min-available` / `max-unavailable`,
//! [`crate::facts::budget`]) must keep at least its budget running on the
//! nodes that stay up: not this node, and not a node of its batch drained
//! already. A drain stops the node's tasks before they start elsewhere, so
//! in a batch the next drain waits for the previous one's tasks to run
//! again. Within the drain timeout; then the node is left untouched and the
//! run stops resumable.

use super::drain::{drained_in_batch, services_on};
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::Ops;
use crate::exec::poll::{self, Attempt, Unmet};
use crate::facts::budget;
use crate::plan::PlanNode;

const HOLDS: &str = "the services of the node with a disruption budget keep it without the node";

/// Whether any service had a budget when the plan was made: only then is
/// the swarm asked (a budget added mid-run counts from the next run).
pub(super) fn any(cx: &Cx<'_>) -> bool {
    cx.facts
        .cluster
        .services
        .iter()
        .any(|s| !matches!(budget::of(s), Ok(None)))
}

pub(super) fn describe(cx: &Cx<'_>, n: &PlanNode, d: &mut Description) {
    if !any(cx) {
        return;
    }
    let on = cx.asked(Some(n));
    d.until(HOLDS, Operation::api(on.clone(), Call::Info));
    d.until(HOLDS, Operation::api(on.clone(), Call::NodeTasks));
    d.when(
        "the node runs tasks",
        Operation::api(on.clone(), Call::Services { all: false }),
    );
    d.when(
        "the node runs tasks",
        Operation::api(on, Call::Tasks { all: false }),
    );
}

/// Waits until draining the node keeps every budget; a precondition error
/// (the node untouched) when the drain timeout passes first.
pub(super) async fn wait<O: Ops>(s: &StepCx<'_, '_, O>) -> Result<(), StepError> {
    if !any(s.cx()) {
        return Ok(());
    }
    let node_id = s.id();
    let mut reported = false;
    let result = poll::until(s.cx().opts.drain_timeout, async || {
        let down = drained_in_batch(s).await;
        let via = match s.via().await {
            Ok(v) => v,
            Err(e) => return Attempt::Fail(e),
        };
        let (services, tasks) = match services_on(s.ops(), &via, node_id).await {
            Ok(x) => x,
            Err(e) => return Attempt::NotYet(format!("{e:#}")),
        };
        let mut short = vec![];
        for svc in &services {
            let b = match budget::of(svc) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => return Attempt::Fail(StepError::Precondition(e)),
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
        if short.is_empty() {
            return Attempt::Done(());
        }
        if !reported {
            reported = true;
            s.output(format!(
                "waiting for disruption budgets before draining: {}",
                short.join(", ")
            ))
            .await;
        }
        Attempt::NotYet(short.join(", "))
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(Unmet::Failed(e)) => Err(e),
        Err(Unmet::TimedOut(short)) => Err(StepError::Precondition(format!(
            "draining this node now would break the disruption budget of {short} (waited {}); \
             scale the service up or lower its swarm-upgrade.* label, then resume",
            humantime::format_duration(s.cx().opts.drain_timeout)
        ))),
    }
}
