//! Removing containers: a FORGE session's in the background, all of this run's on exit
//! and signals, and this project's stale ones left by killed runs.

use std::path::Path;
use std::time::Duration;

use super::container::{Sandbox, unix_now};
use super::guard;
use super::{LABEL_CREATED, LABEL_PROJECT, LABEL_RUN_ID, LABEL_TIMEOUT, SandboxError, cache};

/// Added to a container's recorded lifetime before it counts as stale.
const STALE_MARGIN: Duration = Duration::from_secs(10 * 60);

impl Sandbox {
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
        let name = session.container_name().to_string();
        guard::track(&self.closing, handle.spawn(session.close()), &name);
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
        let ids = self.docker.list_labelled(&filter).await?;
        let mut removed = 0;
        for (id, labels) in ids {
            // Checked again: a daemon that ignored the filter must not widen the removal.
            if labels.get(LABEL_RUN_ID) != Some(&self.ctx.run_id) {
                continue;
            }
            if self.docker.remove(&id).await.is_ok() {
                removed += 1;
            }
        }
        // A removal already under way (a dropped session's guard) answers 409 at once;
        // wait until the daemon no longer lists any, so nothing is left when pace exits.
        for _ in 0..50 {
            if self.docker.list_labelled(&filter).await?.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        super::egress::remove_run_networks(self.docker.raw(), &self.ctx.run_id).await;
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
        for (id, labels) in self.docker.list_labelled(&format!("{LABEL_PROJECT}={project}")).await? {
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
            match self.docker.remove(&id).await {
                Ok(()) => {
                    tracing::info!(container = %id, "sandbox: removed a stale pace container");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "sandbox: cannot remove a stale container");
                }
            }
        }
        removed += super::egress::remove_stale_networks(self.docker.raw(), &project, now, STALE_MARGIN).await;
        Ok(removed)
    }
}
