//! The live cluster: SSH for commands, each node's Engine API through its own
//! SSH-forwarded socket (opened on first use, kept for the run).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bollard::errors::Error as BollardError;
use bollard::models::{ConfigSpec, Node, NodeSpecAvailabilityEnum};
use bollard::query_parameters::{
    ListNodesOptions, ListServicesOptions, UpdateConfigOptions, UpdateNodeOptions,
};
use tokio::sync::Mutex;

use crate::engine::{Engine, map, raw};
use crate::exec::lease::{
    Control, LEASE_NAME, Lease, LeaseLost, LeaseOutcome, expired_on_swarm_clock,
};
use crate::exec::operation::{LEASE_CHANGES, TASK_STOPS};
use crate::exec::ops::{EngineStatus, Events, NodeUpdate, Ops, Task, Traffic};
use crate::facts::model::{Availability, NodeFacts, ServiceFacts};
use crate::transport::ssh::SshHost;
use crate::transport::{Cmd, CmdOutput, Transport};

pub struct LiveOps {
    hosts: BTreeMap<String, SshHost>,
    engines: Mutex<HashMap<String, Engine>>,
    runtime_dir: PathBuf,
    /// Per node ID: (commands, Engine API requests), for [`Ops::traffic`].
    counts: std::sync::Mutex<HashMap<String, (u64, u64)>>,
    /// Per node ID: GET /info timeouts in a row.
    info_timeouts: std::sync::Mutex<HashMap<String, u32>>,
    /// Per node ID: the node object as last read from a manager. An update
    /// starts from it instead of reading it again: the swarm applies an
    /// update only at the version it was read at, so one that is stale is
    /// refused (out of sequence) and read again, never written over.
    last_read: std::sync::Mutex<HashMap<String, Node>>,
}

