//! A fake GitLab on 127.0.0.1: the REST v4 calls pace makes (projects, merge requests,
//! notes, issues, branches, token self-inspection) with GitLab's status codes and error
//! bodies, state that later lists reflect, and every call recorded. The same server
//! serves `/<group>/<proj>.git` through the real `git http-backend` (CGI) into a bare
//! repository, after checking the `oauth2:<token>` Basic credential.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const PROJECT_ID: u64 = 42;
pub const PROJECT_PATH: &str = "group/proj";
pub const DEFAULT_BRANCH: &str = "main";

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Decoded path (`/api/v4/projects/group/proj/merge_requests`).
    pub path: String,
    pub raw_path: String,
    pub query: String,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct MergeRequest {
    pub iid: u64,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: String,
    pub labels: Vec<String>,
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct Issue {
    pub iid: u64,
    pub title: String,
    pub description: String,
    pub labels: Vec<String>,
    pub state: String,
}

#[derive(Debug, Default)]
pub struct State {
    pub calls: Vec<Call>,
    pub merge_requests: Vec<MergeRequest>,
    pub issues: Vec<Issue>,
    /// (`merge_requests` | `issues`, iid, body)
    pub notes: Vec<(String, u64, String)>,
    /// Answer the next N `POST .../merge_requests` with 500.
    pub fail_mr_create: u32,
    /// Refuse every git push with 403 (a read-only token or a protected branch).
    pub refuse_push: bool,
    /// For the next N `POST .../merge_requests` and `POST .../issues`: create the object,
    /// then drop the connection without an answer (a timeout after the server acted).
    pub lose_create_answer: u32,
    /// Holds every push (`git-receive-pack` POST) until set back to false.
    pub hold_push: bool,
}

#[derive(Clone)]
pub struct FakeGitlab {
    pub server: Arc<MockServer>,
    pub state: Arc<Mutex<State>>,
    /// The bare repository pushes land in.
    pub bare: PathBuf,
    _root: Arc<tempfile::TempDir>,
}

struct Responder {
    state: Arc<Mutex<State>>,
    /// Token with `api` + `write_repository`.
    token: String,
    /// A valid token with only `read_api` (403 insufficient_scope on writes).
    readonly_token: String,
    git_root: PathBuf,
}

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&segment[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('=').map(|(k, v)| (decode(k), decode(v))))
        .collect()
}

/// Ends the request's connection without an answer: the server task unwinds (without
/// the panic hook's message) and the client sees the connection closed.
fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("fake GitLab drops the connection"))
}

fn json_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/json")
        .set_body_string(body.to_string())
}

