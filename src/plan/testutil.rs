//! Clusters for the planner, renderer and plan-file tests.
//!
//! The lab cluster mirrors the testkit lab: three managers (`lab-m1` leads)
//! and two workers on Debian bookworm with Debian's `docker.io` 20.10.24,
//! upgraded to 26.1.5 from trixie packages (which split `docker-cli` out of
//! `docker.io` and bring containerd 1.7).

use std::collections::BTreeMap;

use crate::checks::Finding;
use crate::facts::model::{
    Availability, ClusterFacts, Facts, HostFacts, ManagerFacts, NodeFacts, NodeState,
    PackageManager, Reachability, Role,
};
use crate::version::EngineVersion;
use crate::version::resolve::{Family, Method, PackageChange, Resolution, ResolveError};

use super::build::{PlanOptions, build};
use super::model::Plan;

pub type Resolutions = BTreeMap<String, Result<Resolution, ResolveError>>;

pub const LAB_CLUSTER_ID: &str = "lab0swarm0cluster0id00001";
pub const BOOKWORM_ENGINE: &str = "20.10.24+dfsg1";

pub fn pin(s: &str) -> EngineVersion {
    s.parse().expect("test pin")
}

/// A swarm node as `GET /nodes` describes it; managers are reachable.
pub fn node(
    id: &str,
    hostname: &str,
    role: Role,
    leader: bool,
    availability: Availability,
    engine: &str,
) -> NodeFacts {
    NodeFacts {
        id: id.to_string(),
        hostname: hostname.to_string(),
        addr: format!("addr-of-{hostname}"),
        role,
        availability,
        state: NodeState::Ready,
        message: String::new(),
        manager: (role == Role::Manager).then(|| ManagerFacts {
            leader,
            reachability: Reachability::Reachable,
            addr: format!("addr-of-{hostname}:2377"),
        }),
        engine_version: engine.to_string(),
        labels: BTreeMap::new(),
        engine_labels: BTreeMap::new(),
        version_index: 42,
        nano_cpus: 2_000_000_000,
        memory_bytes: 2 << 30,
        platform_os: "linux".into(),
        platform_arch: "x86_64".into(),
    }
}

/// Facts for `nodes`, each host reached under its hostname.
pub fn facts_of(cluster_id: &str, nodes: Vec<NodeFacts>) -> Facts {
    let hosts = nodes
        .iter()
        .map(|n| {
            (
                n.id.clone(),
                HostFacts {
                    host: n.hostname.clone(),
                    package_manager: PackageManager::Apt,
                    arch: "amd64".into(),
                    sudo_ok: true,
                    ..Default::default()
                },
            )
        })
        .collect();
    let observed_via = nodes
        .iter()
        .find(|n| n.is_leader())
        .map(|n| n.hostname.clone())
        .unwrap_or_default();
    Facts {
        cluster: ClusterFacts {
            id: cluster_id.to_string(),
            observed_via,
            nodes,
            ..Default::default()
        },
        hosts,
        // What SSH could not reach, and whatever else gathering adds.
        ..Default::default()
    }
}

/// The lab: `lab-m1` (leader), `lab-m2`, `lab-m3`, `lab-w1`, `lab-w2`, all
/// active and on bookworm's docker.io 20.10.24. Listed in no useful order, as
/// the API returns them.
pub fn lab_facts() -> Facts {
    use Availability::Active;
    use Role::{Manager, Worker};
    facts_of(
        LAB_CLUSTER_ID,
        vec![
            node("w2lab", "lab-w2", Worker, false, Active, BOOKWORM_ENGINE),
            node("m1lab", "lab-m1", Manager, true, Active, BOOKWORM_ENGINE),
            node("w1lab", "lab-w1", Worker, false, Active, BOOKWORM_ENGINE),
            node("m3lab", "lab-m3", Manager, false, Active, BOOKWORM_ENGINE),
            node("m2lab", "lab-m2", Manager, false, Active, BOOKWORM_ENGINE),
        ],
    )
}

