//! One module per action. Each action runs, and describes the operations
//! it performs from the same data ([`Action::describe`]): the dry run prints
//! the descriptions, and a test compares them with what each action really
//! did to a simulated cluster.
//!
//! A new action: a variant of [`crate::plan::Action`], a module here
//! implementing [`Action`], one arm in [`describe`] and [`run`], and the
//! planner's step lists (`plan/build.rs`, `plan/rollback.rs`).

pub(crate) mod backup;
pub(crate) mod drain;
mod drain_wait;
pub(crate) mod hook;
pub(crate) mod install;
pub(crate) mod pause;
pub(crate) mod prepull;
pub(crate) mod reboot;
pub(crate) mod restore;
pub(crate) mod restore_availability;
pub(crate) mod soak;
pub(crate) mod stage;
pub(crate) mod start_engine;
pub(crate) mod stop_engine;
pub(crate) mod verify;
pub(crate) mod verify_services;
pub(crate) mod wait_converged;
pub(crate) mod wait_drained;

use super::context::{Cx, StepCx, StepError};
use super::operation::Description;
use super::ops::Ops;
use super::poll::Polled;
use crate::plan::{self, Step};

/// What running a step gives: for a wait, how it polled.
pub(crate) type StepResult = Result<Option<Polled>, StepError>;

/// A kind of step.
pub(crate) trait Action {
    /// Every operation running `step` performs on the cluster, in order.
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description;
    /// Runs `step`. Every action is idempotent: a resumed run runs the
    /// interrupted one again.
    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult;
}

pub(crate) fn describe(cx: &Cx<'_>, step: &Step) -> Description {
    use plan::Action as A;
    match step.action {
        A::Drain => drain::Drain.describe(cx, step),
        A::WaitDrained => wait_drained::WaitDrained.describe(cx, step),
        A::StopEngine => stop_engine::StopEngine.describe(cx, step),
        A::Backup => backup::Backup.describe(cx, step),
        A::Install => install::Install.describe(cx, step),
        A::StartEngine => start_engine::StartEngine.describe(cx, step),
        A::Verify => verify::Verify.describe(cx, step),
        A::RestoreAvailability => restore_availability::RestoreAvailability.describe(cx, step),
        A::WaitConverged => wait_converged::WaitConverged.describe(cx, step),
        A::Restore => restore::Restore.describe(cx, step),
        A::VerifyServices => verify_services::VerifyServices.describe(cx, step),
        A::Soak => soak::Soak.describe(cx, step),
        A::Pause => pause::Pause.describe(cx, step),
        A::Prepull => prepull::Prepull.describe(cx, step),
        A::Reboot => reboot::Reboot.describe(cx, step),
        A::Hook => hook::RunHooks.describe(cx, step),
        A::Stage => stage::Stage.describe(cx, step),
    }
}

pub(crate) async fn run<O: Ops>(s: &StepCx<'_, '_, O>) -> StepResult {
    use plan::Action as A;
    match s.step.action {
        A::Drain => drain::Drain.run(s).await,
        A::WaitDrained => wait_drained::WaitDrained.run(s).await,
        A::StopEngine => stop_engine::StopEngine.run(s).await,
        A::Backup => backup::Backup.run(s).await,
        A::Install => install::Install.run(s).await,
        A::StartEngine => start_engine::StartEngine.run(s).await,
        A::Verify => verify::Verify.run(s).await,
        A::RestoreAvailability => restore_availability::RestoreAvailability.run(s).await,
        A::WaitConverged => wait_converged::WaitConverged.run(s).await,
        A::Restore => restore::Restore.run(s).await,
        A::VerifyServices => verify_services::VerifyServices.run(s).await,
        A::Soak => soak::Soak.run(s).await,
        A::Pause => pause::Pause.run(s).await,
        A::Prepull => prepull::Prepull.run(s).await,
        A::Reboot => reboot::Reboot.run(s).await,
        A::Hook => hook::RunHooks.run(s).await,
        A::Stage => stage::Stage.run(s).await,
    }
}

/// The operation of running one playbook script on the step's node.
pub(crate) fn script(cx: &Cx<'_>, step: &Step, which: crate::playbook::Script) -> Description {
    let mut d = Description::default();
    if let Some(n) = cx.node_of(step)
        && let Ok(cmd) = cx.script_cmd(n, which)
    {
        d.once(super::operation::Operation::command(&cmd));
    }
    d
}
