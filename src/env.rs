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
/// `true` in a GitLab CI job; read through [`Env::in_gitlab_ci`] (`GITLAB_CI=false` is not GitLab).
pub const GITLAB_CI: &str = "GITLAB_CI";
/// The project's default branch, in a GitLab CI job.
pub const CI_DEFAULT_BRANCH: &str = "CI_DEFAULT_BRANCH";
/// `true` when the pipeline's branch or tag is protected (chooses the cache volume).
pub const CI_COMMIT_REF_PROTECTED: &str = "CI_COMMIT_REF_PROTECTED";
pub const NO_COLOR: &str = "NO_COLOR";

// Bitbucket Cloud (`platform.type: bitbucket`).
/// Repository/project/workspace access token (`Authorization: Bearer`).
pub const BITBUCKET_ACCESS_TOKEN: &str = "BITBUCKET_ACCESS_TOKEN";
/// Atlassian account email, with `BITBUCKET_API_TOKEN` (user API token, Basic auth).
pub const BITBUCKET_EMAIL: &str = "BITBUCKET_EMAIL";
pub const BITBUCKET_API_TOKEN: &str = "BITBUCKET_API_TOKEN";
/// App-password variables: only read to explain that app passwords are gone.
pub const BITBUCKET_USER: &str = "BITBUCKET_USER";
pub const BITBUCKET_APP_PASSWORD: &str = "BITBUCKET_APP_PASSWORD";
/// Injected by Pipelines (when Pipelines is enabled for the repository).
pub const BITBUCKET_WORKSPACE: &str = "BITBUCKET_WORKSPACE";
pub const BITBUCKET_REPO_SLUG: &str = "BITBUCKET_REPO_SLUG";
pub const BITBUCKET_BUILD_NUMBER: &str = "BITBUCKET_BUILD_NUMBER";
/// The pipeline's branch (unset for tag and commit pipelines; chooses the cache volume).
pub const BITBUCKET_BRANCH: &str = "BITBUCKET_BRANCH";
pub const BITBUCKET_GIT_HTTP_ORIGIN: &str = "BITBUCKET_GIT_HTTP_ORIGIN";
/// API base override (default `https://api.bitbucket.org/2.0`).
pub const BITBUCKET_API_URL: &str = "BITBUCKET_API_URL";
/// Test seams: the URL the sprint branch is pushed to, and the Code Insights proxy.
pub const PACE_BITBUCKET_GIT_URL: &str = "PACE_BITBUCKET_GIT_URL";
pub const PACE_BITBUCKET_INSIGHTS_PROXY: &str = "PACE_BITBUCKET_INSIGHTS_PROXY";

// Jira Cloud (`platform.tracker: jira`).
pub const JIRA_URL: &str = "JIRA_URL";
pub const JIRA_EMAIL: &str = "JIRA_EMAIL";
pub const JIRA_API_TOKEN: &str = "JIRA_API_TOKEN";
/// Issue type of a HOLD escalation (default `Bug`).
pub const JIRA_HOLD_ISSUE_TYPE: &str = "JIRA_HOLD_ISSUE_TYPE";

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

    /// Whether this is a GitLab CI job: `GITLAB_CI` set to a true value (GitLab sets
    /// `true`; a user's `GITLAB_CI=false` to run a job script locally is not GitLab).
    pub fn in_gitlab_ci(&self) -> bool {
        self.is_true(GITLAB_CI)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_true_gitlab_ci_is_gitlab() {
        let env = |v: &str| Env::from_pairs([(GITLAB_CI, v)]);
        assert!(env("true").in_gitlab_ci());
        assert!(!env("false").in_gitlab_ci());
        assert!(!env("").in_gitlab_ci());
        assert!(!Env::default().in_gitlab_ci());
    }
}
