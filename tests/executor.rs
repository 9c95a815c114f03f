//! The executor end to end against the simulated cluster: the real checks,
//! planner and `Runner`, with `SimCluster` as its `Ops`.
//!
//! Simulated time is virtual (`SimCluster::drive`): a 20 s install costs
//! nothing. The executor's own polling sleeps on real time, so the
//! simulation reacts at once where it can; the few tests that must wait for
//! a poll (a stuck drain, a dead dockerd under sysvinit, autolock, a
//! manager unreachable for a moment) say so.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm_upgrade::cluster::{self, PlanRequest};
use swarm_upgrade::exec::events::Event;
use swarm_upgrade::exec::ops::Ops;
use swarm_upgrade::exec::rundir::RunDir;
use swarm_upgrade::exec::runner::{RunOptions, Runner};
use swarm_upgrade::exec::state::{RunState, RunStatus, StepStatus};
use swarm_upgrade::exec::{LABEL_AVAILABILITY, LABEL_DONE, LABEL_RUN};
use swarm_upgrade::facts::Gathered;
use swarm_upgrade::facts::model::{Availability, InitSystem};
use swarm_upgrade::plan::{self, Action, Plan};
use swarm_upgrade::playbook::{Playbooks, Script};
use swarm_upgrade::version::EngineVersion;
use swarm_upgrade_sim::{Delays, Op, Record, SimCluster, deb_version, lines};

#[path = "common/webhook.rs"]
mod webhook;

const PIN: &str = "26.1.5";
const OLD: &str = "25.0.5";

fn pin() -> EngineVersion {
    PIN.parse().unwrap()
}

/// 3 managers (m1 leads) and `workers` workers, 4 services, scripts taking
/// realistic virtual time.
fn cluster(workers: usize) -> SimCluster {
    let sim = SimCluster::generate(3 + workers, 3, 4, 6 + 3 * workers, 2, 42);
    sim.set_delays(Delays::test());
    sim
}

/// Called with every event the runner emits, while it runs.
type Hook<'a> = &'a (dyn Fn(&Event, &SimCluster, &AtomicBool) + Sync);

fn no_hook(_: &Event, _: &SimCluster, _: &AtomicBool) {}

/// The cluster planned (checks included, as `plan` does) and ready to run.
struct Setup {
    sim: SimCluster,
    gathered: Gathered,
    plan: Plan,
    playbooks: Playbooks,
    opts: RunOptions,
    dir: tempfile::TempDir,
}

struct Outcome {
    result: anyhow::Result<RunStatus>,
    state: RunState,
    events: Vec<Event>,
}

impl Outcome {
    fn status(&self) -> RunStatus {
        match &self.result {
            Ok(s) => *s,
            Err(e) => panic!("the run failed: {e:#}"),
        }
    }
}

impl Setup {
    fn new(sim: SimCluster, max_parallel: usize) -> Setup {
        Setup::with_key(sim, max_parallel, None)
    }

    fn with_key(sim: SimCluster, max_parallel: usize, unlock_key: Option<&str>) -> Setup {
        Setup::planned(sim, max_parallel, unlock_key, &[])
    }

    /// Its nodes' packages staged before their drain, as the built-in
    /// playbooks do.
    fn staged(sim: SimCluster, max_parallel: usize) -> Setup {
        Setup::planned(sim, max_parallel, None, &Playbooks::builtin().staged())
    }

    fn planned(
        sim: SimCluster,
        max_parallel: usize,
        unlock_key: Option<&str>,
        staged: &[swarm_upgrade::plan::Staged],
    ) -> Setup {
        Setup::with_canary(sim, max_parallel, unlock_key, staged, Default::default())
    }

    fn with_canary(
        sim: SimCluster,
        max_parallel: usize,
        unlock_key: Option<&str>,
        staged: &[swarm_upgrade::plan::Staged],
        canary: swarm_upgrade::plan::Canary,
    ) -> Setup {
        let gathered = sim.gathered(&pin());
        let plan = cluster::plan(
            &gathered,
            &PlanRequest {
                pin: &pin(),
                max_parallel,
                waived: &[],
                unlock_key: unlock_key.is_some(),
                hazards: &swarm_upgrade::hazards::Catalogue::builtin(),
                canary,
                operation: swarm_upgrade::plan::Operation::Upgrade,
                selection: &swarm_upgrade::plan::Selection::default(),
                prepull: false,
                reboot: false,
                hooks: &[],
                staged,
            },
        );
        assert!(!plan.is_blocked(), "{:#?}", plan.findings);
        Setup {
            sim,
            gathered,
            plan,
            playbooks: Playbooks::load(&[] as &[&std::path::Path]).unwrap(),
            opts: RunOptions {
                unlock_key: unlock_key.map(str::to_string),
                ..RunOptions::default()
            },
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run_dir(&self, run_id: &str) -> RunDir {
        RunDir {
            path: self.dir.path().join(run_id),
        }
    }

    /// A fresh run, saved as `apply` saves it before executing.
    fn new_run(&self, run_id: &str) -> RunState {
        let run = self.run_dir(run_id);
        run.create().unwrap();
        let state = RunState::new(
            run_id.into(),
            self.plan.cluster_id.clone(),
            pin(),
            plan::digest(&self.plan).unwrap(),
            self.plan.steps.len(),
            vec![],
        );
        run.save_state(&state).unwrap();
        state
    }

    fn runner<'a>(
        &'a self,
        run_id: &str,
        state: RunState,
        emit: &'a (dyn Fn(&Event) + Sync),
        stop: Arc<AtomicBool>,
    ) -> Runner<'a, SimCluster> {
        let (ops, plan, facts) = (&self.sim, &self.plan, &self.gathered.facts);
        Runner::new(
            ops,
            plan,
            facts,
            &self.playbooks,
            &self.opts,
            self.run_dir(run_id),
            state,
            emit,
            stop,
        )
        .unwrap()
    }

    /// Executes run `run_id` from `state` to its end.
    async fn execute(&self, run_id: &str, state: RunState, hook: Hook<'_>) -> Outcome {
        let events = Mutex::new(vec![]);
        let stop = Arc::new(AtomicBool::new(false));
        let emit = |e: &Event| {
            events.lock().unwrap().push(e.clone());
            hook(e, &self.sim, &stop);
        };
        let runner = self.runner(run_id, state, &emit, stop.clone());
        let result = self.sim.drive(runner.execute()).await;
        let state = runner.state().await;
        drop(runner);
        Outcome {
            result,
            state,
            events: events.into_inner().unwrap(),
        }
    }

    async fn fresh(&self, hook: Hook<'_>) -> Outcome {
        let state = self.new_run("run-1");
        self.execute("run-1", state, hook).await
    }

