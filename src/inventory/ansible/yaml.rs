//! Ansible YAML inventories, read without Ansible.
//!
//! `all: {hosts: {h: {vars}}, children: {g: {...}}, vars: {...}}`, with
//! line numbers kept for every host and variable.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::model::{Model, Var, Vars};
use super::ordered::Ordered;
use super::pattern::expand_pattern;
use crate::error::usage;

pub(super) type YVars = Ordered<Spanned<String>, Value>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YGroup {
    #[serde(default)]
    hosts: Option<Ordered<Spanned<String>, Option<YVars>>>,
    #[serde(default)]
    children: Option<Ordered<Spanned<String>, Option<YGroup>>>,
    #[serde(default)]
    vars: Option<YVars>,
}

pub(super) fn parse_yaml(text: &str, path: &Path) -> anyhow::Result<Model> {
    let top: Ordered<Spanned<String>, Option<YGroup>> = serde_saphyr::from_str(text).map_err(|e| {
        usage(format!(
            "{}: {}\n  expected an Ansible YAML inventory: all: {{hosts: {{NAME: {{VARS}}}}, children: {{GROUP: {{hosts, children, vars}}}}, vars: {{VARS}}}}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let mut m = Model::new(path);
    for (name, group) in top.0 {
        if let Some(g) = group {
            yaml_group(&mut m, &name.value, g, path)?;
        } else {
            m.group(&name.value);
        }
    }
    Ok(m)
}

fn yaml_at(path: &Path, s: &Spanned<String>) -> String {
    format!("{}:{}", path.display(), s.referenced.line())
}

pub(super) fn yaml_vars(path: &Path, vars: YVars) -> Vars {
    vars.0
        .into_iter()
        .map(|(k, value)| {
            let at = yaml_at(path, &k);
            (k.value, Var { value, at })
        })
        .collect()
}

fn yaml_group(m: &mut Model, name: &str, g: YGroup, path: &Path) -> anyhow::Result<()> {
    m.group(name);
    for (pattern, vars) in g.hosts.map(|h| h.0).unwrap_or_default() {
        let at = yaml_at(path, &pattern);
        let hosts = expand_pattern(&pattern.value)
            .map_err(|e| usage(format!("{at}: host `{}`: {e}", pattern.value)))?;
        let vars = vars.map(|v| yaml_vars(path, v)).unwrap_or_default();
        for (h, port) in hosts {
            let host = m.add_host(name, &h, &at);
            if let Some(p) = port {
                host.vars.insert(
                    "ansible_port".to_string(),
                    Var {
                        value: Value::from(p),
                        at: at.clone(),
                    },
                );
            }
            host.vars.extend(vars.clone());
        }
    }
    if let Some(v) = g.vars {
        let vars = yaml_vars(path, v);
        m.group(name).vars.extend(vars);
    }
    for (child, cg) in g.children.map(|c| c.0).unwrap_or_default() {
        if child.value == name {
            return Err(usage(format!(
                "{}: group `{name}` lists itself in its children; fix: remove it",
                yaml_at(path, &child)
            )));
        }
        m.add_child(name, &child.value);
        if let Some(cg) = cg {
            yaml_group(m, &child.value, cg, path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{host, names, yaml};
    use crate::inventory::Sudo;

    const YAML: &str = "\
all:
  vars:
    ansible_user: ops
    ansible_become: true
  hosts:
    bastion:
      ansible_connection: local
  children:
    swarm:
      vars:
        ansible_port: 2222
      children:
        workers:
          hosts:
            worker[1:2]:
              ansible_user: root
        swarm_managers:
          hosts:
            mgr-1:
              ansible_host: 10.0.0.11
              ansible_ssh_extra_args: -J ops@bastion
            mgr-2:
    workers:
      vars:
        ansible_port: 22
";

    #[test]
    fn yaml_inventory() {
        let inv = yaml(YAML).unwrap();
        assert_eq!(names(&inv), ["mgr-1", "mgr-2", "worker1", "worker2"]);
        let m1 = host(&inv, "mgr-1");
        assert_eq!(m1.address, "10.0.0.11");
        assert_eq!(m1.user.as_deref(), Some("ops"));
        assert_eq!(m1.port, Some(2222));
        assert_eq!(m1.jump.as_deref(), Some("ops@bastion"));
        assert_eq!(m1.defined_at, "/inv/hosts.yml:19");
        assert_eq!(host(&inv, "mgr-2").address, "mgr-2");
        let w = host(&inv, "worker2");
        assert_eq!(
            (w.user.as_deref(), w.port, w.sudo),
            (Some("root"), Some(22), Sudo::Yes)
        );
        assert_eq!(w.defined_at, "/inv/hosts.yml:15");
        assert_eq!(inv.defaults.sudo, Some(true));
        assert_eq!(inv.defaults.user, None);
    }

    #[test]
    fn yaml_errors() {
        let err = yaml("all:\n  hosts:\n    m1:\n      ansible_port: seventy\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/inv/hosts.yml:4: field `ansible_port` of host `m1`"),
            "{err}"
        );
        let err = yaml("all:\n  host:\n    m1:\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/inv/hosts.yml: ") && err.contains("line 2"),
            "{err}"
        );
        let err = yaml("all:\n  hosts:\n    m1:\n      ansible_host: -oProxyCommand=x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hosts.yml:4: field `ansible_host`"), "{err}");
        let err = yaml("").unwrap_err().to_string();
        assert!(err.contains("lists no host"), "{err}");
    }
}
