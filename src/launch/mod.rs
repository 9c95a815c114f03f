//! Starting, continuing and reverting runs: the cluster's state directory
//! and its lock, a saved plan checked against the cluster, the preflight
//! verdict, the confirmation, the swarm's lease, and then the executor,
//! with Ctrl-C (or SIGTERM, SIGHUP) stopping it at a safe point. What the operator sees goes
//! through a [`Frontend`], so this module never prints.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::checks::Severity;
use crate::cluster::live::LiveOps;
use crate::cluster::{self, Cluster, PlanRequest, Reading};
use crate::error::{Error, usage};
use crate::exec::events::Event;
use crate::exec::lease::{Lease, LeaseOutcome};
use crate::exec::ops::Ops;
use crate::exec::rundir::{ClusterDir, LocalLock, RunDir};
use crate::exec::runner::{RunOptions, Runner};
use crate::exec::state::{RunState, RunStatus, StepStatus, new_run_id, now, owner};
use crate::exec::{dry_run, state};
use crate::exit_code;
use crate::facts::Gathered;
use crate::hazards::Catalogue;
use crate::observe::{ObserveOptions, Observers};
use crate::plan::{self, Action, Plan};
use crate::playbook::Playbooks;
use crate::version::EngineVersion;
use continuing::Asked;

mod continuing;
mod signals;

/// What the operator sees and answers.
pub trait Frontend: Sync {
    /// A progress line.
    fn log(&self, line: &str);
    /// The plan about to be executed (or refused).
    fn plan(&self, plan: &Plan);
    /// Asks to go ahead with `plan`; an error means "no".
    fn confirm(&self, plan: &Plan) -> anyhow::Result<()>;
    /// The dry run's text.
    fn dry_run(&self, text: &str);
    /// An executor event, as it happens.
    fn event(&self, event: &Event);
}

/// How runs execute (apply, resume, rollback).
pub struct LaunchOptions {
    pub run: RunOptions,
    pub playbooks: Playbooks,
    /// The engine-version hazards the preflight looks for.
    pub hazards: Catalogue,
    /// The base of the state directories (`--state-dir`).
    pub state_base: PathBuf,
    /// Go ahead without asking.
    pub yes: bool,
    /// Notifications and the metrics file.
    pub observe: ObserveOptions,
}

/// What `apply` asks for beyond the run options.
pub struct ApplyRequest {
    pub pin: EngineVersion,
    /// `None`: not given (1 for a new run; the run's own when continuing).
    pub max_parallel: Option<usize>,
    /// A plan saved by `plan --out`, executed exactly.
    pub saved: Option<Plan>,
    pub ignore_checks: Vec<String>,
    pub dry_run: bool,
    /// The canaries' soak and pause (a new run's; a continued run keeps its own).
    pub canary: plan::Canary,
    /// `restart` sets this; `pin` then only reads the cluster.
    pub operation: plan::Operation,
    pub selection: plan::Selection,
    /// `--prepull` (a saved plan brings its own).
    pub prepull: bool,
    /// `--reboot`: the hosts rebooted, not only their engines restarted.
    pub reboot: bool,
    /// The operator's hooks, for a new run (a continued run keeps its plan's).
    pub hooks: Vec<crate::hooks::Hook>,
}

/// The version a restart reads the cluster with: it resolves no package
/// (each node keeps the version it runs).
pub fn restart_read_pin() -> EngineVersion {
    EngineVersion(semver::Version::new(0, 0, 0))
}

/// What `resume` asks for beyond the run options.
#[derive(Debug, Default)]
pub struct ResumeRequest {
    pub ignore_checks: Vec<String>,
    pub dry_run: bool,
}

