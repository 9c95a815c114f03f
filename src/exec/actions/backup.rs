//! `backup`: secure the installed packages (or binaries) on the host, and on
//! a manager the raft state while its engine is down (the playbook's
//! `backup` script), so that a rollback needs no network.

use super::{Action, StepResult, script};
use crate::exec::context::{Cx, StepCx};
use crate::exec::operation::Description;
use crate::exec::ops::Ops;
use crate::plan::Step;
use crate::playbook::Script;

pub(crate) struct Backup;

impl Action for Backup {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        script(cx, step, Script::Backup)
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let out = s.script(Script::Backup).await?;
        s.output(format!("backed up: {}", crate::exec::one_line(&out.stdout)))
            .await;
        Ok(None)
    }
}
