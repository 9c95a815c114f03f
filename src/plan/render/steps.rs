//! The step listing of the plan table: steps grouped by phase and batch,
//! each node's actions chained with arrows and wrapped to the width. At
//! scale, consecutive batches that do the same (a worker batch, its
//! convergence, its verification) are shown once, as a template; `--wide`
//! lists every batch.

use std::collections::BTreeMap;

use super::super::model::{Action, Phase, Plan, PlanNode, Step};
use super::*;

/// One line of the step listing.
#[derive(Clone)]
struct Line {
    /// Step indexes, `3-9`; empty for notes that are not steps.
    range: String,
    label: String,
    node: String,
    /// Whether it is a node's line (not the swarm's, not a note).
    is_node: bool,
    /// Actions, joined with arrows (and wrapped there).
    chain: Vec<String>,
}

/// The lines of one batch, and what grouping needs to know of it.
struct Block<'a> {
    phase: Phase,
    /// Counted as a batch of its phase (`workers 3/9`), not a verification,
    /// soak or pause that follows one.
    counted: bool,
    /// Stages the nodes of the batch that follows it, and is listed with it.
    stage: bool,
    nth: usize,
    steps: Vec<&'a Step>,
    lines: Vec<Line>,
}

pub(super) fn steps_text(plan: &Plan, width: u16, wide: bool) -> String {
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
            && !only(&b.1, Action::Stage)
    };
    let total = |phase: Phase| {
        batches
            .iter()
            .filter(counted)
            .filter(|b| b.0 == phase)
            .count()
    };
    let mut blocks: Vec<Block> = vec![];
    for (i, (phase, steps)) in batches.iter().enumerate() {
        let mut lines = vec![];
        let nth = batches[..=i]
            .iter()
            .filter(counted)
            .filter(|b| b.0 == *phase)
            .count();
        let stage = only(steps, Action::Stage);
        // A node's stage batch carries the label of the batch that drains it,
        // which follows unlabelled: the two read as one.
        let staged_before = i > 0 && only(&batches[i - 1].1, Action::Stage);
        let mut label = match phase {
            _ if stage && *phase == Phase::Managers => {
                format!("managers {}/{}", nth + 1, total(Phase::Managers))
            }
            _ if stage => format!("workers {}/{}", nth + 1, total(Phase::Workers)),
            _ if staged_before => String::new(),
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
                is_node: key.is_some(),
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
                        is_node: false,
                        chain: vec!["stays drained (drained before the run)".to_string()],
                    },
                );
            }
        }
        blocks.push(Block {
            phase: *phase,
            counted: counted(&&batches[i]),
            stage,
            nth,
            steps: steps.clone(),
            lines,
        });
    }
    let alone = super::group::alone(plan);
    let (lines, grouped) = if wide {
        (blocks.into_iter().flat_map(|b| b.lines).collect(), 0)
    } else {
        group_rounds(blocks, &alone, &nodes)
    };
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
    if grouped > 0 {
        out.push_str(&format!(
            "{} batches grouped; --wide lists every step\n",
            super::group::thousands(grouped)
        ));
    }
    out
}

/// A batch of managers or workers and the verifications, soak or pause
/// that follow it.
type Round<'a> = Vec<Block<'a>>;

/// What a round shows but its nodes' names and step numbers: per batch, its
/// kind and its lines (node lines as one, since all must be alike).
type RoundKey = Vec<(String, Vec<(bool, Vec<String>)>)>;

/// The lines of `blocks`, runs of at least [`super::group::MIN_RUN`] alike
/// rounds shown once; and how many batches were grouped.
fn group_rounds(
    blocks: Vec<Block>,
    alone: &std::collections::BTreeSet<&str>,
    nodes: &BTreeMap<&str, &PlanNode>,
) -> (Vec<Line>, usize) {
    let mut rounds: Vec<Round> = vec![];
    for b in blocks {
        match rounds.last_mut() {
            // The batch a stage batch prepares joins its round.
            Some(r) if b.counted && r.iter().all(|x| x.stage) => r.push(b),
            Some(r) if !b.counted && !b.stage && r.iter().any(|x| x.counted) => r.push(b),
            _ => rounds.push(vec![b]),
        }
    }
    let keys: Vec<Option<RoundKey>> = rounds.iter().map(|r| round_key(r, alone)).collect();
    let (mut lines, mut grouped) = (vec![], 0);
    let mut i = 0;
    while i < rounds.len() {
        let mut j = i + 1;
        if keys[i].is_some() {
            while j < rounds.len() && keys[j] == keys[i] {
                j += 1;
            }
        }
        if j - i >= super::group::MIN_RUN {
            lines.extend(template(&rounds[i..j], nodes));
            grouped += j - i;
        } else {
            for r in &rounds[i..j] {
                lines.extend(r.iter().flat_map(|b| b.lines.iter().cloned()));
            }
        }
        i = j;
    }
    (lines, grouped)
}

