//! The dry run cannot drift from the run: every action kind runs against
//! the simulated cluster through a recording `Ops`, and what reached the
//! cluster is compared, step by step, with what the action's description
//! (the dry run's text) says it does.
//!
//! - Everything performed was described (for the node the step acts on:
//!   a command, an update or a task list on another node is a failure).
//! - Everything described as certain (not "only if") was performed.
//! - The lease's operations, before, between and after the steps, too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use swarm_upgrade::cluster::{self, PlanRequest};
use swarm_upgrade::exec::dry_run::{self, RunDescription};
use swarm_upgrade::exec::events::Event;
use swarm_upgrade::exec::lease::{Control, Lease, LeaseOutcome};
use swarm_upgrade::exec::operation::{Call, Description, On, Operation};
use swarm_upgrade::exec::ops::{EngineStatus, Events, NodeUpdate, Ops, Task, Traffic};
use swarm_upgrade::exec::rundir::RunDir;
use swarm_upgrade::exec::runner::{RunOptions, Runner};
use swarm_upgrade::exec::state::{RunState, RunStatus, StepStatus};
use swarm_upgrade::facts::Gathered;
use swarm_upgrade::facts::model::{NodeFacts, ServiceFacts, ServiceMode};
use swarm_upgrade::hooks::{Hook, HookRun};
use swarm_upgrade::plan::{self, Action, Plan};
use swarm_upgrade::playbook::{Playbooks, Script};
use swarm_upgrade::transport::{Cmd, CmdOutput};
use swarm_upgrade::version::EngineVersion;
use swarm_upgrade_sim::{Delays, Op, SimCluster};

/// Where an operation happened: a step, the undo of a node, or the run
/// around the steps (the lease).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Step(usize),
    Undo(String),
}

/// One call to the cluster, as the recorder saw it.
#[derive(Debug, Clone)]
enum Seen {
    /// The node's own engine (`GET /info`, or a command on its host).
    OnNode(String, Operation),
    /// Answered by `via` about the node `about` (when the call names one).
    Via {
        via: String,
        about: Option<String>,
        call: Call,
    },
    /// A request to a named node's engine by a cluster-wide step
    /// (`prepull`), as its description names it.
    Exact(Operation),
}

#[derive(Default)]
struct Log {
    open: BTreeMap<Scope, Option<String>>,
    /// Per scope: the operations performed, first occurrence order.
    performed: BTreeMap<Scope, Vec<Operation>>,
    run_level: Vec<Operation>,
    /// Steps that ran while another scope was open (no order check).
    overlapped: BTreeSet<Scope>,
    errors: Vec<String>,
}

/// `Ops` that records every call (relative to the scopes open at that
/// moment) and passes it to the simulation.
struct Recorder<'a> {
    sim: &'a SimCluster,
    plan: &'a Plan,
    described: &'a RunDescription,
    log: Mutex<Log>,
}

