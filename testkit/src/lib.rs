//! testkit: a real local Docker Swarm lab for swarm-upgrade.
//!
//! Each swarm node is a container of testkit's own dockerd running real Debian bookworm with
//! sshd and a Docker engine 20.10 of one flavour (Debian's docker.io under sysvinit or
//! systemd, the lab's docker-ce rebuilds under systemd, or static binaries), plus offline apt
//! repositories holding upgrade targets (26.1.5, and 28.5.2 as a second hop), the original
//! packages (for rollbacks) and a deliberately broken engine. swarm-upgrade reaches the nodes exactly as it
//! would reach real hosts: SSH with a key, strict host key checking, sudo.
//!
//! The library is what integration tests use; the `testkit` binary is a thin CLI over it.
//!
//! ```no_run
//! use std::time::Duration;
//! let lab = testkit::Lab::open("lab")?; // fails loudly when the lab is not up
//! lab.wait_healthy(Duration::from_secs(60))?;
//! let out = lab.ssh("lab-w1", &["docker", "version"])?;
//! assert!(out.status.success());
//! # anyhow::Ok(())
//! ```

pub mod apt;
pub mod bastion;
pub mod cmd;
pub mod engine;
pub mod fault;
pub mod flavour;
pub mod host;
pub mod image;
pub mod inventory;
pub mod lab;
pub mod paths;
pub mod probe_image;
pub mod report;
pub mod status;

pub use fault::Fault;
pub use flavour::Flavour;
pub use image::StagedVersions;
pub use lab::{Lab, NodeInfo, Role, UpOptions};
pub use report::{ClientReport, Gap, ProbeReport};
pub use status::{NodeStatus, ServiceStatus, Status};
