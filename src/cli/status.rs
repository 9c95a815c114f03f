//! `swarm-upgrade status`: the current or last run, from local state only.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Output, StatusArgs};
use crate::error::usage;
use crate::exec::rundir::{ClusterDir, StepTimes, default_base};
use crate::exec::state::{RunState, StepStatus};
use crate::exit_code;
use crate::plan::{self, Plan};

pub fn run(args: &StatusArgs) -> anyhow::Result<u8> {
    let base = args.state_dir.clone().unwrap_or_else(default_base);
    let cluster_id = match &args.cluster {
        Some(c) => c.clone(),
        None => only_cluster(&base)?,
    };
    let cluster = ClusterDir::open(&base, &cluster_id)?;
    let run = cluster.current()?.ok_or_else(|| {
        usage(format!(
            "no run of swarm {cluster_id} is recorded in {}",
            base.display()
        ))
    })?;
    let state = run.load_state()?;
    let plan = plan::file::load(&run.plan_path())?;
    match args.output {
        Output::Json => {
            let times = run.step_times()?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json(&state, &plan, &times))?
            )
        }
        Output::Table => print!("{}", table(&state, &plan, &run.path)),
    }
    Ok(exit_code::SUCCESS)
}

fn only_cluster(base: &std::path::Path) -> anyhow::Result<String> {
    let entries: Vec<String> = std::fs::read_dir(base)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.path().join("current").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    match entries.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(usage(format!("no runs are recorded in {}", base.display()))),
        many => Err(usage(format!(
            "runs of several swarms are recorded in {}: pass --cluster with one of {}",
            base.display(),
            many.join(", ")
        ))),
    }
}

pub fn json(
    state: &RunState,
    plan: &Plan,
    times: &BTreeMap<usize, StepTimes>,
) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = plan
        .steps
        .iter()
        .map(|s| {
            let st = state.step(s.index);
            let t = times.get(&s.index).cloned().unwrap_or_default();
            serde_json::json!({
                "index": s.index,
                "node": s.node,
                "action": s.action.name(),
                "status": st.status,
                "started_at": t.started_at,
                "finished_at": t.finished_at,
                "error": st.error,
            })
        })
        .collect();
    let in_progress = state
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Running)
        .map(|s| s.index);
    serde_json::json!({
        "run_id": state.run_id,
        "cluster_id": state.cluster_id,
        "target": state.pin.to_string(),
        "status": state.status,
        "owner": state.owner,
        "started_at": state.started_at,
        "updated_at": state.updated_at,
        "done": state.count(StepStatus::Done),
        "total": state.steps.len(),
        "in_progress": in_progress,
        "failure": state.failure,
        "rolled_back": state.rolled_back,
        "ignored_checks": state.ignored_checks,
        "steps": steps,
    })
}

fn table(state: &RunState, plan: &Plan, dir: &Path) -> String {
    let mut out = format!(
        "run {} of swarm {}: {:?}, target {}\n  started {} by {}, updated {}\n  {} of {} steps done; files in {}\n",
        state.run_id,
        state.cluster_id,
        state.status,
        state.pin,
        state.started_at,
        state.owner,
        state.updated_at,
        state.count(StepStatus::Done),
        state.steps.len(),
        dir.display()
    );
    for s in &plan.steps {
        let st = state.step(s.index);
        if st.status == StepStatus::Pending {
            continue;
        }
        out.push_str(&format!(
            "  [{:>3}] {:<10} {:<22} {:?}{}\n",
            s.index,
            s.node.as_deref().unwrap_or("swarm"),
            s.action.name(),
            st.status,
            st.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    if let Some(f) = &state.failure {
        out.push_str(&format!("failure: {f}\n"));
    }
    out
}
