//! GitLab (REST API v4): the sprint branch is pushed with the token (`oauth2` user), SHIP
//! opens one merge request per source branch (later days add a note and refresh the
//! description), HOLD opens one issue per day labelled `pace-hold`, `pace-day-N` (a re-run
//! adds a note), and `wait_for_ci` follows the pipeline of a pushed commit.
//!
//! Every call goes through [`ApiClient`] (auth, retries on 429/5xx); the answers each call
//! cannot use become errors that name the call, the project and what to do.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::http::{ApiClient, ApiResponse, Auth, Created};
use super::{Platform, PlatformError, Published};
use crate::artifacts::DayDir;
use crate::check::Check;
use crate::config::settings::PlatformSettings;
use crate::env::{self, Env};
use crate::error::PaceError;
use crate::git::Git;
use crate::redact::Redactor;
use crate::report::summary::{DaySummary, one_line};

const PLATFORM: &str = "gitlab";
const DEFAULT_URL: &str = "https://gitlab.com";
/// GitLab's limit for MR and issue titles.
const MAX_TITLE: usize = 255;
/// GitLab's limit for MR and issue descriptions.
const MAX_DESCRIPTION: usize = 1_000_000;
const TOKEN_HINT: &str = "create a project access token (Settings → Access tokens) with the `api` and `write_repository` scopes and the Developer role, and store it as the masked CI/CD variable `GITLAB_TOKEN`";

/// Where the project is and how to reach it, resolved from the environment.
#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// `https://host` without a trailing slash.
    pub base_url: String,
    /// The numeric id or the full path (`group/sub/proj`), as given.
    pub project: String,
    /// The full path when known (for the push URL).
    pub project_path: Option<String>,
    /// `CI_PROJECT_URL` when set.
    pub project_url: Option<String>,
    pub target_branch: Option<String>,
    pub job_url: Option<String>,
}

impl GitlabConfig {
    /// Reads `GITLAB_TOKEN`, `GITLAB_PROJECT` (default `CI_PROJECT_ID`) and `GITLAB_URL`
    /// (default `CI_SERVER_URL`, else gitlab.com); refuses the CI job token, which cannot
    /// create merge requests or issues. Returns the config and the token.
    pub fn from_env(env: &Env, settings: &PlatformSettings) -> Result<(Self, String), PaceError> {
        let job_token = env.get(env::CI_JOB_TOKEN);
        let token = match (env.get(env::GITLAB_TOKEN), job_token) {
            (Some(t), Some(job)) if t.trim() == job.trim() => {
                return Err(PaceError::config(
                    "`GITLAB_TOKEN` is the CI job token (`CI_JOB_TOKEN`), which cannot create merge requests or issues",
                )
                .with_hint(TOKEN_HINT));
            }
            (Some(t), _) => t.trim().to_string(),
            (None, Some(_)) => {
                return Err(PaceError::config(
                    "`GITLAB_TOKEN` is not set; the CI job token (`CI_JOB_TOKEN`) cannot create merge requests or issues",
                )
                .with_hint(TOKEN_HINT));
            }
            (None, None) => {
                return Err(
                    PaceError::config("`GITLAB_TOKEN` is not set (`platform.type: gitlab`)").with_hint(TOKEN_HINT)
                );
            }
        };
        let Some(project) = env
            .get(env::GITLAB_PROJECT)
            .or_else(|| env.get(env::CI_PROJECT_ID))
            .map(|p| p.trim().trim_matches('/').to_string())
        else {
            return Err(PaceError::config(
                "`GITLAB_PROJECT` is not set and `CI_PROJECT_ID` is not available",
            )
            .with_hint("set `GITLAB_PROJECT` to the project's numeric id or full path (`group/project`); inside GitLab CI, `CI_PROJECT_ID` is used"));
        };
        let base_url = env
            .get(env::GITLAB_URL)
            .or_else(|| env.get(env::CI_SERVER_URL))
            .unwrap_or(DEFAULT_URL)
            .trim()
            .trim_end_matches('/')
            .to_string();
        if Url::parse(&base_url).is_err() {
            return Err(PaceError::config(format!("`GITLAB_URL` is not a URL: `{base_url}`"))
                .with_hint("set `GITLAB_URL` to the instance's address, e.g. `https://gitlab.example.com`"));
        }
        let is_path = !project.chars().all(|c| c.is_ascii_digit());
        let project_path = if is_path {
            Some(project.clone())
        } else {
            env.get(env::CI_PROJECT_PATH)
                .map(|p| p.trim().trim_matches('/').to_string())
        };
        let config = Self {
            base_url,
            project,
            project_path,
            project_url: env
                .get(env::CI_PROJECT_URL)
                .map(|u| u.trim().trim_end_matches('/').to_string()),
            target_branch: settings.target_branch.clone(),
            job_url: env.get(env::CI_JOB_URL).map(str::to_string),
        };
        Ok((config, token))
    }

