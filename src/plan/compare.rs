//! Is a saved plan still the plan for this cluster? `apply --plan` executes
//! exactly what the operator reviewed, and refuses it when the cluster has
//! changed since. Pure.

use super::model::Plan;
use crate::checks::Severity;

/// How `fresh` (planned now) differs from `saved` in what matters: the
/// swarm, its nodes, their versions, availability, roles and packages, and
/// checks that block now. Empty: the saved plan still holds.
pub fn differences(saved: &Plan, fresh: &Plan) -> Vec<String> {
    let mut diffs = vec![];
    if saved.cluster_id != fresh.cluster_id {
        diffs.push(format!(
            "cluster {} is not {}",
            fresh.cluster_id, saved.cluster_id
        ));
    }
    for n in &saved.nodes {
        match fresh.nodes.iter().find(|f| f.id == n.id) {
            None => diffs.push(format!("node {} left the swarm", n.name)),
            Some(f) => {
                if f.current != n.current {
                    diffs.push(format!(
                        "{} runs {} now, {} when planned",
                        n.name, f.current, n.current
                    ));
                }
                if f.availability != n.availability {
                    diffs.push(format!("{} availability changed", n.name));
                }
                if f.role != n.role || f.leader != n.leader {
                    diffs.push(format!("{} role or leadership changed", n.name));
                }
                if f.packages != n.packages {
                    diffs.push(format!("{}: the resolved packages changed", n.name));
                }
            }
        }
    }
    for f in &fresh.nodes {
        if !saved.nodes.iter().any(|n| n.id == f.id) {
            diffs.push(format!("node {} joined the swarm", f.name));
        }
    }
    let blocked: Vec<&str> = fresh
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Block)
        .map(|f| f.id.as_str())
        .collect();
    if !blocked.is_empty() {
        diffs.push(format!("checks block now: {}", blocked.join(", ")));
    }
    diffs
}
