//! The fault matrix (issue 11): every step of a 3-manager + 3-worker plan
//! (upgrade at `--max-parallel` 1 and 2, the rollback plan, the restart
//! plan at `--max-parallel` 2, issue 14, and the `restart --reboot` plan at
//! `--max-parallel` 2, where each host reboots) × every
//! fault, each case run to its end with the operator's follow-up, and the
//! executor's invariants I1–I6 (README, "What swarm-upgrade promises";
//! `src/exec/mod.rs`) checked after every event of every run.
//!
//! Faults, injected when step N starts (on step N's node, or for a
//! cluster-wide step on the node of the next node step):
//! - `KilledResumed`: the controller is killed (the runner dropped, nothing
//!   saved after); the operator runs `resume` from the same state directory.
//! - `KilledFreshDir`: killed; the operator finishes from another machine:
//!   an empty state directory, a new plan from the swarm alone (its labels),
//!   `--break-lock` once the dead run's lease has expired. Upgrade plans only:
//!   a rollback needs the reverted run's plan.
//! - `SshLost`: the node's SSH is lost until the operator's network is back.
//! - `EngineFailsToStart`: the target engine exits as soon as it starts on the
//!   node (upgrade plans; a revert whose old engine fails is exit 5, manual
//!   recovery, by design); fixed before the follow-up.
//! - `SlowVerify`: the node's engine answers but the managers do not see it
//!   for 70 s (verify restarts it once).
//! - `AnotherManagerDown`: a manager other than the node is cut off until the
//!   follow-up.
//! - `LeaseTaken` / `LeaseExpired`: the run's lease now belongs to another
//!   run / is gone from the swarm; the run must stop at its next safe point.
//! - `CtrlC`: a stop request.
//! - `Paused`: `swarm-upgrade pause` from another machine (the lease
//!   marked); once the run says it paused, every engine must be running,
//!   and the operator's `continue` lets it finish in the same run.
//! - `Aborted`: `swarm-upgrade abort`; the run must stop at its next safe
//!   point (every engine running) and `resume` finishes it.
//! - `HookFails`: the operator's hooks for the node fail from now until the
//!   follow-up (plans `Upgrade1` and `Restart2`, which have a hook at every
//!   point, on the host or the controller). At `pre-drain` the run must stop
//!   with the node untouched (no run label, its availability as before);
//!   later it is rolled back.
//!
//! - `StageFails`: the node's package repository stops answering until the
//!   follow-up (upgrade plans, whose nodes are staged before their drain).
//!   When the node's `stage` step is still to come, that step fails: the
//!   run must stop resumable (not rolled back) with every node of the stage
//!   batch untouched (no run label, its availability as before). Once the
//!   node is staged, its install needs no repository (from its cache).
//!
//! The upgrade plans have canaries with a soak (30 s, 3 checks), so every
//! fault also hits a soak step. `Upgrade2`'s cluster has a service whose
//! image was built on m1 and w1 only, planned with `--prepull`: every fault also
//! hits the prepull step, and at the end every node must hold that image.
//!
//! After the run the operator removes the fault and runs `resume` (or, for
//! `KilledFreshDir`, `apply` from an empty state directory) until the run is
//! done; then every node must be at the pin (at its original version for
//! the rollback and restart plans), with its availability exactly as before,
//! no run labels left, and the lease released; after a restart every engine
//! must have been started again. A restart whose engine fails to start has
//! no older engine to go back to (exit 5, like a revert): not a case.
//!
//! `FAULT_MATRIX_CASE=Upgrade1:7:AnotherManagerDown` runs one case (plans
//! `Upgrade1`, `Upgrade2`, `Rollback`, `Restart2`, `Reboot2`);
//! `FAULT_MATRIX_KIND=Reboot2` runs every case of one plan; `FAULT_MATRIX_DEBUG=1` prints its
//! events. That case fails when the quorum guard is skipped in verify's
//! engine restart (`src/exec/verify.rs`): m3 is cut off while m2 verifies, the
//! managers do not see m2 as long as m3 is unreachable, and restarting m2
//! then leaves one manager of three. Likewise `Upgrade1:23:AnotherManagerDown`
//! fails when the guard is skipped in the undo of a failed node
//! (`src/exec/undo.rs`): giving m2 its availability back fails while a
//! manager is cut off, and undoing m2 would stop a second manager.
//!
//! Time: the executor's polls sleep on tokio's paused clock and the
//! simulation's operations on its virtual clock, so a case costs only its
//! computation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm_upgrade::cluster::{self, PlanRequest};
use swarm_upgrade::exec::events::Event;
use swarm_upgrade::exec::lease::Control;
use swarm_upgrade::exec::rundir::RunDir;
use swarm_upgrade::exec::runner::{RunOptions, Runner};
use swarm_upgrade::exec::state::{RunState, RunStatus};
use swarm_upgrade::exec::{LABEL_AVAILABILITY, LABEL_RUN};
use swarm_upgrade::facts::Gathered;
use swarm_upgrade::facts::model::{Availability, Role};
use swarm_upgrade::hooks::{Hook, HookRun};
use swarm_upgrade::plan::{self, Action, Plan};
use swarm_upgrade::playbook::{Playbooks, Script};
use swarm_upgrade::version::EngineVersion;
use swarm_upgrade_sim::{Delays, Op, SimCluster, deb_version, lines};

