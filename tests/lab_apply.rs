//! `swarm-upgrade apply` on the real testkit lab: real Debian nodes, real
//! sshd and dockerd, a real swarm upgraded from 20.10.24 to 26.1.5.
//!
//! Each test brings up its own fresh lab (so it starts at 20.10.24 whatever
//! ran before) and removes it at the end. They are `#[ignore]`d in a plain
//! `cargo test`; the lab suite runs them with `--ignored --test-threads=1`,
//! as root. A lab that cannot start fails the test: nothing is skipped.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{
    FreshLab, QuorumSampler, assert_all_at, availability, kill_apply_when, versions, webhook,
};
use testkit::Lab;
use testkit::lab::PROBE_PUBLISHED;

const OLD: &str = "20.10.24";
const PIN: &str = "26.1.5";
const BROKEN: &str = "26.1.99";
/// The host-mode port of the published probe on every node.
const PUBLISHED: u16 = 8090;

/// Runs the tool with JSON events on stdout and calls `act` once, at the
/// first event `when` accepts; returns the exit code and stderr.
fn run_acting_when(
    fresh: &FreshLab,
    args: &[&str],
    when: impl Fn(&serde_json::Value) -> bool,
    act: impl FnOnce(),
) -> (Option<i32>, String) {
    let mut child = fresh
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let mut act = Some(act);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line.unwrap()) else {
            continue;
        };
        if act.is_some() && when(&ev) {
            (act.take().unwrap())();
        }
    }
    let status = child.wait().unwrap();
    let errors = errors.join().unwrap();
    assert!(
        act.is_none(),
        "the run ended before the expected event:\n{errors}"
    );
    (status.code(), errors)
}

/// What `verify-services` said it verified, per node.
/// What `verify-services` steps said, per node (a canary's soak verifies too, before its
/// node runs tasks again: not counted).
fn verified(journal: &[serde_json::Value]) -> Vec<(String, String)> {
    let verify_services: Vec<&serde_json::Value> = journal
        .iter()
        .filter(|e| e["event"] == "step-started" && e["action"] == "verify-services")
        .map(|e| &e["index"])
        .collect();
    journal
        .iter()
        .filter(|e| e["event"] == "step-output")
        .filter(|e| verify_services.contains(&&e["index"]))
        .filter_map(|e| {
            let text = e["text"].as_str()?;
            text.starts_with("verified: ").then(|| {
                (
                    e["node"].as_str().unwrap_or("").to_string(),
                    text.to_string(),
                )
            })
        })
        .collect()
}

