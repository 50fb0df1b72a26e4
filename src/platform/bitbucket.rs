//! Bitbucket Cloud (`platform.type: bitbucket`), REST 2.0.
//!
//! Credentials (app passwords were removed on 2026-07-28):
//! - `BITBUCKET_ACCESS_TOKEN`: a repository, project or workspace access token, sent as
//!   `Authorization: Bearer`; git pushes as the user `x-token-auth`.
//! - `BITBUCKET_EMAIL` + `BITBUCKET_API_TOKEN`: a user API token with scopes, sent as Basic
//!   `email:token`; git pushes as the static user `x-bitbucket-api-token-auth` (the
//!   documented alternative to the Bitbucket username, which pace does not know).
//!
//! SHIP: one pull request per sprint branch, created once, a comment on later days. HOLD:
//! Bitbucket Issues were removed on 2026-08-20, so the escalation goes to Jira when
//! `platform.tracker: jira` is set, and always to a FAILED build status on the head commit,
//! a Code Insights report, and `.pace/day-N/escalation.md`.

use std::path::Path;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::http::{ApiClient, ApiResponse, Auth, Created};
use super::jira::Jira;
use super::{Platform, PlatformError, Published};
use crate::artifacts::{DayDir, PaceDir};
use crate::check::Check;
use crate::config::settings::PlatformSettings;
use crate::env::{self, Env};
use crate::error::PaceError;
use crate::git::Git;
use crate::net::codec::{encode_component, encode_path};
use crate::redact::Redactor;
use crate::report::summary::{DaySummary, one_line};

pub const DEFAULT_API_URL: &str = "https://api.bitbucket.org/2.0";
/// The Code Insights proxy every Pipelines step has (it adds the credentials itself).
pub const PIPELINES_PROXY: &str = "http://localhost:29418";
/// Bitbucket's limit for PR descriptions and comments is larger; keep bodies readable.
const MAX_BODY_CHARS: usize = 30_000;

const TOKEN_HINT: &str = "create a repository access token (Repository settings → Access tokens) with the scopes repository:write, pullrequest:write and pipeline:write (for the build status), and store it as the secured variable BITBUCKET_ACCESS_TOKEN; or a user API token with scopes (id.atlassian.com → Security → Create API token with scopes → Bitbucket: write:repository, write:pullrequest, write:pipeline) as BITBUCKET_API_TOKEN with BITBUCKET_EMAIL";

/// How pace authenticates to Bitbucket.
#[derive(Clone)]
pub enum Credential {
    /// Repository/project/workspace access token.
    AccessToken(String),
    /// User API token with the Atlassian account email.
    ApiToken { email: String, token: String },
}

impl Credential {
    fn auth(&self) -> Auth {
        match self {
            Self::AccessToken(t) => Auth::Bearer(t.clone()),
            Self::ApiToken { email, token } => Auth::Basic {
                user: email.clone(),
                secret: token.clone(),
            },
        }
    }

    /// The `http.extraHeader` for git over HTTPS.
    pub fn git_header(&self) -> String {
        let (user, secret) = match self {
            Self::AccessToken(t) => ("x-token-auth", t.as_str()),
            Self::ApiToken { token, .. } => ("x-bitbucket-api-token-auth", token.as_str()),
        };
        format!("Authorization: Basic {}", base64(format!("{user}:{secret}").as_bytes()))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccessToken(_) => "access token (BITBUCKET_ACCESS_TOKEN)",
            Self::ApiToken { .. } => "API token (BITBUCKET_EMAIL + BITBUCKET_API_TOKEN)",
        }
    }
}

/// Everything read from the environment, checked before any LLM call.
#[derive(Clone)]
pub struct BitbucketConfig {
    pub api_url: String,
    pub workspace: String,
    pub slug: String,
    pub credential: Credential,
    /// The repository's web URL (`BITBUCKET_GIT_HTTP_ORIGIN`, else bitbucket.org).
    pub web_url: String,
    pub git_url: String,
    pub build_number: Option<String>,
    /// The Code Insights proxy inside Pipelines (`None` outside: the API is called directly).
    pub insights_proxy: Option<String>,
    pub target_branch: Option<String>,
}

