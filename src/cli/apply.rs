//! `swarm-upgrade apply` and `resume`: gather, check, plan, confirm, execute.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use super::plan::{build_plan, close, gather_options, load_inventory};
use super::{ApplyArgs, Output, ResumeArgs, RunArgs};
use crate::checks::Severity;
use crate::error::{Error, usage};
use crate::exec::events::Event;
use crate::exec::live::LiveOps;
use crate::exec::rundir::{ClusterDir, LocalLock, RunDir, default_base};
use crate::exec::runner::{RunOptions, Runner};
use crate::exec::state::{RunState, RunStatus, new_run_id};
use crate::exit_code;
use crate::facts::gather::{self, Connections, Gathered};
use crate::plan::{self, Action, Plan};
use crate::playbook::{Playbooks, Script};
use crate::transport::ssh;
use crate::ui::Ui;
use crate::version::EngineVersion;

/// What apply, resume and rollback all need before they reach the cluster.
struct Prelude {
    playbooks: Playbooks,
    unlock_key: Option<String>,
    inventory: crate::inventory::Inventory,
    runtime: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Prelude {
    fn new(cluster: &super::ClusterArgs, run: &RunArgs) -> anyhow::Result<Prelude> {
        Ok(Prelude {
            playbooks: Playbooks::load(&run.playbook)?,
            unlock_key: unlock_key(run)?,
            inventory: load_inventory(cluster)?,
            runtime: ssh::runtime_dir()?,
            rt: tokio::runtime::Runtime::new().context("starting the async runtime")?,
        })
    }
}

/// Progress lines on stderr, unless quiet.
fn logger(quiet: bool) -> impl Fn(&str) + Sync {
    move |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    }
}

pub fn apply(args: &ApplyArgs, quiet: bool) -> anyhow::Result<u8> {
    let Prelude {
        playbooks,
        unlock_key,
        inventory,
        runtime,
        rt,
    } = Prelude::new(&args.cluster, &args.run)?;
    let log = logger(quiet);
    let saved = args.plan.as_deref().map(plan::file::load).transpose()?;
    if let Some(p) = &saved
        && p.target != args.pin
    {
        return Err(usage(format!(
            "the saved plan is for {}, not --pin {}",
            p.target, args.pin
        )));
    }
    rt.block_on(async {
        let opts = gather_options(&args.cluster, &args.pin, runtime.path());
        let (gathered, conns) = gather::gather(&inventory, &opts, &log).await?;
        let cluster = ClusterDir::open(&state_base(&args.run), &gathered.facts.cluster.id)?;
        let _lock = cluster.lock()?;

        // An unfinished run of the same pin is continued, not restarted.
        if let Some(run) = cluster.current()?
            && let Ok(state) = run.load_state()
            && state.status.resumable()
        {
            if state.pin != args.pin {
                return Err(usage(format!(
                    "run {} to {} is unfinished ({}); resume it with `swarm-upgrade resume`, or finish it before upgrading to {}",
                    state.run_id,
                    state.pin,
                    run.path.display(),
                    args.pin
                )));
            }
            log(&format!("continuing unfinished run {} ({})", state.run_id, run.path.display()));
            let plan = plan::file::load(&run.plan_path())?;
            let ops = live_ops(&gathered, conns, runtime.path());
            let code = execute(&args.run, quiet, &gathered, &plan, run, state, ops, &playbooks, unlock_key).await;
            return code;
        }

        let fresh = build_plan(
            &gathered,
            &args.pin,
            usize::from(args.max_parallel),
            &args.ignore_check,
            unlock_key.is_some(),
        );
        let plan = match saved {
            Some(saved) => {
                revalidate(&saved, &fresh)?;
                saved
            }
            None => fresh,
        };
        print_plan(&plan, args.run.output);
        if plan.is_blocked() {
            close(conns).await;
            let ids: Vec<&str> = plan
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Block)
                .map(|f| f.id.as_str())
                .collect();
            return Err(Error::Blocked(format!(
                "blocked by {}: nothing was changed (fix the findings, or waive a check with --ignore-check ID if you accept the risk)",
                ids.join(", ")
            ))
            .into());
        }
        if plan.steps.is_empty() {
            close(conns).await;
            log("nothing to do: every node already runs the pin");
            return Ok(exit_code::SUCCESS);
        }
        if args.dry_run {
            print_dry_run(&plan, &gathered, &playbooks)?;
            close(conns).await;
            return Ok(exit_code::SUCCESS);
        }
        if !args.run.yes {
            confirm(&plan)?;
        }
        let ops = live_ops(&gathered, conns, runtime.path());
        let (run, state) = start_run(
            &cluster,
            &plan,
            &ops,
            &gathered,
            args.run.break_lock,
            args.ignore_check.clone(),
        )
        .await?;
        log(&format!(
            "run {}: recorded in {}",
            state.run_id,
            run.path.display()
        ));
        execute(&args.run, quiet, &gathered, &plan, run, state, ops, &playbooks, unlock_key).await
    })
}

