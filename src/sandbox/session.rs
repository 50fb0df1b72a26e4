//! FORGE sessions: one long-lived container per attempt, `docker exec` per command, and an
//! incremental two-way sync of the workspace (only what changed travels).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::DownloadFromContainerOptionsBuilder;
use futures_util::{StreamExt, TryStreamExt};

use super::container::{self, ContainerGuard, Sandbox, WORKSPACE, container_err, unix_now};
use super::output::HeadTail;
use super::workspace::{self, Manifest, PackPlan, WriteBack};
use super::{EXEC_OUTPUT_CAP, ExecOutcome, SandboxError};

/// Lists the workspace after a command: files newer than the stamp, a separator, then
/// every file (both without `.git` and `.pace`). Plain POSIX `find`, so busybox works.
const LISTING_SCRIPT: &str = "cd /workspace || exit 97; \
     find . \\( -path ./.git -o -path ./.pace \\) -prune -o \\( -type f -o -type l \\) -newer ./.pace/stamp -print || exit 98; \
     echo ---; \
     find . \\( -path ./.git -o -path ./.pace \\) -prune -o \\( -type f -o -type l \\) -print || exit 98";

/// How many paths one `rm` exec removes.
const RM_BATCH: usize = 200;

pub struct ExecSession {
    docker: Docker,
    guard: Option<ContainerGuard>,
    repo: PathBuf,
    bind: bool,
    owner: Option<(u64, u64)>,
    /// What the container's `/workspace` holds, as last synced (repository-relative).
    manifest: Manifest,
    /// Daemon clock minus host clock, in seconds.
    clock_skew: i64,
    /// Processes of the idle container (init and its `sleep`): more after a command means
    /// it left something running.
    idle_processes: usize,
}

pub(super) async fn start(sandbox: &Sandbox, repo: &Path) -> Result<ExecSession, SandboxError> {
    let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), "sleep 2147483647".to_string()];
    let (guard, uploaded) = sandbox.launch("forge", cmd, repo).await?;
    // Bind mode: the container edits the repository in place; nothing to sync.
    let bind = guard.bind;
    let manifest = match uploaded {
        Some(m) => m,
        None => {
            let files = workspace::list_files(repo).map_err(|source| ws_err(repo, source))?;
            workspace::scan(repo, &files).map_err(|source| ws_err(repo, source))?
        }
    };
    let clock_skew = match sandbox.docker.info().await.ok().and_then(|i| i.system_time) {
        Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
            .map(|d| d.timestamp() - unix_now() as i64)
            .unwrap_or(0),
        None => 0,
    };
    tracing::debug!(container = %guard.name, files = manifest.len(), clock_skew, "sandbox: FORGE session started");
    let idle_processes = process_count(&sandbox.docker, &guard.id).await.unwrap_or(usize::MAX);
    Ok(ExecSession {
        docker: sandbox.docker.clone(),
        owner: sandbox.owner(),
        guard: Some(guard),
        repo: repo.to_path_buf(),
        bind,
        manifest,
        clock_skew,
        idle_processes,
    })
}

async fn process_count(docker: &Docker, id: &str) -> Option<usize> {
    let top = docker.top_processes(id, None).await.ok()?;
    Some(top.processes.map_or(0, |p| p.len()))
}

fn ws_err(repo: &Path, source: std::io::Error) -> SandboxError {
    SandboxError::Workspace {
        path: repo.to_path_buf(),
        source,
    }
}

impl ExecSession {
    fn id(&self) -> &str {
        self.guard.as_ref().map_or("", |g| g.id.as_str())
    }

    /// The container's name (for logs and `sandbox.keep`).
    pub fn container_name(&self) -> &str {
        self.guard.as_ref().map_or("", |g| g.name.as_str())
    }

