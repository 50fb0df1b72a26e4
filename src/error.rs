//! The error model: each module keeps its own typed `thiserror` enum (with its source),
//! implements [`Hint`] (what to do next, and the exit code where the error decides it),
//! and the binary turns whatever reached it into one [`PaceError`], rendered in one place
//! (`error: ...` / `hint: ...`, contract: exit codes).
//!
//! The exit code comes from the error's type: [`exit_kind`] walks the `source()` chain,
//! downcasting each level to the module errors, and the outermost level that decides wins
//! (default: infrastructure). So a refusal deep inside an I/O error still exits 2, and a
//! Docker failure inside FORGE's `run` still carries the Docker hint.

use std::error::Error;
use std::fmt;

/// Stable exit codes (README, contract). Never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Ship = 0,
    Hold = 1,
    Config = 2,
    Plan = 3,
    Infrastructure = 4,
    Budget = 5,
    Interrupted = 130,
    Terminated = 143,
}

impl ExitKind {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What a module's error tells the person who reads it, beyond its message.
///
/// Wrapping variants delegate to the error they wrap: thiserror's `transparent` forwards
/// `source()` to the wrapped error's source, so the walk in [`exit_kind`] / [`hint`]
/// would not see the wrapped level itself.
pub trait Hint: Error {
    /// What to try next, if this error knows.
    fn hint(&self) -> Option<String> {
        None
    }
    /// The exit code, for errors that decide it; `None` leaves it to their sources (and
    /// finally to [`ExitKind::Infrastructure`]).
    fn exit_kind(&self) -> Option<ExitKind> {
        None
    }
}

/// One level of an error chain as a [`Hint`], if it is one of pace's module errors. An
/// `io::Error` made from one (safe_write's refusals) counts as that error.
fn as_hint<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a dyn Hint> {
    macro_rules! first_of {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = err.downcast_ref::<$t>() {
                return Some(e);
            })*
        };
    }
    first_of!(
        PaceError,
        crate::day::DayError,
        crate::day::lock::LockError,
        crate::day::tools::ToolAbort,
        crate::sandbox::SandboxError,
        crate::llm::LlmError,
        crate::git::GitError,
        crate::platform::PlatformError,
        crate::artifacts::ArtifactError,
        crate::safe_write::OwnFileError,
        crate::config::ConfigError,
    );
    let inner = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    as_hint(inner)
}

/// `err` and its sources, outermost first.
fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// The exit code of `err`: decided by the outermost level of its chain that decides one;
/// infrastructure when none does. The one place exit codes of errors are chosen.
pub fn exit_kind(err: &(dyn Error + 'static)) -> ExitKind {
    chain(err)
        .filter_map(as_hint)
        .find_map(Hint::exit_kind)
        .unwrap_or(ExitKind::Infrastructure)
}

/// What to do next about `err`: the outermost hint of its chain.
pub fn hint(err: &(dyn Error + 'static)) -> Option<String> {
    chain(err).filter_map(as_hint).find_map(Hint::hint)
}

/// An error shown to a person: what failed, and optionally what to do next. Its
/// `Display` is the one rendering of an error (`error: ...`, then `hint: ...`).
#[derive(Debug)]
pub struct PaceError {
    pub kind: ExitKind,
    pub message: String,
    pub hint: Option<String>,
}

impl PaceError {
    pub fn new(kind: ExitKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
        }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Config, message)
    }
    pub fn plan(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Plan, message)
    }
    pub fn infra(message: impl Into<String>) -> Self {
        Self::new(ExitKind::Infrastructure, message)
    }
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `err` for people: its message, the exit code its type decides and its hint.
    pub fn from_error(err: &(dyn Error + 'static)) -> Self {
        Self {
            kind: exit_kind(err),
            message: err.to_string(),
            hint: hint(err),
        }
    }
}

impl fmt::Display for PaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            // A hint of several parts (a platform's advice, then how to go on) is one
            // `hint:` line per part.
            f.write_str("\n")?;
            for line in hint.lines() {
                write!(f, "\nhint: {line}")?;
            }
        }
        Ok(())
    }
}

impl Error for PaceError {}