fn held_packages(lab: &Lab, node: &str) -> String {
    let out = lab.ssh(node, &["apt-mark", "showhold"]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn started_nodes(journal: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = journal
        .iter()
        .filter(|e| e["event"] == "step-started")
        .filter_map(|e| e["node"].as_str().map(str::to_string))
        .collect();
    v.dedup();
    v
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn a_broken_engine_is_rolled_back_then_crashes_are_resumed() {
    let fresh = FreshLab::up("ap1", "172.31.1.0/24");
    fresh.lab.deploy_published_probe(PUBLISHED).unwrap();
    let before = fresh.status();
    assert_all_at(&before, OLD);
    let since = SystemTime::now();

    // 1. The broken package: the first manager fails verification and is
    //    rolled back; the run stops with exit 4 and touches nothing else.
    //    Its dockerd fails `--validate` too, so `target-config` blocks it
    //    before the run (seen on lab ck: "testkit: deliberately broken
    //    dockerd 26.1.99" on every node); waived here, to reach the rollback.
    let out = fresh.run(&[
        "apply",
        "--pin",
        BROKEN,
        "--yes",
        "--ignore-check",
        "target-config",
        "--verify-timeout",
        "90s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a failed node rolls back with exit 4"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rolled back"), "{err}");
    assert!(
        err.contains("deliberately broken dockerd"),
        "the engine's last log lines are reported: {err}"
    );
    let journal = fresh.journal();
    let touched = started_nodes(&journal);
    assert_eq!(
        touched.len(),
        1,
        "only the first manager was touched: {touched:?}"
    );
    assert_eq!(
        touched[0], "ap1-m2",
        "a follower goes first, the leader last"
    );
    let after = fresh
        .lab
        .wait_healthy(Duration::from_secs(120))
        .expect("healthy after rollback");
    assert_eq!(
        versions(&after),
        versions(&before),
        "every node runs its old engine"
    );
    assert_eq!(availability(&after), availability(&before));
    let held = held_packages(&fresh.lab, "ap1-m2");
    assert!(
        held.contains("docker.io"),
        "the restored engine is held: {held}"
    );
    assert!(
        !held.contains("docker-cli"),
        "docker-cli, new with 26.1.99, was removed: {held}"
    );
    let cli = fresh
        .lab
        .ssh(
            "ap1-m2",
            &["docker", "version", "--format", "{{.Server.Version}}"],
        )
        .unwrap();
    assert!(
        String::from_utf8_lossy(&cli.stdout).starts_with(OLD),
        "the old docker CLI works against the old engine: {cli:?}"
    );
    fresh.assert_no_lost_requests(since);

    // 2. SIGKILL right after a drain (while waiting for the tasks to leave),
    //    then resume.
    let killed = kill_apply_when(
        &fresh,
        &["apply", "--pin", PIN, "--yes", "--output", "json"],
        |e| e["event"] == "step-started" && e["action"] == "wait-drained",
    );
    assert_eq!(killed["node"], "ap1-m2");
    let out = Command::new(env!("CARGO_BIN_EXE_swarm-upgrade"))
        .args(["status", "--output", "json"])
        .env("SWARM_UPGRADE_STATE_DIR", fresh.state_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        st["status"], "running",
        "a killed run is still running as far as its state knows: {st}"
    );
    assert!(
        st["in_progress"].is_u64(),
        "the step in progress is shown: {st}"
    );
    // 3. Resume, and SIGKILL it in the middle of a later node's install.
    let killed = kill_apply_when(&fresh, &["resume", "--yes", "--output", "json"], |e| {
        e["event"] == "step-started" && e["action"] == "install" && e["node"] == "ap1-m3"
    });
    assert_eq!(killed["node"], "ap1-m3");
    // 4. `apply` with the same pin continues the same run; while the first
    //    worker restarts, its published port stops answering on the node
    //    (a REJECT rule, as a lost port mapping would): its services fail
    //    verification once it runs tasks again, and it is rolled back.
    // Matched on the connection's original port: a port mapping rewrites
    // it (DNAT) before the filter sees it.
    let reject = format!("OUTPUT -p tcp -m conntrack --ctorigdstport {PUBLISHED} -j REJECT");
    let (code, err) = run_acting_when(
        &fresh,
        &["apply", "--pin", PIN, "--yes", "--output", "json"],
        |e| e["event"] == "step-started" && e["action"] == "start-engine" && e["node"] == "ap1-w1",
        || {
            fresh
                .lab
                .exec_sh("ap1-w1", &format!("iptables -I {reject}"))
                .unwrap();
        },
    );
    assert_eq!(code, Some(4), "the worker is rolled back: {err}");
    let lost = format!(
        "published port {PUBLISHED} (host mode of service {PROBE_PUBLISHED}) does not answer on the node"
    );
    // Found by verify-services, or, when the swarm placed the worker's task
    // of the global service only after that step looked (it then finds none
    // to check), by the canary's soak, which verifies its services again.
    assert!(
        err.contains(&lost)
            && (err.contains("verify-services ap1-w1") || err.contains("soak ap1-w1")),
        "{err}"
    );
    let st = fresh
        .lab
        .wait_healthy(Duration::from_secs(120))
        .expect("healthy after the rollback");
    let w1 = st.nodes.iter().find(|n| n.name == "ap1-w1").unwrap();
    assert!(
        w1.engine_version.starts_with(OLD),
        "ap1-w1 runs its old engine again: {w1:?}"
    );
    // 5. The port fixed, `apply` finishes the workers.
    fresh
        .lab
        .exec_sh("ap1-w1", &format!("iptables -D {reject}"))
        .unwrap();
    let out = fresh.run(&["apply", "--pin", PIN, "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the run completes once the port answers"
    );

    let end = fresh
        .lab
        .wait_healthy(Duration::from_secs(120))
        .expect("healthy at the end");
    assert_all_at(&end, PIN);
    assert_eq!(
        availability(&end),
        availability(&before),
        "availability ends as it started"
    );
    for n in &end.nodes {
        let held = held_packages(&fresh.lab, &n.name);
        for p in ["docker.io", "docker-cli", "containerd"] {
            assert!(held.contains(p), "{}: {p} is not held: {held}", n.name);
        }
    }
    fresh.assert_no_lost_requests(since);
}

#[test]
#[ignore = "lab: needs root and the testkit image (run testkit/run-all-tests)"]
fn the_happy_path_keeps_quorum_and_service_with_parallel_workers_and_a_lock() {
    let fresh = FreshLab::up("ap2", "172.31.2.0/24");
    fresh.lab.deploy_published_probe(PUBLISHED).unwrap();
    let before = fresh.status();
    assert_all_at(&before, OLD);
    let since = SystemTime::now();
    let sampler = QuorumSampler::start("ap2");
    // A chat webhook and node_exporter's textfile directory, as an operator
    // would give them.
    let hook = webhook::Listener::start();
    // Not in the state directory, whose only entry is the cluster's.
    let textfile_dir = tempfile::tempdir().unwrap();
    let metrics = textfile_dir.path().join("swarm-upgrade.prom");
    let metrics_arg = metrics.to_str().unwrap();

    let mut apply = fresh
        .cmd(&[
            "apply",
            "--pin",
            PIN,
            "--yes",
            "--max-parallel",
            "2",
            "--notify",
            &hook.url,
            "--metrics-file",
            metrics_arg,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A second operator, while the first run holds the lock: exit 75, nothing touched.
    let stderr = apply.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut shown = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        eprintln!("{line}");
        shown.push_str(&line);
        if line.contains("] ap2-m2 drain") {
            break;
        }
    }
    let second = fresh.run(&["apply", "--pin", PIN, "--yes"]);
    assert_eq!(
        second.status.code(),
        Some(75),
        "a concurrent apply is refused"
    );
    let t = Instant::now();
    for line in lines {
        let line = line.unwrap();
        eprintln!("{line}");
        shown.push_str(&line);
    }
    let status = apply.wait().unwrap();
    assert!(status.success(), "apply failed: {status}");
    eprintln!("rest of the run took {:.0} s", t.elapsed().as_secs_f64());
    assert_notified_and_measured(&hook, &metrics, &shown);

    let samples = sampler.finish();
    common::assert_quorum_kept(&samples);

    let end = fresh
        .lab
        .wait_healthy(Duration::from_secs(120))
        .expect("healthy at the end");
    assert_all_at(&end, PIN);
    assert_eq!(
        availability(&end),
        availability(&before),
        "availability ends as it started"
    );
    for n in &end.nodes {
        let held = held_packages(&fresh.lab, &n.name);
        assert!(
            held.contains("docker.io") && held.contains("docker-cli"),
            "{}: {held}",
            n.name
        );
        let v = fresh
            .lab
            .ssh(
                &n.name,
                &["docker", "version", "--format", "{{.Client.Version}}"],
            )
            .unwrap();
        assert!(
            v.status.success(),
            "{}: the docker CLI works after the upgrade",
            n.name
        );
    }
    let report = fresh.lab.probe_report(Some(since)).unwrap();
    assert!(report.sent > 100, "{report:?}");
    fresh.assert_no_lost_requests(since);

    // Every node's services were verified once it ran tasks again: the
    // published port answered on it, and containerd and runc were checked.
    let journal = fresh.journal();
    let seen = verified(&journal);
    let answers = format!("port {PUBLISHED} (host mode of service {PROBE_PUBLISHED}) answers");
    for n in &end.nodes {
        let text = seen
            .iter()
            .find(|(node, _)| *node == n.name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("{}: no verify-services output in {seen:?}", n.name));
        assert!(text.contains(&answers), "{}: {text}", n.name);
        assert!(
            text.contains("containerd ") && text.contains("running"),
            "{}: {text}",
            n.name
        );
        assert!(text.contains("engine log settled"), "{}: {text}", n.name);
        assert!(
            text.contains(&format!("{PROBE_PUBLISHED} resolves from its task")),
            "{}: {text}",
            n.name
        );
    }

    // The two workers ran together: the workers phase took clearly less than
    // the two workers' upgrades one after the other.
    let span = |node: &str| -> (f64, f64) {
        let ts: Vec<f64> = journal
            .iter()
            .filter(|e| e["node"] == node)
            .filter_map(|e| e["ts"].as_str())
            .map(|t| {
                humantime::parse_rfc3339(t)
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
            })
            .collect();
        (ts[0], ts[ts.len() - 1])
    };
    // One SSH connection per host for the whole run (gathering included),
    // and the round trips each host answered, as the run reports them.
    let traffic = journal
        .iter()
        .rev()
        .find(|e| e["event"] == "traffic")
        .expect("the run reports its round trips");
    let hosts = traffic["hosts"].as_object().unwrap();
    assert_eq!(hosts.len(), 5, "{traffic}");
    for (host, t) in hosts {
        assert_eq!(t["ssh_connections"], 1, "{host}: {t}");
        assert!(t["commands"].as_u64().unwrap() >= 4, "{host}: {t}");
    }
    let (w1_start, w1_end) = span("ap2-w1");
    let (w2_start, w2_end) = span("ap2-w2");
    assert!(
        w2_start < w1_end && w1_start < w2_end,
        "the workers overlapped"
    );
    let phase = w1_end.max(w2_end) - w1_start.min(w2_start);
    let serial = (w1_end - w1_start) + (w2_end - w2_start);
    eprintln!("workers phase {phase:.1} s, one after the other {serial:.1} s");
    assert!(
        phase < serial * 0.8,
        "max-parallel 2 is not measurably shorter: {phase:.1} s vs {serial:.1} s"
    );

    // `rollback` reverts the whole run, workers first then managers, from the
    // backups the run left on each host: the lab is back where it started.
    let out = fresh.run(&["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "rollback failed");
    let back = fresh
        .lab
        .wait_healthy(Duration::from_secs(180))
        .expect("healthy after the rollback");
    assert_all_at(&back, OLD);
    assert_eq!(
        availability(&back),
        availability(&before),
        "availability ends as it started"
    );
    let report = fresh.lab.probe_report(Some(since)).unwrap();
    assert_eq!(
        report.failed, 0,
        "the probe lost requests during the rollback: {report:?}"
    );
}

/// `--notify` and `--metrics-file` of the happy path's apply: a document
/// per run and node event reached the listener (the managers one after the
/// other, the two workers together), the token in the URL was never shown,
/// and the metrics file ends with the run done and every node done.
fn assert_notified_and_measured(hook: &webhook::Listener, metrics: &std::path::Path, shown: &str) {
    let events = hook.events();
    eprintln!("notifications: {events:?}");
    assert_eq!(
        events[..7],
        [
            "run-started",
            "node-started ap2-m2",
            "node-upgraded ap2-m2",
            "node-started ap2-m3",
            "node-upgraded ap2-m3",
            "node-started ap2-m1",
            "node-upgraded ap2-m1",
        ],
        "{events:?}"
    );
    let mut workers = events[7..events.len() - 1].to_vec();
    workers.sort();
    assert_eq!(
        workers,
        [
            "node-started ap2-w1",
            "node-started ap2-w2",
            "node-upgraded ap2-w1",
            "node-upgraded ap2-w2",
        ],
        "{events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("run-finished"));
    for (target, doc) in hook.received() {
        assert_eq!(target, format!("/hooks/{}", webhook::TOKEN));
        assert_eq!(doc["target"], PIN, "{doc}");
        assert!(doc["text"].as_str().is_some_and(|t| !t.is_empty()), "{doc}");
    }
    assert!(
        !shown.contains(webhook::TOKEN),
        "the webhook token was shown"
    );

    let text = std::fs::read_to_string(metrics).unwrap();
    eprintln!("{text}");
    assert!(
        text.lines()
            .any(|l| l == r#"swarm_upgrade_run_state{state="done"} 1"#),
        "{text}"
    );
    for n in ["ap2-m1", "ap2-m2", "ap2-m3", "ap2-w1", "ap2-w2"] {
        assert!(
            text.lines().any(|l| l
                .starts_with(&format!(r#"swarm_upgrade_node_state{{node="{n}","#))
                && l.ends_with(r#"state="done"} 1"#)),
            "{n} is not done:\n{text}"
        );
    }
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}:\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("swarm_upgrade_steps_done"),
        value("swarm_upgrade_steps")
    );
    assert!(
        value("swarm_upgrade_run_end_timestamp_seconds")
            > value("swarm_upgrade_run_start_timestamp_seconds")
    );
}
