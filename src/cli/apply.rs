//! `swarm-upgrade apply`, `resume` and `rollback`: arguments turned into
//! options, then [`crate::launch`] does the work.

use super::{
    ApplyArgs, Output, RestartArgs, ResumeArgs, RollbackArgs, cluster_options, launch_options,
    runtime,
};
use crate::cluster::Cluster;
use crate::error::usage;
use crate::launch::{self, ApplyRequest, ResumeRequest};
use crate::plan;
use crate::ui::Terminal;

pub fn apply(args: &ApplyArgs, quiet: bool) -> anyhow::Result<u8> {
    let opts = launch_options(&args.run)?;
    crate::cluster::validate_waivers(&args.ignore_check, &opts.hazards)?;
    let cluster = Cluster::open(cluster_options(&args.cluster)?)?;
    let saved = args.plan.as_deref().map(plan::file::load).transpose()?;
    if let Some(p) = &saved
        && !p.operation.is_upgrade()
    {
        return Err(usage(
            "the saved plan is a restart plan (plan --restart): run `swarm-upgrade restart` with the same selection instead",
        ));
    }
    if let Some(p) = &saved
        && p.target != args.pin
    {
        return Err(usage(format!(
            "the saved plan is for {}, not --pin {}",
            p.target, args.pin
        )));
    }
    let req = ApplyRequest {
        pin: args.pin.clone(),
        max_parallel: args.max_parallel.map(usize::from),
        saved,
        ignore_checks: args.ignore_check.clone(),
        dry_run: args.dry_run,
        canary: args.canary.canary(),
        operation: plan::Operation::Upgrade,
        selection: args.select.selection(),
        prepull: args.prepull,
        reboot: args.reboot,
        hooks: super::hooks_of(&args.cluster)?,
    };
    let fe = Terminal::new(args.run.output == Output::Json, quiet).wide(args.run.wide);
    runtime()?.block_on(launch::apply(&cluster, &opts, &req, &fe))
}

/// `restart`: apply's machinery with the restart plan.
pub fn restart(args: &RestartArgs, quiet: bool) -> anyhow::Result<u8> {
    let opts = launch_options(&args.run)?;
    let cluster = Cluster::open(cluster_options(&args.cluster)?)?;
    let req = ApplyRequest {
        pin: launch::restart_read_pin(),
        max_parallel: args.max_parallel.map(usize::from),
        saved: None,
        ignore_checks: args.ignore_check.clone(),
        dry_run: args.dry_run,
        canary: Default::default(),
        operation: plan::Operation::Restart,
        selection: args.select.selection(),
        prepull: args.prepull,
        reboot: args.reboot,
        hooks: super::hooks_of(&args.cluster)?,
    };
    let fe = Terminal::new(args.run.output == Output::Json, quiet).wide(args.run.wide);
    runtime()?.block_on(launch::apply(&cluster, &opts, &req, &fe))
}

pub fn resume(args: &ResumeArgs, quiet: bool) -> anyhow::Result<u8> {
    let opts = launch_options(&args.run)?;
    crate::cluster::validate_waivers(&args.ignore_check, &opts.hazards)?;
    let cluster = Cluster::open(cluster_options(&args.cluster)?)?;
    let fe = Terminal::new(args.run.output == Output::Json, quiet).wide(args.run.wide);
    let req = ResumeRequest {
        ignore_checks: args.ignore_check.clone(),
        dry_run: args.dry_run,
    };
    runtime()?.block_on(launch::resume(&cluster, &opts, &req, &fe))
}

pub fn rollback(args: &RollbackArgs, quiet: bool) -> anyhow::Result<u8> {
    let opts = launch_options(&args.run)?;
    let cluster = Cluster::open(cluster_options(&args.cluster)?)?;
    let fe = Terminal::new(args.run.output == Output::Json, quiet).wide(args.run.wide);
    runtime()?.block_on(launch::rollback(&cluster, &opts, &fe))
}
