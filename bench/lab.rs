//! `bench lab JOURNAL`: where the time of a real `apply` went, from its
//! journal (runs/<id>/journal.jsonl; the plan.json next to it, if present,
//! gives each step's phase).
//!
//! - step time: step-started to step-finished (or -failed), per node and
//!   action. Script steps include one SSH round trip each; the journal cannot
//!   split a step into remote work and transport.
//! - polling bound: a wait step (wait-drained, verify, wait-converged) ends
//!   at the first poll after the change, at most one poll interval late.
//!   The executor journals that interval (`detect_ms`: the sleep before the
//!   poll that saw the change) and how long that poll took (`last_poll_ms`,
//!   reported apart: long when a request waited for the change itself);
//!   older journals get an estimate from the backoff schedule
//!   (`swarm_upgrade::exec::poll::Backoff`).
//! - gaps: time inside a node's (or the run's) span when none of its steps
//!   ran: the executor's own overhead between steps.
//! - out-of-service window, per node: its drain step's end to the end of
//!   its restore-availability (the time the swarm could not schedule on
//!   it; the availability update is the drain step's last request, and
//!   what the step waits for before it, the node's services having room
//!   elsewhere and the quorum guard, runs with the node in service), next
//!   to its floor: stop-engine + install + start-engine + verify
//!   (what an upgrade cannot do without), and their ratio. Staging (the
//!   `stage` step, before the drain) is outside the window by design.
//! - round trips: the run's `traffic` record (SSH connections, commands and
//!   Engine API requests per host, counted by the live transport).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use serde_json::Value;
use swarm_upgrade::exec::poll::Backoff;
use swarm_upgrade::plan::{Phase, Plan};

#[derive(Debug, Clone)]
struct Step {
    index: usize,
    node: Option<String>,
    action: String,
    start: f64,
    end: f64,
    failed: bool,
    /// The executor's measured detection bound (`detect_ms`), when journaled.
    detect: Option<f64>,
    /// How long the wait's final poll took (`last_poll_ms`).
    last_poll: Option<f64>,
}

impl Step {
    fn secs(&self) -> f64 {
        self.end - self.start
    }

    /// How late at most a wait step saw its change: measured by the
    /// executor when the journal has it, else estimated from the schedule.
    fn polling(&self, measured: bool) -> f64 {
        if !WAITS.contains(&self.action.as_str()) {
            return 0.0;
        }
        match (measured, self.detect) {
            (true, d) => d.unwrap_or(0.0),
            (false, _) => polling_bound(self.secs()),
        }
    }
}

fn ts(v: &Value) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(v.get("ts")?.as_str()?).ok()?;
    Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs_f64())
}

/// How late the end of a wait of `elapsed` can be after the change it
/// waited for: the change came after the poll before the last one (polls
/// on the executor's backoff schedule), so at most `elapsed` minus that
/// poll's time. Polls that take time themselves shift this: an estimate.
fn polling_bound(elapsed: f64) -> f64 {
    let (first, cap) = (Backoff::FIRST.as_secs_f64(), Backoff::CAP.as_secs_f64());
    let (mut prev, mut last, mut next) = (0.0, 0.0, first);
    if elapsed < next {
        return 0.0;
    }
    while last + next <= elapsed {
        prev = last;
        last += next;
        next = (next * 2.0).min(cap);
    }
    elapsed - prev
}

/// Total length of the union of intervals.
fn covered(mut iv: Vec<(f64, f64)>) -> f64 {
    iv.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut total, mut cur): (f64, Option<(f64, f64)>) = (0.0, None);
    for (s, e) in iv {
        match &mut cur {
            Some((_, ce)) if s <= *ce => *ce = ce.max(e),
            _ => {
                if let Some((cs, ce)) = cur {
                    total += ce - cs;
                }
                cur = Some((s, e));
            }
        }
    }
    total + cur.map_or(0.0, |(s, e)| e - s)
}

