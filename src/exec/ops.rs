//! What the executor needs from a cluster, as a trait: the live cluster (SSH +
//! Engine API) implements it, and so can an in-process simulation.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};

use super::lease::{Control, Lease, LeaseOutcome};
use crate::facts::model::{Availability, NodeFacts, ServiceFacts, TaskFacts};
use crate::transport::{Cmd, CmdOutput};

/// What a node's own engine says about itself (`GET /info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStatus {
    pub server_version: String,
    /// `Swarm.LocalNodeState`: active, locked, pending, error, inactive.
    pub swarm_state: String,
    pub control_available: bool,
    pub swarm_error: String,
}

/// A change to a node's spec, applied with the node's current version index
/// (retried on "update out of sequence").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeUpdate {
    pub availability: Option<Availability>,
    pub add_labels: Vec<(String, String)>,
    pub remove_labels: Vec<String>,
}

/// What a run cost one host in remote round trips.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    /// SSH connections made to the host by this process (`None` where
    /// there is no SSH, as in the simulation).
    pub ssh_connections: Option<u64>,
    /// Commands run on the host (each one SSH channel).
    pub commands: u64,
    /// Engine API requests its engine answered (each through the forwarded socket).
    pub api_requests: u64,
}

/// A task as far as draining is concerned.
pub type Task = TaskFacts;

/// An engine's event stream (`GET /events` held open, filtered to what a
/// wait or a watch cares about), so that the executor asks again when
/// something happened instead of on a timer: a node's task containers
/// dying, the run lease changing.
pub struct Events<'a>(Pin<Box<dyn Stream<Item = anyhow::Result<()>> + Send + 'a>>);