impl BitbucketConfig {
    pub fn from_env(env: &Env, platform: &PlatformSettings) -> Result<Self, PaceError> {
        let credential = credential(env)?;
        let mut names = Vec::new();
        for name in [env::BITBUCKET_WORKSPACE, env::BITBUCKET_REPO_SLUG] {
            match env.get(name) {
                Some(v) => names.push(v.trim().to_string()),
                None => {
                    return Err(PaceError::config(format!(
                        "`{name}` is empty: pace needs it to find the repository"
                    ))
                    .with_hint(format!(
                        "Bitbucket Pipelines injects `{name}` only when Pipelines is enabled for the repository (Repository settings → Pipelines → Settings); outside Pipelines, set it yourself"
                    )));
                }
            }
        }
        let (workspace, slug) = (names.remove(0), names.remove(0));
        let web_url = env
            .get(env::BITBUCKET_GIT_HTTP_ORIGIN)
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://bitbucket.org/{workspace}/{slug}"));
        let git_url = env
            .get(env::PACE_BITBUCKET_GIT_URL)
            .map(str::to_string)
            .unwrap_or_else(|| {
                // Pipelines gives the origin as http://; pushes always go over https.
                let https = web_url
                    .strip_prefix("http://")
                    .map(|rest| format!("https://{rest}"))
                    .unwrap_or_else(|| web_url.clone());
                format!("{https}.git")
            });
        let build_number = env.get(env::BITBUCKET_BUILD_NUMBER).map(str::to_string);
        let insights_proxy = env
            .get(env::PACE_BITBUCKET_INSIGHTS_PROXY)
            .map(str::to_string)
            .or_else(|| build_number.as_ref().map(|_| PIPELINES_PROXY.to_string()));
        Ok(Self {
            api_url: env
                .get(env::BITBUCKET_API_URL)
                .unwrap_or(DEFAULT_API_URL)
                .trim_end_matches('/')
                .to_string(),
            workspace,
            slug,
            credential,
            web_url,
            git_url,
            build_number,
            insights_proxy,
            target_branch: platform.target_branch.clone(),
        })
    }

    fn repo_url(&self) -> String {
        format!("{}/repositories/{}/{}", self.api_url, self.workspace, self.slug)
    }

    /// Where the FAILED status links: the pipeline run when inside Pipelines, else the repo.
    fn run_url(&self) -> String {
        match &self.build_number {
            Some(n) => format!("{}/pipelines/results/{n}", self.web_url),
            None => self.web_url.clone(),
        }
    }
}

/// The credential from the environment, or a configuration error saying what to create.
pub fn credential(env: &Env) -> Result<Credential, PaceError> {
    if let Some(token) = env.get(env::BITBUCKET_ACCESS_TOKEN) {
        return Ok(Credential::AccessToken(token.trim().to_string()));
    }
    match (env.get(env::BITBUCKET_EMAIL), env.get(env::BITBUCKET_API_TOKEN)) {
        (Some(email), Some(token)) => {
            return Ok(Credential::ApiToken {
                email: email.trim().to_string(),
                token: token.trim().to_string(),
            });
        }
        (None, Some(_)) => {
            return Err(PaceError::config(
                "`BITBUCKET_API_TOKEN` is set without `BITBUCKET_EMAIL`: a user API token authenticates with the Atlassian account email",
            )
            .with_hint("set BITBUCKET_EMAIL to the email of the account that created the token, or use a repository access token as BITBUCKET_ACCESS_TOKEN"));
        }
        _ => {}
    }
    if env.get(env::BITBUCKET_APP_PASSWORD).is_some() || env.get(env::BITBUCKET_USER).is_some() {
        return Err(PaceError::config(
            "`BITBUCKET_USER`/`BITBUCKET_APP_PASSWORD` are an app password: Bitbucket Cloud removed app passwords on 2026-07-28, so they can no longer push or call the API",
        )
        .with_hint(TOKEN_HINT));
    }
    Err(
        PaceError::config("`platform.type: bitbucket` needs a credential: `BITBUCKET_ACCESS_TOKEN`, or `BITBUCKET_EMAIL` with `BITBUCKET_API_TOKEN`")
            .with_hint(TOKEN_HINT),
    )
}

