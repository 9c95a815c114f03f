//! Faults a lab can inject into a node, each with its reversal.
//!
//! Every operation is idempotent: applying a fault that is already in place, or restoring a
//! node that does not have it, does nothing. Tests can therefore always restore in cleanup.
//! Each operation returns once its effect is in place at the node level (engine gone or
//! answering, container stopped or booted, ...); swarm-level recovery is `Lab::wait_healthy`.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::lab::{Lab, NodeInfo, UPGRADE_STATE_DIR};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `service docker stop` (reversed by `service docker start`).
    StopEngine,
    /// SIGKILL dockerd, no cleanup (reversed by `service docker start`).
    KillEngine,
    /// `docker stop` of the node container (reversed by `docker start`; the init brings sshd
    /// and dockerd back).
    StopNode,
    /// Off the lab network (reversed by reconnecting with the same IP).
    Disconnect,
    /// /etc/sudoers.d/upgrader removed (reversed by restoring it).
    NoSudo,
    /// /var/lib/swarm-upgrade filled to less than 16 MiB free (reversed by deleting the filler).
    FillDisk,
}

const FILLER: &str = ".testkit-fill";
/// Free space left by fill-disk: less than the 16 MiB promised, more than nothing so that the
/// node's shell itself keeps working.
const FILL_LEAVES_BYTES: u64 = 8 * 1024 * 1024;

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::StopEngine,
        Fault::KillEngine,
        Fault::StopNode,
        Fault::Disconnect,
        Fault::NoSudo,
        Fault::FillDisk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::StopEngine => "stop-engine",
            Fault::KillEngine => "kill-engine",
            Fault::StopNode => "stop-node",
            Fault::Disconnect => "disconnect",
            Fault::NoSudo => "no-sudo",
            Fault::FillDisk => "fill-disk",
        }
    }

    /// The CLI name of the reversal.
    pub fn reverse_name(self) -> &'static str {
        match self {
            Fault::StopEngine | Fault::KillEngine => "start-engine",
            Fault::StopNode => "start-node",
            Fault::Disconnect => "connect",
            Fault::NoSudo => "sudo",
            Fault::FillDisk => "free-disk",
        }
    }

    /// Parse a CLI action: a fault name (apply, `true`) or a reversal name (`false`).
    pub fn parse_action(action: &str) -> Option<(Fault, bool)> {
        Fault::ALL.iter().find_map(|f| {
            if f.name() == action {
                Some((*f, true))
            } else if f.reverse_name() == action {
                Some((*f, false))
            } else {
                None
            }
        })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn engine_answers(lab: &Lab, node: &NodeInfo) -> bool {
    lab.exec(
        &node.name,
        &["docker", "info", "--format", "{{.ServerVersion}}"],
    )
    .is_ok_and(|o| o.status.success())
}

fn dockerd_running(lab: &Lab, node: &NodeInfo) -> bool {
    lab.exec(&node.name, &["pgrep", "-x", "dockerd"])
        .is_ok_and(|o| o.status.success())
}

fn connected(lab: &Lab, node: &NodeInfo) -> Result<bool> {
    let nets = cmd::docker()
        .args([
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        ])
        .arg(&node.name)
        .run()?;
    Ok(nets.split_whitespace().any(|n| n == lab.network_name()))
}

pub fn apply(lab: &Lab, node: &NodeInfo, fault: Fault) -> Result<()> {
    let n = &node.name;
    match fault {
        Fault::StopEngine => {
            if engine_answers(lab, node) || dockerd_running(lab, node) {
                lab.exec_sh(n, "service docker stop")?;
            }
            wait(&format!("dockerd on {n} to stop"), 60, || {
                Ok(!dockerd_running(lab, node))
            })
        }
        Fault::KillEngine => {
            // pkill exits 1 when nothing matched: already dead is fine.
            lab.exec_sh(n, "pkill -KILL -x dockerd; true")?;
            wait(&format!("dockerd on {n} to die"), 20, || {
                Ok(!dockerd_running(lab, node))
            })
        }
        Fault::StopNode => {
            if lab.is_running(n)? {
                cmd::docker()
                    .args(["stop", "--time", "30", n])
                    .timeout(Duration::from_secs(60))
                    .run()?;
            }
            Ok(())
        }
        Fault::Disconnect => {
            if connected(lab, node)? {
                cmd::docker()
                    .args(["network", "disconnect", &lab.network_name(), n])
                    .run()?;
            }
            Ok(())
        }
        Fault::NoSudo => {
            lab.exec_sh(n, "rm -f /etc/sudoers.d/upgrader")?;
            Ok(())
        }
        Fault::FillDisk => {
            let script = format!(
                "set -e; cd {UPGRADE_STATE_DIR}; \
                 avail=$(df -B1 --output=avail . | tail -n 1); \
                 want=$((avail - {FILL_LEAVES_BYTES})); \
                 if [ \"$want\" -gt 0 ]; then \
                   fallocate -l \"$((want + $(stat -c %s {FILLER} 2>/dev/null || echo 0)))\" {FILLER}; \
                 fi; df -B1 --output=avail . | tail -n 1"
            );
            let avail: u64 = lab
                .exec_sh(n, &script)?
                .trim()
                .parse()
                .context("df output")?;
            if avail >= 16 * 1024 * 1024 {
                bail!(
                    "fill-disk left {} free on {n}:{UPGRADE_STATE_DIR}",
                    cmd::bytes(avail)
                );
            }
            Ok(())
        }
    }
}

pub fn restore(lab: &Lab, node: &NodeInfo, fault: Fault) -> Result<()> {
    let n = &node.name;
    match fault {
        Fault::StopEngine | Fault::KillEngine => {
            if !engine_answers(lab, node) {
                // Debian's init script; start-stop-daemon ignores a stale pid file left by a
                // killed dockerd (tini has reaped the process).
                lab.exec_sh(n, "service docker start")?;
            }
            wait(&format!("dockerd on {n} to answer"), 90, || {
                Ok(engine_answers(lab, node))
            })
        }
        Fault::StopNode => {
            if !lab.is_running(n)? {
                cmd::docker().args(["start", n]).run()?;
            }
            lab.wait_booted(node, Duration::from_secs(120))
        }
        Fault::Disconnect => {
            if !connected(lab, node)? {
                cmd::docker()
                    .args(["network", "connect", "--ip", &node.address.to_string()])
                    .args([&lab.network_name(), n])
                    .run()?;
            }
            Ok(())
        }
        Fault::NoSudo => {
            // The image keeps a pristine copy of the sudoers drop-in for exactly this.
            lab.exec_sh(
                n,
                "install -m 0440 -o root -g root /usr/local/share/testkit/sudoers.upgrader /etc/sudoers.d/upgrader",
            )?;
            Ok(())
        }
        Fault::FillDisk => {
            lab.exec_sh(n, &format!("rm -f {UPGRADE_STATE_DIR}/{FILLER}"))?;
            Ok(())
        }
    }
}

fn wait(what: &str, secs: u64, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    cmd::wait_for(
        what,
        Duration::from_secs(secs),
        Duration::from_millis(500),
        || Ok(done()?.then_some(())),
    )
}

/// Used by `testkit fault --help`: every action with its meaning.
pub fn describe_actions() -> String {
    let mut out = String::new();
    for f in Fault::ALL {
        out.push_str(&format!(
            "{:<12} (reverse: {})\n",
            f.name(),
            f.reverse_name()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_both_ways() {
        assert_eq!(
            Fault::parse_action("stop-engine"),
            Some((Fault::StopEngine, true))
        );
        assert_eq!(
            Fault::parse_action("start-engine"),
            Some((Fault::StopEngine, false))
        );
        assert_eq!(
            Fault::parse_action("kill-engine"),
            Some((Fault::KillEngine, true))
        );
        assert_eq!(
            Fault::parse_action("connect"),
            Some((Fault::Disconnect, false))
        );
        assert_eq!(
            Fault::parse_action("free-disk"),
            Some((Fault::FillDisk, false))
        );
        assert_eq!(Fault::parse_action("explode"), None);
        for f in Fault::ALL {
            assert_eq!(Fault::parse_action(f.name()), Some((f, true)));
        }
    }
}
