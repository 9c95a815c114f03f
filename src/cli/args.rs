//! The command line as clap parses it: every command, its arguments and
//! their help. Raw values only; `super` turns them into options.

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
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log on stderr: -v every remote command and Engine API call (debug),
    /// -vv more (trace). Secrets are never logged.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Also write the log to FILE as JSON lines (debug level, trace with
    /// -vv), appended, created 0600.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read the cluster and print what blocks or endangers an upgrade to the
    /// pin (checks and engine-version hazards); changes nothing. Exit 0: nothing
    /// blocks; 3: something does; 2: bad input.
    Check(CheckArgs),
    /// Read the cluster and print the ordered upgrade plan and what stands in its way.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
    /// Execute the plan: one verified step at a time, with checkpoints and rollback.
    #[command(after_help = APPLY_EXAMPLES)]
    Apply(ApplyArgs),
    /// Restart every node's engine as it is (no version change), with the
    /// same plan, quorum guard, checkpoints and resume as apply: each node
    /// drained, its engine stopped and started, verified, given its
    /// availability back; managers one at a time.
    Restart(RestartArgs),
    /// Continue the cluster's unfinished run from the interrupted step.
    Resume(ResumeArgs),
    /// Show the current or last run of a cluster (from local state).
    Status(StatusArgs),
    /// Revert the nodes the last run upgraded, in reverse order, from their
    /// on-host backups, with the same quorum guard.
    Rollback(RollbackArgs),
    /// Ask the run in progress, from any machine, to wait at its next safe
    /// point (no engine down) until `continue`; it keeps renewing its lease.
    Pause(ControlArgs),
    /// Let a paused run go on.
    Continue(ControlArgs),
    /// Ask the run in progress to stop at its next safe point (exit 6 there);
    /// `resume` continues it later.
    Abort(ControlArgs),
    /// Print a shell completion script on stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout.
    #[command(
        after_help = "Example:\n  swarm-upgrade man > /usr/local/share/man/man1/swarm-upgrade.1"
    )]
    Man,
}

const COMPLETIONS_EXAMPLES: &str = "Examples:
  swarm-upgrade completions bash > /etc/bash_completion.d/swarm-upgrade
  swarm-upgrade completions zsh > \"${fpath[1]}/_swarm-upgrade\"
  swarm-upgrade completions fish > ~/.config/fish/completions/swarm-upgrade.fish";

const PLAN_EXAMPLES: &str = "Examples:
  # Read the cluster and print the plan to 26.1.5:
  swarm-upgrade plan --inventory inventory.yaml --pin 26.1.5
  # Save it, to apply exactly this plan later:
  swarm-upgrade plan -i inventory.yaml --pin 26.1.5 --out plan.json
  # No cluster needed: plan from saved facts (as JSON):
  swarm-upgrade plan --from-facts tests/fixtures/lab-facts.json --pin 26.1.5 -o json";

const APPLY_EXAMPLES: &str = "Examples:
  # Show every remote command the run would execute; change nothing:
  swarm-upgrade apply -i inventory.yaml --pin 26.1.5 --dry-run
  # Upgrade, asking for confirmation after showing the plan:
  swarm-upgrade apply -i inventory.yaml --pin 26.1.5
  # Execute a saved plan without asking, events as JSON lines, with a debug log:
  swarm-upgrade apply -i inventory.yaml --pin 26.1.5 --plan plan.json --yes -o json --log-file run.log";

impl Command {
    /// The `--output` the command was given (table for those without one).
    pub fn output(&self) -> Output {
        match self {
            Command::Check(a) => a.output,
            Command::Plan(a) => a.output,
            Command::Status(a) => a.output,
            Command::Apply(a) => a.run.output,
            Command::Resume(a) => a.run.output,
            Command::Rollback(a) => a.run.output,
            Command::Restart(a) => a.run.output,
            Command::Pause(_) | Command::Continue(_) | Command::Abort(_) => Output::Table,
            Command::Completions(_) | Command::Man => Output::Table,
        }
    }

    /// The subcommand's name, for the log.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Check(_) => "check",
            Command::Plan(_) => "plan",
            Command::Status(_) => "status",
            Command::Apply(_) => "apply",
            Command::Resume(_) => "resume",
            Command::Rollback(_) => "rollback",
            Command::Restart(_) => "restart",
            Command::Pause(_) => "pause",
            Command::Continue(_) => "continue",
            Command::Abort(_) => "abort",
            Command::Completions(_) => "completions",
            Command::Man => "man",
        }
    }
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    /// How to reach a manager of the swarm (the run's lease lives there).
    #[command(flatten)]
    pub swarm: ClusterArgs,
}