impl<'a> Recorder<'a> {
    fn description(&self, scope: &Scope) -> &'a Description {
        match scope {
            Scope::Step(i) => &self.described.steps[i],
            Scope::Undo(id) => &self.described.undo[id],
        }
    }

    fn node_of(&self, index: usize) -> Option<String> {
        self.plan.steps[index - 1].node_id.clone()
    }

    fn event(&self, e: &Event) {
        let mut log = self.log.lock().unwrap();
        let open = |log: &mut Log, scope: Scope, node: Option<String>| {
            if !log.open.is_empty() {
                log.overlapped.insert(scope.clone());
                let others: Vec<Scope> = log.open.keys().cloned().collect();
                log.overlapped.extend(others);
            }
            log.open.insert(scope, node);
        };
        match e {
            Event::StepStarted { index, .. } => {
                let node = self.node_of(*index);
                open(&mut log, Scope::Step(*index), node);
            }
            Event::StepFinished { index, .. } | Event::StepFailed { index, .. } => {
                log.open.remove(&Scope::Step(*index));
            }
            Event::RollbackStarted { node, .. } => {
                let id = self
                    .plan
                    .nodes
                    .iter()
                    .find(|n| &n.name == node)
                    .map(|n| n.id.clone())
                    .unwrap();
                open(&mut log, Scope::Undo(id.clone()), Some(id));
            }
            Event::RollbackFinished { node, .. } => {
                log.open.retain(|s, _| {
                    !matches!(s, Scope::Undo(id) if self.plan.nodes.iter().any(|n| &n.id == id && &n.name == node))
                });
            }
            _ => {}
        }
    }

    fn saw(&self, seen: Seen) {
        let mut log = self.log.lock().unwrap();
        if log.open.is_empty() {
            let op = relative(&seen, None);
            if !log.run_level.contains(&op) {
                log.run_level.push(op);
            }
            return;
        }
        // The scopes that may have made this call: the one of the node it
        // names, or (a question to a manager) any open one.
        let named = match &seen {
            Seen::OnNode(n, _) => Some(n),
            Seen::Via { about, .. } => about.as_ref(),
            Seen::Exact(_) => None,
        };
        let own: Vec<(Scope, Option<String>)> = log
            .open
            .iter()
            .filter(|(_, node)| named.is_some() && node.as_ref() == named)
            .map(|(s, n)| (s.clone(), n.clone()))
            .collect();
        let candidates = if !own.is_empty() {
            own
        } else if matches!(
            seen,
            Seen::OnNode(_, Operation::Command { .. } | Operation::Local { .. })
                | Seen::Via { about: Some(_), .. }
        ) {
            log.errors.push(format!(
                "a call about a node no open step acts on: {seen:?}"
            ));
            return;
        } else {
            log.open
                .iter()
                .map(|(s, n)| (s.clone(), n.clone()))
                .collect()
        };
        let mut matched = false;
        for (scope, node) in &candidates {
            let op = relative(&seen, node.as_deref());
            if self.description(scope).distinct().contains(&&op) {
                matched = true;
                let performed = log.performed.entry(scope.clone()).or_default();
                if !performed.contains(&op) {
                    performed.push(op);
                }
            }
        }
        // A node's own engine asked by a step of another node (which
        // manager answers), while a step of its own runs alongside (its
        // hook, in the managers' reactivation batch): any open scope.
        if !matched && matches!(seen, Seen::OnNode(_, Operation::Api { .. })) {
            let others: Vec<(Scope, Option<String>)> = log
                .open
                .iter()
                .filter(|(s, _)| !candidates.iter().any(|(c, _)| c == *s))
                .map(|(s, n)| (s.clone(), n.clone()))
                .collect();
            for (scope, node) in others {
                let op = relative(&seen, node.as_deref());
                if self.description(&scope).distinct().contains(&&op) {
                    matched = true;
                    let performed = log.performed.entry(scope).or_default();
                    if !performed.contains(&op) {
                        performed.push(op);
                    }
                }
            }
        }
        if !matched {
            let open: Vec<_> = log.open.keys().cloned().collect();
            log.errors
                .push(format!("not described by {open:?}: {seen:?}"));
        }
    }
}

/// The operation as the description of a step acting on `node` names it.
fn relative(seen: &Seen, node: Option<&str>) -> Operation {
    match seen {
        Seen::OnNode(n, op) => match op {
            Operation::Api { call, .. } => Operation::api(
                if Some(n.as_str()) == node {
                    On::Node
                } else {
                    On::Manager
                },
                call.clone(),
            ),
            other => other.clone(),
        },
        Seen::Via { via, call, .. } => Operation::api(
            if Some(via.as_str()) == node {
                On::Node
            } else {
                On::Manager
            },
            call.clone(),
        ),
        Seen::Exact(op) => op.clone(),
    }
}

