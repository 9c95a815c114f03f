//! `dns-addresses`: raft and node addresses should be IP addresses. A name
//! makes every rejoin after a restart depend on DNS answering, and answering
//! the same, in the middle of an upgrade.

use std::net::{IpAddr, SocketAddr};

use super::{Check, CheckContext, Finding, Severity};

pub struct DnsAddresses;

const ID: &str = "dns-addresses";

impl Check for DnsAddresses {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "manager raft addresses and node addresses are IPs, not DNS names that rejoins would depend on"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut findings = vec![];
        for node in &ctx.facts.cluster.nodes {
            let raft = node.manager.as_ref().map(|m| m.addr.as_str());
            let seen = [
                ("raft address", raft),
                ("node address", Some(node.addr.as_str())),
            ];
            for (what, addr) in seen {
                let Some(addr) = addr.filter(|a| is_name(a)) else {
                    continue;
                };
                findings.push(Finding::warn(
                    ID,
                    Some(&node.hostname),
                    format!(
                        "the {what} of node {} is `{addr}`, a DNS name: rejoining after its restart depends on \
                         DNS resolving it to the same address; advertise an IP instead \
                         (docker swarm join/init --advertise-addr IP)",
                        node.hostname
                    ),
                ));
            }
        }
        findings
    }
}

/// Whether `addr` (`host`, `host:port`, `[v6]:port`) names its host rather
/// than giving an IP. Empty addresses are unknown, not names.
fn is_name(addr: &str) -> bool {
    let addr = addr.trim();
    if addr.is_empty() || addr.parse::<IpAddr>().is_ok() || addr.parse::<SocketAddr>().is_ok() {
        return false;
    }
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn tells_names_from_ips() {
        for ip in ["10.0.0.1", "10.0.0.1:2377", "[fd00::1]:2377", "fd00::1", ""] {
            assert!(!is_name(ip), "{ip}");
        }
        for name in ["m1.example", "m1.example:2377", "m1"] {
            assert!(is_name(name), "{name}");
        }
    }

    #[test]
    fn passes_with_ip_addresses() {
        assert!(Fixture::healthy().run(&DnsAddresses).is_empty());
    }

    #[test]
    fn warns_on_a_dns_raft_address() {
        let mut fx = Fixture::healthy();
        fx.node("m2").manager.as_mut().unwrap().addr = "m2.swarm.example:2377".into();
        let findings = fx.run(&DnsAddresses);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message
                .starts_with("the raft address of node m2 is `m2.swarm.example:2377`"),
            "{}",
            f.message
        );
    }
}
