//! A fake Bitbucket Cloud REST 2.0 API on 127.0.0.1 for one repository. It checks paths,
//! methods, the auth header and bodies the way the real API answers (wrong auth → 401,
//! a token without the scope → 403 with Bitbucket's error body, unknown repository → 404,
//! a second open PR for a branch → 400), keeps pull requests and comments, and records
//! every call. Also a fake Code Insights proxy (the one Pipelines runs on port 29418).

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Path and query, as received.
    pub url: String,
    pub auth: Option<String>,
    pub body: Value,
    pub raw: String,
}

#[derive(Default)]
pub struct State {
    pub calls: Vec<Call>,
    /// (id, source branch, destination branch, title, description)
    pub pull_requests: Vec<(u64, String, String, String, String)>,
    /// (pr id, raw text)
    pub comments: Vec<(u64, String)>,
    /// (sha, body)
    pub statuses: Vec<(String, Value)>,
    /// (sha, report id, body)
    pub reports: Vec<(String, String, Value)>,
    /// Answers for the next `POST .../pullrequests`, before any is created: (status,
    /// `retry-after` header).
    pub pr_create_errors: std::collections::VecDeque<(u16, Option<&'static str>)>,
}

#[derive(Clone)]
pub struct FakeBitbucket {
    pub server: Arc<MockServer>,
    pub state: Arc<Mutex<State>>,
}

struct Responder {
    workspace: String,
    slug: String,
    auth: String,
    /// Token accepted for reads only: writes get 403 (missing scope).
    read_only_auth: Option<String>,
    state: Arc<Mutex<State>>,
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"type": "error", "error": {"message": message}}))
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let method = req.method.to_string();
        let path = req.url.path().to_string();
        let mut state = self.state.lock().unwrap();
        state.calls.push(Call {
            method: method.clone(),
            url: format!(
                "{}{}",
                path,
                req.url.query().map(|q| format!("?{q}")).unwrap_or_default()
            ),
            auth: auth.clone(),
            body: body.clone(),
            raw: String::from_utf8_lossy(&req.body).into_owned(),
        });
        let read_only = auth.is_some() && auth == self.read_only_auth;
        if auth.as_deref() != Some(self.auth.as_str()) && !read_only {
            return ResponseTemplate::new(401).set_body_string("Unauthorized");
        }
        if path == "/2.0/user" && method == "GET" {
            return ResponseTemplate::new(200).set_body_json(json!({"display_name": "Ada", "type": "user"}));
        }
        let prefix = format!("/2.0/repositories/{}/{}", self.workspace, self.slug);
        let Some(rest) = path.strip_prefix(&prefix) else {
            return error(404, "Repository not found");
        };
        if method != "GET" && read_only {
            return error(403, "Your credentials lack one or more required privilege scopes.");
        }
        let json_ok = |status: u16, v: Value| ResponseTemplate::new(status).set_body_json(v);
        match (method.as_str(), rest) {
            ("GET", "") => json_ok(
                200,
                json!({"full_name": format!("{}/{}", self.workspace, self.slug), "mainbranch": {"name": "main", "type": "branch"}}),
            ),
            ("GET", r) if r.starts_with("/refs/branches/") => {
                let name = &r["/refs/branches/".len()..];
                if name == "main" {
                    json_ok(200, json!({"name": "main", "target": {"hash": "abc"}}))
                } else {
                    error(404, &format!("Branch \"{name}\" does not exist."))
                }
            }
            ("GET", "/pullrequests") => {
                let q: String = req
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "q")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let branch = q
                    .split("source.branch.name=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or_default()
                    .to_string();
                if !q.contains("state=\"OPEN\"") || branch.is_empty() {
                    return error(400, "Invalid query: expected source.branch.name and state");
                }
                let values: Vec<Value> = state
                    .pull_requests
                    .iter()
                    .filter(|pr| pr.1 == branch)
                    .map(|pr| self.pr_json(pr.0, &pr.3))
                    .collect();
                json_ok(200, json!({"values": values, "pagelen": 10, "size": values.len()}))
            }
            ("POST", "/pullrequests") => {
                if let Some((status, retry_after)) = state.pr_create_errors.pop_front() {
                    let mut answer = error(status, "Try again later");
                    if let Some(after) = retry_after {
                        answer = answer.insert_header("retry-after", after);
                    }
                    return answer;
                }
                let source = body.pointer("/source/branch/name").and_then(Value::as_str);
                let dest = body.pointer("/destination/branch/name").and_then(Value::as_str);
                let title = body["title"].as_str().unwrap_or_default();
                let (Some(source), Some(dest)) = (source, dest) else {
                    return error(400, "source and destination are required");
                };
                if title.is_empty() || title.contains('\n') {
                    return ResponseTemplate::new(400).set_body_json(json!({"type": "error", "error": {"message": "Bad request", "fields": {"title": ["This field is required."]}}}));
                }
                if dest != "main" {
                    return ResponseTemplate::new(400).set_body_json(json!({"type": "error", "error": {"message": "Bad request", "fields": {"destination": [format!("Branch {dest} not found")]}}}));
                }
                if state.pull_requests.iter().any(|pr| pr.1 == source) {
                    return error(400, "There is already an open pull request for this branch.");
                }
                let id = state.pull_requests.len() as u64 + 1;
                state.pull_requests.push((
                    id,
                    source.to_string(),
                    dest.to_string(),
                    title.to_string(),
                    body["description"].as_str().unwrap_or_default().to_string(),
                ));
                json_ok(201, self.pr_json(id, title))
            }
            ("POST", r) if r.starts_with("/pullrequests/") && r.ends_with("/comments") => {
                let id: u64 = r["/pullrequests/".len()..r.len() - "/comments".len()]
                    .parse()
                    .unwrap_or(0);
                if !state.pull_requests.iter().any(|pr| pr.0 == id) {
                    return error(404, "Pull request not found");
                }
                let Some(raw) = body.pointer("/content/raw").and_then(Value::as_str) else {
                    return error(400, "content.raw is required");
                };
                state.comments.push((id, raw.to_string()));
                json_ok(201, json!({"id": state.comments.len(), "content": {"raw": raw}}))
            }
            ("POST", r) if r.starts_with("/commit/") && r.ends_with("/statuses/build") => {
                let sha = r["/commit/".len()..r.len() - "/statuses/build".len()].to_string();
                let valid_state = matches!(
                    body["state"].as_str(),
                    Some("INPROGRESS" | "SUCCESSFUL" | "FAILED" | "STOPPED")
                );
                if body["key"].as_str().is_none() || body["url"].as_str().is_none() || !valid_state {
                    return error(400, "key, state and url are required");
                }
                state.statuses.push((sha, body.clone()));
                json_ok(201, body)
            }
            ("PUT", r) if r.starts_with("/commit/") && r.contains("/reports/") => {
                let (sha, id) = r["/commit/".len()..].split_once("/reports/").unwrap();
                state.reports.push((sha.to_string(), id.to_string(), body.clone()));
                json_ok(200, body)
            }
            _ => error(404, &format!("No route for {method} {path}")),
        }
    }
}

