//! Node flavours: how a node's engine is installed and started. One image serves them all;
//! the flavour is chosen per node when its container is created and provisioned at its first
//! start by `node-boot.sh` (apt/dpkg, offline, from the image's repositories).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::lab::{NodeInfo, Role};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flavour {
    /// Debian's docker.io under sysvinit (`service docker`), tini as PID 1. The default.
    #[default]
    #[serde(rename = "sysv-docker.io")]
    SysvDockerIo,
    /// Debian's docker.io under systemd as PID 1 (docker.service + docker.socket).
    #[serde(rename = "systemd-docker.io")]
    SystemdDockerIo,
    /// The lab's docker-ce family (docker-ce, docker-ce-cli, containerd.io, plugins) from
    /// /srv/docker-ce-repo under systemd.
    #[serde(rename = "systemd-docker-ce")]
    SystemdDockerCe,
    /// An engine unpacked from a tarball into /usr/local/bin, owned by no package, started by
    /// an init script under sysvinit.
    #[serde(rename = "static")]
    Static,
    /// A lab whose nodes are spread over the other flavours (see `for_node`).
    #[serde(rename = "mixed")]
    Mixed,
}

impl Flavour {
    pub const ALL: [Flavour; 5] = [
        Flavour::SysvDockerIo,
        Flavour::SystemdDockerIo,
        Flavour::SystemdDockerCe,
        Flavour::Static,
        Flavour::Mixed,
    ];
    /// The flavours a single node can have (all but `mixed`).
    pub const NODE_FLAVOURS: [Flavour; 4] = [
        Flavour::SysvDockerIo,
        Flavour::SystemdDockerIo,
        Flavour::SystemdDockerCe,
        Flavour::Static,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::SysvDockerIo => "sysv-docker.io",
            Flavour::SystemdDockerIo => "systemd-docker.io",
            Flavour::SystemdDockerCe => "systemd-docker-ce",
            Flavour::Static => "static",
            Flavour::Mixed => "mixed",
        }
    }

    pub fn parse(text: &str) -> Result<Flavour> {
        match Flavour::ALL.into_iter().find(|f| f.as_str() == text) {
            Some(f) => Ok(f),
            None => bail!(
                "unknown flavour {text:?}; use one of: {}",
                Flavour::ALL.map(Flavour::as_str).join(", ")
            ),
        }
    }

    pub fn is_systemd(self) -> bool {
        matches!(self, Flavour::SystemdDockerIo | Flavour::SystemdDockerCe)
    }

    /// The flavour of one node of a lab of this flavour. In a mixed lab, managers rotate
    /// over the package flavours and workers start with `static`, so that 3 managers + 3
    /// workers have every node flavour, docker-ce and systemd on both roles.
    pub fn for_node(self, node: &NodeInfo, index_in_role: usize) -> Flavour {
        const MANAGERS: [Flavour; 3] = [
            Flavour::SysvDockerIo,
            Flavour::SystemdDockerIo,
            Flavour::SystemdDockerCe,
        ];
        const WORKERS: [Flavour; 4] = [
            Flavour::Static,
            Flavour::SystemdDockerCe,
            Flavour::SystemdDockerIo,
            Flavour::SysvDockerIo,
        ];
        match (self, node.role) {
            (Flavour::Mixed, Role::Manager) => MANAGERS[index_in_role % MANAGERS.len()],
            (Flavour::Mixed, Role::Worker) => WORKERS[index_in_role % WORKERS.len()],
            (f, _) => f,
        }
    }
}

impl std::fmt::Display for Flavour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::plan_nodes;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for f in Flavour::ALL {
            assert_eq!(Flavour::parse(f.as_str()).unwrap(), f);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
        }
        let err = Flavour::parse("systemd").unwrap_err().to_string();
        assert!(err.contains("systemd-docker-ce"), "{err}");
        assert_eq!(Flavour::default(), Flavour::SysvDockerIo);
    }

    #[test]
    fn a_mixed_3_plus_3_lab_has_every_node_flavour_and_systemd_and_docker_ce_on_both_roles() {
        let nodes = plan_nodes("mx", 3, 3, "172.31.11.0/24").unwrap();
        let mut seen = Vec::new();
        let (mut m, mut w) = (0, 0);
        for n in &nodes {
            let i = if n.role == Role::Manager {
                &mut m
            } else {
                &mut w
            };
            let f = Flavour::Mixed.for_node(n, *i);
            *i += 1;
            assert_ne!(f, Flavour::Mixed);
            seen.push((n.name.as_str(), f));
        }
        assert_eq!(
            seen,
            [
                ("mx-m1", Flavour::SysvDockerIo),
                ("mx-m2", Flavour::SystemdDockerIo),
                ("mx-m3", Flavour::SystemdDockerCe),
                ("mx-w1", Flavour::Static),
                ("mx-w2", Flavour::SystemdDockerCe),
                ("mx-w3", Flavour::SystemdDockerIo),
            ]
        );
        // A single-flavour lab is that flavour everywhere.
        assert!(
            nodes
                .iter()
                .all(|n| Flavour::Static.for_node(n, 0) == Flavour::Static)
        );
    }
}
