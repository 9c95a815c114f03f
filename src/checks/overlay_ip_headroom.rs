//! `overlay-ip-headroom` (P4): a drain reschedules tasks, and the replacement
//! tasks take new overlay addresses before the old ones are freed. A subnet
//! that is full, or nearly, rejects them with "node is missing network
//! attachments, ip addresses may be exhausted" and the services stay down.
//!
//! Capacity per IPv4 subnet is 2^(32-prefix) - 3 (network, broadcast and
//! gateway); usage is the task addresses, one VIP per vip-mode service and
//! one load-balancer address per node on the network (Docker's own formula,
//! as in the ip-util-check script the upgrade docs point to).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use super::{Check, CheckContext, Finding, Severity, count};
use crate::facts::model::{NetworkFacts, NodeFacts, Role, TaskFacts};

pub struct OverlayIpHeadroom;

const ID: &str = "overlay-ip-headroom";

/// Addresses a subnet can never hand out: network, broadcast, gateway.
const RESERVED: u64 = 3;

/// What a subnet holds.
#[derive(Default)]
struct Usage {
    tasks: u64,
    vips: u64,
    /// Task addresses per node ID, to size what a drain moves.
    tasks_per_node: BTreeMap<String, u64>,
}

impl Check for OverlayIpHeadroom {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "every overlay subnet has room for the tasks a drain moves (replacements take addresses first)"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        // Tasks by network, once: scanning every task per network is
        // networks × tasks (100 × 50,000 at the scale of bench/).
        let mut attached: HashMap<&str, Vec<Attachment<'_>>> = HashMap::new();
        for task in &ctx.facts.cluster.tasks {
            for a in &task.network_addrs {
                attached
                    .entry(a.network_id.as_str())
                    .or_default()
                    .push((task, a.addr.as_str()));
            }
        }
        let drained: Vec<&NodeFacts> = ctx.nodes_to_drain().collect();
        let mut findings = vec![];
        for net in &ctx.facts.cluster.networks {
            let mut subnets = vec![];
            for raw in &net.subnets {
                match raw.trim().parse::<IpNet>() {
                    Ok(IpNet::V4(subnet)) => subnets.push(subnet.trunc()),
                    // IPv6 subnets are too large to run out.
                    Ok(IpNet::V6(_)) => {}
                    Err(e) => findings.push(Finding::warn(
                        ID,
                        None,
                        format!(
                            "network {} subnet `{raw}` is not a CIDR ({e}): its IP headroom is not checked; \
                             check it with `docker network inspect {}`",
                            net.name, net.name
                        ),
                    )),
                }
            }
            if subnets.is_empty() {
                continue;
            }
            let on_net = attached.get(net.id.as_str()).map_or(&[][..], |a| a);
            let usage = usage(ctx, net, on_net, &subnets);
            let lbs = load_balancers(ctx, net, on_net);
            let (moved, by) = largest_drain(&drained, &usage);
            for (subnet, usage) in subnets.iter().zip(&usage) {
                if let Some(f) = judge(net, subnet, usage, lbs, moved, &by) {
                    findings.push(f);
                }
            }
        }
        findings
    }
}

/// A task's address on one network.
type Attachment<'a> = (&'a TaskFacts, &'a str);

/// Per subnet (same order as `subnets`): the task addresses (`on_net`) and
/// VIPs in it. An address that is in none of them (or does not parse) is
/// counted in the first, so nothing in use goes uncounted.
fn usage(
    ctx: &CheckContext<'_>,
    net: &NetworkFacts,
    on_net: &[Attachment<'_>],
    subnets: &[Ipv4Net],
) -> Vec<Usage> {
    let slot = |addr: &str| -> usize {
        let ip = addr
            .parse::<IpNet>()
            .map(|n| n.addr())
            .or_else(|_| addr.parse::<IpAddr>());
        match ip {
            Ok(IpAddr::V4(ip)) => subnets.iter().position(|s| s.contains(&ip)).unwrap_or(0),
            _ => 0,
        }
    };
    let mut usage: Vec<Usage> = subnets.iter().map(|_| Usage::default()).collect();
    for (task, addr) in on_net {
        let u = &mut usage[slot(addr)];
        u.tasks += 1;
        if !task.node_id.is_empty() {
            *u.tasks_per_node.entry(task.node_id.clone()).or_default() += 1;
        }
    }
    for service in &ctx.facts.cluster.services {
        for vip in service
            .virtual_ips
            .iter()
            .filter(|v| v.network_id == net.id)
        {
            usage[slot(&vip.addr)].vips += 1;
        }
    }
    usage
}

/// Nodes holding a load-balancer address on the network: the nodes with its
/// tasks, or the known peer count when larger. Every node has one on the
/// ingress network (its `ingress-sbox`). Which subnet each comes from is not
/// in the facts, so every subnet is charged all of them.
fn load_balancers(ctx: &CheckContext<'_>, net: &NetworkFacts, on_net: &[Attachment<'_>]) -> u64 {
    let with_tasks: BTreeSet<&str> = on_net
        .iter()
        .filter(|(t, _)| !t.node_id.is_empty())
        .map(|(t, _)| t.node_id.as_str())
        .collect();
    let mut lbs = with_tasks.len() as u64;
    if net.ingress {
        lbs = lbs.max(ctx.facts.cluster.nodes.len() as u64);
    }
    lbs.max(net.peer_count.unwrap_or(0))
}

