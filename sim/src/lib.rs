//! A simulated swarm, in process: the executor's [`swarm_upgrade::exec::ops::Ops`]
//! over a deterministic state machine, so that the real planner, checks and
//! executor run unchanged against 5 or 5,000 nodes, fast, with faults.
//!
//! ```text
//! SimCluster ─ facts()/gathered() ─► checks + plan::build ─► Plan
//!     ▲                                                        │
//!     └──────────── Ops (API calls, playbook commands) ◄── Runner
//! ```
//! - Engines stop, get packages installed and start when the executor runs
//!   the playbook scripts (recognised by their exact text, `src/sim/command.rs`); a
//!   stopped manager leaves the raft at once, is marked down after a
//!   heartbeat grace, and a new leader is elected while a majority is left.
//! - Draining shuts a node's tasks down and the scheduler places
//!   replacements on active ready nodes (constraints, spread).
//! - Time is virtual ([`SimCluster::drive`]): simulated operations take their
//!   configured durations without anyone sleeping.
//! - Faults: a broken engine, a failing script, SSH loss, a partitioned
//!   manager, a slow or stuck drain; inject them before the run or from the
//!   executor's event callback (the simulation is `Sync`).
//! - Everything done to a node is recorded ([`SimCluster::records`]) and the
//!   raft is sampled after every change ([`SimCluster::timeline`]), so tests
//!   can assert "quorum never lost" or "nothing touched after the failure".

mod clock;
mod command;
mod generate;
mod ops;
mod record;
mod sched;
mod world;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use swarm_upgrade::exec::lease::Lease;
use swarm_upgrade::facts::model::{Availability, InitSystem};
use swarm_upgrade::playbook::{Playbooks, Script};

pub use clock::SimSleep;
pub use generate::{SimSpec, deb_version};
pub use record::{Op, Record, Sample, lines};

use command::ScriptIndex;
use world::{CommandFault, World};

/// How long things take, in virtual time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delays {
    // Playbook scripts, start to exit.
    pub stop: Duration,
    pub backup: Duration,
    /// The `stage` script (its downloads), before the drain.
    pub stage: Duration,
    pub install: Duration,
    pub start: Duration,
    pub restore: Duration,
    /// Any other command (`pgrep`, `docker swarm unlock`, logs).
    pub command: Duration,
    /// Engine stopped (or node cut off) until the swarm marks the node down.
    pub heartbeat_grace: Duration,
    /// Engine started (or unlocked) until the node is ready and reachable.
    pub rejoin: Duration,
    /// A host's reboot, from the reboot script's exit until it boots again.
    pub reboot: Duration,
    /// Drain until a task has stopped.
    pub task_stop: Duration,
    /// Placement until a task runs.
    pub task_start: Duration,
}

impl Delays {
    /// Everything instant: for benchmarks of the orchestration itself.
    pub fn zero() -> Delays {
        Delays::default()
    }

    /// Scripts take realistic times, the swarm reacts at once (except the
    /// heartbeat grace). The executor polls on real time, so swarm reactions
    /// that lag would cost every test real poll intervals; script durations
    /// cost nothing.
    pub fn test() -> Delays {
        let s = Duration::from_secs;
        Delays {
            stop: s(2),
            backup: s(1),
            stage: s(15),
            install: s(20),
            start: s(3),
            restore: s(10),
            command: Duration::from_millis(50),
            heartbeat_grace: s(5),
            reboot: s(40),
            ..Delays::zero()
        }
    }
}

/// An error as the simulated cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SimError(pub String);

/// The simulated cluster; see the module documentation.
pub struct SimCluster {
    world: Mutex<World>,
    scripts: ScriptIndex,
    /// Notified whenever a command starts on a host.
    started: tokio::sync::Notify,
    /// Nanoseconds spent inside the simulation (to tell its cost from the
    /// executor's in benchmarks).
    busy_ns: AtomicU64,
}

