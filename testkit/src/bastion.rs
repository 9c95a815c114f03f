//! A bastion in front of a lab (`testkit up --bastion`): one more container running only
//! sshd, on the lab network and on a second network that the controller (this host)
//! reaches; the nodes themselves are then unreachable from the host (an iptables REJECT in
//! the host's OUTPUT chain), as production swarms behind a jump host are.
//!
//! `up --bastion` writes, in the lab directory, the files an operator would have:
//! - `ssh_config`: a Host alias per node with ProxyJump to the bastion's alias, User,
//!   IdentityFile, UserKnownHostsFile, StrictHostKeyChecking yes;
//! - `inventory-aliases.yaml`: a swarm-upgrade inventory naming only those aliases;
//! - `ansible/hosts.ini` + `ansible/group_vars/all.yml`: the same lab for Ansible
//!   (managers/workers groups, ProxyJump in `ansible_ssh_common_args`).
//!
//! The bastion's sshd runs with `MaxStartups 3`: a burst of connections through it is
//! refused beyond three handshakes in progress, which a tool that opens one connection per
//! host at once must cope with.
//!
//! Rendering is pure (tested below); `lab.rs` creates the container and writes the files.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, Cmd};
use crate::lab::{Lab, NodeInfo, Role};
use crate::paths;

pub const SSH_CONFIG_FILE: &str = "ssh_config";
pub const ALIAS_INVENTORY_FILE: &str = "inventory-aliases.yaml";
pub const ANSIBLE_DIR: &str = "ansible";
pub const ANSIBLE_INI_FILE: &str = "hosts.ini";
/// The bastion's MaxStartups: low on purpose (issue 17).
pub const MAX_STARTUPS: u32 = 3;
/// Last octet of the bastion on both of its networks.
const BASTION_OCTET: u8 = 5;

/// Where the bastion is, on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BastionInfo {
    /// Container name = hostname = ssh config alias, e.g. "bst-bastion".
    pub name: String,
    /// On the lab network (what it forwards to the nodes from).
    pub lab_address: Ipv4Addr,
    /// On the controller-facing network (what the controller connects to).
    pub address: Ipv4Addr,
    /// The controller-facing network, an IPv4 /24.
    pub subnet: String,
}

/// The bastion of lab `lab` whose nodes are on `lab_subnet`, reached on `subnet`.
pub fn plan(lab: &str, lab_subnet: &str, subnet: &str) -> Result<BastionInfo> {
    let [a, b, c] = crate::lab::subnet_prefix(lab_subnet)?;
    let [x, y, z] = crate::lab::subnet_prefix(subnet)?;
    if [a, b, c] == [x, y, z] {
        bail!("the bastion's network {subnet} must differ from the lab network {lab_subnet}");
    }
    Ok(BastionInfo {
        name: format!("{lab}-bastion"),
        lab_address: Ipv4Addr::new(a, b, c, BASTION_OCTET),
        address: Ipv4Addr::new(x, y, z, BASTION_OCTET),
        subnet: subnet.to_string(),
    })
}

/// The default controller-facing /24: the one after the lab's (172.31.61.0/24 ->
/// 172.31.62.0/24).
pub fn default_subnet(lab_subnet: &str) -> Result<String> {
    let [a, b, c] = crate::lab::subnet_prefix(lab_subnet)?;
    let next = c
        .checked_add(1)
        .context("the lab subnet is x.y.255.0/24: pass --bastion-subnet")?;
    Ok(format!("{a}.{b}.{next}.0/24"))
}

/// The bastion's command (under tini): host keys made at first start, MaxStartups, sshd.
/// No dockerd: a bastion only forwards.
pub fn boot_script() -> String {
    format!(
        "mkdir -p /run/sshd && ssh-keygen -A && \
         printf '# testkit bastion\\nMaxStartups {MAX_STARTUPS}\\nAllowTcpForwarding yes\\n' \
         > /etc/ssh/sshd_config.d/zz-bastion.conf && \
         /usr/sbin/sshd && touch /run/bastion.ready && exec sleep infinity"
    )
}