impl Ops for Recorder<'_> {
    async fn node(&self, via: &str, node: &str) -> anyhow::Result<Option<NodeFacts>> {
        self.saw(Seen::Via {
            via: via.into(),
            about: Some(node.into()),
            call: Call::InspectNode,
        });
        self.sim.node(via, node).await
    }
    async fn managers(&self, via: &str) -> anyhow::Result<Vec<NodeFacts>> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::ListManagers,
        });
        self.sim.managers(via).await
    }
    async fn update_node(&self, via: &str, node: &str, u: &NodeUpdate) -> anyhow::Result<()> {
        self.saw(Seen::Via {
            via: via.into(),
            about: Some(node.into()),
            call: Call::UpdateNode(u.clone()),
        });
        self.sim.update_node(via, node, u).await
    }
    async fn node_tasks(&self, via: &str, node: &str) -> anyhow::Result<Vec<Task>> {
        self.saw(Seen::Via {
            via: via.into(),
            about: Some(node.into()),
            call: Call::NodeTasks,
        });
        self.sim.node_tasks(via, node).await
    }
    async fn services(
        &self,
        via: &str,
        ids: Option<&[String]>,
    ) -> anyhow::Result<Vec<ServiceFacts>> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::Services { all: ids.is_none() },
        });
        self.sim.services(via, ids).await
    }
    async fn tasks(&self, via: &str, ids: Option<&[String]>) -> anyhow::Result<Vec<Task>> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::Tasks { all: ids.is_none() },
        });
        self.sim.tasks(via, ids).await
    }
    async fn task_stops<'a>(&'a self, node: &str) -> anyhow::Result<Events<'a>> {
        self.saw(Seen::OnNode(
            node.into(),
            Operation::api(On::Node, Call::TaskStops),
        ));
        self.sim.task_stops(node).await
    }
    async fn node_changes<'a>(&'a self, via: &str, node: &str) -> anyhow::Result<Events<'a>> {
        self.saw(Seen::Via {
            via: via.into(),
            about: Some(node.into()),
            call: Call::NodeChanges,
        });
        self.sim.node_changes(via, node).await
    }
    async fn lease_changes<'a>(&'a self, via: &str) -> anyhow::Result<Events<'a>> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::LeaseChanges,
        });
        self.sim.lease_changes(via).await
    }
    async fn engine_status(&self, node: &str) -> anyhow::Result<EngineStatus> {
        self.saw(Seen::OnNode(
            node.into(),
            Operation::api(On::Node, Call::Info),
        ));
        self.sim.engine_status(node).await
    }
    async fn run(&self, node: &str, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
        self.saw(Seen::OnNode(node.into(), Operation::command(cmd)));
        self.sim.run(node, cmd).await
    }
    async fn run_local(&self, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
        // A hook on the controller is about the node its SU_NODE_ID names.
        let node = cmd
            .argv
            .iter()
            .find_map(|a| a.strip_prefix("SU_NODE_ID="))
            .unwrap_or("?");
        self.saw(Seen::OnNode(node.into(), Operation::local(cmd)));
        self.sim.run_local(cmd).await
    }
    async fn acquire_lease(
        &self,
        via: &str,
        lease: &Lease,
        break_stale: bool,
    ) -> anyhow::Result<LeaseOutcome> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::AcquireLease,
        });
        self.sim.acquire_lease(via, lease, break_stale).await
    }
    async fn renew_lease(&self, via: &str, lease: &Lease) -> anyhow::Result<Control> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::RenewLease,
        });
        self.sim.renew_lease(via, lease).await
    }
    async fn read_lease(&self, via: &str, lease: &Lease) -> anyhow::Result<Control> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::ReadLease,
        });
        self.sim.read_lease(via, lease).await
    }
    async fn mark_lease(&self, via: &str, run_id: &str, control: Control) -> anyhow::Result<()> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::MarkLease(control),
        });
        self.sim.mark_lease(via, run_id, control).await
    }
    async fn release_lease(&self, via: &str, run_id: &str) -> anyhow::Result<()> {
        self.saw(Seen::Via {
            via: via.into(),
            about: None,
            call: Call::ReleaseLease,
        });
        self.sim.release_lease(via, run_id).await
    }
    async fn image_id(&self, node: &str, image: &str) -> anyhow::Result<Option<String>> {
        self.saw(self.on_engine(node, Call::InspectImage(image.into())));
        self.sim.image_id(node, image).await
    }
    async fn copy_image(&self, from: &str, to: &str, image: &str) -> anyhow::Result<()> {
        let from_name = self.name_of(from);
        self.saw(self.on_engine(
            to,
            Call::CopyImage {
                image: image.into(),
                from: from_name,
            },
        ));
        self.sim.copy_image(from, to, image).await
    }
    async fn pull_image(&self, node: &str, image: &str) -> anyhow::Result<()> {
        self.saw(self.on_engine(node, Call::PullImage(image.into())));
        self.sim.pull_image(node, image).await
    }
    fn traffic(&self) -> BTreeMap<String, Traffic> {
        self.sim.traffic()
    }
}

impl Recorder<'_> {
    fn name_of(&self, id: &str) -> String {
        let n = self.plan.nodes.iter().find(|n| n.id == id);
        n.map_or_else(|| id.to_string(), |n| n.name.clone())
    }

    fn on_engine(&self, id: &str, call: Call) -> Seen {
        Seen::Exact(Operation::api(On::Engine(self.name_of(id)), call))
    }
}

