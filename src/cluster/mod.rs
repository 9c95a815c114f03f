//! From an inventory to a plan, once for every command:
//!
//! ```text
//! inventory ─► SSH connections ─► facts (one host script each, the Engine API) ─► checks ─► plan
//! ```
//! [`Cluster::open`] loads the inventory, so bad input fails before any
//! connection; [`Cluster::read`] connects and gathers; [`plan`] runs the
//! checks and the planner, both pure. The connections of a reading stay
//! open for a run: [`Reading::into_ops`] hands them to the executor.

pub(crate) mod gather;
pub(crate) mod host;
pub(crate) mod live;
pub(crate) mod record;
mod registry;
pub(crate) mod validate;
mod waivers;

pub use waivers::validate_waivers;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checks::{self, CheckContext, Finding, Severity};
use crate::error::usage;
use crate::facts::Gathered;
use crate::hazards::{self, Catalogue};
use crate::inventory::Inventory;
use crate::plan::{self, Plan, PlanOptions};
use crate::transport::ssh::{self, SshOptions};
use crate::version::EngineVersion;
use crate::version::resolve::ResolveOptions;
use gather::{Connections, GatherOptions, Log};
use live::LiveOps;

/// Where the inventory comes from.
#[derive(Debug, Clone)]
pub enum InventorySource {
    /// swarm-upgrade's own YAML.
    Own(PathBuf),
    /// An Ansible inventory (INI, YAML, `--list` JSON, or anything
    /// `ansible-inventory` reads).
    Ansible(PathBuf),
}

/// How to reach and read the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub inventory: InventorySource,
    /// `ssh -F`: the ssh config file instead of ~/.ssh/config.
    pub ssh_config: Option<PathBuf>,
    /// Trust host keys not in known_hosts yet (never changed ones).
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    /// Limit for each fact-gathering command.
    pub command_timeout: Duration,
    /// Most hosts read at once, and the most SSH masters kept open while
    /// reading (`--forks`).
    pub forks: usize,
    pub resolve: ResolveOptions,
}

/// A cluster to be reached: its inventory, loaded, and a private runtime
/// directory (0700) for SSH control sockets and forwarded Docker sockets.
pub struct Cluster {
    inventory: Inventory,
    opts: ClusterOptions,
    runtime: tempfile::TempDir,
}

impl Cluster {
    pub fn open(opts: ClusterOptions) -> anyhow::Result<Cluster> {
        let inventory = match &opts.inventory {
            InventorySource::Own(p) => Inventory::load(p)?,
            InventorySource::Ansible(p) => Inventory::load_ansible(p)?,
        };
        Ok(Cluster {
            inventory,
            opts,
            runtime: ssh::runtime_dir()?,
        })
    }

    fn gather_options(&self, pin: &EngineVersion) -> GatherOptions {
        GatherOptions {
            ssh: SshOptions {
                accept_new_host_keys: self.opts.accept_new_host_keys,
                config_file: self.opts.ssh_config.clone(),
                connect_timeout: self.opts.connect_timeout,
                runtime_dir: self.runtime.path().to_path_buf(),
            },
            forks: self.opts.forks,
            pin: pin.clone(),
            resolve: self.opts.resolve.clone(),
            command_timeout: self.opts.command_timeout,
        }
    }

    /// Connects to every node's host and reads the facts, resolving `pin`
    /// to the exact packages of each host.
    pub async fn read(&self, pin: &EngineVersion, log: Log<'_>) -> anyhow::Result<Reading<'_>> {
        let (gathered, conns) =
            gather::gather(&self.inventory, &self.gather_options(pin), log).await?;
        Ok(Reading {
            gathered,
            conns,
            runtime_dir: self.runtime.path(),
        })
    }

    /// Reads the hosts of a swarm whose nodes are already known (facts
    /// read earlier, or a simulated swarm: the SSH benchmark), exactly as
    /// [`Cluster::read`] reads them after asking a manager, then closes the
    /// connections.
    pub async fn read_hosts(
        &self,
        cluster: crate::facts::model::ClusterFacts,
        pin: &EngineVersion,
        log: Log<'_>,
    ) -> anyhow::Result<Gathered> {
        let (gathered, hosts) = gather::read_hosts(
            &self.inventory,
            cluster,
            None,
            &self.gather_options(pin),
            log,
        )
        .await?;
        for (_, h) in hosts {
            h.close().await;
        }
        Ok(gathered)
    }

    /// What the swarm itself records of runs (the lease, the run labels of
    /// its nodes), read through the first manager that answers: `status`
    /// from any machine.
    pub async fn record(&self) -> anyhow::Result<record::SwarmRecord> {
        let any_pin: EngineVersion = "0.0.0".parse().expect("valid");
        gather::swarm_record(&self.inventory, &self.gather_options(&any_pin)).await
    }

    /// Marks the lease of the run in progress with an operator's request,
    /// through the first manager that answers: from any machine.
    pub async fn mark_lease(
        &self,
        control: crate::exec::lease::Control,
    ) -> anyhow::Result<crate::exec::lease::Lease> {
        let any_pin: EngineVersion = "0.0.0".parse().expect("valid");
        gather::mark_lease(&self.inventory, &self.gather_options(&any_pin), control).await
    }

    /// The swarm's cluster ID, from the first manager that answers (without
    /// reading every host).
    pub async fn id(&self) -> anyhow::Result<String> {
        let any_pin: EngineVersion = "0.0.0".parse().expect("valid");
        gather::cluster_id(&self.inventory, &self.gather_options(&any_pin)).await
    }
}

/// The facts of a cluster, with the connections they were read over.
pub struct Reading<'c> {
    pub gathered: Gathered,
    conns: Connections,
    runtime_dir: &'c Path,
}

