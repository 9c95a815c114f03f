//! The plan: an ordered list of steps, as data.
//!
//! `plan` prints it, `--out` saves it with a content hash, and `apply`
//! executes exactly it. Built by the pure [`super::build`].

use serde::{Deserialize, Serialize};

use super::select::Selection;
use crate::checks::Finding;
use crate::facts::model::{Availability, Role};
use crate::version::EngineVersion;
use crate::version::resolve::{Method, PackageChange};

/// Bumped whenever the serialized shape changes incompatibly.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub cluster_id: String,
    pub target: EngineVersion,
    pub max_parallel: usize,
    pub nodes: Vec<PlanNode>,
    pub steps: Vec<Step>,
    pub findings: Vec<Finding>,
    /// Set on a rollback plan: the run whose upgrades it reverts, whose
    /// backups on the hosts it restores.
    #[serde(default)]
    pub reverts_run: Option<String>,
    /// The canaries' soak and pause (the first manager and the first worker
    /// batch); absent in plans saved before them: no soak.
    #[serde(default)]
    pub canary: Canary,
    /// What the run does to each node: upgrade (the default, left out of
    /// the file so that older plans keep their hash) or only restart.
    #[serde(default, skip_serializing_if = "Operation::is_upgrade")]
    pub operation: Operation,
    /// The nodes the operator selected; the others are skipped, with why.
    #[serde(default, skip_serializing_if = "Selection::is_empty")]
    pub selection: Selection,
    /// `--prepull`: the images the `prepull` step puts on the nodes that
    /// receive drained tasks (left out when empty: older plans keep their hash).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prepull: Vec<ImageTransfer>,
    /// The operator's hooks; their `hook` steps say where each runs.
    /// Left out of the file when there are none (older plans keep their hash).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<crate::hooks::Hook>,
}

/// One image put on one node by the `prepull` step, before any drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTransfer {
    /// The image as the service's spec names it.
    pub image: String,
    /// The receiving node: swarm node ID and hostname.
    pub node_id: String,
    pub node: String,
    /// The node it is copied from (`GET /images/{name}/get` there into
    /// `POST /images/load` on the receiver, through the controller); none:
    /// pulled by the receiver's engine (`POST /images/create`).
    pub from_id: Option<String>,
    pub from: Option<String>,
}

/// What happens after each canary (the first manager, the first worker
/// batch) is upgraded: a soak during which verification must pass
/// `soak_checks` times in a row, then, if asked, a pause until
/// `swarm-upgrade continue`. A canary that fails is rolled back and stops
/// the run, like any node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Canary {
    /// How long the soak lasts (0: no soak).
    pub soak_secs: u64,
    /// Verifications during the soak, evenly spaced, each of which must pass.
    pub soak_checks: u32,
    /// `--pause-after-canary`.
    pub pause: bool,
}

impl Canary {
    pub fn soak(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.soak_secs)
    }
}

/// What a run does to each node it takes down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Install the pinned engine (`apply`).
    #[default]
    Upgrade,
    /// Restart the engine as it is (`restart`): no backup, no install; each
    /// node verified at the version it ran.
    Restart,
}

impl Operation {
    pub fn is_upgrade(&self) -> bool {
        *self == Operation::Upgrade
    }
}

impl Plan {
    pub fn is_blocked(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == crate::checks::Severity::Block)
    }
}

/// One swarm node as the plan sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanNode {
    /// Swarm node ID.
    pub id: String,
    /// Swarm hostname.
    pub name: String,
    /// Where SSH reaches it (inventory name or address).
    pub host: String,
    pub role: Role,
    pub leader: bool,
    /// Availability before the run; restored exactly at the end.
    pub availability: Availability,
    /// Engine version the swarm reports now.
    pub current: String,
    pub target: EngineVersion,
    /// Upgrade method, when the node is upgraded.
    pub method: Option<Method>,
    #[serde(default)]
    pub packages: Vec<PackageChange>,
    /// For the static-binaries method: the tarball's path on the host.
    #[serde(default)]
    pub bundle: Option<String>,
    /// Why the node is not upgraded (already at target, unresolvable, ...).
    pub skip: Option<String>,
    /// Position in the upgrade order (1-based), when upgraded.
    pub order: Option<usize>,
    /// Restart plans: the unfinished run that drained it restarted and
    /// verified it already; it only gets its availability back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarted: bool,
}