/// `apply`: gather, check, plan, confirm, execute; or continue the
/// cluster's unfinished run of the same pin.
pub async fn apply(
    cluster: &Cluster,
    opts: &LaunchOptions,
    req: &ApplyRequest,
    fe: &dyn Frontend,
) -> anyhow::Result<u8> {
    let log = |l: &str| fe.log(l);
    let reading = cluster.read(&req.pin, &log).await?;
    if let Err(e) = req
        .selection
        .validate(&reading.gathered.facts.cluster.nodes)
    {
        reading.close().await;
        return Err(usage(e));
    }
    if let Err(e) = cluster::check_hook_nodes(&req.hooks, &reading.gathered) {
        reading.close().await;
        return Err(e);
    }
    let dir = ClusterDir::open(&opts.state_base, &reading.gathered.facts.cluster.id)?;
    let _lock = dir.lock()?;
    let upgrade = req.operation.is_upgrade();

    // An unfinished run is continued, never silently replaced: a state
    // that cannot be read is an error naming the file (exit 2).
    if let Some(run) = dir.current()? {
        let (plan, state) = run.load(&reading.gathered.facts.cluster.id)?;
        // A run rolled back (exit 4) is continued with the same pin;
        // another pin starts a new run, whose plan reads what the old one
        // left in the swarm's labels.
        if state.status.resumable()
            && !(state.status == RunStatus::RolledBack
                && upgrade
                && plan.operation.is_upgrade()
                && state.pin != req.pin)
        {
            let asked = Asked {
                pin: upgrade.then_some(&req.pin),
                operation: Some(req.operation),
                selection: Some(&req.selection),
                saved: req.saved.as_ref(),
                max_parallel: req.max_parallel,
                ignore_checks: &req.ignore_checks,
            };
            return continue_run(reading, opts, plan, run, state, &asked, req.dry_run, fe).await;
        }
    }

    // A plan saved with `--reboot` is compared with one made the same way.
    let reboot = req.reboot
        || req
            .saved
            .as_ref()
            .is_some_and(|p| p.steps.iter().any(|s| s.action == plan::Action::Reboot));
    let fresh = cluster::plan(
        &reading.gathered,
        &PlanRequest {
            pin: &req.pin,
            max_parallel: req.max_parallel.unwrap_or(1),
            waived: &req.ignore_checks,
            unlock_key: opts.run.unlock_key.is_some(),
            hazards: &opts.hazards,
            canary: req.canary,
            operation: req.operation,
            selection: &req.selection,
            prepull: req.prepull || req.saved.as_ref().is_some_and(|p| !p.prepull.is_empty()),
            reboot,
            hooks: &req.hooks,
            staged: &opts.playbooks.staged(),
        },
    );
    let plan = match &req.saved {
        Some(saved) => {
            let diffs = plan::compare::differences(saved, &fresh);
            if !diffs.is_empty() {
                return Err(Error::Blocked(format!(
                    "the cluster no longer matches the saved plan; make a new one with `swarm-upgrade plan --out`:\n  {}",
                    diffs.join("\n  ")
                ))
                .into());
            }
            saved.clone()
        }
        None => fresh,
    };
    fe.plan(&plan);
    if plan.is_blocked() {
        reading.close().await;
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
        reading.close().await;
        fe.log(if upgrade && req.selection.is_empty() {
            "nothing to do: every node already runs the pin"
        } else {
            "nothing to do: no node in scope"
        });
        return Ok(exit_code::SUCCESS);
    }
    if req.dry_run {
        fe.dry_run(&dry_run::render(
            &plan,
            &reading.gathered.facts,
            &opts.playbooks,
            &opts.run,
        ));
        reading.close().await;
        return Ok(exit_code::SUCCESS);
    }
    if !opts.yes {
        fe.confirm(&plan)?;
    }
    let (gathered, ops) = reading.into_ops();
    let (run, state) = start_run(
        &dir,
        &plan,
        &gathered,
        &ops,
        opts,
        req.ignore_checks.clone(),
    )
    .await?;
    fe.log(&format!(
        "run {}: recorded in {}",
        state.run_id,
        run.path.display()
    ));
    execute(gathered, ops, opts, &plan, run, state, LeaseIs::Taken, fe).await
}

/// `resume`: the cluster's unfinished run, from its first step not done.
pub async fn resume(
    cluster: &Cluster,
    opts: &LaunchOptions,
    req: &ResumeRequest,
    fe: &dyn Frontend,
) -> anyhow::Result<u8> {
    let (id, _dir, _lock, run) =
        latest_run(cluster, opts, "nothing to resume (start one with apply)").await?;
    let (plan, state) = run.load(&id)?;
    if !state.status.resumable() {
        fe.log(&format!(
            "run {} ended as {:?}: nothing to resume",
            state.run_id, state.status
        ));
        return Ok(exit_code::SUCCESS);
    }
    let reading = cluster.read(&plan.target, &|l| fe.log(l)).await?;
    let asked = Asked {
        ignore_checks: &req.ignore_checks,
        ..Default::default()
    };
    continue_run(reading, opts, plan, run, state, &asked, req.dry_run, fe).await
}