impl Responder {
    fn pr_json(&self, id: u64, title: &str) -> Value {
        json!({
            "id": id,
            "title": title,
            "state": "OPEN",
            "links": {"html": {"href": format!("https://bitbucket.org/{}/{}/pull-requests/{id}", self.workspace, self.slug)}}
        })
    }
}

impl FakeBitbucket {
    /// A repository `workspace/slug` that accepts exactly `auth` (the full header value);
    /// `read_only_auth` is accepted for reads and refused with 403 for writes.
    pub async fn start(workspace: &str, slug: &str, auth: &str, read_only_auth: Option<&str>) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder {
                workspace: workspace.into(),
                slug: slug.into(),
                auth: auth.into(),
                read_only_auth: read_only_auth.map(str::to_string),
                state: state.clone(),
            })
            .mount(&server)
            .await;
        Self {
            server: Arc::new(server),
            state,
        }
    }

    /// The API base (`BITBUCKET_API_URL`).
    pub fn api_url(&self) -> String {
        format!("{}/2.0", self.server.uri())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Every recorded request body, concatenated.
    pub fn all_bodies(&self) -> String {
        self.calls().iter().map(|c| format!("{} {}\n", c.url, c.raw)).collect()
    }
}

/// The Pipelines Code Insights proxy: records the absolute-form requests it gets (no
/// credentials: the real proxy adds them).
#[derive(Clone)]
pub struct FakeInsightsProxy {
    pub server: Arc<MockServer>,
    pub calls: Arc<Mutex<Vec<Call>>>,
}

struct ProxyResponder {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Respond for ProxyResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.calls.lock().unwrap().push(Call {
            method: req.method.to_string(),
            url: req.url.to_string(),
            auth: req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
            raw: String::from_utf8_lossy(&req.body).into_owned(),
        });
        if req.method.as_str() != "PUT" || !req.url.path().contains("/reports/") {
            return ResponseTemplate::new(404);
        }
        ResponseTemplate::new(200).set_body_json(json!({"uuid": "{report}"}))
    }
}

impl FakeInsightsProxy {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let calls = Arc::new(Mutex::new(Vec::new()));
        Mock::given(wiremock::matchers::any())
            .respond_with(ProxyResponder { calls: calls.clone() })
            .mount(&server)
            .await;
        Self {
            server: Arc::new(server),
            calls,
        }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }
}