fn labels_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => s
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        Value::Array(a) => a.iter().filter_map(|l| l.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

impl MergeRequest {
    fn json(&self, base: &str) -> Value {
        json!({
            "id": 1000 + self.iid, "iid": self.iid, "project_id": PROJECT_ID,
            "title": self.title, "description": self.description, "state": self.state,
            "source_branch": self.source_branch, "target_branch": self.target_branch,
            "labels": self.labels, "web_url": format!("{base}/{PROJECT_PATH}/-/merge_requests/{}", self.iid)
        })
    }
}

impl Issue {
    fn json(&self, base: &str) -> Value {
        json!({
            "id": 2000 + self.iid, "iid": self.iid, "project_id": PROJECT_ID,
            "title": self.title, "description": self.description, "state": self.state,
            "labels": self.labels, "web_url": format!("{base}/{PROJECT_PATH}/-/issues/{}", self.iid)
        })
    }
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let raw_path = request.url.path().to_string();
        let call = Call {
            method: request.method.to_string(),
            path: decode(&raw_path),
            raw_path: raw_path.clone(),
            query: request.url.query().unwrap_or_default().to_string(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
        };
        self.state.lock().unwrap().calls.push(call.clone());
        if raw_path.contains(".git/") {
            return self.git(request, &raw_path);
        }
        let base = format!(
            "{}://{}",
            request.url.scheme(),
            request.url.host_str().unwrap_or("127.0.0.1")
        ) + &request.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let token = request
            .headers
            .get("PRIVATE-TOKEN")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if token != self.token && token != self.readonly_token {
            return json_response(401, json!({"message": "401 Unauthorized"}));
        }
        let Some(rest) = raw_path.strip_prefix("/api/v4/") else {
            return json_response(404, json!({"error": "404 Not Found"}));
        };
        // Segments stay encoded until split, so `group%2Fproj` is one segment.
        let segments: Vec<String> = rest.split('/').map(decode).collect();
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = request.method.as_str();
        let scopes: Vec<&str> = if token == self.token {
            vec!["api", "write_repository"]
        } else {
            vec!["read_api"]
        };
        match (method, segs.as_slice()) {
            ("GET", ["personal_access_tokens", "self"]) => {
                return json_response(
                    200,
                    json!({"id": 7, "name": "pace", "active": true, "revoked": false, "scopes": scopes}),
                );
            }
            ("GET", ["user"]) => return json_response(200, json!({"id": 9, "username": "project_42_bot"})),
            _ => {}
        }
        let ["projects", project, tail @ ..] = segs.as_slice() else {
            return json_response(404, json!({"error": "404 Not Found"}));
        };
        if *project != PROJECT_PATH && *project != PROJECT_ID.to_string() {
            return json_response(404, json!({"message": "404 Project Not Found"}));
        }
        if method != "GET" && token != self.token {
            return json_response(403, json!({"message": "403 Forbidden", "error": "insufficient_scope"}));
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let query = query_map(&call.query);
        let mut state = self.state.lock().unwrap();
        match (method, tail) {
            ("GET", []) => json_response(
                200,
                json!({"id": PROJECT_ID, "path_with_namespace": PROJECT_PATH, "default_branch": DEFAULT_BRANCH,
                       "web_url": format!("{base}/{PROJECT_PATH}")}),
            ),
            ("GET", ["repository", "branches", branch]) => {
                if *branch == DEFAULT_BRANCH || self.bare_has_branch(branch) {
                    json_response(200, json!({"name": branch}))
                } else {
                    json_response(404, json!({"message": "404 Branch Not Found"}))
                }
            }
            // A pipeline exists for every pushed commit and has already succeeded.
            ("GET", ["pipelines"]) => {
                let sha = query.get("sha").cloned().unwrap_or_default();
                if self.bare_has_commit(&sha) {
                    json_response(200, json!([{"id": 7, "sha": sha, "status": "success"}]))
                } else {
                    json_response(200, json!([]))
                }
            }
            ("GET", ["pipelines", "7"]) => json_response(
                200,
                json!({"id": 7, "status": "success", "web_url": format!("{base}/{PROJECT_PATH}/-/pipelines/7")}),
            ),
            ("GET", ["merge_requests"]) => {
                let list: Vec<Value> = state
                    .merge_requests
                    .iter()
                    .filter(|mr| query.get("state").is_none_or(|s| *s == mr.state || s == "all"))
                    .filter(|mr| query.get("source_branch").is_none_or(|b| *b == mr.source_branch))
                    .filter(|mr| query.get("target_branch").is_none_or(|b| *b == mr.target_branch))
                    .map(|mr| mr.json(&base))
                    .collect();
                json_response(200, Value::Array(list))
            }
            ("POST", ["merge_requests"]) => {
                if state.fail_mr_create > 0 {
                    state.fail_mr_create -= 1;
                    return json_response(500, json!({"message": "500 Internal Server Error"}));
                }
                for field in ["source_branch", "target_branch", "title"] {
                    if body[field].as_str().is_none_or(str::is_empty) {
                        return json_response(400, json!({"error": format!("{field} is missing")}));
                    }
                }
                let source = body["source_branch"].as_str().unwrap_or_default().to_string();
                if let Some(existing) = state
                    .merge_requests
                    .iter()
                    .find(|mr| mr.source_branch == source && mr.state == "opened")
                {
                    return json_response(
                        409,
                        json!({"message": [format!("Another open merge request already exists for this source branch: !{}", existing.iid)]}),
                    );
                }
                let mr = MergeRequest {
                    iid: state.merge_requests.len() as u64 + 1,
                    source_branch: source,
                    target_branch: body["target_branch"].as_str().unwrap_or_default().to_string(),
                    title: body["title"].as_str().unwrap_or_default().to_string(),
                    description: body["description"].as_str().unwrap_or_default().to_string(),
                    labels: labels_of(&body["labels"]),
                    state: "opened".into(),
                };
                let answer = mr.json(&base);
                state.merge_requests.push(mr);
                if state.lose_create_answer > 0 {
                    state.lose_create_answer -= 1;
                    drop(state);
                    drop_connection();
                }
                json_response(201, answer)
            }
            ("PUT", ["merge_requests", iid]) => {
                let Some(mr) = state.merge_requests.iter_mut().find(|mr| mr.iid.to_string() == *iid) else {
                    return json_response(404, json!({"message": "404 Not found"}));
                };
                if let Some(d) = body["description"].as_str() {
                    mr.description = d.to_string();
                }
                if let Some(t) = body["title"].as_str() {
                    mr.title = t.to_string();
                }
                json_response(200, mr.json(&base))
            }
            ("POST", [kind @ ("merge_requests" | "issues"), iid, "notes"]) => {
                let exists = match *kind {
                    "merge_requests" => state.merge_requests.iter().any(|m| m.iid.to_string() == *iid),
                    _ => state.issues.iter().any(|i| i.iid.to_string() == *iid),
                };
                let Some(text) = body["body"].as_str().filter(|_| exists) else {
                    return json_response(if exists { 400 } else { 404 }, json!({"message": "404 Not found"}));
                };
                let iid: u64 = iid.parse().unwrap_or(0);
                state.notes.push((kind.to_string(), iid, text.to_string()));
                json_response(201, json!({"id": 5000 + state.notes.len(), "body": text}))
            }
            ("GET", ["issues"]) => {
                let wanted = query.get("labels").map(|l| labels_of(&json!(l))).unwrap_or_default();
                let list: Vec<Value> = state
                    .issues
                    .iter()
                    .filter(|i| query.get("state").is_none_or(|s| *s == i.state || s == "all"))
                    .filter(|i| wanted.iter().all(|l| i.labels.contains(l)))
                    .map(|i| i.json(&base))
                    .collect();
                json_response(200, Value::Array(list))
            }
            ("POST", ["issues"]) => {
                let Some(title) = body["title"].as_str().filter(|t| !t.is_empty()) else {
                    return json_response(400, json!({"error": "title is missing"}));
                };
                let issue = Issue {
                    iid: state.issues.len() as u64 + 1,
                    title: title.to_string(),
                    description: body["description"].as_str().unwrap_or_default().to_string(),
                    labels: labels_of(&body["labels"]),
                    state: "opened".into(),
                };
                let answer = issue.json(&base);
                state.issues.push(issue);
                if state.lose_create_answer > 0 {
                    state.lose_create_answer -= 1;
                    drop(state);
                    drop_connection();
                }
                json_response(201, answer)
            }
            _ => json_response(404, json!({"error": "404 Not Found"})),
        }
    }
}

impl Responder {
    fn bare_has_commit(&self, sha: &str) -> bool {
        !sha.is_empty()
            && Command::new("git")
                .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
                .current_dir(self.git_root.join(format!("{PROJECT_PATH}.git")))
                .status()
                .is_ok_and(|s| s.success())
    }

    fn bare_has_branch(&self, branch: &str) -> bool {
        Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")])
            .current_dir(self.git_root.join(format!("{PROJECT_PATH}.git")))
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Smart HTTP through `git http-backend`, behind the token check.
    fn git(&self, request: &Request, path: &str) -> ResponseTemplate {
        let expected = format!(
            "Basic {}",
            pace::platform::gitlab::base64(format!("oauth2:{}", self.token).as_bytes())
        );
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if auth != expected {
            return ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Basic realm=\"GitLab\"")
                .set_body_string("HTTP Basic: Access denied");
        }
        if self.state.lock().unwrap().refuse_push
            && (path.ends_with("git-receive-pack") || request.url.query() == Some("service=git-receive-pack"))
        {
            return ResponseTemplate::new(403).set_body_string("You are not allowed to push code to this project.");
        }
        while path.ends_with("git-receive-pack") && self.state.lock().unwrap().hold_push {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let mut child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", &self.git_root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", path)
            .env("QUERY_STRING", request.url.query().unwrap_or_default())
            .env("REQUEST_METHOD", request.method.as_str())
            .env("CONTENT_TYPE", header("content-type"))
            .env("CONTENT_LENGTH", request.body.len().to_string())
            .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
            .env("GIT_PROTOCOL", header("git-protocol"))
            .env("REMOTE_USER", "oauth2")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(&request.body);
        }
        let out = child.wait_with_output().unwrap();
        let split = out
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| (p, 4))
            .or_else(|| out.stdout.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
        let Some((end, sep)) = split else {
            return ResponseTemplate::new(500).set_body_string(String::from_utf8_lossy(&out.stderr).into_owned());
        };
        let head = String::from_utf8_lossy(&out.stdout[..end]).into_owned();
        let mut response = ResponseTemplate::new(200);
        let mut status = 200u16;
        let mut headers = Vec::new();
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else { continue };
            if k.eq_ignore_ascii_case("status") {
                status = v.trim().split(' ').next().and_then(|s| s.parse().ok()).unwrap_or(200);
            } else {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        if status != 200 {
            response = ResponseTemplate::new(status);
        }
        for (k, v) in headers {
            response = response.insert_header(k.as_str(), v.as_str());
        }
        response.set_body_bytes(out.stdout[end + sep..].to_vec())
    }
}

impl FakeGitlab {
    /// A fake with one project, `group/proj` (id 42, default branch `main`), an empty
    /// bare repository behind it, and `token` (scopes `api`, `write_repository`) plus
    /// `readonly_token` (`read_api` only).
    pub async fn start(token: &str, readonly_token: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let bare = root.path().join(format!("{PROJECT_PATH}.git"));
        std::fs::create_dir_all(&bare).unwrap();
        let ok = Command::new("git")
            .args(["init", "-q", "--bare", "-b", DEFAULT_BRANCH])
            .current_dir(&bare)
            .status()
            .unwrap();
        assert!(ok.success());
        let state = Arc::new(Mutex::new(State::default()));
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(Responder {
                state: state.clone(),
                token: token.to_string(),
                readonly_token: readonly_token.to_string(),
                git_root: root.path().to_path_buf(),
            })
            .mount(&server)
            .await;
        Self {
            server: Arc::new(server),
            state,
            bare,
            _root: Arc::new(root),
        }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Calls of `method` whose decoded path ends with `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.method == method && c.path.ends_with(suffix))
            .count()
    }

    pub fn merge_requests(&self) -> Vec<MergeRequest> {
        self.state.lock().unwrap().merge_requests.clone()
    }

    pub fn issues(&self) -> Vec<Issue> {
        self.state.lock().unwrap().issues.clone()
    }

    pub fn notes(&self) -> Vec<(String, u64, String)> {
        self.state.lock().unwrap().notes.clone()
    }

    /// Every recorded request body (API and git) as one text.
    pub fn all_bodies(&self) -> String {
        self.calls().iter().map(|c| format!("{}\n", c.body)).collect()
    }

    /// The commit a branch of the bare repository points at, if any.
    pub fn pushed(&self, branch: &str) -> Option<String> {
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")])
            .current_dir(&self.bare)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}