/// How to reach the cluster.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// swarm-upgrade inventory (YAML). Only one manager has to be listed.
    #[arg(
        long,
        short = 'i',
        env = "SWARM_UPGRADE_INVENTORY",
        value_name = "FILE",
        conflicts_with = "ansible_inventory"
    )]
    pub inventory: Option<PathBuf>,
    /// Ansible inventory (INI, YAML, or `ansible-inventory --list` JSON) instead.
    #[arg(long, value_name = "FILE")]
    pub ansible_inventory: Option<PathBuf>,
    /// ssh config file for every connection, instead of ~/.ssh/config (as
    /// `ssh -F FILE`; jump hosts read it too; /dev/null for none).
    #[arg(
        long,
        short = 'F',
        env = "SWARM_UPGRADE_SSH_CONFIG",
        value_name = "FILE"
    )]
    pub ssh_config: Option<PathBuf>,
    /// Accept and record host keys that are not in known_hosts yet (trust on
    /// first use). Changed keys are always refused.
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Static-binaries tarball on the hosts, for hosts whose engine is not
    /// from packages; `{version}` is replaced by the pin.
    #[arg(long, value_name = "PATH")]
    pub static_bundle: Option<String>,
    /// Leave this companion package (containerd, runc, containerd.io,
    /// docker-buildx-plugin, docker-compose-plugin) at its
    /// installed version instead of the newest one offered. Repeatable.
    #[arg(long, value_name = "PACKAGE")]
    pub keep: Vec<String>,
    /// Hooks file (a top-level `hooks:` list, as in the inventory): commands
    /// run per node at pre-drain, post-stop, post-install, post-verify,
    /// pre-restore. Added to the inventory's own hooks.
    #[arg(long, value_name = "FILE")]
    pub hooks: Option<PathBuf>,
    /// SSH connection timeout.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Timeout of each fact-gathering command on a host.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub command_timeout: Duration,
    /// Most hosts read at once (SSH handshakes, fact scripts). In a cluster
    /// of more hosts, each host's SSH connection is closed once it is read
    /// and reopened when needed.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub forks: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people: tables and lines.
    Table,
    /// For scripts: stdout carries JSON only, errors included (one object
    /// with code, exit_code, message and hint).
    Json,
}

/// The canaries: the first manager and the first worker batch.
#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// After each canary is verified, watch it this long: verify and
    /// verify-services must pass --soak-checks times in a row, or the canary
    /// is rolled back and the run stops; a change the swarm or the node's
    /// engine reports meanwhile is checked at once. 0s: no soak.
    #[arg(long, env = "SWARM_UPGRADE_SOAK", value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub soak: Duration,
    /// How many evenly spaced verifications the soak makes (all must pass).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub soak_checks: u32,
    /// After each canary (and its soak), pause the run as `swarm-upgrade
    /// pause` would, until `swarm-upgrade continue`.
    #[arg(long)]
    pub pause_after_canary: bool,
}

impl CanaryArgs {
    pub fn canary(&self) -> crate::plan::Canary {
        crate::plan::Canary {
            soak_secs: self.soak.as_secs(),
            soak_checks: self.soak_checks,
            pause: self.pause_after_canary,
        }
    }
}

/// Which nodes a run acts on. The others are listed in the plan as out of
/// scope, and still count for the quorum and drain checks.
#[derive(Debug, Args, Default)]
pub struct SelectArgs {
    /// Only this node (swarm hostname or node ID). Repeatable.
    #[arg(long = "nodes", value_name = "NAME", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Not this node (swarm hostname or node ID). Repeatable.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Only nodes matching this (`role=worker`, `node.labels.zone=a`, `!=`
    /// for "not"); every one given must match. Repeatable.
    #[arg(long, value_name = "SELECTOR")]
    pub selector: Vec<String>,
}

