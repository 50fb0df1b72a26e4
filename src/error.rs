//! The one error type the binary renders, and the exit code each kind maps to.
//!
//! Modules keep their own `thiserror` enums; they convert into [`PaceError`] at the
//! edge of the day so that the exit code is decided in one place (contract: exit codes).

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

/// An error shown to a person: what failed, and optionally what to do next.
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
}

impl fmt::Display for PaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PaceError {}
