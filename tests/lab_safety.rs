//! Safety on real engines (issue 11): the faults the simulated matrix shows
//! most dangerous, put where production runs meet them, each followed by
//! the operator's follow-up to the end (all at the pin or as before,
//! availability as before, no run labels, no lease).
//!
//! Two labs, two tests, each combining cases to save CI time:
//! - `sf1`: a node failing as the SECOND manager (exit 4, rolled back, then
//!   a second `apply` finishes once the cause is gone); then, during the
//!   rollback run, a manager's engine stopped by someone else while another
//!   manager verifies (exit 6, no second manager stopped; `resume` finishes
//!   once it is restarted).
//! - `sf2`: the controller's SSH master for one host killed mid-run (the run
//!   reconnects, or stops resumable); then the run SIGKILLed and finished
//!   from a different, empty state directory (another machine), after
//!   `status` there told the truth from the swarm alone.
//!
//! `#[ignore]`d like every lab test: run under the lab lock, as root
//! (`testkit/run-all-tests`). A lab that cannot start fails the test.

mod common;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{FreshLab, Watched, assert_all_at, availability, command, run_logged, versions};
use testkit::{Fault, Lab};

const OLD: &str = "20.10.24";
const PIN: &str = "26.1.5";

/// The managers in the order the plan upgrades them.
fn manager_order(fresh: &FreshLab) -> Vec<String> {
    let out = fresh.run(&["plan", "--pin", PIN, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "plan");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut order: Vec<String> = vec![];
    for s in plan["steps"].as_array().unwrap() {
        if s["role"] == "manager"
            && let Some(n) = s["node"].as_str()
            && !order.iter().any(|o| o == n)
        {
            order.push(n.to_string());
        }
    }
    assert_eq!(order.len(), 3, "{plan}");
    order
}

/// `swarm-upgrade.*` labels per node, as the swarm has them.
fn run_labels(lab: &Lab) -> Vec<(String, String)> {
    let out = lab
        .on_manager(
            "docker node ls -q | xargs docker node inspect --format '{{.Description.Hostname}} {{json .Spec.Labels}}'",
        )
        .unwrap();
    let mut held = vec![];
    for line in out.lines() {
        let Some((host, labels)) = line.split_once(' ') else {
            continue;
        };
        let labels: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(labels).unwrap_or_default();
        for k in labels.keys() {
            if k == "swarm-upgrade.run" || k == "swarm-upgrade.availability" {
                held.push((host.to_string(), k.clone()));
            }
        }
    }
    held
}

fn lease_present(lab: &Lab) -> bool {
    !lab.on_manager("docker config ls -q --filter name=swarm-upgrade-lease")
        .unwrap()
        .trim()
        .is_empty()
}

/// The end state every case must reach.
fn assert_finished(fresh: &FreshLab, version: &str, before: &testkit::Status) {
    let end = fresh
        .lab
        .wait_healthy(Duration::from_secs(120))
        .expect("healthy at the end");
    assert_all_at(&end, version);
    assert_eq!(
        availability(&end),
        availability(before),
        "availability as before"
    );
    assert_eq!(run_labels(&fresh.lab), vec![], "no run labels left");
    assert!(!lease_present(&fresh.lab), "the lease is released");
}

fn started(action: &'static str, node: String) -> impl Fn(&serde_json::Value) -> bool {
    move |e| e["event"] == "step-started" && e["action"] == action && e["node"] == node.as_str()
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_second_manager_fails_then_another_manager_goes_down_while_one_verifies() {
    let fresh = FreshLab::up("sf1", "172.31.21.0/24");
    let before = fresh.status();
    assert_all_at(&before, OLD);
    let managers = manager_order(&fresh);
    let second = managers[1].clone();

    // (1) The second manager's engine cannot start at the pin: its
    //     /etc/default/docker passes a flag 26.1 removed (20.10 takes it, so
    //     its rollback starts). `target-config` reads that file and blocks;
    //     waived, the failure comes mid-run, after the first manager was
    //     upgraded.
    fresh
        .lab
        .exec_sh(
            &second,
            "echo 'DOCKER_OPTS=\"$DOCKER_OPTS --oom-score-adjust=-500\"' >> /etc/default/docker",
        )
        .unwrap();
    let out = fresh.run(&[
        "apply",
        "--pin",
        PIN,
        "--yes",
        "--ignore-check",
        "target-config",
        "--verify-timeout",
        "60s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "the second manager is rolled back"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("rolled back: {second}")), "{err}");
    let mid = fresh.status();
    let version_of = |st: &testkit::Status, n: &str| {
        st.nodes
            .iter()
            .find(|x| x.name == n)
            .unwrap()
            .engine_version
            .clone()
    };
    assert!(version_of(&mid, &managers[0]).starts_with(PIN), "{mid:?}");
    assert!(version_of(&mid, &second).starts_with(OLD), "{mid:?}");
    assert!(
        version_of(&mid, &managers[2]).starts_with(OLD),
        "untouched: {mid:?}"
    );

    // The cause removed, a second `apply` finishes the upgrade.
    fresh
        .lab
        .exec_sh(&second, "sed -i '/oom-score-adjust/d' /etc/default/docker")
        .unwrap();
    let out = fresh.run(&["apply", "--pin", PIN, "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the second apply finishes the run"
    );
    assert_finished(&fresh, PIN, &before);

    // (2) Roll the last run back; while a manager verifies, someone else
    //     stops the engine of a manager already reverted. The verify (or
    //     the next manager's guard) must not take a second manager down:
    //     the run stops safely, resumable.
    let mut run = Watched::spawn(
        &fresh,
        fresh.state_dir.path(),
        &[
            "rollback",
            "--yes",
            "--output",
            "json",
            "--verify-timeout",
            "60s",
        ],
    );
    let first_verified = run
        .until(|e| e["event"] == "step-finished" && e["action"] == "verify" && is_manager(e))
        .expect("a manager is reverted and verified");
    let victim = first_verified["node"].as_str().unwrap().to_string();
    let verifying = run
        .until(|e| e["event"] == "step-started" && e["action"] == "verify" && is_manager(e))
        .expect("a second manager verifies");
    assert_ne!(verifying["node"], victim.as_str());
    fresh.lab.fault(&victim, Fault::StopEngine).unwrap();
    let (code, err) = run.finish();
    assert_eq!(code, Some(6), "stopped safely: {err}");
    let st = fresh.status();
    let down: Vec<&str> = st
        .nodes
        .iter()
        .filter(|n| n.role == "manager" && n.reachability.as_deref() != Some("reachable"))
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(
        down,
        [victim.as_str()],
        "only the manager someone else stopped is down: {st:?}"
    );

    fresh.lab.restore(&victim, Fault::StopEngine).unwrap();
    fresh.lab.wait_healthy(Duration::from_secs(120)).unwrap();
    let out = fresh.run(&["resume", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "resume finishes the rollback");
    // Every node the rollback run reverted is back at the old engine (all
    // of them when the second apply continued the first run; all but the
    // first manager when it was a run of its own); the rest stay at the pin.
    let reverted: Vec<String> = fresh
        .journal()
        .iter()
        .filter(|e| e["event"] == "step-started")
        .filter_map(|e| e["node"].as_str().map(str::to_string))
        .collect();
    assert!(
        reverted.contains(&second) && reverted.contains(&managers[2]),
        "{reverted:?}"
    );
    let end = fresh.lab.wait_healthy(Duration::from_secs(120)).unwrap();
    for (name, v) in versions(&end) {
        let want = if reverted.contains(&name) { OLD } else { PIN };
        assert!(v.starts_with(want), "{name} runs {v}, expected {want}");
    }
    assert_eq!(availability(&end), availability(&before));
    assert_eq!(run_labels(&fresh.lab), vec![]);
    assert!(!lease_present(&fresh.lab));
}

fn is_manager(e: &serde_json::Value) -> bool {
    e["node"].as_str().is_some_and(|n| n.contains("-m"))
}

/// The controller's SSH master for `address`: an `ssh -M` process of ours.
fn ssh_master_of(address: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_ssh = args
            .first()
            .is_some_and(|a| a == "ssh" || a.ends_with("/ssh"));
        let is_master = args.iter().any(|a| a == "-M");
        let to_it = args
            .iter()
            .any(|a| a == address || a.ends_with(&format!("@{address}")));
        if is_ssh && is_master && to_it {
            return Some(pid);
        }
    }
    None
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_lost_ssh_master_then_a_killed_run_finished_from_another_machine() {
    let fresh = FreshLab::up("sf2", "172.31.22.0/24");
    let before = fresh.status();
    assert_all_at(&before, OLD);
    let managers = manager_order(&fresh);
    let address = |n: &str| fresh.lab.node(n).unwrap().address.to_string();
    let args = [
        "apply",
        "--pin",
        PIN,
        "--yes",
        "--output",
        "json",
        "--lease-ttl",
        "20s",
    ];

    // (1) While the first manager's tasks drain, its SSH master dies (a
    //     network cut longer than the keepalives). Its stop, install and
    //     start still need that host: the run reconnects, or stops
    //     resumable with the engine untouched, never "rollback failed".
    let mut run = Watched::spawn(&fresh, fresh.state_dir.path(), &args);
    run.until(started("wait-drained", managers[0].clone()))
        .expect("the first manager drains");
    let pid = ssh_master_of(&address(&managers[0])).expect("the SSH master of the first manager");
    eprintln!("killing the SSH master of {} (pid {pid})", managers[0]);
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let run = match run.until(started("wait-drained", managers[1].clone())) {
        Some(_) => run,
        None => {
            let (code, err) = run.finish();
            assert_eq!(
                code,
                Some(6),
                "a lost master stops the run resumable: {err}"
            );
            let mut resumed = Watched::spawn(
                &fresh,
                fresh.state_dir.path(),
                &["resume", "--yes", "--output", "json"],
            );
            resumed
                .until(started("wait-drained", managers[1].clone()))
                .expect("resume reaches the second manager");
            resumed
        }
    };

    // (2) SIGKILL while the second manager drains: the first is upgraded
    //     and kept drained (managers come back together), the second is
    //     drained, both labelled by the run, the lease held.
    thread::sleep(Duration::from_millis(700));
    run.kill();
    let run_id = fresh.journal()[0]["run_id"].as_str().unwrap().to_string();

    // Another machine: an empty state directory. `status` tells the truth
    // from the swarm alone.
    let elsewhere = tempfile::tempdir().unwrap();
    let status = |dir: &Path| {
        let out = run_logged(
            command(
                &fresh.lab.inventory_path(),
                dir,
                &["status", "--output", "json"],
            ),
            &["status", "--output", "json"],
        );
        assert_eq!(out.status.code(), Some(0));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let seen = status(elsewhere.path());
    let swarm = &seen["swarm"];
    assert_eq!(swarm["lease"]["run_id"], run_id.as_str(), "{seen}");
    let node = |n: &str| {
        swarm["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["hostname"] == n)
            .cloned()
            .unwrap()
    };
    for m in &managers[..2] {
        assert_eq!(node(m)["held_by_run"], run_id.as_str(), "{m}: {seen}");
        assert_eq!(node(m)["availability"], "drain", "{m}: {seen}");
        assert_eq!(node(m)["original_availability"], "active", "{m}: {seen}");
    }
    assert_eq!(node(&managers[0])["done"], PIN, "{seen}");
    assert!(node(&managers[2])["held_by_run"].is_null(), "{seen}");

    // Once the dead run's lease has expired, status says to take it over,
    // and `apply --break-lock` from here finishes the upgrade.
    let t = Instant::now();
    let seen = loop {
        let s = status(elsewhere.path());
        if s["swarm"]["lease"]["expired"] == true || t.elapsed() > Duration::from_secs(60) {
            break s;
        }
        thread::sleep(Duration::from_secs(5));
    };
    assert_eq!(seen["swarm"]["lease"]["expired"], true, "{seen}");
    let next = seen["swarm"]["next"].as_str().unwrap();
    assert!(
        next.contains(&format!("apply --pin {PIN} --break-lock")),
        "{next}"
    );

    let out = run_logged(
        command(
            &fresh.lab.inventory_path(),
            elsewhere.path(),
            &["apply", "--pin", PIN, "--yes", "--break-lock"],
        ),
        &["apply", "--pin", PIN, "--yes", "--break-lock"],
    );
    assert_eq!(out.status.code(), Some(0), "finished from another machine");
    assert_finished(&fresh, PIN, &before);
}
