//! The sandbox of a run: the connection, the image, launching containers (created from
//! `spec`, filled, started; options a restricted daemon refuses dropped on the way). GATE's
//! run is `gate`, FORGE's session `session`, removal in bulk `cleanup`; every Engine API
//! call goes through `docker`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::container::AttachContainerResults;

use super::authz::{self, Degradable};
use super::cache;
use super::docker::DockerClient;
use super::endpoint::Endpoint;
use super::events::SandboxEvent;
use super::guard::{Closing, ContainerGuard};
use super::image::{ImagePull, ensure_image};
use super::spec::{self, Hidden, Role, Spec, WORKSPACE};
use super::stdin::{plan_bytes, stream_into_session};
use super::workspace::{self, Manifest, PackPlan};
use super::{SandboxContext, SandboxError};
use crate::boundary;
use crate::config::settings::WorkspaceMode;

/// The FORGE session's idle command when the workspace comes in on stdin (`$1` extra `tar`
/// options): unpack, say so after the mark, then sleep. Started again after a `kill`
/// (see `ExecSession::restart`), it finds its stdin ended or never written and sleeps.
const SESSION_UNPACK_WRAPPER: &str = r#"if IFS= read -r mark; then
  command -v tar >/dev/null 2>&1 || { printf '%s notar\n' "$mark"; exit 90; }
  tar -x $1 -f - -C /workspace || { printf '%s unpack\n' "$mark"; exit 91; }
  printf '%s ready\n' "$mark"
fi
exec sleep 2147483647 </dev/null >/dev/null 2>&1"#;

/// One run's sandbox: a daemon that answered, the image on it, and what this run learnt
/// about both (refused options, a missing `tar`, the set-up's record).
pub struct Sandbox {
    pub(super) ctx: SandboxContext,
    pub(super) docker: DockerClient,
    endpoint: Endpoint,
    /// The image's own `User` (used for file ownership when `sandbox.user` is unset).
    image_user: Option<String>,
    /// Options a Docker authorization plugin refused in this run (not asked for again).
    degraded: Mutex<BTreeSet<Degradable>>,
    /// Cache volumes already created in this run.
    cache_volumes: Mutex<BTreeSet<String>>,
    /// The image has no `tar`: GATE uploads its workspace through the archive API.
    pub(super) no_tar: AtomicBool,
    /// Finished containers are removed in the background (see [`Sandbox::defer_removals`]).
    pub(super) deferred_removals: AtomicBool,
    /// Containers being removed in the background: FORGE sessions (see
    /// [`Sandbox::close_later`]) and guards dropped mid-operation. Shared with every guard,
    /// so [`Sandbox::settle`] waits for those removals too (a spawned task dies with the
    /// process when pace exits right after the error that dropped the guard).
    pub(super) closing: Closing,
    /// Numeric owner of uploaded files (see [`upload_owner`]).
    owner: Option<(u64, u64)>,
    /// What a successful set-up phase left for later containers (see `setup.rs`).
    prepared: Mutex<Option<Prepared>>,
    /// The egress sidecar while it runs (`sandbox.egress`, see `egress.rs`).
    pub(super) egress: tokio::sync::Mutex<Option<super::egress::Egress>>,
    /// The tallies of this run's proxies, added up (see [`Sandbox::stop_egress`]).
    pub(super) egress_seen: Mutex<Vec<crate::proxy::TallyEntry>>,
}

/// A successful set-up phase's record on the cache volume.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    /// `/cache/.pace-setup/<hash>`.
    pub dir: String,
    /// Link its workspace outputs into `/workspace` (not in bind mode).
    pub link: bool,
}

/// The numeric owner for uploaded files from `sandbox.user` or the image's user. Warned
/// once, when the sandbox connects: a named user cannot own files in a tar stream.
fn upload_owner(user: Option<&str>) -> Option<(u64, u64)> {
    let owner = workspace::parse_owner(user);
    if owner.is_none() && user.is_some_and(|u| !u.is_empty() && u != "root" && u != "0") {
        tracing::warn!(user = ?user, "sandbox: a named user cannot own the uploaded files; use `uid:gid` in `sandbox.user`");
    }
    owner
}

impl Sandbox {
    /// Connects to the daemon named by the process environment (`DOCKER_HOST`,
    /// `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`; else the unix socket). See [`Sandbox::connect_to`].
    pub async fn connect(ctx: SandboxContext) -> Result<Self, SandboxError> {
        Self::connect_to(ctx, Endpoint::from_process_env()).await
    }