/// bookworm docker.io 20.10.24 → trixie 26.1.5: docker.io, the new
/// docker-cli, and the containerd the dry run pulls in.
pub fn bookworm_resolution() -> Resolution {
    Resolution {
        method: Method::DebianApt,
        family: Family::DockerIo,
        target: pin("26.1.5"),
        packages: vec![
            PackageChange {
                name: "docker.io".into(),
                from: Some("20.10.24+dfsg1-1+deb12u1".into()),
                to: "26.1.5+dfsg1-9+deb13u1".into(),
            },
            PackageChange {
                name: "docker-cli".into(),
                from: None,
                to: "26.1.5+dfsg1-9+deb13u1".into(),
            },
            PackageChange {
                name: "containerd".into(),
                from: Some("1.6.20~ds1-1+b1".into()),
                to: "1.7.24~ds1-6+deb13u1".into(),
            },
        ],
        bundle: None,
    }
}

/// Every node of `facts` resolves like a bookworm lab host.
pub fn all_resolved(facts: &Facts) -> Resolutions {
    facts
        .cluster
        .nodes
        .iter()
        .map(|n| (n.id.clone(), Ok(bookworm_resolution())))
        .collect()
}

pub fn opts(max_parallel: usize) -> PlanOptions {
    PlanOptions {
        pin: pin("26.1.5"),
        max_parallel,
        canary: Default::default(),
        ..Default::default()
    }
}

/// The lab plan: nothing to complain about.
pub fn lab_plan() -> Plan {
    let facts = lab_facts();
    build(&facts, &all_resolved(&facts), vec![], &opts(1))
}

/// A lab that must not be upgraded as it is: `lab-w2` offers no 26.1.5,
/// `lab-m3` already runs it, `lab-m2` was drained and `lab-w1` paused by the
/// operator.
pub fn blocked_plan() -> Plan {
    let mut facts = lab_facts();
    for n in &mut facts.cluster.nodes {
        match n.hostname.as_str() {
            "lab-m2" => n.availability = Availability::Drain,
            "lab-m3" => n.engine_version = "26.1.5".into(),
            "lab-w1" => n.availability = Availability::Pause,
            _ => {}
        }
    }
    let mut resolutions = all_resolved(&facts);
    let unavailable = ResolveError::NotAvailable {
        package: "docker.io".into(),
        pin: pin("26.1.5"),
        available: vec!["20.10.24+dfsg1-1+deb12u1".into()],
    };
    resolutions.insert("w2lab".into(), Err(unavailable.clone()));
    let findings = vec![
        Finding::block(
            "version-available",
            Some("lab-w2"),
            format!("lab-w2: {unavailable}"),
        ),
        Finding::block(
            "disk-free",
            Some("lab-m1"),
            "lab-m1: /var/lib/docker has 312 MiB free, the upgrade needs 1.5 GiB \
             (packages and the swarm state backup); free space first",
        ),
        Finding::warn(
            "standalone-containers",
            Some("lab-w1"),
            "2 containers are not managed by swarm (registry, node-exporter): \
             drain will not move them and they stop with the engine",
        ),
    ];
    build(&facts, &resolutions, findings, &opts(2))
}

/// A cluster at scale: `managers` managers (`m1` leads) and `workers`
/// workers (`w0001`, ...), all alike, each resolving like a bookworm lab
/// host: the plan output's grouping and its speed at 2,000 nodes.
pub fn scale_facts(managers: usize, workers: usize) -> Facts {
    use Availability::Active;
    let mut nodes: Vec<NodeFacts> = (1..=managers)
        .map(|i| {
            let name = format!("m{i}");
            node(
                &format!("{name}id"),
                &name,
                Role::Manager,
                i == 1,
                Active,
                BOOKWORM_ENGINE,
            )
        })
        .collect();
    nodes.extend((1..=workers).map(|i| {
        let name = format!("w{i:04}");
        node(
            &format!("{name}id"),
            &name,
            Role::Worker,
            false,
            Active,
            BOOKWORM_ENGINE,
        )
    }));
    facts_of(LAB_CLUSTER_ID, nodes)
}

/// The plan of [`scale_facts`] with `max_parallel`.
pub fn scale_plan(managers: usize, workers: usize, max_parallel: usize) -> Plan {
    let facts = scale_facts(managers, workers);
    build(&facts, &all_resolved(&facts), vec![], &opts(max_parallel))
}
