//! `stop-engine`: the quorum guard, asked again right before the engine
//! goes down, then the playbook's stop script (systemd: the socket too, or
//! any API call would start the old engine again mid-swap).

use super::{Action, StepResult, script};
use crate::exec::context::{Cx, StepCx};
use crate::exec::guard::{self, Expect};
use crate::exec::operation::Description;
use crate::exec::ops::Ops;
use crate::plan::Step;
use crate::playbook::Script;

pub(crate) struct StopEngine;

impl Action for StopEngine {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = Description::default();
        if let Some(n) = cx.node_of(step) {
            d.extend(guard::describe(cx, n));
        }
        d.extend(script(cx, step, Script::Stop));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        // Resumed after a crash in this very step, the engine may be down
        // already: that is ours, not a reason to stop.
        guard::check(s.run, s.node(), Expect::MayBeDown).await?;
        s.script(Script::Stop).await?;
        Ok(None)
    }
}
