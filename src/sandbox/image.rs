//! The sandbox image on the daemon: inspected, pulled per `sandbox.pull` with the
//! registry's credentials, and a refused pull told apart from a missing image.

use super::SandboxError;
use super::docker::{DockerClient, ImageFound};
use super::registry::{self, RegistryLogin};
use crate::config::settings::{PullPolicy, SandboxSettings};

/// What getting the sandbox image needs: the reference, `sandbox.pull`, and where the
/// registry credentials come from.
pub(super) struct ImagePull<'a> {
    pub image: &'a str,
    pub policy: PullPolicy,
    pub login: &'a RegistryLogin,
}

impl<'a> ImagePull<'a> {
    pub(super) fn of(settings: &'a SandboxSettings, login: &'a RegistryLogin) -> Self {
        Self {
            image: &settings.image,
            policy: settings.pull,
            login,
        }
    }
}

/// Makes sure the image is on the daemon (per `sandbox.pull`); returns its configured user.
pub(super) async fn ensure_image(docker: &DockerClient, pull: &ImagePull<'_>) -> Result<Option<String>, SandboxError> {
    let image = pull.image;
    let image_err = |message: String| SandboxError::Image {
        image: image.to_string(),
        message,
    };
    if pull.policy != PullPolicy::Always {
        match docker.inspect_image(image).await? {
            ImageFound::Present { user } => return Ok(user),
            ImageFound::Missing(_) if pull.policy == PullPolicy::Never => {
                return Err(image_err(
                    "the daemon does not have it and `sandbox.pull` is `never`".to_string(),
                ));
            }
            ImageFound::Missing(_) => {}
        }
    }
    pull_image(docker, pull).await?;
    match docker.inspect_image(image).await? {
        ImageFound::Present { user } => Ok(user),
        ImageFound::Missing(answer) => Err(image_err(answer)),
    }
}

/// Pulls the image with the registry's credentials, if any are found. A refusal for want
/// of credentials says which registry and which variable; the credential itself is never
/// part of a message or a log line.
async fn pull_image(docker: &DockerClient, pull: &ImagePull<'_>) -> Result<(), SandboxError> {
    let image = pull.image;
    let registry = registry::registry_of(image);
    let (credential, unreadable) = match pull.login.for_image(image) {
        Ok(found) => (found, None),
        Err(registry::Unreadable(why)) => (None, Some(why)),
    };
    tracing::info!(
        image,
        registry = %registry,
        credentials = %credential.as_ref().map_or_else(|| "none".to_string(), |c| c.source.to_string()),
        "sandbox: pulling the image"
    );
    let header = credential.as_ref().map(|c| c.docker_credentials(&registry));
    let Err(message) = docker.pull(image, header).await else {
        return Ok(());
    };
    Err(if registry::is_auth_refusal(&message) {
        SandboxError::PullRefused(Box::new(registry::PullRefusal {
            image: image.to_string(),
            registry: registry.clone(),
            message,
            sent: credential.as_ref().map(|c| c.source.clone()),
            unreadable,
        }))
    } else {
        SandboxError::Image {
            image: image.to_string(),
            message: format!("pull failed: {message}"),
        }
    })
}
