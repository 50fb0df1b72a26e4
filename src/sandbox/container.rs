//! The Docker side: connection, container lifecycle (create, upload, start, logs, wait,
//! collect, remove) and the cleanup of pace-labelled containers.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder,
    DownloadFromContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use super::authz::{self, Degradable};
use super::cache;
use super::collect;
use super::endpoint::{self, Endpoint};
use super::output::{HeadTail, LogCap, NetworkFailureScan, RedactLines, TrailerSplit, create_log_file, network_hint};
use super::registry::{self, RegistryLogin};
use super::workspace::{self, Manifest, PackPlan};
use super::writeback;
use super::{
    LABEL_CREATED, LABEL_DAY, LABEL_PROJECT, LABEL_RUN_ID, LABEL_TIMEOUT, PROMPT_HEAD_BYTES, PROMPT_TAIL_BYTES,
    RunOutcome, RunRequest, SandboxContext, SandboxError,
};
use crate::boundary::{self, Origin, Refused, SyncBudget};
use crate::config::settings::{NetworkMode, PullPolicy, SandboxSettings, WorkspaceMode};

/// Where the workspace lives in the container.
pub(crate) const WORKSPACE: &str = "/workspace";
/// Where the wrapper lists the workspace's files after the suite (inside the volume, so it
/// outlives the container's process and any tmpfs).
const FILE_LIST: &str = "/workspace/.pace-files";
const COLLECT_WRAPPER: &str = "/bin/sh -c \"$1\"; status=$?; \
    find /workspace -type f ! -path '/workspace/.git/*' ! -path '/workspace/.pace-files' -exec stat -c '%s %n' {} + > /workspace/.pace-files 2>/dev/null; \
    exit $status";
/// GATE's wrapper when the workspace comes in on stdin (upload mode): `$1` the suite, `$2`
/// `1` to list the workspace's files afterwards (result files are configured), `$3` extra
/// `tar` options. Stdin carries a line with this run's mark, then the workspace as a tar
/// archive. What the wrapper reports comes after the mark on stdout (see
/// [`GateTrailer`]), first before the suite starts: `notar` (the image has no tar: pace
/// uploads through the API instead), `unpack` (tar failed; its message is in the log) or
/// `unpacked`; then, after the suite, `listing` and the files as `size path` lines. The
/// suite reads no stdin but can read the mark out of this shell's memory
/// (`/proc/$PPID/mem`), so only the first report is trusted, and the listing is checked.
const UNPACK_WRAPPER: &str = r#"IFS= read -r mark || exit 90
command -v tar >/dev/null 2>&1 || { printf '%s notar\n' "$mark"; exit 90; }
tar -x $3 -f - -C /workspace || { printf '%s unpack\n' "$mark"; exit 91; }
printf '%s unpacked\n' "$mark"
/bin/sh -c "$1" </dev/null
status=$?
if [ "$2" = 1 ] && command -v find >/dev/null 2>&1; then
  printf '%s listing\n' "$mark"
  find /workspace -type f ! -path '/workspace/.git/*' -exec stat -c '%s %n' {} + 2>/dev/null
fi
exit $status"#;
/// The FORGE session's idle command when the workspace comes in on stdin (`$1` extra `tar`
/// options): unpack, say so after the mark, then sleep. Started again after a `kill`
/// (see `ExecSession::restart`), it finds its stdin ended or never written and sleeps.
const SESSION_UNPACK_WRAPPER: &str = r#"if IFS= read -r mark; then
  command -v tar >/dev/null 2>&1 || { printf '%s notar\n' "$mark"; exit 90; }
  tar -x $1 -f - -C /workspace || { printf '%s unpack\n' "$mark"; exit 91; }
  printf '%s ready\n' "$mark"
fi
exec sleep 2147483647 </dev/null >/dev/null 2>&1"#;
/// The largest file listing read back from GATE's container (about 100,000 paths).
const LISTING_CAP: usize = 8 * 1024 * 1024;
/// How long `connect` waits for a daemon that is still starting (`DinD` services).
const CONNECT_WAIT: Duration = Duration::from_secs(20);
/// Added to a container's recorded lifetime before it counts as stale.
const STALE_MARGIN: Duration = Duration::from_secs(10 * 60);
/// The lifetime recorded on a FORGE session container: an attempt has no time bound of its
/// own (`forge.max_iterations` LLM calls of up to `llm.timeout_seconds` each), and removing
/// a live session of a concurrent run would break that run.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub struct Sandbox {
    pub(super) ctx: SandboxContext,
    pub(super) docker: Docker,
    endpoint: Endpoint,
    /// The image's own `User` (used for file ownership when `sandbox.user` is unset).
    image_user: Option<String>,
    /// Options a Docker authorization plugin refused in this run (not asked for again).
    degraded: Mutex<BTreeSet<Degradable>>,
    /// Cache volumes already created in this run.
    cache_volumes: Mutex<BTreeSet<String>>,
    /// The image has no `tar`: GATE uploads its workspace through the archive API.
    no_tar: AtomicBool,
    /// Containers being removed in the background: FORGE sessions (see
    /// [`Sandbox::close_later`]) and guards dropped mid-operation. Shared with every guard,
    /// so [`Sandbox::settle`] waits for those removals too (a spawned task dies with the
    /// process when pace exits right after the error that dropped the guard).
    pub(super) closing: Closing,
    /// The egress sidecar while it runs (`sandbox.egress`, see `egress.rs`).
    pub(super) egress: tokio::sync::Mutex<Option<super::egress::Egress>>,
    /// Numeric owner of uploaded files (see [`upload_owner`]).
    owner: Option<(u64, u64)>,
    /// What a successful set-up phase left for later containers (see `setup.rs`).
    prepared: Mutex<Option<Prepared>>,
}

/// A successful set-up phase's record on the cache volume.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    /// `/cache/.pace-setup/<hash>`.
    pub dir: String,
    /// Link its workspace outputs into `/workspace` (not in bind mode).
    pub link: bool,
}

/// What a one-shot container is for: GATE's suite or the set-up phase (which has its own
/// network, collects no result files and gets no offline settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Gate,
    Setup,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Gate => "gate",
            Self::Setup => "setup",
        }
    }
}

