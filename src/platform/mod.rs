//! Where a day's result goes: a merge/pull request on SHIP, an escalation on HOLD, and
//! the push of the sprint branch. `local` (and every `--dry-run`) writes files instead.

use async_trait::async_trait;

use crate::artifacts::DayDir;
use crate::git::Git;
use crate::redact::Redactor;
use crate::report::summary::DaySummary;

pub mod bitbucket;
pub mod gitlab;
pub mod http;
pub mod jira;
pub mod local;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}")]
    Artifact(#[from] crate::artifacts::ArtifactError),
    /// `reason` is git's (redacted) message; `hint` what to change on the platform.
    #[error("push of `{branch}` was rejected: {reason}")]
    PushRejected {
        branch: String,
        reason: String,
        hint: Option<String>,
    },
    #[error("{platform} API call `{call}` failed: {message}")]
    Api {
        platform: &'static str,
        call: String,
        message: String,
    },
    /// The API answered `status`: `message` is the server's, `hint` what to change
    /// (the token's scopes, the project variables...).
    #[error("{platform} API call `{call}` failed: HTTP {status}: {message}")]
    Status {
        platform: &'static str,
        call: String,
        status: u16,
        message: String,
        hint: String,
    },
}

impl PlatformError {
    /// The message followed by its hint, for text without a `hint:` line of its own
    /// (warnings, GATE's CI evidence, `pace doctor`'s details).
    pub fn with_advice(&self) -> String {
        match crate::error::Hint::hint(self) {
            Some(hint) => format!("{self}; {hint}"),
            None => self.to_string(),
        }
    }
}

impl crate::error::Hint for PlatformError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::PushRejected { hint, .. } => hint.clone(),
            Self::Status { hint, .. } => Some(hint.clone()),
            Self::Artifact(_) | Self::Api { .. } => None,
        }
    }

    fn exit_kind(&self) -> Option<crate::error::ExitKind> {
        match self {
            Self::Artifact(e) => crate::error::Hint::exit_kind(e),
            Self::PushRejected { .. } | Self::Api { .. } | Self::Status { .. } => None,
        }
    }
}

/// What publishing produced: links for `run.json` and the dotenv report.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub url: Option<String>,
}

#[async_trait]
pub trait Platform: Send + Sync {
    fn name(&self) -> &'static str;
    /// Pushes the sprint branch (no-op for local). `day` is the day being published.
    async fn push(&self, git: &Git, branch: &str, day: &DayDir) -> Result<(), PlatformError>;
    /// SHIP: open or update the merge/pull request.
    async fn ship(&self, summary: &DaySummary, day: &DayDir) -> Result<Published, PlatformError>;
    /// HOLD after all retries: open or update the escalation.
    async fn escalate(&self, summary: &DaySummary, day: &DayDir) -> Result<Published, PlatformError>;
    /// A human-gate day: ask for a review.
    async fn request_review(&self, summary: &DaySummary, day: &DayDir) -> Result<Published, PlatformError> {
        self.ship(summary, day).await
    }
    /// `platform.wait_for_ci`: waits for the CI pipeline of the pushed `sha` and returns
    /// a one-line result for GATE's evidence; `None` where the platform has no CI to ask.
    async fn wait_for_ci(&self, _sha: &str) -> Result<Option<String>, PlatformError> {
        Ok(None)
    }
}

pub fn local(redactor: Redactor) -> Box<dyn Platform> {
    Box::new(local::LocalPlatform { redactor })
}

/// GitLab from the environment (`GITLAB_TOKEN`, `GITLAB_PROJECT`/`CI_PROJECT_ID`,
/// `GITLAB_URL`/`CI_SERVER_URL`); a missing variable or the CI job token is a config
/// error, reported before any LLM call.
pub fn gitlab(
    env: &crate::env::Env,
    settings: &crate::config::settings::PlatformSettings,
    redactor: Redactor,
) -> Result<Box<dyn Platform>, crate::error::PaceError> {
    let (config, token) = gitlab::GitlabConfig::from_env(env, settings)?;
    let platform = gitlab::GitlabPlatform::new(config, token, redactor)
        .map_err(|e| crate::error::PaceError::config(e.to_string()))?;
    Ok(Box::new(platform))
}

/// Bitbucket Cloud, with Jira as the escalation tracker when `platform.tracker: jira`.
/// Credentials and repository variables are checked here, before any LLM call.
pub fn bitbucket(
    settings: &crate::config::settings::PlatformSettings,
    env: &crate::env::Env,
    redactor: Redactor,
) -> Result<Box<dyn Platform>, crate::error::PaceError> {
    Ok(Box::new(bitbucket_platform(settings, env, redactor)?))
}

/// `pace doctor`'s lines for the configured platform (none for `local`): read-only API
/// calls checking the credentials, the project or repository and the target branch.
pub async fn doctor(
    settings: &crate::config::settings::PlatformSettings,
    env: &crate::env::Env,
    redactor: Redactor,
) -> Vec<crate::check::Check> {
    use crate::config::settings::PlatformKind;
    match settings.kind {
        PlatformKind::Local => Vec::new(),
        PlatformKind::Gitlab => gitlab::doctor(env, settings, redactor).await,
        PlatformKind::Bitbucket => bitbucket::doctor(settings, env, redactor).await,
    }
}

/// The concrete Bitbucket platform.
fn bitbucket_platform(
    settings: &crate::config::settings::PlatformSettings,
    env: &crate::env::Env,
    redactor: Redactor,
) -> Result<bitbucket::BitbucketPlatform, crate::error::PaceError> {
    let config = bitbucket::BitbucketConfig::from_env(env, settings)?;
    let jira = match settings.tracker.as_deref() {
        Some("jira") => Some(jira::Jira::from_env(
            env,
            settings.tracker_project.as_deref(),
            redactor.clone(),
        )?),
        _ => None,
    };
    bitbucket::BitbucketPlatform::new(config, jira, redactor)
}
