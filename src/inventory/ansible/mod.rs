//! Ansible inventories: INI, YAML, and `ansible-inventory --list` JSON.
//!
//! When `ansible-inventory` is on `PATH`, it reads the inventory, so plugins,
//! inventory directories, `group_vars/` and `host_vars/` work as they do in
//! Ansible. This module then maps its `--list` JSON. Without Ansible, the file
//! is read directly:
//!
//! - INI: `[group]`, `[group:vars]`, `[group:children]`, host lines
//!   `name[:port] key=value ...`, `#`/`;` comments, ranges `node[01:20]`,
//!   `node[a:c]`, `node[1:9:2]`;
//! - YAML: `all: {hosts: {h: {vars}}, children: {g: {...}}, vars: {...}}`;
//! - JSON: the output of `ansible-inventory --list` saved to a file.
//!
//! For INI and YAML files, `group_vars/` and `host_vars/` next to the file are
//! read too (`NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json`, or a `NAME/`
//! directory). Vault-encrypted files there are skipped.
//!
//! Variables apply with Ansible's precedence: `all` < parent groups < child
//! groups (groups of equal depth: by `ansible_group_priority`, then by name)
//! < host; `group_vars/` files override group variables written in the
//! inventory file, and `host_vars/` files override host variables.
//!
//! | Ansible variable | Meaning here |
//! |---|---|
//! | `ansible_host` (`ansible_ssh_host`) | address (default: the inventory name) |
//! | `ansible_port` (`ansible_ssh_port`) | port |
//! | `ansible_user` (`ansible_ssh_user`) | user |
//! | `ansible_ssh_private_key_file` (`ansible_private_key_file`) | identity_file |
//! | `-J X`, `-o ProxyJump=X`, `-o ProxyCommand="ssh -W %h:%p X"` in `ansible_ssh_common_args` / `ansible_ssh_extra_args` | jump |
//! | `-o UserKnownHostsFile=F` in the same | known_hosts_file |
//! | `ansible_become` (`ansible_sudo`) | sudo (default: true when a user other than root is set; with no user, decided on connecting: not for a root login) |
//! | `ansible_connection` other than `ssh`/`smart`/`paramiko` | host skipped (not reachable over SSH) |
//!
//! All hosts are listed, hosts of manager groups (`managers`, `manager`,
//! `swarm_managers`, `docker_swarm_manager`, ...: a name ending in
//! `manager(s)`) first. Nodes that the inventory does not list are reached
//! with the settings every listed host shares (see [`Defaults`](super::Defaults)).
//!
//! One module per source: `list` runs `ansible-inventory --list` and reads
//! its JSON; `ini` and `yaml` are the fallback readers, with `group_vars`.
//! They all fill in the same `model` of groups, hosts and variables as
//! written; merging by precedence (`model`) and mapping a host's variables to
//! an [`SshTarget`](super::SshTarget) (`target`, `ssh_args`) happen once, so
//! the sources cannot disagree.

mod group_vars;
mod ini;
mod list;
mod model;
mod ordered;
mod pattern;
mod ssh_args;
mod target;
mod yaml;

use std::path::Path;

use super::Inventory;
use crate::error::usage;

const INSTALL_HINT: &str =
    "install Ansible (e.g. `pipx install ansible-core`) so that `ansible-inventory` is on PATH";

/// Loads an Ansible inventory, through `ansible-inventory` when it is installed.
pub fn load(path: &Path) -> anyhow::Result<Inventory> {
    std::fs::metadata(path).map_err(|e| {
        usage(format!(
            "{}: cannot read the inventory: {e}",
            path.display()
        ))
    })?;
    match list::find_on_path(list::ANSIBLE_INVENTORY) {
        Some(exe) => {
            let json = list::run_ansible_inventory(&exe, path)?;
            list::parse_list_json(&json, path).map_err(|e| {
                usage(format!(
                    "{e}\n  (read through `{} -i {} --list`)",
                    exe.display(),
                    path.display()
                ))
            })
        }
        None => load_direct(path),
    }
}