/// A host hook and a controller hook at every point.
fn all_hooks() -> Vec<Hook> {
    swarm_upgrade::hooks::POINTS
        .iter()
        .flat_map(|&at| {
            [HookRun::Host, HookRun::Controller].map(|run| Hook {
                at,
                run,
                command: format!("echo {} \"$SU_NODE\"", at.name()),
                timeout_secs: 60,
                nodes: vec![],
                role: None,
                defined_at: String::new(),
            })
        })
        .collect()
}

fn pin() -> EngineVersion {
    "26.1.5".parse().unwrap()
}

struct Outcome {
    status: RunStatus,
    kinds: Vec<Action>,
    errors: Vec<String>,
    performed: BTreeMap<Scope, Vec<Operation>>,
}

struct Case {
    sim: SimCluster,
    gathered: Gathered,
    playbooks: Playbooks,
    opts: RunOptions,
    dir: tempfile::TempDir,
    /// Plans with `--prepull`.
    prepull: bool,
    /// The operator's hooks the plans get.
    hooks: Vec<Hook>,
}

impl Case {
    fn new(workers: usize, unlock_key: Option<&str>) -> Case {
        let sim = SimCluster::generate(3 + workers, 3, 4, 6 + 3 * workers, 2, 42);
        sim.set_delays(Delays::test());
        if let Some(k) = unlock_key {
            sim.enable_autolock(k);
        }
        let gathered = sim.gathered(&pin());
        Case {
            sim,
            gathered,
            playbooks: Playbooks::load(&[] as &[&std::path::Path]).unwrap(),
            opts: RunOptions {
                unlock_key: unlock_key.map(str::to_string),
                ..RunOptions::default()
            },
            dir: tempfile::tempdir().unwrap(),
            prepull: false,
            hooks: vec![],
        }
    }

    /// A case whose service svc2 runs an image built on w1 only, planned
    /// with `--prepull` (which copies it to every other node).
    fn with_local_image(workers: usize) -> Case {
        let mut case = Case::new(workers, None);
        case.sim.local_image("svc2", &["w1"]);
        case.gathered = case.sim.gathered(&pin());
        case.prepull = true;
        case
    }

    fn plan(&self, max_parallel: usize) -> Plan {
        self.plan_with(
            max_parallel,
            Default::default(),
            swarm_upgrade::plan::Operation::Upgrade,
        )
    }

    fn plan_for(&self, max_parallel: usize, operation: swarm_upgrade::plan::Operation) -> Plan {
        self.plan_with(max_parallel, Default::default(), operation)
    }

    fn plan_with(
        &self,
        max_parallel: usize,
        canary: plan::Canary,
        operation: swarm_upgrade::plan::Operation,
    ) -> Plan {
        self.plan_full(max_parallel, canary, operation, false)
    }

    /// `--reboot` plans too.
    fn plan_full(
        &self,
        max_parallel: usize,
        canary: plan::Canary,
        operation: swarm_upgrade::plan::Operation,
        reboot: bool,
    ) -> Plan {
        let p = cluster::plan(
            &self.gathered,
            &PlanRequest {
                pin: &pin(),
                max_parallel,
                waived: &[],
                unlock_key: self.opts.unlock_key.is_some(),
                hazards: &swarm_upgrade::hazards::Catalogue::builtin(),
                canary,
                operation,
                selection: &swarm_upgrade::plan::Selection::default(),
                prepull: self.prepull,
                reboot,
                hooks: &self.hooks,
                staged: &self.playbooks.staged(),
            },
        );
        assert!(!p.is_blocked(), "{:#?}", p.findings);
        p
    }

    /// A new run of `plan`: its directory made and its first state saved.
    fn new_run(&self, plan: &Plan, run_id: &str) -> (RunDir, RunState) {
        let run = RunDir {
            path: self.dir.path().join(run_id),
        };
        run.create().unwrap();
        let state = RunState::new(
            run_id.into(),
            plan.cluster_id.clone(),
            pin(),
            plan::digest(plan).unwrap(),
            plan.steps.len(),
            vec![],
        );
        run.save_state(&state).unwrap();
        (run, state)
    }

    /// Runs `plan` from `state` in run `run_id` against the simulation
    /// (no recorder), with `emit` seeing its events.
    async fn execute(
        &self,
        plan: &Plan,
        run_id: &str,
        state: RunState,
        emit: &(dyn Fn(&Event) + Sync),
    ) -> RunStatus {
        let run = RunDir {
            path: self.dir.path().join(run_id),
        };
        let runner = self.runner(&self.sim, plan, run, state, emit);
        self.sim.drive(runner.execute()).await.unwrap()
    }

