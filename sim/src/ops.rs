//! The executor's [`Ops`] over the simulated cluster: the same calls, the
//! same failure modes (engine down, no leader, SSH lost), in memory.

use std::task::Poll;

use swarm_upgrade::exec::lease::expired;
use swarm_upgrade::exec::lease::{Control, Lease, LeaseLost, LeaseOutcome};
use swarm_upgrade::exec::ops::{EngineStatus, Events, NodeUpdate, Ops, Task, Traffic};
use swarm_upgrade::exec::poll::Backoff;
use swarm_upgrade::facts::model::{NodeFacts, Role, ServiceFacts};
use swarm_upgrade::transport::{Cmd, CmdOutput};

use super::SimCluster;
use super::SimError;
use super::record::Op;
use super::world::World;

impl Ops for SimCluster {
    fn traffic(&self) -> std::collections::BTreeMap<String, Traffic> {
        self.with(|w| {
            w.nodes
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let t = Traffic {
                        ssh_connections: None,
                        commands: w.commands[i],
                        api_requests: w.api_requests[i],
                    };
                    (n.hostname.clone(), t)
                })
                .collect()
        })
    }

    async fn node(&self, via: &str, node: &str) -> anyhow::Result<Option<NodeFacts>> {
        Ok(self.with(|w| {
            w.api(via)?;
            Ok::<_, SimError>(w.node_by_id(node).ok().map(|i| w.node_facts(i)))
        })?)
    }

    async fn managers(&self, via: &str) -> anyhow::Result<Vec<NodeFacts>> {
        Ok(self.with(|w| {
            w.api(via)?;
            Ok::<_, SimError>(w.managers.iter().map(|&i| w.node_facts(i)).collect())
        })?)
    }

    async fn update_node(&self, via: &str, node: &str, update: &NodeUpdate) -> anyhow::Result<()> {
        Ok(self.with(|w| {
            w.api(via)?;
            let i = w.node_by_id(node)?;
            let n = &mut w.nodes[i];
            n.version_index += 1;
            for k in &update.remove_labels {
                n.labels.remove(k);
            }
            for (k, v) in &update.add_labels {
                n.labels.insert(k.clone(), v.clone());
            }
            let moved = update.availability.is_some_and(|a| a != n.availability);
            if let Some(a) = update.availability {
                n.availability = a;
            }
            w.record(
                i,
                Op::Update {
                    availability: update.availability,
                },
                None,
            );
            if moved {
                w.node_changed(i);
            }
            Ok::<_, SimError>(())
        })?)
    }

    async fn node_tasks(&self, via: &str, node: &str) -> anyhow::Result<Vec<Task>> {
        Ok(self.with(|w| {
            w.api(via)?;
            let i = w.node_by_id(node)?;
            Ok::<_, SimError>(w.nodes[i].tasks.iter().map(|&t| w.task_facts(t)).collect())
        })?)
    }

    async fn services(
        &self,
        via: &str,
        ids: Option<&[String]>,
    ) -> anyhow::Result<Vec<ServiceFacts>> {
        Ok(self.with(|w| {
            w.api(via)?;
            Ok::<_, SimError>(w.service_indices(ids).map(|s| w.service_facts(s)).collect())
        })?)
    }

    async fn tasks(&self, via: &str, services: Option<&[String]>) -> anyhow::Result<Vec<Task>> {
        Ok(self.with(|w| {
            w.api(via)?;
            Ok::<_, SimError>(
                w.service_indices(services)
                    .flat_map(|s| w.services[s].tasks.iter().copied())
                    .filter(|&t| w.tasks[t].desired_running)
                    .map(|t| w.task_facts(t))
                    .collect(),
            )
        })?)
    }

    async fn task_stops<'a>(&'a self, node: &str) -> anyhow::Result<Events<'a>> {
        // Containers of the node's tasks, as its engine would count them.
        let containers = |w: &World, i: usize| {
            w.nodes[i]
                .tasks
                .iter()
                .filter(|&&t| matches!(w.task_facts(t).state.as_str(), "starting" | "running"))
                .count()
        };
        let (i, running) = self.with(|w| {
            let i = w.node_by_id(node)?;
            w.api_requests[i] += 1;
            let n = &w.nodes[i];
            if n.faults.ssh_lost || !n.engine_up {
                return Err(SimError(format!(
                    "host {}: the engine's event stream cannot open (simulated)",
                    n.hostname
                )));
            }
            Ok((i, containers(w, i)))
        })?;
        // An event each time fewer of them run; looked at on the executor's
        // own timer, which lets the simulated swarm move on meanwhile.
        let stops = futures_util::stream::unfold(running, move |mut before| async move {
            loop {
                tokio::time::sleep(Backoff::FIRST).await;
                let now = self.with(|w| containers(w, i));
                if now < before {
                    return Some((Ok(()), now));
                }
                before = now;
            }
        });
        Ok(Events::new(stops))
    }
    async fn lease_changes<'a>(&'a self, via: &str) -> anyhow::Result<Events<'a>> {
        self.changes(via, |w: &World| w.lease.clone())
    }

    async fn node_changes<'a>(&'a self, via: &str, node: &str) -> anyhow::Result<Events<'a>> {
        let node = node.to_string();
        self.changes(via, move |w: &World| {
            w.node_by_id(&node).ok().map(|j| w.node_facts(j))
        })
    }

    async fn engine_status(&self, node: &str) -> anyhow::Result<EngineStatus> {
        Ok(self.with(|w| {
            let i = w.node_by_id(node)?;
            w.api_requests[i] += 1;
            let n = &w.nodes[i];
            if n.faults.ssh_lost {
                return Err(SimError(format!("host {}: ssh: connection lost (simulated)", n.hostname)));
            }
            if !n.engine_up {
                return Err(SimError(format!(
                    "host {}: Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
                    n.hostname
                )));
            }
            Ok(EngineStatus {
                server_version: n.engine_version.clone(),
                swarm_state: if n.locked {
                    "locked"
                } else if n.joined {
                    "active"
                } else {
                    "pending"
                }
                .into(),
                control_available: n.role == Role::Manager && n.joined && !n.locked,
                swarm_error: String::new(),
            })
        })?)
    }

    async fn run(&self, node: &str, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
        let (output, duration) = self.with(|w| w.command(node, cmd, &self.scripts))?;
        self.started.notify_waiters();
        if !duration.is_zero() {
            // The effect is already scheduled for the end: a caller that gives
            // up (drops this future) leaves the remote command running, as SSH does.
            let due = self.now() + duration;
            self.sleep_until(due).await;
        }
        Ok(output)
    }

    async fn image_id(&self, node: &str, image: &str) -> anyhow::Result<Option<String>> {
        Ok(self.with(|w| {
            let i = w.engine_api(node)?;
            Ok::<_, SimError>(w.nodes[i].images.get(image).cloned())
        })?)
    }

    async fn copy_image(&self, from: &str, to: &str, image: &str) -> anyhow::Result<()> {
        Ok(self.with(|w| {
            let f = w.engine_api(from)?;
            let t = w.engine_api(to)?;
            let Some(id) = w.nodes[f].images.get(image).cloned() else {
                return Err(SimError(format!(
                    "host {}: GET /images/{image}/get: No such image: {image}",
                    w.nodes[f].hostname
                )));
            };
            w.image_arrived(t, image, id);
            w.record(t, Op::LoadImage(image.to_string()), None);
            Ok(())
        })?)
    }

    async fn pull_image(&self, node: &str, image: &str) -> anyhow::Result<()> {
        Ok(self.with(|w| {
            let i = w.engine_api(node)?;
            w.record(i, Op::PullImage(image.to_string()), None);
            // The simulated registry serves the generated services' images
            // only: an image of a service's own was built on a node.
            if w.services.iter().any(|s| s.image.as_deref() == Some(image)) {
                return Err(SimError(format!(
                    "host {}: pull access denied for {image}, repository does not exist or may require 'docker login'",
                    w.nodes[i].hostname
                )));
            }
            w.image_arrived(i, image, format!("sha256:registry-{image}"));
            Ok(())
        })?)
    }

    async fn run_local(&self, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
        Ok(self.with(|w| w.local_command(cmd))?)
    }

    async fn acquire_lease(
        &self,
        via: &str,
        lease: &Lease,
        break_stale: bool,
    ) -> anyhow::Result<LeaseOutcome> {
        Ok(self.with(|w| {
            w.api(via)?;
            match &w.lease {
                Some(held)
                    if held.run_id != lease.run_id
                        && !(break_stale && expired(&held.expires_at)) =>
                {
                    Ok::<_, SimError>(LeaseOutcome::Held(held.clone()))
                }
                _ => {
                    w.lease = Some(lease.clone());
                    Ok(LeaseOutcome::Acquired)
                }
            }
        })?)
    }

    async fn renew_lease(&self, via: &str, lease: &Lease) -> anyhow::Result<Control> {
        let renewed = self.with(|w| {
            w.api(via)?;
            Ok::<_, SimError>(held_by(w, &lease.run_id).inspect(|&control| {
                w.lease = Some(Lease {
                    control,
                    ..lease.clone()
                });
                w.lease_renewals += 1;
            }))
        })?;
        renewed.map_err(|why| LeaseLost(why).into())
    }

    async fn read_lease(&self, via: &str, lease: &Lease) -> anyhow::Result<Control> {
        let read = self.with(|w| {
            w.api(via)?;
            Ok::<_, SimError>(held_by(w, &lease.run_id))
        })?;
        read.map_err(|why| LeaseLost(why).into())
    }

    async fn mark_lease(&self, via: &str, run_id: &str, control: Control) -> anyhow::Result<()> {
        let marked = self.with(|w| {
            w.api(via)?;
            Ok::<_, SimError>(held_by(w, run_id).map(|_| {
                if let Some(held) = &mut w.lease {
                    held.control = control;
                }
            }))
        })?;
        marked.map_err(|why| LeaseLost(why).into())
    }

    async fn release_lease(&self, via: &str, run_id: &str) -> anyhow::Result<()> {
        Ok(self.with(|w| {
            w.api(via)?;
            if w.lease.as_ref().is_some_and(|l| l.run_id == run_id) {
                w.lease = None;
            }
            Ok::<_, SimError>(())
        })?)
    }
}

