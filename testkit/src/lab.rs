//! A lab: node containers on a private bridge network forming a real swarm, reachable over
//! real SSH, with the probe services running on it.
//!
//! The lab's description (lab.json), its SSH client key, known_hosts and the swarm-upgrade
//! inventory live in /var/lib/swarm-upgrade-testkit/<name>/. Docker objects carry the label
//! `swarm-upgrade-testkit.lab=<name>` so that `down` removes exactly what `up` created.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::bastion::{self, BastionInfo};
use crate::cmd::{self, Cmd};
use crate::fault::Fault;
use crate::flavour::Flavour;
use crate::image::{self, StagedVersions};
use crate::report::{self, ProbeReport};
use crate::status::{self, Status};
use crate::{host, inventory, paths, probe_image};

pub const DEFAULT_LAB: &str = "lab";
pub const DEFAULT_SUBNET: &str = "172.30.0.0/24";

/// Inside every node: where the probe clients' volume lives (the nodes' data root is the
/// default /var/lib/docker), read directly so that it works with the node's engine stopped.
const PROBE_DATA_DIR: &str = "/var/lib/docker/volumes/probe-data/_data";
pub const PROBE_NETWORK: &str = "probe-net";
pub const PROBE_SERVER: &str = "probe-server";
pub const PROBE_CLIENT: &str = "probe-client";
/// The probe server published in host mode (see [`Lab::deploy_published_probe`]).
pub const PROBE_PUBLISHED: &str = "probe-published";
/// How long a probe request may take (name lookup included) before it counts as lost. 2 s,
/// not 1: with two labs on this 2-core machine the embedded DNS sometimes took over a second
/// to answer while nothing was down (seen in the lab suite), and a real outage lasts longer.
pub const PROBE_TIMEOUT_MS: u32 = 2000;

/// Mounted in every node as a 2 GiB tmpfs: swarm-upgrade keeps its host-side backups there,
/// and the fill-disk fault fills this filesystem (never the host's disk).
pub const UPGRADE_STATE_DIR: &str = "/var/lib/swarm-upgrade";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

/// A node as testkit created it (the swarm's view is in `Status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Container name = hostname = swarm node name, e.g. "lab-m1".
    pub name: String,
    pub address: Ipv4Addr,
    pub role: Role,
}

/// Options of `testkit up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub name: String,
    pub managers: u8,
    pub workers: u8,
    /// An IPv4 /24 ("172.30.0.0/24"); managers get .11.., workers .21...
    pub subnet: String,
    /// How the nodes' engines are installed and started (`mixed`: spread over the others).
    pub flavour: Flavour,
    /// A bastion in front of the lab, on this controller-facing /24 (see [`bastion`]).
    pub bastion: Option<String>,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            name: DEFAULT_LAB.to_string(),
            managers: 3,
            workers: 2,
            subnet: DEFAULT_SUBNET.to_string(),
            flavour: Flavour::default(),
            bastion: None,
        }
    }
}

/// lab.json: everything needed to address a lab later.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LabConfig {
    name: String,
    managers: u8,
    workers: u8,
    subnet: String,
    node_image: String,
    probe_image: Option<String>,
    created_at: String,
    /// Absent in labs made before flavours existed: those are sysv-docker.io.
    #[serde(default)]
    flavour: Flavour,
    /// The bastion's controller-facing /24; absent: no bastion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bastion_subnet: Option<String>,
}

/// First three octets of a /24.
pub(crate) fn subnet_prefix(subnet: &str) -> Result<[u8; 3]> {
    let (net, len) = subnet
        .split_once('/')
        .with_context(|| format!("subnet {subnet:?} is not a.b.c.0/24"))?;
    let ip: Ipv4Addr = net.parse().with_context(|| format!("subnet {subnet:?}"))?;
    let o = ip.octets();
    if len != "24" || o[3] != 0 {
        bail!("subnet {subnet:?}: testkit uses a /24 ending in .0 (e.g. {DEFAULT_SUBNET})");
    }
    Ok([o[0], o[1], o[2]])
}

/// The nodes of a lab: managers first. Pure, so that naming and addressing are testable.
pub fn plan_nodes(name: &str, managers: u8, workers: u8, subnet: &str) -> Result<Vec<NodeInfo>> {
    let [a, b, c] = subnet_prefix(subnet)?;
    if !(1..=9).contains(&managers) || workers > 9 {
        bail!("a lab has 1-9 managers and 0-9 workers (got {managers} and {workers})");
    }
    let mut nodes = Vec::new();
    for i in 1..=managers {
        nodes.push(NodeInfo {
            name: format!("{name}-m{i}"),
            address: Ipv4Addr::new(a, b, c, 10 + i),
            role: Role::Manager,
        });
    }
    for i in 1..=workers {
        nodes.push(NodeInfo {
            name: format!("{name}-w{i}"),
            address: Ipv4Addr::new(a, b, c, 20 + i),
            role: Role::Worker,
        });
    }
    Ok(nodes)
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("lab name {name:?}: use 1-20 characters a-z, 0-9 and '-', starting with a letter");
    }
    Ok(())
}

/// Every capability by name except CAP_SYS_RESOURCE: `--privileged` fails on this kind of
/// host ("unable to apply caps") because root lacks SYS_RESOURCE.
const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capabilities to give node containers: all but SYS_RESOURCE, and only those in the
/// host's bounding set (asking for one the host lacks fails the same way --privileged does).
pub fn node_capabilities(host_bounding_set: u64) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, name)| **name != "SYS_RESOURCE" && host_bounding_set & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

fn host_bounding_set() -> Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .context("no CapBnd in /proc/self/status")?;
    Ok(u64::from_str_radix(hex.trim(), 16)?)
}

pub struct Lab {
    config: LabConfig,
    dir: PathBuf,
}

