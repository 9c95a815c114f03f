//! Preflight checks: small pure functions from facts to findings.
//!
//! Each check lives in its own module, has a stable id that operators can
//! waive with `--ignore-check ID`, and returns findings whose messages name
//! the node, service or network, the numbers, and the remedy. A check emits
//! findings under its own id only, so waiving one id silences one check.
//! What depends on one engine release (a removed option, a regression) is
//! not a check but data: the hazard catalogue ([`crate::hazards`]).

pub mod finding;

mod api_version;
mod autolock;
mod cgroup;
mod constraint;
mod daemon_config;
mod disk_space;
mod disruption_budget;
mod dns_addresses;
mod drain_feasibility;
mod image_availability;
mod init_system;
mod live_restore;
mod node_health;
mod node_identity;
mod overlay_ip_headroom;
mod package_hold;
mod pin_resolvable;
mod pki;
mod quorum_budget;
mod sudo;
mod swarm_ports;
mod target_config;
mod version_skew;

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::BTreeMap;

pub(crate) use daemon_config::daemon_json;
pub use finding::{Finding, Severity};
pub(crate) use image_availability::{prepull_transfers, registry_questions};
pub(crate) use target_config::validate_args;

use crate::facts::model::{Availability, Facts, HostFacts, NodeFacts, NodeState};
use crate::plan::{Operation, Selection};
use crate::version::resolve::{Resolution, ResolveError};

static NO_SELECTION: Selection = Selection {
    nodes: vec![],
    exclude: vec![],
    selectors: vec![],
};
use crate::version::{EngineVersion, engine_version_of};

/// What every check may read.
pub struct CheckContext<'a> {
    pub facts: &'a Facts,
    pub pin: &'a EngineVersion,
    /// Per swarm node ID: the resolved package set, or why it cannot be resolved.
    pub resolutions: &'a BTreeMap<String, Result<Resolution, ResolveError>>,
    pub max_parallel: usize,
    /// Whether the operator supplied the swarm unlock key (environment or key
    /// file), so autolocked managers can be unlocked after their restart.
    pub unlock_key_available: bool,
    /// A restart judges no target version.
    pub operation: Operation,
    /// The nodes the run acts on; the others still count as the swarm
    /// (quorum, room for drained tasks) but are not taken down.
    pub selection: &'a Selection,
    /// `--prepull`: the images the drains need are put on the receiving
    /// nodes before the first drain.
    pub prepull: bool,
}

/// Checks that judge the target version or what installing it needs: not
/// run for a restart, which installs nothing.
pub const UPGRADE_ONLY: [&str; 7] = [
    "pin-resolvable",
    "version-skew",
    "api-version",
    "package-hold",
    "disk-space",
    "cgroup",
    "daemon-config",
];

impl<'a> CheckContext<'a> {
    /// A context with the defaults: one worker at a time, no unlock key.
    pub fn new(
        facts: &'a Facts,
        pin: &'a EngineVersion,
        resolutions: &'a BTreeMap<String, Result<Resolution, ResolveError>>,
    ) -> Self {
        CheckContext {
            facts,
            pin,
            resolutions,
            max_parallel: 1,
            unlock_key_available: false,
            operation: Operation::Upgrade,
            selection: &NO_SELECTION,
            prepull: false,
        }
    }

    /// The nodes this run upgrades (or restarts): every selected node not
    /// already at the pin (an unreadable engine version counts as not at
    /// the pin, as in the planner); for a restart, every selected node.
    pub(crate) fn nodes_to_upgrade(&self) -> impl Iterator<Item = &'a NodeFacts> {
        let (pin, restart, selection) = (self.pin, !self.operation.is_upgrade(), self.selection);
        self.facts.cluster.nodes.iter().filter(move |n| {
            (restart || engine_version_of(&n.engine_version).as_ref() != Some(pin))
                && selection.out_of_scope(n).is_none()
        })
    }

    /// The nodes this run drains: those it upgrades, unless already drained
    /// (the planner skips the drain step for them).
    fn nodes_to_drain(&self) -> impl Iterator<Item = &'a NodeFacts> {
        self.nodes_to_upgrade()
            .filter(|n| n.availability != Availability::Drain)
    }

    /// Nodes to upgrade, paired with what SSH showed about their host.
    pub(crate) fn hosts_to_upgrade(&self) -> impl Iterator<Item = (&'a NodeFacts, &'a HostFacts)> {
        self.nodes_to_upgrade()
            .filter_map(|n| self.facts.hosts.get(&n.id).map(|h| (n, h)))
    }

    /// How a node's host is named in messages: its inventory name, or the
    /// node's swarm address when SSH showed nothing.
    fn host_name(&self, node: &'a NodeFacts) -> &'a str {
        self.facts
            .hosts
            .get(&node.id)
            .map_or(node.addr.as_str(), |h| h.host.as_str())
    }
}

/// One preflight check.
pub trait Check: Sync {
    /// Stable id, kebab-case (`quorum-budget`).
    fn id(&self) -> &'static str;
    /// One line: what the check protects against.
    fn describe(&self) -> &'static str;
    /// Every severity the check can report, lowest first (for the catalogue).
    fn severities(&self) -> &'static [Severity];
    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding>;
}