    /// The index of `node`'s `action` step.
    fn step(&self, node: &str, action: Action) -> usize {
        self.plan
            .steps
            .iter()
            .find(|s| s.node.as_deref() == Some(node) && s.action == action)
            .unwrap_or_else(|| panic!("no {action:?} step for {node}"))
            .index
    }

    fn nodes(&self) -> Vec<String> {
        self.sim.hostnames()
    }
}

fn started(e: &Event, index: usize) -> bool {
    matches!(e, Event::StepStarted { index: i, .. } if *i == index)
}

/// Hostnames in the order `script` ran on them.
fn order_of(records: &[Record], script: Script) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.is_script(script))
        .map(|r| r.node.clone())
        .collect()
}

/// What was done to nodes other than `node` at or after `seq`.
fn others_after<'a>(records: &'a [Record], seq: u64, node: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.seq >= seq && r.node != node)
        .collect()
}

fn first_failure(records: &[Record]) -> &Record {
    records
        .iter()
        .find(|r| r.status.is_some_and(|s| s != 0))
        .expect("a command failed")
}

fn assert_quorum_held(sim: &SimCluster) {
    let lost: Vec<_> = sim.timeline().into_iter().filter(|s| !s.quorum).collect();
    assert!(lost.is_empty(), "quorum lost:{}", lines(sim.timeline()));
}

fn assert_at(sim: &SimCluster, node: &str, version: &str) {
    assert_eq!(
        sim.engine(node).as_deref(),
        Some(version),
        "{node}'s engine"
    );
    assert_eq!(
        sim.installed(node)["docker-ce"],
        deb_version(version),
        "{node}'s packages"
    );
}

fn run_labels_gone(sim: &SimCluster, node: &str) {
    let labels = sim.labels(node);
    assert!(
        !labels.contains_key(LABEL_RUN) && !labels.contains_key(LABEL_AVAILABILITY),
        "{node}: {labels:?}"
    );
}

// ----- the happy path ---------------------------------------------------------------

#[tokio::test]
async fn upgrades_every_node_managers_first_leader_last_and_restores_availability() {
    let sim = cluster(2);
    // Operators' choices the run must keep: a manager kept free of tasks, a paused worker.
    sim.set_availability("m3", Availability::Drain);
    sim.set_availability("w2", Availability::Pause);
    let before: BTreeMap<String, Availability> = sim
        .hostnames()
        .into_iter()
        .map(|n| (n.clone(), sim.availability(&n)))
        .collect();
    let s = Setup::new(sim, 1);

    let out = s.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    assert!(
        out.state
            .steps
            .iter()
            .all(|st| st.status == StepStatus::Done)
    );

    let sim = &s.sim;
    for n in s.nodes() {
        assert_at(sim, &n, PIN);
        assert_eq!(
            sim.availability(&n),
            before[&n],
            "{n}: availability restored exactly"
        );
        run_labels_gone(sim, &n);
        assert_eq!(
            sim.labels(&n).get(LABEL_DONE).map(String::as_str),
            Some(PIN),
            "{n}"
        );
    }
    assert!(sim.converged());
    assert_quorum_held(sim);
    let timeline = sim.timeline();
    assert!(
        timeline
            .iter()
            .all(|t| t.managers_down <= 1 && t.workers_down <= 1),
        "one node at a time"
    );

    let records = sim.records();
    assert_eq!(
        order_of(&records, Script::Stop),
        ["m2", "m3", "m1", "w1", "w2"],
        "followers, then the leader, then workers"
    );
    assert_eq!(
        order_of(&records, Script::Install),
        ["m2", "m3", "m1", "w1", "w2"]
    );
    let last_manager = records
        .iter()
        .filter(|r| r.node.starts_with('m'))
        .map(|r| r.seq)
        .max()
        .unwrap();
    let first_worker = records
        .iter()
        .filter(|r| r.node.starts_with('w'))
        .map(|r| r.seq)
        .min()
        .unwrap();
    assert!(
        last_manager < first_worker,
        "workers only after every manager"
    );
    assert_eq!(
        sim.leader().as_deref(),
        Some("m2"),
        "leadership moved when m1 restarted"
    );
    assert_eq!(sim.lease(), None, "the lease is released");
    // The round trips are reported per host, just before the end: each node
    // ran its four scripts (stop, backup, install, start), then, unless it
    // was drained before the run (and runs no task), the service probe with
    // its engine log in the same command; nothing else.
    let [.., Event::Traffic { hosts }, Event::RunFinished { .. }] = out.events.as_slice() else {
        panic!("no traffic before run-finished: {:?}", out.events.last());
    };
    assert_eq!(hosts.keys().cloned().collect::<Vec<_>>(), s.nodes());
    for (host, t) in hosts {
        let verifies = s.plan.steps.iter().any(|st| {
            st.node.as_deref() == Some(host.as_str()) && st.action == Action::VerifyServices
        });
        assert_eq!(t.commands, if verifies { 5 } else { 4 }, "{host}: {t:?}");
        assert!(t.api_requests > 0, "{host}: {t:?}");
        assert_eq!(t.ssh_connections, None, "no SSH in the simulation");
    }
    // Scripts only, and each once: no retries, no stray commands.
    assert!(
        records
            .iter()
            .all(|r| !matches!(r.op, Op::Unknown(_) | Op::Pgrep)),
        "{}",
        lines(&records)
    );
}

// ----- failures and rollback ------------------------------------------------------------

#[tokio::test]
async fn a_broken_engine_on_the_first_manager_is_rolled_back_and_nothing_else_is_touched() {
    let sim = cluster(2);
    sim.break_engine("m2", PIN);
    let before = sim.installed("m2");
    let s = Setup::new(sim, 1);
    assert_eq!(s.plan.nodes[0].name, "m2", "m2 goes first");

    let out = s.fresh(&no_hook).await;
    assert_eq!(
        out.status(),
        RunStatus::RolledBack,
        "{:?}",
        out.state.failure
    );
    assert_eq!(out.state.rolled_back, ["m2"]);
    let failure = out.state.failure.clone().unwrap();
    assert!(failure.contains("start-engine m2"), "{failure}");

    let sim = &s.sim;
    assert_eq!(sim.engine("m2").as_deref(), Some(OLD));
    assert_eq!(sim.installed("m2"), before, "the old packages are back");
    assert_eq!(sim.availability("m2"), Availability::Active);
    run_labels_gone(sim, "m2");
    for n in ["m1", "m3", "w1", "w2"] {
        assert_at(sim, n, OLD);
    }
    let records = sim.records();
    let failed = first_failure(&records);
    assert_eq!(
        (failed.node.as_str(), &failed.op),
        ("m2", &Op::Script(Script::Start))
    );
    assert!(
        others_after(&records, 0, "m2").is_empty(),
        "only m2 was ever touched:{}",
        lines(&records)
    );
    assert_eq!(
        order_of(&records, Script::Restore),
        ["m2"],
        "rolled back from the backup"
    );
    assert_quorum_held(sim);
    assert!(sim.converged());
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::RollbackFinished { ok: true, .. }))
    );
}

