//! The guard of one container: removed (with its anonymous volume) when the guard is told
//! to or dropped, unless `sandbox.keep` says to keep it; removals started by a drop are
//! registered in [`Closing`] so that the sandbox waits for them before pace exits.

use std::sync::{Arc, Mutex};

use super::SandboxError;
use super::docker::DockerClient;
use super::events::{EventSink, SandboxEvent};

/// Background removals the sandbox waits for before pace exits.
pub(super) type Closing = Arc<Mutex<Vec<tokio::task::JoinHandle<Result<(), SandboxError>>>>>;

/// Registers a background removal in `closing`.
pub(super) fn track(closing: &Closing, task: tokio::task::JoinHandle<Result<(), SandboxError>>, container: &str) {
    match closing.lock() {
        Ok(mut closing) => closing.push(task),
        // Never happens (no code panics while holding the lock); the container still
        // carries this run's label for `remove_run_containers`.
        Err(_) => tracing::warn!(container, "sandbox: cannot track a container's removal"),
    }
}

/// Removes its container (and anonymous volume) when told to or when dropped, unless
/// `sandbox.keep` is set.
pub(super) struct ContainerGuard {
    pub(super) docker: DockerClient,
    pub(super) id: String,
    pub(super) name: String,
    pub(super) keep: bool,
    pub(super) done: bool,
    /// The repository is bind-mounted at `/workspace` (no upload, no sync).
    pub(super) bind: bool,
    /// The dependency cache volume is mounted at `/cache`.
    pub(super) cache: bool,
    /// Where a removal started by `drop` is registered (the sandbox's [`Closing`]).
    pub(super) closing: Closing,
    /// Where "kept" is said.
    pub(super) events: EventSink,
}

impl ContainerGuard {
    /// Removes the container whatever `sandbox.keep` says (a failed attempt to start it).
    pub(super) async fn discard(mut self) {
        self.done = true;
        if let Err(e) = self.docker.remove(&self.id).await {
            tracing::warn!(container = %self.name, error = %e, "sandbox: cannot remove the container");
        }
    }

    pub(super) async fn remove(mut self) -> Result<(), SandboxError> {
        self.done = true;
        if self.keep {
            tracing::warn!(container = %self.name, "sandbox: keeping the container (`sandbox.keep: true`); remove it with `docker rm -fv {}`", self.name);
            self.kept();
            return Ok(());
        }
        // By name: the error names the container people see in `docker ps`.
        self.docker.remove(&self.name).await
    }

    /// Removes the container in the background, registered in [`Closing`] (the sandbox
    /// waits for it before pace exits): a finished suite's result does not wait for the
    /// daemon's cleanup, which overlaps GATE's model call instead.
    pub(super) fn remove_later(mut self) {
        if self.keep {
            self.done = true;
            tracing::warn!(container = %self.name, "sandbox: keeping the container (`sandbox.keep: true`); remove it with `docker rm -fv {}`", self.name);
            self.kept();
        }
        // Not done: the drop starts and registers the removal.
    }

    fn kept(&self) {
        self.events.emit(&SandboxEvent::ContainerKept {
            name: self.name.clone(),
        });
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.keep {
            self.kept();
            return;
        }
        // Dropped mid-operation (error, cancellation): removed in the background, and
        // registered so that `Sandbox::settle` waits for it before pace exits.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            let id = self.id.clone();
            let task = handle.spawn(async move {
                if let Err(e) = docker.remove(&id).await {
                    tracing::warn!(container = %id, error = %e, "sandbox: cannot remove the container");
                }
                Ok(())
            });
            track(&self.closing, task, &self.name);
        } else {
            tracing::warn!(container = %self.name, "sandbox: container left behind (no runtime to remove it)");
        }
    }
}
