//! The planner: a pure function from facts and resolutions to a plan.
//!
//! The order is Docker's own upgrade procedure, made strict:
//! 1. managers one at a time, followers first and the current leader last
//!    (upgrading the leader first has cost clusters their quorum), each one
//!    drained, emptied, stopped, backed up, upgraded, started and verified;
//! 2. only when every manager is verified do managers get their original
//!    availability back (managers reactivated early reject tasks);
//! 3. workers, in batches that the remaining nodes can absorb, each batch
//!    reactivated and converged before the next one starts.

use std::collections::BTreeMap;

use crate::checks::Finding;
use crate::facts::model::{Availability, Facts, NodeFacts, NodeState, Role};
use crate::version::resolve::{Resolution, ResolveError};
use crate::version::{EngineVersion, engine_version_of};

use super::model::{Action, Canary, ImageTransfer, Operation, PLAN_FORMAT, Plan, PlanNode, Staged};
use super::select::Selection;
use super::steps::Steps;

#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The version to upgrade to; for a restart, the version that read the
    /// cluster (unused: each node keeps its own).
    pub pin: EngineVersion,
    /// Most workers upgraded at once (at least 1).
    pub max_parallel: usize,
    /// The canaries' soak and pause.
    pub canary: Canary,
    pub operation: Operation,
    pub selection: Selection,
    /// `--prepull`: what the `prepull` step puts where (none: no step).
    pub prepull: Vec<ImageTransfer>,
    /// `--reboot`: each node's host rebooted once its engine is stopped
    /// (and, in an upgrade, the new one installed).
    pub reboot: bool,
    /// The operator's hooks (`crate::hooks`).
    pub hooks: Vec<crate::hooks::Hook>,
    /// The methods whose playbook has a `stage` script
    /// (`Playbooks::staged`): their nodes are staged before their drain.
    pub staged: Vec<Staged>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            pin: EngineVersion(semver::Version::new(0, 0, 0)),
            max_parallel: 1,
            canary: Canary::default(),
            operation: Operation::Upgrade,
            selection: Selection::default(),
            prepull: vec![],
            reboot: false,
            hooks: vec![],
            staged: vec![],
        }
    }
}

/// The steps one node goes through for a restart: no backup, no install.
const RESTART_STEPS: [Action; 5] = [
    Action::Drain,
    Action::WaitDrained,
    Action::StopEngine,
    Action::StartEngine,
    Action::Verify,
];

/// The steps one node goes through, drain to verify.
const NODE_STEPS: [Action; 7] = [
    Action::Drain,
    Action::WaitDrained,
    Action::StopEngine,
    Action::Backup,
    Action::Install,
    Action::StartEngine,
    Action::Verify,
];

/// `restart --reboot`: the host rebooted once its engine is stopped (the
/// stop keeps the quorum guard where it always is, and shuts the engine
/// down as the playbook does); the engine comes back at boot.
const REBOOT_STEPS: [Action; 5] = [
    Action::Drain,
    Action::WaitDrained,
    Action::StopEngine,
    Action::Reboot,
    Action::Verify,
];

/// `apply --reboot`: installed with the engine stopped, then the reboot
/// brings the new engine up (with the new kernel, when one came along).
const NODE_REBOOT_STEPS: [Action; 7] = [
    Action::Drain,
    Action::WaitDrained,
    Action::StopEngine,
    Action::Backup,
    Action::Install,
    Action::Reboot,
    Action::Verify,
];

