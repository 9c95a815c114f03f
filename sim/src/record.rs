//! What the simulation remembers, for tests to assert on: every command and
//! node update (who touched which node, when), and a timeline of the raft
//! after every engine, link or leadership change.

use std::time::Duration;

use swarm_upgrade::facts::model::Availability;
use swarm_upgrade::playbook::Script;

/// Something done to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A playbook script ran on the node's host.
    Script(Script),
    /// `pgrep -x dockerd`.
    Pgrep,
    /// The boot identity read (`--reboot`).
    BootId,
    /// The host came back from a reboot (not a command: the boot itself).
    Booted,
    /// `docker swarm unlock`.
    Unlock,
    /// The service probe of `verify-services`.
    VerifyServices,
    /// An operator's hook for the node (`SU_HOOK`), on its host or on the
    /// controller.
    Hook { point: String, controller: bool },
    /// A command the simulation does not know (exit 127).
    Unknown(String),
    /// An image was loaded into its engine (`POST /images/load`, `--prepull`).
    LoadImage(String),
    /// Its engine pulled an image (`POST /images/create`, `--prepull`).
    PullImage(String),
    /// Its spec was updated through the Engine API.
    Update { availability: Option<Availability> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Global order of everything that happened.
    pub seq: u64,
    pub at: Duration,
    /// Hostname.
    pub node: String,
    pub op: Op,
    /// Exit status, for commands.
    pub status: Option<i32>,
}

impl Record {
    pub fn is_script(&self, s: Script) -> bool {
        self.op == Op::Script(s)
    }
}

/// The raft after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub at: Duration,
    pub what: String,
    pub managers: usize,
    pub reachable: usize,
    /// A majority of the managers is reachable.
    pub quorum: bool,
    pub leader: Option<String>,
    /// Engines not running, per role.
    pub managers_down: usize,
    pub workers_down: usize,
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{} {:?} {} {:?}", self.seq, self.at, self.node, self.op)?;
        match self.status {
            Some(s) => write!(f, " exit {s}"),
            None => Ok(()),
        }
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {}: {}/{} managers reachable, quorum {}, leader {}",
            self.at,
            self.what,
            self.reachable,
            self.managers,
            if self.quorum { "held" } else { "LOST" },
            self.leader.as_deref().unwrap_or("none")
        )
    }
}

/// One item a line, for assertion messages.
pub fn lines<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| format!("\n  {i}")).collect()
}
