//! Pre-staging on the real lab (issue 15, item 3): a node's packages are
//! downloaded before it is drained, so a download that fails stops the run
//! with that node (and its batch) still serving, nothing rolled back; once
//! the source answers again, `resume` finishes.
//!
//! Lab `stg` (1 manager, 2 workers, its own subnet), removed at the end.
//! `#[ignore]`d in a plain `cargo test`; run as root with `--ignored`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{FreshLab, assert_all_at, availability, versions};
use testkit::{Lab, UpOptions};

const LAB: &str = "stg";
const SUBNET: &str = "172.31.71.0/24";
const OLD: &str = "20.10.24";
const PIN: &str = "26.1.5";
/// Every node's apt source (testkit's local repository, `deb file:/srv/lab-repo ./`).
const REPO: &str = "/srv/lab-repo";

/// The availability of `node` every second until stopped, as the swarm reports it.
fn sample_availability(
    lab: &str,
    node: &str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    let (lab, node) = (lab.to_string(), node.to_string());
    std::thread::spawn(move || {
        let lab = Lab::open(&lab).unwrap();
        let mut seen = vec![];
        while !stop.load(Ordering::SeqCst) {
            if let Ok(st) = lab.status()
                && let Some(n) = st.nodes.iter().find(|n| n.name == node)
            {
                seen.push(n.availability.clone());
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
        seen
    })
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_node_whose_download_fails_is_never_drained_and_resume_finishes() {
    let t = Instant::now();
    let fresh = FreshLab::up_with(&UpOptions {
        name: LAB.into(),
        managers: 1,
        workers: 2,
        subnet: SUBNET.into(),
        ..UpOptions::default()
    });
    let before = fresh.status();
    assert_all_at(&before, OLD);
    let manager = format!("{LAB}-m1");
    let (w1, w2) = (format!("{LAB}-w1"), format!("{LAB}-w2"));

    // w1's apt source stops serving the target packages, as a mirror that
    // lost them would: its package indices still list them (the pin
    // resolves, `check` passes), but their .deb files cannot be fetched.
    let plan = fresh.run(&["plan", "--pin", PIN, "--output", "json"]);
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let node = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == w1.as_str())
        .unwrap_or_else(|| panic!("{w1} in the plan: {plan}"));
    let debs: Vec<String> = node["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let version = p["to"].as_str().unwrap();
            let version = version.split_once(':').map_or(version, |(_, v)| v);
            format!("{}_{version}_*.deb", p["name"].as_str().unwrap())
        })
        .collect();
    assert!(!debs.is_empty(), "{node}");
    let cut = fresh
        .lab
        .exec_sh(
            &w1,
            &format!(
                "set -e; mkdir -p {REPO}.away; cd {REPO}; for f in {}; do mv \"$f\" {REPO}.away/; done; ls {REPO}.away",
                debs.join(" ")
            ),
        )
        .unwrap();
    eprintln!("{w1}: moved out of {REPO}: {}", cut.trim());

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_availability(LAB, &w1, stop.clone());
    let out = fresh.run(&["apply", "--pin", PIN, "--yes", "--max-parallel", "2"]);
    stop.store(true, Ordering::SeqCst);
    let seen = sampler.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // A precondition of the drain failed: stopped resumable, nothing undone.
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains(&format!("the packages could not be staged on {w1}"))
            && err.contains("nothing was drained"),
        "{err}"
    );
    assert!(
        !seen.is_empty() && seen.iter().all(|a| a == "active"),
        "{w1}: {seen:?}"
    );

    let journal = fresh.journal();
    let failed: Vec<&serde_json::Value> = journal
        .iter()
        .filter(|e| e["event"] == "step-failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["action"], "stage");
    assert_eq!(failed[0]["node"], w1.as_str());
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Failed to fetch") || error.contains("E: "),
        "apt's own error: {error}"
    );
    assert!(
        !journal.iter().any(|e| e["event"] == "rollback-started"),
        "nothing is rolled back"
    );
    // No worker was drained: the stage batch comes before their drain batch.
    for w in [&w1, &w2] {
        assert!(
            !journal.iter().any(|e| e["event"] == "step-started"
                && e["action"] == "drain"
                && e["node"] == w.as_str()),
            "{w} was drained"
        );
    }
    // The manager went first: staged, then drained, upgraded, back.
    let started = |node: &str, action: &str| {
        journal
            .iter()
            .position(|e| {
                e["event"] == "step-started" && e["node"] == node && e["action"] == action
            })
            .unwrap_or_else(|| panic!("{node}: no {action} step"))
    };
    assert!(started(&manager, "stage") < started(&manager, "drain"));
    let now = fresh
        .lab
        .wait_healthy(Duration::from_secs(120))
        .expect("healthy after the stop");
    assert_eq!(availability(&now), availability(&before));
    let engine = |name: &str| {
        versions(&now)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap()
    };
    assert!(engine(&manager).starts_with(PIN), "{:?}", versions(&now));
    assert!(engine(&w1).starts_with(OLD), "{:?}", versions(&now));
    assert!(engine(&w2).starts_with(OLD), "{:?}", versions(&now));

    // The source serves them again: `resume` stages and upgrades the workers.
    fresh
        .lab
        .exec_sh(&w1, &format!("mv {REPO}.away/*.deb {REPO}/"))
        .unwrap();
    let out = fresh.run(&["resume", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = fresh
        .lab
        .wait_healthy(Duration::from_secs(120))
        .expect("healthy after the resume");
    assert_all_at(&after, PIN);
    assert_eq!(availability(&after), availability(&before));
    keep_run(&fresh);
    eprintln!("lab_stage: {:.0} s", t.elapsed().as_secs_f64());
}

/// The run's journal and plan, kept past the lab for `bench lab`
/// (target/tmp/lab_stage/: each node's window next to its floor).
fn keep_run(fresh: &FreshLab) {
    let from = fresh.current_run_dir();
    let to = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab_stage");
    std::fs::create_dir_all(&to).unwrap();
    for f in ["journal.jsonl", "plan.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    eprintln!("journal kept: {}", to.join("journal.jsonl").display());
}
