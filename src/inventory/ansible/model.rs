//! The inventory as Ansible sees it: groups, hosts and their variables.
//!
//! Every reader (INI, YAML, `--list` JSON) fills in a [`Model`] as written,
//! with where each variable was set; [`Model::finish`] then applies Ansible's
//! variable precedence once for all of them, so the readers cannot disagree
//! on it, and orders the hosts of manager groups first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::target::{as_int, show, target};
use crate::error::usage;
use crate::inventory::{Defaults, Inventory, SshTarget};

#[derive(Debug, Clone)]
pub(super) struct Var {
    pub(super) value: Value,
    /// Where it was set, for messages.
    pub(super) at: String,
}

pub(super) type Vars = BTreeMap<String, Var>;

#[derive(Debug, Default)]
pub(super) struct Group {
    pub(super) hosts: BTreeSet<String>,
    pub(super) children: BTreeSet<String>,
    /// Variables written in the inventory source.
    pub(super) vars: Vars,
    /// Variables from `group_vars/` (they override `vars` of every group).
    pub(super) dir_vars: Vars,
}

#[derive(Debug)]
pub(super) struct Host {
    pub(super) at: String,
    pub(super) vars: Vars,
    pub(super) dir_vars: Vars,
}

#[derive(Debug)]
pub(super) struct Model {
    source: PathBuf,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) hosts: BTreeMap<String, Host>,
    /// Hosts in order of first appearance.
    host_order: Vec<String>,
}

impl Model {
    pub(super) fn new(source: &Path) -> Model {
        let mut m = Model {
            source: source.to_path_buf(),
            groups: BTreeMap::new(),
            hosts: BTreeMap::new(),
            host_order: vec![],
        };
        m.group("all");
        m
    }

    pub(super) fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    pub(super) fn add_host(&mut self, group: &str, name: &str, at: &str) -> &mut Host {
        self.group(group).hosts.insert(name.to_string());
        if !self.hosts.contains_key(name) {
            self.host_order.push(name.to_string());
        }
        self.hosts.entry(name.to_string()).or_insert_with(|| Host {
            at: at.to_string(),
            vars: Vars::new(),
            dir_vars: Vars::new(),
        })
    }

    pub(super) fn add_child(&mut self, parent: &str, child: &str) {
        self.group(child);
        self.group(parent).children.insert(child.to_string());
    }

    /// Applies inheritance and maps every host to an [`SshTarget`].
    pub(super) fn finish(self) -> anyhow::Result<Inventory> {
        let src = self.source.display().to_string();
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, g) in &self.groups {
            for c in g.children.iter().filter(|c| *c != "all") {
                parents.entry(c.as_str()).or_default().push(name.as_str());
            }
        }
        let mut depth = HashMap::new();
        for name in self.groups.keys() {
            depth_of(name, &parents, &mut depth, &mut vec![], &src)?;
        }
        let mut priority = HashMap::new();
        for (name, g) in &self.groups {
            let p = match g.dir_vars.get(PRIORITY).or(g.vars.get(PRIORITY)) {
                Some(v) => as_int(&v.value).ok_or_else(|| {
                    usage(format!(
                        "{}: field `{PRIORITY}` of group `{name}` is {}, which is not a number; fix: write an integer, e.g. {PRIORITY}=10",
                        v.at,
                        show(&v.value)
                    ))
                })?,
                None => 1,
            };
            priority.insert(name.as_str(), p);
        }
        let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, g) in &self.groups {
            for h in &g.hosts {
                direct.entry(h.as_str()).or_default().push(name.as_str());
            }
        }

        let managers = self.manager_hosts();
        let base = self.source.parent().unwrap_or(Path::new("."));
        let (first, rest): (Vec<&String>, Vec<&String>) = self
            .host_order
            .iter()
            .partition(|h| managers.contains(h.as_str()));
        let mut hosts = vec![];
        for name in first.into_iter().chain(rest) {
            let host = &self.hosts[name];
            // The host's groups and all their ancestors, in merge order.
            let mut groups = BTreeSet::from(["all"]);
            let mut todo: Vec<&str> = direct.get(name.as_str()).cloned().unwrap_or_default();
            while let Some(g) = todo.pop() {
                if groups.insert(g) {
                    todo.extend(parents.get(g).into_iter().flatten());
                }
            }
            let mut groups: Vec<&str> = groups.into_iter().collect();
            groups.sort_by_key(|g| (depth[g], priority[g], *g));
            let mut vars = Vars::new();
            for g in &groups {
                vars.extend(self.groups[*g].vars.clone());
            }
            for g in &groups {
                vars.extend(self.groups[*g].dir_vars.clone());
            }
            vars.extend(host.vars.clone());
            vars.extend(host.dir_vars.clone());
            if let Some(t) = target(name, &host.at, &vars, base)? {
                hosts.push(t);
            }
        }
        if hosts.is_empty() {
            return Err(usage(format!(
                "{src}: the inventory lists no host reachable over SSH; list at least one manager of the swarm, e.g.\n    [managers]\n    mgr-1 ansible_host=10.0.0.11"
            )));
        }
        Ok(Inventory {
            source: self.source.clone(),
            defaults: shared_defaults(&hosts),
            hosts,
        })
    }

    /// Hosts in groups named like `managers` (and in their child groups).
    fn manager_hosts(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = self
            .groups
            .keys()
            .filter(|g| is_manager_group(g))
            .map(String::as_str)
            .collect();
        while let Some(g) = todo.pop() {
            if !seen.insert(g) {
                continue;
            }
            if let Some(grp) = self.groups.get(g) {
                out.extend(grp.hosts.iter().map(String::as_str));
                todo.extend(grp.children.iter().map(String::as_str));
            }
        }
        out
    }
}

