//! The pure tests of "done" that the waits apply to what the swarm says:
//! drained, converged, replicas elsewhere, and why tasks were rejected.

use std::collections::HashMap;

use crate::facts::model::{ServiceFacts, ServiceMode, TaskFacts};

/// Task states in which a container is (or is about to be) on its node.
pub fn task_active(state: &str) -> bool {
    matches!(
        state,
        "assigned" | "accepted" | "preparing" | "ready" | "starting" | "running"
    )
}

/// Services not yet running what they should, as `name running/desired`.
pub fn unconverged(services: &[ServiceFacts]) -> Vec<String> {
    services
        .iter()
        .filter(|s| matches!(s.mode, ServiceMode::Replicated { .. } | ServiceMode::Global))
        .filter_map(|s| {
            let paused = s
                .update_state
                .as_deref()
                .is_some_and(|u| u == "paused" || u.starts_with("rollback"));
            if s.running_tasks != s.desired_tasks {
                Some(format!(
                    "{} {}/{}",
                    s.name, s.running_tasks, s.desired_tasks
                ))
            } else if paused {
                Some(format!(
                    "{} update {}",
                    s.name,
                    s.update_state.as_deref().unwrap_or("")
                ))
            } else {
                None
            }
        })
        .collect()
}

/// Services (with two or more desired replicas) that run a task on `node`
/// and would have no running task left if the nodes in `down` went away.
pub fn last_replicas_on(
    services: &[ServiceFacts],
    tasks: &[TaskFacts],
    node: &str,
    down: &[&str],
) -> Vec<String> {
    // Per service, in one pass over the tasks: (runs here, runs on a node that stays up).
    let mut seen: HashMap<&str, (bool, bool)> = HashMap::new();
    for t in tasks.iter().filter(|t| t.state == "running") {
        let (here, elsewhere) = seen.entry(t.service_id.as_str()).or_default();
        *here |= t.node_id == node;
        *elsewhere |= !t.node_id.is_empty() && !down.contains(&t.node_id.as_str());
    }
    services
        .iter()
        .filter(|s| s.desired_tasks >= 2 && matches!(s.mode, ServiceMode::Replicated { .. }))
        .filter(|s| seen.get(s.id.as_str()) == Some(&(true, false)))
        .map(|s| s.name.clone())
        .collect()
}

/// Known task errors (V6) mapped to their cause.
pub fn rejected_causes(tasks: &[TaskFacts]) -> Vec<String> {
    let mut out: Vec<String> = tasks
        .iter()
        .filter(|t| matches!(t.state.as_str(), "rejected" | "failed") && !t.err.is_empty())
        .map(|t| {
            let cause = if t.err.contains("missing network attachments") {
                "overlay subnet out of addresses (see check overlay-ip-headroom)"
            } else if t.err.contains("No such image") {
                "the image is not on the node and cannot be pulled"
            } else if t.err.contains("swarm scoped network when swarm is not active") {
                "placed before the node's swarm networking was ready: `docker service update --force` the service"
            } else if t.err.contains("AppArmor") {
                "AppArmor profile could not be loaded: install apparmor (see hazard apparmor-parser-23.0)"
            } else {
                "unknown"
            };
            format!("task {} rejected: {} (cause: {cause})", t.id, t.err)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, running: u64, desired: u64) -> ServiceFacts {
        ServiceFacts {
            id: name.into(),
            name: name.into(),
            mode: ServiceMode::Replicated { replicas: desired },
            image: "x".into(),
            constraints: vec![],
            max_replicas_per_node: 0,
            reserved_nano_cpus: 0,
            reserved_memory_bytes: 0,
            running_tasks: running,
            desired_tasks: desired,
            update_state: None,
            published_ports: vec![],
            virtual_ips: vec![],
            bind_mounts: vec![],
            labels: Default::default(),
            networks: vec![],
        }
    }

    #[test]
    fn convergence_needs_every_replica_and_no_paused_update() {
        assert!(unconverged(&[svc("a", 3, 3)]).is_empty());
        assert_eq!(unconverged(&[svc("a", 2, 3)]), ["a 2/3"]);
        let mut paused = svc("b", 1, 1);
        paused.update_state = Some("paused".into());
        assert_eq!(unconverged(&[paused]), ["b update paused"]);
    }

    #[test]
    fn known_task_errors_get_a_cause() {
        let t = TaskFacts {
            id: "t1".into(),
            service_id: "s".into(),
            node_id: "n".into(),
            state: "rejected".into(),
            err: "node is missing network attachments, ip addresses may be exhausted".into(),
            network_addrs: vec![],
        };
        let c = rejected_causes(&[t]);
        assert!(c[0].contains("overlay subnet out of addresses"), "{c:?}");
    }

    fn task(service: &str, node: &str, state: &str) -> TaskFacts {
        TaskFacts {
            id: format!("{service}-{node}"),
            service_id: service.into(),
            node_id: node.into(),
            state: state.into(),
            err: String::new(),
            network_addrs: vec![],
        }
    }

    #[test]
    fn a_drain_waits_for_the_last_replicas_of_a_service_elsewhere() {
        let services = [svc("web", 3, 3), svc("solo", 1, 1)];
        // web runs on w1 and w2 only; w1 is drained already.
        let tasks = [
            task("web", "w1", "shutdown"),
            task("web", "w2", "running"),
            task("web", "w2", "running"),
            task("web", "m1", "starting"),
            task("solo", "w2", "running"),
        ];
        assert_eq!(
            last_replicas_on(&services, &tasks, "w2", &["w2", "w1"]),
            ["web"]
        );
        // Once the replacement on m1 runs, w2 may go.
        let mut moved = tasks.clone();
        moved[3].state = "running".into();
        assert!(last_replicas_on(&services, &moved, "w2", &["w2", "w1"]).is_empty());
        // Not this node's problem when it runs no task of the service.
        assert!(last_replicas_on(&services, &tasks, "m1", &["m1"]).is_empty());
    }

    #[test]
    fn only_live_task_states_keep_a_drain_waiting() {
        assert!(task_active("running"));
        assert!(task_active("preparing"));
        assert!(!task_active("shutdown"));
        assert!(!task_active("complete"));
        assert!(!task_active("failed"));
    }
}
