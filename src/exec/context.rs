//! What a step works with: the run's fixed inputs ([`Cx`]: plan, facts,
//! playbooks, options, run id), from which actions describe themselves, and
//! the live run around one step ([`StepCx`]), with which they run.

use std::collections::HashMap;

use super::operation::On;
use super::ops::{NodeUpdate, Ops};
use super::runner::{RunOptions, Runner};
use crate::facts::model::{Facts, InitSystem, Role};
use crate::plan::{Plan, PlanNode, Step};
use crate::playbook::{Playbooks, Script, ScriptEnv, backup_dir};
use crate::transport::{Cmd, CmdOutput};
use crate::version::resolve::Method;

/// Why a step did not complete.
#[derive(Debug)]
pub(crate) enum StepError {
    /// The step's precondition does not hold: nothing was changed by it.
    Precondition(String),
    /// The step failed; the node must be brought back.
    Failed(String),
    /// The run must stop here and undo nothing: a command was not delivered
    /// (a transport error: the host may never have seen it), or bringing the
    /// node back would take a manager down that the quorum guard keeps up.
    /// The node stays as it is, recorded in the swarm's labels; the step
    /// runs again on `resume` (every step is idempotent).
    Halt(String),
}

impl StepError {
    pub(crate) fn message(&self) -> &str {
        match self {
            StepError::Precondition(m) | StepError::Failed(m) | StepError::Halt(m) => m,
        }
    }

    pub(crate) fn failed(e: anyhow::Error) -> StepError {
        StepError::Failed(format!("{e:#}"))
    }

    /// A command that did not reach its host (I3: nothing happened).
    pub(crate) fn not_delivered(host: &str, e: anyhow::Error) -> StepError {
        StepError::Halt(format!("not delivered to {host}: {e:#}"))
    }
}

/// The run's fixed inputs, with lookups by node ID: a step must not cost a
/// scan of a 5,000-node plan.
pub(crate) struct Cx<'a> {
    pub plan: &'a Plan,
    pub facts: &'a Facts,
    pub playbooks: &'a Playbooks,
    pub opts: &'a RunOptions,
    /// The run executing the plan (its labels, and its backups on the hosts).
    pub run_id: String,
    nodes_by_id: HashMap<&'a str, &'a PlanNode>,
    steps_of: HashMap<&'a str, Vec<&'a Step>>,
    batches: HashMap<usize, Vec<&'a str>>,
    /// The managers, in plan order: the candidates to ask.
    managers: Vec<&'a PlanNode>,
}

impl<'a> Cx<'a> {
    pub fn new(
        plan: &'a Plan,
        facts: &'a Facts,
        playbooks: &'a Playbooks,
        opts: &'a RunOptions,
        run_id: &str,
    ) -> Cx<'a> {
        let mut steps_of: HashMap<&str, Vec<&Step>> = HashMap::new();
        let mut batches: HashMap<usize, Vec<&str>> = HashMap::new();
        for s in &plan.steps {
            if let Some(id) = &s.node_id {
                steps_of.entry(id.as_str()).or_default().push(s);
                let batch = batches.entry(s.batch).or_default();
                if !batch.contains(&id.as_str()) {
                    batch.push(id.as_str());
                }
            }
        }
        Cx {
            plan,
            facts,
            playbooks,
            opts,
            run_id: run_id.to_string(),
            nodes_by_id: plan.nodes.iter().map(|n| (n.id.as_str(), n)).collect(),
            steps_of,
            batches,
            managers: plan
                .nodes
                .iter()
                .filter(|n| n.role == Role::Manager)
                .collect(),
        }
    }

    pub fn node(&self, id: &str) -> &'a PlanNode {
        self.nodes_by_id.get(id).expect("steps name planned nodes")
    }

    /// The node a step acts on (`None` for cluster-wide steps).
    pub fn node_of(&self, step: &Step) -> Option<&'a PlanNode> {
        step.node_id.as_deref().map(|id| self.node(id))
    }

    /// The node's steps, in plan order.
    pub fn steps_of(&self, id: &str) -> &[&'a Step] {
        self.steps_of.get(id).map_or(&[], Vec::as_slice)
    }

    /// The nodes of a step's batch (several only in a parallel worker batch).
    pub fn batch_nodes(&self, step: &Step) -> &[&'a str] {
        self.batches.get(&step.batch).map_or(&[], Vec::as_slice)
    }

    pub fn managers(&self) -> &[&'a PlanNode] {
        &self.managers
    }

    /// Who answers the questions asked about `node`: another manager, or the
    /// node itself when it is the swarm's only manager.
    pub fn asked(&self, node: Option<&PlanNode>) -> On {
        match (node, self.managers.as_slice()) {
            (Some(n), [only]) if only.id == n.id => On::Node,
            _ => On::Manager,
        }
    }

    /// The run whose backups on the hosts the scripts use: this one, or for
    /// a rollback plan the run it reverts.
    pub fn backup_run(&self) -> &str {
        self.plan.reverts_run.as_deref().unwrap_or(&self.run_id)
    }

    /// The command of one playbook script for a node.
    pub fn script_cmd(&self, n: &PlanNode, which: Script) -> anyhow::Result<Cmd> {
        self.script_cmd_after(n, which, "")
    }

    /// [`Cx::script_cmd`] with `before` run first in the same command.
    pub fn script_cmd_after(
        &self,
        n: &PlanNode,
        which: Script,
        before: &str,
    ) -> anyhow::Result<Cmd> {
        let init = self
            .facts
            .hosts
            .get(&n.id)
            .map_or(InitSystem::Unknown, |h| h.init);
        self.playbooks
            .get(n.method.unwrap_or(Method::DebianApt))
            .command_after(which, init, &script_env(n, self.backup_run()), before)
            .map(|c| {
                let c = c.timeout(self.opts.script_timeout);
                // Scripts that never start, stop or restart the engine.
                match which {
                    Script::Stage | Script::Backup | Script::Logs => c.keeps_engine(),
                    _ => c,
                }
            })
    }
}

