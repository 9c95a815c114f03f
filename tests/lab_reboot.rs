//! `--reboot` on real nodes (issue 14): `restart --reboot` over one
//! follower manager and one worker of a 3-manager + 2-worker lab (`rb`).
//! A lab node's reboot is real: the image's `reboot` ends the node's PID 1,
//! every process of the node goes with its PID namespace, and Docker starts
//! the container again (same address, same volumes): a new boot.
//!
//! - `restart_then_apply_reboot_restart_every_process_of_the_node_and_the_node_rejoins`:
//!   `--dry-run` shows the reboot (the boot identity read, the detached
//!   reboot script); then the run: each rebooted node's PID 1 started later
//!   than before, and so did sshd and dockerd; no process of the node is
//!   older than its new PID 1; the nodes not selected kept their PID 1; the
//!   nodes rejoin (ready, availability and versions as before); quorum is
//!   never lost (the manager's stop went through the quorum guard); the
//!   published probe loses no request. Then `apply --pin 26.1.5 --reboot`
//!   over the other worker: the packages are installed, the host reboots
//!   instead of the engine starting, and the node comes back at 26.1.5 with
//!   every process new, the others untouched, no request lost.
//!
//! 191 s in all (lab up and down included), measured on the 2-core machine
//! with a warm image cache and another lab running.
//!
//! `#[ignore]`d like every lab test: run under the lab lock, as root. A lab
//! that cannot start fails the test.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::{FreshLab, QuorumSampler, availability, versions};

const LAB: &str = "rb";
const SUBNET: &str = "172.31.51.0/24";
/// The host-mode port of the published probe on every node.
const PUBLISHED: u16 = 8090;

/// Start times (clock ticks since the host kernel booted, `/proc/PID/stat`
/// field 22) of a node's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Starts {
    pid1: u64,
    sshd: u64,
    dockerd: u64,
    /// The oldest process of the node.
    oldest: u64,
}

/// The fields after the command name (which may hold spaces) start at 3.
const STARTS: &str = r#"st() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
oldest=$(for p in /proc/[0-9]*; do st "${p#/proc/}"; done | sort -n | head -n1)
echo "$(st 1) $(st "$(pgrep -xo sshd)") $(st "$(pgrep -xo dockerd)") $oldest""#;

fn starts(fresh: &FreshLab) -> BTreeMap<String, Starts> {
    fresh
        .lab
        .nodes()
        .iter()
        .map(|n| {
            let out = fresh
                .lab
                .exec_sh(&n.name, STARTS)
                .unwrap_or_else(|e| panic!("{}: reading start times: {e:#}", n.name));
            let v: Vec<u64> = out.split_whitespace().map(|w| w.parse().unwrap()).collect();
            let [pid1, sshd, dockerd, oldest] = v[..] else {
                panic!("{}: start times {out:?}", n.name)
            };
            (
                n.name.clone(),
                Starts {
                    pid1,
                    sshd,
                    dockerd,
                    oldest,
                },
            )
        })
        .collect()
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn restart_then_apply_reboot_restart_every_process_of_the_node_and_the_node_rejoins() {
    let fresh = FreshLab::up(LAB, SUBNET);
    fresh.lab.deploy_published_probe(PUBLISHED).unwrap();
    let before = fresh.lab.wait_healthy(Duration::from_secs(120)).unwrap();
    let manager = before
        .nodes
        .iter()
        .find(|n| n.role == "manager" && !n.leader)
        .expect("a follower manager")
        .name
        .clone();
    let worker = fresh.lab.workers()[0].name.clone();
    let selected = [manager.clone(), worker.clone()];
    let args = ["--nodes", &manager, "--nodes", &worker];

    // The dry run shows the reboot and changes nothing.
    let mut dry = vec!["restart", "--reboot", "--dry-run"];
    dry.extend(args);
    let out = fresh.run(&dry);
    assert_eq!(out.status.code(), Some(0), "restart --reboot --dry-run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("/proc/1/stat"), "{text}");
    assert!(text.contains("sleep 1; reboot"), "{text}");
    let was = starts(&fresh);

    let since = SystemTime::now();
    let sampler = QuorumSampler::start(LAB);
    let mut run = vec!["restart", "--reboot", "--yes"];
    run.extend(args);
    let out = fresh.run(&run);
    let samples = sampler.finish();
    assert_eq!(
        out.status.code(),
        Some(0),
        "restart --reboot: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Quorum kept while the manager was down (the guard let it go only then).
    common::assert_quorum_kept(&samples);

    // Every process of each rebooted node is new; the others kept theirs.
    let now = starts(&fresh);
    for (node, b) in &was {
        let a = now[node];
        if selected.contains(node) {
            assert!(
                a.pid1 > b.pid1,
                "{node}: PID 1 did not restart: {b:?} -> {a:?}"
            );
            assert!(
                a.sshd > b.sshd,
                "{node}: sshd is the same process: {b:?} -> {a:?}"
            );
            assert!(
                a.dockerd > b.dockerd,
                "{node}: dockerd is the same process: {b:?} -> {a:?}"
            );
            assert!(
                a.oldest >= a.pid1,
                "{node}: a process older than the new PID 1 survived: {a:?}"
            );
        } else {
            assert_eq!(a.pid1, b.pid1, "{node} was not selected, yet it rebooted");
        }
    }

    // The run saw each boot identity change.
    let journal = fresh.journal();
    for node in &selected {
        let outputs: Vec<&str> = journal
            .iter()
            .filter(|e| e["node"] == node.as_str())
            .filter_map(|e| e["text"].as_str())
            .collect();
        assert!(
            outputs.iter().any(|t| t.starts_with("before the reboot:"))
                && outputs.iter().any(|t| t.starts_with("after the reboot:")),
            "{node}: the journal has no boot identities: {outputs:?}"
        );
    }

    // The nodes rejoined as they were.
    let end = fresh.lab.wait_healthy(Duration::from_secs(120)).unwrap();
    assert_eq!(versions(&end), versions(&before), "no version changed");
    assert_eq!(availability(&end), availability(&before));
    for n in &end.nodes {
        assert_eq!(n.state, "ready", "{n:?}");
    }
    fresh.assert_no_lost_requests(since);

    // `apply --reboot`: the upgrade's start is a reboot.
    let other = fresh.lab.workers()[1].name.clone();
    let was = starts(&fresh);
    let since = SystemTime::now();
    let out = fresh.run(&[
        "apply", "--pin", "26.1.5", "--reboot", "--yes", "--nodes", &other,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply --reboot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = starts(&fresh);
    for (node, b) in &was {
        let a = now[node];
        if *node == other {
            assert!(
                a.pid1 > b.pid1 && a.sshd > b.sshd && a.dockerd > b.dockerd && a.oldest >= a.pid1,
                "{node}: not every process is new after apply --reboot: {b:?} -> {a:?}"
            );
        } else {
            assert_eq!(a.pid1, b.pid1, "{node} was not selected, yet it rebooted");
        }
    }
    let after = fresh.lab.wait_healthy(Duration::from_secs(120)).unwrap();
    for (node, version) in versions(&after) {
        if node == other {
            assert!(
                version.starts_with("26.1.5"),
                "{node} at {version} after apply --reboot"
            );
        } else {
            assert!(
                !version.starts_with("26.1.5"),
                "{node} was not selected, yet it is at {version}"
            );
        }
    }
    assert_eq!(availability(&after), availability(&before));
    fresh.assert_no_lost_requests(since);
}