impl LiveOps {
    pub fn new(
        hosts: BTreeMap<String, SshHost>,
        manager: (String, Engine),
        runtime_dir: PathBuf,
    ) -> LiveOps {
        LiveOps {
            hosts,
            engines: Mutex::new(HashMap::from([manager])),
            runtime_dir,
            counts: std::sync::Mutex::new(HashMap::new()),
            info_timeouts: std::sync::Mutex::new(HashMap::new()),
            last_read: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, nodes: &[Node]) {
        if let Ok(mut last) = self.last_read.lock() {
            for n in nodes {
                if let Some(id) = &n.id {
                    last.insert(id.clone(), n.clone());
                }
            }
        }
    }

    fn last_read(&self, node: &str) -> Option<Node> {
        self.last_read.lock().ok()?.remove(node)
    }

    /// Counts `n` Engine API requests answered by `node`'s engine, and logs
    /// them (`call`: method and path).
    fn api(&self, node: &str, n: u64, call: &str) {
        tracing::debug!(node, "api: {call}");
        if let Ok(mut c) = self.counts.lock() {
            c.entry(node.to_string()).or_default().1 += n;
        }
    }

    pub fn host(&self, node: &str) -> anyhow::Result<&SshHost> {
        self.hosts
            .get(node)
            .ok_or_else(|| anyhow!("node {node}: its host could not be reached over SSH"))
    }

    async fn engine(&self, node: &str) -> anyhow::Result<Engine> {
        // Its API is forwarded over the host's SSH master: a lost master is
        // re-established (and the socket forwarded again) first.
        if let Ok(h) = self.host(node) {
            h.ensure_live().await?;
        }
        let mut engines = self.engines.lock().await;
        if let Some(e) = engines.get(node) {
            return Ok(e.clone());
        }
        // Connecting negotiates the API version: one request.
        self.api(node, 1, "connect (GET /_ping, /version)");
        let e = Engine::connect(self.host(node)?, &self.socket_dir(node)?).await?;
        engines.insert(node.to_string(), e.clone());
        Ok(e)
    }

    /// `GET /events` of `node`'s engine with `filter`, held open (`what`:
    /// what it is for, in the log).
    async fn events<'a>(
        &'a self,
        node: &str,
        filter: &str,
        what: &str,
    ) -> anyhow::Result<Events<'a>> {
        // On a fresh connection over the forwarded socket, like /info: the
        // pooled API client's connections are for short requests.
        let host = self.host(node)?;
        host.ensure_live().await?;
        let socket = host.forward_docker_socket(&self.socket_dir(node)?).await?;
        self.api(node, 1, &format!("GET /events ({what}, held open)"));
        let chunks = raw::open_stream(&socket, "/events", &[("filters", filter)]).await?;
        // Each chunk is one or more events; the stream ends with the
        // connection (the engine stopped).
        Ok(Events::new(futures_util::stream::unfold(
            Some(chunks),
            |chunks| async move {
                let mut chunks = chunks?;
                match chunks.next().await {
                    Ok(Some(_)) => Some((Ok(()), Some(chunks))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), None)),
                }
            },
        )))
    }

    /// `GET /info` of `node`'s own engine; the first request may take
    /// 2^`patience` s (see [`Ops::starting_engine_status`]).
    async fn engine_status_from(&self, node: &str, patience: u32) -> anyhow::Result<EngineStatus> {
        let host = self.host(node)?;
        // Polled while the engine restarts, so straight over the forwarded
        // socket on a fresh connection, without the API client (whose
        // version negotiation and pooled keep-alive connections hung after a
        // restart on the lab, making verify see the engine up to 10 s late).
        // A healthy /info takes ms; the timeout starts at 1 s and doubles
        // (to 8 s) with each timeout in a row, within one call too (up to
        // 1 + 2 + 4 s): a single question (verify-services, a soak check)
        // to an engine slowed by a busy host gets its answer in instead of
        // stopping the run or failing a healthy node. A stopped engine
        // refuses at once, so this does not slow noticing one.
        // The limit is for the engine's answer: a master lost meanwhile (a
        // bastion restarting) is reopened first, within its own bounds.
        host.ensure_live().await?;
        let dir = self.socket_dir(node)?;
        let name = &host.target.name;
        let mut tries = 0;
        let info = loop {
            tries += 1;
            self.api(node, 1, "GET /info (fresh connection)");
            let in_a_row = self
                .info_timeouts
                .lock()
                .map_or(0, |m| m.get(node).copied().unwrap_or(0));
            let limit = Duration::from_secs(1 << (in_a_row + patience).min(3));
            let get = async {
                let socket = host.forward_docker_socket(&dir).await?;
                raw::get_json(&socket, "/info", &[]).await
            };
            let answer = tokio::time::timeout(limit, get).await;
            if let Ok(mut m) = self.info_timeouts.lock() {
                m.insert(
                    node.to_string(),
                    if answer.is_ok() { 0 } else { in_a_row + 1 },
                );
            }
            match answer {
                Ok(info) => break info.with_context(|| format!("host {name}: GET /info"))?,
                // At most 1 + 2 + 4 s in one call (4 + 8 + 8 s starting);
                // an engine already slow gets one try per call, as before.
                Err(_) if tries < 3 && in_a_row < 2 => continue,
                Err(_) => bail!(
                    "host {name}: GET /info timed out ({} s, after {} tries)",
                    limit.as_secs(),
                    tries
                ),
            }
        };
        same_node(name, node, &info)?;
        Ok(engine_status(&info))
    }

    fn socket_dir(&self, node: &str) -> anyhow::Result<PathBuf> {
        socket_dir(&self.runtime_dir, node)
    }

    pub async fn close(self) {
        for (_, h) in self.hosts {
            h.close().await;
        }
    }
}

fn is_conflict(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn is_out_of_sequence(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { message, .. } if message.contains("out of sequence"))
}

fn lease_labels(l: &Lease) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        ("run".to_string(), l.run_id.clone()),
        ("owner".to_string(), l.owner.clone()),
        ("started".to_string(), l.started_at.clone()),
        ("expires".to_string(), l.expires_at.clone()),
        ("ttl".to_string(), l.ttl_secs.to_string()),
    ]);
    if let Some(c) = l.control.label() {
        labels.insert("control".to_string(), c.to_string());
    }
    labels
}

pub(crate) fn lease_from(labels: &HashMap<String, String>) -> Lease {
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    Lease {
        run_id: get("run"),
        owner: get("owner"),
        started_at: get("started"),
        expires_at: get("expires"),
        ttl_secs: get("ttl").parse().unwrap_or(0),
        control: Control::from_label(labels.get("control").map(String::as_str)),
    }
}

