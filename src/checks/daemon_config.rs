//! `daemon-config` (P8): the daemon configuration must still start the
//! *target* dockerd. Options and storage drivers that a release removed make
//! the new daemon refuse to start, or start without the old images.

use serde_json::{Map, Value};

use super::{Check, CheckContext, Finding, Severity};
use crate::facts::model::HostFacts;
use crate::version::{EngineVersion, engine_version_of};

pub struct DaemonConfig;

const ID: &str = "daemon-config";
const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// What a release took away.
enum Removed {
    /// A daemon.json key.
    Option(&'static str),
    /// A storage driver (from daemon.json `storage-driver` or `docker info`).
    StorageDriver(&'static str),
}

/// Removals, with the release that made them and the fix. Sources: the
/// deprecated-features page and moby#42393 (23.0), moby#46113 (26.0).
const REMOVALS: &[(Removed, (u64, u64), &str)] = &[
    (
        Removed::Option("cluster-store"),
        (23, 0),
        "the legacy key-value store for overlay networks is gone (swarm does not use it); delete the key",
    ),
    (
        Removed::Option("cluster-advertise"),
        (23, 0),
        "it only served the removed cluster-store; delete the key",
    ),
    (
        Removed::Option("graph"),
        (23, 0),
        "rename the key to `data-root`",
    ),
    (
        Removed::Option("oom-score-adjust"),
        (26, 0),
        "delete the key (set OOMScoreAdjust= in a systemd drop-in instead)",
    ),
    (
        Removed::StorageDriver("aufs"),
        (24, 0),
        "move the node to overlay2 first (its images and containers do not carry over, so drain it and re-pull)",
    ),
    (
        Removed::StorageDriver("overlay"),
        (24, 0),
        "move the node to overlay2 first (its images and containers do not carry over, so drain it and re-pull)",
    ),
    (
        Removed::StorageDriver("devicemapper"),
        (25, 0),
        "move the node to overlay2 first (its images and containers do not carry over, so drain it and re-pull)",
    ),
];

/// The host's daemon.json as a JSON object: `None` when there is none, an
/// error text (with line and column) when dockerd would reject it.
pub(super) fn daemon_json(host: &HostFacts) -> Option<Result<Map<String, Value>, String>> {
    let text = host.daemon_json.as_deref()?;
    if text.trim().is_empty() {
        // dockerd reads an empty file as no configuration.
        return Some(Ok(Map::new()));
    }
    Some(match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("it is not a JSON object".to_string()),
        Err(e) => Err(e.to_string()),
    })
}

impl Check for DaemonConfig {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "daemon.json parses, and uses no option or storage driver that the target engine removed"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let pin = ctx.pin;
        let mut findings = vec![];
        for (node, host) in ctx.hosts_to_upgrade() {
            let name = Some(node.hostname.as_str());
            let config = match daemon_json(host) {
                Some(Err(e)) => {
                    findings.push(Finding::block(
                        ID,
                        name,
                        format!(
                            "host {}: {DAEMON_JSON} does not parse ({e}): dockerd would not start after its \
                             restart; fix the file (dockerd --validate --config-file {DAEMON_JSON})",
                            host.host
                        ),
                    ));
                    Map::new()
                }
                Some(Ok(config)) => config,
                None => Map::new(),
            };
            // Unknown current version: assume it predates every removal, so
            // nothing is missed.
            let current = engine_version_of(&node.engine_version);
            let drivers: Vec<&str> = config
                .get("storage-driver")
                .and_then(Value::as_str)
                .into_iter()
                .chain(host.storage_driver.as_deref())
                .collect();
            for (removed, (major, minor), fix) in REMOVALS {
                let removed_in = EngineVersion(semver::Version::new(*major, *minor, 0));
                if *pin < removed_in || current.as_ref().is_some_and(|c| *c >= removed_in) {
                    continue;
                }
                let what = match removed {
                    Removed::Option(key) if config.contains_key(*key) => {
                        format!("{DAEMON_JSON} sets \"{key}\"")
                    }
                    Removed::StorageDriver(driver) if drivers.contains(driver) => {
                        format!("the engine uses the {driver} storage driver")
                    }
                    _ => continue,
                };
                findings.push(Finding::block(
                    ID,
                    name,
                    format!(
                        "host {}: {what}, removed in Engine {major}.{minor}: dockerd {pin} would not start \
                         with it; {fix}",
                        host.host
                    ),
                ));
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
    fn passes_on_a_clean_config() {
        assert!(Fixture::healthy().run(&DaemonConfig).is_empty());
    }

    #[test]
    fn blocks_a_config_that_does_not_parse_with_its_line() {
        let mut fx = Fixture::healthy();
        fx.host("w1").daemon_json = Some("{\n  \"debug\": true,\n}\n".into());
        let findings = fx.run(&DaemonConfig);
        let f = the(&findings, Severity::Block);
        assert!(
            f.message
                .starts_with("host w1: /etc/docker/daemon.json does not parse ("),
            "{}",
            f.message
        );
        assert!(f.message.contains("line 3 column 1"), "{}", f.message);
    }

    #[test]
    fn blocks_an_option_removed_between_current_and_pin() {
        let mut fx = Fixture::healthy();
        fx.host("m1").daemon_json = Some(r#"{"oom-score-adjust": -500}"#.into());
        let findings = fx.run(&DaemonConfig);
        assert_eq!(
            the(&findings, Severity::Block).message,
            "host m1: /etc/docker/daemon.json sets \"oom-score-adjust\", removed in Engine 26.0: dockerd 26.1.5 \
             would not start with it; delete the key (set OOMScoreAdjust= in a systemd drop-in instead)"
        );
    }

    #[test]
    fn ignores_removals_outside_the_upgrade_window() {
        let mut fx = Fixture::healthy();
        // Removed in 23.0: the node at 25.0.5 is past it already.
        fx.host("m1").daemon_json = Some(r#"{"graph": "/srv/docker"}"#.into());
        assert!(fx.run(&DaemonConfig).is_empty());
        // Removed in 26.0, but the pin stays before it.
        fx.set_pin("25.0.6");
        fx.host("m1").daemon_json = Some(r#"{"oom-score-adjust": -500}"#.into());
        assert!(fx.run(&DaemonConfig).is_empty());
    }

    #[test]
    fn blocks_removed_storage_drivers_from_config_or_info() {
        let mut fx = Fixture::healthy();
        for n in &mut fx.facts.cluster.nodes {
            n.engine_version = "20.10.24".into();
        }
        fx.host("w1").storage_driver = Some("devicemapper".into());
        fx.host("w2").daemon_json =
            Some(r#"{"storage-driver": "aufs", "cluster-store": "consul://x"}"#.into());
        let findings = fx.run(&DaemonConfig);
        assert_eq!(findings.len(), 3, "{findings:#?}");
        assert!(findings[0].message.contains(
            "w1: the engine uses the devicemapper storage driver, removed in Engine 25.0"
        ));
        assert!(
            findings[1]
                .message
                .contains("sets \"cluster-store\", removed in Engine 23.0")
        );
        assert!(
            findings[2]
                .message
                .contains("aufs storage driver, removed in Engine 24.0")
        );
    }
}