fn progress(start: Instant, what: &str) {
    eprintln!("testkit: [{:>6}] {what}", cmd::secs(start.elapsed()));
}

impl Lab {
    /// Open a lab that is up. Fails loudly, with the reason, when it is not: no lab state,
    /// private daemon not running, node containers missing, or no manager running.
    pub fn open(name: &str) -> Result<Lab> {
        let lab = Lab::load(name)?;
        if !host::Daemon::new().answers() {
            bail!(
                "lab {name:?} is not up: testkit's private dockerd does not answer on {} \
                 (run `testkit up --name {name}`)",
                paths::daemon_socket().display()
            );
        }
        let states = lab.container_states()?;
        let missing: Vec<_> = lab
            .nodes()
            .into_iter()
            .filter(|n| !states.iter().any(|(c, _)| *c == n.name))
            .map(|n| n.name)
            .collect();
        if !missing.is_empty() {
            bail!(
                "lab {name:?} is not up: node containers missing: {} (run `testkit down --name {name}` \
                 and `testkit up --name {name}`)",
                missing.join(", ")
            );
        }
        let manager_running = lab
            .managers()
            .iter()
            .any(|m| states.iter().any(|(c, s)| *c == m.name && s == "running"));
        if !manager_running {
            bail!("lab {name:?} is not up: no manager container is running (states: {states:?})");
        }
        Ok(lab)
    }

    fn load(name: &str) -> Result<Lab> {
        validate_name(name)?;
        let dir = paths::lab_dir(name);
        let file = dir.join("lab.json");
        let bytes = fs::read(&file).map_err(|e| {
            anyhow::anyhow!(
                "lab {name:?} is not up: cannot read {} ({e}); run `testkit up --name {name}` (as root)",
                file.display()
            )
        })?;
        let config: LabConfig = serde_json::from_slice(&bytes)
            .with_context(|| format!("corrupt {}", file.display()))?;
        Ok(Lab { config, dir })
    }

    fn save(&self) -> Result<()> {
        fs::write(
            self.dir.join("lab.json"),
            serde_json::to_vec_pretty(&self.config)?,
        )?;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join(inventory::INVENTORY_FILE)
    }

    pub fn identity_file(&self) -> PathBuf {
        self.dir.join(inventory::IDENTITY_FILE)
    }

    pub fn known_hosts_file(&self) -> PathBuf {
        self.dir.join(inventory::KNOWN_HOSTS_FILE)
    }

    pub fn network_name(&self) -> String {
        format!("{}-net", self.config.name)
    }

    /// The bastion, when the lab was brought up with one.
    pub fn bastion(&self) -> Option<BastionInfo> {
        let subnet = self.config.bastion_subnet.as_deref()?;
        Some(
            bastion::plan(&self.config.name, &self.config.subnet, subnet)
                .expect("lab.json was validated when the lab was created"),
        )
    }

    /// The ssh config of a lab with a bastion (aliases, ProxyJump).
    pub fn ssh_config_path(&self) -> PathBuf {
        self.dir.join(bastion::SSH_CONFIG_FILE)
    }

    /// The swarm-upgrade inventory naming only the ssh config's aliases.
    pub fn alias_inventory_path(&self) -> PathBuf {
        self.dir.join(bastion::ALIAS_INVENTORY_FILE)
    }

    /// The Ansible INI inventory (group_vars next to it).
    pub fn ansible_inventory_path(&self) -> PathBuf {
        self.dir
            .join(bastion::ANSIBLE_DIR)
            .join(bastion::ANSIBLE_INI_FILE)
    }

    pub fn node_image(&self) -> &str {
        &self.config.node_image
    }