/// The swarm-upgrade iptables rule's comment: what `down` looks for.
pub fn rule_comment(lab: &str) -> String {
    format!("swarm-upgrade-testkit-{lab}-direct")
}

/// The iptables arguments (after `-I`/`-D`) of the rule that makes the lab's nodes
/// unreachable from this host: only the bastion reaches them.
pub fn block_rule(lab: &str, lab_subnet: &str) -> Vec<String> {
    [
        "OUTPUT",
        "-d",
        lab_subnet,
        "-m",
        "comment",
        "--comment",
        &rule_comment(lab),
        "-j",
        "REJECT",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Rules of `iptables -S OUTPUT` that belong to lab `lab`, as `-D` argument lists.
pub fn rules_to_delete(lab: &str, listing: &str) -> Vec<Vec<String>> {
    let comment = rule_comment(lab);
    listing
        .lines()
        .filter(|l| l.starts_with("-A ") && l.split_whitespace().any(|w| w == comment))
        .map(|l| {
            let mut words: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            words[0] = "-D".into();
            words
        })
        .collect()
}

/// The ssh config for the lab: the bastion, then one alias per node jumping through it.
pub fn render_ssh_config(
    lab: &str,
    nodes: &[NodeInfo],
    bastion: &BastionInfo,
    dir: &Path,
) -> String {
    let key = dir.join(crate::inventory::IDENTITY_FILE);
    let known = dir.join(crate::inventory::KNOWN_HOSTS_FILE);
    let common = format!(
        "    User upgrader\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
         UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n",
        key.display(),
        known.display()
    );
    let mut out = format!(
        "# ssh config for the testkit lab \"{lab}\": the nodes are reached only through the bastion\n\
         Host {}\n    HostName {}\n{common}",
        bastion.name, bastion.address
    );
    for node in nodes {
        out.push_str(&format!(
            "\nHost {}\n    HostName {}\n    ProxyJump {}\n{common}",
            node.name, node.address, bastion.name
        ));
    }
    out
}

/// A swarm-upgrade inventory naming only the ssh config aliases: who logs in with which key
/// and through which bastion is all in the ssh config.
pub fn render_alias_inventory(lab: &str, nodes: &[NodeInfo]) -> String {
    let mut out = format!(
        "# swarm-upgrade inventory for the testkit lab \"{lab}\": ssh config aliases only\n\
         # (run with -F {SSH_CONFIG_FILE} or SWARM_UPGRADE_SSH_CONFIG={SSH_CONFIG_FILE})\n\
         defaults:\n\
         \x20 sudo: true\n\
         hosts:\n"
    );
    for node in nodes {
        out.push_str(&format!("  - name: {}\n", node.name));
    }
    out
}

/// The Ansible INI inventory: managers and workers groups, addresses as `ansible_host`.
pub fn render_ansible_ini(lab: &str, nodes: &[NodeInfo]) -> String {
    let mut out = format!(
        "# Ansible inventory for the testkit lab \"{lab}\" (connection settings in group_vars/all.yml)\n"
    );
    for (group, role) in [("managers", Role::Manager), ("workers", Role::Worker)] {
        out.push_str(&format!("\n[{group}]\n"));
        for node in nodes.iter().filter(|n| n.role == role) {
            out.push_str(&format!("{} ansible_host={}\n", node.name, node.address));
        }
    }
    out.push_str("\n[swarm:children]\nmanagers\nworkers\n");
    out
}

/// `group_vars/all.yml` for the INI: user, key, sudo, and the bastion as ProxyJump. The
/// bastion's own key and known_hosts come from the ssh config (its alias), exactly as with
/// Ansible: `ssh -J` passes neither `-i` nor `-o` options on to the jump host.
pub fn render_ansible_group_vars(bastion: &BastionInfo, dir: &Path) -> String {
    format!(
        "# testkit lab: every node through the bastion {name}\n\
         ansible_user: upgrader\n\
         ansible_become: true\n\
         ansible_ssh_private_key_file: {key}\n\
         ansible_ssh_common_args: \"-o ProxyJump={name} -o UserKnownHostsFile={known}\"\n",
        name = bastion.name,
        key = dir.join(crate::inventory::IDENTITY_FILE).display(),
        known = dir.join(crate::inventory::KNOWN_HOSTS_FILE).display(),
    )
}

/// known_hosts lines for the bastion: its alias and both addresses.
pub fn known_hosts_lines(bastion: &BastionInfo, pub_keys: &str) -> String {
    pub_keys
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (kind, key) = (words.next()?, words.next()?);
            Some(format!(
                "{},{},{} {kind} {key}\n",
                bastion.name, bastion.address, bastion.lab_address
            ))
        })
        .collect()
}

