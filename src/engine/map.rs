//! Pure mapping from Engine API objects to facts.

use bollard::models::{
    EndpointPortConfigPublishModeEnum, MountType, Network, Node, NodeSpecAvailabilityEnum,
    NodeSpecRoleEnum, Reachability as ApiReachability, Service, Swarm, SystemInfo,
};
use serde_json::Value;

use crate::facts::model::{
    Availability, ClusterFacts, ManagerFacts, NetworkAddr, NetworkFacts, NodeFacts, NodeState,
    PublishedPort, Reachability, Role, ServiceFacts, ServiceMode, SwarmSettings, TaskFacts,
    VirtualIp,
};

pub fn cluster(
    observed_via: &str,
    info: &SystemInfo,
    nodes: &[Node],
    services: &[Service],
    tasks: &Value,
    networks: &[Network],
    swarm: &Swarm,
) -> ClusterFacts {
    let id = info
        .swarm
        .as_ref()
        .and_then(|s| s.cluster.as_ref())
        .and_then(|c| c.id.clone())
        .or_else(|| swarm.id.clone())
        .unwrap_or_default();
    let spec = swarm.spec.as_ref();
    let settings = SwarmSettings {
        autolock: spec
            .and_then(|s| s.encryption_config.as_ref())
            .and_then(|e| e.auto_lock_managers)
            .unwrap_or(false),
        root_rotation_in_progress: swarm.root_rotation_in_progress.unwrap_or(false),
        node_cert_expiry_secs: spec
            .and_then(|s| s.ca_config.as_ref())
            .and_then(|c| c.node_cert_expiry)
            .map(|ns| (ns / 1_000_000_000).max(0) as u64),
        heartbeat_period_secs: spec
            .and_then(|s| s.dispatcher.as_ref())
            .and_then(|d| d.heartbeat_period)
            .map(|ns| (ns / 1_000_000_000).max(0) as u64),
    };
    // Sorted, so that facts, findings and plans read the same on every run
    // whatever order the API lists things in.
    let mut nodes: Vec<NodeFacts> = nodes.iter().map(node).collect();
    nodes.sort_by(|a, b| (&a.hostname, &a.id).cmp(&(&b.hostname, &b.id)));
    let mut services: Vec<ServiceFacts> = services.iter().map(service).collect();
    services.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    let mut networks: Vec<NetworkFacts> = networks.iter().map(network).collect();
    networks.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    ClusterFacts {
        id,
        observed_via: observed_via.to_string(),
        nodes,
        services,
        tasks: tasks
            .as_array()
            .map(|a| a.iter().map(task).collect())
            .unwrap_or_default(),
        networks,
        swarm: settings,
    }
}

