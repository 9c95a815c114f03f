//! Plan output at scale: which nodes share one row of the node table.
//!
//! At 2,000 nodes a row per node is ~14,000 lines that say the same thing
//! again and again. Consecutive nodes (in plan order) that would print the
//! same row, but for their order and name, become one row when there are at
//! least [`MIN_RUN`] of them. What an operator must see alone stays alone:
//! the leader, the canaries (the first to go), and any node with something
//! of its own (a finding, a hook, another package transition). `--wide`
//! turns grouping off; JSON is never grouped.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::checks::Severity;
use crate::facts::model::{Availability, Role};
use crate::version::resolve::{Method, PackageChange};

use super::super::model::{Action, Plan, PlanNode};

/// The shortest run shown as one row: two alike nodes read fine as two.
pub(super) const MIN_RUN: usize = 3;

/// The node table's rows as ranges of `plan.nodes`: a single node, or a
/// run of at least [`MIN_RUN`] alike ones. `wide`: one row per node.
pub(super) fn node_rows(plan: &Plan, wide: bool) -> Vec<Range<usize>> {
    let n = plan.nodes.len();
    if wide {
        return (0..n).map(|i| i..i + 1).collect();
    }
    let alone = alone(plan);
    let findings = findings_by_node(plan);
    let keys: Vec<Option<Key>> = plan
        .nodes
        .iter()
        .map(|node| (!alone.contains(node.id.as_str())).then(|| key(plan, node, &findings)))
        .collect();
    let mut rows = vec![];
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        if keys[i].is_some() {
            while j < n && keys[j] == keys[i] {
                j += 1;
            }
        }
        if j - i >= MIN_RUN {
            rows.push(i..j);
        } else {
            rows.extend((i..j).map(|k| k..k + 1));
        }
        i = j;
    }
    rows
}

/// Everything a node's row and its steps show, but its order and name.
#[derive(PartialEq, Eq)]
struct Key<'a> {
    role: Role,
    availability: Availability,
    current: &'a str,
    target: String,
    method: Option<Method>,
    packages: &'a [PackageChange],
    bundle: Option<&'a str>,
    skip: Option<&'a str>,
    restarted: bool,
    /// Its findings (check and severity: the messages name the node).
    findings: Vec<(&'a str, Severity)>,
    /// The hooks that name it (those for every node, or a role, it shares).
    hooks: Vec<usize>,
}

fn key<'a>(
    plan: &'a Plan,
    n: &'a PlanNode,
    findings: &BTreeMap<&str, Vec<(&'a str, Severity)>>,
) -> Key<'a> {
    Key {
        role: n.role,
        availability: n.availability,
        current: &n.current,
        target: n.target.to_string(),
        method: n.method,
        packages: &n.packages,
        bundle: n.bundle.as_deref(),
        skip: n.skip.as_deref(),
        restarted: n.restarted,
        findings: findings.get(n.name.as_str()).cloned().unwrap_or_default(),
        hooks: plan
            .hooks
            .iter()
            .enumerate()
            .filter(|(_, h)| h.nodes.iter().any(|x| *x == n.name || *x == n.id))
            .map(|(i, _)| i)
            .collect(),
    }
}

fn findings_by_node(plan: &Plan) -> BTreeMap<&str, Vec<(&str, Severity)>> {
    let mut by: BTreeMap<&str, Vec<(&str, Severity)>> = BTreeMap::new();
    for f in &plan.findings {
        if let Some(node) = f.node.as_deref() {
            by.entry(node)
                .or_default()
                .push((f.id.as_str(), f.severity));
        }
    }
    for v in by.values_mut() {
        v.sort_unstable();
    }
    by
}

/// IDs of the nodes never grouped: the leader, and the canaries (the nodes
/// soaked, the first manager and the first worker batch; a rollback plan
/// has none).
pub(super) fn alone(plan: &Plan) -> BTreeSet<&str> {
    let mut ids: BTreeSet<&str> = plan
        .nodes
        .iter()
        .filter(|n| n.leader)
        .map(|n| n.id.as_str())
        .collect();
    if plan.reverts_run.is_some() {
        return ids;
    }
    ids.extend(
        plan.steps
            .iter()
            .filter(|s| s.action == Action::Soak)
            .filter_map(|s| s.node_id.as_deref()),
    );
    for role in [Role::Manager, Role::Worker] {
        let first = plan
            .steps
            .iter()
            .find(|s| s.role == Some(role) && s.node_id.is_some())
            .map(|s| s.batch);
        if let Some(b) = first {
            ids.extend(
                plan.steps
                    .iter()
                    .filter(|s| s.batch == b)
                    .filter_map(|s| s.node_id.as_deref()),
            );
        }
    }
    ids
}

