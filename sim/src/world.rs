//! The simulated swarm's state and how it changes: engines, raft, node
//! states, the clock's event queue (the scheduler is in [`super::sched`]).
//!
//! Everything is indexed (tasks per node, tasks per service) so that one
//! change costs O(affected tasks), not O(cluster): the benchmark drives
//! 5,000 nodes and 50,000 tasks through it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::task::Waker;
use std::time::Duration;

use swarm_upgrade::exec::lease::Lease;
use swarm_upgrade::facts::model::{
    Availability, HostFacts, ManagerFacts, NetworkAddr, NetworkFacts, NodeFacts, NodeState,
    PublishedPort, Reachability, Role, ServiceFacts, ServiceMode, TaskFacts, VirtualIp,
};
use swarm_upgrade::version::engine_version_of;

use super::record::{Op, Record, Sample};
use super::{Delays, SimError};

/// Engine packages whose version is the engine's version, per family.
pub(crate) const ENGINE_PACKAGES: [&str; 2] = ["docker-ce", "docker.io"];

pub(crate) struct Node {
    pub id: String,
    pub hostname: String,
    pub addr: String,
    pub role: Role,
    pub availability: Availability,
    pub labels: BTreeMap<String, String>,
    pub version_index: u64,
    // The swarm's view of the node.
    pub state: NodeState,
    /// The engine is up and registered with the swarm (a manager: a raft
    /// member the others hear from).
    pub joined: bool,
    /// `Description.Engine.EngineVersion`: what the node last registered with.
    pub recorded_version: String,
    // The engine itself.
    pub engine_up: bool,
    pub engine_version: String,
    /// Bumped on every engine or link change, so that a delayed consequence
    /// (heartbeat failure, rejoin) of an older state is dropped.
    pub epoch: u64,
    pub locked: bool,
    // The host.
    /// Boots so far: the host's boot identity (`--reboot`).
    pub boot: u64,
    /// Rebooting: nothing answers on it, SSH included.
    pub rebooting: bool,
    pub host: HostFacts,
    /// Backups by directory: the packages installed when it was taken.
    pub backups: BTreeMap<String, Vec<(String, String)>>,
    /// Packages in the host's package cache (`stage`): installed without
    /// its repository.
    pub cached: BTreeSet<(String, String)>,
    /// Indices of every task ever assigned here (any state).
    pub tasks: Vec<usize>,
    pub faults: NodeFaults,
    /// Images its engine holds: reference → image ID (only those a test
    /// put there: see [`World::images_read`]).
    pub images: BTreeMap<String, String>,
}

#[derive(Default)]
pub(crate) struct NodeFaults {
    pub ssh_lost: bool,
    pub partitioned: bool,
    /// Upstream engine versions whose dockerd exits right after it starts.
    pub broken: BTreeSet<String>,
    pub commands: Vec<CommandFault>,
    /// Tasks leaving this node take this long (`None`: never).
    pub slow_drain: Option<Option<Duration>>,
    /// At its next start, the engine comes up but the managers do not see
    /// it for this long (a stuck agent session).
    pub unseen_after_start: Option<Duration>,
    /// Until when (on tokio's clock, the executor's) the managers do not
    /// see it: the executor's verify measures this wait on that clock.
    pub unseen_until: Option<tokio::time::Instant>,
    /// Its published ports stop answering while it runs this engine
    /// version (upstream, e.g. `26.1.5`).
    pub closed_ports: Option<String>,
    /// The operator's hooks for this node (on its host or on the
    /// controller) exit 1.
    pub hooks_fail: bool,
    /// Its package repository does not answer: a download (stage, or an
    /// install of what is not in its cache) fails.
    pub repo_down: bool,
}

impl NodeFaults {
    pub fn unseen(&self) -> bool {
        self.unseen_until
            .is_some_and(|t| tokio::time::Instant::now() < t)
    }
}

pub(crate) struct CommandFault {
    pub script: swarm_upgrade::playbook::Script,
    pub status: i32,
    pub stderr: String,
    /// How many more times it fails (`None`: always).
    pub times: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    Pending,
    Starting,
    Running,
    Shutdown,
}

impl TaskState {
    fn name(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Shutdown => "shutdown",
        }
    }
}

