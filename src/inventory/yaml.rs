//! swarm-upgrade's own inventory format (YAML).
//!
//! ```yaml
//! defaults:            # optional, applied to every host and to discovered nodes
//!   user: upgrader
//!   port: 22
//!   identity_file: ~/.ssh/id_ed25519
//!   known_hosts_file: known_hosts
//!   jump: bastion
//!   sudo: true
//! hosts:
//!   - name: mgr-1      # the swarm hostname (or an ssh_config alias)
//!     address: 10.0.0.11
//! ```
//!
//! Relative paths are relative to the inventory file; `~/` is the home
//! directory. Unknown fields are errors, so a typo never goes unnoticed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::check_host_word;
use super::{Defaults, Inventory, SshTarget, Sudo};
use crate::error::usage;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    hosts: Vec<Spanned<RawHost>>,
    /// Read by `crate::hooks`.
    #[serde(default, rename = "hooks")]
    _hooks: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<String>,
    known_hosts_file: Option<String>,
    jump: Option<String>,
    sudo: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    address: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    identity_file: Option<String>,
    known_hosts_file: Option<String>,
    jump: Option<String>,
    sudo: Option<bool>,
}

pub fn load(path: &Path) -> anyhow::Result<Inventory> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "{}: cannot read the inventory: {e}",
            path.display()
        ))
    })?;
    parse(&text, path)
}

/// Parses inventory text; `path` is used for messages and relative paths.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<Inventory> {
    let file: File = serde_saphyr::from_str(text).map_err(|e| {
        usage(format!(
            "{}: {}\n  expected fields: defaults {{user, port, identity_file, known_hosts_file, jump, sudo}}, hosts [{{name, address, port, user, identity_file, known_hosts_file, jump, sudo}}]",
            path.display(),
            e.to_string().trim_end().trim_start_matches("error: ")
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let d = file.defaults;
    let defaults = Defaults {
        user: d.user,
        port: d.port,
        identity_file: d.identity_file.map(|p| resolve_path(base, &p)),
        known_hosts_file: d.known_hosts_file.map(|p| resolve_path(base, &p)),
        jump: d.jump,
        sudo: d.sudo,
    };
    if file.hosts.is_empty() {
        return Err(usage(format!(
            "{}: `hosts` is empty: list at least one manager of the swarm (name and address)",
            path.display()
        )));
    }
    let mut seen = BTreeSet::new();
    let mut hosts = vec![];
    for spanned in file.hosts {
        let line = spanned.referenced.line();
        let h = spanned.value;
        let at = format!("{}:{}", path.display(), line);
        check_host_word(&at, "name", None, &h.name)?;
        if let Some(a) = &h.address {
            check_host_word(&at, "address", None, a)?;
        }
        if !seen.insert(h.name.clone()) {
            return Err(usage(format!(
                "{at}: host `{}` is listed twice; each host name must be unique",
                h.name
            )));
        }
        let user = h.user.or_else(|| defaults.user.clone());
        let sudo = Sudo::decide(h.sudo.or(defaults.sudo), user.as_deref());
        hosts.push(SshTarget {
            address: h.address.unwrap_or_else(|| h.name.clone()),
            name: h.name,
            port: h.port.or(defaults.port),
            user,
            identity_file: h
                .identity_file
                .map(|p| resolve_path(base, &p))
                .or_else(|| defaults.identity_file.clone()),
            known_hosts_file: h
                .known_hosts_file
                .map(|p| resolve_path(base, &p))
                .or_else(|| defaults.known_hosts_file.clone()),
            jump: h.jump.or_else(|| defaults.jump.clone()),
            sudo,
            defined_at: at,
        });
    }
    Ok(Inventory {
        source: path.to_path_buf(),
        defaults,
        hosts,
    })
}

pub(crate) fn resolve_path(base: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let p = PathBuf::from(p);
    if p.is_absolute() { p } else { base.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> anyhow::Result<Inventory> {
        parse(s, Path::new("/etc/swarm/inv.yaml"))
    }

    #[test]
    fn applies_defaults_and_resolves_paths() {
        let inv = parse_str(
            "defaults:\n  user: upgrader\n  identity_file: keys/id\n  sudo: true\nhosts:\n  - name: m1\n    address: 10.0.0.1\n  - name: m2\n    user: root\n    sudo: false\n",
        )
        .unwrap();
        assert_eq!(inv.hosts.len(), 2);
        let m1 = &inv.hosts[0];
        assert_eq!(m1.user.as_deref(), Some("upgrader"));
        assert_eq!(
            m1.identity_file.as_deref(),
            Some(Path::new("/etc/swarm/keys/id"))
        );
        assert_eq!(m1.sudo, Sudo::Yes);
        assert_eq!(m1.defined_at, "/etc/swarm/inv.yaml:6");
        let m2 = &inv.hosts[1];
        assert_eq!(m2.address, "m2");
        assert_eq!(m2.sudo, Sudo::No);
    }

    #[test]
    fn sudo_defaults_to_true_for_non_root_users() {
        let inv =
            parse_str("hosts:\n  - name: a\n    user: ops\n  - name: b\n    user: root\n").unwrap();
        assert_eq!(inv.hosts[0].sudo, Sudo::Yes);
        assert_eq!(inv.hosts[1].sudo, Sudo::No);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let err = parse_str("hosts:\n  - name: m1\n    port: seventy\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/swarm/inv.yaml: "), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let err = parse_str("hosts:\n  - name: m1\n    adress: 10.0.0.1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("adress"), "{err}");

        let err = parse_str("hosts:\n  - name: m1\n  - name: m1\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("/etc/swarm/inv.yaml:3: host `m1` is listed twice"),
            "{err:#}"
        );

        let err = parse_str("hosts:\n  - name: \"-oProxyCommand=sh\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inv.yaml:2: field `name`"), "{err}");

        let err = parse_str("defaults:\n  user: x\n").unwrap_err().to_string();
        assert!(err.contains("`hosts` is empty"), "{err}");
    }

    #[test]
    fn discovered_nodes_use_the_defaults() {
        let inv = parse_str(
            "defaults:\n  user: ops\n  port: 2222\nhosts:\n  - name: m1\n    address: 10.0.0.1\n",
        )
        .unwrap();
        let (t, how) = inv.target_for("w7", "10.0.0.27");
        assert_eq!(how, crate::facts::model::MatchedBy::Discovered);
        assert_eq!(t.display(), "ops@10.0.0.27:2222");
        let (t, how) = inv.target_for("node-a", "10.0.0.1");
        assert_eq!(how, crate::facts::model::MatchedBy::Address);
        assert_eq!(t.name, "m1");
    }
}
