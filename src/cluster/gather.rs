//! Gathering: inventory → SSH connections → Engine API → facts (and the
//! registries' answers for the images a drain would move: `registry`).
//!
//! Reads only, on at most `--forks` hosts at once. The connections are kept
//! in [`Connections`] for the rest of the run (one multiplexed SSH master per
//! host, parked between uses in clusters larger than `--forks`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::host;
use crate::engine::Engine;
use crate::facts::Gathered;
use crate::facts::model::{
    Facts, HostFacts, InstallSimulation, MatchedBy, NodeFacts, PackageManager,
};
use crate::inventory::{Inventory, SshTarget};
use crate::transport::ssh::{SshHost, SshOptions};
use crate::transport::{Cmd, Transport};
use crate::version::EngineVersion;
use crate::version::resolve::{
    self, Resolution, ResolveError, ResolveOptions, parse_apt_simulation, with_simulation,
};

pub struct GatherOptions {
    pub ssh: SshOptions,
    /// Most hosts read at once (`--forks`).
    pub forks: usize,
    pub pin: EngineVersion,
    pub resolve: ResolveOptions,
    /// Limit for each fact-gathering command.
    pub command_timeout: Duration,
}

/// Open connections, kept for the whole run.
pub struct Connections {
    /// The manager the facts were read from.
    pub manager: Engine,
    /// Per swarm node ID.
    pub hosts: BTreeMap<String, SshHost>,
}

/// Progress lines for the operator (stderr); the caller decides where they go.
pub type Log<'a> = &'a (dyn Fn(&str) + Sync);

pub async fn gather(
    inventory: &Inventory,
    opts: &GatherOptions,
    log: Log<'_>,
) -> anyhow::Result<(Gathered, Connections)> {
    let (manager_ssh, manager) = find_manager(inventory, opts, log).await?;
    log(&format!("reading the swarm through {}", manager.host));
    let cluster = manager.cluster_facts().await?;
    let (mut gathered, hosts) =
        read_hosts(inventory, cluster, Some(&manager_ssh), opts, log).await?;
    gathered.facts.registry = super::registry::ask(
        &gathered.facts,
        &hosts,
        &opts.ssh.runtime_dir,
        opts.forks,
        log,
    )
    .await;
    Ok((gathered, Connections { manager, hosts }))
}

