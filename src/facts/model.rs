//! The facts: what the tool knows about a cluster, as plain data.
//!
//! Gathering (SSH, Engine API) fills these types; checks and the planner only
//! read them. They serialize, so a cluster can be captured to JSON and replayed
//! in tests and benchmarks without any I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything known about one swarm, as seen from one manager plus every host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Facts {
    pub cluster: ClusterFacts,
    /// Per swarm node ID: what SSH showed about that host.
    pub hosts: BTreeMap<String, HostFacts>,
    /// Per swarm node ID: why its host could not be read over SSH.
    #[serde(default)]
    pub unreachable: BTreeMap<String, String>,
    /// Per image reference of a service: what its registry answered a node
    /// that lacks the image and could receive its tasks (asked once per
    /// image). Empty when not asked.
    #[serde(default)]
    pub registry: BTreeMap<String, RegistryAnswer>,
}

/// What an image's registry answered one node's engine, without credentials
/// (`GET /distribution/{image}/json`: the engine asks the registry as a pull
/// would): whether that node could pull the image when tasks move there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegistryAnswer {
    /// The node whose engine asked (hostname).
    pub asked_from: String,
    pub outcome: RegistryOutcome,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum RegistryOutcome {
    /// The registry serves the image to anyone: its manifest digest.
    Pullable { digest: String },
    /// The registry wants credentials the node's engine does not have.
    Unauthorized { error: String },
    /// No answer, or no such image: the engine's error.
    Failed { error: String },
}

/// The swarm as the Engine API of a manager describes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClusterFacts {
    /// Swarm cluster ID (`/info` Swarm.Cluster.ID).
    pub id: String,
    /// The manager these facts were read from.
    pub observed_via: String,
    pub nodes: Vec<NodeFacts>,
    pub services: Vec<ServiceFacts>,
    /// Tasks whose desired state is running.
    pub tasks: Vec<TaskFacts>,
    /// Swarm-scoped overlay networks, ingress included.
    pub networks: Vec<NetworkFacts>,
    pub swarm: SwarmSettings,
}

/// Cluster-wide settings that matter for an upgrade.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SwarmSettings {
    /// `Spec.EncryptionConfig.AutoLockManagers`: managers come back locked.
    pub autolock: bool,
    /// `RootRotationInProgress`.
    pub root_rotation_in_progress: bool,
    /// `Spec.CAConfig.NodeCertExpiry`, in seconds.
    pub node_cert_expiry_secs: Option<u64>,
    /// `Spec.Dispatcher.HeartbeatPeriod`, in seconds.
    pub heartbeat_period_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Manager,
    Worker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

impl Availability {
    /// As the Engine API and `docker node update --availability` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    Unknown,
    Down,
    Ready,
    Disconnected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reachability {
    Unknown,
    Unreachable,
    Reachable,
}

/// One swarm node (`GET /nodes`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeFacts {
    pub id: String,
    pub hostname: String,
    /// `Status.Addr`: the address the node talks to the swarm from.
    pub addr: String,
    pub role: Role,
    pub availability: Availability,
    pub state: NodeState,
    /// `Status.Message`, e.g. "heartbeat failure".
    #[serde(default)]
    pub message: String,
    /// Present for managers.
    pub manager: Option<ManagerFacts>,
    /// `Description.Engine.EngineVersion`.
    pub engine_version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Engine labels (`Description.Engine.Labels`), for `engine.labels.*` constraints.
    #[serde(default)]
    pub engine_labels: BTreeMap<String, String>,
    /// `Version.Index`, needed to update the node spec.
    pub version_index: u64,
    #[serde(default)]
    pub nano_cpus: i64,
    #[serde(default)]
    pub memory_bytes: i64,
    #[serde(default)]
    pub platform_os: String,
    #[serde(default)]
    pub platform_arch: String,
}