pub(crate) fn script_env(n: &PlanNode, run_id: &str) -> ScriptEnv {
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

/// When a question to a manager is preceded by asking a manager whether it
/// is one (see [`crate::exec::runner::Runner::via_last`]).
pub(crate) const VIA_STALE: &str =
    "no manager has answered yet, or the one asked last did not answer";

/// One step being run: the runner (cluster, state, journal) and the step.
pub(crate) struct StepCx<'r, 'a, O: Ops> {
    pub run: &'r Runner<'a, O>,
    pub step: &'a Step,
}

impl<'a, O: Ops> StepCx<'_, 'a, O> {
    pub fn cx(&self) -> &Cx<'a> {
        &self.run.cx
    }

    pub fn ops(&self) -> &'a O {
        self.run.ops
    }

    /// The node acted on (node steps only).
    pub fn node(&self) -> &'a PlanNode {
        self.cx().node_of(self.step).expect("a node step")
    }

    pub fn id(&self) -> &'a str {
        self.step.node_id.as_deref().expect("a node step")
    }

    /// Journals output worth keeping (script output, what a wait waits for).
    pub async fn output(&self, text: impl Into<String>) {
        self.run.output(self.step, text).await;
    }

    /// A manager to ask about this step's node (never the node itself,
    /// unless it is the only manager).
    pub async fn via(&self) -> Result<String, StepError> {
        self.run
            .via(self.step.node_id.as_deref())
            .await
            .map_err(|e| StepError::Precondition(format!("{e:#}")))
    }

    /// [`StepCx::via`] for the polls of a wait: the manager that answered
    /// last (see [`crate::exec::runner::Runner::via_last`]).
    pub async fn via_last(&self) -> Result<String, StepError> {
        self.run
            .via_last(self.step.node_id.as_deref())
            .await
            .map_err(|e| StepError::Precondition(format!("{e:#}")))
    }

    /// Asks a manager about this step's node (see
    /// [`crate::exec::runner::Runner::ask`]): `Err` when no manager answers
    /// as one, else the question's own answer.
    pub async fn ask<T>(
        &self,
        question: impl AsyncFn(&str) -> anyhow::Result<T>,
    ) -> Result<anyhow::Result<T>, StepError> {
        self.run
            .ask(self.step.node_id.as_deref(), question)
            .await
            .map_err(|e| StepError::Precondition(format!("{e:#}")))
    }

    /// Updates this step's node through the manager that answered last;
    /// when that fails, once more through a manager probed now. An update
    /// sets what it sets: sent twice, it is the same.
    pub async fn update_node(&self, update: &NodeUpdate) -> Result<(), StepError> {
        self.ask(async |via| self.ops().update_node(via, self.id(), update).await)
            .await?
            .map_err(StepError::failed)
    }

    /// A poll's question went unanswered: the next poll probes the managers.
    pub fn forget_via(&self) {
        self.run.forget_via();
    }

    /// Runs a playbook script on this step's node; a non-zero exit fails
    /// the step with the script's last lines.
    pub async fn script(&self, which: Script) -> Result<CmdOutput, StepError> {
        self.run.script(self.step, self.node(), which).await
    }
}