/// V7: a worker whose published ports stop answering once it runs the new
/// engine (seed 001) fails `verify-services` after its batch converged: it
/// is drained again, rolled back to its old engine, its ports answer again,
/// and the run stops there (exit 4) with the port named.
#[tokio::test]
async fn a_published_port_that_stops_answering_after_the_upgrade_rolls_the_node_back() {
    let sim = cluster(2);
    sim.close_ports("w1", PIN);
    let before = sim.installed("w1");
    let s = Setup::new(sim, 1);
    let out = s.fresh(&no_hook).await;
    assert_eq!(
        out.status(),
        RunStatus::RolledBack,
        "{:?}",
        out.state.failure
    );
    assert_eq!(out.state.rolled_back, ["w1"]);
    let failure = out.state.failure.clone().unwrap();
    assert!(failure.contains("verify-services w1"), "{failure}");
    assert!(
        failure.contains(
            "published port 8081 (host mode of service svc0) does not answer on the node"
        ),
        "{failure}"
    );
    let sim = &s.sim;
    assert_eq!(sim.engine("w1").as_deref(), Some(OLD));
    assert_eq!(sim.installed("w1"), before, "the old packages are back");
    assert_eq!(sim.availability("w1"), Availability::Active);
    run_labels_gone(sim, "w1");
    assert_at(sim, "w2", OLD);
    for m in ["m1", "m2", "m3"] {
        assert_at(sim, m, PIN);
    }
    // Drained again before its engine stopped: the second drain is the undo's.
    let drains = sim
        .records()
        .iter()
        .filter(|r| {
            r.node == "w1"
                && matches!(
                    r.op,
                    Op::Update {
                        availability: Some(Availability::Drain)
                    }
                )
        })
        .count();
    assert_eq!(drains, 2, "{}", lines(sim.records()));
    assert_quorum_held(sim);
    assert!(sim.converged());
    // Every node that passed said what it verified.
    let verified: Vec<&str> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepOutput {
                node: Some(n),
                text,
                ..
            } if text.starts_with("verified: ") => Some(n.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(verified, ["m2", "m3", "m1"], "{:?}", out.events);
}

#[tokio::test]
async fn a_failed_install_on_a_worker_is_rolled_back_from_its_backup() {
    let sim = cluster(2);
    sim.fail_script(
        "w1",
        Script::Install,
        100,
        "E: Unable to fetch some archives",
        Some(1),
    );
    let before = sim.installed("w1");
    let s = Setup::new(sim, 1);

    let out = s.fresh(&no_hook).await;
    assert_eq!(
        out.status(),
        RunStatus::RolledBack,
        "{:?}",
        out.state.failure
    );
    let sim = &s.sim;
    for m in ["m1", "m2", "m3"] {
        assert_at(sim, m, PIN);
    }
    assert_eq!(sim.engine("w1").as_deref(), Some(OLD));
    assert_eq!(sim.installed("w1"), before);
    assert_eq!(sim.availability("w1"), Availability::Active);
    assert_at(sim, "w2", OLD);
    let records = sim.records();
    let failed = first_failure(&records);
    assert!(others_after(&records, failed.seq, "w1").is_empty());
    assert!(sim.records().iter().all(|r| r.node != "w2"), "w2 untouched");
}

/// I3: a command that does not reach its host changed nothing there: the
/// run stops resumable (exit 6) without undoing anything, the drained node
/// recorded in the swarm's labels, and `resume` finishes once SSH is back.
#[tokio::test]
async fn ssh_lost_before_a_stop_stops_resumable_without_undoing_and_resume_finishes() {
    let sim = cluster(2);
    let s = Setup::new(sim, 1);
    let stop_w1 = s.step("w1", Action::StopEngine);
    let hook = move |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, stop_w1) {
            sim.lose_ssh("w1", true);
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.status(), RunStatus::Failed, "{:?}", out.state.failure);
    let failure = out.state.failure.clone().unwrap();
    assert!(failure.contains("not delivered"), "{failure}");
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, Event::RollbackStarted { .. })),
        "nothing is rolled back"
    );
    let sim = &s.sim;
    assert_eq!(sim.engine("w1").as_deref(), Some(OLD), "never stopped");
    assert_eq!(sim.availability("w1"), Availability::Drain);
    assert_eq!(
        sim.labels("w1").get(LABEL_AVAILABILITY).map(String::as_str),
        Some("active"),
        "the swarm records what to give back"
    );
    assert!(sim.records().iter().all(|r| r.node != "w2"));

    sim.lose_ssh("w1", false);
    let again = s.execute("run-1", out.state, &no_hook).await;
    assert_eq!(again.status(), RunStatus::Done, "{:?}", again.state.failure);
    for n in s.nodes() {
        assert_at(sim, &n, PIN);
        assert_eq!(sim.availability(&n), Availability::Active);
        run_labels_gone(sim, &n);
    }
}

/// The manager that answered last is asked again without probing it first.
/// Once it stops answering (SSH to two managers lost while the workers are
/// upgraded, so whichever was asked last is gone), the question that failed
/// is asked again of a manager probed then, and the run finishes through it.
#[tokio::test]
async fn a_manager_that_stops_answering_is_replaced_and_the_run_finishes() {
    let sim = cluster(2);
    let s = Setup::new(sim, 1);
    let drain_w1 = s.step("w1", Action::Drain);
    let m2_before = Mutex::new(None);
    let hook = |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, drain_w1) {
            sim.lose_ssh("m1", true);
            sim.lose_ssh("m3", true);
            *m2_before.lock().unwrap() = Some(Ops::traffic(sim)["m2"].api_requests);
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    for n in s.nodes() {
        assert_at(&s.sim, &n, PIN);
        assert_eq!(s.sim.availability(&n), Availability::Active);
    }
    let before = m2_before.lock().unwrap().expect("w1 was drained");
    let during = Ops::traffic(&s.sim)["m2"].api_requests - before;
    assert!(during >= 10, "m2 answered the workers' questions: {during}");
}

