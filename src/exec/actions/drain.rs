//! `drain`: the node's availability set to drain, with labels that record
//! the run and the availability to give back (so any machine can finish the
//! run). Asked of the quorum guard first: a drained manager is one step from
//! going down. In a parallel worker batch, drains go one at a time; each
//! first waits until the node's services can do without it
//! ([`super::drain_wait`]: replicas elsewhere, disruption budgets).

use super::{Action, StepResult, drain_wait};
use crate::exec::context::{Cx, StepCx, VIA_STALE};
use crate::exec::guard::{self, Expect};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::{NodeUpdate, Ops};
use crate::exec::{LABEL_AVAILABILITY, LABEL_RUN};
use crate::facts::model::Availability;
use crate::plan::{PlanNode, Step};

pub(crate) struct Drain;

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
        drain_wait::describe(cx, n, &drain_wait::conditions(cx, step), &mut d);
        d.extend(guard::describe(cx, n));
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        d.once(Operation::api(on, Call::UpdateNode(update(n, &cx.run_id))));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let n = s.node();
        // The gate keeps a batch's drains one at a time, each judged after
        // the previous one's tasks moved.
        let _one_at_a_time = if s.cx().batch_nodes(s.step).len() > 1 {
            Some(s.run.drain_gate.lock().await)
        } else {
            None
        };
        drain_wait::wait(s, &drain_wait::conditions(s.cx(), s.step)).await?;
        guard::check(s.run, n, Expect::Ready).await?;
        s.update_node(&update(n, &s.cx().run_id)).await?;
        Ok(None)
    }
}
