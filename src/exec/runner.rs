//! The executor: runs a plan step by step, with a checkpoint after each step,
//! a quorum guard before a manager goes down, and a rollback of a node that
//! does not come back.
//!
//! Every step is idempotent, so a resumed run simply runs the first step that
//! is not recorded as done, the interrupted one included: it re-verifies
//! instead of assuming. Steps of one worker batch run concurrently per node;
//! everything else runs one step at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use tokio::sync::Mutex;

use super::events::{Event, Record};
use super::ops::{Lease, LeaseOutcome, NodeUpdate, Ops, Task};
use super::rundir::{Journal, RunDir};
use super::state::{RunState, RunStatus, StepStatus, now};
use super::wait::{self, Backoff, Polled};
use crate::error::Error;
use crate::facts::host::HOST_STATE_DIR;
use crate::facts::model::{Availability, Facts, InitSystem, NodeFacts, Role, ServiceFacts};
use crate::plan::{Action, Plan, PlanNode, Step};
use crate::playbook::{Playbooks, Script, ScriptEnv};
use crate::transport::{Cmd, CmdOutput};
use crate::version::engine_version_of;
use crate::version::resolve::Method;

/// Node labels the run keeps in the swarm, so that progress survives the
/// machine that runs swarm-upgrade.
pub const LABEL_RUN: &str = "swarm-upgrade.run";
pub const LABEL_AVAILABILITY: &str = "swarm-upgrade.availability";
pub const LABEL_DONE: &str = "swarm-upgrade.done";

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub drain_timeout: Duration,
    pub verify_timeout: Duration,
    pub converge_timeout: Duration,
    /// Limit for each playbook script (install can be slow on a busy mirror).
    pub script_timeout: Duration,
    pub lease_ttl: Duration,
    /// How long the quorum guard waits for every manager to be reachable
    /// before it refuses to take one down.
    pub guard_timeout: Duration,
    pub break_lock: bool,
    /// The swarm unlock key, for autolocked managers. Never logged.
    pub unlock_key: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            drain_timeout: Duration::from_secs(300),
            verify_timeout: Duration::from_secs(180),
            converge_timeout: Duration::from_secs(300),
            script_timeout: Duration::from_secs(900),
            lease_ttl: Duration::from_secs(900),
            guard_timeout: Duration::from_secs(60),
            break_lock: false,
            unlock_key: None,
        }
    }
}

/// Why a step did not complete.
#[derive(Debug)]
enum StepError {
    /// The step's precondition does not hold: nothing was changed by it.
    Precondition(String),
    /// The step failed; the node must be brought back.
    Failed(String),
}

impl StepError {
    fn message(&self) -> &str {
        match self {
            StepError::Precondition(m) | StepError::Failed(m) => m,
        }
    }
}

pub struct Runner<'a, O: Ops> {
    pub ops: &'a O,
    pub plan: &'a Plan,
    pub facts: &'a Facts,
    pub playbooks: &'a Playbooks,
    pub opts: &'a RunOptions,
    pub run: RunDir,
    state: Mutex<RunState>,
    journal: Mutex<Journal>,
    emit: &'a (dyn Fn(&Event) + Sync),
    /// Set by Ctrl-C: stop at the next safe point.
    pub stop: Arc<AtomicBool>,
    /// A node of the current batch failed: its siblings take no further
    /// node down.
    batch_failed: AtomicBool,
    /// Serializes the drains of a parallel batch (see `execute_node`).
    drain_gate: Mutex<()>,
    lease_renewed: Mutex<Instant>,
    /// Lookups by node ID: a step must not cost a scan of a 5,000-node plan.
    nodes_by_id: HashMap<&'a str, &'a PlanNode>,
    steps_of: HashMap<&'a str, Vec<&'a Step>>,
    /// The managers, in plan order: the candidates of `via`.
    managers: Vec<&'a PlanNode>,
}

