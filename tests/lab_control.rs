//! Operator control on real engines (issue 14): `restart`, node selection
//! and disruption budgets, on ONE lab (`rs`, 3 managers + 2 workers) brought up by the
//! first test that needs it and reused by the next ones in name order;
//! `zz_remove_the_control_lab` removes it.
//!
//! - `a_restart_keeps_quorum_and_the_probe_while_every_engine_restarts`:
//!   every engine's start time moves forward, quorum is never lost, the
//!   published probe loses no request, availability and versions end as they
//!   started.
//! - `b_a_selected_restart_touches_only_the_selected_nodes`: `plan --restart
//!   --nodes` lists the other nodes as out of scope; `restart --selector
//!   role=worker --exclude W` restarts the other worker only.
//! - `c_a_disruption_budget_holds_through_a_max_parallel_2_restart`: a
//!   service labelled `swarm-upgrade.min-available=2` (4 replicas, 2 per
//!   node at most) never has fewer than 2 running tasks, sampled every 0.5 s
//!   during `restart --max-parallel 2`.
//!
//! About 4.5 minutes in all (lab up about 1 minute of it), measured on the
//! 2-core machine.
//!
//! `#[ignore]`d like every lab test: run under the lab lock, as root
//! (`testkit/run-all-tests`). A lab that cannot start fails the test.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::{QuorumSampler, availability, versions};
use testkit::Lab;

const LAB: &str = "rs";
const SUBNET: &str = "172.31.31.0/24";
/// The host-mode port of the published probe on every node.
const PUBLISHED: u16 = 8090;

fn lab() -> Lab {
    let lab = match Lab::open(LAB) {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("lab {LAB} is not up ({why:#}); bringing it up");
            // Leftovers of a lab that is half there would make `up` refuse.
            if testkit::paths::lab_dir(LAB).exists() {
                Lab::down(LAB)
                    .unwrap_or_else(|e| panic!("removing what is left of lab {LAB}: {e:#}"));
            }
            common::up(LAB, SUBNET)
        }
    };
    lab.wait_healthy(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("lab {LAB} is not healthy before the test: {e:#}"));
    lab
}

fn swarm_upgrade(lab: &Lab, state_dir: &Path, args: &[&str]) -> Output {
    common::run_logged(
        common::command(&lab.inventory_path(), state_dir, args),
        args,
    )
}

