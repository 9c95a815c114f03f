//! Continuing an unfinished run (`apply` with the run's pin, or `resume`):
//! what the operator asks now is checked against what the run recorded, and
//! the preflight checks run again, before anything is touched. A resume
//! without the unlock key, or after sudo was taken away, must stop before
//! it drains a node it could not bring back.
//!
//! Pure: the caller gathers the facts and executes.

use crate::checks::{Finding, Severity};
use crate::cluster::{self, PlanRequest};
use crate::error::{Error, usage};
use crate::exec::state::RunState;
use crate::facts::Gathered;
use crate::hazards::Catalogue;
use crate::plan::{self, Plan};
use crate::version::EngineVersion;

/// What the operator asked for on the command line that continues a run.
/// `None`: not given (the run's own value holds).
#[derive(Debug, Default)]
pub struct Asked<'a> {
    pub pin: Option<&'a EngineVersion>,
    /// The command that continues it: `apply` (upgrade) or `restart`.
    pub operation: Option<plan::Operation>,
    /// `--nodes`/`--exclude`/`--selector`, when any was given.
    pub selection: Option<&'a plan::Selection>,
    /// `--plan`: a saved plan.
    pub saved: Option<&'a Plan>,
    pub max_parallel: Option<usize>,
    /// `--ignore-check`: added to the run's waivers (and recorded).
    pub ignore_checks: &'a [String],
}

/// Checks re-run before a run continues, whatever it is: what the
/// controller needs to bring every node back (sudo, the unlock key, SSH to
/// every host, each host the node it was), and what makes an engine fail
/// at start. Checks of the
/// swarm's shape (quorum budget, node health, drain room, overlay
/// addresses) are left out: the run itself drains and stops nodes, and the
/// executor's live quorum guard judges the swarm before each manager goes
/// down.
const ALWAYS: [&str; 6] = [
    "sudo",
    "autolock",
    "ssh-reachable",
    "node-identity",
    "live-restore",
    "pki",
];

/// Re-run too when the run upgrades (they judge the target version, which
/// a rollback run does not install).
const UPGRADE_ONLY: [&str; 5] = [
    "pin-resolvable",
    "version-skew",
    "known-issues",
    "api-version",
    "daemon-config",
];

/// Refuses, with a usage error that says what to do, a flag that conflicts
/// with the run being continued.
pub fn refuse_conflicts(
    run_plan: &Plan,
    state: &RunState,
    asked: &Asked<'_>,
) -> anyhow::Result<()> {
    let run = &state.run_id;
    if let Some(op) = asked.operation
        && op != run_plan.operation
    {
        let (was, cmd) = match run_plan.operation {
            plan::Operation::Upgrade => ("an upgrade", format!("apply --pin {}", state.pin)),
            plan::Operation::Restart => ("a restart", "restart".to_string()),
        };
        return Err(usage(format!(
            "run {run} ({was}) is unfinished; continue it with `swarm-upgrade resume` (or `{cmd}`) before starting another"
        )));
    }
    if let Some(sel) = asked.selection
        && !sel.is_empty()
        && *sel != run_plan.selection
    {
        return Err(usage(format!(
            "--nodes/--exclude/--selector: unfinished run {run} was planned with another selection              ({}); continue it without these flags",
            serde_json::to_string(&run_plan.selection).unwrap_or_default()
        )));
    }
    if let Some(pin) = asked.pin
        && *pin != state.pin
    {
        return Err(usage(format!(
            "run {run} to {} is unfinished; resume it with `swarm-upgrade resume` (or `apply --pin {}`), \
             or finish it before upgrading to {pin}",
            state.pin, state.pin
        )));
    }
    if let Some(saved) = asked.saved {
        let digest = plan::file::digest(saved)?;
        if digest != state.plan_sha256 {
            return Err(usage(format!(
                "--plan: the saved plan (sha256 {digest}) is not the plan of unfinished run {run} \
                 (sha256 {}); continue that run without --plan, or finish it first",
                state.plan_sha256
            )));
        }
    }
    if let Some(n) = asked.max_parallel
        && n != run_plan.max_parallel
    {
        return Err(usage(format!(
            "--max-parallel {n}: unfinished run {run} was planned with --max-parallel {}, and its \
             batches are fixed; continue it with --max-parallel {} or without the flag",
            run_plan.max_parallel, run_plan.max_parallel
        )));
    }
    Ok(())
}