pub fn resume(args: &ResumeArgs, quiet: bool) -> anyhow::Result<u8> {
    let Prelude {
        playbooks,
        unlock_key,
        inventory,
        runtime,
        rt,
    } = Prelude::new(&args.cluster, &args.run)?;
    let log = logger(quiet);
    rt.block_on(async {
        // The pin is not known yet: read the cluster ID first, then the run.
        let (_cluster, _lock, run) = latest_run(
            args,
            &inventory,
            runtime.path(),
            "nothing to resume (start one with apply)",
        )
        .await?;
        let state = run.load_state()?;
        if !state.status.resumable() {
            log(&format!(
                "run {} ended as {:?}: nothing to resume",
                state.run_id, state.status
            ));
            return Ok(exit_code::SUCCESS);
        }
        let plan = plan::file::load(&run.plan_path())?;
        let opts = gather_options(&args.cluster, &plan.target, runtime.path());
        let (gathered, conns) = gather::gather(&inventory, &opts, &log).await?;
        log(&format!(
            "resuming run {} to {} ({} of {} steps done)",
            state.run_id,
            state.pin,
            state.count(crate::exec::state::StepStatus::Done),
            state.steps.len()
        ));
        let ops = live_ops(&gathered, conns, runtime.path());
        execute(
            &args.run, quiet, &gathered, &plan, run, state, ops, &playbooks, unlock_key,
        )
        .await
    })
}

pub fn rollback(args: &ResumeArgs, quiet: bool) -> anyhow::Result<u8> {
    let Prelude {
        playbooks,
        unlock_key,
        inventory,
        runtime,
        rt,
    } = Prelude::new(&args.cluster, &args.run)?;
    let log = logger(quiet);
    rt.block_on(async {
        let (cluster, _lock, last) =
            latest_run(args, &inventory, runtime.path(), "nothing to roll back").await?;
        let last_state = last.load_state()?;
        let last_plan = plan::file::load(&last.plan_path())?;
        if last_plan.reverts_run.is_some() {
            if last_state.status.resumable() {
                return Err(usage(format!(
                    "rollback run {} is unfinished: continue it with `swarm-upgrade resume`",
                    last_state.run_id
                )));
            }
            log(&format!(
                "the last run ({}) was a rollback: nothing to roll back",
                last_state.run_id
            ));
            return Ok(exit_code::SUCCESS);
        }
        // The nodes whose new packages went in and were not undone since.
        let mut upgraded: Vec<String> = vec![];
        for s in &last_plan.steps {
            if s.action == Action::Install
                && last_state.step(s.index).status == crate::exec::state::StepStatus::Done
                && let Some(id) = &s.node_id
            {
                upgraded.push(id.clone());
            }
        }
        if upgraded.is_empty() {
            log(&format!(
                "run {} upgraded no node that is still upgraded: nothing to roll back",
                last_state.run_id
            ));
            return Ok(exit_code::SUCCESS);
        }
        let revert = plan::rollback::build(&last_plan, &last_state.run_id, &upgraded);
        let opts = gather_options(&args.cluster, &last_plan.target, runtime.path());
        let (gathered, conns) = gather::gather(&inventory, &opts, &log).await?;
        print_plan(&revert, args.run.output);
        if !args.run.yes {
            confirm(&revert)?;
        }
        let ops = live_ops(&gathered, conns, runtime.path());
        let (run, state) = start_run(
            &cluster,
            &revert,
            &ops,
            &gathered,
            args.run.break_lock,
            vec![],
        )
        .await?;
        log(&format!(
            "rollback run {} of run {}: recorded in {}",
            state.run_id,
            last_state.run_id,
            run.path.display()
        ));
        execute(
            &args.run, quiet, &gathered, &revert, run, state, ops, &playbooks, unlock_key,
        )
        .await
    })
}

