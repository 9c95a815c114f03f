//! What the swarm itself records of runs, readable from any machine: the
//! run lease (a swarm config) and the `swarm-upgrade.*` labels of its nodes.
//! `status` shows it when the local state directory knows nothing (another
//! machine, or a lost one), and says what to run next.

use bollard::query_parameters::ListNodesOptions;

use crate::engine::{Engine, map};
use crate::exec::lease::{LEASE_NAME, Lease, expired};
use crate::exec::{LABEL_AVAILABILITY, LABEL_DONE, LABEL_RUN};
use crate::facts::model::{NodeFacts, Role};

#[derive(Debug, Clone, PartialEq)]
pub struct SwarmRecord {
    pub cluster_id: String,
    /// The lease of the run in progress (or of a run that died with it).
    pub lease: Option<Lease>,
    pub nodes: Vec<NodeFacts>,
}

/// One node as the swarm records it for runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeRecord {
    pub hostname: String,
    pub id: String,
    pub role: &'static str,
    pub availability: &'static str,
    pub engine_version: String,
    /// The run that drained it and has not restored it yet.
    pub held_by_run: Option<String>,
    /// Its availability before that run.
    pub original_availability: Option<String>,
    /// The version a run verified it at (`swarm-upgrade.done`).
    pub done: Option<String>,
}

pub async fn read(engine: &Engine) -> anyhow::Result<SwarmRecord> {
    use anyhow::Context;
    let d = engine.docker();
    let info = engine.info().await?;
    let cluster_id = info
        .swarm
        .and_then(|s| s.cluster)
        .and_then(|c| c.id)
        .unwrap_or_default();
    engine.log("GET /nodes, GET /configs/{LEASE_NAME}");
    let nodes = d
        .list_nodes(None::<ListNodesOptions>)
        .await
        .with_context(|| format!("host {}: GET /nodes", engine.host))?;
    let lease = match d.inspect_config(LEASE_NAME).await {
        Ok(c) => Some(super::live::lease_from(
            &c.spec.and_then(|s| s.labels).unwrap_or_default(),
        )),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => None,
        Err(e) => {
            return Err(e)
                .with_context(|| format!("host {}: GET /configs/{LEASE_NAME}", engine.host));
        }
    };
    let mut nodes: Vec<NodeFacts> = nodes.iter().map(map::node).collect();
    nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    Ok(SwarmRecord {
        cluster_id,
        lease,
        nodes,
    })
}