/// Writes `control` into the lease of the run in progress (of `run_id`,
/// when given), keeping everything else; returns the lease as marked.
/// By version index: a renewal written meanwhile makes it read and try again.
pub(crate) async fn mark_lease(
    d: &bollard::Docker,
    run_id: Option<&str>,
    control: Control,
) -> anyhow::Result<Lease> {
    for _ in 0..5 {
        let c = match d.inspect_config(LEASE_NAME).await {
            Ok(c) => c,
            Err(err) if is_not_found(&err) => {
                return Err(crate::error::usage(
                    "no run is in progress on this swarm (it holds no run lease): nothing to pause, continue or abort",
                ));
            }
            Err(err) => return Err(anyhow::Error::from(err).context("reading the run lease")),
        };
        let version = c
            .version
            .and_then(|v| v.index)
            .context("lease has no version")?;
        let mut spec = c.spec.context("lease has no spec")?;
        let mut held = lease_from(&spec.labels.clone().unwrap_or_default());
        if let Some(run) = run_id
            && held.run_id != run
        {
            return Err(LeaseLost(format!(
                "it now belongs to run {} ({})",
                held.run_id, held.owner
            ))
            .into());
        }
        held.control = control;
        spec.labels = Some(lease_labels(&held));
        match d
            .update_config(
                LEASE_NAME,
                spec,
                UpdateConfigOptions {
                    version: version as i64,
                },
            )
            .await
        {
            Ok(()) => return Ok(held),
            Err(err) if is_out_of_sequence(&err) => continue,
            Err(err) => return Err(anyhow::Error::from(err).context("marking the run lease")),
        }
    }
    Err(anyhow!(
        "the run lease kept changing while it was being marked; try again"
    ))
}

/// Every poll checks that the engine answering is the swarm node polled
/// (I6): a host swapped or rejoined under the run must not be judged, nor
/// commanded, as the node it was. An engine in no swarm, or locked, has no
/// NodeID to compare (the swarm state says so).
fn same_node(host: &str, node: &str, info: &serde_json::Value) -> anyhow::Result<()> {
    let engine = info["Swarm"]["NodeID"].as_str().unwrap_or_default();
    anyhow::ensure!(
        engine.is_empty() || engine == node,
        "host {host}: its engine is swarm node {engine}, not node {node}: the host is another \
         node than the one it was matched to; stopping before anything reaches it"
    );
    Ok(())
}

/// The lease as the swarm holds it, when it is still `lease`'s run's: its
/// version (to update it by), its spec and what its labels say.
async fn held_lease(
    d: &bollard::Docker,
    lease: &Lease,
) -> anyhow::Result<(u64, bollard::models::ConfigSpec, Lease)> {
    let c = match d.inspect_config(LEASE_NAME).await {
        Ok(c) => c,
        Err(err) if is_not_found(&err) => {
            return Err(LeaseLost("it is gone from the swarm (expired and removed)".into()).into());
        }
        Err(err) => return Err(anyhow::Error::from(err).context("reading the run lease")),
    };
    let version = c
        .version
        .and_then(|v| v.index)
        .context("lease has no version")?;
    let spec = c.spec.context("lease has no spec")?;
    let held = lease_from(&spec.labels.clone().unwrap_or_default());
    if held.run_id != lease.run_id {
        return Err(LeaseLost(format!(
            "it now belongs to run {} ({})",
            held.run_id, held.owner
        ))
        .into());
    }
    Ok((version, spec, held))
}

/// The fields of `GET /info` the executor polls.
fn engine_status(info: &serde_json::Value) -> EngineStatus {
    let swarm = &info["Swarm"];
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    EngineStatus {
        server_version: text(&info["ServerVersion"]),
        swarm_state: text(&swarm["LocalNodeState"]),
        control_available: swarm["ControlAvailable"].as_bool().unwrap_or(false),
        swarm_error: text(&swarm["Error"]),
    }
}

impl Ops for LiveOps {
    async fn node(&self, via: &str, node: &str) -> anyhow::Result<Option<NodeFacts>> {
        let e = self.engine(via).await?;
        self.api(via, 1, &format!("GET /nodes/{node}"));
        match e.docker().inspect_node(node).await {
            Ok(n) => {
                self.remember(std::slice::from_ref(&n));
                Ok(Some(map::node(&n)))
            }
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(err) => Err(err).with_context(|| format!("host {}: GET /nodes/{node}", e.host)),
        }
    }

    async fn managers(&self, via: &str) -> anyhow::Result<Vec<NodeFacts>> {
        let e = self.engine(via).await?;
        self.api(via, 1, "GET /nodes?filters=role=manager");
        let nodes = e
            .docker()
            .list_nodes(Some(ListNodesOptions {
                filters: Some(HashMap::from([(
                    "role".to_string(),
                    vec!["manager".to_string()],
                )])),
            }))
            .await
            .with_context(|| format!("host {}: GET /nodes?filters=role=manager", e.host))?;
        self.remember(&nodes);
        Ok(nodes.iter().map(map::node).collect())
    }

