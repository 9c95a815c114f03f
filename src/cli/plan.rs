//! `swarm-upgrade plan`: facts → checks and hazards → plan, printed; nothing changes.

use super::{Output, PlanArgs, gather, unlock_key_in_env};
use crate::cluster::{self, PlanRequest};
use crate::error::Error;
use crate::exit_code;
use crate::hazards::Catalogue;
use crate::plan;

pub fn run(args: &PlanArgs, quiet: bool) -> anyhow::Result<u8> {
    let log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let hazards = Catalogue::load(&args.hazards)?;
    let (pin, operation) = match &args.pin {
        Some(pin) if !args.restart => (pin.clone(), plan::Operation::Upgrade),
        _ => (crate::launch::restart_read_pin(), plan::Operation::Restart),
    };
    let selection = args.select.selection();
    let gathered = gather(&args.cluster, args.from_facts.as_deref(), &pin, &log)?;
    // After the inventory is read: its own errors come first.
    let hooks = super::hooks_of(&args.cluster)?;
    selection
        .validate(&gathered.facts.cluster.nodes)
        .map_err(crate::error::usage)?;
    crate::cluster::check_hook_nodes(&hooks, &gathered)?;
    if let Some(path) = &args.save_facts {
        let json = serde_json::to_vec_pretty(&gathered)?;
        crate::files::write_atomic(path, &json)?;
        log(&format!("facts saved to {}", path.display()));
    }
    let plan = cluster::plan(
        &gathered,
        &PlanRequest {
            pin: &pin,
            max_parallel: usize::from(args.max_parallel),
            waived: &[],
            unlock_key: unlock_key_in_env(),
            hazards: &hazards,
            canary: args.canary.canary(),
            operation,
            selection: &selection,
            prepull: args.prepull,
            reboot: args.reboot,
            hooks: &hooks,
            staged: &crate::playbook::Playbooks::builtin().staged(),
        },
    );
    match args.output {
        Output::Table => {
            print!("{}", plan::render::table_for(&plan, args.wide));
            if !args.window.is_empty() {
                println!(
                    "Maintenance windows: {}. Each node starts only within one; a node started is finished after it closes.",
                    args.window
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
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
            .filter(|f| f.severity == crate::checks::Severity::Block)
            .count();
        return Err(Error::Blocked(format!(
            "the plan is blocked by {n} finding(s); nothing was changed"
        ))
        .into());
    }
    Ok(exit_code::SUCCESS)
}
