//! `swarm-upgrade status`: the current or last run from local state and,
//! with an inventory, what the swarm itself records (the run lease, the
//! nodes' run labels) and what to run next: from any machine.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Output, StatusArgs, cluster_options, runtime};
use crate::cluster::Cluster;
use crate::cluster::record::SwarmRecord;
use crate::error::usage;
use crate::exec::rundir::{ClusterDir, RunDir, StepTimes, default_base};
use crate::exec::state::{RunState, StepStatus};
use crate::exit_code;
use crate::plan::Plan;

pub fn run(args: &StatusArgs) -> anyhow::Result<u8> {
    let base = args.state_dir.clone().unwrap_or_else(default_base);
    let with_swarm = args.swarm.inventory.is_some() || args.swarm.ansible_inventory.is_some();
    let record = if with_swarm {
        let cluster = Cluster::open(cluster_options(&args.swarm)?)?;
        Some(runtime()?.block_on(cluster.record())?)
    } else {
        None
    };
    let cluster_id = match (&args.cluster, &record) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(r)) => Some(r.cluster_id.clone()),
        (None, None) => Some(only_cluster(&base)?),
    };
    let local = match &cluster_id {
        Some(id) => local_run(&base, id)?,
        None => None,
    };
    if local.is_none() && record.is_none() {
        return Err(usage(format!(
            "no run of swarm {} is recorded in {}; pass --inventory FILE to read what the swarm records",
            cluster_id.unwrap_or_default(),
            base.display()
        )));
    }
    match args.output {
        Output::Json => {
            let mut doc = match &local {
                Some((run, plan, state)) => json(state, plan, &run.step_times()?),
                None => serde_json::json!({}),
            };
            doc["format_version"] = crate::report::FORMAT_VERSION.into();
            if let Some(r) = &record {
                doc["swarm"] = swarm_json(r);
            }
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Table => {
            match &local {
                Some((run, plan, state)) => print!("{}", table(state, plan, &run.path)),
                None => println!(
                    "no run of swarm {} is recorded on this machine ({})",
                    cluster_id.unwrap_or_default(),
                    base.display()
                ),
            }
            if let Some(r) = &record {
                print!("{}", swarm_table(r));
            }
        }
    }
    Ok(exit_code::SUCCESS)
}

/// The latest run recorded locally for `cluster_id`, checked against its
/// plan; `None` when this machine has none.
fn local_run(base: &Path, cluster_id: &str) -> anyhow::Result<Option<(RunDir, Plan, RunState)>> {
    let safe: String = cluster_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if !base.join(&safe).join("current").exists() {
        return Ok(None);
    }
    let cluster = ClusterDir::open(base, cluster_id)?;
    let Some(run) = cluster.current()? else {
        return Ok(None);
    };
    let (plan, state) = run.load(cluster_id)?;
    Ok(Some((run, plan, state)))
}

pub fn swarm_json(r: &SwarmRecord) -> serde_json::Value {
    serde_json::json!({
        "cluster_id": r.cluster_id,
        "lease": r.lease.as_ref().map(|l| serde_json::json!({
            "run_id": l.run_id,
            "owner": l.owner,
            "started_at": l.started_at,
            "expires_at": l.expires_at,
            "expired": crate::exec::lease::expired(&l.expires_at),
            "control": l.control.label(),
        })),
        "runs": r.runs(),
        "nodes": r.nodes(),
        "next": r.next(),
    })
}

fn swarm_table(r: &SwarmRecord) -> String {
    let mut out = format!("the swarm {} records:\n", r.cluster_id);
    match &r.lease {
        Some(l) => out.push_str(&format!(
            "  lease: run {} of {}, started {}, {} {}\n",
            l.run_id,
            l.owner,
            l.started_at,
            if crate::exec::lease::expired(&l.expires_at) {
                "expired"
            } else {
                "expires"
            },
            l.expires_at
        )),
        None => out.push_str("  lease: none (no run in progress)\n"),
    }
    if let Some(c) = r.lease.as_ref().and_then(|l| l.control.label()) {
        out.push_str(&format!(
            "  requested with `swarm-upgrade {c}`: the run obeys at its next safe point\n"
        ));
    }
    for n in r.nodes() {
        let mut notes = vec![];
        if let Some(run) = &n.held_by_run {
            notes.push(format!(
                "drained by run {run} (was {})",
                n.original_availability.as_deref().unwrap_or("?")
            ));
        }
        if let Some(v) = &n.done {
            notes.push(format!("done at {v}"));
        }
        out.push_str(&format!(
            "  {:<12} {:<8} {:<7} {:<16} {}\n",
            n.hostname,
            n.role,
            n.availability,
            n.engine_version,
            notes.join("; ")
        ));
    }
    out.push_str(&format!("next: {}\n", r.next()));
    out
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
            s.label(),
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
