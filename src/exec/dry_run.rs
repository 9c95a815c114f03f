//! `--dry-run`: every remote command and Engine API call a run would make,
//! in order, as the actions themselves describe them. Nothing is executed.

use std::collections::BTreeMap;

use super::actions;
use super::context::Cx;
use super::runner::{RunOptions, describe_lease};
use crate::facts::model::Facts;
use crate::plan::Plan;
use crate::playbook::Playbooks;

/// The run id the dry run shows where a real run puts its own.
pub const DRY_RUN_ID: &str = "DRY-RUN";

/// The dry run of `plan`, as text.
pub fn render(plan: &Plan, facts: &Facts, playbooks: &Playbooks, opts: &RunOptions) -> String {
    let cx = Cx::new(plan, facts, playbooks, opts, DRY_RUN_ID);
    let [start, between, end] = describe_lease();
    let mut out = String::from(
        "# dry run: every remote command and Engine API call of the run, in order; nothing is executed\n\
         # (\"a manager other than X\": the first manager, from the end of the plan's order, whose engine answers as one)\n",
    );
    out.push_str(&format!("run {}:\n{}", start.0, start.1.render(None, "  ")));
    let mut batches: BTreeMap<usize, Vec<&crate::plan::Step>> = BTreeMap::new();
    for s in &plan.steps {
        batches.entry(s.batch).or_default().push(s);
    }
    for (i, steps) in batches.values().enumerate() {
        if i > 0 {
            out.push_str(&format!("{}:\n{}", between.0, between.1.render(None, "  ")));
        }
        for s in steps {
            let node = cx.node_of(s);
            out.push_str(&format!(
                "[{}] {} {}\n",
                s.index,
                s.node.as_deref().unwrap_or("swarm"),
                s.action.name()
            ));
            out.push_str(&actions::describe(&cx, s).render(node, "  "));
        }
    }
    out.push_str(&format!("run {}:\n{}", end.0, end.1.render(None, "  ")));
    if plan.reverts_run.is_none() {
        out.push_str("\nif a step of a node fails, that node is rolled back, and the run stops:\n");
        for n in plan.nodes.iter().filter(|n| n.order.is_some()) {
            out.push_str(&format!("{}:\n", n.name));
            out.push_str(&super::undo::describe(&cx, n).render(Some(n), "  "));
        }
    }
    out
}
