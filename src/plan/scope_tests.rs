//! The restart plan and node selection, as the planner lays them out.

use super::build::{PlanOptions, build};
use super::model::{Action, Operation, Plan};
use super::select::Selection;
use super::testutil::{all_resolved, lab_facts, pin};
use crate::facts::model::Role;

fn plan(operation: Operation, selection: Selection, max_parallel: usize) -> Plan {
    let facts = lab_facts();
    build(
        &facts,
        &all_resolved(&facts),
        vec![],
        &PlanOptions {
            pin: pin("26.1.5"),
            max_parallel,
            canary: Default::default(),
            operation,
            selection,
            prepull: vec![],
            reboot: false,
            hooks: vec![],
            staged: vec![],
        },
    )
}

fn actions_of(plan: &Plan, node: &str) -> Vec<Action> {
    plan.steps
        .iter()
        .filter(|s| s.node.as_deref() == Some(node))
        .map(|s| s.action)
        .collect()
}

#[test]
fn a_restart_takes_every_node_down_once_without_installing() {
    let p = plan(Operation::Restart, Selection::default(), 1);
    assert!(
        p.nodes
            .iter()
            .all(|n| n.skip.is_none() && n.order.is_some())
    );
    for n in &p.nodes {
        // Verified at the version it runs: nothing installed.
        assert_eq!(
            Some(&n.target),
            crate::version::engine_version_of(&n.current).as_ref()
        );
        let acts = actions_of(&p, &n.name);
        assert!(!acts.contains(&Action::Install) && !acts.contains(&Action::Backup));
        let down: Vec<Action> = acts
            .iter()
            .copied()
            .filter(|a| matches!(a, Action::StopEngine | Action::StartEngine | Action::Verify))
            .collect();
        assert_eq!(
            down,
            [Action::StopEngine, Action::StartEngine, Action::Verify],
            "{}",
            n.name
        );
    }
    // Managers one at a time, the leader last, as in an upgrade.
    let managers: Vec<&str> = p
        .nodes
        .iter()
        .filter(|n| n.role == Role::Manager)
        .map(|n| n.name.as_str())
        .collect();
    assert!(
        p.nodes
            .iter()
            .find(|n| n.name == *managers.last().unwrap())
            .unwrap()
            .leader
    );
    let stop_batches: Vec<usize> = p
        .steps
        .iter()
        .filter(|s| s.action == Action::StopEngine && s.role == Some(Role::Manager))
        .map(|s| s.batch)
        .collect();
    let mut distinct = stop_batches.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), managers.len(), "{stop_batches:?}");
}

#[test]
fn a_restart_plan_says_so_and_keeps_old_plan_files_unchanged() {
    let p = plan(Operation::Restart, Selection::default(), 2);
    let text = super::render::table(&p);
    assert!(text.starts_with("Restart plan for swarm"), "{text}");
    assert!(
        text.contains("engine restarted, packages unchanged"),
        "{text}"
    );
    assert!(text.contains("node(s) to restart"), "{text}");
    let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    // An upgrade plan serializes as before the restart existed.
    let up = plan(Operation::Upgrade, Selection::default(), 1);
    let json = serde_json::to_string(&up).unwrap();
    assert!(
        !json.contains("operation") && !json.contains("selection"),
        "{json}"
    );
}

#[test]
fn nodes_out_of_scope_are_listed_with_why_and_get_no_step() {
    let facts = lab_facts();
    let w1 = facts
        .cluster
        .nodes
        .iter()
        .find(|n| n.role == Role::Worker)
        .unwrap();
    let m = facts
        .cluster
        .nodes
        .iter()
        .find(|n| n.role == Role::Manager)
        .unwrap();
    let sel = Selection {
        nodes: vec![w1.hostname.clone(), m.hostname.clone()],
        ..Default::default()
    };
    for op in [Operation::Upgrade, Operation::Restart] {
        let p = plan(op, sel.clone(), 1);
        let acted: Vec<&str> = p
            .nodes
            .iter()
            .filter(|n| n.order.is_some())
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(acted.len(), 2, "{acted:?}");
        assert!(acted.contains(&w1.hostname.as_str()) && acted.contains(&m.hostname.as_str()));
        for n in p.nodes.iter().filter(|n| n.order.is_none()) {
            assert_eq!(
                n.skip.as_deref(),
                Some("out of scope: not named by --nodes")
            );
            assert!(actions_of(&p, &n.name).is_empty(), "{}", n.name);
        }
        let text = super::render::table(&p);
        assert!(
            text.contains(&format!("Selected: --nodes {},{}", w1.hostname, m.hostname)),
            "{text}"
        );
        assert!(text.contains("skipped: out of scope"), "{text}");
    }
    let workers = plan(
        Operation::Restart,
        Selection {
            selectors: vec!["role=worker".into()],
            ..Default::default()
        },
        1,
    );
    assert!(workers.steps.iter().all(|s| s.role != Some(Role::Manager)));
}