#[tokio::test]
async fn a_stuck_drain_times_out_and_the_node_gets_its_availability_back() {
    // Waits one real poll interval (100 ms) of the executor.
    let sim = cluster(2);
    sim.slow_drain("w1", None);
    let mut s = Setup::new(sim, 1);
    s.opts.drain_timeout = Duration::from_millis(1);
    let out = s.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::RolledBack);
    assert!(out.state.failure.unwrap().contains("wait-drained w1"));
    let sim = &s.sim;
    assert_eq!(sim.engine("w1").as_deref(), Some(OLD));
    assert_eq!(sim.availability("w1"), Availability::Active);
    assert!(!order_of(&sim.records(), Script::Stop).contains(&"w1".to_string()));
}

/// A staged node installs while its tasks drain, before its engine stops:
/// when the drain then times out, undoing it puts its old packages back,
/// and its engine, never stopped, runs on.
#[tokio::test]
async fn a_staged_node_whose_drain_times_out_after_its_install_gets_its_old_packages_back() {
    let sim = cluster(2);
    sim.slow_drain("w1", None);
    let before = sim.installed("w1");
    let mut s = Setup::staged(sim, 1);
    s.opts.drain_timeout = Duration::from_millis(1);
    assert!(s.step("w1", Action::Install) < s.step("w1", Action::WaitDrained));
    let out = s.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::RolledBack);
    assert!(out.state.failure.unwrap().contains("wait-drained w1"));
    let sim = &s.sim;
    let records = sim.records();
    let w1 = vec!["w1".to_string()];
    assert_eq!(
        order_of(&records, Script::Install),
        ["m2", "m3", "m1", "w1"]
    );
    assert_eq!(order_of(&records, Script::Restore), w1);
    assert!(!order_of(&records, Script::Stop).contains(&w1[0]));
    assert_eq!(sim.installed("w1"), before);
    assert_eq!(sim.engine("w1").as_deref(), Some(OLD));
    assert_eq!(sim.availability("w1"), Availability::Active);
    run_labels_gone(sim, "w1");
}

#[tokio::test]
async fn a_dockerd_that_dies_after_a_sysvinit_start_is_caught_by_verify_and_rolled_back() {
    // sysvinit's start script returns 0 and dockerd exits behind it. Waits
    // one real poll interval: the executor's verify deadline is on real time.
    let sim = cluster(1);
    sim.set_init(InitSystem::Sysvinit);
    sim.break_engine("w1", PIN);
    let mut s = Setup::new(sim, 1);
    s.opts.verify_timeout = Duration::from_millis(50);
    let out = s.fresh(&no_hook).await;
    assert_eq!(
        out.status(),
        RunStatus::RolledBack,
        "{:?}",
        out.state.failure
    );
    let failure = out.state.failure.unwrap();
    assert!(failure.contains("verify w1"), "{failure}");
    assert!(
        failure.contains("deliberately broken dockerd"),
        "the engine log is quoted: {failure}"
    );
    assert_eq!(s.sim.engine("w1").as_deref(), Some(OLD));
    assert_eq!(s.sim.availability("w1"), Availability::Active);
}

// ----- stop and resume ---------------------------------------------------------------------

#[tokio::test]
async fn a_stop_request_ends_at_the_next_safe_point_and_resume_finishes_the_job() {
    let sim = cluster(2);
    let s = Setup::new(sim, 1);
    let stop_at = s.step("m3", Action::Install);
    let hook = move |e: &Event, _: &SimCluster, stop: &AtomicBool| {
        if started(e, stop_at) {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.status(), RunStatus::Interrupted);
    // m3's batch finished: no engine is left down.
    let sim = &s.sim;
    assert_at(sim, "m2", PIN);
    assert_at(sim, "m3", PIN);
    assert_at(sim, "m1", OLD);
    assert!(
        s.sim
            .timeline()
            .last()
            .is_some_and(|t| t.managers_down + t.workers_down == 0)
    );
    let verify_m3 = s.step("m3", Action::Verify);
    assert!((1..=verify_m3).all(|i| out.state.step(i).status == StepStatus::Done));
    assert!(
        out.state.steps[verify_m3..]
            .iter()
            .all(|st| st.status == StepStatus::Pending)
    );
    assert_eq!(sim.lease(), None);

    let saved = s.run_dir("run-1").load_state().unwrap();
    assert_eq!(saved, out.state);
    let again = s.execute("run-1", saved, &no_hook).await;
    assert_eq!(again.status(), RunStatus::Done);
    for n in s.nodes() {
        assert_at(sim, &n, PIN);
        assert_eq!(sim.availability(&n), Availability::Active);
    }
    assert_eq!(
        order_of(&sim.records(), Script::Stop),
        ["m2", "m3", "m1", "w1", "w2"],
        "nothing done twice"
    );
    assert!(matches!(again.events[0], Event::RunStarted { done, .. } if done == verify_m3));
}

/// Drops the runner (a crash: nothing after it runs, not even a save) when
/// `script` starts on `node`; returns the state file as the crash left it.
async fn crash_when(s: &Setup, node: &str, script: Script) -> RunState {
    let state = s.new_run("run-1");
    let emit = |_: &Event| {};
    let runner = s.runner("run-1", state, &emit, Arc::new(AtomicBool::new(false)));
    let crashed = s
        .sim
        .drive(async {
            tokio::select! {
                biased;
                status = runner.execute() => Some(status),
                () = s.sim.script_started(node, script) => None,
            }
        })
        .await;
    assert!(
        crashed.is_none(),
        "the run ended before the crash: {crashed:?}"
    );
    drop(runner);
    s.run_dir("run-1").load_state().unwrap()
}

#[tokio::test]
async fn a_crash_in_the_middle_of_an_install_is_resumed_by_running_the_install_again() {
    let sim = cluster(2);
    let s = Setup::new(sim, 1);
    let install_w1 = s.step("w1", Action::Install);
    let state = crash_when(&s, "w1", Script::Install).await;
    assert_eq!(state.status, RunStatus::Running);
    assert_eq!(state.step(install_w1).status, StepStatus::Running);
    assert!((1..install_w1).all(|i| state.done(i)));

    let out = s.execute("run-1", state, &no_hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    let sim = &s.sim;
    for n in s.nodes() {
        assert_at(sim, &n, PIN);
        assert_eq!(sim.availability(&n), Availability::Active);
    }
    assert_eq!(
        order_of(&sim.records(), Script::Install),
        ["m2", "m3", "m1", "w1", "w1", "w2"],
        "the interrupted install ran again"
    );
    assert_eq!(
        order_of(&sim.records(), Script::Stop),
        ["m2", "m3", "m1", "w1", "w2"],
        "done steps are not repeated"
    );
    assert_quorum_held(sim);
}

/// A crash while the engine stops leaves the StopEngine step `Running`; by
/// the time `resume` re-runs it the swarm sees the node down: that is the
/// step's own doing, not a reason to refuse (the guard once said "w1 is
/// Down, not ready" and rolled the node back).
#[tokio::test]
async fn a_crash_while_the_engine_stops_is_resumed_to_the_end() {
    let sim = cluster(2);
    let s = Setup::new(sim, 1);
    let state = crash_when(&s, "w1", Script::Stop).await;
    // The operator restarts the tool a minute later: the stop has completed
    // on the host and the heartbeat grace is over.
    s.sim.advance(Duration::from_secs(60));
    assert_eq!(s.sim.engine("w1"), None);

    let out = s.execute("run-1", state, &no_hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    assert_at(&s.sim, "w1", PIN);
}

// ----- the canaries' soak ------------------------------------------------------------------

/// A plan whose canaries soak 30 s, checked every 10 s; its first soak
/// step and that canary's name.
fn soaked() -> (Setup, usize, String) {
    let canary = swarm_upgrade::plan::Canary {
        soak_secs: 30,
        soak_checks: 3,
        pause: false,
    };
    let s = Setup::with_canary(cluster(2), 1, None, &[], canary);
    let soak = s
        .plan
        .steps
        .iter()
        .find(|st| st.action == Action::Soak)
        .unwrap();
    let (index, name) = (soak.index, soak.node.clone().unwrap());
    (s, index, name)
}

/// The run rolled its node back; why.
fn rolled_back_for(out: Outcome) -> String {
    assert_eq!(
        out.status(),
        RunStatus::RolledBack,
        "{:?}",
        out.state.failure
    );
    out.state.failure.unwrap_or_default()
}

#[tokio::test]
async fn a_canary_cut_off_in_the_middle_of_its_soak_is_judged_at_once_not_at_its_next_check() {
    let (s, soak_i, name) = soaked();
    let started_at = Mutex::new(None);
    let failed_at = Mutex::new(None);
    let hook = |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, soak_i) {
            *started_at.lock().unwrap() = Some(tokio::time::Instant::now());
            // Cut off once the soak watches it; its first check is due at 10 s.
            sim.partition_after(&name, Duration::from_secs(3));
        }
        // Its rollback needs the managers to see it again.
        if matches!(e, Event::RollbackStarted { .. }) {
            sim.partition(&name, false);
        }
        if matches!(e, Event::StepFailed { index, .. } if *index == soak_i) {
            *failed_at.lock().unwrap() = Some(tokio::time::Instant::now());
        }
    };
    let failure = rolled_back_for(s.fresh(&hook).await);
    assert!(failure.contains("soak check 1 of 3"), "{failure}");
    let took = failed_at.lock().unwrap().unwrap() - started_at.lock().unwrap().unwrap();
    assert!(
        took < Duration::from_secs(6),
        "the cut was seen {took:?} into the soak, not at once: {failure}"
    );
    assert_quorum_held(&s.sim);
}

#[tokio::test]
async fn a_canary_cut_off_as_its_soak_begins_is_judged_before_its_first_check() {
    // Before the soak's event streams open: they report only what changes
    // after, so the soak reads the swarm's view of the node as they open.
    let (s, soak_i, name) = soaked();
    let hook = |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, soak_i) {
            sim.partition(&name, true);
        }
        if matches!(e, Event::RollbackStarted { .. }) {
            sim.partition(&name, false);
        }
    };
    let failure = rolled_back_for(s.fresh(&hook).await);
    assert!(failure.contains("failed as its soak began"), "{failure}");
    assert_quorum_held(&s.sim);
}

