//! `pin-resolvable` (P12): every node the run upgrades has a package set for
//! the pin. A node that cannot be resolved would be left behind on its old
//! engine, so the run refuses to start instead.

use super::{Check, CheckContext, Finding, Severity, state_name};
use crate::facts::model::{NodeState, Role};
use crate::version::resolve::ResolveError;

pub struct PinResolvable;

const ID: &str = "pin-resolvable";

impl Check for PinResolvable {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "every node not at the pin can be moved to it: the packages exist, the install method is known, the package manager agrees"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut findings = vec![];
        for node in ctx.nodes_to_upgrade() {
            let host = ctx.host_name(node);
            let name = Some(node.hostname.as_str());
            match ctx.resolutions.get(&node.id) {
                Some(Ok(_)) => {}
                // A downgrade is a version question: `version-skew` reports it.
                Some(Err(ResolveError::Downgrade { .. })) => {}
                Some(Err(e)) => findings.push(Finding::block(ID, name, format!("{host}: {e}"))),
                // A worker that is already down is expected to be silent; it
                // stays out of the run and node-health says so.
                None if node.role == Role::Worker && node.state != NodeState::Ready => {
                    findings.push(Finding::warn(
                        ID,
                        name,
                        format!(
                            "{host}: no facts from host, and worker {} is {}: it is left out of this run; \
                             upgrade it with a second run once it is back",
                            node.hostname,
                            state_name(node.state)
                        ),
                    ));
                }
                None => {
                    let why = ctx
                        .facts
                        .unreachable
                        .get(&node.id)
                        .map_or(String::new(), |e| format!(" ({e})"));
                    findings.push(Finding::block(
                        ID,
                        name,
                        format!(
                            "{host}: no facts from host{why}, so node {} cannot be upgraded: make it reachable \
                             over SSH (check its inventory entry, user and key) and run again",
                            node.hostname
                        ),
                    ));
                }
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn passes_when_every_node_resolves() {
        assert!(Fixture::healthy().run(&PinResolvable).is_empty());
    }

    #[test]
    fn blocks_with_the_resolve_error_prefixed_by_the_host() {
        let mut fx = Fixture::healthy();
        fx.resolutions.insert(
            "id-w1".into(),
            Err(ResolveError::BundleMissing {
                path: "/srv/docker-26.1.5.tgz".into(),
            }),
        );
        let findings = fx.run(&PinResolvable);
        let f = the(&findings, Severity::Block);
        assert_eq!(f.node.as_deref(), Some("w1"));
        assert_eq!(
            f.message,
            "w1: static-binaries bundle /srv/docker-26.1.5.tgz is not on the host; copy it there or pass --static-bundle"
        );
    }

    #[test]
    fn leaves_downgrades_to_version_skew() {
        let mut fx = Fixture::healthy();
        let pin = fx.pin.clone();
        fx.resolutions.insert(
            "id-w1".into(),
            Err(ResolveError::Downgrade {
                current: "27.0.1".parse().unwrap(),
                pin,
            }),
        );
        assert!(fx.run(&PinResolvable).is_empty());
    }

    #[test]
    fn a_node_without_facts_blocks_unless_it_is_a_down_worker() {
        let mut fx = Fixture::healthy();
        fx.resolutions.remove("id-m2");
        fx.resolutions.remove("id-w2");
        fx.node("w2").state = NodeState::Down;
        fx.facts.unreachable.insert(
            "id-m2".into(),
            "ssh: connect to host m2 port 22: Connection refused".into(),
        );
        let findings = fx.run(&PinResolvable);
        assert!(
            the(&findings, Severity::Block)
                .message
                .starts_with("m2: no facts from host (ssh: connect to host m2 port 22: Connection refused), so node m2")
        );
        assert!(
            the(&findings, Severity::Warn)
                .message
                .contains("worker w2 is down")
        );
    }

    #[test]
    fn nodes_at_the_pin_need_no_resolution() {
        let mut fx = Fixture::healthy();
        fx.node("w1").engine_version = "26.1.5".into();
        fx.resolutions.remove("id-w1");
        assert!(fx.run(&PinResolvable).is_empty());
    }
}
