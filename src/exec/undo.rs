//! Bringing a node whose step failed back to how it was: its old engine
//! running and verified (reinstalled from the backup its run took on the
//! host when the new one was installed), and its availability restored.

use super::actions::wait_drained::emptied;
use super::actions::{drain, restore_availability};
use super::context::{Cx, StepError};
use super::guard::{self, Expect};
use super::operation::{Call, Description, Operation};
use super::ops::Ops;
use super::poll::{self, Unmet};
use super::runner::Runner;
use super::state::{RunState, StepStatus};
use super::verify;
use crate::facts::model::Role;
use crate::plan::{Action, PlanNode, Step};
use crate::playbook::Script;
use crate::version::engine_version_of;

/// What undoing `node` may do, in order (each part only if the run got that far).
pub(crate) fn describe(cx: &Cx<'_>, node: &PlanNode) -> Description {
    let mut d = Description::default();
    let on = cx.asked(Some(node));
    let back = "its availability was restored before it failed";
    d.when(back, Operation::api(on.clone(), Call::Info));
    d.when(
        back,
        Operation::api(
            on.clone(),
            Call::UpdateNode(drain::update(node, &cx.run_id)),
        ),
    );
    d.when(back, Operation::api(on, Call::NodeTasks));
    let script = |which| {
        cx.script_cmd(node, which)
            .ok()
            .map(|c| Operation::command(&c))
    };
    if node.role == Role::Manager {
        for g in guard::describe(cx, node).0 {
            d.when("its engine was stopped", g.op);
        }
    }
    if let Some(op) = script(Script::Stop) {
        d.when("its engine was stopped", op);
    }
    if let Some(op) = script(Script::Restore) {
        d.when("the new packages were installed", op);
    }
    if let Some(op) = script(Script::Start) {
        d.when("its engine was stopped", op);
    }
    for v in verify::describe(cx, node).0 {
        d.when("its engine was stopped", v.op);
    }
    let on = cx.asked(Some(node));
    d.when("it was drained", Operation::api(on.clone(), Call::Info));
    d.when(
        "it was drained",
        Operation::api(on, Call::UpdateNode(restore_availability::update(node))),
    );
    d
}

/// Undoes what the run did to `node`, given the failed step; returns what
/// was done, for the journal. [`StepError::Halt`] when it stopped before
/// changing anything because a command was not delivered or the quorum
/// guard keeps this manager up (I1, I3): the run then stops resumable.
pub(crate) async fn undo<O: Ops>(
    run: &Runner<'_, O>,
    node: &PlanNode,
    failed: &Step,
    precondition: bool,
    st: &RunState,
) -> Result<String, StepError> {
    // The failed step counts as (partly) done unless its precondition
    // failed: then it never started, and undoing it would do harm (stop
    // the very manager the quorum guard kept up).
    let done = |a: Action| {
        run.cx.steps_of(&node.id).iter().any(|s| {
            s.action == a
                && (st.step(s.index).status == StepStatus::Done
                    || (s.index == failed.index && !precondition))
        })
    };
    let fail = |what: &str, e: StepError| match e {
        StepError::Halt(m) => StepError::Halt(m),
        e => StepError::Failed(format!("{what}: {}", e.message())),
    };
    let mut detail = vec![];
    if done(Action::StopEngine) && done(Action::RestoreAvailability) {
        // It runs tasks again (its services failed verification): move
        // them off before its engine stops, as its drain did the first time.
        drain_again(run, node, failed)
            .await
            .map_err(|e| StepError::Halt(format!("draining {} again: {e:#}", node.name)))?;
        detail.push("drained again".to_string());
    }
    let stopped = done(Action::StopEngine);
    if stopped {
        // I1: the engine may be running (a verify that timed out): stopping
        // a manager again needs the guard, like any other stop.
        if node.role == Role::Manager {
            guard::check(run, node, Expect::MayBeDown)
                .await
                .map_err(|e| {
                    StepError::Halt(format!(
                        "not stopping manager {} to bring it back: {}",
                        node.name,
                        e.message()
                    ))
                })?;
        }
        // Stop whatever runs (or fails to run) now; ignore "not running".
        if let Ok(cmd) = run.cx.script_cmd(node, Script::Stop) {
            run.ops
                .run(&node.id, &cmd)
                .await
                .map_err(|e| StepError::not_delivered(&node.host, e))?;
        }
    }
    // With its engine stopped now, or still running its old binaries: a
    // staged node installs while its tasks drain, before its engine stops.
    if done(Action::Install) {
        let out = run
            .script(failed, node, Script::Restore)
            .await
            .map_err(|e| fail("restoring the backup failed", e))?;
        detail.push(format!("restored {}", super::package_lines(&out.stdout)));
    }
    if stopped {
        run.script(failed, node, Script::Start)
            .await
            .map_err(|e| fail("starting the old engine failed", e))?;
        let old = engine_version_of(&node.current)
            .ok_or_else(|| StepError::Failed("unreadable old engine version".into()))?;
        verify::verify(run, failed, node, &old)
            .await
            .map_err(|e| fail("the old engine does not verify", e))?;
        detail.push(format!("engine {} verified", node.current));
    }
    if done(Action::Drain) {
        let via = run
            .via(Some(&node.id))
            .await
            .map_err(|e| StepError::Halt(format!("{e:#}")))?;
        run.ops
            .update_node(&via, &node.id, &restore_availability::update(node))
            .await
            .map_err(|e| StepError::Halt(format!("{e:#}")))?;
        detail.push(format!(
            "availability {} restored",
            node.availability.name()
        ));
    }
    Ok(detail.join("; "))
}

async fn drain_again<O: Ops>(
    run: &Runner<'_, O>,
    node: &PlanNode,
    failed: &Step,
) -> anyhow::Result<()> {
    let via = run.via(Some(&node.id)).await?;
    run.ops
        .update_node(&via, &node.id, &drain::update(node, &run.cx.run_id))
        .await?;
    let timeout = run.cx.opts.drain_timeout;
    let left: Result<_, Unmet<()>> = poll::until(timeout, async || {
        emptied(run.ops.node_tasks(&via, &node.id).await, timeout)
    })
    .await;
    // Tasks that cannot move still stop with the engine: the old engine
    // coming back matters more than a clean drain.
    if let Err(Unmet::TimedOut(_) | Unmet::Failed(_)) = left {
        run.output(
            failed,
            "tasks still on the node after the drain timeout; stopping its engine anyway",
        )
        .await;
    }
    Ok(())
}
