//! Test fixtures: a healthy cluster that each check's tests bend until it
//! warns or blocks.
//!
//! Three managers (m1 the leader, m2, m3) and two workers (w1, w2), all on
//! Docker CE 25.0.5 from apt on Debian 12, to be upgraded to 26.1.5. Services:
//! `web` (3 replicas, anywhere), `api` (2 replicas, workers only), both on the
//! overlay `app` (10.0.1.0/24), and the global `agent`.

use std::collections::BTreeMap;

use super::{Check, CheckContext, Finding, Severity};
use crate::facts::model::*;
use crate::version::EngineVersion;
use crate::version::resolve::{Family, Method, Resolution, ResolveError};

pub const GIB: u64 = 1024 * 1024 * 1024;
pub const MIB: u64 = 1024 * 1024;

pub struct Fixture {
    pub facts: Facts,
    pub pin: EngineVersion,
    pub resolutions: BTreeMap<String, Result<Resolution, ResolveError>>,
    pub unlock_key_available: bool,
}

impl Fixture {
    pub fn healthy() -> Self {
        let pin: EngineVersion = "26.1.5".parse().unwrap();
        let names = ["m1", "m2", "m3", "w1", "w2"];
        let nodes: Vec<NodeFacts> = names.iter().enumerate().map(|(i, n)| node(n, i)).collect();
        let hosts = nodes.iter().map(|n| (n.id.clone(), host(n))).collect();
        let resolutions = nodes
            .iter()
            .map(|n| {
                let res = Resolution {
                    method: Method::DebianApt,
                    family: Family::DockerCe,
                    target: pin.clone(),
                    packages: vec![],
                    bundle: None,
                };
                (n.id.clone(), Ok(res))
            })
            .collect();
        let mut fx = Fixture {
            facts: Facts {
                cluster: ClusterFacts {
                    id: "cluster-1".into(),
                    observed_via: "m1".into(),
                    nodes,
                    services: vec![
                        ServiceFacts {
                            virtual_ips: vec![vip("10.0.1.2/24")],
                            ..service("web", ServiceMode::Replicated { replicas: 3 })
                        },
                        ServiceFacts {
                            constraints: vec!["node.role==worker".into()],
                            virtual_ips: vec![vip("10.0.1.3/24")],
                            ..service("api", ServiceMode::Replicated { replicas: 2 })
                        },
                        service("agent", ServiceMode::Global),
                    ],
                    tasks: vec![],
                    networks: vec![
                        NetworkFacts {
                            id: "net-ingress".into(),
                            name: "ingress".into(),
                            ingress: true,
                            subnets: vec!["10.0.0.0/24".into()],
                            peer_count: Some(5),
                            driver: "overlay".into(),
                            options: Default::default(),
                        },
                        NetworkFacts {
                            id: "net-app".into(),
                            name: "app".into(),
                            ingress: false,
                            subnets: vec!["10.0.1.0/24".into()],
                            peer_count: None,
                            driver: "overlay".into(),
                            options: Default::default(),
                        },
                    ],
                    swarm: SwarmSettings {
                        autolock: false,
                        root_rotation_in_progress: false,
                        node_cert_expiry_secs: Some(2160 * 3600),
                        heartbeat_period_secs: Some(5),
                    },
                },
                hosts,
                ..Default::default()
            },
            pin,
            resolutions,
            unlock_key_available: false,
        };
        let mut next_ip = 10;
        for (svc, on) in [
            ("web", ["m2", "w1", "w2"].as_slice()),
            ("api", &["w1", "w2"]),
        ] {
            for n in on {
                next_ip += 1;
                fx.add_task(svc, n, Some(("net-app", &format!("10.0.1.{next_ip}/24"))));
            }
        }
        for n in names {
            fx.add_task("agent", n, None);
        }
        fx
    }

    pub fn ctx(&self) -> CheckContext<'_> {
        CheckContext {
            unlock_key_available: self.unlock_key_available,
            ..CheckContext::new(&self.facts, &self.pin, &self.resolutions)
        }
    }

    /// Runs one check, holding it to its contract: findings carry its own id
    /// and only the severities its catalogue entry declares.
    pub fn run(&self, check: &dyn Check) -> Vec<Finding> {
        let findings = check.run(&self.ctx());
        for f in &findings {
            assert_eq!(f.id, check.id(), "{f:?}");
            assert!(
                check.severities().contains(&f.severity),
                "undeclared severity: {f:?}"
            );
            assert!(!f.message.is_empty());
        }
        findings
    }

    pub fn set_pin(&mut self, pin: &str) {
        self.pin = pin.parse().unwrap();
    }

    pub fn node(&mut self, hostname: &str) -> &mut NodeFacts {
        self.facts
            .cluster
            .nodes
            .iter_mut()
            .find(|n| n.hostname == hostname)
            .unwrap_or_else(|| panic!("no node {hostname}"))
    }

    pub fn host(&mut self, hostname: &str) -> &mut HostFacts {
        let id = format!("id-{hostname}");
        self.facts
            .hosts
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no host {hostname}"))
    }

    pub fn service(&mut self, name: &str) -> &mut ServiceFacts {
        self.facts
            .cluster
            .services
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    pub fn network(&mut self, name: &str) -> &mut NetworkFacts {
        self.facts
            .cluster
            .networks
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no network {name}"))
    }

    /// Adds a running task of `service` on node `hostname`, optionally holding
    /// an address on a network (by network ID).
    pub fn add_task(&mut self, service: &str, hostname: &str, addr: Option<(&str, &str)>) {
        let id = format!("task-{}", self.facts.cluster.tasks.len() + 1);
        self.facts.cluster.tasks.push(TaskFacts {
            id,
            service_id: format!("svc-{service}"),
            node_id: format!("id-{hostname}"),
            state: "running".into(),
            err: String::new(),
            network_addrs: addr
                .map(|(network_id, addr)| NetworkAddr {
                    network_id: network_id.into(),
                    addr: addr.into(),
                })
                .into_iter()
                .collect(),
        });
    }

    /// Removes every task of `service`.
    /// Adds an active, ready worker (with its host) named `hostname`.
    pub fn add_worker(&mut self, hostname: &str) {
        let n = node(hostname, self.facts.cluster.nodes.len());
        assert_eq!(n.role, Role::Worker, "worker names do not start with m");
        self.facts.hosts.insert(n.id.clone(), host(&n));
        self.resolutions
            .insert(n.id.clone(), self.resolutions["id-w1"].clone());
        self.facts.cluster.nodes.push(n);
    }

    pub fn clear_tasks(&mut self, service: &str) {
        let id = format!("svc-{service}");
        self.facts.cluster.tasks.retain(|t| t.service_id != id);
    }
}

