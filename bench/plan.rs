//! Planning at scale: generated facts → every check → the plan, in a child
//! process per size (`bench plan-child N`), reporting as it goes (one JSON
//! line per stage) so that a check too slow for the time budget still leaves
//! the other numbers behind.

use std::time::Instant;

use serde_json::json;
use swarm_upgrade::checks::{self, CheckContext};
use swarm_upgrade::plan::{self, PlanOptions};
use swarm_upgrade::version::EngineVersion;
use swarm_upgrade_sim::{SimCluster, SimSpec};

use super::sys;

/// The 5,000-node cluster, scaled down linearly for smaller sizes:
/// 5 managers, 0.4 services, 10 tasks per node, one overlay per 50 nodes.
pub fn spec(nodes: usize, seed: u64) -> SimSpec {
    SimSpec::new(
        nodes,
        5.min(nodes),
        nodes * 2 / 5,
        nodes * 10,
        (nodes / 50).max(1),
        seed,
    )
}

pub fn pin() -> EngineVersion {
    "26.1.5".parse().expect("a valid pin")
}

fn emit(v: serde_json::Value) {
    println!("{v}");
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

pub fn child(nodes: usize) {
    let t = Instant::now();
    let sim = SimCluster::from_spec(&spec(nodes, 2026));
    let g = sim.gathered(&pin());
    drop(sim);
    emit(json!({
        "stage": "facts",
        "ms": ms(t),
        "nodes": g.facts.cluster.nodes.len(),
        "services": g.facts.cluster.services.len(),
        "tasks": g.facts.cluster.tasks.len(),
        "networks": g.facts.cluster.networks.len(),
    }));
    // From here on, the peak is that of planning (with the facts in memory,
    // as `plan --from-facts` holds them), not of generating them.
    let reset = sys::reset_peak();
    emit(json!({"stage": "baseline", "rss_mib": sys::rss_mib(), "peak_reset": reset}));

    let pin = pin();
    let ctx = CheckContext::new(&g.facts, &pin, &g.resolutions);
    let mut findings = vec![];
    let started = Instant::now();
    for check in checks::all() {
        let t = Instant::now();
        let f = check.run(&ctx);
        emit(json!({"stage": "check", "id": check.id(), "ms": ms(t), "findings": f.len()}));
        findings.extend(f);
    }
    let t = Instant::now();
    let plan = plan::build(
        &g.facts,
        &g.resolutions,
        findings,
        &PlanOptions {
            pin: pin.clone(),
            max_parallel: 1,
            canary: Default::default(),
            ..Default::default()
        },
    );
    emit(json!({
        "stage": "plan",
        "ms": ms(t),
        "steps": plan.steps.len(),
        "total_ms": ms(started),
        "peak_mib": sys::peak_rss_mib(),
    }));
    emit(json!({"stage": "done", "total_ms": ms(started), "peak_mib": sys::peak_rss_mib()}));
}
