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
    /// Wrap privileged commands in `sudo -n`. Defaults to true unless the user is root.
    pub sudo: bool,
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
            sudo: d.sudo.unwrap_or(user.as_deref() != Some("root")),
            user,
            identity_file: d.identity_file.clone(),
            known_hosts_file: d.known_hosts_file.clone(),
            jump: d.jump.clone(),
            defined_at: format!("discovered from the swarm ({})", self.source.display()),
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