impl SimCluster {
    fn new(world: World) -> SimCluster {
        let playbooks =
            Playbooks::load(&[] as &[&std::path::Path]).expect("the built-in playbooks parse");
        SimCluster {
            world: Mutex::new(world),
            scripts: ScriptIndex::new(&playbooks),
            started: tokio::sync::Notify::new(),
            busy_ns: AtomicU64::new(0),
        }
    }

    /// Recognise the scripts of these playbooks (e.g. with `--playbook` overrides).
    pub fn with_playbooks(mut self, playbooks: &Playbooks) -> SimCluster {
        self.scripts = ScriptIndex::new(playbooks);
        self
    }

    /// Runs `f` on the state. Never held across an await.
    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let t = Instant::now();
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut w);
        drop(w);
        self.busy_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    fn with_node<T>(&self, name: &str, f: impl FnOnce(&mut World, usize) -> T) -> T {
        self.with(|w| {
            let i = w.node_by_name(name);
            f(w, i)
        })
    }

    // ----- configuration ------------------------------------------------------------

    pub fn set_delays(&self, delays: Delays) {
        self.with(|w| w.delays = delays);
    }

    /// The init system of every host (systemd reports a dockerd that dies
    /// at start; sysvinit's start script does not).
    pub fn set_init(&self, init: InitSystem) {
        self.with(|w| w.nodes.iter_mut().for_each(|n| n.host.init = init));
    }

    /// Autolock on: restarted managers come back locked until unlocked with `key`.
    pub fn enable_autolock(&self, key: &str) {
        self.with(|w| w.autolock_key = Some(key.to_string()));
    }

    /// Labels a service as an operator would (`docker service update
    /// --label-add`), e.g. with a disruption budget.
    pub fn set_service_label(&self, service: &str, key: &str, value: &str) {
        self.with(|w| {
            let s = w
                .services
                .iter_mut()
                .find(|s| s.name == service)
                .unwrap_or_else(|| panic!("no service {service} in the simulation"));
            s.labels.insert(key.to_string(), value.to_string());
        });
    }

    /// Gives a service an image of its own, held by `nodes` only (built or
    /// loaded there, as in moby#36045): no registry serves it, so its tasks
    /// run only where it is, and the facts list every host's images.
    pub fn local_image(&self, service: &str, nodes: &[&str]) -> String {
        let image = format!("{service}-local:dev");
        self.with(|w| {
            w.images_read = true;
            let holders: Vec<usize> = nodes.iter().map(|n| w.node_by_name(n)).collect();
            for &i in &holders {
                w.nodes[i]
                    .images
                    .insert(image.clone(), format!("sha256:built-for-{service}"));
            }
            let s = w
                .services
                .iter()
                .position(|s| s.name == service)
                .unwrap_or_else(|| panic!("no service {service} in the simulation"));
            w.services[s].image = Some(image.clone());
            // Its tasks elsewhere cannot run that image: they move.
            let elsewhere: Vec<usize> = w.services[s]
                .tasks
                .iter()
                .copied()
                .filter(|&t| {
                    w.tasks[t].desired_running
                        && !w.tasks[t].node.is_some_and(|n| holders.contains(&n))
                })
                .collect();
            for t in elsewhere {
                w.stop_task(t);
            }
            w.reconcile(s);
        });
        image
    }

    /// The ID of `image` in `node`'s engine, if it holds it.
    pub fn image_on(&self, node: &str, image: &str) -> Option<String> {
        self.with_node(node, |w, i| w.nodes[i].images.get(image).cloned())
    }

    /// Sets a node's availability as an operator would (`docker node update`).
    pub fn set_availability(&self, name: &str, a: Availability) {
        self.with_node(name, |w, i| {
            w.nodes[i].availability = a;
            w.nodes[i].version_index += 1;
            w.node_changed(i);
        });
    }

    // ----- faults ----------------------------------------------------------------------

    /// The engine `version` (upstream, e.g. `26.1.5`) installs cleanly on this
    /// node and then exits as soon as it starts (the lab's 26.1.99).
    pub fn break_engine(&self, name: &str, version: &str) {
        let v = command::upstream(version);
        self.with_node(name, |w, i| {
            w.nodes[i].faults.broken.insert(v);
        });
    }

    /// The next `times` runs of `script` on this node (every run: `None`)
    /// exit with `status` and `stderr`, changing nothing.
    pub fn fail_script(
        &self,
        name: &str,
        script: Script,
        status: i32,
        stderr: &str,
        times: Option<usize>,
    ) {
        self.with_node(name, |w, i| {
            w.nodes[i].faults.commands.push(CommandFault {
                script,
                status,
                stderr: stderr.to_string(),
                times,
            });
        });
    }

    /// The node's package repository stops (or starts again) answering:
    /// staging there fails, and so does an install of packages that were
    /// not staged into its cache.
    pub fn cut_repo(&self, name: &str, down: bool) {
        self.with_node(name, |w, i| w.nodes[i].faults.repo_down = down);
    }

    /// The engine starts cleanly again (undoes [`Self::break_engine`]).
    pub fn repair_engine(&self, name: &str) {
        self.with_node(name, |w, i| w.nodes[i].faults.broken.clear());
    }

    /// At its next start the node's engine answers, active, but the
    /// managers do not see it for `d` of the executor's (tokio) time.
    pub fn unseen_after_start(&self, name: &str, d: Duration) {
        self.with_node(name, |w, i| w.nodes[i].faults.unseen_after_start = Some(d));
    }

    /// Someone else's run holds the lease now (it was broken under ours).
    pub fn take_lease(&self, run_id: &str) {
        self.with(|w| {
            w.lease = Some(Lease {
                run_id: run_id.to_string(),
                owner: "another operator".into(),
                started_at: String::new(),
                expires_at: "2999-01-01T00:00:00Z".into(),
                ttl_secs: 0,
                control: Default::default(),
            });
        });
    }

    /// An operator's `pause`, `continue` or `abort` through the swarm: the
    /// lease of the run in progress marked (nothing when no run holds it).
    pub fn control(&self, control: swarm_upgrade::exec::lease::Control) {
        self.with(|w| {
            if let Some(l) = &mut w.lease {
                l.control = control;
            }
        });
    }

    /// The lease's expiry lies in the past (its run died long ago), so
    /// `--break-lock` may take it over.
    pub fn expire_lease(&self) {
        self.with(|w| {
            if let Some(l) = &mut w.lease {
                l.expires_at = "2000-01-01T00:00:00Z".into();
            }
        });
    }

    /// The lease is gone from the swarm (expired and removed).
    pub fn drop_lease(&self) {
        self.with(|w| w.lease = None);
    }

    /// The operator's hooks for this node fail (exit 1) or succeed again.
    pub fn fail_hooks(&self, name: &str, fail: bool) {
        self.with_node(name, |w, i| w.nodes[i].faults.hooks_fail = fail);
    }

    /// SSH to this host fails (commands, and its Engine API, tunnelled over SSH).
    pub fn lose_ssh(&self, name: &str, lost: bool) {
        self.with_node(name, |w, i| w.nodes[i].faults.ssh_lost = lost);
    }

    /// Cuts the node off the other nodes (a manager becomes unreachable) or
    /// heals it. Its engine keeps running and answering `/info`.
    pub fn partition(&self, name: &str, partitioned: bool) {
        self.with_node(name, |w, i| w.set_partitioned(i, partitioned));
    }

    /// Cuts the node off now and heals it after `d` of virtual time (a
    /// manager unreachable for a moment, as on a busy host).
    pub fn partition_for(&self, name: &str, d: Duration) {
        self.with_node(name, |w, i| {
            w.set_partitioned(i, true);
            w.schedule(
                d,
                world::Ev::Link {
                    node: i,
                    partitioned: false,
                },
            );
        });
    }

    /// The node is cut off from the other managers `after` from now
    /// (until [`SimCluster::partition`] heals it).
    pub fn partition_after(&self, name: &str, after: Duration) {
        self.with_node(name, |w, i| {
            w.schedule(
                after,
                world::Ev::Link {
                    node: i,
                    partitioned: true,
                },
            );
        });
    }

    /// The node's published ports stop answering once it runs engine
    /// `version` (upstream, e.g. `26.1.5`): an upgrade that loses them.
    pub fn close_ports(&self, name: &str, version: &str) {
        let v = command::upstream(version);
        self.with_node(name, |w, i| w.nodes[i].faults.closed_ports = Some(v));
    }

    /// Tasks leaving this node take `d` to stop (`None`: they never do).
    pub fn slow_drain(&self, name: &str, d: Option<Duration>) {
        self.with_node(name, |w, i| w.nodes[i].faults.slow_drain = Some(d));
    }

    // ----- observation -------------------------------------------------------------------

    /// The swarm node ID of a hostname.
    pub fn id(&self, name: &str) -> String {
        self.with_node(name, |w, i| w.nodes[i].id.clone())
    }

    pub fn hostnames(&self) -> Vec<String> {
        self.with(|w| w.nodes.iter().map(|n| n.hostname.clone()).collect())
    }

    /// The engine version running on the node, `None` while it is down.
    pub fn engine(&self, name: &str) -> Option<String> {
        self.with_node(name, |w, i| {
            let n = &w.nodes[i];
            n.engine_up.then(|| n.engine_version.clone())
        })
    }

    pub fn installed(&self, name: &str) -> BTreeMap<String, String> {
        self.with_node(name, |w, i| w.nodes[i].host.installed.clone())
    }

    pub fn availability(&self, name: &str) -> Availability {
        self.with_node(name, |w, i| w.nodes[i].availability)
    }

    pub fn labels(&self, name: &str) -> BTreeMap<String, String> {
        self.with_node(name, |w, i| w.nodes[i].labels.clone())
    }

    pub fn leader(&self) -> Option<String> {
        self.with(|w| w.leader.map(|l| w.nodes[l].hostname.clone()))
    }

    pub fn lease(&self) -> Option<Lease> {
        self.with(|w| w.lease.clone())
    }

    /// How many times the lease was renewed.
    pub fn lease_renewals(&self) -> u64 {
        self.with(|w| w.lease_renewals)
    }

    /// Every service runs exactly its desired tasks.
    pub fn converged(&self) -> bool {
        self.with(|w| {
            (0..w.services.len()).all(|s| {
                let f = w.service_facts(s);
                f.running_tasks == f.desired_tasks
            })
        })
    }

    /// Tasks (desired running) per hostname, for placement assertions.
    pub fn tasks_per_node(&self) -> BTreeMap<String, usize> {
        self.with(|w| {
            w.nodes
                .iter()
                .map(|n| {
                    let c = n
                        .tasks
                        .iter()
                        .filter(|&&t| w.tasks[t].desired_running)
                        .count();
                    (n.hostname.clone(), c)
                })
                .collect()
        })
    }

    /// Everything done to nodes, in order.
    pub fn records(&self) -> Vec<Record> {
        self.with(|w| w.log.clone())
    }

    /// The records from the `from`-th on (a checker called after every
    /// event reads only what is new).
    pub fn records_since(&self, from: usize) -> Vec<Record> {
        self.with(|w| w.log.get(from..).map_or(vec![], <[Record]>::to_vec))
    }

    /// The timeline samples from the `from`-th on.
    pub fn timeline_since(&self, from: usize) -> Vec<Sample> {
        self.with(|w| w.timeline.get(from..).map_or(vec![], <[Sample]>::to_vec))
    }

    /// The raft after every engine, link and leadership change.
    pub fn timeline(&self) -> Vec<Sample> {
        self.with(|w| w.timeline.clone())
    }

    /// Wall time spent inside the simulation so far.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    /// Completes once `script` has started on node `name` (counting only
    /// commands started after this call), e.g. to crash the executor in the
    /// middle of an install.
    pub async fn script_started(&self, name: &str, script: Script) {
        let from = self.with(|w| w.log.len());
        loop {
            let notified = self.started.notified();
            let seen = self.with(|w| {
                w.log[from..]
                    .iter()
                    .any(|r| r.node == name && r.is_script(script))
            });
            if seen {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests;