    /// The https URL to push to: `GITLAB_URL/<path>.git` when the path is known, else
    /// `CI_PROJECT_URL.git`, else `origin` rewritten to https without credentials.
    pub fn push_url(&self, git: &Git) -> Option<String> {
        if let Some(path) = &self.project_path
            && (self.project_url.is_none() || !self.project.chars().all(|c| c.is_ascii_digit()))
        {
            return Some(format!("{}/{path}.git", self.base_url));
        }
        if let Some(url) = &self.project_url {
            return Some(format!("{url}.git"));
        }
        git.remote_url("origin").and_then(|u| https_remote(&u))
    }
}

/// `origin` as an https URL without user info: `git@host:g/p.git` and
/// `https://user:pw@host/g/p.git` both become `https://host/g/p.git`.
pub fn https_remote(remote: &str) -> Option<String> {
    if let Ok(mut url) = Url::parse(remote) {
        if url.scheme() == "ssh" {
            let host = url.host_str()?.to_string();
            return Some(format!("https://{host}{}", url.path()));
        }
        if url.scheme() == "http" || url.scheme() == "https" {
            url.set_username("").ok()?;
            url.set_password(None).ok()?;
            return Some(url.to_string());
        }
        return None;
    }
    // scp-like syntax: user@host:path
    let (left, path) = remote.split_once(':')?;
    let host = left.rsplit('@').next()?;
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some(format!("https://{host}/{}", path.trim_start_matches('/')))
}

/// Kept for the tests' fake servers, which build the same header.
pub use crate::net::codec::base64;

/// Polling of `wait_for_ci` (tests shorten both).
#[derive(Debug, Clone, Copy)]
pub struct CiWait {
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for CiWait {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15 * 60),
            poll: Duration::from_secs(10),
        }
    }
}

pub struct GitlabPlatform {
    config: GitlabConfig,
    token: String,
    api: ApiClient,
    redactor: Redactor,
    pub ci_wait: CiWait,
}

/// An open MR or issue found or created.
struct Item {
    iid: u64,
    web_url: String,
}

impl GitlabPlatform {
    pub fn new(config: GitlabConfig, token: String, redactor: Redactor) -> Result<Self, PlatformError> {
        let api = ApiClient::new(PLATFORM, Auth::PrivateToken(token.clone()), redactor.clone())?;
        Ok(Self {
            config,
            token,
            api,
            redactor,
            ci_wait: CiWait::default(),
        })
    }

