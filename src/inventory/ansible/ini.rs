//! Ansible INI inventories, read without Ansible.
//!
//! `[group]`, `[group:vars]`, `[group:children]`, host lines
//! `pattern key=value ...`, `#` and `;` comments.

use std::path::Path;

use serde_json::Value;

use super::model::{Model, Var};
use super::pattern::expand_pattern;
use crate::error::usage;

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

pub(super) fn parse_ini(text: &str, path: &Path) -> anyhow::Result<Model> {
    let mut m = Model::new(path);
    let mut section = Section::Hosts("ungrouped".to_string());
    for (i, raw) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), i + 1);
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = ini_section(line, &at)?;
            let (Section::Hosts(g) | Section::Vars(g) | Section::Children(g)) = &section;
            m.group(g);
            continue;
        }
        match &section {
            Section::Hosts(g) => ini_host_line(&mut m, g, line, &at)?,
            Section::Vars(g) => {
                let Some((key, value)) = line.split_once('=') else {
                    return Err(usage(format!(
                        "{at}: `{line}` in [{g}:vars] is not a variable; fix: write key=value, e.g. ansible_user=ops"
                    )));
                };
                let key = key.trim();
                check_var_name(&at, key)?;
                let value = Value::String(unquote(value.trim()));
                m.group(g).vars.insert(key.to_string(), Var { value, at });
            }
            Section::Children(g) => {
                if line.contains(char::is_whitespace) || line.contains('=') {
                    return Err(usage(format!(
                        "{at}: `{line}` in [{g}:children] is not a group name; fix: write one child group per line"
                    )));
                }
                if line == g {
                    return Err(usage(format!(
                        "{at}: group `{g}` lists itself in [{g}:children]; fix: remove that line"
                    )));
                }
                m.add_child(g, line);
            }
        }
    }
    Ok(m)
}

fn ini_section(line: &str, at: &str) -> anyhow::Result<Section> {
    let bad = |why: &str| {
        usage(format!(
            "{at}: `{line}` {why}; fix: write [group], [group:vars] or [group:children]"
        ))
    };
    let inner = line
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .ok_or_else(|| bad("is not a section header"))?;
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inner, None),
    };
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || "[]:=".contains(c)) {
        return Err(bad("does not name a group"));
    }
    let name = name.to_string();
    match kind {
        None | Some("hosts") => Ok(Section::Hosts(name)),
        Some("vars") => Ok(Section::Vars(name)),
        Some("children") => Ok(Section::Children(name)),
        Some(k) => Err(bad(&format!("has the unknown section type `:{k}`"))),
    }
}

fn ini_host_line(m: &mut Model, group: &str, line: &str, at: &str) -> anyhow::Result<()> {
    let words = shlex::split(line).ok_or_else(|| {
        usage(format!(
            "{at}: unbalanced quotes in `{line}`; fix: close the quotes"
        ))
    })?;
    let Some((pattern, rest)) = words.split_first() else {
        return Ok(());
    };
    let hosts =
        expand_pattern(pattern).map_err(|e| usage(format!("{at}: host `{pattern}`: {e}")))?;
    let mut vars = vec![];
    for w in rest {
        let Some((k, v)) = w.split_once('=') else {
            return Err(usage(format!(
                "{at}: `{w}` after host `{pattern}` is not a variable; fix: write `name key=value ...`, e.g. `{pattern} ansible_host=10.0.0.11`"
            )));
        };
        check_var_name(at, k)?;
        vars.push((k.to_string(), Value::String(v.to_string())));
    }
    for (name, port) in hosts {
        let host = m.add_host(group, &name, at);
        if let Some(p) = port {
            host.vars.insert(
                "ansible_port".to_string(),
                Var {
                    value: Value::from(p),
                    at: at.to_string(),
                },
            );
        }
        for (k, v) in &vars {
            host.vars.insert(
                k.clone(),
                Var {
                    value: v.clone(),
                    at: at.to_string(),
                },
            );
        }
    }
    Ok(())
}

fn check_var_name(at: &str, key: &str) -> anyhow::Result<()> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(usage(format!(
            "{at}: `{key}` is not a variable name (letters, digits, `_`); fix: write key=value"
        )));
    }
    Ok(())
}

