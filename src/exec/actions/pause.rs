//! `pause` (`--pause-after-canary`): the run marks its own lease paused,
//! exactly as `swarm-upgrade pause` would from another machine; at the next
//! safe point (the batch boundary right after this step) it waits for
//! `swarm-upgrade continue`. Done once: a resumed run does not pause again.

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::lease::Control;
use crate::exec::operation::{Call, Description, On, Operation};
use crate::exec::ops::Ops;
use crate::plan::Step;

pub(crate) struct Pause;

impl Action for Pause {
    fn describe(&self, _cx: &Cx<'_>, _step: &Step) -> Description {
        let mut d = Description::default();
        d.once(Operation::api(On::Manager, Call::Info));
        d.once(Operation::api(On::Manager, Call::MarkLease(Control::Pause)));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let via = s.via().await?;
        s.ops()
            .mark_lease(&via, &s.cx().run_id, Control::Pause)
            .await
            .map_err(|e| StepError::Halt(format!("cannot mark the run lease paused: {e:#}")))?;
        s.run.forget_lease_watch().await;
        s.output("the canary passed: pausing; `swarm-upgrade continue` goes on")
            .await;
        Ok(None)
    }
}
