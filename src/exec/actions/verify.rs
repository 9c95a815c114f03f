//! `verify`: the restarted node verified at its target (see
//! [`crate::exec::verify`]), then labelled as done with that version.

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, VIA_STALE};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::{NodeUpdate, Ops};
use crate::exec::verify;
use crate::exec::{LABEL_DONE, LABEL_RESTARTED};
use crate::plan::{PlanNode, Step};

pub(crate) struct Verify;

fn done_label(cx: &Cx<'_>, n: &PlanNode) -> NodeUpdate {
    let mut add_labels = vec![(LABEL_DONE.into(), n.target.to_string())];
    if !cx.plan.operation.is_upgrade() {
        add_labels.push((LABEL_RESTARTED.into(), cx.run_id.clone()));
    }
    NodeUpdate {
        add_labels,
        ..Default::default()
    }
}

impl Action for Verify {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = Description::default();
        let Some(n) = cx.node_of(step) else {
            return d;
        };
        d.extend(verify::describe(cx, n));
        let on = cx.asked(Some(n));
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        d.once(Operation::api(on, Call::UpdateNode(done_label(cx, n))));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        // The node's own target: a rollback plan verifies old versions.
        let n = s.node();
        let polled = verify::verify(s.run, s.step, n, &n.target).await?;
        s.update_node(&done_label(s.cx(), n)).await?;
        Ok(Some(polled))
    }
}
