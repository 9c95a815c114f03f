//! The swarm's own view of the lab, as reported by a manager.
//!
//! Parsing is kept pure (text in, `Status` out) so that it can be tested without a lab.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `testkit status --output json` and `Lab::status()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub nodes: Vec<NodeStatus>,
    pub services: Vec<ServiceStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Node hostname (= container name, e.g. "lab-m1").
    pub name: String,
    pub address: String,
    /// "manager" | "worker"
    pub role: String,
    /// "ready" | "down" | "unknown" | "disconnected"
    pub state: String,
    /// "active" | "drain" | "pause"
    pub availability: String,
    /// "reachable" | "unreachable" | "unknown" for managers, null for workers.
    pub reachability: Option<String>,
    pub leader: bool,
    pub engine_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub running: u32,
    pub desired: u32,
}

impl Status {
    pub fn node(&self, name: &str) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&ServiceStatus> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Why the lab is not healthy, or None when it is: every node ready, every manager
    /// reachable, exactly one leader, every service converged.
    pub fn unhealthy_reason(&self, expected_nodes: usize) -> Option<String> {
        let mut reasons = Vec::new();
        if self.nodes.len() != expected_nodes {
            reasons.push(format!(
                "{} nodes in the swarm, expected {expected_nodes}",
                self.nodes.len()
            ));
        }
        for n in &self.nodes {
            if n.state != "ready" {
                reasons.push(format!("{} is {}", n.name, n.state));
            }
            if n.role == "manager" && n.reachability.as_deref() != Some("reachable") {
                reasons.push(format!(
                    "manager {} is {}",
                    n.name,
                    n.reachability
                        .as_deref()
                        .unwrap_or("of unknown reachability")
                ));
            }
        }
        let leaders = self.nodes.iter().filter(|n| n.leader).count();
        if leaders != 1 {
            reasons.push(format!("{leaders} leaders"));
        }
        for s in &self.services {
            if s.running != s.desired {
                reasons.push(format!("service {} at {}/{}", s.name, s.running, s.desired));
            }
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// A table for humans.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "{:<10} {:<13} {:<8} {:<8} {:<12} {:<13} {:<7} {}\n",
            "NODE", "ADDRESS", "ROLE", "STATE", "AVAILABILITY", "REACHABILITY", "LEADER", "ENGINE"
        );
        for n in &self.nodes {
            out.push_str(&format!(
                "{:<10} {:<13} {:<8} {:<8} {:<12} {:<13} {:<7} {}\n",
                n.name,
                n.address,
                n.role,
                n.state,
                n.availability,
                n.reachability.as_deref().unwrap_or("-"),
                if n.leader { "yes" } else { "" },
                n.engine_version
            ));
        }
        out.push_str(&format!("\n{:<16} {}\n", "SERVICE", "REPLICAS"));
        for s in &self.services {
            out.push_str(&format!("{:<16} {}/{}\n", s.name, s.running, s.desired));
        }
        out
    }
}

