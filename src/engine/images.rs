//! Images on one engine: inspect, copy from another engine, pull
//! (`--prepull`). A copy streams `GET /images/{name}/get` of the source
//! into `POST /images/load` of the target through this process, chunk by
//! chunk: no temp file, and nothing but the two forwarded sockets.

use anyhow::{Context, bail};
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{CreateImageOptions, ImportImageOptions};
use futures_util::StreamExt;

use super::Engine;
use crate::facts::model::RegistryOutcome;

impl Engine {
    /// The image's ID (`sha256:…`); `None` when the engine does not hold it.
    pub async fn image_id(&self, image: &str) -> anyhow::Result<Option<String>> {
        self.log(&format!("GET /images/{image}/json"));
        match self.docker().inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("host {}: GET /images/{image}/json", self.host))
            }
        }
    }

    /// Loads `image` from `source`'s engine into this one.
    pub async fn load_from(&self, source: &Engine, image: &str) -> anyhow::Result<()> {
        source.log(&format!("GET /images/{image}/get"));
        self.log("POST /images/load (streamed)");
        let tar = source.docker().export_image(image);
        let mut answers = self.docker().import_image_stream(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            tar,
            None,
        );
        while let Some(answer) = answers.next().await {
            let info = answer.with_context(|| {
                format!(
                    "streaming {image} from host {} into host {}",
                    source.host, self.host
                )
            })?;
            if let Some(e) = info.error_detail.and_then(|d| d.message) {
                bail!("host {}: POST /images/load: {e}", self.host);
            }
        }
        Ok(())
    }

    /// Pulls `image` with no credentials (the engine's own registry
    /// mirrors and insecure-registry settings apply).
    pub async fn pull(&self, image: &str) -> anyhow::Result<()> {
        self.log(&format!("POST /images/create?fromImage={image}"));
        let mut progress = self.docker().create_image(
            Some(CreateImageOptions {
                from_image: Some(image.to_string()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(p) = progress.next().await {
            let p =
                p.with_context(|| format!("host {}: POST /images/create {image}", self.host))?;
            if let Some(e) = p.error_detail.and_then(|d| d.message) {
                bail!("host {}: pulling {image}: {e}", self.host);
            }
        }
        Ok(())
    }
}

impl Engine {
    /// What the image's registry answers this engine without credentials
    /// (`GET /distribution/{image}/json`): the engine resolves the reference
    /// and asks the registry as a pull would, with its own mirrors, proxy
    /// and certificate settings; nothing is downloaded.
    pub async fn registry_answer(&self, image: &str) -> RegistryOutcome {
        self.log(&format!("GET /distribution/{image}/json"));
        match self.docker().inspect_registry_image(image, None).await {
            Ok(d) => RegistryOutcome::Pullable {
                digest: d.descriptor.digest.unwrap_or_default(),
            },
            Err(BollardError::DockerResponseServerError {
                status_code: 401 | 403,
                message,
            }) => RegistryOutcome::Unauthorized { error: message },
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                RegistryOutcome::Failed { error: message }
            }
            Err(e) => RegistryOutcome::Failed {
                error: format!("{e}"),
            },
        }
    }
}
