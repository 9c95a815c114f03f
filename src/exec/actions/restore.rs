//! `restore` (rollback plans): reinstall the packages or binaries that the
//! reverted run backed up on the host (the playbook's `restore` script).

use super::{Action, StepResult, script};
use crate::exec::context::{Cx, StepCx};
use crate::exec::operation::Description;
use crate::exec::ops::Ops;
use crate::plan::Step;
use crate::playbook::Script;

pub(crate) struct Restore;

impl Action for Restore {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        script(cx, step, Script::Restore)
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let out = s.script(Script::Restore).await?;
        s.output(format!(
            "restored: {}",
            crate::exec::package_lines(&out.stdout)
        ))
        .await;
        Ok(None)
    }
}