/// Builds the plan. `resolutions` is keyed by swarm node ID; a node without an
/// `Ok` resolution is not upgraded (the checks report why).
pub fn build(
    facts: &Facts,
    resolutions: &BTreeMap<String, Result<Resolution, ResolveError>>,
    findings: Vec<Finding>,
    opts: &PlanOptions,
) -> Plan {
    let mut nodes: Vec<PlanNode> = facts
        .cluster
        .nodes
        .iter()
        .map(|n| plan_node(facts, n, resolutions.get(&n.id), opts))
        .collect();
    let mid_run: Vec<&str> = facts
        .cluster
        .nodes
        .iter()
        .filter(|n| n.labels.contains_key(crate::exec::LABEL_RUN))
        .map(|n| n.id.as_str())
        .collect();
    nodes.sort_by_key(|n| order_key(n, &mid_run));

    let managers: Vec<&PlanNode> = nodes
        .iter()
        .filter(|n| n.role == Role::Manager && n.skip.is_none())
        .collect();
    let workers: Vec<&PlanNode> = nodes
        .iter()
        .filter(|n| n.role == Role::Worker && n.skip.is_none())
        .collect();

    let (mut steps, node_steps) = match (opts.operation, opts.reboot) {
        (Operation::Upgrade, false) => (Steps::new(opts.canary), &NODE_STEPS[..]),
        (Operation::Upgrade, true) => (Steps::new(opts.canary), &NODE_REBOOT_STEPS[..]),
        // No canary soak in a restart yet: the node's restarted label (set at
        // verify) and a soak after it do not resume from an empty state dir
        // (found by the fault matrix).
        (Operation::Restart, false) => (Steps::restarting(Canary::default()), &RESTART_STEPS[..]),
        (Operation::Restart, true) => (Steps::restarting(Canary::default()), &REBOOT_STEPS[..]),
    };
    // Before the first drain: a failure then stops the run with nothing
    // touched. (Before each drain instead would copy the same images later,
    // with nodes already down: the sources are what the nodes hold now.)
    let prepull = if managers.is_empty() && workers.is_empty() {
        vec![]
    } else {
        opts.prepull.clone()
    };
    if !prepull.is_empty() {
        steps.prepull();
    }
    steps.hooks = opts.hooks.clone();
    if opts.operation.is_upgrade() {
        steps.staged = opts.staged.clone();
    }
    steps.managers(&managers, node_steps, !workers.is_empty());
    let batch_size = worker_batch_size(facts, workers.len(), opts.max_parallel);
    steps.workers(workers.chunks(batch_size), node_steps);

    let mut order = 0;
    let upgrade_order: BTreeMap<String, usize> = managers
        .iter()
        .chain(workers.iter())
        .map(|n| {
            order += 1;
            (n.id.clone(), order)
        })
        .collect();
    for n in &mut nodes {
        n.order = upgrade_order.get(&n.id).copied();
    }
    // Skipped nodes last, by name; the ID breaks ties between equal hostnames.
    nodes.sort_by_key(|n| (n.order.is_none(), n.order, n.name.clone(), n.id.clone()));

    // A restart has no pin: its plan names the newest version it restarts
    // (what `status` shows), each node keeping its own.
    let target = match opts.operation {
        Operation::Upgrade => opts.pin.clone(),
        Operation::Restart => nodes
            .iter()
            .filter(|n| n.order.is_some())
            .map(|n| n.target.clone())
            .max()
            .unwrap_or_else(|| opts.pin.clone()),
    };
    Plan {
        format: PLAN_FORMAT,
        cluster_id: facts.cluster.id.clone(),
        target,
        max_parallel: opts.max_parallel.max(1),
        nodes,
        steps: steps.steps,
        findings,
        reverts_run: None,
        canary: opts.canary,
        operation: opts.operation,
        selection: opts.selection.clone(),
        prepull,
        hooks: opts.hooks.clone(),
    }
}

/// Managers before workers; nodes an unfinished run left drained first;
/// among managers the leader last; then by name,
/// and by ID for equal hostnames (swarm allows them), so the plan does not
/// depend on the order the API lists the nodes in.
fn order_key(n: &PlanNode, mid_run: &[&str]) -> (u8, bool, bool, String, String) {
    let role = match n.role {
        Role::Manager => 0,
        Role::Worker => 1,
    };
    // A node an unfinished run left drained (perhaps down) goes first: no
    // other manager may go down while it is.
    let fresh = !mid_run.contains(&n.id.as_str());
    (role, fresh, n.leader, n.name.clone(), n.id.clone())
}

fn plan_node(
    facts: &Facts,
    n: &NodeFacts,
    resolution: Option<&Result<Resolution, ResolveError>>,
    opts: &PlanOptions,
) -> PlanNode {
    let host = facts
        .hosts
        .get(&n.id)
        .map_or_else(|| n.addr.clone(), |h| h.host.clone());
    let mut node = match opts.operation {
        Operation::Upgrade => upgrade_node(n, resolution, &opts.pin),
        Operation::Restart => restart_node(n),
    };
    // A node an unfinished run drained is brought back whatever the
    // selection: leaving it drained is never what the operator meant.
    if node.skip.is_none() && !n.labels.contains_key(crate::exec::LABEL_RUN) {
        node.skip = opts.selection.out_of_scope(n);
    }
    node.host = host;
    node
}