// ----- the quorum guard -------------------------------------------------------------------

#[tokio::test]
async fn a_manager_unreachable_for_a_moment_is_waited_for() {
    // Waits one real poll interval of the guard.
    let sim = cluster(2);
    let s = Setup::new(sim, 1);
    let drain_m3 = s.step("m3", Action::Drain);
    let hook = move |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, drain_m3) {
            sim.partition_for("m2", Duration::from_secs(10));
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    assert_quorum_held(&s.sim);
    let timeline = s.sim.timeline();
    let healed = timeline.iter().position(|t| t.what == "m2 healed").unwrap();
    let m3_down = timeline
        .iter()
        .position(|t| t.what == "m3 engine stopped")
        .unwrap();
    assert!(
        healed < m3_down,
        "m3 went down only once m2 was back:{}",
        lines(&timeline)
    );
}

#[tokio::test]
async fn a_manager_lost_before_the_second_managers_drain_stops_the_run_before_it_goes_down() {
    let sim = cluster(2);
    let mut s = Setup::new(sim, 1);
    // Lost for good: no point waiting for it to come back.
    s.opts.guard_timeout = Duration::ZERO;
    let drain_m3 = s.step("m3", Action::Drain);
    let hook = move |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, drain_m3) {
            sim.partition("m2", true);
        }
    };
    let out = s.fresh(&hook).await;
    assert_ne!(out.status(), RunStatus::Done);
    assert_eq!(out.state.step(drain_m3).status, StepStatus::Failed);
    let failure = out.state.failure.unwrap();
    assert!(
        failure.contains("precondition failed")
            && failure.contains("m2")
            && failure.contains("unreachable"),
        "{failure}"
    );
    let sim = &s.sim;
    let records = sim.records();
    assert!(
        !order_of(&records, Script::Stop).contains(&"m3".into()),
        "m3 never went down"
    );
    assert!(
        !records.iter().any(|r| r.node == "m3"
            && r.op
                == Op::Update {
                    availability: Some(Availability::Drain)
                }),
        "m3 was not even drained"
    );
    assert_eq!(sim.engine("m3").as_deref(), Some(OLD));
    assert!(records.iter().all(|r| r.node != "m1"));
    assert_quorum_held(sim);
}

/// When the quorum guard refuses to stop a manager, the undo must not count
/// the refused StopEngine as done and stop that very manager (which would
/// lose quorum while another is unreachable).
#[tokio::test]
async fn a_manager_lost_before_the_second_managers_stop_does_not_take_it_down() {
    let sim = cluster(2);
    let mut s = Setup::new(sim, 1);
    s.opts.guard_timeout = Duration::ZERO;
    // With the bug, the rollback then waits for a swarm without a leader to
    // verify m3: do not wait the default 3 minutes for that.
    s.opts.verify_timeout = Duration::from_millis(100);
    let stop_m3 = s.step("m3", Action::StopEngine);
    let hook = move |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, stop_m3) {
            sim.partition("m2", true);
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.state.step(stop_m3).status, StepStatus::Failed);
    assert!(out.state.failure.unwrap().contains("precondition failed"));
    let records = s.sim.records();
    assert!(
        !order_of(&records, Script::Stop).contains(&"m3".into()),
        "the guard said no, yet m3 was stopped:{}",
        lines(&records)
    );
    assert_quorum_held(&s.sim);
}

