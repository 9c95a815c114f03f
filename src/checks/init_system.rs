//! `init-system` (P17): the run stops and starts dockerd through the init
//! system, and each one has a trap: systemd socket-activates the old daemon
//! on any API probe unless `docker.socket` is stopped too; sysvinit's stop
//! SIGKILLs after 10 seconds. An unknown init system cannot be driven safely.

use super::{Check, CheckContext, Finding, Severity, join};
use crate::facts::model::InitSystem as Init;

pub struct InitSystem;

const ID: &str = "init-system";

impl Check for InitSystem {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "the init system on each host is one the run knows how to stop and start dockerd with"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Info, Severity::Warn]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut systemd = vec![];
        let mut sysvinit = vec![];
        let mut findings = vec![];
        for (node, host) in ctx.hosts_to_upgrade() {
            match host.init {
                Init::Systemd => systemd.push(host.host.as_str()),
                Init::Sysvinit => sysvinit.push(host.host.as_str()),
                Init::Unknown => findings.push(Finding::warn(
                    ID,
                    Some(&node.hostname),
                    format!(
                        "host {}: unknown init system (no /run/systemd/system, no /etc/init.d/docker): the run \
                         cannot be sure dockerd stops and starts when it says so; upgrade this node by hand \
                         or fix the detection",
                        host.host
                    ),
                )),
            }
        }
        // One line per init system: the same note on every host is noise.
        if !systemd.is_empty() {
            findings.push(Finding::info(
                ID,
                None,
                format!(
                    "systemd on {}: docker.socket is stopped with docker.service, so no API probe restarts \
                     the old daemon mid-swap",
                    join(&systemd)
                ),
            ));
        }
        if !sysvinit.is_empty() {
            findings.push(Finding::info(
                ID,
                None,
                format!(
                    "sysvinit on {}: dockerd is stopped with /etc/init.d/docker, which kills it after 10 s",
                    join(&sysvinit)
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
    fn systemd_hosts_get_one_note() {
        let findings = Fixture::healthy().run(&InitSystem);
        assert_eq!(
            the(&findings, Severity::Info).message,
            "systemd on m1, m2, m3, w1, w2: docker.socket is stopped with docker.service, so no API probe \
             restarts the old daemon mid-swap"
        );
    }

    #[test]
    fn warns_on_an_unknown_init_system() {
        let mut fx = Fixture::healthy();
        fx.host("w2").init = Init::Unknown;
        let findings = fx.run(&InitSystem);
        assert!(
            the(&findings, Severity::Warn)
                .message
                .starts_with("host w2: unknown init system")
        );
    }
}