/// The state directory of the swarm the inventory reaches, locked, and its
/// latest run; without one, a usage error that ends in `nothing`.
async fn latest_run(
    args: &ResumeArgs,
    inventory: &crate::inventory::Inventory,
    runtime_dir: &Path,
    nothing: &str,
) -> anyhow::Result<(ClusterDir, LocalLock, RunDir)> {
    let any_pin: EngineVersion = "0.0.0".parse().expect("valid");
    let opts = gather_options(&args.cluster, &any_pin, runtime_dir);
    let id = gather::cluster_id(inventory, &opts).await?;
    let cluster = ClusterDir::open(&state_base(&args.run), &id)?;
    let lock = cluster.lock()?;
    let run = cluster.current()?.ok_or_else(|| {
        usage(format!(
            "no run of swarm {id} is recorded in {}: {nothing}",
            cluster.path.display()
        ))
    })?;
    Ok((cluster, lock, run))
}

/// The live cluster behind the executor, reusing the gathering connections.
fn live_ops(gathered: &Gathered, conns: Connections, runtime_dir: &Path) -> LiveOps {
    let manager_id = gathered
        .facts
        .cluster
        .nodes
        .iter()
        .find(|n| {
            gathered
                .facts
                .hosts
                .get(&n.id)
                .is_some_and(|h| h.host == conns.manager.host)
                || n.hostname == conns.manager.host
        })
        .map(|n| n.id.clone())
        .unwrap_or_default();
    LiveOps::new(
        conns.hosts,
        (manager_id, conns.manager),
        runtime_dir.to_path_buf(),
    )
}

/// Starts a new run of `plan`: takes the swarm's lease first, so that a
/// refused run leaves no trace in the state directory, then records the
/// plan and a fresh state as the cluster's current run.
async fn start_run(
    cluster: &ClusterDir,
    plan: &Plan,
    ops: &LiveOps,
    gathered: &Gathered,
    break_lock: bool,
    ignored_checks: Vec<String>,
) -> anyhow::Result<(RunDir, RunState)> {
    let run_id = new_run_id();
    take_lease(ops, gathered, &run_id, break_lock).await?;
    let run = cluster.run(&run_id);
    run.create()?;
    plan::file::save(plan, &run.plan_path())?;
    let state = RunState::new(
        run_id.clone(),
        plan.cluster_id.clone(),
        plan.target.clone(),
        plan::file::digest(plan)?,
        plan.steps.len(),
        ignored_checks,
    );
    run.save_state(&state)?;
    cluster.set_current(&run_id)?;
    Ok((run, state))
}

