//! The Docker Engine API as pace uses it: one short method per operation (after
//! testcontainers' client), each failure a [`SandboxError`] that names the operation and
//! its container. Nothing here decides anything: what a container looks like is
//! `spec`, what runs in it is `gate` and `session`.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::{AttachContainerResults, LogOutput};
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ContainerState, VolumeCreateRequest};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt, TryStreamExt};

use super::SandboxError;
use super::endpoint::{self, Endpoint};

/// How long `connect` waits for a daemon that is still starting (`DinD` services).
const CONNECT_WAIT: Duration = Duration::from_secs(20);

/// A stream of output frames (a container's or an exec's).
pub(super) type Frames = Pin<Box<dyn Stream<Item = Result<LogOutput, SandboxError>> + Send>>;

/// An archive coming out of a container (`GET /archive`), as the `io::Error`s a tar reader
/// understands.
pub(super) type Archive = Pin<Box<dyn Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

/// Why [`small_file`] read nothing.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unread {
    /// The archive is larger than the cap allows (the download was stopped).
    TooLarge,
    /// A broken download, or not a regular file (a directory, a link, nothing).
    NotAFile,
}

/// One small regular file out of an archive download, in memory: at most `cap` bytes of
/// content, and the download stopped once the archive outgrows it (what a container left
/// at the path may be a directory or a huge sparse file).
pub(super) async fn small_file<E>(
    mut archive: impl Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    cap: usize,
) -> Result<Vec<u8>, Unread> {
    let mut tar_bytes = Vec::new();
    while let Some(chunk) = archive.next().await {
        tar_bytes.extend_from_slice(&chunk.map_err(|_| Unread::NotAFile)?);
        if tar_bytes.len() > cap + 64 * 1024 {
            return Err(Unread::TooLarge);
        }
    }
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut entry = archive
        .entries()
        .ok()
        .and_then(|mut e| e.next())
        .and_then(Result::ok)
        .ok_or(Unread::NotAFile)?;
    if !matches!(entry.header().entry_type(), tar::EntryType::Regular) {
        return Err(Unread::NotAFile);
    }
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, cap as u64), &mut content)
        .map_err(|_| Unread::NotAFile)?;
    Ok(content)
}

/// A client of one daemon (cheap to clone: bollard shares the connection pool).
#[derive(Clone)]
pub(super) struct DockerClient {
    docker: Docker,
}

/// What `docker image inspect` found.
pub(super) enum ImageFound {
    /// The image's own `User` (`None` when it sets none).
    Present { user: Option<String> },
    /// The daemon does not have it; its answer, for a message.
    Missing(String),
}