    /// All nodes, managers first.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        plan_nodes(
            &self.config.name,
            self.config.managers,
            self.config.workers,
            &self.config.subnet,
        )
        .expect("lab.json was validated when the lab was created")
    }

    /// The lab's flavour (`mixed` for a mixed lab; see `node_flavour`).
    pub fn flavour(&self) -> Flavour {
        self.config.flavour
    }

    /// How this node's engine is installed and started.
    pub fn node_flavour(&self, node: &NodeInfo) -> Flavour {
        let index = self
            .nodes()
            .iter()
            .filter(|n| n.role == node.role)
            .position(|n| n.name == node.name)
            .unwrap_or(0);
        self.config.flavour.for_node(node, index)
    }

    pub fn managers(&self) -> Vec<NodeInfo> {
        self.nodes()
            .into_iter()
            .filter(|n| n.role == Role::Manager)
            .collect()
    }

    pub fn workers(&self) -> Vec<NodeInfo> {
        self.nodes()
            .into_iter()
            .filter(|n| n.role == Role::Worker)
            .collect()
    }

    /// A node by full name ("lab-w1") or short name ("w1").
    pub fn node(&self, name: &str) -> Result<NodeInfo> {
        let full = format!("{}-{name}", self.config.name);
        self.nodes()
            .into_iter()
            .find(|n| n.name == name || n.name == full)
            .with_context(|| {
                let names: Vec<_> = self.nodes().into_iter().map(|n| n.name).collect();
                format!(
                    "lab {:?} has no node {name:?} (nodes: {})",
                    self.config.name,
                    names.join(", ")
                )
            })
    }

    /// (container name, state) of this lab's containers.
    fn container_states(&self) -> Result<Vec<(String, String)>> {
        let out = cmd::docker()
            .args(["ps", "-a", "--format", "{{.Names}} {{.State}}"])
            .arg("--filter")
            .arg(format!("label={}={}", paths::LAB_LABEL, self.config.name))
            .timeout(Duration::from_secs(30))
            .run()?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect())
    }

    pub fn is_running(&self, node: &str) -> Result<bool> {
        let node = self.node(node)?;
        Ok(self
            .container_states()?
            .iter()
            .any(|(n, s)| *n == node.name && s == "running"))
    }

    // ----- running commands on nodes -------------------------------------------------------

    /// `docker exec` as root in a node, args passed as they are. Returns the output whatever
    /// the exit status.
    pub fn exec(&self, node: &str, args: &[&str]) -> Result<Output> {
        let node = self.node(node)?;
        cmd::docker()
            .arg("exec")
            .arg(&node.name)
            .args(args)
            .timeout(Duration::from_secs(600))
            .output()
    }

    /// Copies `bytes` into a node as the file `path` (root's, with `mode`).
    pub fn copy_in(&self, node: &str, bytes: &[u8], path: &str, mode: u32) -> Result<()> {
        let node = self.node(node)?;
        cmd::docker()
            .args([
                "exec",
                "-i",
                &node.name,
                "sh",
                "-c",
                r#"cat > "$1" && chmod "$2" "$1""#,
                "sh",
            ])
            .arg(path)
            .arg(format!("{mode:o}"))
            .stdin(bytes.to_vec())
            .timeout(Duration::from_secs(120))
            .run()
            .with_context(|| format!("copying {path} into {}", node.name))
            .map(drop)
    }

    /// Run a shell script as root in a node; requires success, returns stdout.
    pub fn exec_sh(&self, node: &str, script: &str) -> Result<String> {
        self.exec_sh_timeout(node, script, Duration::from_secs(600))
    }

    fn exec_sh_timeout(&self, node: &str, script: &str, timeout: Duration) -> Result<String> {
        let node = self.node(node)?;
        cmd::docker()
            .args(["exec", &node.name, "sh", "-c", script])
            .timeout(timeout)
            .run()
            .with_context(|| format!("on {}", node.name))
    }

    /// The ssh command line for a node: the lab's real SSH setup (key, known_hosts, strict
    /// host key checking, no prompts), as user `upgrader`. Remote arguments are appended by
    /// the caller, ssh-style (joined by spaces, interpreted by the remote shell).
    pub fn ssh_command(&self, node: &str, known_hosts: &Path) -> Result<Cmd> {
        let node = self.node(node)?;
        let mut c = Cmd::new("ssh");
        c.args(["-F", "/dev/null", "-i"])
            .arg(self.identity_file())
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ]);
        if let Some(b) = self.bastion() {
            // The host has no route to the nodes: through the bastion, checked against the
            // lab's known_hosts whatever `known_hosts` the node is checked against.
            c.arg("-o").arg(format!(
                "ProxyCommand=ssh -F /dev/null -i {} -o UserKnownHostsFile={} \
                 -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes \
                 -o IdentitiesOnly=yes -o ConnectTimeout=10 -o LogLevel=ERROR -W %h:%p upgrader@{}",
                self.identity_file().display(),
                self.known_hosts_file().display(),
                b.address
            ));
        }
        c.arg(format!("upgrader@{}", node.address));
        Ok(c)
    }

    /// Run a command on a node over SSH (see `ssh_command`). Each argument is quoted, so
    /// `&["sh", "-c", "a | b"]` arrives as three words. Returns the output whatever the exit
    /// status (255 = ssh itself failed).
    pub fn ssh(&self, node: &str, args: &[&str]) -> Result<Output> {
        self.ssh_with_known_hosts(node, &self.known_hosts_file(), args)
    }

    /// `ssh` against another known_hosts file (to show that host key checking is enforced).
    pub fn ssh_with_known_hosts(
        &self,
        node: &str,
        known_hosts: &Path,
        args: &[&str],
    ) -> Result<Output> {
        let mut c = self.ssh_command(node, known_hosts)?;
        c.arg("--")
            .args(args.iter().map(|a| cmd::shell_quote(a)))
            .timeout(Duration::from_secs(600));
        c.output()
    }

    /// Run a script on the first manager that answers (skipping stopped ones, and ones that
    /// have lost the swarm, e.g. while disconnected).
    pub fn on_manager(&self, script: &str) -> Result<String> {
        let states = self.container_states()?;
        let mut errors = Vec::new();
        for m in self.managers() {
            if !states.iter().any(|(n, s)| *n == m.name && s == "running") {
                errors.push(format!("{}: container not running", m.name));
                continue;
            }
            match self.exec_sh_timeout(&m.name, script, Duration::from_secs(20)) {
                Ok(out) => return Ok(out),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        bail!(
            "no manager of lab {:?} answered:\n  {}",
            self.config.name,
            errors.join("\n  ")
        )
    }

    // ----- swarm state -----------------------------------------------------------------------

    /// The swarm as a manager sees it: nodes and services.
    pub fn status(&self) -> Result<Status> {
        const MARK: &str = "--- testkit: services ---";
        let out = self.on_manager(&format!(
            "docker node inspect $(docker node ls -q) && echo '{MARK}' && \
             docker service ls --format '{{{{.Name}}}} {{{{.Replicas}}}}'"
        ))?;
        let (nodes, services) = out
            .split_once(MARK)
            .context("unexpected output from the manager")?;
        let lab_nodes = self.nodes();
        let address_of = |name: &str| {
            lab_nodes
                .iter()
                .find(|n| n.name == name)
                .map(|n| n.address.to_string())
        };
        Ok(Status {
            nodes: status::parse_nodes(nodes, address_of)?,
            services: status::parse_services(services)?,
        })
    }

    /// Wait until every node is ready, every manager reachable with exactly one leader, and
    /// every service converged. Returns the healthy status, or fails with what was wrong.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<Status> {
        let expected = self.nodes().len();
        cmd::wait_for("a healthy lab", timeout, Duration::from_secs(2), || {
            let status = self.status()?;
            match status.unhealthy_reason(expected) {
                None => Ok(Some(status)),
                Some(reason) => bail!("{reason}"),
            }
        })
    }

    /// The exact package versions staged in the nodes' offline repository.
    pub fn staged_versions(&self) -> Result<StagedVersions> {
        let text = self.on_manager("cat /srv/lab-repo/versions.env")?;
        StagedVersions::from_env(&text)
    }

    /// Add the second hop's repositories (28.x: /srv/lab-repo-hop, and on docker-ce nodes
    /// /srv/docker-ce-repo-hop) to every node's apt sources, as an operator adds a newer
    /// suite before the next upgrade. Idempotent.
    pub fn enable_hop_repositories(&self) -> Result<()> {
        for node in self.nodes() {
            let mut script = String::from(
                "echo 'deb [trusted=yes] file:/srv/lab-repo-hop ./' > /etc/apt/sources.list.d/lab-hop.list\n",
            );
            if self.node_flavour(&node) == Flavour::SystemdDockerCe {
                script.push_str(
                    "echo 'deb [trusted=yes] file:/srv/docker-ce-repo-hop ./' > /etc/apt/sources.list.d/docker-hop.list\n",
                );
            }
            script.push_str("apt-get update -qq\n");
            self.exec_sh(&node.name, &script)?;
        }
        Ok(())
    }

    // ----- probe -------------------------------------------------------------------------------

    /// Gather every node's probe logs and aggregate them. Nodes whose container is not
    /// running cannot be read; they are named on stderr.
    pub fn probe_report(&self, since: Option<SystemTime>) -> Result<ProbeReport> {
        let states = self.container_states()?;
        let mut records = Vec::new();
        let script = format!(
            "cd {PROBE_DATA_DIR} 2>/dev/null || exit 0; for f in *.log; do [ -f \"$f\" ] || continue; \
             n=$(wc -c < \"$f\"); printf '==> %s %s\\n' \"$f\" \"$n\"; head -c \"$n\" \"$f\"; done"
        );
        for node in self.nodes() {
            if !states
                .iter()
                .any(|(n, s)| *n == node.name && s == "running")
            {
                eprintln!(
                    "testkit: warning: {} is not running; its probe logs are not included",
                    node.name
                );
                continue;
            }
            let dump = self.exec_sh(&node.name, &script)?;
            for (file, text) in
                split_dump(&dump).with_context(|| format!("probe logs of {}", node.name))?
            {
                let (rs, warnings) = report::parse_log(&text);
                for w in warnings {
                    eprintln!("testkit: warning: {}:{file}: {w}", node.name);
                }
                records.extend(rs);
            }
        }
        Ok(report::aggregate(&records, since))
    }

    // ----- faults --------------------------------------------------------------------------

    /// Inject a fault into a node (idempotent).
    pub fn fault(&self, node: &str, fault: Fault) -> Result<()> {
        crate::fault::apply(self, &self.node(node)?, fault)
    }

    /// Reverse a fault (idempotent; a no-op on a node without that fault).
    pub fn restore(&self, node: &str, fault: Fault) -> Result<()> {
        crate::fault::restore(self, &self.node(node)?, fault)
    }

    // ----- up / down -----------------------------------------------------------------------

    /// Bring a lab up (prepare the host, build or import the node image, create the nodes,
    /// form the swarm, deploy the probe). On a lab that is already up it only reports.
    pub fn up(opts: &UpOptions) -> Result<Lab> {
        let start = Instant::now();
        validate_name(&opts.name)?;
        let nodes = plan_nodes(&opts.name, opts.managers, opts.workers, &opts.subnet)?;
        if let Some(subnet) = &opts.bastion {
            bastion::plan(&opts.name, &opts.subnet, subnet)?;
        }
        let _lock = host::lock_host("up")?;
        host::prepare()?;
        progress(start, "host ready (packages, private dockerd)");

        if paths::lab_dir(&opts.name).join("lab.json").exists() {
            let lab = Lab::load(&opts.name)?;
            return lab.report_existing(opts);
        }
        let leftovers = cmd::docker()
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label={}={}", paths::LAB_LABEL, opts.name))
            .run()?;
        if !leftovers.trim().is_empty() {
            bail!(
                "containers of a lab {:?} exist but its state directory does not; \
                 run `testkit down --name {}` first",
                opts.name,
                opts.name
            );
        }

        let manifest = image::ensure(false)?;
        progress(start, &format!("node image {} ready", manifest.tag()));

        let dir = paths::lab_dir(&opts.name);
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let mut lab = Lab {
            config: LabConfig {
                name: opts.name.clone(),
                managers: opts.managers,
                workers: opts.workers,
                subnet: opts.subnet.clone(),
                node_image: manifest.tag(),
                probe_image: None,
                created_at: report::rfc3339(SystemTime::now()),
                flavour: opts.flavour,
                bastion_subnet: opts.bastion.clone(),
            },
            dir,
        };
        // Saved first, so that `down` can clean up after an `up` that failed half way.
        lab.save()?;
        lab.create_nodes(&nodes)?;
        if let Some(b) = lab.bastion() {
            lab.create_bastion(&b)?;
        }
        progress(start, &format!("{} node containers started", nodes.len()));
        lab.wait_nodes_booted(&nodes)?;
        progress(start, "sshd and dockerd up in every node");
        lab.setup_ssh(&nodes)?;
        if let Some(b) = lab.bastion() {
            lab.setup_bastion_ssh(&b)?;
            lab.block_direct_route(&opts.subnet)?;
            lab.write_bastion_files(&b)?;
            progress(
                start,
                &format!("bastion {} up; no direct route to the nodes", b.name),
            );
        }
        lab.check_ssh()?;
        progress(start, "SSH key installed, known_hosts written, ssh checked");
        lab.form_swarm()?;
        progress(start, "swarm formed");
        lab.deploy_probe()?;
        progress(start, "probe services converged");
        let text = inventory::render(lab.name(), &lab.nodes());
        fs::write(lab.inventory_path(), &text)?;
        let status = lab.wait_healthy(Duration::from_secs(120))?;
        progress(start, "lab healthy");
        println!("{}", status.render_text());
        println!("{text}");
        println!("inventory: {}", lab.inventory_path().display());
        if lab.bastion().is_some() {
            println!(
                "behind the bastion: ssh config {}, inventory {}, Ansible inventory {}",
                lab.ssh_config_path().display(),
                lab.alias_inventory_path().display(),
                lab.ansible_inventory_path().display()
            );
        }
        eprintln!(
            "testkit: lab {:?} up in {}",
            lab.name(),
            cmd::secs(start.elapsed())
        );
        Ok(lab)
    }

    /// `up` on an existing lab: report, change nothing.
    fn report_existing(self, opts: &UpOptions) -> Result<Lab> {
        let cfg = &self.config;
        if (cfg.managers, cfg.workers, cfg.subnet.as_str(), cfg.flavour)
            != (
                opts.managers,
                opts.workers,
                opts.subnet.as_str(),
                opts.flavour,
            )
        {
            eprintln!(
                "testkit: note: lab {:?} exists with {} managers, {} workers on {}, flavour {}; \
                 the options given differ and are ignored (`testkit down` first to change them)",
                cfg.name, cfg.managers, cfg.workers, cfg.subnet, cfg.flavour
            );
        }
        let states = self.container_states()?;
        let not_running: Vec<_> = self
            .nodes()
            .into_iter()
            .filter(|n| !states.iter().any(|(c, s)| *c == n.name && s == "running"))
            .map(|n| n.name)
            .collect();
        if !not_running.is_empty() {
            bail!(
                "lab {:?} exists but these nodes are missing or not running: {} \
                 (a fault? `testkit fault start-node NODE`; or `testkit down --name {}` and up again)",
                cfg.name,
                not_running.join(", "),
                cfg.name
            );
        }
        println!("lab {:?} is already up; nothing changed", cfg.name);
        match self.status() {
            Ok(status) => {
                println!("{}", status.render_text());
                if let Some(reason) = status.unhealthy_reason(self.nodes().len()) {
                    println!("not healthy: {reason}");
                }
            }
            Err(e) => println!("status unavailable: {e:#}"),
        }
        println!("inventory: {}", self.inventory_path().display());
        Ok(self)
    }

    fn create_nodes(&self, nodes: &[NodeInfo]) -> Result<()> {
        let label = format!("{}={}", paths::LAB_LABEL, self.config.name);
        let [a, b, c] = subnet_prefix(&self.config.subnet)?;
        cmd::docker()
            .args(["network", "create", "--driver", "bridge"])
            .arg(format!("--subnet={}", self.config.subnet))
            .arg(format!("--gateway={a}.{b}.{c}.1"))
            .args(["--label", &label, &self.network_name()])
            .run()?;
        let mut caps = node_capabilities(host_bounding_set()?);
        let dropped: Vec<_> = CAPABILITIES
            .iter()
            .filter(|c| **c != "SYS_RESOURCE" && !caps.contains(c))
            .collect();
        if !dropped.is_empty() {
            eprintln!(
                "testkit: note: the host lacks these capabilities too, nodes get neither: {dropped:?}"
            );
        }
        for node in nodes {
            let volume = format!("{}-docker", node.name);
            cmd::docker()
                .args(["volume", "create", "--label", &label, &volume])
                .run()?;
            loop {
                let out = self.run_node(node, &volume, &caps)?;
                if out.status.success() {
                    break;
                }
                // An engine knows the capabilities of its time only (20.10 predates PERFMON,
                // BPF and CHECKPOINT_RESTORE): drop what it rejects, and say so.
                let stderr = String::from_utf8_lossy(&out.stderr);
                let unknown = stderr
                    .split("unknown capability: \"CAP_")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|name| caps.iter().position(|c| *c == name));
                match unknown {
                    Some(i) => {
                        eprintln!(
                            "testkit: note: this dockerd does not know CAP_{}; nodes run without it",
                            caps[i]
                        );
                        caps.remove(i);
                        // A failed `docker run` may leave a created container behind.
                        let _ = cmd::docker().args(["rm", "--force", &node.name]).output();
                    }
                    None => bail!(
                        "starting node {}: {}",
                        node.name,
                        cmd::failure_message("docker run", &out)
                    ),
                }
            }
        }
        Ok(())
    }

    fn run_node(&self, node: &NodeInfo, volume: &str, caps: &[&str]) -> Result<Output> {
        let flavour = self.node_flavour(node);
        let mut run = cmd::docker();
        run.args([
            "run",
            "--detach",
            "--name",
            &node.name,
            "--hostname",
            &node.name,
        ])
        .args([
            "--label",
            &format!("{}={}", paths::LAB_LABEL, self.config.name),
        ])
        .args([
            "--label",
            &format!("swarm-upgrade-testkit.role={}", node.role.as_str()),
        ])
        .args([
            "--label",
            &format!("swarm-upgrade-testkit.flavour={flavour}"),
        ])
        // node-boot.sh provisions the flavour at the first start and execs the node's init.
        .args(["--env", &format!("TESTKIT_FLAVOUR={flavour}")])
        .args([
            "--network",
            &self.network_name(),
            "--ip",
            &node.address.to_string(),
        ])
        // Not --privileged (fails here); all capabilities but SYS_RESOURCE instead.
        .args(caps.iter().flat_map(|c| ["--cap-add", c]))
        .args(["--security-opt", "seccomp=unconfined"])
        .args(["--security-opt", "apparmor=unconfined"])
        .args(["--security-opt", "systempaths=unconfined"])
        // Nested containers need the cgroup hierarchy (cgroup v1 on this host).
        .args(["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"])
        // overlay2 does not work on overlay, and swarm state must survive restarts.
        .args(["-v", &format!("{volume}:/var/lib/docker")])
        .args([
            "--tmpfs",
            &format!("{UPGRADE_STATE_DIR}:rw,size=2g,mode=0755"),
        ])
        // Fresh /run at every start: no stale pid files after a stop-node fault.
        .args(["--tmpfs", "/run:rw,exec,size=256m,mode=0755"])
        // The init stops dockerd cleanly on SIGTERM; give it time to.
        .args(["--stop-timeout", "30"]);
        if flavour.is_systemd() {
            // systemd as PID 1 without --privileged (see LAB-NOTES.md): it wants a tmpfs
            // /run/lock, to know it runs in a container, and SIGRTMIN+3 to shut down.
            run.args(["--tmpfs", "/run/lock:rw,size=16m"])
                .args(["--env", "container=docker"])
                .args(["--stop-signal", "SIGRTMIN+3"]);
        }
        run
            // After a host reboot `testkit up` restarts the private dockerd and the nodes
            // come back; a node stopped on purpose (stop-node) stays stopped.
            .args(["--restart", "unless-stopped"])
            .arg(&self.config.node_image);
        run.output()
    }

    /// Wait until the init in each node has started sshd and dockerd answers.
    fn wait_nodes_booted(&self, nodes: &[NodeInfo]) -> Result<()> {
        for node in nodes {
            // A docker-ce or static node is provisioned at its first start (apt, offline).
            self.wait_booted(node, Duration::from_secs(300))?;
        }
        Ok(())
    }

    pub(crate) fn wait_booted(&self, node: &NodeInfo, timeout: Duration) -> Result<()> {
        cmd::wait_for(
            &format!("{} to boot", node.name),
            timeout,
            Duration::from_millis(500),
            || {
                let out = cmd::docker()
                .args(["exec", &node.name, "sh", "-c"])
                .arg("test -e /run/testkit-init.done && test -e /run/sshd.pid && docker info --format '{{.ServerVersion}}'")
                .timeout(Duration::from_secs(15))
                .output()?;
                if out.status.success() {
                    Ok(Some(()))
                } else {
                    bail!(
                        "{}",
                        cmd::failure_message(&format!("docker exec {} ...", node.name), &out)
                    )
                }
            },
        )
    }

    /// Client key (ed25519, made once per lab), authorized for `upgrader` on every node, and
    /// a known_hosts made from the host keys each node generated at its first start.
    fn setup_ssh(&self, nodes: &[NodeInfo]) -> Result<()> {
        let key = self.identity_file();
        if !key.exists() {
            Cmd::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("swarm-upgrade-testkit-{}", self.config.name))
                .arg("-f")
                .arg(&key)
                .run()?;
        }
        let public = fs::read(key.with_extension("pub"))?;
        let mut known_hosts = String::new();
        for node in nodes {
            cmd::docker()
                .args(["exec", "-i", &node.name, "sh", "-c"])
                .arg(
                    "install -d -m 0700 -o upgrader -g upgrader /home/upgrader/.ssh && \
                     cat > /home/upgrader/.ssh/authorized_keys && \
                     chown upgrader:upgrader /home/upgrader/.ssh/authorized_keys && \
                     chmod 0600 /home/upgrader/.ssh/authorized_keys",
                )
                .stdin(public.clone())
                .run()
                .with_context(|| format!("authorizing the lab key on {}", node.name))?;
            let keys = self.exec_sh(&node.name, "cat /etc/ssh/ssh_host_*_key.pub")?;
            known_hosts.push_str(&known_hosts_lines(node, &keys));
        }
        fs::write(self.known_hosts_file(), known_hosts)?;
        Ok(())
    }

    /// The lab's real SSH path (strict host key checking, key, sudo) works to every node.
    fn check_ssh(&self) -> Result<()> {
        for node in self.nodes() {
            let out = self.ssh(&node.name, &["sudo", "-n", "hostname"])?;
            let name = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || name.trim() != node.name {
                bail!(
                    "{}",
                    cmd::failure_message(
                        &format!("ssh upgrader@{} sudo -n hostname", node.address),
                        &out
                    )
                );
            }
        }
        Ok(())
    }

    fn form_swarm(&self) -> Result<()> {
        let managers = self.managers();
        let first = &managers[0];
        let ip = first.address.to_string();
        self.exec_sh(
            &first.name,
            &format!("docker swarm init --advertise-addr {ip} --listen-addr {ip}:2377"),
        )?;
        let manager_token = self.exec_sh(&first.name, "docker swarm join-token -q manager")?;
        let worker_token = self.exec_sh(&first.name, "docker swarm join-token -q worker")?;
        let join = |node: &NodeInfo, token: &str| -> Result<()> {
            let me = node.address;
            self.exec_sh(
                &node.name,
                &format!(
                    "docker swarm join --token {} --advertise-addr {me} --listen-addr {me}:2377 {ip}:2377",
                    token.trim()
                ),
            )?;
            Ok(())
        };
        // Managers one at a time: each raft membership change should commit before the next.
        for m in &managers[1..] {
            join(m, &manager_token)?;
        }
        thread::scope(|s| {
            let handles: Vec<_> = self
                .workers()
                .into_iter()
                .map(|w| {
                    let token = worker_token.clone();
                    s.spawn(move || join(&w, &token))
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("join thread panicked"))
        })
    }

    fn deploy_probe(&mut self) -> Result<()> {
        let binary = probe_image::locate_probe_binary()?;
        let image = probe_image::build(&binary, &self.dir.join("probe-image"))?;
        // No registry: the image is imported into every node's engine.
        thread::scope(|s| {
            let handles: Vec<_> = self
                .nodes()
                .into_iter()
                .map(|node| {
                    let image = &image;
                    s.spawn(move || -> Result<()> {
                        cmd::docker()
                            .args(["exec", "-i", &node.name, "docker", "import"])
                            .args(["--change", r#"ENTRYPOINT ["/probe"]"#, "-", &image.tag])
                            .stdin(image.tar.clone())
                            .timeout(Duration::from_secs(120))
                            .run()
                            .with_context(|| {
                                format!("importing the probe image into {}", node.name)
                            })?;
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("import thread panicked"))
        })?;
        self.config.probe_image = Some(image.tag.clone());
        self.save()?;

        let m1 = self.managers()[0].name.clone();
        let tag = &image.tag;
        // dnsrr everywhere: this kernel has no IPVS, so service VIPs would not route. --init:
        // the probe is not PID 1 and so dies on SIGTERM at once (std cannot catch signals).
        self.exec_sh(
            &m1,
            &format!("docker network create --driver overlay --attachable {PROBE_NETWORK}"),
        )?;
        self.exec_sh(
            &m1,
            &create_service(
                PROBE_SERVER,
                tag,
                &format!(
                    "--replicas 3 --endpoint-mode dnsrr --network {PROBE_NETWORK} --init \
                     --no-resolve-image --stop-grace-period 5s"
                ),
                "server --port 8080",
            ),
        )?;
        self.wait_service(PROBE_SERVER, Duration::from_secs(180))?;
        // Clients start once servers answer, so that a fresh lab's report starts clean.
        self.exec_sh(
            &m1,
            &create_service(
                PROBE_CLIENT,
                tag,
                &format!(
                    "--replicas 2 --endpoint-mode dnsrr --network {PROBE_NETWORK} --init \
                     --no-resolve-image --stop-grace-period 5s \
                     --env 'PROBE_SLOT={{{{.Task.Slot}}}}' \
                     --mount type=volume,source=probe-data,target=/data"
                ),
                &format!(
                    "client --target {PROBE_SERVER}:8080 --timeout-ms {PROBE_TIMEOUT_MS} --dir /data"
                ),
            ),
        )?;
        self.wait_service(PROBE_CLIENT, Duration::from_secs(180))?;
        Ok(())
    }

    /// A global service of the probe server publishing `port` in host mode
    /// on every node (this machine has no IPVS, so the routing mesh cannot
    /// publish): what `verify-services` must find answering after a node's
    /// upgrade. Named [`PROBE_PUBLISHED`].
    pub fn deploy_published_probe(&self, port: u16) -> Result<()> {
        let tag = self
            .config
            .probe_image
            .clone()
            .context("the lab has no probe image")?;
        self.on_manager(&create_service(
            PROBE_PUBLISHED,
            &tag,
            &format!(
                "--mode global --publish mode=host,published={port},target=8080 \
                 --endpoint-mode dnsrr --network {PROBE_NETWORK} --init --no-resolve-image \
                 --stop-grace-period 5s"
            ),
            "server --port 8080",
        ))?;
        self.wait_service(PROBE_PUBLISHED, Duration::from_secs(180))
    }

    fn wait_service(&self, name: &str, timeout: Duration) -> Result<()> {
        cmd::wait_for(
            &format!("service {name} to converge"),
            timeout,
            Duration::from_secs(1),
            || {
                let status = self.status()?;
                match status.service(name) {
                    Some(s) if s.running == s.desired && s.desired > 0 => Ok(Some(())),
                    Some(s) => bail!("{name} at {}/{}", s.running, s.desired),
                    None => bail!("{name} not found"),
                }
            },
        )
    }

    /// Remove a lab: containers, volumes, network, state directory. Stops the private
    /// daemon (and deletes its data root) when no lab is left. The image cache stays.
    pub fn down(name: &str) -> Result<()> {
        let start = Instant::now();
        validate_name(name)?;
        let _lock = host::lock_host("down")?;
        // A bastion lab's rule on the host goes first, whatever else is left.
        bastion::remove_block_rules(name)?;
        let daemon = host::Daemon::new();
        let dir = paths::lab_dir(name);
        if daemon.pid().is_none() {
            if !paths::daemon_dir().join("data").exists() {
                if dir.exists() {
                    fs::remove_dir_all(&dir)?;
                }
                println!("lab {name:?}: nothing to remove (the private dockerd has no data)");
                return Ok(());
            }
            // Its containers and volumes can only be removed through the daemon.
            daemon.ensure_running()?;
        }
        let label = format!("label={}={}", paths::LAB_LABEL, name);
        let containers: Vec<String> = cmd::docker()
            .args(["ps", "-aq", "--filter", &label])
            .run()?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !containers.is_empty() {
            // Stop first: each node's init then stops its dockerd, which stops and cleans up
            // the nested containers (their cgroups are on the host's hierarchy).
            let _ = cmd::docker()
                .args(["stop", "--time", "20"])
                .args(&containers)
                .timeout(Duration::from_secs(120))
                .output();
            cmd::docker()
                .args(["rm", "--force", "--volumes"])
                .args(&containers)
                .run()?;
        }
        let networks = cmd::docker()
            .args(["network", "ls", "-q", "--filter", &label])
            .run()?;
        for net in networks.split_whitespace() {
            cmd::docker().args(["network", "rm", net]).run()?;
        }
        let volumes = cmd::docker()
            .args(["volume", "ls", "-q", "--filter", &label])
            .run()?;
        let volumes: Vec<&str> = volumes.split_whitespace().collect();
        if !volumes.is_empty() {
            cmd::docker().args(["volume", "rm"]).args(&volumes).run()?;
        }
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        println!(
            "lab {name:?} removed: {} containers, {} volumes ({})",
            containers.len(),
            volumes.len(),
            cmd::secs(start.elapsed())
        );

        let others = cmd::docker()
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label={}", paths::LAB_LABEL),
            ])
            .run()?;
        if others.trim().is_empty() {
            daemon.stop()?;
            daemon.remove_data()?;
            image::clean_dir(&paths::build_dir())?;
            println!(
                "no lab left: private dockerd stopped, {} removed (image cache kept in {})",
                paths::daemon_dir().display(),
                paths::cache_root().display()
            );
        }
        eprintln!("testkit: down in {}", cmd::secs(start.elapsed()));
        Ok(())
    }
}

/// known_hosts lines for a node from its `ssh_host_*_key.pub` files: the node is known
/// under its name and its address (the inventory connects by address).
pub fn known_hosts_lines(node: &NodeInfo, pub_keys: &str) -> String {
    pub_keys
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (kind, key) = (words.next()?, words.next()?);
            Some(format!("{},{} {kind} {key}\n", node.name, node.address))
        })
        .collect()
}

/// Split the probe log dump (`==> FILE BYTES` followed by exactly BYTES bytes, per file).
/// Byte counts, not markers alone, because a log may end in a half-written line.
pub fn split_dump(dump: &str) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let mut rest = dump;
    while !rest.is_empty() {
        let (header, after) = rest.split_once('\n').context("truncated header")?;
        let spec = header
            .strip_prefix("==> ")
            .with_context(|| format!("expected a '==> FILE BYTES' header, got {header:?}"))?;
        let (file, len) = spec.rsplit_once(' ').context("header without length")?;
        let len: usize = len
            .parse()
            .with_context(|| format!("bad length in {header:?}"))?;
        if after.len() < len || !after.is_char_boundary(len) {
            bail!("{file}: dump shorter than its announced {len} bytes");
        }
        files.push((file.to_string(), after[..len].to_string()));
        rest = &after[len..];
    }
    Ok(files)
}

