//! Version resolution: from `--pin 26.1.5` to the exact package set per host.
//!
//! The pin names an upstream engine version; each host needs the exact package
//! versions of its own distribution, and the whole set: Debian trixie split
//! `docker-cli` out of `docker.io`, so upgrading `docker.io` alone would remove
//! `/usr/bin/docker`. Pure functions; the facts carry what the host offers.

use serde::{Deserialize, Serialize};

use super::{EngineVersion, cmp_package_versions, engine_version_of};
use crate::facts::model::{HostFacts, InstallSimulation, PackageManager, SimulatedChange};

/// How a host's engine gets replaced; names match the playbooks in `playbooks/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    DebianApt,
    RhelDnf,
    StaticBinaries,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::DebianApt => "debian-apt",
            Method::RhelDnf => "rhel-dnf",
            Method::StaticBinaries => "static-binaries",
        }
    }
}

/// Which packaging of the engine a host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Docker's own packages: docker-ce, docker-ce-cli, containerd.io.
    DockerCe,
    /// Debian's packages: docker.io (+ docker-cli since trixie), containerd, runc.
    DockerIo,
    /// Binaries not owned by any package.
    Static,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChange {
    pub name: String,
    /// Installed version; `None` when the package is new to the host.
    pub from: Option<String>,
    pub to: String,
}

/// What upgrading one host to the pin means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub method: Method,
    pub family: Family,
    pub target: EngineVersion,
    /// Every package that changes, at its exact version.
    pub packages: Vec<PackageChange>,
    /// For the static-binaries method: the bundle's path on the host.
    #[serde(default)]
    pub bundle: Option<String>,
}

impl Resolution {
    /// The `name=version` arguments for the package manager.
    pub fn install_args(&self) -> Vec<String> {
        self.packages
            .iter()
            .map(|p| format!("{}={}", p.name, p.to))
            .collect()
    }
}

/// Why a host cannot be resolved to the pin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ResolveError {
    #[error("already runs engine {current}, newer than the pin {pin}: refusing to downgrade")]
    Downgrade {
        current: EngineVersion,
        pin: EngineVersion,
    },
    #[error(
        "no {package} version for engine {pin} is available ({}); add a repository that has it or pin one of those",
        if available.is_empty() { "the package manager offers none".to_string() } else { format!("available: {}", available.join(", ")) }
    )]
    NotAvailable {
        package: String,
        pin: EngineVersion,
        available: Vec<String>,
    },
    #[error(
        "static-binaries bundle {path} is not on the host; copy it there or pass --static-bundle"
    )]
    BundleMissing { path: String },
    #[error("cannot tell how the engine was installed: {0}")]
    UnknownInstall(String),
    #[error("the package manager refuses the package set: {0}")]
    Refused(String),
    #[error("installing the package set would remove {0}; add it to the set or fix the repository")]
    WouldRemove(String),
}

#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// Path on the host of the static-binaries tarball; `{version}` is replaced by the pin.
    pub static_bundle: Option<String>,
    /// Companion packages to leave at their installed version (`--keep`).
    pub keep: Vec<String>,
}

/// Packages that travel with the engine: upgraded to the newest version the
/// host's repositories offer, so the node runs the set its distribution
/// ships with the pin (Debian trixie pairs docker.io 26.1.5 with containerd
/// 1.7.24), unless the operator keeps them with `--keep`. Docker's CLI
/// plugins are part of the docker-ce set: left behind, they would be neither
/// held nor restored by a rollback.
pub fn companions(family: Family) -> &'static [&'static str] {
    match family {
        Family::DockerIo => &["containerd", "runc"],
        Family::DockerCe => &[
            "containerd.io",
            "docker-buildx-plugin",
            "docker-compose-plugin",
        ],
        Family::Static => &[],
    }
}

/// Packages versioned like the engine itself (Docker builds them from the
/// same release): when installed, they go to the pin's exact version.
fn engine_versioned_extras(family: Family) -> &'static [&'static str] {
    match family {
        Family::DockerCe => &["docker-ce-rootless-extras"],
        _ => &[],
    }
}

impl ResolveOptions {
    pub fn bundle_path(&self, pin: &EngineVersion) -> Option<String> {
        self.static_bundle
            .as_ref()
            .map(|p| p.replace("{version}", &pin.to_string()))
    }
}