pub(crate) struct Task {
    pub id: String,
    pub service: usize,
    pub node: Option<usize>,
    pub state: TaskState,
    pub desired_running: bool,
    pub addrs: Vec<NetworkAddr>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Replicated(u64),
    Global,
}

pub(crate) struct Service {
    pub id: String,
    pub name: String,
    pub mode: Mode,
    pub constraints: Vec<String>,
    pub max_per_node: u64,
    /// Overlay networks (indices into `World::networks`).
    pub networks: Vec<usize>,
    pub vips: Vec<VirtualIp>,
    pub published: Vec<PublishedPort>,
    /// Every task of the service (any state).
    pub tasks: Vec<usize>,
    /// `Spec.Labels` (disruption budgets).
    pub labels: std::collections::BTreeMap<String, String>,
    /// An image of its own (built on one node, say); `None`: the registry's
    /// `registry.example/NAME:1`, which every node can pull.
    pub image: Option<String>,
}

pub(crate) struct Network {
    pub facts: NetworkFacts,
    /// Base address (host byte order) and next free offset.
    pub base: u32,
    pub next: u32,
}

impl Network {
    pub fn allocate(&mut self) -> NetworkAddr {
        let ip = std::net::Ipv4Addr::from(self.base + self.next);
        self.next += 1;
        NetworkAddr {
            network_id: self.facts.id.clone(),
            addr: format!("{ip}/16"),
        }
    }
}

/// A scheduled change.
pub(crate) enum Ev {
    /// A command's effect, when the command completes.
    Effect(Effect),
    /// The swarm stops hearing from the node (heartbeat grace over).
    NodeDown {
        node: usize,
        epoch: u64,
    },
    /// The started engine has registered with the swarm.
    Rejoin {
        node: usize,
        epoch: u64,
    },
    TaskRunning {
        task: usize,
    },
    TaskShutdown {
        task: usize,
    },
    /// A rebooting host is up again.
    Boot {
        node: usize,
    },
    /// A partition starts or heals.
    Link {
        node: usize,
        partitioned: bool,
    },
}

pub(crate) enum Effect {
    EngineStop(usize),
    EngineStart(usize),
    Install(usize, Vec<(String, String)>),
    Backup(usize, String),
    /// The target packages downloaded into the cache; the installed ones
    /// secured in the backup directory (as [`Effect::Backup`]).
    Stage(usize, String, Vec<(String, String)>),
    Restore(usize, String, Vec<String>),
    Unlock(usize),
    /// The host reboots: everything on it stops, it is away for
    /// [`Delays::reboot`], then boots again (a new boot identity) and
    /// starts its engine as its init would.
    Reboot(usize),
}

pub(crate) struct World {
    pub now: Duration,
    seq: u64,
    pub events: BTreeMap<(Duration, u64), Ev>,
    pub sleepers: BTreeMap<(Duration, u64), Waker>,
    pub cluster_id: String,
    pub nodes: Vec<Node>,
    pub by_id: HashMap<String, usize>,
    pub by_name: HashMap<String, usize>,
    pub managers: Vec<usize>,
    pub leader: Option<usize>,
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
    pub networks: Vec<Network>,
    pub autolock_key: Option<String>,
    pub delays: Delays,
    pub lease: Option<Lease>,
    /// Successful renewals of the lease so far.
    pub lease_renewals: u64,
    pub log: Vec<Record>,
    pub timeline: Vec<Sample>,
    /// Remote round trips per node: commands run on it, and Engine API
    /// requests its engine answered.
    pub commands: Vec<u64>,
    pub api_requests: Vec<u64>,
    /// Services with tasks waiting for a node.
    pub(super) pending: BTreeSet<usize>,
    pub(super) globals: Vec<usize>,
    /// Round-robin start of the placement scan, so ties spread.
    pub(super) cursor: usize,
    pub(super) task_seq: u64,
    /// Whether the facts list each host's images (once a test gave a
    /// service an image of its own): then a task is only placed on a node
    /// that holds its service's own image.
    pub images_read: bool,
}