pub struct BitbucketPlatform {
    config: BitbucketConfig,
    api: ApiClient,
    jira: Option<Jira>,
    redactor: Redactor,
}

impl BitbucketPlatform {
    pub fn new(config: BitbucketConfig, jira: Option<Jira>, redactor: Redactor) -> Result<Self, PaceError> {
        let api = ApiClient::new("bitbucket", config.credential.auth(), redactor.clone())
            .map_err(|e| PaceError::infra(e.to_string()))?;
        Ok(Self {
            config,
            api,
            jira,
            redactor,
        })
    }

    fn hint(&self, call: &str, status: StatusCode) -> String {
        let repo = format!("{}/{}", self.config.workspace, self.config.slug);
        match status.as_u16() {
            401 => format!(
                "the {} was refused: check it is not expired or revoked (app passwords no longer work)",
                self.config.credential.kind()
            ),
            403 => format!(
                "the token lacks a scope for `{call}`: it needs repository:write, pullrequest:write and pipeline:write on `{repo}`"
            ),
            404 => format!(
                "repository `{repo}` not found for this token: check BITBUCKET_WORKSPACE and BITBUCKET_REPO_SLUG, and that the token belongs to this repository"
            ),
            400 => "Bitbucket refused the request; see its message".into(),
            _ => "Bitbucket answered with an error; try again later".into(),
        }
    }

    fn fail(&self, call: &str, response: &ApiResponse) -> PlatformError {
        let mut what = self.hint(call, response.status);
        if response.status == StatusCode::BAD_REQUEST
            && let Some(fields) = field_errors(&response.body)
        {
            what = format!("{what} ({fields})");
        }
        self.api.error(call, response, &what)
    }

