//! `soak`: a canary, once verified (and, for a worker, running its tasks
//! again), is watched for the soak time: verification (V1–V4) and, unless
//! its operator keeps it drained, its services (V7–V9) are checked evenly
//! spaced over it and must pass every time in a row. A failure fails the
//! step, so the canary is rolled back and the run stops, like any node.

use super::{Action, StepResult, verify_services::VerifyServices};
use crate::exec::context::{Cx, StepCx, StepError, VIA_STALE};
use crate::exec::operation::{Call, Described, Description, On, Operation, When};
use crate::exec::ops::Ops;
use crate::exec::verify;
use crate::facts::model::{Availability, Role};
use crate::plan::Step;

pub(crate) struct Soak;

fn every(cx: &Cx<'_>) -> (u32, std::time::Duration) {
    let checks = cx.plan.canary.soak_checks.max(1);
    (checks, cx.plan.canary.soak() / checks)
}

impl Action for Soak {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = Description::default();
        let Some(n) = cx.node_of(step) else {
            return d;
        };
        let (checks, every) = every(cx);
        let until = format!(
            "it passed {checks} times in a row, one every {}",
            humantime::format_duration(every)
        );
        let on = cx.asked(Some(n));
        d.until(&until, Operation::api(On::Node, Call::Info));
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        let role_call = match n.role {
            Role::Manager => Call::ListManagers,
            Role::Worker => Call::InspectNode,
        };
        d.until(&until, Operation::api(on, role_call));
        let gone = "the engine does not answer";
        d.when(gone, Operation::command(&verify::pgrep_cmd()));
        if let Ok(cmd) = cx.script_cmd(n, crate::playbook::Script::Logs) {
            d.when(
                gone,
                Operation::command(&cmd.timeout(std::time::Duration::from_secs(30))),
            );
        }
        // Each check verifies the services as the verify-services step does.
        if n.availability != Availability::Drain {
            for Described { op, when } in VerifyServices.describe(cx, step).0 {
                let when = match when {
                    When::Once => When::Until(until.clone()),
                    other => other,
                };
                d.0.push(Described { op, when });
            }
        }
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let n = s.node();
        let (checks, every) = every(s.cx());
        s.output(format!(
            "canary: soaking for {}, verified every {}",
            humantime::format_duration(s.cx().plan.canary.soak()),
            humantime::format_duration(every)
        ))
        .await;
        for i in 1..=checks {
            tokio::time::sleep(every).await;
            let failed = |e: StepError| match e {
                StepError::Failed(m) => StepError::Failed(format!(
                    "canary {} failed soak check {i} of {checks}: {m}",
                    n.name
                )),
                other => other,
            };
            verify::check_once(s.run, n, &n.target)
                .await
                .map_err(failed)?;
            if n.availability != Availability::Drain {
                VerifyServices.run(s).await.map_err(failed)?;
            }
            s.output(format!("soak check {i} of {checks} passed")).await;
        }
        Ok(None)
    }
}
