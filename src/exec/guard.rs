//! The quorum guard: before a manager's engine goes down, every manager must
//! be reachable, one must lead, and the rest must keep quorum without it.
//! Asked live, through another manager: facts from planning may be stale.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::Instant;

use super::context::{Cx, StepError, VIA_STALE};
use super::operation::{Call, Description, Operation};
use super::ops::{Events, Ops};
use super::poll::{self, Attempt, Backoff, Unmet};
use super::runner::Runner;
use crate::facts::model::{NodeFacts, NodeState, Role};
use crate::plan::PlanNode;

/// What the guard accepts of the node itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The node must be ready (it is about to be drained).
    Ready,
    /// The node may be down already: a resumed stop, or a rollback.
    MayBeDown,
}

const HOLDS: &str = "every manager is reachable, one leads, and quorum survives without the node";

/// The reads of [`check`] for `node`.
pub(crate) fn describe(cx: &Cx<'_>, node: &PlanNode) -> Description {
    let on = cx.asked(Some(node));
    let mut d = Description::default();
    d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
    match node.role {
        Role::Manager => {
            d.until(HOLDS, Operation::api(on.clone(), Call::ListManagers));
            d.when(
                "the node is no longer a manager",
                Operation::api(on, Call::InspectNode),
            );
        }
        Role::Worker => {
            d.until(HOLDS, Operation::api(on.clone(), Call::InspectNode));
            d.when(
                "the node is not ready yet",
                Operation::api(on.clone(), Call::NodeChanges),
            );
            d.when(
                "the node has become a manager",
                Operation::api(on, Call::ListManagers),
            );
        }
    }
    d
}

/// May `node` go down now? A manager can look unreachable for a heartbeat
/// or two on a busy host: the cluster gets `guard_timeout` to be whole
/// before the guard refuses (a precondition failure: nothing was changed).
///
/// A worker not ready yet (seen down for seconds after the leader's
/// restart) is asked about again when the swarm records a change to it (a
/// manager's node events), not every quarter second. A manager's quorum
/// also rests on which manager leads, which no node event announces: that
/// wait polls.
pub(crate) async fn check<O: Ops>(
    run: &Runner<'_, O>,
    node: &PlanNode,
    expect: Expect,
) -> Result<(), StepError> {
    let timeout = run.cx.opts.guard_timeout;
    let mut changes: Option<Events<'_>> = None;
    let mut tried = false;
    let poll = async || match once(run, node, expect).await {
        Ok(()) => Attempt::Done(()),
        Err(why) => Attempt::<(), Infallible>::NotYet(why),
    };
    let wait = async |backoff: &mut Backoff, left: Duration| {
        if node.role != Role::Worker {
            return backoff.sleep().await;
        }
        if !tried {
            tried = true;
            changes = run
                .ask(Some(&node.id), async |via| {
                    run.ops.node_changes(via, &node.id).await
                })
                .await
                .and_then(|opened| opened)
                .ok();
        }
        let Some(events) = changes.as_mut() else {
            return backoff.sleep().await;
        };
        let started = Instant::now();
        match events.next(WAKE.min(left)).await {
            Ok(event) => backoff.woke(started.elapsed(), event),
            Err(_) => {
                changes = None;
                backoff.sleep().await;
            }
        }
    };
    poll::until_woken(timeout, poll, wait)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            Unmet::TimedOut(why) => StepError::Precondition(why),
            Unmet::Failed(never) => match never {},
        })
}

/// The longest a worker's wait goes without asking while the swarm records
/// no change to it: a change can come between a poll and the stream's start.
const WAKE: Duration = Duration::from_secs(2);

async fn once<O: Ops>(run: &Runner<'_, O>, node: &PlanNode, expect: Expect) -> Result<(), String> {
    let (me, managers) = node_and_managers(run, node).await?;
    // A node an unfinished run drained (perhaps down mid-upgrade) is the
    // one this run continues with: it may be down.
    let mid_run = me.labels.contains_key(crate::exec::LABEL_RUN);
    if me.state != NodeState::Ready && expect == Expect::Ready && !mid_run {
        return Err(format!("{} is {:?}, not ready", me.hostname, me.state));
    }
    // A manager the others cannot reach would not verify once restarted
    // (found by the fault matrix: a manager cut off while a hook ran before it).
    if me.role == Role::Manager && expect == Expect::Ready && !mid_run && !me.is_reachable_manager()
    {
        return Err(format!(
            "{} is not reachable as a manager: not taking it down",
            me.hostname
        ));
    }
    if node.role == Role::Manager || me.role == Role::Manager {
        quorum_guard(&managers, &node.id)?;
    }
    Ok(())
}

/// The node as the swarm sees it, and the managers when it is one (or has
/// become one), asked of another manager (see [`Runner::ask`]).
pub(crate) async fn node_and_managers<O: Ops>(
    run: &Runner<'_, O>,
    node: &PlanNode,
) -> Result<(NodeFacts, Vec<NodeFacts>), String> {
    run.ask(Some(&node.id), async |via| {
        node_and_managers_via(run.ops, via, &node.id, node.role)
            .await
            .map_err(anyhow::Error::msg)
    })
    .await
    .and_then(|answer| answer)
    .map_err(|e| format!("{e:#}"))
}

