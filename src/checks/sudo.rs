//! `sudo`: every command the run sends needs root, and SSH gives no TTY for a
//! password prompt, so `sudo -n` must work before anything starts.

use super::{Check, CheckContext, Finding, Severity};

pub struct Sudo;

const ID: &str = "sudo";

impl Check for Sudo {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "every host to upgrade accepts passwordless sudo (or the connection is root)"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        ctx.hosts_to_upgrade()
            .filter(|(_, host)| !host.sudo_ok)
            .map(|(node, host)| {
                Finding::block(
                    ID,
                    Some(&node.hostname),
                    format!(
                        "host {} ({}): passwordless sudo is required (sudo -n true failed); add a NOPASSWD rule \
                         for the upgrade user or connect as root",
                        host.host, node.addr
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
    fn passes_when_sudo_works() {
        assert!(Fixture::healthy().run(&Sudo).is_empty());
    }

    #[test]
    fn blocks_a_host_without_passwordless_sudo() {
        let mut fx = Fixture::healthy();
        fx.host("w2").sudo_ok = false;
        let findings = fx.run(&Sudo);
        assert_eq!(
            the(&findings, Severity::Block).message,
            "host w2 (192.168.56.15): passwordless sudo is required (sudo -n true failed); add a NOPASSWD \
             rule for the upgrade user or connect as root"
        );
    }

    #[test]
    fn ignores_hosts_already_at_the_pin() {
        let mut fx = Fixture::healthy();
        fx.host("w2").sudo_ok = false;
        fx.node("w2").engine_version = "26.1.5".into();
        assert!(fx.run(&Sudo).is_empty());
    }
}
