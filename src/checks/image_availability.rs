//! `image-availability` (P6): a drain moves tasks to other nodes, which must
//! then have their image or pull it. An image built or loaded on one node
//! only, or a private image deployed without `--with-registry-auth`, exists
//! nowhere else: the moved tasks are rejected ("No such image"), the drain
//! gate waits for replicas that never run, and the run stops mid-upgrade
//! (seed 001; moby#36045, moby#33219). Gathering asks each missing image's
//! registry once, from a node that lacks it, without credentials
//! ([`registry_questions`], `Facts::registry`): an image it serves to
//! anyone is pulled when the tasks move (information). One it refuses
//! without credentials may still be pulled with the service's registry
//! auth, which the swarm does not show; one it does not serve at all, or
//! never asked, cannot be judged either: those warn rather than block. With `--prepull` the run fixes what this
//! check finds ([`prepull_transfers`]: the same receiving nodes) before the
//! first drain, and the findings become information.

use std::collections::{HashMap, HashSet};

use super::constraint::Constraint;
use super::{Check, CheckContext, Finding, Severity, join};
use crate::facts::model::{
    Availability, Facts, LocalImage, NodeFacts, NodeState, RegistryOutcome, ServiceFacts,
    ServiceMode,
};
use crate::plan::ImageTransfer;

pub struct ImageAvailability;

const ID: &str = "image-availability";

/// An image reference, as compared across nodes: the repository in its
/// familiar form (`nginx`, `registry.example/app`), the tag, the digest.
#[derive(Debug, PartialEq, Eq)]
struct ImageRef {
    repo: String,
    tag: String,
    digest: Option<String>,
}

/// `docker.io/library/nginx` and `nginx` are one repository.
fn familiar(repo: &str) -> &str {
    let repo = repo
        .strip_prefix("docker.io/")
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(repo);
    repo.strip_prefix("library/").unwrap_or(repo)
}

impl ImageRef {
    fn parse(reference: &str) -> ImageRef {
        let (name, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d.to_string())),
            None => (reference, None),
        };
        // A `:` after the last `/` starts the tag (before it: a registry port).
        let slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match name[slash..].rfind(':') {
            Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
            None => (name, "latest"),
        };
        ImageRef {
            repo: familiar(repo).to_string(),
            tag: tag.to_string(),
            digest,
        }
    }

    /// Whether a node holding `images` starts the task without a pull: the
    /// engine looks a pinned reference up by its digest, else by its tag.
    fn held_in(&self, images: &[LocalImage]) -> bool {
        images.iter().any(|i| {
            familiar(&i.repository) == self.repo
                && match &self.digest {
                    Some(d) => i.digest == *d,
                    None => i.tag == self.tag,
                }
        })
    }
}

impl Check for ImageAvailability {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "the nodes that receive a drained node's tasks have their images (by digest when pinned), or the tasks \
         are rejected with \"No such image\""
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Info, Severity::Warn]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut out = vec![];
        for s in shortfalls(ctx) {
            let (service, drained) = (s.service, s.drained);
            let image = ImageRef::parse(&service.image);
            let lacking = join(s.missing.iter().map(|n| n.hostname.as_str()));
            if ctx.prepull {
                out.push(Finding::info(
                    ID,
                    Some(&drained.hostname),
                    format!(
                        "service {} has tasks on {}, which the upgrade drains; {lacking} lack its image {}: \
                         --prepull puts it there before the first drain (copied from a node that has it, \
                         else pulled), and the run stops before any drain if it cannot",
                        service.name, drained.hostname, service.image,
                    ),
                ));
                continue;
            }
            let asked = ctx.facts.registry.get(&service.image);
            if let Some(a) = asked
                && let RegistryOutcome::Pullable { digest } = &a.outcome
            {
                out.push(Finding::info(
                    ID,
                    Some(&drained.hostname),
                    format!(
                        "service {} has tasks on {}, which the upgrade drains; {lacking} lack its image {}, \
                         and its registry serves it without credentials (asked from {}: {digest}): they \
                         pull it when the tasks move",
                        service.name, drained.hostname, service.image, a.asked_from,
                    ),
                ));
                continue;
            }
            let registry = match asked {
                Some(a) => match &a.outcome {
                    RegistryOutcome::Unauthorized { error } => format!(
                        "; its registry wants credentials (asked from {} without any: {error}), which the \
                         nodes get only from a service deployed or updated with --with-registry-auth (the \
                         swarm does not show whether it was)",
                        a.asked_from
                    ),
                    RegistryOutcome::Failed { error } => format!(
                        "; its registry did not serve it to {}: {error}",
                        a.asked_from
                    ),
                    RegistryOutcome::Pullable { .. } => unreachable!("handled above"),
                },
                None => String::new(),
            };
            let pinned = match &image.digest {
                Some(d) => format!(" at digest {d}"),
                None => {
                    " (its spec records no digest: the managers found it on no registry when it \
                         was deployed, as for an image built or loaded on a node)"
                        .to_string()
                }
            };
            let nobody = if s.missing.len() == s.known {
                "; no node that can receive them has it"
            } else {
                ""
            };
            out.push(Finding::warn(
                ID,
                Some(&drained.hostname),
                format!(
                    "service {} has tasks on {}, which the upgrade drains; of the nodes that can receive them, \
                     {lacking} lack its image {}{pinned}{nobody}{registry}: unless they can pull it, the moved tasks are \
                     rejected (\"No such image\") and the run stops at the drain; push the image to a \
                     registry every node reaches and run `docker service update --with-registry-auth \
                     --image {} {}`, or pull it on {lacking} before the upgrade, or run with `--prepull` \
                     (copies it there from a node that has it, else pulls it, before the first drain)",
                    service.name, drained.hostname, service.image, service.image, service.name,
                ),
            ));
        }
        out
    }
}