impl<'a> Events<'a> {
    /// Each item: at least one event.
    pub fn new(events: impl Stream<Item = anyhow::Result<()>> + Send + 'a) -> Events<'a> {
        Events(Box::pin(events))
    }

    /// Waits up to `within` for the next event (`Duration::ZERO`: only
    /// looks at what already arrived): `Ok(true)` one came,
    /// `Ok(false)` none did. `Err`: the stream failed or ended (the engine
    /// went away); the caller polls instead.
    pub async fn next(&mut self, within: Duration) -> anyhow::Result<bool> {
        match tokio::time::timeout(within, self.0.next()).await {
            Err(_) => Ok(false),
            Ok(Some(Ok(()))) => Ok(true),
            Ok(Some(Err(e))) => Err(e),
            Ok(None) => Err(anyhow::anyhow!("the engine's event stream ended")),
        }
    }
}

/// Node IDs identify nodes everywhere; `via` is the node ID of the manager
/// whose Engine API answers the question (never the node being restarted).
///
/// Requests are as narrow as the question (one node, the managers, one
/// node's tasks): a 5,000-node swarm must not be listed for every step.
pub trait Ops: Send + Sync {
    /// One node as the swarm sees it; `None` when it is not in the swarm.
    fn node(
        &self,
        via: &str,
        node: &str,
    ) -> impl Future<Output = anyhow::Result<Option<NodeFacts>>> + Send;
    /// Every manager node.
    fn managers(&self, via: &str) -> impl Future<Output = anyhow::Result<Vec<NodeFacts>>> + Send;
    fn update_node(
        &self,
        via: &str,
        node: &str,
        update: &NodeUpdate,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Every task the swarm has on `node` (any desired state).
    fn node_tasks(
        &self,
        via: &str,
        node: &str,
    ) -> impl Future<Output = anyhow::Result<Vec<Task>>> + Send;
    /// Services with their running and desired task counts: every one, or
    /// those with the given IDs.
    fn services(
        &self,
        via: &str,
        ids: Option<&[String]>,
    ) -> impl Future<Output = anyhow::Result<Vec<ServiceFacts>>> + Send;
    /// Tasks whose desired state is running: of every service, or of those
    /// with the given IDs.
    fn tasks(
        &self,
        via: &str,
        services: Option<&[String]>,
    ) -> impl Future<Output = anyhow::Result<Vec<Task>>> + Send;
    /// Starts listening to the node's own engine for its swarm tasks'
    /// containers stopping (`GET /events`, held open); listening from the
    /// moment this returns.
    fn task_stops<'a>(
        &'a self,
        node: &str,
    ) -> impl Future<Output = anyhow::Result<Events<'a>>> + Send;
    /// The node's own engine (fails while it is stopped).
    fn engine_status(
        &self,
        node: &str,
    ) -> impl Future<Output = anyhow::Result<EngineStatus>> + Send;
    /// As [`Ops::engine_status`], for an engine just started: one that
    /// accepted the connection but does not answer yet (it answers once
    /// initialised, seconds on a busy host) is given longer before the
    /// request is given up, so one request sees it come up instead of a
    /// string of timed-out ones.
    fn starting_engine_status(
        &self,
        node: &str,
    ) -> impl Future<Output = anyhow::Result<EngineStatus>> + Send {
        self.engine_status(node)
    }
    /// Runs a command on the node's host.
    fn run(&self, node: &str, cmd: &Cmd) -> impl Future<Output = anyhow::Result<CmdOutput>> + Send;
    /// Runs a command on the controller, the machine running swarm-upgrade
    /// (operator hooks); a timeout kills it and is an exit status of 124.
    fn run_local(&self, cmd: &Cmd) -> impl Future<Output = anyhow::Result<CmdOutput>> + Send;
    /// Starts listening to `via`'s engine for changes to the run lease
    /// (`GET /events` of the lease's config, held open): a watch between
    /// two reads of it. Listening from the moment this returns.
    fn lease_changes<'a>(
        &'a self,
        via: &str,
    ) -> impl Future<Output = anyhow::Result<Events<'a>>> + Send;
    /// Starts listening to `via`'s engine for changes to `node` as the
    /// swarm records it (`GET /events` of that node: its state,
    /// availability, role); listening from the moment this returns.
    fn node_changes<'a>(
        &'a self,
        via: &str,
        node: &str,
    ) -> impl Future<Output = anyhow::Result<Events<'a>>> + Send;
    fn acquire_lease(
        &self,
        via: &str,
        lease: &Lease,
        break_stale: bool,
    ) -> impl Future<Output = anyhow::Result<LeaseOutcome>> + Send;
    /// Renews the lease, keeping an operator's request in it, and returns
    /// that request.
    fn renew_lease(
        &self,
        via: &str,
        lease: &Lease,
    ) -> impl Future<Output = anyhow::Result<Control>> + Send;
    /// Reads the lease without writing it: the operator's request it holds,
    /// or [`crate::exec::lease::LeaseLost`] when it is not this run's any
    /// more. One request where a renewal makes two.
    fn read_lease(
        &self,
        via: &str,
        lease: &Lease,
    ) -> impl Future<Output = anyhow::Result<Control>> + Send;
    /// Writes a request into the lease of run `run_id` (the run pausing
    /// itself after its canaries).
    fn mark_lease(
        &self,
        via: &str,
        run_id: &str,
        control: Control,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    fn release_lease(
        &self,
        via: &str,
        run_id: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The ID of an image in the node's own engine (`GET
    /// /images/{name}/json`); `None` when it does not hold it.
    fn image_id(
        &self,
        node: &str,
        image: &str,
    ) -> impl Future<Output = anyhow::Result<Option<String>>> + Send;
    /// Copies an image from one node's engine to another's, streamed
    /// through the controller (`GET /images/{name}/get` into `POST
    /// /images/load`): for images no registry serves (built or loaded on
    /// one node).
    fn copy_image(
        &self,
        from: &str,
        to: &str,
        image: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The node's engine pulls the image (`POST /images/create`), with no
    /// credentials: a registry that needs them answers with an error.
    fn pull_image(
        &self,
        node: &str,
        image: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Round trips so far, per host name.
    fn traffic(&self) -> std::collections::BTreeMap<String, Traffic>;
}