impl World {
    pub fn new(cluster_id: String, delays: Delays) -> World {
        World {
            now: Duration::ZERO,
            seq: 0,
            events: BTreeMap::new(),
            sleepers: BTreeMap::new(),
            cluster_id,
            nodes: vec![],
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            managers: vec![],
            leader: None,
            services: vec![],
            tasks: vec![],
            networks: vec![],
            autolock_key: None,
            delays,
            lease: None,
            lease_renewals: 0,
            log: vec![],
            timeline: vec![],
            commands: vec![],
            api_requests: vec![],
            pending: BTreeSet::new(),
            globals: vec![],
            cursor: 0,
            task_seq: 0,
            images_read: false,
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn add_node(&mut self, node: Node) -> usize {
        let i = self.nodes.len();
        self.by_id.insert(node.id.clone(), i);
        self.by_name.insert(node.hostname.clone(), i);
        if node.role == Role::Manager {
            self.managers.push(i);
        }
        self.nodes.push(node);
        self.commands.push(0);
        self.api_requests.push(0);
        i
    }

    pub fn add_service(&mut self, s: Service) -> usize {
        let i = self.services.len();
        if s.mode == Mode::Global {
            self.globals.push(i);
        }
        self.services.push(s);
        self.reconcile(i);
        i
    }

    // ----- lookups and API gates -------------------------------------------------

    pub fn node_by_id(&self, id: &str) -> Result<usize, SimError> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| SimError(format!("node {id} not found")))
    }

    pub fn node_by_name(&self, name: &str) -> usize {
        *self
            .by_name
            .get(name)
            .unwrap_or_else(|| panic!("the simulated cluster has no node {name}"))
    }

    pub fn reachable(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.engine_up && n.joined && !n.locked && !n.faults.partitioned
    }

    pub fn quorum(&self) -> (usize, usize, bool) {
        let n = self.managers.len();
        let r = self.managers.iter().filter(|&&m| self.reachable(m)).count();
        (n, r, r > n / 2)
    }

    /// The Engine API of `via` answers a cluster-wide request, or says why not
    /// (with the messages dockerd gives).
    pub fn api(&mut self, via: &str) -> Result<usize, SimError> {
        let i = self.node_by_id(via)?;
        self.api_requests[i] += 1;
        let n = &self.nodes[i];
        if n.faults.ssh_lost {
            return Err(SimError(format!(
                "host {}: ssh: connection lost (simulated)",
                n.hostname
            )));
        }
        if !n.engine_up {
            return Err(SimError(format!(
                "host {}: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
                n.hostname
            )));
        }
        if n.role != Role::Manager {
            return Err(SimError(format!(
                "host {}: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.",
                n.hostname
            )));
        }
        if n.locked {
            return Err(SimError(format!(
                "host {}: Swarm is encrypted and needs to be unlocked before it can be used.",
                n.hostname
            )));
        }
        if !n.joined || n.faults.partitioned || self.leader.is_none() {
            return Err(SimError(format!(
                "host {}: rpc error: code = Unknown desc = The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.",
                n.hostname
            )));
        }
        Ok(i)
    }

    // ----- facts as the Engine API reports them ----------------------------------

    /// A request to the node's own engine (through its SSH-forwarded
    /// socket): counted; fails when SSH is lost or the engine is down.
    pub fn engine_api(&mut self, id: &str) -> Result<usize, SimError> {
        let i = self.node_by_id(id)?;
        self.api_requests[i] += 1;
        let n = &self.nodes[i];
        if n.faults.ssh_lost {
            return Err(SimError(format!(
                "host {}: ssh: connection lost (simulated)",
                n.hostname
            )));
        }
        if !n.engine_up {
            return Err(SimError(format!(
                "host {}: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
                n.hostname
            )));
        }
        Ok(i)
    }

    /// The node's engine holds `image` now: tasks waiting for it may start.
    pub fn image_arrived(&mut self, i: usize, image: &str, id: String) {
        self.nodes[i].images.insert(image.to_string(), id);
        let waiting: Vec<usize> = (0..self.services.len())
            .filter(|&s| self.services[s].image.as_deref() == Some(image))
            .collect();
        for s in waiting {
            self.reconcile(s);
        }
    }

