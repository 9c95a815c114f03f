//! Operator hooks on real engines (issue 14, item 5), on a lab of its own
//! (`hk`): one follower manager and one worker selected (`--nodes`), a
//! pre-drain hook on the hosts that refuses while a marker file exists on
//! the host, and a controller hook at every point that records what it was
//! given.
//!
//! - The marker on the worker: `apply` upgrades the manager, then stops
//!   (exit 6) at the worker's pre-drain hook, before the worker is touched:
//!   its availability, engine version and labels as before. The journal
//!   has the hook's step, its command and its output.
//! - The marker removed, `resume` finishes: both at the pin, and the
//!   controller hooks left one file per node and point with the node's
//!   name, role and versions (`SU_*`).
//!
//! About 4 minutes (lab up about 1 of it), measured on the 2-core machine.
//! `#[ignore]`d like every lab test: run as root through the lab slot.

mod common;

use std::time::Instant;

use common::{FreshLab, availability, versions};

const LAB: &str = "hk";
const SUBNET: &str = "172.31.52.0/24";
const PIN: &str = "26.1.5";
const MARKER: &str = "/tmp/swarm-upgrade-hook-block";

/// `swarm-upgrade.*` run labels of a node, as the swarm has them.
fn run_labels(fresh: &FreshLab, node: &str) -> String {
    fresh
        .lab
        .on_manager(&format!(
            "docker node inspect --format '{{{{json .Spec.Labels}}}}' {node}"
        ))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
#[ignore = "needs the lab (root, the testkit image)"]
fn a_failing_pre_drain_hook_stops_the_run_before_that_node_is_touched() {
    let t = Instant::now();
    let fresh = FreshLab::up(LAB, SUBNET);
    let before = fresh.status();
    let manager = before
        .nodes
        .iter()
        .find(|n| n.role == "manager" && !n.leader)
        .expect("a follower manager")
        .name
        .clone();
    let worker = before
        .nodes
        .iter()
        .find(|n| n.role == "worker")
        .expect("a worker")
        .name
        .clone();
    let out_dir = tempfile::tempdir().unwrap();
    let hooks = out_dir.path().join("hooks.yaml");
    let record = format!(
        "printf '%s %s %s %s\\n' \"$SU_NODE\" \"$SU_ROLE\" \"$SU_FROM_VERSION\" \"$SU_TO_VERSION\" > '{}'/\"$SU_HOOK-$SU_NODE\"",
        out_dir.path().display()
    );
    let mut yaml = format!(
        "hooks:\n  - at: pre-drain\n    run: host\n    timeout: 30s\n    command: 'if test -e {MARKER}; then echo \"held by {MARKER} on $SU_NODE\" >&2; exit 3; fi'\n"
    );
    for at in [
        "pre-drain",
        "post-stop",
        "post-install",
        "post-verify",
        "pre-restore",
    ] {
        yaml.push_str(&format!(
            "  - at: {at}\n    run: controller\n    command: {}\n",
            serde_json::to_string(&record).unwrap()
        ));
    }
    std::fs::write(&hooks, yaml).unwrap();
    fresh
        .lab
        .exec_sh(&worker, &format!("touch {MARKER}"))
        .unwrap();

    let selected = format!("{manager},{worker}");
    let hooks_arg = hooks.to_str().unwrap();
    // The plan shows the hooks and their steps.
    let plan = fresh.run(&[
        "plan", "--pin", PIN, "--nodes", &selected, "--hooks", hooks_arg,
    ]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Hooks") && text.contains("hook pre-drain"),
        "{text}"
    );

    let args = [
        "apply", "--pin", PIN, "--yes", "--nodes", &selected, "--hooks", hooks_arg,
    ];
    let first = fresh.run(&args);
    assert_eq!(
        first.status.code(),
        Some(6),
        "stopped safely at the hook: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stopped = fresh.status();
    let at = |st: &testkit::Status, n: &str| {
        (
            versions(st).into_iter().find(|(m, _)| m == n).unwrap().1,
            availability(st)
                .into_iter()
                .find(|(m, _)| m == n)
                .unwrap()
                .1,
        )
    };
    assert_eq!(
        at(&stopped, &worker),
        at(&before, &worker),
        "the worker untouched"
    );
    assert!(
        !run_labels(&fresh, &worker).contains("swarm-upgrade."),
        "no run label on {worker}: {}",
        run_labels(&fresh, &worker)
    );
    assert!(
        at(&stopped, &manager).0.starts_with(PIN),
        "the manager before it upgraded"
    );
    assert_eq!(at(&stopped, &manager).1, "active");
    let journal = fresh.journal();
    let hook_out = journal.iter().any(|e| {
        e["event"] == "step-output"
            && e["node"] == worker.as_str()
            && e["text"].as_str().is_some_and(|t| {
                t.contains("pre-drain hook") && t.contains(&format!("held by {MARKER} on {worker}"))
            })
    });
    assert!(hook_out, "the journal has the hook's output: {journal:#?}");
    assert!(
        !out_dir.path().join(format!("post-stop-{worker}")).exists(),
        "nothing after the failed pre-drain hook ran for {worker}"
    );

    // The cause removed, `resume` finishes from the hook.
    fresh
        .lab
        .exec_sh(&worker, &format!("rm -f {MARKER}"))
        .unwrap();
    let resumed = fresh.run(&["resume", "--yes"]);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let after = fresh.status();
    for n in [&manager, &worker] {
        assert!(at(&after, n).0.starts_with(PIN), "{n}: {:?}", at(&after, n));
        assert_eq!(at(&after, n).1, at(&before, n).1, "{n}");
    }
    // The controller hooks saw each node as it is.
    for (n, role) in [(&manager, "manager"), (&worker, "worker")] {
        let old = at(&before, n).0;
        for point in [
            "pre-drain",
            "post-stop",
            "post-install",
            "post-verify",
            "pre-restore",
        ] {
            let f = out_dir.path().join(format!("{point}-{n}"));
            let got =
                std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!(got, format!("{n} {role} {old} {PIN}\n"), "{}", f.display());
        }
    }
    eprintln!("lab_hooks: {:.0} s", t.elapsed().as_secs_f64());
}