    /// Connects to `endpoint`, negotiates the API version and checks the daemon answers;
    /// then makes sure the image exists (pulling it when the daemon does not have it).
    pub async fn connect_to(ctx: SandboxContext, endpoint: Endpoint) -> Result<Self, SandboxError> {
        let docker = DockerClient::connect(&endpoint).await?;
        let image_user = ensure_image(&docker, &ImagePull::of(&ctx.settings, &ctx.registry_login)).await?;
        let owner = upload_owner(ctx.settings.user.as_deref().or(image_user.as_deref()));
        Ok(Self {
            ctx,
            docker,
            endpoint,
            image_user,
            owner,
            degraded: Mutex::new(BTreeSet::new()),
            cache_volumes: Mutex::new(BTreeSet::new()),
            no_tar: AtomicBool::new(false),
            deferred_removals: AtomicBool::new(false),
            closing: Closing::default(),
            prepared: Mutex::new(None),
            egress: tokio::sync::Mutex::new(None),
            egress_seen: Mutex::new(Vec::new()),
        })
    }

    /// Records what the set-up phase left (`None`: nothing usable).
    pub(super) fn set_prepared(&self, prepared: Option<Prepared>) {
        if let Ok(mut p) = self.prepared.lock() {
            *p = prepared;
        }
    }

    pub(super) fn prepared(&self) -> Option<Prepared> {
        self.prepared.lock().ok().and_then(|p| p.clone())
    }

    /// Whether containers get the cache volume (on, and not refused by the daemon).
    pub(super) fn caches_usable(&self) -> bool {
        self.ctx.settings.caches && !self.degraded().contains(&Degradable::CacheVolume)
    }

    /// The daemon this sandbox talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Options an authorization plugin refused so far (empty on an unrestricted daemon).
    pub fn degraded(&self) -> Vec<Degradable> {
        self.degraded
            .lock()
            .map(|d| d.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn context(&self) -> &SandboxContext {
        &self.ctx
    }

    /// The Docker client (for diagnostics such as `pace doctor`).
    pub fn docker(&self) -> &Docker {
        self.docker.raw()
    }

    /// The `tar` options with which the container's own user unpacks the workspace
    /// (`-o`: a non-root user keeps the files as its own), or `None` when the image has no
    /// tar or runs as a named user pace cannot give `/workspace` to (the archive API then
    /// uploads as before).
    pub(super) fn unpack_options(&self) -> Option<&'static str> {
        if self.no_tar.load(Ordering::Relaxed) {
            return None;
        }
        let user = self.ctx.settings.user.as_deref().or(self.image_user.as_deref());
        match user.map(str::trim).filter(|u| !u.is_empty()) {
            None | Some("root") => Some(""),
            Some(named) => match workspace::parse_owner(Some(named)) {
                Some((0, _)) => Some(""),
                Some(_) => Some("-o"),
                None => None,
            },
        }
    }

    /// Starts the long-lived container of one FORGE attempt with the workspace uploaded.
    pub async fn start_session(&self, repo: &Path) -> Result<super::ExecSession, SandboxError> {
        super::session::start(self, repo).await
    }

    /// Creates a container, fills `/workspace` (upload mode) and starts it.
    ///
    /// When a Docker authorization plugin denies the create or the start and names an
    /// option pace can do without (see [`authz`]), that option is dropped for the rest of
    /// the run and the container is made again; the manifest is `None` in bind mode.
    pub(super) async fn launch(
        &self,
        role: Role,
        cmd: Vec<String>,
        repo: &Path,
    ) -> Result<(ContainerGuard, Option<Manifest>), SandboxError> {
        loop {
            let guard = match self.create_container(role, cmd.clone(), repo, false).await {
                Ok(g) => g,
                Err(e) if self.degrade_on(&e) => continue,
                Err(e) => return Err(e),
            };
            if guard.cache
                && let Some(owner) = self.owner()
            {
                own_dirs(&self.docker, &guard.id, owner, &cache::CACHE_DIRS).await;
            }
            let manifest = if guard.bind {
                None
            } else {
                match self.upload_workspace(&guard.id, repo, None).await {
                    Ok(manifest) => Some(manifest),
                    Err(e) => {
                        guard.discard().await;
                        return Err(e);
                    }
                }
            };
            if let Some(guard) = self.start_or_discard(guard).await? {
                return Ok((guard, manifest));
            }
        }
    }

    /// Starts a FORGE session's container with the workspace streamed in through its stdin
    /// (no archive API call); `None` when that cannot be done (bind mode, a named user, an
    /// image without `tar`): [`Self::launch`] then.
    pub(super) async fn launch_session_unpacked(&self, repo: &Path) -> Result<Option<ContainerGuard>, SandboxError> {
        if self.ctx.settings.workspace == WorkspaceMode::Bind {
            return Ok(None);
        }
        let Some(tar_options) = self.unpack_options() else {
            return Ok(None);
        };
        let owned = repo.to_path_buf();
        let listed = tokio::task::spawn_blocking(move || workspace::list_files(&owned));
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            SESSION_UNPACK_WRAPPER.to_string(),
            "pace-session".to_string(),
            tar_options.to_string(),
        ];
        let (guard, attached) = self.launch_attached(Role::Forge, cmd, repo).await?;
        let files = match listed_files(listed, repo).await {
            Ok(files) => files,
            Err(e) => {
                guard.discard().await;
                return Err(e);
            }
        };
        let plan = PackPlan {
            repo: repo.to_path_buf(),
            files,
            owner: self.owner(),
            stamp_mtime: None,
        };
        let fed = stream_into_session(&self.docker, &guard.id, attached, plan).await;
        let bytes = fed.bytes;
        match fed.verdict(repo) {
            Ok(true) => {
                tracing::debug!(container = %guard.name, bytes, "sandbox: workspace streamed into the session");
                Ok(Some(guard))
            }
            Ok(false) => {
                tracing::info!(image = %self.ctx.settings.image, "sandbox: the image has no `tar`; uploading the workspace through the Docker API");
                self.no_tar.store(true, Ordering::Relaxed);
                guard.discard().await;
                Ok(None)
            }
            Err(err) => {
                guard.discard().await;
                Err(err)
            }
        }
    }