// ----- concurrency ------------------------------------------------------------------------

#[tokio::test]
async fn a_second_run_against_the_same_swarm_is_locked_out() {
    let sim = cluster(2);
    let s = Setup::new(sim, 1);
    let (a, b) = (s.new_run("run-a"), s.new_run("run-b"));
    let emit = |_: &Event| {};
    let ra = s.runner("run-a", a, &emit, Arc::new(AtomicBool::new(false)));
    let rb = s.runner("run-b", b, &emit, Arc::new(AtomicBool::new(false)));
    // run-a is polled first, takes the lease and blocks in its first stop.
    let (a, b) = s
        .sim
        .drive(async { tokio::join!(ra.execute(), rb.execute()) })
        .await;
    assert_eq!(a.unwrap(), RunStatus::Done);
    let err = b.unwrap_err();
    assert_eq!(swarm_upgrade::error::exit_code_of(&err), 75, "{err:#}");
    assert!(err.to_string().contains("run-a"), "{err}");
    assert_eq!(s.sim.lease(), None);
}

#[tokio::test]
async fn max_parallel_2_upgrades_two_workers_at_once_in_less_simulated_time() {
    let mut times = vec![];
    for max_parallel in [1, 2] {
        let sim = cluster(4);
        let s = Setup::new(sim, max_parallel);
        let out = s.fresh(&no_hook).await;
        assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
        for n in s.nodes() {
            assert_at(&s.sim, &n, PIN);
        }
        let most_down = s
            .sim
            .timeline()
            .iter()
            .map(|t| t.workers_down)
            .max()
            .unwrap();
        assert_eq!(most_down, max_parallel, "workers down at once");
        assert_quorum_held(&s.sim);
        times.push(s.sim.now());
    }
    // Four workers of 26 s of scripts and 0.05 s of service checks (the
    // probe with the engine log) each: 104.2 s one by one, 52.1 s two by two.
    assert_eq!(
        times[0] - times[1],
        Duration::from_millis(52_100),
        "{times:?}"
    );
}

/// When a node of a parallel batch fails, its siblings install nothing more:
/// a sibling not yet installing is brought back to its old engine and its
/// availability; the run stops with the batch.
#[tokio::test]
async fn a_failure_in_a_parallel_batch_stops_its_siblings_at_a_safe_point() {
    let sim = cluster(4);
    sim.fail_script(
        "w1",
        Script::Stop,
        1,
        "Failed to stop docker.service: Unit docker.service is masked.",
        Some(1),
    );
    let s = Setup::new(sim, 2);
    let out = s.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::RolledBack);
    let records = s.sim.records();
    let failed = first_failure(&records);
    let after: Vec<_> = others_after(&records, failed.seq, "w1")
        .into_iter()
        .filter(|r| matches!(r.op, Op::Script(Script::Install)))
        .collect();
    assert!(
        after.is_empty(),
        "w2 was upgraded after w1 failed:{}",
        lines(after)
    );
    for n in s.nodes() {
        if n.starts_with('w') {
            assert_at(&s.sim, &n, OLD);
        }
    }
}

// ----- swarm features ---------------------------------------------------------------------

#[tokio::test]
async fn autolocked_managers_are_unlocked_with_the_key_on_stdin() {
    // One real poll interval per manager: verify polls again after unlocking.
    let key = "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8";
    let sim = cluster(1);
    sim.enable_autolock(key);
    let s = Setup::with_key(sim, 1, Some(key));
    let out = s.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    let unlocks: Vec<_> = s
        .sim
        .records()
        .into_iter()
        .filter(|r| r.op == Op::Unlock)
        .collect();
    assert_eq!(unlocks.len(), 3, "{}", lines(&unlocks));
    assert!(
        unlocks.iter().all(|r| r.status == Some(0)),
        "the simulation refuses a key in argv:{}",
        lines(&unlocks)
    );
}

/// A single-manager swarm (which the quorum guard and the quorum-budget
/// check allow, with a warning) has no other manager to ask: its own API is
/// asked whenever its engine is up.
#[tokio::test]
async fn a_single_manager_swarm_is_upgraded() {
    let sim = SimCluster::generate(3, 1, 3, 7, 1, 42);
    sim.set_delays(Delays::test());
    let mut s = Setup::new(sim, 1);
    // With the bug the guard retries "no other manager" for a minute.
    s.opts.guard_timeout = Duration::ZERO;
    let out = s.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    for n in s.nodes() {
        assert_at(&s.sim, &n, PIN);
    }
}

// ----- issue 11: resumable stops ----------------------------------------------------------

/// I1: when the managers do not see a verified-looking manager because
/// ANOTHER manager is unreachable, verify's one engine restart would take a
/// second manager down: the guard refuses, the run stops with that engine
/// running (exit 6), and `resume` finishes once the other is back. Paused
/// time: verify waits 60 s before it would restart.
#[tokio::test(start_paused = true)]
async fn verify_does_not_restart_a_manager_while_another_is_unreachable() {
    let sim = cluster(1);
    let mut s = Setup::new(sim, 1);
    s.opts.guard_timeout = Duration::from_secs(5);
    let verify_m2 = s.step("m2", Action::Verify);
    let hook = move |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, verify_m2) {
            sim.partition("m3", true);
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.status(), RunStatus::Failed, "{:?}", out.state.failure);
    let failure = out.state.failure.clone().unwrap();
    assert!(failure.contains("restarting it is refused"), "{failure}");
    assert!(failure.contains("m3 unreachable"), "{failure}");
    assert_quorum_held(&s.sim);
    assert_eq!(s.sim.engine("m2").as_deref(), Some(PIN), "left running");
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, Event::RollbackStarted { .. })),
        "undoing would stop m2 too"
    );

    s.sim.partition("m3", false);
    let again = s.execute("run-1", out.state, &no_hook).await;
    assert_eq!(again.status(), RunStatus::Done, "{:?}", again.state.failure);
    assert_quorum_held(&s.sim);
}

/// After exit 4 on the 2nd manager, the run is resumable: once the engine
/// is fixed, `resume` upgrades it and gives the first manager (upgraded and
/// drained before the failure) its availability back.
#[tokio::test]
async fn a_rolled_back_second_manager_is_finished_by_resume_once_fixed() {
    let sim = cluster(1);
    sim.break_engine("m3", PIN);
    let mut s = Setup::new(sim, 1);
    s.opts.verify_timeout = Duration::from_millis(50);
    let out = s.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::RolledBack);
    assert!(out.state.status.resumable());
    assert_at(&s.sim, "m2", PIN);
    assert_eq!(s.sim.availability("m2"), Availability::Drain);
    assert_eq!(
        s.sim
            .labels("m2")
            .get(LABEL_AVAILABILITY)
            .map(String::as_str),
        Some("active")
    );

    s.sim.repair_engine("m3");
    let again = s.execute("run-1", out.state, &no_hook).await;
    assert_eq!(again.status(), RunStatus::Done, "{:?}", again.state.failure);
    for n in s.nodes() {
        assert_at(&s.sim, &n, PIN);
        assert_eq!(s.sim.availability(&n), Availability::Active, "{n}");
        run_labels_gone(&s.sim, &n);
    }
}

