//! `known-issues` (P9): target releases with known breakage on some hosts.

use super::{Check, CheckContext, Finding, Severity, join};
use crate::facts::model::OsRelease;

pub struct KnownIssues;

const ID: &str = "known-issues";

impl Check for KnownIssues {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "the pin is not a release with known breakage on these hosts (23.0.0/23.0.1 AppArmor, 23.0.0 ipvlan, 27.0.0)"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let pin = ctx.pin.to_string();
        let mut findings = vec![];
        if pin == "27.0.0" {
            findings.push(Finding::block(
                ID,
                None,
                "Engine 27.0.0 was never released (the first 27.0 release is 27.0.1): pin 27.0.1 or later",
            ));
        }
        for (node, host) in ctx.hosts_to_upgrade() {
            let name = Some(node.hostname.as_str());
            // moby#44900, moby#44970; fixed in 23.0.2.
            if (pin == "23.0.0" || pin == "23.0.1")
                && is_debian_like(&host.os)
                && host.apparmor_enabled
                && !host.apparmor_parser
            {
                findings.push(Finding::block(
                    ID,
                    name,
                    format!(
                        "host {}: Engine {pin} on Debian/Ubuntu with AppArmor on but no apparmor_parser fails \
                         every container (\"AppArmor enabled on system but the docker-default profile could not \
                         be loaded\"): apt-get install apparmor, or pin 23.0.2 or later",
                        host.host
                    ),
                ));
            }
            // moby#44937: fixed in 23.0.1.
            if pin == "23.0.0"
                && let Some(networks) = &host.ipvlan_networks
                && !networks.is_empty()
            {
                findings.push(Finding::block(
                    ID,
                    name,
                    format!(
                        "host {}: Engine 23.0.0 does not start when ipvlan networks exist ({}): pin 23.0.1 or later",
                        host.host,
                        join(networks)
                    ),
                ));
            }
        }
        findings
    }
}

fn is_debian_like(os: &OsRelease) -> bool {
    let debian = |id: &str| id == "debian" || id == "ubuntu";
    debian(&os.id) || os.id_like.iter().any(|id| debian(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn passes_on_an_ordinary_pin() {
        let mut fx = Fixture::healthy();
        fx.host("w1").apparmor_parser = false;
        assert!(fx.run(&KnownIssues).is_empty());
    }

    #[test]
    fn blocks_the_unreleased_27_0_0() {
        let mut fx = Fixture::healthy();
        fx.set_pin("27.0.0");
        assert!(
            the(&fx.run(&KnownIssues), Severity::Block)
                .message
                .contains("pin 27.0.1 or later")
        );
    }

    #[test]
    fn blocks_23_0_1_on_debian_without_apparmor_parser() {
        let mut fx = Fixture::healthy();
        for n in &mut fx.facts.cluster.nodes {
            n.engine_version = "20.10.24".into();
        }
        fx.set_pin("23.0.1");
        fx.host("w1").apparmor_parser = false;
        let findings = fx.run(&KnownIssues);
        assert!(
            the(&findings, Severity::Block)
                .message
                .contains("apt-get install apparmor")
        );
        fx.host("w1").os.id = "rhel".into();
        assert!(fx.run(&KnownIssues).is_empty());
    }

    #[test]
    fn blocks_23_0_0_with_ipvlan_networks_only_when_known() {
        let mut fx = Fixture::healthy();
        for n in &mut fx.facts.cluster.nodes {
            n.engine_version = "20.10.24".into();
        }
        fx.set_pin("23.0.0");
        fx.host("w2").ipvlan_networks = None;
        assert!(fx.run(&KnownIssues).is_empty());
        fx.host("w2").ipvlan_networks = Some(vec!["vlan20".into()]);
        assert!(
            the(&fx.run(&KnownIssues), Severity::Block)
                .message
                .contains("(vlan20): pin 23.0.1")
        );
    }
}