    /// Creates a container whose stdin is open, attaches to it and starts it (GATE with the
    /// workspace streamed in). The stream is attached before the start, so no output is
    /// missed and no second read of the log is needed.
    pub(super) async fn launch_attached(
        &self,
        role: Role,
        cmd: Vec<String>,
        repo: &Path,
    ) -> Result<(ContainerGuard, AttachContainerResults), SandboxError> {
        loop {
            let guard = match self.create_container(role, cmd.clone(), repo, true).await {
                Ok(g) => g,
                Err(e) if self.degrade_on(&e) => continue,
                Err(e) => return Err(e),
            };
            if let Some(owner) = self.owner().filter(|(uid, _)| *uid != 0) {
                // A non-root user unpacks the workspace itself: `/workspace` must be its own.
                let mut dirs = vec!["workspace"];
                if guard.cache {
                    dirs.extend(cache::CACHE_DIRS);
                }
                own_dirs(&self.docker, &guard.id, owner, &dirs).await;
            }
            // By name: the error names the container people see in `docker ps`.
            let attached = match self.docker.attach(&guard.name).await {
                Ok(attached) => attached,
                Err(err) => {
                    guard.discard().await;
                    // Podman prepares the container when it attaches: a missing init shows here.
                    if self.degrade_on(&err) {
                        continue;
                    }
                    return Err(err);
                }
            };
            if let Some(guard) = self.start_or_discard(guard).await? {
                return Ok((guard, attached));
            }
        }
    }

    /// Starts the guarded container: `Some` when it runs; `None` when the daemon refused an
    /// option pace can drop (try again without it); an error otherwise. A container that
    /// did not start is removed here, not by the guard's drop: that removal runs in the
    /// background and is lost when pace exits on the error right after.
    async fn start_or_discard(&self, guard: ContainerGuard) -> Result<Option<ContainerGuard>, SandboxError> {
        let Err(err) = self.docker.start(&guard.name).await else {
            return Ok(Some(guard));
        };
        guard.discard().await;
        if self.degrade_on(&err) { Ok(None) } else { Err(err) }
    }