impl SelectArgs {
    pub fn selection(&self) -> crate::plan::Selection {
        crate::plan::Selection {
            nodes: self.nodes.clone(),
            exclude: self.exclude.clone(),
            selectors: self.selector.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Target Docker Engine version, exactly as released (e.g. 26.1.5).
    #[arg(long, value_name = "VERSION", required_unless_present = "restart")]
    pub pin: Option<EngineVersion>,
    /// Plan a restart of every selected node's engine (as `swarm-upgrade
    /// restart` runs it) instead of an upgrade.
    #[arg(long, conflicts_with = "pin")]
    pub restart: bool,
    /// Plan a reboot of each node's host (kernel and OS patches) instead of only
    /// restarting its engine: after the engine is stopped (and the new one
    /// installed), then SSH and the engine are waited for and verified.
    #[arg(long)]
    pub reboot: bool,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Most workers upgraded at the same time.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
    #[command(flatten)]
    pub canary: CanaryArgs,
    /// Before the first drain, put the images that drained tasks need on
    /// the nodes that can receive them (copied from a node that has them,
    /// else pulled), verified by image ID (check image-availability).
    #[arg(long)]
    pub prepull: bool,
    /// The maintenance windows `apply --window` would start nodes in (shown
    /// with the plan). Repeatable.
    #[arg(long, value_name = "WINDOW")]
    pub window: Vec<crate::window::Window>,
    /// Table for people, or JSON (stdout carries JSON only, errors included).
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// List every node and every step in the table (by default, runs of 3
    /// or more alike nodes and batches are shown once). JSON always lists all.
    #[arg(long)]
    pub wide: bool,
    /// Also save the plan, with a content hash, for `apply --plan`.
    #[arg(long, value_name = "PLAN_FILE")]
    pub out: Option<PathBuf>,
    /// Save the gathered facts (JSON) for offline planning and bug reports.
    #[arg(long, value_name = "FILE")]
    pub save_facts: Option<PathBuf>,
    /// Plan from facts saved with --save-facts instead of reading the cluster.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["inventory", "ansible_inventory"])]
    pub from_facts: Option<PathBuf>,
    /// Add hazards from this YAML file (or the *.yaml files of this
    /// directory); one with a built-in id replaces it. Repeatable.
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub hazards: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Target Docker Engine version, exactly as released (e.g. 26.1.5).
    #[arg(long, value_name = "VERSION", required_unless_present = "explain")]
    pub pin: Option<EngineVersion>,
    /// Most workers upgraded at the same time (the drain checks depend on it).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: u16,
    /// Table for people, or JSON (stdout carries JSON only, errors included).
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Check facts saved with `plan --save-facts` instead of reading the cluster.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["inventory", "ansible_inventory"])]
    pub from_facts: Option<PathBuf>,
    /// Add hazards from this YAML file (or the *.yaml files of this
    /// directory); one with a built-in id replaces it. Repeatable.
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub hazards: Vec<PathBuf>,
    /// Also validate this playbook, as `apply --playbook` would load it. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub playbook: Vec<PathBuf>,
    /// Treat this check or hazard as accepted: its blockers become warnings. Repeatable.
    #[arg(long, value_name = "ID")]
    pub ignore_check: Vec<String>,
    /// Print one hazard (versions, detection, remedy, source) and exit; reads
    /// no cluster (an inventory given, e.g. from the environment, is ignored).
    #[arg(long, value_name = "HAZARD_ID")]
    pub explain: Option<String>,
}

