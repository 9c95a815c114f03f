//! `package-hold` (P12): unattended upgrades of containerd.io or the engine
//! have broken swarm nodes (moby#48179, docker/for-linux#813). The run holds
//! the engine packages at the pin when it is done; this says what changes.

use super::{Check, CheckContext, Finding, Severity, join, some_of};
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
        let mut with_packages = 0;
        for (node, host) in ctx.hosts_to_upgrade() {
            // Static binaries have no packages to hold.
            if host.installed.is_empty() {
                continue;
            }
            with_packages += 1;
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
            // The run holds the packages it installs, and only those.
            let installs: Vec<&str> = ctx
                .resolutions
                .get(&node.id)
                .and_then(|r| r.as_ref().ok())
                .map(|r| r.packages.iter().map(|p| p.name.as_str()).collect())
                .unwrap_or_default();
            let (ours, others): (Vec<&str>, Vec<&str>) =
                unheld.iter().partition(|p| installs.contains(p));
            let mut after = vec![];
            if !ours.is_empty() {
                after.push(format!(
                    "after the upgrade {} held at the pin ({how})",
                    are(&ours, "will be")
                ));
            }
            if !others.is_empty() {
                after.push(format!(
                    "the run does not change {}, so hold {} yourself ({how})",
                    join(&others),
                    if others.len() == 1 { "it" } else { "them" }
                ));
            }
            findings.push(Finding::warn(
                ID,
                Some(&node.hostname),
                format!(
                    "host {}: {} not held, so unattended upgrades can move them under a running swarm; {}",
                    host.host,
                    are(&unheld, "is"),
                    after.join("; ")
                ),
            ));
        }
        if !held_everywhere.is_empty() {
            findings.push(Finding::info(
                ID,
                None,
                format!(
                    "engine packages are held on {}: the run releases and re-applies the hold",
                    some_of(&held_everywhere, with_packages)
                ),
            ));
        }
        findings
    }
}

/// `a is` / `a, b are` (and `will be` either way).
fn are(names: &[&str], verb: &str) -> String {
    match (names, verb) {
        ([one], _) => format!("{one} {verb}"),
        (many, "is") => format!("{} are", join(many)),
        (many, _) => format!("{} {verb}", join(many)),
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
             running swarm; the run does not change containerd.io, docker-ce-cli, so hold them yourself \
             (apt-mark hold)"
        );
    }

    #[test]
    fn says_which_packages_the_run_holds_and_which_it_leaves() {
        use crate::version::resolve::PackageChange;
        let mut fx = Fixture::healthy();
        fx.host("w1").held = vec![];
        let id = fx.node("w1").id.clone();
        let res = fx.resolutions.get_mut(&id).unwrap().as_mut().unwrap();
        res.packages = ["docker-ce", "docker-ce-cli"]
            .into_iter()
            .map(|name| PackageChange {
                name: name.into(),
                from: Some("25.0.5".into()),
                to: "26.1.5".into(),
            })
            .collect();
        let findings = fx.run(&PackageHold);
        assert_eq!(
            the(&findings, Severity::Warn).message,
            "host w1: containerd.io, docker-ce, docker-ce-cli are not held, so unattended upgrades can move them \
             under a running swarm; after the upgrade docker-ce, docker-ce-cli will be held at the pin (apt-mark \
             hold); the run does not change containerd.io, so hold it yourself (apt-mark hold)"
        );
    }
}