impl PlanNode {
    /// Whether its engine already runs the target version.
    pub fn at_target(&self) -> bool {
        crate::version::engine_version_of(&self.current).as_ref() == Some(&self.target)
    }
}

/// A method whose playbook stages its packages before the drain
/// (`Playbooks::staged`): its nodes get a `stage` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    pub method: Method,
    /// Its `install` leaves a running engine alone (the playbook's
    /// `install_while_running`): a node then installs right after its
    /// drain, while the swarm moves its tasks off.
    pub while_running: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Set availability to drain.
    Drain,
    /// Wait until no task of the node is still running (drain does not wait).
    WaitDrained,
    StopEngine,
    /// Secure the old packages/binaries; on managers, archive /var/lib/docker/swarm.
    Backup,
    /// Install the pinned package set (or binaries) and hold it.
    Install,
    StartEngine,
    /// Engine version, swarm state, manager reachability and quorum.
    Verify,
    /// Put back the availability the node had before the run.
    RestoreAvailability,
    /// Wait until every service runs its desired tasks.
    WaitConverged,
    /// Rollback plans only: reinstall the packages or binaries backed up by
    /// the reverted run.
    Restore,
    /// Once the node runs tasks again: its published ports answer, a service
    /// name resolves from its task, containerd and runc are the expected
    /// ones and running, and its engine log is settled (V7–V9).
    VerifyServices,
    /// A canary's soak: verify and verify-services, evenly spaced over the
    /// soak time, must pass every time.
    Soak,
    /// After a canary (`--pause-after-canary`): the run marks its own lease
    /// paused and waits at the next safe point for `swarm-upgrade continue`.
    Pause,
    /// `--prepull`, before the first drain: the images that drained tasks
    /// need put on the nodes that receive them (`Plan::prepull`), each
    /// verified by image ID. A failure stops the run with nothing drained.
    Prepull,
    /// `--reboot`: the host rebooted (after its engine was stopped, and
    /// installed), then waited for: SSH back with a new boot identity, the
    /// engine running.
    Reboot,
    /// The operator's hooks at one point of the node's steps (`Step::hook`).
    Hook,
    /// Before the node's drain, in a batch of its own: the playbook's
    /// `stage` script downloads the target packages into the host's cache
    /// and secures the old ones, so that the drained window only unpacks.
    /// A failure stops the run with the node (and its batch) undrained.
    Stage,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Drain => "drain",
            Action::WaitDrained => "wait-drained",
            Action::StopEngine => "stop-engine",
            Action::Backup => "backup",
            Action::Install => "install",
            Action::StartEngine => "start-engine",
            Action::Verify => "verify",
            Action::RestoreAvailability => "restore-availability",
            Action::WaitConverged => "wait-converged",
            Action::Restore => "restore",
            Action::VerifyServices => "verify-services",
            Action::Soak => "soak",
            Action::Pause => "pause",
            Action::Prepull => "prepull",
            Action::Reboot => "reboot",
            Action::Hook => "hook",
            Action::Stage => "stage",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Managers one at a time; they stay drained until all are verified.
    Managers,
    /// Managers get their availability back; services converge.
    Reactivate,
    /// Workers, in batches.
    Workers,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 1-based position in the plan.
    pub index: usize,
    /// Swarm hostname of the node acted on; `None` for cluster-wide steps.
    pub node: Option<String>,
    /// Swarm node ID; `None` for cluster-wide steps.
    pub node_id: Option<String>,
    pub role: Option<Role>,
    pub action: Action,
    pub phase: Phase,
    /// Steps of one batch may run concurrently on different nodes; batches
    /// run one after the other. Each manager is a batch of its own.
    pub batch: usize,
    /// For `restore-availability`: the availability to restore.
    #[serde(default)]
    pub availability: Option<Availability>,
    /// For `hook`: the point whose hooks it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<crate::hooks::HookPoint>,
}

impl Step {
    /// The action's name, with the hook point for a hook step
    /// (`hook pre-drain`).
    pub fn label(&self) -> String {
        match self.hook {
            Some(h) if self.action == Action::Hook => format!("hook {}", h.name()),
            _ => self.action.name().to_string(),
        }
    }
}