/// A script that creates service `name` from `image`, and that also succeeds when the
/// service is already there with that image. A busy manager has answered a create with
/// "name conflicts with an existing object" for the service that very create made (CI,
/// stop 22: every manager then said so); asking again must not fail a lab test.
fn create_service(name: &str, image: &str, options: &str, args: &str) -> String {
    let image_q = cmd::shell_quote(image);
    format!(
        "docker service create --detach --name {name} {options} {image_q} {args} \
         || docker service inspect --format '{{{{.Spec.TaskTemplate.ContainerSpec.Image}}}}' {name} \
            | grep -qxF {image_q}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_a_lab_that_is_not_up_fails_with_the_reason() {
        let err = Lab::open("no-such-lab-here").err().expect("no such lab");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("is not up") && msg.contains("testkit up --name no-such-lab-here"),
            "{msg}"
        );
        assert!(Lab::open("Bad Name").is_err());
    }

    #[test]
    fn default_lab_layout() {
        let nodes = plan_nodes("lab", 3, 2, DEFAULT_SUBNET).unwrap();
        let names: Vec<_> = nodes
            .iter()
            .map(|n| format!("{} {} {:?}", n.name, n.address, n.role))
            .collect();
        assert_eq!(
            names,
            [
                "lab-m1 172.30.0.11 Manager",
                "lab-m2 172.30.0.12 Manager",
                "lab-m3 172.30.0.13 Manager",
                "lab-w1 172.30.0.21 Worker",
                "lab-w2 172.30.0.22 Worker",
            ]
        );
        assert_eq!(
            plan_nodes("x", 1, 0, "10.9.8.0/24").unwrap()[0].address,
            Ipv4Addr::new(10, 9, 8, 11)
        );
    }

    #[test]
    fn bad_layouts_are_refused() {
        assert!(plan_nodes("lab", 0, 2, DEFAULT_SUBNET).is_err());
        assert!(plan_nodes("lab", 3, 10, DEFAULT_SUBNET).is_err());
        assert!(plan_nodes("lab", 3, 2, "172.30.0.0/16").is_err());
        assert!(plan_nodes("lab", 3, 2, "172.30.0.5/24").is_err());
        assert!(validate_name("Lab").is_err());
        assert!(validate_name("lab_1").is_err());
        assert!(validate_name("lab-2").is_ok());
    }

    #[test]
    fn capabilities_skip_sys_resource_and_what_the_host_lacks() {
        // This machine's bounding set: everything up to CAP_CHECKPOINT_RESTORE (40) but 24.
        let host = 0x000001fffeffffff_u64;
        let caps = node_capabilities(host);
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&"SYS_RESOURCE"));
        assert!(caps.contains(&"SYS_ADMIN") && caps.contains(&"CHECKPOINT_RESTORE"));
        // CAPABILITIES is in kernel bit order.
        assert_eq!(CAPABILITIES[21], "SYS_ADMIN");
        assert_eq!(CAPABILITIES[24], "SYS_RESOURCE");
        assert_eq!(CAPABILITIES[40], "CHECKPOINT_RESTORE");
        let no_bpf = host & !(1 << 39);
        assert!(!node_capabilities(no_bpf).contains(&"BPF"));
    }

    #[test]
    fn known_hosts_use_name_and_address() {
        let node = NodeInfo {
            name: "lab-m1".into(),
            address: Ipv4Addr::new(172, 30, 0, 11),
            role: Role::Manager,
        };
        let lines = known_hosts_lines(
            &node,
            "ssh-ed25519 AAAAC3 root@lab-m1\necdsa-sha2-nistp256 AAAAE2 root@lab-m1\n",
        );
        assert_eq!(
            lines,
            "lab-m1,172.30.0.11 ssh-ed25519 AAAAC3\nlab-m1,172.30.0.11 ecdsa-sha2-nistp256 AAAAE2\n"
        );
    }

    #[test]
    fn dumps_split_by_length_even_with_a_partial_last_line() {
        let dump = "==> 1-abc.log 10\nline1\nline==> 2-def.log 6\nline2\n";
        let files = split_dump(dump).unwrap();
        assert_eq!(
            files,
            [
                ("1-abc.log".to_string(), "line1\nline".to_string()),
                ("2-def.log".to_string(), "line2\n".to_string())
            ]
        );
        assert!(split_dump("==> x 100\nshort").is_err());
        assert!(split_dump("").unwrap().is_empty());
    }
}