/// Reads every node's host of a swarm whose node list is known: connects,
/// runs the fact script, resolves the pin (apt confirms it with a dry run)
/// and validates the target configuration, one host after the other on at
/// most `forks` hosts at once (so at most `forks` SSH handshakes at once).
/// In a cluster larger than `forks` each host's master is parked once it is
/// read and reopened when the run needs it: the controller then holds at
/// most `forks` ssh processes instead of one per host. `manager`'s master
/// (already open, its Docker socket forwarded) is reused and never parked.
pub async fn read_hosts(
    inventory: &Inventory,
    cluster: crate::facts::model::ClusterFacts,
    manager: Option<&SshHost>,
    opts: &GatherOptions,
    log: Log<'_>,
) -> anyhow::Result<(Gathered, BTreeMap<String, SshHost>)> {
    let forks = Arc::new(Semaphore::new(opts.forks.max(1)));
    let park = cluster.nodes.len() > opts.forks;
    // Shared: each host's peer list is made only when its turn comes (a
    // list per host made up front would grow with the square of the cluster).
    let nodes = Arc::new(cluster.nodes.clone());
    let validate = super::validate::applies(&opts.pin);
    let mut set = JoinSet::new();
    for node in nodes.iter() {
        let (target, matched) = inventory.target_for(&node.hostname, &node.addr);
        let reuse = manager.filter(|m| target.name == m.target.name).cloned();
        let ssh_opts = opts.ssh.clone();
        let (pin, resolve_opts) = (opts.pin.clone(), opts.resolve.clone());
        let timeout = opts.command_timeout;
        let bundles: Vec<String> = opts.resolve.bundle_path(&opts.pin).into_iter().collect();
        let (nodes, forks) = (nodes.clone(), forks.clone());
        let (node_id, running) = (node.id.clone(), node.engine_version.clone());
        set.spawn(async move {
            let result = async {
                let _permit = forks.acquire_owned().await?;
                let parkable = reuse.is_none();
                let ssh = match reuse {
                    Some(s) => s,
                    None => SshHost::connect(&target, &ssh_opts).await?,
                };
                let peers = swarm_peers(&nodes, &node_id);
                let read = async {
                    let mut hf = host_facts(&ssh, matched, &bundles, &peers, timeout).await?;
                    let res = resolve_host(&ssh, &hf, &running, &pin, &resolve_opts, timeout).await;
                    if validate
                        && let Ok(r) = &res
                        && (!r.packages.is_empty() || r.bundle.is_some())
                        // Without sudo, dockerd would judge what an
                        // unprivileged user may read; the `sudo` check
                        // blocks that host anyway.
                        && hf.sudo_ok
                    {
                        hf.target_validation =
                            super::validate::validate(&ssh, &hf, r, &pin, timeout).await;
                    }
                    Ok::<_, anyhow::Error>((hf, res))
                }
                .await;
                if park && parkable {
                    ssh.park().await;
                }
                let (hf, res) = read?;
                Ok::<_, anyhow::Error>((ssh, hf, res))
            }
            .await;
            (node_id, target, result)
        });
    }
    let mut facts = Facts {
        cluster,
        ..Default::default()
    };
    let mut hosts = BTreeMap::new();
    let mut resolutions = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        let (node_id, target, result) = joined.context("fact-gathering task panicked")?;
        match result {
            Ok((ssh, hf, res)) => {
                log(&format!("read host {} ({})", target.name, target.display()));
                facts.hosts.insert(node_id.clone(), hf);
                resolutions.insert(node_id.clone(), res);
                hosts.insert(node_id, ssh);
            }
            Err(e) => {
                log(&format!("cannot read host {}: {e:#}", target.name));
                facts.unreachable.insert(node_id, format!("{e:#}"));
            }
        }
    }
    Ok((Gathered { facts, resolutions }, hosts))
}

/// Resolves the pin on one host; an apt host confirms the set with a dry run.
async fn resolve_host(
    ssh: &SshHost,
    hf: &HostFacts,
    running: &str,
    pin: &EngineVersion,
    opts: &ResolveOptions,
    timeout: Duration,
) -> Result<Resolution, ResolveError> {
    let r = resolve::resolve(hf, running, pin, opts)?;
    if hf.package_manager == PackageManager::Apt && !r.packages.is_empty() {
        let sim = simulate_apt(ssh, &r, timeout).await;
        return with_simulation(r, &sim);
    }
    Ok(r)
}

/// The swarm's cluster ID, read from the first reachable manager (without
/// gathering every host).
pub async fn cluster_id(inventory: &Inventory, opts: &GatherOptions) -> anyhow::Result<String> {
    let (ssh, engine) = find_manager(inventory, opts, &|_| {}).await?;
    let info = engine.info().await?;
    ssh.close().await;
    info.swarm
        .and_then(|s| s.cluster)
        .and_then(|c| c.id)
        .filter(|id| !id.is_empty())
        .context("the manager reports no swarm cluster ID")
}

/// The swarm's own record of runs, read through the first reachable manager.
pub async fn swarm_record(
    inventory: &Inventory,
    opts: &GatherOptions,
) -> anyhow::Result<super::record::SwarmRecord> {
    let (ssh, engine) = find_manager(inventory, opts, &|_| {}).await?;
    let record = super::record::read(&engine).await;
    ssh.close().await;
    record
}

/// Writes an operator's request (`pause`, `continue`, `abort`) into the
/// lease of the run in progress, through the first manager that answers.
pub async fn mark_lease(
    inventory: &Inventory,
    opts: &GatherOptions,
    control: crate::exec::lease::Control,
) -> anyhow::Result<crate::exec::lease::Lease> {
    let (ssh, engine) = find_manager(inventory, opts, &|_| {}).await?;
    let marked = super::live::mark_lease(engine.docker(), None, control).await;
    ssh.close().await;
    marked
}

