//! Gathering: inventory → SSH connections → Engine API → facts.
//!
//! Reads only. The connections stay open in [`Connections`] for the rest of
//! the run (one multiplexed SSH master per host).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow};
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

    // Connect to every node's host in parallel, reusing the manager's master.
    let mut set = JoinSet::new();
    for node in &cluster.nodes {
        let (target, matched) = inventory.target_for(&node.hostname, &node.addr);
        let reuse = (target.name == manager_ssh.target.name).then(|| manager_ssh.clone());
        let ssh_opts = opts.ssh.clone();
        let timeout = opts.command_timeout;
        let bundles: Vec<String> = opts.resolve.bundle_path(&opts.pin).into_iter().collect();
        let peers = swarm_peers(&cluster.nodes, &node.id);
        let node_id = node.id.clone();
        set.spawn(async move {
            let result = async {
                let ssh = match reuse {
                    Some(s) => s,
                    None => SshHost::connect(&target, &ssh_opts).await?,
                };
                let facts = host_facts(&ssh, matched, &bundles, &peers, timeout).await?;
                Ok::<_, anyhow::Error>((ssh, facts))
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
    while let Some(joined) = set.join_next().await {
        let (node_id, target, result) = joined.context("fact-gathering task panicked")?;
        match result {
            Ok((ssh, hf)) => {
                log(&format!("read host {} ({})", target.name, target.display()));
                facts.hosts.insert(node_id.clone(), hf);
                hosts.insert(node_id, ssh);
            }
            Err(e) => {
                log(&format!("cannot read host {}: {e:#}", target.name));
                facts.unreachable.insert(node_id, format!("{e:#}"));
            }
        }
    }

    let resolutions = resolve_all(&facts, &hosts, opts).await;
    validate_all(&mut facts, &hosts, &resolutions, opts).await;
    Ok((
        Gathered { facts, resolutions },
        Connections { manager, hosts },
    ))
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

/// Resolves the pin on every host; apt hosts confirm the set with a dry run.
async fn resolve_all(
    facts: &Facts,
    hosts: &BTreeMap<String, SshHost>,
    opts: &GatherOptions,
) -> BTreeMap<String, Result<Resolution, ResolveError>> {
    let mut out = BTreeMap::new();
    let mut set = JoinSet::new();
    for node in &facts.cluster.nodes {
        let Some(hf) = facts.hosts.get(&node.id) else {
            continue;
        };
        let res = resolve::resolve(hf, &node.engine_version, &opts.pin, &opts.resolve);
        match (res, hosts.get(&node.id)) {
            (Ok(r), Some(ssh))
                if hf.package_manager == PackageManager::Apt && !r.packages.is_empty() =>
            {
                let ssh = ssh.clone();
                let id = node.id.clone();
                let timeout = opts.command_timeout;
                set.spawn(async move {
                    let sim = simulate_apt(&ssh, &r, timeout).await;
                    (id, r, sim)
                });
            }
            (res, _) => {
                out.insert(node.id.clone(), res);
            }
        }
    }
    while let Some(Ok((id, r, sim))) = set.join_next().await {
        out.insert(id, with_simulation(r, &sim));
    }
    out
}

/// Every host to upgrade validates its configuration with the target
/// dockerd (`target-config`), all hosts at once: one more round trip each.
async fn validate_all(
    facts: &mut Facts,
    hosts: &BTreeMap<String, SshHost>,
    resolutions: &BTreeMap<String, Result<Resolution, ResolveError>>,
    opts: &GatherOptions,
) {
    if !super::validate::applies(&opts.pin) {
        return;
    }
    let mut set = JoinSet::new();
    for (id, res) in resolutions {
        let (Ok(r), Some(ssh), Some(hf)) = (res, hosts.get(id), facts.hosts.get(id)) else {
            continue;
        };
        // Without sudo, dockerd would judge what an unprivileged user may
        // read; the `sudo` check blocks that host anyway.
        if (r.packages.is_empty() && r.bundle.is_none()) || !hf.sudo_ok {
            continue;
        }
        let (ssh, hf, r, id) = (ssh.clone(), hf.clone(), r.clone(), id.clone());
        let (pin, timeout) = (opts.pin.clone(), opts.command_timeout);
        set.spawn(async move {
            let v = super::validate::validate(&ssh, &hf, &r, &pin, timeout).await;
            (id, v)
        });
    }
    while let Some(Ok((id, v))) = set.join_next().await {
        if let Some(hf) = facts.hosts.get_mut(&id) {
            hf.target_validation = v;
        }
    }
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
