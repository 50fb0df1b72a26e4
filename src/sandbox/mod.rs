//! The sandbox: GATE's test run and FORGE's commands in a nested container driven
//! through the Docker Engine API (bollard). Never on the runner.
//!
//! Owns: the connection (`DOCKER_HOST`, unix socket, TCP, TLS), the workspace tar
//! upload, container lifecycle (labels, limits, timeout, removal) and result download.
//! `docker` is the Engine API (one method per operation), `spec` what a container is (a
//! pure function), `guard` its removal, `gate` GATE's run, `session` FORGE's, `container`
//! the sandbox that launches them (`image` first, the workspace through `stdin`), `cleanup`
//! their removal in bulk; what people should know leaves as `events`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::settings::SandboxSettings;

mod authz;
mod cache;
mod cleanup;
mod collect;
mod container;
mod docker;
pub mod doctor;
mod egress;
mod endpoint;
mod events;
mod gate;
mod guard;
mod image;
mod output;
pub mod registry;
mod session;
pub mod setup;
mod spec;
mod stdin;
mod workspace;
mod writeback;

pub use authz::Degradable;
pub use cache::{
    CACHE_ENV, CACHE_MOUNT, CacheVolume, LABEL_CACHE, LABEL_CACHE_BRANCH, LABEL_CACHE_SCOPE, project_id,
    volume_for as cache_volume, volume_name as cache_volume_name,
};
pub use container::Sandbox;
pub use egress::{LABEL_EGRESS, PROXY_ALIAS};
pub use endpoint::Endpoint;
pub use events::{EventSink, SandboxEvent};
pub use session::ExecSession;

/// Labels every pace container carries (cleanup finds them by these).
pub const LABEL_RUN_ID: &str = "pace.run-id";
pub const LABEL_DAY: &str = "pace.day";
pub const LABEL_CREATED: &str = "pace.created";
/// The hashed project key (`cache::project_id`): cleanup touches only its own project's.
pub const LABEL_PROJECT: &str = "pace.project";
/// Seconds the container may live (its run's `sandbox.timeout`; longer for a FORGE
/// session): stale once `pace.created` + this + a margin has passed.
pub const LABEL_TIMEOUT: &str = "pace.timeout";

/// Who runs the sandbox and what to label its containers with.
#[derive(Debug, Clone)]
pub struct SandboxContext {
    pub settings: SandboxSettings,
    pub run_id: String,
    pub day: u32,
    /// Values for `settings.env` names (read from pace's environment by the caller).
    pub env: Vec<(String, String)>,
    /// What may come back from the container into the repository.
    pub boundary: crate::boundary::Boundary,
    /// Secrets to take out of the suite's output (`sandbox.env` can pass one in).
    pub redactor: crate::redact::Redactor,
    /// Where the credentials for pulling `settings.image` come from.
    pub registry_login: registry::RegistryLogin,
    /// Where what people should know goes (an option the daemon refused, a kept
    /// container): the caller's printer. The library prints nothing itself.
    pub events: EventSink,
}

impl SandboxContext {
    /// The context of one run, for GATE and FORGE's `run` in a day and for `pace gate`
    /// alike: `sandbox.env`'s values read from `env`, the return path of `settings`;
    /// `events` reach the caller's printer.
    pub fn for_run(
        settings: &crate::config::settings::Settings,
        env: &crate::env::Env,
        run_id: String,
        day: u32,
        redactor: crate::redact::Redactor,
        events: EventSink,
    ) -> Self {
        Self {
            settings: settings.sandbox.clone(),
            run_id,
            day,
            env: settings
                .sandbox
                .env
                .iter()
                .filter_map(|name| env.get(name).map(|v| (name.clone(), v.to_string())))
                .collect(),
            boundary: crate::boundary::Boundary::for_settings(settings),
            redactor,
            registry_login: registry::RegistryLogin::from_env(env),
            events,
        }
    }
}

/// Receives each chunk of a command's output as it arrives.
pub type OutputSink<'a> = &'a (dyn Fn(&[u8]) + Send + Sync);

