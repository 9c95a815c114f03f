//! `--dry-run`: every remote command and Engine API call a run would make,
//! in order, as the actions themselves describe them. Nothing is executed.

use std::collections::BTreeMap;

use super::actions;
use super::context::Cx;
use super::heartbeat::describe_lease;
use super::operation::Description;
use super::runner::RunOptions;
use crate::facts::model::Facts;
use crate::plan::Plan;
use crate::playbook::Playbooks;

/// The run id the dry run shows where a real run puts its own.
pub const DRY_RUN_ID: &str = "DRY-RUN";

/// What a run of a plan does, part by part.
pub struct RunDescription {
    /// Before the first step: the lease taken.
    pub start: Description,
    /// Between two batches: the lease renewed.
    pub between_batches: Description,
    /// After the last step: the lease released.
    pub end: Description,
    /// Per step index.
    pub steps: BTreeMap<usize, Description>,
    /// Per node ID: what undoing a failed node does (upgrade plans only: a
    /// failed revert is left to a person).
    pub undo: BTreeMap<String, Description>,
}

/// Describes the run of `plan` (run id `run_id`).
pub fn describe(
    plan: &Plan,
    facts: &Facts,
    playbooks: &Playbooks,
    opts: &RunOptions,
    run_id: &str,
) -> RunDescription {
    let cx = Cx::new(plan, facts, playbooks, opts, run_id);
    let [start, between, end] = describe_lease();
    RunDescription {
        start: start.1,
        between_batches: between.1,
        end: end.1,
        steps: plan
            .steps
            .iter()
            .map(|s| (s.index, actions::describe(&cx, s)))
            .collect(),
        undo: if plan.reverts_run.is_none() {
            plan.nodes
                .iter()
                .filter(|n| n.order.is_some())
                .map(|n| (n.id.clone(), super::undo::describe(&cx, n)))
                .collect()
        } else {
            BTreeMap::new()
        },
    }
}

/// The dry run of `plan`, as text.
pub fn render(plan: &Plan, facts: &Facts, playbooks: &Playbooks, opts: &RunOptions) -> String {
    let d = describe(plan, facts, playbooks, opts, DRY_RUN_ID);
    let mut out = String::from(
        "# dry run: every remote command and Engine API call of the run, in order; nothing is executed\n\
         # (\"a manager other than X\": the first manager, from the end of the plan's order, whose engine answers as one)\n",
    );
    if !opts.windows.is_empty() {
        out.push_str(&format!(
            "# maintenance windows: {}; a node starts only within one (a node started is finished whatever the time)\n",
            opts.windows
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push_str("# at every safe point (between batches) the run obeys `swarm-upgrade pause|continue|abort` from the lease\n");
    out.push_str(&format!("run start:\n{}", d.start.render(None, "  ")));
    let mut last_batch = None;
    for s in &plan.steps {
        if last_batch.is_some_and(|b| b != s.batch) {
            out.push_str(&format!(
                "between batches:\n{}",
                d.between_batches.render(None, "  ")
            ));
        }
        last_batch = Some(s.batch);
        let node = s
            .node_id
            .as_ref()
            .and_then(|id| plan.nodes.iter().find(|n| &n.id == id));
        out.push_str(&format!(
            "[{}] {} {}\n",
            s.index,
            s.node.as_deref().unwrap_or("swarm"),
            s.label()
        ));
        out.push_str(&d.steps[&s.index].render(node, "  "));
    }
    out.push_str(&format!("run end:\n{}", d.end.render(None, "  ")));
    if !d.undo.is_empty() {
        out.push_str("\nif a step of a node fails, that node is rolled back and the run stops:\n");
        for n in plan.nodes.iter().filter(|n| d.undo.contains_key(&n.id)) {
            out.push_str(&format!("{}:\n", n.name));
            out.push_str(&d.undo[&n.id].render(Some(n), "  "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testutil::{lab_facts, lab_plan};

    /// The dry run of the lab's plan, whole: what an operator reads before
    /// saying yes. Every part comes from an action's own description.
    #[test]
    fn the_dry_run_of_the_lab_plan() {
        let playbooks = Playbooks::load(&[] as &[&std::path::Path]).unwrap();
        let text = render(
            &lab_plan(),
            &lab_facts(),
            &playbooks,
            &RunOptions::default(),
        );
        insta::assert_snapshot!(text);
        for needle in [
            "POST /configs/create swarm-upgrade-lease",
            r#"GET /nodes?filters={"role":["manager"]}  (repeated until every manager is reachable"#,
            "label swarm-upgrade.run=DRY-RUN",
            "label swarm-upgrade.done=26.1.5",
            "docker swarm unlock  (stdin: the swarm unlock key)  (only if the manager comes back locked",
            "DELETE it when it is this run's",
        ] {
            assert!(text.contains(needle), "missing {needle:?}");
        }
    }
}