/// Parse the JSON array printed by `docker node inspect <all node ids>`.
///
/// `address_of` maps a hostname to the address testkit gave it; it wins over the swarm's
/// `Status.Addr`, which can be stale (a down node) or 0.0.0.0 on some engine versions.
pub fn parse_nodes(
    json: &str,
    address_of: impl Fn(&str) -> Option<String>,
) -> Result<Vec<NodeStatus>> {
    let nodes: Vec<Value> =
        serde_json::from_str(json).context("docker node inspect: not a JSON array")?;
    let text = |v: &Value, path: &[&str]| -> String {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut out: Vec<NodeStatus> = nodes
        .iter()
        .map(|n| {
            let name = text(n, &["Description", "Hostname"]);
            let role = text(n, &["Spec", "Role"]);
            let manager = n.get("ManagerStatus");
            NodeStatus {
                address: address_of(&name).unwrap_or_else(|| text(n, &["Status", "Addr"])),
                state: text(n, &["Status", "State"]),
                availability: text(n, &["Spec", "Availability"]),
                reachability: manager.map(|m| {
                    m.get("Reachability")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .to_string()
                }),
                leader: manager
                    .and_then(|m| m.get("Leader"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                engine_version: text(n, &["Description", "Engine", "EngineVersion"]),
                name,
                role,
            }
        })
        .collect();
    // Managers first, then by name: the order of `testkit up`'s node list.
    out.sort_by(|a, b| (a.role != "manager", &a.name).cmp(&(b.role != "manager", &b.name)));
    Ok(out)
}

/// Parse `docker service ls --format '{{.Name}} {{.Replicas}}'` lines ("probe-server 3/3",
/// also "x 1/1 (max 1 per node)").
pub fn parse_services(text: &str) -> Result<Vec<ServiceStatus>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let name = words.next().context("empty service line")?;
        let replicas = words
            .next()
            .with_context(|| format!("no replicas in {line:?}"))?;
        let (running, desired) = replicas
            .split_once('/')
            .with_context(|| format!("replicas not n/m in {line:?}"))?;
        out.push(ServiceStatus {
            name: name.to_string(),
            running: running
                .parse()
                .with_context(|| format!("bad running count in {line:?}"))?,
            desired: desired
                .parse()
                .with_context(|| format!("bad desired count in {line:?}"))?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSPECT: &str = r#"[
      {"ID":"w1id","Spec":{"Role":"worker","Availability":"drain"},
       "Description":{"Hostname":"lab-w1","Engine":{"EngineVersion":"26.1.5"}},
       "Status":{"State":"down","Addr":"172.30.0.21"}},
      {"ID":"m2id","Spec":{"Role":"manager","Availability":"active"},
       "Description":{"Hostname":"lab-m2","Engine":{"EngineVersion":"20.10.24+dfsg1"}},
       "Status":{"State":"ready","Addr":"0.0.0.0"},
       "ManagerStatus":{"Reachability":"reachable","Addr":"172.30.0.12:2377"}},
      {"ID":"m1id","Spec":{"Role":"manager","Availability":"active"},
       "Description":{"Hostname":"lab-m1","Engine":{"EngineVersion":"20.10.24+dfsg1"}},
       "Status":{"State":"ready","Addr":"172.30.0.11"},
       "ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"172.30.0.11:2377"}}
    ]"#;

    fn lab_addresses(name: &str) -> Option<String> {
        (name == "lab-m2").then(|| "172.30.0.12".to_string())
    }

    #[test]
    fn nodes_are_parsed_and_ordered() {
        let nodes = parse_nodes(INSPECT, lab_addresses).unwrap();
        let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["lab-m1", "lab-m2", "lab-w1"]);
        assert!(nodes[0].leader);
        assert!(!nodes[1].leader);
        assert_eq!(nodes[1].address, "172.30.0.12");
        assert_eq!(nodes[2].reachability, None);
        assert_eq!(nodes[2].availability, "drain");
        assert_eq!(nodes[2].engine_version, "26.1.5");
    }

    #[test]
    fn the_json_shape_is_the_documented_one() {
        let nodes = parse_nodes(INSPECT, lab_addresses).unwrap();
        let status = Status {
            nodes,
            services: parse_services("probe-server 3/3\n").unwrap(),
        };
        let v = serde_json::to_value(&status).unwrap();
        let keys: Vec<_> = v["nodes"][0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "address",
                "availability",
                "engine_version",
                "leader",
                "name",
                "reachability",
                "role",
                "state"
            ]
        );
        assert!(v["nodes"][2]["reachability"].is_null());
        assert_eq!(
            v["services"][0],
            serde_json::json!({"name":"probe-server","running":3,"desired":3})
        );
    }

    #[test]
    fn services_are_parsed() {
        let s = parse_services("probe-server 3/3\nprobe-client 1/2\nglobal 5/5 (max 1 per node)\n")
            .unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[1],
            ServiceStatus {
                name: "probe-client".into(),
                running: 1,
                desired: 2
            }
        );
        assert!(parse_services("x y").is_err());
    }

    #[test]
    fn health_reasons_name_the_problem() {
        let status = Status {
            nodes: parse_nodes(INSPECT, lab_addresses).unwrap(),
            services: parse_services("probe-client 1/2").unwrap(),
        };
        let why = status.unhealthy_reason(3).unwrap();
        assert!(why.contains("lab-w1 is down"), "{why}");
        assert!(why.contains("probe-client at 1/2"), "{why}");
        let mut ok = status.clone();
        ok.nodes[2].state = "ready".into();
        ok.services[0].running = 2;
        assert_eq!(ok.unhealthy_reason(3), None);
        assert!(ok.unhealthy_reason(5).unwrap().contains("expected 5"));
    }
}