impl Lab {
    /// Name of the controller-facing network of the bastion.
    pub fn bastion_network_name(&self) -> String {
        format!("{}-front", self.name())
    }

    /// Creates the bastion's network and container (after the lab network exists).
    pub(crate) fn create_bastion(&self, b: &BastionInfo) -> Result<()> {
        let label = format!("{}={}", paths::LAB_LABEL, self.name());
        let [x, y, z] = crate::lab::subnet_prefix(&b.subnet)?;
        cmd::docker()
            .args(["network", "create", "--driver", "bridge"])
            .arg(format!("--subnet={}", b.subnet))
            .arg(format!("--gateway={x}.{y}.{z}.1"))
            .args(["--label", &label, &self.bastion_network_name()])
            .run()?;
        // The node image, but only sshd in it, under tini (which reaps sshd's children).
        cmd::docker()
            .args(["create", "--name", &b.name, "--hostname", &b.name])
            .args(["--label", &label])
            .args(["--label", "swarm-upgrade-testkit.role=bastion"])
            .args(["--network", &self.bastion_network_name()])
            .args(["--ip", &b.address.to_string()])
            .args(["--tmpfs", "/run:rw,size=16m,mode=0755"])
            .args(["--restart", "unless-stopped"])
            .args(["--entrypoint", "/usr/local/sbin/testkit-tini"])
            .arg(self.node_image())
            .args(["--", "sh", "-c", &boot_script()])
            .run()
            .with_context(|| format!("creating the bastion {}", b.name))?;
        cmd::docker()
            .args(["network", "connect", "--ip", &b.lab_address.to_string()])
            .args([&self.network_name(), &b.name])
            .run()?;
        cmd::docker().args(["start", &b.name]).run()?;
        Ok(())
    }

    /// Waits for the bastion's sshd, authorizes the lab key for `upgrader` on it and adds
    /// its host keys to the lab's known_hosts.
    pub(crate) fn setup_bastion_ssh(&self, b: &BastionInfo) -> Result<()> {
        cmd::wait_for(
            &format!("{} to start sshd", b.name),
            Duration::from_secs(60),
            Duration::from_millis(300),
            || {
                let out = cmd::docker()
                    .args(["exec", &b.name, "test", "-e", "/run/bastion.ready"])
                    .output()?;
                if out.status.success() {
                    Ok(Some(()))
                } else {
                    bail!("not ready")
                }
            },
        )?;
        let public = fs::read(self.identity_file().with_extension("pub"))?;
        cmd::docker()
            .args(["exec", "-i", &b.name, "sh", "-c"])
            .arg(
                "install -d -m 0700 -o upgrader -g upgrader /home/upgrader/.ssh && \
                 cat > /home/upgrader/.ssh/authorized_keys && \
                 chown upgrader:upgrader /home/upgrader/.ssh/authorized_keys && \
                 chmod 0600 /home/upgrader/.ssh/authorized_keys",
            )
            .stdin(public)
            .run()
            .with_context(|| format!("authorizing the lab key on {}", b.name))?;
        let keys = cmd::docker()
            .args([
                "exec",
                &b.name,
                "sh",
                "-c",
                "cat /etc/ssh/ssh_host_*_key.pub",
            ])
            .run()?;
        let mut known = fs::read_to_string(self.known_hosts_file())?;
        known.push_str(&known_hosts_lines(b, &keys));
        fs::write(self.known_hosts_file(), known)?;
        Ok(())
    }

