//! `wait-drained`: a swarm drain does not wait; this step does, until no
//! task of the node is still (or about to be) running.

use std::time::Duration;

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError, VIA_STALE};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::{Ops, Task};
use crate::exec::poll::{self, Attempt, Unmet};
use crate::exec::wait;
use crate::plan::Step;

pub(crate) struct WaitDrained;

const EMPTY: &str = "no task of the node is active";

impl Action for WaitDrained {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let on = cx.asked(cx.node_of(step));
        let mut d = Description::default();
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        d.until(EMPTY, Operation::api(on, Call::NodeTasks));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let timeout = s.cx().opts.drain_timeout;
        let result = poll::until(timeout, async || {
            let via = match s.via_recent().await {
                Ok(v) => v,
                Err(e) => return Attempt::Fail(e),
            };
            let tasks = s.ops().node_tasks(&via, s.id()).await;
            if tasks.is_err() {
                s.forget_via();
            }
            emptied(tasks, timeout)
        })
        .await;
        match result {
            Ok(((), polled)) => Ok(Some(polled)),
            Err(Unmet::Failed(e)) => Err(e),
            Err(Unmet::TimedOut(why)) => Err(StepError::Failed(why)),
        }
    }
}

/// One poll's verdict on "no task of the node is active" (also the undo's
/// drain of a failed node).
pub(crate) fn emptied<E>(tasks: anyhow::Result<Vec<Task>>, timeout: Duration) -> Attempt<(), E> {
    match tasks {
        Ok(tasks) => match tasks.iter().filter(|t| wait::task_active(&t.state)).count() {
            0 => Attempt::Done(()),
            left => Attempt::NotYet(format!(
                "{left} task(s) still on the node after {} (drain does not move tasks whose service cannot be placed elsewhere: check constraints)",
                humantime::format_duration(timeout)
            )),
        },
        Err(e) => Attempt::NotYet(format!("{e:#}")),
    }
}
