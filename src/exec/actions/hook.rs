//! `hook`: the operator's hooks at one point of a node's steps, in the
//! order declared, each blocking until it exits or its timeout.
//!
//! A hook's command is the operator's shell string, passed whole as the one
//! argument of `sh -c` (the transport quotes it like any argument), after
//! `env` with the node's facts as `SU_*` variables (values quoted the same
//! way, never interpolated into the string). On the host it runs under
//! coreutils' `timeout`, so a hook that hangs is a hook that failed (exit
//! 124) rather than a lost connection; on the controller the child is killed.
//!
//! A failure (non-zero exit) at `pre-drain` is a precondition failure:
//! nothing was done to the node, and the run stops resumable. At any later
//! point it fails the step, and the node is rolled back like after a failed
//! install or verify. A host hook not delivered halts the run (I3), as every
//! other remote command does; so does one whose SSH connection is lost while
//! it runs: an operator's command is never run twice (`Cmd::at_most_once`).

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::operation::{Description, Operation};
use crate::exec::ops::Ops;
use crate::hooks::{Hook, HookPoint, HookRun};
use crate::plan::{PlanNode, Step};
use crate::transport::Cmd;

pub(crate) struct RunHooks;

/// Grace given to the transport beyond the hook's own timeout on the host.
const GRACE_SECS: u64 = 30;

/// The hooks a step runs, with their commands.
pub(crate) fn commands<'a>(cx: &Cx<'a>, step: &Step) -> Vec<(&'a Hook, Cmd)> {
    let (Some(at), Some(n)) = (step.hook, cx.node_of(step)) else {
        return vec![];
    };
    cx.plan
        .hooks
        .iter()
        .filter(|h| h.applies(at, &n.name, n.role))
        .map(|h| (h, command(h, at, n, &cx.run_id)))
        .collect()
}

/// The variables a hook sees: who, where, from which version to which.
pub fn env(at: HookPoint, n: &PlanNode, run_id: &str) -> Vec<String> {
    vec![
        format!("SU_HOOK={}", at.name()),
        format!("SU_NODE={}", n.name),
        format!("SU_NODE_ID={}", n.id),
        format!("SU_ROLE={}", role_name(n.role)),
        format!("SU_ADDRESS={}", n.host),
        format!("SU_FROM_VERSION={}", n.current),
        format!("SU_TO_VERSION={}", n.target),
        format!("SU_RUN_ID={run_id}"),
    ]
}

fn command(h: &Hook, at: HookPoint, n: &PlanNode, run_id: &str) -> Cmd {
    let mut argv = vec!["env".to_string()];
    argv.extend(env(at, n, run_id));
    match h.run {
        HookRun::Host => {
            let secs = h.timeout_secs.to_string();
            argv.extend(["timeout", "-k", "5", &secs].map(String::from));
            argv.extend(["sh".to_string(), "-c".to_string(), h.command.clone()]);
            // An operator's command may not be safe to run twice.
            Cmd::new(argv)
                .timeout(h.timeout() + std::time::Duration::from_secs(GRACE_SECS))
                .at_most_once()
        }
        HookRun::Controller => {
            argv.extend(["sh".to_string(), "-c".to_string(), h.command.clone()]);
            Cmd::new(argv).timeout(h.timeout()).at_most_once()
        }
    }
}

impl Action for RunHooks {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = Description::default();
        for (h, cmd) in commands(cx, step) {
            d.once(match h.run {
                HookRun::Host => Operation::command(&cmd),
                HookRun::Controller => Operation::local(&cmd),
            });
        }
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let n = s.node();
        let at = s.step.hook.expect("a hook step names its point");
        for (h, cmd) in commands(s.cx(), s.step) {
            let out = match h.run {
                HookRun::Host => s
                    .ops()
                    .run(&n.id, &cmd)
                    .await
                    .map_err(|e| StepError::not_delivered(&n.host, e))?,
                HookRun::Controller => s.ops().run_local(&cmd).await.map_err(|e| {
                    let m = format!("{} hook `{}` did not start: {e:#}", at.name(), h.command);
                    if at.before_changes() {
                        StepError::Precondition(m)
                    } else {
                        StepError::Failed(m)
                    }
                })?,
            };
            let text = format!("{}{}", out.stdout, out.stderr);
            let place = match h.run {
                HookRun::Host => format!("on {}", n.host),
                HookRun::Controller => "on the controller".to_string(),
            };
            s.output(format!(
                "{} hook `{}` {place} exited with {}{}",
                at.name(),
                h.command,
                out.status,
                if text.trim().is_empty() {
                    String::new()
                } else {
                    format!(":\n{}", crate::exec::tail(&text, 20))
                }
            ))
            .await;
            if !out.success() {
                let why = if out.status == crate::transport::local::TIMED_OUT {
                    format!("timed out after {}s", h.timeout_secs)
                } else {
                    format!("exited with {}", out.status)
                };
                let m = format!(
                    "{} hook `{}` {place} {why}: {}",
                    at.name(),
                    h.command,
                    crate::exec::tail(&text, 6)
                );
                return Err(if at.before_changes() {
                    StepError::Precondition(m)
                } else {
                    StepError::Failed(m)
                });
            }
        }
        Ok(None)
    }
}

fn role_name(r: crate::facts::model::Role) -> &'static str {
    match r {
        crate::facts::model::Role::Manager => "manager",
        crate::facts::model::Role::Worker => "worker",
    }
}