/// Background removals the sandbox waits for before pace exits.
pub(super) type Closing = std::sync::Arc<Mutex<Vec<tokio::task::JoinHandle<Result<(), SandboxError>>>>>;

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
        let docker = connect_daemon(&endpoint).await?;
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
            closing: Closing::default(),
            prepared: Mutex::new(None),
            egress: tokio::sync::Mutex::new(None),
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
        &self.docker
    }

    /// Runs one command to completion in a fresh container (GATE).
    pub async fn run(&self, req: RunRequest<'_>) -> Result<RunOutcome, SandboxError> {
        self.run_as(Role::Gate, req).await
    }

    /// [`Self::run`] for `role`. GATE after a set-up phase first links its workspace
    /// outputs into `/workspace` (in the same shell, before the suite).
    pub(super) async fn run_as(&self, role: Role, mut req: RunRequest<'_>) -> Result<RunOutcome, SandboxError> {
        if role == Role::Gate
            && let Some(prepared) = self.prepared().filter(|p| p.link)
        {
            req.command = format!("{}\n{}", super::setup::link_script(&prepared.dir), req.command);
        }
        let started = Instant::now();
        let bind_wanted = self.ctx.settings.workspace == WorkspaceMode::Bind;
        // Upload mode: the workspace goes in on the container's stdin and the file listing
        // comes back on its stdout (create, attach, start, wait, remove), unless the image
        // cannot unpack it itself.
        if !bind_wanted
            && let Some(tar_options) = self.unpack_options()
            && let Some(outcome) = self.run_unpacking(role, &req, started, tar_options).await?
        {
            return Ok(outcome);
        }
        // The suite runs as given; afterwards one `find` lists the workspace so that only
        // the result files are downloaded (not the whole workspace). The user's command is
        // a separate argument: no quoting is involved.
        // Bind mode reads results from the checkout: no listing file written into it.
        let wrapper = if bind_wanted {
            "/bin/sh -c \"$1\""
        } else {
            COLLECT_WRAPPER
        };
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            wrapper.to_string(),
            "pace-gate".to_string(),
            req.command.clone(),
        ];
        // Bind mode: the suite writes the checkout itself; what it changed is policed after.
        let before = if bind_wanted {
            Some(writeback::BindSnapshot::take(req.repo).map_err(|source| io_err(req.repo, source))?)
        } else {
            None
        };
        let (guard, _) = self.launch(role.as_str(), cmd, req.repo).await?;
        let bind = guard.bind;
        let result = self.run_in(role, &guard, &req, started).await;
        let removed = guard.remove().await;
        let mut outcome = result?;
        removed?;
        if bind && let Some(before) = before {
            let (_, refused) = before
                .enforce(req.repo, &self.ctx.boundary, Origin::Gate)
                .map_err(|source| io_err(req.repo, source))?;
            outcome.refused.extend(refused);
        }
        Ok(outcome)
    }

    /// The `tar` options with which the container's own user unpacks the workspace
    /// (`-o`: a non-root user keeps the files as its own), or `None` when the image has no
    /// tar or runs as a named user pace cannot give `/workspace` to (the archive API then
    /// uploads as before).
    fn unpack_options(&self) -> Option<&'static str> {
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

    /// GATE in upload mode with the workspace streamed through the container's stdin;
    /// `None` when the image has no `tar` (remembered: later runs upload through the API).
    async fn run_unpacking(
        &self,
        role: Role,
        req: &RunRequest<'_>,
        started: Instant,
        tar_options: &str,
    ) -> Result<Option<RunOutcome>, SandboxError> {
        let ws_err = |source| SandboxError::Workspace {
            path: req.repo.to_path_buf(),
            source,
        };
        // git lists the workspace while the daemon creates and starts the container.
        let repo = req.repo.to_path_buf();
        let listed = tokio::task::spawn_blocking(move || workspace::list_files(&repo));
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            UNPACK_WRAPPER.to_string(),
            "pace-gate".to_string(),
            req.command.clone(),
            if role == Role::Gate && self.collect_globs().is_some() {
                "1"
            } else {
                "0"
            }
            .to_string(),
            tar_options.to_string(),
        ];
        let (guard, attached) = self.launch_attached(role.as_str(), cmd, req.repo).await?;
        let files = match listed.await {
            Ok(Ok(files)) => files,
            Ok(Err(source)) => {
                guard.discard().await;
                return Err(ws_err(source));
            }
            Err(join) => {
                guard.discard().await;
                return Err(ws_err(std::io::Error::other(join.to_string())));
            }
        };
        let plan = PackPlan {
            repo: req.repo.to_path_buf(),
            files,
            owner: self.owner(),
            stamp_mtime: None,
        };
        let result = self.run_attached(role, &guard, req, started, attached, plan).await;
        if let Ok(None) = result {
            tracing::info!(image = %self.ctx.settings.image, "sandbox: the image has no `tar`; uploading the workspace through the Docker API");
            self.no_tar.store(true, Ordering::Relaxed);
            guard.discard().await;
            return Ok(None);
        }
        let removed = guard.remove().await;
        let outcome = result?;
        removed?;
        Ok(outcome)
    }

    /// Feeds the mark and the workspace archive to the wrapper's stdin while its output is
    /// logged, then collects the result files its listing names.
    #[expect(
        clippy::too_many_lines,
        reason = "split with issue 10 step 4 (the sandbox after testcontainers)"
    )]
    async fn run_attached(
        &self,
        role: Role,
        guard: &ContainerGuard,
        req: &RunRequest<'_>,
        started: Instant,
        attached: bollard::container::AttachContainerResults,
        plan: PackPlan,
    ) -> Result<Option<RunOutcome>, SandboxError> {
        let settings = &self.ctx.settings;
        let id = guard.id.as_str();
        let mut log = GateLog::open(req, self.ctx.redactor.clone(), settings.log_limit)?;
        let mark = new_mark();
        let mut split = GateTrailer::new(&mark);
        let bollard::container::AttachContainerResults { mut output, mut input } = attached;
        let (stream, packer) = workspace::tar_stream(plan);

        let feed = feed_stdin(&self.docker, id, &mut input, &mark, stream);
        let streamed = tokio::time::timeout(settings.timeout, async {
            let read = async {
                while let Some(frame) = output.next().await {
                    match frame.map_err(|source| container_err("read the output of", id, source))? {
                        bollard::container::LogOutput::StdOut { message } => {
                            let own = split.push(&message);
                            log.push(&own).await?;
                        }
                        other => log.push(&other.into_bytes()).await?,
                    }
                }
                let held = split.finish();
                log.push(&held).await
            };
            let (read, fed, exit) = tokio::join!(read, feed, wait_exit(&self.docker, id));
            read?;
            Ok::<_, SandboxError>((exit?, fed))
        })
        .await;
        let packed = packer.await;

        let (exit_code, timed_out, fed) = match streamed {
            Ok(result) => {
                let (exit, fed) = result?;
                (exit, false, fed)
            }
            Err(_elapsed) => {
                tracing::warn!(container = id, timeout = ?settings.timeout, "sandbox: command timed out; killing the container");
                kill(&self.docker, id).await;
                log.timed_out(settings.timeout).await?;
                (137, true, Fed::All)
            }
        };
        let (view, scan) = log.finish().await?;
        let word = split.word();
        let listing = split.listing().map(|t| String::from_utf8_lossy(t).into_owned());
        if word == "notar" {
            return Ok(None);
        }
        let unpack_failed = |why: String| SandboxError::Workspace {
            path: req.repo.to_path_buf(),
            source: std::io::Error::other(format!(
                "{why}; the container's messages are in {}",
                req.output_log.display()
            )),
        };
        match (fed, packed) {
            (Fed::PackFailed, Ok(Err(source))) => {
                return Err(SandboxError::Workspace {
                    path: req.repo.to_path_buf(),
                    source,
                });
            }
            (Fed::PackFailed, _) => return Err(unpack_failed("packing the workspace failed".into())),
            // The wrapper exits right after a failed unpack: the rest of the archive may
            // not have gone in, and tar's own message says more.
            _ if word == "unpack" => {
                return Err(unpack_failed(
                    "unpacking the workspace in the sandbox (`tar -x`) failed".into(),
                ));
            }
            (Fed::WriteFailed, _) => {
                return Err(unpack_failed(
                    "the workspace could not be streamed into the sandbox container (it stopped reading)".into(),
                ));
            }
            (Fed::All, _) => {}
        }
        let oom_killed = self.oom_killed(id, exit_code, timed_out).await;
        let mut refused = Vec::new();
        let collected = match (timed_out, listing.as_deref()) {
            // A killed suite wrote no listing and rarely complete reports.
            (true, _) => Vec::new(),
            (false, Some(_)) if split.overflowed() => {
                tracing::warn!("sandbox: the file listing is too large; result files are not collected");
                Vec::new()
            }
            // The wrapper's listing, perhaps behind lines the suite printed after a mark of
            // its own: every line is checked, and those that are no `size path` are dropped.
            (false, Some(listing)) => self.collect_listed(id, listing, req.collect_into, &mut refused).await,
            // No listing although one was asked for (the wrapper was killed, no `find`):
            // scan a download of the whole workspace instead.
            (false, None) => match self.collect_globs().filter(|_| role == Role::Gate) {
                Some(set) => self.collect_by_full_download(id, req.collect_into, set).await,
                None => Vec::new(),
            },
        };
        Ok(Some(self.outcome(
            role, exit_code, timed_out, oom_killed, started, &view, &scan, collected, refused,
        )))
    }

    async fn run_in(
        &self,
        role: Role,
        guard: &ContainerGuard,
        req: &RunRequest<'_>,
        started: Instant,
    ) -> Result<RunOutcome, SandboxError> {
        let settings = &self.ctx.settings;
        let id = guard.id.as_str();
        let mut log = GateLog::open(req, self.ctx.redactor.clone(), settings.log_limit)?;
        let mut raw_seen: u64 = 0;

        let streamed = tokio::time::timeout(settings.timeout, async {
            let opts = LogsOptionsBuilder::default()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .build();
            let mut logs = self.docker.logs(id, Some(opts));
            while let Some(chunk) = logs.next().await {
                let raw = chunk
                    .map_err(|source| container_err("read the output of", id, source))?
                    .into_bytes();
                raw_seen += raw.len() as u64;
                log.push(&raw).await?;
            }
            wait_exit(&self.docker, id).await
        })
        .await;

        let (exit_code, timed_out) = match streamed {
            Ok(result) => (result?, false),
            Err(_elapsed) => {
                tracing::warn!(container = id, timeout = ?settings.timeout, "sandbox: command timed out; killing the container");
                kill(&self.docker, id).await;
                log.timed_out(settings.timeout).await?;
                (137, true)
            }
        };
        if !timed_out {
            // A follow stream can end before the daemon has delivered the last of a large
            // output (seen with the json-file logger under load): read the log once more
            // and append whatever the stream missed, so `output.log` is complete.
            let seen = raw_seen;
            let opts = LogsOptionsBuilder::default().stdout(true).stderr(true).build();
            let mut again = self.docker.logs(id, Some(opts));
            let mut skipped: u64 = 0;
            while let Some(chunk) = again.next().await {
                let Ok(chunk) = chunk else { break };
                let bytes = chunk.into_bytes();
                let len = bytes.len() as u64;
                if skipped + len <= seen {
                    skipped += len;
                    continue;
                }
                let start = usize::try_from(seen.saturating_sub(skipped)).unwrap_or(0);
                skipped = seen;
                log.push(&bytes[start..]).await?;
            }
        }
        let (view, scan) = log.finish().await?;
        let oom_killed = self.oom_killed(id, exit_code, timed_out).await;

        let mut refused = Vec::new();
        let collected = if role == Role::Setup {
            Vec::new()
        } else if guard.bind {
            // The files are the repository's own: read them where they are.
            self.collect_from_repo(req.repo, req.collect_into, &mut refused).await
        } else if timed_out {
            // A killed suite wrote no listing and rarely complete reports.
            Vec::new()
        } else {
            self.collect(id, req.collect_into, &mut refused).await
        };
        Ok(self.outcome(
            role, exit_code, timed_out, oom_killed, started, &view, &scan, collected, refused,
        ))
    }

    /// The kernel's OOM killer sends SIGKILL: only an exit of 137 can be one (this saves
    /// an API call on every other run).
    async fn oom_killed(&self, id: &str, exit_code: i64, timed_out: bool) -> bool {
        if exit_code != 137 || timed_out {
            return false;
        }
        match self.docker.inspect_container(id, None).await {
            Ok(info) => info.state.and_then(|s| s.oom_killed).unwrap_or(false),
            Err(e) => {
                tracing::warn!(error = %e, "sandbox: cannot inspect the finished container");
                false
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        role: Role,
        exit_code: i64,
        timed_out: bool,
        oom_killed: bool,
        started: Instant,
        view: &HeadTail,
        scan: &NetworkFailureScan,
        collected: Vec<PathBuf>,
        refused: Vec<Refused>,
    ) -> RunOutcome {
        let (head, tail) = view.parts();
        // The set-up is meant to reach the network: a failed access there is the network's
        // fault whatever `sandbox.setup_network` is (a bridge without NAT, a proxy).
        let offline = match role {
            Role::Gate => self.ctx.settings.network == NetworkMode::None,
            Role::Setup => true,
        };
        let network_hint = (offline && exit_code != 0 && scan.found()).then(network_hint);
        RunOutcome {
            exit_code,
            timed_out,
            oom_killed,
            duration: started.elapsed(),
            head,
            tail,
            output_bytes: view.total(),
            collected,
            network_hint,
            refused,
        }
    }

    /// The `sandbox.collect` globs (invalid ones logged and ignored); `None` when empty.
    fn collect_globs(&self) -> Option<globset::GlobSet> {
        let globs = &self.ctx.settings.collect;
        if globs.is_empty() {
            return None;
        }
        let mut builder = globset::GlobSetBuilder::new();
        for g in globs {
            match globset::GlobBuilder::new(g).literal_separator(true).build() {
                Ok(glob) => {
                    builder.add(glob);
                }
                Err(e) => {
                    tracing::warn!(glob = %g, error = %e, "sandbox: invalid `sandbox.collect` glob ignored");
                }
            }
        }
        match builder.build() {
            Ok(set) => Some(set),
            Err(e) => {
                tracing::warn!(error = %e, "sandbox: invalid `sandbox.collect` globs");
                None
            }
        }
    }

    /// Bind mode: copies the files matching `sandbox.collect` from the repository itself.
    async fn collect_from_repo(&self, repo: &Path, dest: &Path, refused: &mut Vec<Refused>) -> Vec<PathBuf> {
        let Some(set) = self.collect_globs() else {
            return Vec::new();
        };
        let (repo, dest) = (repo.to_path_buf(), dest.to_path_buf());
        let limits = self.ctx.boundary.limits;
        match tokio::task::spawn_blocking(move || workspace::copy_matching(&repo, &dest, &set, limits)).await {
            Ok(Ok((files, kept_out))) => {
                refused.extend(kept_out);
                files
            }
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

    /// Copies the files matching `sandbox.collect` out of `/workspace` (never fatal: a
    /// failure is logged and whatever was extracted is returned).
    async fn collect(&self, id: &str, dest: &Path, refused: &mut Vec<Refused>) -> Vec<PathBuf> {
        let Some(set) = self.collect_globs() else {
            return Vec::new();
        };
        match self.download_file(id, Path::new(FILE_LIST)).await {
            Some(listing) => {
                self.collect_listed(id, &String::from_utf8_lossy(&listing), dest, refused)
                    .await
            }
            // An image without `find`: scan a download of the whole workspace instead.
            None => self.collect_by_full_download(id, dest, set).await,
        }
    }

    /// Downloads the files of `listing` (`size path` lines, written by the suite's
    /// container and so untrusted: every path is checked) that match `sandbox.collect`, in
    /// the few archive downloads [`collect::plan`] chooses.
    /// The sizes are claims too (the suite shares the wrapper's stdout and can print lines
    /// after the mark): the sync byte cap is also charged with the bytes actually written,
    /// each download is cut at what is left of it, and a path listed twice is fetched once.
    async fn collect_listed(&self, id: &str, listing: &str, dest: &Path, refused: &mut Vec<Refused>) -> Vec<PathBuf> {
        let Some(set) = self.collect_globs() else {
            return Vec::new();
        };
        let limits = self.ctx.boundary.limits;
        let mut budget = SyncBudget::new(limits);
        let mut seen = std::collections::HashSet::new();
        let mut wanted = Vec::new();
        for (size, rel) in workspace::listed_paths(listing) {
            if !set.is_match(&rel) || !seen.insert(rel.clone()) {
                continue;
            }
            let shown = rel.to_string_lossy().into_owned();
            match boundary::check_result_file(&shown, size, limits, &mut budget) {
                Ok(()) => wanted.push(rel),
                Err(why) => refused.push(Refused::new(shown, &why, Origin::Gate)),
            }
        }
        let mut written = Vec::new();
        let mut bytes_written: u64 = 0;
        let cut = |rel: &Path| {
            Refused::new(
                rel.to_string_lossy().into_owned(),
                &boundary::Refusal::SyncBytes(limits.max_sync_bytes),
                Origin::Gate,
            )
        };
        for download in collect::plan(&wanted) {
            let room = collect::Room {
                file_cap: limits.max_file_bytes,
                sync_left: limits.max_sync_bytes.saturating_sub(bytes_written),
            };
            match download {
                collect::Download::File(rel) => {
                    let cap = room.file_cap.min(room.sync_left);
                    match self.download_into(id, &rel, dest, cap).await {
                        Some(path) => {
                            bytes_written += std::fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(cap);
                            written.push(path);
                        }
                        // Cut at what was left of the sync budget (or missing: either way not here).
                        None if cap < limits.max_file_bytes => refused.push(cut(&rel)),
                        None => {}
                    }
                }
                collect::Download::Dir(dir, files) => {
                    let out = self.download_wanted(id, &dir, files, dest, room).await;
                    bytes_written += out.bytes;
                    written.extend(out.written);
                    refused.extend(out.cut.iter().map(|rel| cut(rel)));
                }
            }
        }
        written
    }

    /// Downloads directory `/workspace/<dir>` once and keeps the `files` of it (never fatal:
    /// a failure is logged and what was written is kept).
    async fn download_wanted(
        &self,
        id: &str,
        dir: &Path,
        files: Vec<PathBuf>,
        dest: &Path,
        room: collect::Room,
    ) -> collect::Extracted {
        let path = Path::new(WORKSPACE).join(dir).to_string_lossy().into_owned();
        let opts = DownloadFromContainerOptionsBuilder::default().path(&path).build();
        let stream = self
            .docker
            .download_from_container(id, Some(opts))
            .map_err(std::io::Error::other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(Box::pin(stream)));
        let (dest, dir) = (dest.to_path_buf(), dir.to_path_buf());
        let wanted: std::collections::HashSet<PathBuf> = files.into_iter().collect();
        let extracted =
            tokio::task::spawn_blocking(move || collect::extract_wanted(reader, &dest, &dir, &wanted, room)).await;
        match extracted {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, path, "sandbox: collecting result files failed");
                collect::Extracted::default()
            }
            Err(e) => {
                tracing::warn!(error = %e, path, "sandbox: collecting result files failed");
                collect::Extracted::default()
            }
        }
    }

    /// One small file of a stopped container, in memory (the file listing). The suite can
    /// put anything at that path (a directory, a huge sparse file): only a regular file of
    /// at most [`LISTING_CAP`] bytes is read, and the download stops beyond that.
    async fn download_file(&self, id: &str, path: &Path) -> Option<Vec<u8>> {
        let opts = DownloadFromContainerOptionsBuilder::default()
            .path(&path.to_string_lossy())
            .build();
        let mut stream = self.docker.download_from_container(id, Some(opts));
        let mut tar_bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar_bytes.extend_from_slice(&chunk.ok()?);
            if tar_bytes.len() > LISTING_CAP + 64 * 1024 {
                tracing::warn!(path = %path.display(), "sandbox: the file listing is too large; result files are not collected");
                return None;
            }
        }
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let mut entry = archive.entries().ok()?.next()?.ok()?;
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular) {
            return None;
        }
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, LISTING_CAP as u64), &mut content).ok()?;
        Some(content)
    }

    /// Downloads `/workspace/<rel>` into `dest/<rel>`, streamed.
    /// `cap`: the most bytes written (larger: nothing is kept).
    async fn download_into(&self, id: &str, rel: &Path, dest: &Path, cap: u64) -> Option<PathBuf> {
        let path = format!("{WORKSPACE}/{}", rel.to_string_lossy());
        let opts = DownloadFromContainerOptionsBuilder::default().path(&path).build();
        let stream = self
            .docker
            .download_from_container(id, Some(opts))
            .map_err(std::io::Error::other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(Box::pin(stream)));
        let (dest, rel) = (dest.to_path_buf(), rel.to_path_buf());
        match tokio::task::spawn_blocking(move || workspace::extract_single(reader, &dest, &rel, cap)).await {
            Ok(Ok(written)) => written,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, path, "sandbox: collecting a result file failed");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, path, "sandbox: collecting a result file failed");
                None
            }
        }
    }

    async fn collect_by_full_download(&self, id: &str, dest: &Path, set: globset::GlobSet) -> Vec<PathBuf> {
        let opts = DownloadFromContainerOptionsBuilder::default().path(WORKSPACE).build();
        let stream = self
            .docker
            .download_from_container(id, Some(opts))
            .map_err(std::io::Error::other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(Box::pin(stream)));
        let (dest, limits) = (dest.to_path_buf(), self.ctx.boundary.limits);
        match tokio::task::spawn_blocking(move || workspace::extract_matching(reader, &dest, &set, limits)).await {
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

    /// Removes a finished FORGE session's container in the background, so that the day
    /// goes on (GATE starts) meanwhile. [`Sandbox::settle`] waits for it; the day calls it
    /// before it ends, and [`Sandbox::remove_run_containers`] on signals waits for it too.
    pub fn close_later(&self, session: super::ExecSession) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                container = session.container_name(),
                "sandbox: no runtime to remove the session container"
            );
            return;
        };
        let task = handle.spawn(session.close());
        match self.closing.lock() {
            Ok(mut closing) => closing.push(task),
            // Never happens (no code panics while holding the lock); the container still
            // carries this run's label for `remove_run_containers`.
            Err(_) => tracing::warn!("sandbox: cannot track a session container's removal"),
        }
    }

    /// Waits until the sessions handed to [`Sandbox::close_later`] are removed; returns
    /// the removals that failed.
    pub async fn settle(&self) -> Vec<SandboxError> {
        let tasks = self
            .closing
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        let mut failed = Vec::new();
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push(e),
                Err(join) => tracing::warn!(error = %join, "sandbox: removing a session container did not finish"),
            }
        }
        failed
    }

    /// Removes every container of this run (called on exit and on signals): only those
    /// labelled with this run's id, which is unique per run (see `app::run_id`).
    pub async fn remove_run_containers(&self) -> Result<usize, SandboxError> {
        for e in self.settle().await {
            tracing::warn!(error = %e, "sandbox: removing a session container failed");
        }
        let filter = format!("{LABEL_RUN_ID}={}", self.ctx.run_id);
        let ids = self.list_labelled(&filter).await?;
        let mut removed = 0;
        for (id, labels) in ids {
            // Checked again: a daemon that ignored the filter must not widen the removal.
            if labels.get(LABEL_RUN_ID) != Some(&self.ctx.run_id) {
                continue;
            }
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
        super::egress::remove_run_networks(&self.docker, &self.ctx.run_id).await;
        Ok(removed)
    }

    /// Removes this project's containers (then its egress networks) left by killed runs: those of `repo`'s project
    /// (`pace.project`) whose own recorded lifetime (`pace.created` + `pace.timeout`, plus a
    /// margin) has passed. Other projects' containers on a shared daemon, and containers
    /// without these labels (older pace versions, other tools), are left alone.
    pub async fn remove_stale(&self, repo: &Path) -> Result<usize, SandboxError> {
        let project = cache::project_id(repo);
        let now = unix_now();
        let mut removed = 0;
        for (id, labels) in self.list_labelled(&format!("{LABEL_PROJECT}={project}")).await? {
            let number = |key: &str| labels.get(key).and_then(|v| v.trim().parse::<u64>().ok());
            let (Some(created), Some(timeout)) = (number(LABEL_CREATED), number(LABEL_TIMEOUT)) else {
                continue;
            };
            // The daemon already filtered by label; checked again so that a filter the
            // daemon ignored could never widen the sweep.
            if labels.get(LABEL_PROJECT) != Some(&project) || !labels.contains_key(LABEL_RUN_ID) {
                continue;
            }
            let expires = created.saturating_add(timeout).saturating_add(STALE_MARGIN.as_secs());
            if now <= expires {
                continue;
            }
            match remove(&self.docker, &id).await {
                Ok(()) => {
                    tracing::info!(container = %id, "sandbox: removed a stale pace container");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "sandbox: cannot remove a stale container");
                }
            }
        }
        removed += super::egress::remove_stale_networks(&self.docker, &project, now, STALE_MARGIN).await;
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

    /// Creates a container, fills `/workspace` (upload mode) and starts it.
    ///
    /// When a Docker authorization plugin denies the create or the start and names an
    /// option pace can do without (see [`authz`]), that option is dropped for the rest of
    /// the run and the container is made again; the manifest is `None` in bind mode.
    pub(super) async fn launch(
        &self,
        role: &str,
        cmd: Vec<String>,
        repo: &Path,
    ) -> Result<(ContainerGuard, Option<Manifest>), SandboxError> {
        loop {
            let guard = match self.create_container(role, cmd.clone(), repo).await {
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
    #[expect(
        clippy::too_many_lines,
        reason = "split with issue 10 step 4 (the sandbox after testcontainers)"
    )]
    pub(super) async fn launch_session_unpacked(&self, repo: &Path) -> Result<Option<ContainerGuard>, SandboxError> {
        if self.ctx.settings.workspace == WorkspaceMode::Bind {
            return Ok(None);
        }
        let Some(tar_options) = self.unpack_options() else {
            return Ok(None);
        };
        let ws_err = |source| SandboxError::Workspace {
            path: repo.to_path_buf(),
            source,
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
        let (guard, attached) = self.launch_attached("forge", cmd, repo).await?;
        let files = match listed.await {
            Ok(Ok(files)) => files,
            Ok(Err(source)) => {
                guard.discard().await;
                return Err(ws_err(source));
            }
            Err(join) => {
                guard.discard().await;
                return Err(ws_err(std::io::Error::other(join.to_string())));
            }
        };
        let bytes: u64 = files
            .iter()
            .filter_map(|rel| std::fs::symlink_metadata(repo.join(rel)).ok())
            .map(|m| m.len())
            .sum();
        // As for an upload through the API: 2 MiB/s on top of 2 min.
        let timeout = Duration::from_secs(120 + bytes / (2 * 1024 * 1024));
        let plan = PackPlan {
            repo: repo.to_path_buf(),
            files,
            owner: self.owner(),
            stamp_mtime: None,
        };
        let mark = new_mark();
        let mut split = TrailerSplit::new(&mark, 4096);
        let mut messages = HeadTail::new(2048, 2048);
        let bollard::container::AttachContainerResults { mut output, mut input } = attached;
        let (stream, packer) = workspace::tar_stream(plan);
        let id = guard.id.clone();
        let ran = tokio::time::timeout(timeout, async {
            let read = async {
                while let Some(Ok(frame)) = output.next().await {
                    match frame {
                        bollard::container::LogOutput::StdOut { message } => messages.push(&split.push(&message)),
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
            let (fed, ()) = tokio::join!(feed_stdin(&self.docker, &id, &mut input, &mark, stream), read);
            fed
        })
        .await;
        let packed = packer.await;
        let word = split
            .trailer()
            .map(|t| String::from_utf8_lossy(t).trim().to_string())
            .unwrap_or_default();
        let failed = |why: String| {
            let said = messages.joined();
            let said = said.trim();
            ws_err(std::io::Error::other(if said.is_empty() {
                why
            } else {
                format!("{why}: {said}")
            }))
        };
        let err = match (ran, packed) {
            (Ok(Fed::All), _) if word == "ready" => {
                tracing::debug!(container = %guard.name, bytes, "sandbox: workspace streamed into the session");
                return Ok(Some(guard));
            }
            _ if word == "notar" => {
                tracing::info!(image = %self.ctx.settings.image, "sandbox: the image has no `tar`; uploading the workspace through the Docker API");
                self.no_tar.store(true, Ordering::Relaxed);
                guard.discard().await;
                return Ok(None);
            }
            (Ok(Fed::PackFailed), Ok(Err(source))) => ws_err(source),
            _ if word == "unpack" => {
                failed("unpacking the workspace in the FORGE session container (`tar -x`) failed".into())
            }
            (Err(_), _) => failed(format!(
                "streaming the workspace into the FORGE session container took longer than {} s",
                timeout.as_secs()
            )),
            _ => failed("the FORGE session container stopped while the workspace was streamed in".into()),
        };
        guard.discard().await;
        Err(err)
    }

    /// Creates a container whose stdin is open, attaches to it and starts it (GATE with the
    /// workspace streamed in). The stream is attached before the start, so no output is
    /// missed and no second read of the log is needed.
    async fn launch_attached(
        &self,
        role: &str,
        cmd: Vec<String>,
        repo: &Path,
    ) -> Result<(ContainerGuard, bollard::container::AttachContainerResults), SandboxError> {
        loop {
            let guard = match self.create_container_with(role, cmd.clone(), repo, true).await {
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
            let opts = AttachContainerOptionsBuilder::default()
                .stdin(true)
                .stdout(true)
                .stderr(true)
                .stream(true)
                .build();
            let attached = match self.docker.attach_container(&guard.id, Some(opts)).await {
                Ok(attached) => attached,
                Err(source) => {
                    let err = container_err("attach to", &guard.name, source);
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
        let Err(source) = self.docker.start_container(&guard.id, None).await else {
            return Ok(Some(guard));
        };
        let err = container_err("start", &guard.name, source);
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
    /// dropped, says so, and returns true (try again). Anything else: false.
    #[allow(
        clippy::print_stderr,
        reason = "issue 10 step 4 moves this note to the progress printer as an event"
    )]
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
            eprintln!(
                "pace: the daemon has no init binary for `--init` (Podman: install `catatonit`); running the sandbox without it"
            );
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
        let consequence = match option {
            Degradable::WorkspaceBind => "uploading the workspace instead",
            Degradable::CacheVolume => "running without the dependency cache",
            _ => "running the sandbox without it",
        };
        tracing::warn!(option = option.flag(), %message, "sandbox: option refused by the daemon's authorization plugin");
        eprintln!(
            "pace: the Docker daemon refused `{}` ({}); {consequence}",
            option.flag(),
            message.trim()
        );
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

    /// Creates a labelled, locked-down container (not started) and returns its guard.
    pub(super) async fn create_container(
        &self,
        role: &str,
        cmd: Vec<String>,
        repo: &Path,
    ) -> Result<ContainerGuard, SandboxError> {
        self.create_container_with(role, cmd, repo, false).await
    }

    /// [`Self::create_container`]; `stdin`: the container reads its stdin once, from an
    /// attached client (GATE's workspace archive).
    #[expect(
        clippy::too_many_lines,
        reason = "split with issue 10 step 4 (the sandbox after testcontainers)"
    )]
    async fn create_container_with(
        &self,
        role: &str,
        cmd: Vec<String>,
        repo: &Path,
        stdin: bool,
    ) -> Result<ContainerGuard, SandboxError> {
        let s = &self.ctx.settings;
        let degraded = self.degraded.lock().map(|d| d.clone()).unwrap_or_default();
        let on = |d: Degradable| !degraded.contains(&d);
        let name = format!("pace-{}-{role}-{:08x}", sanitize(&self.ctx.run_id), fastrand::u32(..));
        // The project and the container's own lifetime let a later run on a shared daemon
        // tell its project's leftovers from other projects' and still-running containers.
        // A GATE container lives at most `sandbox.timeout`; a FORGE session for a whole
        // attempt, which has no bound of its own.
        let lifetime = if role == "gate" || role == "setup" {
            s.timeout
        } else {
            SESSION_LIFETIME.max(s.timeout)
        };
        let labels = HashMap::from([
            (LABEL_RUN_ID.to_string(), self.ctx.run_id.clone()),
            (LABEL_DAY.to_string(), self.ctx.day.to_string()),
            (LABEL_CREATED.to_string(), unix_now().to_string()),
            (LABEL_PROJECT.to_string(), cache::project_id(repo)),
            (LABEL_TIMEOUT.to_string(), lifetime.as_secs().to_string()),
        ]);
        let bind = s.workspace == WorkspaceMode::Bind && on(Degradable::WorkspaceBind);
        let mut binds = Vec::new();
        // Upload mode: `/workspace` is an anonymous volume (removed with the container,
        // `remove(v=true)`). The root filesystem is deliberately not read-only: the archive
        // API refuses uploads into a read-only root unless the target is a volume, which
        // would break handing `/workspace` and `/cache` to a non-root user (an upload to
        // `/`), and test tools commonly write outside `/workspace` (`~/.cache`, `/tmp`).
        let mut mounts = Vec::new();
        let volumes = if bind {
            let abs = std::fs::canonicalize(repo).map_err(|source| io_err(repo, source))?;
            binds.push(format!("{}:{WORKSPACE}", abs.display()));
            mounts = hide_internal_dirs(&abs);
            None
        } else {
            Some(vec![WORKSPACE.to_string()])
        };
        let mut env: Vec<String> = self.ctx.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let cache_volume = self.cache_volume(repo, &degraded).await;
        if let Some(volume) = &cache_volume {
            binds.push(format!("{volume}:{}", cache::CACHE_MOUNT));
            env.extend(cache::env_for(&self.ctx.env));
            // After a set-up phase the toolchains are told to stay offline (FORGE, GATE),
            // unless `sandbox.network` gives them a network to use.
            if role != "setup" && s.network == NetworkMode::None && self.prepared().is_some() {
                env.extend(
                    super::setup::OFFLINE_ENV
                        .iter()
                        .filter(|(name, _)| !self.ctx.env.iter().any(|(n, _)| n == name))
                        .map(|(name, value)| format!("{name}={value}")),
                );
            }
        }
        // Behind the egress proxy: only its internal network, and the variables naming it.
        let egress = self.egress_route(role, repo).await?;
        if let Some(route) = &egress {
            env.extend(
                route
                    .env
                    .iter()
                    .filter(|(name, _)| !self.ctx.env.iter().any(|(n, _)| n == name))
                    .map(|(name, value)| format!("{name}={value}")),
            );
        }
        // The set-up phase has its own network; FORGE and GATE `sandbox.network`.
        let network = if let Some(route) = egress {
            route.network
        } else if role == "setup" {
            s.setup_network.clone()
        } else {
            match s.network {
                NetworkMode::None => "none",
                NetworkMode::Bridge => "bridge",
                NetworkMode::Host => "host",
            }
            .to_string()
        };
        let memory = (s.memory_bytes > 0 && on(Degradable::Memory)).then_some(s.memory_bytes);
        let host_config = HostConfig {
            network_mode: Some(network),
            memory,
            memory_swap: memory,
            nano_cpus: (s.cpus > 0.0 && on(Degradable::Cpus)).then_some((s.cpus * 1e9) as i64),
            pids_limit: (s.pids_limit > 0 && on(Degradable::PidsLimit)).then_some(s.pids_limit),
            cap_drop: on(Degradable::CapDrop).then(|| vec!["ALL".to_string()]),
            security_opt: on(Degradable::SecurityOpt).then(|| vec!["no-new-privileges:true".to_string()]),
            privileged: Some(false),
            init: on(Degradable::Init).then_some(true),
            binds: (!binds.is_empty()).then_some(binds),
            mounts: (!mounts.is_empty()).then_some(mounts),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(s.image.clone()),
            cmd: Some(cmd),
            working_dir: Some(WORKSPACE.to_string()),
            env: Some(env),
            labels: Some(labels),
            user: s.user.clone(),
            tty: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: stdin.then_some(true),
            open_stdin: stdin.then_some(true),
            stdin_once: stdin.then_some(true),
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
            bind,
            cache: cache_volume.is_some(),
            closing: self.closing.clone(),
        })
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

/// Makes directories at the root of the container (`workspace`, `cache/...`) belong to the
/// (non-root) user so the command can write there. Best effort: the archive API refuses it
/// on a read-only root filesystem, and then only the uploaded subdirectories are writable.
async fn own_dirs(docker: &Docker, id: &str, (uid, gid): (u64, u64), dirs: &[&str]) {
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
    let opts = UploadToContainerOptionsBuilder::default().path("/").build();
    if let Err(e) = docker
        .upload_to_container(id, Some(opts), bollard::body_full(data.into()))
        .await
    {
        tracing::debug!(error = %e, ?dirs, "sandbox: cannot hand directories to the sandbox user");
    }
}

/// A client for `endpoint` that has answered a ping, with the API version negotiated.
///
/// A daemon that is starting (GitLab's `DinD` service) gets [`CONNECT_WAIT`] to answer;
/// errors that waiting cannot fix (a missing socket, certificates) fail at once.
pub(super) async fn connect_daemon(endpoint: &Endpoint) -> Result<Docker, SandboxError> {
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
    Ok(docker)
}

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
pub(super) async fn ensure_image(docker: &Docker, pull: &ImagePull<'_>) -> Result<Option<String>, SandboxError> {
    let image = pull.image;
    let image_err = |message: String| SandboxError::Image {
        image: image.to_string(),
        message,
    };
    if pull.policy != PullPolicy::Always {
        match docker.inspect_image(image).await {
            Ok(info) => return Ok(info.config.and_then(|c| c.user).filter(|u| !u.is_empty())),
            Err(DockerError::DockerResponseServerError { status_code: 404, .. })
                if pull.policy == PullPolicy::Never =>
            {
                return Err(image_err(
                    "the daemon does not have it and `sandbox.pull` is `never`".to_string(),
                ));
            }
            Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(e) => return Err(image_err(e.to_string())),
        }
    }
    pull_image(docker, pull).await?;
    match docker.inspect_image(image).await {
        Ok(info) => Ok(info.config.and_then(|c| c.user).filter(|u| !u.is_empty())),
        Err(e) => Err(image_err(e.to_string())),
    }
}

/// Pulls the image with the registry's credentials, if any are found. A refusal for want
/// of credentials says which registry and which variable; the credential itself is never
/// part of a message or a log line.
async fn pull_image(docker: &Docker, pull: &ImagePull<'_>) -> Result<(), SandboxError> {
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
    let opts = CreateImageOptionsBuilder::default().from_image(image).build();
    let header = credential.as_ref().map(|c| c.docker_credentials(&registry));
    let mut stream = docker.create_image(Some(opts), None, header);
    let failed = |message: String| {
        if registry::is_auth_refusal(&message) {
            SandboxError::PullRefused(Box::new(registry::PullRefusal {
                image: image.to_string(),
                registry: registry.clone(),
                message,
                sent: credential.as_ref().map(|c| c.source.clone()),
                unreadable: unreadable.clone(),
            }))
        } else {
            SandboxError::Image {
                image: image.to_string(),
                message: format!("pull failed: {message}"),
            }
        }
    };
    while let Some(progress) = stream.next().await {
        let progress = progress.map_err(|e| failed(docker_message(&e)))?;
        if let Some(err) = progress.error_detail.and_then(|d| d.message) {
            return Err(failed(err));
        }
    }
    Ok(())
}

/// The daemon's own words for a failed request (bollard's display adds the status).
fn docker_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
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

pub(super) async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
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
    /// The repository is bind-mounted at `/workspace` (no upload, no sync).
    pub(super) bind: bool,
    /// The dependency cache volume is mounted at `/cache`.
    pub(super) cache: bool,
    /// Where a removal started by `drop` is registered (the sandbox's [`Closing`]).
    closing: Closing,
}

impl ContainerGuard {
    /// Removes the container whatever `sandbox.keep` says (a failed attempt to start it).
    pub(super) async fn discard(mut self) {
        self.done = true;
        if let Err(e) = remove(&self.docker, &self.id).await {
            tracing::warn!(container = %self.name, error = %e, "sandbox: cannot remove the container");
        }
    }

    #[allow(
        clippy::print_stderr,
        reason = "issue 10 step 4 moves this note to the progress printer as an event"
    )]
    pub(super) async fn remove(mut self) -> Result<(), SandboxError> {
        self.done = true;
        if self.keep {
            tracing::warn!(container = %self.name, "sandbox: keeping the container (`sandbox.keep: true`); remove it with `docker rm -fv {}`", self.name);
            eprintln!(
                "pace: kept sandbox container `{}` (sandbox.keep); remove it with `docker rm -fv {}`",
                self.name, self.name
            );
            return Ok(());
        }
        remove(&self.docker, &self.id)
            .await
            .map_err(|source| container_err("remove", &self.name, source))
    }
}

impl Drop for ContainerGuard {
    #[allow(
        clippy::print_stderr,
        reason = "issue 10 step 4 moves this note to the progress printer as an event"
    )]
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.keep {
            eprintln!(
                "pace: kept sandbox container `{}` (sandbox.keep); remove it with `docker rm -fv {}`",
                self.name, self.name
            );
            return;
        }
        // Dropped mid-operation (error, cancellation): removed in the background, and
        // registered so that `Sandbox::settle` waits for it before pace exits.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            let id = self.id.clone();
            let task = handle.spawn(async move {
                if let Err(e) = remove(&docker, &id).await {
                    tracing::warn!(container = %id, error = %e, "sandbox: cannot remove the container");
                }
                Ok(())
            });
            match self.closing.lock() {
                Ok(mut closing) => closing.push(task),
                // Never happens (no code panics while holding the lock); the container
                // still carries this run's label for `remove_run_containers`.
                Err(_) => tracing::warn!(container = %self.name, "sandbox: cannot track a container's removal"),
            }
        } else {
            tracing::warn!(container = %self.name, "sandbox: container left behind (no runtime to remove it)");
        }
    }
}

