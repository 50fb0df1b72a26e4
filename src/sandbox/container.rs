//! PLACEHOLDER — replaced by the sandbox implementation (bollard).
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ExecOutcome, RunOutcome, RunRequest, SandboxContext, SandboxError};

pub struct Sandbox {
    ctx: SandboxContext,
}

impl Sandbox {
    /// Connects with the Docker defaults (`DOCKER_HOST`, else the unix socket), negotiates
    /// the API version and checks the daemon answers.
    pub async fn connect(ctx: SandboxContext) -> Result<Self, SandboxError> {
        Ok(Self { ctx })
    }
    pub fn context(&self) -> &SandboxContext {
        &self.ctx
    }
    /// Runs one command to completion in a fresh container (GATE).
    pub async fn run(&self, _req: RunRequest<'_>) -> Result<RunOutcome, SandboxError> {
        Err(SandboxError::Interrupted)
    }
    /// Starts the long-lived container of one FORGE attempt with the workspace uploaded.
    pub async fn start_session(&self, _repo: &Path) -> Result<ExecSession, SandboxError> {
        Err(SandboxError::Interrupted)
    }
    /// Removes every container of this run (called on exit and on signals).
    pub async fn remove_run_containers(&self) -> Result<usize, SandboxError> {
        Ok(0)
    }
    /// Removes pace containers left by killed runs, older than the sandbox timeout.
    pub async fn remove_stale(&self) -> Result<usize, SandboxError> {
        Ok(0)
    }
}

pub struct ExecSession {
    _repo: PathBuf,
}

impl ExecSession {
    /// Runs `/bin/sh -c command` in `/workspace` after syncing the repository files that
    /// changed since the last call, then copies changed files back into the repository.
    pub async fn exec(&mut self, _command: &str, _timeout: Duration) -> Result<ExecOutcome, SandboxError> {
        Err(SandboxError::Interrupted)
    }
    /// Stops and removes the container (unless `sandbox.keep`).
    pub async fn close(self) -> Result<(), SandboxError> {
        Ok(())
    }
}
