//! The workspace through a container's stdin: a mark line, then the tar archive, written
//! while the wrapper in the container unpacks it and reports after the mark (GATE's run
//! and a FORGE session's start; no archive API call).

use std::path::Path;
use std::time::Duration;

use bollard::container::{AttachContainerResults, LogOutput};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::SandboxError;
use super::docker::DockerClient;
use super::output::{HeadTail, TrailerSplit};
use super::workspace::{self, Manifest, PackPlan};

/// The bytes of `plan`'s files: the time an archive of them may take is scaled to it.
pub(super) fn plan_bytes(plan: &PackPlan) -> u64 {
    plan.files
        .iter()
        .filter_map(|rel| std::fs::symlink_metadata(plan.repo.join(rel)).ok())
        .map(|m| m.len())
        .sum()
}

/// What came of streaming the workspace into a FORGE session's container.
pub(super) struct SessionFeed {
    /// How far the archive got; `None` when it took too long.
    ran: Option<Fed>,
    packed: Result<std::io::Result<Manifest>, tokio::task::JoinError>,
    /// The wrapper's report after the mark (`ready`, `notar`, `unpack`; empty: none).
    word: String,
    /// What tar and the wrapper said (for the error).
    said: String,
    pub(super) bytes: u64,
    timeout: Duration,
}

impl SessionFeed {
    /// `Ok(true)`: the session is ready; `Ok(false)`: the image has no `tar`; an error
    /// saying why otherwise.
    pub(super) fn verdict(self, repo: &Path) -> Result<bool, SandboxError> {
        let failed = |why: String| SandboxError::Workspace {
            path: repo.to_path_buf(),
            source: std::io::Error::other(if self.said.is_empty() {
                why
            } else {
                format!("{why}: {}", self.said)
            }),
        };
        let word = self.word.as_str();
        match (self.ran, self.packed) {
            (Some(Fed::All), _) if word == "ready" => Ok(true),
            _ if word == "notar" => Ok(false),
            (Some(Fed::PackFailed), Ok(Err(source))) => Err(SandboxError::Workspace {
                path: repo.to_path_buf(),
                source,
            }),
            _ if word == "unpack" => Err(failed(
                "unpacking the workspace in the FORGE session container (`tar -x`) failed".into(),
            )),
            (None, _) => Err(failed(format!(
                "streaming the workspace into the FORGE session container took longer than {} s",
                self.timeout.as_secs()
            ))),
            _ => Err(failed(
                "the FORGE session container stopped while the workspace was streamed in".into(),
            )),
        }
    }
}

/// Feeds the mark and `plan`'s archive to the session wrapper's stdin and reads its output
/// until it says it is ready (or stops).
pub(super) async fn stream_into_session(
    docker: &DockerClient,
    id: &str,
    attached: AttachContainerResults,
    plan: PackPlan,
) -> SessionFeed {
    let bytes = plan_bytes(&plan);
    // As for an upload through the API: 2 MiB/s on top of 2 min.
    let timeout = Duration::from_secs(120 + bytes / (2 * 1024 * 1024));
    let mark = new_mark();
    let mut split = TrailerSplit::new(&mark, 4096);
    let mut messages = HeadTail::new(2048, 2048);
    let AttachContainerResults { mut output, mut input } = attached;
    let (stream, packer) = workspace::tar_stream(plan);
    let ran = tokio::time::timeout(timeout, async {
        let read = async {
            while let Some(Ok(frame)) = output.next().await {
                match frame {
                    LogOutput::StdOut { message } => messages.push(&split.push(&message)),
                    other => messages.push(&other.into_bytes()),
                }
                // Ready: the container sleeps from here on. Otherwise the wrapper exits and
                // the stream ends after the rest of tar's messages.
                if split
                    .trailer()
                    .is_some_and(|t| t.trim_ascii_start().starts_with(b"ready\n"))
                {
                    break;
                }
            }
        };
        let (fed, ()) = tokio::join!(feed_stdin(docker, id, &mut input, &mark, stream), read);
        fed
    })
    .await
    .ok();
    let packed = packer.await;
    let word = split
        .trailer()
        .map(|t| String::from_utf8_lossy(t).trim().to_string())
        .unwrap_or_default();
    SessionFeed {
        ran,
        packed,
        word,
        said: messages.joined().trim().to_string(),
        bytes,
        timeout,
    }
}

/// Writes the mark line and the workspace archive to a container's stdin, then ends it
/// (the container reads it once: `StdinOnce`). A file that cannot be packed, or an
/// archive that cannot be written whole, kills the container at once: nothing may run on
/// part of the workspace.
pub(super) async fn feed_stdin(
    docker: &DockerClient,
    id: &str,
    input: &mut std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    mark: &str,
    stream: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>>,
) -> Fed {
    let mut stream = std::pin::pin!(stream);
    let mut fed = match input.write_all(format!("{mark}\n").as_bytes()).await {
        Ok(()) => Fed::All,
        Err(_) => Fed::WriteFailed,
    };
    while fed == Fed::All
        && let Some(chunk) = stream.next().await
    {
        fed = match chunk {
            Ok(chunk) => match input.write_all(&chunk).await {
                Ok(()) => Fed::All,
                Err(_) => Fed::WriteFailed,
            },
            Err(_) => Fed::PackFailed,
        };
    }
    if fed != Fed::All {
        docker.kill(id).await;
    }
    let _ = input.shutdown().await;
    fed
}

/// A fresh mark for a wrapper's trailer: random, and given to the wrapper on its stdin only.
pub(super) fn new_mark() -> String {
    format!("PACE-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// How far a workspace archive got into a container's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fed {
    All,
    /// A file could not be packed (the packer names it).
    PackFailed,
    /// The container stopped reading its stdin.
    WriteFailed,
}
