//! A host's merged Ansible variables as an [`SshTarget`].
//!
//! Only the connection variables are read (the table in the `ansible`
//! module's documentation). Values are checked here, where the variable's
//! file and line are still known: a host word that `ssh` could take for an
//! option, a template or a vault value is refused with the place to fix it.

use std::path::Path;

use serde_json::Value;

use super::model::{Var, Vars};
use super::ssh_args::SshOpts;
use crate::error::usage;
use crate::inventory::validate::{check_host_word, is_jump_word};
use crate::inventory::yaml::resolve_path;
use crate::inventory::{SshTarget, Sudo};

pub(super) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn field_error(var: &Var, key: &str, host: &str, problem: &str, fix: &str) -> anyhow::Error {
    usage(format!(
        "{}: field `{key}` of host `{host}` is {}, {problem}; fix: {fix}",
        var.at,
        show(&var.value)
    ))
}

/// The first of `keys` that is set (and not null).
fn lookup<'a>(vars: &'a Vars, keys: &[&'static str]) -> Option<(&'static str, &'a Var)> {
    keys.iter()
        .find_map(|k| vars.get(*k).filter(|v| !v.value.is_null()).map(|v| (*k, v)))
}

/// A string variable; templates and vault values are refused.
fn string_var(
    vars: &Vars,
    keys: &[&'static str],
    host: &str,
    example: &str,
) -> anyhow::Result<Option<(String, &'static str, Var)>> {
    let Some((key, var)) = lookup(vars, keys) else {
        return Ok(None);
    };
    let s = match &var.value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(field_error(
                var,
                key,
                host,
                "which is not a string",
                &format!("write e.g. {key}={example}"),
            ));
        }
    };
    if s.contains("{{") || s.contains("{%") {
        return Err(field_error(
            var,
            key,
            host,
            "a Jinja template, which swarm-upgrade does not evaluate (ansible-inventory does not either)",
            &format!("write the value itself, e.g. {key}={example}"),
        ));
    }
    if s.trim_start().starts_with("$ANSIBLE_VAULT") {
        return Err(field_error(
            var,
            key,
            host,
            "encrypted with ansible-vault, which swarm-upgrade cannot decrypt",
            &format!("write the value unencrypted, e.g. {key}={example}"),
        ));
    }
    Ok(Some((s, key, var.clone())))
}

pub(super) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Ansible's truthy and falsy words.
fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "t" | "on" | "1" => Some(true),
            "no" | "n" | "false" | "f" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

const SSH_CONNECTIONS: &[&str] = &["ssh", "smart", "paramiko", "paramiko_ssh"];

/// The connection for one host, or `None` when Ansible would not use SSH.
pub(super) fn target(
    name: &str,
    at: &str,
    vars: &Vars,
    base: &Path,
) -> anyhow::Result<Option<SshTarget>> {
    if let Some((conn, _, _)) = string_var(vars, &["ansible_connection"], name, "ssh")? {
        let c = conn.strip_prefix("ansible.builtin.").unwrap_or(&conn);
        if !SSH_CONNECTIONS.contains(&c) {
            return Ok(None);
        }
    }
    check_host_word(at, "name", Some(name), name)?;
    let address = match string_var(
        vars,
        &["ansible_host", "ansible_ssh_host"],
        name,
        "10.0.0.11",
    )? {
        Some((a, key, var)) => {
            check_host_word(&var.at, key, Some(name), &a)?;
            a
        }
        None => name.to_string(),
    };
    let port = match lookup(vars, &["ansible_port", "ansible_ssh_port"]) {
        Some((key, var)) => {
            let p = as_int(&var.value)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0);
            Some(p.ok_or_else(|| {
                field_error(
                    var,
                    key,
                    name,
                    "which is not a port number",
                    &format!("write a number from 1 to 65535, e.g. {key}=2222"),
                )
            })?)
        }
        None => None,
    };
    let user = match string_var(vars, &["ansible_user", "ansible_ssh_user"], name, "ops")? {
        Some((u, key, var)) => {
            if u.is_empty()
                || u.starts_with('-')
                || u.contains(|c: char| c.is_whitespace() || c.is_control())
            {
                return Err(field_error(
                    &var,
                    key,
                    name,
                    "which is not a user name",
                    &format!("write e.g. {key}=ops"),
                ));
            }
            Some(u)
        }
        None => None,
    };
    let identity_file = string_var(
        vars,
        &["ansible_ssh_private_key_file", "ansible_private_key_file"],
        name,
        "~/.ssh/id_ed25519",
    )?
    .map(|(p, _, _)| resolve_path(base, &p));
    let explicit = match lookup(vars, &["ansible_become", "ansible_sudo"]) {
        Some((key, var)) => Some(as_bool(&var.value).ok_or_else(|| {
            field_error(
                var,
                key,
                name,
                "which is not a boolean",
                &format!("write {key}=true or {key}=false"),
            )
        })?),
        None => None,
    };
    let sudo = Sudo::decide(explicit, user.as_deref());
    let mut opts = SshOpts::default();
    for key in [
        "ansible_ssh_args",
        "ansible_ssh_common_args",
        "ansible_ssh_extra_args",
    ] {
        if let Some((args, key, var)) = string_var(vars, &[key], name, "'-o ProxyJump=bastion'")? {
            let words = shlex::split(&args).ok_or_else(|| {
                field_error(
                    &var,
                    key,
                    name,
                    "which has unbalanced quotes",
                    "close the quotes",
                )
            })?;
            opts.parse(&words)
                .map_err(|problem| field_error(&var, key, name, &problem, "use `-J [user@]bastion[:port]` or `-o ProxyJump=...`, or move the setting to ~/.ssh/config"))?;
            if let Some(Some(j)) = &opts.jump {
                check_jump(&var, key, name, j)?;
            }
        }
    }
    Ok(Some(SshTarget {
        name: name.to_string(),
        address,
        port,
        user,
        identity_file,
        known_hosts_file: opts.known_hosts.map(|p| resolve_path(base, &p)),
        jump: opts.jump.flatten(),
        sudo,
        defined_at: at.to_string(),
    }))
}