/// A service whose tasks a drain moves to nodes that lack its image.
struct Shortfall<'a> {
    service: &'a ServiceFacts,
    drained: &'a NodeFacts,
    /// The receiving nodes without the image.
    missing: Vec<&'a NodeFacts>,
    /// The receiving nodes whose images were read.
    known: usize,
}

/// For every node the run drains and every replicated service with a task
/// there: the nodes that can receive those tasks (active, ready, matching
/// the constraints) and lack the image. `--prepull` fixes exactly these.
fn shortfalls<'a>(ctx: &CheckContext<'a>) -> Vec<Shortfall<'a>> {
    let nodes = &ctx.facts.cluster.nodes;
    // Looked up, not scanned: at 2,000 nodes and 20,000 tasks, a scan of the
    // tasks per (drained node, service) took minutes.
    let placed: HashSet<(&str, &str)> = ctx
        .facts
        .cluster
        .tasks
        .iter()
        .map(|t| (t.service_id.as_str(), t.node_id.as_str()))
        .collect();
    // Per service, once: its receiving nodes whose images were read (hosts
    // not read are not judged), and whether each lacks the image.
    let mut judged: HashMap<&str, Vec<(&'a NodeFacts, bool)>> = HashMap::new();
    let mut out = vec![];
    for drained in ctx.nodes_to_drain() {
        for service in &ctx.facts.cluster.services {
            // Global services do not move; jobs are not restarted elsewhere.
            if !matches!(service.mode, ServiceMode::Replicated { .. })
                || !placed.contains(&(service.id.as_str(), drained.id.as_str()))
            {
                continue;
            }
            let receivers = judged.entry(service.id.as_str()).or_insert_with(|| {
                let image = ImageRef::parse(&service.image);
                receivers(nodes, service)
                    .filter_map(|n| {
                        let images = ctx.facts.hosts.get(&n.id)?.images.as_ref()?;
                        Some((n, !image.held_in(images)))
                    })
                    .collect()
            });
            let others = receivers.iter().filter(|(n, _)| n.id != drained.id);
            let known = others.clone().count();
            let missing: Vec<&NodeFacts> = others
                .filter(|(_, lacks)| *lacks)
                .map(|(n, _)| *n)
                .collect();
            if !missing.is_empty() {
                out.push(Shortfall {
                    service,
                    drained,
                    missing,
                    known,
                });
            }
        }
    }
    out
}

/// The nodes that can receive a service's tasks: active, ready, matching
/// its constraints (one swarm-upgrade cannot read is assumed to match:
/// drain-feasibility says so).
fn receivers<'a>(
    nodes: &'a [NodeFacts],
    service: &ServiceFacts,
) -> impl Iterator<Item = &'a NodeFacts> {
    let constraints: Vec<Constraint> = service
        .constraints
        .iter()
        .filter_map(|c| Constraint::parse(c))
        .collect();
    nodes.iter().filter(move |n| {
        n.availability == Availability::Active
            && n.state == NodeState::Ready
            && constraints.iter().all(|c| c.matches(n))
    })
}