    pub fn node_facts(&self, i: usize) -> NodeFacts {
        let n = &self.nodes[i];
        NodeFacts {
            id: n.id.clone(),
            hostname: n.hostname.clone(),
            addr: n.addr.clone(),
            role: n.role,
            availability: n.availability,
            state: if n.faults.unseen() {
                NodeState::Down
            } else {
                n.state
            },
            message: if n.state == NodeState::Down {
                "heartbeat failure".into()
            } else {
                String::new()
            },
            manager: (n.role == Role::Manager).then(|| ManagerFacts {
                leader: self.leader == Some(i),
                reachability: if self.reachable(i) && !n.faults.unseen() {
                    Reachability::Reachable
                } else {
                    Reachability::Unreachable
                },
                addr: format!("{}:2377", n.addr),
            }),
            engine_version: n.recorded_version.clone(),
            labels: n.labels.clone(),
            engine_labels: BTreeMap::new(),
            version_index: n.version_index,
            nano_cpus: 4_000_000_000,
            memory_bytes: 8 << 30,
            platform_os: "linux".into(),
            platform_arch: "x86_64".into(),
        }
    }

    pub fn task_facts(&self, t: usize) -> TaskFacts {
        let task = &self.tasks[t];
        TaskFacts {
            id: task.id.clone(),
            service_id: self.services[task.service].id.clone(),
            node_id: task
                .node
                .map(|n| self.nodes[n].id.clone())
                .unwrap_or_default(),
            state: task.state.name().into(),
            err: if task.state == TaskState::Pending {
                "no suitable node".into()
            } else {
                String::new()
            },
            network_addrs: task.addrs.clone(),
        }
    }

