//! GATE's run: one command to completion in a fresh container (the suite, `pace gate`, the
//! set-up phase), its output logged within bounds, and the result files collected back
//! through the return-path policy.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bollard::container::{AttachContainerResults, LogOutput};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::collect;
use super::container::{Sandbox, io_err};
use super::docker::container_err;
use super::guard::ContainerGuard;
use super::output::{HeadTail, LogCap, NetworkFailureScan, RedactLines, TrailerSplit, create_log_file, network_hint};
use super::spec::{Role, WORKSPACE};
use super::stdin::{Fed, feed_stdin, new_mark};
use super::workspace::{self, Manifest, PackPlan};
use super::writeback;
use super::{PROMPT_HEAD_BYTES, PROMPT_TAIL_BYTES, RunOutcome, RunRequest, SandboxError};
use crate::boundary::{self, Origin, Refused, SyncBudget};
use crate::config::settings::{NetworkMode, WorkspaceMode};

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
/// The largest file listing read back from GATE's container (about 100,000 paths).
const LISTING_CAP: usize = 8 * 1024 * 1024;

/// How a command's container ended.
#[derive(Debug, Clone, Copy)]
struct Ran {
    exit_code: i64,
    timed_out: bool,
    oom_killed: bool,
    started: Instant,
}

/// The output's views once the log is complete.
type Seen = (HeadTail, NetworkFailureScan);

