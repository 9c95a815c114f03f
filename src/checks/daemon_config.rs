//! `daemon-config` (P8): the daemon configuration must parse, or dockerd
//! will not start after its restart. The options and storage drivers that a
//! release removed are hazards of that release (`hazards/removed-options.yaml`).

use serde_json::{Map, Value};

use super::{Check, CheckContext, Finding, Severity};
use crate::facts::model::HostFacts;

pub struct DaemonConfig;

const ID: &str = "daemon-config";
const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// The host's daemon.json as a JSON object: `None` when there is none, an
/// error text (with line and column) when dockerd would reject it.
pub(crate) fn daemon_json(host: &HostFacts) -> Option<Result<Map<String, Value>, String>> {
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
        "/etc/docker/daemon.json parses (dockerd would not start after its restart otherwise)"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        ctx.hosts_to_upgrade()
            .filter_map(|(node, host)| {
                let Some(Err(e)) = daemon_json(host) else {
                    return None;
                };
                Some(Finding::block(
                    ID,
                    Some(node.hostname.as_str()),
                    format!(
                        "host {}: {DAEMON_JSON} does not parse ({e}): dockerd would not start after its \
                         restart; fix the file (dockerd --validate --config-file {DAEMON_JSON})",
                        host.host
                    ),
                ))
            })
            .collect()
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
}