/// Writes the mark line and the workspace archive to a container's stdin, then ends it
/// (the container reads it once: `StdinOnce`). A file that cannot be packed, or an
/// archive that cannot be written whole, kills the container at once: nothing may run on
/// part of the workspace.
async fn feed_stdin(
    docker: &Docker,
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
        kill(docker, id).await;
    }
    let _ = input.shutdown().await;
    fed
}

/// GATE's stdout in upload mode: the suite's output with the wrapper's two reports taken
/// out. The first report (`unpacked`, `unpack` or `notar`) is printed before the suite
/// starts, so a suite that reads the mark out of the wrapper's memory cannot forge it; what
/// follows it is output again, up to the next mark (the listing: the suite shares this
/// stdout, so that stays untrusted).
struct GateTrailer {
    first: TrailerSplit,
    word: Option<String>,
    listing: TrailerSplit,
}

impl GateTrailer {
    fn new(mark: &str) -> Self {
        Self {
            first: TrailerSplit::new(mark, LISTING_CAP),
            word: None,
            listing: TrailerSplit::new(mark, LISTING_CAP),
        }
    }

    /// The part of `chunk` (stdout) that belongs to the output.
    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.word.is_some() {
            return self.listing.push(chunk);
        }
        let mut own = self.first.push(chunk);
        if let Some(trailer) = self.first.trailer()
            && let Some(end) = trailer.iter().position(|b| *b == b'\n')
        {
            self.word = Some(String::from_utf8_lossy(&trailer[..end]).trim().to_string());
            let rest = trailer[end + 1..].to_vec();
            own.extend(self.listing.push(&rest));
        }
        own
    }

    /// Held-back bytes that turned out not to be the mark (the stream has ended).
    fn finish(&mut self) -> Vec<u8> {
        match self.word {
            Some(_) => self.listing.finish(),
            None => self.first.finish(),
        }
    }

    /// The wrapper's first report; empty when it printed none (killed, no stdin).
    fn word(&self) -> &str {
        self.word.as_deref().unwrap_or_default()
    }

    /// What followed the second mark (`listing` and its lines).
    fn listing(&self) -> Option<&[u8]> {
        self.listing.trailer()
    }

    fn overflowed(&self) -> bool {
        self.listing.overflowed()
    }
}

