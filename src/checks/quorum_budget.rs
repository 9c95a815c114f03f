//! `quorum-budget` (P1): taking one manager down for its upgrade must leave a
//! raft quorum. With N managers the quorum is ⌊N/2⌋+1; without it the swarm
//! answers every management call with "context deadline exceeded".

use super::{Check, CheckContext, Finding, Severity, count, join};

pub struct QuorumBudget;

const ID: &str = "quorum-budget";

impl Check for QuorumBudget {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "taking one manager down leaves a raft quorum, and the raft has exactly one leader"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Info, Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let managers: Vec<_> = ctx.facts.managers().collect();
        let n = managers.len();
        if n == 0 {
            return vec![Finding::block(
                ID,
                None,
                "the facts list no manager: gather them through a manager of the swarm",
            )];
        }
        let mut findings = vec![];

        let leaders: Vec<&str> = managers
            .iter()
            .filter(|m| m.is_leader())
            .map(|m| m.hostname.as_str())
            .collect();
        match leaders.as_slice() {
            [_] => {}
            [] => findings.push(Finding::block(
                ID,
                None,
                format!(
                    "none of the {n} managers is the raft leader: the swarm has no working control plane; \
                     restore quorum (docker node ls on each manager) before upgrading"
                ),
            )),
            many => findings.push(Finding::block(
                ID,
                None,
                format!(
                    "{} managers claim leadership ({}): the facts are stale or the raft is split; \
                     wait for the cluster to settle and run again",
                    many.len(),
                    join(many)
                ),
            )),
        }

        let unreachable: Vec<&str> = managers
            .iter()
            .filter(|m| !m.is_reachable_manager())
            .map(|m| m.hostname.as_str())
            .collect();
        let reachable = n - unreachable.len();
        let quorum = n / 2 + 1;
        // One manager is always down during its own upgrade; a manager an
        // unfinished run left down is that one (the plan continues with it).
        let mid_run = managers
            .iter()
            .filter(|m| !m.is_reachable_manager() && m.labels.contains_key(crate::exec::LABEL_RUN))
            .count();
        let up_during = if unreachable.len() == 1 && mid_run == 1 {
            reachable
        } else {
            reachable.saturating_sub(1)
        };
        let numbers = format!(
            "{}, quorum {quorum}, {reachable} reachable",
            count(n as u64, "manager")
        );

        if n == 1 {
            if reachable == 1 {
                findings.push(Finding::warn(
                    ID,
                    None,
                    "1 manager: the control plane is unavailable while it restarts (no scheduling, no \
                     `docker service` or `docker node` commands); running tasks keep running. Add managers \
                     (3 or 5) to keep control during upgrades",
                ));
            } else {
                findings.push(Finding::block(
                    ID,
                    Some(managers[0].hostname.as_str()),
                    format!(
                        "the only manager {} is not reachable: bring it back before upgrading",
                        managers[0].hostname
                    ),
                ));
            }
            return findings;
        }

        if up_during < quorum {
            let why = if unreachable.is_empty() {
                format!("taking any one down for its upgrade leaves {up_during}, below quorum")
            } else {
                let verb = if unreachable.len() == 1 { "is" } else { "are" };
                format!(
                    "{} {verb} unreachable ({}), so taking one more down leaves {up_during}, below quorum",
                    count(unreachable.len() as u64, "manager"),
                    join(&unreachable)
                )
            };
            findings.push(Finding::block(
                ID,
                None,
                format!(
                    "{numbers}: {why}: the swarm would lose its control plane. {}",
                    if unreachable.is_empty() {
                        "Promote a worker to get an odd number of managers (3 or 5) first"
                    } else {
                        "Bring the unreachable managers back (or demote and remove them) first"
                    }
                ),
            ));
            return findings;
        }

