//! Waiting for the swarm: adaptive polling and the pure tests of "done".

use std::time::Duration;

use crate::facts::model::{ServiceFacts, ServiceMode, TaskFacts};

/// Polls fast first (a change is usually quick to show), then backs off to
/// half a second, so that detecting a change costs well under a second.
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            next: Duration::from_millis(100),
        }
    }

    pub async fn sleep(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_millis(500));
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

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
                "AppArmor profile could not be loaded: install apparmor (see check known-issues)"
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

    #[test]
    fn only_live_task_states_keep_a_drain_waiting() {
        assert!(task_active("running"));
        assert!(task_active("preparing"));
        assert!(!task_active("shutdown"));
        assert!(!task_active("complete"));
        assert!(!task_active("failed"));
    }
}
