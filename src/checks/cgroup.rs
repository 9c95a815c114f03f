//! `cgroup` (P11): Engine 29.0 deprecated cgroup v1 (moby#51111). It still
//! works, but hosts on v1 are heading for a release that drops it.

use super::{Check, CheckContext, Finding, Severity};

pub struct Cgroup;

const ID: &str = "cgroup";

/// The first engine line that deprecates cgroup v1.
const V1_DEPRECATED_IN: u64 = 29;

impl Check for Cgroup {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "hosts moving to Engine 29+ are not on cgroup v1, which 29.0 deprecated"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        if ctx.pin.major() < V1_DEPRECATED_IN {
            return vec![];
        }
        ctx.hosts_to_upgrade()
            .filter(|(_, host)| host.cgroup_version.as_deref() == Some("1"))
            .map(|(node, host)| {
                Finding::warn(
                    ID,
                    Some(&node.hostname),
                    format!(
                        "host {} uses cgroup v1, deprecated since Engine {V1_DEPRECATED_IN}.0 (moby#51111): the \
                         upgrade works, but plan the move to cgroup v2 (systemd.unified_cgroup_hierarchy=1) \
                         before a release removes v1",
                        host.host
                    ),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn warns_on_cgroup_v1_only_from_29() {
        let mut fx = Fixture::healthy();
        fx.host("w1").cgroup_version = Some("1".into());
        assert!(fx.run(&Cgroup).is_empty());
        fx.set_pin("29.1.0");
        assert!(
            the(&fx.run(&Cgroup), Severity::Warn)
                .message
                .starts_with("host w1 uses cgroup v1")
        );
        fx.host("w1").cgroup_version = Some("2".into());
        assert!(fx.run(&Cgroup).is_empty());
    }
}
