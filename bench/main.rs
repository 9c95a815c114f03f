//! Benchmarks (issue 6): planning and executing at scale on the simulated
//! cluster, and the time breakdown of a real `apply` journal.
//!
//! ```text
//! cargo run --release --example bench                  # planning + executing tables
//! cargo run --release --example bench -- --sizes 50,500 --budget 30
//! cargo run --release --example bench -- lab runs/<id>/journal.jsonl
//! cargo run --release --example bench -- sim-journal DIR   # a simulated journal to try `lab` on
//! cargo run --release --example bench -- ssh --hosts 100,500,1000 [--forks 20]   # gathering over real SSH
//! ```
//! Each size is measured in a fresh child process of this binary
//! (`plan-child N`, `exec-child N P`) so that its peak RSS is its own, and a
//! size that exceeds the time budget is killed, reporting what it got to.

mod exec;
mod lab;
mod plan;
mod ssh;
mod sys;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

pub(crate) fn usage() -> ! {
    eprintln!(
        "usage: bench [--sizes 50,500,5000] [--budget SECS] [--max-parallel N]\n       bench lab JOURNAL\n       bench sim-journal DIR\n       bench ssh [--hosts 100,500,1000] [--forks 20] [--budget SECS] [--real-hosts] [--kex ALGORITHMS]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("plan-child") => plan::child(num(1)),
        Some("exec-child") => exec::child(num(1), num(2)),
        Some("lab") => {
            let path = args.get(1).unwrap_or_else(|| usage());
            if let Err(e) = lab::run(Path::new(path)) {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        }
        Some("ssh") => ssh::tables(&args[1..]),
        Some("ssh-child") => ssh::child(
            num(1),
            num(2),
            Path::new(args.get(3).unwrap_or_else(|| usage())),
            num(4) as u16,
        ),
        Some("sim-journal") => sim_journal(Path::new(args.get(1).unwrap_or_else(|| usage()))),
        _ => tables(&args),
    }
}

struct Options {
    sizes: Vec<usize>,
    budget: Duration,
    max_parallel: usize,
}

fn options(args: &[String]) -> Options {
    let mut o = Options {
        sizes: vec![50, 500, 5000],
        budget: Duration::from_secs(60),
        max_parallel: 100,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--sizes" => {
                o.sizes = value()
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
                    .collect();
            }
            "--budget" => {
                o.budget = Duration::from_secs(value().parse().unwrap_or_else(|_| usage()))
            }
            "--max-parallel" => o.max_parallel = value().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    o
}

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn stage<'a>(v: &'a [Value], name: &str) -> Option<&'a Value> {
    v.iter().rev().find(|l| l["stage"] == name)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn duration(ms: f64) -> String {
    if ms.is_nan() {
        "-".into()
    } else if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn tables(args: &[String]) {
    let o = options(args);
    println!(
        "swarm-upgrade benchmarks (simulated cluster; 5 managers, 0.4 services, 10 tasks per node, 1 overlay per 50 nodes)"
    );
    println!(
        "time budget per size and measurement: {} s\n",
        o.budget.as_secs()
    );

    println!("PLANNING: all checks + plan (goal: < 1 s and < 300 MB at 5,000 nodes)");
    println!(
        "{:>6} {:>9} {:>7} {:>5} | {:>10} {:>10} {:>10} | {:>9} {:>9} | slowest check",
        "nodes", "services", "tasks", "nets*", "checks", "plan", "total", "facts", "peak RSS"
    );
    for &n in &o.sizes {
        let (lines, finished) = sys::child(&["plan-child".into(), n.to_string()], o.budget);
        let v = parse(&lines);
        let facts = stage(&v, "facts");
        let get = |s: &str, k: &str| stage(&v, s).map_or(f64::NAN, |l| f(&l[k]));
        let checks: Vec<&Value> = v.iter().filter(|l| l["stage"] == "check").collect();
        let all: f64 = checks.iter().map(|c| f(&c["ms"])).sum();
        let slowest = checks
            .iter()
            .max_by(|a, b| f(&a["ms"]).total_cmp(&f(&b["ms"])))
            .map_or(String::new(), |c| {
                format!(
                    "{} {}",
                    c["id"].as_str().unwrap_or(""),
                    duration(f(&c["ms"]))
                )
            });
        let total = match stage(&v, "done") {
            Some(l) => duration(f(&l["total_ms"])),
            None if finished => "-".into(),
            None => format!("> {} s (killed)", o.budget.as_secs()),
        };
        let peak = stage(&v, "done")
            .or_else(|| stage(&v, "plan"))
            .map_or(f64::NAN, |l| f(&l["peak_mib"]));
        println!(
            "{:>6} {:>9} {:>7} {:>5} | {:>10} {:>10} {:>10} | {:>6.0} MB {:>6.0} MB | {}",
            n,
            facts.map_or(0, |l| l["services"].as_u64().unwrap_or(0)),
            facts.map_or(0, |l| l["tasks"].as_u64().unwrap_or(0)),
            facts.map_or(0, |l| l["networks"].as_u64().unwrap_or(0)),
            duration(all),
            duration(get("plan", "ms")),
            total,
            get("baseline", "rss_mib"),
            peak,
            slowest
        );
    }
    println!(
        "  nets* = overlay networks including ingress. checks = all of them, one after the other;"
    );
    println!(
        "  total = checks + plan. facts = RSS holding the facts; peak = peak RSS while planning.\n"
    );

    println!(
        "EXECUTING: whole plan on the simulated cluster, zero delays, --max-parallel {} (goal: < 1 ms CPU per step)",
        o.max_parallel
    );
    println!(
        "{:>6} {:>7} {:>12} | {:>9} {:>9} | {:>10} {:>10} {:>10} | {:>9} {:>10} {:>11} | {:>8}",
        "nodes",
        "steps",
        "done",
        "wall",
        "CPU",
        "CPU/step",
        "sim/step",
        "exec/step",
        "state",
        "save tmpfs",
        "save disk",
        "RT/node"
    );
    for &n in &o.sizes {
        let (lines, _) = sys::child(
            &[
                "exec-child".into(),
                n.to_string(),
                o.max_parallel.to_string(),
            ],
            o.budget,
        );
        let v = parse(&lines);
        let setup = stage(&v, "setup");
        let last = stage(&v, "done").or_else(|| stage(&v, "progress"));
        let steps = last.map_or(0.0, |l| f(&l["steps"]));
        let per = |k: &str| last.map_or(f64::NAN, |l| f(&l[k]) / steps.max(1.0));
        let done = match stage(&v, "done") {
            Some(l) => l["status"].as_str().unwrap_or("?").to_lowercase(),
            None => format!("{steps:.0} (cut)"),
        };
        println!(
            "{:>6} {:>7} {:>12} | {:>9} {:>9} | {:>10} {:>10} {:>10} | {:>7} B {:>10} {:>11} | {:>8}",
            n,
            setup.map_or(0, |l| l["steps"].as_u64().unwrap_or(0)),
            done,
            duration(last.map_or(f64::NAN, |l| f(&l["wall_ms"]))),
            duration(last.map_or(f64::NAN, |l| f(&l["cpu_ms"]))),
            duration(per("cpu_ms")),
            duration(per("sim_ms")),
            duration(per("cpu_ms") - per("sim_ms")),
            setup.map_or(0, |l| l["state_bytes"].as_u64().unwrap_or(0)),
            duration(setup.map_or(f64::NAN, |l| f(&l["save_state_ms"]))),
            duration(setup.map_or(f64::NAN, |l| f(&l["save_state_disk_ms"]))),
            stage(&v, "round-trips").map_or("-".into(), |l| format!("{:.1}", f(&l["per_node"]))),
        );
    }
    println!(
        "  CPU = user+sys of the whole process (getrusage); sim = time inside the simulation (its share of CPU);"
    );
    println!(
        "  exec = the rest: the executor (run state and journal writes with their fsyncs, lookups)."
    );
    println!(
        "  state = size of state.json (steps as runs of equal status); save = one rewrite of it (the"
    );
    println!(
        "  executor does 2 per step) on tmpfs (where the run directory is) and on disk (fsyncs included)."
    );
    println!(
        "  RT/node = remote round trips per upgraded node: commands + Engine API calls (a live node"
    );
    println!(
        "  update is 2 requests, the simulation counts 1). A run cut at the budget reports the steps it did."
    );
}

/// A small simulated apply (3 managers, 2 workers, realistic script times)
/// whose run directory (journal.jsonl, plan.json) `bench lab` can read.
fn sim_journal(dir: &Path) {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use swarm_upgrade::exec::runner::{RunOptions, Runner};
    use swarm_upgrade::exec::state::RunState;
    use swarm_upgrade_sim::{Delays, SimCluster};

    let sim = SimCluster::generate(5, 3, 4, 12, 1, 7);
    sim.set_delays(Delays::test());
    let pin = plan::pin();
    let g = sim.gathered(&pin);
    let p = swarm_upgrade::cluster::plan(
        &g,
        &swarm_upgrade::cluster::PlanRequest {
            pin: &pin,
            max_parallel: 1,
            waived: &[],
            unlock_key: false,
            hazards: &swarm_upgrade::hazards::Catalogue::builtin(),
            canary: Default::default(),
            operation: swarm_upgrade::plan::Operation::Upgrade,
            selection: &swarm_upgrade::plan::Selection::default(),
            prepull: false,
            reboot: false,
            hooks: &[],
            staged: &[],
        },
    );
    let run = swarm_upgrade::exec::rundir::RunDir {
        path: dir.join("runs").join("sim"),
    };
    run.create().expect("the run directory");
    swarm_upgrade::plan::file::save(&p, &run.plan_path()).expect("the plan saves");
    let digest = swarm_upgrade::plan::digest(&p).expect("the plan serializes");
    let state = RunState::new(
        "sim".into(),
        p.cluster_id.clone(),
        pin,
        digest,
        p.steps.len(),
        vec![],
    );
    let playbooks =
        swarm_upgrade::playbook::Playbooks::load(&[] as &[&Path]).expect("built-in playbooks");
    let opts = RunOptions::default();
    let emit = |_: &swarm_upgrade::exec::events::Event| {};
    let runner = Runner::new(
        &sim,
        &p,
        &g.facts,
        &playbooks,
        &opts,
        run.clone(),
        state,
        &emit,
        Arc::new(AtomicBool::new(false)),
    )
    .expect("a runner");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let status = rt.block_on(sim.drive(runner.execute())).expect("the run");
    println!("{status:?}; journal: {}", run.journal_path().display());
    println!(
        "(timestamps are real time: the simulated scripts take virtual time, so steps are milliseconds apart)"
    );
}
