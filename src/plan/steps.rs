//! Laying out a plan's steps, shared by the upgrade and the rollback plan:
//! each manager in a batch of its own, the managers reactivated together
//! only once all are back, and the workers in batches, each batch's nodes
//! given their availability back and the services waited for. Once a node
//! runs tasks again (after its batch converged), its services are verified
//! in a batch of their own. The canaries (the first manager, the first
//! worker batch) are soaked after they are verified, and the run pauses
//! after each when asked. A node whose method stages its packages gets a
//! `stage` step in a batch of its own right before the batch that drains
//! it (the workers of a batch staged together), and installs right after
//! its drain when its playbook's install leaves a running engine alone.
//! Pure.

use super::model::{Action, Canary, Phase, PlanNode, Staged, Step};
use crate::facts::model::Availability;
use crate::hooks::{Hook, HookPoint};

#[derive(Default)]
pub(super) struct Steps {
    pub steps: Vec<Step>,
    batch: usize,
    canary: Canary,
    /// A restart takes down nodes that run their target already.
    restart: bool,
    /// The operator's hooks: a `hook` step where any applies to the node.
    pub hooks: Vec<Hook>,
    /// The methods whose playbook has a `stage` script (upgrades only).
    pub staged: Vec<Staged>,
}

impl Steps {
    pub fn new(canary: Canary) -> Steps {
        Steps {
            canary,
            ..Default::default()
        }
    }

    pub fn restarting(canary: Canary) -> Steps {
        Steps {
            canary,
            restart: true,
            ..Default::default()
        }
    }

    /// The managers one at a time, each through `actions`, the first one
    /// (the canary) soaked in its batch; then, in one batch, their
    /// availability restored and the services converged. `workers_follow`:
    /// whether a pause after the canary has anything left to hold back.
    pub fn managers(&mut self, managers: &[&PlanNode], actions: &[Action], workers_follow: bool) {
        for (i, m) in managers.iter().enumerate() {
            self.stage(Phase::Managers, &[m]);
            self.batch += 1;
            self.node(Phase::Managers, m, actions);
            if i == 0 && (!m.at_target() || self.restart) {
                self.soak(Phase::Managers, &[m]);
                if managers.len() > 1 || workers_follow {
                    self.pause(Phase::Managers);
                }
            }
        }
        if managers.is_empty() {
            return;
        }
        self.batch += 1;
        for m in managers {
            self.restore_availability(Phase::Reactivate, m);
        }
        self.push(Phase::Reactivate, None, Action::WaitConverged, None);
        self.verify_services(Phase::Reactivate, managers);
    }