/// One command run to completion in a fresh container (GATE, `pace gate`).
#[derive(Clone)]
pub struct RunRequest<'a> {
    /// The repository whose tracked + untracked-not-ignored files form `/workspace`.
    pub repo: &'a Path,
    /// Shell command, run as `/bin/sh -c <command>` in `/workspace`.
    pub command: String,
    /// The output (stdout and stderr interleaved) is written here, up to
    /// `sandbox.log_limit` (head and tail, with a marker where it was cut).
    pub output_log: &'a Path,
    /// Files matching `settings.collect` are copied back under this directory.
    pub collect_into: &'a Path,
    /// Called with each chunk of output as it arrives (streaming to the terminal).
    pub on_output: Option<OutputSink<'a>>,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The command's exit status; 137 when killed (OOM or timeout).
    pub exit_code: i64,
    pub timed_out: bool,
    pub oom_killed: bool,
    pub duration: Duration,
    /// First and last part of the output for prompts (the log has everything).
    pub head: String,
    pub tail: String,
    pub output_bytes: u64,
    /// Collected result files (absolute paths under `collect_into`).
    pub collected: Vec<PathBuf>,
    /// The network was `none` and the output looks like a failed network access.
    pub network_hint: Option<String>,
    /// Paths the return-path policy kept out (result files, bind-mode changes).
    pub refused: Vec<crate::boundary::Refused>,
}

/// One FORGE command (`docker exec` in the long-lived container of an attempt).
#[derive(Debug, Clone)]
pub struct ExecOutcome {
    pub exit_code: i64,
    pub timed_out: bool,
    /// Output capped at `EXEC_OUTPUT_CAP` bytes, with a marker where it was cut.
    pub output: String,
    /// Repository-relative paths of files the command created, changed or deleted; their new
    /// contents are already written back into the repository.
    pub changed: Vec<PathBuf>,
    /// What the command wrote that the return-path policy kept out of the repository.
    pub refused: Vec<crate::boundary::Refused>,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot connect to the Docker daemon at `{host}`: {}", error_chain(.source))]
    Connect {
        host: String,
        source: bollard::errors::Error,
        /// What to try, for this endpoint (TLS files, socket path).
        hint: String,
    },
    #[error("image `{image}` is not available: {message}")]
    Image { image: String, message: String },
    /// The registry refused the pull for want of (valid) credentials.
    #[error("{0}")]
    PullRefused(Box<registry::PullRefusal>),
    #[error("failed to {operation} container `{container}`: {source}")]
    Container {
        operation: &'static str,
        container: String,
        source: bollard::errors::Error,
    },
    #[error("failed to pack the workspace `{path}`: {source}")]
    Workspace { path: PathBuf, source: std::io::Error },
    #[error("failed to write `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("sandbox interrupted")]
    Interrupted,
    /// A Docker operation of the egress sidecar (`sandbox.egress`) failed.
    #[error("failed to {operation} `{target}` for `sandbox.egress`: {message}")]
    Egress {
        operation: &'static str,
        target: String,
        message: String,
    },
    /// The egress proxy container stopped or never listened.
    #[error("the egress proxy (pace's own binary in a container of `{image}`) did not start:\n{output}")]
    EgressProxy { image: String, output: String },
    /// The set-up phase could not reach what it downloads from.
    #[error("the dependency set-up `{command}` could not reach the network (see `{}`):\n{tail}", .log.display())]
    SetupNetwork {
        command: String,
        log: PathBuf,
        /// `sandbox.setup_network`.
        network: String,
        tail: String,
    },
}

impl crate::error::Hint for SandboxError {
    /// A refusal inside `Io` or `Workspace` (a link in pace's paths) is a config error: the
    /// checkout has to be fixed.
    fn exit_kind(&self) -> Option<crate::error::ExitKind> {
        match self {
            Self::Io { source, .. } | Self::Workspace { source, .. } => {
                crate::safe_write::own_file_error(source).and_then(crate::error::Hint::exit_kind)
            }
            Self::Connect { .. }
            | Self::Image { .. }
            | Self::PullRefused(_)
            | Self::Container { .. }
            | Self::Interrupted
            | Self::Egress { .. }
            | Self::EgressProxy { .. }
            | Self::SetupNetwork { .. } => None,
        }
    }

