//! `drain-feasibility` (P5): when the run drains a node, or all managers
//! together in the managers phase, can every replicated service still place
//! all its replicas on the nodes that stay active? A replica that cannot
//! stays `pending` ("no suitable node") until the drained node comes back.
//!
//! Placement is judged from constraints, `MaxReplicas` per node and each
//! node's resources against the service's reservations (other services'
//! reservations are not subtracted, so this errs on the hopeful side). Also
//! reported: single-replica services, down while their task moves, and
//! standalone containers, which a drain does not move at all.

use std::collections::BTreeSet;

use super::constraint::Constraint;
use super::{Check, CheckContext, Finding, Severity, bytes, count, join};
use crate::facts::model::{Availability, NodeFacts, NodeState, Role, ServiceFacts, ServiceMode};

pub struct DrainFeasibility;

const ID: &str = "drain-feasibility";

impl Check for DrainFeasibility {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "while a node (or every manager) is drained, each service can still place all its replicas; \
         notes single-replica services and standalone containers"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let scenarios = scenarios(ctx);
        let mut findings = vec![];
        for service in &ctx.facts.cluster.services {
            let ServiceMode::Replicated { replicas } = service.mode else {
                continue;
            };
            if replicas == 0 {
                continue;
            }
            let (constraints, unknown) = parse_constraints(service);
            if !unknown.is_empty() {
                findings.push(Finding::warn(
                    ID,
                    None,
                    format!(
                        "service {}: placement constraint {} is not one swarm-upgrade understands; it was \
                         assumed to match every node",
                        service.name,
                        join(unknown.iter().map(|c| format!("`{c}`")))
                    ),
                ));
            }
            let placement = Placement {
                service,
                replicas,
                constraints,
            };
            findings.extend(placement.judge(ctx, &scenarios));
            if replicas == 1 {
                findings.extend(single_replica(ctx, service));
            }
        }
        for (node, host) in ctx.hosts_to_upgrade() {
            let containers = &host.standalone_containers;
            if containers.is_empty() {
                continue;
            }
            findings.push(Finding::warn(
                ID,
                Some(&node.hostname),
                format!(
                    "host {} runs {} that a drain does not move ({}): stopped while dockerd restarts, started \
                     again only if a restart policy says so; stop them first, or run them as services",
                    host.host,
                    count(containers.len() as u64, "standalone container"),
                    join(containers)
                ),
            ));
        }
        findings
    }
}

/// A set of nodes the run has drained at the same time.
struct Scenario<'a> {
    /// `while w1 is drained`.
    what: String,
    drained: BTreeSet<&'a str>,
}

/// What the run drains at once: all managers by the end of the managers
/// phase (they stay drained until the last is verified), then each worker.
fn scenarios<'a>(ctx: &CheckContext<'a>) -> Vec<Scenario<'a>> {
    let while_drained = |names: &[&str]| match names {
        [one] => format!("while {one} is drained"),
        many => format!("while the managers {} are drained together", join(many)),
    };
    let managers: Vec<&NodeFacts> = ctx
        .nodes_to_drain()
        .filter(|n| n.role == Role::Manager)
        .collect();
    let mut scenarios = vec![];
    if !managers.is_empty() {
        let names: Vec<&str> = managers.iter().map(|n| n.hostname.as_str()).collect();
        scenarios.push(Scenario {
            what: while_drained(&names),
            drained: managers.iter().map(|n| n.id.as_str()).collect(),
        });
    }
    for worker in ctx.nodes_to_drain().filter(|n| n.role == Role::Worker) {
        scenarios.push(Scenario {
            what: while_drained(&[worker.hostname.as_str()]),
            drained: BTreeSet::from([worker.id.as_str()]),
        });
    }
    scenarios
}

/// Constraints swarm-upgrade can evaluate, and the raw text of the others.
fn parse_constraints(service: &ServiceFacts) -> (Vec<Constraint<'_>>, Vec<&str>) {
    let mut known = vec![];
    let mut unknown = vec![];
    for raw in &service.constraints {
        match Constraint::parse(raw) {
            Some(c) => known.push(c),
            None => unknown.push(raw.as_str()),
        }
    }
    (known, unknown)
}

struct Placement<'a> {
    service: &'a ServiceFacts,
    replicas: u64,
    constraints: Vec<Constraint<'a>>,
}

/// How many replicas fit on a set of nodes, and what held it back.
struct Room<'a> {
    replicas: u64,
    /// Per constraint, the nodes it ruled out.
    ruled_out: Vec<(&'a str, Vec<&'a str>)>,
    /// Nodes where the reservations fit fewer replicas than wanted.
    tight: Vec<&'a str>,
    /// Nodes considered at all (active and ready).
    nodes: usize,
}