    async fn update_node(&self, via: &str, node: &str, update: &NodeUpdate) -> anyhow::Result<()> {
        let e = self.engine(via).await?;
        let d = e.docker();
        for attempt in 0.. {
            // A retry means the node changed since it was read: read it now.
            let last = if attempt == 0 {
                self.last_read(node)
            } else {
                None
            };
            let n = match last {
                Some(n) => n,
                None => {
                    self.api(via, 1, &format!("GET /nodes/{node}"));
                    d.inspect_node(node)
                        .await
                        .with_context(|| format!("host {}: GET /nodes/{node}", e.host))?
                }
            };
            let version = n
                .version
                .and_then(|v| v.index)
                .context("node has no version")?;
            let mut spec = n.spec.context("node has no spec")?;
            if let Some(a) = update.availability {
                spec.availability = Some(match a {
                    Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
                    Availability::Pause => NodeSpecAvailabilityEnum::PAUSE,
                    Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
                });
            }
            let labels = spec.labels.get_or_insert_with(HashMap::new);
            for k in &update.remove_labels {
                labels.remove(k);
            }
            for (k, v) in &update.add_labels {
                labels.insert(k.clone(), v.clone());
            }
            self.api(via, 1, &format!("POST /nodes/{node}/update"));
            match d
                .update_node(
                    node,
                    spec,
                    UpdateNodeOptions {
                        version: version as i64,
                    },
                )
                .await
            {
                Ok(()) => return Ok(()),
                // Someone (the swarm itself) updated the node meanwhile: re-read.
                Err(err) if is_out_of_sequence(&err) && attempt < 5 => continue,
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("host {}: POST /nodes/{node}/update", e.host));
                }
            }
        }
        unreachable!()
    }

    async fn node_tasks(&self, via: &str, node: &str) -> anyhow::Result<Vec<Task>> {
        let e = self.engine(via).await?;
        self.api(via, 1, &format!("GET /tasks?filters=node={node}"));
        let filter = serde_json::json!({ "node": [node] }).to_string();
        let v = e.get_json("/tasks", &[("filters", &filter)]).await?;
        Ok(v.as_array()
            .map(|a| a.iter().map(map::task).collect())
            .unwrap_or_default())
    }

    async fn services(
        &self,
        via: &str,
        ids: Option<&[String]>,
    ) -> anyhow::Result<Vec<ServiceFacts>> {
        let e = self.engine(via).await?;
        self.api(via, 1, "GET /services");
        let s = e
            .docker()
            .list_services(Some(ListServicesOptions {
                status: Some(true),
                filters: ids.map(|ids| HashMap::from([("id".to_string(), ids.to_vec())])),
            }))
            .await
            .with_context(|| format!("host {}: GET /services", e.host))?;
        Ok(s.iter().map(map::service).collect())
    }

    async fn tasks(&self, via: &str, services: Option<&[String]>) -> anyhow::Result<Vec<Task>> {
        let e = self.engine(via).await?;
        self.api(via, 1, "GET /tasks?filters=desired-state=running");
        let mut filters = serde_json::json!({ "desired-state": ["running"] });
        if let Some(ids) = services {
            filters["service"] = serde_json::json!(ids);
        }
        let v = e
            .get_json("/tasks", &[("filters", &filters.to_string())])
            .await?;
        Ok(v.as_array()
            .map(|a| a.iter().map(map::task).collect())
            .unwrap_or_default())
    }

    async fn task_stops<'a>(&'a self, node: &str) -> anyhow::Result<Events<'a>> {
        self.events(node, TASK_STOPS, "task containers dying").await
    }

    async fn node_changes<'a>(&'a self, via: &str, node: &str) -> anyhow::Result<Events<'a>> {
        let filter = serde_json::json!({"type": ["node"], "node": [node]}).to_string();
        self.events(via, &filter, &format!("changes to node {node}"))
            .await
    }

    async fn lease_changes<'a>(&'a self, via: &str) -> anyhow::Result<Events<'a>> {
        self.events(via, LEASE_CHANGES, "the run lease's changes")
            .await
    }

    async fn engine_status(&self, node: &str) -> anyhow::Result<EngineStatus> {
        self.engine_status_from(node, 0).await
    }

    async fn starting_engine_status(&self, node: &str) -> anyhow::Result<EngineStatus> {
        // 4 s, then 8 s: on the lab a restarted engine accepts its socket's
        // connections 0.1 s after its start and answers 1.5–4 s later.
        self.engine_status_from(node, 2).await
    }

    async fn image_id(&self, node: &str, image: &str) -> anyhow::Result<Option<String>> {
        let e = self.engine(node).await?;
        self.api(node, 1, &format!("GET /images/{image}/json"));
        e.image_id(image).await
    }

    async fn copy_image(&self, from: &str, to: &str, image: &str) -> anyhow::Result<()> {
        let (source, target) = (self.engine(from).await?, self.engine(to).await?);
        self.api(from, 1, &format!("GET /images/{image}/get"));
        self.api(to, 1, "POST /images/load");
        target.load_from(&source, image).await
    }

    async fn pull_image(&self, node: &str, image: &str) -> anyhow::Result<()> {
        let e = self.engine(node).await?;
        self.api(node, 1, &format!("POST /images/create?fromImage={image}"));
        e.pull(image).await
    }

    async fn run(&self, node: &str, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
        let host = self.host(node)?;
        if let Ok(mut c) = self.counts.lock() {
            c.entry(node.to_string()).or_default().0 += 1;
        }
        let out = host.run(cmd).await;
        // A command may have restarted the node's engine; the API client's
        // pooled connections would then lead to the old one and hang. The
        // next request connects afresh (through the same socket forward).
        if !cmd.keeps_engine {
            self.engines.lock().await.remove(node);
        }
        out
    }

    async fn run_local(&self, cmd: &Cmd) -> anyhow::Result<CmdOutput> {
        crate::transport::local::run(cmd).await
    }

    async fn acquire_lease(
        &self,
        via: &str,
        lease: &Lease,
        break_stale: bool,
    ) -> anyhow::Result<LeaseOutcome> {
        let e = self.engine(via).await?;
        let d = e.docker();
        let spec = || ConfigSpec {
            name: Some(LEASE_NAME.to_string()),
            labels: Some(lease_labels(lease)),
            data: Some("c3dhcm0tdXBncmFkZSBydW4gbGVhc2U=".to_string()),
            ..Default::default()
        };
        for _ in 0..2 {
            self.api(via, 1, "POST /configs/create (the run lease)");
            match d.create_config(spec()).await {
                Ok(_) => return Ok(LeaseOutcome::Acquired),
                Err(err) if is_conflict(&err) => {
                    self.api(via, 1, "GET /configs/{LEASE_NAME}");
                    let c = d
                        .inspect_config(LEASE_NAME)
                        .await
                        .context("reading the run lease")?;
                    let labels = c
                        .spec
                        .as_ref()
                        .and_then(|s| s.labels.clone())
                        .unwrap_or_default();
                    let held = lease_from(&labels);
                    if held.run_id == lease.run_id {
                        // Our own run, resumed: take it over.
                        self.renew_lease(via, lease).await?;
                        return Ok(LeaseOutcome::Acquired);
                    }
                    // Judged on the swarm's clock: its config's last write
                    // and the manager's own time.
                    let stale = break_stale && {
                        self.api(via, 1, "GET /info");
                        let now = d.info().await.ok().and_then(|i| i.system_time);
                        expired_on_swarm_clock(&held, c.updated_at.as_deref(), now.as_deref())
                    };
                    if stale {
                        // By ID, not by name: a lease another run created
                        // after we looked is a new object and stays.
                        let id = c.id.clone().context("the run lease has no ID")?;
                        self.api(via, 1, "DELETE /configs/{id} (a stale run lease)");
                        d.delete_config(&id)
                            .await
                            .context("breaking the stale run lease")?;
                        continue;
                    }
                    return Ok(LeaseOutcome::Held(held));
                }
                Err(err) => return Err(err).context("creating the run lease"),
            }
        }
        Err(anyhow!(
            "the run lease changed hands while it was being broken; try again"
        ))
    }

    async fn renew_lease(&self, via: &str, lease: &Lease) -> anyhow::Result<Control> {
        let e = self.engine(via).await?;
        let d = e.docker();
        self.api(
            via,
            2,
            "GET /configs/{LEASE_NAME} + POST /configs/{id}/update (renew the run lease)",
        );
        let (version, mut spec, held) = held_lease(d, lease).await?;
        // The operator's request stays until `continue` clears it; the
        // update is by version index, so a request written meanwhile makes
        // this renewal fail (tried again) rather than vanish.
        let renewed = Lease {
            control: held.control,
            ..lease.clone()
        };
        spec.labels = Some(lease_labels(&renewed));
        d.update_config(
            LEASE_NAME,
            spec,
            UpdateConfigOptions {
                version: version as i64,
            },
        )
        .await
        .context("renewing the run lease")?;
        Ok(held.control)
    }

    async fn read_lease(&self, via: &str, lease: &Lease) -> anyhow::Result<Control> {
        let e = self.engine(via).await?;
        self.api(via, 1, "GET /configs/{LEASE_NAME} (read the run lease)");
        let (_, _, held) = held_lease(e.docker(), lease).await?;
        Ok(held.control)
    }

    async fn mark_lease(&self, via: &str, run_id: &str, control: Control) -> anyhow::Result<()> {
        let e = self.engine(via).await?;
        self.api(
            via,
            2,
            "GET /configs/{name}, POST /configs/{id}/update (run lease control)",
        );
        mark_lease(e.docker(), Some(run_id), control)
            .await
            .map(|_| ())
    }

    async fn release_lease(&self, via: &str, run_id: &str) -> anyhow::Result<()> {
        let e = self.engine(via).await?;
        let d = e.docker();
        self.api(via, 1, "GET /configs/{LEASE_NAME}");
        let Ok(c) = d.inspect_config(LEASE_NAME).await else {
            return Ok(());
        };
        let labels = c.spec.and_then(|s| s.labels).unwrap_or_default();
        if lease_from(&labels).run_id == run_id {
            // By ID: a lease created by another run after we looked is not ours.
            let id = c.id.context("the run lease has no ID")?;
            self.api(via, 1, "DELETE /configs/{id} (release the run lease)");
            d.delete_config(&id)
                .await
                .context("releasing the run lease")?;
        }
        Ok(())
    }

    fn traffic(&self) -> BTreeMap<String, Traffic> {
        let counts = self.counts.lock().map(|c| c.clone()).unwrap_or_default();
        self.hosts
            .iter()
            .map(|(id, h)| {
                let (commands, api_requests) = counts.get(id).copied().unwrap_or_default();
                let name = h.target.name.clone();
                let t = Traffic {
                    ssh_connections: Some(crate::transport::ssh::connections_made(&name)),
                    commands,
                    api_requests,
                };
                (name, t)
            })
            .collect()
    }
}

