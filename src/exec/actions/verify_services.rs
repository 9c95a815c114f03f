//! `verify-services`: once the node runs tasks again, what it serves is
//! verified on the node itself (see [`crate::exec::services`]): published
//! ports, service DNS, containerd and runc, and the engine log since the
//! restart. A failure rolls the node back like any failed step.

use std::net::IpAddr;

use super::{Action, StepResult};
use crate::exec::context::{Cx, StepCx, StepError, VIA_STALE};
use crate::exec::operation::{Call, Description, Operation};
use crate::exec::ops::Ops;
use crate::exec::services;
use crate::exec::wait;
use crate::facts::model::ServiceFacts;
use crate::plan::{PlanNode, Step};
use crate::playbook::Script;
use crate::transport::Cmd;

pub(crate) struct VerifyServices;

/// A node's swarm address, as the facts read it.
fn addr_of(cx: &Cx<'_>, id: &str) -> Option<IpAddr> {
    let addr = &cx.facts.cluster.nodes.iter().find(|f| f.id == id)?.addr;
    addr.parse().ok()
}

/// Another node's swarm address, where an ingress port that does not
/// answer on this node is tried.
fn peer(cx: &Cx<'_>, n: &PlanNode) -> Option<IpAddr> {
    let other = cx.managers().iter().find(|m| m.id != n.id)?;
    addr_of(cx, &other.id)
}

/// The service probe with `stdin`, then the playbook's `logs` script, as
/// one command on the node.
fn probe_cmd(cx: &Cx<'_>, n: &PlanNode, stdin: Vec<u8>) -> anyhow::Result<Cmd> {
    let logs = cx.script_cmd_after(n, Script::Logs, &services::before_logs())?;
    Ok(services::command(logs, stdin))
}

impl Action for VerifyServices {
    fn describe(&self, cx: &Cx<'_>, step: &Step) -> Description {
        let mut d = Description::default();
        let Some(n) = cx.node_of(step) else {
            return d;
        };
        let on = cx.asked(Some(n));
        d.when(VIA_STALE, Operation::api(on.clone(), Call::Info));
        d.once(Operation::api(on.clone(), Call::NodeTasks));
        d.when(
            "a task runs on the node",
            Operation::api(on, Call::Services { all: false }),
        );
        if let Ok(cmd) = probe_cmd(cx, n, vec![]) {
            d.once(Operation::command(&cmd));
        }
        d
    }

    async fn run<O: Ops>(&self, s: &StepCx<'_, '_, O>) -> StepResult {
        let running = running(s).await?;
        probe(s, &running).await.map(|()| None)
    }
}

/// When what this step needs cannot be read (its engine stopped by someone
/// else since, no manager answering, SSH lost), nothing is wrong with the
/// upgrade, and undoing it would take the node down once more: the run
/// stops safely, and resume verifies again.
fn halt(n: &PlanNode, e: String) -> StepError {
    StepError::Halt(format!("cannot verify the services of {}: {e}", n.name))
}

/// The services with a task active on the node: what [`probe`] checks.
pub(crate) async fn running<O: Ops>(s: &StepCx<'_, '_, O>) -> Result<Vec<ServiceFacts>, StepError> {
    let n = s.node();
    s.ask(async |via| {
        let tasks = s.ops().node_tasks(via, s.id()).await?;
        let mut ids: Vec<String> = tasks
            .iter()
            .filter(|t| wait::task_active(&t.state))
            .map(|t| t.service_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        s.ops().services(via, Some(&ids)).await
    })
    .await
    .map_err(|e| halt(n, e.message().to_string()))?
    .map_err(|e| halt(n, format!("{e:#}")))
}

/// What `running` serves, verified on the node itself (one command): its
/// published ports, service DNS, containerd and runc, the engine log since
/// the restart. `Halt` when the node's engine does not answer the probe.
pub(crate) async fn probe<O: Ops>(
    s: &StepCx<'_, '_, O>,
    running: &[ServiceFacts],
) -> Result<(), StepError> {
    let n = s.node();
    let (ports, names) = services::to_check(running);
    let stdin = services::stdin(
        &ports,
        &names,
        peer(s.cx(), n),
        addr_of(s.cx(), &n.id),
        services::GRACE,
    );
    let cmd = probe_cmd(s.cx(), n, stdin).map_err(|e| StepError::Failed(format!("{e:#}")))?;
    let out = s
        .ops()
        .run(s.id(), &cmd)
        .await
        .map_err(|e| StepError::not_delivered(&n.host, e))?;
    if !out.success() {
        return Err(StepError::Failed(format!(
            "the service probe failed (exit {}): {}",
            out.status,
            out.stderr.trim()
        )));
    }
    let (report, log) = services::split_log(&out.stdout);
    let report = services::parse(report);
    if report.engine_answers == Some(false) {
        return Err(halt(n, "its engine does not answer".to_string()));
    }
    let expected = services::expected_runtime(&n.packages, s.cx().plan.reverts_run.is_some());
    let verdict = services::judge(&report, &ports, &expected);
    let log_problems = services::log_problems(log);
    match verdict {
        Ok(summary) if log_problems.is_empty() => {
            let summary = if running.is_empty() {
                format!("{summary}; no task runs on the node (nothing published to check)")
            } else {
                summary
            };
            s.output(format!("verified: {summary}; engine log settled"))
                .await;
            Ok(())
        }
        Ok(_) => Err(StepError::Failed(log_problems.join("; "))),
        Err(problem) => {
            let mut all = vec![problem];
            all.extend(log_problems);
            Err(StepError::Failed(all.join("; ")))
        }
    }
}
