//! `swarm-upgrade plan`: facts → checks → plan, printed; nothing changes.

use super::{Output, PlanArgs, cluster_options, runtime};
use crate::cluster::{self, Cluster, PlanRequest};
use crate::error::Error;
use crate::exit_code;
use crate::plan;

/// Whether the environment provides a swarm unlock key (`plan` has no
/// `--unlock-key-file`; `apply` also counts its file).
fn unlock_key_available() -> bool {
    std::env::var_os("SWARM_UPGRADE_UNLOCK_KEY").is_some_and(|v| !v.is_empty())
}

pub fn run(args: &PlanArgs, quiet: bool) -> anyhow::Result<u8> {
    let log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let gathered = match &args.from_facts {
        Some(path) => cluster::load_facts(path)?,
        None => {
            let cluster = Cluster::open(cluster_options(&args.cluster)?)?;
            runtime()?.block_on(async {
                let reading = cluster.read(&args.pin, &log).await?;
                let (gathered, ops) = reading.into_ops();
                ops.close().await;
                Ok::<_, anyhow::Error>(gathered)
            })?
        }
    };
    if let Some(path) = &args.save_facts {
        let json = serde_json::to_vec_pretty(&gathered)?;
        crate::files::write_atomic(path, &json)?;
        log(&format!("facts saved to {}", path.display()));
    }
    let plan = cluster::plan(
        &gathered,
        &PlanRequest {
            pin: &args.pin,
            max_parallel: usize::from(args.max_parallel),
            waived: &[],
            unlock_key: unlock_key_available(),
        },
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
            .filter(|f| f.severity == crate::checks::Severity::Block)
            .count();
        return Err(Error::Blocked(format!(
            "the plan is blocked by {n} finding(s); nothing was changed"
        ))
        .into());
    }
    Ok(exit_code::SUCCESS)
}