/// The private directory of `node`'s forwarded Docker socket, keyed by the
/// swarm node ID: two hosts whose names sanitize alike never share a socket.
/// (A host already forwarded keeps its socket: the manager the facts were
/// read through.)
pub(super) fn socket_dir(runtime_dir: &Path, node: &str) -> anyhow::Result<PathBuf> {
    let key: String = node.chars().filter(char::is_ascii_alphanumeric).collect();
    anyhow::ensure!(!key.is_empty(), "node ID {node:?} has no usable characters");
    let dir = runtime_dir.join(key);
    crate::files::mkdir_private(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_status_reads_the_polled_fields_of_info() {
        let info = serde_json::json!({
            "ServerVersion": "26.1.5+dfsg1",
            "Swarm": {
                "LocalNodeState": "active",
                "ControlAvailable": true,
                "Error": "",
                "Managers": 3,
                "Nodes": 5,
            },
        });
        assert_eq!(
            engine_status(&info),
            EngineStatus {
                server_version: "26.1.5+dfsg1".into(),
                swarm_state: "active".into(),
                control_available: true,
                swarm_error: String::new(),
            }
        );
        // A locked manager, and an engine that says nothing about a swarm.
        let locked =
            serde_json::json!({"ServerVersion": "26.1.5", "Swarm": {"LocalNodeState": "locked"}});
        assert_eq!(engine_status(&locked).swarm_state, "locked");
        assert!(!engine_status(&locked).control_available);
        assert_eq!(
            engine_status(&serde_json::json!({})),
            EngineStatus::default()
        );
    }

    #[test]
    fn a_poll_answered_by_another_nodes_engine_is_an_error() {
        let info =
            |id: &str| serde_json::json!({"Swarm": {"NodeID": id, "LocalNodeState": "active"}});
        same_node("lab-m2", "m2id", &info("m2id")).unwrap();
        same_node("lab-m2", "m2id", &info("")).unwrap();
        let err = same_node("lab-m2", "m2id", &info("m3id")).unwrap_err();
        assert!(
            err.to_string()
                .contains("host lab-m2: its engine is swarm node m3id, not node m2id"),
            "{err}"
        );
    }
}