    /// A runner of `plan` over `ops` with this case's facts and options.
    fn runner<'a, O: Ops>(
        &'a self,
        ops: &'a O,
        plan: &'a Plan,
        run: RunDir,
        state: RunState,
        emit: &'a (dyn Fn(&Event) + Sync),
    ) -> Runner<'a, O> {
        Runner::new(
            ops,
            plan,
            &self.gathered.facts,
            &self.playbooks,
            &self.opts,
            run,
            state,
            emit,
            Arc::new(AtomicBool::new(false)),
        )
        .unwrap()
    }

    /// Runs `plan` through the recorder; returns how it ended, the kinds of
    /// steps it ran, the comparison's errors, and what was performed.
    async fn run(&self, plan: &Plan, run_id: &str) -> Outcome {
        let described = dry_run::describe(
            plan,
            &self.gathered.facts,
            &self.playbooks,
            &self.opts,
            run_id,
        );
        let rec = Recorder {
            sim: &self.sim,
            plan,
            described: &described,
            log: Mutex::new(Log::default()),
        };
        let (run, state) = self.new_run(plan, run_id);
        // The operator continues a paused run (`--pause-after-canary`) at once.
        let emit = |e: &Event| {
            if matches!(e, Event::Paused) {
                self.sim.control(Control::Run);
            }
            rec.event(e)
        };
        let runner = self.runner(&rec, plan, run, state, &emit);
        let status = self.sim.drive(runner.execute()).await.unwrap();
        let state = runner.state().await;
        drop(runner);
        let log = rec.log.into_inner().unwrap();
        let mut errors = log.errors.clone();
        let mut kinds = vec![];
        let mut checked: Vec<Scope> = plan
            .steps
            .iter()
            .filter(|s| {
                matches!(
                    state.step(s.index).status,
                    StepStatus::Done | StepStatus::RolledBack
                )
            })
            .map(|s| {
                kinds.push(s.action);
                Scope::Step(s.index)
            })
            .collect();
        checked.extend(
            log.performed
                .keys()
                .filter(|s| matches!(s, Scope::Undo(_)))
                .cloned(),
        );
        let none = vec![];
        for scope in &checked {
            let performed = log.performed.get(scope).unwrap_or(&none);
            let certain: Vec<&Operation> = self_description(&described, scope).certain();
            for op in &certain {
                if !performed.contains(op) {
                    errors.push(format!("{scope:?}: described but not performed: {op:?}"));
                }
            }
            if !log.overlapped.contains(scope) {
                let ordered = self_description(&described, scope).ordered();
                let order: Vec<&Operation> =
                    performed.iter().filter(|op| ordered.contains(op)).collect();
                if order != ordered {
                    errors.push(format!(
                        "{scope:?}: performed in another order than described:\n  performed {order:?}\n  described {ordered:?}"
                    ));
                }
            }
        }
        for d in [&described.start, &described.end] {
            for op in d.certain() {
                if !log.run_level.contains(op) {
                    errors.push(format!("run: described but not performed: {op:?}"));
                }
            }
        }
        let run_described: Vec<&Operation> = described
            .start
            .distinct()
            .into_iter()
            .chain(described.between_batches.distinct())
            .chain(described.end.distinct())
            .collect();
        for op in &log.run_level {
            if !run_described.contains(&op) {
                errors.push(format!("run: performed but not described: {op:?}"));
            }
        }
        kinds.sort_by_key(|a| a.name());
        kinds.dedup();
        Outcome {
            status,
            kinds,
            errors,
            performed: log.performed,
        }
    }
}

fn self_description<'d>(d: &'d RunDescription, scope: &Scope) -> &'d Description {
    match scope {
        Scope::Step(i) => &d.steps[i],
        Scope::Undo(id) => &d.undo[id],
    }
}

