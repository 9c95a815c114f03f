//! Placement constraints, evaluated the way swarmkit's `manager/constraint`
//! does: `key==value` or `key!=value`, values compared case-insensitively, a
//! missing label read as the empty string.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::facts::model::{NodeFacts, Role};

/// What a constraint looks at. Label names keep their case: labels are
/// case-sensitive, the rest of the key is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key<'a> {
    Id,
    Hostname,
    Ip,
    Role,
    Os,
    Arch,
    NodeLabel(&'a str),
    EngineLabel(&'a str),
}

impl<'a> Key<'a> {
    fn parse(key: &'a str) -> Option<Self> {
        let lower = key.to_ascii_lowercase();
        // The prefixes are ASCII, so a prefix of `lower` is one of `key` too.
        let label = |prefix: &str| {
            (lower.len() > prefix.len() && lower.starts_with(prefix)).then(|| &key[prefix.len()..])
        };
        Some(match lower.as_str() {
            "node.id" => Key::Id,
            "node.hostname" => Key::Hostname,
            "node.ip" => Key::Ip,
            "node.role" => Key::Role,
            "node.platform.os" => Key::Os,
            "node.platform.arch" => Key::Arch,
            _ => match (label("node.labels."), label("engine.labels.")) {
                (Some(name), _) => Key::NodeLabel(name),
                (_, Some(name)) => Key::EngineLabel(name),
                _ => return None,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Constraint<'a> {
    /// As written in the service spec, for messages.
    pub raw: &'a str,
    key: Key<'a>,
    equal: bool,
    value: &'a str,
}

impl<'a> Constraint<'a> {
    /// `None` when there is no operator, or the key is not one swarm knows.
    pub fn parse(raw: &'a str) -> Option<Self> {
        // Like swarmkit, look for `==` anywhere before trying `!=`.
        let (key, value, equal) = match raw.split_once("==") {
            Some((k, v)) => (k, v, true),
            None => {
                let (k, v) = raw.split_once("!=")?;
                (k, v, false)
            }
        };
        Some(Constraint {
            raw,
            key: Key::parse(key.trim())?,
            equal,
            value: value.trim(),
        })
    }

    /// Whether `node` satisfies the constraint.
    pub fn matches(&self, node: &NodeFacts) -> bool {
        let actual: &str = match self.key {
            Key::Id => &node.id,
            Key::Hostname => &node.hostname,
            Key::Ip => return self.matches_ip(node),
            Key::Role => match node.role {
                Role::Manager => "manager",
                Role::Worker => "worker",
            },
            Key::Os => &node.platform_os,
            Key::Arch => &node.platform_arch,
            Key::NodeLabel(name) => node.labels.get(name).map_or("", String::as_str),
            Key::EngineLabel(name) => node.engine_labels.get(name).map_or("", String::as_str),
        };
        actual.eq_ignore_ascii_case(self.value) == self.equal
    }

    /// `node.ip==10.0.0.5` or `node.ip!=10.0.0.0/24`; a malformed value
    /// matches nothing, as in swarmkit.
    fn matches_ip(&self, node: &NodeFacts) -> bool {
        let addr = node.addr.parse::<IpAddr>().ok();
        let hit = if let Ok(ip) = self.value.parse::<IpAddr>() {
            addr == Some(ip)
        } else if let Ok(net) = self.value.parse::<IpNet>() {
            addr.is_some_and(|a| net.contains(&a))
        } else {
            return false;
        };
        hit == self.equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::Fixture;

    fn check(raw: &str, node: &NodeFacts) -> Option<bool> {
        Constraint::parse(raw).map(|c| c.matches(node))
    }

    #[test]
    fn evaluates_like_swarmkit() {
        let mut fx = Fixture::healthy();
        let w1 = fx.node("w1");
        w1.labels.insert("disk".into(), "ssd".into());
        w1.engine_labels.insert("zone".into(), "a".into());
        let w1 = w1.clone();
        for (raw, expected) in [
            ("node.role==worker", true),
            ("node.role == Manager", false),
            ("node.role!=manager", true),
            ("node.hostname==W1", true),
            ("node.hostname!=w1", false),
            ("node.id==id-w1", true),
            ("node.labels.disk==SSD", true),
            ("node.labels.Disk==ssd", false),
            ("node.labels.gpu!=true", true),
            ("NODE.LABELS.disk==ssd", true),
            ("engine.labels.zone==a", true),
            ("node.platform.os==linux", true),
            ("node.platform.arch==aarch64", false),
            ("node.ip==192.168.56.14", true),
            ("node.ip!=192.168.56.0/24", false),
            ("node.ip==bogus", false),
        ] {
            assert_eq!(check(raw, &w1), Some(expected), "{raw}");
        }
        for unknown in ["node.labels.==x", "region==east", "nonsense", "==x"] {
            assert_eq!(Constraint::parse(unknown), None, "{unknown}");
        }
    }
}
