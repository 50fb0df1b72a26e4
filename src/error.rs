//! The error model: each module keeps its own typed `thiserror` enum (with its source),
//! implements [`Hint`] (what to do next, and the exit code where the error decides it),
//! and the binary turns whatever reached it into one [`PaceError`], rendered in one place
//! (`error: ...` / `hint: ...`, contract: exit codes).
//!
//! The exit code comes from the error's type: each wrapper delegates [`Hint`] to the error
//! it wraps, so asking the outermost error asks the level that knows (default:
//! infrastructure). An `io::Error` that carries a module error is answered by the module
//! that holds it (e.g. `safe_write::own_file_error` for a refusal inside an I/O error).
//! This module imports no other pace module: every module imports it, never the reverse.

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
/// Wrapping variants delegate to the error they wrap (thiserror's `transparent` forwards
/// `source()` past the wrapped level, and `source()` cannot be read as a [`Hint`] without
/// knowing every type): the outermost error answers for its whole chain.
pub trait Hint: Error {
    /// What to try next, if this error knows.
    fn hint(&self) -> Option<String> {
        None
    }
    /// The exit code, for errors that decide it; `None` leaves it to the error they wrap
    /// (and finally to [`ExitKind::Infrastructure`]).
    fn exit_kind(&self) -> Option<ExitKind> {
        None
    }
}

/// The exit code of `err`: what its type decides, infrastructure when it decides none.
/// The one place exit codes of errors are chosen.
pub fn exit_kind(err: &dyn Hint) -> ExitKind {
    err.exit_kind().unwrap_or(ExitKind::Infrastructure)
}

/// What to do next about `err`, if it knows.
pub fn hint(err: &dyn Hint) -> Option<String> {
    err.hint()
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
    pub fn from_error(err: &dyn Hint) -> Self {
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
    use super::*;

    /// A module error that decides nothing itself, wrapping one that does.
    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error(transparent)]
        Inner(Inner),
        #[error("plain")]
        Plain,
        #[error("interrupted")]
        Stopped,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("over budget")]
    struct Inner;

    impl Hint for Inner {
        fn hint(&self) -> Option<String> {
            Some("raise the budget".into())
        }
        fn exit_kind(&self) -> Option<ExitKind> {
            Some(ExitKind::Budget)
        }
    }

    impl Hint for Outer {
        fn hint(&self) -> Option<String> {
            match self {
                Self::Inner(e) => e.hint(),
                Self::Plain | Self::Stopped => None,
            }
        }
        fn exit_kind(&self) -> Option<ExitKind> {
            match self {
                Self::Inner(e) => e.exit_kind(),
                Self::Plain => None,
                Self::Stopped => Some(ExitKind::Terminated),
            }
        }
    }

    #[test]
    fn a_wrapper_answers_with_the_level_it_wraps_and_the_default_is_infrastructure() {
        let budget = Outer::Inner(Inner);
        assert_eq!(exit_kind(&budget), ExitKind::Budget);
        assert_eq!(hint(&budget).as_deref(), Some("raise the budget"));
        let shown = PaceError::from_error(&budget);
        assert_eq!((shown.kind, shown.message.as_str()), (ExitKind::Budget, "over budget"));
        assert_eq!(exit_kind(&Outer::Stopped), ExitKind::Terminated);
        assert_eq!(exit_kind(&Outer::Plain), ExitKind::Infrastructure);
        assert_eq!(hint(&Outer::Plain), None);
    }

    #[test]
    fn a_pace_error_keeps_its_kind_and_hint() {
        let e = PaceError::plan("day 9 is not planned").with_hint("add it");
        assert_eq!(exit_kind(&e), ExitKind::Plan);
        assert_eq!(hint(&e).as_deref(), Some("add it"));
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
