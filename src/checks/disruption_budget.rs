//! `disruption-budget`: a service labelled `swarm-upgrade.min-available=N`
//! (or `max-unavailable=N`) must keep that many running tasks through every
//! drain. The drain waits until the budget holds, but a drain never moves a
//! task before stopping it: when one node holds more of a service's tasks
//! than the budget can lose, or (global services, whose tasks do not move)
//! a worker batch takes more, the drain would only wait out its timeout.
//! Both block, with the fix. Managers are drained one at a time; workers in
//! batches of up to `--max-parallel`.

use std::collections::BTreeMap;

use super::{Check, CheckContext, Finding, Severity};
use crate::facts::budget;
use crate::facts::model::{Role, ServiceFacts, ServiceMode};

pub struct DisruptionBudget;

const ID: &str = "disruption-budget";

impl Check for DisruptionBudget {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "services labelled swarm-upgrade.min-available / max-unavailable keep their budget \
         through each drain and each worker batch"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Info, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut findings = vec![];
        let drained: Vec<_> = ctx.nodes_to_drain().collect();
        for s in &ctx.facts.cluster.services {
            let b = match budget::of(s) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    findings.push(Finding::block(ID, None, e));
                    continue;
                }
            };
            let on = running_per_node(ctx, s);
            let running: u64 = on.values().sum();
            let spare = running.saturating_sub(b.min_running);
            let mut worst: Option<(&str, u64)> = None;
            for n in &drained {
                let here = on.get(n.id.as_str()).copied().unwrap_or(0);
                if here > spare && worst.is_none_or(|(_, w)| here > w) {
                    worst = Some((n.hostname.as_str(), here));
                }
            }
            if let Some((node, here)) = worst {
                findings.push(Finding::block(
                    ID,
                    Some(node),
                    format!(
                        "service {}: draining {node} stops {here} of its {running} running tasks, \
                         leaving fewer than its budget of {} (a drain stops tasks before they \
                         start elsewhere): scale it up, spread it (--replicas-max-per-node), or \
                         lower its swarm-upgrade.* label",
                        s.name, b.min_running
                    ),
                ));
                continue;
            }
            // Global tasks do not move: a worker batch keeps them all down
            // until its nodes are active again.
            let batch = ctx.max_parallel.max(1);
            if matches!(s.mode, ServiceMode::Global) && batch > 1 {
                let mut per_worker: Vec<u64> = drained
                    .iter()
                    .filter(|n| n.role == Role::Worker)
                    .map(|n| on.get(n.id.as_str()).copied().unwrap_or(0))
                    .collect();
                per_worker.sort_unstable_by(|a, b| b.cmp(a));
                let lost: u64 = per_worker.iter().take(batch).sum();
                if lost > spare {
                    let fits = (1..batch)
                        .rev()
                        .find(|k| per_worker.iter().take(*k).sum::<u64>() <= spare)
                        .unwrap_or(1);
                    findings.push(Finding::block(
                        ID,
                        None,
                        format!(
                            "global service {}: a batch of {batch} workers stops {lost} of its \
                             {running} tasks together, below its budget of {}; use \
                             --max-parallel {fits}",
                            s.name, b.min_running
                        ),
                    ));
                    continue;
                }
            }
            findings.push(Finding::info(
                ID,
                None,
                format!(
                    "service {}: each drain waits until it keeps {} of its {running} running tasks",
                    s.name, b.min_running
                ),
            ));
        }
        findings
    }
}

fn running_per_node<'a>(ctx: &CheckContext<'a>, s: &ServiceFacts) -> BTreeMap<&'a str, u64> {
    let mut on = BTreeMap::new();
    for t in &ctx.facts.cluster.tasks {
        if t.service_id == s.id && t.state == "running" && !t.node_id.is_empty() {
            *on.entry(t.node_id.as_str()).or_insert(0) += 1;
        }
    }
    on
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::Fixture;
    use crate::facts::budget::{LABEL_MAX_UNAVAILABLE, LABEL_MIN_AVAILABLE};

    fn labelled(svc: &str, key: &str, value: &str) -> Fixture {
        let mut fx = Fixture::healthy();
        fx.service(svc).labels.insert(key.into(), value.into());
        fx
    }

    fn ids(f: &[Finding]) -> Vec<(Severity, Option<&str>)> {
        f.iter().map(|f| (f.severity, f.node.as_deref())).collect()
    }

    #[test]
    fn no_label_no_finding() {
        assert!(Fixture::healthy().run(&DisruptionBudget).is_empty());
    }

    #[test]
    fn a_budget_that_holds_is_noted() {
        // web: one task on each of m2, w1, w2; min 2 survives any one drain.
        let fx = labelled("web", LABEL_MIN_AVAILABLE, "2");
        let f = fx.run(&DisruptionBudget);
        assert_eq!(ids(&f), [(Severity::Info, None)], "{f:#?}");
        assert!(
            f[0].message.contains("keeps 2 of its 3"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn a_budget_one_drain_breaks_blocks_naming_the_node_and_fix() {
        let fx = labelled("web", LABEL_MAX_UNAVAILABLE, "0");
        let f = fx.run(&DisruptionBudget);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Block);
        assert!(f[0].message.contains("scale it up"), "{}", f[0].message);
    }

    #[test]
    fn a_global_service_blocks_a_batch_too_large_for_it() {
        let mut fx = labelled("agent", LABEL_MAX_UNAVAILABLE, "1");
        assert_eq!(ids(&fx.run(&DisruptionBudget)), [(Severity::Info, None)]);
        fx.max_parallel = 2;
        let f = fx.run(&DisruptionBudget);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].severity, Severity::Block);
        assert!(
            f[0].message.contains("--max-parallel 1"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn a_label_that_is_no_number_blocks() {
        let fx = labelled("web", LABEL_MIN_AVAILABLE, "two");
        let f = fx.run(&DisruptionBudget);
        assert_eq!(f[0].severity, Severity::Block);
        assert!(
            f[0].message.contains("not a whole number"),
            "{}",
            f[0].message
        );
    }
}
