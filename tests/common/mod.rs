//! Helpers the lab test files share: running the real `swarm-upgrade`
//! binary against a lab (logged, with a private state directory), a lab of a
//! test's own, the quorum sampler, and reading the run's journal.
//!
//! Each test file includes it with `mod common;` and uses what it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use testkit::{Lab, Status, UpOptions};

pub mod webhook;

/// `swarm-upgrade ARGS --inventory INVENTORY` with a private state dir and
/// none of the operator's environment (inventory, unlock key).
pub fn command(inventory: &Path, state_dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarm-upgrade"));
    c.args(args)
        .arg("--inventory")
        .arg(inventory)
        .env("SWARM_UPGRADE_STATE_DIR", state_dir)
        .env_remove("SWARM_UPGRADE_INVENTORY")
        .env_remove("SWARM_UPGRADE_UNLOCK_KEY")
        // The canaries' soak, short: every lab upgrade still soaks its canaries (3 checks),
        // without adding a minute to each run; tests about canaries pass `--soak`.
        .env("SWARM_UPGRADE_SOAK", "5s");
    c
}

/// Runs `cmd` (the command line `args` shown in the log) and logs how it ended.
pub fn run_logged(mut cmd: Command, args: &[&str]) -> Output {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    eprintln!(
        "$ swarm-upgrade {} -> {:?} in {:.1} s\n{}",
        args.join(" "),
        out.status.code(),
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Brings up lab `name` (3 managers, 2 workers) on `subnet`, or fails the test.
pub fn up(name: &str, subnet: &str) -> Lab {
    let t = Instant::now();
    let lab = Lab::up(&UpOptions {
        name: name.into(),
        managers: 3,
        workers: 2,
        subnet: subnet.into(),
        ..UpOptions::default()
    })
    .unwrap_or_else(|e| panic!("the lab {name} could not be brought up: {e:#}"));
    eprintln!("lab {name} up in {:.0} s", t.elapsed().as_secs_f64());
    lab
}

/// A lab of its own for one test, removed when dropped.
pub struct FreshLab {
    pub lab: Lab,
    pub state_dir: tempfile::TempDir,
}

impl FreshLab {
    pub fn up(name: &str, subnet: &str) -> FreshLab {
        let _ = Lab::down(name);
        let lab = up(name, subnet);
        FreshLab::healthy(lab)
    }

    /// A fresh lab with other options (size, flavour); `name` and `subnet` are taken
    /// from `opts`.
    pub fn up_with(opts: &UpOptions) -> FreshLab {
        let _ = Lab::down(&opts.name);
        let t = Instant::now();
        let lab = Lab::up(opts)
            .unwrap_or_else(|e| panic!("the lab {} could not be brought up: {e:#}", opts.name));
        eprintln!("lab {} up in {:.0} s", opts.name, t.elapsed().as_secs_f64());
        FreshLab::healthy(lab)
    }

    fn healthy(lab: Lab) -> FreshLab {
        let name = lab.name().to_string();
        lab.wait_healthy(Duration::from_secs(180))
            .unwrap_or_else(|e| panic!("the lab {name} is not healthy: {e:#}"));
        FreshLab {
            lab,
            state_dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        command(&self.lab.inventory_path(), self.state_dir.path(), args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_logged(self.cmd(args), args)
    }

    pub fn status(&self) -> Status {
        self.lab.status().expect("lab status")
    }

    /// The directory of the cluster's current run (its journal, plan, state).
    pub fn current_run_dir(&self) -> std::path::PathBuf {
        let cluster = std::fs::read_dir(self.state_dir.path())
            .unwrap()
            .next()
            .expect("a cluster dir")
            .unwrap()
            .path();
        let run = std::fs::read_to_string(cluster.join("current")).unwrap();
        cluster.join("runs").join(run.trim())
    }

    pub fn journal(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.current_run_dir().join("journal.jsonl")).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl FreshLab {
    /// Asserts that the probe lost no request since `since`. On failure it shows the failed
    /// requests next to the journal's events of that time, so that a lab run in CI says where
    /// in the run the requests were lost.
    pub fn assert_no_lost_requests(&self, since: std::time::SystemTime) {
        let report = self.lab.probe_report(Some(since)).unwrap();
        assert!(report.sent > 0, "the probe sent nothing: {report:?}");
        if report.failed == 0 {
            return;
        }
        let times: Vec<std::time::SystemTime> = report
            .first_failures
            .iter()
            .filter_map(|f| humantime::parse_rfc3339_weak(f.split(' ').next()?).ok())
            .collect();
        let (from, to) = match (times.iter().min(), times.iter().max()) {
            (Some(a), Some(b)) => (*a - Duration::from_secs(15), *b + Duration::from_secs(5)),
            _ => (since, std::time::SystemTime::now()),
        };
        let around: Vec<String> = self
            .journal_or_empty()
            .iter()
            .filter(|e| e["event"] != "step-output")
            .filter(|e| {
                e["ts"]
                    .as_str()
                    .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                    .is_some_and(|t| t >= from && t <= to)
            })
            .map(|e| {
                format!(
                    "{} {} {} {}",
                    e["ts"].as_str().unwrap_or(""),
                    e["event"].as_str().unwrap_or(""),
                    e["node"].as_str().unwrap_or(""),
                    match &e["action"] {
                        serde_json::Value::String(a) => a.clone(),
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    }
                )
            })
            .collect();
        panic!(
            "the probe lost {} request(s)\n{}journal around them:\n  {}",
            report.failed,
            report.render_text(),
            around.join("\n  ")
        );
    }

    /// Every run's journal events (a test may run several), best effort.
    fn journal_or_empty(&self) -> Vec<serde_json::Value> {
        let mut events = vec![];
        let Ok(clusters) = std::fs::read_dir(self.state_dir.path()) else {
            return events;
        };
        for cluster in clusters.flatten() {
            let Ok(runs) = std::fs::read_dir(cluster.path().join("runs")) else {
                continue;
            };
            for run in runs.flatten() {
                let text =
                    std::fs::read_to_string(run.path().join("journal.jsonl")).unwrap_or_default();
                events.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
            }
        }
        events
    }
}

impl Drop for FreshLab {
    fn drop(&mut self) {
        if let Err(e) = Lab::down(self.lab.name()) {
            eprintln!("removing lab {}: {e:#}", self.lab.name());
        }
    }
}

/// Samples the managers' view every second while a run goes on: the number
/// of reachable managers and leaders, to show that quorum never went.
pub struct QuorumSampler {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Vec<QuorumSample>>>,
}

/// One look at the swarm from its managers.
#[derive(Debug, Clone)]
pub struct QuorumSample {
    /// Since the sampler started.
    pub at: Duration,
    pub reachable: usize,
    pub leaders: usize,
    /// Why no manager answered (empty when one did).
    pub error: String,
}

impl QuorumSampler {
    pub fn start(lab_name: &str) -> QuorumSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = lab_name.to_string();
        let handle = thread::spawn(move || {
            let lab = Lab::open(&name).unwrap();
            let t = Instant::now();
            let mut samples = vec![];
            while !flag.load(Ordering::SeqCst) {
                let sample = match lab.status() {
                    Ok(st) => {
                        let managers: Vec<_> =
                            st.nodes.iter().filter(|n| n.role == "manager").collect();
                        QuorumSample {
                            at: t.elapsed(),
                            reachable: managers
                                .iter()
                                .filter(|n| n.reachability.as_deref() == Some("reachable"))
                                .count(),
                            leaders: managers.iter().filter(|n| n.leader).count(),
                            error: String::new(),
                        }
                    }
                    Err(e) => QuorumSample {
                        at: t.elapsed(),
                        reachable: 0,
                        leaders: 0,
                        error: format!("{e:#}"),
                    },
                };
                samples.push(sample);
                thread::sleep(Duration::from_millis(1000));
            }
            samples
        });
        QuorumSampler {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> Vec<QuorumSample> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// How long the managers may go without a leader while one is elected after
/// the leader's engine stopped: swarmkit's election timeout is 10 s; a loaded
/// 2-core CI machine has taken longer (stop 23's CI: a manager's CLI timing
/// out at 20 s, another saying "no leader", the third stopped for its upgrade).
const ELECTION_WINDOW: Duration = Duration::from_secs(30);

/// Quorum never lost, from `samples` of a 3-manager swarm: every answer shows
/// at least 2 reachable managers and at most one leader. A look at which no
/// manager answered is a leader election only if at most one manager's
/// engine was down then (the others answered "no leader", or were too slow),
/// and the managers answer again, with quorum, within [`ELECTION_WINDOW`] of
/// the last answer: two managers down, or no leader for longer, fail.
pub fn assert_quorum_kept(samples: &[QuorumSample]) {
    assert!(
        samples.len() > 10,
        "too few quorum samples: {}",
        samples.len()
    );
    let mut last_answer = Duration::ZERO;
    let mut elections = 0;
    for (i, s) in samples.iter().enumerate() {
        if s.error.is_empty() {
            assert!(
                s.reachable >= 2,
                "sample {i} at {:?}: quorum lost ({} of 3 managers reachable)",
                s.at,
                s.reachable
            );
            assert!(s.leaders <= 1, "sample {i}: {} leaders", s.leaders);
            last_answer = s.at;
            continue;
        }
        let down = s
            .error
            .matches("Cannot connect to the Docker daemon")
            .count()
            + s.error.matches("container not running").count();
        assert!(
            down <= 1,
            "sample {i} at {:?}: {down} managers' engines down at once: {}",
            s.at,
            s.error
        );
        assert!(
            s.at.saturating_sub(last_answer) <= ELECTION_WINDOW,
            "sample {i} at {:?}: no manager answered for {:?} (quorum lost?): {}",
            s.at,
            s.at - last_answer,
            s.error
        );
        elections += 1;
    }
    assert!(
        samples.last().is_some_and(|s| s.error.is_empty()),
        "no manager answered at the end: {:?}",
        samples.last()
    );
    if elections > 0 {
        eprintln!("{elections} quorum sample(s) during a leader election (no manager answered)");
    }
}

pub fn availability(st: &Status) -> Vec<(String, String)> {
    let mut v: Vec<_> = st
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.availability.clone()))
        .collect();
    v.sort();
    v
}

pub fn versions(st: &Status) -> Vec<(String, String)> {
    let mut v: Vec<_> = st
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.engine_version.clone()))
        .collect();
    v.sort();
    v
}

pub fn assert_all_at(st: &Status, version: &str) {
    for n in &st.nodes {
        assert!(
            n.engine_version.starts_with(version),
            "{} runs {}, expected {version}",
            n.name,
            n.engine_version
        );
        assert_eq!(n.state, "ready", "{}", n.name);
    }
}

/// Spawns `apply` with JSON events on stdout; kills it with SIGKILL as soon
/// as `when` matches an event. Returns the event that triggered the kill.
pub fn kill_apply_when(
    fresh: &FreshLab,
    args: &[&str],
    when: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut run = Watched::spawn(fresh, fresh.state_dir.path(), args);
    match run.until(when) {
        Some(ev) => {
            // Let the step get under way, then kill without warning.
            thread::sleep(Duration::from_millis(700));
            run.kill();
            ev
        }
        None => {
            let (code, err) = run.finish();
            panic!("apply ended ({code:?}) before the expected event:\n{err}")
        }
    }
}

/// An `apply`/`resume` with JSON events on stdout, read event by event.
pub struct Watched {
    pub child: Child,
    events: std::io::Lines<BufReader<std::process::ChildStdout>>,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Watched {
    pub fn spawn(fresh: &FreshLab, state_dir: &Path, args: &[&str]) -> Watched {
        Watched::spawn_with(&fresh.lab.inventory_path(), state_dir, args)
    }

    /// [`Watched::spawn`] for any lab, by its inventory.
    pub fn spawn_with(inventory: &Path, state_dir: &Path, args: &[&str]) -> Watched {
        eprintln!("$ swarm-upgrade {} (watched)", args.join(" "));
        let mut child = command(inventory, state_dir, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        });
        let events = BufReader::new(child.stdout.take().unwrap()).lines();
        Watched {
            child,
            events,
            stderr: Some(stderr),
        }
    }

    /// The next event that matches, or `None` when the run ended first.
    pub fn until(
        &mut self,
        when: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        for line in self.events.by_ref() {
            let Ok(ev) = serde_json::from_str::<serde_json::Value>(&line.unwrap()) else {
                continue;
            };
            if when(&ev) {
                return Some(ev);
            }
        }
        None
    }

    /// SIGKILL, without warning.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the end: (exit code, stderr).
    pub fn finish(mut self) -> (Option<i32>, String) {
        for _ in self.events.by_ref() {}
        let status = self.child.wait().unwrap();
        let err = self.stderr.take().unwrap().join().unwrap();
        eprintln!("-> {:?}\n{err}", status.code());
        (status.code(), err)
    }
}
