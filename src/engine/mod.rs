//! The Docker Engine API of a host, reached through an SSH-forwarded socket.
//!
//! bollard reads the API; the forward lives in a private (0700) directory
//! because the socket is root on that host. Every (re)connect negotiates the
//! API version, so a 20.10 engine (API 1.41) and a 26.1 engine (API 1.45) are
//! both spoken to in their own version.

mod images;
pub mod map;
pub mod raw;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use bollard::Docker;
use bollard::query_parameters::{ListNetworksOptions, ListNodesOptions, ListServicesOptions};

use crate::facts::model::ClusterFacts;
use crate::transport::ssh::SshHost;

/// An Engine API connection to one host.
#[derive(Clone)]
pub struct Engine {
    pub host: String,
    docker: Docker,
    socket: PathBuf,
}

impl Engine {
    /// Forwards the host's Docker socket into `dir` and connects to it.
    pub async fn connect(ssh: &SshHost, dir: &Path) -> anyhow::Result<Engine> {
        let socket = ssh.forward_docker_socket(dir).await?;
        let host = ssh.target.name.clone();
        tracing::debug!(host = %host, "api: connect (GET /_ping, /version)");
        let docker = Docker::connect_with_unix(
            socket.to_str().context("socket path is not UTF-8")?,
            60,
            bollard::API_DEFAULT_VERSION,
        )
        .with_context(|| format!("host {host}: connecting to the forwarded Docker socket"))?
        .negotiate_version()
        .await
        .with_context(|| {
            format!("host {host}: the Docker Engine API does not answer through the SSH forward (is dockerd running?)")
        })?;
        Ok(Engine {
            host,
            docker,
            socket,
        })
    }

    /// Logs an API call (method and path) at debug level.
    pub fn log(&self, call: &str) {
        tracing::debug!(host = %self.host, "api: {call}");
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub async fn info(&self) -> anyhow::Result<bollard::models::SystemInfo> {
        self.log("GET /info");
        self.docker
            .info()
            .await
            .with_context(|| format!("host {}: GET /info", self.host))
    }

    /// GET a path of the API as raw JSON (for fields bollard does not model);
    /// `query` values are plain (raw encodes them).
    pub async fn get_json(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> anyhow::Result<serde_json::Value> {
        self.log(&format!("GET {path} {query:?}"));
        raw::get_json(&self.socket, path, query)
            .await
            .with_context(|| format!("host {}: GET {path}", self.host))
    }

    /// Reads the whole swarm: nodes, services, running tasks, overlay networks.
    /// Must be a manager (these endpoints are manager-only).
    pub async fn cluster_facts(&self) -> anyhow::Result<ClusterFacts> {
        let info = self.info().await?;
        let ctx = |what: &str| format!("host {}: {what}", self.host);
        self.log("GET /nodes, /services?status=true, /networks?filters=driver=overlay, /swarm");
        let nodes = self
            .docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .with_context(|| ctx("GET /nodes"))?;
        let services = self
            .docker
            .list_services(Some(ListServicesOptions {
                status: Some(true),
                ..Default::default()
            }))
            .await
            .with_context(|| ctx("GET /services"))?;
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(HashMap::from([(
                    "driver".to_string(),
                    vec!["overlay".to_string()],
                )])),
            }))
            .await
            .with_context(|| ctx("GET /networks"))?;
        let swarm = self
            .docker
            .inspect_swarm()
            .await
            .with_context(|| ctx("GET /swarm"))?;
        // bollard's Task has no NetworksAttachments: read tasks raw.
        let tasks = self
            .get_json("/tasks", &[("filters", r#"{"desired-state":["running"]}"#)])
            .await?;
        Ok(map::cluster(
            &self.host, &info, &nodes, &services, &tasks, &networks, &swarm,
        ))
    }
}