/// Another machine, with nothing but the swarm: the plan it makes from the
/// labels gives a manager the dead run upgraded and drained its
/// availability back (not "drained before the run"), and continues.
#[tokio::test]
async fn a_run_is_finished_from_an_empty_state_directory_by_reading_the_labels() {
    let sim = cluster(1);
    let s = Setup::new(sim, 1);
    crash_when(&s, "m3", Script::Install).await;
    s.sim.advance(Duration::from_secs(120));
    assert_eq!(s.sim.availability("m2"), Availability::Drain);

    let g = s.sim.gathered(&pin());
    let plan = cluster::plan(
        &g,
        &PlanRequest {
            pin: &pin(),
            max_parallel: 1,
            waived: &[],
            unlock_key: false,
            hazards: &swarm_upgrade::hazards::Catalogue::builtin(),
            canary: Default::default(),
            operation: swarm_upgrade::plan::Operation::Upgrade,
            selection: &swarm_upgrade::plan::Selection::default(),
            prepull: false,
            reboot: false,
            hooks: &[],
            staged: &[],
        },
    );
    assert!(!plan.is_blocked(), "{:#?}", plan.findings);
    assert!(
        !plan
            .findings
            .iter()
            .any(|f| f.message.contains("drained before the run")),
        "{:#?}",
        plan.findings
    );
    let m2: Vec<Action> = plan
        .steps
        .iter()
        .filter(|st| st.node.as_deref() == Some("m2"))
        .map(|st| st.action)
        .collect();
    assert_eq!(
        m2,
        [Action::RestoreAvailability, Action::VerifyServices],
        "m2 is at the pin already: its availability back, its services verified"
    );
    assert_eq!(
        plan.steps[0].node.as_deref(),
        Some("m3"),
        "the node the dead run left down goes first"
    );

    let other = Setup {
        plan,
        gathered: g,
        opts: RunOptions {
            break_lock: true,
            ..RunOptions::default()
        },
        dir: tempfile::tempdir().unwrap(),
        ..s
    };
    other.sim.expire_lease();
    let out = other.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    for n in other.nodes() {
        assert_at(&other.sim, &n, PIN);
        assert_eq!(other.sim.availability(&n), Availability::Active, "{n}");
        run_labels_gone(&other.sim, &n);
    }
    assert_eq!(other.sim.lease(), None);
}

/// I5: a lease taken by another run stops this one at the next batch
/// boundary, with the reason journaled; `resume` continues once it is free.
#[tokio::test]
async fn a_lost_lease_stops_the_run_at_the_next_safe_point() {
    let sim = cluster(1);
    let s = Setup::new(sim, 1);
    let install_m2 = s.step("m2", Action::Install);
    let hook = move |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, install_m2) {
            sim.take_lease("run-b");
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.status(), RunStatus::Failed);
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::LeaseLost { reason } if reason.contains("run-b"))),
        "{:?}",
        out.events
    );
    let failure = out.state.failure.clone().unwrap();
    assert!(failure.contains("lease was lost"), "{failure}");
    // m2's batch finished (no engine left down); m3's never started.
    assert_at(&s.sim, "m2", PIN);
    assert!(s.sim.records().iter().all(|r| r.node != "m3"));
    assert_eq!(
        s.sim.lease().unwrap().run_id,
        "run-b",
        "not released: not ours"
    );

    s.sim.drop_lease();
    let again = s.execute("run-1", out.state, &no_hook).await;
    assert_eq!(again.status(), RunStatus::Done, "{:?}", again.state.failure);
    assert_eq!(s.sim.lease(), None);
}