    /// Every service, or those with these IDs (unknown IDs match nothing,
    /// as in a Docker filter).
    pub fn service_indices<'a>(
        &'a self,
        ids: Option<&'a [String]>,
    ) -> Box<dyn Iterator<Item = usize> + 'a> {
        match ids {
            None => Box::new(0..self.services.len()),
            Some(ids) => Box::new(
                (0..self.services.len()).filter(move |&s| ids.contains(&self.services[s].id)),
            ),
        }
    }

    pub fn service_facts(&self, s: usize) -> ServiceFacts {
        let svc = &self.services[s];
        let running = svc
            .tasks
            .iter()
            .filter(|&&t| {
                self.tasks[t].desired_running && self.tasks[t].state == TaskState::Running
            })
            .count() as u64;
        let (mode, desired) = match svc.mode {
            Mode::Replicated(r) => (ServiceMode::Replicated { replicas: r }, r),
            Mode::Global => {
                // Swarm's DesiredTasks for a global service: the nodes it may run on.
                let desired = svc
                    .tasks
                    .iter()
                    .filter(|&&t| self.tasks[t].desired_running)
                    .count() as u64;
                (ServiceMode::Global, desired)
            }
        };
        ServiceFacts {
            id: svc.id.clone(),
            name: svc.name.clone(),
            mode,
            image: svc
                .image
                .clone()
                .unwrap_or_else(|| format!("registry.example/{}:1", svc.name)),
            constraints: svc.constraints.clone(),
            max_replicas_per_node: svc.max_per_node,
            reserved_nano_cpus: 0,
            reserved_memory_bytes: 0,
            running_tasks: running,
            desired_tasks: desired,
            update_state: None,
            published_ports: svc.published.clone(),
            virtual_ips: svc.vips.clone(),
            bind_mounts: vec![],
            labels: svc.labels.clone(),
            networks: vec![],
        }
    }

    // ----- time ------------------------------------------------------------------

    /// Applies `ev` now if `delay` is zero (so zero-delay simulations need no
    /// clock at all), else schedules it.
    pub fn schedule(&mut self, delay: Duration, ev: Ev) {
        if delay.is_zero() {
            self.apply(ev);
        } else {
            let k = (self.now + delay, self.next_seq());
            self.events.insert(k, ev);
        }
    }

    /// Applies every event due by `until`, each at its own time.
    pub fn run_until(&mut self, until: Duration) {
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), ev) = entry.remove_entry();
            self.now = self.now.max(at);
            self.apply(ev);
        }
    }

    /// The driven future is blocked: move the clock to the next sleeper and
    /// return the wakers due. With no sleeper, it waits on real time (the
    /// executor's polling): let every pending swarm change happen now.
    pub fn idle(&mut self) -> Vec<Waker> {
        let Some(&(due, _)) = self.sleepers.keys().next() else {
            self.run_until(Duration::MAX);
            return vec![];
        };
        self.run_until(due);
        self.now = self.now.max(due);
        let mut wake = vec![];
        while let Some(entry) = self.sleepers.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            wake.push(entry.remove());
        }
        wake
    }

    // ----- records ---------------------------------------------------------------

    pub fn record(&mut self, node: usize, op: Op, status: Option<i32>) {
        let seq = self.next_seq();
        let at = self.now;
        let node = self.nodes[node].hostname.clone();
        self.log.push(Record {
            seq,
            at,
            node,
            op,
            status,
        });
    }

    /// A timeline sample after an engine, link or raft change.
    fn sample(&mut self, what: String) {
        let (managers, reachable, quorum) = self.quorum();
        let down = |role: Role| {
            self.nodes
                .iter()
                .filter(|n| n.role == role && !n.engine_up)
                .count()
        };
        let sample = Sample {
            at: self.now,
            what,
            managers,
            reachable,
            quorum,
            leader: self.leader.map(|l| self.nodes[l].hostname.clone()),
            managers_down: down(Role::Manager),
            workers_down: down(Role::Worker),
        };
        self.timeline.push(sample);
    }

    // ----- raft --------------------------------------------------------------------

    /// Re-elects after a change: the leader must stay reachable; a new one is
    /// chosen (lowest index, deterministic) only while a majority is reachable.
    pub fn raft(&mut self) {
        let (_, _, quorum) = self.quorum();
        if !quorum {
            self.leader = None;
            return;
        }
        if self.leader.is_some_and(|l| !self.reachable(l)) {
            self.leader = None;
        }
        if self.leader.is_none() {
            self.leader = self.managers.iter().copied().find(|&m| self.reachable(m));
        }
    }

    // ----- events ------------------------------------------------------------------

    pub fn apply(&mut self, ev: Ev) {
        match ev {
            Ev::Effect(e) => self.effect(e),
            Ev::NodeDown { node, epoch } => {
                let n = &mut self.nodes[node];
                // Down unless it is (again) joined and linked.
                if n.epoch == epoch
                    && n.state != NodeState::Down
                    && (!n.joined || n.faults.partitioned)
                {
                    n.state = NodeState::Down;
                    let what = format!("{} down (heartbeat failure)", n.hostname);
                    self.sample(what);
                    self.node_changed(node);
                }
            }
            Ev::Rejoin { node, epoch } => {
                let n = &mut self.nodes[node];
                if n.epoch == epoch && n.engine_up && !n.locked {
                    n.joined = true;
                    n.recorded_version = n.engine_version.clone();
                    if !n.faults.partitioned {
                        n.state = NodeState::Ready;
                    }
                    let what = format!("{} rejoined at {}", n.hostname, n.engine_version);
                    self.raft();
                    self.sample(what);
                    self.node_changed(node);
                }
            }
            Ev::TaskRunning { task } => {
                let t = &mut self.tasks[task];
                if t.desired_running && t.state == TaskState::Starting {
                    t.state = TaskState::Running;
                }
            }
            Ev::TaskShutdown { task } => {
                self.tasks[task].state = TaskState::Shutdown;
            }
            Ev::Link { node, partitioned } => self.set_partitioned(node, partitioned),
            Ev::Boot { node } => {
                let n = &mut self.nodes[node];
                n.rebooting = false;
                n.boot += 1;
                let what = format!("{} booted (boot {})", n.hostname, n.boot);
                // Its init starts the engine, unless the installed one exits at
                // once (as the start script finds out, in `command`).
                let version = installed_engine(&n.host.installed).unwrap_or_default();
                let starts = !n.faults.broken.contains(&version);
                self.record(node, Op::Booted, None);
                self.sample(what);
                if starts {
                    self.effect(Effect::EngineStart(node));
                }
            }
        }
    }

    fn effect(&mut self, e: Effect) {
        match e {
            Effect::EngineStop(i) => {
                let n = &mut self.nodes[i];
                if !n.engine_up {
                    return;
                }
                n.engine_up = false;
                n.joined = false;
                n.locked = false;
                n.epoch += 1;
                let (epoch, what) = (n.epoch, format!("{} engine stopped", n.hostname));
                self.raft();
                self.sample(what);
                let grace = self.delays.heartbeat_grace;
                self.schedule(grace, Ev::NodeDown { node: i, epoch });
            }
            Effect::EngineStart(i) => {
                let autolock = self.autolock_key.is_some();
                let n = &mut self.nodes[i];
                if n.engine_up {
                    return;
                }
                n.engine_up = true;
                n.engine_version = installed_engine(&n.host.installed).unwrap_or_default();
                n.faults.unseen_until = n
                    .faults
                    .unseen_after_start
                    .take()
                    .map(|d| tokio::time::Instant::now() + d);
                n.epoch += 1;
                n.locked = autolock && n.role == Role::Manager;
                let (epoch, locked) = (n.epoch, n.locked);
                let what = format!(
                    "{} engine {} started{}",
                    n.hostname,
                    n.engine_version,
                    if locked { " (locked)" } else { "" }
                );
                self.sample(what);
                if !locked {
                    let d = self.delays.rejoin;
                    self.schedule(d, Ev::Rejoin { node: i, epoch });
                }
            }
            Effect::Reboot(i) => {
                if self.nodes[i].rebooting {
                    return;
                }
                self.effect(Effect::EngineStop(i));
                let n = &mut self.nodes[i];
                n.rebooting = true;
                let what = format!("{} rebooting", n.hostname);
                self.sample(what);
                let d = self.delays.reboot;
                self.schedule(d, Ev::Boot { node: i });
            }
            Effect::Unlock(i) => {
                let n = &mut self.nodes[i];
                if n.locked {
                    n.locked = false;
                    let epoch = n.epoch;
                    let d = self.delays.rejoin;
                    self.schedule(d, Ev::Rejoin { node: i, epoch });
                }
            }
            Effect::Install(i, packages) => {
                let host = &mut self.nodes[i].host;
                for (name, version) in packages {
                    if !host.held.contains(&name) {
                        host.held.push(name.clone());
                    }
                    host.installed.insert(name, version);
                }
            }
            Effect::Backup(i, dir) => {
                let n = &mut self.nodes[i];
                let installed = n.host.installed.clone().into_iter().collect();
                n.backups.entry(dir).or_insert(installed);
            }
            Effect::Stage(i, dir, packages) => {
                let n = &mut self.nodes[i];
                let installed = n.host.installed.clone().into_iter().collect();
                n.backups.entry(dir).or_insert(installed);
                n.cached.extend(packages);
            }
            Effect::Restore(i, dir, added) => {
                let n = &mut self.nodes[i];
                let Some(backup) = n.backups.get(&dir).cloned() else {
                    return;
                };
                for name in added {
                    n.host.installed.remove(&name);
                }
                for (name, version) in backup {
                    n.host.installed.insert(name, version);
                }
            }
        }
    }

    // ----- faults that change the swarm ------------------------------------------------

    pub fn set_partitioned(&mut self, i: usize, partitioned: bool) {
        let n = &mut self.nodes[i];
        if n.faults.partitioned == partitioned {
            return;
        }
        n.faults.partitioned = partitioned;
        n.epoch += 1;
        let epoch = n.epoch;
        let what = format!(
            "{} {}",
            n.hostname,
            if partitioned { "partitioned" } else { "healed" }
        );
        if !partitioned && n.joined {
            n.state = NodeState::Ready;
        }
        self.raft();
        self.sample(what);
        if partitioned {
            let grace = self.delays.heartbeat_grace;
            self.schedule(grace, Ev::NodeDown { node: i, epoch });
        } else {
            self.node_changed(i);
        }
    }
}

/// The engine version the host's installed packages provide.
pub(crate) fn installed_engine(installed: &BTreeMap<String, String>) -> Option<String> {
    ENGINE_PACKAGES
        .iter()
        .find_map(|p| installed.get(*p))
        .and_then(|v| engine_version_of(v))
        .map(|v| v.to_string())
}
