//! Verification of a restarted engine (V1–V4): it answers at the expected
//! version, its swarm is active (unlocked with the key if it came back
//! locked), and another manager sees it ready (a manager also reachable,
//! with every manager reachable and one leader). Used by the verify step and
//! by the rollback of a node, which verifies the old engine the same way.

use std::time::Duration;
use tokio::time::Instant;

use super::context::{Cx, StepError, VIA_STALE};
use super::guard::{self, Expect, node_and_managers};
use super::operation::{Call, Description, On, Operation};
use super::ops::Ops;
use super::poll::{self, Attempt, Unmet};
use super::runner::Runner;
use crate::facts::model::{NodeFacts, NodeState, Role};
use crate::plan::{PlanNode, Step};
use crate::playbook::Script;
use crate::transport::Cmd;
use crate::version::{EngineVersion, engine_version_of};

const VERIFIED: &str =
    "the engine answers at its version with its swarm active, and another manager sees it ready";
const UNSEEN: &str =
    "the engine reports its swarm active but the managers have not seen it for 60 s";
/// How long the managers may not see an engine that says it is active
/// before its engine is restarted once.
const UNSEEN_RESTART: Duration = Duration::from_secs(60);

/// `docker swarm unlock`, the key on stdin, never on the command line.
pub(crate) fn unlock_cmd(key: &str) -> Cmd {
    Cmd::new(["docker", "swarm", "unlock"])
        .privileged()
        .stdin("the swarm unlock key", format!("{key}\n").into_bytes())
        .timeout(Duration::from_secs(60))
}

/// Is dockerd running at all? (exit 1: no)
pub(crate) fn pgrep_cmd() -> Cmd {
    Cmd::new(["pgrep", "-x", "dockerd"])
        .timeout(Duration::from_secs(20))
        .keeps_engine()
}

/// What [`verify`] does for `node`.
pub(crate) fn describe(cx: &Cx<'_>, node: &PlanNode) -> Description {
    let mut d = Description::default();
    d.until(VERIFIED, Operation::api(On::Node, Call::Info));
    let on = cx.asked(Some(node));
    d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
    let (role_call, other) = match node.role {
        Role::Manager => (Call::ListManagers, Call::InspectNode),
        Role::Worker => (Call::InspectNode, Call::ListManagers),
    };
    d.until(VERIFIED, Operation::api(on.clone(), role_call));
    d.when(
        "the node's role changed since the plan",
        Operation::api(on, other),
    );
    let key = cx.opts.unlock_key.as_deref().unwrap_or("KEY");
    d.when(
        "the manager comes back locked (autolock)",
        Operation::command(&unlock_cmd(key)),
    );
    if node.role == Role::Manager {
        for g in guard::describe(cx, node).0 {
            d.when(UNSEEN, g.op);
        }
    }
    for script in [Script::Stop, Script::Start] {
        if let Ok(cmd) = cx.script_cmd(node, script) {
            d.when(UNSEEN, Operation::command(&cmd));
        }
    }
    d.when(
        "the engine has not answered for 10 s",
        Operation::command(&pgrep_cmd()),
    );
    if let Ok(cmd) = cx.script_cmd(node, Script::Logs) {
        d.when(
            "the engine does not verify",
            Operation::command(&cmd.timeout(Duration::from_secs(30))),
        );
    }
    d
}

