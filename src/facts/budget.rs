//! Disruption budgets: what Swarm lacks next to Kubernetes'
//! PodDisruptionBudget. A service labelled `swarm-upgrade.min-available=N`
//! keeps at least N running tasks through every drain;
//! `swarm-upgrade.max-unavailable=N` loses at most N of its desired tasks.
//! Read from the service's own labels, so the budget lives with the
//! service. Pure.

use super::model::ServiceFacts;

pub const LABEL_MIN_AVAILABLE: &str = "swarm-upgrade.min-available";
pub const LABEL_MAX_UNAVAILABLE: &str = "swarm-upgrade.max-unavailable";

/// A service's budget: the fewest running tasks it may be left with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub min_running: u64,
}

/// The budget `s` declares, if any; a label that is no number is an error
/// naming the service and the label (a typo must not drop the budget).
pub fn of(s: &ServiceFacts) -> Result<Option<Budget>, String> {
    let num = |key: &str| -> Result<Option<u64>, String> {
        match s.labels.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                format!(
                    "service {}: label {key}={v} is not a whole number; fix it with \
                     `docker service update --label-add {key}=N {}`",
                    s.name, s.name
                )
            }),
        }
    };
    let min = num(LABEL_MIN_AVAILABLE)?;
    let max_unavailable = num(LABEL_MAX_UNAVAILABLE)?;
    // Both given: the stricter holds.
    let from_max = max_unavailable.map(|m| s.desired_tasks.saturating_sub(m));
    Ok(match (min, from_max) {
        (None, None) => None,
        (a, b) => Some(Budget {
            min_running: a.unwrap_or(0).max(b.unwrap_or(0)),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(labels: &[(&str, &str)], desired: u64) -> ServiceFacts {
        let mut s = crate::checks::fixtures::Fixture::healthy()
            .facts
            .cluster
            .services[0]
            .clone();
        s.name = "web".into();
        s.desired_tasks = desired;
        s.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    }

    #[test]
    fn labels_give_the_fewest_running_tasks() {
        assert_eq!(of(&svc(&[], 3)).unwrap(), None);
        assert_eq!(
            of(&svc(&[(LABEL_MIN_AVAILABLE, "2")], 3)).unwrap(),
            Some(Budget { min_running: 2 })
        );
        assert_eq!(
            of(&svc(&[(LABEL_MAX_UNAVAILABLE, "1")], 4)).unwrap(),
            Some(Budget { min_running: 3 })
        );
        assert_eq!(
            of(&svc(
                &[(LABEL_MIN_AVAILABLE, "1"), (LABEL_MAX_UNAVAILABLE, "1")],
                4
            ))
            .unwrap(),
            Some(Budget { min_running: 3 })
        );
        let err = of(&svc(&[(LABEL_MIN_AVAILABLE, "two")], 3)).unwrap_err();
        assert!(
            err.contains("service web") && err.contains("min-available=two"),
            "{err}"
        );
    }
}