/// `1,995`: counts at scale are read, not parsed.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1,995 workers: w0004 … w1998`, on two lines: the NODE column stays
/// narrow, and PACKAGES keeps its room.
pub(super) fn names(nodes: &[PlanNode]) -> String {
    let (Some(first), Some(last)) = (nodes.first(), nodes.last()) else {
        return String::new();
    };
    let role = match first.role {
        Role::Manager => "managers",
        Role::Worker => "workers",
    };
    format!(
        "{} {role}:\n{} … {}",
        thousands(nodes.len()),
        first.name,
        last.name
    )
}

/// `4–1998` (an en dash: a range, not a minus); `-` for nodes not upgraded.
pub(super) fn orders(nodes: &[PlanNode]) -> String {
    match (
        nodes.first().and_then(|n| n.order),
        nodes.last().and_then(|n| n.order),
    ) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{TABLE_WIDTH, json, table_for, table_with};
    use super::*;
    use crate::checks::Finding;
    use crate::plan::testutil::{lab_plan, scale_facts, scale_plan};

    /// The plan of `facts` (every node resolved, no findings) with `opts`.
    fn build_for(facts: &crate::facts::model::Facts, opts: &crate::plan::PlanOptions) -> Plan {
        crate::plan::build(
            facts,
            &crate::plan::testutil::all_resolved(facts),
            vec![],
            opts,
        )
    }

    /// The rows as `first..last` node names, one string per row.
    fn rows(plan: &Plan) -> Vec<String> {
        node_rows(plan, false)
            .into_iter()
            .map(|r| {
                let nodes = &plan.nodes[r];
                match nodes {
                    [one] => one.name.clone(),
                    _ => format!("{}..{}", nodes[0].name, nodes[nodes.len() - 1].name),
                }
            })
            .collect()
    }

    fn fits(text: &str) {
        for line in text.lines() {
            assert!(line.chars().count() <= usize::from(TABLE_WIDTH), "{line:?}");
        }
    }

    #[test]
    fn the_lab_is_not_grouped() {
        let plan = lab_plan();
        assert_eq!(node_rows(&plan, false), node_rows(&plan, true));
        assert_eq!(table_for(&plan, false), table_for(&plan, true));
        assert!(!table_for(&plan, false).contains("grouped"));
    }

    #[test]
    fn runs_of_two_are_not_grouped() {
        // m2 (canary), m3, m1 (leader); w0001 (canary), then only two alike.
        let plan = scale_plan(3, 3, 1);
        assert_eq!(rows(&plan), ["m2", "m3", "m1", "w0001", "w0002", "w0003"]);
        assert_eq!(table_for(&plan, false), table_for(&plan, true));
        // One more makes a run of three.
        let plan = scale_plan(3, 4, 1);
        assert_eq!(rows(&plan), ["m2", "m3", "m1", "w0001", "w0002..w0004"]);
    }

    #[test]
    fn the_leader_and_the_canaries_keep_their_own_rows() {
        // Managers: m2 is the canary, m1 leads; the first worker batch (2)
        // are the canaries.
        let plan = scale_plan(6, 10, 2);
        assert_eq!(
            rows(&plan),
            ["m2", "m3..m6", "m1", "w0001", "w0002", "w0003..w0010"]
        );
        // With a soak, the canaries are the nodes soaked: the same ones.
        let facts = scale_facts(6, 10);
        let soaked = build_for(
            &facts,
            &crate::plan::PlanOptions {
                canary: crate::plan::Canary {
                    soak_secs: 30,
                    soak_checks: 3,
                    pause: false,
                },
                ..crate::plan::testutil::opts(2)
            },
        );
        assert_eq!(rows(&soaked), rows(&plan));
    }

    #[test]
    fn a_node_with_another_package_transition_breaks_a_run() {
        let mut plan = scale_plan(3, 10, 1);
        let w6 = plan.nodes.iter_mut().find(|n| n.name == "w0006").unwrap();
        w6.packages[2].to = "1.7.25~ds1-1".into();
        assert_eq!(
            rows(&plan),
            [
                "m2",
                "m3",
                "m1",
                "w0001",
                "w0002..w0005",
                "w0006",
                "w0007..w0010"
            ]
        );
        let text = table_for(&plan, false);
        assert!(text.contains("→ 1.7.25~ds1-1"), "{text}");
        assert!(
            text.contains("8 nodes grouped; --wide lists every node"),
            "{text}"
        );
    }

    #[test]
    fn a_node_with_a_finding_of_its_own_is_not_grouped() {
        let mut plan = scale_plan(3, 10, 1);
        plan.findings.push(Finding::warn(
            "standalone-containers",
            Some("w0004"),
            "1 container is not managed by swarm",
        ));
        assert_eq!(
            rows(&plan),
            [
                "m2",
                "m3",
                "m1",
                "w0001",
                "w0002",
                "w0003",
                "w0004",
                "w0005..w0010"
            ]
        );
        // The same finding on every node is shared: the run holds.
        let mut plan = scale_plan(3, 10, 1);
        for i in 1..=10 {
            plan.findings.push(Finding::warn(
                "package-hold",
                Some(&format!("w{i:04}")),
                "not held",
            ));
        }
        assert_eq!(rows(&plan), ["m2", "m3", "m1", "w0001", "w0002..w0010"]);
    }

    #[test]
    fn another_availability_breaks_a_run_and_its_steps() {
        let mut facts = scale_facts(3, 12);
        for n in &mut facts.cluster.nodes {
            if n.hostname == "w0007" {
                n.availability = Availability::Drain;
            }
        }
        let plan = build_for(&facts, &crate::plan::testutil::opts(1));
        assert_eq!(
            rows(&plan),
            [
                "m2",
                "m3",
                "m1",
                "w0001",
                "w0002..w0006",
                "w0007",
                "w0008..w0012"
            ]
        );
        let text = table_for(&plan, false);
        fits(&text);
        // The drained worker's batch is listed as it is, between two groups.
        let has = |a: &str, b: &str| text.lines().any(|l| l.contains(a) && l.contains(b));
        assert!(has("workers 2–6/12:", "w0002 … w0006"), "{text}");
        assert!(
            has("workers 7/12:", "(already drained) wait-drained"),
            "{text}"
        );
        assert!(has("workers 8–12/12:", "w0008 … w0012"), "{text}");
        assert!(
            text.contains("10 batches grouped; --wide lists every step"),
            "{text}"
        );
    }

    #[test]
    fn nodes_out_of_scope_are_grouped_without_an_order() {
        let facts = scale_facts(3, 6);
        let plan = build_for(
            &facts,
            &crate::plan::PlanOptions {
                selection: crate::plan::Selection {
                    selectors: vec!["role=manager".into()],
                    ..Default::default()
                },
                ..crate::plan::testutil::opts(1)
            },
        );
        assert_eq!(rows(&plan), ["m2", "m3", "m1", "w0001..w0006"]);
        let text = table_for(&plan, false);
        assert!(text.contains("\n-      6 workers:"), "{text}");
    }

    #[test]
    fn wide_lists_every_node_and_step() {
        let plan = scale_plan(5, 995, 1);
        let wide = table_for(&plan, true);
        let grouped = table_for(&plan, false);
        for n in &plan.nodes {
            assert!(
                wide.contains(&format!(" {}  ", n.name)),
                "{} missing",
                n.name
            );
        }
        assert!(!grouped.contains(" w0500 "), "{grouped}");
        assert!(!wide.contains("grouped"));
        assert!(wide.lines().count() > 10 * grouped.lines().count());
    }

    #[test]
    fn json_is_never_grouped() {
        let plan = scale_plan(5, 1995, 1);
        let doc = json(&plan);
        assert_eq!(doc["nodes"].as_array().map(Vec::len), Some(2000));
        assert_eq!(
            doc["steps"].as_array().map(Vec::len),
            Some(plan.steps.len())
        );
        assert!(!doc.to_string().contains('…'));
    }

    #[test]
    fn counts_have_thousand_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1995), "1,995");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    /// 2,000 nodes, one worker at a time: a page, not 14,000 lines.
    #[test]
    fn two_thousand_nodes_table() {
        let text = table_for(&scale_plan(5, 1995, 1), false);
        fits(&text);
        insta::assert_snapshot!(text);
    }

    /// Batches of --max-parallel: grouped after the canary batch, the last
    /// (smaller) one included.
    #[test]
    fn batches_table() {
        let text = table_with(&scale_plan(5, 14, 3), 120, false);
        fits(&text);
        insta::assert_snapshot!(text);
    }

    /// Staged (debian-apt): each stage batch is listed, and grouped, with
    /// the batch it prepares; the counts are of those batches only.
    #[test]
    fn staged_batches_table() {
        let facts = scale_facts(5, 14);
        let opts = crate::plan::PlanOptions {
            staged: vec![crate::plan::Staged {
                method: crate::version::resolve::Method::DebianApt,
                while_running: true,
            }],
            ..crate::plan::testutil::opts(3)
        };
        let text = table_with(&build_for(&facts, &opts), 120, false);
        fits(&text);
        assert!(text.contains("managers 2–4/5"), "{text}");
        insta::assert_snapshot!(text);
    }
}