    /// The workers by batches, each node through `actions` and given its
    /// availability back; the services converged after each batch.
    pub fn workers<'n>(
        &mut self,
        batches: impl Iterator<Item = &'n [&'n PlanNode]>,
        actions: &[Action],
    ) {
        let mut batches = batches.peekable();
        let mut first = true;
        while let Some(batch) = batches.next() {
            self.stage(Phase::Workers, batch);
            self.batch += 1;
            for w in batch {
                self.node(Phase::Workers, w, actions);
                self.restore_availability(Phase::Workers, w);
            }
            self.push(Phase::Workers, None, Action::WaitConverged, None);
            self.verify_services(Phase::Workers, batch);
            let upgraded: Vec<&PlanNode> = batch
                .iter()
                .copied()
                .filter(|w| !w.at_target() || self.restart)
                .collect();
            if first && !upgraded.is_empty() {
                first = false;
                // Once the canary batch runs its tasks again: its soak in a
                // batch of its own, after the services were verified.
                if self.canary.soak_secs > 0 {
                    self.batch += 1;
                    self.soak(Phase::Workers, &upgraded);
                }
                if batches.peek().is_some() {
                    self.pause(Phase::Workers);
                }
            }
        }
    }

    /// `--prepull`: a batch of its own, before anything is drained.
    pub fn prepull(&mut self) {
        self.batch += 1;
        self.push(Phase::Managers, None, Action::Prepull, None);
    }

    /// Before the batch that drains `nodes`: a batch of its own staging
    /// those whose method stages (none: no batch). A download that fails
    /// then stops the run before any node of the drain batch is touched;
    /// staging during the previous batch instead would mix that failure
    /// with a node down (a failed batch rolls its nodes back).
    fn stage(&mut self, phase: Phase, nodes: &[&PlanNode]) {
        let staged: Vec<&PlanNode> = nodes
            .iter()
            .copied()
            .filter(|n| self.staging(n).is_some())
            .collect();
        if staged.is_empty() {
            return;
        }
        self.batch += 1;
        for n in staged {
            self.push(phase, Some(n), Action::Stage, None);
        }
    }

    /// How `n` is staged, if it is: an upgrade by a method that stages.
    fn staging(&self, n: &PlanNode) -> Option<Staged> {
        if self.restart || n.at_target() || n.restarted {
            return None;
        }
        let m = n.method?;
        self.staged.iter().copied().find(|s| s.method == m)
    }

    /// The canaries' soak, in the current batch (nothing without a soak time).
    fn soak(&mut self, phase: Phase, nodes: &[&PlanNode]) {
        if self.canary.soak_secs == 0 {
            return;
        }
        for n in nodes {
            self.push(phase, Some(n), Action::Soak, None);
        }
    }

    /// After a canary, when asked: a pause in a batch of its own.
    fn pause(&mut self, phase: Phase) {
        if self.canary.pause {
            self.batch += 1;
            self.push(phase, None, Action::Pause, None);
        }
    }

    /// In a batch after the cluster-wide wait (a batch runs its node steps
    /// before its cluster steps): the workers of a batch together, the
    /// managers one at a time, like the rest of their steps. A node drained
    /// by its operator runs no task to verify.
    fn verify_services(&mut self, phase: Phase, nodes: &[&PlanNode]) {
        let mut first = true;
        for n in nodes
            .iter()
            .filter(|n| n.availability != Availability::Drain)
        {
            if first || phase == Phase::Reactivate {
                self.batch += 1;
                first = false;
            }
            self.push(phase, Some(n), Action::VerifyServices, None);
        }
    }

    /// A node already drained by its operator is not drained again; a node
    /// already at its target (drained by an earlier, unfinished run) only
    /// gets its availability back.
    fn node(&mut self, phase: Phase, n: &PlanNode, actions: &[Action]) {
        if (n.at_target() && !self.restart) || n.restarted {
            return;
        }
        self.hook(phase, n, HookPoint::PreDrain);
        for action in self.ordered(n, actions) {
            if action == Action::Drain && n.availability == Availability::Drain {
                continue;
            }
            self.push(phase, Some(n), action, None);
            match action {
                Action::StopEngine => self.hook(phase, n, HookPoint::PostStop),
                Action::Install => self.hook(phase, n, HookPoint::PostInstall),
                Action::Verify => self.hook(phase, n, HookPoint::PostVerify),
                _ => {}
            }
        }
    }

    /// A node staged by a method whose install leaves a running engine
    /// alone installs right after its drain, while the swarm moves its
    /// tasks off (seconds of shutting them down, the node out of service
    /// anyway): its packages are already in the host's cache and its old
    /// ones backed up, and the package manager replaces files by rename, so
    /// the running engine keeps its binaries until `stop-engine` (the
    /// playbook keeps the package scripts from restarting it). The drained
    /// window then holds wait, stop, start and verify. Any other node
    /// installs with its engine stopped, after the backup.
    fn ordered(&self, n: &PlanNode, actions: &[Action]) -> Vec<Action> {
        let mut v = actions.to_vec();
        if self.staging(n).is_some_and(|s| s.while_running)
            && let Some(at) = v.iter().position(|&a| a == Action::Install)
        {
            v.remove(at);
            let after_drain = v
                .iter()
                .position(|&a| a == Action::Drain)
                .map_or(0, |d| d + 1);
            v.insert(after_drain, Action::Install);
        }
        v
    }

    /// One step for the hooks at `at` that apply to the node, if any.
    fn hook(&mut self, phase: Phase, n: &PlanNode, at: HookPoint) {
        if self.hooks.iter().any(|h| h.applies(at, &n.name, n.role)) {
            self.push(phase, Some(n), Action::Hook, None);
            self.steps.last_mut().expect("just pushed").hook = Some(at);
        }
    }

    /// A node drained by its operator stays drained.
    fn restore_availability(&mut self, phase: Phase, n: &PlanNode) {
        if n.availability != Availability::Drain {
            self.hook(phase, n, HookPoint::PreRestore);
            self.push(
                phase,
                Some(n),
                Action::RestoreAvailability,
                Some(n.availability),
            );
        }
    }

    fn push(
        &mut self,
        phase: Phase,
        node: Option<&PlanNode>,
        action: Action,
        availability: Option<Availability>,
    ) {
        self.steps.push(Step {
            index: self.steps.len() + 1,
            node: node.map(|n| n.name.clone()),
            node_id: node.map(|n| n.id.clone()),
            role: node.map(|n| n.role),
            action,
            phase,
            batch: self.batch,
            availability,
            hook: None,
        });
    }
}