const PIN: &str = "26.1.5";
const OLD: &str = "25.0.5";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upgrade1,
    Upgrade2,
    Rollback,
    Restart2,
    Reboot2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KilledResumed,
    KilledFreshDir,
    SshLost,
    EngineFailsToStart,
    SlowVerify,
    AnotherManagerDown,
    LeaseTaken,
    LeaseExpired,
    CtrlC,
    Paused,
    Aborted,
    HookFails,
    StageFails,
}

const KINDS: [Kind; 5] = [
    Kind::Upgrade1,
    Kind::Upgrade2,
    Kind::Rollback,
    Kind::Restart2,
    Kind::Reboot2,
];
const FAULTS: [Fault; 13] = [
    Fault::KilledResumed,
    Fault::KilledFreshDir,
    Fault::SshLost,
    Fault::EngineFailsToStart,
    Fault::SlowVerify,
    Fault::AnotherManagerDown,
    Fault::LeaseTaken,
    Fault::LeaseExpired,
    Fault::CtrlC,
    Fault::Paused,
    Fault::Aborted,
    Fault::HookFails,
    Fault::StageFails,
];

fn applies(kind: Kind, fault: Fault) -> bool {
    !(kind == Kind::Rollback && matches!(fault, Fault::KilledFreshDir | Fault::EngineFailsToStart)
        || matches!(kind, Kind::Restart2 | Kind::Reboot2) && fault == Fault::EngineFailsToStart
        || fault == Fault::HookFails && !has_hooks(kind)
        || fault == Fault::StageFails && !matches!(kind, Kind::Upgrade1 | Kind::Upgrade2))
}

/// The plans with the operator's hooks (`hooks()`).
fn has_hooks(kind: Kind) -> bool {
    matches!(kind, Kind::Upgrade1 | Kind::Restart2)
}

/// Hooks at every point, on the hosts and on the controller, so that every
/// fault also hits hook steps (a restart has no post-install).
fn hooks() -> Vec<Hook> {
    use swarm_upgrade::hooks::HookPoint as P;
    [
        (P::PreDrain, HookRun::Host),
        (P::PostStop, HookRun::Controller),
        (P::PostInstall, HookRun::Host),
        (P::PostVerify, HookRun::Controller),
        (P::PreRestore, HookRun::Host),
    ]
    .into_iter()
    .map(|(at, run)| Hook {
        at,
        run,
        command: format!("echo {} \"$SU_NODE\"", at.name()),
        timeout_secs: 60,
        nodes: vec![],
        role: None,
        defined_at: String::new(),
    })
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Case {
    kind: Kind,
    step: usize,
    fault: Fault,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}:{}:{:?}", self.kind, self.step, self.fault)
    }
}