pub fn node(n: &Node) -> NodeFacts {
    let spec = n.spec.as_ref();
    let desc = n.description.as_ref();
    let status = n.status.as_ref();
    NodeFacts {
        id: n.id.clone().unwrap_or_default(),
        hostname: desc.and_then(|d| d.hostname.clone()).unwrap_or_default(),
        addr: status.and_then(|s| s.addr.clone()).unwrap_or_default(),
        role: match spec.and_then(|s| s.role) {
            Some(NodeSpecRoleEnum::MANAGER) => Role::Manager,
            _ => Role::Worker,
        },
        availability: match spec.and_then(|s| s.availability) {
            Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            _ => Availability::Active,
        },
        state: match status.and_then(|s| s.state) {
            Some(bollard::models::NodeState::READY) => NodeState::Ready,
            Some(bollard::models::NodeState::DOWN) => NodeState::Down,
            Some(bollard::models::NodeState::DISCONNECTED) => NodeState::Disconnected,
            _ => NodeState::Unknown,
        },
        message: status.and_then(|s| s.message.clone()).unwrap_or_default(),
        manager: n.manager_status.as_ref().map(|m| ManagerFacts {
            leader: m.leader.unwrap_or(false),
            reachability: match m.reachability {
                Some(ApiReachability::REACHABLE) => Reachability::Reachable,
                Some(ApiReachability::UNREACHABLE) => Reachability::Unreachable,
                _ => Reachability::Unknown,
            },
            addr: m.addr.clone().unwrap_or_default(),
        }),
        engine_version: desc
            .and_then(|d| d.engine.as_ref())
            .and_then(|e| e.engine_version.clone())
            .unwrap_or_default(),
        labels: spec
            .and_then(|s| s.labels.clone())
            .map(|l| l.into_iter().collect())
            .unwrap_or_default(),
        engine_labels: desc
            .and_then(|d| d.engine.as_ref())
            .and_then(|e| e.labels.clone())
            .map(|l| l.into_iter().collect())
            .unwrap_or_default(),
        version_index: n.version.as_ref().and_then(|v| v.index).unwrap_or(0),
        nano_cpus: desc
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.nano_cpus)
            .unwrap_or(0),
        memory_bytes: desc
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.memory_bytes)
            .unwrap_or(0),
        platform_os: desc
            .and_then(|d| d.platform.as_ref())
            .and_then(|p| p.os.clone())
            .unwrap_or_default(),
        platform_arch: desc
            .and_then(|d| d.platform.as_ref())
            .and_then(|p| p.architecture.clone())
            .unwrap_or_default(),
    }
}

