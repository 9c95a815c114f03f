//! Executing at scale: the whole plan against the simulated cluster with
//! zero delays, in a child process per size (`bench exec-child N P`).
//! Whatever the executor does between simulated operations is orchestration
//! overhead: CPU time per step is its cost.
//!
//! The run directory is put on tmpfs (/dev/shm) when there is one, so the
//! numbers are CPU, not the disk's fsync latency (measured apart).

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use swarm_upgrade::exec::events::Event;
use swarm_upgrade::exec::ops::Ops;
use swarm_upgrade::exec::rundir::RunDir;
use swarm_upgrade::exec::runner::{RunOptions, Runner};
use swarm_upgrade::exec::state::RunState;
use swarm_upgrade::plan::{self as plan_mod, PlanOptions};
use swarm_upgrade::playbook::Playbooks;
use swarm_upgrade_sim::SimCluster;

use super::{plan, sys};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Mean wall time of `f` over `n` calls.
fn mean(n: u32, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed() / n
}

pub fn child(nodes: usize, max_parallel: usize) {
    let sim = SimCluster::from_spec(&plan::spec(nodes, 2026));
    let pin = plan::pin();
    let g = sim.gathered(&pin);
    // Checks are planning's cost (measured apart); the executor needs the plan.
    let plan = plan_mod::build(
        &g.facts,
        &g.resolutions,
        vec![],
        &PlanOptions {
            pin: pin.clone(),
            max_parallel,
            canary: Default::default(),
            ..Default::default()
        },
    );
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");
    let run = RunDir {
        path: base.path().join("run"),
    };
    run.create().expect("the run directory");
    let digest = plan_mod::digest(&plan).expect("the plan serializes");
    let state = RunState::new(
        "bench".into(),
        plan.cluster_id.clone(),
        pin,
        digest,
        plan.steps.len(),
        vec![],
    );
    run.save_state(&state).expect("the state saves");

    // What one executor step pays, measured apart: rewriting the run state
    // (twice per step).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let save = mean(10, || run.save_state(&state).expect("the state saves"));
    // The same on a disk (the default temporary directory), fsyncs included.
    let disk = tempfile::tempdir().expect("a temporary directory");
    let on_disk = RunDir {
        path: disk.path().to_path_buf(),
    };
    let save_disk = mean(5, || on_disk.save_state(&state).expect("the state saves"));
    let state_bytes = std::fs::metadata(run.state_path())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "{}",
        json!({
            "stage": "setup",
            "steps": plan.steps.len(),
            "batches": plan.steps.last().map_or(0, |s| s.batch),
            "save_state_ms": ms(save),
            "save_state_disk_ms": ms(save_disk),
            "state_bytes": state_bytes,
            "tmpfs": shm.is_dir(),
        })
    );

    let playbooks = Playbooks::load(&[] as &[&Path]).expect("built-in playbooks");
    let opts = RunOptions::default();
    let done = AtomicUsize::new(0);
    let (cpu0, busy0, wall0) = (sys::cpu_time(), sim.busy(), Instant::now());
    let progress = |steps: usize, status: Option<String>| {
        let mut line = json!({
            "stage": if status.is_some() { "done" } else { "progress" },
            "steps": steps,
            "cpu_ms": ms(sys::cpu_time() - cpu0),
            "sim_ms": ms(sim.busy() - busy0),
            "wall_ms": ms(wall0.elapsed()),
        });
        if let Some(s) = status {
            line["status"] = json!(s);
        }
        println!("{line}");
    };
    let last = Mutex::new(Instant::now());
    let emit = |e: &Event| {
        if let Event::StepFinished { .. } = e {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = last.lock().expect("not poisoned");
            if last.elapsed() > Duration::from_secs(1) {
                *last = Instant::now();
                progress(n, None);
            }
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let runner = Runner::new(
        &sim, &plan, &g.facts, &playbooks, &opts, run, state, &emit, stop,
    )
    .expect("a runner");
    let status = rt.block_on(sim.drive(runner.execute()));
    let status = match status {
        Ok(s) => format!("{s:?}"),
        Err(e) => format!("error: {e:#}"),
    };
    progress(done.load(Ordering::Relaxed), Some(status));
    let trips: u64 = sim
        .traffic()
        .values()
        .map(|t| t.commands + t.api_requests)
        .sum();
    let upgraded = plan
        .nodes
        .iter()
        .filter(|n| n.order.is_some())
        .count()
        .max(1);
    println!(
        "{}",
        json!({"stage": "round-trips", "total": trips, "per_node": trips as f64 / upgraded as f64})
    );
}