fn assert_clean(errors: &[String]) {
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Fails to compile when an action kind is added without a case here.
fn every_kind() -> Vec<Action> {
    let all = [
        Action::Drain,
        Action::WaitDrained,
        Action::StopEngine,
        Action::Backup,
        Action::Install,
        Action::StartEngine,
        Action::Verify,
        Action::RestoreAvailability,
        Action::WaitConverged,
        Action::Restore,
        Action::VerifyServices,
        Action::Soak,
        Action::Pause,
        Action::Prepull,
        Action::Reboot,
        Action::Hook,
        Action::Stage,
    ];
    for a in all {
        match a {
            Action::Drain
            | Action::WaitDrained
            | Action::StopEngine
            | Action::Backup
            | Action::Install
            | Action::StartEngine
            | Action::Verify
            | Action::RestoreAvailability
            | Action::WaitConverged
            | Action::Restore
            | Action::VerifyServices
            | Action::Soak
            | Action::Pause
            | Action::Prepull
            | Action::Reboot
            | Action::Hook
            | Action::Stage => {}
        }
    }
    all.to_vec()
}

// The soak's sleeps on tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn every_action_does_what_it_describes_in_an_upgrade_and_its_rollback() {
    let mut case = Case::with_local_image(3);
    // Hooks at every point, on the hosts and on the controller.
    case.hooks = all_hooks();
    // Canaries soaked, and paused after (continued at once).
    let upgrade = case.plan_with(
        1,
        plan::Canary {
            soak_secs: 30,
            soak_checks: 3,
            pause: true,
        },
        swarm_upgrade::plan::Operation::Upgrade,
    );
    let out = case.run(&upgrade, "run-1").await;
    assert_eq!(out.status, RunStatus::Done);
    assert_clean(&out.errors);
    let mut kinds = out.kinds;

    // The rollback plan of that run: restore instead of backup + install.
    let upgraded: Vec<String> = upgrade
        .steps
        .iter()
        .filter(|s| s.action == Action::Install)
        .filter_map(|s| s.node_id.clone())
        .collect();
    let revert = plan::rollback::build(&upgrade, "run-1", &upgraded);
    let out = case.run(&revert, "run-2").await;
    assert_eq!(out.status, RunStatus::Done);
    assert_clean(&out.errors);
    kinds.extend(out.kinds);

    // Then `restart --reboot`: the hosts rebooted instead of the engines restarted.
    let reboot = case.plan_full(
        1,
        Default::default(),
        swarm_upgrade::plan::Operation::Restart,
        true,
    );
    let out = case.run(&reboot, "run-3").await;
    assert_eq!(out.status, RunStatus::Done);
    assert_clean(&out.errors);
    kinds.extend(out.kinds);
    kinds.sort_by_key(|a| a.name());
    kinds.dedup();
    let mut all = every_kind();
    all.sort_by_key(|a| a.name());
    assert_eq!(kinds, all, "every action kind ran and was compared");
}

// The reboot's waits sleep on tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn an_upgrade_with_a_reboot_does_what_it_describes() {
    let case = Case::new(2, None);
    let p = case.plan_full(
        1,
        Default::default(),
        swarm_upgrade::plan::Operation::Upgrade,
        true,
    );
    let out = case.run(&p, "run-1").await;
    assert_eq!(out.status, RunStatus::Done);
    assert_clean(&out.errors);
    assert!(out.kinds.contains(&Action::Reboot), "{:?}", out.kinds);
    assert!(!out.kinds.contains(&Action::StartEngine), "{:?}", out.kinds);
    for n in case.sim.hostnames() {
        assert_eq!(
            case.sim.engine(&n).map(|v| v.contains(&pin().to_string())),
            Some(true),
            "{n}: the reboot brought up the installed engine"
        );
    }
}

#[tokio::test]
async fn parallel_drains_wait_for_replicas_elsewhere_as_described() {
    let case = Case::new(4, None);
    let p = case.plan(2);
    let out = case.run(&p, "run-1").await;
    assert_eq!(out.status, RunStatus::Done);
    assert_clean(&out.errors);
    let replica_waits = out
        .performed
        .values()
        .flatten()
        .filter(|op| **op == Operation::api(On::Manager, Call::Tasks { all: false }))
        .count();
    assert!(replica_waits > 0, "no drain waited for replicas elsewhere");
}

