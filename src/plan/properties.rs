//! Properties of the planner over generated clusters, and the lab plan as an
//! exact example.
//!
//! Generated: 1–7 managers with exactly one leader, 0–12 workers, each node
//! active, paused or drained, ready or down, and either to upgrade, already
//! at the target, unresolvable, or without host facts; max parallel 1–5;
//! hostnames sometimes shared between nodes (swarm allows it); the API's
//! node order shuffled.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use crate::facts::model::{Availability, Facts, NodeFacts, NodeState, Role};
use crate::version::resolve::ResolveError;

use super::build::build;
use super::model::{Action, Phase, Plan, Step};
use super::testutil::{Resolutions, bookworm_resolution, facts_of, node, opts, pin};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Upgrade,
    AtTarget,
    Unresolvable,
    NoFacts,
}

#[derive(Debug, Clone)]
struct GenNode {
    availability: Availability,
    ready: bool,
    fate: Fate,
    /// Index into a small pool of hostnames, when it shares one.
    shared_name: Option<u8>,
}

#[derive(Debug, Clone)]
struct Cluster {
    facts: Facts,
    resolutions: Resolutions,
    max_parallel: usize,
    /// Per node ID: how it was generated.
    gen_nodes: BTreeMap<String, GenNode>,
}

fn gen_node() -> impl Strategy<Value = GenNode> {
    (
        prop_oneof![
            4 => Just(Availability::Active),
            1 => Just(Availability::Pause),
            1 => Just(Availability::Drain),
        ],
        prop::bool::weighted(0.85),
        prop_oneof![
            6 => Just(Fate::Upgrade),
            2 => Just(Fate::AtTarget),
            1 => Just(Fate::Unresolvable),
            1 => Just(Fate::NoFacts),
        ],
        prop::option::weighted(0.15, 0u8..3),
    )
        .prop_map(|(availability, ready, fate, shared_name)| GenNode {
            availability,
            ready,
            fate,
            shared_name,
        })
}

fn cluster() -> impl Strategy<Value = Cluster> {
    (
        prop::collection::vec(gen_node(), 1..=7),
        prop::collection::vec(gen_node(), 0..=12),
        any::<Index>(),
        1usize..=5,
    )
        .prop_flat_map(|(managers, workers, leader, max_parallel)| {
            let leader = leader.index(managers.len());
            let mut gen_nodes = BTreeMap::new();
            let mut nodes: Vec<NodeFacts> = vec![];
            let all = managers
                .into_iter()
                .map(|g| (Role::Manager, g))
                .enumerate()
                .chain(workers.into_iter().map(|g| (Role::Worker, g)).enumerate());
            for (i, (role, mut g)) in all {
                let is_leader = role == Role::Manager && i == leader;
                let prefix = if role == Role::Manager { "m" } else { "w" };
                // IDs sort differently from hostnames on purpose.
                let id = format!("{:02}{prefix}id", 40 - i);
                let name = match g.shared_name {
                    Some(k) => format!("host-{k}"),
                    None => format!("{prefix}{i}"),
                };
                if is_leader {
                    // The leader answered the API: it is up.
                    g.ready = true;
                }
                let engine = match g.fate {
                    Fate::AtTarget => "26.1.5",
                    _ => "20.10.24+dfsg1",
                };
                let mut n = node(&id, &name, role, is_leader, g.availability, engine);
                if !g.ready {
                    n.state = NodeState::Down;
                }
                nodes.push(n);
                gen_nodes.insert(id, g);
            }
            let resolutions: Resolutions = gen_nodes
                .iter()
                .filter_map(|(id, g)| {
                    let r = match g.fate {
                        Fate::Upgrade | Fate::AtTarget => Ok(bookworm_resolution()),
                        Fate::Unresolvable => Err(ResolveError::NotAvailable {
                            package: "docker.io".into(),
                            pin: pin("26.1.5"),
                            available: vec![],
                        }),
                        Fate::NoFacts => return None,
                    };
                    Some((id.clone(), r))
                })
                .collect();
            (
                Just(nodes).prop_shuffle(),
                Just(gen_nodes),
                Just(resolutions),
                Just(max_parallel),
            )
        })
        .prop_map(|(nodes, gen_nodes, resolutions, max_parallel)| Cluster {
            facts: facts_of("c0", nodes),
            resolutions,
            max_parallel,
            gen_nodes,
        })
}

