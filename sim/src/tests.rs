//! The simulation's own behaviour; the executor's is in tests/executor.rs.

use std::time::Duration;

use super::*;
use swarm_upgrade::exec::ops::{NodeUpdate, Ops};
use swarm_upgrade::facts::model::{NodeState, Role};
use swarm_upgrade::transport::Cmd;
use swarm_upgrade::version::resolve::Method;

fn script_cmd(which: Script) -> Cmd {
    let pbs = Playbooks::load(&[] as &[&std::path::Path]).unwrap();
    pbs.get(Method::DebianApt)
        .command(which, InitSystem::Systemd, &Default::default())
        .unwrap()
}

#[test]
fn generation_is_deterministic_and_counts_match() {
    let a = SimCluster::generate(50, 5, 20, 500, 3, 7).facts();
    let b = SimCluster::generate(50, 5, 20, 500, 3, 7).facts();
    assert_eq!(a, b);
    assert_eq!(a.cluster.nodes.len(), 50);
    assert_eq!(a.managers().count(), 5);
    assert_eq!(a.cluster.services.len(), 20);
    assert_eq!(a.cluster.tasks.len(), 500);
    assert_eq!(a.cluster.networks.len(), 4);
    assert!(a.cluster.nodes.iter().filter(|n| n.is_leader()).count() == 1);
    let other = SimCluster::generate(50, 5, 20, 500, 3, 8).facts();
    assert_ne!(a.cluster.id, other.cluster.id);
}

#[test]
fn tasks_spread_and_respect_role_constraints() {
    let sim = SimCluster::generate(5, 3, 3, 11, 1, 1);
    let facts = sim.facts();
    let worker_only = facts
        .cluster
        .services
        .iter()
        .find(|s| s.constraints == ["node.role==worker"])
        .unwrap();
    for t in facts
        .cluster
        .tasks
        .iter()
        .filter(|t| t.service_id == worker_only.id)
    {
        let n = facts.node(&t.node_id).unwrap();
        assert_eq!(n.role, Role::Worker, "{t:?}");
    }
    // 5 global + 6 replicated on 5 nodes: nobody gets more than 3.
    assert!(
        sim.tasks_per_node().values().all(|&c| (1..=3).contains(&c)),
        "{:?}",
        sim.tasks_per_node()
    );
    assert!(sim.converged());
}

#[tokio::test]
async fn a_drain_moves_tasks_and_an_activation_brings_global_ones_back() {
    let sim = SimCluster::generate(5, 3, 3, 11, 1, 1);
    let (m1, w1) = (sim.id("m1"), sim.id("w1"));
    let drain = NodeUpdate {
        availability: Some(Availability::Drain),
        ..Default::default()
    };
    sim.update_node(&m1, &w1, &drain).await.unwrap();
    let on_w1 = sim.node_tasks(&m1, &w1).await.unwrap();
    assert!(on_w1.iter().all(|t| t.state == "shutdown"), "{on_w1:?}");
    assert_eq!(sim.tasks_per_node()["w1"], 0);
    assert!(sim.converged(), "replacements run elsewhere");

    let active = NodeUpdate {
        availability: Some(Availability::Active),
        ..Default::default()
    };
    sim.update_node(&m1, &w1, &active).await.unwrap();
    assert_eq!(
        sim.tasks_per_node()["w1"],
        1,
        "the global task is back; replicas are not rebalanced"
    );
}

#[tokio::test]
async fn stopping_the_leader_elects_another_and_losing_a_majority_loses_the_leader() {
    let sim = SimCluster::generate(4, 3, 0, 0, 0, 1);
    let stop = script_cmd(Script::Stop);
    sim.run(&sim.id("m1"), &stop).await.unwrap();
    assert_eq!(sim.leader().as_deref(), Some("m2"));
    assert!(sim.managers(&sim.id("m2")).await.is_ok());
    sim.partition("m3", true);
    assert_eq!(sim.leader(), None);
    let err = sim.managers(&sim.id("m2")).await.unwrap_err().to_string();
    assert!(err.contains("does not have a leader"), "{err}");
    let last = sim.timeline().last().cloned().unwrap();
    assert!(!last.quorum && last.reachable == 1, "{last:?}");
}