/// Takes the swarm's run lease for a new run, or fails with exit 75.
async fn take_lease(
    ops: &LiveOps,
    g: &Gathered,
    run_id: &str,
    break_lock: bool,
) -> anyhow::Result<()> {
    use crate::exec::ops::{Lease, LeaseOutcome, Ops};
    let via = g
        .facts
        .managers()
        .find(|m| m.is_reachable_manager() && g.facts.hosts.contains_key(&m.id))
        .map(|m| m.id.clone())
        .context("no reachable manager to hold the run lease")?;
    let lease = Lease {
        run_id: run_id.to_string(),
        owner: crate::exec::state::owner(),
        started_at: crate::exec::state::now(),
        expires_at: humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() + RunOptions::default().lease_ttl,
        )
        .to_string(),
    };
    match ops.acquire_lease(&via, &lease, break_lock).await? {
        LeaseOutcome::Acquired => Ok(()),
        LeaseOutcome::Held(l) => Err(crate::exec::runner::lease_held_error(&l)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    args: &RunArgs,
    quiet: bool,
    gathered: &Gathered,
    plan: &Plan,
    run: RunDir,
    state: RunState,
    ops: LiveOps,
    playbooks: &Playbooks,
    unlock_key: Option<String>,
) -> anyhow::Result<u8> {
    let opts = RunOptions {
        drain_timeout: args.drain_timeout,
        verify_timeout: args.verify_timeout,
        converge_timeout: args.converge_timeout,
        script_timeout: args.script_timeout,
        break_lock: args.break_lock,
        unlock_key,
        ..Default::default()
    };
    let ui = Ui::new(args.output == Output::Json, quiet);
    let emit = |e: &Event| ui.event(e);
    let stop = Arc::new(AtomicBool::new(false));
    let runner = Runner::new(
        &ops,
        plan,
        &gathered.facts,
        playbooks,
        &opts,
        run.clone(),
        state,
        &emit,
        stop.clone(),
    )?;

    // Ctrl-C once: finish the current step, stop at a safe point. Twice: now.
    let stop_flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop_flag.store(true, Ordering::SeqCst);
            eprintln!("{}", crate::ui::line(&Event::StopRequested));
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("aborted: the interrupted step runs again on `swarm-upgrade resume`");
                std::process::exit(i32::from(exit_code::INTERRUPTED));
            }
        }
    });

    let status = runner.execute().await?;
    let state = runner.state().await;
    ops.close().await;
    let journal = run.journal_path();
    match status {
        RunStatus::Done => {
            match &plan.reverts_run {
                Some(r) => eprintln!("rollback of run {r} complete; journal: {}", journal.display()),
                None => eprintln!("upgrade to {} complete; journal: {}", plan.target, journal.display()),
            }
            Ok(exit_code::SUCCESS)
        }
        RunStatus::Interrupted => Err(Error::Interrupted(format!(
            "stopped at a safe point after step {}; continue with `swarm-upgrade resume` (journal: {})",
            state.steps.iter().filter(|s| s.status == crate::exec::state::StepStatus::Done).map(|s| s.index).max().unwrap_or(0),
            journal.display()
        ))
        .into()),
        RunStatus::RolledBack => Err(Error::RolledBack(format!(
            "{}\nrolled back: {}; the run stopped there and no later node was touched. Journal: {}",
            state.failure.unwrap_or_default(),
            state.rolled_back.join(", "),
            journal.display()
        ))
        .into()),
        RunStatus::RollbackFailed => Err(Error::RollbackFailed(format!(
            "{}\nJournal: {}",
            state.failure.unwrap_or_default(),
            journal.display()
        ))
        .into()),
        RunStatus::Failed | RunStatus::Running => Err(anyhow::anyhow!(
            "{}\nfix the cause, then `swarm-upgrade resume` (journal: {})",
            state.failure.unwrap_or_else(|| "the run stopped".into()),
            journal.display()
        )),
    }
}

/// The saved plan must still describe this cluster: same nodes, versions,
/// availability and steps as a plan made now.
fn revalidate(saved: &Plan, fresh: &Plan) -> anyhow::Result<()> {
    let mut diffs = vec![];
    if saved.cluster_id != fresh.cluster_id {
        diffs.push(format!(
            "cluster {} is not {}",
            fresh.cluster_id, saved.cluster_id
        ));
    }
    for n in &saved.nodes {
        match fresh.nodes.iter().find(|f| f.id == n.id) {
            None => diffs.push(format!("node {} left the swarm", n.name)),
            Some(f) => {
                if f.current != n.current {
                    diffs.push(format!(
                        "{} runs {} now, {} when planned",
                        n.name, f.current, n.current
                    ));
                }
                if f.availability != n.availability {
                    diffs.push(format!("{} availability changed", n.name));
                }
                if f.role != n.role || f.leader != n.leader {
                    diffs.push(format!("{} role or leadership changed", n.name));
                }
                if f.packages != n.packages {
                    diffs.push(format!("{}: the resolved packages changed", n.name));
                }
            }
        }
    }
    for f in &fresh.nodes {
        if !saved.nodes.iter().any(|n| n.id == f.id) {
            diffs.push(format!("node {} joined the swarm", f.name));
        }
    }
    let blocked: Vec<&str> = fresh
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Block)
        .map(|f| f.id.as_str())
        .collect();
    if !blocked.is_empty() {
        diffs.push(format!("checks block now: {}", blocked.join(", ")));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Error::Blocked(format!(
            "the cluster no longer matches the saved plan; make a new one with `swarm-upgrade plan --out`:\n  {}",
            diffs.join("\n  ")
        ))
        .into())
    }
}