fn plan_of(c: &Cluster) -> Plan {
    build(&c.facts, &c.resolutions, vec![], &opts(c.max_parallel))
}

fn node_facts<'a>(c: &'a Cluster, id: &str) -> &'a NodeFacts {
    c.facts.node(id).expect("node in facts")
}

fn steps_of<'a>(plan: &'a Plan, id: &str) -> Vec<&'a Step> {
    plan.steps
        .iter()
        .filter(|s| s.node_id.as_deref() == Some(id))
        .collect()
}

fn index_of(plan: &Plan, id: &str, action: Action) -> Option<usize> {
    steps_of(plan, id)
        .into_iter()
        .find(|s| s.action == action)
        .map(|s| s.index)
}

/// The steps a node gets, in order: drain unless it was drained, the
/// upgrade, and its availability back unless it was drained.
fn expected_actions(availability: Availability) -> Vec<Action> {
    let drained = availability == Availability::Drain;
    let mut v = vec![];
    if !drained {
        v.push(Action::Drain);
    }
    v.extend([
        Action::WaitDrained,
        Action::StopEngine,
        Action::Backup,
        Action::Install,
        Action::StartEngine,
        Action::Verify,
    ]);
    if !drained {
        v.extend([Action::RestoreAvailability, Action::VerifyServices]);
    }
    v
}

fn upgraded(c: &Cluster, role: Role) -> Vec<&str> {
    c.gen_nodes
        .iter()
        .filter(|(id, g)| g.fate == Fate::Upgrade && node_facts(c, id).role == role)
        .map(|(id, _)| id.as_str())
        .collect()
}