    /// Makes the nodes unreachable from this host (the bastion still reaches them: bridged
    /// traffic between its containers does not pass the host's OUTPUT chain).
    pub(crate) fn block_direct_route(&self, lab_subnet: &str) -> Result<()> {
        remove_block_rules(self.name())?;
        Cmd::new("iptables")
            .arg("-I")
            .args(block_rule(self.name(), lab_subnet))
            .run()
            .context("blocking the direct route from this host to the lab's nodes")?;
        Ok(())
    }

    /// Writes the ssh config, the alias inventory and the Ansible inventory.
    pub(crate) fn write_bastion_files(&self, b: &BastionInfo) -> Result<()> {
        let nodes = self.nodes();
        fs::write(
            self.ssh_config_path(),
            render_ssh_config(self.name(), &nodes, b, self.dir()),
        )?;
        fs::write(
            self.alias_inventory_path(),
            render_alias_inventory(self.name(), &nodes),
        )?;
        let ansible = self.dir().join(ANSIBLE_DIR);
        fs::create_dir_all(ansible.join("group_vars"))?;
        fs::write(
            self.ansible_inventory_path(),
            render_ansible_ini(self.name(), &nodes),
        )?;
        fs::write(
            ansible.join("group_vars").join("all.yml"),
            render_ansible_group_vars(b, self.dir()),
        )?;
        Ok(())
    }

    /// Stops every sshd process of the bastion (the listener and the connections' own
    /// processes): the bastion is gone for SSH, open connections through it included.
    pub fn stop_bastion_sshd(&self) -> Result<()> {
        let b = self.bastion().context("the lab has no bastion")?;
        cmd::docker()
            .args(["exec", &b.name, "sh", "-c"])
            .arg("for p in $(pidof sshd); do kill \"$p\"; done; sleep 0.5; ! pidof sshd")
            .run()
            .with_context(|| format!("stopping sshd on {}", b.name))?;
        Ok(())
    }

    /// Starts the bastion's sshd again (same host keys).
    pub fn start_bastion_sshd(&self) -> Result<()> {
        let b = self.bastion().context("the lab has no bastion")?;
        cmd::docker()
            .args(["exec", &b.name, "/usr/sbin/sshd"])
            .run()
            .with_context(|| format!("starting sshd on {}", b.name))?;
        Ok(())
    }
}