/// Every check, in the order their findings are shown.
pub fn all() -> Vec<&'static dyn Check> {
    vec![
        &pin_resolvable::PinResolvable,
        &version_skew::VersionSkew,
        &quorum_budget::QuorumBudget,
        &node_health::NodeHealth,
        &node_identity::NodeIdentity,
        &sudo::Sudo,
        &autolock::Autolock,
        &pki::Pki,
        &live_restore::LiveRestore,
        &daemon_config::DaemonConfig,
        &target_config::TargetConfig,
        &api_version::ApiVersion,
        &overlay_ip_headroom::OverlayIpHeadroom,
        &drain_feasibility::DrainFeasibility,
        &image_availability::ImageAvailability,
        &swarm_ports::SwarmPorts,
        &disruption_budget::DisruptionBudget,
        &disk_space::DiskSpace,
        &package_hold::PackageHold,
        &dns_addresses::DnsAddresses,
        &init_system::InitSystem,
        &cgroup::Cgroup,
    ]
}

/// Runs every check; findings come out blockers first, then by check order.
pub fn run_all(ctx: &CheckContext<'_>) -> Vec<Finding> {
    let mut findings: Vec<Finding> = all()
        .iter()
        .filter(|c| ctx.operation.is_upgrade() || !UPGRADE_ONLY.contains(&c.id()))
        .flat_map(|c| c.run(ctx))
        .collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// Every check as (id, severities, description), for the README and help.
pub fn catalogue() -> Vec<(&'static str, String, &'static str)> {
    all()
        .iter()
        .map(|c| {
            let severities: Vec<&str> = c.severities().iter().map(|s| s.label()).collect();
            (c.id(), severities.join(", "), c.describe())
        })
        .collect()
}

// Small helpers shared by the checks' messages.

/// `1 task`, `3 tasks`.
fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `a, b, c`.
fn join<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `names` joined; at scale (more than 10), "all N hosts" when they are all
/// `of` of them, or the first 8 and how many: a finding stays a line or two
/// in a 2,000-node plan.
pub(crate) fn some_of(names: &[&str], of: usize) -> String {
    match names.len() {
        n if n <= 10 => join(names),
        n if n == of => format!("all {} hosts", crate::plan::render::group::thousands(n)),
        n => format!(
            "{}, … ({} hosts)",
            join(&names[..8]),
            crate::plan::render::group::thousands(n)
        ),
    }
}

#[cfg(test)]
mod some_of_tests {
    use super::some_of;

    #[test]
    fn few_are_named_many_are_counted() {
        assert_eq!(some_of(&["a", "b"], 5), "a, b");
        let many: Vec<String> = (1..=2000).map(|i| format!("w{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(some_of(&many, 2000), "all 2,000 hosts");
        assert_eq!(
            some_of(&many[..12], 2000),
            "w1, w2, w3, w4, w5, w6, w7, w8, … (12 hosts)"
        );
    }
}

/// Bytes in binary units, one decimal: `512.0 MiB`, `1.5 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn state_name(state: NodeState) -> &'static str {
    match state {
        NodeState::Unknown => "unknown",
        NodeState::Down => "down",
        NodeState::Ready => "ready",
        NodeState::Disconnected => "disconnected",
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::Fixture;
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_catalogued() {
        let catalogue = catalogue();
        assert_eq!(catalogue.len(), all().len());
        let mut ids: Vec<&str> = catalogue.iter().map(|(id, _, _)| *id).collect();
        for id in &ids {
            assert!(
                id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{id} is not kebab-case"
            );
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all().len(), "duplicate check ids");
        for (id, severities, describe) in catalogue {
            assert!(!severities.is_empty() && !describe.is_empty(), "{id}");
        }
    }

    #[test]
    fn a_healthy_cluster_has_nothing_to_warn_about() {
        let fx = Fixture::healthy();
        let findings = run_all(&fx.ctx());
        let loud: Vec<_> = findings
            .iter()
            .filter(|f| f.severity > Severity::Info)
            .collect();
        assert!(loud.is_empty(), "{loud:#?}");
        assert!(findings.iter().any(|f| f.id == "quorum-budget"));
    }

    #[test]
    fn odd_input_does_not_panic() {
        let empty = Facts::default();
        let pin: EngineVersion = "26.1.5".parse().unwrap();
        let resolutions = BTreeMap::new();
        let findings = run_all(&CheckContext::new(&empty, &pin, &resolutions));
        assert!(
            findings
                .iter()
                .any(|f| f.id == "quorum-budget" && f.severity == Severity::Block),
            "{findings:#?}"
        );

        let mut fx = Fixture::healthy();
        for n in &mut fx.facts.cluster.nodes {
            n.engine_version = "garbage".into();
            n.addr.clear();
        }
        fx.facts.cluster.networks[0].subnets = vec!["not-a-cidr".into(), "10.0.0.0/33".into()];
        fx.facts.cluster.services[0].constraints = vec!["nonsense".into()];
        fx.facts.hosts.clear();
        run_all(&fx.ctx());
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(500 * 1024 * 1024), "500.0 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