impl Reading<'_> {
    /// The facts, and the live cluster behind the executor over the same
    /// connections.
    pub fn into_ops(self) -> (Gathered, LiveOps) {
        let g = &self.gathered;
        let manager = &self.conns.manager;
        let manager_id = g
            .facts
            .cluster
            .nodes
            .iter()
            .find(|n| {
                g.facts
                    .hosts
                    .get(&n.id)
                    .is_some_and(|h| h.host == manager.host)
                    || n.hostname == manager.host
            })
            .map(|n| n.id.clone())
            .unwrap_or_default();
        let ops = LiveOps::new(
            self.conns.hosts,
            (manager_id, self.conns.manager),
            self.runtime_dir.to_path_buf(),
        );
        (self.gathered, ops)
    }

    pub async fn close(self) {
        for (_, h) in self.conns.hosts {
            h.close().await;
        }
    }
}

/// What to plan for.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub pin: &'a EngineVersion,
    /// Most workers upgraded at once.
    pub max_parallel: usize,
    /// Checks waived with `--ignore-check`: their blockers become warnings.
    pub waived: &'a [String],
    /// Whether a swarm unlock key was given.
    pub unlock_key: bool,
    /// The engine-version hazards to look for.
    pub hazards: &'a Catalogue,
    /// The canaries' soak and pause.
    pub canary: crate::plan::Canary,
    /// Upgrade to the pin, or restart (the pin then only read the cluster).
    pub operation: plan::Operation,
    pub selection: &'a plan::Selection,
    /// `--prepull`: put the images drained tasks need on the receiving
    /// nodes before the first drain.
    pub prepull: bool,
    /// `--reboot`: each host rebooted instead of only its engine restarted.
    pub reboot: bool,
    /// The operator's hooks (`crate::hooks`).
    pub hooks: &'a [crate::hooks::Hook],
    /// The methods whose playbook stages packages before the drain
    /// (`Playbooks::staged`).
    pub staged: &'a [crate::plan::Staged],
}

/// Hooks naming a node the swarm does not have: bad input (exit 2).
pub fn check_hook_nodes(hooks: &[crate::hooks::Hook], g: &Gathered) -> anyhow::Result<()> {
    let names: Vec<&str> = g
        .facts
        .cluster
        .nodes
        .iter()
        .map(|n| n.hostname.as_str())
        .collect();
    crate::hooks::check_nodes(hooks, &names).map_err(crate::error::usage)
}

/// Checks and hazards, then the plan (pure). Findings of waived checks are kept, shown
/// as warnings.
pub fn plan(g: &Gathered, req: &PlanRequest<'_>) -> Plan {
    let mut ctx = CheckContext::new(&g.facts, req.pin, &g.resolutions);
    ctx.max_parallel = req.max_parallel;
    ctx.unlock_key_available = req.unlock_key;
    ctx.operation = req.operation;
    ctx.selection = req.selection;
    ctx.prepull = req.prepull;
    let mut findings: Vec<Finding> = checks::run_all(&ctx);
    if req.operation.is_upgrade() {
        findings.extend(hazards::evaluate(req.hazards, &ctx));
    }
    findings.extend(unreachable_findings(g));
    for f in &mut findings {
        if f.severity == Severity::Block && req.waived.contains(&f.id) {
            f.severity = Severity::Warn;
            f.message = format!("WAIVED with --ignore-check {}: {}", f.id, f.message);
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    plan::build(
        &g.facts,
        &g.resolutions,
        findings,
        &PlanOptions {
            pin: req.pin.clone(),
            max_parallel: req.max_parallel,
            canary: req.canary,
            operation: req.operation,
            selection: req.selection.clone(),
            prepull: if req.prepull {
                checks::prepull_transfers(&ctx)
            } else {
                vec![]
            },
            reboot: req.reboot,
            hooks: req.hooks.to_vec(),
            staged: req.staged.to_vec(),
        },
    )
}

/// The id of the finding for a host SSH cannot read.
pub(crate) const SSH_REACHABLE: &str = "ssh-reachable";

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
                SSH_REACHABLE,
                Some(name),
                format!("cannot read host {name} over SSH: {why}"),
            )
        })
        .collect()
}

/// Facts saved with `plan --save-facts`.
pub fn load_facts(path: &Path) -> anyhow::Result<Gathered> {
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