/// The run's waivers plus the new ones, each once.
pub fn waivers(state: &RunState, asked: &Asked<'_>) -> Vec<String> {
    let mut all = state.ignored_checks.clone();
    for id in asked.ignore_checks {
        if !all.contains(id) {
            all.push(id.clone());
        }
    }
    all
}

/// The preflight checks that still apply to a run in progress, on the
/// facts gathered now; the blockers not waived.
pub fn blockers(
    g: &Gathered,
    run_plan: &Plan,
    waived: &[String],
    unlock_key: bool,
    hazards: &Catalogue,
) -> Vec<Finding> {
    let upgrading = run_plan.reverts_run.is_none() && run_plan.operation.is_upgrade();
    let fresh = cluster::plan(
        g,
        &PlanRequest {
            pin: &run_plan.target,
            max_parallel: run_plan.max_parallel,
            waived,
            unlock_key,
            hazards,
            canary: Default::default(),
            operation: run_plan.operation,
            selection: &run_plan.selection,
            prepull: false,
            reboot: false,
            hooks: &[],
            staged: &[],
        },
    );
    fresh
        .findings
        .into_iter()
        .filter(|f| f.severity == Severity::Block)
        .filter(|f| {
            ALWAYS.contains(&f.id.as_str())
                || (upgrading
                    && UPGRADE_ONLY.contains(&f.id.as_str())
                    && !in_the_run(g, f.node.as_deref()))
        })
        .collect()
}

/// What stops a rollback plan from starting: the checks that always apply
/// (an unreadable host, sudo, autolock, ...), for the nodes it reverts and
/// for the swarm as a whole; a node it leaves alone may be unreachable.
pub fn rollback_blockers(
    g: &Gathered,
    revert: &Plan,
    unlock_key: bool,
    hazards: &Catalogue,
) -> Vec<Finding> {
    let mut found = blockers(g, revert, &[], unlock_key, hazards);
    found.retain(|f| {
        f.node
            .as_deref()
            .is_none_or(|n| revert.steps.iter().any(|s| s.node.as_deref() == Some(n)))
    });
    found
}

/// The error for a rollback that cannot start.
pub fn rollback_blocked(reverted: &RunState, blockers: &[Finding]) -> anyhow::Error {
    Error::Blocked(format!(
        "the rollback of run {} cannot start: nothing was changed (fix these, then run \
         `swarm-upgrade rollback` again):\n{}",
        reverted.run_id,
        listed(blockers)
    ))
    .into()
}

