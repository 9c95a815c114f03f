//! `swarm-ports` (P10): swarm needs TCP 2377 to the managers and TCP+UDP
//! 7946 between all nodes (and UDP 4789 for overlay data); a port a
//! firewall closes between two nodes stays unnoticed until a restart makes
//! a node talk to another manager or rebuild its overlay peer lists. Each
//! host tries a TCP connection to the other nodes' ports while the facts are
//! gathered; UDP cannot be told from a silent peer without root-only tools,
//! so it is left to the engine's own view (node status, `node-health`). The
//! firewall must have one backend: Docker's chains in both iptables-legacy
//! and iptables-nft mean a switched backend, and the restarted dockerd
//! writes to the other one. Engine 28 adds rules to the `raw` table.

use std::collections::BTreeMap;

use super::{Check, CheckContext, Finding, Severity, join};
use crate::facts::model::{NodeFacts, NodeState};

pub struct SwarmPorts;

const ID: &str = "swarm-ports";
const RAFT: u16 = 2377;
const GOSSIP: u16 = 7946;

/// The node a probed (address, port) belongs to.
fn target<'a>(nodes: &'a [NodeFacts], addr: &str, port: u16) -> Option<&'a NodeFacts> {
    nodes.iter().find(|n| match port {
        RAFT => n
            .manager
            .as_ref()
            .is_some_and(|m| m.addr.rsplit_once(':').map_or(n.addr.as_str(), |(h, _)| h) == addr),
        _ => n.addr == addr,
    })
}