fn fmt(s: f64) -> String {
    let s = s.max(0.0);
    if s >= 100.0 {
        format!("{s:.0}s")
    } else if s >= 1.0 {
        format!("{s:.1}s")
    } else {
        format!("{:.0}ms", s * 1e3)
    }
}

const WAITS: [&str; 3] = ["wait-drained", "verify", "wait-converged"];
const ACTIONS: [&str; 10] = [
    "stage",
    "drain",
    "wait-drained",
    "stop-engine",
    "backup",
    "install",
    "start-engine",
    "verify",
    "restore-availability",
    "wait-converged",
];

pub fn run(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut steps = vec![];
    let mut open: HashMap<usize, (f64, Option<String>, String)> = HashMap::new();
    let mut runs: Vec<(f64, Option<f64>)> = vec![];
    let mut traffic: Vec<Value> = vec![];
    let mut last_ts = 0.0;
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
        let Some(t) = ts(&v) else { continue };
        last_ts = t;
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        match v.get("event").and_then(Value::as_str).unwrap_or("") {
            "run-started" => runs.push((t, None)),
            "traffic" => traffic.push(v["hosts"].clone()),
            "run-finished" => {
                if let Some(r) = runs.last_mut() {
                    r.1 = Some(t);
                }
            }
            "step-started" => {
                let node = v.get("node").and_then(Value::as_str).map(str::to_string);
                let action = v
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                open.insert(index, (t, node, action));
            }
            ev @ ("step-finished" | "step-failed") => {
                if let Some((start, node, action)) = open.remove(&index) {
                    steps.push(Step {
                        index,
                        node,
                        action,
                        start,
                        end: t,
                        failed: ev == "step-failed",
                        detect: v
                            .get("detect_ms")
                            .and_then(Value::as_f64)
                            .map(|ms| ms / 1e3),
                        last_poll: v
                            .get("last_poll_ms")
                            .and_then(Value::as_f64)
                            .map(|ms| ms / 1e3),
                    });
                }
            }
            _ => {}
        }
    }
    // A run cut short (a crash) ends at its last record.
    let runs: Vec<(f64, f64)> = runs
        .into_iter()
        .map(|(s, e)| (s, e.unwrap_or(last_ts)))
        .collect();
    let wall: f64 = runs.iter().map(|(s, e)| e - s).sum();
    let plan: Option<Plan> = path
        .parent()
        .map(|d| d.join("plan.json"))
        .filter(|p| p.exists())
        .and_then(|p| swarm_upgrade::plan::file::load(&p).ok());

    println!(
        "journal {}: {} run(s), {} step records, wall {}",
        path.display(),
        runs.len(),
        steps.len(),
        fmt(wall)
    );
    println!();
    // Journals written since the executor measures detection carry
    // `detect_ms` on some wait; then a wait without it saw its change at
    // the first poll.
    let measured = steps
        .iter()
        .any(|s| s.detect.is_some() || s.last_poll.is_some());
    println!(
        "polling: {}",
        if measured {
            "measured by the executor (the sleep before the poll that saw the change)"
        } else {
            "estimated from the backoff schedule (this journal has no detect_ms)"
        }
    );
    per_node(&steps, measured);
    println!();
    per_action(&steps, measured);
    println!();
    let phase_of: HashMap<usize, Phase> = plan
        .iter()
        .flat_map(|p| p.steps.iter().map(|s| (s.index, s.phase)))
        .collect();
    windows(&steps, &phase_of);
    println!();
    let union = covered(steps.iter().map(|s| (s.start, s.end)).collect());
    let polling: f64 = steps.iter().map(|s| s.polling(measured)).sum();
    let nodes = steps
        .iter()
        .filter_map(|s| s.node.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        .max(1);
    let between = (wall - union).max(0.0);
    println!("orchestration overhead (whole run)");
    println!(
        "  between steps (no step running): {} = {:.1}% of the wall time",
        fmt(between),
        100.0 * between / wall.max(1e-9)
    );
    println!("  polling delay, upper bound:      {}", fmt(polling));
    if measured {
        let last: f64 = steps.iter().filter_map(|s| s.last_poll).sum();
        println!(
            "  (the polls that saw the changes took {} in all: requests answered when the engine or the",
            fmt(last)
        );
        println!(
            "   managers were ready, so part of the unavoidable time; a hung one would show here)"
        );
    }
    println!(
        "  per node: {} ({:.1}% of the wall time)",
        fmt((between + polling) / nodes as f64),
        100.0 * (between + polling) / wall.max(1e-9)
    );
    if let Some(plan) = &plan {
        let phase_of: HashMap<usize, Phase> =
            plan.steps.iter().map(|s| (s.index, s.phase)).collect();
        let workers: Vec<&Step> = steps
            .iter()
            .filter(|s| phase_of.get(&s.index) == Some(&Phase::Workers))
            .collect();
        if let (Some(s), Some(e)) = (
            workers.iter().map(|s| s.start).min_by(f64::total_cmp),
            workers.iter().map(|s| s.end).max_by(f64::total_cmp),
        ) {
            println!(
                "workers phase (max-parallel {}): wall {}",
                plan.max_parallel,
                fmt(e - s)
            );
        }
    }
    round_trips(&traffic, &steps);
    Ok(())
}