    /// Test seam: shorter backoff between retries.
    #[must_use]
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.api = self.api.with_base_delay(delay);
        self
    }

    pub fn config(&self) -> &GitlabConfig {
        &self.config
    }

    fn project(&self) -> &str {
        &self.config.project
    }

    /// `<base>/api/v4/<segments...>`, each segment percent-encoded (a project path's `/`
    /// becomes `%2F`), plus the query.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<String, PlatformError> {
        let mut url = Url::parse(&format!("{}/api/v4", self.config.base_url)).map_err(|e| PlatformError::Api {
            platform: PLATFORM,
            call: "url".into(),
            message: format!("`{}` is not a URL: {e}", self.config.base_url),
        })?;
        {
            let mut path = url.path_segments_mut().map_err(|()| PlatformError::Api {
                platform: PLATFORM,
                call: "url".into(),
                message: format!("`{}` cannot be a base URL", self.config.base_url),
            })?;
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url.to_string())
    }

    fn project_url(&self, tail: &[&str], query: &[(&str, &str)]) -> Result<String, PlatformError> {
        let mut segments = vec!["projects", self.project()];
        segments.extend_from_slice(tail);
        self.url(&segments, query)
    }

    /// The error for an answer `call` cannot use: what it means and what to do.
    fn fail(&self, call: &str, response: &ApiResponse) -> PlatformError {
        let project = self.project();
        let call = format!("{call} (project `{project}`)");
        let what = match response.status {
            StatusCode::UNAUTHORIZED => format!("the token in `GITLAB_TOKEN` is invalid, expired or revoked; {TOKEN_HINT}"),
            StatusCode::FORBIDDEN => format!(
                "the token lacks the `api` scope or the role this call needs on project `{project}`; {TOKEN_HINT}"
            ),
            StatusCode::NOT_FOUND => format!(
                "project `{project}` was not found or the token cannot see it; check `GITLAB_PROJECT` (numeric id or full path like `group/project`) and that the token belongs to that project"
            ),
            StatusCode::CONFLICT => "GitLab reports a conflicting object; re-run the day to adopt it".to_string(),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                "GitLab rejected the request's content (see its message); check `platform.target_branch` and the branch names".to_string()
            }
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => format!(
                "GitLab is rate-limiting or unavailable after {} attempts; re-run the day later (the work is pushed and committed)",
                super::http::MAX_ATTEMPTS
            ),
            _ => "unexpected answer; re-run with `-v` for details".to_string(),
        };
        self.api.error(&call, response, &what)
    }

    async fn send(
        &self,
        call: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, PlatformError> {
        self.api.send(call, method, url, body).await
    }

    async fn get_ok(&self, call: &str, url: &str) -> Result<Value, PlatformError> {
        let r = self.send(call, Method::GET, url, None).await?;
        if r.status.is_success() {
            Ok(r.body)
        } else {
            Err(self.fail(call, &r))
        }
    }

    fn item(&self, call: &str, value: &Value) -> Result<Item, PlatformError> {
        match (value["iid"].as_u64(), value["web_url"].as_str()) {
            (Some(iid), Some(web_url)) => Ok(Item {
                iid,
                web_url: web_url.to_string(),
            }),
            _ => Err(PlatformError::Api {
                platform: PLATFORM,
                call: call.to_string(),
                message: format!("the answer has no `iid`/`web_url` (project `{}`)", self.project()),
            }),
        }
    }

    /// The project's default branch (`GET /projects/:id`).
    pub async fn default_branch(&self) -> Result<String, PlatformError> {
        let call = "GET /projects/:id";
        let body = self.get_ok(call, &self.project_url(&[], &[])?).await?;
        body["default_branch"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| PlatformError::Api {
                platform: PLATFORM,
                call: call.into(),
                message: format!(
                    "project `{}` has no default branch (empty repository?); set `platform.target_branch`",
                    self.project()
                ),
            })
    }

    async fn find_open_mr(&self, source: &str) -> Result<Option<Item>, PlatformError> {
        let call = "GET /projects/:id/merge_requests";
        let url = self.project_url(&["merge_requests"], &[("source_branch", source), ("state", "opened")])?;
        let body = self.get_ok(call, &url).await?;
        match body.as_array().and_then(|a| a.first()) {
            Some(mr) => self.item(call, mr).map(Some),
            None => Ok(None),
        }
    }

    /// The open issue carrying all of `labels` (comma-separated), if any.
    async fn find_open_issue(&self, labels: &str) -> Result<Option<Item>, PlatformError> {
        let call = "GET /projects/:id/issues";
        let url = self.project_url(&["issues"], &[("labels", labels), ("state", "opened")])?;
        let found = self.get_ok(call, &url).await?;
        match found.as_array().and_then(|a| a.first()) {
            Some(issue) => self.item(call, issue).map(Some),
            None => Ok(None),
        }
    }

    /// Finds the open MR of `source` or creates it; a 409 (created meanwhile) is adopted.
    /// Returns the MR and whether it already existed.
    async fn open_mr(&self, source: &str, title: &str, description: &str) -> Result<(Item, bool), PlatformError> {
        if let Some(mr) = self.find_open_mr(source).await? {
            return Ok((mr, true));
        }
        let target = match &self.config.target_branch {
            Some(t) => t.clone(),
            None => self.default_branch().await?,
        };
        let call = "POST /projects/:id/merge_requests";
        let body = json!({
            "source_branch": source,
            "target_branch": target,
            "title": title,
            "description": description,
            "labels": "pace",
            "remove_source_branch": false,
        });
        let url = self.project_url(&["merge_requests"], &[])?;
        // An attempt whose answer was lost may have created it: look before posting again.
        let r = match self.api.create(call, &url, &body, || self.find_open_mr(source)).await? {
            Created::Found(mr) => return Ok((mr, false)),
            Created::Answer(r) => r,
        };
        if r.status.is_success() {
            return Ok((self.item(call, &r.body)?, false));
        }
        if r.status == StatusCode::CONFLICT
            && let Some(mr) = self.find_open_mr(source).await?
        {
            return Ok((mr, true));
        }
        Err(self.fail(call, &r))
    }

    async fn add_note(&self, kind: &str, iid: u64, text: &str) -> Result<(), PlatformError> {
        let call = format!("POST /projects/:id/{kind}/:iid/notes");
        let iid = iid.to_string();
        let url = self.project_url(&[kind, &iid, "notes"], &[])?;
        let r = self
            .send(&call, Method::POST, &url, Some(&json!({ "body": text })))
            .await?;
        if r.status.is_success() {
            Ok(())
        } else {
            Err(self.fail(&call, &r))
        }
    }

    async fn update_mr_description(&self, iid: u64, description: &str) -> Result<(), PlatformError> {
        let call = "PUT /projects/:id/merge_requests/:iid";
        let iid = iid.to_string();
        let url = self.project_url(&["merge_requests", &iid], &[])?;
        let r = self
            .send(call, Method::PUT, &url, Some(&json!({ "description": description })))
            .await?;
        if r.status.is_success() {
            Ok(())
        } else {
            Err(self.fail(call, &r))
        }
    }

    /// Every MR and issue title: redacted, inert, one line within GitLab's 255 characters.
    fn title(&self, text: &str) -> String {
        crate::inert::title(text, MAX_TITLE, &self.redactor)
    }

    /// Every description and note: redacted and inert (`crate::inert::markdown`: no
    /// quick action, escape, hidden HTML or mention acts), then cut to GitLab's limit.
    fn clean(&self, text: &str) -> String {
        let text = crate::inert::markdown(text, &self.redactor);
        crate::text::truncate_bytes(&text, MAX_DESCRIPTION, crate::text::TRUNCATED_NOTE)
    }

    /// Follows the newest pipeline of `sha` until a terminal status or the timeout; the
    /// answer is a one-line piece of evidence for GATE.
    pub async fn wait_for_pipeline(&self, sha: &str) -> Result<String, PlatformError> {
        let deadline = tokio::time::Instant::now() + self.ci_wait.timeout;
        let list_call = "GET /projects/:id/pipelines";
        let list = self.project_url(&["pipelines"], &[("sha", sha), ("order_by", "id"), ("sort", "desc")])?;
        let short = &sha[..sha.len().min(10)];
        loop {
            let body = self.get_ok(list_call, &list).await?;
            if let Some(id) = body.as_array().and_then(|a| a.first()).and_then(|p| p["id"].as_u64()) {
                let call = "GET /projects/:id/pipelines/:pipeline_id";
                let id_text = id.to_string();
                let url = self.project_url(&["pipelines", &id_text], &[])?;
                loop {
                    let p = self.get_ok(call, &url).await?;
                    let status = p["status"].as_str().unwrap_or("unknown");
                    if matches!(status, "success" | "failed" | "canceled" | "skipped") {
                        return Ok(format!(
                            "GitLab pipeline #{id} for `{short}`: {status} ({})",
                            p["web_url"].as_str().unwrap_or("no link")
                        ));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(format!(
                            "GitLab pipeline #{id} for `{short}` still `{status}` after {} s (timed out)",
                            self.ci_wait.timeout.as_secs()
                        ));
                    }
                    tokio::time::sleep(self.ci_wait.poll).await;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(format!(
                    "no GitLab pipeline appeared for `{short}` within {} s",
                    self.ci_wait.timeout.as_secs()
                ));
            }
            tokio::time::sleep(self.ci_wait.poll).await;
        }
    }

    /// What to change for a rejected push, from git's message.
    fn push_advice(&self, branch: &str, stderr: &str) -> String {
        let lower = stderr.to_ascii_lowercase();
        if lower.contains("protected branch") || lower.contains("not allowed to push code to protected") {
            format!(
                "`{branch}` is a protected branch: allow the token's role to push in Settings → Repository → Protected branches, or run the sprint on an unprotected branch"
            )
        } else if lower.contains("non-fast-forward")
            || lower.contains("fetch first")
            || lower.contains("rejected") && lower.contains("behind")
        {
            format!(
                "the remote `{branch}` has commits this checkout lacks: run the pipeline on the branch's latest commit (`GIT_STRATEGY: clone`, `GIT_DEPTH: 0`) and re-run the day"
            )
        } else if lower.contains("401")
            || lower.contains("authentication failed")
            || lower.contains("could not read username")
        {
            format!("GitLab refused the token for git: {TOKEN_HINT}")
        } else if lower.contains("403")
            || lower.contains("denied")
            || lower.contains("not allowed")
            || lower.contains("read-only")
            || lower.contains("readonly")
        {
            format!(
                "the token may read but not push: give it the `write_repository` scope and the Developer role (or higher); {TOKEN_HINT}"
            )
        } else if lower.contains("404") || lower.contains("not found") {
            format!(
                "the repository `{}` was not found for git: check `GITLAB_PROJECT`/`GITLAB_URL`",
                self.config.project_path.as_deref().unwrap_or(self.project())
            )
        } else {
            "check the network and the token's `write_repository` scope, then re-run the day".to_string()
        }
    }
}

#[async_trait]
impl Platform for GitlabPlatform {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    async fn push(&self, git: &Git, branch: &str, _day: &DayDir) -> Result<(), PlatformError> {
        let Some(url) = self.config.push_url(git) else {
            return Err(PlatformError::PushRejected {
                branch: branch.to_string(),
                reason: "no push URL".into(),
                hint: Some("set `GITLAB_PROJECT` to the project's full path (`group/project`), or run inside GitLab CI (`CI_PROJECT_URL`), or add an https `origin` remote".into()),
            });
        };
        let header = format!(
            "Authorization: Basic {}",
            base64(format!("oauth2:{}", self.token).as_bytes())
        );
        git.push(&url, branch, &header).await.map_err(|e| {
            let detail = self.redactor.redact(&e.to_string());
            PlatformError::PushRejected {
                branch: branch.to_string(),
                hint: Some(self.push_advice(branch, &detail)),
                reason: detail,
            }
        })
    }

    async fn ship(&self, summary: &DaySummary, _day: &DayDir) -> Result<Published, PlatformError> {
        let description = self.clean(&summary.render_merge_request(&self.redactor));
        let title = self.title(&summary.title(&self.redactor));
        let (mr, existed) = self.open_mr(&summary.branch, &title, &description).await?;
        if existed {
            let note = self.clean(&format!(
                "## Day {} shipped\n\n{}",
                summary.day,
                summary.render_merge_request(&self.redactor)
            ));
            self.add_note("merge_requests", mr.iid, &note).await?;
            self.update_mr_description(mr.iid, &description).await?;
        }
        Ok(Published { url: Some(mr.web_url) })
    }

    async fn request_review(&self, summary: &DaySummary, _day: &DayDir) -> Result<Published, PlatformError> {
        let text = format!(
            "Day {} is a human gate: review the sprint so far on `{}`, then run the next day.\n\n{}",
            summary.day,
            summary.branch,
            summary.render_markdown(&self.redactor)
        );
        let text = self.clean(&text);
        let title = self.title(&format!(
            "PACE review: Day {} human gate on {}",
            summary.day, summary.branch
        ));
        let (mr, existed) = self.open_mr(&summary.branch, &title, &text).await?;
        if existed {
            let note = self.clean(&format!("## Review requested (Day {})\n\n{text}", summary.day));
            self.add_note("merge_requests", mr.iid, &note).await?;
        }
        Ok(Published { url: Some(mr.web_url) })
    }

    async fn escalate(&self, summary: &DaySummary, _day: &DayDir) -> Result<Published, PlatformError> {
        let labels = format!("pace-hold,pace-day-{}", summary.day);
        let mut body = summary.render_escalation(&self.redactor);
        if let Some(job) = &self.config.job_url {
            body.push_str(&format!("\nJob: {job}\n"));
        }
        let body = self.clean(&body);
        if let Some(issue) = self.find_open_issue(&labels).await? {
            let note = self.clean(&format!("## Held again (attempt {})\n\n{body}", summary.attempt));
            self.add_note("issues", issue.iid, &note).await?;
            return Ok(Published {
                url: Some(issue.web_url),
            });
        }
        let call = "POST /projects/:id/issues";
        let title = self.title(&format!(
            "[PACE HOLD] Day {}: {}",
            summary.day,
            one_line(&summary.reason, 120)
        ));
        let request = json!({ "title": title, "description": body, "labels": labels });
        let url = self.project_url(&["issues"], &[])?;
        let r = match self
            .api
            .create(call, &url, &request, || self.find_open_issue(&labels))
            .await?
        {
            Created::Found(issue) => {
                return Ok(Published {
                    url: Some(issue.web_url),
                });
            }
            Created::Answer(r) => r,
        };
        if !r.status.is_success() {
            return Err(self.fail(call, &r));
        }
        let issue = self.item(call, &r.body)?;
        Ok(Published {
            url: Some(issue.web_url),
        })
    }

    async fn wait_for_ci(&self, sha: &str) -> Result<Option<String>, PlatformError> {
        self.wait_for_pipeline(sha).await.map(Some)
    }
}

/// `pace doctor` for GitLab: the variables, the token and its scopes, the project and
/// the target branch. No LLM call; read-only API calls. A failure that makes the later
/// checks meaningless ends the list.
pub async fn doctor(env: &Env, settings: &PlatformSettings, redactor: Redactor) -> Vec<Check> {
    let platform = match GitlabConfig::from_env(env, settings) {
        Ok((config, token)) => match GitlabPlatform::new(config, token, redactor) {
            Ok(p) => p,
            Err(e) => return vec![Check::fail("gitlab", e.with_advice())],
        },
        Err(e) => return vec![Check::fail("gitlab", e.message).with_hints(e.hint)],
    };
    let mut checks = Vec::new();
    match platform.token_check().await {
        Ok(c) => checks.push(c),
        Err(c) => return vec![c],
    }
    let default_branch = match platform.project_check().await {
        Ok((c, default_branch)) => {
            checks.push(c);
            default_branch
        }
        Err(c) => {
            checks.push(c);
            return checks;
        }
    };
    checks.push(platform.target_branch_check(default_branch).await);
    checks
}

impl GitlabPlatform {
    /// The token is valid and has the `api` scope (merge requests, issues, notes) and
    /// write access; `Err` when it is not valid at all.
    async fn token_check(&self) -> Result<Check, Check> {
        match self.token_scopes().await {
            Ok(Some(scopes)) => {
                let has_api = scopes.iter().any(|s| s == "api");
                let has_write = scopes.iter().any(|s| s == "write_repository" || s == "api");
                let check = Check::new(
                    "token",
                    has_api && has_write,
                    format!("valid; scopes: {}", scopes.join(", ")),
                );
                Ok(check.with_hints(
                    (!has_api).then(|| {
                        format!("the token lacks the `api` scope (merge requests, issues, notes); {TOKEN_HINT}")
                    }),
                ))
            }
            Ok(None) => Ok(Check::ok("token", "valid (scopes not readable on this GitLab version)")),
            Err(e) => Err(Check::fail("token", e.with_advice()).with_hint(TOKEN_HINT)),
        }
    }

    /// The project is found; with its default branch, if it has one.
    async fn project_check(&self) -> Result<(Check, Option<String>), Check> {
        let project = match self.project_url(&[], &[]) {
            Ok(url) => self.get_ok("GET /projects/:id", &url).await,
            Err(e) => return Err(Check::fail("project", e.with_advice())),
        };
        match project {
            Ok(p) => {
                let default_branch = p["default_branch"].as_str().map(str::to_string);
                let detail = format!(
                    "`{}` (default branch `{}`)",
                    p["path_with_namespace"].as_str().unwrap_or(self.project()),
                    default_branch.as_deref().unwrap_or("-")
                );
                Ok((Check::ok("project", detail), default_branch))
            }
            Err(e) => Err(Check::fail("project", e.with_advice()).with_hint(
                "set `GITLAB_PROJECT` to the numeric id or full path, and `GITLAB_URL` for a self-managed instance",
            )),
        }
    }

    /// The branch merge requests target (`platform.target_branch`, else the project's
    /// default branch) exists.
    async fn target_branch_check(&self, default_branch: Option<String>) -> Check {
        let Some(target) = self.config.target_branch.clone().or(default_branch) else {
            return Check::fail("branch", "no target branch: the project has no default branch")
                .with_hint("push an initial commit or set `platform.target_branch`");
        };
        let call = "GET /projects/:id/repository/branches/:branch";
        let result = match self.project_url(&["repository", "branches", &target], &[]) {
            Ok(url) => self.send(call, Method::GET, &url, None).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(r) if r.status.is_success() => Check::ok("branch", format!("target `{target}` exists")),
            Ok(r) if r.status == StatusCode::NOT_FOUND => Check::fail(
                "branch",
                format!("target branch `{target}` does not exist in `{}`", self.project()),
            )
            .with_hint("set `platform.target_branch` to an existing branch, or create it"),
            Ok(r) => Check::fail("branch", self.fail(call, &r).with_advice()),
            Err(e) => Check::fail("branch", e.with_advice()),
        }
    }
}

impl GitlabPlatform {
    /// The token's scopes (`GET /personal_access_tokens/self`, which also answers for
    /// project and group tokens); `None` when the instance cannot tell (then `GET /user`
    /// checks validity).
    pub async fn token_scopes(&self) -> Result<Option<Vec<String>>, PlatformError> {
        let call = "GET /personal_access_tokens/self";
        let r = self
            .send(
                call,
                Method::GET,
                &self.url(&["personal_access_tokens", "self"], &[])?,
                None,
            )
            .await?;
        if r.status.is_success() {
            let scopes = r.body["scopes"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            return Ok(Some(scopes));
        }
        if r.status == StatusCode::UNAUTHORIZED {
            return Err(self.fail(call, &r));
        }
        let call = "GET /user";
        let user = self.send(call, Method::GET, &self.url(&["user"], &[])?, None).await?;
        if user.status.is_success() {
            Ok(None)
        } else {
            Err(self.fail(call, &user))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_partial_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn settings() -> PlatformSettings {
        PlatformSettings {
            kind: crate::config::settings::PlatformKind::Gitlab,
            target_branch: None,
            tracker: None,
            tracker_project: None,
            wait_for_ci: false,
            allow_default_branch: false,
        }
    }

    fn platform(server: &MockServer) -> GitlabPlatform {
        let e = env(&[
            ("GITLAB_TOKEN", "glpat-unit"),
            ("GITLAB_PROJECT", "group/proj"),
            ("GITLAB_URL", &server.uri()),
        ]);
        let (config, token) = GitlabConfig::from_env(&e, &settings()).unwrap();
        GitlabPlatform::new(config, token, Redactor::new(vec!["glpat-unit".into()]))
            .unwrap()
            .with_retry_delay(Duration::from_millis(1))
    }

    #[test]
    fn job_token_and_missing_variables_are_refused() {
        let s = settings();
        let e =
            GitlabConfig::from_env(&env(&[("CI_JOB_TOKEN", "jt-1234"), ("GITLAB_TOKEN", "jt-1234")]), &s).unwrap_err();
        assert!(
            e.message.contains("CI_JOB_TOKEN") && e.hint.as_deref().unwrap_or("").contains("api"),
            "{e}"
        );
        let e = GitlabConfig::from_env(&env(&[("CI_JOB_TOKEN", "jt-1234")]), &s).unwrap_err();
        assert!(e.message.contains("GITLAB_TOKEN"), "{e}");
        let e = GitlabConfig::from_env(&env(&[("GITLAB_TOKEN", "glpat-x")]), &s).unwrap_err();
        assert!(e.message.contains("GITLAB_PROJECT"), "{e}");
        let (c, _) = GitlabConfig::from_env(
            &env(&[
                ("GITLAB_TOKEN", "glpat-x"),
                ("CI_PROJECT_ID", "42"),
                ("CI_SERVER_URL", "https://git.example.com/"),
            ]),
            &s,
        )
        .unwrap();
        assert_eq!(
            (c.project.as_str(), c.base_url.as_str()),
            ("42", "https://git.example.com")
        );
        let (c, _) =
            GitlabConfig::from_env(&env(&[("GITLAB_TOKEN", "glpat-x"), ("GITLAB_PROJECT", "g/p")]), &s).unwrap();
        assert_eq!(c.base_url, DEFAULT_URL);
    }

    #[test]
    fn origin_becomes_https_without_credentials() {
        assert_eq!(
            https_remote("https://gitlab-ci-token:abc@gitlab.com/g/p.git").as_deref(),
            Some("https://gitlab.com/g/p.git")
        );
        assert_eq!(
            https_remote("git@gitlab.com:g/sub/p.git").as_deref(),
            Some("https://gitlab.com/g/sub/p.git")
        );
        assert_eq!(
            https_remote("ssh://git@gitlab.com/g/p.git").as_deref(),
            Some("https://gitlab.com/g/p.git")
        );
    }

    #[tokio::test]
    async fn project_path_is_encoded_and_a_409_adopts_the_existing_mr() {
        let server = MockServer::start().await;
        let list = || {
            Mock::given(method("GET"))
                .and(path("/api/v4/projects/group%2Fproj/merge_requests"))
                .and(query_param("source_branch", "sprint/x"))
                .and(header("PRIVATE-TOKEN", "glpat-unit"))
        };
        // First lookup: none; after the 409: the one created meanwhile.
        list()
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        list()
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"iid": 1, "web_url": "http://x/mr/1"}])))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/group%2Fproj"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"default_branch": "main"})))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/api/v4/projects/group%2Fproj/merge_requests"))
            .and(body_partial_json(json!({"target_branch": "main", "labels": "pace"})))
            .respond_with(ResponseTemplate::new(409).set_body_json(
                json!({"message": ["Another open merge request already exists for this source branch: !1"]}),
            ))
            .mount(&server)
            .await;
        let p = platform(&server);
        let (mr, existed) = p.open_mr("sprint/x", "t", "d").await.unwrap();
        assert_eq!((mr.iid, existed, mr.web_url.as_str()), (1, true, "http://x/mr/1"));
    }

    #[tokio::test]
    async fn errors_name_the_call_the_project_and_what_to_do() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/group%2Fproj/merge_requests"))
            .respond_with(
                ResponseTemplate::new(403)
                    .set_body_json(json!({"message": "403 Forbidden", "error": "insufficient_scope"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/group%2Fproj"))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "404 Project Not Found"})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/group%2Fproj/issues"))
            .respond_with(ResponseTemplate::new(503).set_body_string("down"))
            .mount(&server)
            .await;
        let p = platform(&server);
        let err = p.find_open_mr("b").await.err().unwrap();
        // What to change is the hint, not part of the message.
        let hint = crate::error::Hint::hint(&err).unwrap_or_default();
        assert!(
            hint.contains("`api`") && !err.to_string().contains("`api`"),
            "{err} / {hint}"
        );
        let e = err.with_advice();
        assert!(
            e.contains("merge_requests") && e.contains("group/proj") && e.contains("`api`") && e.contains("403"),
            "{e}"
        );
        let e = p.default_branch().await.unwrap_err().with_advice();
        assert!(
            e.contains("404 Project Not Found") && e.contains("GITLAB_PROJECT"),
            "{e}"
        );
        let e = p
            .get_ok("GET /projects/:id/issues", &p.project_url(&["issues"], &[]).unwrap())
            .await
            .unwrap_err()
            .with_advice();
        assert!(e.contains("503") && e.contains("re-run"), "{e}");
        let calls = server.received_requests().await.unwrap();
        assert_eq!(
            calls.iter().filter(|r| r.url.path().ends_with("/issues")).count(),
            4,
            "503 retried"
        );
        let e422 = p.fail(
            "POST /projects/:id/merge_requests",
            &ApiResponse {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: json!({"message": {"target_branch": ["is invalid"]}}),
                text: String::new(),
            },
        );
        assert!(e422.to_string().contains("is invalid"), "{e422}");
    }

    #[tokio::test]
    async fn wait_for_ci_follows_the_pipeline_to_a_terminal_status() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/group%2Fproj/pipelines"))
            .and(query_param("sha", "abc123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 7, "status": "running"}])))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/group%2Fproj/pipelines/7"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 7, "status": "running"})))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/group%2Fproj/pipelines/7"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": 7, "status": "failed", "web_url": "http://x/p/7"})),
            )
            .mount(&server)
            .await;
        let mut p = platform(&server);
        p.ci_wait = CiWait {
            timeout: Duration::from_secs(5),
            poll: Duration::from_millis(5),
        };
        let evidence = p.wait_for_ci("abc123").await.unwrap().unwrap();
        assert!(evidence.contains("#7") && evidence.contains("failed"), "{evidence}");

        // A commit without a pipeline times out with a clear sentence.
        Mock::given(method("GET"))
            .and(path("/api/v4/projects/group%2Fproj/pipelines"))
            .and(query_param("sha", "none"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&server)
            .await;
        p.ci_wait.timeout = Duration::from_millis(30);
        let evidence = p.wait_for_pipeline("none").await.unwrap();
        assert!(evidence.contains("no GitLab pipeline"), "{evidence}");
    }
}
