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
//!
//! Each service's room on each node is computed once; a drain's room is then
//! that total minus the drained nodes' share. That keeps the check linear in
//! services × (nodes + drains) where recounting per drain would be
//! quadratic in nodes (a minute at 5,000 nodes, see bench/RESULTS.md).

use std::collections::HashMap;

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
        let drained: Vec<&NodeFacts> = ctx.nodes_to_drain().collect();
        let mut tasks_of: HashMap<&str, Vec<&str>> = HashMap::new();
        for task in &ctx.facts.cluster.tasks {
            tasks_of
                .entry(task.service_id.as_str())
                .or_default()
                .push(task.node_id.as_str());
        }
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
            let placement = Placement::new(ctx, service, replicas, constraints);
            findings.extend(placement.judge(ctx, &scenarios));
            if replicas == 1 {
                let tasks = tasks_of.get(service.id.as_str()).map_or(&[][..], |t| t);
                findings.extend(single_replica(service, &drained, tasks));
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
struct Scenario {
    /// `while w1 is drained`.
    what: String,
    /// Indices into the cluster's nodes.
    drained: Vec<usize>,
}

/// At most this many drains are spelled out per service; a constraint that
/// fails one worker drain tends to fail them all.
const LISTED_DRAINS: usize = 5;

/// What the run drains at once: all managers by the end of the managers
/// phase (they stay drained until the last is verified), then each worker.
fn scenarios(ctx: &CheckContext<'_>) -> Vec<Scenario> {
    let while_drained = |names: &[&str]| match names {
        [one] => format!("while {one} is drained"),
        many => format!("while the managers {} are drained together", join(many)),
    };
    let index: HashMap<&str, usize> = ctx
        .facts
        .cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let managers: Vec<&NodeFacts> = ctx
        .nodes_to_drain()
        .filter(|n| n.role == Role::Manager)
        .collect();
    let mut scenarios = vec![];
    if !managers.is_empty() {
        let names: Vec<&str> = managers.iter().map(|n| n.hostname.as_str()).collect();
        scenarios.push(Scenario {
            what: while_drained(&names),
            drained: managers.iter().map(|n| index[n.id.as_str()]).collect(),
        });
    }
    for worker in ctx.nodes_to_drain().filter(|n| n.role == Role::Worker) {
        scenarios.push(Scenario {
            what: while_drained(&[worker.hostname.as_str()]),
            drained: vec![index[worker.id.as_str()]],
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
    /// Per node (same order as the cluster's nodes): the replicas that fit
    /// there, 0 where none may run.
    fits: Vec<u64>,
    /// Their sum, before capping at `replicas`.
    total: u64,
}

/// What one node offers one service.
enum Fit<'a> {
    /// Drained, paused or not ready.
    Unavailable,
    /// By this constraint.
    RuledOut(&'a str),
    Fits {
        replicas: u64,
        tight: bool,
    },
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
    fn new(
        ctx: &CheckContext<'a>,
        service: &'a ServiceFacts,
        replicas: u64,
        constraints: Vec<Constraint<'a>>,
    ) -> Self {
        let mut placement = Placement {
            service,
            replicas,
            constraints,
            fits: vec![],
            total: 0,
        };
        placement.fits = ctx
            .facts
            .cluster
            .nodes
            .iter()
            .map(|node| match placement.fit(node) {
                Fit::Unavailable | Fit::RuledOut(_) => 0,
                Fit::Fits { replicas, .. } => replicas,
            })
            .collect();
        placement.total = placement.fits.iter().fold(0, |a, f| a.saturating_add(*f));
        placement
    }

    /// The replicas that fit while `drained` (node indices) are drained.
    fn room_without(&self, drained: &[usize]) -> u64 {
        let lost = drained
            .iter()
            .fold(0u64, |a, i| a.saturating_add(self.fits[*i]));
        self.total.saturating_sub(lost).min(self.replicas)
    }

    fn judge(&self, ctx: &CheckContext<'a>, scenarios: &[Scenario]) -> Vec<Finding> {
        let name = &self.service.name;
        let replicas = self.replicas;
        let header = format!("service {name} ({})", count(replicas, "replica"));
        if self.room_without(&[]) < replicas {
            let baseline = self.room(ctx, &[]);
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
        let short: Vec<&Scenario> = scenarios
            .iter()
            .filter(|s| self.room_without(&s.drained) < replicas)
            .collect();
        if short.is_empty() {
            return vec![];
        }
        // Only the drains that are spelled out pay for an explanation.
        let mut listed: Vec<String> = short
            .iter()
            .take(LISTED_DRAINS)
            .map(|s| {
                let room = self.room(ctx, &s.drained);
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
            .collect();
        if short.len() > LISTED_DRAINS {
            listed.push(format!(
                "and {} like these",
                count((short.len() - LISTED_DRAINS) as u64, "more drain")
            ));
        }
        let short = listed;
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

    /// Whether, and how many, replicas may run on `node`.
    fn fit(&self, node: &'a NodeFacts) -> Fit<'a> {
        if node.availability != Availability::Active || node.state != NodeState::Ready {
            return Fit::Unavailable;
        }
        if let Some(c) = self.constraints.iter().find(|c| !c.matches(node)) {
            return Fit::RuledOut(c.raw);
        }
        let wanted = match self.service.max_replicas_per_node {
            0 => self.replicas,
            max => max.min(self.replicas),
        };
        let replicas = wanted.min(fits_by_reservation(self.service, node));
        Fit::Fits {
            replicas,
            tight: replicas < wanted,
        }
    }

    /// The replicas that fit on the active, ready nodes outside `drained`
    /// (node indices), with what held it back: the explanation of a finding.
    fn room(&self, ctx: &CheckContext<'a>, drained: &[usize]) -> Room<'a> {
        let mut room = Room {
            replicas: 0,
            ruled_out: vec![],
            tight: vec![],
            nodes: 0,
        };
        for (i, node) in ctx.facts.cluster.nodes.iter().enumerate() {
            if drained.contains(&i) {
                continue;
            }
            match self.fit(node) {
                Fit::Unavailable => continue,
                Fit::RuledOut(raw) => match room.ruled_out.iter_mut().find(|(r, _)| *r == raw) {
                    Some((_, nodes)) => nodes.push(&node.hostname),
                    None => room.ruled_out.push((raw, vec![&node.hostname])),
                },
                Fit::Fits { replicas, tight } => {
                    if tight {
                        room.tight.push(&node.hostname);
                    }
                    room.replicas = room.replicas.saturating_add(replicas);
                }
            }
            room.nodes += 1;
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
            .map(|(raw, nodes)| format!("`{raw}` rules out {}", join_some(nodes)))
            .collect();
        if !room.tight.is_empty() {
            why.push(format!(
                "its reservations ({} per replica) fit fewer on {}",
                reservations(self.service),
                join_some(&room.tight)
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

/// At most this many node names in one list; a constraint can rule out
/// thousands.
const LISTED_NODES: usize = 10;

/// `a, b, c` or `a, b, … and 4,990 more`.
fn join_some<S: AsRef<str>>(items: &[S]) -> String {
    if items.len() <= LISTED_NODES {
        return join(items);
    }
    format!(
        "{} and {} more",
        join(&items[..LISTED_NODES]),
        items.len() - LISTED_NODES
    )
}

/// A single-replica service is down while its task moves off a drained node.
/// `tasks`: the nodes its tasks are on.
fn single_replica(
    service: &ServiceFacts,
    drained: &[&NodeFacts],
    tasks: &[&str],
) -> Option<Finding> {
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
    fn spells_out_a_few_drains_and_counts_the_rest() {
        let mut fx = Fixture::healthy();
        for i in 3..=30 {
            fx.add_worker(&format!("w{i}"));
        }
        // One replica per worker: every worker drain leaves one short.
        let api = fx.service("api");
        api.max_replicas_per_node = 1;
        api.mode = ServiceMode::Replicated { replicas: 30 };
        let findings = fx.run(&DrainFeasibility);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message.contains(
                "while w1 is drained, room for 29 (`node.role==worker` rules out m1, m2, m3, at most 1 per node); \
                 while w2 is drained"
            ),
            "{}",
            f.message
        );
        assert!(f.message.contains("while w5 is drained"), "{}", f.message);
        assert!(!f.message.contains("while w6 is drained"), "{}", f.message);
        assert!(
            f.message.contains("; and 25 more drains like these. "),
            "{}",
            f.message
        );
    }

    #[test]
    fn long_node_lists_are_cut() {
        let mut fx = Fixture::healthy();
        for i in 3..=30 {
            fx.add_worker(&format!("w{i}"));
        }
        fx.service("web").constraints = vec!["node.role==manager".into()];
        let findings = fx.run(&DrainFeasibility);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message.contains(
                "room for 0, so the service is down (`node.role==manager` rules out w1, w2, w3, w4, w5, w6, w7, \
                 w8, w9, w10 and 20 more)"
            ),
            "{}",
            f.message
        );
    }

    /// The fast path (per-node room computed once, the drained share
    /// subtracted) agrees with recounting every node for every drain.
    #[test]
    fn room_without_agrees_with_a_full_recount() {
        let mut fx = Fixture::healthy();
        for i in 3..=8 {
            fx.add_worker(&format!("w{i}"));
        }
        fx.node("w4").availability = Availability::Drain;
        fx.node("w5").state = NodeState::Down;
        fx.node("w6").memory_bytes = GIB as i64;
        fx.node("w7").labels.insert("zone".into(), "b".into());
        let variants: [(&[&str], u64, i64); 5] = [
            (&[], 0, 0),
            (&["node.role==worker"], 1, 0),
            (&["node.labels.zone!=b"], 2, (GIB / 2) as i64),
            (&["node.role==manager"], 0, (3 * GIB) as i64),
            (&[], 3, (2 * GIB) as i64),
        ];
        let ctx = fx.ctx();
        let scenarios = scenarios(&ctx);
        assert_eq!(
            scenarios.len(),
            1 + 7,
            "the managers together, then each active worker"
        );
        for (constraints, max, memory) in variants {
            for replicas in [1, 4, 9, 40] {
                let service = ServiceFacts {
                    constraints: constraints.iter().map(|c| c.to_string()).collect(),
                    max_replicas_per_node: max,
                    reserved_memory_bytes: memory,
                    ..fx.facts.cluster.services[0].clone()
                };
                let (parsed, unknown) = parse_constraints(&service);
                assert!(unknown.is_empty());
                let placement = Placement::new(&ctx, &service, replicas, parsed);
                for s in std::iter::once(&[][..]).chain(scenarios.iter().map(|s| &s.drained[..])) {
                    assert_eq!(
                        placement.room_without(s),
                        placement.room(&ctx, s).replicas,
                        "{constraints:?} max {max} memory {memory} replicas {replicas} drained {s:?}"
                    );
                }
            }
        }
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
