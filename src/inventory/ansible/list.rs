//! `ansible-inventory --list`: running it, and reading its JSON.
//!
//! With Ansible installed, `ansible-inventory` is the one reader that knows
//! every inventory source (plugins, directories, vault, `group_vars/`). Its
//! JSON (`_meta.hostvars`, and groups with hosts, children and vars) goes
//! through the same model as the fallback readers, so hosts are ordered and
//! mapped to connections the same way. The same JSON saved to a file is read
//! without Ansible.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::model::{Model, Var};
use super::ordered::Ordered;
use crate::error::usage;
use crate::inventory::Inventory;

pub(super) const ANSIBLE_INVENTORY: &str = "ansible-inventory";
const ANSIBLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Runs `ansible-inventory -i PATH --list` (no shell) and returns its stdout.
pub(super) fn run_ansible_inventory(exe: &Path, path: &Path) -> anyhow::Result<String> {
    let what = format!("`{} -i {} --list`", exe.display(), path.display());
    let mut child = Command::new(exe)
        .arg("-i")
        .arg(path)
        .arg("--list")
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
        .env("ANSIBLE_NOCOLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| usage(format!("{}: cannot run {what}: {e}", path.display())))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + ANSIBLE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(usage(format!(
                    "{}: {what} did not finish within {} s; check that the inventory does not wait for input (vault password prompt, slow dynamic plugin)",
                    path.display(),
                    ANSIBLE_TIMEOUT.as_secs()
                )));
            }
            Err(e) => {
                return Err(usage(format!(
                    "{}: waiting for {what}: {e}",
                    path.display()
                )));
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        return Err(usage(format!(
            "{}: {what} failed ({status}):\n{}\n  fix the inventory so that ansible-inventory accepts it",
            path.display(),
            indent(stderr.trim_end())
        )));
    }
    String::from_utf8(stdout).map_err(|_| {
        usage(format!(
            "{}: {what} printed output that is not UTF-8",
            path.display()
        ))
    })
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = vec![];
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("    {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Maps `ansible-inventory --list` output (`_meta.hostvars`, and per group
/// `hosts`, `children`, `vars`; a bare list is a list of hosts).
pub(super) fn parse_list_json(text: &str, path: &Path) -> anyhow::Result<Inventory> {
    let shown = path.display();
    let top: Ordered<String, Value> = serde_json::from_str(text).map_err(|e| {
        usage(format!(
            "{shown}: {e}\n  expected the JSON that `ansible-inventory -i INVENTORY --list` prints"
        ))
    })?;
    let mut m = Model::new(path);
    let mut hostvars = serde_json::Map::new();
    let mut groups: Vec<(String, Value)> = vec![];
    for (name, v) in top.0 {
        if name == "_meta" {
            match v.get("hostvars") {
                Some(Value::Object(h)) => hostvars = h.clone(),
                None | Some(Value::Null) => {}
                Some(_) => {
                    return Err(usage(format!(
                        "{shown}: `_meta.hostvars` is not an object; fix: map each host name to its variables"
                    )));
                }
            }
        } else {
            groups.push((name, v));
        }
    }
    // Visit groups from `all` down, child groups before a group's own hosts
    // (the order of `ansible-inventory --graph`).
    fn visit<'a>(
        g: &'a str,
        groups: &'a [(String, Value)],
        index: &HashMap<&str, usize>,
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<usize>,
    ) {
        let Some(&i) = index.get(g) else { return };
        if !seen.insert(g) {
            return;
        }
        if let Some(Value::Array(children)) = groups[i].1.get("children") {
            for c in children.iter().filter_map(Value::as_str) {
                visit(c, groups, index, seen, order);
            }
        }
        order.push(i);
    }
    let index: HashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.as_str(), i))
        .collect();
    let mut order = vec![];
    visit("all", &groups, &index, &mut BTreeSet::new(), &mut order);
    for i in 0..groups.len() {
        if !order.contains(&i) {
            order.push(i);
        }
    }
    for i in order {
        let (name, v) = &groups[i];
        let gat = format!("{shown} (group {name})");
        let bad = |field: &str, want: &str| {
            usage(format!(
                "{gat}: `{field}` is not {want}; fix: write the format `ansible-inventory --list` prints"
            ))
        };
        m.group(name);
        let (hosts, children, vars) = match v {
            Value::Array(h) => (Some(h), None, None),
            Value::Object(o) => {
                let list = |field: &str| match o.get(field) {
                    Some(Value::Array(a)) => Ok(Some(a)),
                    None | Some(Value::Null) => Ok(None),
                    Some(_) => Err(bad(field, "a list")),
                };
                let vars = match o.get("vars") {
                    Some(Value::Object(v)) => Some(v),
                    None | Some(Value::Null) => None,
                    Some(_) => return Err(bad("vars", "an object")),
                };
                (list("hosts")?, list("children")?, vars)
            }
            Value::Null => (None, None, None),
            _ => return Err(bad(name, "an object with hosts, children and vars")),
        };
        for h in hosts.into_iter().flatten() {
            let h = h
                .as_str()
                .ok_or_else(|| bad("hosts", "a list of host names"))?;
            m.add_host(name, h, &format!("{shown} (host {h})"));
        }
        for c in children.into_iter().flatten() {
            let c = c
                .as_str()
                .ok_or_else(|| bad("children", "a list of group names"))?;
            if c != name {
                m.add_child(name, c);
            }
        }
        for (k, value) in vars.into_iter().flatten() {
            m.group(name).vars.insert(
                k.clone(),
                Var {
                    value: value.clone(),
                    at: gat.clone(),
                },
            );
        }
    }
    for (h, vars) in hostvars {
        let at = format!("{shown} (host {h})");
        let Value::Object(vars) = vars else {
            return Err(usage(format!(
                "{at}: `_meta.hostvars.{h}` is not an object; fix: map variable names to values"
            )));
        };
        let host = m.add_host("ungrouped", &h, &at);
        for (k, value) in vars {
            host.vars.insert(
                k,
                Var {
                    value,
                    at: at.clone(),
                },
            );
        }
    }
    // Hosts only in `_meta` were added to `ungrouped`; that only matters for `all`.
    m.finish()
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{host, names};
    use super::*;
    use crate::inventory::Sudo;

    const LIST_JSON: &str = r#"{
        "_meta": {
            "hostvars": {
                "mgr-1": {"ansible_host": "10.0.0.11", "ansible_user": "ops", "ansible_port": 2222,
                          "ansible_ssh_common_args": "-o ProxyJump=bastion"},
                "wrk-1": {"ansible_host": "10.0.0.21", "ansible_user": "ops", "ansible_become": false,
                          "ansible_ssh_common_args": "-o ProxyJump=bastion"},
                "wrk-2": {"ansible_user": "ops", "ansible_ssh_common_args": "-o ProxyJump=bastion",
                          "ansible_port": "2222"},
                "lonely": {"ansible_user": "ops", "ansible_ssh_common_args": "-o ProxyJump=bastion"}
            }
        },
        "all": {"children": ["ungrouped", "workers", "docker_swarm_manager"]},
        "docker_swarm_manager": {"hosts": ["mgr-1"]},
        "ungrouped": {},
        "workers": {"hosts": ["wrk-2", "wrk-1"], "vars": {"ansible_port": 22}}
    }"#;

    #[test]
    fn list_json() {
        let inv = parse_list_json(LIST_JSON, Path::new("/inv/list.json")).unwrap();
        assert_eq!(names(&inv), ["mgr-1", "wrk-2", "wrk-1", "lonely"]);
        let m = host(&inv, "mgr-1");
        assert_eq!(m.display(), "ops@10.0.0.11:2222");
        assert_eq!(m.jump.as_deref(), Some("bastion"));
        assert_eq!(m.sudo, Sudo::Yes);
        assert_eq!(m.defined_at, "/inv/list.json (host mgr-1)");
        assert_eq!(host(&inv, "wrk-1").sudo, Sudo::No);
        assert_eq!(host(&inv, "wrk-1").port, Some(22));
        assert_eq!(host(&inv, "wrk-2").port, Some(2222));
        assert_eq!(host(&inv, "wrk-2").address, "wrk-2");
        assert_eq!(inv.defaults.user.as_deref(), Some("ops"));
        assert_eq!(inv.defaults.jump.as_deref(), Some("bastion"));
        assert_eq!(inv.defaults.sudo, None);
        let (t, _) = inv.target_for("wrk-9", "10.0.0.29");
        assert_eq!(t.display(), "ops@10.0.0.29");

        let err = parse_list_json(
            r#"{"_meta": {"hostvars": {"m": {"ansible_port": "x"}}}}"#,
            Path::new("l.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("l.json (host m): field `ansible_port` of host `m`"),
            "{err}"
        );
        let err = parse_list_json("{\"all\": [", Path::new("l.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("l.json: ") && err.contains("line 1"),
            "{err}"
        );
        let err = parse_list_json(r#"{"g": {"hosts": "m"}}"#, Path::new("l.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("(group g): `hosts` is not a list"), "{err}");
    }
}
