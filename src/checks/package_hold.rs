//! `package-hold` (P12): unattended upgrades of containerd.io or the engine
//! have broken swarm nodes (moby#48179, docker/for-linux#813). The run holds
//! the engine packages at the pin when it is done; this says what changes.

use super::{Check, CheckContext, Finding, Severity, join};
use crate::facts::model::PackageManager;

pub struct PackageHold;

const ID: &str = "package-hold";

impl Check for PackageHold {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "engine packages are held against unattended upgrades (the run holds them at the pin either way)"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Info, Severity::Warn]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut held_everywhere = vec![];
        let mut findings = vec![];
        for (node, host) in ctx.hosts_to_upgrade() {
            // Static binaries have no packages to hold.
            if host.installed.is_empty() {
                continue;
            }
            let unheld: Vec<&str> = host
                .installed
                .keys()
                .filter(|p| !host.held.contains(p))
                .map(String::as_str)
                .collect();
            if unheld.is_empty() {
                held_everywhere.push(host.host.as_str());
                continue;
            }
            let how = match host.package_manager {
                PackageManager::Apt => "apt-mark hold",
                PackageManager::Dnf | PackageManager::Yum => "dnf versionlock",
                PackageManager::None => "apt-mark hold / dnf versionlock",
            };
            findings.push(Finding::warn(
                ID,
                Some(&node.hostname),
                format!(
                    "host {}: {} not held, so unattended upgrades can move them under a running swarm; after \
                     the upgrade they will be held at the pin ({how})",
                    host.host,
                    match unheld.as_slice() {
                        [one] => format!("{one} is"),
                        many => format!("{} are", join(many)),
                    }
                ),
            ));
        }
        if !held_everywhere.is_empty() {
            findings.push(Finding::info(
                ID,
                None,
                format!(
                    "engine packages are held on {}: the run releases and re-applies the hold",
                    join(&held_everywhere)
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
    fn held_packages_get_one_note() {
        let findings = Fixture::healthy().run(&PackageHold);
        assert!(
            the(&findings, Severity::Info)
                .message
                .contains("held on m1, m2, m3, w1, w2: the run releases")
        );
    }

    #[test]
    fn warns_on_packages_not_held() {
        let mut fx = Fixture::healthy();
        fx.host("w1").held = vec!["docker-ce".into()];
        let findings = fx.run(&PackageHold);
        assert_eq!(
            the(&findings, Severity::Warn).message,
            "host w1: containerd.io, docker-ce-cli are not held, so unattended upgrades can move them under a \
             running swarm; after the upgrade they will be held at the pin (apt-mark hold)"
        );
    }
}
