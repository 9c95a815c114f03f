//! `disk-space`: a full disk mid-upgrade leaves a node half-installed, with
//! no room for the backup a rollback needs. Every number lives here.

use super::{Check, CheckContext, Finding, Severity, bytes};
use crate::facts::model::{HostFacts, NodeFacts, Role};

pub struct DiskSpace;

const ID: &str = "disk-space";

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Where the run keeps its backups: the old packages (for rollback) and, on
/// managers, a copy of the swarm directory.
const BACKUP_DIR: &str = "/var/lib/swarm-upgrade";
/// Where dockerd keeps images and containers.
const DOCKER_DIR: &str = "/var/lib/docker";
/// Package space is counted twice: the old packages are kept for rollback
/// and the new ones are downloaded next to them.
const PACKAGE_FACTOR: u64 = 2;
/// What to assume for both when the package sizes are not known.
const PACKAGES_UNKNOWN: u64 = 500 * MIB;
/// What to assume for a manager's swarm directory when its size is not known.
const SWARM_DIR_UNKNOWN: u64 = 256 * MIB;
/// What dockerd needs to come back: pulling replacement images, logs, tmp.
const DOCKER_DIR_MIN: u64 = GIB;

/// Free bytes at `path`, falling back to `/` when the path was not measured
/// (it does not exist yet, or lives on the root filesystem). Returns the
/// path actually measured.
fn free_at<'h>(host: &'h HostFacts, path: &'h str) -> Option<(&'h str, u64)> {
    [path, "/"]
        .into_iter()
        .find_map(|p| host.disk_free.get(p).map(|free| (p, *free)))
}

/// The backup's estimated size, and how it was reached.
fn backup_need(node: &NodeFacts, host: &HostFacts) -> (u64, String) {
    let sizes: Option<Vec<u64>> = host
        .installed
        .keys()
        .map(|p| host.installed_sizes.get(p).copied())
        .collect();
    let (packages, mut why) = match sizes {
        Some(sizes) if !sizes.is_empty() => {
            let sum: u64 = sizes.iter().sum();
            (
                PACKAGE_FACTOR.saturating_mul(sum),
                format!("{PACKAGE_FACTOR} x {} of engine packages", bytes(sum)),
            )
        }
        _ => (
            PACKAGES_UNKNOWN,
            format!("{} for packages of unknown size", bytes(PACKAGES_UNKNOWN)),
        ),
    };
    let mut need = packages;
    if node.role == Role::Manager {
        let swarm = host.swarm_dir_bytes.unwrap_or(SWARM_DIR_UNKNOWN);
        need = need.saturating_add(swarm);
        why += &format!(" + {} swarm directory", bytes(swarm));
    }
    (need, why)
}

impl Check for DiskSpace {
    fn id(&self) -> &'static str {
        ID
    }

    fn describe(&self) -> &'static str {
        "each host has room for the backup (old packages, swarm directory) and 1 GiB free for /var/lib/docker"
    }

    fn severities(&self) -> &'static [Severity] {
        &[Severity::Warn, Severity::Block]
    }

    fn run(&self, ctx: &CheckContext<'_>) -> Vec<Finding> {
        let mut findings = vec![];
        for (node, host) in ctx.hosts_to_upgrade() {
            let name = Some(node.hostname.as_str());
            let (Some((backup_on, backup_free)), Some((docker_on, docker_free))) =
                (free_at(host, BACKUP_DIR), free_at(host, DOCKER_DIR))
            else {
                findings.push(Finding::warn(
                    ID,
                    name,
                    format!(
                        "host {}: free disk space is unknown (no df of {BACKUP_DIR}, {DOCKER_DIR} or /): \
                         check by hand that the backup and the new packages fit",
                        host.host
                    ),
                ));
                continue;
            };
            let (backup, why) = backup_need(node, host);
            let via = |on: &str, path: &str| {
                if on == path {
                    String::new()
                } else {
                    format!(" (on {on})")
                }
            };
            if backup_on == docker_on {
                // One filesystem holds both: it needs room for both.
                let need = backup.saturating_add(DOCKER_DIR_MIN);
                if backup_free < need {
                    findings.push(Finding::block(
                        ID,
                        name,
                        format!(
                            "host {}: {} free on {backup_on}, which holds both {BACKUP_DIR} and {DOCKER_DIR}; \
                             needs about {}: {} for the backup ({why}) and {} for dockerd; free some space first",
                            host.host,
                            bytes(backup_free),
                            bytes(need),
                            bytes(backup),
                            bytes(DOCKER_DIR_MIN)
                        ),
                    ));
                }
                continue;
            }
            if backup_free < backup {
                findings.push(Finding::block(
                    ID,
                    name,
                    format!(
                        "host {}: {} free for {BACKUP_DIR}{}, the backup needs about {} ({why}); free some \
                         space first",
                        host.host,
                        bytes(backup_free),
                        via(backup_on, BACKUP_DIR),
                        bytes(backup)
                    ),
                ));
            }
            if docker_free < DOCKER_DIR_MIN {
                findings.push(Finding::block(
                    ID,
                    name,
                    format!(
                        "host {}: {} free for {DOCKER_DIR}{}, below the {} dockerd needs to come back and pull \
                         replacement images; prune unused images (docker image prune) or grow the disk",
                        host.host,
                        bytes(docker_free),
                        via(docker_on, DOCKER_DIR),
                        bytes(DOCKER_DIR_MIN)
                    ),
                ));
            }
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::fixtures::{Fixture, the};

    #[test]
    fn passes_with_room() {
        assert!(Fixture::healthy().run(&DiskSpace).is_empty());
    }

    #[test]
    fn blocks_a_small_backup_filesystem() {
        let mut fx = Fixture::healthy();
        fx.host("m2").disk_free.insert("/".into(), 300 * MIB);
        let findings = fx.run(&DiskSpace);
        assert_eq!(
            the(&findings, Severity::Block).message,
            "host m2: 300.0 MiB free for /var/lib/swarm-upgrade (on /), the backup needs about 570.0 MiB \
             (2 x 260.0 MiB of engine packages + 50.0 MiB swarm directory); free some space first"
        );
    }

    #[test]
    fn unknown_sizes_use_the_fixed_estimate() {
        let mut fx = Fixture::healthy();
        let host = fx.host("w1");
        host.installed_sizes.clear();
        host.disk_free.insert(BACKUP_DIR.into(), 400 * MIB);
        let findings = fx.run(&DiskSpace);
        assert!(
            the(&findings, Severity::Block)
                .message
                .contains("500.0 MiB for packages of unknown size")
        );
    }

    #[test]
    fn blocks_a_nearly_full_docker_dir() {
        let mut fx = Fixture::healthy();
        fx.host("w1").disk_free.insert(DOCKER_DIR.into(), 200 * MIB);
        let findings = fx.run(&DiskSpace);
        assert!(
            the(&findings, Severity::Block)
                .message
                .starts_with("host w1: 200.0 MiB free for /var/lib/docker,")
        );
    }

    #[test]
    fn one_filesystem_for_both_needs_room_for_both() {
        let mut fx = Fixture::healthy();
        let host = fx.host("w2");
        host.disk_free = [("/".to_string(), GIB)].into();
        let findings = fx.run(&DiskSpace);
        assert!(
            the(&findings, Severity::Block)
                .message
                .contains("holds both")
        );
    }

    #[test]
    fn warns_without_disk_facts() {
        let mut fx = Fixture::healthy();
        fx.host("w2").disk_free.clear();
        assert!(
            the(&fx.run(&DiskSpace), Severity::Warn)
                .message
                .contains("free disk space is unknown")
        );
    }
}