/// How a run executes (apply and resume).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Replace a built-in upgrade method with this playbook (matched by its
    /// `name`). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub playbook: Vec<PathBuf>,
    /// Add hazards from this YAML file (or the *.yaml files of this
    /// directory); one with a built-in id replaces it. Repeatable.
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub hazards: Vec<PathBuf>,
    /// Where runs are recorded [default: $XDG_STATE_HOME/swarm-upgrade].
    #[arg(long, value_name = "DIR", env = "SWARM_UPGRADE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// File holding the swarm unlock key, for autolocked managers (or set
    /// SWARM_UPGRADE_UNLOCK_KEY). Never give the key itself on the command line.
    #[arg(long, value_name = "FILE")]
    pub unlock_key_file: Option<PathBuf>,
    /// Take over a run lease in the swarm that has expired (its run is gone).
    #[arg(long)]
    pub break_lock: bool,
    /// How long the swarm's run lease lasts without renewal: after that, a
    /// run whose controller died can be taken over with --break-lock.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// Leave this node (by swarm hostname) out of the run, e.g. one that
    /// failed and was rolled back (exit 4): the run goes on without it, which
    /// keeps its engine and availability. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub skip_node: Vec<String>,
    /// Start nodes only within this maintenance window, `DAYS HH:MM-HH:MM
    /// ZONE` (e.g. "Mon-Fri 01:00-05:00 UTC"; ZONE is UTC or +HH:MM). A
    /// node started in a window is finished after it closes. Repeatable.
    #[arg(long, value_name = "WINDOW")]
    pub window: Vec<crate::window::Window>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Most time a drained node may take to empty.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Most time a restarted engine may take to verify; then it is rolled back.
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = humantime::parse_duration)]
    pub verify_timeout: Duration,
    /// Most time services may take to converge after a node is back.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub converge_timeout: Duration,
    /// Most time one playbook script (backup, install, ...) may take.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub script_timeout: Duration,
    /// With --reboot: most time a host may take to come back from its
    /// reboot (SSH answering with a new boot identity).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub reboot_timeout: Duration,
    /// Progress as bars/lines on stderr (table) or JSON events on stdout (json).
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// List every node and every step in the plan shown before the run (by
    /// default, runs of 3 or more alike nodes and batches are shown once).
    #[arg(long)]
    pub wide: bool,
    /// POST a JSON document to this http:// URL at each run and node event
    /// (its `text` field is what Slack/Mattermost-compatible webhooks show).
    /// Repeatable. A URL holding a token is a secret: prefer the
    /// environment (SWARM_UPGRADE_NOTIFY, URLs separated by spaces).
    #[arg(
        long,
        value_name = "URL",
        env = "SWARM_UPGRADE_NOTIFY",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    pub notify: Vec<String>,
    /// Keep this file current with the run's state in Prometheus text
    /// format (e.g. in node_exporter's textfile directory, as NAME.prom).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Target Docker Engine version, exactly as released (e.g. 26.1.5).
    #[arg(long, value_name = "VERSION")]
    pub pin: EngineVersion,
    /// Most workers upgraded at the same time [default: 1; when continuing
    /// a run: the run's own, and no other].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: Option<u16>,
    /// (A run continued keeps its own canaries.)
    #[command(flatten)]
    pub canary: CanaryArgs,
    /// Before the first drain, put the images that drained tasks need on
    /// the nodes that can receive them (copied from a node that has them,
    /// else pulled), verified by image ID (check image-availability).
    #[arg(long)]
    pub prepull: bool,
    /// Execute exactly this plan (from `plan --out`); refused if the cluster
    /// no longer matches it.
    #[arg(long, value_name = "PLAN_FILE")]
    pub plan: Option<PathBuf>,
    /// Reboot each node's host (kernel and OS patches) instead of only
    /// restarting its engine: after the engine is stopped (and the new one
    /// installed), then SSH and the engine are waited for and verified.
    #[arg(long)]
    pub reboot: bool,
    /// Start even though this check blocks (recorded in the journal). Repeatable.
    #[arg(long, value_name = "ID")]
    pub ignore_check: Vec<String>,
    /// Print every remote command the run would execute, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Reboot each node's host (kernel and OS patches) instead of only
    /// restarting its engine: after the engine is stopped (and the new one
    /// installed), then SSH and the engine are waited for and verified.
    #[arg(long)]
    pub reboot: bool,
    /// Most workers restarted at the same time [default: 1; when continuing
    /// a run: the run's own, and no other].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_parallel: Option<u16>,
    /// Start even though this check blocks (recorded in the journal). Repeatable.
    #[arg(long, value_name = "ID")]
    pub ignore_check: Vec<String>,
    /// Print every remote command the run would execute, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Before the first drain, put the images that drained tasks need on
    /// the nodes that can receive them (copied from a node that has them,
    /// else pulled), verified by image ID (check image-availability).
    #[arg(long)]
    pub prepull: bool,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Continue even though this check blocks (added to the checks the run
    /// already waived, and recorded). Repeatable.
    #[arg(long, value_name = "ID")]
    pub ignore_check: Vec<String>,
    /// Print every remote command the rest of the run would execute, and
    /// change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    // With an inventory, status also reads what the swarm itself records
    // (the run lease, the nodes' `swarm-upgrade.*` labels): from any machine.
    #[command(flatten)]
    pub swarm: ClusterArgs,
    /// Where runs are recorded [default: $XDG_STATE_HOME/swarm-upgrade].
    #[arg(long, value_name = "DIR", env = "SWARM_UPGRADE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The swarm's cluster ID, when runs of several clusters are recorded.
    #[arg(long, value_name = "ID")]
    pub cluster: Option<String>,
    /// Table for people, or JSON (stdout carries JSON only, errors included).
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}
