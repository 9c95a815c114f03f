//! `pki` (P15): no root CA rotation under way, and no node certificate so
//! close to expiry that a node down for its upgrade could not rejoin.

use super::{Check, CheckContext, Finding, Severity};

pub struct Pki;

const ID: &str = "pki";

/// Below this, a certificate (or the configured validity) leaves too little
/// room: a node that stays down through a slow package install or a rollback
/// must still hold a valid certificate when it rejoins. A day covers a run.
const MIN_CERT_VALIDITY_SECS: i64 = 24 * 3600;

impl Check for Pki {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "no root CA rotation in progress; node certificates stay valid well past the run"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let swarm = &ctx.facts.cluster.swarm;
        let mut findings = vec![];
        if swarm.root_rotation_in_progress {
            findings.push(Finding::block(
                ID,
                None,
                "a root CA rotation is in progress: nodes restarted now may come back with certificates the \
                 cluster no longer trusts; wait until `docker info` shows RootRotationInProgress false",
            ));
        }
        if let Some(expiry) = swarm.node_cert_expiry_secs
            && (expiry as i64) < MIN_CERT_VALIDITY_SECS
        {
            findings.push(Finding::warn(
                ID,
                None,
                format!(
                    "node certificates are issued for only {}: a node down longer than that cannot rejoin; \
                     raise it for the run (docker swarm update --cert-expiry 2160h)",
                    hours(expiry as i64)
                ),
            ));
        }
        for (node, host) in ctx.hosts_to_upgrade() {
            let Some(valid) = host.node_cert_valid_secs else {
                continue;
            };
            if valid >= MIN_CERT_VALIDITY_SECS {
                continue;
            }
            let left = if valid <= 0 {
                "has expired".to_string()
            } else {
                format!("expires in {}", hours(valid))
            };
            findings.push(Finding::warn(
                ID,
                Some(&node.hostname),
                format!(
                    "the swarm certificate of node {} {left}: a node still down at expiry cannot rejoin, and \
                     certificates renew on their own long before that, so this one is stuck; check that the node \
                     reaches the managers on TCP 2377 and run again once it has renewed",
                    node.hostname
                ),
            ));
        }
        findings
    }
}

fn hours(secs: i64) -> String {
    if secs < 3600 {
        format!("{}m", secs / 60)
    } else {
        format!("{}h", secs / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn passes_with_default_expiry_and_fresh_certificates() {
        assert!(Fixture::healthy().run(&Pki).is_empty());
    }

    #[test]
    fn blocks_during_root_rotation() {
        let mut fx = Fixture::healthy();
        fx.facts.cluster.swarm.root_rotation_in_progress = true;
        assert!(
            the(&fx.run(&Pki), Severity::Block)
                .message
                .contains("root CA rotation is in progress")
        );
    }

    #[test]
    fn warns_on_short_expiry_and_near_or_past_certificate_end() {
        let mut fx = Fixture::healthy();
        fx.facts.cluster.swarm.node_cert_expiry_secs = Some(12 * 3600);
        assert!(
            the(&fx.run(&Pki), Severity::Warn)
                .message
                .contains("issued for only 12h")
        );

        let mut fx = Fixture::healthy();
        fx.host("w1").node_cert_valid_secs = Some(1800);
        fx.host("w2").node_cert_valid_secs = Some(-5);
        let findings = fx.run(&Pki);
        assert_eq!(findings.len(), 2);
        assert!(findings[0].message.contains("node w1 expires in 30m"));
        assert!(findings[1].message.contains("node w2 has expired"));
    }
}