/// A node restarted as it is: its target is the version it runs, which
/// verify expects back.
fn restart_node(n: &NodeFacts) -> PlanNode {
    let version = engine_version_of(&n.engine_version);
    let skip = version.is_none().then(|| {
        format!(
            "engine version {:?} unreadable: nothing to verify the restart against",
            n.engine_version
        )
    });
    PlanNode {
        id: n.id.clone(),
        name: n.hostname.clone(),
        host: String::new(),
        role: n.role,
        leader: n.is_leader(),
        availability: original_availability(n),
        current: n.engine_version.clone(),
        target: version.unwrap_or(EngineVersion(semver::Version::new(0, 0, 0))),
        method: None,
        packages: vec![],
        bundle: None,
        skip,
        order: None,
        // Only the run that still holds it drained counts: the label of an
        // earlier, finished run says nothing about this one.
        restarted: n
            .labels
            .get(crate::exec::LABEL_RUN)
            .is_some_and(|run| n.labels.get(crate::exec::LABEL_RESTARTED) == Some(run)),
    }
}

fn upgrade_node(
    n: &NodeFacts,
    resolution: Option<&Result<Resolution, ResolveError>>,
    pin: &EngineVersion,
) -> PlanNode {
    let at_target = engine_version_of(&n.engine_version).as_ref() == Some(pin);
    // Drained by a run (perhaps from another machine) and upgraded before it
    // stopped: it still needs its availability back (I2), and nothing else.
    let drained_by_run = n.labels.contains_key(crate::exec::LABEL_RUN);
    let (method, packages, bundle, skip) = if at_target && drained_by_run {
        (None, vec![], None, None)
    } else if at_target {
        (None, vec![], None, Some(format!("already at {pin}")))
    } else {
        match resolution {
            Some(Ok(r)) => (Some(r.method), r.packages.clone(), r.bundle.clone(), None),
            Some(Err(e)) => (None, vec![], None, Some(e.to_string())),
            None => (
                None,
                vec![],
                None,
                Some("no facts from this host".to_string()),
            ),
        }
    };
    PlanNode {
        id: n.id.clone(),
        name: n.hostname.clone(),
        host: String::new(),
        role: n.role,
        leader: n.is_leader(),
        availability: original_availability(n),
        current: n.engine_version.clone(),
        target: pin.clone(),
        method,
        packages,
        bundle,
        skip,
        order: None,
        restarted: false,
    }
}

/// The availability a node had before any run touched it: an interrupted run
/// (perhaps from another machine) records it in a node label when it drains.
fn original_availability(n: &NodeFacts) -> Availability {
    match n
        .labels
        .get(crate::exec::LABEL_AVAILABILITY)
        .map(String::as_str)
    {
        Some("active") => Availability::Active,
        Some("pause") => Availability::Pause,
        Some("drain") => Availability::Drain,
        _ => n.availability,
    }
}

/// How many workers may be out at once: at most `max_parallel`, within what
/// the remaining nodes can absorb. By the workers phase the managers are
/// active again and take the batch's tasks, unless a service is bound to
/// workers (or no manager is active and ready): then one active, ready
/// worker always stays in. Finer capacity (constraints, reservations) is
/// the drain-feasibility check's business.
fn worker_batch_size(facts: &Facts, upgrading: usize, max_parallel: usize) -> usize {
    let active_workers = facts
        .workers()
        .filter(|w| w.availability == Availability::Active && w.state == NodeState::Ready)
        .count();
    let managers_absorb = facts
        .managers()
        .any(|m| m.availability == Availability::Active && m.state == NodeState::Ready)
        && !facts.cluster.services.iter().any(bound_to_workers);
    let spare = if managers_absorb {
        upgrading
    } else {
        active_workers.saturating_sub(1)
    };
    max_parallel.max(1).min(spare.max(1)).min(upgrading.max(1))
}

