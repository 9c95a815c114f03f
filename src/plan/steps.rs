//! Laying out a plan's steps, shared by the upgrade and the rollback plan:
//! each manager in a batch of its own, the managers reactivated together
//! only once all are back, and the workers in batches, each batch's nodes
//! given their availability back and the services waited for. Once a node
//! runs tasks again (after its batch converged), its services are verified
//! in a batch of their own. Pure.

use super::model::{Action, Phase, PlanNode, Step};
use crate::facts::model::Availability;

#[derive(Default)]
pub(super) struct Steps {
    pub steps: Vec<Step>,
    batch: usize,
    /// A restart takes down nodes that run their target already.
    restart: bool,
}

impl Steps {
    pub fn restarting() -> Steps {
        Steps {
            restart: true,
            ..Default::default()
        }
    }

    /// The managers one at a time, each through `actions`; then, in one
    /// batch, their availability restored and the services converged.
    pub fn managers(&mut self, managers: &[&PlanNode], actions: &[Action]) {
        for m in managers {
            self.batch += 1;
            self.node(Phase::Managers, m, actions);
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
        for batch in batches {
            self.batch += 1;
            for w in batch {
                self.node(Phase::Workers, w, actions);
                self.restore_availability(Phase::Workers, w);
            }
            self.push(Phase::Workers, None, Action::WaitConverged, None);
            self.verify_services(Phase::Workers, batch);
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
        for &action in actions {
            if action == Action::Drain && n.availability == Availability::Drain {
                continue;
            }
            self.push(phase, Some(n), action, None);
        }
    }

    /// A node drained by its operator stays drained.
    fn restore_availability(&mut self, phase: Phase, n: &PlanNode) {
        if n.availability != Availability::Drain {
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
        });
    }
}