/// When each node's dockerd started, in clock ticks since the host booted
/// (`/proc/PID/stat` field 22: exact, unlike a start time in seconds
/// derived from the elapsed time): a restarted engine is a new process with
/// a later start.
fn engine_starts(lab: &Lab) -> BTreeMap<String, u64> {
    lab.nodes()
        .iter()
        .map(|n| {
            let out = lab
                .exec_sh(
                    &n.name,
                    "pid=$(pgrep -xo dockerd) && cut -d' ' -f22 /proc/$pid/stat",
                )
                .unwrap_or_else(|e| panic!("{}: reading dockerd's start: {e:#}", n.name));
            let start: u64 = out
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{}: dockerd start {out:?}: {e}", n.name));
            (n.name.clone(), start)
        })
        .collect()
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_restart_keeps_quorum_and_the_probe_while_every_engine_restarts() {
    let lab = lab();
    lab.deploy_published_probe(PUBLISHED).unwrap();
    let before = lab.wait_healthy(Duration::from_secs(120)).unwrap();
    let starts = engine_starts(&lab);
    let state = tempfile::tempdir().unwrap();
    let since = SystemTime::now();
    let sampler = QuorumSampler::start(LAB);

    let out = swarm_upgrade(&lab, state.path(), &["restart", "--yes"]);
    let samples = sampler.finish();
    assert_eq!(
        out.status.code(),
        Some(0),
        "restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("restart complete"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    common::assert_quorum_kept(&samples);
    let after = engine_starts(&lab);
    for (node, was) in &starts {
        assert!(
            after[node] > *was,
            "{node}: dockerd started at {was}, still the same process (now {})",
            after[node]
        );
    }
    let end = lab.wait_healthy(Duration::from_secs(120)).unwrap();
    assert_eq!(versions(&end), versions(&before), "no version changed");
    assert_eq!(availability(&end), availability(&before));
    let report = lab.probe_report(Some(since)).unwrap();
    assert!(report.sent > 50, "{report:?}");
    assert_eq!(report.failed, 0, "the probe lost requests: {report:?}");
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn b_a_selected_restart_touches_only_the_selected_nodes() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    let workers: Vec<String> = lab.workers().iter().map(|n| n.name.clone()).collect();
    let manager = lab.managers()[0].name.clone();

    // The plan lists what is out of scope, and why.
    let out = swarm_upgrade(
        &lab,
        state.path(),
        &["plan", "--restart", "--nodes", &manager, "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "plan --restart --nodes");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["operation"], "restart", "{plan}");
    for n in plan["nodes"].as_array().unwrap() {
        if n["name"] == manager.as_str() {
            assert!(n["skip"].is_null(), "{n}");
        } else {
            assert_eq!(n["skip"], "out of scope: not named by --nodes", "{n}");
        }
    }
    // A typo is refused, naming the nodes there are.
    let out = swarm_upgrade(
        &lab,
        state.path(),
        &["plan", "--restart", "--nodes", "nosuch"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--nodes nosuch") && err.contains(&manager),
        "{err}"
    );

    let starts = engine_starts(&lab);
    let out = swarm_upgrade(
        &lab,
        state.path(),
        &[
            "restart",
            "--yes",
            "--selector",
            "role=worker",
            "--exclude",
            &workers[0],
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = engine_starts(&lab);
    for (node, was) in &starts {
        if *node == workers[1] {
            assert!(after[node] > *was, "{node} was selected but not restarted");
        } else {
            assert_eq!(after[node], *was, "{node} was out of scope but restarted");
        }
    }
    lab.wait_healthy(Duration::from_secs(120)).unwrap();
}

/// Running tasks of `service`, counted on a manager every half second
/// until `stop`; failed reads (a manager restarting) are left out.
fn sample_running(
    service: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<usize>> {
    std::thread::spawn(move || {
        let lab = Lab::open(LAB).unwrap();
        let mut samples = vec![];
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(out) = lab.on_manager(&format!(
                "docker service ps {service} --filter desired-state=running --format '{{{{.CurrentState}}}}'"
            )) {
                samples.push(out.lines().filter(|l| l.starts_with("Running")).count());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        samples
    })
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn c_a_disruption_budget_holds_through_a_max_parallel_2_restart() {
    let lab = lab();
    let state = tempfile::tempdir().unwrap();
    // Four replicas, two per node at most: once the managers' drains have
    // pushed them onto the two workers, a batch of both workers would take
    // all four down together without the budget's wait.
    let image = lab
        .on_manager(
            "docker service inspect probe-server --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}'",
        )
        .unwrap();
    let image = image.trim();
    lab.on_manager(&format!(
        "docker service create --detach --name budgeted --replicas 4 --replicas-max-per-node 2 \
         --label swarm-upgrade.min-available=2 --init --no-resolve-image \
         --stop-grace-period 2s {image} server --port 8081"
    ))
    .unwrap();
    lab.wait_healthy(Duration::from_secs(120)).unwrap();
    let out = swarm_upgrade(
        &lab,
        state.path(),
        &[
            "plan",
            "--restart",
            "--max-parallel",
            "2",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "disruption-budget"
                && f["message"].as_str().unwrap().contains("budgeted")),
        "{plan}"
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_running("budgeted", stop.clone());
    let out = swarm_upgrade(
        &lab,
        state.path(),
        &["restart", "--yes", "--max-parallel", "2"],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(samples.len() > 20, "too few samples: {samples:?}");
    let least = samples.iter().min().copied().unwrap_or(0);
    eprintln!("running tasks of budgeted during the restart: {samples:?}");
    assert!(least >= 2, "the budget of 2 was broken: {samples:?}");
    lab.on_manager("docker service rm budgeted").unwrap();
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn zz_remove_the_control_lab() {
    Lab::down(LAB).unwrap_or_else(|e| panic!("removing lab {LAB}: {e:#}"));
}