fn parse_case(s: &str) -> Case {
    let parts: Vec<&str> = s.split(':').collect();
    let [kind, step, fault] = parts.as_slice() else {
        panic!("FAULT_MATRIX_CASE is KIND:STEP:FAULT, e.g. Upgrade1:7:AnotherManagerDown");
    };
    let kind = *KINDS
        .iter()
        .find(|k| format!("{k:?}") == *kind)
        .unwrap_or_else(|| panic!("unknown plan {kind}: one of {KINDS:?}"));
    let fault = *FAULTS
        .iter()
        .find(|f| format!("{f:?}") == *fault)
        .unwrap_or_else(|| panic!("unknown fault {fault}: one of {FAULTS:?}"));
    Case {
        kind,
        step: step.parse().expect("STEP is a step index"),
        fault,
    }
}

fn pin() -> EngineVersion {
    PIN.parse().unwrap()
}

fn cluster(kind: Kind) -> SimCluster {
    let sim = SimCluster::generate(6, 3, 4, 15, 2, 42);
    sim.set_delays(Delays::test());
    if kind == Kind::Upgrade2 {
        // An image built on m1 and w1 only (its replicas there): `--prepull`
        // copies it everywhere first.
        sim.local_image(LOCAL_SERVICE, &["m1", "w1"]);
    }
    sim
}

/// The service whose image the `Upgrade2` cluster has on m1 and w1 only.
const LOCAL_SERVICE: &str = "svc2";

fn plan_of(g: &Gathered, max_parallel: usize) -> Plan {
    plan_for(g, max_parallel, plan::Operation::Upgrade, Extras::NONE)
}

/// The plan a kind starts from (or, from another machine, starts again).
fn kind_plan(kind: Kind, g: &Gathered) -> Plan {
    match kind {
        Kind::Restart2 => plan_for(g, 2, plan::Operation::Restart, Extras::HOOKS),
        Kind::Reboot2 => plan_for(g, 2, plan::Operation::Restart, Extras::REBOOT),
        Kind::Upgrade1 => plan_for(g, 1, plan::Operation::Upgrade, Extras::HOOKS),
        Kind::Upgrade2 => plan_for(g, 2, plan::Operation::Upgrade, Extras::PREPULL),
        Kind::Rollback => plan_of(g, 1),
    }
}

/// The options beyond the operation that a kind's plan uses.
#[derive(Clone, Copy)]
struct Extras {
    prepull: bool,
    reboot: bool,
    hooks: bool,
}

impl Extras {
    const NONE: Extras = Extras {
        prepull: false,
        reboot: false,
        hooks: false,
    };
    const PREPULL: Extras = Extras {
        prepull: true,
        ..Extras::NONE
    };
    const REBOOT: Extras = Extras {
        reboot: true,
        ..Extras::NONE
    };
    const HOOKS: Extras = Extras {
        hooks: true,
        ..Extras::NONE
    };
}

fn plan_for(g: &Gathered, max_parallel: usize, operation: plan::Operation, extras: Extras) -> Plan {
    let hooks = if extras.hooks { hooks() } else { vec![] };
    let plan = cluster::plan(
        g,
        &PlanRequest {
            pin: &pin(),
            max_parallel,
            waived: &[],
            unlock_key: false,
            hazards: &swarm_upgrade::hazards::Catalogue::builtin(),
            canary: plan::Canary {
                soak_secs: 30,
                soak_checks: 3,
                pause: false,
            },
            operation,
            selection: &plan::Selection::default(),
            prepull: extras.prepull,
            reboot: extras.reboot,
            hooks: &hooks,
            staged: &Playbooks::builtin().staged(),
        },
    );
    assert!(!plan.is_blocked(), "{:#?}", plan.findings);
    plan
}

/// How one execution ended.
#[derive(Debug)]
enum Ended {
    Status(RunStatus),
    Crashed,
    Error(String),
}

/// What the invariants checker keeps between events of one case.
#[derive(Default)]
struct Checker {
    /// Availability of every node before the case.
    before: BTreeMap<String, Availability>,
    violations: Vec<String>,
    /// Timeline samples and records already checked.
    samples_seen: usize,
    records_seen: usize,
    /// The nodes of the batch of the step in progress, for I6.
    batch_nodes: Vec<String>,
    /// The batch in progress when the lease was lost (I5).
    lease_lost_in_batch: Option<usize>,
    /// Nodes whose step was not delivered in this run (I3).
    not_delivered: Vec<String>,
    /// The batch of a `stage` step that failed in this run, and whether
    /// any node was rolled back in it.
    stage_failed: Option<usize>,
    rollbacks: usize,
    debug: bool,
}