/// Drops `#` comments (at the start of a word, outside quotes) and `;` comment lines.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with(';') {
        return "";
    }
    let (mut single, mut double, mut escaped, mut prev_space) = (false, false, false, true);
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && !single {
            escaped = true;
        } else if c == '\'' && !double {
            single = !single;
        } else if c == '"' && !single {
            double = !double;
        } else if c == '#' && !single && !double && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// `'x y'` or `"x y"` → `x y`; anything else as written.
fn unquote(v: &str) -> String {
    let quoted = v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if quoted
        && let Some(mut words) = shlex::split(v)
        && words.len() == 1
    {
        return words.remove(0);
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::testutil::{host, ini, names};
    use crate::inventory::Sudo;

    const INI: &str = r#"
# a comment
bastion.example.com ansible_connection=local

[workers]
worker[01:03] ansible_user=deploy
w-[a:b].example.com:2222   # inline comment

[managers]
mgr-1 ansible_host=10.0.0.11 ansible_port=2201
mgr-2 ansible_host=10.0.0.12 ansible_become=no

[swarm:children]
managers
workers

[swarm:vars]
ansible_user=ops
ansible_ssh_private_key_file=keys/swarm
ansible_ssh_common_args='-o StrictHostKeyChecking=no -o ProxyJump=jump@bastion.example.com:2022'

[all:vars]
ansible_port=22
ansible_user=root
"#;

    #[test]
    fn ini_groups_children_vars_ranges() {
        let inv = ini(INI).unwrap();
        // Managers first; the local-connection host is not an SSH target.
        assert_eq!(
            names(&inv),
            [
                "mgr-1",
                "mgr-2",
                "worker01",
                "worker02",
                "worker03",
                "w-a.example.com",
                "w-b.example.com"
            ]
        );
        let m1 = host(&inv, "mgr-1");
        assert_eq!(m1.address, "10.0.0.11");
        assert_eq!(m1.port, Some(2201));
        assert_eq!(m1.user.as_deref(), Some("ops"));
        assert_eq!(
            m1.identity_file.as_deref(),
            Some(Path::new("/inv/keys/swarm"))
        );
        assert_eq!(m1.jump.as_deref(), Some("jump@bastion.example.com:2022"));
        assert_eq!(m1.sudo, Sudo::Yes);
        assert_eq!(m1.defined_at, "/inv/hosts.ini:10");
        assert_eq!(host(&inv, "mgr-2").sudo, Sudo::No);
        let w = host(&inv, "worker02");
        assert_eq!(w.address, "worker02");
        assert_eq!(w.user.as_deref(), Some("deploy"));
        assert_eq!(w.port, Some(22));
        assert_eq!(host(&inv, "w-b.example.com").port, Some(2222));
        assert_eq!(host(&inv, "w-b.example.com").defined_at, "/inv/hosts.ini:7");
        // Shared by every listed host: the key and the jump host, not the user.
        assert_eq!(
            inv.defaults.identity_file.as_deref(),
            Some(Path::new("/inv/keys/swarm"))
        );
        assert_eq!(
            inv.defaults.jump.as_deref(),
            Some("jump@bastion.example.com:2022")
        );
        assert_eq!(inv.defaults.user, None);
        assert_eq!(inv.defaults.port, None);
    }

    #[test]
    fn ini_syntax_errors() {
        let err = ini("[g]\nh1 ansible_user\n").unwrap_err().to_string();
        assert!(
            err.starts_with("/inv/hosts.ini:2: `ansible_user` after host `h1`"),
            "{err}"
        );
        let err = ini("[g:vars]\nansible_user\n").unwrap_err().to_string();
        assert!(err.starts_with("/inv/hosts.ini:2:"), "{err}");
        let err = ini("[g:hostvars]\n").unwrap_err().to_string();
        assert!(err.contains("unknown section type `:hostvars`"), "{err}");
        let err = ini("[a:children]\nb\n[b:children]\na\n[a]\nh\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("its own ancestor"), "{err}");
        let err = ini("[g]\nnode[3:1]\n").unwrap_err().to_string();
        assert!(
            err.contains("hosts.ini:2") && err.contains("start is after the end"),
            "{err}"
        );
        let err = ini("# nothing\n[g]\n").unwrap_err().to_string();
        assert!(err.contains("lists no host"), "{err}");
    }
}