/// Reads an inventory file without Ansible.
pub fn load_direct(path: &Path) -> anyhow::Result<Inventory> {
    let shown = path.display();
    if path.is_dir() {
        return Err(usage(format!(
            "{shown}: is a directory; inventory directories are read by Ansible: {INSTALL_HINT}, or pass a single inventory file"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("{shown}: cannot read the inventory: {e}")))?;
    if text.starts_with("#!") {
        return Err(usage(format!(
            "{shown}: is a dynamic inventory script; {INSTALL_HINT}, or save its output and pass that: `{shown} --list > inventory.json`"
        )));
    }
    if text.starts_with("$ANSIBLE_VAULT") {
        return Err(usage(format!(
            "{shown}: is encrypted with ansible-vault; {INSTALL_HINT} and configure the vault password (ANSIBLE_VAULT_PASSWORD_FILE), or pass a decrypted copy"
        )));
    }
    let mut model = match detect_format(path, &text) {
        Format::Json => return list::parse_list_json(&text, path),
        Format::Ini => ini::parse_ini(&text, path)?,
        Format::Yaml => yaml::parse_yaml(&text, path)?,
    };
    group_vars::read_var_dirs(&mut model, path.parent().unwrap_or(Path::new(".")))?;
    model.finish()
}

// ---------------------------------------------------------------------------
// Format detection

#[derive(Debug, PartialEq)]
enum Format {
    Ini,
    Yaml,
    Json,
}

fn detect_format(path: &Path, text: &str) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("yml" | "yaml") => return Format::Yaml,
        Some("json") => return Format::Json,
        Some("ini" | "cfg") => return Format::Ini,
        _ => {}
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .unwrap_or("");
    if first.starts_with('{') {
        Format::Json
    } else if first.starts_with('[') {
        Format::Ini
    } else if first.starts_with("---") || looks_like_yaml_key(first) {
        Format::Yaml
    } else {
        Format::Ini
    }
}

/// `all:` or `all: {...}`, but not an INI host line such as `h1:2222 x=y`.
fn looks_like_yaml_key(line: &str) -> bool {
    line.split_once(':').is_some_and(|(key, rest)| {
        !key.is_empty()
            && !key.contains(|c: char| c.is_whitespace() || c == '=')
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
    })
}

#[cfg(test)]
mod testutil {
    use std::path::Path;

    use super::{ini::parse_ini, yaml::parse_yaml};
    use crate::inventory::{Inventory, SshTarget};

    pub fn ini(s: &str) -> anyhow::Result<Inventory> {
        parse_ini(s, Path::new("/inv/hosts.ini"))?.finish()
    }

    pub fn yaml(s: &str) -> anyhow::Result<Inventory> {
        parse_yaml(s, Path::new("/inv/hosts.yml"))?.finish()
    }

    pub fn host<'a>(inv: &'a Inventory, name: &str) -> &'a SshTarget {
        inv.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in {inv:#?}"))
    }

    pub fn names(inv: &Inventory) -> Vec<&str> {
        inv.hosts.iter().map(|h| h.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{host, names};
    use super::*;

    #[test]
    fn format_detection() {
        let d = |p: &str, t: &str| detect_format(Path::new(p), t);
        assert_eq!(d("hosts", "[managers]\nm1\n"), Format::Ini);
        assert_eq!(d("hosts", "# c\nm1:2222 ansible_user=x\n"), Format::Ini);
        assert_eq!(d("hosts", "---\nall:\n"), Format::Yaml);
        assert_eq!(d("hosts", "all:\n  hosts:\n"), Format::Yaml);
        assert_eq!(d("inv", "{\"_meta\": {}}"), Format::Json);
        assert_eq!(d("inv.yml", "{}"), Format::Yaml);
    }

    #[test]
    fn fixtures_and_var_dirs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible");
        for file in ["hosts.ini", "hosts.yml"] {
            let inv = load_direct(&dir.join(file)).unwrap();
            assert_eq!(
                names(&inv),
                ["mgr-1", "mgr-2", "worker01", "worker02", "worker03"],
                "{file}"
            );
            let m = host(&inv, "mgr-1");
            assert_eq!(m.display(), "ops@10.0.0.11", "{file}");
            // group_vars/swarm.yml
            assert_eq!(m.jump.as_deref(), Some("ops@bastion.example.com"), "{file}");
            // host_vars/mgr-2.yml
            assert_eq!(host(&inv, "mgr-2").port, Some(2222), "{file}");
            assert_eq!(inv.defaults.user.as_deref(), Some("ops"), "{file}");
        }
        let inv = load_direct(&dir.join("list.json")).unwrap();
        assert_eq!(
            names(&inv),
            ["mgr-1", "mgr-2", "worker01", "worker02", "worker03"]
        );
        assert_eq!(host(&inv, "mgr-2").port, Some(2222));

        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("group_vars/all")).unwrap();
        std::fs::write(
            tmp.path().join("group_vars/all/10-conn.yml"),
            "ansible_user: ops\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("group_vars/all/20-vault.yml"),
            "$ANSIBLE_VAULT;1.1;AES256\n6231\n",
        )
        .unwrap();
        std::fs::write(tmp.path().join("group_vars/g"), "ansible_port: nope\n").unwrap();
        let inv_path = tmp.path().join("hosts");
        std::fs::write(&inv_path, "[g]\nh\n").unwrap();
        let err = load_direct(&inv_path).unwrap_err().to_string();
        assert!(
            err.contains("group_vars/g:1: field `ansible_port` of host `h`"),
            "{err}"
        );
        std::fs::write(tmp.path().join("group_vars/g"), "ansible_port: 2200\n").unwrap();
        let inv = load_direct(&inv_path).unwrap();
        assert_eq!(inv.hosts[0].display(), "ops@h:2200");

        std::fs::write(&inv_path, "#!/usr/bin/env python3\nprint('{}')\n").unwrap();
        let err = load_direct(&inv_path).unwrap_err().to_string();
        assert!(err.contains("dynamic inventory script"), "{err}");
        let err = load_direct(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
    }
}