/// What gathering asks the registries (`Facts::registry`): for every image
/// of a replicated service with running tasks that some node able to
/// receive them lacks, the first such node (by hostname), once per image.
/// Asked whatever the run's scope: any drain may move the tasks there, and
/// one question per image stays cheap at any cluster size.
pub(crate) fn registry_questions(facts: &Facts) -> Vec<(String, &NodeFacts)> {
    let mut out: Vec<(String, &NodeFacts)> = vec![];
    let with_tasks: HashSet<&str> = facts
        .cluster
        .tasks
        .iter()
        .map(|t| t.service_id.as_str())
        .collect();
    let mut asked: HashSet<&str> = HashSet::new();
    for service in &facts.cluster.services {
        if !matches!(service.mode, ServiceMode::Replicated { .. })
            || asked.contains(service.image.as_str())
            || !with_tasks.contains(service.id.as_str())
        {
            continue;
        }
        let image = ImageRef::parse(&service.image);
        let lacking = receivers(&facts.cluster.nodes, service)
            .filter(|n| {
                facts
                    .hosts
                    .get(&n.id)
                    .and_then(|h| h.images.as_ref())
                    .is_some_and(|i| !image.held_in(i))
            })
            .min_by(|a, b| a.hostname.cmp(&b.hostname));
        if let Some(n) = lacking {
            asked.insert(service.image.as_str());
            out.push((service.image.clone(), n));
        }
    }
    out
}

