//! `start-engine`: the playbook's start script for the host's init system
//! (systemd: `reset-failed`, then the socket and the service).

use std::time::Duration;

use super::{Action, StepResult, script};
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::operation::{Description, Operation};
use crate::exec::ops::Ops;
use crate::exec::verify::engine_logs;
use crate::plan::Step;
use crate::playbook::Script;

pub(crate) struct StartEngine;

impl Action for StartEngine {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = script(cx, step, Script::Start);
        if let Some(n) = cx.node_of(step)
            && let Ok(cmd) = cx.script_cmd(n, Script::Logs)
        {
            d.when(
                "the start script fails",
                Operation::command(&cmd.timeout(Duration::from_secs(30))),
            );
        }
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        match s.script(Script::Start).await {
            // An init system's "the job failed" says nothing of why: the
            // engine's own last lines do (a removed daemon.json option, a
            // binary that exits at once).
            Err(StepError::Failed(m)) => Err(StepError::Failed(format!(
                "{m}{}",
                engine_logs(s.run, s.node()).await
            ))),
            other => other.map(|_| None),
        }
    }
}
