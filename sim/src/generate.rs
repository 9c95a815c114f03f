//! Generated clusters, and their facts as `plan` would gather them.
//!
//! Deterministic from a seed (its own small PRNG: the library has no `rand`),
//! so a benchmark at 5,000 nodes and a test at 5 see the same cluster on
//! every run.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use swarm_upgrade::facts::Gathered;
use swarm_upgrade::facts::model::{
    Availability, ClusterFacts, Facts, HostFacts, InitSystem, LocalImage, NetworkFacts, NodeState,
    OsRelease, PackageManager, PublishedPort, Role, SwarmSettings, VirtualIp,
};
use swarm_upgrade::version::EngineVersion;
use swarm_upgrade::version::resolve::{self, ResolveOptions};

use super::world::{Mode, Network, Node, NodeFaults, Service, World};
use super::{Delays, SimCluster};

/// What to generate. [`SimCluster::generate`] takes the counts; the rest has
/// defaults matching the checks' healthy fixture (Docker CE from apt on
/// Debian 12, 25.0.5 installed, 26.1.5 offered).
#[derive(Debug, Clone)]
pub struct SimSpec {
    pub nodes: usize,
    pub managers: usize,
    pub services: usize,
    /// Total tasks, global services' included (one per node each).
    pub tasks: usize,
    /// Overlay networks besides ingress (at most 254).
    pub networks: usize,
    pub seed: u64,
    pub delays: Delays,
    pub init: InitSystem,
    /// Upstream engine version installed everywhere.
    pub engine: String,
    /// Upstream versions the hosts' repositories offer besides it.
    pub offered: Vec<String>,
}

impl SimSpec {
    pub fn new(
        nodes: usize,
        managers: usize,
        services: usize,
        tasks: usize,
        networks: usize,
        seed: u64,
    ) -> SimSpec {
        SimSpec {
            nodes,
            managers,
            services,
            tasks,
            networks,
            seed,
            delays: Delays::zero(),
            init: InitSystem::Systemd,
            engine: "25.0.5".into(),
            offered: vec!["26.1.5".into()],
        }
    }
}