/// SSH connections and remote round trips per host, per run (a resumed run
/// reports its own), and per upgraded node over all runs.
fn round_trips(traffic: &[Value], steps: &[Step]) {
    if traffic.is_empty() {
        println!(
            "round trips: no `traffic` record in the journal (written by swarm-upgrade since issue 6)"
        );
        return;
    }
    println!();
    println!(
        "{:<14} {:>16} {:>9} {:>13} {:>12}",
        "host", "SSH connections", "commands", "API requests", "round trips"
    );
    let mut total = 0;
    for (run, hosts) in traffic.iter().enumerate() {
        let Some(hosts) = hosts.as_object() else {
            continue;
        };
        if traffic.len() > 1 {
            println!("run {}:", run + 1);
        }
        for (host, t) in hosts {
            let n = |k: &str| t[k].as_u64().unwrap_or(0);
            let trips = n("commands") + n("api_requests");
            total += trips;
            println!(
                "{:<14} {:>16} {:>9} {:>13} {:>12}",
                host,
                t["ssh_connections"]
                    .as_u64()
                    .map_or("-".into(), |c| c.to_string()),
                n("commands"),
                n("api_requests"),
                trips
            );
        }
    }
    let upgraded = steps
        .iter()
        .filter(|s| s.action == "install")
        .filter_map(|s| s.node.as_deref())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        .max(1);
    println!(
        "  round trips per upgraded node: {:.1} ({total} over {upgraded} node(s)); every command is one SSH",
        total as f64 / upgraded as f64
    );
    println!(
        "  channel and every API request one connection to the forwarded socket, both over the host's one master."
    );
}

