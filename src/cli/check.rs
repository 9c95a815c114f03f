//! `swarm-upgrade check`: the preflight on its own, for operators and CI.
//! Facts → checks and hazards → findings, printed; nothing changes. Exit 0
//! when nothing blocks, 3 when something does, 2 on bad input.

use serde_json::json;

use super::{CheckArgs, Output, gather, unlock_key_in_env};
use crate::checks::Severity;
use crate::cluster::{self, PlanRequest};
use crate::error::{Error, usage};
use crate::exit_code;
use crate::hazards::Catalogue;
use crate::plan::render::{TABLE_WIDTH, findings_json, findings_text};
use crate::playbook::Playbooks;

pub fn run(args: &CheckArgs, quiet: bool) -> anyhow::Result<u8> {
    let log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    // Every input is read before any host is: bad files fail first.
    let hazards = Catalogue::load(&args.hazards)?;
    if let Some(id) = &args.explain {
        return match hazards.explain(id) {
            Some(text) => {
                print!("{text}");
                Ok(exit_code::SUCCESS)
            }
            None => Err(usage(format!(
                "no hazard `{id}` in the catalogue; known: {}",
                hazards
                    .iter()
                    .map(|h| h.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    Playbooks::load(&args.playbook)?;
    cluster::validate_waivers(&args.ignore_check, &hazards)?;
    let pin = args
        .pin
        .as_ref()
        .ok_or_else(|| usage("--pin VERSION is required"))?;
    let gathered = gather(&args.cluster, args.from_facts.as_deref(), pin, &log)?;
    let plan = cluster::plan(
        &gathered,
        &PlanRequest {
            pin,
            max_parallel: usize::from(args.max_parallel),
            waived: &args.ignore_check,
            unlock_key: unlock_key_in_env(),
            hazards: &hazards,
            canary: Default::default(),
            operation: crate::plan::Operation::Upgrade,
            selection: &crate::plan::Selection::default(),
            prepull: false,
            reboot: false,
            hooks: &[],
            staged: &[],
        },
    );
    let blockers: Vec<String> = plan
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Block)
        .map(|f| match &f.node {
            Some(node) => format!("{} ({node})", f.id),
            None => f.id.clone(),
        })
        .collect();
    match args.output {
        Output::Table => {
            print!(
                "Preflight for swarm {}: Docker Engine {}, {} hazards in the catalogue\n\n{}\n",
                plan.cluster_id,
                pin,
                hazards.len(),
                findings_text(&plan.findings, TABLE_WIDTH)
            );
            if blockers.is_empty() {
                println!("nothing blocks an upgrade to {pin}");
            } else {
                println!(
                    "blocked by {} finding(s): {}",
                    blockers.len(),
                    blockers.join(", ")
                );
            }
        }
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "format_version": crate::report::FORMAT_VERSION,
                "target": pin.to_string(),
                "cluster_id": plan.cluster_id,
                "blocked": !blockers.is_empty(),
                "findings": findings_json(&plan.findings),
            }))?
        ),
    }
    if !blockers.is_empty() {
        return Err(Error::Blocked(format!(
            "{} blocking finding(s): {}; nothing was changed (`swarm-upgrade check --explain ID` tells more about a hazard)",
            blockers.len(),
            blockers.join(", ")
        ))
        .into());
    }
    Ok(exit_code::SUCCESS)
}