/// The lease is renewed while a long batch runs, not only between batches:
/// a verify that waits more than the lease's TTL keeps it alive.
#[tokio::test(start_paused = true)]
async fn the_lease_heartbeat_renews_during_a_long_batch() {
    let sim = cluster(1);
    let mut s = Setup::new(sim, 1);
    s.opts.lease_ttl = Duration::from_secs(30);
    s.sim.unseen_after_start("w1", Duration::from_secs(70));
    let verify_w1 = s.step("w1", Action::Verify);
    let renewals = Mutex::new(None);
    let hook = |e: &Event, sim: &SimCluster, _: &AtomicBool| {
        if started(e, verify_w1) {
            *renewals.lock().unwrap() = Some(sim.lease_renewals());
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.status(), RunStatus::Done, "{:?}", out.state.failure);
    let before = renewals.lock().unwrap().unwrap();
    // The verify of w1 waited 70 s (then restarted it once): every 10 s a renewal.
    let during = s.sim.lease_renewals() - before;
    assert!(during >= 6, "{during} renewals during w1's verify");
}

/// After exit 4, `--skip-node` leaves the failed node out by name: the run
/// finishes the others, and the node keeps its old engine and availability.
/// A name that is not in the plan is refused (exit 2) before anything runs.
#[tokio::test]
async fn skip_node_finishes_the_run_without_the_failed_node() {
    let sim = cluster(1);
    sim.break_engine("m3", PIN);
    let mut s = Setup::new(sim, 1);
    s.opts.verify_timeout = Duration::from_millis(50);
    let out = s.fresh(&no_hook).await;
    assert_eq!(out.status(), RunStatus::RolledBack);

    s.opts.skip_nodes = vec!["m9".into()];
    let typo = s.execute("run-1", out.state.clone(), &no_hook).await;
    let err = typo.result.unwrap_err();
    assert_eq!(swarm_upgrade::error::exit_code_of(&err), 2, "{err:#}");
    assert!(err.to_string().contains("--skip-node m9"), "{err}");

    s.opts.skip_nodes = vec!["m3".into()];
    let again = s.execute("run-1", out.state, &no_hook).await;
    assert_eq!(again.status(), RunStatus::Done, "{:?}", again.state.failure);
    let sim = &s.sim;
    assert_at(sim, "m3", OLD);
    for n in s.nodes() {
        if n != "m3" {
            assert_at(sim, &n, PIN);
        }
        assert_eq!(sim.availability(&n), Availability::Active, "{n}");
        run_labels_gone(sim, &n);
    }
    let verify_m3 = s.step("m3", Action::Verify);
    assert_eq!(again.state.step(verify_m3).status, StepStatus::Skipped);
}

// ----- issue 14: maintenance windows ------------------------------------------------------

/// Outside every window no node starts: the run waits at the safe point
/// (saying when the window opens), renewing its lease, and stops there on
/// Ctrl-C with nothing touched; inside one, it runs as usual.
#[tokio::test(start_paused = true)]
async fn outside_its_windows_a_run_starts_no_node() {
    let sim = cluster(1);
    let mut s = Setup::new(sim, 1);
    // A window that opens in three hours and lasts one, whatever the time
    // now; the open one below spans this hour and the next (a test that
    // runs across the hour stays in it).
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600)
        % 24;
    let closed = format!(
        "daily {:02}:00-{:02}:00 UTC",
        (hour + 3) % 24,
        (hour + 4) % 24
    );
    s.opts.windows = vec![closed.parse().unwrap()];
    s.opts.control_poll = Duration::from_secs(30);
    let hook = |e: &Event, _: &SimCluster, stop: &AtomicBool| {
        if matches!(e, Event::WaitingForWindow { .. }) {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let out = s.fresh(&hook).await;
    assert_eq!(out.status(), RunStatus::Interrupted);
    assert!(
        out.events
            .iter()
            .any(|e| matches!(e, Event::WaitingForWindow { .. }))
    );
    assert!(
        !out.events
            .iter()
            .any(|e| matches!(e, Event::StepStarted { .. })),
        "no step started outside the window"
    );

    let open = format!("daily {:02}:00-{:02}:00 UTC", hour, (hour + 2) % 24);
    s.opts.windows = vec![open.parse().unwrap(), closed.parse().unwrap()];
    let again = s.execute("run-1", out.state, &no_hook).await;
    assert_eq!(again.status(), RunStatus::Done, "{:?}", again.state.failure);
}

// ----- notifications and metrics ----------------------------------------------------

/// `--notify` and `--metrics-file` follow a simulated run as consumers of
/// its events: a local HTTP listener receives one document per run and
/// node event, in order, and the metrics file ends with each node's state.
#[tokio::test]
async fn notifications_and_metrics_follow_a_run_with_a_rolled_back_worker() {
    use swarm_upgrade::observe::webhook::Endpoint;
    use swarm_upgrade::observe::{ObserveOptions, Observers};

    let sim = cluster(2);
    sim.fail_script(
        "w1",
        Script::Install,
        100,
        "E: Unable to fetch some archives",
        Some(1),
    );
    let s = Setup::new(sim, 1);
    let hook = webhook::Listener::start();
    let metrics = s.dir.path().join("swarm-upgrade.prom");
    let opts = ObserveOptions {
        notify: vec![Endpoint::parse(&hook.url).unwrap()],
        metrics_file: Some(metrics.clone()),
    };
    let state = s.new_run("run-1");
    let observers = Observers::start(&opts, &s.plan, &state, &[]);
    let warnings = Mutex::new(vec![]);
    let warn = |w: &str| warnings.lock().unwrap().push(w.to_string());
    let out = s
        .execute("run-1", state, &|e, _, _| observers.event(e, &warn))
        .await;
    observers.finish(&warn);
    assert_eq!(out.status(), RunStatus::RolledBack);
    assert!(warnings.lock().unwrap().is_empty(), "{warnings:?}");

    assert_eq!(
        hook.events(),
        [
            "run-started",
            "node-started m2",
            "node-upgraded m2",
            "node-started m3",
            "node-upgraded m3",
            "node-started m1",
            "node-upgraded m1",
            "node-started w1",
            "node-failed w1",
            "node-rolled-back w1",
            "run-rolled-back",
        ]
    );
    let received = hook.received();
    for (target, doc) in &received {
        assert_eq!(target, &format!("/hooks/{}", webhook::TOKEN));
        assert_eq!(doc["run_id"], "run-1");
        assert_eq!(doc["source"], "swarm-upgrade");
        assert!(
            doc["text"].as_str().unwrap().starts_with("swarm-upgrade: "),
            "{doc}"
        );
    }
    let failed = &received[8].1;
    assert_eq!(failed["role"], "worker");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("E: Unable to fetch some archives"),
        "{failed}"
    );
    let end = &received[10].1;
    assert_eq!(end["status"], "rolled-back");
    assert!(
        end["reason"].as_str().unwrap().contains("install w1"),
        "{end}"
    );

    let text = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        r#"swarm_upgrade_run_state{state="rolled-back"} 1"#,
        r#"swarm_upgrade_node_state{node="m1",role="manager",state="done"} 1"#,
        r#"swarm_upgrade_node_state{node="w1",role="worker",state="rolled-back"} 1"#,
        r#"swarm_upgrade_node_state{node="w2",role="worker",state="pending"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    assert!(
        text.contains(r#"swarm_upgrade_step_duration_seconds{step="1",node="m2",action="drain"} "#),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&metrics).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "node_exporter must be able to read it");
}

/// A webhook that does not answer never holds the run back: the run takes
/// as long as without it, and says once that the notification failed.
#[tokio::test]
async fn a_dead_webhook_does_not_slow_the_run_and_warns_once() {
    use swarm_upgrade::observe::webhook::Endpoint;
    use swarm_upgrade::observe::{ObserveOptions, Observers};

    // Accepts connections (the kernel's backlog) and never answers.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/{}",
        dead.local_addr().unwrap(),
        webhook::TOKEN
    );
    let s = Setup::new(cluster(1), 1);
    let opts = ObserveOptions {
        notify: vec![Endpoint::parse(&url).unwrap()],
        metrics_file: None,
    };
    let state = s.new_run("run-1");
    let observers = Observers::with_timeout(&opts, &s.plan, &state, &[], Duration::from_secs(2));
    let warnings = Mutex::new(vec![]);
    let warn = |w: &str| warnings.lock().unwrap().push(w.to_string());
    let t = std::time::Instant::now();
    let out = s
        .execute("run-1", state, &|e, _, _| observers.event(e, &warn))
        .await;
    let run = t.elapsed();
    observers.finish(&warn);
    assert_eq!(out.status(), RunStatus::Done);
    // 10 notifications of 2 s each: 20 s if the run waited for them.
    assert!(run < Duration::from_secs(10), "the run took {run:?}");
    assert!(
        t.elapsed() < run + Duration::from_secs(4),
        "finishing waited more than one timeout"
    );
    let warnings = warnings.into_inner().unwrap();
    let failed: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("notification to"))
        .collect();
    assert_eq!(failed.len(), 1, "{warnings:?}");
    assert!(
        warnings.iter().all(|w| !w.contains(webhook::TOKEN)),
        "{warnings:?}"
    );
    drop(dead);
}
