//! `--metrics-file`: the run in Prometheus text format (exposition format
//! 0.0.4), for node_exporter's textfile collector or any scraper that reads
//! a file. Rewritten atomically (temporary file, rename) after every event,
//! so a scrape sees the previous file or the next one, never a part.
//!
//! The file is 0644, unlike the run's state (0600): node_exporter reads it
//! as its own user, and it holds only node names, states and durations.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::progress::{NodeState, Progress};
use crate::exec::state::RunStatus;
use crate::facts::model::Role;

const RUN_STATES: [RunStatus; 6] = [
    RunStatus::Running,
    RunStatus::Done,
    RunStatus::Interrupted,
    RunStatus::Failed,
    RunStatus::RolledBack,
    RunStatus::RollbackFailed,
];

fn run_state_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running",
        RunStatus::Done => "done",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Failed => "failed",
        RunStatus::RolledBack => "rolled-back",
        RunStatus::RollbackFailed => "rollback-failed",
    }
}

/// A label value, escaped as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The metrics text of `p`.
pub fn render(p: &Progress) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    };
    let run_labels = format!(
        r#"run_id="{}",cluster_id="{}",kind="{}",target="{}""#,
        label(&p.run_id),
        label(&p.cluster_id),
        p.kind.name(),
        label(&p.target)
    );
    family(
        "swarm_upgrade_run_info",
        "The run this file describes (always 1).",
        vec![(run_labels, "1".into())],
    );
    family(
        "swarm_upgrade_run_state",
        "The run's state: 1 for the current one.",
        RUN_STATES
            .iter()
            .map(|s| {
                (
                    format!(r#"state="{}""#, run_state_name(*s)),
                    u8::from(p.status == Some(*s)).to_string(),
                )
            })
            .collect(),
    );
    family(
        "swarm_upgrade_run_waiting",
        "1 while the running run waits on purpose: for `swarm-upgrade continue`, or for a maintenance window.",
        ["continue", "window"]
            .iter()
            .map(|r| {
                (
                    format!(r#"for="{r}""#),
                    u8::from(p.waiting.as_ref().map(|w| w.name()) == Some(*r)).to_string(),
                )
            })
            .collect(),
    );
    let ts = |t: Option<f64>| t.map(|t| format!("{t:.3}"));
    for (name, help, value) in [
        (
            "swarm_upgrade_run_start_timestamp_seconds",
            "When this process started (or resumed) the run, in seconds since the epoch.",
            ts(p.started_at),
        ),
        (
            "swarm_upgrade_run_end_timestamp_seconds",
            "When the run ended, in seconds since the epoch (absent while it runs).",
            ts(p.finished_at),
        ),
        (
            "swarm_upgrade_last_event_timestamp_seconds",
            "When the run last reported progress, in seconds since the epoch.",
            ts(p.last_event_at),
        ),
    ] {
        if let Some(v) = value {
            family(name, help, vec![(String::new(), v)]);
        }
    }
    family(
        "swarm_upgrade_steps",
        "Steps of the run's plan.",
        vec![(String::new(), p.steps_total.to_string())],
    );
    family(
        "swarm_upgrade_steps_done",
        "Steps of the run's plan done.",
        vec![(String::new(), p.steps_done.to_string())],
    );
    let role = |r: Role| match r {
        Role::Manager => "manager",
        Role::Worker => "worker",
    };
    let mut states = vec![];
    let mut durations = vec![];
    for n in &p.nodes {
        let who = format!(r#"node="{}",role="{}""#, label(&n.name), role(n.role));
        for s in NodeState::ALL {
            states.push((
                format!(r#"{who},state="{}""#, s.name()),
                u8::from(n.state == s).to_string(),
            ));
        }
        if let Some(secs) = n.seconds {
            durations.push((who, format!("{secs:.3}")));
        }
    }
    family(
        "swarm_upgrade_node_state",
        "Each node's state in the run: 1 for the current one.",
        states,
    );
    family(
        "swarm_upgrade_node_duration_seconds",
        "How long each node took, from its first step to its verification.",
        durations,
    );
    family(
        "swarm_upgrade_step_duration_seconds",
        "How long each finished step took (by its index in the plan).",
        p.step_times
            .iter()
            .map(|(i, t)| {
                (
                    format!(
                        r#"step="{i}",node="{}",action="{}""#,
                        label(t.node.as_deref().unwrap_or("")),
                        t.action.name()
                    ),
                    format!("{:.3}", t.seconds),
                )
            })
            .collect(),
    );
    out
}

/// The metrics file.
pub struct MetricsFile {
    pub path: PathBuf,
}

impl MetricsFile {
    pub fn new(path: &Path) -> MetricsFile {
        MetricsFile {
            path: path.to_path_buf(),
        }
    }

    pub fn write(&self, p: &Progress) -> anyhow::Result<()> {
        crate::files::write_atomic_mode(&self.path, render(p).as_bytes(), 0o644)
    }
}