impl DockerClient {
    /// A client for `endpoint` that has answered a ping, with the API version negotiated.
    ///
    /// A daemon that is starting (GitLab's `DinD` service) gets [`CONNECT_WAIT`] to answer;
    /// errors that waiting cannot fix (a missing socket, certificates) fail at once.
    pub(super) async fn connect(endpoint: &Endpoint) -> Result<Self, SandboxError> {
        let connect_err = |source| SandboxError::Connect {
            host: endpoint.host.clone(),
            hint: endpoint.hint_for(&source),
            source,
        };
        let docker = endpoint.client().map_err(connect_err)?;
        let deadline = Instant::now() + CONNECT_WAIT;
        let pinger = docker.clone().with_timeout(Duration::from_secs(5));
        loop {
            match pinger.ping().await {
                Ok(_) => break,
                Err(source) if Instant::now() >= deadline || endpoint::is_permanent(&source) => {
                    return Err(connect_err(source));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sandbox: Docker daemon not answering yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let docker = docker.negotiate_version().await.map_err(connect_err)?;
        if let Ok(v) = docker.version().await {
            tracing::debug!(
                api = v.api_version.as_deref().unwrap_or("?"),
                min_api = v.min_api_version.as_deref().unwrap_or("?"),
                engine = v.version.as_deref().unwrap_or("?"),
                os = v.os.as_deref().unwrap_or("?"),
                "sandbox: connected to {}",
                endpoint.describe()
            );
        }
        Ok(Self { docker })
    }

    /// bollard's client, for `pace doctor`'s probes (which report the daemon's own words).
    pub(super) fn raw(&self) -> &Docker {
        &self.docker
    }

    /// `POST /containers/create` under `name`; the daemon's warnings are logged.
    pub(super) async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String, SandboxError> {
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|source| container_err("create", name, source))?;
        for w in created.warnings {
            tracing::warn!(container = %name, "sandbox: Docker warning: {w}");
        }
        Ok(created.id)
    }

    pub(super) async fn start(&self, container: &str) -> Result<(), SandboxError> {
        self.docker
            .start_container(container, None)
            .await
            .map_err(|source| container_err("start", container, source))
    }

    /// Starts a container again after [`Self::kill`] (a FORGE session's restart).
    pub(super) async fn restart(&self, container: &str) -> Result<(), SandboxError> {
        self.docker
            .start_container(container, None)
            .await
            .map_err(|source| container_err("restart", container, source))
    }

    /// Attaches to stdin, stdout and stderr before the start, so no output is missed.
    pub(super) async fn attach(&self, container: &str) -> Result<AttachContainerResults, SandboxError> {
        let opts = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        self.docker
            .attach_container(container, Some(opts))
            .await
            .map_err(|source| container_err("attach to", container, source))
    }

    /// stdout and stderr so far (`follow`: and until the container stops), as raw bytes.
    pub(super) fn logs(
        &self,
        id: &str,
        follow: bool,
    ) -> impl Stream<Item = Result<bytes::Bytes, SandboxError>> + use<> {
        let opts = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .build();
        let id = id.to_string();
        self.docker.logs(&id, Some(opts)).map(move |chunk| {
            chunk
                .map(LogOutput::into_bytes)
                .map_err(|source| container_err("read the output of", &id, source))
        })
    }

    /// The exit status of a container that has stopped (or will).
    pub(super) async fn wait(&self, id: &str) -> Result<i64, SandboxError> {
        let opts = WaitContainerOptionsBuilder::default().condition("not-running").build();
        let mut wait = self.docker.wait_container(id, Some(opts));
        let mut code = None;
        while let Some(item) = wait.next().await {
            match item {
                Ok(resp) => code = Some(resp.status_code),
                // Non-zero exits arrive as this error: it is a normal result.
                Err(DockerError::DockerContainerWaitError { code: c, .. }) => code = Some(c),
                Err(source) => return Err(container_err("wait for", id, source)),
            }
        }
        match code {
            Some(c) => Ok(c),
            None => Ok(self.state(id).await?.and_then(|s| s.exit_code).unwrap_or(-1)),
        }
    }

    /// SIGKILL. Best effort: a container that is no longer running is what was wanted.
    pub(super) async fn kill(&self, id: &str) {
        let opts = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
        if let Err(e) = self.docker.kill_container(id, Some(opts)).await {
            tracing::debug!(container = id, error = %e, "sandbox: kill");
        }
    }

    /// Removes the container and its anonymous volumes; one already gone is fine.
    pub(super) async fn remove(&self, container: &str) -> Result<(), SandboxError> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker.remove_container(container, Some(opts)).await {
            Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(source) => Err(container_err("remove", container, source)),
        }
    }

    /// The container's state (running, exit code, OOM-killed).
    pub(super) async fn state(&self, id: &str) -> Result<Option<ContainerState>, SandboxError> {
        let info = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|source| container_err("inspect", id, source))?;
        Ok(info.state)
    }

    /// How many processes the daemon lists in the container (`docker top`): the command
    /// inside cannot forge this.
    pub(super) async fn process_count(&self, id: &str) -> Result<usize, SandboxError> {
        let top = self
            .docker
            .top_processes(id, None)
            .await
            .map_err(|source| container_err("list the processes of", id, source))?;
        Ok(top.processes.map_or(0, |p| p.len()))
    }

