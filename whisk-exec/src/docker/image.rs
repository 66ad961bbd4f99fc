//! Which image a container runs, and the pull policy: an image present on the daemon is used
//! as it is; a missing one is pulled (bounded by [`DockerConfig::pull_timeout`]).
//!
//! [`DockerConfig::pull_timeout`]: super::DockerConfig::pull_timeout

use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures::StreamExt;
use std::time::Duration;
use whisk_core::entity::RuntimeManifest;
use whisk_core::executor::{ContainerSpec, ExecutorError};

/// The image of a container and who named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Image {
    /// The reference, with `:latest` added when it has neither tag nor digest.
    pub(crate) reference: String,
    /// The image as the action or manifest named it (for messages).
    pub(crate) given: String,
    /// Whether the action named it (a blackbox action), rather than the runtime manifest.
    pub(crate) user_named: bool,
}

impl Image {
    /// The image of `spec`: its own image (blackbox actions), else the manifest's image of its
    /// kind.
    pub(crate) fn of(
        spec: &ContainerSpec,
        manifest: &RuntimeManifest,
    ) -> Result<Self, ExecutorError> {
        if let Some(image) = spec.image.as_deref().filter(|i| !i.trim().is_empty()) {
            return Ok(Self {
                reference: with_tag(image.trim()),
                given: image.trim().to_string(),
                user_named: true,
            });
        }
        if spec.kind == "blackbox" {
            return Err(ExecutorError::Unsupported(
                "blackbox container without an image".into(),
            ));
        }
        let kind = manifest
            .resolve(&spec.kind)
            .map_err(|_| ExecutorError::Unsupported(spec.kind.clone()))?;
        let given = kind.image.to_string();
        Ok(Self {
            reference: with_tag(&given),
            given,
            user_named: false,
        })
    }

    /// Makes sure the daemon has the image: pulls it unless present. A failed or timed-out
    /// pull is [`ExecutorError::ImagePull`] with the image as the action named it, for a
    /// user-named image (the action's developer error), [`ExecutorError::StartFailed`] for a manifest image (the platform's fault).
    pub(crate) async fn ensure(
        &self,
        docker: &Docker,
        timeout: Duration,
    ) -> Result<(), ExecutorError> {
        match docker.inspect_image(&self.reference).await {
            Ok(_) => return Ok(()),
            Err(e) if super::status(&e) == Some(404) => {}
            Err(e) => {
                return Err(ExecutorError::StartFailed(format!(
                    "cannot inspect image {}: {}",
                    self.reference,
                    super::describe(&e)
                )))
            }
        }
        let failure = match tokio::time::timeout(timeout, pull(docker, &self.reference)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => format!("timed out after {timeout:?}"),
        };
        tracing::warn!(image = %self.reference, error = %failure, "image pull failed");
        Err(if self.user_named {
            ExecutorError::ImagePull(self.given.clone())
        } else {
            ExecutorError::StartFailed(format!(
                "cannot pull runtime image {}: {failure}",
                self.reference
            ))
        })
    }
}

/// Pulls `reference`, following the daemon's progress stream to its end.
async fn pull(docker: &Docker, reference: &str) -> Result<(), String> {
    let options = CreateImageOptions {
        from_image: Some(reference.to_string()),
        ..CreateImageOptions::default()
    };
    let mut progress = docker.create_image(Some(options), None, None);
    while let Some(step) = progress.next().await {
        step.map_err(|e| super::describe(&e))?;
    }
    Ok(())
}

/// `reference` with `:latest` when it names neither a tag nor a digest (a pull without a tag
/// would fetch every tag).
fn with_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || last.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, image: Option<&str>) -> ContainerSpec {
        ContainerSpec {
            name: "n".into(),
            kind: kind.into(),
            image: image.map(String::from),
            memory_mb: 256,
            env: vec![],
            host_network: false,
        }
    }

    #[test]
    fn images_come_from_the_action_or_the_manifest() {
        let m = RuntimeManifest::default();
        let own = Image::of(&spec("blackbox", Some("me/img")), &m).unwrap();
        assert_eq!(own.reference, "me/img:latest");
        assert_eq!(own.given, "me/img");
        assert!(own.user_named);
        let node = Image::of(&spec("nodejs:20", None), &m).unwrap();
        assert_eq!(node.reference, "openwhisk/action-nodejs-v20:nightly");
        assert!(!node.user_named);
        assert!(matches!(
            Image::of(&spec("cobol:85", None), &m),
            Err(ExecutorError::Unsupported(_))
        ));
        assert!(matches!(
            Image::of(&spec("blackbox", None), &m),
            Err(ExecutorError::Unsupported(_))
        ));
    }

    #[test]
    fn untagged_references_get_latest() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("localhost:5000/a/b"), "localhost:5000/a/b:latest");
        assert_eq!(with_tag("localhost:5000/a/b:1"), "localhost:5000/a/b:1");
        assert_eq!(with_tag("a/b@sha256:00"), "a/b@sha256:00");
    }
}
