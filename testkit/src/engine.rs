//! The machine's own Docker binaries, which run testkit's private daemon.
//!
//! testkit never removes or changes a Docker installation it finds: an
//! installed `dockerd` and `docker` (Debian's docker.io, Docker's docker-ce,
//! static binaries) are used as they are. Debian's docker.io is installed only
//! where it replaces nothing: on a machine with no Docker at all, or with only
//! a static client outside /usr/bin and no Docker package (this machine kind
//! ships /usr/local/bin/docker alone; docker.io's /usr/bin/docker and
//! /usr/sbin/dockerd go beside it). Any other partial installation (a client in
//! /usr/bin without a daemon, or Docker packages without binaries) is refused
//! with what was found, because installing docker.io there would replace or
//! break it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Result, bail};

use crate::cmd::Cmd;

/// Where each family puts `dockerd`: Debian's docker.io, Docker's docker-ce,
/// static binaries.
const DOCKERD: &[&str] = &[
    "/usr/sbin/dockerd",
    "/usr/bin/dockerd",
    "/usr/local/bin/dockerd",
];
/// Where each family puts the client (docker.io and docker-ce share one).
const DOCKER: &[&str] = &["/usr/bin/docker", "/usr/local/bin/docker"];
/// Packages of a Docker installation that installing docker.io would replace.
const DOCKER_PACKAGES: &[&str] = &[
    "docker.io",
    "docker-cli",
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "moby-engine",
    "moby-cli",
    "podman-docker",
];

/// The binaries the private daemon runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub dockerd: PathBuf,
    pub docker: PathBuf,
}

/// What to do about the machine's Docker.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Use what is installed; change nothing.
    Use(Engine),
    /// No Docker at all: install Debian's docker.io (no service started).
    InstallDockerIo,
}

/// The decision, from what was found (pure, for the tests).
pub fn decide(
    dockerd: Option<PathBuf>,
    docker: Option<PathBuf>,
    packages: &[String],
) -> Result<Decision> {
    match (dockerd, docker) {
        (Some(dockerd), Some(docker)) => Ok(Decision::Use(Engine { dockerd, docker })),
        (None, None) if packages.is_empty() => Ok(Decision::InstallDockerIo),
        // docker.io's files do not touch a client outside /usr/bin, and the private
        // daemon then runs with docker.io's own client (`client()` prefers /usr/bin).
        (None, Some(docker)) if packages.is_empty() && !docker.starts_with("/usr/bin") => {
            Ok(Decision::InstallDockerIo)
        }
        (dockerd, docker) => {
            let shown = |p: Option<PathBuf>, what: &str| {
                p.map_or(format!("no {what}"), |p| {
                    format!("{what} at {}", p.display())
                })
            };
            bail!(
                "this machine has a partial Docker installation ({}, {}; installed packages: {}); \
                 testkit never installs docker.io over an existing Docker, since it would replace \
                 or break it: complete that installation (both dockerd, in {}, and the docker \
                 client, in {}), or remove it yourself",
                shown(dockerd, "dockerd"),
                shown(docker, "docker client"),
                if packages.is_empty() {
                    "none".to_string()
                } else {
                    packages.join(", ")
                },
                DOCKERD.join(" or "),
                DOCKER.join(" or ")
            )
        }
    }
}

fn first_file(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The Docker packages dpkg reports as installed.
pub fn installed_docker_packages() -> Result<Vec<String>> {
    let mut found = vec![];
    for pkg in DOCKER_PACKAGES {
        let out = Cmd::new("dpkg-query")
            .args(["-W", "-f=${db:Status-Abbrev}", pkg])
            .output()?;
        if out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ii") {
            found.push((*pkg).to_string());
        }
    }
    Ok(found)
}

/// What the machine has now.
pub fn inspect() -> Result<Decision> {
    decide(
        first_file(DOCKERD),
        first_file(DOCKER),
        &installed_docker_packages()?,
    )
}

/// The installed engine, or an error saying what is missing.
pub fn locate() -> Result<Engine> {
    match inspect()? {
        Decision::Use(e) => Ok(e),
        Decision::InstallDockerIo => bail!(
            "no Docker on this machine: `testkit prepare` (or `up`) installs Debian's docker.io"
        ),
    }
}

/// The docker client for testkit's commands: the installed one, found once.
pub fn client() -> &'static Path {
    static CLIENT: OnceLock<PathBuf> = OnceLock::new();
    CLIENT.get_or_init(|| first_file(DOCKER).unwrap_or_else(|| PathBuf::from(DOCKER[0])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn an_installed_docker_ce_is_used_as_it_is() {
        let d = decide(
            p("/usr/bin/dockerd"),
            p("/usr/bin/docker"),
            &["docker-ce".into(), "docker-ce-cli".into()],
        )
        .unwrap();
        assert_eq!(
            d,
            Decision::Use(Engine {
                dockerd: "/usr/bin/dockerd".into(),
                docker: "/usr/bin/docker".into()
            })
        );
    }

    #[test]
    fn docker_io_is_installed_only_where_there_is_no_docker() {
        assert_eq!(decide(None, None, &[]).unwrap(), Decision::InstallDockerIo);
    }

    #[test]
    fn a_static_client_alone_outside_usr_bin_gets_docker_io_beside_it() {
        assert_eq!(
            decide(None, p("/usr/local/bin/docker"), &[]).unwrap(),
            Decision::InstallDockerIo
        );
        // Not when a package owns that client's family.
        assert!(decide(None, p("/usr/local/bin/docker"), &["docker-ce-cli".into()]).is_err());
    }

    #[test]
    fn a_partial_installation_is_refused_naming_what_was_found() {
        let err = decide(None, p("/usr/bin/docker"), &["docker-ce-cli".into()]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no dockerd, docker client at /usr/bin/docker")
                && msg.contains("installed packages: docker-ce-cli")
                && msg.contains("never installs docker.io"),
            "{msg}"
        );
        // Packages whose binaries are gone count too.
        assert!(decide(None, None, &["docker-ce".into()]).is_err());
    }
}
