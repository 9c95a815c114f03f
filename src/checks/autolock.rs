//! `autolock` (P14): with autolock on, a restarted manager stays `locked` and
//! out of the raft until someone unlocks it; the run can only do that with
//! the key in hand.

use super::{Check, CheckContext, Finding, Severity};

pub struct Autolock;

const ID: &str = "autolock";

impl Check for Autolock {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "with swarm autolock on, the unlock key is supplied so restarted managers can be unlocked"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        if !ctx.facts.cluster.swarm.autolock || ctx.unlock_key_available {
            return vec![];
        }
        vec![Finding::block(
            ID,
            None,
            "swarm autolock is on: every manager comes back locked after its restart; provide the unlock key \
             in SWARM_UPGRADE_UNLOCK_KEY or --unlock-key-file (never on the command line)",
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn passes_without_autolock() {
        assert!(Fixture::healthy().run(&Autolock).is_empty());
    }

    #[test]
    fn blocks_autolock_without_a_key_and_passes_with_one() {
        let mut fx = Fixture::healthy();
        fx.facts.cluster.swarm.autolock = true;
        let findings = fx.run(&Autolock);
        assert!(
            the(&findings, Severity::Block)
                .message
                .contains("SWARM_UPGRADE_UNLOCK_KEY")
        );
        fx.unlock_key_available = true;
        assert!(fx.run(&Autolock).is_empty());
    }
}