/// The [`RoundKey`] of a round; none when it must be shown as it is: not a manager or worker batch, a canary or the
/// leader in it, or nodes of one batch doing different things.
fn round_key(r: &Round, alone: &std::collections::BTreeSet<&str>) -> Option<RoundKey> {
    let head = r.iter().find(|b| b.counted)?;
    if head.phase == Phase::Reactivate {
        return None;
    }
    let mut key = vec![];
    for b in r {
        if b.steps
            .iter()
            .any(|s| s.node_id.as_deref().is_some_and(|id| alone.contains(id)))
        {
            return None;
        }
        let mut lines: Vec<(bool, Vec<String>)> = vec![];
        for l in &b.lines {
            if l.is_node
                && let Some(first) = lines.iter().find(|(is_node, _)| *is_node)
            {
                if first.1 != l.chain {
                    return None;
                }
                continue;
            }
            lines.push((l.is_node, l.chain.clone()));
        }
        let label = if b.counted || b.stage {
            format!("{:?}{}", b.phase, if b.stage { " stage" } else { "" })
        } else {
            b.lines.first().map(|l| l.label.clone()).unwrap_or_default()
        };
        key.push((label, lines));
    }
    Some(key)
}

/// A run of alike rounds: one line that says which batches and nodes, then
/// the first round's lines with `each node` for its nodes.
fn template<'a>(rounds: &'a [Round], nodes: &BTreeMap<&str, &PlanNode>) -> Vec<Line> {
    use super::group::thousands;
    // The counted batch of a round (after its stage batch, if any).
    let head_of = |r: &'a Round| r.iter().find(|b| b.counted).unwrap_or(&r[0]);
    let head = head_of(&rounds[0]);
    let last = head_of(&rounds[rounds.len() - 1]);
    let steps = || rounds.iter().flatten().flat_map(|b| b.steps.iter());
    let first_step = steps().map(|s| s.index).min().unwrap_or(0);
    let last_step = steps().map(|s| s.index).max().unwrap_or(0);
    let name = |s: &&Step| {
        s.node_id
            .as_deref()
            .and_then(|id| nodes.get(id))
            .map(|n| n.name.clone())
    };
    let names: Vec<String> = rounds
        .iter()
        .flat_map(|r| head_of(r).steps.iter().filter_map(name))
        .fold(vec![], |mut v, n| {
            if v.last() != Some(&n) {
                v.push(n);
            }
            v
        });
    let sizes: Vec<usize> = rounds
        .iter()
        .map(|r| {
            let mut ids: Vec<&str> = head_of(r)
                .steps
                .iter()
                .filter_map(|s| s.node_id.as_deref())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        })
        .collect();
    let count: usize = sizes.iter().sum();
    let (min, max) = (
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
    );
    let role = match head.phase {
        Phase::Managers => "managers",
        _ => "workers",
    };
    let how = if max == 1 {
        "one at a time, each:".to_string()
    } else if min == max {
        format!(
            "in {} batches of {max}, each batch:",
            thousands(rounds.len())
        )
    } else {
        format!(
            "in {} batches of {min}–{max}, each batch:",
            thousands(rounds.len())
        )
    };
    // From the counted label: the head's, or its stage batch's before it.
    let total = rounds[0]
        .iter()
        .filter_map(|b| b.lines.first())
        .find_map(|l| l.label.rsplit_once('/'))
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    let phase = match head.phase {
        Phase::Managers => "managers",
        _ => "workers",
    };
    let mut out = vec![Line {
        range: format!("{first_step}-{last_step}"),
        label: format!("{phase} {}–{}/{total}", head.nth, last.nth),
        node: match (names.first(), names.last()) {
            (Some(a), Some(b)) => format!("{a} … {b}"),
            _ => String::new(),
        },
        is_node: false,
        chain: vec![format!("{} {role} {how}", thousands(count))],
    }];
    for (i, b) in rounds[0].iter().enumerate() {
        let mut label = if i == 0 || b.counted {
            String::new()
        } else {
            b.lines.first().map(|l| l.label.clone()).unwrap_or_default()
        };
        let mut node_shown = false;
        for l in &b.lines {
            if l.is_node && std::mem::replace(&mut node_shown, true) {
                continue;
            }
            out.push(Line {
                range: String::new(),
                label: std::mem::take(&mut label),
                node: if l.is_node {
                    "each node".to_string()
                } else {
                    l.node.clone()
                },
                is_node: l.is_node,
                chain: l.chain.clone(),
            });
        }
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