/// The most severe finding, if any.
pub fn worst(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}

/// The one finding of this severity; fails the test if there is not exactly one.
pub fn the(findings: &[Finding], severity: Severity) -> &Finding {
    let mut of: Vec<&Finding> = findings.iter().filter(|f| f.severity == severity).collect();
    assert_eq!(
        of.len(),
        1,
        "expected one {severity:?} finding in {findings:#?}"
    );
    of.remove(0)
}

fn node(hostname: &str, i: usize) -> NodeFacts {
    let addr = format!("192.168.56.{}", 11 + i);
    let manager = hostname.starts_with('m').then(|| ManagerFacts {
        leader: hostname == "m1",
        reachability: Reachability::Reachable,
        addr: format!("{addr}:2377"),
    });
    NodeFacts {
        id: format!("id-{hostname}"),
        hostname: hostname.into(),
        addr,
        role: if manager.is_some() {
            Role::Manager
        } else {
            Role::Worker
        },
        availability: Availability::Active,
        state: NodeState::Ready,
        message: String::new(),
        manager,
        engine_version: "25.0.5".into(),
        labels: BTreeMap::new(),
        engine_labels: BTreeMap::new(),
        version_index: 10 + i as u64,
        nano_cpus: 4_000_000_000,
        memory_bytes: (8 * GIB) as i64,
        platform_os: "linux".into(),
        platform_arch: "x86_64".into(),
    }
}

fn host(n: &NodeFacts) -> HostFacts {
    let deb = |v: &str| format!("5:{v}-1~debian.12~bookworm");
    let engine = ["docker-ce", "docker-ce-cli"];
    let mut installed: BTreeMap<String, String> = engine
        .iter()
        .map(|p| (p.to_string(), deb("25.0.5")))
        .collect();
    installed.insert("containerd.io".into(), "1.6.28-1".into());
    HostFacts {
        host: n.hostname.clone(),
        os: OsRelease {
            id: "debian".into(),
            id_like: vec![],
            version_id: "12".into(),
            codename: "bookworm".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
        },
        init: InitSystem::Systemd,
        package_manager: PackageManager::Apt,
        arch: "amd64".into(),
        available: engine
            .iter()
            .map(|p| (p.to_string(), vec![deb("26.1.5"), deb("25.0.5")]))
            .collect(),
        held: installed.keys().cloned().collect(),
        installed_sizes: BTreeMap::from([
            ("docker-ce".into(), 100 * MIB),
            ("docker-ce-cli".into(), 40 * MIB),
            ("containerd.io".into(), 120 * MIB),
        ]),
        installed,
        disk_free: BTreeMap::from([("/".into(), 20 * GIB), ("/var/lib/docker".into(), 40 * GIB)]),
        daemon_json: Some(
            r#"{ "log-driver": "json-file", "log-opts": { "max-size": "10m" } }"#.into(),
        ),
        dockerd_version: Some("Docker version 25.0.5, build e63daec".into()),
        dockerd_path: Some("/usr/bin/dockerd".into()),
        dockerd_package: Some("docker-ce".into()),
        sudo_ok: true,
        apparmor_enabled: true,
        apparmor_parser: true,
        storage_driver: Some("overlay2".into()),
        live_restore_enabled: Some(false),
        cgroup_version: Some("2".into()),
        ipvlan_networks: Some(vec![]),
        swarm_dir_bytes: (n.role == Role::Manager).then_some(50 * MIB),
        node_cert_valid_secs: Some(60 * 24 * 3600),
        ..Default::default()
    }
}

fn service(name: &str, mode: ServiceMode) -> ServiceFacts {
    let replicas = match mode {
        ServiceMode::Replicated { replicas } => replicas,
        _ => 5,
    };
    ServiceFacts {
        id: format!("svc-{name}"),
        name: name.into(),
        mode,
        image: format!("registry.example/{name}:1@sha256:ab"),
        constraints: vec![],
        max_replicas_per_node: 0,
        reserved_nano_cpus: 0,
        reserved_memory_bytes: 0,
        running_tasks: replicas,
        desired_tasks: replicas,
        update_state: None,
        published_ports: vec![],
        virtual_ips: vec![],
        bind_mounts: vec![],
        networks: vec![],
    }
}

fn vip(addr: &str) -> VirtualIp {
    VirtualIp {
        network_id: "net-app".into(),
        addr: addr.into(),
    }
}
