//! Jira Cloud as the escalation tracker (`platform.tracker: jira`): REST v3, Basic auth
//! with the Atlassian account email and an API token, bodies in Atlassian Document Format.
//!
//! A HOLD finds the open issue of the day by its labels (`pace-hold`, `pace-day-N`) and
//! comments on it; only when there is none is an issue created.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::PlatformError;
use super::http::{ApiClient, Auth, Created};
use crate::check::Check;
use crate::env::{self, Env};
use crate::error::PaceError;
use crate::net::codec::encode_component;
use crate::redact::Redactor;

/// Jira's limit for a description or comment is 32767 characters; stay well below.
const MAX_BODY_CHARS: usize = 30_000;

pub struct Jira {
    api: ApiClient,
    base: String,
    project: String,
    issue_type: String,
}

/// The issue a HOLD ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraIssue {
    pub key: String,
    pub url: String,
    pub created: bool,
}

impl Jira {
    /// Reads `JIRA_URL`, `JIRA_EMAIL`, `JIRA_API_TOKEN`; `project` is `platform.tracker.project`.
    /// A missing value is a configuration error naming it.
    pub fn from_env(env: &Env, project: Option<&str>, redactor: Redactor) -> Result<Self, PaceError> {
        let mut missing = Vec::new();
        for name in [env::JIRA_URL, env::JIRA_EMAIL, env::JIRA_API_TOKEN] {
            if env.get(name).is_none() {
                missing.push(format!("`{name}`"));
            }
        }
        let project = project.map(str::trim).filter(|p| !p.is_empty());
        if project.is_none() {
            missing.push("`platform.tracker.project` (the Jira project key)".into());
        }
        let (Some(url), Some(email), Some(token), Some(project)) = (
            env.get(env::JIRA_URL),
            env.get(env::JIRA_EMAIL),
            env.get(env::JIRA_API_TOKEN),
            project,
        ) else {
            return Err(PaceError::config(format!(
                "`platform.tracker: jira` needs {}",
                missing.join(", ")
            ))
            .with_hint(
                "set JIRA_URL (https://<site>.atlassian.net), JIRA_EMAIL (the Atlassian account email) and JIRA_API_TOKEN (id.atlassian.com → Security → API tokens) as secured variables, and `platform.tracker: {type: jira, project: KEY}` in the config",
            ));
        };
        let api = ApiClient::new(
            "jira",
            Auth::Basic {
                user: email.to_string(),
                secret: token.to_string(),
            },
            redactor,
        )
        .map_err(|e| PaceError::infra(e.to_string()))?;
        Ok(Self {
            api,
            base: url.trim_end_matches('/').to_string(),
            project: project.to_string(),
            issue_type: env.get(env::JIRA_HOLD_ISSUE_TYPE).unwrap_or("Bug").to_string(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    fn browse(&self, key: &str) -> String {
        format!("{}/browse/{key}", self.base)
    }

    /// Opens the HOLD escalation of `day`, or comments on the open one.
    pub async fn escalate(&self, day: u32, summary: &str, body_markdown: &str) -> Result<JiraIssue, PlatformError> {
        let labels = [String::from("pace-hold"), format!("pace-day-{day}")];
        // ADF text nodes are shown as they are: only the controls need to go (the caller
        // rendered the body through `inert::markdown`, redacted).
        let body = adf(&crate::inert::jira(&truncate(body_markdown, MAX_BODY_CHARS)));
        if let Some(key) = self.find_open(&labels).await? {
            self.comment(&key, body).await?;
            return Ok(JiraIssue {
                url: self.browse(&key),
                key,
                created: false,
            });
        }
        let key = self.create(summary, body, &labels).await?;
        Ok(JiraIssue {
            url: self.browse(&key),
            key,
            created: true,
        })
    }

    /// The key of the first issue of the project with all `labels` that is not done.
    pub async fn find_open(&self, labels: &[String]) -> Result<Option<String>, PlatformError> {
        let call = "search open escalation";
        let mut jql = format!("project = \"{}\"", self.project);
        for l in labels {
            jql.push_str(&format!(" AND labels = \"{l}\""));
        }
        jql.push_str(" AND statusCategory != Done ORDER BY created DESC");
        let url = format!(
            "{}/rest/api/3/search/jql?jql={}&fields=summary&maxResults=1",
            self.base,
            encode_component(&jql)
        );
        let response = self.api.send(call, Method::GET, &url, None).await?;
        if response.status != StatusCode::OK {
            return Err(self.api.error(call, &response, &self.hint(response.status)));
        }
        Ok(response.body["issues"]
            .as_array()
            .and_then(|issues| issues.first())
            .and_then(|i| i["key"].as_str())
            .map(str::to_string))
    }

    async fn create(&self, summary: &str, description: Value, labels: &[String]) -> Result<String, PlatformError> {
        let call = "create escalation issue";
        let body = json!({
            "fields": {
                "project": {"key": self.project},
                "summary": crate::report::summary::one_line(&crate::inert::jira(summary), 250),
                "description": description,
                "issuetype": {"name": self.issue_type},
                "labels": labels,
            }
        });
        let url = format!("{}/rest/api/3/issue", self.base);
        // An attempt whose answer was lost may have created it: look before posting again.
        let response = match self.api.create(call, &url, &body, || self.find_open(labels)).await? {
            Created::Found(key) => return Ok(key),
            Created::Answer(r) => r,
        };
        if response.status != StatusCode::CREATED {
            return Err(self.api.error(call, &response, &self.hint(response.status)));
        }
        response.body["key"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.api.error(call, &response, "the answer has no issue key"))
    }

    async fn comment(&self, key: &str, body: Value) -> Result<(), PlatformError> {
        let call = "comment on escalation issue";
        let url = format!("{}/rest/api/3/issue/{key}/comment", self.base);
        let response = self
            .api
            .send(call, Method::POST, &url, Some(&json!({ "body": body })))
            .await?;
        if response.status != StatusCode::CREATED {
            return Err(self.api.error(call, &response, &self.hint(response.status)));
        }
        Ok(())
    }

    /// `GET /rest/api/3/myself` then `GET /rest/api/3/project/{key}` (for `pace doctor`).
    pub async fn check(&self) -> Result<String, PlatformError> {
        let call = "current user";
        let response = self
            .api
            .send(call, Method::GET, &format!("{}/rest/api/3/myself", self.base), None)
            .await?;
        if response.status != StatusCode::OK {
            return Err(self.api.error(call, &response, &self.hint(response.status)));
        }
        let call = "project";
        let url = format!("{}/rest/api/3/project/{}", self.base, self.project);
        let response = self.api.send(call, Method::GET, &url, None).await?;
        if response.status != StatusCode::OK {
            return Err(self.api.error(call, &response, &self.hint(response.status)));
        }
        Ok(format!("{} project `{}` reachable", self.base, self.project))
    }

    /// `pace doctor`'s line for Jira as the escalation tracker.
    pub async fn doctor_check(&self) -> Check {
        match self.check().await {
            Ok(detail) => Check::ok("jira", detail),
            Err(e) => Check::fail("jira", e.with_advice())
                .with_hint("check JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and `platform.tracker.project`"),
        }
    }

    fn hint(&self, status: StatusCode) -> String {
        match status.as_u16() {
            401 => {
                "check JIRA_EMAIL (the Atlassian account email) and JIRA_API_TOKEN (not expired, not revoked)".into()
            }
            403 => format!(
                "the account needs Browse, Create issues and Add comments in project `{}`",
                self.project
            ),
            404 => format!(
                "check JIRA_URL `{}` and the project key `{}` (`platform.tracker.project`)",
                self.base, self.project
            ),
            400 => format!(
                "the project must have the issue type `{}` (JIRA_HOLD_ISSUE_TYPE) and allow labels",
                self.issue_type
            ),
            _ => "try again later; Jira answered with an error".into(),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    crate::text::truncate_chars(text, max, crate::text::TRUNCATED_NOTE)
}

/// Markdown as pace renders it (paragraphs, `## ` headings, `- ` lists, tables) to an
/// Atlassian Document Format document: headings, bullet lists, and paragraphs whose lines
/// are separated by hard breaks. Jira rejects empty text nodes, so none are produced.
pub fn adf(markdown: &str) -> Value {
    let mut content = Vec::new();
    for block in markdown.split("\n\n") {
        let lines: Vec<&str> = block
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        if lines.len() == 1
            && let Some((level, text)) = heading(lines[0])
        {
            content.push(json!({"type": "heading", "attrs": {"level": level}, "content": [text_node(text)]}));
            continue;
        }
        if lines.iter().all(|l| l.starts_with("- ")) {
            let items: Vec<Value> = lines
                .iter()
                .map(|l| json!({"type": "listItem", "content": [paragraph(&[l[2..].trim()])]}))
                .collect();
            content.push(json!({"type": "bulletList", "content": items}));
            continue;
        }
        content.push(paragraph(&lines));
    }
    if content.is_empty() {
        content.push(paragraph(&["(no details)"]));
    }
    json!({"version": 1, "type": "doc", "content": content})
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    let text = line[hashes..].strip_prefix(' ')?.trim();
    ((1..=6).contains(&hashes) && !text.is_empty()).then_some((hashes, text))
}

fn text_node(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn paragraph(lines: &[&str]) -> Value {
    let mut nodes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            nodes.push(json!({"type": "hardBreak"}));
        }
        let text = if line.trim().is_empty() { " " } else { line };
        nodes.push(text_node(text));
    }
    json!({"type": "paragraph", "content": nodes})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adf_has_headings_lists_and_paragraphs_without_empty_text() {
        let doc = adf("PACE held Day 1.\n\n**Hold reason:** x\n**Target:** y\n\n## What to do\n\n- one\n- two\n\n\n");
        assert_eq!(doc["type"], "doc");
        assert_eq!(doc["version"], 1);
        let content = doc["content"].as_array().unwrap();
        assert_eq!(content[0]["type"], "paragraph");
        assert_eq!(content[1]["content"][1]["type"], "hardBreak");
        assert_eq!(content[2]["type"], "heading");
        assert_eq!(content[2]["attrs"]["level"], 2);
        assert_eq!(content[3]["type"], "bulletList");
        assert_eq!(content[3]["content"][1]["content"][0]["content"][0]["text"], "two");
        assert!(!doc.to_string().contains("\"text\":\"\""));
        assert_eq!(adf("")["content"][0]["type"], "paragraph");
    }

    #[test]
    fn missing_jira_variables_are_named() {
        let env = Env::from_pairs([("JIRA_URL", "https://x.atlassian.net")]);
        let Err(e) = Jira::from_env(&env, None, Redactor::default()) else {
            panic!("accepted")
        };
        assert!(e.message.contains("JIRA_EMAIL") && e.message.contains("JIRA_API_TOKEN"));
        assert!(e.message.contains("platform.tracker.project"));
    }
}
