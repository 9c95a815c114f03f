//! `reboot` (`--reboot`): the host rebooted, not only its engine (kernel and
//! OS patches). It comes after `stop-engine` (whose quorum guard took the
//! manager down, I1) and, in an upgrade, after `install`; the guard is
//! asked again here, as a resumed run may start at this step. The host's
//! boot identity ([`crate::exec::boot`]) is read before; the playbook's
//! detached reboot script runs; then the step waits, within
//! `--reboot-timeout`, until SSH answers with a new boot identity. A host
//! that answers with the old one after the wait did not reboot: a failure,
//! like one that does not come back. The engine is expected to start at
//! boot; if it does not, the playbook's start script starts it.

use std::time::Duration;

use super::{Action, StepResult, script};
use crate::exec::boot::{self, BootIdentity};
use crate::exec::context::{Cx, StepCx, StepError};
use crate::exec::guard::{self, Expect};
use crate::exec::operation::{Description, Operation};
use crate::exec::ops::Ops;
use crate::exec::poll::{self, Attempt, Unmet};
use crate::exec::verify::{engine_logs, pgrep_cmd};
use crate::plan::Step;
use crate::playbook::Script;

pub(crate) struct Reboot;

const BOOTED: &str = "the host answers with a new boot identity";
const ENGINE_UP: &str = "dockerd runs";
const NOT_AT_BOOT: &str = "dockerd did not start at boot";
/// How long the init of a host that answers SSH may take to start dockerd
/// before the start script does (sshd often starts first).
const ENGINE_AT_BOOT: Duration = Duration::from_secs(20);
/// Between two reads while the host is away: each failed read is an SSH
/// connection attempt.
const AWAY_POLL: Duration = Duration::from_secs(1);

impl Action for Reboot {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = Description::default();
        let Some(n) = cx.node_of(step) else {
            return d;
        };
        d.extend(guard::describe(cx, n));
        let read = Operation::command(&boot::command());
        d.once(read.clone());
        d.extend(script(cx, step, Script::Reboot));
        d.until(BOOTED, read);
        d.until(ENGINE_UP, Operation::command(&pgrep_cmd()));
        if let Ok(cmd) = cx.script_cmd(n, Script::Start) {
            d.when(NOT_AT_BOOT, Operation::command(&cmd));
        }
        if let Ok(cmd) = cx.script_cmd(n, Script::Logs) {
            d.when(
                "the start script fails",
                Operation::command(&cmd.timeout(Duration::from_secs(30))),
            );
        }
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let n = s.node();
        guard::check(s.run, n, Expect::MayBeDown).await?;
        let before = read(s)
            .await
            .map_err(|e| StepError::not_delivered(&n.host, e))?
            .map_err(StepError::Failed)?;
        s.output(format!("before the reboot: {before}")).await;
        s.script(Script::Reboot).await?;

        let timeout = s.cx().opts.reboot_timeout;
        let booted = poll::until(timeout, async || match read(s).await {
            Err(e) => {
                tokio::time::sleep(AWAY_POLL).await;
                Attempt::NotYet(format!("it does not answer: {e:#}"))
            }
            Ok(Err(m)) => Attempt::Fail(StepError::Failed(m)),
            Ok(Ok(now)) if now.rebooted_since(&before) => Attempt::Done(now),
            Ok(Ok(_)) => Attempt::NotYet(format!(
                "it answers, but with the boot identity from before the reboot ({before}): \
                 it did not reboot (check the playbook's reboot script and the host's logs)"
            )),
        })
        .await;
        let (after, polled) = match booted {
            Ok(v) => v,
            Err(Unmet::Failed(e)) => return Err(e),
            Err(Unmet::TimedOut(why)) => {
                return Err(StepError::Failed(format!(
                    "host {} did not come back from its reboot within {} (--reboot-timeout): {why}",
                    n.host,
                    humantime::format_duration(timeout)
                )));
            }
        };
        s.output(format!("after the reboot: {after}")).await;

        let at_boot = poll::until(ENGINE_AT_BOOT, async || {
            match s.ops().run(s.id(), &pgrep_cmd()).await {
                Ok(out) if out.success() => Attempt::<(), ()>::Done(()),
                Ok(_) => Attempt::NotYet(NOT_AT_BOOT.to_string()),
                Err(e) => Attempt::NotYet(format!("{e:#}")),
            }
        })
        .await;
        if at_boot.is_err() {
            s.output(format!("{NOT_AT_BOOT}: running the start script"))
                .await;
            match s.script(Script::Start).await {
                Err(StepError::Failed(m)) => {
                    return Err(StepError::Failed(format!(
                        "{m}{}",
                        engine_logs(s.run, n).await
                    )));
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        Ok(Some(polled))
    }
}

/// The host's boot identity; the outer error: the host did not answer.
async fn read<O: Ops>(s: &StepCx<'_, '_, O>) -> anyhow::Result<Result<BootIdentity, String>> {
    let out = s.ops().run(s.id(), &boot::command()).await?;
    if !out.success() {
        return Ok(Err(format!(
            "reading the boot identity of {} exited with {}: {}",
            s.node().host,
            out.status,
            crate::exec::one_line(&out.stderr)
        )));
    }
    Ok(BootIdentity::parse(&out.stdout).map_err(|e| format!("host {}: {e:#}", s.node().host)))
}