impl Sandbox {
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
        self.run_uploaded(role, &req, started, bind_wanted).await
    }

    /// The workspace uploaded through the archive API (or bind-mounted): the suite runs as
    /// given; afterwards one `find` lists the workspace so that only the result files are
    /// downloaded (not the whole workspace). The user's command is a separate argument:
    /// no quoting is involved.
    async fn run_uploaded(
        &self,
        role: Role,
        req: &RunRequest<'_>,
        started: Instant,
        bind_wanted: bool,
    ) -> Result<RunOutcome, SandboxError> {
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
        let (guard, _) = self.launch(role, cmd, req.repo).await?;
        let bind = guard.bind;
        let result = self.run_in(role, &guard, req, started).await;
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
        let list_results = role == Role::Gate && self.collect_globs().is_some();
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            UNPACK_WRAPPER.to_string(),
            "pace-gate".to_string(),
            req.command.clone(),
            if list_results { "1" } else { "0" }.to_string(),
            tar_options.to_string(),
        ];
        let (guard, attached) = self.launch_attached(role, cmd, req.repo).await?;
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
        if self.deferred_removals.load(Ordering::Relaxed) {
            guard.remove_later();
            return result;
        }
        let removed = guard.remove().await;
        let outcome = result?;
        removed?;
        Ok(outcome)
    }

    /// Feeds the mark and the workspace archive to the wrapper's stdin while its output is
    /// logged, then collects the result files its listing names.
    async fn run_attached(
        &self,
        role: Role,
        guard: &ContainerGuard,
        req: &RunRequest<'_>,
        started: Instant,
        attached: AttachContainerResults,
        plan: PackPlan,
    ) -> Result<Option<RunOutcome>, SandboxError> {
        let id = guard.id.as_str();
        let mut log = GateLog::open(req, self.ctx.redactor.clone(), self.ctx.settings.log_limit)?;
        let mark = new_mark();
        let mut split = GateTrailer::new(&mark);
        let (stream, packer) = workspace::tar_stream(plan);
        let streamed = self
            .stream_attached(id, attached, &mark, stream, &mut log, &mut split)
            .await;
        let packed = packer.await;
        let (exit_code, timed_out, fed) = match streamed {
            Some(result) => {
                let (exit, fed) = result?;
                (exit, false, fed)
            }
            None => {
                self.kill_timed_out(id, &mut log).await?;
                (137, true, Fed::All)
            }
        };
        let seen = log.finish().await?;
        if split.word() == "notar" {
            return Ok(None);
        }
        unpack_result(fed, packed, split.word(), req)?;
        let oom_killed = self.oom_killed(id, exit_code, timed_out).await;
        let mut refused = Vec::new();
        let collected = if timed_out {
            // A killed suite wrote no listing and rarely complete reports.
            Vec::new()
        } else {
            self.collect_after_unpack(role, id, req, &split, &mut refused).await
        };
        let ran = Ran {
            exit_code,
            timed_out,
            oom_killed,
            started,
        };
        Ok(Some(self.outcome(role, ran, &seen, collected, refused)))
    }

    /// Streams the archive in and the output out until the container exits; `None` when
    /// `sandbox.timeout` passed first.
    async fn stream_attached(
        &self,
        id: &str,
        attached: AttachContainerResults,
        mark: &str,
        archive: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>>,
        log: &mut GateLog<'_>,
        split: &mut GateTrailer,
    ) -> Option<Result<(i64, Fed), SandboxError>> {
        let AttachContainerResults { mut output, mut input } = attached;
        let feed = feed_stdin(&self.docker, id, &mut input, mark, archive);
        let read = async {
            while let Some(frame) = output.next().await {
                match frame.map_err(|source| container_err("read the output of", id, source))? {
                    LogOutput::StdOut { message } => {
                        let own = split.push(&message);
                        log.push(&own).await?;
                    }
                    other => log.push(&other.into_bytes()).await?,
                }
            }
            let held = split.finish();
            log.push(&held).await
        };
        let all = async {
            let (read, fed, exit) = tokio::join!(read, feed, self.docker.wait(id));
            read?;
            Ok::<_, SandboxError>((exit?, fed))
        };
        tokio::time::timeout(self.ctx.settings.timeout, all).await.ok()
    }

    /// `sandbox.timeout` passed: the container is killed and the log says so.
    async fn kill_timed_out(&self, id: &str, log: &mut GateLog<'_>) -> Result<(), SandboxError> {
        let timeout = self.ctx.settings.timeout;
        tracing::warn!(
            container = id,
            ?timeout,
            "sandbox: command timed out; killing the container"
        );
        self.docker.kill(id).await;
        log.timed_out(timeout).await
    }

    /// The result files after a streamed run: those of the wrapper's listing, perhaps
    /// behind lines the suite printed after a mark of its own (every line is checked, and
    /// those that are no `size path` are dropped).
    async fn collect_after_unpack(
        &self,
        role: Role,
        id: &str,
        req: &RunRequest<'_>,
        split: &GateTrailer,
        refused: &mut Vec<Refused>,
    ) -> Vec<PathBuf> {
        let listing = split.listing().map(|t| String::from_utf8_lossy(t).into_owned());
        match listing.as_deref() {
            Some(_) if split.overflowed() => {
                tracing::warn!("sandbox: the file listing is too large; result files are not collected");
                Vec::new()
            }
            Some(listing) => self.collect_listed(id, listing, req.collect_into, refused).await,
            // No listing although one was asked for (the wrapper was killed, no `find`):
            // scan a download of the whole workspace instead.
            None => match self.collect_globs().filter(|_| role == Role::Gate) {
                Some(set) => self.collect_by_full_download(id, req.collect_into, set).await,
                None => Vec::new(),
            },
        }
    }

    async fn run_in(
        &self,
        role: Role,
        guard: &ContainerGuard,
        req: &RunRequest<'_>,
        started: Instant,
    ) -> Result<RunOutcome, SandboxError> {
        let id = guard.id.as_str();
        let mut log = GateLog::open(req, self.ctx.redactor.clone(), self.ctx.settings.log_limit)?;
        let mut raw_seen: u64 = 0;
        let streamed = tokio::time::timeout(self.ctx.settings.timeout, async {
            let mut logs = std::pin::pin!(self.docker.logs(id, true));
            while let Some(chunk) = logs.next().await {
                let raw = chunk?;
                raw_seen += raw.len() as u64;
                log.push(&raw).await?;
            }
            self.docker.wait(id).await
        })
        .await;
        let (exit_code, timed_out) = match streamed {
            Ok(result) => (result?, false),
            Err(_elapsed) => {
                self.kill_timed_out(id, &mut log).await?;
                (137, true)
            }
        };
        if !timed_out {
            self.catch_up_log(id, raw_seen, &mut log).await?;
        }
        let seen = log.finish().await?;
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
        let ran = Ran {
            exit_code,
            timed_out,
            oom_killed,
            started,
        };
        Ok(self.outcome(role, ran, &seen, collected, refused))
    }

    /// A follow stream can end before the daemon has delivered the last of a large output
    /// (seen with the json-file logger under load): reads the log once more and appends
    /// whatever the stream missed after its first `seen` bytes, so `output.log` is complete.
    async fn catch_up_log(&self, id: &str, seen: u64, log: &mut GateLog<'_>) -> Result<(), SandboxError> {
        let mut again = std::pin::pin!(self.docker.logs(id, false));
        let mut skipped: u64 = 0;
        while let Some(chunk) = again.next().await {
            let Ok(bytes) = chunk else { break };
            let len = bytes.len() as u64;
            if skipped + len <= seen {
                skipped += len;
                continue;
            }
            let start = usize::try_from(seen.saturating_sub(skipped)).unwrap_or(0);
            skipped = seen;
            log.push(&bytes[start..]).await?;
        }
        Ok(())
    }

    /// The kernel's OOM killer sends SIGKILL: only an exit of 137 can be one (this saves
    /// an API call on every other run).
    async fn oom_killed(&self, id: &str, exit_code: i64, timed_out: bool) -> bool {
        if exit_code != 137 || timed_out {
            return false;
        }
        match self.docker.state(id).await {
            Ok(state) => state.and_then(|s| s.oom_killed).unwrap_or(false),
            Err(e) => {
                tracing::warn!(error = %e, "sandbox: cannot inspect the finished container");
                false
            }
        }
    }

    fn outcome(
        &self,
        role: Role,
        ran: Ran,
        (view, scan): &Seen,
        collected: Vec<PathBuf>,
        refused: Vec<Refused>,
    ) -> RunOutcome {
        let (head, tail) = view.parts();
        // The set-up is meant to reach the network: a failed access there is the network's
        // fault whatever `sandbox.setup_network` is (a bridge without NAT, a proxy).
        let offline = match role {
            Role::Gate | Role::Forge => self.ctx.settings.network == NetworkMode::None,
            Role::Setup => true,
        };
        let network_hint = (offline && ran.exit_code != 0 && scan.found()).then(network_hint);
        RunOutcome {
            exit_code: ran.exit_code,
            timed_out: ran.timed_out,
            oom_killed: ran.oom_killed,
            duration: ran.started.elapsed(),
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
        let cut = |rel: &Path| {
            Refused::new(
                rel.to_string_lossy().into_owned(),
                &boundary::Refusal::SyncBytes(limits.max_sync_bytes),
                Origin::Gate,
            )
        };
        let mut written = Vec::new();
        let mut bytes_written: u64 = 0;
        for download in collect::plan(&wanted) {
            let room = collect::Room {
                file_cap: limits.max_file_bytes,
                sync_left: limits.max_sync_bytes.saturating_sub(bytes_written),
            };
            let out = match download {
                collect::Download::File(rel) => self.download_into(id, &rel, dest, room).await,
                collect::Download::Dir(dir, files) => self.download_wanted(id, &dir, files, dest, room).await,
            };
            bytes_written += out.bytes;
            written.extend(out.written);
            refused.extend(out.cut.iter().map(|rel| cut(rel)));
        }
        written
    }

    /// One small file of a stopped container, in memory (the file listing). The suite can
    /// put anything at that path (a directory, a huge sparse file): only a regular file of
    /// at most [`LISTING_CAP`] bytes is read, and the download stops beyond that.
    async fn download_file(&self, id: &str, path: &Path) -> Option<Vec<u8>> {
        match super::docker::small_file(self.docker.download(id, &path.to_string_lossy()), LISTING_CAP).await {
            Ok(content) => Some(content),
            Err(super::docker::Unread::TooLarge) => {
                tracing::warn!(path = %path.display(), "sandbox: the file listing is too large; result files are not collected");
                None
            }
            Err(super::docker::Unread::NotAFile) => None,
        }
    }

    /// Downloads `/workspace/<rel>` into `dest/<rel>`, streamed, within `room`; cut (and
    /// listed as cut) when it is larger than what is left of the sync's bytes.
    async fn download_into(&self, id: &str, rel: &Path, dest: &Path, room: collect::Room) -> collect::Extracted {
        let cap = room.file_cap.min(room.sync_left);
        let path = format!("{WORKSPACE}/{}", rel.to_string_lossy());
        let reader = self.archive_reader(id, &path);
        let (dest, owned) = (dest.to_path_buf(), rel.to_path_buf());
        let extracted =
            tokio::task::spawn_blocking(move || workspace::extract_single(reader, &dest, &owned, cap)).await;
        let mut out = collect::Extracted::default();
        match extracted.map_err(std::io::Error::other).and_then(|r| r) {
            Ok(Some(written)) => {
                out.bytes = std::fs::symlink_metadata(&written).map_or(cap, |m| m.len());
                out.written.push(written);
            }
            // Cut at what was left of the sync budget (or missing: either way not here).
            Ok(None) if cap < room.file_cap => out.cut.push(rel.to_path_buf()),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, path, "sandbox: collecting a result file failed"),
        }
        out
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
        let reader = self.archive_reader(id, &path);
        let (dest, dir) = (dest.to_path_buf(), dir.to_path_buf());
        let wanted: std::collections::HashSet<PathBuf> = files.into_iter().collect();
        let extracted =
            tokio::task::spawn_blocking(move || collect::extract_wanted(reader, &dest, &dir, &wanted, room)).await;
        extracted
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, path, "sandbox: collecting result files failed");
                collect::Extracted::default()
            })
    }

    /// The archive of `path` in container `id` as a blocking reader (for the extractors,
    /// which run on a blocking thread).
    fn archive_reader(&self, id: &str, path: &str) -> impl std::io::Read + Send + 'static {
        tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(self.docker.download(id, path)))
    }

    async fn collect_by_full_download(&self, id: &str, dest: &Path, set: globset::GlobSet) -> Vec<PathBuf> {
        let reader = self.archive_reader(id, WORKSPACE);
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
}

