//! `wait-converged`: every service runs its desired tasks, and none is in a
//! paused or rolled-back update. On a timeout the rejected tasks' errors are
//! mapped to their known causes (V6).

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError, VIA_STALE};
use crate::exec::operation::{Call, Description, On, Operation};
use crate::exec::ops::Ops;
use crate::exec::poll::{self, Attempt, Unmet};
use crate::exec::wait;
use crate::plan::Step;

pub(crate) struct WaitConverged;

const CONVERGED: &str = "every service runs its desired tasks";

impl Action for WaitConverged {
    fn describe(&self, _cx: &Cx<'_>, _step: &Step) -> Description {
        let mut d = Description::default();
        d.when(VIA_STALE, Operation::api(On::Manager, Call::Info));
        d.until(
            CONVERGED,
            Operation::api(On::Manager, Call::Services { all: true }),
        );
        d.when(
            "the services do not converge in time",
            Operation::api(On::Manager, Call::Tasks { all: true }),
        );
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let timeout = s.cx().opts.converge_timeout;
        let result = poll::until(timeout, async || {
            let via = match s.via_last().await {
                Ok(v) => v,
                Err(e) => return Attempt::Fail(e),
            };
            match s.ops().services(&via, None).await {
                Ok(services) => {
                    let lagging = wait::unconverged(&services);
                    if lagging.is_empty() {
                        Attempt::Done(())
                    } else {
                        Attempt::NotYet(lagging.join(", "))
                    }
                }
                Err(e) => {
                    s.forget_via();
                    Attempt::NotYet(format!("{e:#}"))
                }
            }
        })
        .await;
        match result {
            Ok(((), polled)) => Ok(Some(polled)),
            Err(Unmet::Failed(e)) => Err(e),
            Err(Unmet::TimedOut(last)) => {
                let mut msg = format!(
                    "services did not converge within {}: {last}",
                    humantime::format_duration(timeout)
                );
                if let Ok(via) = s.via().await
                    && let Ok(tasks) = s.ops().tasks(&via, None).await
                {
                    for cause in wait::rejected_causes(&tasks) {
                        msg.push_str(&format!("\n  {cause}"));
                    }
                }
                s.output(msg.clone()).await;
                Err(StepError::Failed(msg))
            }
        }
    }
}