/// SplitMix64: tiny, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A swarm-style object ID: lowercase letters and digits.
    fn id(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// The Debian package version of an upstream engine version.
pub fn deb_version(upstream: &str) -> String {
    format!("5:{upstream}-1~debian.12~bookworm")
}

fn digits(n: usize) -> usize {
    n.max(1).to_string().len()
}

fn host_facts(hostname: &str, role: Role, spec: &SimSpec) -> HostFacts {
    let engine = ["docker-ce", "docker-ce-cli"];
    let mut installed: BTreeMap<String, String> = engine
        .iter()
        .map(|p| (p.to_string(), deb_version(&spec.engine)))
        .collect();
    installed.insert("containerd.io".into(), "1.6.28-1".into());
    let mut versions: Vec<String> = spec.offered.iter().map(|v| deb_version(v)).collect();
    versions.push(deb_version(&spec.engine));
    const MIB: u64 = 1 << 20;
    HostFacts {
        host: hostname.to_string(),
        os: OsRelease {
            id: "debian".into(),
            id_like: vec![],
            version_id: "12".into(),
            codename: "bookworm".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
        },
        init: spec.init,
        package_manager: PackageManager::Apt,
        arch: "amd64".into(),
        available: engine
            .iter()
            .map(|p| (p.to_string(), versions.clone()))
            .collect(),
        held: installed.keys().cloned().collect(),
        installed_sizes: BTreeMap::from([
            ("docker-ce".into(), 100 * MIB),
            ("docker-ce-cli".into(), 40 * MIB),
            ("containerd.io".into(), 120 * MIB),
        ]),
        installed,
        disk_free: BTreeMap::from([("/".into(), 20 << 30), ("/var/lib/docker".into(), 40 << 30)]),
        daemon_json: Some(
            r#"{ "log-driver": "json-file", "log-opts": { "max-size": "10m" } }"#.into(),
        ),
        dockerd_version: Some(format!("Docker version {}, build sim", spec.engine)),
        dockerd_path: Some("/usr/bin/dockerd".into()),
        dockerd_package: Some("docker-ce".into()),
        sudo_ok: true,
        apparmor_enabled: true,
        apparmor_parser: true,
        storage_driver: Some("overlay2".into()),
        live_restore_enabled: Some(false),
        cgroup_version: Some("2".into()),
        ipvlan_networks: Some(vec![]),
        swarm_dir_bytes: (role == Role::Manager).then_some(50 * MIB),
        node_cert_valid_secs: Some(60 * 24 * 3600),
        ..Default::default()
    }
}

impl SimCluster {
    /// A healthy cluster: `managers` managers (`m1` leads), workers `w1`...,
    /// `services` services (the first a global one when there are 3 or more;
    /// every fourth, the second included, bound to `node.role==worker`) with
    /// `tasks` tasks in all, spread by the scheduler, on `networks` overlays.
    pub fn generate(
        nodes: usize,
        managers: usize,
        services: usize,
        tasks: usize,
        networks: usize,
        seed: u64,
    ) -> SimCluster {
        SimCluster::from_spec(&SimSpec::new(
            nodes, managers, services, tasks, networks, seed,
        ))
    }

    pub fn from_spec(spec: &SimSpec) -> SimCluster {
        assert!(
            spec.managers >= 1 && spec.managers <= spec.nodes,
            "a swarm needs 1 to {} managers",
            spec.nodes
        );
        assert!(
            spec.networks <= 254,
            "at most 254 overlay networks (one /16 each in 10.0.0.0/8)"
        );
        let mut rng = Rng(spec.seed);
        // Placed with zero delays, so that the cluster starts settled.
        let mut w = World::new(rng.id(25), Delays::zero());
        let workers = spec.nodes - spec.managers;
        for i in 0..spec.nodes {
            let (role, hostname) = if i < spec.managers {
                (
                    Role::Manager,
                    format!("m{:0w$}", i + 1, w = digits(spec.managers)),
                )
            } else {
                (
                    Role::Worker,
                    format!("w{:0w$}", i - spec.managers + 1, w = digits(workers)),
                )
            };
            let k = i + 10;
            let host = host_facts(&hostname, role, spec);
            w.add_node(Node {
                id: rng.id(25),
                addr: format!("172.{}.{}.{}", 16 + (k >> 16), (k >> 8) & 255, k & 255),
                hostname,
                role,
                availability: Availability::Active,
                labels: BTreeMap::new(),
                version_index: 10 + i as u64,
                state: NodeState::Ready,
                joined: true,
                recorded_version: spec.engine.clone(),
                engine_up: true,
                engine_version: spec.engine.clone(),
                epoch: 0,
                locked: false,
                boot: 0,
                rebooting: false,
                host,
                backups: BTreeMap::new(),
                cached: Default::default(),
                tasks: vec![],
                faults: NodeFaults::default(),
                images: BTreeMap::new(),
            });
        }
        w.raft();

        for k in 0..=spec.networks {
            let facts = NetworkFacts {
                id: rng.id(25),
                name: if k == 0 {
                    "ingress".into()
                } else {
                    format!("net{k:03}")
                },
                ingress: k == 0,
                subnets: vec![format!("10.{k}.0.0/16")],
                peer_count: None,
                driver: "overlay".into(),
                options: Default::default(),
            };
            w.networks.push(Network {
                facts,
                base: u32::from(Ipv4Addr::new(10, k as u8, 0, 2)),
                next: 0,
            });
        }

        let globals = usize::from(spec.services >= 3);
        let replicated = spec.services - globals;
        let budget = spec
            .tasks
            .saturating_sub(globals * spec.nodes)
            .max(replicated);
        let (base, extra) = budget
            .checked_div(replicated)
            .map_or((0, 0), |base| (base, budget % replicated));
        for s in 0..spec.services {
            let mode = if s < globals {
                Mode::Global
            } else {
                let r = s - globals;
                Mode::Replicated((base + usize::from(r < extra)) as u64)
            };
            let constraints = if workers > 0 && s % 4 == 1 {
                vec!["node.role==worker".to_string()]
            } else {
                vec![]
            };
            let nets: Vec<usize> = if s < globals || spec.networks == 0 {
                vec![]
            } else {
                vec![1 + s % spec.networks]
            };
            let vips = nets
                .iter()
                .map(|&k| {
                    let a = w.networks[k].allocate();
                    VirtualIp {
                        network_id: a.network_id,
                        addr: a.addr,
                    }
                })
                .collect();
            w.add_service(Service {
                id: rng.id(25),
                name: format!("svc{s:0w$}", w = digits(spec.services)),
                mode,
                constraints,
                max_per_node: 0,
                networks: nets,
                vips,
                published: published(s, globals),
                tasks: vec![],
                labels: Default::default(),
                image: None,
            });
        }
        w.delays = spec.delays.clone();
        SimCluster::new(w)
    }

    /// The facts `plan` would gather now (hosts that SSH cannot reach are
    /// listed as unreachable, as gathering does).
    pub fn facts(&self) -> Facts {
        self.with(|w| {
            let mut hosts = BTreeMap::new();
            let mut unreachable = BTreeMap::new();
            for n in &w.nodes {
                if n.faults.ssh_lost {
                    unreachable
                        .insert(n.id.clone(), "ssh: connection lost (simulated)".to_string());
                    continue;
                }
                let mut h = n.host.clone();
                // The registry's images were pulled everywhere: only a
                // service's own image can be missing.
                if w.images_read {
                    let registry = (0..w.services.len())
                        .filter(|&s| w.services[s].image.is_none())
                        .map(|s| w.service_facts(s).image);
                    let images = n.images.keys().cloned().chain(registry);
                    h.images = Some(images.map(|r| local_image(&r)).collect());
                }
                if n.engine_up {
                    h.dockerd_version =
                        Some(format!("Docker version {}, build sim", n.engine_version));
                }
                hosts.insert(n.id.clone(), h);
            }
            Facts {
                cluster: ClusterFacts {
                    id: w.cluster_id.clone(),
                    observed_via: w.leader.map(|l| w.nodes[l].id.clone()).unwrap_or_default(),
                    nodes: (0..w.nodes.len()).map(|i| w.node_facts(i)).collect(),
                    services: (0..w.services.len()).map(|s| w.service_facts(s)).collect(),
                    tasks: (0..w.tasks.len())
                        .filter(|&t| w.tasks[t].desired_running)
                        .map(|t| w.task_facts(t))
                        .collect(),
                    networks: w.networks.iter().map(|n| n.facts.clone()).collect(),
                    swarm: SwarmSettings {
                        autolock: w.autolock_key.is_some(),
                        root_rotation_in_progress: false,
                        node_cert_expiry_secs: Some(90 * 24 * 3600),
                        heartbeat_period_secs: Some(5),
                    },
                },
                hosts,
                unreachable,
                // Not asked: the simulated registry serves no one.
                registry: BTreeMap::new(),
            }
        })
    }

    /// Facts plus the pin resolved on every host by the real resolver, as
    /// `plan` gathers them (without apt's dry run: the simulated repository
    /// offers exactly the resolved set).
    pub fn gathered(&self, pin: &EngineVersion) -> Gathered {
        let facts = self.facts();
        let running: HashMap<&str, &str> = facts
            .cluster
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n.engine_version.as_str()))
            .collect();
        let resolutions = facts
            .hosts
            .iter()
            .map(|(id, h)| {
                let current = running.get(id.as_str()).copied().unwrap_or_default();
                (
                    id.clone(),
                    resolve::resolve(h, current, pin, &ResolveOptions::default()),
                )
            })
            .collect();
        Gathered { facts, resolutions }
    }
}

/// `name:tag` as `docker image ls` lists it (no digest: built or loaded).
fn local_image(reference: &str) -> LocalImage {
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    };
    LocalImage {
        repository: repository.into(),
        tag: tag.into(),
        digest: "<none>".into(),
    }
}

/// The first global service publishes a port in host mode (answered where
/// its tasks run), the first replicated one a port on the routing mesh.
fn published(s: usize, globals: usize) -> Vec<PublishedPort> {
    let port = |published, mode: &str| PublishedPort {
        published,
        target: 80,
        protocol: "tcp".into(),
        mode: mode.into(),
    };
    if s == 0 && globals > 0 {
        vec![port(8081, "host")]
    } else if s == globals {
        vec![port(8080, "ingress")]
    } else {
        vec![]
    }
}
