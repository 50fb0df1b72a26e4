//! Every environment variable pace reads, declared once, read through one seam.
//!
//! The process environment is snapshotted at start-up into [`Env`]; tests build an `Env`
//! from a map so nothing depends on the real environment of the test runner.

use std::collections::BTreeMap;

pub const PACE_DAY: &str = "PACE_DAY";
pub const PACE_RETRY: &str = "PACE_RETRY";
pub const PACE_PAUSED: &str = "PACE_PAUSED";
pub const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
pub const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
pub const GITLAB_TOKEN: &str = "GITLAB_TOKEN";
pub const GITLAB_PROJECT: &str = "GITLAB_PROJECT";
pub const GITLAB_URL: &str = "GITLAB_URL";
pub const CI_PROJECT_ID: &str = "CI_PROJECT_ID";
pub const CI_PROJECT_PATH: &str = "CI_PROJECT_PATH";
pub const CI_PROJECT_URL: &str = "CI_PROJECT_URL";
pub const CI_SERVER_URL: &str = "CI_SERVER_URL";
pub const CI_JOB_TOKEN: &str = "CI_JOB_TOKEN";
pub const CI_JOB_URL: &str = "CI_JOB_URL";
pub const CI_JOB_IMAGE: &str = "CI_JOB_IMAGE";
pub const GITLAB_CI: &str = "GITLAB_CI";
pub const NO_COLOR: &str = "NO_COLOR";

/// Name fragments that make a variable a secret (contract: "Secrets").
pub const SECRET_NAME_FRAGMENTS: [&str; 4] = ["TOKEN", "KEY", "SECRET", "PASSWORD"];

/// A snapshot of the environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// The value if set and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    pub fn is_true(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    }

    /// Values that must never appear in output: every variable whose name looks like a
    /// credential, plus the extra names pace uses as credentials (e.g. `llm.api_key_env`).
    pub fn secret_values(&self, extra_names: &[&str]) -> Vec<String> {
        self.vars
            .iter()
            .filter(|(name, _)| {
                let upper = name.to_ascii_uppercase();
                SECRET_NAME_FRAGMENTS.iter().any(|f| upper.contains(f)) || extra_names.contains(&name.as_str())
            })
            .map(|(_, value)| value.clone())
            // Very short values (e.g. "1") would redact ordinary text everywhere.
            .filter(|value| value.len() >= 4)
            .collect()
    }
}