impl Check for SwarmPorts {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "every node reaches the managers on TCP 2377 and the other nodes on TCP 7946; one iptables backend \
         holds Docker's chains; the raw table exists for Engine 28+"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let nodes = &ctx.facts.cluster.nodes;
        let mut out = vec![];
        for node in nodes {
            let Some(host) = ctx.facts.hosts.get(&node.id) else {
                continue;
            };
            let name = Some(node.hostname.as_str());
            // Closed ports per port, as "m2 (10.0.0.12)".
            let mut closed: BTreeMap<u16, Vec<String>> = BTreeMap::new();
            for p in host.port_probes.iter().flatten().filter(|p| !p.open) {
                let to = target(nodes, &p.addr, p.port);
                // A port closed because its engine is stopped or out of the
                // raft is node-health's finding, not a firewall's.
                if to.is_some_and(|n| {
                    n.state != NodeState::Ready || (p.port == RAFT && !n.is_reachable_manager())
                }) {
                    continue;
                }
                let who = to.map_or(p.addr.clone(), |n| format!("{} ({})", n.hostname, p.addr));
                closed.entry(p.port).or_default().push(who);
            }
            if let Some(peers) = closed.get(&RAFT) {
                out.push(Finding::block(
                    ID,
                    name,
                    format!(
                        "host {} cannot open TCP {RAFT} (swarm control plane) to manager {}: while the \
                         managers are restarted one by one, {} may have only those left and drop out of the \
                         swarm; open TCP {RAFT} from {} to every manager (host firewall, security group)",
                        host.host,
                        join(peers),
                        node.hostname,
                        node.hostname
                    ),
                ));
            }
            if let Some(peers) = closed.get(&GOSSIP) {
                out.push(Finding::warn(
                    ID,
                    name,
                    format!(
                        "host {} cannot open TCP {GOSSIP} (gossip) to {}: after their engines restart, \
                         overlay networks and the routing mesh between them may not converge; open TCP and \
                         UDP {GOSSIP} between all nodes",
                        host.host,
                        join(peers)
                    ),
                ));
            }
            let Some(fw) = &host.firewall else {
                continue;
            };
            if fw.legacy_has_docker && fw.nft_has_docker {
                out.push(Finding::warn(
                    ID,
                    name,
                    format!(
                        "host {}: Docker's iptables chains are in both iptables-legacy and iptables-nft \
                         (`iptables` is {}): the restarted dockerd writes to one only, and the other's stale \
                         rules may drop overlay or ingress traffic; pick one backend (update-alternatives \
                         --config iptables), flush Docker's chains from the other, then upgrade",
                        host.host,
                        if fw.backend.is_empty() {
                            "of unknown backend"
                        } else {
                            &fw.backend
                        }
                    ),
                ));
            }
            if ctx.pin.major() >= 28 && !fw.raw_table {
                out.push(Finding::warn(
                    ID,
                    name,
                    format!(
                        "host {}: iptables has no raw table (no iptable_raw module, no nf_tables backend), which dockerd {} \
                         uses to filter direct access to containers; load the kernel module \
                         (modprobe iptable_raw) or the nftables equivalent before the upgrade",
                        host.host, ctx.pin
                    ),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};
    use crate::facts::model::{Firewall, PortProbe, Reachability};

    /// Every host probes every other node's ports, all open, on one backend.
    fn connected() -> Fixture {
        let mut fx = Fixture::healthy();
        let nodes = fx.facts.cluster.nodes.clone();
        for n in &nodes {
            let mut probes = vec![];
            for peer in nodes.iter().filter(|p| p.id != n.id) {
                if peer.manager.is_some() {
                    probes.push(PortProbe {
                        addr: peer.addr.clone(),
                        port: RAFT,
                        open: true,
                    });
                }
                probes.push(PortProbe {
                    addr: peer.addr.clone(),
                    port: GOSSIP,
                    open: true,
                });
            }
            let h = fx.host(&n.hostname);
            h.port_probes = Some(probes);
            h.firewall = Some(Firewall {
                backend: "nf_tables".into(),
                legacy_has_docker: false,
                nft_has_docker: true,
                raw_table: true,
            });
        }
        fx
    }

    fn close(fx: &mut Fixture, from: &str, to_addr: &str, port: u16) {
        for p in fx.host(from).port_probes.as_mut().unwrap() {
            if p.addr == to_addr && p.port == port {
                p.open = false;
            }
        }
    }

    #[test]
    fn passes_when_every_port_answers_on_one_backend() {
        assert!(connected().run(&SwarmPorts).is_empty());
        assert!(Fixture::healthy().run(&SwarmPorts).is_empty());
    }

    #[test]
    fn warns_on_a_closed_gossip_port_naming_both_nodes() {
        let mut fx = connected();
        let w2 = fx.node("w2").addr.clone();
        close(&mut fx, "w1", &w2, GOSSIP);
        let findings = fx.run(&SwarmPorts);
        let f = the(&findings, Severity::Warn);
        assert_eq!(f.node.as_deref(), Some("w1"));
        assert_eq!(
            f.message,
            format!(
                "host w1 cannot open TCP 7946 (gossip) to w2 ({w2}): after their engines restart, overlay \
                 networks and the routing mesh between them may not converge; open TCP and UDP 7946 between \
                 all nodes"
            )
        );
    }

    #[test]
    fn blocks_a_manager_unreachable_on_the_raft_port() {
        let mut fx = connected();
        let m2 = fx.node("m2").addr.clone();
        close(&mut fx, "w2", &m2, RAFT);
        let findings = fx.run(&SwarmPorts);
        let f = the(&findings, Severity::Block);
        assert_eq!(f.node.as_deref(), Some("w2"));
        assert!(
            f.message.starts_with(&format!(
                "host w2 cannot open TCP 2377 (swarm control plane) to manager m2 ({m2})"
            )),
            "{}",
            f.message
        );
    }

    #[test]
    fn ports_of_a_stopped_engine_are_left_to_node_health() {
        let mut fx = connected();
        let m2 = fx.node("m2").addr.clone();
        for from in ["m1", "m3", "w1", "w2"] {
            close(&mut fx, from, &m2, RAFT);
        }
        // Out of the raft at once; its 7946 counts until the swarm sees it down.
        fx.node("m2").manager.as_mut().unwrap().reachability = Reachability::Unreachable;
        assert!(fx.run(&SwarmPorts).is_empty());
        close(&mut fx, "w1", &m2, GOSSIP);
        assert_eq!(fx.run(&SwarmPorts).len(), 1);
        fx.node("m2").state = NodeState::Down;
        assert!(fx.run(&SwarmPorts).is_empty());
    }

    #[test]
    fn warns_on_a_split_firewall_and_a_missing_raw_table_for_28() {
        let mut fx = connected();
        fx.host("m3").firewall.as_mut().unwrap().legacy_has_docker = true;
        let f = fx.run(&SwarmPorts);
        assert!(
            the(&f, Severity::Warn)
                .message
                .contains("both iptables-legacy and iptables-nft")
        );
        let mut fx = connected();
        fx.host("w1").firewall.as_mut().unwrap().raw_table = false;
        assert!(fx.run(&SwarmPorts).is_empty(), "26.1.5 does not need it");
        fx.set_pin("28.0.1");
        let f = fx.run(&SwarmPorts);
        assert!(
            the(&f, Severity::Warn)
                .message
                .starts_with("host w1: iptables has no raw table")
        );
    }
}