        let spare = up_during - quorum;
        if !unreachable.is_empty() {
            findings.push(Finding::warn(
                ID,
                None,
                format!(
                    "{numbers}: unreachable: {}; while a manager is upgraded the swarm tolerates {} more: \
                     bring them back first if you can",
                    join(&unreachable),
                    count(spare as u64, "failure")
                ),
            ));
        } else if n % 2 == 0 {
            findings.push(Finding::warn(
                ID,
                None,
                format!(
                    "{numbers}: an even number of managers tolerates no more failures than {} do; while a \
                     manager is upgraded the swarm tolerates {}. Use an odd number of managers",
                    n - 1,
                    count(spare as u64, "more failure")
                ),
            ));
        } else if spare == 0 {
            findings.push(Finding::info(
                ID,
                None,
                format!(
                    "{numbers}: zero tolerance while a manager is down for its upgrade; 5 managers give one spare"
                ),
            ));
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the, worst};
    use crate::facts::model::{Reachability, Role};

    fn with_managers(n: usize) -> Fixture {
        let mut fx = Fixture::healthy();
        let template = fx.node("m2").clone();
        fx.facts
            .cluster
            .nodes
            .retain(|n| n.role == Role::Worker || n.hostname == "m1");
        for i in 2..=n {
            let mut m = template.clone();
            m.hostname = format!("m{i}");
            m.id = format!("id-m{i}");
            fx.facts.cluster.nodes.push(m);
        }
        fx
    }

    #[test]
    fn three_managers_is_informational() {
        let findings = Fixture::healthy().run(&QuorumBudget);
        let f = the(&findings, Severity::Info);
        assert_eq!(
            f.message,
            "3 managers, quorum 2, 3 reachable: zero tolerance while a manager is down for its upgrade; \
             5 managers give one spare"
        );
    }

    #[test]
    fn five_managers_pass_silently() {
        assert!(with_managers(5).run(&QuorumBudget).is_empty());
    }

    #[test]
    fn one_manager_warns() {
        let findings = with_managers(1).run(&QuorumBudget);
        assert!(
            the(&findings, Severity::Warn)
                .message
                .contains("running tasks keep running")
        );
    }

    #[test]
    fn two_managers_block() {
        let findings = with_managers(2).run(&QuorumBudget);
        let f = the(&findings, Severity::Block);
        assert!(
            f.message
                .starts_with("2 managers, quorum 2, 2 reachable: taking any one down"),
            "{}",
            f.message
        );
    }

    #[test]
    fn four_managers_warn_for_being_even() {
        let findings = with_managers(4).run(&QuorumBudget);
        assert!(
            the(&findings, Severity::Warn)
                .message
                .contains("no more failures than 3 do")
        );
    }

    #[test]
    fn an_unreachable_manager_of_three_blocks() {
        let mut fx = Fixture::healthy();
        fx.node("m3").manager.as_mut().unwrap().reachability = Reachability::Unreachable;
        let findings = fx.run(&QuorumBudget);
        let f = the(&findings, Severity::Block);
        assert!(
            f.message.contains("1 manager is unreachable (m3)"),
            "{}",
            f.message
        );
    }

    #[test]
    fn an_unreachable_manager_of_five_warns() {
        let mut fx = with_managers(5);
        fx.node("m5").manager.as_mut().unwrap().reachability = Reachability::Unreachable;
        let findings = fx.run(&QuorumBudget);
        assert!(
            the(&findings, Severity::Warn)
                .message
                .contains("tolerates 0 failures")
        );
    }

    #[test]
    fn needs_exactly_one_leader() {
        let mut fx = Fixture::healthy();
        fx.node("m1").manager.as_mut().unwrap().leader = false;
        assert!(
            the(&fx.run(&QuorumBudget), Severity::Block)
                .message
                .contains("none of the 3 managers")
        );
        fx.node("m1").manager.as_mut().unwrap().leader = true;
        fx.node("m2").manager.as_mut().unwrap().leader = true;
        assert!(
            the(&fx.run(&QuorumBudget), Severity::Block)
                .message
                .contains("(m1, m2)")
        );
    }

    #[test]
    fn no_managers_blocks() {
        let mut fx = Fixture::healthy();
        fx.facts.cluster.nodes.retain(|n| n.role == Role::Worker);
        assert_eq!(worst(&fx.run(&QuorumBudget)), Some(Severity::Block));
    }
}