/// The operator's request in the lease when run `run_id` holds it; else why
/// the run lost it.
fn held_by(w: &World, run_id: &str) -> Result<Control, String> {
    match &w.lease {
        Some(held) if held.run_id == run_id => Ok(held.control),
        Some(other) => Err(format!(
            "it now belongs to run {} ({})",
            other.run_id, other.owner
        )),
        None => Err("it is gone from the swarm (expired and removed)".to_string()),
    }
}

impl SimCluster {
    /// A manager's event stream as `via` would hold it open: an event once
    /// what `seen` reads of the world differs from what it read when the
    /// stream opened (a manager reports every write of a swarm object),
    /// seen as soon as the stream is looked at, unless that manager is cut
    /// off from the others; the stream ends with that manager's engine or
    /// host. The timer only wakes a task waiting on it.
    fn changes<'a, T: PartialEq + Send + 'a>(
        &'a self,
        via: &str,
        seen: impl Fn(&World) -> T + Send + 'a,
    ) -> anyhow::Result<Events<'a>> {
        let (i, before) = self.with(|w| Ok::<_, SimError>((w.api(via)?, seen(w))))?;
        let mut before = Some(before);
        let mut tick = Box::pin(tokio::time::sleep(Backoff::FIRST));
        let changes = futures_util::stream::poll_fn(move |cx| {
            let Some(then) = &before else {
                return Poll::Ready(None);
            };
            // A manager cut off from the others hears of no change: its
            // stream stays open and quiet.
            let now = self.with(|w| {
                let n = &w.nodes[i];
                (!n.faults.ssh_lost && n.engine_up)
                    .then(|| (!n.faults.partitioned).then(|| seen(w)))
            });
            match now {
                None => {
                    before = None;
                    return Poll::Ready(None);
                }
                Some(None) => {}
                Some(Some(now)) if &now != then => {
                    before = Some(now);
                    return Poll::Ready(Some(Ok(())));
                }
                Some(Some(_)) => {}
            }
            while tick.as_mut().poll(cx).is_ready() {
                tick.as_mut()
                    .reset(tokio::time::Instant::now() + Backoff::FIRST);
            }
            Poll::Pending
        });
        Ok(Events::new(changes))
    }
}