impl Checker {
    fn violation(&mut self, what: String) {
        if self.violations.len() < 5 {
            self.violations.push(what);
        }
    }

    /// I1, I2, I5, I6 after every event; I3 on the events themselves.
    fn on_event(&mut self, e: &Event, sim: &SimCluster, plan: &Plan) {
        if self.debug {
            eprintln!("  {e:?}");
        }
        // I1: the tool never stops a manager's engine unless quorum
        // survives it (the faults may cut managers off themselves).
        let timeline = sim.timeline_since(self.samples_seen);
        for s in &timeline {
            let manager_stopped = plan
                .nodes
                .iter()
                .any(|n| n.role == Role::Manager && s.what == format!("{} engine stopped", n.name));
            if manager_stopped && (!s.quorum || s.managers_down > 1) {
                let what = format!("I1: quorum lost or two managers down at {s:?}");
                self.violation(what);
            }
        }
        self.samples_seen += timeline.len();
        // I2: a node away from its availability is the run's to restore.
        let mut unrecorded = vec![];
        for (n, a) in &self.before {
            let now = sim.availability(n);
            if now == *a {
                continue;
            }
            let labels = sim.labels(n);
            if !labels.contains_key(LABEL_RUN)
                || labels.get(LABEL_AVAILABILITY).map(String::as_str) != Some(a.name())
            {
                unrecorded.push(format!(
                    "I2: {n} is {now:?} (was {a:?}) without the run's labels: {labels:?}"
                ));
            }
        }
        for v in unrecorded {
            self.violation(v);
        }
        if matches!(e, Event::RollbackStarted { .. }) {
            self.rollbacks += 1;
        }
        match e {
            Event::StepStarted { index, .. } => {
                let step = &plan.steps[index - 1];
                if let Some(b) = self.lease_lost_in_batch
                    && step.batch > b
                {
                    self.violation(format!(
                        "I5: step {index} (batch {}) started after the lease was lost in batch {b}",
                        step.batch
                    ));
                }
                self.batch_nodes = plan
                    .steps
                    .iter()
                    .filter(|s| s.batch == step.batch)
                    .filter_map(|s| s.node.clone())
                    .collect();
            }
            Event::StepFailed { node, error, .. } if error.contains("not delivered") => {
                self.not_delivered.extend(node.clone());
            }
            Event::StepFailed { index, action, .. } if *action == Action::Stage => {
                self.stage_failed = Some(plan.steps[index - 1].batch);
            }
            Event::RollbackStarted { node, .. } if self.not_delivered.contains(node) => {
                self.violation(format!(
                    "I3: {node}: a command was not delivered, yet it is rolled back"
                ));
            }
            Event::LeaseLost { .. } => {}
            // A pause or an abort is obeyed at a safe point only.
            Event::Paused | Event::Aborted => {
                let down: Vec<String> = sim
                    .hostnames()
                    .into_iter()
                    .filter(|n| sim.engine(n).is_none())
                    .collect();
                if !down.is_empty() {
                    self.violation(format!("{e:?} while engines are down: {down:?}"));
                }
            }
            _ => {}
        }
        // I6: commands reach only the nodes of the batch in progress.
        let records = sim.records_since(self.records_seen);
        for r in &records {
            if matches!(r.op, Op::Script(_) | Op::Pgrep | Op::Unlock | Op::BootId)
                && !self.batch_nodes.contains(&r.node)
            {
                let what = format!(
                    "I6: a command on {} outside the batch in progress ({:?}): {r:?}",
                    r.node, self.batch_nodes
                );
                self.violation(what);
            }
        }
        self.records_seen += records.len();
    }
}

/// One case: its cluster, its plans and runs, the checker.
struct Lab {
    sim: SimCluster,
    playbooks: Playbooks,
    dir: tempfile::TempDir,
    checker: Mutex<Checker>,
    /// The version every node must end at.
    expected: &'static str,
}

impl Lab {
    fn run_dir(&self, run_id: &str) -> RunDir {
        RunDir {
            path: self.dir.path().join(run_id),
        }
    }

