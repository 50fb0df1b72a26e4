//! What the commands share: the async runtime, the repository root, the config with its
//! warnings, run ids and signals.

use std::path::{Path, PathBuf};

use crate::day::Signal;
use crate::env::Env;
use crate::error::PaceError;

pub(super) fn install_crypto_provider() {
    // One rustls provider for reqwest and bollard; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, PaceError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PaceError::infra(format!("cannot start the async runtime: {e}")))
}

/// The repository root: the git top level of the working directory, else the directory.
pub(super) fn repo_root() -> Result<PathBuf, PaceError> {
    let cwd =
        std::env::current_dir().map_err(|e| PaceError::config(format!("cannot read the working directory: {e}")))?;
    let out = crate::git::hardened_command(&cwd)
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(&cwd)
        .output();
    Ok(match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => cwd,
    })
}

/// The config and the plan, with their warnings printed (one each).
pub(super) fn load(explicit: Option<&Path>, env: &Env) -> Result<crate::config::Loaded, PaceError> {
    let root = repo_root()?;
    let loaded = crate::config::load(&root, explicit, env).map_err(PaceError::from)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(loaded)
}

/// A run id unique enough to label this run's containers, also on a shared Docker daemon:
/// CI jobs in their own PID namespaces often share a PID (hence the random part), and
/// `remove_run_containers` removes every container with this id. Ends with `-<pid>`.
pub(super) fn run_id() -> String {
    format!(
        "{}-{:08x}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        fastrand::u32(..),
        std::process::id()
    )
}

/// Resolves on the first SIGINT or SIGTERM.
pub(super) async fn signal() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Signal::Interrupt,
        _ = term.recv() => Signal::Terminate,
    }
}
