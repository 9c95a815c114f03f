//! The command line: clap arguments (raw) and the commands that use them.

pub mod plan;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::version::EngineVersion;

#[derive(Debug, Parser)]
#[command(
    name = "swarm-upgrade",
    version,
    about = "Plan and run Docker Engine upgrades of a Docker Swarm, one verified node at a time",
    long_about = None
)]
pub struct Cli {
    /// Only print results and errors, no progress lines.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read the cluster and print the ordered upgrade plan and what stands in its way.
    Plan(PlanArgs),
}

/// How to reach the cluster, and what to upgrade it to.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// swarm-upgrade inventory (YAML). Only one manager has to be listed.
    #[arg(
        long,
        short = 'i',
        env = "SWARM_UPGRADE_INVENTORY",
        value_name = "FILE",
        required_unless_present_any = ["ansible_inventory", "from_facts"],
        conflicts_with = "ansible_inventory"
    )]
    pub inventory: Option<PathBuf>,
    /// Ansible inventory (INI, YAML, or `ansible-inventory --list` JSON) instead.
    #[arg(long, value_name = "FILE")]
    pub ansible_inventory: Option<PathBuf>,
    /// Target Docker Engine version, exactly as released (e.g. 26.1.5).
    #[arg(long, value_name = "VERSION")]
    pub pin: EngineVersion,
    /// Accept and record host keys that are not in known_hosts yet (trust on
    /// first use). Changed keys are always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Static-binaries tarball on the hosts, for hosts whose engine is not
    /// from packages; `{version}` is replaced by the pin.
    #[arg(long, value_name = "PATH")]
    pub static_bundle: Option<String>,
    /// SSH connection timeout.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Timeout of each fact-gathering command on a host.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub command_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Most workers upgraded at the same time.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Also save the plan, with a content hash, for `apply --plan`.
    #[arg(long, value_name = "PLAN_FILE")]
    pub out: Option<PathBuf>,
    /// Save the gathered facts (JSON) for offline planning and bug reports.
    #[arg(long, value_name = "FILE")]
    pub save_facts: Option<PathBuf>,
    /// Plan from facts saved with --save-facts instead of reading the cluster.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["inventory", "ansible_inventory"])]
    pub from_facts: Option<PathBuf>,
}