    fn new_run(&self, plan: &Plan, run_id: &str) -> RunState {
        let run = self.run_dir(run_id);
        run.create().unwrap();
        let state = RunState::new(
            run_id.into(),
            plan.cluster_id.clone(),
            plan.target.clone(),
            plan::digest(plan).unwrap(),
            plan.steps.len(),
            vec![],
        );
        run.save_state(&state).unwrap();
        state
    }

    /// Executes `plan` from `state`; `inject` is called with every event and
    /// may inject the fault (or ask for a crash or a stop).
    async fn execute(
        &self,
        plan: &Plan,
        g: &Gathered,
        opts: &RunOptions,
        run_id: &str,
        state: RunState,
        inject: &(dyn Fn(&Event, &SimCluster, &AtomicBool, &tokio::sync::Notify) + Sync),
    ) -> Ended {
        let stop = Arc::new(AtomicBool::new(false));
        let crash = tokio::sync::Notify::new();
        let emit = |e: &Event| {
            self.checker.lock().unwrap().on_event(e, &self.sim, plan);
            inject(e, &self.sim, &stop, &crash);
        };
        let runner = Runner::new(
            &self.sim,
            plan,
            &g.facts,
            &self.playbooks,
            opts,
            self.run_dir(run_id),
            state,
            &emit,
            stop.clone(),
        )
        .unwrap();
        let ended = self
            .sim
            .drive(async {
                tokio::select! {
                    biased;
                    () = crash.notified() => Ended::Crashed,
                    r = runner.execute() => match r {
                        Ok(s) => Ended::Status(s),
                        Err(e) => Ended::Error(format!("{e:#}")),
                    },
                }
            })
            .await;
        drop(runner);
        ended
    }

    fn heal(&self) {
        for n in self.sim.hostnames() {
            self.sim.lose_ssh(&n, false);
            self.sim.partition(&n, false);
            self.sim.repair_engine(&n);
            self.sim.fail_hooks(&n, false);
            self.sim.cut_repo(&n, false);
        }
    }
}

/// The node the fault hits: the step's, or the next node step's.
fn target_node(plan: &Plan, index: usize) -> Option<String> {
    plan.steps[index - 1..].iter().find_map(|s| s.node.clone())
}

/// A manager other than `node`, not the leader when there is a choice.
fn other_manager(sim: &SimCluster, plan: &Plan, node: Option<&str>) -> String {
    let leader = sim.leader();
    let mut others: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| n.role == Role::Manager)
        .map(|n| n.name.as_str())
        .filter(|n| Some(*n) != node)
        .collect();
    others.sort_by_key(|n| Some(n.to_string()) == leader);
    others[0].to_string()
}

