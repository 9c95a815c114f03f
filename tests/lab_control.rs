//! Operator control on real engines (issue 14): `restart` and node
//! selection, on ONE lab (`rs`, 3 managers + 2 workers) brought up by the
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

    assert!(
        samples.len() > 10,
        "too few quorum samples: {}",
        samples.len()
    );
    for (i, (reachable, leaders, err)) in samples.iter().enumerate() {
        assert!(
            err.is_empty() || *reachable > 0,
            "sample {i}: no manager answered: {err}"
        );
        assert!(
            *reachable >= 2,
            "sample {i}: quorum lost ({reachable} of 3 managers reachable)"
        );
        assert!(*leaders <= 1, "sample {i}: {leaders} leaders");
    }
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

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn zz_remove_the_control_lab() {
    Lab::down(LAB).unwrap_or_else(|e| panic!("removing lab {LAB}: {e:#}"));
}
