//! The rollback plan: reverting what a run upgraded. Pure.
//!
//! The reverse of the upgrade order: the upgraded workers first (last one
//! first), then the upgraded managers (last one first), each drained,
//! stopped, restored from the backup the reverted run made on the host,
//! started and verified at its old version. As in an upgrade, the managers
//! stay drained until all of them are back, and only one is ever down.

use super::model::{Action, PLAN_FORMAT, Plan, PlanNode};
use super::steps::Steps;
use crate::facts::model::Role;
use crate::version::engine_version_of;

/// The nodes of `upgrade` that `upgraded` names (swarm node IDs, in upgrade
/// order) reverted, as a plan. Nodes whose old version cannot be read are
/// left out (the caller reports them).
pub fn build(upgrade: &Plan, run_id: &str, upgraded: &[String]) -> Plan {
    let mut nodes: Vec<PlanNode> = vec![];
    for id in upgraded.iter().rev() {
        let Some(n) = upgrade.nodes.iter().find(|n| &n.id == id) else {
            continue;
        };
        let Some(old) = engine_version_of(&n.current) else {
            continue;
        };
        let mut r = n.clone();
        r.current = upgrade.target.to_string();
        r.target = old;
        nodes.push(r);
    }
    let workers: Vec<&PlanNode> = nodes.iter().filter(|n| n.role == Role::Worker).collect();
    let managers: Vec<&PlanNode> = nodes.iter().filter(|n| n.role == Role::Manager).collect();

    const REVERT: [Action; 6] = [
        Action::Drain,
        Action::WaitDrained,
        Action::StopEngine,
        Action::Restore,
        Action::StartEngine,
        Action::Verify,
    ];
    let mut steps = Steps::default();
    steps.workers(workers.chunks(1), &REVERT);
    steps.managers(&managers, &REVERT, false);

    let mut order = 0;
    for n in &mut nodes {
        order += 1;
        n.order = Some(order);
    }
    // The other nodes stay in the plan, unreverted: the executor asks the
    // swarm's managers about the nodes it reverts, and a run that upgraded only
    // workers would otherwise leave it no manager to ask.
    for n in &upgrade.nodes {
        if upgraded.contains(&n.id) {
            continue;
        }
        let mut r = n.clone();
        r.target = engine_version_of(&n.current).unwrap_or_else(|| upgrade.target.clone());
        r.order = None;
        r.skip = Some(format!("not upgraded by run {run_id}"));
        nodes.push(r);
    }
    Plan {
        format: PLAN_FORMAT,
        cluster_id: upgrade.cluster_id.clone(),
        target: upgrade.target.clone(),
        max_parallel: 1,
        nodes,
        steps: steps.steps,
        findings: vec![],
        reverts_run: Some(run_id.to_string()),
        // A revert is not a canary: each node is verified at its old version.
        canary: Default::default(),
        operation: super::Operation::Upgrade,
        selection: super::Selection::default(),
        // The images are where the upgrade put them.
        prepull: vec![],
        // A revert runs no hooks: they were written for the upgrade.
        hooks: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverts_workers_then_managers_in_reverse_order() {
        let up = crate::plan::testutil::lab_plan();
        let ids: Vec<String> = up
            .nodes
            .iter()
            .filter(|n| n.order.is_some())
            .map(|n| n.id.clone())
            .collect();
        let rb = build(&up, "r1", &ids);
        let order: Vec<&str> = rb.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(order, ["lab-w2", "lab-w1", "lab-m1", "lab-m3", "lab-m2"]);
        assert!(rb.nodes.iter().all(|n| n.target.to_string() == "20.10.24"));
        assert_eq!(rb.reverts_run.as_deref(), Some("r1"));
        // Managers: one at a time, reactivated only after all are back.
        let first_restore = rb
            .steps
            .iter()
            .position(|s| s.action == Action::RestoreAvailability && s.role == Some(Role::Manager))
            .unwrap();
        let last_verify = rb
            .steps
            .iter()
            .rposition(|s| s.action == Action::Verify)
            .unwrap();
        assert!(first_restore > last_verify);
        assert!(
            rb.steps
                .iter()
                .all(|s| s.action != Action::Install && s.action != Action::Backup)
        );
        for (i, s) in rb.steps.iter().enumerate() {
            assert_eq!(s.index, i + 1);
        }
    }

    #[test]
    fn only_the_upgraded_nodes_are_reverted() {
        let up = crate::plan::testutil::lab_plan();
        let first = up
            .nodes
            .iter()
            .find(|n| n.order == Some(1))
            .unwrap()
            .id
            .clone();
        let rb = build(&up, "r1", std::slice::from_ref(&first));
        let reverted: Vec<&str> = rb
            .nodes
            .iter()
            .filter(|n| n.order.is_some())
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(reverted, [first.as_str()]);
        // The rest stay, unreverted, so that the run has managers to ask.
        assert_eq!(rb.nodes.len(), up.nodes.len());
        assert!(rb.nodes.iter().filter(|n| n.order.is_none()).all(|n| {
            n.skip.as_deref() == Some("not upgraded by run r1")
                && n.at_target()
                && !rb
                    .steps
                    .iter()
                    .any(|s| s.node_id.as_deref() == Some(n.id.as_str()))
        }));
        let last: Vec<Action> = rb.steps.iter().rev().take(2).map(|s| s.action).collect();
        assert_eq!(last, [Action::VerifyServices, Action::WaitConverged]);
    }
}
