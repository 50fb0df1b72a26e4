//! What the sandbox has to tell people while it works (an option the daemon refused, a
//! container kept): events handed to a sink the caller passes, never printed here. The
//! day's printer and `pace gate` show them (`report::printer`); the text is the event's.

use std::fmt;
use std::sync::Arc;

use super::authz::Degradable;

/// Something a person should know that is not an error: the run goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxEvent {
    /// The daemon has no init binary for `--init` (Podman without `catatonit`): the
    /// sandbox runs without it.
    InitMissing,
    /// A Docker authorization plugin refused `option`; the run goes on without it.
    OptionRefused {
        option: Degradable,
        /// The daemon's words.
        message: String,
    },
    /// `sandbox.keep`: the container stays for inspection.
    ContainerKept { name: String },
}

impl fmt::Display for SandboxEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InitMissing => f.write_str(
                "the daemon has no init binary for `--init` (Podman: install `catatonit`); running the sandbox without it",
            ),
            Self::OptionRefused { option, message } => {
                let consequence = match option {
                    Degradable::WorkspaceBind => "uploading the workspace instead",
                    Degradable::CacheVolume => "running without the dependency cache",
                    _ => "running the sandbox without it",
                };
                write!(
                    f,
                    "the Docker daemon refused `{}` ({}); {consequence}",
                    option.flag(),
                    message.trim()
                )
            }
            Self::ContainerKept { name } => write!(
                f,
                "kept sandbox container `{name}` (sandbox.keep); remove it with `docker rm -fv {name}`"
            ),
        }
    }
}

/// Where the sandbox's events go. Cheap to clone: every container guard holds one, so
/// that a container kept when its guard is dropped is still reported.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(&SandboxEvent) + Send + Sync>);

impl EventSink {
    pub fn new(deliver: impl Fn(&SandboxEvent) + Send + Sync + 'static) -> Self {
        Self(Arc::new(deliver))
    }

    pub(super) fn emit(&self, event: &SandboxEvent) {
        (self.0)(event);
    }
}

/// Without a caller's sink (tests that drive the library directly) the events go to the
/// log, where the library's diagnostics go.
impl Default for EventSink {
    fn default() -> Self {
        Self::new(|event| tracing::warn!(%event, "sandbox: event"))
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSink")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// The words people have read since before the events: the exit-path snapshots and
    /// `sandbox_conn`'s keep test pin them after `pace: `.
    #[test]
    fn each_event_says_what_it_said_when_it_was_printed_directly() {
        assert_eq!(
            SandboxEvent::InitMissing.to_string(),
            "the daemon has no init binary for `--init` (Podman: install `catatonit`); running the sandbox without it"
        );
        let refused = |option| SandboxEvent::OptionRefused {
            option,
            message: " authorization denied by plugin pipelines: --memory is not allowed\n".into(),
        };
        assert_eq!(
            refused(Degradable::Memory).to_string(),
            "the Docker daemon refused `--memory` (authorization denied by plugin pipelines: --memory is not allowed); running the sandbox without it"
        );
        assert!(
            refused(Degradable::WorkspaceBind)
                .to_string()
                .ends_with("; uploading the workspace instead")
        );
        assert!(
            refused(Degradable::CacheVolume)
                .to_string()
                .ends_with("; running without the dependency cache")
        );
        assert_eq!(
            SandboxEvent::ContainerKept {
                name: "pace-r-gate-1".into()
            }
            .to_string(),
            "kept sandbox container `pace-r-gate-1` (sandbox.keep); remove it with `docker rm -fv pace-r-gate-1`"
        );
    }

    #[test]
    fn a_sink_delivers_to_the_caller() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let sink = EventSink::new(move |e| into.lock().unwrap().push(e.clone()));
        sink.clone().emit(&SandboxEvent::InitMissing);
        assert_eq!(*seen.lock().unwrap(), vec![SandboxEvent::InitMissing]);
    }
}
