//! One problem found in a config or plan file, with its position, and the collector the
//! validators push problems into (so that every problem is reported at once).

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// `file:line:column: error|warning: message` (+ `hint:` on the next line).
///
/// `file` is relative to the repository root when the file lies inside it. `line` and
/// `column` are 1-based; `0` means "no position" (e.g. a file too large to read), and the
/// position is then left out of the rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub severity: Severity,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        write!(f, " {}: {}", self.severity, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The path to show for `file`: relative to `repo_root` when possible.
pub fn display_path(repo_root: &Path, file: &Path) -> PathBuf {
    file.strip_prefix(repo_root)
        .map_or_else(|_| file.to_path_buf(), Path::to_path_buf)
}

/// Collects the diagnostics of one file.
#[derive(Debug)]
pub struct Sink {
    file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl Sink {
    /// `file` is already the display path (see [`display_path`]).
    pub fn new(file: PathBuf) -> Self {
        Self {
            file,
            diagnostics: Vec::new(),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn push(
        &mut self,
        severity: Severity,
        line: u64,
        column: u64,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            severity,
            message: message.into(),
            hint,
        });
    }

    pub fn error(&mut self, line: u64, column: u64, message: impl Into<String>) {
        self.push(Severity::Error, line, column, message, None);
    }

    pub fn error_hint(&mut self, line: u64, column: u64, message: impl Into<String>, hint: impl Into<String>) {
        self.push(Severity::Error, line, column, message, Some(hint.into()));
    }

    pub fn warning(&mut self, line: u64, column: u64, message: impl Into<String>) {
        self.push(Severity::Warning, line, column, message, None);
    }

    pub fn warning_hint(&mut self, line: u64, column: u64, message: impl Into<String>, hint: impl Into<String>) {
        self.push(Severity::Warning, line, column, message, Some(hint.into()));
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The closest candidate to `word` (edit distance at most a third of its length, min 2).
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(suggest("sandbx", &["sandbox", "source"]), Some("sandbox"));
        assert_eq!(suggest("zzzzzz", &["sandbox", "source"]), None);
    }

    #[test]
    fn renders_without_position_when_unknown() {
        let d = Diagnostic {
            file: "pace.config.yaml".into(),
            line: 0,
            column: 0,
            severity: Severity::Error,
            message: "too large".into(),
            hint: Some("shrink it".into()),
        };
        assert_eq!(d.to_string(), "pace.config.yaml: error: too large\n  hint: shrink it");
    }
}
