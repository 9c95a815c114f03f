//! `version-skew` (P3): no downgrades, no silent multi-major jumps, and an
//! honest word when the cluster is already mixed.
//!
//! Docker advises against managers and workers on different major or minor
//! versions beyond the upgrade itself (moby#31998), so the mixed window the
//! run opens must stay short; a downgrade is never what the operator meant.

use std::collections::BTreeMap;

use super::{Check, CheckContext, Finding, Severity, join};
use crate::version::{EngineVersion, engine_version_of};

pub struct VersionSkew;

const ID: &str = "version-skew";

/// Docker's major release lines, in order: 21 and 22 never existed (20.10 was
/// followed by 23.0), so counting by number would overstate a jump.
const MAJOR_LINES: &[u64] = &[17, 18, 19, 20, 23, 24, 25, 26, 27, 28, 29];
/// The last line in the table; after it, one line per number, as since 23.
const LAST_KNOWN_MAJOR: u64 = 29;

/// The major release lines after `from`, up to and including `to`.
fn majors_between(from: u64, to: u64) -> Vec<u64> {
    let known = MAJOR_LINES.iter().copied().filter(|&m| m > from && m <= to);
    let beyond = (LAST_KNOWN_MAJOR.max(from) + 1)..=to;
    known.chain(beyond).collect()
}

impl Check for VersionSkew {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "no node is newer than the pin; warns on jumps of several major versions and on a cluster already mixed"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let pin = ctx.pin;
        let mut findings = vec![];
        // Nodes below the pin, grouped by their current major line.
        let mut behind: BTreeMap<u64, Vec<(&str, EngineVersion)>> = BTreeMap::new();
        for node in &ctx.facts.cluster.nodes {
            let name = node.hostname.as_str();
            match engine_version_of(&node.engine_version) {
                Some(current) if current > *pin => findings.push(Finding::block(
                    ID,
                    Some(name),
                    format!(
                        "node {name} runs {current}, newer than the pin {pin}: swarm-upgrade never downgrades; \
                         pin {current} or later"
                    ),
                )),
                Some(current) if current < *pin => {
                    behind.entry(current.major()).or_default().push((name, current));
                }
                Some(_) => {}
                None => findings.push(Finding::warn(
                    ID,
                    Some(name),
                    format!(
                        "node {name} reports engine version `{}`, which is not a Docker version: \
                         its skew against the pin {pin} cannot be judged",
                        node.engine_version
                    ),
                )),
            }
        }

        for (major, nodes) in &behind {
            let lines = majors_between(*major, pin.major());
            if lines.len() < 2 {
                continue;
            }
            let names: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
            let mut versions: Vec<String> = nodes.iter().map(|(_, v)| v.to_string()).collect();
            versions.sort();
            versions.dedup();
            findings.push(Finding::warn(
                ID,
                (names.len() == 1).then_some(names[0]),
                format!(
                    "{} ({}) would jump {} major releases to {pin} (through {}): read the release notes of each \
                     for removed options and changed defaults, or upgrade one major release at a time",
                    join(&names),
                    join(&versions),
                    lines.len(),
                    join(lines.iter().map(u64::to_string)),
                ),
            ));
        }

        // Group every node by the version it runs, to see if the cluster is mixed.
        let mut by_version: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for node in &ctx.facts.cluster.nodes {
            let version = engine_version_of(&node.engine_version)
                .map_or_else(|| node.engine_version.clone(), |v| v.to_string());
            by_version.entry(version).or_default().push(&node.hostname);
        }
        if by_version.len() > 1 {
            let groups = by_version
                .iter()
                .map(|(v, names)| format!("{v} on {}", join(names)))
                .collect::<Vec<_>>()
                .join("; ");
            findings.push(Finding::warn(
                ID,
                None,
                format!(
                    "the cluster already runs mixed engine versions ({groups}): the plan brings every node to {pin} \
                     and keeps the mixed window short (managers one at a time, then workers); avoid deploying \
                     or promoting anything until it is done"
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
    fn passes_on_a_uniform_cluster_one_major_behind() {
        assert!(Fixture::healthy().run(&VersionSkew).is_empty());
    }

    #[test]
    fn blocks_a_downgrade() {
        let mut fx = Fixture::healthy();
        for n in &mut fx.facts.cluster.nodes {
            n.engine_version = "27.0.1".into();
        }
        let findings = fx.run(&VersionSkew);
        assert_eq!(findings.len(), 5);
        assert_eq!(
            findings[0].message,
            "node m1 runs 27.0.1, newer than the pin 26.1.5: swarm-upgrade never downgrades; pin 27.0.1 or later"
        );
    }

    #[test]
    fn counts_release_lines_not_numbers() {
        assert_eq!(majors_between(20, 23), [23]);
        assert_eq!(majors_between(20, 26), [23, 24, 25, 26]);
        assert_eq!(majors_between(29, 31), [30, 31]);
        assert_eq!(majors_between(26, 26), [] as [u64; 0]);
        assert_eq!(majors_between(1, 17), [17]);
    }

    #[test]
    fn warns_on_a_multi_major_jump() {
        let mut fx = Fixture::healthy();
        for n in &mut fx.facts.cluster.nodes {
            n.engine_version = "20.10.24".into();
        }
        let findings = fx.run(&VersionSkew);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message.starts_with(
                "m1, m2, m3, w1, w2 (20.10.24) would jump 4 major releases to 26.1.5 (through 23, 24, 25, 26)"
            ),
            "{}",
            f.message
        );
        assert_eq!(f.node, None);
    }

    #[test]
    fn warns_when_the_cluster_is_already_mixed() {
        let mut fx = Fixture::healthy();
        fx.node("w2").engine_version = "26.1.5".into();
        let findings = fx.run(&VersionSkew);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message
                .contains("(25.0.5 on m1, m2, m3, w1; 26.1.5 on w2)"),
            "{}",
            f.message
        );
        assert!(f.message.contains("keeps the mixed window short"));
    }

    #[test]
    fn an_unreadable_version_warns() {
        let mut fx = Fixture::healthy();
        fx.node("w1").engine_version = "dev".into();
        let findings = fx.run(&VersionSkew);
        assert!(
            findings
                .iter()
                .any(|f| f.message.contains("`dev`, which is not a Docker version"))
        );
        assert!(findings.iter().all(|f| f.severity == Severity::Warn));
    }
}