impl SwarmRecord {
    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.nodes
            .iter()
            .map(|n| NodeRecord {
                hostname: n.hostname.clone(),
                id: n.id.clone(),
                role: if n.role == Role::Manager {
                    "manager"
                } else {
                    "worker"
                },
                availability: n.availability.name(),
                engine_version: n.engine_version.clone(),
                held_by_run: n.labels.get(LABEL_RUN).cloned(),
                original_availability: n.labels.get(LABEL_AVAILABILITY).cloned(),
                done: n.labels.get(LABEL_DONE).cloned(),
            })
            .collect()
    }

    /// The runs the swarm shows unfinished: the lease's, then those that
    /// still hold a node.
    pub fn runs(&self) -> Vec<String> {
        let mut runs: Vec<String> = self.lease.iter().map(|l| l.run_id.clone()).collect();
        for n in &self.nodes {
            if let Some(r) = n.labels.get(LABEL_RUN)
                && !runs.contains(r)
            {
                runs.push(r.clone());
            }
        }
        runs
    }

    /// The pin the unfinished run verified nodes at, when the labels say.
    fn pin(&self) -> Option<&str> {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for n in &self.nodes {
            if let Some(v) = n.labels.get(LABEL_DONE) {
                *counts.entry(v.as_str()).or_default() += 1;
            }
        }
        counts.into_iter().max_by_key(|(_, c)| *c).map(|(v, _)| v)
    }

    /// What the operator runs next, judged from the swarm alone.
    pub fn next(&self) -> String {
        let pin = self.pin().unwrap_or("PIN");
        let held: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.labels.contains_key(LABEL_RUN))
            .map(|n| n.hostname.as_str())
            .collect();
        let held_text = if held.is_empty() {
            String::new()
        } else {
            format!(" It holds {} drained: {}.", held.len(), held.join(", "))
        };
        match &self.lease {
            Some(l) if !expired(&l.expires_at) => format!(
                "run {} of {} holds the swarm's lease until {}: it is in progress on that machine \
                 (`swarm-upgrade status` there shows its steps); wait for it.{held_text} If that machine is gone, \
                 finish the run from here after {}: `swarm-upgrade apply --pin {pin} --break-lock --inventory FILE`.",
                l.run_id, l.owner, l.expires_at, l.expires_at
            ),
            Some(l) => format!(
                "run {} of {} stopped without releasing the swarm's lease (expired {}): its controller is gone.{held_text} \
                 Finish it from any machine: `swarm-upgrade apply --pin {pin} --break-lock --inventory FILE` (nodes at \
                 the pin are skipped, drained nodes get their availability back).",
                l.run_id, l.owner, l.expires_at
            ),
            None if !held.is_empty() => format!(
                "no run holds the lease, but run(s) {} stopped and left nodes drained.{held_text} \
                 `swarm-upgrade apply --pin {pin} --inventory FILE` restores them and finishes the upgrade \
                 (`resume` or `rollback` on the machine that ran it continue or revert that run).",
                self.runs().join(", ")
            ),
            None => "no run is in progress and no node is held by one: nothing to finish \
                     (`swarm-upgrade plan` shows what an upgrade would do)."
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::model::Availability;
    use crate::plan::testutil::lab_facts;

    fn lab(lease: Option<Lease>) -> SwarmRecord {
        SwarmRecord {
            cluster_id: "c1".into(),
            lease,
            nodes: lab_facts().cluster.nodes,
        }
    }

    fn lease(expires_at: &str) -> Lease {
        Lease {
            run_id: "20261202T1100Z-abc".into(),
            owner: "ops@ctl1 pid 42".into(),
            started_at: "2026-12-02T11:00:00Z".into(),
            expires_at: expires_at.into(),
            ttl_secs: 900,
            control: Default::default(),
        }
    }

    /// lab-m2 done at 26.1.5 and restored; lab-m3 drained by the run.
    fn mid_run(mut r: SwarmRecord) -> SwarmRecord {
        for n in &mut r.nodes {
            match n.hostname.as_str() {
                "lab-m2" => {
                    n.labels.insert(LABEL_DONE.into(), "26.1.5".into());
                }
                "lab-m3" => {
                    n.availability = Availability::Drain;
                    n.labels
                        .insert(LABEL_RUN.into(), "20261202T1100Z-abc".into());
                    n.labels.insert(LABEL_AVAILABILITY.into(), "active".into());
                }
                _ => {}
            }
        }
        r
    }

    #[test]
    fn a_live_lease_says_wait_and_names_its_holder() {
        let r = mid_run(lab(Some(lease("2999-01-01T00:00:00Z"))));
        let next = r.next();
        assert!(
            next.contains(
                "run 20261202T1100Z-abc of ops@ctl1 pid 42 holds the swarm's lease until 2999"
            ),
            "{next}"
        );
        assert!(next.contains("wait for it"), "{next}");
        assert!(next.contains("It holds 1 drained: lab-m3."), "{next}");
        assert_eq!(r.runs(), ["20261202T1100Z-abc"]);
        let m3 = r
            .nodes()
            .into_iter()
            .find(|n| n.hostname == "lab-m3")
            .unwrap();
        assert_eq!(m3.held_by_run.as_deref(), Some("20261202T1100Z-abc"));
        assert_eq!(m3.original_availability.as_deref(), Some("active"));
        assert_eq!(m3.availability, "drain");
    }

    #[test]
    fn an_expired_lease_says_finish_it_from_here_with_the_pin() {
        let next = mid_run(lab(Some(lease("2020-01-01T00:00:00Z")))).next();
        assert!(
            next.contains("stopped without releasing the swarm's lease (expired 2020"),
            "{next}"
        );
        assert!(next.contains("apply --pin 26.1.5 --break-lock"), "{next}");
    }

    #[test]
    fn without_a_lease_drained_nodes_or_nothing() {
        let next = mid_run(lab(None)).next();
        assert!(
            next.contains("run(s) 20261202T1100Z-abc stopped and left nodes drained"),
            "{next}"
        );
        assert!(
            next.contains("apply --pin 26.1.5 --inventory FILE"),
            "{next}"
        );
        let next = lab(None).next();
        assert!(next.contains("no run is in progress"), "{next}");
        assert!(lab(None).runs().is_empty());
    }
}
