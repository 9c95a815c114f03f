//! `api-version` (P13): swarm-upgrade must be able to talk to every engine it
//! meets during the run: the old ones before their upgrade and the target
//! after it. It negotiates down to a daemon's version, but only within the
//! range it speaks, and each daemon only accepts calls from its own minimum.

use std::fmt;

use super::{Check, CheckContext, Finding, Severity};
use crate::version::{EngineVersion, engine_version_of};

pub struct ApiVersion;

const ID: &str = "api-version";

/// An Engine API version, `1.44` as `Api(1, 44)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Api(pub u64, pub u64);

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The Engine API versions swarm-upgrade speaks.
pub const TOOL_API: (Api, Api) = (Api(1, 41), Api(1, 45));

/// The oldest API a daemon accepts, from the first engine release it applies
/// to (the API version matrix in docker/docs `reference/api/engine`).
const MIN_API: &[((u64, u64), Api)] = &[
    ((0, 0), Api(1, 12)),
    ((25, 0), Api(1, 24)),
    ((29, 0), Api(1, 44)),
    ((29, 3), Api(1, 40)),
];

/// The newest API a daemon speaks, from the first engine release it applies to.
const MAX_API: &[((u64, u64), Api)] = &[
    ((18, 9), Api(1, 39)),
    ((19, 3), Api(1, 40)),
    ((20, 10), Api(1, 41)),
    ((23, 0), Api(1, 42)),
    ((24, 0), Api(1, 43)),
    ((25, 0), Api(1, 44)),
    ((26, 0), Api(1, 45)),
    ((27, 0), Api(1, 46)),
    ((27, 2), Api(1, 47)),
    ((28, 0), Api(1, 48)),
    ((29, 0), Api(1, 52)),
];

/// The newest major line the tables describe; later minimums are unknown.
const LAST_KNOWN_MAJOR: u64 = 29;

/// The row of `table` that applies to `v`: the last one starting at or before it.
fn lookup(table: &[((u64, u64), Api)], v: &EngineVersion) -> Option<Api> {
    table
        .iter()
        .take_while(|(from, _)| *from <= (v.major(), v.minor()))
        .last()
        .map(|(_, api)| *api)
}

/// Why swarm-upgrade, speaking `tool`, cannot talk to engine `v`, if it cannot.
fn incompatibility(v: &EngineVersion, tool: (Api, Api)) -> Option<String> {
    let (tool_min, tool_max) = tool;
    match lookup(MAX_API, v) {
        Some(max) if max >= tool_min => {}
        Some(max) => {
            return Some(format!(
                "it speaks API {max} at most, below the {tool_min} swarm-upgrade needs"
            ));
        }
        None => {
            return Some(format!(
                "it predates Engine 18.09 and speaks no API as new as the {tool_min} swarm-upgrade needs"
            ));
        }
    }
    match lookup(MIN_API, v) {
        Some(min) if min > tool_max => Some(format!(
            "it accepts API {min} and newer only, and swarm-upgrade speaks up to {tool_max}"
        )),
        _ => None,
    }
}

impl Check for ApiVersion {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "swarm-upgrade's Engine API range (1.41-1.45) reaches the current engines and the target"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let pin = ctx.pin;
        let (tool_min, tool_max) = TOOL_API;
        let mut findings = vec![];
        if let Some(why) = incompatibility(pin, TOOL_API) {
            findings.push(Finding::block(
                ID,
                None,
                format!(
                    "swarm-upgrade cannot drive Engine {pin}: {why}; pin an engine that speaks an API in \
                     {tool_min}-{tool_max}, or use a swarm-upgrade release that supports {pin}"
                ),
            ));
        } else if pin.major() > LAST_KNOWN_MAJOR {
            findings.push(Finding::warn(
                ID,
                None,
                format!(
                    "Engine {pin} is newer than the API table swarm-upgrade knows (up to {LAST_KNOWN_MAJOR}.x): \
                     cannot tell whether it still accepts API {tool_max}; check MinAPIVersion in \
                     `docker version` of a {pin} engine, or use a newer swarm-upgrade"
                ),
            ));
        }
        for node in ctx.nodes_to_upgrade() {
            // Unreadable versions are `version-skew`'s finding.
            let Some(current) = engine_version_of(&node.engine_version) else {
                continue;
            };
            if let Some(why) = incompatibility(&current, TOOL_API) {
                findings.push(Finding::block(
                    ID,
                    Some(&node.hostname),
                    format!(
                        "swarm-upgrade cannot drive node {} on Engine {current}: {why}; upgrade it to 20.10 \
                         by hand first",
                        node.hostname
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

    fn v(s: &str) -> EngineVersion {
        s.parse().unwrap()
    }

    #[test]
    fn reads_the_tables() {
        assert_eq!(lookup(MIN_API, &v("24.0.9")), Some(Api(1, 12)));
        assert_eq!(lookup(MIN_API, &v("29.2.0")), Some(Api(1, 44)));
        assert_eq!(lookup(MIN_API, &v("29.3.1")), Some(Api(1, 40)));
        assert_eq!(lookup(MAX_API, &v("27.1.2")), Some(Api(1, 46)));
        assert_eq!(lookup(MAX_API, &v("17.6.0")), None);
    }

    #[test]
    fn passes_for_supported_engines() {
        assert!(Fixture::healthy().run(&ApiVersion).is_empty());
        let mut fx = Fixture::healthy();
        fx.set_pin("29.1.0");
        assert!(fx.run(&ApiVersion).is_empty());
    }

    #[test]
    fn a_target_whose_minimum_api_is_too_new_is_refused() {
        // With a tool that stopped at 1.43, 29.0-29.2 (minimum 1.44) are out of reach.
        let narrow = (Api(1, 41), Api(1, 43));
        let why = incompatibility(&v("29.1.0"), narrow).unwrap();
        assert_eq!(
            why,
            "it accepts API 1.44 and newer only, and swarm-upgrade speaks up to 1.43"
        );
        assert_eq!(incompatibility(&v("29.3.0"), narrow), None);
    }

    #[test]
    fn blocks_engines_older_than_the_tool_speaks() {
        let mut fx = Fixture::healthy();
        fx.node("w1").engine_version = "19.03.15".into();
        let findings = fx.run(&ApiVersion);
        let f = the(&findings, Severity::Block);
        assert_eq!(f.node.as_deref(), Some("w1"));
        assert!(
            f.message
                .contains("speaks API 1.40 at most, below the 1.41"),
            "{}",
            f.message
        );
    }

    #[test]
    fn warns_past_the_table() {
        let mut fx = Fixture::healthy();
        fx.set_pin("30.0.1");
        assert!(
            the(&fx.run(&ApiVersion), Severity::Warn)
                .message
                .contains("cannot tell")
        );
    }
}
