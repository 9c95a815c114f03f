//! The run loop: the plan's batches in order, the steps of each node in
//! order (the nodes of a worker batch concurrently), a checkpoint after
//! every step, the lease, stop requests, and the rollback of a node whose
//! step failed. What each step does is its action's ([`super::actions`]).
//!
//! Every step is idempotent, so a resumed run simply runs the first step
//! that is not recorded as done, the interrupted one included: it
//! re-verifies instead of assuming.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use anyhow::anyhow;
use tokio::sync::Mutex;

use super::actions;
use super::context::{Cx, StepCx, StepError};
use super::control::Go;
use super::events::{Event, Record};
use super::lease::{Lease, LeaseOutcome};
use super::ops::Ops;
use super::rundir::{Journal, RunDir};
use super::state::{RunState, RunStatus, StepStatus, now};
use super::undo;
use crate::facts::model::Facts;
use crate::plan::{Action, Plan, PlanNode, Step};
use crate::playbook::{Playbooks, Script};
use crate::transport::CmdOutput;

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
    /// Hostnames of nodes left out of this run (`--skip-node`): their steps
    /// are not run, and they keep their engine and availability.
    pub skip_nodes: Vec<String>,
    /// The swarm unlock key, for autolocked managers. Never logged.
    pub unlock_key: Option<String>,
    /// Maintenance windows (`--window`): a node is started only in one
    /// (none: any time).
    pub windows: Vec<crate::window::Window>,
    /// How often a paused run, or one waiting for its window, looks again.
    pub control_poll: Duration,
    /// `--reboot`: most time a host may take to come back from its reboot.
    pub reboot_timeout: Duration,
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
            skip_nodes: vec![],
            unlock_key: None,
            windows: vec![],
            control_poll: Duration::from_secs(5),
            reboot_timeout: Duration::from_secs(600),
        }
    }
}

