//! `wait-drained`: a swarm drain does not wait; this step does, until no
//! task of the node is still (or about to be) running. The manager is asked
//! when the node's own engine says one of its task containers stopped, not
//! every quarter second of the seconds the swarm takes to stop them.

use std::time::Duration;

use tokio::time::Instant;

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError, VIA_STALE};
use crate::exec::operation::{Call, Description, On, Operation};
use crate::exec::ops::{Events, Ops, Task};
use crate::exec::poll::{self, Attempt, Backoff, Unmet};
use crate::exec::wait;
use crate::plan::Step;

pub(crate) struct WaitDrained;

const EMPTY: &str = "no task of the node is active";

impl Action for WaitDrained {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let on = cx.asked(cx.node_of(step));
        let mut d = Description::default();
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        d.when(
            "a task of the node is still active",
            Operation::api(On::Node, Call::TaskStops),
        );
        d.until(EMPTY, Operation::api(on, Call::NodeTasks));
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let timeout = s.cx().opts.drain_timeout;
        // Opened after the first "not yet" (a node with no task needs none);
        // `None` once it failed: the wait then sleeps as every wait does.
        let mut stops: Option<Events<'_>> = None;
        let mut tried_stops = false;
        let mut last_stop: Option<Instant> = None;
        let poll = async || {
            let via = match s.via_last().await {
                Ok(v) => v,
                Err(e) => return Attempt::Fail(e),
            };
            let tasks = s.ops().node_tasks(&via, s.id()).await;
            if tasks.is_err() {
                s.forget_via();
            }
            emptied(tasks, timeout)
        };
        let wait = async |backoff: &mut Backoff, left: Duration| {
            if !tried_stops {
                tried_stops = true;
                stops = s.ops().task_stops(s.id()).await.ok();
                // A container that stopped just before the stream opened sent
                // its event already, and the manager may not have its task's
                // new state yet (seen on the lab: a 2 s wait for an event that
                // had come): one quick poll before waiting on events.
                return backoff.sleep().await;
            }
            // Right after a container stopped, the manager may not have its
            // task's new state yet: polled fast for a moment, as without
            // events.
            let settling = last_stop.is_some_and(|t| t.elapsed() < SETTLE);
            let Some(st) = stops.as_mut().filter(|_| !settling) else {
                return backoff.sleep().await;
            };
            let started = Instant::now();
            match st.next(WAKE.min(left)).await {
                Ok(event) => {
                    if event {
                        last_stop = Some(Instant::now());
                    }
                    backoff.woke(started.elapsed(), event);
                }
                Err(_) => {
                    stops = None;
                    backoff.sleep().await;
                }
            }
        };
        match poll::until_woken(timeout, poll, wait).await {
            Ok(((), polled)) => Ok(Some(polled)),
            Err(Unmet::Failed(e)) => Err(e),
            Err(Unmet::TimedOut(why)) => Err(StepError::Failed(why)),
        }
    }
}

/// The longest a wait goes without asking the manager while no container
/// of the node stops: a task that has none (still being prepared) stops
/// without an event, and an event can come between a poll and the stream's
/// start.
const WAKE: Duration = Duration::from_secs(2);

/// How long after a container stopped the wait polls fast (the manager
/// hears of the task's new state from the node's agent shortly after).
const SETTLE: Duration = Duration::from_secs(1);

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