/// One finding per line, with its check's ID (what `--ignore-check` takes).
fn listed(blockers: &[Finding]) -> String {
    blockers
        .iter()
        .map(|f| format!("  [{}] {}", f.id, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `node` is one the run has taken over (it carries the run's label): what the
/// target-version checks see there may be the run's own half-done install (a run killed
/// inside `install` leaves dockerd owned by no package), which its steps redo; its
/// target was resolved when the run started and is in the plan.
fn in_the_run(g: &Gathered, node: Option<&str>) -> bool {
    let Some(node) = node else { return false };
    g.facts
        .cluster
        .nodes
        .iter()
        .any(|n| n.hostname == node && n.labels.contains_key(crate::exec::LABEL_RUN))
}

/// The error that stops a continuation on `blockers` (exit 3).
pub fn blocked(state: &RunState, blockers: &[Finding]) -> anyhow::Error {
    Error::Blocked(format!(
        "run {} cannot continue: nothing was changed (fix these, or waive one with \
         --ignore-check ID if you accept the risk):\n{}",
        state.run_id,
        listed(blockers)
    ))
    .into()
}

/// The part of `run_plan` still to run (the steps not done), for the dry run.
pub fn remaining(run_plan: &Plan, state: &RunState) -> Plan {
    let mut rest = run_plan.clone();
    rest.steps.retain(|s| !state.done(s.index));
    rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::state::StepStatus;
    use crate::facts::model::{NodeState, Reachability};
    use crate::plan::testutil::{LAB_CLUSTER_ID, all_resolved, lab_facts, lab_plan, pin};

    fn lab_gathered() -> Gathered {
        let facts = lab_facts();
        Gathered {
            resolutions: all_resolved(&facts),
            facts,
        }
    }

    fn state_of(plan: &Plan) -> RunState {
        RunState::new(
            "r1".into(),
            LAB_CLUSTER_ID.into(),
            plan.target.clone(),
            plan::file::digest(plan).unwrap(),
            plan.steps.len(),
            vec!["drain-feasibility".into()],
        )
    }

    #[test]
    fn conflicting_flags_are_refused_naming_the_run_and_the_fix() {
        let plan = lab_plan();
        let st = state_of(&plan);
        let ok = Asked {
            pin: Some(&plan.target),
            saved: Some(&plan),
            max_parallel: Some(plan.max_parallel),
            ..Default::default()
        };
        refuse_conflicts(&plan, &st, &ok).unwrap();
        refuse_conflicts(&plan, &st, &Asked::default()).unwrap();

        let other_pin = pin("27.0.3");
        let err = refuse_conflicts(
            &plan,
            &st,
            &Asked {
                pin: Some(&other_pin),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code_of(&err), 2);
        assert!(
            err.to_string()
                .contains("resume it with `swarm-upgrade resume`"),
            "{err}"
        );

        let mut other_plan = plan.clone();
        other_plan.max_parallel = 2;
        let err = refuse_conflicts(
            &plan,
            &st,
            &Asked {
                saved: Some(&other_plan),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code_of(&err), 2);
        assert!(
            err.to_string()
                .contains("is not the plan of unfinished run r1"),
            "{err}"
        );

        let err = refuse_conflicts(
            &plan,
            &st,
            &Asked {
                max_parallel: Some(2),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(crate::error::exit_code_of(&err), 2);
        assert!(
            err.to_string().contains("planned with --max-parallel 1"),
            "{err}"
        );
    }

    #[test]
    fn new_waivers_add_to_the_runs_own() {
        let plan = lab_plan();
        let st = state_of(&plan);
        let more = ["sudo".to_string(), "drain-feasibility".to_string()];
        let asked = Asked {
            ignore_checks: &more,
            ..Default::default()
        };
        assert_eq!(waivers(&st, &asked), ["drain-feasibility", "sudo"]);
    }

    #[test]
    fn a_host_without_sudo_or_a_missing_unlock_key_blocks_the_continuation() {
        let plan = lab_plan();
        let mut g = lab_gathered();
        assert!(
            blockers(&g, &plan, &[], false, &Catalogue::default()).is_empty(),
            "the healthy lab continues"
        );

        let m2 = g
            .facts
            .cluster
            .nodes
            .iter()
            .find(|n| n.hostname == "lab-m2")
            .unwrap()
            .id
            .clone();
        g.facts.hosts.get_mut(&m2).unwrap().sudo_ok = false;
        let b = blockers(&g, &plan, &[], false, &Catalogue::default());
        assert_eq!(
            b.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["sudo"],
            "{b:?}"
        );
        assert!(
            blockers(&g, &plan, &["sudo".into()], false, &Catalogue::default()).is_empty(),
            "waived"
        );
        let err = blocked(&state_of(&plan), &b);
        assert_eq!(crate::error::exit_code_of(&err), 3);
        assert!(err.to_string().contains("nothing was changed"), "{err}");

        let mut g = lab_gathered();
        g.facts.cluster.swarm.autolock = true;
        let b = blockers(&g, &plan, &[], false, &Catalogue::default());
        assert_eq!(
            b.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["autolock"],
            "{b:?}"
        );
        assert!(
            blockers(&g, &plan, &[], true, &Catalogue::default()).is_empty(),
            "with the key"
        );
    }

    #[test]
    fn a_rollback_is_refused_when_a_node_it_reverts_cannot_be_read() {
        let plan = lab_plan();
        let id_of = |g: &Gathered, name: &str| {
            g.facts
                .cluster
                .nodes
                .iter()
                .find(|n| n.hostname == name)
                .unwrap()
                .id
                .clone()
        };
        let mut g = lab_gathered();
        let w1 = id_of(&g, "lab-w1");
        let revert = plan::rollback::build(&plan, "r1", std::slice::from_ref(&w1));
        let none = rollback_blockers(&g, &revert, false, &Catalogue::default());
        assert!(none.is_empty(), "{none:?}");

        // A node it leaves alone may be out of reach.
        let w2 = id_of(&g, "lab-w2");
        g.facts.unreachable.insert(w2, "connection refused".into());
        let none = rollback_blockers(&g, &revert, false, &Catalogue::default());
        assert!(none.is_empty(), "{none:?}");

        g.facts.unreachable.insert(w1, "banner exchange".into());
        let b = rollback_blockers(&g, &revert, false, &Catalogue::default());
        assert_eq!(
            b.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["ssh-reachable"],
            "{b:?}"
        );
        let err = rollback_blocked(&state_of(&plan), &b);
        assert_eq!(crate::error::exit_code_of(&err), 3);
        let text = err.to_string();
        assert!(
            text.contains("nothing was changed") && text.contains("lab-w1"),
            "{text}"
        );
    }

    #[test]
    fn a_node_killed_inside_its_install_does_not_block_its_continuation() {
        // Killed inside `install`: docker.io is half replaced and dockerd belongs to no
        // known package, so pin-resolvable blocks, unless the node is the run's own.
        let plan = lab_plan();
        let mut g = lab_gathered();
        let m2 = g
            .facts
            .cluster
            .nodes
            .iter()
            .find(|n| n.hostname == "lab-m2")
            .unwrap()
            .id
            .clone();
        g.resolutions.insert(
            m2.clone(),
            Err(crate::version::resolve::ResolveError::UnknownInstall(
                "/usr/sbin/dockerd belongs to no known engine package".into(),
            )),
        );
        let b = blockers(&g, &plan, &[], false, &Catalogue::default());
        assert_eq!(
            b.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            ["pin-resolvable"],
            "{b:?}"
        );
        g.facts
            .cluster
            .nodes
            .iter_mut()
            .find(|n| n.id == m2)
            .unwrap()
            .labels
            .insert(crate::exec::LABEL_RUN.into(), "run-1".into());
        assert!(blockers(&g, &plan, &[], false, &Catalogue::default()).is_empty());
    }

    #[test]
    fn a_manager_the_run_itself_stopped_does_not_block_its_continuation() {
        // Killed while lab-m2's engine was down: the swarm sees it down and
        // quorum-budget/node-health block a NEW run, but the run that
        // stopped it must be able to bring it back.
        let plan = lab_plan();
        let mut g = lab_gathered();
        let m2 = g
            .facts
            .cluster
            .nodes
            .iter_mut()
            .find(|n| n.hostname == "lab-m2")
            .unwrap();
        m2.state = NodeState::Down;
        m2.manager.as_mut().unwrap().reachability = Reachability::Unreachable;
        let fresh = cluster::plan(
            &g,
            &PlanRequest {
                pin: &plan.target,
                max_parallel: 1,
                waived: &[],
                unlock_key: false,
                hazards: &Catalogue::default(),
                canary: Default::default(),
                operation: plan::Operation::Upgrade,
                selection: &plan::Selection::default(),
                prepull: false,
                reboot: false,
                hooks: &[],
                staged: &[],
            },
        );
        assert!(fresh.is_blocked(), "a new run would be blocked");
        assert!(blockers(&g, &plan, &[], false, &Catalogue::default()).is_empty());
    }

    #[test]
    fn the_dry_run_of_a_continuation_leaves_out_the_steps_done() {
        let plan = lab_plan();
        let mut st = state_of(&plan);
        for i in 1..=4 {
            st.step_mut(i).status = StepStatus::Done;
        }
        let rest = remaining(&plan, &st);
        assert_eq!(rest.steps.len(), plan.steps.len() - 4);
        assert_eq!(rest.steps[0].index, 5);
    }
}