#[tokio::test]
async fn a_restart_waits_for_disruption_budgets_as_described() {
    let mut case = Case::new(4, None);
    // A replicated service on several nodes keeps at least one replica up:
    // a budget the drains can keep also once the managers, drained
    // together, have pushed the tasks onto the workers.
    let facts = &case.gathered.facts;
    let name = facts
        .cluster
        .services
        .iter()
        .filter(|s| matches!(s.mode, ServiceMode::Replicated { .. }))
        .find(|s| {
            let nodes: BTreeSet<&str> = facts
                .cluster
                .tasks
                .iter()
                .filter(|t| t.service_id == s.id && t.state == "running")
                .map(|t| t.node_id.as_str())
                .collect();
            nodes.len() >= 2
        })
        .expect("a replicated service on two nodes or more")
        .name
        .clone();
    case.sim
        .set_service_label(&name, "swarm-upgrade.min-available", "1");
    case.gathered = case.sim.gathered(&pin());
    let p = case.plan_for(2, swarm_upgrade::plan::Operation::Restart);
    assert!(
        p.findings.iter().any(|f| f.id == "disruption-budget"),
        "{:#?}",
        p.findings
    );
    let out = case.run(&p, "run-1").await;
    assert_eq!(out.status, RunStatus::Done);
    assert_clean(&out.errors);
    // Even a manager's drain, alone in its batch, asks what the node runs.
    for s in p.steps.iter().filter(|s| {
        s.action == Action::Drain && s.role == Some(swarm_upgrade::facts::model::Role::Manager)
    }) {
        let ops = &out.performed[&Scope::Step(s.index)];
        assert!(
            ops.iter().any(|op| matches!(
                op,
                Operation::Api {
                    call: Call::NodeTasks,
                    ..
                }
            )),
            "step {}: {ops:?}",
            s.index
        );
    }
}

#[tokio::test]
async fn the_unlock_and_the_undo_of_a_failed_node_are_described() {
    let key = "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8";
    let case = Case::new(2, Some(key));
    // w1's new engine cannot start (systemd reports it): w1 is rolled back.
    case.sim.break_engine("w1", "26.1.5");
    let p = case.plan(1);
    let out = case.run(&p, "run-1").await;
    assert_eq!(out.status, RunStatus::RolledBack);
    assert_clean(&out.errors);
    let unlocked = out.performed.values().flatten().any(
        |op| matches!(op, Operation::Command { cmd, stdin: Some(_) } if cmd.contains("swarm unlock")),
    );
    assert!(unlocked, "no manager was unlocked");
    let w1 = case.sim.id("w1");
    let undo = &out.performed[&Scope::Undo(w1)];
    assert!(
        undo.iter().any(|op| matches!(op, Operation::Command { cmd, .. } if cmd.contains("apt-get install") && cmd.contains("packages/*.deb"))),
        "w1's undo restored its backup: {undo:?}"
    );
}

/// An image built on w1 only (moby#36045): with `--prepull`, the first step
/// copies it to every node that can receive w1's tasks, before anything is
/// drained, and the receivers hold the same image ID.
#[tokio::test(start_paused = true)]
async fn prepull_copies_an_image_built_on_one_node_to_its_receivers_before_any_drain() {
    let case = Case::with_local_image(2);
    let image = "svc2-local:dev";
    let built = case.sim.image_on("w1", image).expect("built on w1");
    let p = case.plan(1);
    assert_eq!(p.steps[0].action, Action::Prepull, "{:#?}", p.steps[0]);
    assert_eq!(p.steps[1].action, Action::Stage);
    assert_eq!(p.steps[2].action, Action::Drain);
    let mut receivers: Vec<&str> = p.prepull.iter().map(|t| t.node.as_str()).collect();
    receivers.sort_unstable();
    assert_eq!(receivers, ["m1", "m2", "m3", "w2"]);
    assert!(
        p.prepull
            .iter()
            .all(|t| t.image == image && t.from.as_deref() == Some("w1"))
    );
    let finding = p
        .findings
        .iter()
        .find(|f| f.id == "image-availability")
        .expect("the check reports what --prepull fixes");
    assert_eq!(
        finding.severity,
        swarm_upgrade::checks::Severity::Info,
        "{finding:?}"
    );

    let out = case.run(&p, "run-1").await;
    assert_eq!(out.status, RunStatus::Done);
    assert_clean(&out.errors);
    for n in receivers {
        assert_eq!(
            case.sim.image_on(n, image).as_deref(),
            Some(built.as_str()),
            "{n}"
        );
    }
    let records = case.sim.records();
    let last_load = records
        .iter()
        .filter(|r| matches!(r.op, Op::LoadImage(_)))
        .map(|r| r.seq)
        .max()
        .expect("images loaded");
    let first_drain = records
        .iter()
        .find(|r| {
            matches!(
                r.op,
                Op::Update {
                    availability: Some(swarm_upgrade::facts::model::Availability::Drain)
                }
            )
        })
        .expect("a drain");
    assert!(last_load < first_drain.seq, "{records:#?}");
    assert!(case.sim.converged());
}

