//! `install`: the pinned package set (or binaries) installed and held, with
//! the package scripts kept from restarting the engine (the playbook's
//! `install` script).

use super::{Action, StepResult, script};
use crate::exec::context::{Cx, StepCx};
use crate::exec::operation::Description;
use crate::exec::ops::Ops;
use crate::plan::Step;
use crate::playbook::Script;

pub(crate) struct Install;

impl Action for Install {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        script(cx, step, Script::Install)
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let out = s.script(Script::Install).await?;
        s.output(format!(
            "installed: {}",
            crate::exec::package_lines(&out.stdout)
        ))
        .await;
        Ok(None)
    }
}
