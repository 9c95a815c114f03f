//! `prepull` (`--prepull`), before the first drain: every image the plan
//! lists goes to its receiving node, so that the tasks a drain moves there
//! start instead of being rejected with "No such image" (check
//! image-availability, moby#36045).
//!
//! An image some node holds is copied from it, engine to engine, streamed
//! through the controller: no registry, no credentials, no temp file, and
//! exactly the image the drained tasks run (a pull by tag could fetch a newer
//! one). Only an image no node holds is pulled by the receiver's engine.
//! Either way the receiver's image ID is checked afterwards (a copy: equal to
//! the source's). Idempotent: an image already there with the right ID is
//! left alone, so a resumed run does not copy it again. Any failure stops
//! the run before anything is drained (a precondition, nothing to undo).

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::operation::{Call, Description, On, Operation};
use crate::exec::ops::Ops;
use crate::plan::{ImageTransfer, Step};

pub(crate) struct Prepull;

impl Action for Prepull {
    fn describe(&self, cx: &Cx<'_>, _step: &Step) -> Description {
        let mut d = Description::default();
        for t in &cx.plan.prepull {
            let inspect = |on: &str| {
                Operation::api(
                    On::Engine(on.to_string()),
                    Call::InspectImage(t.image.clone()),
                )
            };
            if let Some(from) = &t.from {
                d.once(inspect(from));
            }
            d.once(inspect(&t.node));
            let fetch = match &t.from {
                Some(from) => Call::CopyImage {
                    image: t.image.clone(),
                    from: from.clone(),
                },
                None => Call::PullImage(t.image.clone()),
            };
            d.when(
                &format!("{} lacks it (then inspected again)", t.node),
                Operation::api(On::Engine(t.node.clone()), fetch),
            );
        }
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        for t in &s.cx().plan.prepull {
            let done = transfer(s.ops(), t)
                .await
                .map_err(|e| StepError::Precondition(format!("{e:#}")))?;
            s.output(done).await;
        }
        Ok(None)
    }
}

/// Puts one image on its node; says what it did.
async fn transfer<O: Ops>(ops: &O, t: &ImageTransfer) -> anyhow::Result<String> {
    let fix =
        "run without --prepull and pull or push the image yourself (check image-availability)";
    let want = match (&t.from_id, &t.from) {
        (Some(from_id), Some(from)) => match ops.image_id(from_id, &t.image).await? {
            Some(id) => Some(id),
            None => anyhow::bail!(
                "{from} no longer holds image {} (planned as the source for {}): plan again, or {fix}",
                t.image,
                t.node
            ),
        },
        _ => None,
    };
    let held = ops.image_id(&t.node_id, &t.image).await?;
    let ok = |id: &Option<String>| match (&want, id) {
        (Some(w), Some(id)) => w == id,
        (None, Some(_)) => true,
        (_, None) => false,
    };
    if ok(&held) {
        return Ok(format!(
            "{}: holds {} already ({})",
            t.node,
            t.image,
            held.unwrap_or_default()
        ));
    }
    let how = match &t.from_id {
        Some(from_id) => {
            ops.copy_image(from_id, &t.node_id, &t.image)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "copying image {} from {} to {}: {e:#}; {fix}",
                        t.image,
                        t.from.as_deref().unwrap_or("?"),
                        t.node
                    )
                })?;
            format!("copied from {}", t.from.as_deref().unwrap_or("?"))
        }
        None => {
            ops.pull_image(&t.node_id, &t.image).await.map_err(|e| {
                anyhow::anyhow!(
                    "{} cannot pull image {} (no node holds it to copy from): {e:#}; if the registry \
                     needs credentials, `docker login` and `docker pull {}` on {} (or {fix})",
                    t.node,
                    t.image,
                    t.image,
                    t.node
                )
            })?;
            "pulled".to_string()
        }
    };
    let now = ops.image_id(&t.node_id, &t.image).await?;
    if !ok(&now) {
        anyhow::bail!(
            "{}: after the image was {how}, {} has image ID {} instead of {}; {fix}",
            t.node,
            t.image,
            now.as_deref().unwrap_or("(none)"),
            want.as_deref().unwrap_or("any"),
        );
    }
    Ok(format!(
        "{}: {} {how} ({})",
        t.node,
        t.image,
        now.unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::runner::RunOptions;
    use crate::plan::testutil::{lab_facts, lab_plan};
    use crate::playbook::Playbooks;

    /// The dry run names every image, its receiver and its source.
    #[test]
    fn the_dry_run_says_which_image_goes_where_and_how() {
        let mut plan = lab_plan();
        let node = |i: usize| (plan.nodes[i].id.clone(), plan.nodes[i].name.clone());
        let ((w1_id, w1), (w2_id, w2)) = (node(3), node(4));
        plan.prepull = vec![
            ImageTransfer {
                image: "app:dev".into(),
                node_id: w2_id,
                node: w2.clone(),
                from_id: Some(w1_id.clone()),
                from: Some(w1.clone()),
            },
            ImageTransfer {
                image: "nginx:1.25".into(),
                node_id: w1_id,
                node: w1.clone(),
                from_id: None,
                from: None,
            },
        ];
        let (facts, playbooks) = (
            lab_facts(),
            Playbooks::load(&[] as &[&std::path::Path]).unwrap(),
        );
        let opts = RunOptions::default();
        let cx = Cx::new(&plan, &facts, &playbooks, &opts, "DRY-RUN");
        let step = plan.steps[0].clone();
        let text = Prepull.describe(&cx, &step).render(None, "");
        assert_eq!(
            text,
            format!(
                "{w1}'s engine: GET /images/app:dev/json\n\
                 {w2}'s engine: GET /images/app:dev/json\n\
                 {w2}'s engine: POST /images/load, streamed from {w1}'s engine's GET /images/app:dev/get \
                 (through this controller)  (only if {w2} lacks it (then inspected again))\n\
                 {w1}'s engine: GET /images/nginx:1.25/json\n\
                 {w1}'s engine: POST /images/create?fromImage=nginx:1.25  (only if {w1} lacks it (then inspected again))\n"
            )
        );
    }
}
