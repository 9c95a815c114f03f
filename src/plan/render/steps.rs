//! The step listing of the plan table: steps grouped by phase and batch,
//! each node's actions chained with arrows and wrapped to the width.

use std::collections::BTreeMap;

use super::super::model::{Action, Phase, Plan, PlanNode, Step};
use super::*;

/// One line of the step listing.
struct Line {
    /// Step indexes, `3-9`; empty for notes that are not steps.
    range: String,
    label: String,
    node: String,
    /// Actions, joined with arrows (and wrapped there).
    chain: Vec<String>,
}

pub(super) fn steps_text(plan: &Plan, width: u16) -> String {
    if plan.steps.is_empty() {
        return "Steps: none, no node is upgraded.\n".to_string();
    }
    let nodes: BTreeMap<&str, &PlanNode> = plan.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let batches = group_batches(&plan.steps);
    // A batch of service verifications (or a canary's soak, or the pause
    // after it) follows the batch it verifies and is not counted as one of
    // its own.
    let only = |steps: &[&Step], a: Action| steps.iter().all(|s| s.action == a);
    let verifies = |steps: &[&Step]| only(steps, Action::VerifyServices);
    let counted = |b: &&(Phase, Vec<&Step>)| {
        !verifies(&b.1)
            && !only(&b.1, Action::Soak)
            && !only(&b.1, Action::Pause)
            && !only(&b.1, Action::Prepull)
    };
    let total = |phase: Phase| {
        batches
            .iter()
            .filter(counted)
            .filter(|b| b.0 == phase)
            .count()
    };
    let mut lines = vec![];
    for (i, (phase, steps)) in batches.iter().enumerate() {
        let nth = batches[..=i]
            .iter()
            .filter(counted)
            .filter(|b| b.0 == *phase)
            .count();
        let mut label = match phase {
            _ if verifies(steps) => "verify".to_string(),
            _ if only(steps, Action::Soak) => "canary soak".to_string(),
            _ if only(steps, Action::Pause) => "pause".to_string(),
            _ if only(steps, Action::Prepull) => "before any drain".to_string(),
            Phase::Managers => format!("managers {nth}/{}", total(Phase::Managers)),
            Phase::Reactivate => "reactivate".to_string(),
            Phase::Workers => format!("workers {nth}/{}", total(Phase::Workers)),
        };
        // Per node (in order of appearance), then the cluster-wide steps.
        let mut order: Vec<Option<&str>> = vec![];
        for s in steps {
            let key = s.node_id.as_deref();
            if !order.contains(&key) {
                order.push(key);
            }
        }
        order.sort_by_key(|k| k.is_none());
        for key in order {
            let own: Vec<&Step> = steps
                .iter()
                .copied()
                .filter(|s| s.node_id.as_deref() == key)
                .collect();
            let node = key.and_then(|id| nodes.get(id).copied());
            let mut chain: Vec<String> = own.iter().map(|s| action_label(s)).collect();
            if let Some(n) = node
                && n.availability == Availability::Drain
            {
                chain[0] = format!("(already drained) {}", chain[0]);
                if n.role == Role::Worker {
                    let last = chain.len() - 1;
                    chain[last] = format!("{} (stays drained)", chain[last]);
                }
            }
            lines.push(Line {
                range: range_of(&own),
                label: std::mem::take(&mut label),
                node: match (node, key) {
                    (Some(n), _) if n.leader && *phase == Phase::Managers => {
                        format!("{} (leader)", n.name)
                    }
                    (Some(n), _) => n.name.clone(),
                    (None, Some(_)) => own[0].node.clone().unwrap_or_default(),
                    (None, None) => "(swarm)".to_string(),
                },
                chain,
            });
        }
        if *phase == Phase::Reactivate && !verifies(steps) {
            // Managers drained before the run get no restore step: say so.
            let at = lines.len() - 1;
            for n in plan.nodes.iter().filter(|n| {
                n.role == Role::Manager && n.skip.is_none() && n.availability == Availability::Drain
            }) {
                lines.insert(
                    at,
                    Line {
                        range: String::new(),
                        label: String::new(),
                        node: n.name.clone(),
                        chain: vec!["stays drained (drained before the run)".to_string()],
                    },
                );
            }
        }
    }
    let w_range = lines.iter().map(|l| l.range.len()).max().unwrap_or(0);
    let w_label = lines.iter().map(|l| l.label.len()).max().unwrap_or(0) + 1;
    let w_node = lines
        .iter()
        .map(|l| l.node.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "Steps ({}): batches run one after the other; the nodes of a worker batch run in parallel.\n",
        plan.steps.len()
    );
    // Say why worker batches are smaller than --max-parallel allows.
    let widest = batches
        .iter()
        .filter(|(phase, _)| *phase == Phase::Workers)
        .map(|(_, steps)| {
            let mut ids: Vec<&str> = steps.iter().filter_map(|s| s.node_id.as_deref()).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        })
        .max();
    let upgraded_workers = plan
        .nodes
        .iter()
        .filter(|n| n.role == Role::Worker && n.skip.is_none())
        .count();
    if let Some(widest) = widest
        && widest < plan.max_parallel.min(upgraded_workers)
    {
        out.push_str(&format!(
            "Worker batches hold at most {widest} node(s), not {}: enough active workers stay up to take over their tasks.\n",
            plan.max_parallel
        ));
    }
    for l in lines {
        let label = if l.label.is_empty() {
            String::new()
        } else {
            format!("{}:", l.label)
        };
        let prefix = format!(
            "  {:>w_range$}  {label:<w_label$}  {:<w_node$}  ",
            l.range, l.node
        );
        out.push_str(&wrap_chain(&prefix, &l.chain, usize::from(width)));
    }
    out
}

/// Consecutive steps of one batch, with their phase.
fn group_batches(steps: &[Step]) -> Vec<(Phase, Vec<&Step>)> {
    let mut batches: Vec<(Phase, usize, Vec<&Step>)> = vec![];
    for s in steps {
        match batches.last_mut() {
            Some((phase, batch, list)) if *phase == s.phase && *batch == s.batch => list.push(s),
            _ => batches.push((s.phase, s.batch, vec![s])),
        }
    }
    batches.into_iter().map(|(p, _, l)| (p, l)).collect()
}

fn range_of(steps: &[&Step]) -> String {
    let first = steps.iter().map(|s| s.index).min().unwrap_or(0);
    let last = steps.iter().map(|s| s.index).max().unwrap_or(0);
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

fn action_label(s: &Step) -> String {
    match (s.action, s.availability) {
        (Action::RestoreAvailability, Some(a)) => {
            format!("{} ({})", s.action.name(), name_of(&a))
        }
        _ => s.label(),
    }
}

/// `prefix` then the chain joined by arrows, wrapped after an arrow when it
/// would pass `width`; continuation lines are indented under the chain.
fn wrap_chain(prefix: &str, chain: &[String], width: usize) -> String {
    let indent = prefix.chars().count();
    let mut out = prefix.to_string();
    let mut col = indent;
    for (i, item) in chain.iter().enumerate() {
        let last = i + 1 == chain.len();
        let piece = if last {
            item.clone()
        } else {
            format!("{item} →")
        };
        let len = piece.chars().count();
        if i > 0 {
            if col + 1 + len > width {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                col = indent;
            } else {
                out.push(' ');
                col += 1;
            }
        }
        out.push_str(&piece);
        col += len;
    }
    out.push('\n');
    out
}