/// Continues an unfinished run as a new one starts: conflicting flags
/// refused, the preflight checks that still apply run again on the facts
/// just read, the dry run or the confirmation, then the executor from the
/// first step not done.
#[allow(clippy::too_many_arguments)]
async fn continue_run(
    reading: Reading<'_>,
    opts: &LaunchOptions,
    plan: Plan,
    run: RunDir,
    mut state: RunState,
    asked: &Asked<'_>,
    dry_run: bool,
    fe: &dyn Frontend,
) -> anyhow::Result<u8> {
    let checked = (|| {
        continuing::refuse_conflicts(&plan, &state, asked)?;
        let waived = continuing::waivers(&state, asked);
        let blockers = continuing::blockers(
            &reading.gathered,
            &plan,
            &waived,
            opts.run.unlock_key.is_some(),
            &opts.hazards,
        );
        if !blockers.is_empty() {
            return Err(continuing::blocked(&state, &blockers));
        }
        Ok(waived)
    })();
    let waived = match checked {
        Ok(w) => w,
        Err(e) => {
            reading.close().await;
            return Err(e);
        }
    };
    fe.log(&format!(
        "continuing unfinished run {} to {} ({} of {} steps done; {})",
        state.run_id,
        state.pin,
        state.count(StepStatus::Done),
        state.steps.len(),
        run.path.display()
    ));
    fe.plan(&plan);
    if dry_run {
        fe.dry_run(&format!(
            "# continuing run {}: its {} steps done are left out\n{}",
            state.run_id,
            state.count(StepStatus::Done),
            dry_run::render(
                &continuing::remaining(&plan, &state),
                &reading.gathered.facts,
                &opts.playbooks,
                &opts.run,
            )
        ));
        reading.close().await;
        return Ok(exit_code::SUCCESS);
    }
    if !opts.yes
        && let Err(e) = fe.confirm(&plan)
    {
        reading.close().await;
        return Err(e);
    }
    if waived != state.ignored_checks {
        state.ignored_checks = waived;
        run.save_state(&state)?;
    }
    let (gathered, ops) = reading.into_ops();
    execute(gathered, ops, opts, &plan, run, state, LeaseIs::ToTake, fe).await
}

/// `rollback`: the nodes the last run upgraded, reverted in reverse order
/// from the backups it left on their hosts.
pub async fn rollback(
    cluster: &Cluster,
    opts: &LaunchOptions,
    fe: &dyn Frontend,
) -> anyhow::Result<u8> {
    let (id, dir, _lock, last) = latest_run(cluster, opts, "nothing to roll back").await?;
    let (last_plan, last_state) = last.load(&id)?;
    if last_plan.reverts_run.is_some() {
        if last_state.status.resumable() {
            return Err(usage(format!(
                "rollback run {} is unfinished: continue it with `swarm-upgrade resume`",
                last_state.run_id
            )));
        }
        fe.log(&format!(
            "the last run ({}) was a rollback: nothing to roll back",
            last_state.run_id
        ));
        return Ok(exit_code::SUCCESS);
    }
    // The nodes whose new packages went in and were not undone since.
    let upgraded: Vec<String> = last_plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Install && last_state.done(s.index))
        .filter_map(|s| s.node_id.clone())
        .collect();
    if upgraded.is_empty() {
        fe.log(&format!(
            "run {} upgraded no node that is still upgraded: nothing to roll back",
            last_state.run_id
        ));
        return Ok(exit_code::SUCCESS);
    }
    let revert = plan::rollback::build(&last_plan, &last_state.run_id, &upgraded);
    let reading = cluster.read(&last_plan.target, &|l| fe.log(l)).await?;
    // A node to revert whose host cannot be read (SSH) would be drained
    // through the manager, then found unreachable at its first command:
    // refused before anything changes, as `resume` refuses it.
    let blockers = continuing::rollback_blockers(
        &reading.gathered,
        &revert,
        opts.run.unlock_key.is_some(),
        &opts.hazards,
    );
    if !blockers.is_empty() {
        reading.close().await;
        return Err(continuing::rollback_blocked(&last_state, &blockers));
    }
    fe.plan(&revert);
    if !opts.yes {
        fe.confirm(&revert)?;
    }
    let (gathered, ops) = reading.into_ops();
    let (run, state) = start_run(&dir, &revert, &gathered, &ops, opts, vec![]).await?;
    fe.log(&format!(
        "rollback run {} of run {}: recorded in {}",
        state.run_id,
        last_state.run_id,
        run.path.display()
    ));
    execute(gathered, ops, opts, &revert, run, state, LeaseIs::Taken, fe).await
}

/// The swarm's cluster ID, its state directory, locked, and its latest
/// run; without one, a usage error that ends in `nothing`.
async fn latest_run(
    cluster: &Cluster,
    opts: &LaunchOptions,
    nothing: &str,
) -> anyhow::Result<(String, ClusterDir, LocalLock, RunDir)> {
    let id = cluster.id().await?;
    let dir = ClusterDir::open(&opts.state_base, &id)?;
    let lock = dir.lock()?;
    let run = dir.current()?.ok_or_else(|| {
        usage(format!(
            "no run of swarm {id} is recorded in {}: {nothing}",
            dir.path.display()
        ))
    })?;
    Ok((id, dir, lock, run))
}