impl<'a> Placement<'a> {
    fn judge(&self, ctx: &CheckContext<'a>, scenarios: &[Scenario<'a>]) -> Vec<Finding> {
        let name = &self.service.name;
        let replicas = self.replicas;
        let header = format!("service {name} ({})", count(replicas, "replica"));
        let baseline = self.room(ctx, &BTreeSet::new());
        if baseline.replicas < replicas {
            return vec![Finding::warn(
                ID,
                None,
                format!(
                    "{header}: even before the run the active nodes have room for {} ({}), so replicas are \
                     pending already; the drains can only make it worse: fix the placement first",
                    baseline.replicas,
                    self.explain(&baseline)
                ),
            )];
        }
        let short: Vec<String> = scenarios
            .iter()
            .filter_map(|s| {
                let room = self.room(ctx, &s.drained);
                (room.replicas < replicas).then(|| {
                    let down = if room.replicas == 0 {
                        ", so the service is down"
                    } else {
                        ""
                    };
                    format!(
                        "{}, room for {}{down} ({})",
                        s.what,
                        room.replicas,
                        self.explain(&room)
                    )
                })
            })
            .collect();
        if short.is_empty() {
            return vec![];
        }
        vec![Finding::warn(
            ID,
            None,
            format!(
                "{header} cannot place every replica during the drains: {}. The missing replicas stay pending \
                 until the drained node is back; relax the placement, lower the reservations or add a node \
                 that fits",
                short.join("; ")
            ),
        )]
    }

    /// The replicas that fit on the active, ready nodes outside `drained`.
    fn room(&self, ctx: &CheckContext<'a>, drained: &BTreeSet<&str>) -> Room<'a> {
        let mut room = Room {
            replicas: 0,
            ruled_out: vec![],
            tight: vec![],
            nodes: 0,
        };
        let available = ctx.facts.cluster.nodes.iter().filter(|n| {
            n.availability == Availability::Active
                && n.state == NodeState::Ready
                && !drained.contains(n.id.as_str())
        });
        for node in available {
            room.nodes += 1;
            if let Some(c) = self.constraints.iter().find(|c| !c.matches(node)) {
                match room.ruled_out.iter_mut().find(|(raw, _)| *raw == c.raw) {
                    Some((_, nodes)) => nodes.push(&node.hostname),
                    None => room.ruled_out.push((c.raw, vec![&node.hostname])),
                }
                continue;
            }
            let wanted = match self.service.max_replicas_per_node {
                0 => self.replicas,
                max => max.min(self.replicas),
            };
            let fits = wanted.min(fits_by_reservation(self.service, node));
            if fits < wanted {
                room.tight.push(&node.hostname);
            }
            room.replicas = room.replicas.saturating_add(fits);
        }
        room.replicas = room.replicas.min(self.replicas);
        room
    }

    fn explain(&self, room: &Room<'_>) -> String {
        if room.nodes == 0 {
            return "no active, ready node is left".to_string();
        }
        let mut why: Vec<String> = room
            .ruled_out
            .iter()
            .map(|(raw, nodes)| format!("`{raw}` rules out {}", join(nodes)))
            .collect();
        if !room.tight.is_empty() {
            why.push(format!(
                "its reservations ({} per replica) fit fewer on {}",
                reservations(self.service),
                join(&room.tight)
            ));
        }
        if self.service.max_replicas_per_node > 0 {
            why.push(format!(
                "at most {} per node",
                self.service.max_replicas_per_node
            ));
        }
        if why.is_empty() {
            why.push(format!("{} left", count(room.nodes as u64, "node")));
        }
        why.join(", ")
    }
}

/// Replicas of `service` whose reservations fit on `node` (unbounded when
/// either side is unknown).
fn fits_by_reservation(service: &ServiceFacts, node: &NodeFacts) -> u64 {
    let fit = |reserved: i64, has: i64| {
        if reserved > 0 && has > 0 {
            (has / reserved) as u64
        } else {
            u64::MAX
        }
    };
    fit(service.reserved_nano_cpus, node.nano_cpus)
        .min(fit(service.reserved_memory_bytes, node.memory_bytes))
}

/// `0.5 CPUs, 1.0 GiB`.
fn reservations(service: &ServiceFacts) -> String {
    let mut parts = vec![];
    if service.reserved_nano_cpus > 0 {
        parts.push(format!("{} CPUs", service.reserved_nano_cpus as f64 / 1e9));
    }
    if service.reserved_memory_bytes > 0 {
        parts.push(bytes(service.reserved_memory_bytes as u64));
    }
    parts.join(", ")
}