async fn run_case(case: Case, debug: bool) -> Result<(), String> {
    let sim = cluster(case.kind);
    // A manager cut off stays cut off until the follow-up: not a minute
    // per guard question.
    let opts = RunOptions {
        guard_timeout: Duration::from_secs(5),
        ..RunOptions::default()
    };
    let lab = Lab {
        sim,
        playbooks: Playbooks::load(&[] as &[&std::path::Path]).unwrap(),
        dir: state_dir(),
        checker: Mutex::new(Checker {
            debug,
            ..Checker::default()
        }),
        expected: if matches!(case.kind, Kind::Rollback | Kind::Restart2 | Kind::Reboot2) {
            OLD
        } else {
            PIN
        },
    };
    let sim = &lab.sim;
    let none = |_: &Event, _: &SimCluster, _: &AtomicBool, _: &tokio::sync::Notify| {};

    // The plan, and for the rollback plan the upgrade it reverts.
    let g = sim.gathered(&pin());
    let (plan, g) = match case.kind {
        Kind::Upgrade1 | Kind::Upgrade2 | Kind::Restart2 | Kind::Reboot2 => {
            (kind_plan(case.kind, &g), g)
        }
        Kind::Rollback => {
            let up = plan_of(&g, 1);
            let state = lab.new_run(&up, "up");
            lab.checker.lock().unwrap().before = availabilities(sim);
            match lab.execute(&up, &g, &opts, "up", state, &none).await {
                Ended::Status(RunStatus::Done) => {}
                other => return Err(format!("the upgrade to revert ended {other:?}")),
            }
            let upgraded: Vec<String> = up
                .steps
                .iter()
                .filter(|s| s.action == Action::Install)
                .filter_map(|s| s.node_id.clone())
                .collect();
            let revert = plan::rollback::build(&up, "up", &upgraded);
            (revert, sim.gathered(&pin()))
        }
    };
    if case.step > plan.steps.len() {
        return Err(format!("the plan has {} steps", plan.steps.len()));
    }
    lab.checker.lock().unwrap().before = availabilities(sim);
    let before = availabilities(sim);

    let node = target_node(&plan, case.step);
    let target = plan.target.to_string();
    let injected = AtomicBool::new(false);
    let inject = |e: &Event, sim: &SimCluster, stop: &AtomicBool, crash: &tokio::sync::Notify| {
        // The operator continues a paused run once it says it paused.
        if matches!(e, Event::Paused) {
            sim.control(Control::Run);
        }
        if !matches!(e, Event::StepStarted { index, .. } if *index == case.step)
            || injected.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let node = node.as_deref();
        match case.fault {
            Fault::KilledResumed | Fault::KilledFreshDir => crash.notify_one(),
            Fault::SshLost => sim.lose_ssh(node.unwrap_or("m1"), true),
            Fault::EngineFailsToStart => {
                if let Some(n) = node {
                    sim.break_engine(n, &target);
                }
            }
            Fault::SlowVerify => {
                if let Some(n) = node {
                    sim.unseen_after_start(n, Duration::from_secs(70));
                }
            }
            Fault::AnotherManagerDown => sim.partition(&other_manager(sim, &plan, node), true),
            Fault::LeaseTaken => sim.take_lease("run-of-another-operator"),
            Fault::LeaseExpired => sim.drop_lease(),
            Fault::CtrlC => stop.store(true, Ordering::SeqCst),
            Fault::Paused => sim.control(Control::Pause),
            Fault::Aborted => sim.control(Control::Abort),
            Fault::HookFails => sim.fail_hooks(node.unwrap_or("m1"), true),
            Fault::StageFails => sim.cut_repo(node.unwrap_or("m1"), true),
        }
        if matches!(case.fault, Fault::LeaseTaken | Fault::LeaseExpired) {
            let b = plan.steps[case.step - 1].batch;
            let mut c = lab.checker.lock().unwrap();
            c.lease_lost_in_batch = Some(b);
        }
    };

    // The run, then the operator's follow-ups until it is done.
    let mut run_id = "run-1".to_string();
    let mut current_plan = plan.clone();
    let mut current_g = g;
    let state = lab.new_run(&current_plan, &run_id);
    let mut ended = lab
        .execute(&current_plan, &current_g, &opts, &run_id, state, &inject)
        .await;
    let mut history = vec![format!("{ended:?}")];
    // A failing pre-drain hook stops the run before its node is touched
    // (a sibling of a parallel batch already under way is rolled back).
    let step = &plan.steps[case.step - 1];
    if case.fault == Fault::HookFails
        && step.hook == Some(swarm_upgrade::hooks::HookPoint::PreDrain)
        && let Some(n) = &step.node
    {
        let touched = sim.labels(n).contains_key(LABEL_RUN) || sim.availability(n) != before[n];
        let siblings = plan
            .steps
            .iter()
            .any(|s| s.batch == step.batch && s.node != step.node);
        let expected = matches!(ended, Ended::Status(RunStatus::Failed))
            || siblings && matches!(ended, Ended::Status(RunStatus::RolledBack));
        if touched || !expected {
            return Err(format!(
                "a failing pre-drain hook: the run ended {ended:?}, {n} touched: {touched}"
            ));
        }
    }
    if case.fault == Fault::StageFails {
        stage_fails_before_the_drain(&plan, case, node.as_deref(), &lab, &ended, &before)?;
    }
    for attempt in 2..=4 {
        if debug {
            eprintln!("{case}: attempt {} ended {ended:?}", attempt - 1);
        }
        match &ended {
            Ended::Status(RunStatus::Done) => break,
            Ended::Status(RunStatus::RollbackFailed) => {
                let st = lab.run_dir(&run_id).load_state().unwrap();
                return Err(format!(
                    "exit 5 (rollback failed): {}",
                    st.failure.unwrap_or_default()
                ));
            }
            Ended::Error(e) => return Err(format!("the run failed: {e}")),
            _ => {}
        }
        // The operator removes the cause and continues.
        lab.heal();
        drop_anothers_lease(sim);
        // Whatever a killed controller left running on the hosts completes.
        sim.advance(Duration::from_secs(120));
        lab.checker.lock().unwrap().lease_lost_in_batch = None;
        lab.checker.lock().unwrap().not_delivered.clear();
        lab.checker.lock().unwrap().stage_failed = None;
        let mut o = opts.clone();
        let state = if matches!(ended, Ended::Crashed) && case.fault == Fault::KilledFreshDir {
            // Another machine: only the swarm. The dead run's lease expires.
            sim.expire_lease();
            o.break_lock = true;
            current_g = sim.gathered(&pin());
            current_plan = kind_plan(case.kind, &current_g);
            run_id = format!("run-{attempt}");
            lab.new_run(&current_plan, &run_id)
        } else {
            lab.run_dir(&run_id).load_state().unwrap()
        };
        ended = lab
            .execute(&current_plan, &current_g, &o, &run_id, state, &none)
            .await;
        history.push(format!("{ended:?}"));
    }
    // The other operator's run (LeaseTaken) ends too.
    drop_anothers_lease(sim);
    let mut problems = std::mem::take(&mut lab.checker.lock().unwrap().violations);
    if !matches!(ended, Ended::Status(RunStatus::Done)) {
        problems.push(format!("not done after the follow-ups: {history:?}"));
    }
    // The final state.
    for n in sim.hostnames() {
        if sim.engine(&n).as_deref() != Some(lab.expected)
            || sim.installed(&n)["docker-ce"] != deb_version(lab.expected)
        {
            problems.push(format!(
                "{n}: engine {:?}, expected {}",
                sim.engine(&n),
                lab.expected
            ));
        }
        if sim.availability(&n) != before[&n] {
            problems.push(format!(
                "{n}: availability {:?}, was {:?}",
                sim.availability(&n),
                before[&n]
            ));
        }
        let labels = sim.labels(&n);
        if labels.contains_key(LABEL_RUN) || labels.contains_key(LABEL_AVAILABILITY) {
            problems.push(format!("{n}: run labels left: {labels:?}"));
        }
    }
    if let Some(l) = sim.lease() {
        problems.push(format!("the lease is still held by {}", l.run_id));
    }
    if case.kind == Kind::Upgrade2 {
        let image = format!("{LOCAL_SERVICE}-local:dev");
        let built = sim.image_on("w1", &image);
        for n in sim.hostnames() {
            if sim.image_on(&n, &image) != built {
                problems.push(format!("{n}: --prepull left it without {image}"));
            }
        }
    }
    if case.kind == Kind::Restart2 {
        for n in sim.hostnames() {
            let started = sim
                .records()
                .iter()
                .any(|r| r.node == n && r.op == Op::Script(Script::Start) && r.status == Some(0));
            if !started {
                problems.push(format!("{n}: its engine was never started again"));
            }
        }
    }
    if case.kind == Kind::Reboot2 {
        // Every host booted again (its engine with it: checked above as
        // the version every node runs).
        for n in sim.hostnames() {
            if !sim
                .records()
                .iter()
                .any(|r| r.node == n && r.op == Op::Booted)
            {
                problems.push(format!("{n}: its host was never rebooted"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        if debug {
            eprintln!("timeline:{}", lines(sim.timeline()));
        }
        Err(format!("{} (runs: {history:?})", problems.join("; ")))
    }
}

/// A node whose repository is cut before its `stage` step: that step
/// fails, the run stops resumable without a rollback, and no node of the
/// stage batch was drained or labelled.
fn stage_fails_before_the_drain(
    plan: &Plan,
    case: Case,
    node: Option<&str>,
    lab: &Lab,
    ended: &Ended,
    before: &BTreeMap<String, Availability>,
) -> Result<(), String> {
    let sim = &lab.sim;
    let c = lab.checker.lock().unwrap();
    let still_to_stage = plan
        .steps
        .iter()
        .any(|s| s.action == Action::Stage && s.node.as_deref() == node && s.index >= case.step);
    match c.stage_failed {
        None if still_to_stage => Err(format!(
            "{node:?}'s repository is cut, yet no stage step failed: {ended:?}"
        )),
        None => Ok(()),
        Some(batch) => {
            if !matches!(ended, Ended::Status(RunStatus::Failed)) || c.rollbacks > 0 {
                return Err(format!(
                    "a failed stage step: the run ended {ended:?} after {} rollback(s); expected exit 6, none",
                    c.rollbacks
                ));
            }
            for n in plan
                .steps
                .iter()
                .filter(|s| s.batch == batch)
                .filter_map(|s| s.node.as_deref())
            {
                if sim.labels(n).contains_key(LABEL_RUN) || sim.availability(n) != before[n] {
                    return Err(format!(
                        "a failed stage step, yet {n} was drained or labelled"
                    ));
                }
            }
            Ok(())
        }
    }
}

fn drop_anothers_lease(sim: &SimCluster) {
    if sim
        .lease()
        .is_some_and(|l| l.run_id == "run-of-another-operator")
    {
        sim.drop_lease();
    }
}

/// The journal is fsync'ed after every event: in memory where the machine
/// has a tmpfs, or the matrix would spend its time waiting for the disk.
fn state_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

fn availabilities(sim: &SimCluster) -> BTreeMap<String, Availability> {
    sim.hostnames()
        .into_iter()
        .map(|n| (n.clone(), sim.availability(&n)))
        .collect()
}

/// The number of steps of each plan, from a cluster like the cases'.
fn step_counts() -> Vec<(Kind, usize)> {
    let sim = cluster(Kind::Upgrade1);
    let g = sim.gathered(&pin());
    let up = plan_of(&g, 1);
    let upgraded: Vec<String> = up.nodes.iter().map(|n| n.id.clone()).collect();
    let prepulled = {
        let sim = cluster(Kind::Upgrade2);
        let p = kind_plan(Kind::Upgrade2, &sim.gathered(&pin()));
        assert_eq!(p.steps[0].action, Action::Prepull, "Upgrade2 pre-pulls");
        p.steps.len()
    };
    vec![
        (Kind::Upgrade1, kind_plan(Kind::Upgrade1, &g).steps.len()),
        (Kind::Upgrade2, prepulled),
        (
            Kind::Rollback,
            plan::rollback::build(&up, "up", &upgraded).steps.len(),
        ),
        (Kind::Restart2, kind_plan(Kind::Restart2, &g).steps.len()),
        (Kind::Reboot2, kind_plan(Kind::Reboot2, &g).steps.len()),
    ]
}

fn run_cases(cases: Vec<Case>, debug: bool) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    cases
        .into_iter()
        .filter_map(|c| {
            rt.block_on(run_case(c, debug))
                .err()
                .map(|e| format!("{c}: {e}"))
        })
        .collect()
}

#[test]
fn fault_matrix() {
    let debug = std::env::var_os("FAULT_MATRIX_DEBUG").is_some();
    let only = std::env::var("FAULT_MATRIX_KIND").ok();
    let cases: Vec<Case> = match std::env::var("FAULT_MATRIX_CASE") {
        Ok(one) => vec![parse_case(&one)],
        Err(_) => step_counts()
            .into_iter()
            .filter(|(kind, _)| only.as_ref().is_none_or(|o| *o == format!("{kind:?}")))
            .flat_map(|(kind, steps)| {
                (1..=steps).flat_map(move |step| {
                    FAULTS
                        .into_iter()
                        .filter(move |&f| applies(kind, f))
                        .map(move |fault| Case { kind, step, fault })
                })
            })
            .collect(),
    };
    let count = cases.len();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let chunk = count.div_ceil(threads).max(1);
    let handles: Vec<_> = cases
        .chunks(chunk)
        .map(|c| {
            let c = c.to_vec();
            std::thread::spawn(move || run_cases(c, debug))
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("a case panicked"))
        .collect();
    println!("fault matrix: {count} cases, {} failed", failures.len());
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_matrix_has_at_least_300_cases() {
    let count: usize = step_counts()
        .into_iter()
        .map(|(kind, steps)| steps * FAULTS.iter().filter(|&&f| applies(kind, f)).count())
        .sum();
    assert!(count >= 300, "{count} cases");
}