impl Hint for PaceError {
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
    fn exit_kind(&self) -> Option<ExitKind> {
        Some(self.kind)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::day::DayError;
    use crate::day::tools::ToolAbort;
    use crate::llm::LlmError;
    use crate::sandbox::SandboxError;

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
    fn a_docker_failure_inside_forges_run_keeps_the_docker_hint() {
        let err = DayError::ToolAborted {
            agent: "FORGE".into(),
            tool: "run".into(),
            source: Box::new(ToolAbort::Sandbox(docker_refused("start"))),
        };
        let shown = PaceError::from_error(&err);
        assert_eq!(shown.kind, ExitKind::Infrastructure);
        assert!(
            shown.message.starts_with(
                "FORGE tool `run` aborted: the sandbox failed while running a FORGE command: failed to start container"
            ),
            "{}",
            shown.message
        );
        let hint = shown.hint.unwrap_or_default();
        assert!(hint.contains("the Docker daemon refused the operation"), "{hint}");
        assert!(hint.contains("pace doctor"), "{hint}");
    }

    #[test]
    fn a_docker_failure_of_gates_suite_keeps_the_docker_hint() {
        // What `pace gate` gets from `run_suite`.
        let err = DayError::Sandbox(docker_refused("start"));
        assert!(hint(&err).is_some_and(|h| h.contains("the Docker daemon refused the operation")));
        assert_eq!(exit_kind(&err), ExitKind::Infrastructure);
    }

    #[test]
    fn a_refusal_wrapped_in_an_io_error_decides_exit_2_through_the_sources() {
        let refusal = crate::safe_write::OwnFileError::Symlink {
            path: PathBuf::from(".pace/day-1/gate"),
            target: "/etc".into(),
        };
        let err = DayError::Sandbox(SandboxError::Io {
            path: PathBuf::from(".pace/day-1/gate/junit.xml"),
            source: std::io::Error::from(refusal),
        });
        assert_eq!(exit_kind(&err), ExitKind::Config);
        let plain = DayError::Sandbox(SandboxError::Io {
            path: PathBuf::from(".pace/day-1/gate/junit.xml"),
            source: std::io::Error::other("disk full"),
        });
        assert_eq!(exit_kind(&plain), ExitKind::Infrastructure);
    }

    #[test]
    fn the_outermost_deciding_level_wins_and_the_default_is_infrastructure() {
        let budget = DayError::Llm(LlmError::Budget("used 10 of 9 tokens".into()));
        assert_eq!(exit_kind(&budget), ExitKind::Budget);
        assert!(hint(&budget).is_some_and(|h| h.contains("budget.max_tokens")));
        let key = DayError::Llm(LlmError::MissingKey("ANTHROPIC_API_KEY".into()));
        assert_eq!(exit_kind(&key), ExitKind::Config);
        let checkout = DayError::Checkout(crate::git::GitError::Failed {
            args: "rev-parse".into(),
            dir: PathBuf::from("/repo"),
            stderr: "fatal".into(),
        });
        assert_eq!(exit_kind(&checkout), ExitKind::Config);
        assert_eq!(
            exit_kind(&DayError::Interrupted(crate::day::Signal::Terminate)),
            ExitKind::Terminated
        );
        assert_eq!(exit_kind(&std::io::Error::other("anything")), ExitKind::Infrastructure);
        assert_eq!(hint(&std::io::Error::other("anything")), None);
        let plan = crate::config::ConfigError {
            diagnostics: Vec::new(),
            is_plan_error: true,
        };
        assert_eq!(PaceError::from(plan).kind, ExitKind::Plan);
    }

    #[test]
    fn the_renderer_prints_the_error_then_its_hint() {
        let e = PaceError::config("no day given").with_hint("run `pace --day N`");
        assert_eq!(e.to_string(), "error: no day given\n\nhint: run `pace --day N`");
        assert_eq!(PaceError::infra("down").to_string(), "error: down");
        let two = PaceError::infra("push rejected").with_hint("give the token write access\nre-run the day");
        assert_eq!(
            two.to_string(),
            "error: push rejected\n\nhint: give the token write access\nhint: re-run the day"
        );
    }
}