    /// What the user should try next.
    fn hint(&self) -> Option<String> {
        match self {
            Self::Connect { hint, .. } => Some(hint.clone()),
            Self::Image { image, .. } => Some(format!(
                "build or pull `{image}` on the daemon, or set `sandbox.image` in pace.config.yaml"
            )),
            Self::PullRefused(refusal) => Some(refusal.hint()),
            Self::Egress { .. } => Some(
                "check the Docker daemon (`docker network ls`, `pace doctor`); `sandbox.egress` needs a daemon that creates networks; without it, remove `sandbox.egress` to give the set-up `sandbox.setup_network` directly"
                    .into(),
            ),
            Self::EgressProxy { .. } => Some(
                "the proxy runs the pace executable inside `sandbox.image`: use the static release binary (`make static`, or a runner image), or an image with a compatible C library"
                    .into(),
            ),
            Self::SetupNetwork { network, .. } if network == "none" => Some(
                "`sandbox.setup_network` is `none`: set it to `bridge` (the default) or `host` in pace.config.yaml so the set-up can download the dependencies, or turn the phase off with `tech.setup_command: false`"
                    .into(),
            ),
            Self::SetupNetwork { network, .. } => Some(format!(
                "the set-up container (network `{network}`, `sandbox.setup_network`) got no route to the registry: check the daemon's network (`docker run --rm --network {network} IMAGE wget -qO- URL`), try `sandbox.setup_network: host` where the bridge has no NAT, or vendor the dependencies"
            )),
            Self::Container {
                source: bollard::errors::Error::DockerResponseServerError { .. },
                ..
            } => Some(
                "the Docker daemon refused the operation (see its message; `pace doctor` checks the setup); then re-run the day (committed work is kept)"
                    .into(),
            ),
            Self::Container { .. } => Some(
                "the connection to the Docker daemon broke during the run (was it stopped or restarted?): check it with `docker info` or `pace doctor`, then re-run the day (committed work is kept)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// An error and its causes on one line (bollard's TLS and connection errors keep the
/// useful part, such as "invalid peer certificate: `UnknownIssuer`", in the sources).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

/// Output caps (prompts get head + tail; the log file has everything).
pub const PROMPT_HEAD_BYTES: usize = 4 * 1024;
pub const PROMPT_TAIL_BYTES: usize = 8 * 1024;
/// A FORGE command's output shown to the model.
pub const EXEC_OUTPUT_CAP: usize = 16 * 1024;

pub fn workspace_files(repo: &Path) -> std::io::Result<Vec<PathBuf>> {
    workspace::list_files(repo)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::error::{ExitKind, Hint as _, exit_kind};

    fn docker_refused(operation: &'static str) -> SandboxError {
        SandboxError::Container {
            operation,
            container: "pace-run-forge-1".into(),
            source: bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "unable to find user nosuchuser".into(),
            },
        }
    }

    #[test]
    fn a_docker_refusal_hints_at_the_daemon_and_exits_4() {
        // What `pace gate` gets from `run_suite`.
        let err = docker_refused("start");
        assert!(
            err.hint()
                .is_some_and(|h| h.contains("the Docker daemon refused the operation"))
        );
        assert_eq!(exit_kind(&err), ExitKind::Infrastructure);
    }

    #[test]
    fn a_refusal_wrapped_in_an_io_error_exits_2() {
        let refusal = crate::safe_write::OwnFileError::Symlink {
            path: PathBuf::from(".pace/day-1/gate"),
            target: "/etc".into(),
        };
        let err = SandboxError::Io {
            path: PathBuf::from(".pace/day-1/gate/junit.xml"),
            source: std::io::Error::from(refusal),
        };
        assert_eq!(exit_kind(&err), ExitKind::Config);
        let plain = SandboxError::Io {
            path: PathBuf::from(".pace/day-1/gate/junit.xml"),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(exit_kind(&plain), ExitKind::Infrastructure);
    }
}