/// The first inventory host that is a reachable swarm manager.
async fn find_manager(
    inventory: &Inventory,
    opts: &GatherOptions,
    log: Log<'_>,
) -> anyhow::Result<(SshHost, Engine)> {
    let mut tried = vec![];
    for target in &inventory.hosts {
        match try_manager(target, opts).await {
            Ok(found) => return Ok(found),
            Err(e) => {
                log(&format!("{}: {e:#}", target.name));
                tried.push(format!("  {} ({}): {e:#}", target.name, target.defined_at));
            }
        }
    }
    Err(anyhow!(
        "no manager of a swarm could be reached through the inventory {}:\n{}\nlist at least one reachable manager",
        inventory.source.display(),
        tried.join("\n")
    ))
}

async fn try_manager(
    target: &SshTarget,
    opts: &GatherOptions,
) -> anyhow::Result<(SshHost, Engine)> {
    let ssh = SshHost::connect(target, &opts.ssh).await?;
    let engine = Engine::connect(&ssh, &opts.ssh.runtime_dir).await?;
    let info = engine.info().await?;
    let swarm = info.swarm.unwrap_or_default();
    if swarm.control_available != Some(true) {
        let state = swarm
            .local_node_state
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Err(anyhow!(
            "not a swarm manager (swarm state: {})",
            if state.is_empty() { "inactive" } else { &state }
        ));
    }
    Ok((ssh, engine))
}

/// Sudo check and the fact script, on one host.
pub async fn host_facts(
    ssh: &SshHost,
    matched: MatchedBy,
    bundles: &[String],
    peers: &[(String, u16)],
    timeout: Duration,
) -> anyhow::Result<HostFacts> {
    let sudo_ok = if ssh.sudo() {
        let out = ssh
            .run(
                &Cmd::new(["true"])
                    .privileged()
                    .timeout(Duration::from_secs(20)),
            )
            .await?;
        out.success()
    } else {
        true
    };
    let mut cmd = Cmd::script(host::script(bundles, peers)).timeout(timeout);
    // Without sudo the facts are still worth reading (the sudo check blocks).
    cmd.privileged = sudo_ok;
    let out = ssh.run(&cmd).await?;
    let mut facts = host::parse(&ssh.target.name, &out.stdout);
    facts.sudo_ok = sudo_ok;
    facts.matched_by = matched;
    Ok(facts)
}

/// The swarm ports a node's host should reach on the other nodes: TCP 2377
/// on every manager (its raft address), TCP 7946 (gossip) on every node.
fn swarm_peers(nodes: &[NodeFacts], from: &str) -> Vec<(String, u16)> {
    let mut peers = vec![];
    for n in nodes.iter().filter(|n| n.id != from && !n.addr.is_empty()) {
        if let Some(m) = &n.manager {
            let host = m.addr.rsplit_once(':').map_or(n.addr.as_str(), |(h, _)| h);
            peers.push((host.trim_matches(['[', ']']).to_string(), 2377));
        }
        peers.push((n.addr.clone(), 7946));
    }
    peers
}

/// `apt-get install -s`: what apt would really do for the resolved set.
async fn simulate_apt(ssh: &SshHost, r: &Resolution, timeout: Duration) -> InstallSimulation {
    let request = r.install_args();
    let mut argv = vec![
        "apt-get".to_string(),
        "install".into(),
        "-s".into(),
        "--no-install-recommends".into(),
        "--allow-downgrades".into(),
        "-o".into(),
        "Debug::NoLocking=1".into(),
    ];
    argv.extend(request.iter().cloned());
    let mut cmd = Cmd::new(argv).timeout(timeout);
    cmd.argv.shrink_to_fit();
    match ssh.run(&cmd).await {
        Ok(out) if out.success() => InstallSimulation {
            request,
            changes: parse_apt_simulation(&out.stdout),
            error: None,
        },
        Ok(out) => InstallSimulation {
            request,
            changes: vec![],
            error: Some(last_lines(&format!("{}{}", out.stdout, out.stderr), 6)),
        },
        Err(e) => InstallSimulation {
            request,
            changes: vec![],
            error: Some(format!("{e:#}")),
        },
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
