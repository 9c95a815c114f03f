//! `verify`: the restarted node verified at its target (see
//! [`crate::exec::verify`]), then labelled as done with that version.

use super::{Action, StepResult};
use crate::exec::LABEL_DONE;
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::{NodeUpdate, Ops};
use crate::exec::verify;
use crate::plan::{PlanNode, Step};

pub(crate) struct Verify;

fn done_label(n: &PlanNode) -> NodeUpdate {
    NodeUpdate {
        add_labels: vec![(LABEL_DONE.into(), n.target.to_string())],
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
        d.once(Operation::api(on.clone(), Call::Info));
        d.once(Operation::api(on, Call::UpdateNode(done_label(n))));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        // The node's own target: a rollback plan verifies old versions.
        let n = s.node();
        let polled = verify::verify(s.run, s.step, n, &n.target).await?;
        let via = s.via().await?;
        s.ops()
            .update_node(&via, &n.id, &done_label(n))
            .await
            .map_err(StepError::failed)?;
        Ok(Some(polled))
    }
}