    /// Runs `/bin/sh -c command` in `/workspace` after syncing the repository files that
    /// changed since the last call, then copies changed files back into the repository.
    pub async fn exec(&mut self, command: &str, timeout: Duration) -> Result<ExecOutcome, SandboxError> {
        if self.bind {
            return self.exec_bind(command, timeout).await;
        }
        self.sync_in().await?;

        let mut view = HeadTail::new(EXEC_OUTPUT_CAP / 2, EXEC_OUTPUT_CAP / 2);
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()];
        let ran = tokio::time::timeout(timeout, run_exec(&self.docker, self.id(), cmd, &mut |c| view.push(c))).await;
        let (exit_code, timed_out) = match ran {
            Ok(result) => (result?, false),
            Err(_) => {
                self.restart().await?;
                view.push(
                    format!(
                        "\n[pace: the command timed out after {} s and was killed]\n",
                        timeout.as_secs()
                    )
                    .as_bytes(),
                );
                (137, true)
            }
        };
        // A command that left processes behind (a server, a fork bomb holding every pid)
        // would starve the next one: each `run` is self-contained, so they are stopped.
        if !timed_out
            && process_count(&self.docker, self.id())
                .await
                .is_some_and(|n| n > self.idle_processes)
        {
            tracing::debug!(
                container = self.id(),
                "sandbox: the command left processes running; restarting"
            );
            self.restart().await?;
            view.push(b"\n[pace: processes the command left running were stopped]\n");
        }
        let changed = self.sync_out().await?;
        Ok(ExecOutcome {
            exit_code,
            timed_out,
            output: view.joined(),
            changed,
        })
    }

    /// Bind mode: the container writes the repository directly; report what changed.
    async fn exec_bind(&mut self, command: &str, timeout: Duration) -> Result<ExecOutcome, SandboxError> {
        let mut view = HeadTail::new(EXEC_OUTPUT_CAP / 2, EXEC_OUTPUT_CAP / 2);
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()];
        let before = self.scan_repo()?;
        let ran = tokio::time::timeout(timeout, run_exec(&self.docker, self.id(), cmd, &mut |c| view.push(c))).await;
        let (exit_code, timed_out) = match ran {
            Ok(result) => (result?, false),
            Err(_) => {
                self.restart().await?;
                (137, true)
            }
        };
        let after = self.scan_repo()?;
        let mut changed: BTreeSet<PathBuf> = after
            .iter()
            .filter(|(p, s)| before.get(*p) != Some(*s))
            .map(|(p, _)| p.clone())
            .collect();
        changed.extend(before.keys().filter(|p| !after.contains_key(*p)).cloned());
        self.manifest = after;
        Ok(ExecOutcome {
            exit_code,
            timed_out,
            output: view.joined(),
            changed: changed.into_iter().collect(),
        })
    }

    fn scan_repo(&self) -> Result<Manifest, SandboxError> {
        let files = workspace::list_files(&self.repo).map_err(|source| ws_err(&self.repo, source))?;
        workspace::scan(&self.repo, &files).map_err(|source| ws_err(&self.repo, source))
    }

    /// Uploads what changed in the repository since the last sync (plus a fresh stamp) and
    /// deletes what disappeared.
    async fn sync_in(&mut self) -> Result<(), SandboxError> {
        let current = self.scan_repo()?;
        let changed: Vec<PathBuf> = current
            .iter()
            .filter(|(p, s)| self.manifest.get(*p) != Some(*s))
            .map(|(p, _)| p.clone())
            .collect();
        let removed: Vec<PathBuf> = self
            .manifest
            .keys()
            .filter(|p| !current.contains_key(*p))
            .cloned()
            .collect();

        // Backdated so that busybox `find -newer` (whole seconds) sees writes made in the
        // same second; false positives are filtered by comparing contents.
        let stamp = (unix_now() as i64 + self.clock_skew - 2).max(0) as u64;
        let plan = PackPlan {
            repo: self.repo.clone(),
            files: changed.clone(),
            owner: self.owner,
            stamp_mtime: Some(stamp),
        };
        let packed = container::upload(&self.docker, self.id(), plan).await?;
        for p in &changed {
            match packed.get(p) {
                Some(s) => {
                    self.manifest.insert(p.clone(), s.clone());
                }
                None => {
                    self.manifest.remove(p);
                }
            }
        }
        if !removed.is_empty() {
            for batch in removed.chunks(RM_BATCH) {
                let mut cmd = vec!["rm".to_string(), "-f".to_string(), "--".to_string()];
                cmd.extend(batch.iter().map(|p| p.to_string_lossy().into_owned()));
                let code = run_exec(&self.docker, self.id(), cmd, &mut |_| {}).await?;
                if code != 0 {
                    tracing::warn!(code, "sandbox: removing deleted files from the container failed");
                }
            }
            for p in &removed {
                self.manifest.remove(p);
            }
            tracing::debug!(
                count = removed.len(),
                "sandbox: deleted files removed from the container"
            );
        }
        if !changed.is_empty() {
            tracing::debug!(count = changed.len(), "sandbox: changed files uploaded");
        }
        Ok(())
    }

    /// Finds what the command changed in `/workspace` and brings it into the repository.
    async fn sync_out(&mut self) -> Result<Vec<PathBuf>, SandboxError> {
        let mut listing = Vec::new();
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), LISTING_SCRIPT.to_string()];
        let code = run_exec(&self.docker, self.id(), cmd, &mut |c| listing.extend_from_slice(c)).await?;
        if code != 0 {
            return Err(ws_err(
                &self.repo,
                std::io::Error::other(format!(
                    "listing /workspace in the container failed (exit {code}): {}",
                    String::from_utf8_lossy(&listing).trim()
                )),
            ));
        }
        let text = String::from_utf8_lossy(&listing);
        let mut newer = BTreeSet::new();
        let mut all = BTreeSet::new();
        let mut after_separator = false;
        for line in text.lines() {
            if line == "---" {
                after_separator = true;
                continue;
            }
            let Some(rel) = line.strip_prefix("./") else {
                continue;
            };
            let rel = PathBuf::from(rel);
            if !workspace::is_safe_relative(&rel) || workspace::is_excluded(&rel) {
                continue;
            }
            if after_separator {
                all.insert(rel);
            } else {
                newer.insert(rel);
            }
        }
        if !after_separator {
            return Err(ws_err(
                &self.repo,
                std::io::Error::other("listing /workspace in the container was cut short"),
            ));
        }

        // New paths must not be ignored by git; known ones were uploaded, so they are not.
        let unknown: Vec<PathBuf> = all
            .iter()
            .filter(|p| !self.manifest.contains_key(*p))
            .cloned()
            .collect();
        let ignored = workspace::ignored(&self.repo, &unknown).map_err(|source| ws_err(&self.repo, source))?;
        let mut candidates: BTreeSet<PathBuf> = newer.into_iter().filter(|p| all.contains(p)).collect();
        candidates.extend(unknown.into_iter().filter(|p| !ignored.contains(p)));
        candidates.retain(|p| !ignored.contains(p));

        let mut changed = Vec::new();
        for rel in candidates {
            match self.download_back(&rel).await {
                Ok(WriteBack::Written) => changed.push(rel.clone()),
                Ok(WriteBack::Unchanged | WriteBack::Skipped) => {}
                Err(e) => {
                    tracing::warn!(path = %rel.display(), error = %e, "sandbox: cannot copy a changed file back");
                    continue;
                }
            }
            match workspace::stamp(&self.repo, &rel) {
                Ok(Some(s)) => {
                    self.manifest.insert(rel, s);
                }
                _ => {
                    self.manifest.remove(&rel);
                }
            }
        }

        let deleted: Vec<PathBuf> = self.manifest.keys().filter(|p| !all.contains(*p)).cloned().collect();
        for rel in deleted {
            self.manifest.remove(&rel);
            match workspace::delete(&self.repo, &rel) {
                Ok(true) => changed.push(rel),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(path = %rel.display(), error = %e, "sandbox: cannot delete a file the command deleted")
                }
            }
        }
        changed.sort();
        Ok(changed)
    }

    async fn download_back(&self, rel: &Path) -> std::io::Result<WriteBack> {
        let path = format!("{WORKSPACE}/{}", rel.to_string_lossy());
        let opts = DownloadFromContainerOptionsBuilder::default().path(&path).build();
        let stream = self
            .docker
            .download_from_container(self.id(), Some(opts))
            .map_err(std::io::Error::other);
        let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(Box::pin(stream)));
        let repo = self.repo.clone();
        let rel = rel.to_path_buf();
        tokio::task::spawn_blocking(move || workspace::write_back(reader, &repo, &rel))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// Kills every process of the session (by killing the container) and starts it again;
    /// `/workspace` lives on the container's volume and survives.
    async fn restart(&self) -> Result<(), SandboxError> {
        let id = self.id();
        tracing::debug!(container = id, "sandbox: restarting the session container");
        container::kill(&self.docker, id).await;
        let _ = container::wait_exit(&self.docker, id).await;
        self.docker
            .start_container(id, None)
            .await
            .map_err(|source| container_err("restart", id, source))
    }

    /// Stops and removes the container (unless `sandbox.keep`).
    pub async fn close(mut self) -> Result<(), SandboxError> {
        match self.guard.take() {
            Some(guard) => guard.remove().await,
            None => Ok(()),
        }
    }
}

/// Runs `cmd` in `/workspace` of the container, feeding its output to `sink`; returns the
/// exit code.
async fn run_exec(
    docker: &Docker,
    id: &str,
    cmd: Vec<String>,
    sink: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<i64, SandboxError> {
    let opts = CreateExecOptions {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(cmd),
        working_dir: Some(WORKSPACE.to_string()),
        ..Default::default()
    };
    let exec = docker
        .create_exec(id, opts)
        .await
        .map_err(|source| container_err("exec in", id, source))?;
    match docker
        .start_exec(&exec.id, None)
        .await
        .map_err(|source| container_err("exec in", id, source))?
    {
        StartExecResults::Attached { mut output, .. } => {
            while let Some(chunk) = output.next().await {
                let chunk = chunk.map_err(|source| container_err("read exec output from", id, source))?;
                sink(&chunk.into_bytes());
            }
        }
        StartExecResults::Detached => {}
    }
    // The stream ends as the process exits; the exit code may lag a moment behind.
    for _ in 0..100 {
        let info = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|source| container_err("inspect exec in", id, source))?;
        if info.running != Some(true) {
            return Ok(info.exit_code.unwrap_or(-1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(-1)
}