/// Per node: its upgrade (the first run of consecutive plan steps: drain to
/// verify, or to restore-availability for a worker), the time its steps
/// took, and the gaps between one step of it and the next.
fn per_node(steps: &[Step], measured: bool) {
    // A resumed run may repeat a step: the last record of an index counts.
    let mut by_index: BTreeMap<usize, &Step> = BTreeMap::new();
    for s in steps {
        by_index.insert(s.index, s);
    }
    let mut by_node: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
    for s in by_index.values() {
        by_node
            .entry(s.node.as_deref().unwrap_or("(cluster)"))
            .or_default()
            .push(s);
    }
    let short = [
        "stage", "drain", "w-drain", "stop", "backup", "install", "start", "verify", "restore",
        "converge",
    ];
    print!(
        "{:<14} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "node", "steps", "upgrade", "in steps", "gaps", "polling"
    );
    for a in short {
        print!(" {a:>8}");
    }
    println!();
    for (node, list) in &by_node {
        let main_run = list
            .windows(2)
            .position(|w| w[1].index != w[0].index + 1)
            .map_or(list.len(), |p| p + 1);
        let upgrade = if *node == "(cluster)" {
            f64::NAN
        } else {
            list[main_run - 1].end - list[0].start
        };
        let gaps: f64 = list
            .windows(2)
            .filter(|w| w[1].index == w[0].index + 1)
            .map(|w| (w[1].start - w[0].end).max(0.0))
            .sum();
        let in_steps: f64 = list.iter().map(|s| s.secs()).sum();
        let polling: f64 = list.iter().map(|s| s.polling(measured)).sum();
        let failed = list.iter().filter(|s| s.failed).count();
        print!(
            "{:<14} {:>5} {:>8} {:>8} {:>8} {:>8}",
            node,
            format!("{}{}", list.len(), if failed > 0 { "!" } else { "" }),
            if upgrade.is_nan() {
                "-".into()
            } else {
                fmt(upgrade)
            },
            fmt(in_steps),
            fmt(gaps),
            fmt(polling)
        );
        for a in ACTIONS {
            let of: Vec<f64> = list
                .iter()
                .filter(|s| s.action == a)
                .map(|s| s.secs())
                .collect();
            print!(
                " {:>8}",
                if of.is_empty() {
                    "-".into()
                } else {
                    fmt(of.iter().sum())
                }
            );
        }
        println!();
    }
    println!(
        "  upgrade: first step to the end of its consecutive steps; gaps: between consecutive steps of the node;"
    );
    println!("  polling: upper bound of the polling delay in its wait steps; `!`: a step failed.");
}

/// The actions an upgrade cannot do without while the node is out.
const FLOOR: [&str; 4] = ["stop-engine", "install", "start-engine", "verify"];
/// The goal for a worker's window (issue 15): at most this times its floor.
const WORKER_GOAL: f64 = 1.3;

/// A node's out-of-service window and its floor, from its last run of
/// steps (the last record of each index counts).
struct Window {
    node: String,
    window: f64,
    floor: f64,
    worker: bool,
}

/// `phase_of`: each step's phase, from the plan (empty without one: a node
/// whose availability comes back within a few steps of its verify is taken
/// for a worker).
fn node_windows(steps: &[Step], phase_of: &HashMap<usize, Phase>) -> Vec<Window> {
    let mut by_index: BTreeMap<usize, &Step> = BTreeMap::new();
    for s in steps {
        by_index.insert(s.index, s);
    }
    let mut by_node: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
    for s in by_index.values() {
        if let Some(n) = s.node.as_deref() {
            by_node.entry(n).or_default().push(s);
        }
    }
    by_node
        .into_iter()
        .filter_map(|(node, list)| {
            let drain = list.iter().find(|s| s.action == "drain")?;
            let back = list
                .iter()
                .rev()
                .find(|s| s.action == "restore-availability" && !s.failed)?;
            let floor: f64 = list
                .iter()
                .filter(|s| FLOOR.contains(&s.action.as_str()))
                .map(|s| s.secs())
                .sum();
            // A worker's availability comes back in its own batch; a
            // manager's only once every manager is verified.
            let verified = list
                .iter()
                .filter(|s| s.action == "verify")
                .map(|s| s.index)
                .max()
                .unwrap_or(0);
            let worker = match phase_of.get(&back.index) {
                Some(p) => *p == Phase::Workers,
                None => back.index <= verified + 3,
            };
            Some(Window {
                node: node.to_string(),
                window: back.end - drain.end,
                floor,
                worker,
            })
        })
        .collect()
}