/// What `--prepull` does before the first drain: every (image, node) of the
/// check's shortfalls, once. The source is a node that holds the image, the
/// drained node first (what its tasks run now, bit for bit: a pull by tag
/// could fetch a newer image); a pull only when no node holds it, or when
/// the spec pins a digest.
pub(crate) fn prepull_transfers(ctx: &CheckContext<'_>) -> Vec<ImageTransfer> {
    let mut out: Vec<ImageTransfer> = vec![];
    for s in shortfalls(ctx) {
        let image = ImageRef::parse(&s.service.image);
        let holds = |n: &NodeFacts| {
            ctx.facts
                .hosts
                .get(&n.id)
                .and_then(|h| h.images.as_ref())
                .is_some_and(|i| image.held_in(i))
        };
        // A pinned image is looked up by its repository digest, which a
        // loaded copy does not carry: the receiver must pull it.
        let source = std::iter::once(s.drained)
            .chain(ctx.facts.cluster.nodes.iter())
            .find(|n| image.digest.is_none() && n.state == NodeState::Ready && holds(n));
        for to in s.missing {
            if out
                .iter()
                .any(|t| t.image == s.service.image && t.node_id == to.id)
            {
                continue;
            }
            out.push(ImageTransfer {
                image: s.service.image.clone(),
                node_id: to.id.clone(),
                node: to.hostname.clone(),
                from_id: source.map(|n| n.id.clone()),
                from: source.map(|n| n.hostname.clone()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    fn image(repo: &str, tag: &str, digest: &str) -> LocalImage {
        LocalImage {
            repository: repo.into(),
            tag: tag.into(),
            digest: digest.into(),
        }
    }

    /// Every node holds every fixture image by its digest.
    fn everywhere() -> Fixture {
        let mut fx = Fixture::healthy();
        let images: Vec<LocalImage> = ["web", "api", "agent"]
            .iter()
            .map(|s| image(&format!("registry.example/{s}"), "1", "sha256:ab"))
            .collect();
        for h in fx.facts.hosts.values_mut() {
            h.images = Some(images.clone());
        }
        fx
    }

    #[test]
    fn references_compare_in_their_familiar_form() {
        assert_eq!(
            ImageRef::parse("docker.io/library/nginx:1.25@sha256:12"),
            ImageRef {
                repo: "nginx".into(),
                tag: "1.25".into(),
                digest: Some("sha256:12".into())
            }
        );
        let local = ImageRef::parse("localhost:5000/app");
        assert_eq!(
            (local.repo.as_str(), local.tag.as_str()),
            ("localhost:5000/app", "latest")
        );
        assert!(local.held_in(&[image("localhost:5000/app", "latest", "<none>")]));
        // A pinned reference needs the digest: the tag alone makes the engine pull.
        let pinned = ImageRef::parse("nginx:1.25@sha256:12");
        assert!(!pinned.held_in(&[image("nginx", "1.25", "<none>")]));
        assert!(pinned.held_in(&[image("docker.io/library/nginx", "<none>", "sha256:12")]));
    }

    #[test]
    fn passes_when_every_receiving_node_has_the_images() {
        assert!(everywhere().run(&ImageAvailability).is_empty());
        // Facts without images (not read) are not judged.
        assert!(Fixture::healthy().run(&ImageAvailability).is_empty());
    }

    #[test]
    fn warns_naming_the_service_the_drained_node_and_the_nodes_without_the_image() {
        let mut fx = everywhere();
        // api runs on w1 and w2 (workers only); a locally built build of it on w1 only.
        fx.service("api").image = "api-local:dev".into();
        let w1 = fx.host("w1").images.as_mut().unwrap();
        w1.push(image("api-local", "dev", "<none>"));
        let findings = fx.run(&ImageAvailability);
        let f = the(&findings, Severity::Warn);
        assert_eq!(f.node.as_deref(), Some("w1"));
        assert!(
            f.message.starts_with(
                "service api has tasks on w1, which the upgrade drains; of the nodes that can receive them, \
                 w2 lack its image api-local:dev (its spec records no digest"
            ),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("no node that can receive them has it"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("or pull it on w2 before the upgrade"),
            "{}",
            f.message
        );
    }

    #[test]
    fn with_prepull_the_missing_images_are_information_and_transfers_from_a_holder() {
        let mut fx = everywhere();
        fx.service("api").image = "api-local:dev".into();
        fx.host("w1")
            .images
            .as_mut()
            .unwrap()
            .push(image("api-local", "dev", "<none>"));
        let (w1, w2) = (fx.node("w1").id.clone(), fx.node("w2").id.clone());
        let mut ctx = fx.ctx();
        ctx.prepull = true;
        let findings = ImageAvailability.run(&ctx);
        let f = the(&findings, Severity::Info);
        assert!(
            f.message
                .contains("w2 lack its image api-local:dev: --prepull puts it there"),
            "{}",
            f.message
        );
        // Drained w1's api tasks go to w2 (copied from w1); drained w2's go
        // to w1, which has the image already: one transfer.
        let transfers = prepull_transfers(&ctx);
        assert_eq!(
            transfers,
            vec![ImageTransfer {
                image: "api-local:dev".into(),
                node_id: w2,
                node: "w2".into(),
                from_id: Some(w1),
                from: Some("w1".into()),
            }]
        );
        // An image no node holds is pulled.
        fx.host("w1").images.as_mut().unwrap().pop();
        let ctx = CheckContext {
            prepull: true,
            ..fx.ctx()
        };
        assert!(prepull_transfers(&ctx).iter().all(|t| t.from.is_none()));
        assert_eq!(prepull_transfers(&ctx).len(), 2);
        // A pinned image is pulled even where a node holds it.
        fx.service("api").image = "api-local:dev@sha256:cd".into();
        fx.host("w1")
            .images
            .as_mut()
            .unwrap()
            .push(image("api-local", "dev", "sha256:cd"));
        let ctx = CheckContext {
            prepull: true,
            ..fx.ctx()
        };
        let transfers = prepull_transfers(&ctx);
        assert_eq!(transfers.len(), 1, "{transfers:?}");
        assert_eq!(transfers[0].from, None);
    }

    #[test]
    fn a_pinned_image_must_be_there_by_digest_and_global_services_do_not_move() {
        let mut fx = everywhere();
        fx.host("m3").images = Some(vec![image("registry.example/web", "1", "sha256:old")]);
        fx.host("w2").images = Some(vec![]);
        let findings = fx.run(&ImageAvailability);
        // web runs on m2, w1, w2 and may go anywhere: m3 lacks the digest, and
        // w2 lacks it too when another node is drained. agent (global) and api
        // (workers only: w2 is the only other) are named only where they move.
        assert!(findings.iter().all(|f| f.severity == Severity::Warn));
        let web_from_w1 = findings
            .iter()
            .find(|f| f.node.as_deref() == Some("w1") && f.message.starts_with("service web"))
            .expect("web from w1");
        assert!(
            web_from_w1
                .message
                .contains("can receive them, m3, w2 lack its image"),
            "{}",
            web_from_w1.message
        );
        assert!(
            web_from_w1.message.contains("at digest sha256:ab"),
            "{}",
            web_from_w1.message
        );
        assert!(
            !findings
                .iter()
                .any(|f| f.message.starts_with("service agent"))
        );
        assert!(
            !findings.iter().any(|f| f.node.as_deref() == Some("m1")),
            "{findings:#?}"
        );
    }

    /// api-local:dev on w1 only: the api tasks of a drained w1 go to w2.
    fn api_on_w1_only() -> Fixture {
        let mut fx = everywhere();
        fx.service("api").image = "api-local:dev".into();
        fx.host("w1")
            .images
            .as_mut()
            .unwrap()
            .push(image("api-local", "dev", "<none>"));
        fx
    }

    fn answered(fx: &mut Fixture, outcome: RegistryOutcome) {
        fx.facts.registry.insert(
            "api-local:dev".into(),
            crate::facts::model::RegistryAnswer {
                asked_from: "w2".into(),
                outcome,
            },
        );
    }

    #[test]
    fn the_registry_is_asked_once_per_missing_image_from_the_first_node_lacking_it() {
        let fx = api_on_w1_only();
        let questions: Vec<(String, &str)> = registry_questions(&fx.facts)
            .into_iter()
            .map(|(i, n)| (i, n.hostname.as_str()))
            .collect();
        // web and agent are everywhere; api (workers only) lacks on w2.
        assert_eq!(questions, vec![("api-local:dev".to_string(), "w2")]);
        // Nothing to ask when every node holds every image, or when the
        // images were not read.
        assert!(registry_questions(&everywhere().facts).is_empty());
        assert!(registry_questions(&Fixture::healthy().facts).is_empty());
        // Lacking on several nodes (web may go anywhere): still one
        // question, from the first by hostname; a global service's image is
        // never asked for.
        let mut fx = everywhere();
        for h in ["m2", "w2", "m3"] {
            fx.host(h).images = Some(vec![]);
        }
        let questions: Vec<(String, &str)> = registry_questions(&fx.facts)
            .into_iter()
            .map(|(i, n)| (i, n.hostname.as_str()))
            .collect();
        assert_eq!(
            questions,
            vec![
                ("registry.example/web:1@sha256:ab".to_string(), "m2"),
                ("registry.example/api:1@sha256:ab".to_string(), "w2")
            ],
            "{questions:?}"
        );
    }

    #[test]
    fn an_image_its_registry_serves_to_anyone_is_information() {
        let mut fx = api_on_w1_only();
        answered(
            &mut fx,
            RegistryOutcome::Pullable {
                digest: "sha256:feed".into(),
            },
        );
        let findings = fx.run(&ImageAvailability);
        assert!(
            findings.iter().all(|f| f.severity == Severity::Info),
            "{findings:#?}"
        );
        let f = the(&findings, Severity::Info);
        assert!(
            f.message.contains(
                "w2 lack its image api-local:dev, and its registry serves it without credentials \
                 (asked from w2: sha256:feed): they pull it when the tasks move"
            ),
            "{}",
            f.message
        );
    }

    #[test]
    fn an_image_its_registry_refuses_or_does_not_serve_warns_with_the_answer() {
        let mut fx = api_on_w1_only();
        answered(
            &mut fx,
            RegistryOutcome::Unauthorized {
                error: "pull access denied".into(),
            },
        );
        let findings = fx.run(&ImageAvailability);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message.contains(
                "its registry wants credentials (asked from w2 without any: pull access denied)"
            ),
            "{}",
            f.message
        );
        assert!(f.message.contains("--with-registry-auth"), "{}", f.message);
        answered(
            &mut fx,
            RegistryOutcome::Failed {
                error: "dial tcp: lookup registry-1.docker.io: no such host".into(),
            },
        );
        let findings = fx.run(&ImageAvailability);
        let f = the(&findings, Severity::Warn);
        assert!(
            f.message.contains(
                "; its registry did not serve it to w2: dial tcp: lookup registry-1.docker.io: no such host: \
                 unless they can pull it"
            ),
            "{}",
            f.message
        );
    }
}