#[test]
fn the_checks_still_see_the_whole_swarm() {
    // Only a worker selected, but a manager is unreachable: the quorum
    // budget is the swarm's, whatever the run touches.
    let mut g = crate::facts::Gathered {
        resolutions: Default::default(),
        facts: lab_facts(),
    };
    g.resolutions = all_resolved(&g.facts);
    let managers: Vec<usize> = g
        .facts
        .cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.role == Role::Manager && !n.is_leader())
        .map(|(i, _)| i)
        .collect();
    let down = &mut g.facts.cluster.nodes[managers[0]];
    down.state = crate::facts::model::NodeState::Down;
    down.manager.as_mut().unwrap().reachability = crate::facts::model::Reachability::Unreachable;
    let w = g
        .facts
        .cluster
        .nodes
        .iter()
        .find(|n| n.role == Role::Worker)
        .unwrap()
        .hostname
        .clone();
    let sel = Selection {
        nodes: vec![w],
        ..Default::default()
    };
    let p = crate::cluster::plan(
        &g,
        &crate::cluster::PlanRequest {
            pin: &pin("26.1.5"),
            max_parallel: 1,
            waived: &[],
            unlock_key: false,
            hazards: &crate::hazards::Catalogue::default(),
            canary: Default::default(),
            operation: Operation::Restart,
            selection: &sel,
            prepull: false,
            reboot: false,
            hooks: &[],
            staged: &[],
        },
    );
    assert!(
        p.findings
            .iter()
            .any(|f| f.id == "quorum-budget" && f.severity == crate::checks::Severity::Block),
        "{:#?}",
        p.findings
    );
    // A restart judges no target version.
    assert!(
        p.findings
            .iter()
            .all(|f| !crate::checks::UPGRADE_ONLY.contains(&f.id.as_str())),
        "{:#?}",
        p.findings
    );
}

fn reboot_plan(operation: Operation) -> Plan {
    let facts = lab_facts();
    build(
        &facts,
        &all_resolved(&facts),
        vec![],
        &PlanOptions {
            pin: pin("26.1.5"),
            operation,
            reboot: true,
            ..Default::default()
        },
    )
}

#[test]
fn a_reboot_follows_the_stop_and_the_install_and_replaces_the_start() {
    for (operation, before) in [
        (Operation::Restart, Action::StopEngine),
        (Operation::Upgrade, Action::Install),
    ] {
        let p = reboot_plan(operation);
        let planned: Vec<_> = p.nodes.iter().filter(|n| n.order.is_some()).collect();
        assert_eq!(planned.len(), 5, "{operation:?}");
        for n in planned {
            let actions: Vec<Action> = p
                .steps
                .iter()
                .filter(|s| s.node_id.as_deref() == Some(&n.id))
                .map(|s| s.action)
                .collect();
            let at = actions.iter().position(|&a| a == Action::Reboot);
            let at = at.unwrap_or_else(|| panic!("{operation:?}: {} is not rebooted", n.name));
            assert_eq!(
                actions[at - 1],
                before,
                "{operation:?} {}: {actions:?}",
                n.name
            );
            assert_eq!(
                actions[at + 1],
                Action::Verify,
                "{operation:?} {}: {actions:?}",
                n.name
            );
            // The stop (with its quorum guard) comes first; the boot starts the engine.
            assert!(actions[..at].contains(&Action::StopEngine), "{actions:?}");
            assert!(!actions.contains(&Action::StartEngine), "{actions:?}");
        }
        let text = super::render::table(&p);
        assert!(
            text.contains("Reboot (--reboot): each host is rebooted"),
            "{text}"
        );
    }
    insta::assert_snapshot!(
        "restart_reboot_table",
        super::render::table(&reboot_plan(Operation::Restart))
    );
    // Without --reboot, nothing reboots.
    let p = plan(Operation::Restart, Selection::default(), 1);
    assert!(!p.steps.iter().any(|s| s.action == Action::Reboot));
    assert!(!super::render::table(&p).contains("--reboot"));
}