/// Every property, on one generated cluster.
fn check(c: &Cluster, plan: &Plan) -> Result<(), TestCaseError> {
    let managers = upgraded(c, Role::Manager);
    let workers = upgraded(c, Role::Worker);

    // Header and indexes.
    prop_assert_eq!(plan.max_parallel, c.max_parallel);
    prop_assert_eq!(&plan.target, &pin("26.1.5"));
    prop_assert_eq!(plan.nodes.len(), c.facts.cluster.nodes.len());
    for (i, s) in plan.steps.iter().enumerate() {
        prop_assert_eq!(s.index, i + 1, "step indexes are 1..=len");
        prop_assert_eq!(
            s.node_id.is_none(),
            s.action == Action::WaitConverged,
            "only wait-converged is cluster-wide: {:?}",
            s
        );
        prop_assert_eq!(s.node.is_none(), s.node_id.is_none());
        prop_assert_eq!(s.role.is_none(), s.node_id.is_none());
        prop_assert_eq!(
            s.availability.is_some(),
            s.action == Action::RestoreAvailability
        );
    }

    // Skipped nodes: exactly the ones not to upgrade, and without steps.
    for n in &plan.nodes {
        let g = &c.gen_nodes[&n.id];
        prop_assert_eq!(
            n.skip.is_none(),
            g.fate == Fate::Upgrade,
            "{:?}: {:?}",
            g,
            n
        );
        prop_assert_eq!(n.order.is_some(), n.skip.is_none());
        if n.skip.is_some() {
            prop_assert!(
                steps_of(plan, &n.id).is_empty(),
                "skipped {} has steps",
                n.id
            );
            prop_assert!(n.method.is_none() && n.packages.is_empty());
        }
    }

    // Every upgraded node: every step once, in order, its availability
    // restored exactly to what it was; steps carry its name and role.
    for id in managers.iter().chain(&workers) {
        let nf = node_facts(c, id);
        let own = steps_of(plan, id);
        let actions: Vec<Action> = own.iter().map(|s| s.action).collect();
        prop_assert_eq!(&actions, &expected_actions(nf.availability), "{}", id);
        for s in &own {
            prop_assert_eq!(s.node.as_deref(), Some(nf.hostname.as_str()));
            prop_assert_eq!(s.role, Some(nf.role));
            if s.action == Action::RestoreAvailability {
                prop_assert_eq!(s.availability, Some(nf.availability));
            }
        }
    }

    // `order` numbers the upgraded nodes as their steps come.
    let mut first_seen: Vec<&str> = vec![];
    for s in &plan.steps {
        if let Some(id) = s.node_id.as_deref()
            && !first_seen.contains(&id)
        {
            first_seen.push(id);
        }
    }
    for (i, id) in first_seen.iter().enumerate() {
        let n = plan.nodes.iter().find(|n| n.id == *id).unwrap();
        prop_assert_eq!(n.order, Some(i + 1), "order of {}", id);
    }

    // Phases in order: managers, reactivate, workers.
    let rank = |p: Phase| match p {
        Phase::Managers => 0,
        Phase::Reactivate => 1,
        Phase::Workers => 2,
    };
    for w in plan.steps.windows(2) {
        prop_assert!(rank(w[0].phase) <= rank(w[1].phase), "{:?}", w);
        prop_assert!(
            w[0].batch <= w[1].batch,
            "batches do not interleave: {:?}",
            w
        );
    }
    for s in &plan.steps {
        let is_manager = s.role == Some(Role::Manager);
        let expected = match (s.role, s.action) {
            (Some(Role::Worker), _) => Phase::Workers,
            (Some(Role::Manager), Action::RestoreAvailability | Action::VerifyServices) => {
                Phase::Reactivate
            }
            (Some(Role::Manager), _) => Phase::Managers,
            (None, _) => s.phase,
        };
        prop_assert_eq!(s.phase, expected, "{:?}", s);
        prop_assert!(is_manager || s.phase != Phase::Managers);
    }

    // Never two managers down at once, and nothing else starts or stops
    // while a manager is down (stop-engine .. verify).
    let total_managers = c.facts.managers().count();
    for id in &managers {
        let stop = index_of(plan, id, Action::StopEngine).unwrap();
        let verify = index_of(plan, id, Action::Verify).unwrap();
        for s in &plan.steps[stop..verify - 1] {
            prop_assert_eq!(
                s.node_id.as_deref(),
                Some(*id),
                "step {} runs while manager {} is down",
                s.index,
                id
            );
        }
    }
    let mut down: BTreeSet<&str> = BTreeSet::new();
    for s in &plan.steps {
        let Some(id) = s.node_id.as_deref() else {
            continue;
        };
        match s.action {
            Action::StopEngine => {
                down.insert(id);
            }
            Action::Verify => {
                down.remove(id);
            }
            _ => {}
        }
        let managers_down = down
            .iter()
            .filter(|d| node_facts(c, d).role == Role::Manager)
            .count();
        prop_assert!(managers_down <= 1, "two managers down at step {}", s.index);
        // Quorum tolerates ⌊(N−1)/2⌋ managers down. With N ≤ 2 that is 0:
        // one manager down already loses quorum, so the quorum-budget check
        // must report it; the plan itself never takes more than one down.
        if total_managers >= 3 {
            prop_assert!(managers_down <= (total_managers - 1) / 2);
        }
    }

    // The leader goes last among the managers, followers first.
    if let Some(leader) = managers.iter().find(|id| node_facts(c, id).is_leader()) {
        let leader_first = steps_of(plan, leader)[0].index;
        for id in managers.iter().filter(|id| *id != leader) {
            let verify = index_of(plan, id, Action::Verify).unwrap();
            prop_assert!(verify < leader_first, "{} after the leader", id);
        }
    }

    // Managers get their availability back only when all are verified, and
    // workers start only when that is done and the swarm converged.
    let last_manager_verify = managers
        .iter()
        .map(|id| index_of(plan, id, Action::Verify).unwrap())
        .max();
    let last_reactivate = plan
        .steps
        .iter()
        .filter(|s| s.phase != Phase::Workers)
        .map(|s| s.index)
        .max();
    if let Some(last_verify) = last_manager_verify {
        for id in &managers {
            if let Some(r) = index_of(plan, id, Action::RestoreAvailability) {
                prop_assert!(
                    r > last_verify,
                    "{} reactivated at {} before all verified",
                    id,
                    r
                );
            }
        }
        let reactivate: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Reactivate && s.action != Action::VerifyServices)
            .collect();
        prop_assert!(!reactivate.is_empty());
        prop_assert_eq!(reactivate.last().unwrap().action, Action::WaitConverged);
        // Services are verified only once the managers run tasks again.
        let converged = reactivate.last().unwrap().index;
        prop_assert!(plan.steps.iter().all(|s| s.action != Action::VerifyServices
            || s.role != Some(Role::Manager)
            || s.index > converged));
    } else {
        prop_assert!(plan.steps.iter().all(|s| s.phase == Phase::Workers));
    }
    if let Some(first_worker) = plan.steps.iter().find(|s| s.phase == Phase::Workers) {
        prop_assert!(last_reactivate.is_none_or(|r| r < first_worker.index));
    }

    // Manager batches hold one manager each; worker batches at most
    // max_parallel workers, each in one batch, ending with wait-converged.
    let mut batches: BTreeMap<usize, Vec<&Step>> = BTreeMap::new();
    for s in &plan.steps {
        batches.entry(s.batch).or_default().push(s);
    }
    let active_ready_workers = c
        .facts
        .workers()
        .filter(|w| w.availability == Availability::Active && w.state == NodeState::Ready)
        .count();
    for (batch, steps) in &batches {
        let nodes: BTreeSet<&str> = steps.iter().filter_map(|s| s.node_id.as_deref()).collect();
        if steps.iter().all(|s| s.action == Action::VerifyServices) {
            // Nodes of the last batch that did more than verify, once it
            // converged; managers one at a time.
            let before = batches
                .range(..*batch)
                .rev()
                .map(|(_, b)| b)
                .find(|b| b.iter().any(|s| s.action != Action::VerifyServices))
                .unwrap();
            prop_assert!(steps[0].phase == Phase::Workers || nodes.len() == 1);
            prop_assert!(
                nodes
                    .iter()
                    .all(|id| before.iter().any(|s| s.node_id.as_deref() == Some(*id)))
            );
            prop_assert_eq!(before.last().unwrap().action, Action::WaitConverged);
            continue;
        }
        match steps[0].phase {
            Phase::Managers => prop_assert_eq!(nodes.len(), 1, "manager batch {}", batch),
            Phase::Reactivate => {}
            Phase::Workers => {
                prop_assert!(nodes.len() <= c.max_parallel, "batch {} too big", batch);
                prop_assert!(!nodes.is_empty());
                let waits: Vec<&&Step> = steps
                    .iter()
                    .filter(|s| s.action == Action::WaitConverged)
                    .collect();
                prop_assert_eq!(waits.len(), 1);
                prop_assert_eq!(steps.last().unwrap().action, Action::WaitConverged);
                // Capacity: a batch leaves an active, ready worker to take
                // its tasks when there is more than one such worker, unless
                // active managers can take them (no service bound to workers).
                let active_out = nodes
                    .iter()
                    .filter(|id| {
                        let n = node_facts(c, id);
                        n.availability == Availability::Active && n.state == NodeState::Ready
                    })
                    .count();
                let managers_absorb =
                    c.facts.managers().any(|m| {
                        m.availability == Availability::Active && m.state == NodeState::Ready
                    }) && !c
                        .facts
                        .cluster
                        .services
                        .iter()
                        .any(super::build::bound_to_workers);
                if !managers_absorb {
                    prop_assert!(active_out <= active_ready_workers.saturating_sub(1).max(1));
                }
            }
        }
        prop_assert!(steps.iter().all(|s| s.phase == steps[0].phase));
    }
    for id in &workers {
        let own: BTreeSet<usize> = steps_of(plan, id)
            .iter()
            .filter(|s| s.action != Action::VerifyServices)
            .map(|s| s.batch)
            .collect();
        prop_assert_eq!(own.len(), 1, "worker {} spans batches", id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plans_keep_the_upgrade_rules(c in cluster()) {
        let plan = plan_of(&c);
        check(&c, &plan)?;
    }

    /// The API lists nodes in no particular order; the plan must not depend
    /// on it (a re-run of `plan` must give the same plan and hash).
    #[test]
    fn plans_do_not_depend_on_the_api_order(c in cluster(), seed in any::<u64>()) {
        let plan = plan_of(&c);
        let mut shuffled = c.clone();
        let nodes = &mut shuffled.facts.cluster.nodes;
        // A deterministic permutation from the seed.
        let mut keyed: Vec<(u64, NodeFacts)> = nodes
            .drain(..)
            .enumerate()
            .map(|(i, n)| ((i as u64 + 1).wrapping_mul(seed | 1).rotate_left(17), n))
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        *nodes = keyed.into_iter().map(|(_, n)| n).collect();
        prop_assert_eq!(plan_of(&shuffled), plan);
    }

    #[test]
    fn plans_render_and_survive_the_file(c in cluster()) {
        let plan = plan_of(&c);
        let text = super::render::table(&plan);
        prop_assert!(text.lines().last().unwrap().starts_with("plan ready"));
        let width = usize::from(super::render::TABLE_WIDTH);
        for line in text.lines() {
            prop_assert!(line.chars().count() <= width, "too wide: {:?}", line);
        }
        let v = super::render::json(&plan);
        prop_assert_eq!(v["steps"].as_array().unwrap().len(), plan.steps.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        super::file::save(&plan, &path).unwrap();
        prop_assert_eq!(super::file::load(&path).unwrap(), plan);
    }
}

fn step_list(plan: &Plan) -> String {
    plan.steps
        .iter()
        .map(|s| {
            let what = match s.availability {
                Some(a) => format!("{} → {}", s.action.name(), format!("{a:?}").to_lowercase()),
                None => s.action.name().to_string(),
            };
            format!(
                "{:>2} {:<10} b{} {:<8} {what}",
                s.index,
                format!("{:?}", s.phase).to_lowercase(),
                s.batch,
                s.node.as_deref().unwrap_or("(swarm)"),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn lab_plan_steps() {
    let plan = super::testutil::lab_plan();
    let order: Vec<(&str, Option<usize>)> = plan
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.order))
        .collect();
    assert_eq!(
        order,
        [
            ("lab-m2", Some(1)),
            ("lab-m3", Some(2)),
            ("lab-m1", Some(3)),
            ("lab-w1", Some(4)),
            ("lab-w2", Some(5)),
        ]
    );
    insta::assert_snapshot!(step_list(&plan));
}

#[test]
fn blocked_plan_steps() {
    // Skips lab-m3 (at target) and lab-w2 (unresolvable); lab-m2 was drained
    // (no drain, no restore), lab-w1 paused (pause restored).
    insta::assert_snapshot!(step_list(&super::testutil::blocked_plan()));
}

fn worker_only_service() -> crate::facts::model::ServiceFacts {
    crate::facts::model::ServiceFacts {
        id: "s1".into(),
        name: "web".into(),
        mode: crate::facts::model::ServiceMode::Replicated { replicas: 2 },
        image: "web".into(),
        constraints: vec!["node.role == worker".into()],
        max_replicas_per_node: 0,
        reserved_nano_cpus: 0,
        reserved_memory_bytes: 0,
        running_tasks: 2,
        desired_tasks: 2,
        update_state: None,
        published_ports: vec![],
        virtual_ips: vec![],
        bind_mounts: vec![],
        networks: vec![],
    }
}

#[test]
fn without_worker_bound_services_the_managers_absorb_a_whole_batch() {
    use Availability::Active;
    use Role::{Manager, Worker};
    let mut nodes = vec![node("m", "m", Manager, true, Active, "20.10.24")];
    for i in 0..2 {
        nodes.push(node(
            &format!("w{i}"),
            &format!("w{i}"),
            Worker,
            false,
            Active,
            "20.10.24",
        ));
    }
    let facts = facts_of("c", nodes);
    let plan = build(
        &facts,
        &super::testutil::all_resolved(&facts),
        vec![],
        &opts(2),
    );
    let batches: BTreeSet<usize> = plan
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Workers && s.action != Action::VerifyServices)
        .map(|s| s.batch)
        .collect();
    assert_eq!(
        batches.len(),
        1,
        "both workers in one batch:\n{}",
        step_list(&plan)
    );
}

#[test]
fn worker_batches_leave_an_active_worker_up() {
    // Two active workers and two drained ones, max parallel 5, a service
    // that runs on workers only: the two active workers must not be out
    // together.
    use Availability::Active;
    use Role::{Manager, Worker};
    let mut nodes = vec![node("m", "m", Manager, true, Active, "20.10.24")];
    for i in 0..4 {
        let a = if i % 2 == 0 {
            Active
        } else {
            Availability::Drain
        };
        nodes.push(node(
            &format!("w{i}"),
            &format!("w{i}"),
            Worker,
            false,
            a,
            "20.10.24",
        ));
    }
    let mut facts = facts_of("c", nodes);
    facts.cluster.services.push(worker_only_service());
    let plan = build(
        &facts,
        &super::testutil::all_resolved(&facts),
        vec![],
        &opts(5),
    );
    let mut active_per_batch: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    for s in plan
        .steps
        .iter()
        .filter(|s| s.phase == Phase::Workers && s.action != Action::VerifyServices)
    {
        let id = s.node_id.as_deref();
        if let Some(id) = id
            && facts.node(id).unwrap().availability == Active
        {
            active_per_batch.entry(s.batch).or_default().insert(id);
        }
    }
    assert!(
        active_per_batch.values().all(|b| b.len() == 1),
        "{}",
        step_list(&plan)
    );
}

#[test]
fn nothing_to_do_when_every_node_is_at_the_target() {
    let mut facts = super::testutil::lab_facts();
    for n in &mut facts.cluster.nodes {
        n.engine_version = "26.1.5".into();
    }
    let plan = build(
        &facts,
        &super::testutil::all_resolved(&facts),
        vec![],
        &opts(1),
    );
    assert!(plan.steps.is_empty());
    assert!(
        plan.nodes
            .iter()
            .all(|n| n.skip.as_deref() == Some("already at 26.1.5"))
    );
}

#[test]
fn single_manager_cluster_upgrades_its_only_manager() {
    // One manager: stopping it stops the control plane (quorum 1 of 1); the
    // quorum check reports that, the plan still takes it down alone.
    let facts = facts_of(
        "c",
        vec![node(
            "m",
            "solo",
            Role::Manager,
            true,
            Availability::Active,
            "20.10.24",
        )],
    );
    let plan = build(
        &facts,
        &super::testutil::all_resolved(&facts),
        vec![],
        &opts(3),
    );
    let actions: Vec<Action> = plan.steps.iter().map(|s| s.action).collect();
    let mut expected = expected_actions(Availability::Active);
    expected.pop();
    expected.extend([Action::WaitConverged, Action::VerifyServices]);
    assert_eq!(actions, expected);
}
