//! Asking the registries, while gathering, whether the nodes that lack a
//! service's image could pull it when a drain moves its tasks there
//! (`image-availability`): once per image, through the engine of a node
//! that lacks it ([`crate::checks::registry_questions`]), without
//! credentials. Reads only: nothing is pulled.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::gather::Log;
use crate::engine::Engine;
use crate::facts::model::{Facts, RegistryAnswer, RegistryOutcome};
use crate::transport::ssh::SshHost;

/// A registry that has not answered by then will not help a moved task
/// either (the engine gives up on a pull much later, but the run would be
/// stuck at the drain meanwhile).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The answers, per image; `hosts` are the connections gathering opened,
/// per swarm node ID. A host asked keeps its master open (it was parked in
/// a cluster larger than `--forks`): one per image asked, at most.
pub(super) async fn ask(
    facts: &Facts,
    hosts: &BTreeMap<String, SshHost>,
    runtime_dir: &Path,
    forks: usize,
    log: Log<'_>,
) -> BTreeMap<String, RegistryAnswer> {
    let forks = Arc::new(Semaphore::new(forks.max(1)));
    let mut set = JoinSet::new();
    for (image, node) in crate::checks::registry_questions(facts) {
        let Some(host) = hosts.get(&node.id).cloned() else {
            continue;
        };
        let forks = forks.clone();
        let asked_from = node.hostname.clone();
        let dir = super::live::socket_dir(runtime_dir, &node.id);
        set.spawn(async move {
            let outcome = async {
                let _permit = forks.acquire_owned().await?;
                let engine = Engine::connect(&host, &dir?).await?;
                let answer = tokio::time::timeout(ANSWER_TIMEOUT, engine.registry_answer(&image))
                    .await
                    .unwrap_or_else(|_| RegistryOutcome::Failed {
                        error: format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()),
                    });
                Ok::<_, anyhow::Error>(answer)
            }
            .await
            .unwrap_or_else(|e| RegistryOutcome::Failed {
                error: format!("its engine could not be asked: {e:#}"),
            });
            (
                image,
                RegistryAnswer {
                    asked_from,
                    outcome,
                },
            )
        });
    }
    let mut answers = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        if let Ok((image, answer)) = joined {
            log(&format!(
                "asked the registry of {image} from {}: {}",
                answer.asked_from,
                match &answer.outcome {
                    RegistryOutcome::Pullable { .. } => "served",
                    RegistryOutcome::Unauthorized { .. } => "credentials wanted",
                    RegistryOutcome::Failed { .. } => "not served",
                }
            ));
            answers.insert(image, answer);
        }
    }
    answers
}
