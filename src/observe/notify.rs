//! The JSON document `--notify` posts for a milestone. Its `text` is what
//! chat webhooks (Slack, Mattermost, Rocket.Chat, Teams' Slack-compatible
//! connectors) display; the other fields are for programs. It carries no
//! secret: names, versions, states, and the same error text the journal
//! keeps (which never holds the unlock key or a credential). Pure.

use serde::Serialize;

use super::progress::{Kind, Milestone, Progress};
use crate::exec::state::RunStatus;
use crate::facts::model::Role;

/// Longest error text carried (a script's last lines can be long; chat
/// messages should not be).
const MAX_REASON: usize = 300;

#[derive(Debug, Serialize)]
pub struct Notification {
    pub text: String,
    /// `run-started`, `run-finished`, `run-halted`, `run-rolled-back`,
    /// `run-failed`, `run-paused`, `run-continued`, `run-waiting-for-window`,
    /// `node-started`, `node-upgraded` (`node-reverted` in a rollback run),
    /// `node-failed`, `node-rolled-back`, `node-rollback-failed`.
    pub event: &'static str,
    pub source: &'static str,
    pub kind: &'static str,
    pub run_id: String,
    pub cluster_id: String,
    pub target: String,
    pub ts: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The node's engine version before the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The notification of milestone `m` of the run `p`, at `ts` (RFC 3339).
pub fn notification(p: &Progress, m: &Milestone, ts: &str) -> Notification {
    let short = |id: &str| id.chars().take(12).collect::<String>();
    let swarm = short(&p.cluster_id);
    let what = match p.kind {
        Kind::Upgrade => format!("upgrade of swarm {swarm} to {}", p.target),
        Kind::Rollback => format!("rollback of swarm {swarm} to {}", p.target),
    };
    let run = format!("(run {})", p.run_id);
    let mut n = Notification {
        text: String::new(),
        event: "",
        source: "swarm-upgrade",
        kind: p.kind.name(),
        run_id: p.run_id.clone(),
        cluster_id: p.cluster_id.clone(),
        target: p.target.clone(),
        ts: ts.to_string(),
        node: None,
        role: None,
        from: None,
        status: None,
        elapsed_ms: None,
        steps: None,
        done: None,
        reason: None,
    };
    let node_text = |i: usize| {
        let node = &p.nodes[i];
        let role = match node.role {
            Role::Manager => "manager",
            Role::Worker => "worker",
        };
        format!("{} ({role})", node.name)
    };
    let (event, text) = match m {
        Milestone::RunStarted { steps, done } => {
            n.steps = Some(*steps);
            n.done = Some(*done);
            let how = if *done > 0 {
                format!("resumed, {done} of {steps} steps already done")
            } else {
                format!("started, {steps} steps")
            };
            ("run-started", format!("{what} {how} {run}"))
        }
        Milestone::RunEnded {
            status,
            elapsed_ms,
            reason,
        } => {
            n.status = Some(*status);
            n.elapsed_ms = Some(*elapsed_ms);
            n.reason = reason.as_deref().map(clip);
            let after =
                humantime::format_duration(std::time::Duration::from_secs(elapsed_ms / 1000));
            let why = n
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            match status {
                RunStatus::Done => ("run-finished", format!("{what} finished in {after} {run}")),
                RunStatus::RolledBack => (
                    "run-rolled-back",
                    format!(
                        "{what} stopped after {after}, a node was rolled back{why}; once fixed, `swarm-upgrade resume` continues {run}"
                    ),
                ),
                RunStatus::RollbackFailed => (
                    "run-failed",
                    format!(
                        "{what} stopped after {after}: a ROLLBACK FAILED, manual recovery needed{why} {run}"
                    ),
                ),
                RunStatus::Interrupted | RunStatus::Failed | RunStatus::Running => (
                    "run-halted",
                    format!(
                        "{what} halted after {after}{why}; `swarm-upgrade resume` continues {run}"
                    ),
                ),
            }
        }
        Milestone::RunPaused => (
            "run-paused",
            format!(
                "{what} paused at a safe point, every engine running; `swarm-upgrade continue` goes on, `swarm-upgrade abort` stops it {run}"
            ),
        ),
        Milestone::RunContinued => ("run-continued", format!("{what} continued {run}")),
        Milestone::WaitingForWindow { opens_at } => (
            "run-waiting-for-window",
            format!(
                "{what} waits for its maintenance window: the next node starts at {opens_at} {run}"
            ),
        ),
        Milestone::NodeStarted { node } => {
            let v = &p.nodes[*node];
            n.node = Some(v.name.clone());
            let verb = match p.kind {
                Kind::Upgrade => "upgrading",
                Kind::Rollback => "reverting",
            };
            (
                "node-started",
                format!(
                    "{verb} {} from {} to {} {run}",
                    node_text(*node),
                    v.from,
                    p.target
                ),
            )
        }
        Milestone::NodeDone { node } => {
            let v = &p.nodes[*node];
            n.node = Some(v.name.clone());
            n.elapsed_ms = v.seconds.map(|s| (s * 1000.0) as u64);
            let took = n
                .elapsed_ms
                .map(|ms| {
                    format!(
                        " in {}",
                        humantime::format_duration(std::time::Duration::from_secs(ms / 1000))
                    )
                })
                .unwrap_or_default();
            match p.kind {
                Kind::Upgrade => (
                    "node-upgraded",
                    format!("{} upgraded to {}{took} {run}", node_text(*node), p.target),
                ),
                Kind::Rollback => (
                    "node-reverted",
                    format!("{} reverted to {}{took} {run}", node_text(*node), p.target),
                ),
            }
        }
        Milestone::NodeFailed { node, error } => {
            n.node = Some(p.nodes[*node].name.clone());
            n.reason = Some(clip(error));
            (
                "node-failed",
                format!(
                    "{} FAILED: {} {run}",
                    node_text(*node),
                    n.reason.as_deref().unwrap_or_default()
                ),
            )
        }
        Milestone::NodeRolledBack { node, ok, detail } => {
            let v = &p.nodes[*node];
            n.node = Some(v.name.clone());
            n.reason = Some(clip(detail));
            if *ok {
                (
                    "node-rolled-back",
                    format!(
                        "{} rolled back to {}: {} {run}",
                        node_text(*node),
                        v.from,
                        n.reason.as_deref().unwrap_or_default()
                    ),
                )
            } else {
                (
                    "node-rollback-failed",
                    format!(
                        "ROLLBACK OF {} FAILED, manual recovery needed: {} {run}",
                        node_text(*node),
                        n.reason.as_deref().unwrap_or_default()
                    ),
                )
            }
        }
    };
    if let Some(name) = &n.node
        && let Some(v) = p.nodes.iter().find(|v| &v.name == name)
    {
        n.role = Some(v.role);
        n.from = Some(v.from.clone());
    }
    n.event = event;
    n.text = format!("swarm-upgrade: {text}");
    n
}

/// One line, at most [`MAX_REASON`] characters.
fn clip(s: &str) -> String {
    let line = crate::exec::one_line(s);
    if line.chars().count() <= MAX_REASON {
        return line;
    }
    let mut cut: String = line.chars().take(MAX_REASON - 1).collect();
    cut.push('…');
    cut
}