const PRIORITY: &str = "ansible_group_priority";

/// `managers`, `manager`, `swarm_managers`, `docker-swarm-manager`, ...
fn is_manager_group(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    let stem = n
        .strip_suffix("managers")
        .or_else(|| n.strip_suffix("manager"));
    stem.is_some_and(|s| s.is_empty() || s.ends_with('_'))
}

/// A group's distance from `all` (the longest path, as Ansible computes it).
fn depth_of<'a>(
    g: &'a str,
    parents: &HashMap<&'a str, Vec<&'a str>>,
    memo: &mut HashMap<&'a str, usize>,
    stack: &mut Vec<&'a str>,
    src: &str,
) -> anyhow::Result<usize> {
    if g == "all" {
        memo.insert(g, 0);
        return Ok(0);
    }
    if let Some(d) = memo.get(g) {
        return Ok(*d);
    }
    if let Some(i) = stack.iter().position(|s| *s == g) {
        let mut cycle: Vec<&str> = stack[i..].to_vec();
        cycle.push(g);
        return Err(usage(format!(
            "{src}: group `{g}` is its own ancestor ({}); fix the `children` of these groups",
            cycle.join(" is a child of ")
        )));
    }
    stack.push(g);
    let mut d = 1;
    for p in parents.get(g).into_iter().flatten() {
        d = d.max(depth_of(p, parents, memo, stack, src)? + 1);
    }
    stack.pop();
    memo.insert(g, d);
    Ok(d)
}

/// The settings every listed host shares, for nodes the inventory omits.
fn shared_defaults(hosts: &[SshTarget]) -> Defaults {
    fn shared<T: PartialEq>(hosts: &[SshTarget], f: impl Fn(&SshTarget) -> Option<T>) -> Option<T> {
        let first = f(hosts.first()?)?;
        hosts
            .iter()
            .skip(1)
            .all(|h| f(h).as_ref() == Some(&first))
            .then_some(first)
    }
    Defaults {
        user: shared(hosts, |h| h.user.clone()),
        port: shared(hosts, |h| h.port),
        identity_file: shared(hosts, |h| h.identity_file.clone()),
        known_hosts_file: shared(hosts, |h| h.known_hosts_file.clone()),
        jump: shared(hosts, |h| h.jump.clone()),
        sudo: shared(hosts, |h| h.sudo.known()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{host, ini};
    use super::*;
    use crate::inventory::Sudo;

    #[test]
    fn precedence_all_parent_child_host() {
        let inv = ini(
            "[all:vars]\nansible_user=a\nansible_port=1\nansible_become=false\n\
             [parent:vars]\nansible_user=p\nansible_port=2\n\
             [child:vars]\nansible_user=c\n\
             [parent:children]\nchild\n\
             [child]\nh1 ansible_user=h\nh2\n\
             [parent]\nh3\n\
             [other]\nh4\n",
        )
        .unwrap();
        let get = |n: &str| {
            let h = host(&inv, n);
            (h.user.clone().unwrap(), h.port.unwrap(), h.sudo)
        };
        assert_eq!(get("h1"), ("h".into(), 2, Sudo::No));
        assert_eq!(get("h2"), ("c".into(), 2, Sudo::No));
        assert_eq!(get("h3"), ("p".into(), 2, Sudo::No));
        assert_eq!(get("h4"), ("a".into(), 1, Sudo::No));
    }

    #[test]
    fn same_depth_groups_merge_by_priority_then_name() {
        let inv =
            ini("[b:vars]\nansible_user=from_b\n[a:vars]\nansible_user=from_a\n[a]\nh\n[b]\nh\n")
                .unwrap();
        assert_eq!(host(&inv, "h").user.as_deref(), Some("from_b"));
        let inv = ini(
            "[b:vars]\nansible_user=from_b\n[a:vars]\nansible_user=from_a\nansible_group_priority=5\n[a]\nh\n[b]\nh\n",
        )
        .unwrap();
        assert_eq!(host(&inv, "h").user.as_deref(), Some("from_a"));
    }

    #[test]
    fn duplicate_hosts_are_merged() {
        let inv = ini("[a]\nh ansible_host=10.0.0.1\n[b]\nh ansible_user=ops\n").unwrap();
        assert_eq!(inv.hosts.len(), 1);
        let h = &inv.hosts[0];
        assert_eq!(
            (h.address.as_str(), h.user.as_deref()),
            ("10.0.0.1", Some("ops"))
        );
        assert_eq!(h.defined_at, "/inv/hosts.ini:2");
    }

    #[test]
    fn manager_group_names() {
        for g in [
            "managers",
            "manager",
            "swarm_managers",
            "docker_swarm_manager",
            "Swarm-Managers",
        ] {
            assert!(is_manager_group(g), "{g}");
        }
        for g in ["workers", "nomanagers", "manager_nodes"] {
            assert!(!is_manager_group(g), "{g}");
        }
    }
}