/// ProxyJump: `[user@]host[:port]` or `ssh://...`, comma separated.
fn check_jump(var: &Var, key: &str, host: &str, jump: &str) -> anyhow::Result<()> {
    for part in jump.split(',').map(str::trim) {
        if !is_jump_word(part) {
            return Err(field_error(
                var,
                key,
                host,
                &format!("whose jump host `{part}` is not `[user@]host[:port]`"),
                "write e.g. -J ops@bastion:22",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ini, yaml};
    use crate::inventory::Sudo;

    #[test]
    fn become_and_sudo_default() {
        let inv = ini(
            "a ansible_user=ops\nb ansible_user=root\nc\nd ansible_user=root ansible_become=yes\ne ansible_user=ops ansible_become=0\nf ansible_become=True\n",
        )
        .unwrap();
        let s: Vec<Sudo> = inv.hosts.iter().map(|h| h.sudo).collect();
        // `c` names no user: decided on connecting, by the login's uid.
        assert_eq!(
            s,
            [
                Sudo::Yes,
                Sudo::No,
                Sudo::Auto,
                Sudo::Yes,
                Sudo::No,
                Sudo::Yes
            ]
        );
        let err = ini("a ansible_become=maybe\n").unwrap_err().to_string();
        assert!(
            err.contains("hosts.ini:1: field `ansible_become` of host `a`"),
            "{err}"
        );
    }

    #[test]
    fn bad_port_names_file_line_and_field() {
        let err = ini("[managers]\nm0\nm1 ansible_port=seventy\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/inv/hosts.ini:3: field `ansible_port` of host `m1` is `seventy`"),
            "{err}"
        );
        assert!(err.contains("fix:"), "{err}");
        let err = ini("[g:vars]\nansible_port=99999\n[g]\nm1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/inv/hosts.ini:2: field `ansible_port`"),
            "{err}"
        );
        let err = ini("m1:0\n").unwrap_err().to_string();
        assert!(err.starts_with("/inv/hosts.ini:1: host `m1:0`"), "{err}");
    }

    #[test]
    fn injection_is_refused() {
        let err = ini("m1 ansible_host=-oProxyCommand=x\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hosts.ini:1: field `ansible_host` of host `m1`"),
            "{err}"
        );
        let err = ini("-oProxyCommand=x\n").unwrap_err().to_string();
        assert!(err.contains("field `name`"), "{err}");
        let err = ini("m1 \"ansible_host=a b\"\n").unwrap_err().to_string();
        assert!(err.contains("field `ansible_host`"), "{err}");
        let err = ini("m1 ansible_user=-oProxyCommand=x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `ansible_user`"), "{err}");
        let err = ini("m1 \"ansible_ssh_common_args=-J -oProxyCommand=x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field `ansible_ssh_common_args`"), "{err}");
    }

    #[test]
    fn templates_and_vault_values_are_refused() {
        let err = ini("m ansible_host='{{ inventory_hostname }}.lan'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Jinja template"), "{err}");
        let err = yaml("all:\n  hosts:\n    m:\n      ansible_user: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        6231\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hosts.yml:4: field `ansible_user`") && err.contains("ansible-vault"),
            "{err}"
        );
    }
}