/// Waits for `node` to verify at `target` within the verify timeout; on
/// failure, the error carries the engine's last log lines.
pub(crate) async fn verify<O: Ops>(
    run: &Runner<'_, O>,
    step: &Step,
    node: &PlanNode,
    target: &EngineVersion,
) -> Result<poll::Polled, StepError> {
    let timeout = run.cx.opts.verify_timeout;
    let started = Instant::now();
    let mut not_running = 0;
    let mut unlocked = false;
    // When the node says its swarm is active but the other managers do not
    // see it, its agent's session can be stuck (seen on the lab after an
    // unlock, about once in twenty): one restart of its engine before
    // giving up on it.
    let mut unseen_since: Option<Instant> = None;
    let mut restarted = false;
    let result = poll::until(timeout, async || {
        let st = match run.ops.starting_engine_status(&node.id).await {
            Ok(st) => st,
            Err(e) => {
                // A dockerd that exited will not come back: fail fast
                // instead of waiting out the whole timeout.
                if started.elapsed() > Duration::from_secs(10) {
                    let out = match run.ops.run(&node.id, &pgrep_cmd()).await {
                        Ok(out) => out,
                        // I3: the host is out of reach, not the engine
                        // known dead: stop without undoing.
                        Err(e) => return Attempt::Fail(StepError::not_delivered(&node.host, e)),
                    };
                    if out.status != 1 {
                        return Attempt::NotYet(format!("the engine does not answer: {e:#}"));
                    }
                    not_running += 1;
                    if not_running >= 2 {
                        return Attempt::Fail(StepError::Failed(format!(
                            "dockerd is not running{}",
                            engine_logs(run, node).await
                        )));
                    }
                }
                return Attempt::NotYet(format!("the engine does not answer: {e:#}"));
            }
        };
        not_running = 0;
        if engine_version_of(&st.server_version).as_ref() != Some(target) {
            return Attempt::Fail(StepError::Failed(format!(
                "the engine answers as {} instead of {target}: the new binaries are not the ones running",
                st.server_version
            )));
        }
        match st.swarm_state.as_str() {
            "locked" if !unlocked => {
                if let Err(e) = unlock(run, step, node).await {
                    return Attempt::Fail(e);
                }
                unlocked = true;
                Attempt::NotYet("unlocked; waiting for the swarm to become active".into())
            }
            "active" if st.swarm_error.is_empty() => {
                let why = match seen_from_other_manager(run, node, target).await {
                    Ok(()) => return Attempt::Done(()),
                    Err(why) => why,
                };
                let since = *unseen_since.get_or_insert_with(Instant::now);
                let left = timeout.saturating_sub(started.elapsed());
                if !restarted && since.elapsed() > UNSEEN_RESTART && left > Duration::from_secs(45)
                {
                    // I1: restarting a manager is taking it down.
                    if node.role == Role::Manager
                        && let Err(e) = guard::check(run, node, Expect::MayBeDown).await
                    {
                        return Attempt::Fail(StepError::Halt(format!(
                            "{UNSEEN} ({why}), and restarting it is refused: {}",
                            e.message()
                        )));
                    }
                    restarted = true;
                    unlocked = false;
                    unseen_since = None;
                    run.output(step, format!("{UNSEEN} ({why}): restarting the engine once"))
                        .await;
                    for script in [Script::Stop, Script::Start] {
                        if let Err(e) = run.script(step, node, script).await {
                            return Attempt::Fail(e);
                        }
                    }
                }
                Attempt::NotYet(why)
            }
            other => Attempt::NotYet(format!("swarm state is `{other}` {}", st.swarm_error)),
        }
    })
    .await;
    match result {
        Ok(((), polled)) => Ok(polled),
        Err(Unmet::Failed(e)) => Err(e),
        Err(Unmet::TimedOut(last)) => Err(StepError::Failed(format!(
            "not verified within {}: {last}{}",
            humantime::format_duration(timeout),
            engine_logs(run, node).await
        ))),
    }
}

/// One verification of a node that is up (a canary's soak): V1–V4 now,
/// without waiting, unlocking or restarting anything. An engine that does
/// not answer is judged on its host: a host out of reach is not a failed
/// node (I3: `Halt`, nothing undone), a dockerd that is gone is.
pub(crate) async fn check_once<O: Ops>(
    run: &Runner<'_, O>,
    node: &PlanNode,
    target: &EngineVersion,
) -> Result<(), StepError> {
    let st = match run.ops.engine_status(&node.id).await {
        Ok(st) => st,
        Err(e) => {
            let out = run
                .ops
                .run(&node.id, &pgrep_cmd())
                .await
                .map_err(|t| StepError::not_delivered(&node.host, t))?;
            let why = if out.status == 1 {
                "dockerd is not running".to_string()
            } else {
                format!("the engine does not answer: {e:#}")
            };
            return Err(StepError::Failed(format!(
                "{why}{}",
                engine_logs(run, node).await
            )));
        }
    };
    if engine_version_of(&st.server_version).as_ref() != Some(target) {
        return Err(StepError::Failed(format!(
            "the engine answers as {} instead of {target}",
            st.server_version
        )));
    }
    if st.swarm_state != "active" || !st.swarm_error.is_empty() {
        return Err(StepError::Failed(format!(
            "swarm state is `{}` {}",
            st.swarm_state, st.swarm_error
        )));
    }
    seen_from_other_manager(run, node, target)
        .await
        .map_err(StepError::Failed)
}