/// Starts a new run of `plan`: takes the swarm's lease first, so that a
/// refused run leaves no trace in the state directory, then records the
/// plan and a fresh state as the cluster's current run.
async fn start_run(
    dir: &ClusterDir,
    plan: &Plan,
    g: &Gathered,
    ops: &LiveOps,
    opts: &LaunchOptions,
    ignored_checks: Vec<String>,
) -> anyhow::Result<(RunDir, RunState)> {
    let run_id = new_run_id();
    let via = g
        .facts
        .managers()
        .find(|m| m.is_reachable_manager() && g.facts.hosts.contains_key(&m.id))
        .map(|m| m.id.clone())
        .ok_or_else(|| anyhow::anyhow!("no reachable manager to hold the run lease"))?;
    let lease = Lease::new(&run_id, &owner(), &now(), opts.run.lease_ttl);
    match ops.acquire_lease(&via, &lease, opts.run.break_lock).await? {
        LeaseOutcome::Acquired => {}
        LeaseOutcome::Held(l) => return Err(l.held_error()),
    }
    let run = dir.run(&run_id);
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
    dir.set_current(&run_id)?;
    Ok((run, state))
}

/// Executes `plan` from `state` over the reading's connections, and turns
/// how the run ended into an exit code or an error that says what next.
/// Whether the run's lease is already this run's when its steps start.
enum LeaseIs {
    /// Just taken by [`start_run`] (a new run).
    Taken,
    /// A resumed run takes it first.
    ToTake,
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    gathered: Gathered,
    ops: LiveOps,
    opts: &LaunchOptions,
    plan: &Plan,
    run: RunDir,
    state: RunState,
    lease: LeaseIs,
    fe: &dyn Frontend,
) -> anyhow::Result<u8> {
    let observers = Observers::start(&opts.observe, plan, &state, &opts.run.skip_nodes);
    let warn = |w: &str| fe.log(&format!("warning: {w}"));
    let emit = |e: &Event| {
        fe.event(e);
        observers.event(e, &warn);
    };
    let stop = Arc::new(AtomicBool::new(false));
    let runner = Runner::new(
        &ops,
        plan,
        &gathered.facts,
        &opts.playbooks,
        &opts.run,
        run.clone(),
        state,
        &emit,
        stop.clone(),
    )?;
    if let LeaseIs::Taken = lease {
        runner.lease_taken();
    }
    let signals = tokio::spawn(signals::StopSignals::register()?.stop_run(stop));
    let status = runner.execute().await;
    signals.abort();
    let status = status?;
    let state = runner.state().await;
    drop(runner);
    observers.finish(&warn);
    ops.close().await;
    outcome(plan, status, &state, &run)
}

fn outcome(plan: &Plan, status: RunStatus, state: &RunState, run: &RunDir) -> anyhow::Result<u8> {
    let journal = run.journal_path();
    let journal = journal.display();
    let failure = || state.failure.clone().unwrap_or_default();
    match status {
        RunStatus::Done => {
            match &plan.reverts_run {
                Some(r) => eprintln!("rollback of run {r} complete; journal: {journal}"),
                None if !plan.operation.is_upgrade() => {
                    eprintln!("restart complete; journal: {journal}")
                }
                None => eprintln!("upgrade to {} complete; journal: {journal}", plan.target),
            }
            Ok(exit_code::SUCCESS)
        }
        RunStatus::Interrupted => Err(Error::Interrupted(format!(
            "stopped at a safe point after step {}; continue with `swarm-upgrade resume` (journal: {journal})",
            state
                .steps
                .iter()
                .filter(|s| s.status == state::StepStatus::Done)
                .map(|s| s.index)
                .max()
                .unwrap_or(0),
        ))
        .into()),
        RunStatus::RolledBack => Err(Error::RolledBack(format!(
            "{}\nrolled back: {}; the run stopped there and no later node was touched. Fix the cause and `swarm-upgrade resume`, from this or any machine. Journal: {journal}",
            failure(),
            state.rolled_back.join(", "),
        ))
        .into()),
        RunStatus::RollbackFailed => {
            Err(Error::RollbackFailed(format!("{}\nJournal: {journal}", failure())).into())
        }
        RunStatus::Failed | RunStatus::Running => Err(Error::StoppedSafely(format!(
            "{}\nfix the cause, then `swarm-upgrade resume`, from this or any machine (journal: {journal})",
            state
                .failure
                .clone()
                .unwrap_or_else(|| "the run stopped".into()),
        ))
        .into()),
    }
}
