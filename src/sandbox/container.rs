//! The Docker side: connection, container lifecycle (create, upload, start, logs, wait,
//! collect, remove) and the cleanup of pace-labelled containers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use super::output::{HeadTail, NetworkFailureScan, network_hint};
use super::workspace::{self, Manifest, PackPlan};
use super::{
    LABEL_CREATED, LABEL_DAY, LABEL_RUN_ID, PROMPT_HEAD_BYTES, PROMPT_TAIL_BYTES, RunOutcome, RunRequest,
    SandboxContext, SandboxError,
};
use crate::config::settings::{NetworkMode, WorkspaceMode};

/// Where the workspace lives in the container.
pub(crate) const WORKSPACE: &str = "/workspace";
/// How long `connect` waits for a daemon that is still starting (DinD services).
const CONNECT_WAIT: Duration = Duration::from_secs(20);
/// Added to the sandbox timeout before a labelled container counts as stale.
const STALE_MARGIN: Duration = Duration::from_secs(10 * 60);

pub struct Sandbox {
    pub(super) ctx: SandboxContext,
    pub(super) docker: Docker,
    /// The image's own `User` (used for file ownership when `sandbox.user` is unset).
    image_user: Option<String>,
}

impl Sandbox {
    /// Connects with the Docker defaults (`DOCKER_HOST`, else the unix socket), negotiates
    /// the API version and checks the daemon answers; then makes sure the image exists
    /// (pulling it when the daemon does not have it).
    pub async fn connect(ctx: SandboxContext) -> Result<Self, SandboxError> {
        // bollard's TLS needs a process-wide rustls provider; "already installed" is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Only for messages: bollard itself reads DOCKER_HOST.
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let docker = Docker::connect_with_defaults().map_err(|source| SandboxError::Connect {
            host: host.clone(),
            source,
        })?;

        // A daemon that is starting (GitLab's DinD service) gets time to answer; a unix
        // socket that does not exist means no daemon here, so fail at once.
        let socket_missing = host
            .strip_prefix("unix://")
            .is_some_and(|path| !std::path::Path::new(path).exists());
        let wait = if socket_missing { Duration::ZERO } else { CONNECT_WAIT };
        let deadline = Instant::now() + wait;
        let pinger = docker.clone().with_timeout(Duration::from_secs(5));
        loop {
            match pinger.ping().await {
                Ok(_) => break,
                Err(source) if Instant::now() >= deadline => {
                    return Err(SandboxError::Connect { host, source });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "sandbox: Docker daemon not answering yet");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|source| SandboxError::Connect {
                host: host.clone(),
                source,
            })?;
        if let Ok(v) = docker.version().await {
            tracing::debug!(
                api = v.api_version.as_deref().unwrap_or("?"),
                min_api = v.min_api_version.as_deref().unwrap_or("?"),
                engine = v.version.as_deref().unwrap_or("?"),
                os = v.os.as_deref().unwrap_or("?"),
                "sandbox: connected to {host}"
            );
        }

        let image_user = ensure_image(&docker, &ctx.settings.image).await?;
        Ok(Self {
            ctx,
            docker,
            image_user,
        })
    }

    pub fn context(&self) -> &SandboxContext {
        &self.ctx
    }

    /// The Docker client (for diagnostics such as `pace doctor`).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Runs one command to completion in a fresh container (GATE).
    pub async fn run(&self, req: RunRequest<'_>) -> Result<RunOutcome, SandboxError> {
        let started = Instant::now();
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), req.command.clone()];
        let guard = self.create_container("gate", cmd, req.repo).await?;
        let result = self.run_in(&guard.id, &req, started).await;
        let removed = guard.remove().await;
        let outcome = result?;
        removed?;
        Ok(outcome)
    }

    async fn run_in(&self, id: &str, req: &RunRequest<'_>, started: Instant) -> Result<RunOutcome, SandboxError> {
        let settings = &self.ctx.settings;
        if settings.workspace == WorkspaceMode::Upload {
            self.upload_workspace(id, req.repo, None).await?;
        }
        self.docker
            .start_container(id, None)
            .await
            .map_err(|source| container_err("start", id, source))?;

        if let Some(parent) = req.output_log.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|source| io_err(parent, source))?;
        }
        let file = tokio::fs::File::create(req.output_log)
            .await
            .map_err(|source| io_err(req.output_log, source))?;
        let mut log = tokio::io::BufWriter::new(file);
        let mut view = HeadTail::new(PROMPT_HEAD_BYTES, PROMPT_TAIL_BYTES);
        let mut scan = NetworkFailureScan::default();

        let streamed = tokio::time::timeout(settings.timeout, async {
            let opts = LogsOptionsBuilder::default()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .build();
            let mut logs = self.docker.logs(id, Some(opts));
            while let Some(chunk) = logs.next().await {
                let chunk = chunk
                    .map_err(|source| container_err("read the output of", id, source))?
                    .into_bytes();
                log.write_all(&chunk)
                    .await
                    .map_err(|source| io_err(req.output_log, source))?;
                view.push(&chunk);
                scan.push(&chunk);
                if let Some(cb) = req.on_output {
                    cb(&chunk);
                }
            }
            wait_exit(&self.docker, id).await
        })
        .await;

        let (exit_code, timed_out) = match streamed {
            Ok(result) => (result?, false),
            Err(_elapsed) => {
                tracing::warn!(container = id, timeout = ?settings.timeout, "sandbox: command timed out; killing the container");
                kill(&self.docker, id).await;
                let note = format!(
                    "\n[pace: the command timed out after {} s and was killed]\n",
                    settings.timeout.as_secs()
                );
                log.write_all(note.as_bytes())
                    .await
                    .map_err(|source| io_err(req.output_log, source))?;
                view.push(note.as_bytes());
                (137, true)
            }
        };
        log.flush().await.map_err(|source| io_err(req.output_log, source))?;

        let oom_killed = match self.docker.inspect_container(id, None).await {
            Ok(info) => info.state.and_then(|s| s.oom_killed).unwrap_or(false),
            Err(e) => {
                tracing::warn!(error = %e, "sandbox: cannot inspect the finished container");
                false
            }
        };

        let collected = self.collect(id, req.collect_into).await;
        let (head, tail) = view.parts();
        let network_hint = (settings.network == NetworkMode::None && exit_code != 0 && scan.found()).then(network_hint);
        Ok(RunOutcome {
            exit_code,
            timed_out,
            oom_killed,
            duration: started.elapsed(),
            head,
            tail,
            output_bytes: view.total(),
            collected,
            network_hint,
        })
    }

    /// Copies the files matching `sandbox.collect` out of `/workspace` (never fatal: a
    /// failure is logged and whatever was extracted is returned).
    async fn collect(&self, id: &str, dest: &Path) -> Vec<PathBuf> {
        let globs = &self.ctx.settings.collect;
        if globs.is_empty() {
            return Vec::new();
        }
        let mut builder = globset::GlobSetBuilder::new();
        for g in globs {
            match globset::GlobBuilder::new(g).literal_separator(true).build() {
                Ok(glob) => {
                    builder.add(glob);
                }
                Err(e) => {
                    tracing::warn!(glob = %g, error = %e, "sandbox: invalid `sandbox.collect` glob ignored")
                }
            }
        }
        let set = match builder.build() {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox: invalid `sandbox.collect` globs");
                return Vec::new();
            }
        };
        let opts = DownloadFromContainerOptionsBuilder::default().path(WORKSPACE).build();
        let stream = self
            .docker
            .download_from_container(id, Some(opts))
            .map_err(std::io::Error::other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(Box::pin(stream)));
        let dest = dest.to_path_buf();
        match tokio::task::spawn_blocking(move || workspace::extract_matching(reader, &dest, &set)).await {
            Ok(Ok(files)) => files,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "sandbox: collecting result files failed");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "sandbox: collecting result files failed");
                Vec::new()
            }
        }
    }

    /// Starts the long-lived container of one FORGE attempt with the workspace uploaded.
    pub async fn start_session(&self, repo: &Path) -> Result<super::ExecSession, SandboxError> {
        super::session::start(self, repo).await
    }

    /// Removes every container of this run (called on exit and on signals).
    pub async fn remove_run_containers(&self) -> Result<usize, SandboxError> {
        let filter = format!("{LABEL_RUN_ID}={}", self.ctx.run_id);
        let ids = self.list_labelled(&filter).await?;
        let mut removed = 0;
        for (id, _) in ids {
            if remove(&self.docker, &id).await.is_ok() {
                removed += 1;
            }
        }
        // A removal already under way (a dropped session's guard) answers 409 at once;
        // wait until the daemon no longer lists any, so nothing is left when pace exits.
        for _ in 0..50 {
            if self.list_labelled(&filter).await?.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(removed)
    }

    /// Removes pace containers left by killed runs, older than the sandbox timeout (plus a
    /// margin), whatever run created them.
    pub async fn remove_stale(&self) -> Result<usize, SandboxError> {
        let max_age = self.ctx.settings.timeout + STALE_MARGIN;
        let now = unix_now();
        let mut removed = 0;
        for (id, labels) in self.list_labelled(LABEL_RUN_ID).await? {
            let Some(created) = labels.get(LABEL_CREATED).and_then(|c| c.parse::<u64>().ok()) else {
                continue;
            };
            if now.saturating_sub(created) > max_age.as_secs() {
                match remove(&self.docker, &id).await {
                    Ok(()) => {
                        tracing::info!(container = %id, "sandbox: removed a stale pace container");
                        removed += 1;
                    }
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "sandbox: cannot remove a stale container")
                    }
                }
            }
        }
        Ok(removed)
    }

    async fn list_labelled(&self, label_filter: &str) -> Result<Vec<(String, HashMap<String, String>)>, SandboxError> {
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

    /// Creates a labelled, locked-down container (not started) and returns its guard.
    pub(super) async fn create_container(
        &self,
        role: &str,
        cmd: Vec<String>,
        repo: &Path,
    ) -> Result<ContainerGuard, SandboxError> {
        let s = &self.ctx.settings;
        let name = format!("pace-{}-{role}-{:08x}", sanitize(&self.ctx.run_id), fastrand::u32(..));
        let labels = HashMap::from([
            (LABEL_RUN_ID.to_string(), self.ctx.run_id.clone()),
            (LABEL_DAY.to_string(), self.ctx.day.to_string()),
            (LABEL_CREATED.to_string(), unix_now().to_string()),
        ]);
        let (volumes, binds) = match s.workspace {
            WorkspaceMode::Upload => (Some(vec![WORKSPACE.to_string()]), None),
            WorkspaceMode::Bind => {
                let abs = std::fs::canonicalize(repo).map_err(|source| io_err(repo, source))?;
                (None, Some(vec![format!("{}:{WORKSPACE}", abs.display())]))
            }
        };
        let host_config = HostConfig {
            network_mode: Some(
                match s.network {
                    NetworkMode::None => "none",
                    NetworkMode::Bridge => "bridge",
                    NetworkMode::Host => "host",
                }
                .to_string(),
            ),
            memory: (s.memory_bytes > 0).then_some(s.memory_bytes),
            memory_swap: (s.memory_bytes > 0).then_some(s.memory_bytes),
            nano_cpus: (s.cpus > 0.0).then_some((s.cpus * 1e9) as i64),
            pids_limit: (s.pids_limit > 0).then_some(s.pids_limit),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges:true".to_string()]),
            privileged: Some(false),
            init: Some(true),
            binds,
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(s.image.clone()),
            cmd: Some(cmd),
            working_dir: Some(WORKSPACE.to_string()),
            env: Some(self.ctx.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            user: s.user.clone(),
            tty: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            volumes,
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self
            .docker
            .create_container(Some(opts), body)
            .await
            .map_err(|source| container_err("create", &name, source))?;
        for w in created.warnings {
            tracing::warn!(container = %name, "sandbox: Docker warning: {w}");
        }
        Ok(ContainerGuard {
            docker: self.docker.clone(),
            id: created.id,
            name,
            keep: s.keep,
            done: false,
        })
    }

    /// Numeric owner for uploaded files: `sandbox.user`, else the image's user.
    pub(super) fn owner(&self) -> Option<(u64, u64)> {
        let user = self.ctx.settings.user.as_deref().or(self.image_user.as_deref());
        let owner = workspace::parse_owner(user);
        if owner.is_none() && user.is_some_and(|u| !u.is_empty() && u != "root" && u != "0") {
            tracing::warn!(user = ?user, "sandbox: a named user cannot own the uploaded files; use `uid:gid` in `sandbox.user`");
        }
        owner
    }

    /// Streams `files` (all of the workspace when `None`) into `/workspace`.
    pub(super) async fn upload_workspace(
        &self,
        id: &str,
        repo: &Path,
        files: Option<Vec<PathBuf>>,
    ) -> Result<Manifest, SandboxError> {
        let ws_err = |source| SandboxError::Workspace {
            path: repo.to_path_buf(),
            source,
        };
        let files = match files {
            Some(f) => f,
            None => workspace::list_files(repo).map_err(ws_err)?,
        };
        let owner = self.owner();
        if let Some(owner) = owner {
            own_workspace_root(&self.docker, id, owner).await;
        }
        upload(
            &self.docker,
            id,
            PackPlan {
                repo: repo.to_path_buf(),
                files,
                owner,
                stamp_mtime: None,
            },
        )
        .await
    }
}

/// Uploads one archive into `/workspace` with a timeout scaled to its size.
pub(super) async fn upload(docker: &Docker, id: &str, plan: PackPlan) -> Result<Manifest, SandboxError> {
    let repo = plan.repo.clone();
    let bytes: u64 = plan
        .files
        .iter()
        .filter_map(|rel| std::fs::symlink_metadata(repo.join(rel)).ok())
        .map(|m| m.len())
        .sum();
    // The daemon answers only after extracting everything: allow 2 MiB/s on top of 2 min.
    let timeout = Duration::from_secs(120 + bytes / (2 * 1024 * 1024));
    let client = docker.clone().with_timeout(timeout);
    let (stream, packer) = workspace::tar_stream(plan);
    let opts = UploadToContainerOptionsBuilder::default().path(WORKSPACE).build();
    let uploaded = client
        .upload_to_container(id, Some(opts), bollard::body_try_stream(stream))
        .await;
    let packed = packer.await;
    match (uploaded, packed) {
        (_, Ok(Err(source))) => Err(SandboxError::Workspace { path: repo, source }),
        (_, Err(join)) => Err(SandboxError::Workspace {
            path: repo,
            source: std::io::Error::other(join.to_string()),
        }),
        (Err(source), Ok(Ok(_))) => Err(container_err("upload the workspace into", id, source)),
        (Ok(()), Ok(Ok(manifest))) => {
            tracing::debug!(
                container = id,
                files = manifest.len(),
                bytes,
                "sandbox: workspace uploaded"
            );
            Ok(manifest)
        }
    }
}

/// Makes the volume's root directory belong to the (non-root) user so the command can
/// create files at the top of `/workspace`. Best effort: the archive API refuses it on a
/// read-only root filesystem, and then only the uploaded subdirectories are writable.
async fn own_workspace_root(docker: &Docker, id: &str, (uid, gid): (u64, u64)) {
    let mut data = Vec::new();
    let built = (|| -> std::io::Result<()> {
        let mut b = tar::Builder::new(&mut data);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(unix_now());
        h.set_size(0);
        b.append_data(&mut h, "workspace", std::io::empty())?;
        b.finish()
    })();
    if built.is_err() {
        return;
    }
    let opts = UploadToContainerOptionsBuilder::default().path("/").build();
    if let Err(e) = docker
        .upload_to_container(id, Some(opts), bollard::body_full(data.into()))
        .await
    {
        tracing::debug!(error = %e, "sandbox: cannot hand /workspace to the sandbox user");
    }
}

/// Makes sure the image is on the daemon (pulls it otherwise); returns its configured user.
async fn ensure_image(docker: &Docker, image: &str) -> Result<Option<String>, SandboxError> {
    let image_err = |message: String| SandboxError::Image {
        image: image.to_string(),
        message,
    };
    match docker.inspect_image(image).await {
        Ok(info) => return Ok(info.config.and_then(|c| c.user).filter(|u| !u.is_empty())),
        Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(e) => return Err(image_err(e.to_string())),
    }
    tracing::info!(image, "sandbox: image not on the daemon, pulling it");
    let opts = CreateImageOptionsBuilder::default().from_image(image).build();
    let mut pull = docker.create_image(Some(opts), None, None);
    while let Some(progress) = pull.next().await {
        let progress = progress.map_err(|e| image_err(format!("pull failed: {e}")))?;
        if let Some(err) = progress.error_detail.and_then(|d| d.message) {
            return Err(image_err(format!("pull failed: {err}")));
        }
    }
    match docker.inspect_image(image).await {
        Ok(info) => Ok(info.config.and_then(|c| c.user).filter(|u| !u.is_empty())),
        Err(e) => Err(image_err(e.to_string())),
    }
}

/// The exit status of a container that has stopped (or will).
pub(super) async fn wait_exit(docker: &Docker, id: &str) -> Result<i64, SandboxError> {
    let opts = WaitContainerOptionsBuilder::default().condition("not-running").build();
    let mut wait = docker.wait_container(id, Some(opts));
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
        None => {
            let info = docker
                .inspect_container(id, None)
                .await
                .map_err(|source| container_err("inspect", id, source))?;
            Ok(info.state.and_then(|s| s.exit_code).unwrap_or(-1))
        }
    }
}

/// SIGKILL, ignoring "not running".
pub(super) async fn kill(docker: &Docker, id: &str) {
    let opts = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
    if let Err(e) = docker.kill_container(id, Some(opts)).await {
        tracing::debug!(container = id, error = %e, "sandbox: kill");
    }
}

async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes its container (and anonymous volume) when told to or when dropped, unless
/// `sandbox.keep` is set.
pub(super) struct ContainerGuard {
    docker: Docker,
    pub(super) id: String,
    pub(super) name: String,
    keep: bool,
    done: bool,
}

impl ContainerGuard {
    pub(super) async fn remove(mut self) -> Result<(), SandboxError> {
        self.done = true;
        if self.keep {
            tracing::warn!(container = %self.name, "sandbox: keeping the container (`sandbox.keep: true`); remove it with `docker rm -fv {}`", self.name);
            eprintln!("pace: kept sandbox container `{}` (sandbox.keep)", self.name);
            return Ok(());
        }
        remove(&self.docker, &self.id)
            .await
            .map_err(|source| container_err("remove", &self.name, source))
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if self.done || self.keep {
            return;
        }
        // Dropped mid-operation (error, cancellation): remove it in the background.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            let id = self.id.clone();
            handle.spawn(async move {
                if let Err(e) = remove(&docker, &id).await {
                    tracing::warn!(container = %id, error = %e, "sandbox: cannot remove the container");
                }
            });
        } else {
            tracing::warn!(container = %self.name, "sandbox: container left behind (no runtime to remove it)");
        }
    }
}

pub(super) fn container_err(operation: &'static str, container: &str, source: DockerError) -> SandboxError {
    SandboxError::Container {
        operation,
        container: container.to_string(),
        source,
    }
}

pub(super) fn io_err(path: &Path, source: std::io::Error) -> SandboxError {
    SandboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A container-name-safe version of the run id.
fn sanitize(run_id: &str) -> String {
    let s: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() { "run".to_string() } else { s }
}
