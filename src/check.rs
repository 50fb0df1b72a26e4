//! One line of `pace doctor`: what was checked, whether it passed, what was seen, and
//! what to do when it failed. The config, git, the LLM settings, the platforms and the
//! sandbox produce these; `commands::doctor` renders them. A leaf: it imports no pace
//! module, so every module can produce checks.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// Shown only when the check failed, one `hint:` line each.
    pub hints: Vec<String>,
}

impl Check {
    pub fn new(name: &'static str, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok,
            detail: detail.into(),
            hints: Vec::new(),
        }
    }

    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, true, detail)
    }

    pub fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, false, detail)
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Adds what an error's [`crate::error::Hint`] gave, if anything.
    #[must_use]
    pub fn with_hints(mut self, hints: impl IntoIterator<Item = String>) -> Self {
        self.hints.extend(hints);
        self
    }
}
