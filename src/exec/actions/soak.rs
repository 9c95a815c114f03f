//! `soak`: a canary, once verified (and, for a worker, running its tasks
//! again), is watched for the soak time, and checked evenly spaced over it:
//! verification (V1–V4) and, unless its operator keeps it drained, its
//! services (V7–V9), passing every time in a row. A failure fails the step,
//! so the canary is rolled back and the run stops, like any node.
//!
//! Watched meanwhile through two event streams: a manager's record of the
//! node (its state, availability, role) and the node's own engine (a task's
//! container dying; the stream ends if the engine stops), and the swarm's
//! view of the node read once as they open (what changed before they did).
//! An event is checked at once, not at the next check. While both streams stay open and
//! quiet, a check in the middle of the soak needs no request for what they
//! cover (the engine up, the swarm seeing the node as before, its tasks as
//! they were): it probes the services on the node only (ports, DNS,
//! containerd and runc, the engine log). The last check is a whole one.

use tokio::time::Instant;

use super::verify_services::{self, VerifyServices};
use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError, VIA_STALE};
use crate::exec::operation::{Call, Described, Description, On, Operation, When};
use crate::exec::ops::{Events, Ops};
use crate::exec::verify;
use crate::facts::model::{Availability, Role, ServiceFacts};
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
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        d.once(Operation::api(on.clone(), Call::NodeChanges));
        d.once(Operation::api(On::Node, Call::TaskStops));
        // As the watch starts, the swarm's view of the node; a check in the
        // middle of a quiet soak probes the services only; the last one
        // verifies the node (V1–V4) too.
        let role_call = match n.role {
            Role::Manager => Call::ListManagers,
            Role::Worker => Call::InspectNode,
        };
        d.until(&until, Operation::api(on, role_call));
        if n.availability != Availability::Drain {
            for Described { op, when } in VerifyServices.describe(cx, step).0 {
                let when = match when {
                    When::Once => When::Until(until.clone()),
                    other => other,
                };
                if !d.0.iter().any(|x| x.op == op) {
                    d.0.push(Described { op, when });
                }
            }
        }
        d.until(&until, Operation::api(On::Node, Call::Info));
        let gone = "the engine does not answer";
        d.when(gone, Operation::command(&verify::pgrep_cmd()));
        if let Ok(cmd) = cx.script_cmd(n, crate::playbook::Script::Logs) {
            d.when(
                gone,
                Operation::command(&cmd.timeout(std::time::Duration::from_secs(30))),
            );
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
        let mut watch = Watch::open(s).await;
        // The streams report what changes from now on: what changed since
        // verify and before they opened is seen by asking once now.
        if watch.intact() {
            verify::seen_from_other_manager(s.run, n, &n.target)
                .await
                .map_err(|m| {
                    StepError::Failed(format!("canary {} failed as its soak began: {m}", n.name))
                })?;
        }
        let services = n.availability != Availability::Drain;
        // The services a probe checks, as read at the last check; read
        // again after an event (a task's container died).
        let mut running: Option<Vec<ServiceFacts>> = None;
        let started = Instant::now();
        for i in 1..=checks {
            let failed = |e: StepError| match e {
                StepError::Failed(m) => StepError::Failed(format!(
                    "canary {} failed soak check {i} of {checks}: {m}",
                    n.name
                )),
                other => other,
            };
            let tick = started + every * i;
            while watch.until(tick).await {
                // Something changed: judged now, not at the next check.
                s.output("an event on the canary: checking it now").await;
                running = None;
                whole_check(s, services, &mut running)
                    .await
                    .map_err(failed)?;
            }
            if i < checks && watch.intact() {
                if services {
                    quiet_check(s, &mut running).await.map_err(failed)?;
                }
            } else {
                whole_check(s, services, &mut running)
                    .await
                    .map_err(failed)?;
            }
            s.output(format!("soak check {i} of {checks} passed")).await;
        }
        Ok(None)
    }
}

/// V1–V4 now, then (unless the canary stays drained) its services.
async fn whole_check<O: Ops>(
    s: &StepCx<'_, '_, O>,
    services: bool,
    running: &mut Option<Vec<ServiceFacts>>,
) -> Result<(), StepError> {
    let n = s.node();
    verify::check_once(s.run, n, &n.target).await?;
    if services {
        let now = verify_services::running(s).await?;
        verify_services::probe(s, &now).await?;
        *running = Some(now);
    }
    Ok(())
}

/// The services probed on the node, as read at the last check (read now at
/// the first); an engine that does not answer the probe is judged by a
/// whole check.
async fn quiet_check<O: Ops>(
    s: &StepCx<'_, '_, O>,
    running: &mut Option<Vec<ServiceFacts>>,
) -> Result<(), StepError> {
    let now = match running.take() {
        Some(r) => r,
        None => verify_services::running(s).await?,
    };
    match verify_services::probe(s, &now).await {
        Err(StepError::Halt(_)) => whole_check(s, true, running).await,
        other => {
            *running = Some(now);
            other
        }
    }
}

/// The canary's two event streams; `None` once one could not be opened or
/// ended (every check is then a whole one).
struct Watch<'a> {
    node: Option<Events<'a>>,
    engine: Option<Events<'a>>,
}

impl<'a> Watch<'a> {
    async fn open<O: Ops>(s: &StepCx<'_, 'a, O>) -> Watch<'a> {
        let node = s
            .ask(async |via| s.ops().node_changes(via, s.id()).await)
            .await
            .ok()
            .and_then(Result::ok);
        let engine = s.ops().task_stops(s.id()).await.ok();
        Watch { node, engine }
    }

    fn intact(&self) -> bool {
        self.node.is_some() && self.engine.is_some()
    }

    /// Waits until `tick`: `true` when an event came (or a stream ended)
    /// before it.
    async fn until(&mut self, tick: Instant) -> bool {
        let left = tick.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if !self.intact() {
            tokio::time::sleep(left).await;
            return false;
        }
        let (node, engine) = (
            self.node.as_mut().expect("intact"),
            self.engine.as_mut().expect("intact"),
        );
        let (from_node, heard) = tokio::select! {
            e = node.next(left) => (true, e),
            e = engine.next(left) => (false, e),
        };
        match heard {
            Ok(false) => false,
            Ok(true) => true,
            Err(_) => {
                // Ended: the engine stopped, the manager restarted, SSH
                // was lost. Judged now; checked whole from here on.
                match from_node {
                    true => self.node = None,
                    false => self.engine = None,
                }
                true
            }
        }
    }
}
