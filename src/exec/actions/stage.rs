//! `stage`: before a node is drained, the playbook's `stage` script
//! downloads its target packages into the host's package cache and secures
//! the installed ones in the run's backup directory, its engine untouched;
//! the drained window then holds only stop, install from the cache, start
//! and verify. Its step is in a batch of its own before the drain batch, so
//! a download that fails stops the run with the node still serving:
//! nothing to undo, the run resumable (exit 6).

use super::{Action, StepResult, script};
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::operation::Description;
use crate::exec::ops::Ops;
use crate::plan::Step;
use crate::playbook::Script;

pub(crate) struct Stage;

impl Action for Stage {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        if has_stage(cx, step) {
            script(cx, step, Script::Stage)
        } else {
            Description::default()
        }
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        // A plan made with the built-in playbooks, run with an override
        // that has no `stage`: the install downloads, as before staging.
        if !has_stage(s.cx(), s.step) {
            s.output("the playbook has no stage script: nothing staged")
                .await;
            return Ok(None);
        }
        let name = &s.node().name;
        // A script that ran and failed changed nothing the swarm sees: a
        // precondition of the drain, not a failure to roll back. A command
        // not delivered (or cut by its timeout) stays a halt (I3); both
        // stop the run resumable with nothing undone.
        let out = s.script(Script::Stage).await.map_err(|e| match e {
            StepError::Failed(m) => StepError::Precondition(format!(
                "the packages could not be staged on {name}: {m}; nothing was drained"
            )),
            e => e,
        })?;
        s.output(crate::exec::one_line(&out.stdout)).await;
        Ok(None)
    }
}

fn has_stage(cx: &Cx<'_>, step: &Step) -> bool {
    cx.node_of(step).is_some_and(|n| {
        cx.playbooks
            .get(
                n.method
                    .unwrap_or(crate::version::resolve::Method::DebianApt),
            )
            .has_stage()
    })
}
