//! The detection vocabulary and its evaluation against the facts.
//!
//! Each condition is one key under `detect:`; every key given must match.
//! Host conditions are read from a node's host facts (the one script per
//! host), so a hazard with any of them is reported per node; cluster
//! conditions (swarm networks, services) are read once from the Engine API
//! facts. A condition whose facts were not read does not match: the hazard
//! is not claimed without evidence.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Catalogue, Hazard};
use crate::checks::{CheckContext, Finding, daemon_json};
use crate::facts::model::{HostFacts, InitSystem, NodeFacts, ServiceFacts};
use crate::version::{EngineVersion, engine_version_of};

const DAEMON_JSON: &str = "/etc/docker/daemon.json";
/// Where services reach the engine when they bind-mount its socket.
const DOCKER_SOCKETS: [&str; 2] = ["/var/run/docker.sock", "/run/docker.sock"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Detect {
    // ---- host conditions ----
    /// `/etc/os-release` ID or ID_LIKE is one of these (debian, ubuntu, rhel, ...).
    #[serde(default)]
    pub distro: Option<Vec<String>>,
    #[serde(default)]
    pub init: Option<InitSystem>,
    /// An engine-related package is installed, optionally at these versions.
    #[serde(default)]
    pub package: Option<PackageCondition>,
    /// daemon.json sets this key (dotted for nested: `features.containerd-snapshotter`).
    #[serde(default)]
    pub daemon_json_key: Option<String>,
    /// daemon.json (or its absence) does not set this key.
    #[serde(default)]
    pub daemon_json_key_absent: Option<String>,
    /// The engine's storage driver (daemon.json or `docker info`) is one of these.
    #[serde(default)]
    pub storage_driver: Option<Vec<String>>,
    #[serde(default)]
    pub apparmor_enabled: Option<bool>,
    /// Whether `apparmor_parser` is on the host.
    #[serde(default)]
    pub apparmor_parser: Option<bool>,
    /// Any of these kernel modules is neither loaded nor built in (`/sys/module`).
    #[serde(default)]
    pub kernel_module_missing: Option<Vec<String>>,
    /// The host has local networks with this driver (only `ipvlan` is read).
    #[serde(default)]
    pub local_network_driver: Option<String>,
    // ---- cluster conditions ----
    /// A swarm network matches.
    #[serde(default)]
    pub network: Option<NetworkCondition>,
    /// A service matches.
    #[serde(default)]
    pub service: Option<ServiceCondition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageCondition {
    pub name: String,
    /// On the package's upstream version (`5:26.1.5-1~debian.12` → 26.1.5).
    #[serde(default)]
    pub version: Option<semver::VersionReq>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkCondition {
    /// `overlay`, ...
    #[serde(default)]
    pub driver: Option<String>,
    /// A driver option key that must be set (`encrypted`).
    #[serde(default)]
    pub option: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServiceCondition {
    /// The service bind-mounts the docker socket (it talks to the engine).
    #[serde(default)]
    pub mounts_docker_socket: Option<bool>,
    /// Its image matches one of these patterns (`*` matches anything).
    #[serde(default)]
    pub image: Option<Vec<String>>,
    /// It publishes ports in this mode: `ingress`, `host` or `any`.
    #[serde(default)]
    pub publishes: Option<String>,
}

impl Detect {
    fn has_host_conditions(&self) -> bool {
        self.distro.is_some()
            || self.init.is_some()
            || self.package.is_some()
            || self.daemon_json_key.is_some()
            || self.daemon_json_key_absent.is_some()
            || self.storage_driver.is_some()
            || self.apparmor_enabled.is_some()
            || self.apparmor_parser.is_some()
            || self.kernel_module_missing.is_some()
            || self.local_network_driver.is_some()
    }

    /// What the catalogue's loader checks beyond the types.
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(d) = &self.local_network_driver
            && d != "ipvlan"
        {
            return Err((
                "detect.local-network-driver",
                format!("`{d}`: only `ipvlan` local networks are read from the hosts"),
            ));
        }
        if let Some(s) = &self.service
            && let Some(p) = &s.publishes
            && !["ingress", "host", "any"].contains(&p.as_str())
        {
            return Err((
                "detect.service.publishes",
                format!("`{p}`: use ingress, host or any"),
            ));
        }
        if let Some(p) = &self.package
            && let Some(r) = &p.version
            && r.comparators.iter().any(|c| c.op == semver::Op::Caret)
        {
            return Err((
                "detect.package.version",
                format!("`{r}`: write the operator out, e.g. `>=2.0.0`"),
            ));
        }
        Ok(())
    }

    /// For `--explain`.
    pub(super) fn describe(&self) -> String {
        let mut parts: Vec<String> = vec![];
        let list = |v: &[String]| v.join(" or ");
        if let Some(d) = &self.distro {
            parts.push(format!("the host runs {}", list(d)));
        }
        if let Some(i) = self.init {
            parts.push(format!("the init system is {i:?}").to_lowercase());
        }
        if let Some(p) = &self.package {
            parts.push(match &p.version {
                Some(r) => format!("package {} {r} is installed", p.name),
                None => format!("package {} is installed", p.name),
            });
        }
        if let Some(k) = &self.daemon_json_key {
            parts.push(format!("{DAEMON_JSON} sets \"{k}\""));
        }
        if let Some(k) = &self.daemon_json_key_absent {
            parts.push(format!("{DAEMON_JSON} does not set \"{k}\""));
        }
        if let Some(d) = &self.storage_driver {
            parts.push(format!("the storage driver is {}", list(d)));
        }
        if let Some(b) = self.apparmor_enabled {
            parts.push(format!("AppArmor is {}", if b { "on" } else { "off" }));
        }
        if let Some(b) = self.apparmor_parser {
            parts.push(format!(
                "apparmor_parser is {}",
                if b { "present" } else { "missing" }
            ));
        }
        if let Some(m) = &self.kernel_module_missing {
            parts.push(format!("kernel module {} is not loaded", list(m)));
        }
        if let Some(d) = &self.local_network_driver {
            parts.push(format!("the host has {d} networks"));
        }
        if let Some(n) = &self.network {
            parts.push(format!(
                "a swarm network{}{}",
                n.driver
                    .as_ref()
                    .map_or(String::new(), |d| format!(" with driver {d}")),
                n.option
                    .as_ref()
                    .map_or(String::new(), |o| format!(" with option {o}"))
            ));
        }
        if let Some(s) = &self.service {
            let mut what = vec![];
            if s.mounts_docker_socket == Some(true) {
                what.push("mounting the docker socket".to_string());
            }
            if let Some(i) = &s.image {
                what.push(format!("with image {}", list(i)));
            }
            if let Some(p) = &s.publishes {
                what.push(format!("publishing {p} ports"));
            }
            parts.push(format!("a service {}", what.join(" and ")));
        }
        if parts.is_empty() {
            "by the versions alone".to_string()
        } else {
            parts.join("; ")
        }
    }

    /// Host conditions against one host: what matched, or `None`.
    fn host_evidence(&self, host: &HostFacts) -> Option<Vec<String>> {
        let mut seen = vec![];
        let config = match daemon_json(host) {
            // A daemon.json that does not parse is `daemon-config`'s finding.
            Some(Err(_)) => None,
            Some(Ok(c)) => Some(c),
            None => Some(Default::default()),
        };
        if let Some(distros) = &self.distro {
            let os = &host.os;
            let hit = distros
                .iter()
                .any(|d| os.id == *d || os.id_like.iter().any(|l| l == d));
            if !hit {
                return None;
            }
            seen.push(format!("{} host", os.id));
        }
        if self.init.is_some_and(|init| host.init != init) {
            return None;
        }
        if let Some(p) = &self.package {
            let version = host.installed.get(&p.name)?;
            if let Some(req) = &p.version {
                let upstream = upstream_version(version)?;
                if !req.matches(&upstream) {
                    return None;
                }
            }
            seen.push(format!("{} {version} installed", p.name));
        }
        if let Some(key) = &self.daemon_json_key {
            let config = config.as_ref()?;
            lookup(config, key)?;
            seen.push(format!("{DAEMON_JSON} sets \"{key}\""));
        }
        if let Some(key) = &self.daemon_json_key_absent {
            let config = config.as_ref()?;
            if lookup(config, key).is_some() {
                return None;
            }
            seen.push(format!("{DAEMON_JSON} does not set \"{key}\""));
        }
        if let Some(drivers) = &self.storage_driver {
            let configured = config
                .as_ref()
                .and_then(|c| c.get("storage-driver"))
                .and_then(Value::as_str);
            let used = configured
                .into_iter()
                .chain(host.storage_driver.as_deref())
                .find(|d| drivers.iter().any(|x| x == d))?;
            seen.push(format!("the engine uses the {used} storage driver"));
        }
        if let Some(on) = self.apparmor_enabled {
            if host.apparmor_enabled != on {
                return None;
            }
            seen.push(format!("AppArmor {}", if on { "on" } else { "off" }));
        }
        if let Some(present) = self.apparmor_parser {
            if host.apparmor_parser != present {
                return None;
            }
            if !present {
                seen.push("no apparmor_parser".into());
            }
        }
        if let Some(wanted) = &self.kernel_module_missing {
            let loaded = host.kernel_modules.as_ref()?;
            let missing: Vec<&str> = wanted
                .iter()
                .filter(|m| !loaded.contains(m))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                return None;
            }
            seen.push(format!("kernel modules not loaded: {}", missing.join(", ")));
        }
        if self.local_network_driver.is_some() {
            let networks = host.ipvlan_networks.as_ref()?;
            if networks.is_empty() {
                return None;
            }
            seen.push(format!("ipvlan networks {}", networks.join(", ")));
        }
        Some(seen)
    }

    /// Cluster conditions: what matched, or `None`.
    fn cluster_evidence(&self, ctx: &CheckContext<'_>) -> Option<Vec<String>> {
        let mut seen = vec![];
        if let Some(cond) = &self.network {
            let names: Vec<&str> = ctx
                .facts
                .cluster
                .networks
                .iter()
                .filter(|n| cond.driver.as_ref().is_none_or(|d| n.driver == *d))
                .filter(|n| {
                    cond.option
                        .as_ref()
                        .is_none_or(|o| n.options.contains_key(o))
                })
                .map(|n| n.name.as_str())
                .collect();
            if names.is_empty() {
                return None;
            }
            let kind = [cond.option.as_deref(), cond.driver.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            seen.push(format!("{kind} networks {}", names.join(", ")));
        }
        if let Some(cond) = &self.service {
            let names: Vec<&str> = ctx
                .facts
                .cluster
                .services
                .iter()
                .filter(|s| cond.matches(s))
                .map(|s| s.name.as_str())
                .collect();
            if names.is_empty() {
                return None;
            }
            seen.push(format!("services {}", names.join(", ")));
        }
        Some(seen)
    }
}

impl ServiceCondition {
    fn matches(&self, s: &ServiceFacts) -> bool {
        let socket = s
            .bind_mounts
            .iter()
            .any(|m| DOCKER_SOCKETS.contains(&m.as_str()));
        self.mounts_docker_socket.is_none_or(|want| socket == want)
            && self
                .image
                .as_ref()
                .is_none_or(|pats| pats.iter().any(|p| glob(p, &s.image)))
            && self.publishes.as_ref().is_none_or(|mode| {
                s.published_ports
                    .iter()
                    .any(|p| mode == "any" || p.mode == *mode)
            })
    }
}

/// A package version's upstream part: epoch and Debian/RPM suffixes dropped,
/// missing components zero (`5:26.1.5-1~debian.12` → 26.1.5, `2.1` → 2.1.0).
fn upstream_version(v: &str) -> Option<semver::Version> {
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    let digits: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = digits.split('.').filter(|p| !p.is_empty());
    let mut next = || parts.next().map_or(Some(0), |p| p.parse().ok());
    Some(semver::Version::new(next()?, next()?, next()?))
}

/// A daemon.json value by dotted path.
fn lookup<'a>(config: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut value = config.get(parts.next()?)?;
    for p in parts {
        value = value.as_object()?.get(p)?;
    }
    Some(value)
}

/// `*` matches any run of characters; everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    for (i, piece) in pieces.iter().enumerate() {
        if i == pieces.len() - 1 {
            return rest.ends_with(piece);
        }
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Every hazard of the catalogue against the facts: findings under the
/// hazard's id, so `--ignore-check ID` waives exactly one hazard.
pub fn evaluate(catalogue: &Catalogue, ctx: &CheckContext<'_>) -> Vec<Finding> {
    catalogue.iter().flat_map(|h| findings(h, ctx)).collect()
}

fn findings(h: &Hazard, ctx: &CheckContext<'_>) -> Vec<Finding> {
    let pin = ctx.pin;
    let concerned: Vec<(&NodeFacts, Option<EngineVersion>)> = ctx
        .nodes_to_upgrade()
        .map(|n| (n, engine_version_of(&n.engine_version)))
        .filter(|(_, current)| h.applies.matches(current.as_ref(), pin))
        .collect();
    if concerned.is_empty() {
        return vec![];
    }
    let Some(cluster) = h.detect.cluster_evidence(ctx) else {
        return vec![];
    };
    let tail = format!("{}; {} ({})", h.effect, h.remedy, h.source);
    if !h.detect.has_host_conditions() {
        let nodes: Vec<&str> = concerned.iter().map(|(n, _)| n.hostname.as_str()).collect();
        let mut what = vec![format!(
            "Engine {pin} on {}",
            if nodes.len() == ctx.facts.cluster.nodes.len() && nodes.len() > 1 {
                "every node".to_string()
            } else {
                format!("node {}", nodes.join(", "))
            }
        )];
        what.extend(cluster);
        let node = (nodes.len() == 1).then_some(nodes[0]);
        return vec![Finding::new(
            &h.id,
            h.severity,
            node,
            format!("{}: {}: {tail}", h.title, what.join("; ")),
        )];
    }
    concerned
        .iter()
        .filter_map(|(node, current)| {
            let host = ctx.facts.hosts.get(&node.id)?;
            let mut seen = h.detect.host_evidence(host)?;
            seen.extend(cluster.iter().cloned());
            let versions = match current {
                Some(c) => format!("{c} → {pin}"),
                None => format!("→ {pin}"),
            };
            Some(Finding::new(
                &h.id,
                h.severity,
                Some(&node.hostname),
                format!(
                    "host {} ({versions}): {}: {}: {tail}",
                    host.host,
                    seen.join("; "),
                    h.title
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_versions_of_packages() {
        let v = |s: &str| upstream_version(s).map(|v| v.to_string());
        assert_eq!(
            v("5:26.1.5-1~debian.12~bookworm").as_deref(),
            Some("26.1.5")
        );
        assert_eq!(v("20.10.24+dfsg1-1+deb12u1").as_deref(), Some("20.10.24"));
        assert_eq!(v("1.6.20~ds1-1+b1").as_deref(), Some("1.6.20"));
        assert_eq!(v("2.1").as_deref(), Some("2.1.0"));
        assert_eq!(v("3:26.1.5-1.el9").as_deref(), Some("26.1.5"));
    }

    #[test]
    fn globs() {
        assert!(glob("traefik:*", "traefik:v2.10@sha256:ab"));
        assert!(glob("*portainer/agent*", "docker.io/portainer/agent:2.19"));
        assert!(glob("nginx", "nginx"));
        assert!(!glob("nginx", "nginx:1"));
        assert!(!glob("traefik:*", "registry/traefik:v2"));
    }

    #[test]
    fn dotted_daemon_json_keys() {
        let c: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"features": {"containerd-snapshotter": true}}"#).unwrap();
        assert!(lookup(&c, "features.containerd-snapshotter").is_some());
        assert!(lookup(&c, "features.other").is_none());
        assert!(lookup(&c, "features").is_some());
    }
}
