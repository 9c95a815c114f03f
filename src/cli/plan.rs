//! `swarm-upgrade plan`: facts → checks → plan, printed; nothing changes.

use anyhow::Context;

use super::{ClusterArgs, Output, PlanArgs};
use crate::checks::{self, CheckContext, Finding};
use crate::error::{Error, usage};
use crate::exit_code;
use crate::facts::gather::{self, Connections, GatherOptions, Gathered};
use crate::inventory::Inventory;
use crate::plan::{self, Plan, PlanOptions};
use crate::transport::ssh::{self, SshOptions};
use crate::version::EngineVersion;
use crate::version::resolve::ResolveOptions;

/// Whether the environment provides a swarm unlock key (`plan` has no
/// `--unlock-key-file`; `apply` also counts its file).
pub fn unlock_key_available() -> bool {
    std::env::var_os("SWARM_UPGRADE_UNLOCK_KEY").is_some_and(|v| !v.is_empty())
}

pub fn run(args: &PlanArgs, quiet: bool) -> anyhow::Result<u8> {
    let log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let gathered = match &args.from_facts {
        Some(path) => load_facts(path)?,
        None => {
            let inventory = load_inventory(&args.cluster)?;
            let runtime = ssh::runtime_dir()?;
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async {
                let opts = gather_options(&args.cluster, &args.pin, runtime.path());
                let (gathered, conns) = gather::gather(&inventory, &opts, &log).await?;
                close(conns).await;
                Ok::<_, anyhow::Error>(gathered)
            })?
        }
    };
    if let Some(path) = &args.save_facts {
        let json = serde_json::to_vec_pretty(&gathered)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        log(&format!("facts saved to {}", path.display()));
    }
    let plan = build_plan(
        &gathered,
        &args.pin,
        usize::from(args.max_parallel),
        &[],
        unlock_key_available(),
    );
    match args.output {
        Output::Table => print!("{}", plan::render::table(&plan)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan::render::json(&plan))?
        ),
    }
    if let Some(path) = &args.out {
        plan::file::save(&plan, path)?;
        log(&format!("plan saved to {}", path.display()));
    }
    if plan.is_blocked() {
        let n = plan
            .findings
            .iter()
            .filter(|f| f.severity == checks::Severity::Block)
            .count();
        return Err(Error::Blocked(format!(
            "the plan is blocked by {n} finding(s); nothing was changed"
        ))
        .into());
    }
    Ok(exit_code::SUCCESS)
}

fn load_facts(path: &std::path::Path) -> anyhow::Result<Gathered> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "{}: cannot read the facts file: {e}",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "{}:{}:{}: not a facts file written by --save-facts: {e}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

pub fn load_inventory(args: &ClusterArgs) -> anyhow::Result<Inventory> {
    match (&args.inventory, &args.ansible_inventory) {
        (Some(p), _) => Inventory::load(p),
        (None, Some(p)) => Inventory::load_ansible(p),
        (None, None) => Err(usage(
            "no inventory: pass --inventory FILE (or set SWARM_UPGRADE_INVENTORY) or --ansible-inventory FILE",
        )),
    }
}

pub fn gather_options(
    args: &ClusterArgs,
    pin: &EngineVersion,
    runtime_dir: &std::path::Path,
) -> GatherOptions {
    GatherOptions {
        ssh: SshOptions {
            accept_new_host_keys: args.accept_new_host_keys,
            connect_timeout: args.connect_timeout,
            runtime_dir: runtime_dir.to_path_buf(),
        },
        pin: pin.clone(),
        resolve: ResolveOptions {
            static_bundle: args.static_bundle.clone(),
            keep: args.keep.clone(),
        },
        command_timeout: args.command_timeout,
    }
}

/// Checks, then the plan (pure). Findings of waived checks are kept but shown
/// as warnings.
pub fn build_plan(
    g: &Gathered,
    pin: &EngineVersion,
    max_parallel: usize,
    waived: &[String],
    unlock_key: bool,
) -> Plan {
    let mut ctx = CheckContext::new(&g.facts, pin, &g.resolutions);
    ctx.max_parallel = max_parallel;
    ctx.unlock_key_available = unlock_key;
    let mut findings: Vec<Finding> = checks::run_all(&ctx);
    findings.extend(unreachable_findings(g));
    for f in &mut findings {
        if f.severity == checks::Severity::Block && waived.contains(&f.id) {
            f.severity = checks::Severity::Warn;
            f.message = format!("WAIVED with --ignore-check {}: {}", f.id, f.message);
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    plan::build(
        &g.facts,
        &g.resolutions,
        findings,
        &PlanOptions {
            pin: pin.clone(),
            max_parallel,
        },
    )
}

fn unreachable_findings(g: &Gathered) -> Vec<Finding> {
    g.facts
        .unreachable
        .iter()
        .map(|(id, why)| {
            let name = g
                .facts
                .node(id)
                .map_or(id.as_str(), |n| n.hostname.as_str());
            Finding::block(
                "ssh-reachable",
                Some(name),
                format!("cannot read host {name} over SSH: {why}"),
            )
        })
        .collect()
}

pub async fn close(conns: Connections) {
    for (_, h) in conns.hosts {
        h.close().await;
    }
}