/// Without `--prepull` the same cluster is warned about, naming the flag.
#[test]
fn without_prepull_the_image_built_on_one_node_is_warned_naming_prepull() {
    let mut case = Case::with_local_image(2);
    case.prepull = false;
    let p = case.plan(1);
    assert!(p.prepull.is_empty() && !p.steps.iter().any(|s| s.action == Action::Prepull));
    let finding = p
        .findings
        .iter()
        .find(|f| f.id == "image-availability")
        .expect("warned");
    assert_eq!(finding.severity, swarm_upgrade::checks::Severity::Warn);
    assert!(finding.message.contains("--prepull"), "{}", finding.message);
}

/// A worker whose repository does not answer: its `stage` step fails before
/// it is drained, the run stops resumable (not rolled back), nothing of its
/// batch was drained; with the repository back, the same run finishes.
/// Staged packages install with the repository gone (from the cache).
#[tokio::test(start_paused = true)]
async fn a_failed_download_stops_the_run_before_its_node_is_drained() {
    let case = Case::new(3, None);
    let p = case.plan(2);
    // Each stage batch comes right before the batch that drains its nodes.
    for s in p.steps.iter().filter(|s| s.action == Action::Stage) {
        let drain = p
            .steps
            .iter()
            .find(|d| d.action == Action::Drain && d.node == s.node)
            .expect("a staged node is drained");
        assert_eq!(drain.batch, s.batch + 1, "{s:?} then {drain:?}");
        assert!(
            p.steps
                .iter()
                .filter(|o| o.batch == s.batch)
                .all(|o| o.action == Action::Stage)
        );
    }
    let stage_w = |w: &str| {
        p.steps
            .iter()
            .find(|s| s.action == Action::Stage && s.node.as_deref() == Some(w))
            .unwrap_or_else(|| panic!("{w} is staged"))
            .batch
    };
    assert_eq!(
        stage_w("w1"),
        stage_w("w2"),
        "a worker batch is staged together"
    );

    case.sim.cut_repo("w2", true);
    let out = case.run(&p, "run-1").await;
    assert_clean(&out.errors);
    assert_eq!(
        out.status,
        RunStatus::Failed,
        "stopped resumable, not rolled back"
    );
    for w in ["w1", "w2"] {
        assert_eq!(
            case.sim.availability(w),
            swarm_upgrade::facts::model::Availability::Active,
            "{w}"
        );
        assert!(
            case.sim.labels(w).is_empty(),
            "{w}: {:?}",
            case.sim.labels(w)
        );
        assert!(
            !case.sim.records().iter().any(
                |r| r.node == w && matches!(r.op, Op::Update { .. } | Op::Script(Script::Stop))
            ),
            "{w} was never drained nor stopped"
        );
    }
    let state = RunDir {
        path: case.dir.path().join("run-1"),
    }
    .load_state()
    .unwrap();
    let failure = state.failure.clone().unwrap_or_default();
    assert!(
        failure.contains("could not be staged on w2") && failure.contains("Failed to fetch"),
        "{failure}"
    );
    assert!(state.rolled_back.is_empty(), "{:?}", state.rolled_back);

    // Resumed once the repository answers again: the run finishes.
    case.sim.cut_repo("w2", false);
    let status = case.execute(&p, "run-1", state, &|_: &Event| {}).await;
    assert_eq!(status, RunStatus::Done);
    for n in case.sim.hostnames() {
        assert_eq!(case.sim.engine(&n).as_deref(), Some("26.1.5"), "{n}");
    }
}

/// Packages staged before the drain install with the repository gone.
#[tokio::test(start_paused = true)]
async fn staged_packages_install_without_the_repository() {
    let case = Case::new(1, None);
    let p = case.plan(1);
    let cut = std::sync::atomic::AtomicBool::new(false);
    // The repository of w1 goes away as soon as w1 is staged.
    let stage_w1 = p
        .steps
        .iter()
        .find(|s| s.action == Action::Stage && s.node.as_deref() == Some("w1"))
        .unwrap()
        .index;
    let (_, state) = case.new_run(&p, "run-1");
    let emit = |e: &Event| {
        if matches!(e, Event::StepFinished { index, .. } if *index == stage_w1)
            && !cut.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            case.sim.cut_repo("w1", true);
        }
    };
    let status = case.execute(&p, "run-1", state, &emit).await;
    assert!(cut.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(status, RunStatus::Done);
    assert_eq!(case.sim.engine("w1").as_deref(), Some("26.1.5"));
}