    /// Whether pace sets `option` at all with these settings.
    fn uses(&self, option: Degradable) -> bool {
        let s = &self.ctx.settings;
        match option {
            Degradable::CacheVolume => s.caches,
            Degradable::WorkspaceBind => s.workspace == WorkspaceMode::Bind,
            Degradable::Memory => s.memory_bytes > 0,
            Degradable::Cpus => s.cpus > 0.0,
            Degradable::PidsLimit => s.pids_limit > 0,
            Degradable::SecurityOpt | Degradable::CapDrop | Degradable::Init => true,
        }
    }

    /// On an authorization-plugin denial that names an option still in use: records it as
    /// dropped, says so (an event for the caller's printer), and returns true (try again).
    /// Anything else: false.
    fn degrade_on(&self, err: &SandboxError) -> bool {
        let SandboxError::Container { source, .. } = err else {
            return false;
        };
        let Ok(mut degraded) = self.degraded.lock() else {
            return false;
        };
        if let Some(message) = authz::missing_init(source)
            && !degraded.contains(&Degradable::Init)
        {
            degraded.insert(Degradable::Init);
            tracing::warn!(%message, "sandbox: the daemon has no init binary");
            self.ctx.events.emit(&SandboxEvent::InitMissing);
            return true;
        }
        let Some(message) = authz::denial(source) else {
            return false;
        };
        let Some(option) = authz::next_to_drop(message, |d| !degraded.contains(&d) && self.uses(d)) else {
            tracing::warn!(%message, "sandbox: the Docker daemon's authorization plugin refused the container");
            return false;
        };
        degraded.insert(option);
        tracing::warn!(option = option.flag(), %message, "sandbox: option refused by the daemon's authorization plugin");
        self.ctx.events.emit(&SandboxEvent::OptionRefused {
            option,
            message: message.to_string(),
        });
        true
    }

    /// The cache volume for `repo`, created on first use; `None` when caches are off, were
    /// refused, or the volume cannot be created (logged).
    async fn cache_volume(&self, repo: &Path, degraded: &BTreeSet<Degradable>) -> Option<String> {
        if !self.ctx.settings.caches || degraded.contains(&Degradable::CacheVolume) {
            return None;
        }
        let volume = cache::volume_for(repo, &self.ctx.settings.cache_scope);
        let name = volume.name.clone();
        let known = self.cache_volumes.lock().map(|v| v.contains(&name)).unwrap_or(false);
        if !known {
            if let Err(e) = cache::ensure_volume(&self.docker, &volume).await {
                tracing::warn!(volume = %name, error = %e, "sandbox: cannot create the dependency cache volume; running without it");
                return None;
            }
            if let Ok(mut v) = self.cache_volumes.lock() {
                v.insert(name.clone());
            }
        }
        Some(name)
    }

    /// Creates a labelled, locked-down container (not started) and returns its guard; its
    /// shape is [`spec::container_body`]'s. `stdin`: the container reads its stdin once,
    /// from an attached client (the workspace archive).
    async fn create_container(
        &self,
        role: Role,
        cmd: Vec<String>,
        repo: &Path,
        stdin: bool,
    ) -> Result<ContainerGuard, SandboxError> {
        let s = &self.ctx.settings;
        let degraded = self.degraded.lock().map(|d| d.clone()).unwrap_or_default();
        let name = spec::container_name(&self.ctx.run_id, role, fastrand::u32(..));
        let workspace = if spec::binds_workspace(s, &degraded) {
            let host = std::fs::canonicalize(repo).map_err(|source| io_err(repo, source))?;
            let hidden = internal_entries(&host);
            spec::Workspace::Bind { host, hidden }
        } else {
            spec::Workspace::Upload
        };
        let bind = matches!(workspace, spec::Workspace::Bind { .. });
        let cache_volume = self.cache_volume(repo, &degraded).await;
        let project = cache::project_id(repo);
        let route = self.egress_route(role, repo).await?;
        let body = spec::container_body(Spec {
            role,
            settings: s,
            degraded: &degraded,
            run_id: &self.ctx.run_id,
            day: self.ctx.day,
            project: &project,
            created: unix_now(),
            cmd,
            workspace,
            cache_volume: cache_volume.as_deref(),
            env: &self.ctx.env,
            prepared: self.prepared().is_some(),
            stdin,
            route: route.as_ref(),
        });
        let id = self.docker.create(&name, body).await?;
        Ok(ContainerGuard {
            docker: self.docker.clone(),
            id,
            name,
            keep: s.keep,
            done: false,
            bind,
            cache: cache_volume.is_some(),
            closing: self.closing.clone(),
            events: self.ctx.events.clone(),
        })
    }