pub fn service(s: &Service) -> ServiceFacts {
    let spec = s.spec.as_ref();
    let template = spec.and_then(|s| s.task_template.as_ref());
    let placement = template.and_then(|t| t.placement.as_ref());
    let reservations = template
        .and_then(|t| t.resources.as_ref())
        .and_then(|r| r.reservations.as_ref());
    let mode = spec.and_then(|s| s.mode.as_ref());
    let mode = match mode {
        Some(m) if m.global.is_some() => ServiceMode::Global,
        Some(m) if m.replicated_job.is_some() => ServiceMode::ReplicatedJob,
        Some(m) if m.global_job.is_some() => ServiceMode::GlobalJob,
        Some(m) => ServiceMode::Replicated {
            replicas: m
                .replicated
                .as_ref()
                .and_then(|r| r.replicas)
                .unwrap_or(1)
                .max(0) as u64,
        },
        None => ServiceMode::Replicated { replicas: 1 },
    };
    let endpoint = s.endpoint.as_ref();
    ServiceFacts {
        id: s.id.clone().unwrap_or_default(),
        name: spec.and_then(|s| s.name.clone()).unwrap_or_default(),
        mode,
        image: template
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        constraints: placement
            .and_then(|p| p.constraints.clone())
            .unwrap_or_default(),
        max_replicas_per_node: placement.and_then(|p| p.max_replicas).unwrap_or(0).max(0) as u64,
        reserved_nano_cpus: reservations.and_then(|r| r.nano_cpus).unwrap_or(0),
        reserved_memory_bytes: reservations.and_then(|r| r.memory_bytes).unwrap_or(0),
        running_tasks: s
            .service_status
            .as_ref()
            .and_then(|x| x.running_tasks)
            .unwrap_or(0),
        desired_tasks: s
            .service_status
            .as_ref()
            .and_then(|x| x.desired_tasks)
            .unwrap_or(0),
        update_state: s
            .update_status
            .as_ref()
            .and_then(|u| u.state)
            .map(|st| st.to_string())
            .filter(|st| !st.is_empty()),
        published_ports: endpoint
            .and_then(|e| e.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| {
                        Some(PublishedPort {
                            published: u16::try_from(p.published_port?).ok()?,
                            target: u16::try_from(p.target_port.unwrap_or(0)).unwrap_or(0),
                            protocol: p.protocol.map(|x| x.to_string()).unwrap_or_default(),
                            mode: match p.publish_mode {
                                Some(EndpointPortConfigPublishModeEnum::HOST) => "host",
                                _ => "ingress",
                            }
                            .to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        virtual_ips: endpoint
            .and_then(|e| e.virtual_ips.as_ref())
            .map(|v| {
                v.iter()
                    .map(|vip| VirtualIp {
                        network_id: vip.network_id.clone().unwrap_or_default(),
                        addr: vip.addr.clone().unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        networks: template
            .and_then(|t| t.networks.as_ref())
            .or(spec.and_then(|s| s.networks.as_ref()))
            .map(|n| n.iter().filter_map(|a| a.target.clone()).collect())
            .unwrap_or_default(),
        bind_mounts: template
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.mounts.as_ref())
            .map(|mounts| {
                mounts
                    .iter()
                    .filter(|m| m.typ == Some(MountType::BIND))
                    .filter_map(|m| m.source.clone())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A task from raw `/tasks` JSON (field names as the API spells them).
pub fn task(t: &Value) -> TaskFacts {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    TaskFacts {
        id: s(&t["ID"]),
        service_id: s(&t["ServiceID"]),
        node_id: s(&t["NodeID"]),
        state: s(&t["Status"]["State"]),
        err: s(&t["Status"]["Err"]),
        network_addrs: t["NetworksAttachments"]
            .as_array()
            .map(|atts| {
                atts.iter()
                    .flat_map(|a| {
                        let net = s(&a["Network"]["ID"]);
                        a["Addresses"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .map(move |addr| NetworkAddr {
                                network_id: net.clone(),
                                addr: addr.as_str().unwrap_or_default().to_string(),
                            })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub fn network(n: &Network) -> NetworkFacts {
    NetworkFacts {
        id: n.id.clone().unwrap_or_default(),
        name: n.name.clone().unwrap_or_default(),
        ingress: n.ingress.unwrap_or(false),
        subnets: n
            .ipam
            .as_ref()
            .and_then(|i| i.config.as_ref())
            .map(|c| c.iter().filter_map(|x| x.subnet.clone()).collect())
            .unwrap_or_default(),
        peer_count: n.peers.as_ref().map(|p| p.len() as u64),
        driver: n.driver.clone().unwrap_or_default(),
        options: n
            .options
            .as_ref()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_task_with_network_attachments() {
        let t: Value = serde_json::from_str(
            r#"{"ID":"t1","ServiceID":"s1","NodeID":"n1",
                "Status":{"State":"rejected","Err":"node is missing network attachments, ip addresses may be exhausted"},
                "NetworksAttachments":[{"Network":{"ID":"net1"},"Addresses":["10.0.1.5/24","10.0.1.6/24"]}]}"#,
        )
        .unwrap();
        let f = task(&t);
        assert_eq!(f.state, "rejected");
        assert!(f.err.contains("missing network attachments"));
        assert_eq!(f.network_addrs.len(), 2);
        assert_eq!(f.network_addrs[1].addr, "10.0.1.6/24");
    }

    #[test]
    fn maps_a_manager_node() {
        let n: Node = serde_json::from_str(
            r#"{"ID":"abc","Version":{"Index":42},
                "Spec":{"Role":"manager","Availability":"drain","Labels":{"zone":"a"}},
                "Description":{"Hostname":"lab-m1","Engine":{"EngineVersion":"20.10.24+dfsg1"},
                               "Resources":{"NanoCPUs":2000000000,"MemoryBytes":1024}},
                "Status":{"State":"ready","Addr":"172.30.0.11"},
                "ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"172.30.0.11:2377"}}"#,
        )
        .unwrap();
        let f = node(&n);
        assert_eq!(f.hostname, "lab-m1");
        assert_eq!(f.role, Role::Manager);
        assert_eq!(f.availability, Availability::Drain);
        assert_eq!(f.state, NodeState::Ready);
        assert!(f.is_leader());
        assert!(f.is_reachable_manager());
        assert_eq!(f.version_index, 42);
        assert_eq!(f.labels["zone"], "a");
    }
}