/// A fresh mark for a wrapper's trailer: random, and given to the wrapper on its stdin only.
fn new_mark() -> String {
    format!("PACE-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// How far the workspace archive got into GATE's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fed {
    All,
    /// A file could not be packed (the packer names it).
    PackFailed,
    /// The container stopped reading its stdin.
    WriteFailed,
}

/// `gate/output.log` as the suite's output arrives: redacted line by line, within
/// `sandbox.log_limit`, and seen by the model's head/tail view, the network-failure scan
/// and the caller's sink (the terminal of `pace gate`).
struct GateLog<'a> {
    path: &'a Path,
    file: tokio::io::BufWriter<tokio::fs::File>,
    cap: LogCap,
    view: HeadTail,
    scan: NetworkFailureScan,
    lines: RedactLines,
    on_output: Option<super::OutputSink<'a>>,
}

impl<'a> GateLog<'a> {
    fn open(req: &RunRequest<'a>, redactor: crate::redact::Redactor, limit: u64) -> Result<Self, SandboxError> {
        let file = create_log_file(req.repo, req.output_log).map_err(|source| io_err(req.output_log, source))?;
        Ok(Self {
            path: req.output_log,
            file: tokio::io::BufWriter::new(tokio::fs::File::from_std(file)),
            // The file keeps the head and the tail; the views and the terminal see every byte.
            cap: LogCap::new(limit),
            view: HeadTail::new(PROMPT_HEAD_BYTES, PROMPT_TAIL_BYTES),
            scan: NetworkFailureScan::default(),
            // A secret passed in through `sandbox.env` and printed, even encoded, stays out
            // of the log and the terminal.
            lines: RedactLines::new(redactor),
            on_output: req.on_output,
        })
    }