impl<'a, O: Ops> Runner<'a, O> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ops: &'a O,
        plan: &'a Plan,
        facts: &'a Facts,
        playbooks: &'a Playbooks,
        opts: &'a RunOptions,
        run: RunDir,
        state: RunState,
        emit: &'a (dyn Fn(&Event) + Sync),
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Self> {
        let journal = run.journal()?;
        let nodes_by_id = plan.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut steps_of: HashMap<&str, Vec<&Step>> = HashMap::new();
        for s in &plan.steps {
            if let Some(id) = &s.node_id {
                steps_of.entry(id.as_str()).or_default().push(s);
            }
        }
        Ok(Runner {
            ops,
            plan,
            facts,
            playbooks,
            opts,
            run,
            state: Mutex::new(state),
            journal: Mutex::new(journal),
            emit,
            stop,
            batch_failed: AtomicBool::new(false),
            drain_gate: Mutex::new(()),
            lease_renewed: Mutex::new(Instant::now()),
            nodes_by_id,
            steps_of,
            managers: plan
                .nodes
                .iter()
                .filter(|n| n.role == Role::Manager)
                .collect(),
        })
    }

    pub async fn state(&self) -> RunState {
        self.state.lock().await.clone()
    }

    async fn record(&self, event: Event) -> anyhow::Result<()> {
        let st = self.state.lock().await;
        let rec = Record {
            ts: now(),
            run_id: &st.run_id,
            event: &event,
        };
        self.journal.lock().await.append(&rec)?;
        drop(st);
        (self.emit)(&event);
        Ok(())
    }

    async fn save(&self, f: impl FnOnce(&mut RunState)) -> anyhow::Result<()> {
        let mut st = self.state.lock().await;
        f(&mut st);
        st.updated_at = now();
        self.run.save_state(&st)
    }

    fn node(&self, id: &str) -> &'a PlanNode {
        self.nodes_by_id.get(id).expect("steps name planned nodes")
    }

    /// The node's steps, in plan order.
    fn steps_of(&self, id: &str) -> &[&'a Step] {
        self.steps_of.get(id).map_or(&[], Vec::as_slice)
    }

    fn lease(&self, run_id: &str, owner: &str, started: &str) -> Lease {
        Lease {
            run_id: run_id.to_string(),
            owner: owner.to_string(),
            started_at: started.to_string(),
            expires_at: humantime::format_rfc3339_seconds(
                std::time::SystemTime::now() + self.opts.lease_ttl,
            )
            .to_string(),
        }
    }

    /// Runs the plan from its first unfinished step to the end, or to a
    /// failure (after rolling the failed node back), or to a safe stop.
    pub async fn execute(&self) -> anyhow::Result<RunStatus> {
        let started = Instant::now();
        let (run_id, owner, started_at, steps, done) = {
            let st = self.state.lock().await;
            (
                st.run_id.clone(),
                st.owner.clone(),
                st.started_at.clone(),
                st.steps.len(),
                st.count(StepStatus::Done),
            )
        };
        let via = self.via(None).await?;
        match self
            .ops
            .acquire_lease(
                &via,
                &self.lease(&run_id, &owner, &started_at),
                self.opts.break_lock,
            )
            .await?
        {
            LeaseOutcome::Acquired => {}
            LeaseOutcome::Held(l) => return Err(lease_held_error(&l)),
        }
        self.save(|st| st.status = RunStatus::Running).await?;
        self.record(Event::RunStarted {
            run_id: run_id.clone(),
            steps,
            done,
        })
        .await?;

        let status = match self.execute_batches().await {
            Ok(true) => RunStatus::Done,
            Ok(false) => RunStatus::Interrupted,
            Err(outcome) => outcome,
        };
        self.save(|st| st.status = status).await?;
        // The lease guards a running process; the run's record stays in the
        // state file (and a failed node's labels in the swarm) for the next one.
        if let Ok(via) = self.via(None).await {
            let _ = self.ops.release_lease(&via, &run_id).await;
        }
        let _ = self
            .record(Event::Traffic {
                hosts: self.ops.traffic(),
            })
            .await;
        self.record(Event::RunFinished {
            status,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
        .await?;
        Ok(status)
    }

    /// Ok(true): all done. Ok(false): stopped at a safe point on request.
    /// Err(status): a failure, already handled (rolled back or not).
    async fn execute_batches(&self) -> Result<bool, RunStatus> {
        let mut batches: BTreeMap<usize, Vec<&Step>> = BTreeMap::new();
        for s in &self.plan.steps {
            batches.entry(s.batch).or_default().push(s);
        }
        for steps in batches.values() {
            // Every batch boundary is a safe point: no engine is down.
            if self.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            self.renew_lease().await.map_err(|e| {
                let _ = e;
                RunStatus::Failed
            })?;
            self.execute_batch(steps).await?;
        }
        Ok(true)
    }

    async fn execute_batch(&self, steps: &[&Step]) -> Result<(), RunStatus> {
        // Per node, its steps in order; cluster-wide steps after the nodes.
        let mut per_node: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
        let mut cluster_steps = vec![];
        for s in steps {
            match &s.node_id {
                Some(id) => per_node.entry(id.as_str()).or_default().push(s),
                None => cluster_steps.push(*s),
            }
        }
        let batch_nodes: Vec<&str> = per_node.keys().copied().collect();
        let results = futures_util::future::join_all(
            per_node
                .iter()
                .map(|(id, steps)| self.execute_node(id, steps, &batch_nodes)),
        )
        .await;
        let mut worst: Option<RunStatus> = None;
        for r in results {
            if let Err(status) = r {
                worst = Some(match (worst, status) {
                    (Some(RunStatus::RollbackFailed), _) | (_, RunStatus::RollbackFailed) => {
                        RunStatus::RollbackFailed
                    }
                    (Some(RunStatus::RolledBack), _) | (_, RunStatus::RolledBack) => {
                        RunStatus::RolledBack
                    }
                    (_, s) => s,
                });
            }
        }
        if let Some(status) = worst {
            return Err(status);
        }
        for s in cluster_steps {
            if self.state.lock().await.done(s.index) {
                continue;
            }
            match self.run_step(s).await {
                Ok(()) => {}
                Err(e) => {
                    self.fail_step(s, &e).await;
                    return Err(RunStatus::Failed);
                }
            }
        }
        Ok(())
    }

    async fn execute_node(
        &self,
        node_id: &str,
        steps: &[&Step],
        batch: &[&str],
    ) -> Result<(), RunStatus> {
        for s in steps {
            if self.state.lock().await.done(s.index) {
                continue;
            }
            // A sibling of this worker batch failed: install nothing more.
            // Undo what this node did so far (start its old engine again,
            // give its availability back) and stop with the batch. A node
            // already installing finishes and is verified: aborting a
            // package manager halfway is worse.
            if self.batch_failed.load(Ordering::SeqCst)
                && matches!(
                    s.action,
                    Action::Drain | Action::StopEngine | Action::Backup | Action::Install
                )
            {
                let reason = "another node of the batch failed";
                let e = StepError::Precondition(reason.into());
                self.fail_step(s, &e).await;
                return Err(self.rollback_node(node_id, s, reason, true).await);
            }
            // Drains of one batch go one at a time, each after the last
            // replica elsewhere of every service on this node is running:
            // two workers drained at the same instant can take a service's
            // every replica down together.
            let gate = if s.action == Action::Drain && batch.len() > 1 {
                let guard = self.drain_gate.lock().await;
                if let Err(e) = self.wait_for_replicas_elsewhere(s, node_id, batch).await {
                    self.batch_failed.store(true, Ordering::SeqCst);
                    self.fail_step(s, &e).await;
                    let _ = self.rollback_node(node_id, s, e.message(), true).await;
                    return Err(RunStatus::Failed);
                }
                Some(guard)
            } else {
                None
            };
            let result = self.run_step(s).await;
            drop(gate);
            if let Err(e) = result {
                self.batch_failed.store(true, Ordering::SeqCst);
                self.fail_step(s, &e).await;
                let precondition = matches!(e, StepError::Precondition(_));
                let status = self
                    .rollback_node(node_id, s, e.message(), precondition)
                    .await;
                // Nothing failed on the node itself: once the cause is fixed
                // (a manager back, say), `resume` goes on from this step.
                if precondition && status == RunStatus::RolledBack {
                    return Err(RunStatus::Failed);
                }
                return Err(status);
            }
        }
        Ok(())
    }

    async fn fail_step(&self, s: &Step, e: &StepError) {
        let msg = match e {
            StepError::Precondition(m) => format!("precondition failed: {m}"),
            StepError::Failed(m) => m.clone(),
        };
        let _ = self
            .save(|st| {
                let step = st.step_mut(s.index);
                step.status = StepStatus::Failed;
                step.error = Some(msg.clone());
                st.failure = Some(format!(
                    "step {} ({} {}) failed: {msg}",
                    s.index,
                    s.action.name(),
                    s.node.as_deref().unwrap_or("cluster")
                ));
            })
            .await;
        let _ = self
            .record(Event::StepFailed {
                index: s.index,
                node: s.node.clone(),
                action: s.action,
                error: msg,
            })
            .await;
    }

    async fn run_step(&self, s: &Step) -> Result<(), StepError> {
        let t = Instant::now();
        self.save(|st| {
            let step = st.step_mut(s.index);
            step.status = StepStatus::Running;
            step.error = None;
        })
        .await
        .map_err(|e| StepError::Precondition(format!("cannot write the run state: {e:#}")))?;
        let _ = self.record(Event::step_started(s)).await;
        let polled = self.step(s).await?;
        self.save(|st| {
            st.step_mut(s.index).status = StepStatus::Done;
        })
        .await
        .map_err(|e| StepError::Failed(format!("cannot write the run state: {e:#}")))?;
        let ms = |d: Duration| d.as_millis() as u64;
        let detect_ms = polled.and_then(|p| p.detection).map(ms);
        let last_poll_ms = polled.map(|p| ms(p.last_poll));
        let _ = self
            .record(Event::StepFinished {
                index: s.index,
                node: s.node.clone(),
                action: s.action,
                elapsed_ms: t.elapsed().as_millis() as u64,
                detect_ms,
                last_poll_ms,
            })
            .await;
        Ok(())
    }

    async fn output(&self, s: &Step, text: impl Into<String>) {
        let _ = self
            .record(Event::StepOutput {
                index: s.index,
                node: s.node.clone(),
                text: text.into(),
            })
            .await;
    }

    /// Runs one step; a wait step reports how it polled.
    async fn step(&self, s: &Step) -> Result<Option<Polled>, StepError> {
        let node_id = s.node_id.as_deref();
        let polled = match s.action {
            Action::Drain => {
                let id = node_id.expect("node step");
                let n = self.node(id);
                self.guard(id, n.role, false).await?;
                let via = self.via_err(Some(id)).await?;
                self.ops
                    .update_node(
                        &via,
                        id,
                        &NodeUpdate {
                            availability: Some(Availability::Drain),
                            add_labels: vec![
                                (LABEL_RUN.into(), self.state.lock().await.run_id.clone()),
                                (
                                    LABEL_AVAILABILITY.into(),
                                    availability_name(n.availability).into(),
                                ),
                            ],
                            remove_labels: vec![],
                        },
                    )
                    .await
                    .map_err(|e| StepError::Failed(format!("{e:#}")))?;
                None
            }
            Action::WaitDrained => Some(self.wait_drained(node_id.expect("node step")).await?),
            Action::StopEngine => {
                let id = node_id.expect("node step");
                let n = self.node(id);
                // Resumed after a crash in this very step, the engine may be
                // down already: that is ours, not a reason to stop.
                self.guard(id, n.role, true).await?;
                self.script(s, id, Script::Stop).await?;
                None
            }
            Action::Backup => {
                let id = node_id.expect("node step");
                let out = self.script(s, id, Script::Backup).await?;
                self.output(s, format!("backed up: {}", one_line(&out.stdout)))
                    .await;
                None
            }
            Action::Install => {
                let id = node_id.expect("node step");
                let out = self.script(s, id, Script::Install).await?;
                self.output(s, format!("installed: {}", package_lines(&out.stdout)))
                    .await;
                None
            }
            Action::StartEngine => {
                let id = node_id.expect("node step");
                self.script(s, id, Script::Start).await?;
                None
            }
            Action::Restore => {
                let id = node_id.expect("node step");
                let out = self.script(s, id, Script::Restore).await?;
                self.output(s, format!("restored: {}", package_lines(&out.stdout)))
                    .await;
                None
            }
            Action::Verify => {
                let id = node_id.expect("node step");
                // The node's own target: a rollback plan verifies old versions.
                let target = self.node(id).target.clone();
                let polled = self.verify(s, id, &target).await?;
                let via = self.via_err(Some(id)).await?;
                self.ops
                    .update_node(
                        &via,
                        id,
                        &NodeUpdate {
                            add_labels: vec![(LABEL_DONE.into(), target.to_string())],
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| StepError::Failed(format!("{e:#}")))?;
                Some(polled)
            }
            Action::RestoreAvailability => {
                let id = node_id.expect("node step");
                let a = s.availability.unwrap_or(Availability::Active);
                let via = self.via_err(Some(id)).await?;
                self.ops
                    .update_node(
                        &via,
                        id,
                        &NodeUpdate {
                            availability: Some(a),
                            add_labels: vec![],
                            remove_labels: vec![LABEL_RUN.into(), LABEL_AVAILABILITY.into()],
                        },
                    )
                    .await
                    .map_err(|e| StepError::Failed(format!("{e:#}")))?;
                None
            }
            Action::WaitConverged => Some(self.wait_converged(s).await?),
        };
        Ok(polled)
    }

    /// The quorum guard: before a manager goes down, every manager must be
    /// reachable, one must lead, and the rest must keep quorum without it.
    /// Asked live, through another manager: facts from planning may be stale.
    async fn guard(&self, node_id: &str, role: Role, may_be_down: bool) -> Result<(), StepError> {
        // A manager can look unreachable for a heartbeat or two on a busy
        // host: wait a little for the cluster to be whole before refusing.
        let deadline = Instant::now() + self.opts.guard_timeout;
        let mut backoff = Backoff::new();
        loop {
            match self.guard_once(node_id, role, may_be_down).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => backoff.sleep().await,
            }
        }
    }

    async fn guard_once(
        &self,
        node_id: &str,
        role: Role,
        may_be_down: bool,
    ) -> Result<(), StepError> {
        let via = self.via_err(Some(node_id)).await?;
        let (me, managers) = self
            .node_and_managers(&via, node_id, role)
            .await
            .map_err(StepError::Precondition)?;
        if me.state != crate::facts::model::NodeState::Ready && !may_be_down {
            return Err(StepError::Precondition(format!(
                "{} is {:?}, not ready",
                me.hostname, me.state
            )));
        }
        if role == Role::Manager {
            quorum_guard(&managers, node_id).map_err(StepError::Precondition)?;
        }
        Ok(())
    }

    /// The node as the swarm sees it, and the managers when it is one (or
    /// has become one): one request either way.
    async fn node_and_managers(
        &self,
        via: &str,
        node_id: &str,
        role: Role,
    ) -> Result<(NodeFacts, Vec<NodeFacts>), String> {
        let text = |e: anyhow::Error| format!("{e:#}");
        if role == Role::Manager {
            let managers = self.ops.managers(via).await.map_err(text)?;
            if let Some(me) = managers.iter().find(|n| n.id == node_id) {
                return Ok((me.clone(), managers));
            }
            // Demoted meanwhile, or gone: ask for it alone.
            let me = self.ops.node(via, node_id).await.map_err(text)?;
            return Ok((me.ok_or("the node left the swarm")?, managers));
        }
        let me = self
            .ops
            .node(via, node_id)
            .await
            .map_err(text)?
            .ok_or("the node left the swarm")?;
        if me.role == Role::Manager {
            // Promoted since the plan: its quorum matters now.
            let managers = self.ops.managers(via).await.map_err(text)?;
            return Ok((me, managers));
        }
        Ok((me, vec![]))
    }

    /// Waits until every service with two or more replicas that runs a task
    /// on `node_id` also has a running task on a node that stays up: not this
    /// node, and not a node of the batch that is drained already. A single
    /// replica service has no other replica to wait for (drain-feasibility
    /// warns about its downtime).
    async fn wait_for_replicas_elsewhere(
        &self,
        s: &Step,
        node_id: &str,
        batch: &[&str],
    ) -> Result<(), StepError> {
        let deadline = Instant::now() + self.opts.drain_timeout;
        let mut backoff = Backoff::new();
        let mut reported = false;
        loop {
            let down: Vec<&str> = {
                let st = self.state.lock().await;
                let drained = |id: &str| {
                    let step = |a: Action| {
                        self.steps_of(id)
                            .iter()
                            .find(|x| x.action == a)
                            .map(|x| st.step(x.index).status)
                    };
                    step(Action::Drain) == Some(StepStatus::Done)
                        && step(Action::RestoreAvailability) != Some(StepStatus::Done)
                };
                batch
                    .iter()
                    .copied()
                    .filter(|id| *id == node_id || drained(id))
                    .collect()
            };
            let via = self.via_err(Some(node_id)).await?;
            let lonely = match self.replicas_of_services_on(&via, node_id).await {
                Ok((services, tasks)) => wait::last_replicas_on(&services, &tasks, node_id, &down),
                Err(e) => vec![format!("{e:#}")],
            };
            if lonely.is_empty() {
                return Ok(());
            }
            if !reported {
                self.output(
                    s,
                    format!(
                        "waiting for replicas elsewhere before draining: {}",
                        lonely.join(", ")
                    ),
                )
                .await;
                reported = true;
            }
            if Instant::now() > deadline {
                return Err(StepError::Precondition(format!(
                    "draining this node now would stop every running replica of {}",
                    lonely.join(", ")
                )));
            }
            backoff.sleep().await;
        }
    }

    /// The services with a running task on the node, and every running task
    /// of theirs: three narrow requests rather than the whole swarm's tasks.
    async fn replicas_of_services_on(
        &self,
        via: &str,
        node_id: &str,
    ) -> anyhow::Result<(Vec<ServiceFacts>, Vec<Task>)> {
        let mut ids: Vec<String> = self
            .ops
            .node_tasks(via, node_id)
            .await?
            .into_iter()
            .filter(|t| t.state == "running")
            .map(|t| t.service_id)
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok((vec![], vec![]));
        }
        let services = self.ops.services(via, Some(&ids)).await?;
        let tasks = self.ops.tasks(via, Some(&ids)).await?;
        Ok((services, tasks))
    }

    async fn wait_drained(&self, node_id: &str) -> Result<Polled, StepError> {
        let deadline = Instant::now() + self.opts.drain_timeout;
        let mut backoff = Backoff::new();
        loop {
            let via = self.via_err(Some(node_id)).await?;
            match self.ops.node_tasks(&via, node_id).await {
                Ok(tasks) => {
                    let left: Vec<_> = tasks
                        .iter()
                        .filter(|t| wait::task_active(&t.state))
                        .collect();
                    if left.is_empty() {
                        return Ok(backoff.polled());
                    }
                    if Instant::now() > deadline {
                        return Err(StepError::Failed(format!(
                            "{} task(s) still on the node after {} (drain does not move tasks whose service cannot be placed elsewhere: check constraints)",
                            left.len(),
                            humantime::format_duration(self.opts.drain_timeout)
                        )));
                    }
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(StepError::Failed(format!("{e:#}")));
                }
                Err(_) => {}
            }
            backoff.sleep().await;
        }
    }

    async fn wait_converged(&self, s: &Step) -> Result<Polled, StepError> {
        let deadline = Instant::now() + self.opts.converge_timeout;
        let mut backoff = Backoff::new();
        let mut last: String;
        loop {
            let via = self.via_err(None).await?;
            match self.ops.services(&via, None).await {
                Ok(services) => {
                    let lagging = wait::unconverged(&services);
                    if lagging.is_empty() {
                        return Ok(backoff.polled());
                    }
                    last = lagging.join(", ");
                }
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() > deadline {
                let mut msg = format!(
                    "services did not converge within {}: {last}",
                    humantime::format_duration(self.opts.converge_timeout)
                );
                if let Ok(via) = self.via_err(None).await
                    && let Ok(tasks) = self.ops.tasks(&via, None).await
                {
                    for cause in wait::rejected_causes(&tasks) {
                        msg.push_str(&format!("\n  {cause}"));
                    }
                }
                self.output(s, msg.clone()).await;
                return Err(StepError::Failed(msg));
            }
            backoff.sleep().await;
        }
    }

    /// V1–V4: the node's engine answers at the target version, its swarm is
    /// active, and another manager sees it ready (and, for a manager, reachable
    /// with quorum and one leader).
    async fn verify(
        &self,
        s: &Step,
        node_id: &str,
        target: &crate::version::EngineVersion,
    ) -> Result<Polled, StepError> {
        let deadline = Instant::now() + self.opts.verify_timeout;
        let started = Instant::now();
        let mut backoff = Backoff::new();
        let mut last: String;
        let mut not_running = 0;
        let mut unlocked = false;
        // When the node says its swarm is active but the other managers do
        // not see it, its agent's session can be stuck (seen on the lab
        // after an unlock, about once in twenty): one restart of its engine
        // before giving up on it.
        let mut unseen_since: Option<Instant> = None;
        let mut restarted = false;
        loop {
            match self.ops.engine_status(node_id).await {
                Ok(st) => {
                    not_running = 0;
                    let running = engine_version_of(&st.server_version);
                    if running.as_ref() != Some(target) {
                        return Err(StepError::Failed(format!(
                            "the engine answers as {} instead of {target}: the new binaries are not the ones running",
                            st.server_version
                        )));
                    }
                    match st.swarm_state.as_str() {
                        "locked" if !unlocked => {
                            self.unlock(s, node_id).await?;
                            unlocked = true;
                            last = "unlocked; waiting for the swarm to become active".into();
                        }
                        "active" if st.swarm_error.is_empty() => {
                            match self.check_from_other_manager(node_id, target).await {
                                Ok(()) => return Ok(backoff.polled()),
                                Err(why) => last = why,
                            }
                            let since = *unseen_since.get_or_insert_with(Instant::now);
                            if !restarted
                                && since.elapsed() > Duration::from_secs(60)
                                && deadline.saturating_duration_since(Instant::now())
                                    > Duration::from_secs(45)
                            {
                                restarted = true;
                                unlocked = false;
                                unseen_since = None;
                                self.output(
                                    s,
                                    format!("the engine reports its swarm active but the managers have not seen it for 60 s ({last}): restarting the engine once"),
                                )
                                .await;
                                self.script(s, node_id, Script::Stop).await?;
                                self.script(s, node_id, Script::Start).await?;
                            }
                        }
                        other => {
                            last = format!("swarm state is `{other}` {}", st.swarm_error);
                        }
                    }
                }
                Err(e) => {
                    last = format!("the engine does not answer: {e:#}");
                    // A dockerd that exited will not come back: fail fast
                    // instead of waiting out the whole timeout.
                    if started.elapsed() > Duration::from_secs(10) {
                        let probe =
                            Cmd::new(["pgrep", "-x", "dockerd"]).timeout(Duration::from_secs(20));
                        if let Ok(out) = self.ops.run(node_id, &probe).await
                            && out.status == 1
                        {
                            not_running += 1;
                            if not_running >= 2 {
                                return Err(StepError::Failed(format!(
                                    "dockerd is not running{}",
                                    self.engine_logs(node_id).await
                                )));
                            }
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(StepError::Failed(format!(
                    "not verified within {}: {last}{}",
                    humantime::format_duration(self.opts.verify_timeout),
                    self.engine_logs(node_id).await
                )));
            }
            backoff.sleep().await;
        }
    }

    async fn check_from_other_manager(
        &self,
        node_id: &str,
        target: &crate::version::EngineVersion,
    ) -> Result<(), String> {
        let via = self
            .via(Some(node_id))
            .await
            .map_err(|e| format!("{e:#}"))?;
        let (me, managers) = self
            .node_and_managers(&via, node_id, self.node(node_id).role)
            .await?;
        verified_from_outside(&me, &managers, target)
    }

    async fn unlock(&self, s: &Step, node_id: &str) -> Result<(), StepError> {
        let Some(key) = &self.opts.unlock_key else {
            return Err(StepError::Failed(
                "the manager came back locked (autolock) and no unlock key was given: set SWARM_UPGRADE_UNLOCK_KEY or --unlock-key-file".into(),
            ));
        };
        // The key goes through stdin, never the command line.
        let cmd = Cmd::new(["docker", "swarm", "unlock"])
            .privileged()
            .stdin(format!("{key}\n").into_bytes())
            .timeout(Duration::from_secs(60));
        let out = self
            .ops
            .run(node_id, &cmd)
            .await
            .map_err(|e| StepError::Failed(format!("{e:#}")))?;
        if !out.success() {
            return Err(StepError::Failed(format!(
                "docker swarm unlock failed: {}",
                one_line(&out.stderr)
            )));
        }
        self.output(s, "unlocked the manager with the unlock key")
            .await;
        Ok(())
    }

    async fn engine_logs(&self, node_id: &str) -> String {
        let Ok(cmd) = self.script_cmd(node_id, Script::Logs).await else {
            return String::new();
        };
        match self
            .ops
            .run(node_id, &cmd.timeout(Duration::from_secs(30)))
            .await
        {
            Ok(out) => format!(
                "\n  engine log (last lines):\n    {}",
                out.stdout.trim_end().replace('\n', "\n    ")
            ),
            Err(_) => String::new(),
        }
    }

    /// The command of one playbook script for a node. A rollback plan uses
    /// the backups of the run it reverts.
    async fn script_cmd(&self, node_id: &str, which: Script) -> anyhow::Result<Cmd> {
        let n = self.node(node_id);
        let init = self
            .facts
            .hosts
            .get(node_id)
            .map_or(InitSystem::Unknown, |h| h.init);
        // Awaited, not try_lock'ed: a sibling of a parallel batch may hold
        // the state for a moment, and a wrong run id is a wrong backup dir.
        let run_id = match &self.plan.reverts_run {
            Some(r) => r.clone(),
            None => self.state.lock().await.run_id.clone(),
        };
        self.playbooks
            .get(n.method.unwrap_or(Method::DebianApt))
            .command(which, init, &script_env(n, &run_id))
            .map(|c| c.timeout(self.opts.script_timeout))
    }

    async fn script(&self, s: &Step, node_id: &str, which: Script) -> Result<CmdOutput, StepError> {
        let method = self.node(node_id).method.unwrap_or(Method::DebianApt);
        let cmd = self
            .script_cmd(node_id, which)
            .await
            .map_err(|e| StepError::Precondition(format!("{e:#}")))?;
        let out = self
            .ops
            .run(node_id, &cmd)
            .await
            .map_err(|e| StepError::Failed(format!("{e:#}")))?;
        if !out.success() {
            let text = format!("{}{}", out.stdout, out.stderr);
            self.output(s, tail(&text, 20)).await;
            return Err(StepError::Failed(format!(
                "{} {:?} script exited with {}: {}",
                method.name(),
                which,
                out.status,
                tail(&text, 6)
            )));
        }
        Ok(out)
    }

    /// Brings a node whose step failed back to how it was: the old engine
    /// running and verified, its availability restored.
    async fn rollback_node(
        &self,
        node_id: &str,
        failed: &Step,
        reason: &str,
        precondition: bool,
    ) -> RunStatus {
        let n = self.node(node_id);
        let name = n.name.clone();
        if self.plan.reverts_run.is_some() {
            // A failed revert is not reverted again: that is for a person.
            let _ = self
                .save(|st| {
                    st.failure = Some(format!(
                        "{}\nreverting {name} failed: {reason}\n{}",
                        st.failure.clone().unwrap_or_default(),
                        manual_instructions(n, self.plan.reverts_run.as_deref().unwrap_or(""))
                    ));
                })
                .await;
            return RunStatus::RollbackFailed;
        }
        let _ = self
            .record(Event::RollbackStarted {
                node: name.clone(),
                reason: reason.to_string(),
            })
            .await;
        let result = self.undo(node_id, failed, precondition).await;
        let (ok, detail) = match &result {
            Ok(d) => (true, d.clone()),
            Err(e) => (false, format!("{e:#}")),
        };
        let _ = self
            .record(Event::RollbackFinished {
                node: name.clone(),
                ok,
                detail: detail.clone(),
            })
            .await;
        let _ = self
            .save(|st| {
                if ok {
                    st.rolled_back.push(name.clone());
                    for step in self.steps_of(node_id) {
                        if st.step(step.index).status == StepStatus::Done {
                            st.step_mut(step.index).status = StepStatus::RolledBack;
                        }
                    }
                } else {
                    st.failure = Some(format!(
                        "{}\nrollback of {name} FAILED: {detail}\n{}",
                        st.failure.clone().unwrap_or_default(),
                        manual_instructions(n, &st.run_id)
                    ));
                }
            })
            .await;
        if ok {
            RunStatus::RolledBack
        } else {
            RunStatus::RollbackFailed
        }
    }

    async fn undo(
        &self,
        node_id: &str,
        failed: &Step,
        precondition: bool,
    ) -> anyhow::Result<String> {
        let n = self.node(node_id);
        let st = self.state.lock().await.clone();
        // The failed step counts as (partly) done unless its precondition
        // failed: then it never started, and undoing it would do harm (stop
        // the very manager the quorum guard kept up).
        let done = |a: Action| {
            self.steps_of(node_id).iter().any(|s| {
                s.action == a
                    && (st.step(s.index).status == StepStatus::Done
                        || (s.index == failed.index && !precondition))
            })
        };
        let mut detail = vec![];
        let touched_engine = done(Action::StopEngine);
        if touched_engine {
            let installed = done(Action::Install);
            // Stop whatever runs (or fails to run) now; ignore "not running".
            if let Ok(cmd) = self.script_cmd(node_id, Script::Stop).await {
                let _ = self.ops.run(node_id, &cmd).await;
            }
            if installed {
                let cmd = self.script_cmd(node_id, Script::Restore).await?;
                let out = self.ops.run(node_id, &cmd).await?;
                anyhow::ensure!(
                    out.success(),
                    "restoring the backup failed ({}): {}",
                    out.status,
                    tail(&format!("{}{}", out.stdout, out.stderr), 8)
                );
                detail.push(format!("restored {}", package_lines(&out.stdout)));
            }
            let cmd = self.script_cmd(node_id, Script::Start).await?;
            let out = self.ops.run(node_id, &cmd).await?;
            anyhow::ensure!(
                out.success(),
                "starting the old engine failed: {}",
                tail(&format!("{}{}", out.stdout, out.stderr), 8)
            );
            let old = engine_version_of(&n.current).context("unreadable old engine version")?;
            let fake = Step {
                index: failed.index,
                node: failed.node.clone(),
                node_id: failed.node_id.clone(),
                role: failed.role,
                action: Action::Verify,
                phase: failed.phase,
                batch: failed.batch,
                availability: None,
            };
            self.verify(&fake, node_id, &old)
                .await
                .map_err(|e| anyhow!("the old engine does not verify: {}", e.message()))?;
            detail.push(format!("engine {} verified", n.current));
        }
        if done(Action::Drain) {
            let via = self.via(Some(node_id)).await?;
            self.ops
                .update_node(
                    &via,
                    node_id,
                    &NodeUpdate {
                        availability: Some(n.availability),
                        add_labels: vec![],
                        remove_labels: vec![LABEL_RUN.into(), LABEL_AVAILABILITY.into()],
                    },
                )
                .await?;
            detail.push(format!(
                "availability {} restored",
                availability_name(n.availability)
            ));
        }
        Ok(detail.join("; "))
    }

    async fn renew_lease(&self) -> anyhow::Result<()> {
        let mut last = self.lease_renewed.lock().await;
        if last.elapsed() < Duration::from_secs(60) {
            return Ok(());
        }
        let st = self.state.lock().await.clone();
        let via = self.via(None).await?;
        self.ops
            .renew_lease(&via, &self.lease(&st.run_id, &st.owner, &st.started_at))
            .await?;
        *last = Instant::now();
        Ok(())
    }

    /// A manager to ask, never `not` (the node being worked on): the first
    /// manager, in plan order from the last, whose engine answers as a manager.
    async fn via(&self, not: Option<&str>) -> anyhow::Result<String> {
        let mut errors = vec![];
        let candidates = self
            .managers
            .iter()
            .rev()
            .filter(|n| Some(n.id.as_str()) != not);
        for m in candidates {
            match self.ops.engine_status(&m.id).await {
                Ok(st) if st.control_available => return Ok(m.id.clone()),
                Ok(st) => errors.push(format!("{}: swarm state {}", m.name, st.swarm_state)),
                Err(e) => errors.push(format!("{}: {e:#}", m.name)),
            }
        }
        // A single-manager swarm has no other manager to ask: its own engine
        // answers whenever it is up (its control plane is down meanwhile).
        if let Some(me) = not
            && self.managers.len() == 1
        {
            match self.ops.engine_status(me).await {
                Ok(st) if st.control_available => return Ok(me.to_string()),
                Ok(st) => errors.push(format!("the only manager: swarm state {}", st.swarm_state)),
                Err(e) => errors.push(format!("the only manager: {e:#}")),
            }
        }
        Err(anyhow!(
            "no other manager answers: {}",
            if errors.is_empty() {
                "there is none".to_string()
            } else {
                errors.join("; ")
            }
        ))
    }

    async fn via_err(&self, not: Option<&str>) -> Result<String, StepError> {
        self.via(not)
            .await
            .map_err(|e| StepError::Precondition(format!("{e:#}")))
    }
}

/// Exit 75, naming who holds the lease and, when it is stale, how to break it.
pub fn lease_held_error(l: &Lease) -> anyhow::Error {
    let stale = super::live::expired(&l.expires_at);
    Error::Locked(format!(
        "the swarm is being upgraded by run {} of {} (started {}, lease {} {}){}",
        l.run_id,
        l.owner,
        l.started_at,
        if stale { "expired" } else { "expires" },
        l.expires_at,
        if stale {
            "; that run is gone: pass --break-lock to take over"
        } else {
            "; wait for it to finish, or for its lease to expire if it died"
        }
    ))
    .into()
}

/// Pure: may this manager go down now? All managers reachable, exactly one
/// leader, and the others keep quorum without it. A single-manager swarm may
/// (its control plane is down during the restart; tasks keep running).
pub fn quorum_guard(nodes: &[NodeFacts], node_id: &str) -> Result<(), String> {
    let managers: Vec<&NodeFacts> = nodes.iter().filter(|n| n.role == Role::Manager).collect();
    let n = managers.len();
    if n <= 1 {
        return Ok(());
    }
    // The node about to go down may be down already (a resumed stop): only
    // the others have to be reachable, and enough of them for quorum.
    let unreachable: Vec<&str> = managers
        .iter()
        .filter(|m| m.id != node_id && !m.is_reachable_manager())
        .map(|m| m.hostname.as_str())
        .collect();
    let leaders = managers.iter().filter(|m| m.is_leader()).count();
    let quorum = n / 2 + 1;
    let left = managers
        .iter()
        .filter(|m| m.id != node_id && m.is_reachable_manager())
        .count();
    if leaders != 1 {
        return Err(format!(
            "the swarm has {leaders} leaders instead of one: not taking a manager down"
        ));
    }
    if !unreachable.is_empty() {
        return Err(format!(
            "manager(s) {} unreachable: not taking another manager down (quorum {quorum} of {n})",
            unreachable.join(", ")
        ));
    }
    if left < quorum {
        return Err(format!(
            "taking this manager down leaves {left} of {n} managers, below quorum {quorum}"
        ));
    }
    Ok(())
}

/// Pure: the outside view of a restarted node (V3, V4).
pub fn verified_from_outside(
    me: &NodeFacts,
    nodes: &[NodeFacts],
    target: &crate::version::EngineVersion,
) -> Result<(), String> {
    if me.state != crate::facts::model::NodeState::Ready {
        return Err(format!("the swarm sees {} as {:?}", me.hostname, me.state));
    }
    if engine_version_of(&me.engine_version).as_ref() != Some(target) {
        return Err(format!(
            "the swarm still records engine {} for {}",
            me.engine_version, me.hostname
        ));
    }
    if me.role == Role::Manager {
        if !me.is_reachable_manager() {
            return Err(format!("{} is not reachable as a manager yet", me.hostname));
        }
        let managers: Vec<&NodeFacts> = nodes.iter().filter(|n| n.role == Role::Manager).collect();
        if let Some(m) = managers.iter().find(|m| !m.is_reachable_manager()) {
            return Err(format!("manager {} is not reachable", m.hostname));
        }
        let leaders = managers.iter().filter(|m| m.is_leader()).count();
        if leaders != 1 {
            return Err(format!("{leaders} leaders"));
        }
    }
    Ok(())
}

pub fn availability_name(a: Availability) -> &'static str {
    match a {
        Availability::Active => "active",
        Availability::Pause => "pause",
        Availability::Drain => "drain",
    }
}

/// The backup directory of a run on a host.
pub fn backup_dir(run_id: &str) -> String {
    format!("{HOST_STATE_DIR}/backups/{run_id}")
}

pub fn script_env(n: &PlanNode, run_id: &str) -> ScriptEnv {
    ScriptEnv {
        packages: n
            .packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.to))
            .collect(),
        old_packages: n
            .packages
            .iter()
            .filter_map(|p| p.from.as_ref().map(|f| format!("{}={f}", p.name)))
            .collect(),
        new_packages: n
            .packages
            .iter()
            .filter(|p| p.from.is_none())
            .map(|p| p.name.clone())
            .collect(),
        backup_dir: backup_dir(run_id),
        role: Some(n.role),
        bundle: n.bundle.clone(),
    }
}

fn manual_instructions(n: &PlanNode, run_id: &str) -> String {
    format!(
        "manual recovery of {name} ({host}):\n  1. ssh {host}; the backup is in {dir} (packages/, swarm.tar.gz on managers)\n  2. reinstall the old packages: apt-get install --allow-downgrades {dir}/packages/*.deb (or restore binaries.tgz), then apt-mark hold them\n  3. start the engine (service docker start / systemctl start docker.socket docker.service) and check `docker info`\n  4. on a manager: docker node update --availability {avail} {name}",
        name = n.name,
        host = n.host,
        dir = backup_dir(run_id),
        avail = availability_name(n.availability),
    )
}

/// The `name=version` lines a playbook prints last, without apt's chatter.
fn package_lines(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| l.contains('=') && !l.contains(' '))
        .collect::<Vec<_>>()
        .join(" ")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::model::{ManagerFacts, NodeState, Reachability};

    fn manager(id: &str, leader: bool, reach: Reachability) -> NodeFacts {
        NodeFacts {
            id: id.into(),
            hostname: id.into(),
            addr: String::new(),
            role: Role::Manager,
            availability: Availability::Active,
            state: NodeState::Ready,
            message: String::new(),
            manager: Some(ManagerFacts {
                leader,
                reachability: reach,
                addr: String::new(),
            }),
            engine_version: "26.1.5".into(),
            labels: Default::default(),
            engine_labels: Default::default(),
            version_index: 1,
            nano_cpus: 0,
            memory_bytes: 0,
            platform_os: String::new(),
            platform_arch: String::new(),
        }
    }

    #[test]
    fn quorum_guard_lets_one_of_three_go_only_when_all_are_reachable() {
        use Reachability::*;
        let healthy = [
            manager("a", true, Reachable),
            manager("b", false, Reachable),
            manager("c", false, Reachable),
        ];
        assert!(quorum_guard(&healthy, "b").is_ok());
        let one_down = [
            manager("a", true, Reachable),
            manager("b", false, Reachable),
            manager("c", false, Unreachable),
        ];
        let err = quorum_guard(&one_down, "b").unwrap_err();
        assert!(err.contains("c unreachable"), "{err}");
        let two = [
            manager("a", true, Reachable),
            manager("b", false, Reachable),
        ];
        assert!(
            quorum_guard(&two, "b")
                .unwrap_err()
                .contains("below quorum 2")
        );
        let no_leader = [
            manager("a", false, Reachable),
            manager("b", false, Reachable),
            manager("c", false, Reachable),
        ];
        assert!(
            quorum_guard(&no_leader, "b")
                .unwrap_err()
                .contains("0 leaders")
        );
        assert!(
            quorum_guard(&[manager("a", true, Reachable)], "a").is_ok(),
            "a single manager may restart"
        );
        // Resuming a stop: the node itself is already down; the others keep quorum.
        let resumed = [
            manager("a", true, Reachable),
            manager("b", false, Unreachable),
            manager("c", false, Reachable),
        ];
        assert!(quorum_guard(&resumed, "b").is_ok());
        let five_one_down = [
            manager("a", true, Reachable),
            manager("b", false, Reachable),
            manager("c", false, Reachable),
            manager("d", false, Reachable),
            manager("e", false, Unreachable),
        ];
        assert!(
            quorum_guard(&five_one_down, "b").is_err(),
            "never a second manager down at once"
        );
    }

    #[test]
    fn outside_view_needs_ready_target_version_and_quorum() {
        use Reachability::*;
        let target: crate::version::EngineVersion = "26.1.5".parse().unwrap();
        let nodes = [
            manager("a", true, Reachable),
            manager("b", false, Reachable),
            manager("c", false, Reachable),
        ];
        assert!(verified_from_outside(&nodes[1], &nodes, &target).is_ok());
        let mut old = nodes.clone();
        old[1].engine_version = "20.10.24+dfsg1".into();
        assert!(
            verified_from_outside(&old[1], &old, &target)
                .unwrap_err()
                .contains("still records engine")
        );
        let mut unreachable = nodes.clone();
        unreachable[2].manager.as_mut().unwrap().reachability = Unreachable;
        assert!(
            verified_from_outside(&unreachable[1], &unreachable, &target)
                .unwrap_err()
                .contains("manager c")
        );
        let mut down = nodes.clone();
        down[1].state = NodeState::Down;
        assert!(verified_from_outside(&down[1], &down, &target).is_err());
    }
}