/// The engine packaging a host uses, from its installed packages.
pub fn family_of(host: &HostFacts) -> Result<Family, ResolveError> {
    if host.installed.contains_key("docker-ce") {
        Ok(Family::DockerCe)
    } else if host.installed.contains_key("docker.io") {
        Ok(Family::DockerIo)
    } else if host.dockerd_path.is_some() && host.dockerd_package.is_none() {
        Ok(Family::Static)
    } else {
        Err(ResolveError::UnknownInstall(match &host.dockerd_path {
            Some(p) => format!("{p} belongs to no known engine package"),
            None => "no docker-ce or docker.io package and no dockerd on PATH".into(),
        }))
    }
}

/// Chooses the method and the primary package set for `pin` on one host.
///
/// `running` is the engine version the swarm reports for the node. The
/// companions the package manager pulls in (containerd, runc) are added later
/// from the host's own dry run, by [`with_simulation`].
pub fn resolve(
    host: &HostFacts,
    running: &str,
    pin: &EngineVersion,
    opts: &ResolveOptions,
) -> Result<Resolution, ResolveError> {
    if let Some(current) = engine_version_of(running)
        && current > *pin
    {
        return Err(ResolveError::Downgrade {
            current,
            pin: pin.clone(),
        });
    }
    let family = family_of(host)?;
    // Only hosts whose engine is owned by no package: in a mixed cluster, the
    // bundle path must not turn the package hosts into static ones.
    if family == Family::Static {
        let path = opts.bundle_path(pin).ok_or_else(|| {
            ResolveError::UnknownInstall(
                "dockerd is not from a package; pass --static-bundle PATH to use the static-binaries method".into(),
            )
        })?;
        if !host.bundles.contains_key(&path) {
            return Err(ResolveError::BundleMissing { path });
        }
        return Ok(Resolution {
            method: Method::StaticBinaries,
            family,
            target: pin.clone(),
            packages: vec![],
            bundle: Some(path),
        });
    }
    let method = match host.package_manager {
        PackageManager::Apt => Method::DebianApt,
        PackageManager::Dnf | PackageManager::Yum => Method::RhelDnf,
        PackageManager::None => {
            return Err(ResolveError::UnknownInstall(
                "engine packages are installed but neither apt nor dnf was found".into(),
            ));
        }
    };
    let (engine, cli) = match family {
        Family::DockerCe => ("docker-ce", "docker-ce-cli"),
        _ => ("docker.io", "docker-cli"),
    };
    let mut packages = vec![pick(host, engine, pin)?];
    // The CLI travels with the engine at the same version. Debian's docker.io
    // shipped the CLI inside itself before trixie: only require docker-cli when
    // the host has it already, but take it whenever the pin offers it.
    match pick(host, cli, pin) {
        Ok(change) => packages.push(change),
        Err(e) if host.installed.contains_key(cli) || family == Family::DockerCe => return Err(e),
        Err(_) => {}
    }
    for &name in engine_versioned_extras(family) {
        if host.installed.contains_key(name) {
            packages.push(pick(host, name, pin)?);
        }
    }
    for &name in companions(family) {
        if opts.keep.iter().any(|k| k == name) {
            continue;
        }
        let (Some(installed), Some(offered)) = (host.installed.get(name), host.available.get(name))
        else {
            continue;
        };
        if let Some(newest) = offered.iter().max_by(|a, b| cmp_package_versions(a, b))
            && cmp_package_versions(newest, installed).is_gt()
        {
            packages.push(PackageChange {
                name: name.to_string(),
                from: Some(installed.clone()),
                to: newest.clone(),
            });
        }
    }
    Ok(Resolution {
        method,
        family,
        target: pin.clone(),
        packages,
        bundle: None,
    })
}

/// The newest available version of `package` whose upstream version is `pin`.
fn pick(
    host: &HostFacts,
    package: &str,
    pin: &EngineVersion,
) -> Result<PackageChange, ResolveError> {
    let offered = host.available.get(package).cloned().unwrap_or_default();
    let best = offered
        .iter()
        .filter(|v| engine_version_of(v).as_ref() == Some(pin))
        .max_by(|a, b| cmp_package_versions(a, b));
    match best {
        Some(v) => Ok(PackageChange {
            name: package.to_string(),
            from: host.installed.get(package).cloned(),
            to: v.clone(),
        }),
        None => {
            let mut available = offered;
            available.sort_by(|a, b| cmp_package_versions(b, a));
            available.dedup();
            Err(ResolveError::NotAvailable {
                package: package.to_string(),
                pin: pin.clone(),
                available,
            })
        }
    }
}