impl NodeFacts {
    pub fn is_leader(&self) -> bool {
        self.manager.as_ref().is_some_and(|m| m.leader)
    }
    pub fn is_reachable_manager(&self) -> bool {
        self.manager
            .as_ref()
            .is_some_and(|m| m.reachability == Reachability::Reachable)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManagerFacts {
    pub leader: bool,
    pub reachability: Reachability,
    /// Raft address (`ManagerStatus.Addr`), e.g. `172.30.0.11:2377`.
    pub addr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceMode {
    Replicated { replicas: u64 },
    Global,
    ReplicatedJob,
    GlobalJob,
}

/// One service (`GET /services?status=true`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceFacts {
    pub id: String,
    pub name: String,
    pub mode: ServiceMode,
    pub image: String,
    /// `Placement.Constraints`, verbatim (`node.role==manager`, ...).
    #[serde(default)]
    pub constraints: Vec<String>,
    /// `Placement.MaxReplicas` (0 = unlimited).
    #[serde(default)]
    pub max_replicas_per_node: u64,
    #[serde(default)]
    pub reserved_nano_cpus: i64,
    #[serde(default)]
    pub reserved_memory_bytes: i64,
    pub running_tasks: u64,
    pub desired_tasks: u64,
    /// `UpdateStatus.State` if any (updating, paused, rollback_started, ...).
    #[serde(default)]
    pub update_state: Option<String>,
    /// Published ports as (published, target, protocol, mode).
    #[serde(default)]
    pub published_ports: Vec<PublishedPort>,
    /// VIPs per network ID (vip endpoint mode only).
    #[serde(default)]
    pub virtual_ips: Vec<VirtualIp>,
    /// Sources of the task template's bind mounts (`/var/run/docker.sock`,
    /// ...): the hazard catalogue looks for services that talk to the engine.
    #[serde(default)]
    pub bind_mounts: Vec<String>,
    /// `Spec.Labels`: `swarm-upgrade.min-available` and
    /// `swarm-upgrade.max-unavailable` set its disruption budget.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The networks its tasks attach to (IDs or names, as the spec gives them;
    /// the ingress network is not among them): a service on none has no
    /// service DNS to verify.
    #[serde(default)]
    pub networks: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublishedPort {
    pub published: u16,
    pub target: u16,
    pub protocol: String,
    /// `ingress` or `host`.
    pub mode: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VirtualIp {
    pub network_id: String,
    pub addr: String,
}

/// One task with desired state running (`GET /tasks`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskFacts {
    pub id: String,
    pub service_id: String,
    /// Empty while the task is not assigned to a node.
    pub node_id: String,
    /// `Status.State`: running, pending, rejected, ...
    pub state: String,
    /// `Status.Err`, e.g. "node is missing network attachments, ...".
    #[serde(default)]
    pub err: String,
    /// Addresses this task holds on overlay networks, per network ID.
    #[serde(default)]
    pub network_addrs: Vec<NetworkAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkAddr {
    pub network_id: String,
    /// CIDR notation as the API reports it, e.g. `10.0.1.5/24`.
    pub addr: String,
}

/// One overlay network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkFacts {
    pub id: String,
    pub name: String,
    pub ingress: bool,
    /// IPAM subnets in CIDR notation.
    pub subnets: Vec<String>,
    /// Nodes known to have a load-balancer address on this network, if known.
    #[serde(default)]
    pub peer_count: Option<u64>,
    /// `Driver` (overlay, ...); empty when not read.
    #[serde(default)]
    pub driver: String,
    /// Driver options (`encrypted`, ...), as the API reports them.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// What SSH showed about one host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostFacts {
    /// The inventory name (or the swarm address when discovered).
    pub host: String,
    /// How the swarm node was matched to an inventory entry.
    pub matched_by: MatchedBy,
    pub os: OsRelease,
    pub init: InitSystem,
    pub package_manager: PackageManager,
    pub arch: String,
    /// Installed engine-related packages: name → exact version.
    pub installed: BTreeMap<String, String>,
    /// Versions the package manager offers: name → versions (any order).
    pub available: BTreeMap<String, Vec<String>>,
    /// Packages on hold (apt-mark showhold / dnf versionlock).
    #[serde(default)]
    pub held: Vec<String>,
    /// Free space per path (bytes available to root).
    #[serde(default)]
    pub disk_free: BTreeMap<String, u64>,
    /// /etc/docker/daemon.json, verbatim, if present.
    #[serde(default)]
    pub daemon_json: Option<String>,
    /// `dockerd --version` output, if dockerd is on PATH.
    #[serde(default)]
    pub dockerd_version: Option<String>,
    /// Path of dockerd, and the package that owns it, if any.
    #[serde(default)]
    pub dockerd_path: Option<String>,
    #[serde(default)]
    pub dockerd_package: Option<String>,
    /// Result of `sudo -n true` (true when connecting as root).
    pub sudo_ok: bool,
    /// Containers not managed by swarm (drain will not move them).
    #[serde(default)]
    pub standalone_containers: Vec<String>,
    /// Whether `apparmor_parser` exists and the kernel has AppArmor on.
    #[serde(default)]
    pub apparmor_enabled: bool,
    #[serde(default)]
    pub apparmor_parser: bool,
    /// Static-binaries bundles present on the host: path → sha256.
    #[serde(default)]
    pub bundles: BTreeMap<String, String>,
    /// What the package manager said it would do to install the resolved
    /// package set (a dry run on the host), when one was made.
    #[serde(default)]
    pub install_simulation: Option<InstallSimulation>,
    /// `docker info` `Driver` (overlay2, aufs, devicemapper, ...), if read.
    /// Checked against the drivers the target engine removed.
    #[serde(default)]
    pub storage_driver: Option<String>,
    /// `docker info` `LiveRestoreEnabled`, if read: catches `--live-restore`
    /// given on the command line rather than in daemon.json.
    #[serde(default)]
    pub live_restore_enabled: Option<bool>,
    /// `docker info` `CgroupVersion` ("1" or "2"), if read.
    #[serde(default)]
    pub cgroup_version: Option<String>,
    /// Names of the host's local networks with the `ipvlan` driver
    /// (`docker network ls --filter driver=ipvlan`); `None` when not read.
    #[serde(default)]
    pub ipvlan_networks: Option<Vec<String>>,
    /// Installed size in bytes of the packages in `installed`, when known
    /// (dpkg `Installed-Size` × 1024, rpm `SIZE`): sizes the package backup.
    #[serde(default)]
    pub installed_sizes: BTreeMap<String, u64>,
    /// Size in bytes of `/var/lib/docker/swarm` (`du -sb`), if read: a
    /// manager's backup copies it.
    #[serde(default)]
    pub swarm_dir_bytes: Option<u64>,
    /// Seconds the node's swarm certificate
    /// (`/var/lib/docker/swarm/certificates/swarm-node.crt`) was still valid
    /// when the facts were gathered; negative once expired. `None` when not read.
    #[serde(default)]
    pub node_cert_valid_secs: Option<i64>,
    /// The swarm NodeID of the host's engine (`docker info`): empty when
    /// the engine is in no swarm, `None` when it did not answer (stopped,
    /// locked, no access to its socket). Settles which swarm node a host is.
    #[serde(default)]
    pub engine_node_id: Option<String>,
    /// Kernel modules loaded or built in (`/sys/module`), for the hazard
    /// catalogue; `None` when not read.
    #[serde(default)]
    pub kernel_modules: Option<Vec<String>>,
    /// The host's local images (`docker image ls --digests`); `None` when
    /// not read. Where a drained node's tasks can go without a pull.
    #[serde(default)]
    pub images: Option<Vec<LocalImage>>,
    /// Files that give dockerd command-line flags: `/etc/default/docker`
    /// (`DOCKER_OPTS`) and `/etc/systemd/system/docker.service.d/*.conf`,
    /// path → text; `None` when not read.
    #[serde(default)]
    pub daemon_flag_files: Option<BTreeMap<String, String>>,
    /// The target dockerd's verdict on this host's configuration
    /// (`dockerd --validate`), when it could be tried.
    #[serde(default)]
    pub target_validation: Option<TargetValidation>,
    /// TCP connection attempts from this host to the other nodes' swarm
    /// ports; `None` when not tried.
    #[serde(default)]
    pub port_probes: Option<Vec<PortProbe>>,
    /// Which iptables backends hold Docker's chains, and whether the `raw`
    /// table is there; `None` when not read.
    #[serde(default)]
    pub firewall: Option<Firewall>,
}

/// One local image: repository, tag and registry digest as `docker image ls
/// --digests` prints them (`<none>` when missing).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LocalImage {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

/// The target release's dockerd run with `--validate` on the host's
/// configuration, from the package cache or the static bundle.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TargetValidation {
    /// Where the binary came from (`docker.io=26.1.5+dfsg1-9+deb13u1`, a bundle path).
    pub source: String,
    /// The arguments after `--validate` (config file and command-line flags).
    #[serde(default)]
    pub args: Vec<String>,
    /// `Some(exit code)` when it ran; `None` when it could not be run.
    pub exit: Option<i32>,
    /// What it printed (last lines), or why it could not run.
    pub output: String,
}

/// One TCP connection attempt to another node's swarm port.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PortProbe {
    pub addr: String,
    pub port: u16,
    pub open: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Firewall {
    /// `iptables --version`'s backend: `nf_tables` or `legacy`, empty if unknown.
    pub backend: String,
    /// Docker's chains (`DOCKER*`) are in `iptables-legacy-save`'s output.
    pub legacy_has_docker: bool,
    /// Docker's chains are in `iptables-nft-save`'s output.
    pub nft_has_docker: bool,
    /// The `raw` table is there or loadable (dockerd 28 adds rules there):
    /// `iptable_raw` loaded, listed or installed, or a working nf_tables
    /// behind `iptables`.
    pub raw_table: bool,
}

/// The outcome of a package manager dry run (`apt-get install -s ...`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstallSimulation {
    /// The exact request that was simulated, e.g. `docker.io=26.1.5+dfsg1-9+deb13u1`.
    pub request: Vec<String>,
    pub changes: Vec<SimulatedChange>,
    /// Set when the package manager refused (unmet dependencies, ...).
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SimulatedChange {
    Install {
        name: String,
        from: Option<String>,
        to: String,
    },
    Remove {
        name: String,
        version: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    /// The inventory lists a host whose name is the node's hostname.
    #[default]
    Hostname,
    /// The inventory lists a host whose address is the node's swarm address.
    Address,
    /// Not in the inventory: reached at its swarm address with the defaults.
    Discovered,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OsRelease {
    /// `ID`: debian, ubuntu, rhel, ...
    pub id: String,
    /// `ID_LIKE`, split on spaces.
    #[serde(default)]
    pub id_like: Vec<String>,
    pub version_id: String,
    /// `VERSION_CODENAME`: bookworm, ...
    #[serde(default)]
    pub codename: String,
    #[serde(default)]
    pub pretty_name: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitSystem {
    Systemd,
    Sysvinit,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
    #[default]
    None,
}

impl Facts {
    pub fn node(&self, id: &str) -> Option<&NodeFacts> {
        self.cluster.nodes.iter().find(|n| n.id == id)
    }
    pub fn managers(&self) -> impl Iterator<Item = &NodeFacts> {
        self.cluster
            .nodes
            .iter()
            .filter(|n| n.role == Role::Manager)
    }
    pub fn workers(&self) -> impl Iterator<Item = &NodeFacts> {
        self.cluster.nodes.iter().filter(|n| n.role == Role::Worker)
    }
}