    async fn call(
        &self,
        call: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, PlatformError> {
        let response = self.api.send(call, method, url, body).await?;
        if response.status.is_success() {
            Ok(response)
        } else {
            Err(self.fail(call, &response))
        }
    }

    /// `GET /repositories/{ws}/{slug}`: the repository (also checks the token reaches it).
    pub async fn repository(&self) -> Result<Value, PlatformError> {
        Ok(self
            .call("get repository", Method::GET, &self.config.repo_url(), None)
            .await?
            .body)
    }

    /// `platform.target_branch`, else the repository's main branch.
    pub async fn target_branch(&self) -> Result<String, PlatformError> {
        if let Some(b) = &self.config.target_branch {
            return Ok(b.clone());
        }
        let repo = self.repository().await?;
        Ok(repo
            .pointer("/mainbranch/name")
            .and_then(Value::as_str)
            .unwrap_or("main")
            .to_string())
    }

    /// `GET .../refs/branches/{b}`: whether the branch exists.
    pub async fn branch_exists(&self, branch: &str) -> Result<bool, PlatformError> {
        let call = "get branch";
        let url = format!("{}/refs/branches/{}", self.config.repo_url(), encode_path(branch));
        let response = self.api.send(call, Method::GET, &url, None).await?;
        match response.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(call, &response)),
        }
    }

    /// `GET /user` (API tokens) or the repository (access tokens act as their own bot user
    /// and cannot read `/user`): whether the credential is valid.
    pub async fn check_token(&self) -> Result<String, PlatformError> {
        match &self.config.credential {
            Credential::ApiToken { .. } => {
                let url = format!("{}/user", self.config.api_url);
                let user = self.call("get current user", Method::GET, &url, None).await?.body;
                Ok(format!(
                    "API token of `{}`",
                    user["display_name"].as_str().unwrap_or("unknown user")
                ))
            }
            Credential::AccessToken(_) => {
                self.repository().await?;
                Ok("access token accepted".into())
            }
        }
    }

    pub fn config(&self) -> &BitbucketConfig {
        &self.config
    }

    pub fn jira(&self) -> Option<&Jira> {
        self.jira.as_ref()
    }

    /// The open PR from `branch`, if any: (id, html url).
    async fn open_pull_request(&self, branch: &str) -> Result<Option<(u64, String)>, PlatformError> {
        let q = format!(
            "source.branch.name=\"{}\" AND state=\"OPEN\"",
            branch.replace('"', "\\\"")
        );
        let url = format!(
            "{}/pullrequests?q={}&pagelen=10",
            self.config.repo_url(),
            encode_component(&q)
        );
        let body = self.call("find open pull request", Method::GET, &url, None).await?.body;
        Ok(body["values"]
            .as_array()
            .and_then(|v| v.first())
            .and_then(|pr| Some((pr["id"].as_u64()?, html_link(pr))))
            .map(|(id, link)| (id, link.unwrap_or_else(|| self.pr_web_url(id)))))
    }

    fn pr_web_url(&self, id: u64) -> String {
        format!(
            "https://bitbucket.org/{}/{}/pull-requests/{id}",
            self.config.workspace, self.config.slug
        )
    }

    async fn create_pull_request(&self, title: &str, description: &str, branch: &str) -> Result<String, PlatformError> {
        let target = self.target_branch().await?;
        let body = json!({
            "title": one_line(title, 250),
            "description": description,
            "source": {"branch": {"name": branch}},
            "destination": {"branch": {"name": target}},
            "close_source_branch": false,
        });
        let url = format!("{}/pullrequests", self.config.repo_url());
        let call = "create pull request";
        // An attempt whose answer was lost may have opened it: look before posting again.
        let response = match self
            .api
            .create(call, &url, &body, || self.open_pull_request(branch))
            .await?
        {
            Created::Found((_, link)) => return Ok(link),
            Created::Answer(r) if r.status.is_success() => r,
            Created::Answer(r) => return Err(self.fail(call, &r)),
        };
        let pr = response.body;
        let id = pr["id"].as_u64().unwrap_or_default();
        Ok(html_link(&pr).unwrap_or_else(|| self.pr_web_url(id)))
    }

    async fn comment(&self, id: u64, text: &str) -> Result<(), PlatformError> {
        let url = format!("{}/pullrequests/{id}/comments", self.config.repo_url());
        let body = json!({"content": {"raw": text}});
        self.call("comment on pull request", Method::POST, &url, Some(&body))
            .await?;
        Ok(())
    }

    /// SHIP and review requests: create the PR once, comment on later days.
    async fn publish_pull_request(
        &self,
        summary: &DaySummary,
        title: &str,
        text: &str,
    ) -> Result<Published, PlatformError> {
        // Inert (and redacted) before the cut, so the cut cannot halve a secret.
        let text = truncate(&crate::inert::markdown(text, &self.redactor), MAX_BODY_CHARS);
        let title = crate::inert::title(title, 250, &self.redactor);
        let url = match self.open_pull_request(&summary.branch).await? {
            Some((id, url)) => {
                self.comment(id, &format!("**{title}**\n\n{text}")).await?;
                url
            }
            None => self.create_pull_request(&title, &text, &summary.branch).await?,
        };
        Ok(Published { url: Some(url) })
    }

    /// `POST .../commit/{sha}/statuses/build`: FAILED, linking the run.
    async fn failed_status(&self, summary: &DaySummary) -> Result<(), PlatformError> {
        let body = json!({
            "key": format!("pace-day-{}", summary.day),
            "state": "FAILED",
            "name": format!("PACE Day {}: HOLD", summary.day),
            "description": crate::inert::title(&summary.reason, 250, &self.redactor),
            "url": self.config.run_url(),
        });
        let url = format!("{}/commit/{}/statuses/build", self.config.repo_url(), summary.commit);
        self.call("set build status", Method::POST, &url, Some(&body)).await?;
        Ok(())
    }

    /// `PUT .../commit/{sha}/reports/pace-day-N`: a Code Insights report, through the
    /// Pipelines proxy when there is one (plain http: the proxy adds the credentials).
    async fn insights_report(&self, summary: &DaySummary) -> Result<(), PlatformError> {
        let id = format!("pace-day-{}", summary.day);
        let mut data = vec![
            json!({"title": "Attempts", "type": "NUMBER", "value": summary.attempt}),
            json!({"title": "Branch", "type": "TEXT", "value": summary.branch}),
        ];
        if let Some(gate) = &summary.gate {
            let run = &gate.test_run;
            data.push(json!({"title": "GATE", "type": "TEXT", "value": gate.gate_decision.as_str()}));
            data.push(json!({"title": "Tests", "type": "NUMBER", "value": run.tests}));
            data.push(json!({"title": "Failures", "type": "NUMBER", "value": run.failures.saturating_add(run.errors)}));
        }
        let body = json!({
            "title": format!("PACE Day {}", summary.day),
            "details": self.redactor.redact(&one_line(&format!("HOLD: {}", summary.reason), 1900)),
            "report_type": "TEST",
            "reporter": "pace",
            "result": "FAILED",
            "link": self.config.run_url(),
            "data": data,
        });
        let path = format!(
            "/repositories/{}/{}/commit/{}/reports/{id}",
            self.config.workspace, self.config.slug, summary.commit
        );
        let call = "post Code Insights report";
        match &self.config.insights_proxy {
            Some(proxy) => {
                let client = ApiClient::through_proxy("bitbucket", Auth::None, self.redactor.clone(), proxy)?;
                let base = self
                    .config
                    .api_url
                    .strip_prefix("https://")
                    .map(|rest| format!("http://{rest}"))
                    .unwrap_or_else(|| self.config.api_url.clone());
                let response = client
                    .send(call, Method::PUT, &format!("{base}{path}"), Some(&body))
                    .await?;
                if !response.status.is_success() {
                    return Err(client.error(
                        call,
                        &response,
                        &format!("the Pipelines proxy at {proxy} refused the report"),
                    ));
                }
            }
            None => {
                self.call(
                    call,
                    Method::PUT,
                    &format!("{}{path}", self.config.api_url),
                    Some(&body),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Inside Pipelines, the day's JUnit goes to `test-results/` for the Tests tab. Both
    /// the read and the write refuse links ([`crate::safe_write`]): a suite could leave
    /// `test-results -> /home/user` (overwriting outside the checkout) or
    /// `gate/junit.xml -> ~/.netrc` (uploading it). Best effort: a failure, a refusal
    /// included, is a warning and the day's result stands.
    fn copy_test_results(&self, root: &Path, day: u32) {
        if self.config.build_number.is_none() {
            return;
        }
        let junit = PaceDir::new(root).day(day).gate_junit();
        let target = Path::new("test-results").join(format!("pace-day-{day}.xml"));
        let copied = crate::safe_write::read_to_string(root, &junit).and_then(|xml| match xml {
            Some(xml) => crate::safe_write::write(root, &target, xml.as_bytes()),
            None => Ok(()),
        });
        if let Err(e) = copied {
            tracing::warn!("could not copy the JUnit report to test-results/: {e}");
        }
    }
}

#[async_trait]
impl Platform for BitbucketPlatform {
    fn name(&self) -> &'static str {
        "bitbucket"
    }

    async fn push(&self, git: &Git, branch: &str, day: &DayDir) -> Result<(), PlatformError> {
        self.copy_test_results(git.root(), day.day);
        let header = self.config.credential.git_header();
        let Err(e) = git.push(&self.config.git_url, branch, &header).await else {
            return Ok(());
        };
        // The day's commits go to `changes.patch` in `finish()`, for every platform.
        Err(PlatformError::PushRejected {
            branch: branch.to_string(),
            reason: self.redactor.redact(&e.to_string()),
            hint: Some(format!(
                "check that the {} has repository:write (write:repository for API tokens) and that `{branch}` is not protected against this user (Repository settings → Branch restrictions)",
                self.config.credential.kind()
            )),
        })
    }

    async fn ship(&self, summary: &DaySummary, _day: &DayDir) -> Result<Published, PlatformError> {
        let text = format!(
            "Source branch: `{}`\n\n{}",
            summary.branch,
            summary.render_merge_request(&self.redactor)
        );
        self.publish_pull_request(summary, &summary.title(&self.redactor), &text)
            .await
    }

    async fn request_review(&self, summary: &DaySummary, _day: &DayDir) -> Result<Published, PlatformError> {
        let text = format!(
            "Day {} is a human gate: review the sprint so far on `{}`, then run the next day.\n\n{}",
            summary.day,
            summary.branch,
            summary.render_markdown(&self.redactor)
        );
        let title = format!("[PACE review] Day {}: human gate", summary.day);
        self.publish_pull_request(summary, &title, &text).await
    }

    async fn escalate(&self, summary: &DaySummary, day: &DayDir) -> Result<Published, PlatformError> {
        // The escalation text always stays in the artifacts.
        let local = super::local::LocalPlatform {
            redactor: self.redactor.clone(),
        }
        .escalate(summary, day)
        .await?;
        let mut problems = Vec::new();
        if let Err(e) = self.failed_status(summary).await {
            problems.push(e.with_advice());
        }
        if let Err(e) = self.insights_report(summary).await {
            problems.push(e.with_advice());
        }
        let published = match &self.jira {
            Some(jira) => {
                let title = format!("[PACE HOLD] Day {}: {}", summary.day, one_line(&summary.reason, 120));
                let text = summary.render_escalation(&self.redactor);
                match jira
                    .escalate(summary.day, &crate::inert::title(&title, 250, &self.redactor), &text)
                    .await
                {
                    Ok(issue) => Some(Published { url: Some(issue.url) }),
                    Err(e) => {
                        problems.push(e.with_advice());
                        None
                    }
                }
            }
            None => {
                tracing::warn!(
                    "no issue tracker: Bitbucket Issues were removed on 2026-08-20; the escalation is in {} (set `platform.tracker: jira` to open a Jira issue)",
                    day.escalation().display()
                );
                Some(local)
            }
        };
        match published {
            // The issue exists: its link is what the run records; the rest is a warning.
            Some(p) => {
                for problem in &problems {
                    tracing::warn!("{problem}");
                }
                Ok(p)
            }
            None => Err(PlatformError::Api {
                platform: "bitbucket",
                call: "escalate".into(),
                message: format!(
                    "{} (the escalation text is in {})",
                    problems.join("; "),
                    day.escalation().display()
                ),
            }),
        }
    }
}

fn html_link(value: &Value) -> Option<String> {
    value
        .pointer("/links/html/href")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `pace doctor` for Bitbucket: the credential, the token, the repository, the target
/// branch, and Jira when it is the tracker. Read-only calls; no LLM. A failure that makes
/// the later checks meaningless ends the list.
pub async fn doctor(settings: &PlatformSettings, env: &Env, redactor: Redactor) -> Vec<Check> {
    let platform = match super::bitbucket_platform(settings, env, redactor) {
        Ok(p) => p,
        Err(e) => return vec![Check::fail("bitbucket", e.message).with_hints(e.hint)],
    };
    let token = platform.token_check().await;
    if !token.ok {
        return vec![token];
    }
    let repository = platform.repository_check().await;
    if !repository.ok {
        return vec![token, repository];
    }
    let mut checks = vec![token, repository];
    checks.push(platform.target_branch_check().await);
    checks.push(platform.tracker_check().await);
    checks
}

impl BitbucketPlatform {
    async fn token_check(&self) -> Check {
        match self.check_token().await {
            Ok(detail) => Check::ok("token", detail),
            Err(e) => Check::fail("token", e.with_advice()).with_hint(
                "create a repository access token (repository:write, pullrequest:write, pipeline:write) as BITBUCKET_ACCESS_TOKEN, or a user API token with scopes as BITBUCKET_API_TOKEN with BITBUCKET_EMAIL",
            ),
        }
    }

    fn repository_name(&self) -> String {
        format!("{}/{}", self.config().workspace, self.config().slug)
    }

    async fn repository_check(&self) -> Check {
        match self.repository().await {
            Ok(_) => Check::ok("repo", format!("repository `{}` found", self.repository_name())),
            Err(e) => Check::fail("repo", e.with_advice()).with_hint(
                "check BITBUCKET_WORKSPACE and BITBUCKET_REPO_SLUG (Pipelines injects them when Pipelines is enabled)",
            ),
        }
    }

    async fn target_branch_check(&self) -> Check {
        let branch = match self.target_branch().await {
            Ok(b) => b,
            Err(e) => return Check::fail("branch", e.with_advice()),
        };
        match self.branch_exists(&branch).await {
            Ok(true) => Check::ok("branch", format!("target branch `{branch}` exists")),
            Ok(false) => Check::fail(
                "branch",
                format!(
                    "target branch `{branch}` does not exist in `{}`",
                    self.repository_name()
                ),
            )
            .with_hint("set `platform.target_branch` to an existing branch, or push it first"),
            Err(e) => Check::fail("branch", e.with_advice()),
        }
    }

    async fn tracker_check(&self) -> Check {
        match self.jira() {
            Some(jira) => jira.doctor_check().await,
            None => Check::ok(
                "tracker",
                "no Jira: a HOLD is a FAILED build status, a Code Insights report and .pace/day-N/escalation.md (Bitbucket Issues were removed on 2026-08-20)",
            ),
        }
    }
}

/// Bitbucket's 400 details: `error.fields` is `{field: [messages]}`.
fn field_errors(body: &Value) -> Option<String> {
    let fields = body.pointer("/error/fields")?.as_object()?;
    let parts: Vec<String> = fields
        .iter()
        .map(|(name, msgs)| {
            let text = match msgs {
                Value::Array(items) => items
                    .iter()
                    .map(|m| m.as_str().map(str::to_string).unwrap_or_else(|| m.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{name}: {text}")
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn truncate(text: &str, max: usize) -> String {
    crate::text::truncate_chars(text, max, crate::text::TRUNCATED_NOTE)
}

/// Kept for the tests' fake servers, which build the same header.
pub use crate::net::codec::base64;

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    fn settings() -> PlatformSettings {
        PlatformSettings {
            kind: crate::config::settings::PlatformKind::Bitbucket,
            target_branch: None,
            tracker: None,
            tracker_project: None,
            wait_for_ci: false,
            allow_default_branch: false,
        }
    }

    #[test]
    fn git_users_follow_the_token_kind() {
        assert_eq!(
            Credential::AccessToken("tok".into()).git_header(),
            format!("Authorization: Basic {}", base64(b"x-token-auth:tok"))
        );
        let api = Credential::ApiToken {
            email: "a@b.c".into(),
            token: "tok".into(),
        };
        assert_eq!(
            api.git_header(),
            format!("Authorization: Basic {}", base64(b"x-bitbucket-api-token-auth:tok"))
        );
    }

    #[test]
    fn app_passwords_are_refused_with_the_removal_date() {
        let e = credential(&env(&[
            ("BITBUCKET_USER", "ada"),
            ("BITBUCKET_APP_PASSWORD", "pw-1234"),
        ]))
        .err()
        .unwrap();
        assert!(e.message.contains("2026-07-28"), "{}", e.message);
        assert!(e.hint.unwrap().contains("pullrequest:write"));
        // The new variables win when both are set.
        let c = credential(&env(&[
            ("BITBUCKET_APP_PASSWORD", "pw-1234"),
            ("BITBUCKET_ACCESS_TOKEN", "at-1234"),
        ]))
        .unwrap();
        assert!(matches!(c, Credential::AccessToken(t) if t == "at-1234"));
    }

    #[test]
    fn urls_come_from_pipelines_variables() {
        let c = BitbucketConfig::from_env(
            &env(&[
                ("BITBUCKET_ACCESS_TOKEN", "at-1234"),
                ("BITBUCKET_WORKSPACE", "acme"),
                ("BITBUCKET_REPO_SLUG", "greeter"),
                ("BITBUCKET_GIT_HTTP_ORIGIN", "http://bitbucket.org/acme/greeter"),
                ("BITBUCKET_BUILD_NUMBER", "42"),
            ]),
            &settings(),
        )
        .unwrap();
        assert_eq!(c.git_url, "https://bitbucket.org/acme/greeter.git");
        assert_eq!(c.run_url(), "http://bitbucket.org/acme/greeter/pipelines/results/42");
        assert_eq!(c.insights_proxy.as_deref(), Some(PIPELINES_PROXY));
        assert_eq!(c.repo_url(), "https://api.bitbucket.org/2.0/repositories/acme/greeter");
        let outside = BitbucketConfig::from_env(
            &env(&[
                ("BITBUCKET_ACCESS_TOKEN", "at-1234"),
                ("BITBUCKET_WORKSPACE", "acme"),
                ("BITBUCKET_REPO_SLUG", "greeter"),
            ]),
            &settings(),
        )
        .unwrap();
        assert_eq!(outside.insights_proxy, None);
        assert_eq!(outside.run_url(), "https://bitbucket.org/acme/greeter");
    }

    fn pipelines_platform() -> BitbucketPlatform {
        let config = BitbucketConfig::from_env(
            &env(&[
                ("BITBUCKET_ACCESS_TOKEN", "at-1234"),
                ("BITBUCKET_WORKSPACE", "acme"),
                ("BITBUCKET_REPO_SLUG", "greeter"),
                ("BITBUCKET_BUILD_NUMBER", "42"),
            ]),
            &settings(),
        )
        .unwrap();
        BitbucketPlatform::new(config, None, Redactor::default()).unwrap()
    }

    #[test]
    fn test_results_are_copied_without_following_links() {
        let platform = pipelines_platform();
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(repo.join(".pace/day-1/gate")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(repo.join(".pace/day-1/gate/junit.xml"), "<testsuite name=\"greeter\"/>").unwrap();
        std::fs::write(outside.join("secret"), "machine example.com password hunter2").unwrap();

        // `test-results` leads outside: nothing is written there.
        std::os::unix::fs::symlink(&outside, repo.join("test-results")).unwrap();
        platform.copy_test_results(&repo, 1);
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);

        // The report itself leads outside: it is not copied (nor uploaded by Pipelines).
        std::fs::remove_file(repo.join("test-results")).unwrap();
        std::fs::rename(
            repo.join(".pace/day-1/gate/junit.xml"),
            repo.join(".pace/day-1/gate/real.xml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), repo.join(".pace/day-1/gate/junit.xml")).unwrap();
        platform.copy_test_results(&repo, 1);
        assert!(!repo.join("test-results").exists());

        std::fs::remove_file(repo.join(".pace/day-1/gate/junit.xml")).unwrap();
        std::fs::rename(
            repo.join(".pace/day-1/gate/real.xml"),
            repo.join(".pace/day-1/gate/junit.xml"),
        )
        .unwrap();
        platform.copy_test_results(&repo, 1);
        assert_eq!(
            std::fs::read_to_string(repo.join("test-results/pace-day-1.xml")).unwrap(),
            "<testsuite name=\"greeter\"/>"
        );
    }

    #[test]
    fn field_errors_are_spelled_out() {
        let body = json!({"type": "error", "error": {"message": "Bad request", "fields": {"destination": ["Branch not found"]}}});
        assert_eq!(field_errors(&body).unwrap(), "destination: Branch not found");
    }
}
