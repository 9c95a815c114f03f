//! The inventory: how to reach the hosts of a swarm over SSH.
//!
//! Only one manager has to be listed: the other nodes are discovered from the
//! swarm and matched to inventory entries by hostname, or by their swarm
//! address, or reached at that address with the defaults.

pub mod ansible;
mod validate;
pub mod yaml;

use std::path::{Path, PathBuf};

use crate::facts::model::MatchedBy;

/// A loaded inventory, with defaults already applied to every host.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The file it came from (for messages).
    pub source: PathBuf,
    /// Connection settings for hosts discovered from the swarm.
    pub defaults: Defaults,
    pub hosts: Vec<SshTarget>,
}

/// Settings shared by every host unless the host overrides them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Defaults {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    pub jump: Option<String>,
    pub sudo: Option<bool>,
}

/// Everything needed to open an SSH connection to one host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    /// Inventory name (also an ssh_config alias when no address is given).
    pub name: String,
    /// What `ssh` connects to: an address, a DNS name or an ssh_config alias.
    pub address: String,
    pub port: Option<u16>,
    /// `None`: whatever ssh_config says (or the local user).
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    /// ProxyJump host(s), comma separated as in ssh_config.
    pub jump: Option<String>,
    /// Whether privileged commands are wrapped in `sudo -n` ([`Sudo::decide`]).
    pub sudo: Sudo,
    /// Where the entry was defined, for messages (`file:line`).
    pub defined_at: String,
}

impl Inventory {
    /// Loads an inventory in swarm-upgrade's own YAML format.
    pub fn load(path: &Path) -> anyhow::Result<Inventory> {
        yaml::load(path)
    }

    /// Loads an Ansible inventory (INI, YAML, or `ansible-inventory --list` JSON).
    pub fn load_ansible(path: &Path) -> anyhow::Result<Inventory> {
        ansible::load(path)
    }

    /// The connection for a swarm node, and how it was matched.
    pub fn target_for(&self, hostname: &str, swarm_addr: &str) -> (SshTarget, MatchedBy) {
        if let Some(h) = self.hosts.iter().find(|h| h.name == hostname) {
            return (h.clone(), MatchedBy::Hostname);
        }
        if let Some(h) = self
            .hosts
            .iter()
            .find(|h| !swarm_addr.is_empty() && h.address == swarm_addr)
        {
            return (h.clone(), MatchedBy::Address);
        }
        (self.discovered(hostname, swarm_addr), MatchedBy::Discovered)
    }

    /// A target for a node that the inventory does not list.
    pub fn discovered(&self, hostname: &str, swarm_addr: &str) -> SshTarget {
        let d = &self.defaults;
        let user = d.user.clone();
        SshTarget {
            name: hostname.to_string(),
            address: swarm_addr.to_string(),
            port: d.port,
            sudo: Sudo::decide(d.sudo, user.as_deref()),
            user,
            identity_file: d.identity_file.clone(),
            known_hosts_file: d.known_hosts_file.clone(),
            jump: d.jump.clone(),
            defined_at: format!("discovered from the swarm ({})", self.source.display()),
        }
    }
}

/// Whether privileged commands run under `sudo -n` on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sudo {
    /// Wrap privileged commands in `sudo -n`.
    Yes,
    /// Run them as they are (the SSH user is root, or the inventory says so).
    No,
    /// The inventory names no user, so who logs in is up to `~/.ssh/config`
    /// or the local account: the transport asks the host (`id -u`) once per
    /// connection, and only a root login runs without sudo.
    Auto,
}

impl Sudo {
    /// The inventory's decision, for listed and discovered hosts alike: an
    /// explicit `sudo`/`ansible_become` wins; otherwise a known user decides
    /// (root: no sudo, anyone else: sudo); with no user it is [`Sudo::Auto`].
    pub fn decide(explicit: Option<bool>, user: Option<&str>) -> Sudo {
        match (explicit, user) {
            (Some(true), _) => Sudo::Yes,
            (Some(false), _) => Sudo::No,
            (None, Some("root")) => Sudo::No,
            (None, Some(_)) => Sudo::Yes,
            (None, None) => Sudo::Auto,
        }
    }

    /// The decision when it is known without connecting.
    pub fn known(self) -> Option<bool> {
        match self {
            Sudo::Yes => Some(true),
            Sudo::No => Some(false),
            Sudo::Auto => None,
        }
    }
}

impl SshTarget {
    /// `user@address:port` for messages.
    pub fn display(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('@');
        }
        s.push_str(&self.address);
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_sudo_wins_then_a_known_user_decides() {
        assert_eq!(Sudo::decide(Some(true), Some("root")), Sudo::Yes);
        assert_eq!(Sudo::decide(Some(false), Some("ops")), Sudo::No);
        assert_eq!(Sudo::decide(Some(true), None), Sudo::Yes);
        assert_eq!(Sudo::decide(Some(false), None), Sudo::No);
        assert_eq!(Sudo::decide(None, Some("root")), Sudo::No);
        assert_eq!(Sudo::decide(None, Some("ops")), Sudo::Yes);
        assert_eq!(Sudo::decide(None, None), Sudo::Auto);
    }

    /// A node gets the same sudo whether the inventory lists it or it is
    /// discovered from the swarm (they used to disagree when no user was set).
    #[test]
    fn listed_and_discovered_hosts_agree_on_sudo() {
        for (defaults, want) in [
            ("", Sudo::Auto),
            ("defaults:\n  user: ops\n", Sudo::Yes),
            ("defaults:\n  user: root\n", Sudo::No),
            ("defaults:\n  sudo: false\n", Sudo::No),
            ("defaults:\n  user: root\n  sudo: true\n", Sudo::Yes),
        ] {
            let text = format!("{defaults}hosts:\n  - name: m1\n");
            let inv = yaml::parse(&text, Path::new("inv.yaml")).unwrap();
            assert_eq!(inv.hosts[0].sudo, want, "{defaults}");
            assert_eq!(inv.discovered("w1", "10.0.0.2").sudo, want, "{defaults}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hosts");
        for (text, want) in [
            ("m1\n", Sudo::Auto),
            ("m1 ansible_user=ops\n", Sudo::Yes),
            ("m1 ansible_user=root\n", Sudo::No),
            ("m1 ansible_become=no\n", Sudo::No),
            ("m1 ansible_user=root ansible_become=yes\n", Sudo::Yes),
        ] {
            std::fs::write(&path, text).unwrap();
            let inv = ansible::load_direct(&path).unwrap();
            assert_eq!(inv.hosts[0].sudo, want, "{text}");
            assert_eq!(inv.discovered("w1", "10.0.0.2").sudo, want, "{text}");
        }
    }
}