/// Deletes lab `lab`'s direct-route rules (none: nothing to do).
pub fn remove_block_rules(lab: &str) -> Result<()> {
    let Ok(listing) = Cmd::new("iptables").args(["-S", "OUTPUT"]).run() else {
        return Ok(()); // no iptables: no rule was made either
    };
    for rule in rules_to_delete(lab, &listing) {
        Cmd::new("iptables").args(&rule).run()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeInfo> {
        crate::lab::plan_nodes("bst", 1, 2, "172.31.61.0/24").unwrap()
    }

    fn bastion() -> BastionInfo {
        plan("bst", "172.31.61.0/24", "172.31.62.0/24").unwrap()
    }

    #[test]
    fn the_bastion_sits_on_both_networks() {
        let b = bastion();
        assert_eq!(b.name, "bst-bastion");
        assert_eq!(b.lab_address, Ipv4Addr::new(172, 31, 61, 5));
        assert_eq!(b.address, Ipv4Addr::new(172, 31, 62, 5));
        assert!(plan("bst", "172.31.61.0/24", "172.31.61.0/24").is_err());
        assert!(plan("bst", "172.31.61.0/24", "172.31.62.0/16").is_err());
        assert_eq!(default_subnet("172.31.61.0/24").unwrap(), "172.31.62.0/24");
        assert!(default_subnet("10.0.255.0/24").is_err());
    }

    #[test]
    fn ssh_config_jumps_every_node_through_the_bastion() {
        let text = render_ssh_config("bst", &nodes(), &bastion(), Path::new("/lab"));
        let expected = "\
# ssh config for the testkit lab \"bst\": the nodes are reached only through the bastion
Host bst-bastion
    HostName 172.31.62.5
    User upgrader
    IdentityFile /lab/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile /lab/known_hosts
    StrictHostKeyChecking yes

Host bst-m1
    HostName 172.31.61.11
    ProxyJump bst-bastion
    User upgrader
    IdentityFile /lab/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile /lab/known_hosts
    StrictHostKeyChecking yes
";
        assert!(text.starts_with(expected), "{text}");
        assert_eq!(text.matches("ProxyJump bst-bastion").count(), 3);
        assert!(text.contains("Host bst-w2\n    HostName 172.31.61.22\n"));
    }

    #[test]
    fn the_alias_inventory_names_no_address_user_or_key() {
        let text = render_alias_inventory("bst", &nodes());
        assert!(text.ends_with(
            "defaults:\n  sudo: true\nhosts:\n  - name: bst-m1\n  - name: bst-w1\n  - name: bst-w2\n"
        ));
        for word in ["address", "user:", "identity", "172."] {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }

    #[test]
    fn ansible_ini_and_group_vars() {
        let ini = render_ansible_ini("bst", &nodes());
        assert!(ini.contains(
            "\n[managers]\nbst-m1 ansible_host=172.31.61.11\n\n[workers]\n\
             bst-w1 ansible_host=172.31.61.21\nbst-w2 ansible_host=172.31.61.22\n\n\
             [swarm:children]\nmanagers\nworkers\n"
        ));
        let vars = render_ansible_group_vars(&bastion(), Path::new("/lab"));
        assert!(vars.contains("ansible_user: upgrader\nansible_become: true\n"));
        assert!(vars.contains("ansible_ssh_private_key_file: /lab/id_ed25519\n"));
        assert!(vars.contains(
            "ansible_ssh_common_args: \"-o ProxyJump=bst-bastion -o UserKnownHostsFile=/lab/known_hosts\"\n"
        ));
    }

    #[test]
    fn the_direct_route_rule_is_found_again_for_deletion() {
        let rule = block_rule("bst", "172.31.61.0/24");
        assert_eq!(
            rule.join(" "),
            "OUTPUT -d 172.31.61.0/24 -m comment --comment swarm-upgrade-testkit-bst-direct -j REJECT"
        );
        // As `iptables -S OUTPUT` prints it back.
        let listing = "-P OUTPUT ACCEPT\n\
            -A OUTPUT -d 172.31.61.0/24 -m comment --comment swarm-upgrade-testkit-bst-direct -j REJECT --reject-with icmp-port-unreachable\n\
            -A OUTPUT -d 172.31.9.0/24 -m comment --comment swarm-upgrade-testkit-bst2-direct -j REJECT --reject-with icmp-port-unreachable\n";
        let del = rules_to_delete("bst", listing);
        assert_eq!(del.len(), 1);
        assert_eq!(del[0][0], "-D");
        assert_eq!(del[0][1], "OUTPUT");
        assert!(del[0].iter().any(|w| w == "172.31.61.0/24"));
    }

    #[test]
    fn bastion_known_hosts_name_alias_and_both_addresses() {
        let lines = known_hosts_lines(&bastion(), "ssh-ed25519 AAAAC3 root@bst-bastion\n");
        assert_eq!(
            lines,
            "bst-bastion,172.31.62.5,172.31.61.5 ssh-ed25519 AAAAC3\n"
        );
    }

    #[test]
    fn boot_script_sets_max_startups() {
        assert!(boot_script().contains("MaxStartups 3"));
        assert!(!boot_script().contains("docker"));
    }
}