    /// From now on a finished suite's container is removed in the background, registered
    /// with the closing tasks: the caller promises to [`Sandbox::settle`] (or
    /// `remove_run_containers`) before it exits, as the day does after its reviews. Without
    /// the promise (the default) each run waits for its removal.
    pub fn defer_removals(&self) {
        self.deferred_removals.store(true, Ordering::Relaxed);
    }

    /// Numeric owner for uploaded files: `sandbox.user`, else the image's user.
    pub(super) fn owner(&self) -> Option<(u64, u64)> {
        self.owner
    }

    /// Streams `files` (all of the workspace when `None`) into `/workspace`.
    pub(super) async fn upload_workspace(
        &self,
        id: &str,
        repo: &Path,
        files: Option<Vec<PathBuf>>,
    ) -> Result<Manifest, SandboxError> {
        let files = match files {
            Some(f) => f,
            None => workspace::list_files(repo).map_err(|source| SandboxError::Workspace {
                path: repo.to_path_buf(),
                source,
            })?,
        };
        let owner = self.owner();
        if let Some(owner) = owner {
            own_dirs(&self.docker, id, owner, &["workspace"]).await;
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

/// Bind mode: which of `boundary::INTERNAL_DIRS` exist in the checkout at `host`, and
/// whether each is a directory (`spec` covers them inside the container).
fn internal_entries(host: &Path) -> Vec<Hidden> {
    boundary::INTERNAL_DIRS
        .iter()
        .filter_map(|name| {
            let meta = std::fs::symlink_metadata(host.join(name)).ok()?;
            Some(Hidden {
                name,
                dir: meta.is_dir(),
            })
        })
        .collect()
}

/// The result of listing the workspace on a blocking thread.
pub(super) async fn listed_files(
    listed: tokio::task::JoinHandle<std::io::Result<Vec<PathBuf>>>,
    repo: &Path,
) -> Result<Vec<PathBuf>, SandboxError> {
    let ws_err = |source| SandboxError::Workspace {
        path: repo.to_path_buf(),
        source,
    };
    match listed.await {
        Ok(Ok(files)) => Ok(files),
        Ok(Err(source)) => Err(ws_err(source)),
        Err(join) => Err(ws_err(std::io::Error::other(join.to_string()))),
    }
}

/// Uploads one archive into `/workspace` with a timeout scaled to its size.
pub(super) async fn upload(docker: &DockerClient, id: &str, plan: PackPlan) -> Result<Manifest, SandboxError> {
    let repo = plan.repo.clone();
    let bytes = plan_bytes(&plan);
    // The daemon answers only after extracting everything: allow 2 MiB/s on top of 2 min.
    let timeout = Duration::from_secs(120 + bytes / (2 * 1024 * 1024));
    let (stream, packer) = workspace::tar_stream(plan);
    let uploaded = docker.upload(id, WORKSPACE, stream, Some(timeout)).await;
    let packed = packer.await;
    match (uploaded, packed) {
        (_, Ok(Err(source))) => Err(SandboxError::Workspace { path: repo, source }),
        (_, Err(join)) => Err(SandboxError::Workspace {
            path: repo,
            source: std::io::Error::other(join.to_string()),
        }),
        (Err(err), Ok(Ok(_))) => Err(err),
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

/// Makes directories at the root of the container (`workspace`, `cache/...`) belong to the
/// (non-root) user so the command can write there. Best effort: the archive API refuses it
/// on a read-only root filesystem, and then only the uploaded subdirectories are writable.
async fn own_dirs(docker: &DockerClient, id: &str, (uid, gid): (u64, u64), dirs: &[&str]) {
    let mut data = Vec::new();
    let built = (|| -> std::io::Result<()> {
        let mut b = tar::Builder::new(&mut data);
        for dir in dirs {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mtime(unix_now());
            h.set_size(0);
            b.append_data(&mut h, dir, std::io::empty())?;
        }
        b.finish()
    })();
    if built.is_err() {
        return;
    }
    let archive = futures_util::stream::iter([Ok(bytes::Bytes::from(data))]);
    if let Err(e) = docker.upload(id, "/", archive, None).await {
        tracing::debug!(error = %e, ?dirs, "sandbox: cannot hand directories to the sandbox user");
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