/// Per node: the window (drain to availability back), its floor, the ratio.
fn windows(steps: &[Step], phase_of: &HashMap<usize, Phase>) {
    let list = node_windows(steps, phase_of);
    if list.is_empty() {
        return;
    }
    println!(
        "{:<14} {:>8} {:>9} {:>9} {:>7}",
        "node", "role", "window", "floor", "ratio"
    );
    for w in &list {
        println!(
            "{:<14} {:>8} {:>9} {:>9} {:>7}",
            w.node,
            if w.worker { "worker" } else { "manager" },
            fmt(w.window),
            fmt(w.floor),
            format!("{:.2}", w.window / w.floor.max(1e-9))
        );
    }
    println!(
        "  window: drain (its availability update, the step's end) to restore-availability end (out of service); floor: {}.",
        FLOOR.join(" + ")
    );
    let workers: Vec<&Window> = list.iter().filter(|w| w.worker).collect();
    if let Some(worst) = workers
        .iter()
        .map(|w| w.window / w.floor.max(1e-9))
        .max_by(f64::total_cmp)
    {
        println!(
            "  workers: at most {worst:.2} x their floor (goal {WORKER_GOAL} x): {}",
            if worst <= WORKER_GOAL {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    println!(
        "  a manager's window also holds the other managers' upgrades: its availability comes back once all are verified."
    );
}

fn per_action(steps: &[Step], measured: bool) {
    println!(
        "{:<22} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "action", "count", "total", "mean", "max", "polling"
    );
    for a in ACTIONS {
        let of: Vec<&Step> = steps.iter().filter(|s| s.action == a).collect();
        if of.is_empty() {
            continue;
        }
        let list: Vec<f64> = of.iter().map(|s| s.secs()).collect();
        let total: f64 = list.iter().sum();
        let max = list.iter().copied().fold(0.0, f64::max);
        let polling = if WAITS.contains(&a) {
            fmt(of.iter().map(|s| s.polling(measured)).sum())
        } else {
            "-".into()
        };
        println!(
            "{:<22} {:>6} {:>9} {:>9} {:>9} {:>9}",
            a,
            list.len(),
            fmt(total),
            fmt(total / list.len() as f64),
            fmt(max),
            polling
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_bound_follows_the_backoff() {
        // Polls at 0, 0.1, 0.3, 0.55, 0.8, 1.05, ... s.
        assert_eq!(polling_bound(0.05), 0.0, "done at the first poll");
        assert_eq!(polling_bound(0.15), 0.15);
        assert!(
            (polling_bound(1.0) - 0.45).abs() < 1e-9,
            "after the poll at 0.55 s: {}",
            polling_bound(1.0)
        );
        assert_eq!(covered(vec![(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]), 4.0);
    }

    fn step(index: usize, node: &str, action: &str, start: f64, end: f64) -> Step {
        Step {
            index,
            node: Some(node.into()),
            action: action.into(),
            start,
            end,
            failed: false,
            detect: None,
            last_poll: None,
        }
    }

    #[test]
    fn a_window_runs_from_the_drain_to_the_availability_back() {
        let steps = vec![
            step(1, "w1", "stage", 0.0, 10.0),
            step(2, "w1", "drain", 10.0, 10.5),
            step(3, "w1", "wait-drained", 10.5, 12.0),
            step(4, "w1", "stop-engine", 12.0, 14.0),
            step(5, "w1", "backup", 14.0, 14.5),
            step(6, "w1", "install", 14.5, 24.0),
            step(7, "w1", "start-engine", 24.0, 26.0),
            step(8, "w1", "verify", 26.0, 28.0),
            step(9, "w1", "restore-availability", 28.0, 28.2),
        ];
        let w = node_windows(&steps, &HashMap::new());
        assert_eq!(w.len(), 1);
        assert!(w[0].worker);
        // From the drain's availability update, its step's end.
        assert!((w[0].window - 17.7).abs() < 1e-9, "{}", w[0].window);
        assert!((w[0].floor - 15.5).abs() < 1e-9, "{}", w[0].floor);
    }
}