fn print_plan(plan: &Plan, output: Output) {
    match output {
        Output::Table => eprint!("{}", plan::render::table(plan)),
        Output::Json => {
            if let Ok(s) = serde_json::to_string(
                &serde_json::json!({"event": "plan", "plan": plan::render::json(plan)}),
            ) {
                println!("{s}");
            }
        }
    }
}

fn confirm(plan: &Plan) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(usage(
            "refusing to start without confirmation: stdin is not a terminal; pass --yes to confirm",
        ));
    }
    eprint!(
        "{} {} node(s) of swarm {}{}? Type `yes` to start: ",
        if plan.reverts_run.is_some() {
            "Roll back"
        } else {
            "Upgrade"
        },
        plan.nodes.iter().filter(|n| n.order.is_some()).count(),
        plan.cluster_id,
        if plan.reverts_run.is_some() {
            String::new()
        } else {
            format!(" to {}", plan.target)
        }
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(usage("not confirmed: nothing was changed"));
    }
    Ok(())
}

/// Every remote command the plan would run, in order; nothing is executed.
fn print_dry_run(plan: &Plan, g: &Gathered, playbooks: &Playbooks) -> anyhow::Result<()> {
    let run_id = "DRY-RUN";
    println!("# dry run: every remote command and API call, in order; nothing is executed");
    for s in &plan.steps {
        let node = s.node.as_deref().unwrap_or("swarm");
        let Some(id) = &s.node_id else {
            println!(
                "[{}] {node} {}: GET /services?status=true until running == desired for every service",
                s.index,
                s.action.name()
            );
            continue;
        };
        let n = plan
            .nodes
            .iter()
            .find(|n| &n.id == id)
            .context("unknown node")?;
        let init = g.facts.hosts.get(id).map(|h| h.init).unwrap_or_default();
        let script = match s.action {
            Action::StopEngine => Some(Script::Stop),
            Action::Backup => Some(Script::Backup),
            Action::Install => Some(Script::Install),
            Action::StartEngine => Some(Script::Start),
            _ => None,
        };
        match script {
            Some(which) => {
                let env = crate::exec::runner::script_env(n, run_id);
                let cmd = playbooks
                    .get(
                        n.method
                            .unwrap_or(crate::version::resolve::Method::DebianApt),
                    )
                    .command(which, init, &env)?;
                println!(
                    "[{}] {node} {} on {}:\n  {}",
                    s.index,
                    s.action.name(),
                    n.host,
                    cmd.display().replace('\n', "\n  ")
                );
            }
            None => {
                let what = match s.action {
                    Action::Drain => format!(
                        "POST /nodes/{id}/update availability=drain, labels swarm-upgrade.run, swarm-upgrade.availability={}",
                        crate::exec::runner::availability_name(n.availability)
                    ),
                    Action::WaitDrained => format!(
                        "GET /tasks?filters={{\"node\":[\"{id}\"]}} until no task is running"
                    ),
                    Action::Verify => format!(
                        "GET /info on {} until version {} and swarm active; GET /nodes through another manager: ready, reachable, quorum",
                        n.host, plan.target
                    ),
                    Action::RestoreAvailability => format!(
                        "POST /nodes/{id}/update availability={}",
                        crate::exec::runner::availability_name(
                            s.availability.unwrap_or(n.availability)
                        )
                    ),
                    _ => String::new(),
                };
                println!("[{}] {node} {}: {what}", s.index, s.action.name());
            }
        }
    }
    Ok(())
}

fn unlock_key(args: &RunArgs) -> anyhow::Result<Option<String>> {
    if let Some(p) = &args.unlock_key_file {
        let key = std::fs::read_to_string(p).map_err(|e| {
            usage(format!(
                "{}: cannot read the unlock key file: {e}",
                p.display()
            ))
        })?;
        let key = key.trim().to_string();
        if key.is_empty() {
            return Err(usage(format!(
                "{}: the unlock key file is empty",
                p.display()
            )));
        }
        return Ok(Some(key));
    }
    Ok(std::env::var("SWARM_UPGRADE_UNLOCK_KEY")
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty()))
}

pub fn state_base(args: &RunArgs) -> std::path::PathBuf {
    args.state_dir.clone().unwrap_or_else(default_base)
}
