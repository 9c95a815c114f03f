//! Node selection (`--nodes`, `--exclude`, `--selector`): which nodes a run
//! acts on. The rest of the swarm stays in the checks (quorum, drain room)
//! and in the plan, listed as out of scope with the reason. Pure.

use serde::{Deserialize, Serialize};

use crate::facts::model::{NodeFacts, Role};

/// What the operator selected. Empty: every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// `--nodes`: only these (swarm hostname or node ID).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// `--exclude`: never these (swarm hostname or node ID).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `--selector`: every one must match (`role=worker`,
    /// `node.labels.zone=a`, `!=` for "not").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<String>,
}

/// One parsed `--selector`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Role {
        role: Role,
        equal: bool,
    },
    Label {
        key: String,
        value: String,
        equal: bool,
    },
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.exclude.is_empty() && self.selectors.is_empty()
    }

    /// Refuses what cannot select anything as meant: a malformed selector,
    /// or a name in `--nodes`/`--exclude` that is no node of the swarm (a
    /// typo would otherwise silently widen or empty the run).
    pub fn validate(&self, nodes: &[NodeFacts]) -> Result<(), String> {
        for s in &self.selectors {
            parse(s)?;
        }
        for (flag, names) in [("--nodes", &self.nodes), ("--exclude", &self.exclude)] {
            for name in names {
                if !nodes.iter().any(|n| names_node(name, n)) {
                    let known: Vec<&str> = nodes.iter().map(|n| n.hostname.as_str()).collect();
                    return Err(format!(
                        "{flag} {name}: no node of the swarm has this hostname or ID (nodes: {})",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// `None` when `n` is in scope; else why not, for the plan.
    pub fn out_of_scope(&self, n: &NodeFacts) -> Option<String> {
        if !self.nodes.is_empty() && !self.nodes.iter().any(|x| names_node(x, n)) {
            return Some("out of scope: not named by --nodes".into());
        }
        if self.exclude.iter().any(|x| names_node(x, n)) {
            return Some("out of scope: named by --exclude".into());
        }
        for s in &self.selectors {
            // Malformed selectors are refused by `validate` first; one that
            // still does not parse selects nothing rather than everything.
            match parse(s) {
                Ok(sel) if sel.matches(n) => {}
                _ => return Some(format!("out of scope: does not match --selector {s}")),
            }
        }
        None
    }
}

fn names_node(name: &str, n: &NodeFacts) -> bool {
    n.hostname == name || n.id == name
}

impl Selector {
    fn matches(&self, n: &NodeFacts) -> bool {
        match self {
            Selector::Role { role, equal } => (n.role == *role) == *equal,
            Selector::Label { key, value, equal } => (n.labels.get(key) == Some(value)) == *equal,
        }
    }
}

/// `role=worker`, `node.role==manager`, `node.labels.zone=a`,
/// `node.labels.zone!=a` (swarm's constraint spelling, `node.` optional).
fn parse(s: &str) -> Result<Selector, String> {
    let bad = |why: &str| {
        format!(
            "--selector {s}: {why}; write role=manager|worker or node.labels.KEY=VALUE (!= for not)"
        )
    };
    let (key, value, equal) = if let Some((k, v)) = s.split_once("!=") {
        (k, v, false)
    } else if let Some((k, v)) = s.split_once("==") {
        (k, v, true)
    } else if let Some((k, v)) = s.split_once('=') {
        (k, v, true)
    } else {
        return Err(bad("no = in it"));
    };
    let (key, value) = (key.trim(), value.trim());
    let key = key.strip_prefix("node.").unwrap_or(key);
    if key == "role" {
        let role = match value {
            "manager" => Role::Manager,
            "worker" => Role::Worker,
            _ => return Err(bad("a role is manager or worker")),
        };
        return Ok(Selector::Role { role, equal });
    }
    match key.strip_prefix("labels.") {
        Some(k) if !k.is_empty() => Ok(Selector::Label {
            key: k.to_string(),
            value: value.to_string(),
            equal,
        }),
        _ => Err(bad(&format!("unknown key {key}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testutil::lab_facts;

    fn sel(nodes: &[&str], exclude: &[&str], selectors: &[&str]) -> Selection {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Selection {
            nodes: v(nodes),
            exclude: v(exclude),
            selectors: v(selectors),
        }
    }

    fn in_scope(s: &Selection) -> Vec<String> {
        lab_facts()
            .cluster
            .nodes
            .iter()
            .filter(|n| s.out_of_scope(n).is_none())
            .map(|n| n.hostname.clone())
            .collect()
    }

    #[test]
    fn nothing_selected_is_every_node() {
        let all = in_scope(&Selection::default());
        assert_eq!(all.len(), lab_facts().cluster.nodes.len());
    }

    #[test]
    fn names_exclusions_roles_and_labels_combine() {
        let facts = lab_facts();
        let workers: Vec<String> = facts
            .cluster
            .nodes
            .iter()
            .filter(|n| n.role == Role::Worker)
            .map(|n| n.hostname.clone())
            .collect();
        assert_eq!(in_scope(&sel(&[], &[], &["role=worker"])), workers);
        assert_eq!(in_scope(&sel(&[], &[], &["node.role==worker"])), workers);
        let first = &workers[0];
        assert_eq!(
            in_scope(&sel(&[], &[first], &["role=worker"])),
            workers[1..].to_vec()
        );
        assert_eq!(in_scope(&sel(&[first], &[], &[])), vec![first.clone()]);
        assert!(in_scope(&sel(&[first], &[], &["role=manager"])).is_empty());
        let mut labelled = facts.clone();
        labelled.cluster.nodes[0]
            .labels
            .insert("zone".into(), "a".into());
        let s = sel(&[], &[], &["node.labels.zone=a"]);
        let hit: Vec<&str> = labelled
            .cluster
            .nodes
            .iter()
            .filter(|n| s.out_of_scope(n).is_none())
            .map(|n| n.hostname.as_str())
            .collect();
        assert_eq!(hit, vec![labelled.cluster.nodes[0].hostname.as_str()]);
        let not = sel(&[], &[], &["node.labels.zone!=a"]);
        assert_eq!(
            labelled
                .cluster
                .nodes
                .iter()
                .filter(|n| not.out_of_scope(n).is_none())
                .count(),
            labelled.cluster.nodes.len() - 1
        );
    }

    #[test]
    fn the_reason_names_the_flag() {
        let facts = lab_facts();
        let n = &facts.cluster.nodes[0];
        let why = sel(&[], &[&n.hostname], &[]).out_of_scope(n).unwrap();
        assert!(why.contains("--exclude"), "{why}");
        let other = if n.role == Role::Worker {
            "role=manager"
        } else {
            "role=worker"
        };
        let why = sel(&[], &[], &[other]).out_of_scope(n).unwrap();
        assert!(why.contains(&format!("--selector {other}")), "{why}");
    }

    #[test]
    fn typos_and_bad_selectors_are_refused_with_the_fix() {
        let nodes = lab_facts().cluster.nodes;
        let err = sel(&["nosuch"], &[], &[]).validate(&nodes).unwrap_err();
        assert!(
            err.contains("--nodes nosuch") && err.contains(&nodes[0].hostname),
            "{err}"
        );
        let err = sel(&[], &["nosuch"], &[]).validate(&nodes).unwrap_err();
        assert!(err.contains("--exclude nosuch"), "{err}");
        for bad in ["role", "role=boss", "zone=a", "node.labels.=a"] {
            let err = sel(&[], &[], &[bad]).validate(&nodes).unwrap_err();
            assert!(
                err.contains(bad) && err.contains("node.labels.KEY=VALUE"),
                "{err}"
            );
        }
        sel(&[&nodes[0].id], &[], &["role=manager"])
            .validate(&nodes)
            .unwrap();
    }
}