/// Completes a resolution with what the host's package manager said it would
/// change: companions it upgrades become part of the pinned set (so they can be
/// held and rolled back too); a removal or a refusal is an error.
pub fn with_simulation(
    mut res: Resolution,
    sim: &InstallSimulation,
) -> Result<Resolution, ResolveError> {
    if let Some(err) = &sim.error {
        return Err(ResolveError::Refused(err.clone()));
    }
    let mut removed = vec![];
    for change in &sim.changes {
        match change {
            SimulatedChange::Install { name, from, to } => {
                if let Some(p) = res.packages.iter_mut().find(|p| &p.name == name) {
                    p.to = to.clone();
                    if p.from.is_none() {
                        p.from = from.clone();
                    }
                } else {
                    res.packages.push(PackageChange {
                        name: name.clone(),
                        from: from.clone(),
                        to: to.clone(),
                    });
                }
            }
            SimulatedChange::Remove { name, .. } => removed.push(name.clone()),
        }
    }
    if !removed.is_empty() {
        return Err(ResolveError::WouldRemove(removed.join(", ")));
    }
    Ok(res)
}

/// Parses `apt-get install -s` output into changes. Lines look like
/// `Inst containerd [1.6.20~ds1-1] (1.7.24~ds1-6+deb13u1 lab:./ [amd64])`,
/// `Inst docker-cli (26.1.5+dfsg1-9+deb13u1 lab:./ [amd64])` and
/// `Remv docker-ce-cli [5:24.0.7-1~debian.12~bookworm]`.
pub fn parse_apt_simulation(output: &str) -> Vec<SimulatedChange> {
    let mut changes = vec![];
    for line in output.lines() {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        let bracketed = rest
            .first()
            .filter(|w| w.starts_with('['))
            .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string());
        match kind {
            "Inst" => {
                let to = rest
                    .iter()
                    .find(|w| w.starts_with('('))
                    .map(|w| w.trim_start_matches('(').trim_end_matches(')').to_string());
                if let Some(to) = to {
                    changes.push(SimulatedChange::Install {
                        name: name.to_string(),
                        from: bracketed,
                        to,
                    });
                }
            }
            "Remv" => changes.push(SimulatedChange::Remove {
                name: name.to_string(),
                version: bracketed,
            }),
            _ => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pin(s: &str) -> EngineVersion {
        s.parse().unwrap()
    }

    fn bookworm_docker_io() -> HostFacts {
        HostFacts {
            host: "m1".into(),
            package_manager: PackageManager::Apt,
            installed: BTreeMap::from([
                ("docker.io".into(), "20.10.24+dfsg1-1+deb12u1".into()),
                ("containerd".into(), "1.6.20~ds1-1+b1".into()),
                ("runc".into(), "1.1.5+ds1-1+deb12u1".into()),
            ]),
            available: BTreeMap::from([
                (
                    "docker.io".into(),
                    vec![
                        "26.1.99+dfsg1-1".into(),
                        "26.1.5+dfsg1-9+deb13u1".into(),
                        "20.10.24+dfsg1-1+deb12u1".into(),
                    ],
                ),
                (
                    "docker-cli".into(),
                    vec!["26.1.5+dfsg1-9+deb13u1".into(), "26.1.99+dfsg1-1".into()],
                ),
            ]),
            dockerd_path: Some("/usr/sbin/dockerd".into()),
            dockerd_package: Some("docker.io".into()),
            ..Default::default()
        }
    }

    #[test]
    fn docker_io_resolves_engine_and_split_cli() {
        let r = resolve(
            &bookworm_docker_io(),
            "20.10.24",
            &pin("26.1.5"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(r.method, Method::DebianApt);
        assert_eq!(r.family, Family::DockerIo);
        assert_eq!(
            r.install_args(),
            [
                "docker.io=26.1.5+dfsg1-9+deb13u1",
                "docker-cli=26.1.5+dfsg1-9+deb13u1"
            ]
        );
        assert_eq!(
            r.packages[1].from, None,
            "docker-cli is new to a bookworm host"
        );
    }

    #[test]
    fn companions_move_to_the_newest_offered_unless_kept() {
        let mut host = bookworm_docker_io();
        host.available.insert(
            "containerd".into(),
            vec!["1.6.20~ds1-1+b1".into(), "1.7.24~ds1-6+deb13u1".into()],
        );
        host.available
            .insert("runc".into(), vec!["1.1.5+ds1-1+deb12u1".into()]);
        let r = resolve(&host, "20.10.24", &pin("26.1.5"), &Default::default()).unwrap();
        assert_eq!(
            r.install_args(),
            [
                "docker.io=26.1.5+dfsg1-9+deb13u1",
                "docker-cli=26.1.5+dfsg1-9+deb13u1",
                "containerd=1.7.24~ds1-6+deb13u1"
            ],
            "runc is already the newest offered"
        );
        let keep = ResolveOptions {
            keep: vec!["containerd".into()],
            ..Default::default()
        };
        let r = resolve(&host, "20.10.24", &pin("26.1.5"), &keep).unwrap();
        assert_eq!(r.packages.len(), 2);
    }

    #[test]
    fn unavailable_pin_names_what_is_available() {
        let err = resolve(
            &bookworm_docker_io(),
            "20.10.24",
            &pin("25.0.3"),
            &Default::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no docker.io version for engine 25.0.3"),
            "{msg}"
        );
        assert!(
            msg.contains("26.1.99+dfsg1-1, 26.1.5+dfsg1-9+deb13u1, 20.10.24+dfsg1-1+deb12u1"),
            "{msg}"
        );
    }

    #[test]
    fn downgrade_is_refused() {
        let err = resolve(
            &bookworm_docker_io(),
            "26.1.5",
            &pin("20.10.24"),
            &Default::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ResolveError::Downgrade { .. }));
        assert!(err.to_string().contains("refusing to downgrade"));
    }

    #[test]
    fn docker_ce_needs_cli_at_the_same_version() {
        let host = HostFacts {
            package_manager: PackageManager::Apt,
            installed: BTreeMap::from([
                ("docker-ce".into(), "5:24.0.7-1~debian.12~bookworm".into()),
                (
                    "docker-ce-cli".into(),
                    "5:24.0.7-1~debian.12~bookworm".into(),
                ),
            ]),
            available: BTreeMap::from([(
                "docker-ce".into(),
                vec!["5:26.1.5-1~debian.12~bookworm".into()],
            )]),
            ..Default::default()
        };
        let err = resolve(&host, "24.0.7", &pin("26.1.5"), &Default::default()).unwrap_err();
        assert!(
            err.to_string().contains("no docker-ce-cli version"),
            "{err}"
        );
    }

    #[test]
    fn static_binaries_need_the_bundle_on_the_host() {
        let mut host = HostFacts {
            dockerd_path: Some("/usr/bin/dockerd".into()),
            ..Default::default()
        };
        let opts = ResolveOptions {
            static_bundle: Some("/srv/docker-{version}.tgz".into()),
            ..Default::default()
        };
        let err = resolve(&host, "20.10.24", &pin("26.1.5"), &opts).unwrap_err();
        assert_eq!(
            err,
            ResolveError::BundleMissing {
                path: "/srv/docker-26.1.5.tgz".into()
            }
        );
        host.bundles
            .insert("/srv/docker-26.1.5.tgz".into(), "ab".into());
        let r = resolve(&host, "20.10.24", &pin("26.1.5"), &opts).unwrap();
        assert_eq!(r.method, Method::StaticBinaries);
        // A package host of the same (mixed) cluster keeps its package method.
        let mut packaged = bookworm_docker_io();
        packaged.bundles = host.bundles.clone();
        let r = resolve(&packaged, "20.10.24", &pin("26.1.5"), &opts).unwrap();
        assert_eq!(r.method, Method::DebianApt);
    }

    #[test]
    fn docker_ce_plugins_and_rootless_extras_are_companions_of_the_pin() {
        let v = |s: &str| s.to_string();
        let host = HostFacts {
            package_manager: PackageManager::Apt,
            installed: BTreeMap::from([
                (v("docker-ce"), v("5:20.10.24~3-0~debian-bookworm")),
                (v("docker-ce-cli"), v("5:20.10.24~3-0~debian-bookworm")),
                (
                    v("docker-ce-rootless-extras"),
                    v("5:20.10.24~3-0~debian-bookworm"),
                ),
                (v("containerd.io"), v("1.6.20-1")),
                (v("docker-buildx-plugin"), v("0.13.1-1~debian.12~bookworm")),
                (v("docker-compose-plugin"), v("2.26.1-1~debian.12~bookworm")),
            ]),
            available: BTreeMap::from([
                (
                    v("docker-ce"),
                    vec![
                        v("5:26.1.5-1~debian.12~bookworm"),
                        v("5:20.10.24~3-0~debian-bookworm"),
                    ],
                ),
                (v("docker-ce-cli"), vec![v("5:26.1.5-1~debian.12~bookworm")]),
                (
                    v("docker-ce-rootless-extras"),
                    vec![
                        v("5:26.1.5-1~debian.12~bookworm"),
                        v("5:26.1.99-1~debian.12~bookworm"),
                    ],
                ),
                (v("containerd.io"), vec![v("1.7.24-1"), v("1.6.20-1")]),
                (
                    v("docker-buildx-plugin"),
                    vec![
                        v("0.29.1-1~debian.12~bookworm"),
                        v("0.13.1-1~debian.12~bookworm"),
                    ],
                ),
                (
                    v("docker-compose-plugin"),
                    vec![v("2.26.1-1~debian.12~bookworm")],
                ),
            ]),
            dockerd_path: Some(v("/usr/bin/dockerd")),
            dockerd_package: Some(v("docker-ce")),
            ..Default::default()
        };
        let r = resolve(&host, "20.10.24", &pin("26.1.5"), &Default::default()).unwrap();
        assert_eq!(r.family, Family::DockerCe);
        assert_eq!(
            r.install_args(),
            [
                "docker-ce=5:26.1.5-1~debian.12~bookworm",
                "docker-ce-cli=5:26.1.5-1~debian.12~bookworm",
                // At the pin, not the newest offered (26.1.99).
                "docker-ce-rootless-extras=5:26.1.5-1~debian.12~bookworm",
                "containerd.io=1.7.24-1",
                "docker-buildx-plugin=0.29.1-1~debian.12~bookworm",
            ],
            "compose is already the newest offered"
        );
        let keep = ResolveOptions {
            keep: vec![v("docker-buildx-plugin")],
            ..Default::default()
        };
        let r = resolve(&host, "20.10.24", &pin("26.1.5"), &keep).unwrap();
        assert!(
            !r.install_args()
                .iter()
                .any(|a| a.starts_with("docker-buildx-plugin="))
        );
    }

    #[test]
    fn simulation_adds_companions_and_rejects_removals() {
        let out = "NOTE: This is only a simulation!\n\
            Inst containerd [1.6.20~ds1-1+b1] (1.7.24~ds1-6+deb13u1 lab:./ [amd64])\n\
            Inst docker.io [20.10.24+dfsg1-1+deb12u1] (26.1.5+dfsg1-9+deb13u1 lab:./ [amd64])\n\
            Inst docker-cli (26.1.5+dfsg1-9+deb13u1 lab:./ [amd64])\n\
            Conf containerd (1.7.24~ds1-6+deb13u1 lab:./ [amd64])\n";
        let changes = parse_apt_simulation(out);
        assert_eq!(changes.len(), 3);
        let res = resolve(
            &bookworm_docker_io(),
            "20.10.24",
            &pin("26.1.5"),
            &Default::default(),
        )
        .unwrap();
        let sim = InstallSimulation {
            request: res.install_args(),
            changes,
            error: None,
        };
        let full = with_simulation(res.clone(), &sim).unwrap();
        assert_eq!(full.packages.len(), 3);
        assert_eq!(full.packages[2].name, "containerd");
        assert_eq!(full.packages[2].from.as_deref(), Some("1.6.20~ds1-1+b1"));

        let removing = InstallSimulation {
            changes: parse_apt_simulation("Remv docker-compose [1.29.2-3]\n"),
            ..sim
        };
        let err = with_simulation(res, &removing).unwrap_err();
        assert_eq!(err, ResolveError::WouldRemove("docker-compose".into()));
    }
}