pub struct Runner<'a, O: Ops> {
    pub(crate) ops: &'a O,
    pub(crate) cx: Cx<'a>,
    pub run: RunDir,
    pub(crate) state: Mutex<RunState>,
    journal: Mutex<Journal>,
    emit: &'a (dyn Fn(&Event) + Sync),
    /// Set by Ctrl-C, SIGTERM or SIGHUP: stop at the next safe point.
    pub stop: Arc<AtomicBool>,
    /// A node of the current batch failed: its siblings take no further
    /// node down.
    batch_failed: AtomicBool,
    /// Serializes the drains of a parallel batch (see `actions::drain`).
    pub(crate) drain_gate: Mutex<()>,
    /// When the lease was last renewed (the executor's clock).
    pub(super) lease_renewed: Mutex<Instant>,
    /// The lease as last read, watched since (see [`super::heartbeat`]).
    pub(super) lease_watch: Mutex<Option<super::heartbeat::LeaseWatch<'a>>>,
    /// Why the lease is no longer this run's, once it is not.
    pub(super) lease_lost: std::sync::Mutex<Option<String>>,
    /// The manager that last answered as one (see [`Runner::via_last`]).
    via_seen: std::sync::Mutex<Option<String>>,
    /// How many times a manager asked did not answer.
    pub(super) vias_forgotten: std::sync::atomic::AtomicU64,
    /// The lease was taken for this run just before it started (a new
    /// run's launch): not taken again.
    lease_taken: AtomicBool,
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
        Ok(Runner {
            ops,
            cx: Cx::new(plan, facts, playbooks, opts, &state.run_id),
            run,
            state: Mutex::new(state),
            journal: Mutex::new(journal),
            emit,
            stop,
            batch_failed: AtomicBool::new(false),
            drain_gate: Mutex::new(()),
            lease_renewed: Mutex::new(Instant::now()),
            lease_watch: Mutex::new(None),
            lease_lost: std::sync::Mutex::new(None),
            via_seen: std::sync::Mutex::new(None),
            vias_forgotten: std::sync::atomic::AtomicU64::new(0),
            lease_taken: AtomicBool::new(false),
        })
    }

    /// The run's lease is this run's already: its launch took it a moment
    /// ago, before recording the run (a resumed run takes it itself).
    pub fn lease_taken(&self) {
        self.lease_taken.store(true, Ordering::SeqCst);
    }

    pub async fn state(&self) -> RunState {
        self.state.lock().await.clone()
    }

    pub(super) async fn record(&self, event: Event) -> anyhow::Result<()> {
        let rec = Record {
            ts: now(),
            run_id: &self.cx.run_id,
            event: &event,
        };
        self.journal.lock().await.append(&rec)?;
        (self.emit)(&event);
        Ok(())
    }

    pub(super) async fn save(&self, f: impl FnOnce(&mut RunState)) -> anyhow::Result<()> {
        let mut st = self.state.lock().await;
        f(&mut st);
        st.updated_at = now();
        self.run.save_state(&st)
    }

    /// Journals output of a step worth keeping (script output, waits).
    pub(crate) async fn output(&self, s: &Step, text: impl Into<String>) {
        let _ = self
            .record(Event::StepOutput {
                index: s.index,
                node: s.node.clone(),
                text: text.into(),
            })
            .await;
    }

    pub(super) fn lease(&self, st: &RunState) -> Lease {
        Lease::new(
            &st.run_id,
            &st.owner,
            &st.started_at,
            self.cx.opts.lease_ttl,
        )
    }

    /// Runs the plan from its first unfinished step to the end, or to a
    /// failure (after rolling the failed node back), or to a safe stop.
    pub async fn execute(&self) -> anyhow::Result<RunStatus> {
        let started = Instant::now();
        // A name that is not a node of the plan is a typo, not a wish.
        if let Some(bad) = self
            .cx
            .opts
            .skip_nodes
            .iter()
            .find(|n| !self.cx.plan.nodes.iter().any(|p| &p.name == *n))
        {
            return Err(crate::error::usage(format!(
                "--skip-node {bad}: no node of this run's plan is named so (nodes: {})",
                self.cx
                    .plan
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let (lease, steps, done) = {
            let st = self.state.lock().await;
            (self.lease(&st), st.steps.len(), st.count(StepStatus::Done))
        };
        if !self.lease_taken.load(Ordering::SeqCst) {
            let via = self.via(None).await?;
            match self
                .ops
                .acquire_lease(&via, &lease, self.cx.opts.break_lock)
                .await?
            {
                LeaseOutcome::Acquired => {}
                LeaseOutcome::Held(l) => return Err(l.held_error()),
            }
        }
        self.save(|st| st.status = RunStatus::Running).await?;
        self.record(Event::RunStarted {
            run_id: self.cx.run_id.clone(),
            steps,
            done,
        })
        .await?;

        // The heartbeat renews the lease while a batch runs (a script may
        // take 15 minutes, a drain 5): it never ends by itself, and stops
        // when the batches do.
        let result = tokio::select! {
            biased;
            r = self.execute_batches() => r,
            never = self.heartbeat() => match never {},
        };
        let status = match result {
            Ok(true) => RunStatus::Done,
            Ok(false) => RunStatus::Interrupted,
            Err(outcome) => outcome,
        };
        self.save(|st| st.status = status).await?;
        // The lease guards a running process; the run's record stays in the
        // state file (and a failed node's labels in the swarm) for the next one.
        // Released by run ID: a lease lost to another run stays its own.
        let _ = self
            .ask(None, async |via| {
                self.ops.release_lease(via, &self.cx.run_id).await
            })
            .await;
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
        for s in &self.cx.plan.steps {
            batches.entry(s.batch).or_default().push(s);
        }
        for steps in batches.values() {
            // Every batch boundary is a safe point: no engine is down.
            // I5: a run whose lease is gone takes no further node down.
            match self.safe_point(steps).await? {
                Go::On => {}
                Go::Stop => return Ok(false),
            }
            self.execute_batch(steps).await?;
        }
        Ok(true)
    }

    async fn execute_batch(&self, steps: &[&'a Step]) -> Result<(), RunStatus> {
        // Per node, its steps in order; cluster-wide steps after the nodes.
        let mut per_node: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
        let mut cluster_steps = vec![];
        for s in steps {
            match &s.node_id {
                Some(id) => per_node.entry(id.as_str()).or_default().push(s),
                None => cluster_steps.push(*s),
            }
        }
        // A batch whose node steps run now (again, on a resumed run) waits
        // again for its services, even if the wait was done before: the
        // nodes changed since (a node rolled back, then upgraded again).
        let nodes_run = {
            let st = self.state.lock().await;
            per_node.values().flatten().any(|s| !st.done(s.index))
        };
        let results = futures_util::future::join_all(
            per_node
                .iter()
                .map(|(id, steps)| self.execute_node(id, steps)),
        )
        .await;
        let worst = results
            .into_iter()
            .filter_map(Result::err)
            .max_by_key(|s| severity(*s));
        if let Some(status) = worst {
            return Err(status);
        }
        for s in cluster_steps {
            if !nodes_run && self.state.lock().await.done(s.index) {
                continue;
            }
            if let Err(e) = self.run_step(s).await {
                self.fail_step(s, &e).await;
                return Err(RunStatus::Failed);
            }
        }
        Ok(())
    }

    async fn execute_node(&self, node_id: &str, steps: &[&'a Step]) -> Result<(), RunStatus> {
        if self
            .cx
            .opts
            .skip_nodes
            .contains(&self.cx.node(node_id).name)
        {
            return self.skip_node(node_id, steps).await;
        }
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
            if let Err(e) = self.run_step(s).await {
                self.batch_failed.store(true, Ordering::SeqCst);
                self.fail_step(s, &e).await;
                // Not delivered, or undoing needs a manager the guard keeps
                // up: nothing is undone; the swarm's labels say what to
                // restore, and `resume` runs this step again. A stage step
                // runs before its node is drained: nothing to undo either.
                if matches!(e, StepError::Halt(_)) || s.action == Action::Stage {
                    return Err(RunStatus::Failed);
                }
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

    pub(super) async fn fail_step(&self, s: &Step, e: &StepError) {
        let msg = match e {
            StepError::Precondition(m) => format!("precondition failed: {m}"),
            StepError::Failed(m) => m.clone(),
            StepError::Halt(m) => format!("stopped without undoing anything: {m}"),
        };
        let _ = self
            .save(|st| {
                let step = st.step_mut(s.index);
                step.status = StepStatus::Failed;
                step.error = Some(msg.clone());
                st.failure = Some(format!(
                    "step {} ({} {}) failed: {msg}",
                    s.index,
                    s.label(),
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

    async fn run_step(&self, s: &'a Step) -> Result<(), StepError> {
        let t = Instant::now();
        self.save(|st| {
            let step = st.step_mut(s.index);
            step.status = StepStatus::Running;
            step.error = None;
        })
        .await
        .map_err(|e| StepError::Precondition(format!("cannot write the run state: {e:#}")))?;
        let _ = self.record(Event::step_started(s)).await;
        let polled = actions::run(&StepCx { run: self, step: s }).await?;
        self.save(|st| {
            st.step_mut(s.index).status = StepStatus::Done;
        })
        .await
        .map_err(|e| StepError::Failed(format!("cannot write the run state: {e:#}")))?;
        let ms = |d: Duration| d.as_millis() as u64;
        let _ = self
            .record(Event::StepFinished {
                index: s.index,
                node: s.node.clone(),
                action: s.action,
                elapsed_ms: ms(t.elapsed()),
                detect_ms: polled.and_then(|p| p.detection).map(ms),
                last_poll_ms: polled.map(|p| ms(p.last_poll)),
            })
            .await;
        Ok(())
    }

    /// Runs a playbook script on a node; a non-zero exit fails the step with
    /// the script's last lines (all of them journaled as the step's output).
    pub(crate) async fn script(
        &self,
        s: &Step,
        n: &PlanNode,
        which: Script,
    ) -> Result<CmdOutput, StepError> {
        let cmd = self
            .cx
            .script_cmd(n, which)
            .map_err(|e| StepError::Precondition(format!("{e:#}")))?;
        let out = self
            .ops
            .run(&n.id, &cmd)
            .await
            .map_err(|e| StepError::not_delivered(&n.host, e))?;
        if !out.success() {
            let text = format!("{}{}", out.stdout, out.stderr);
            self.output(s, super::tail(&text, 20)).await;
            return Err(StepError::Failed(format!(
                "{} {which:?} script exited with {}: {}",
                n.method
                    .unwrap_or(crate::version::resolve::Method::DebianApt)
                    .name(),
                out.status,
                super::tail(&text, 6)
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
        let n = self.cx.node(node_id);
        let name = n.name.clone();
        if let Some(reverted) = &self.cx.plan.reverts_run {
            // A failed revert is not reverted again. When nothing was done
            // (a precondition) or the node's engine still answers (say it
            // does not verify while another manager is unreachable), the
            // run stops resumable; an engine that does not run is for a
            // person.
            let engine_up = self.ops.engine_status(node_id).await.is_ok();
            if precondition || engine_up {
                let _ = self
                    .save(|st| {
                        st.failure = Some(format!(
                            "{}\nreverting {name} stopped with its engine running; once the cause is fixed, `swarm-upgrade resume` continues",
                            st.failure.clone().unwrap_or_default(),
                        ));
                    })
                    .await;
                return RunStatus::Failed;
            }
            let _ = self
                .save(|st| {
                    st.failure = Some(format!(
                        "{}\nreverting {name} failed: {reason}\n{}",
                        st.failure.clone().unwrap_or_default(),
                        manual_instructions(n, reverted)
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
        let st = self.state.lock().await.clone();
        let result = undo::undo(self, n, failed, precondition, &st).await;
        let (ok, detail) = match &result {
            Ok(d) => (true, d.clone()),
            Err(e) => (false, e.message().to_string()),
        };
        let halted = matches!(result, Err(StepError::Halt(_)));
        let _ = self
            .record(Event::RollbackFinished {
                node: name.clone(),
                ok,
                detail: detail.clone(),
            })
            .await;
        let _ = self
            .save(|st| {
                if halted {
                    st.failure = Some(format!(
                        "{}\nbringing {name} back stopped without undoing: {detail}\nonce the cause is fixed, `swarm-upgrade resume` continues from the failed step",
                        st.failure.clone().unwrap_or_default(),
                    ));
                } else if ok {
                    st.rolled_back.push(name.clone());
                    for step in self.cx.steps_of(node_id) {
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
        if halted {
            RunStatus::Failed
        } else if ok {
            RunStatus::RolledBack
        } else {
            RunStatus::RollbackFailed
        }
    }

    /// A manager to ask, never `not` (the node being worked on): the first
    /// manager, in plan order from the last, whose engine answers as a manager.
    pub(crate) async fn via(&self, not: Option<&str>) -> anyhow::Result<String> {
        let mut errors = vec![];
        let managers = self.cx.managers();
        let candidates = managers.iter().rev().filter(|n| Some(n.id.as_str()) != not);
        for m in candidates {
            match self.ops.engine_status(&m.id).await {
                Ok(st) if st.control_available => {
                    self.saw_via(&m.id);
                    return Ok(m.id.clone());
                }
                Ok(st) => errors.push(format!("{}: swarm state {}", m.name, st.swarm_state)),
                Err(e) => errors.push(format!("{}: {e:#}", m.name)),
            }
        }
        // A single-manager swarm has no other manager to ask: its own engine
        // answers whenever it is up (its control plane is down meanwhile).
        if let Some(me) = not
            && managers.len() == 1
        {
            match self.ops.engine_status(me).await {
                Ok(st) if st.control_available => {
                    self.saw_via(me);
                    return Ok(me.to_string());
                }
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
}

impl<O: Ops> Runner<'_, O> {
    /// The manager that answered last, not probed again; a manager probed
    /// now when there is none or it is `not`. Probing before every question
    /// (`GET /info`) doubled the requests of a run, and told nothing the
    /// question does not: an engine that is down, no longer a manager or
    /// cut off from the leader fails the question itself. So every caller
    /// calls [`Runner::forget_via`] when its question goes unanswered and
    /// asks again ([`Runner::ask`] does both), and a wait's next poll probes.
    pub(crate) async fn via_last(&self, not: Option<&str>) -> anyhow::Result<String> {
        match self.known_via(not) {
            Some(id) => Ok(id),
            None => self.via(not).await,
        }
    }

    /// The manager that answered last, unless it is `not`.
    fn known_via(&self, not: Option<&str>) -> Option<String> {
        let seen = self.via_seen.lock().ok().and_then(|v| v.clone());
        seen.filter(|id| Some(id.as_str()) != not)
    }

    /// Asks a manager (never `not`): the one that answered last, and when it
    /// does not answer, once more a manager probed now. For questions that
    /// may be asked twice: reads, and updates that set what they set. `Err`
    /// when no manager answers as one; else the question's own answer.
    pub(crate) async fn ask<T>(
        &self,
        not: Option<&str>,
        question: impl AsyncFn(&str) -> anyhow::Result<T>,
    ) -> anyhow::Result<anyhow::Result<T>> {
        if let Some(via) = self.known_via(not) {
            match question(&via).await {
                Ok(answer) => return Ok(Ok(answer)),
                Err(_) => self.forget_via(),
            }
        }
        let via = self.via(not).await?;
        Ok(question(&via).await)
    }

    /// The manager asked last did not answer: the next question probes.
    /// The lease's watch is not trusted any more either (see
    /// [`super::heartbeat`]): a manager cut off from the swarm keeps its
    /// event stream open and quiet.
    pub(crate) fn forget_via(&self) {
        if let Ok(mut v) = self.via_seen.lock() {
            *v = None;
        }
        self.vias_forgotten.fetch_add(1, Ordering::SeqCst);
    }

    fn saw_via(&self, id: &str) {
        if let Ok(mut v) = self.via_seen.lock() {
            *v = Some(id.to_string());
        }
    }
}

/// The worst of a batch's outcomes wins: a failed rollback needs a person
/// before anything else.
fn severity(s: RunStatus) -> u8 {
    match s {
        RunStatus::RollbackFailed => 3,
        RunStatus::RolledBack => 2,
        _ => 1,
    }
}

fn manual_instructions(n: &PlanNode, run_id: &str) -> String {
    format!(
        "manual recovery of {name} ({host}):\n  1. ssh {host}; the backup is in {dir} (packages/, swarm.tar.gz on managers)\n  2. reinstall the old packages: apt-get install --allow-downgrades {dir}/packages/*.deb (or restore binaries.tgz), then apt-mark hold them\n  3. start the engine (service docker start / systemctl start docker.socket docker.service) and check `docker info`\n  4. on a manager: docker node update --availability {avail} {name}",
        name = n.name,
        host = n.host,
        dir = crate::playbook::backup_dir(run_id),
        avail = n.availability.name(),
    )
}