/// Whether the workspace went in whole: a packing error, a failed `tar -x` or a container
/// that stopped reading its stdin fails the run (nothing may run on part of the workspace).
fn unpack_result(
    fed: Fed,
    packed: Result<std::io::Result<Manifest>, tokio::task::JoinError>,
    word: &str,
    req: &RunRequest<'_>,
) -> Result<(), SandboxError> {
    let unpack_failed = |why: &str| SandboxError::Workspace {
        path: req.repo.to_path_buf(),
        source: std::io::Error::other(format!(
            "{why}; the container's messages are in {}",
            req.output_log.display()
        )),
    };
    match (fed, packed) {
        (Fed::PackFailed, Ok(Err(source))) => Err(SandboxError::Workspace {
            path: req.repo.to_path_buf(),
            source,
        }),
        (Fed::PackFailed, _) => Err(unpack_failed("packing the workspace failed")),
        // The wrapper exits right after a failed unpack: the rest of the archive may not
        // have gone in, and tar's own message says more.
        _ if word == "unpack" => Err(unpack_failed(
            "unpacking the workspace in the sandbox (`tar -x`) failed",
        )),
        (Fed::WriteFailed, _) => Err(unpack_failed(
            "the workspace could not be streamed into the sandbox container (it stopped reading)",
        )),
        (Fed::All, _) => Ok(()),
    }
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
    async fn finish(mut self) -> Result<Seen, SandboxError> {
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