/// A single-replica service is down while its task moves off a drained node.
fn single_replica(ctx: &CheckContext<'_>, service: &ServiceFacts) -> Option<Finding> {
    let drained: Vec<&NodeFacts> = ctx.nodes_to_drain().collect();
    let tasks: Vec<&str> = ctx
        .facts
        .cluster
        .tasks
        .iter()
        .filter(|t| t.service_id == service.id)
        .map(|t| t.node_id.as_str())
        .collect();
    // Without task facts, assume its node is drained: it will be, sooner or later.
    let on = drained
        .iter()
        .find(|n| tasks.is_empty() || tasks.contains(&n.id.as_str()))?;
    let when = if tasks.is_empty() {
        "while its node is drained".to_string()
    } else {
        format!("while {} is drained", on.hostname)
    };
    Some(Finding::warn(
        ID,
        None,
        format!(
            "service {} has a single replica: it is down {when}, until its replacement starts elsewhere; \
             scale it to 2 or more for no downtime (docker service scale {}=2)",
            service.name, service.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, GIB, the};

    #[test]
    fn passes_when_every_drain_leaves_room() {
        assert!(Fixture::healthy().run(&DrainFeasibility).is_empty());
    }

    #[test]
    fn warns_when_a_constraint_leaves_too_few_nodes() {
        let mut fx = Fixture::healthy();
        fx.service("web").constraints = vec!["node.role==manager".into()];
        fx.service("web").max_replicas_per_node = 1;
        let findings = fx.run(&DrainFeasibility);
        let f = the(&findings, Severity::Warn);
        assert_eq!(
            f.message,
            "service web (3 replicas) cannot place every replica during the drains: while the managers m1, m2, \
             m3 are drained together, room for 0, so the service is down (`node.role==manager` rules out w1, \
             w2, at most 1 per node). The missing replicas stay pending until the drained node is back; relax \
             the placement, lower the reservations or add a node that fits"
        );
    }

    #[test]
    fn warns_per_worker_drain_with_max_replicas() {
        let mut fx = Fixture::healthy();
        fx.service("api").max_replicas_per_node = 1;
        let findings = fx.run(&DrainFeasibility);
        let f = the(&findings, Severity::Warn);
        assert!(f.message.contains("while w1 is drained, room for 1 (`node.role==worker` rules out m1, m2, m3, at most 1 per node); while w2 is drained, room for 1"), "{}", f.message);
    }

    #[test]
    fn warns_when_reservations_do_not_fit() {
        let mut fx = Fixture::healthy();
        let api = fx.service("api");
        api.reserved_memory_bytes = (5 * GIB) as i64;
        api.reserved_nano_cpus = 500_000_000;
        let findings = fx.run(&DrainFeasibility);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message
                .contains("its reservations (0.5 CPUs, 5.0 GiB per replica) fit fewer on w2"),
            "{}",
            f.message
        );
    }

    #[test]
    fn reports_pre_existing_shortfall_once() {
        let mut fx = Fixture::healthy();
        fx.service("api").constraints = vec!["node.labels.gpu==true".into()];
        let findings = fx.run(&DrainFeasibility);
        assert!(
            the(&findings, Severity::Warn)
                .message
                .contains("even before the run the active nodes have room for 0")
        );
    }

    #[test]
    fn warns_on_single_replica_services() {
        let mut fx = Fixture::healthy();
        fx.service("api").mode = ServiceMode::Replicated { replicas: 1 };
        fx.clear_tasks("api");
        fx.add_task("api", "w2", None);
        let findings = fx.run(&DrainFeasibility);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message
                .starts_with("service api has a single replica: it is down while w2 is drained"),
            "{}",
            f.message
        );
    }

    #[test]
    fn warns_on_unknown_constraints_and_standalone_containers() {
        let mut fx = Fixture::healthy();
        fx.service("web").constraints = vec!["region==east".into()];
        fx.host("w1").standalone_containers = vec!["registry".into(), "backup".into()];
        let findings = fx.run(&DrainFeasibility);
        assert_eq!(findings.len(), 2, "{findings:#?}");
        assert!(
            findings[0]
                .message
                .contains("`region==east` is not one swarm-upgrade understands")
        );
        assert!(findings[1].message.starts_with(
            "host w1 runs 2 standalone containers that a drain does not move (registry, backup)"
        ));
    }
}
