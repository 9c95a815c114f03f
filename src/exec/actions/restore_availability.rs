//! `restore-availability`: the availability the node had before the run,
//! and the run's labels removed. Managers get theirs back only once every
//! manager is verified (the plan's order).

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, VIA_STALE};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::{NodeUpdate, Ops};
use crate::exec::{LABEL_AVAILABILITY, LABEL_RUN};
use crate::plan::{PlanNode, Step};

pub(crate) struct RestoreAvailability;

/// The update that gives `n` its availability from before the run back.
pub(crate) fn update(n: &PlanNode) -> NodeUpdate {
    NodeUpdate {
        availability: Some(n.availability),
        add_labels: vec![],
        remove_labels: vec![LABEL_RUN.into(), LABEL_AVAILABILITY.into()],
    }
}

impl Action for RestoreAvailability {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = Description::default();
        let Some(n) = cx.node_of(step) else {
            return d;
        };
        let on = cx.asked(Some(n));
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        d.once(Operation::api(on, Call::UpdateNode(update(n))));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let n = s.node();
        s.update_node(&update(n)).await?;
        Ok(None)
    }
}
