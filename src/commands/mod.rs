//! The commands layer: each command is a thin function from the parsed command line to an
//! exit code or a [`PaceError`]. This module dispatches, and holds what the commands share
//! (logging, the async runtime, the repository root, the config, run ids, signals).
//! Commands use every other module; no other module uses `commands`.

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command};
use crate::env::{self, Env};
use crate::error::PaceError;
use crate::report::printer::{Printer, Verbosity};

mod day;
mod doctor;
mod gate;
mod validate;

pub fn init_logging(verbose: u8, quiet: bool, env: &Env) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "pace=debug,info",
        (false, _) => "debug",
    };
    let filter = env
        .get("RUST_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

pub fn dispatch(cli: Cli, env: Env) -> Result<u8, PaceError> {
    install_crypto_provider();
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let printer = Printer::new(verbosity, env.get(env::NO_COLOR).is_some())
        .with_gitlab_sections(env.get(env::GITLAB_CI).is_some());
    let config = cli.config.as_deref();
    match cli.command {
        Some(Command::Validate) => validate::run(config, &env),
        Some(Command::Doctor) => runtime()?.block_on(doctor::run(config, &env)),
        Some(Command::Gate { image }) => runtime()?.block_on(gate::run(config, image, &env)),
        None => day::run(
            day::Args {
                day: cli.day,
                retry: cli.retry,
                dry_run: cli.dry_run,
                config,
            },
            env,
            printer,
        ),
    }
}

fn install_crypto_provider() {
    // One rustls provider for reqwest and bollard; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn runtime() -> Result<tokio::runtime::Runtime, PaceError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PaceError::infra(format!("cannot start the async runtime: {e}")))
}

/// The repository root: the git top level of the working directory, else the directory.
fn repo_root() -> Result<PathBuf, PaceError> {
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
fn load(explicit: Option<&Path>, env: &Env) -> Result<crate::config::Loaded, PaceError> {
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
fn run_id() -> String {
    format!(
        "{}-{:08x}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        fastrand::u32(..),
        std::process::id()
    )
}

/// Resolves on the first SIGINT or SIGTERM.
async fn signal() -> crate::day::Signal {
    use crate::day::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Signal::Interrupt,
        _ = term.recv() => Signal::Terminate,
    }
}
