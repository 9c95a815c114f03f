//! `start-engine`: the playbook's start script for the host's init system
//! (systemd: `reset-failed`, then the socket and the service).

use super::{Action, StepResult, script};
use crate::exec::context::{Cx, StepCx};
use crate::exec::operation::Description;
use crate::exec::ops::Ops;
use crate::plan::Step;
use crate::playbook::Script;

pub(crate) struct StartEngine;

impl Action for StartEngine {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        script(cx, step, Script::Start)
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        s.script(Script::Start).await?;
        Ok(None)
    }
}