/// The most task addresses one drain moves at once, and what drains: a
/// single node, or every manager together (managers stay drained until the
/// last one is verified).
fn largest_drain(drained: &[&NodeFacts], usage: &[Usage]) -> (u64, String) {
    let on = |node_id: &str| -> u64 {
        usage
            .iter()
            .filter_map(|u| u.tasks_per_node.get(node_id))
            .sum()
    };
    let mut largest = (0, String::new());
    let mut managers = (0, 0);
    for node in drained {
        let moved = on(&node.id);
        if moved > largest.0 {
            largest = (moved, format!("draining {}", node.hostname));
        }
        if node.role == Role::Manager {
            managers = (managers.0 + moved, managers.1 + 1);
        }
    }
    if managers.1 > 1 && managers.0 > largest.0 {
        largest = (managers.0, "draining all managers together".to_string());
    }
    largest
}

fn judge(
    net: &NetworkFacts,
    subnet: &Ipv4Net,
    usage: &Usage,
    lbs: u64,
    moved: u64,
    by: &str,
) -> Option<Finding> {
    let size = 1u64 << (32 - u32::from(subnet.prefix_len()));
    let capacity = size.saturating_sub(RESERVED);
    let used = usage.tasks + usage.vips + lbs;
    let summary = format!(
        "network {} subnet {subnet}: {used} of {capacity} addresses in use ({}, {}, {})",
        net.name,
        count(usage.tasks, "task"),
        count(usage.vips, "VIP"),
        count(lbs, "node LB"),
    );
    if used >= capacity {
        return Some(Finding::block(
            ID,
            None,
            format!(
                "{summary}: it is full, so every task a drain moves is rejected (\"node is missing network \
                 attachments, ip addresses may be exhausted\"); move its services to a network with a larger \
                 subnet (/24 recommended) first"
            ),
        ));
    }
    let headroom = capacity - used;
    if headroom < moved {
        return Some(Finding::warn(
            ID,
            None,
            format!(
                "{summary}: {by} moves up to {}, whose replacements take new addresses before the old ones \
                 are freed, with only {headroom} left; use a larger subnet (/24 recommended)",
                count(moved, "task")
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn passes_on_roomy_subnets() {
        assert!(Fixture::healthy().run(&OverlayIpHeadroom).is_empty());
    }

    #[test]
    fn warns_when_a_drain_outgrows_the_headroom() {
        let mut fx = Fixture::healthy();
        let net = fx.network("app");
        net.subnets = vec!["10.0.9.0/28".into()];
        // /28: 13 usable. 6 tasks + 2 VIPs + 3 node LBs (m2, w1, w2) = 11, 2 left.
        fx.add_task("web", "w1", Some(("net-app", "10.0.9.9/28")));
        fx.facts.cluster.services[0].virtual_ips[0].addr = "10.0.9.2/28".into();
        fx.facts.cluster.services[1].virtual_ips[0].addr = "10.0.9.3/28".into();
        let findings = fx.run(&OverlayIpHeadroom);
        let f = the(&findings, Severity::Warn);
        assert_eq!(
            f.message,
            "network app subnet 10.0.9.0/28: 11 of 13 addresses in use (6 tasks, 2 VIPs, 3 node LBs): \
             draining w1 moves up to 3 tasks, whose replacements take new addresses before the old ones are \
             freed, with only 2 left; use a larger subnet (/24 recommended)"
        );
    }

    #[test]
    fn blocks_a_full_subnet() {
        let mut fx = Fixture::healthy();
        let net = fx.network("app");
        net.subnets = vec!["10.0.1.0/28".into()];
        net.peer_count = Some(6);
        let findings = fx.run(&OverlayIpHeadroom);
        let f = the(&findings, Severity::Block);
        assert!(
            f.message.starts_with(
                "network app subnet 10.0.1.0/28: 13 of 13 addresses in use (5 tasks, 2 VIPs, 6 node LBs): it is full"
            ),
            "{}",
            f.message
        );
    }

    #[test]
    fn counts_the_managers_drained_together() {
        let mut fx = Fixture::healthy();
        fx.clear_tasks("web");
        fx.clear_tasks("api");
        fx.network("app").subnets = vec!["10.0.1.0/28".into()];
        for (i, m) in ["m1", "m2", "m3"].iter().enumerate() {
            fx.add_task("web", m, Some(("net-app", &format!("10.0.1.{}/28", 4 + i))));
        }
        // 3 tasks + 2 VIPs + 3 LBs = 8 of 13: 5 free, and the managers move 3.
        assert!(fx.run(&OverlayIpHeadroom).is_empty());
        // Three more nodes hold an LB address: 11 of 13, 2 left.
        fx.network("app").peer_count = Some(6);
        let findings = fx.run(&OverlayIpHeadroom);
        assert!(
            the(&findings, Severity::Warn)
                .message
                .contains("draining all managers together moves up to 3 tasks"),
            "{findings:#?}"
        );
    }

    #[test]
    fn counts_every_node_on_ingress() {
        let mut fx = Fixture::healthy();
        let ingress = fx.network("ingress");
        ingress.peer_count = None;
        ingress.subnets = vec!["10.0.0.0/29".into()];
        let findings = fx.run(&OverlayIpHeadroom);
        assert!(
            the(&findings, Severity::Block)
                .message
                .contains("5 of 5 addresses in use (0 tasks, 0 VIPs, 5 node LBs)")
        );
    }

    #[test]
    fn an_unparsable_subnet_warns_and_ipv6_is_skipped() {
        let mut fx = Fixture::healthy();
        fx.network("app").subnets = vec!["10.0.1.0/33".into(), "fd00:1::/64".into()];
        let findings = fx.run(&OverlayIpHeadroom);
        assert!(
            the(&findings, Severity::Warn)
                .message
                .starts_with("network app subnet `10.0.1.0/33` is not a CIDR")
        );
    }
}