    /// Extracts a tar stream into `dest` in the container. `timeout`: the daemon answers
    /// only after extracting everything, so a large archive needs longer than a request.
    pub(super) async fn upload(
        &self,
        id: &str,
        dest: &str,
        archive: impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
        timeout: Option<Duration>,
    ) -> Result<(), SandboxError> {
        let client = match timeout {
            Some(t) => self.docker.clone().with_timeout(t),
            None => self.docker.clone(),
        };
        let opts = UploadToContainerOptionsBuilder::default().path(dest).build();
        client
            .upload_to_container(id, Some(opts), bollard::body_try_stream(archive))
            .await
            .map_err(|source| container_err("upload the workspace into", id, source))
    }

    /// `path` of the container as a tar stream.
    pub(super) fn download(&self, id: &str, path: &str) -> Archive {
        let opts = DownloadFromContainerOptionsBuilder::default().path(path).build();
        Box::pin(
            self.docker
                .download_from_container(id, Some(opts))
                .map_err(std::io::Error::other),
        )
    }

    /// Starts `cmd` in `working_dir` of the container; returns the exec's id and its output.
    pub(super) async fn exec(
        &self,
        id: &str,
        cmd: Vec<String>,
        working_dir: &str,
    ) -> Result<(String, Frames), SandboxError> {
        let opts = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            cmd: Some(cmd),
            working_dir: Some(working_dir.to_string()),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(id, opts)
            .await
            .map_err(|source| container_err("exec in", id, source))?;
        let started = self
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|source| container_err("exec in", id, source))?;
        let frames: Frames = match started {
            StartExecResults::Attached { output, .. } => {
                let id = id.to_string();
                Box::pin(output.map_err(move |source| container_err("read exec output from", &id, source)))
            }
            StartExecResults::Detached => Box::pin(futures_util::stream::empty()),
        };
        Ok((exec.id, frames))
    }

    /// Whether the exec still runs, and its exit code once it does not.
    pub(super) async fn exec_state(&self, id: &str, exec_id: &str) -> Result<(bool, Option<i64>), SandboxError> {
        let info = self
            .docker
            .inspect_exec(exec_id)
            .await
            .map_err(|source| container_err("inspect exec in", id, source))?;
        Ok((info.running == Some(true), info.exit_code))
    }

    /// Every container (running or not) carrying `label_filter`, with its labels.
    pub(super) async fn list_labelled(
        &self,
        label_filter: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>, SandboxError> {
        let filters = HashMap::from([("label".to_string(), vec![label_filter.to_string()])]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|source| container_err("list", label_filter, source))?;
        Ok(list
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect())
    }

    /// `docker image inspect`; a 404 is [`ImageFound::Missing`], not an error.
    pub(super) async fn inspect_image(&self, image: &str) -> Result<ImageFound, SandboxError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(ImageFound::Present {
                user: info.config.and_then(|c| c.user).filter(|u| !u.is_empty()),
            }),
            Err(e @ DockerError::DockerResponseServerError { status_code: 404, .. }) => {
                Ok(ImageFound::Missing(e.to_string()))
            }
            Err(e) => Err(SandboxError::Image {
                image: image.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// `docker pull` to the end; `Err` carries the daemon's own words for the failure
    /// (the caller tells a refused login from a missing image).
    pub(super) async fn pull(&self, image: &str, credentials: Option<DockerCredentials>) -> Result<(), String> {
        let opts = CreateImageOptionsBuilder::default().from_image(image).build();
        let mut stream = self.docker.create_image(Some(opts), None, credentials);
        while let Some(progress) = stream.next().await {
            let progress = progress.map_err(|e| docker_message(&e))?;
            if let Some(err) = progress.error_detail.and_then(|d| d.message) {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Creates a named volume; creating one that exists is a no-op.
    pub(super) async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<(), SandboxError> {
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels),
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|source| container_err("create the volume for", name, source))
    }
}

/// The daemon's own words for a failed request (bollard's display adds the status).
fn docker_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

pub(super) fn container_err(operation: &'static str, container: &str, source: DockerError) -> SandboxError {
    SandboxError::Container {
        operation,
        container: container.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use bollard::API_DEFAULT_VERSION;

    use super::*;

    /// A client whose every request fails at once: the "socket" is a plain file.
    fn unreachable() -> (DockerClient, tempfile::NamedTempFile) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let docker = Docker::connect_with_unix(file.path().to_str().unwrap(), 5, API_DEFAULT_VERSION).unwrap();
        (DockerClient { docker }, file)
    }

    fn operation(result: Result<impl Sized, SandboxError>) -> (&'static str, String) {
        match result {
            Err(SandboxError::Container {
                operation, container, ..
            }) => (operation, container),
            Err(other) => panic!("not a container error: {other}"),
            Ok(_) => panic!("a request to a plain file succeeded"),
        }
    }

    /// Each failure names its operation and its target, as "failed to {operation}
    /// container `{container}`" reads.
    #[tokio::test]
    async fn every_operation_names_itself_when_it_fails() {
        let (docker, _file) = unreachable();
        let c = || "pace-r-gate-1".to_string();
        let body = ContainerCreateBody::default();
        assert_eq!(operation(docker.create("pace-r-gate-1", body).await), ("create", c()));
        assert_eq!(operation(docker.start("pace-r-gate-1").await), ("start", c()));
        assert_eq!(operation(docker.restart("pace-r-gate-1").await), ("restart", c()));
        assert_eq!(operation(docker.attach("pace-r-gate-1").await), ("attach to", c()));
        assert_eq!(operation(docker.wait("pace-r-gate-1").await), ("wait for", c()));
        assert_eq!(operation(docker.remove("pace-r-gate-1").await), ("remove", c()));
        assert_eq!(operation(docker.state("pace-r-gate-1").await), ("inspect", c()));
        assert_eq!(
            operation(docker.process_count("pace-r-gate-1").await),
            ("list the processes of", c())
        );
        let archive = futures_util::stream::iter([Ok(bytes::Bytes::from_static(b""))]);
        assert_eq!(
            operation(docker.upload("pace-r-gate-1", "/workspace", archive, None).await),
            ("upload the workspace into", c())
        );
        assert_eq!(
            operation(docker.exec("pace-r-gate-1", vec!["true".into()], "/workspace").await),
            ("exec in", c())
        );
        assert_eq!(
            operation(docker.exec_state("pace-r-gate-1", "e1").await),
            ("inspect exec in", c())
        );
        assert_eq!(
            operation(docker.list_labelled("pace.run-id=r").await),
            ("list", "pace.run-id=r".to_string())
        );
        assert_eq!(
            operation(docker.create_volume("pace-cache-x", HashMap::new()).await),
            ("create the volume for", "pace-cache-x".to_string())
        );
        let logs: Vec<_> = docker.logs("pace-r-gate-1", false).collect().await;
        assert!(matches!(
            logs.as_slice(),
            [Err(SandboxError::Container {
                operation: "read the output of",
                ..
            })]
        ));
    }

    #[tokio::test]
    async fn image_and_pull_failures_name_the_image_not_a_container() {
        let (docker, _file) = unreachable();
        match docker.inspect_image("busybox:1").await {
            Err(SandboxError::Image { image, .. }) => assert_eq!(image, "busybox:1"),
            Err(other) => panic!("not an image error: {other}"),
            Ok(_) => panic!("a request to a plain file succeeded"),
        }
        assert!(docker.pull("busybox:1", None).await.is_err());
        // Best effort by design: a kill that cannot reach the daemon is no error.
        docker.kill("pace-r-gate-1").await;
    }
}