/// [`node_and_managers`] asked of `via`: one request either way.
async fn node_and_managers_via<O: Ops>(
    ops: &O,
    via: &str,
    node_id: &str,
    role: Role,
) -> Result<(NodeFacts, Vec<NodeFacts>), String> {
    let text = |e: anyhow::Error| format!("{e:#}");
    if role == Role::Manager {
        let managers = ops.managers(via).await.map_err(text)?;
        if let Some(me) = managers.iter().find(|n| n.id == node_id) {
            return Ok((me.clone(), managers));
        }
        // Demoted meanwhile, or gone: ask for it alone.
        let me = ops.node(via, node_id).await.map_err(text)?;
        return Ok((me.ok_or("the node left the swarm")?, managers));
    }
    let me = ops
        .node(via, node_id)
        .await
        .map_err(text)?
        .ok_or("the node left the swarm")?;
    if me.role == Role::Manager {
        // Promoted since the plan: its quorum matters now.
        let managers = ops.managers(via).await.map_err(text)?;
        return Ok((me, managers));
    }
    Ok((me, vec![]))
}

/// Pure: may this manager go down now? All managers reachable, exactly one
/// leader, and the others keep quorum without it. A single-manager swarm may
/// (its control plane is down during the restart; tasks keep running).
pub fn quorum_guard(nodes: &[NodeFacts], node_id: &str) -> Result<(), String> {
    let managers: Vec<&NodeFacts> = nodes.iter().filter(|n| n.role == Role::Manager).collect();
    let n = managers.len();
    if n <= 1 {
        return Ok(());
    }
    // The node about to go down may be down already (a resumed stop): only
    // the others have to be reachable, and enough of them for quorum.
    let unreachable: Vec<&str> = managers
        .iter()
        .filter(|m| m.id != node_id && !m.is_reachable_manager())
        .map(|m| m.hostname.as_str())
        .collect();
    let leaders = managers.iter().filter(|m| m.is_leader()).count();
    let quorum = n / 2 + 1;
    let left = managers
        .iter()
        .filter(|m| m.id != node_id && m.is_reachable_manager())
        .count();
    if leaders != 1 {
        return Err(format!(
            "the swarm has {leaders} leaders instead of one: not taking a manager down"
        ));
    }
    if !unreachable.is_empty() {
        return Err(format!(
            "manager(s) {} unreachable: not taking another manager down (quorum {quorum} of {n})",
            unreachable.join(", ")
        ));
    }
    if left < quorum {
        return Err(format!(
            "taking this manager down leaves {left} of {n} managers, below quorum {quorum}"
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::facts::model::{Availability, ManagerFacts, Reachability};

    fn manager(id: &str, leader: bool, reach: Reachability) -> NodeFacts {
        NodeFacts {
            id: id.into(),
            hostname: id.into(),
            addr: String::new(),
            role: Role::Manager,
            availability: Availability::Active,
            state: NodeState::Ready,
            message: String::new(),
            manager: Some(ManagerFacts {
                leader,
                reachability: reach,
                addr: String::new(),
            }),
            engine_version: "26.1.5".into(),
            labels: Default::default(),
            engine_labels: Default::default(),
            version_index: 1,
            nano_cpus: 0,
            memory_bytes: 0,
            platform_os: String::new(),
            platform_arch: String::new(),
        }
    }

    pub(crate) fn managers(spec: &[(&str, bool, Reachability)]) -> Vec<NodeFacts> {
        spec.iter().map(|(id, l, r)| manager(id, *l, *r)).collect()
    }

    #[test]
    fn quorum_guard_lets_one_of_three_go_only_when_all_are_reachable() {
        use Reachability::*;
        let healthy = managers(&[
            ("a", true, Reachable),
            ("b", false, Reachable),
            ("c", false, Reachable),
        ]);
        assert!(quorum_guard(&healthy, "b").is_ok());
        let one_down = managers(&[
            ("a", true, Reachable),
            ("b", false, Reachable),
            ("c", false, Unreachable),
        ]);
        let err = quorum_guard(&one_down, "b").unwrap_err();
        assert!(err.contains("c unreachable"), "{err}");
        let two = managers(&[("a", true, Reachable), ("b", false, Reachable)]);
        assert!(
            quorum_guard(&two, "b")
                .unwrap_err()
                .contains("below quorum 2")
        );
        let no_leader = managers(&[
            ("a", false, Reachable),
            ("b", false, Reachable),
            ("c", false, Reachable),
        ]);
        assert!(
            quorum_guard(&no_leader, "b")
                .unwrap_err()
                .contains("0 leaders")
        );
        assert!(
            quorum_guard(&managers(&[("a", true, Reachable)]), "a").is_ok(),
            "a single manager may restart"
        );
        // Resuming a stop: the node itself is already down; the others keep quorum.
        let resumed = managers(&[
            ("a", true, Reachable),
            ("b", false, Unreachable),
            ("c", false, Reachable),
        ]);
        assert!(quorum_guard(&resumed, "b").is_ok());
        let five_one_down = managers(&[
            ("a", true, Reachable),
            ("b", false, Reachable),
            ("c", false, Reachable),
            ("d", false, Reachable),
            ("e", false, Unreachable),
        ]);
        assert!(
            quorum_guard(&five_one_down, "b").is_err(),
            "never a second manager down at once"
        );
    }
}
