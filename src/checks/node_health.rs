//! `node-health` (P2): start from a healthy baseline, so damage the upgrade
//! finds is damage the upgrade did, and say up front which nodes an operator
//! had drained or paused on purpose (the run gives them back exactly that).

use super::{Check, CheckContext, Finding, Severity, state_name};
use crate::facts::model::{Availability, NodeFacts, NodeState, Role};

pub struct NodeHealth;

const ID: &str = "node-health";

impl Check for NodeHealth {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "every manager is ready before the run; reports down workers and nodes already drained or paused"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut findings = vec![];
        for node in &ctx.facts.cluster.nodes {
            let name = Some(node.hostname.as_str());
            // Drained (and perhaps stopped) by a run that did not finish:
            // this plan continues it, that node first.
            if let Some(run) = node.labels.get(crate::exec::LABEL_RUN) {
                findings.push(Finding::warn(
                    ID,
                    name,
                    format!(
                        "node {} is {} and {}: drained by run {run}, which did not finish; this run                          continues its work and gives it back its availability{}",
                        node.hostname,
                        state_name(node.state),
                        node.availability.name(),
                        node.labels
                            .get(crate::exec::LABEL_AVAILABILITY)
                            .map_or(String::new(), |a| format!(" ({a})"))
                    ),
                ));
                continue;
            }
            if node.state != NodeState::Ready {
                findings.push(not_ready(node));
            }
            let availability = match node.availability {
                Availability::Active => continue,
                Availability::Drain => "drained",
                Availability::Pause => "paused",
            };
            // Pause keeps a node's tasks, but the upgrade drains it first, and
            // swarm places nothing on a paused node: not even its global tasks.
            let tasks = if node.availability == Availability::Pause {
                "; the upgrade's drain stops its tasks and a paused node gets none back \
                 (its global services' tasks included) until it is active"
            } else {
                ""
            };
            findings.push(Finding::warn(
                ID,
                name,
                format!(
                    "node {} is already {availability} before the run: it will stay {availability} after the \
                     run (availability is restored exactly){tasks}; activate it afterwards \
                     (docker node update --availability active {}) if that was not on purpose",
                    node.hostname, node.hostname
                ),
            ));
        }
        findings
    }
}

fn not_ready(node: &NodeFacts) -> Finding {
    let name = Some(node.hostname.as_str());
    let state = describe_state(node);
    // Right after a leadership change the new leader marks every node
    // `unknown` until its agent reports again (seconds; a node that does not
    // is marked down). Not a failure: a manager the raft still reaches is no
    // risk to quorum (quorum-budget watches that), and a worker's tasks have
    // not moved.
    if node.state == NodeState::Unknown {
        let pending = match node.role {
            Role::Manager if node.is_reachable_manager() => Some((
                "manager",
                " but reachable in the raft",
                "a manager that stays silent is marked down, which blocks",
            )),
            Role::Manager => None,
            Role::Worker => Some(("worker", "", "a worker that stays silent is marked down")),
        };
        if let Some((role, reachable, silent)) = pending {
            return Finding::warn(
                ID,
                name,
                format!(
                    "{role} {} is {state}{reachable}: the leader has not heard from its agent yet, as after a \
                     leadership change; this clears within seconds ({silent}); the run verifies every node \
                     before it moves on",
                    node.hostname
                ),
            );
        }
    }
    match node.role {
        Role::Manager => Finding::block(
            ID,
            name,
            format!(
                "manager {} is {state}: upgrading another manager now risks quorum, and the run could not \
                 verify this one; bring it back (or demote and remove it) first",
                node.hostname
            ),
        ),
        Role::Worker => Finding::warn(
            ID,
            name,
            format!(
                "worker {} is {state}: its tasks already run elsewhere; it is upgraded only if it is reachable \
                 over SSH when its turn comes, and the run cannot tell its old damage from new; fix it or \
                 remove it (docker node rm) first if you can",
                node.hostname
            ),
        ),
    }
}

/// `down ("heartbeat failure")`, or just `down`.
fn describe_state(node: &NodeFacts) -> String {
    let state = state_name(node.state);
    if node.message.is_empty() {
        state.to_string()
    } else {
        format!("{state} (\"{}\")", node.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};
    use crate::facts::model::Reachability;

    #[test]
    fn passes_when_every_node_is_ready_and_active() {
        assert!(Fixture::healthy().run(&NodeHealth).is_empty());
    }

    #[test]
    fn blocks_on_a_manager_that_is_not_ready() {
        let mut fx = Fixture::healthy();
        fx.node("m2").state = NodeState::Down;
        fx.node("m2").message = "heartbeat failure".into();
        let findings = fx.run(&NodeHealth);
        let f = the(&findings, Severity::Block);
        assert_eq!(f.node.as_deref(), Some("m2"));
        assert!(
            f.message
                .starts_with("manager m2 is down (\"heartbeat failure\")"),
            "{}",
            f.message
        );
    }

    #[test]
    fn warns_on_a_reachable_manager_of_unknown_state_after_a_leadership_change() {
        // Seen on the lab: `apply` right after a run that restarted the
        // leader found the other managers `unknown`, still reachable.
        let mut fx = Fixture::healthy();
        for m in ["m2", "m3"] {
            fx.node(m).state = NodeState::Unknown;
            fx.node(m).message =
                "Node moved to \"unknown\" state due to leadership change in cluster".into();
        }
        let findings = fx.run(&NodeHealth);
        assert_eq!(findings.len(), 2, "{findings:#?}");
        assert!(
            findings.iter().all(|f| f.severity == Severity::Warn),
            "{findings:#?}"
        );
        assert!(
            findings[0].message.starts_with(
                "manager m2 is unknown (\"Node moved to \"unknown\" state due to leadership change in cluster\") \
                 but reachable in the raft"
            ),
            "{}",
            findings[0].message
        );

        // Unknown and out of the raft: blocked as before.
        fx.node("m3").manager.as_mut().unwrap().reachability = Reachability::Unreachable;
        let findings = fx.run(&NodeHealth);
        let f = the(&findings, Severity::Block);
        assert_eq!(f.node.as_deref(), Some("m3"));
        assert!(
            f.message.starts_with("manager m3 is unknown"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_worker_of_unknown_state_is_not_said_to_be_down() {
        let mut fx = Fixture::healthy();
        fx.node("w1").state = NodeState::Unknown;
        let findings = fx.run(&NodeHealth);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message
                .starts_with("worker w1 is unknown: the leader has not heard from its agent yet"),
            "{}",
            f.message
        );
    }

    #[test]
    fn warns_on_a_worker_that_is_not_ready() {
        let mut fx = Fixture::healthy();
        fx.node("w1").state = NodeState::Disconnected;
        let findings = fx.run(&NodeHealth);
        assert!(
            the(&findings, Severity::Warn)
                .message
                .contains("worker w1 is disconnected")
        );
    }

    #[test]
    fn warns_on_nodes_already_drained_or_paused() {
        let mut fx = Fixture::healthy();
        fx.node("w2").availability = Availability::Drain;
        fx.node("m3").availability = Availability::Pause;
        let findings = fx.run(&NodeHealth);
        assert_eq!(findings.len(), 2);
        assert!(findings.iter().all(|f| f.severity == Severity::Warn));
        assert!(
            findings[1]
                .message
                .contains("w2 is already drained before the run: it will stay drained")
        );
        assert!(
            findings[1]
                .message
                .contains("availability is restored exactly); activate it")
        );
        assert!(
            findings[0]
                .message
                .contains("a paused node gets none back (its global services' tasks included)"),
            "{}",
            findings[0].message
        );
    }
}
