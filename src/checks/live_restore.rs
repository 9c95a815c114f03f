//! `live-restore` (P7): dockerd refuses live-restore in swarm mode ("--live-restore
//! daemon configuration is incompatible with swarm mode"): after the restart
//! the daemon comes up without its swarm. It would not keep swarm tasks
//! running across the restart anyway; it only covers standalone containers.

use serde_json::Value;

use super::daemon_config::daemon_json;
use super::{Check, CheckContext, Finding, Severity};

pub struct LiveRestore;

const ID: &str = "live-restore";

impl Check for LiveRestore {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "live-restore is off: with it, the restarted daemon refuses to rejoin the swarm"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut findings = vec![];
        for (node, host) in ctx.hosts_to_upgrade() {
            // A daemon.json that does not parse is `daemon-config`'s finding.
            let in_config = matches!(
                daemon_json(host),
                Some(Ok(config)) if config.get("live-restore").and_then(Value::as_bool) == Some(true)
            );
            let source = if in_config {
                "/etc/docker/daemon.json sets \"live-restore\": true"
            } else if host.live_restore_enabled == Some(true) {
                "the running daemon has live-restore enabled (docker info)"
            } else {
                continue;
            };
            findings.push(Finding::block(
                ID,
                Some(&node.hostname),
                format!(
                    "host {}: {source}; dockerd refuses it in swarm mode (\"--live-restore daemon configuration \
                     is incompatible with swarm mode\") and would come back without its swarm: remove it from \
                     daemon.json and from the unit's command line before the run",
                    host.host
                ),
            ));
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn passes_without_live_restore() {
        let mut fx = Fixture::healthy();
        fx.host("w1").daemon_json = Some(r#"{"live-restore": false}"#.into());
        fx.host("w2").daemon_json = None;
        assert!(fx.run(&LiveRestore).is_empty());
    }

    #[test]
    fn blocks_live_restore_in_daemon_json() {
        let mut fx = Fixture::healthy();
        fx.host("w1").daemon_json = Some("{\n  \"live-restore\": true\n}".into());
        let findings = fx.run(&LiveRestore);
        let f = the(&findings, Severity::Block);
        assert_eq!(f.node.as_deref(), Some("w1"));
        assert!(
            f.message
                .starts_with("host w1: /etc/docker/daemon.json sets \"live-restore\": true")
        );
    }

    #[test]
    fn blocks_live_restore_from_the_command_line() {
        let mut fx = Fixture::healthy();
        fx.host("m2").live_restore_enabled = Some(true);
        assert!(
            the(&fx.run(&LiveRestore), Severity::Block)
                .message
                .contains("docker info")
        );
    }

    #[test]
    fn leaves_unparsable_config_to_daemon_config() {
        let mut fx = Fixture::healthy();
        fx.host("w1").daemon_json = Some("{\"live-restore\": true,".into());
        assert!(fx.run(&LiveRestore).is_empty());
    }
}
