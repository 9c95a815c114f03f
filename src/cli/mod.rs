//! The command line: clap arguments (raw) and the commands that use them.

pub(crate) mod apply;
mod args;
pub(crate) mod check;
pub(crate) mod control;
pub(crate) mod docs;
pub(crate) mod plan;
pub(crate) mod status;

use std::time::Duration;

use anyhow::Context;

use crate::cluster::{ClusterOptions, InventorySource};
use crate::error::usage;
use crate::exec::rundir::default_base;
use crate::exec::runner::RunOptions;
use crate::facts::Gathered;
use crate::hazards::Catalogue;
use crate::launch::LaunchOptions;
use crate::observe::ObserveOptions;
use crate::observe::webhook::Endpoint;
use crate::playbook::Playbooks;
use crate::version::EngineVersion;
use crate::version::resolve::ResolveOptions;

pub use args::*;

/// How to reach the cluster, from the arguments.
fn cluster_options(args: &ClusterArgs) -> anyhow::Result<ClusterOptions> {
    let inventory = match (&args.inventory, &args.ansible_inventory) {
        (Some(p), _) => InventorySource::Own(p.clone()),
        (None, Some(p)) => InventorySource::Ansible(p.clone()),
        (None, None) => {
            return Err(usage(
                "no inventory: pass --inventory FILE (or set SWARM_UPGRADE_INVENTORY) or --ansible-inventory FILE",
            ));
        }
    };
    // Not only regular files: `-F /dev/null` (no config at all) is ssh's own idiom.
    if let Some(f) = &args.ssh_config
        && (!f.exists() || f.is_dir())
    {
        return Err(usage(format!(
            "--ssh-config {}: no such file (SWARM_UPGRADE_SSH_CONFIG may have set it): give the ssh config file to use, or leave it out for ~/.ssh/config",
            f.display()
        )));
    }
    Ok(ClusterOptions {
        inventory,
        ssh_config: args.ssh_config.clone(),
        accept_new_host_keys: args.accept_new_host_keys,
        connect_timeout: args.connect_timeout,
        command_timeout: args.command_timeout,
        forks: args.forks as usize,
        resolve: ResolveOptions {
            static_bundle: args.static_bundle.clone(),
            keep: args.keep.clone(),
        },
    })
}

/// How runs execute, from the arguments: playbooks and the unlock key are
/// read here, so that bad input fails before any host is touched.
fn launch_options(args: &RunArgs) -> anyhow::Result<LaunchOptions> {
    Ok(LaunchOptions {
        run: RunOptions {
            drain_timeout: args.drain_timeout,
            verify_timeout: args.verify_timeout,
            converge_timeout: args.converge_timeout,
            script_timeout: args.script_timeout,
            reboot_timeout: args.reboot_timeout,
            break_lock: args.break_lock,
            skip_nodes: args.skip_node.clone(),
            unlock_key: unlock_key(args)?,
            lease_ttl: lease_ttl(args.lease_ttl)?,
            windows: args.window.clone(),
            ..Default::default()
        },
        playbooks: Playbooks::load(&args.playbook)?,
        hazards: Catalogue::load(&args.hazards)?,
        state_base: args.state_dir.clone().unwrap_or_else(default_base),
        yes: args.yes,
        observe: observe_options(args)?,
    })
}

/// `--notify` and `--metrics-file`, checked before any host is touched. A
/// URL is parsed here rather than by clap, whose error would print it whole.
fn observe_options(args: &RunArgs) -> anyhow::Result<ObserveOptions> {
    let notify = args
        .notify
        .iter()
        .filter(|u| !u.trim().is_empty())
        .map(|u| Endpoint::parse(u.trim()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(p) = &args.metrics_file {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if !dir.is_dir() {
            return Err(usage(format!(
                "--metrics-file {}: the directory {} does not exist",
                p.display(),
                dir.display()
            )));
        }
    }
    Ok(ObserveOptions {
        notify,
        metrics_file: args.metrics_file.clone(),
    })
}

/// `--lease-ttl`: long enough to be renewed while a step runs.
fn lease_ttl(ttl: Duration) -> anyhow::Result<Duration> {
    if ttl < Duration::from_secs(10) {
        return Err(usage(format!(
            "--lease-ttl {}: too short for the lease to be renewed; give 10s or more (default 15m)",
            humantime::format_duration(ttl)
        )));
    }
    Ok(ttl)
}

/// The swarm unlock key: from `--unlock-key-file`, else the environment.
/// Never from the command line itself.
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

/// The facts: from a file saved with `--save-facts`, or read from the
/// cluster (connections closed again: nothing runs).
fn gather(
    cluster: &ClusterArgs,
    from_facts: Option<&std::path::Path>,
    pin: &EngineVersion,
    log: crate::cluster::gather::Log<'_>,
) -> anyhow::Result<Gathered> {
    match from_facts {
        Some(path) => crate::cluster::load_facts(path),
        None => {
            let cluster = crate::cluster::Cluster::open(cluster_options(cluster)?)?;
            runtime()?.block_on(async {
                let reading = cluster.read(pin, log).await?;
                let (gathered, ops) = reading.into_ops();
                ops.close().await;
                Ok(gathered)
            })
        }
    }
}

/// The hooks of the YAML inventory, then those of `--hooks FILE`.
fn hooks_of(cluster: &ClusterArgs) -> anyhow::Result<Vec<crate::hooks::Hook>> {
    let mut hooks = vec![];
    if let Some(inv) = &cluster.inventory {
        hooks.extend(crate::hooks::load(inv)?);
    }
    if let Some(file) = &cluster.hooks {
        hooks.extend(crate::hooks::load(file)?);
    }
    Ok(hooks)
}

/// Whether the environment provides a swarm unlock key (`plan` and `check`
/// have no `--unlock-key-file`; `apply` also counts its file).
fn unlock_key_in_env() -> bool {
    std::env::var_os("SWARM_UPGRADE_UNLOCK_KEY").is_some_and(|v| !v.is_empty())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// Every flag, option and argument of every command says what it does.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut cmd = super::Cli::command();
        cmd.build();
        let mut missing = vec![];
        walk(&cmd, "swarm-upgrade", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