/// V3–V4: another manager sees the node ready, at its version (and, for a
/// manager, every manager reachable with one leader).
pub(crate) async fn seen_from_other_manager<O: Ops>(
    run: &Runner<'_, O>,
    node: &PlanNode,
    target: &EngineVersion,
) -> Result<(), String> {
    let (me, managers) = node_and_managers(run, node).await?;
    verified_from_outside(&me, &managers, target)
}

async fn unlock<O: Ops>(
    run: &Runner<'_, O>,
    step: &Step,
    node: &PlanNode,
) -> Result<(), StepError> {
    let Some(key) = &run.cx.opts.unlock_key else {
        return Err(StepError::Failed(
            "the manager came back locked (autolock) and no unlock key was given: set SWARM_UPGRADE_UNLOCK_KEY or --unlock-key-file".into(),
        ));
    };
    let out = run
        .ops
        .run(&node.id, &unlock_cmd(key))
        .await
        .map_err(|e| StepError::not_delivered(&node.host, e))?;
    if !out.success() {
        return Err(StepError::Failed(format!(
            "docker swarm unlock failed: {}",
            super::one_line(&out.stderr)
        )));
    }
    run.output(step, "unlocked the manager with the unlock key")
        .await;
    Ok(())
}

pub(crate) async fn engine_logs<O: Ops>(run: &Runner<'_, O>, node: &PlanNode) -> String {
    let Ok(cmd) = run.cx.script_cmd(node, Script::Logs) else {
        return String::new();
    };
    match run
        .ops
        .run(&node.id, &cmd.timeout(Duration::from_secs(30)))
        .await
    {
        Ok(out) => format!(
            "\n  engine log (last lines):\n    {}",
            out.stdout.trim_end().replace('\n', "\n    ")
        ),
        Err(_) => String::new(),
    }
}

/// Pure: the outside view of a restarted node (V3, V4).
pub fn verified_from_outside(
    me: &NodeFacts,
    nodes: &[NodeFacts],
    target: &EngineVersion,
) -> Result<(), String> {
    if me.state != NodeState::Ready {
        return Err(format!("the swarm sees {} as {:?}", me.hostname, me.state));
    }
    if engine_version_of(&me.engine_version).as_ref() != Some(target) {
        return Err(format!(
            "the swarm still records engine {} for {}",
            me.engine_version, me.hostname
        ));
    }
    if me.role == Role::Manager {
        if !me.is_reachable_manager() {
            return Err(format!("{} is not reachable as a manager yet", me.hostname));
        }
        let managers: Vec<&NodeFacts> = nodes.iter().filter(|n| n.role == Role::Manager).collect();
        if let Some(m) = managers.iter().find(|m| !m.is_reachable_manager()) {
            return Err(format!("manager {} is not reachable", m.hostname));
        }
        let leaders = managers.iter().filter(|m| m.is_leader()).count();
        if leaders != 1 {
            return Err(format!("{leaders} leaders"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::guard::tests::managers;
    use crate::facts::model::Reachability::*;

    #[test]
    fn outside_view_needs_ready_target_version_and_quorum() {
        let target: EngineVersion = "26.1.5".parse().unwrap();
        let nodes = managers(&[
            ("a", true, Reachable),
            ("b", false, Reachable),
            ("c", false, Reachable),
        ]);
        assert!(verified_from_outside(&nodes[1], &nodes, &target).is_ok());
        let mut old = nodes.clone();
        old[1].engine_version = "20.10.24+dfsg1".into();
        assert!(
            verified_from_outside(&old[1], &old, &target)
                .unwrap_err()
                .contains("still records engine")
        );
        let mut unreachable = nodes.clone();
        unreachable[2].manager.as_mut().unwrap().reachability = Unreachable;
        assert!(
            verified_from_outside(&unreachable[1], &unreachable, &target)
                .unwrap_err()
                .contains("manager c")
        );
        let mut down = nodes.clone();
        down[1].state = NodeState::Down;
        assert!(verified_from_outside(&down[1], &down, &target).is_err());
    }
}
