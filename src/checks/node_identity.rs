//! `node-identity`: every command must reach the host whose engine IS the
//! swarm node it is meant for. Nodes are matched to SSH hosts by hostname
//! or address; a cloned VM, a renamed node, or a node joined under another
//! one's name makes two swarm nodes resolve to one host (which then gets
//! both nodes' commands, without the other's drain or quorum guard), or a
//! host whose engine is another node. The fact script reads the engine's
//! own swarm NodeID (`docker info`), which settles it.
//!
//! An engine that did not answer (stopped, or the facts were read without
//! access to the Docker socket) proves nothing either way: no finding from
//! it; the executor's engine polls check the NodeID again during the run.

use std::collections::BTreeMap;

use super::{Check, CheckContext, Finding, Severity};
use crate::facts::model::{MatchedBy, NodeFacts};

pub struct NodeIdentity;

const ID: &str = "node-identity";

const FIX: &str = "remove a stale node from the swarm (`docker node rm`), give each machine its own \
                   hostname, or list each node in the inventory under its swarm address";

impl Check for NodeIdentity {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "every swarm node resolves to its own host, whose engine is that node"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let facts = ctx.facts;
        let name = |n: &NodeFacts| format!("{} (id {})", n.hostname, n.id);
        let mut findings = vec![];
        // Two nodes matched to one inventory entry: one machine, whatever
        // its engine says.
        let mut by_entry: BTreeMap<&str, Vec<&NodeFacts>> = BTreeMap::new();
        // Two nodes whose hosts' engines are one node.
        let mut by_engine: BTreeMap<&str, Vec<&NodeFacts>> = BTreeMap::new();
        for node in &facts.cluster.nodes {
            let Some(host) = facts.hosts.get(&node.id) else {
                continue;
            };
            if host.matched_by != MatchedBy::Discovered {
                by_entry.entry(host.host.as_str()).or_default().push(node);
            }
            match host.engine_node_id.as_deref() {
                None => {}
                Some("") => findings.push(Finding::block(
                    ID,
                    Some(&node.hostname),
                    format!(
                        "host {} was matched to swarm node {} ({:?}), but its engine is in no swarm: \
                         it is not that node; {FIX}",
                        host.host,
                        name(node),
                        host.matched_by
                    ),
                )),
                Some(engine) => {
                    by_engine.entry(engine).or_default().push(node);
                    if engine != node.id {
                        let other = facts
                            .node(engine)
                            .map_or(format!("id {engine}, not in the swarm's node list"), name);
                        findings.push(Finding::block(
                            ID,
                            Some(&node.hostname),
                            format!(
                                "host {} was matched to swarm node {} ({:?}), but its engine is swarm \
                                 node {other}: commands for {} would reach another machine; {FIX}",
                                host.host,
                                name(node),
                                host.matched_by,
                                node.hostname
                            ),
                        ));
                    }
                }
            }
        }
        for (host, nodes) in by_entry.iter().filter(|(_, n)| n.len() > 1) {
            findings.push(Finding::block(
                ID,
                Some(&nodes[0].hostname),
                format!(
                    "swarm nodes {} all resolve to inventory host {host}: one machine would get the \
                     commands of each; {FIX}",
                    nodes.iter().map(|n| name(n)).collect::<Vec<_>>().join(" and ")
                ),
            ));
        }
        for (engine, nodes) in by_engine.iter().filter(|(_, n)| n.len() > 1) {
            let hosts: Vec<&str> = nodes
                .iter()
                .filter_map(|n| facts.hosts.get(&n.id).map(|h| h.host.as_str()))
                .collect();
            findings.push(Finding::block(
                ID,
                Some(&nodes[0].hostname),
                format!(
                    "swarm nodes {} resolve to hosts {} whose engine is one node (id {engine}); {FIX}",
                    nodes.iter().map(|n| name(n)).collect::<Vec<_>>().join(" and "),
                    hosts.join(" and ")
                ),
            ));
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::Fixture;

    fn with_engine_ids() -> Fixture {
        let mut fx = Fixture::healthy();
        for (id, h) in fx.facts.hosts.iter_mut() {
            h.engine_node_id = Some(id.clone());
        }
        fx
    }

    #[test]
    fn passes_when_every_engine_is_its_node_or_unknown() {
        assert!(with_engine_ids().run(&NodeIdentity).is_empty());
        // Engines not read (stopped): nothing proven, nothing reported.
        assert!(Fixture::healthy().run(&NodeIdentity).is_empty());
    }

    #[test]
    fn blocks_two_nodes_with_one_hostname_matched_to_one_host() {
        // A cloned VM joined as a second worker under w1's hostname: both
        // match inventory host w1, whose engine is id-w1.
        let mut fx = with_engine_ids();
        fx.node("w2").hostname = "w1".into();
        let w1_host = fx.host("w1").clone();
        *fx.host("w2") = w1_host;
        let findings = fx.run(&NodeIdentity);
        let text: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            findings
                .iter()
                .all(|f| f.severity == Severity::Block && f.id == ID)
        );
        assert!(
            text.iter().any(|m| m.contains(
                "swarm nodes w1 (id id-w1) and w1 (id id-w2) all resolve to inventory host w1"
            )),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|m| m.contains(
                "host w1 was matched to swarm node w1 (id id-w2) (Hostname), but its engine is swarm node w1 (id id-w1)"
            )),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|m| m
                    .contains("resolve to hosts w1 and w1 whose engine is one node (id id-w1)")),
            "{text:#?}"
        );
    }

    #[test]
    fn blocks_a_host_whose_engine_is_another_node_or_none() {
        let mut fx = with_engine_ids();
        // m3's machine was reinstalled and joined anew: a node id the swarm's
        // list does not have.
        fx.host("m3").engine_node_id = Some("freshid".into());
        fx.host("w2").engine_node_id = Some(String::new());
        let findings = fx.run(&NodeIdentity);
        assert_eq!(findings.len(), 2, "{findings:#?}");
        assert!(findings[0].message.contains(
            "host m3 was matched to swarm node m3 (id id-m3) (Hostname), but its engine is swarm node id freshid, not in the swarm's node list"
        ), "{}", findings[0].message);
        assert!(
            findings[1].message.contains("its engine is in no swarm"),
            "{}",
            findings[1].message
        );
    }

    #[test]
    fn discovered_nodes_with_one_hostname_on_two_machines_pass() {
        let mut fx = with_engine_ids();
        fx.node("w2").hostname = "w1".into();
        fx.host("w1").matched_by = MatchedBy::Discovered;
        fx.host("w2").matched_by = MatchedBy::Discovered;
        fx.host("w2").host = "w1".into();
        assert!(fx.run(&NodeIdentity).is_empty());
    }
}