    async fn push(&mut self, raw: &[u8]) -> Result<(), SandboxError> {
        if raw.is_empty() {
            return Ok(());
        }
        let chunk = self.lines.push(raw);
        self.write(&chunk).await?;
        self.scan.push(&chunk);
        if let Some(cb) = self.on_output {
            cb(&chunk);
        }
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), SandboxError> {
        let capped = self.cap.push(chunk);
        self.file
            .write_all(capped)
            .await
            .map_err(|source| io_err(self.path, source))?;
        self.view.push(chunk);
        Ok(())
    }

    /// The unfinished last line, then a note that the command was killed.
    async fn timed_out(&mut self, timeout: Duration) -> Result<(), SandboxError> {
        let note = format!(
            "\n[pace: the command timed out after {} s and was killed]\n",
            timeout.as_secs()
        );
        let note = String::from_utf8_lossy(&self.lines.finish()).into_owned() + &note;
        self.write(note.as_bytes()).await
    }

    /// Writes what is left (the last line, the kept tail after the limit's marker).
    async fn finish(mut self) -> Result<(HeadTail, NetworkFailureScan), SandboxError> {
        let rest = self.lines.finish();
        self.write(&rest).await?;
        if let Some(cb) = self.on_output {
            cb(&rest);
        }
        let (marker, (tail_a, tail_b)) = self.cap.ending();
        if marker.is_some() {
            tracing::info!(
                left_out = self.cap.left_out(),
                "sandbox: output.log reached `sandbox.log_limit`; its middle was left out"
            );
        }
        for part in [marker.as_deref().unwrap_or_default().as_bytes(), tail_a, tail_b] {
            self.file
                .write_all(part)
                .await
                .map_err(|source| io_err(self.path, source))?;
        }
        self.file.flush().await.map_err(|source| io_err(self.path, source))?;
        Ok((self.view, self.scan))
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

/// Bind mode: `.git` and `.pace` of the checkout are covered inside the container, so the
/// suite and FORGE's commands can neither read the remote's credentials in `.git/config`
/// nor write git's config, hooks or pace's artifacts. A directory gets an empty read-only
/// tmpfs over it; a file (`.git` of a worktree or submodule) `/dev/null`, read-only.
fn hide_internal_dirs(repo: &Path) -> Vec<bollard::models::Mount> {
    use bollard::models::{Mount, MountTmpfsOptions, MountType};
    boundary::INTERNAL_DIRS
        .iter()
        .filter_map(|name| {
            let meta = std::fs::symlink_metadata(repo.join(name)).ok()?;
            let target = Some(format!("{WORKSPACE}/{name}"));
            Some(if meta.is_dir() {
                Mount {
                    target,
                    typ: Some(MountType::TMPFS),
                    read_only: Some(true),
                    tmpfs_options: Some(MountTmpfsOptions {
                        size_bytes: Some(4096),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            } else {
                Mount {
                    target,
                    source: Some("/dev/null".into()),
                    typ: Some(MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                }
            })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::GateTrailer;

    #[test]
    fn gate_trailer_trusts_only_the_report_before_the_suite() {
        let mark = "PACE-0123456789abcdef0123456789abcdef";
        let stream = format!(
            "tar says hi\n{mark} unpacked\nsuite out\n{mark} unpack\n{mark} notar\nmore\n{mark} listing\n12 /workspace/a\n"
        );
        for size in [1, 7, 40, stream.len()] {
            let mut split = GateTrailer::new(mark);
            let mut log = Vec::new();
            for chunk in stream.as_bytes().chunks(size) {
                log.extend(split.push(chunk));
            }
            log.extend(split.finish());
            assert_eq!(split.word(), "unpacked", "chunks of {size}");
            assert_eq!(
                String::from_utf8_lossy(&log),
                "tar says hi\nsuite out\n",
                "chunks of {size}"
            );
            // The suite's forged reports end up in the (checked) listing, never as the word.
            let listing = String::from_utf8_lossy(split.listing().unwrap_or_default()).into_owned();
            assert!(listing.starts_with(" unpack\n"), "chunks of {size}: {listing:?}");
            assert!(listing.ends_with("listing\n12 /workspace/a\n"), "chunks of {size}");
        }
        let mut split = GateTrailer::new(mark);
        assert_eq!(split.push(format!("oops\n{mark} unpack\n").as_bytes()), b"oops\n");
        assert_eq!(split.word(), "unpack");
    }
}