/// Whether a service may only run on workers (`node.role==worker`,
/// `node.role!=manager`).
pub fn bound_to_workers(s: &crate::facts::model::ServiceFacts) -> bool {
    s.constraints.iter().any(|c| {
        let c: String = c.chars().filter(|ch| !ch.is_whitespace()).collect();
        c == "node.role==worker" || c == "node.role!=manager"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testutil::{all_resolved, lab_facts, opts};

    fn staged_plan(max_parallel: usize, operation: Operation) -> Plan {
        staged_plan_with(max_parallel, operation, true)
    }

    fn staged_plan_with(max_parallel: usize, operation: Operation, while_running: bool) -> Plan {
        let mut facts = lab_facts();
        // lab-m3 runs the pin already: nothing to stage there.
        for n in &mut facts.cluster.nodes {
            if n.hostname == "lab-m3" {
                n.engine_version = "26.1.5".into();
            }
        }
        let o = PlanOptions {
            operation,
            staged: vec![Staged {
                method: crate::version::resolve::Method::DebianApt,
                while_running,
            }],
            ..opts(max_parallel)
        };
        build(&facts, &all_resolved(&facts), vec![], &o)
    }

    /// Every upgraded node is staged once, in a batch of stage steps only,
    /// right before the batch that drains it; a worker batch together.
    #[test]
    fn each_node_is_staged_in_the_batch_before_its_drain() {
        for max_parallel in [1, 2] {
            let p = staged_plan(max_parallel, Operation::Upgrade);
            let upgraded: Vec<&str> = p
                .steps
                .iter()
                .filter(|s| s.action == Action::Install)
                .filter_map(|s| s.node.as_deref())
                .collect();
            assert_eq!(upgraded.len(), 4, "{upgraded:?}");
            for n in &upgraded {
                let of = |a: Action| {
                    p.steps
                        .iter()
                        .filter(|s| s.action == a && s.node.as_deref() == Some(n))
                        .collect::<Vec<_>>()
                };
                let (stage, drain) = (of(Action::Stage), of(Action::Drain));
                assert_eq!(stage.len(), 1, "{n}");
                // Installed from its cache while its tasks drain.
                let own: Vec<Action> = p
                    .steps
                    .iter()
                    .filter(|s| s.node.as_deref() == Some(n) && s.batch == drain[0].batch)
                    .map(|s| s.action)
                    .take(7)
                    .collect();
                assert_eq!(
                    own,
                    [
                        Action::Drain,
                        Action::Install,
                        Action::WaitDrained,
                        Action::StopEngine,
                        Action::Backup,
                        Action::StartEngine,
                        Action::Verify
                    ],
                    "{n}"
                );
                assert_eq!(stage[0].batch + 1, drain[0].batch, "{n}");
                assert!(
                    p.steps
                        .iter()
                        .filter(|s| s.batch == stage[0].batch)
                        .all(|s| s.action == Action::Stage)
                );
                // Its drain batch's nodes are all staged in that batch.
                for other in p.steps.iter().filter(|s| s.batch == drain[0].batch) {
                    if let Some(o) = other.node.as_deref() {
                        assert!(
                            p.steps
                                .iter()
                                .any(|s| s.batch == stage[0].batch && s.node.as_deref() == Some(o)),
                            "{o} drained in batch {} without being staged before",
                            drain[0].batch
                        );
                    }
                }
            }
            assert!(
                !p.steps
                    .iter()
                    .any(|s| s.action == Action::Stage && s.node.as_deref() == Some("lab-m3")),
                "a node at the pin is not staged"
            );
        }
    }

    /// A method whose install needs the engine stopped (RPM scriptlets
    /// restart docker) is staged, and installs after the backup.
    #[test]
    fn a_staged_method_that_installs_with_the_engine_stopped_installs_after_the_backup() {
        let p = staged_plan_with(1, Operation::Upgrade, false);
        assert!(p.steps.iter().any(|s| s.action == Action::Stage));
        let installs: Vec<&crate::plan::Step> = p
            .steps
            .iter()
            .filter(|s| s.action == Action::Install)
            .collect();
        assert_eq!(installs.len(), 4);
        for i in installs {
            let before = &p.steps[i.index - 2];
            assert_eq!((before.action, &before.node), (Action::Backup, &i.node));
        }
    }

    #[test]
    fn restarts_and_unstaged_methods_have_no_stage_step() {
        let p = staged_plan(1, Operation::Restart);
        assert!(!p.steps.iter().any(|s| s.action == Action::Stage));
        let facts = lab_facts();
        let p = build(&facts, &all_resolved(&facts), vec![], &opts(1));
        assert!(!p.steps.iter().any(|s| s.action == Action::Stage));
        // Unstaged, a node installs with its engine stopped, after its backup.
        let mut after_backup = p.steps.windows(2).filter(|w| w[0].action == Action::Backup);
        assert!(after_backup.clone().count() > 0);
        assert!(after_backup.all(|w| w[1].action == Action::Install));
        let rollback = crate::plan::rollback::build(
            &staged_plan(1, Operation::Upgrade),
            "r1",
            &["m1lab".to_string()],
        );
        assert!(!rollback.steps.iter().any(|s| s.action == Action::Stage));
    }
}
