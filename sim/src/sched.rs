//! The scheduler: which tasks run where, the way swarm's orchestrator and
//! spread strategy decide it. A drained (or down) node's tasks are shut down
//! and replaced on eligible nodes (ready, active, constraints met), on the
//! one with the fewest tasks of the service; global services get one task per
//! eligible node. Work is proportional to the tasks a change affects.

use std::collections::{BTreeSet, HashMap};

use swarm_upgrade::facts::model::{Availability, NodeState, Role};

use super::world::{Ev, Mode, Node, Task, TaskState, World};

impl World {
    /// A node's availability or state changed: services with tasks on it
    /// lose them, and services waiting for room (or global ones) may gain it.
    pub fn node_changed(&mut self, node: usize) {
        let mut affected: BTreeSet<usize> = self.nodes[node]
            .tasks
            .iter()
            .filter(|&&t| self.tasks[t].desired_running)
            .map(|&t| self.tasks[t].service)
            .collect();
        affected.extend(self.pending.iter().copied());
        if self.schedulable(node) {
            affected.extend(self.globals.iter().copied());
        }
        for s in affected {
            self.reconcile_on(s, Some(node));
        }
    }

    fn schedulable(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        n.state == NodeState::Ready && n.availability == Availability::Active
    }

    fn eligible(&self, s: usize, node: usize) -> bool {
        // A service's own image (no registry serves it) runs only where it
        // is: elsewhere the engine rejects the task ("No such image").
        let image_here = self.services[s]
            .image
            .as_ref()
            .is_none_or(|i| self.nodes[node].images.contains_key(i));
        self.schedulable(node)
            && image_here
            && self.services[s]
                .constraints
                .iter()
                .all(|c| constraint_matches(c, &self.nodes[node]))
    }

    /// Brings a service to its desired tasks (every node, for a global one).
    pub fn reconcile(&mut self, s: usize) {
        self.reconcile_on(s, None);
    }

    /// `only`: for a global service, the one node whose change triggered this
    /// (a full pass over every node is needed only when the service appears).
    fn reconcile_on(&mut self, s: usize, only: Option<usize>) {
        // Tasks on nodes that may not run them any more are shut down (drain,
        // or the node is down: swarm reschedules those).
        let tasks: Vec<usize> = match only {
            Some(n) => self.nodes[n]
                .tasks
                .iter()
                .copied()
                .filter(|&t| self.tasks[t].service == s)
                .collect(),
            None => self.services[s].tasks.clone(),
        };
        for &t in &tasks {
            let task = &self.tasks[t];
            if !task.desired_running {
                continue;
            }
            if let Some(n) = task.node {
                let node = &self.nodes[n];
                if node.availability == Availability::Drain || node.state == NodeState::Down {
                    self.stop_task(t);
                }
            }
        }
        match self.services[s].mode {
            Mode::Replicated(replicas) => {
                let live: Vec<usize> = self.services[s]
                    .tasks
                    .iter()
                    .copied()
                    .filter(|&t| self.tasks[t].desired_running)
                    .collect();
                let mut still_pending = false;
                for &t in &live {
                    if self.tasks[t].node.is_none() {
                        match self.place(s) {
                            Some(n) => self.assign(t, n),
                            None => still_pending = true,
                        }
                    }
                }
                for _ in live.len() as u64..replicas {
                    let node = self.place(s);
                    still_pending |= node.is_none();
                    self.new_task(s, node);
                }
                if still_pending {
                    self.pending.insert(s);
                } else {
                    self.pending.remove(&s);
                }
            }
            Mode::Global => {
                let nodes: Vec<usize> = match only {
                    Some(n) => vec![n],
                    None => (0..self.nodes.len()).collect(),
                };
                for n in nodes {
                    let has = self.nodes[n]
                        .tasks
                        .iter()
                        .any(|&t| self.tasks[t].service == s && self.tasks[t].desired_running);
                    if !has && self.eligible(s, n) {
                        self.new_task(s, Some(n));
                    }
                }
            }
        }
    }

    /// Spread: an eligible node with the fewest tasks of the service, scanning
    /// round-robin so that ties do not pile onto the first nodes.
    fn place(&mut self, s: usize) -> Option<usize> {
        let mut per_node: HashMap<usize, u64> = HashMap::new();
        for &t in &self.services[s].tasks {
            let task = &self.tasks[t];
            if let (true, Some(n)) = (task.desired_running, task.node) {
                *per_node.entry(n).or_default() += 1;
            }
        }
        let max = self.services[s].max_per_node;
        let count = self.nodes.len();
        let mut best: Option<(u64, usize)> = None;
        for k in 0..count {
            let n = (self.cursor + k) % count;
            if !self.eligible(s, n) {
                continue;
            }
            let c = per_node.get(&n).copied().unwrap_or(0);
            if max > 0 && c >= max {
                continue;
            }
            if c == 0 {
                best = Some((0, n));
                break;
            }
            if best.is_none_or(|(b, _)| c < b) {
                best = Some((c, n));
            }
        }
        let (_, n) = best?;
        self.cursor = (n + 1) % count;
        Some(n)
    }

    fn new_task(&mut self, s: usize, node: Option<usize>) {
        self.task_seq += 1;
        let id = format!("t{:08}{}", self.task_seq, &self.services[s].id[..8]);
        let nets = self.services[s].networks.clone();
        let addrs = nets.iter().map(|&k| self.networks[k].allocate()).collect();
        let t = self.tasks.len();
        self.tasks.push(Task {
            id,
            service: s,
            node: None,
            state: TaskState::Pending,
            desired_running: true,
            addrs,
        });
        self.services[s].tasks.push(t);
        if let Some(n) = node {
            self.assign(t, n);
        }
    }

    fn assign(&mut self, t: usize, n: usize) {
        self.tasks[t].node = Some(n);
        self.tasks[t].state = TaskState::Starting;
        self.nodes[n].tasks.push(t);
        let d = self.delays.task_start;
        self.schedule(d, Ev::TaskRunning { task: t });
    }

    pub(crate) fn stop_task(&mut self, t: usize) {
        self.tasks[t].desired_running = false;
        let node = self.tasks[t].node;
        let delay = match node.and_then(|n| self.nodes[n].faults.slow_drain) {
            Some(None) => return, // stuck: it never stops
            Some(Some(d)) => d,
            None => self.delays.task_stop,
        };
        if self.tasks[t].state == TaskState::Pending
            || node.is_some_and(|n| !self.nodes[n].engine_up)
        {
            // Nothing runs it: it is gone at once.
            self.tasks[t].state = TaskState::Shutdown;
        } else {
            self.schedule(delay, Ev::TaskShutdown { task: t });
        }
    }
}

/// `node.role==worker`, `node.role!=manager`, `node.hostname==x`,
/// `node.labels.k==v`; anything else matches every node.
fn constraint_matches(c: &str, n: &Node) -> bool {
    let (key, value, eq) = if let Some((k, v)) = c.split_once("!=") {
        (k.trim(), v.trim(), false)
    } else if let Some((k, v)) = c.split_once("==") {
        (k.trim(), v.trim(), true)
    } else {
        return true;
    };
    let actual = match key {
        "node.role" => Some(match n.role {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }),
        "node.hostname" => Some(n.hostname.as_str()),
        "node.id" => Some(n.id.as_str()),
        _ => match key.strip_prefix("node.labels.") {
            Some(label) => n.labels.get(label).map(String::as_str),
            None => return true,
        },
    };
    (actual == Some(value)) == eq
}