#[tokio::test]
async fn scripts_take_virtual_time_and_the_swarm_notices_after_the_grace() {
    let sim = SimCluster::generate(4, 3, 0, 0, 0, 1);
    sim.set_delays(Delays::test());
    let (m1, w1) = (sim.id("m1"), sim.id("w1"));
    let stop = script_cmd(Script::Stop);
    let real = std::time::Instant::now();
    sim.drive(sim.run(&w1, &stop)).await.unwrap();
    assert_eq!(sim.now(), Duration::from_secs(2));
    assert_eq!(sim.engine("w1"), None);
    let state = |sim: &SimCluster| {
        sim.with(|w| {
            let i = w.node_by_name("w1");
            w.nodes[i].state
        })
    };
    assert_eq!(state(&sim), NodeState::Ready, "within the heartbeat grace");
    sim.drive(sim.sleep(Duration::from_secs(5))).await;
    assert_eq!(state(&sim), NodeState::Down);
    let status = sim.engine_status(&w1).await;
    assert!(status.is_err());
    assert!(sim.managers(&m1).await.is_ok());
    assert!(
        real.elapsed() < Duration::from_secs(1),
        "virtual time costs no real time"
    );
}

/// The built-in debian-apt playbook's `s` for docker-ce 25.0.5 → 26.1.5
/// on systemd.
fn apt_command(s: Script) -> Cmd {
    let pbs = Playbooks::load(&[] as &[&std::path::Path]).unwrap();
    let env = swarm_upgrade::playbook::ScriptEnv {
        packages: vec![format!("docker-ce={}", deb_version("26.1.5"))],
        old_packages: vec![format!("docker-ce={}", deb_version("25.0.5"))],
        backup_dir: "/var/lib/swarm-upgrade/backups/r1".into(),
        ..Default::default()
    };
    pbs.get(Method::DebianApt)
        .command(s, InitSystem::Systemd, &env)
        .unwrap()
}

#[tokio::test]
async fn install_and_restore_follow_the_su_environment() {
    let sim = SimCluster::generate(2, 1, 0, 0, 0, 1);
    let w1 = sim.id("w1");
    let run = apt_command;
    let before = sim.installed("w1");
    let out = sim.run(&w1, &run(Script::Restore)).await.unwrap();
    assert_eq!(out.status, 100, "no backup yet: {out:?}");
    for s in [Script::Stop, Script::Backup, Script::Install, Script::Start] {
        assert!(sim.run(&w1, &run(s)).await.unwrap().success(), "{s:?}");
    }
    assert_eq!(sim.engine("w1").as_deref(), Some("26.1.5"));
    for s in [Script::Stop, Script::Restore, Script::Start] {
        assert!(sim.run(&w1, &run(s)).await.unwrap().success(), "{s:?}");
    }
    assert_eq!(sim.engine("w1").as_deref(), Some("25.0.5"));
    assert_eq!(sim.installed("w1"), before);
    let unknown = sim.run(&w1, &Cmd::new(["reboot"])).await.unwrap();
    assert_eq!(unknown.status, 127);
}

#[tokio::test]
async fn staged_packages_install_without_the_repository_and_a_cut_one_fails_the_stage() {
    let sim = SimCluster::generate(3, 1, 0, 0, 0, 1);
    let run = apt_command;
    // w1: its repository cut before staging: the stage fails, as apt does.
    let w1 = sim.id("w1");
    sim.cut_repo("w1", true);
    let out = sim.run(&w1, &run(Script::Stage)).await.unwrap();
    assert_eq!(out.status, 100, "{out:?}");
    assert!(out.stderr.contains("Failed to fetch"), "{out:?}");
    // w2: staged, then its repository cut: the install comes from the cache.
    let w2 = sim.id("w2");
    let out = sim.run(&w2, &run(Script::Stage)).await.unwrap();
    assert!(
        out.success() && out.stdout.starts_with("staged: "),
        "{out:?}"
    );
    sim.advance(Duration::from_secs(60));
    sim.cut_repo("w2", true);
    for s in [Script::Stop, Script::Backup, Script::Install, Script::Start] {
        assert!(sim.run(&w2, &run(s)).await.unwrap().success(), "{s:?}");
    }
    assert_eq!(sim.engine("w2").as_deref(), Some("26.1.5"));
    // w1 without staging cannot install either.
    let out = sim.run(&w1, &run(Script::Install)).await.unwrap();
    assert_eq!(out.status, 100, "{out:?}");
}
