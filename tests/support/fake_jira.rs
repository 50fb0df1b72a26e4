//! A fake Jira Cloud REST v3 on 127.0.0.1: Basic auth (wrong → 401), JQL search by
//! project and labels, issue creation (checks the ADF description, labels and issue
//! type like Jira's 400s), comments (ADF body); issues are kept, calls recorded.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::fake_bitbucket::Call;

#[derive(Default)]
pub struct State {
    pub calls: Vec<Call>,
    /// (key, fields)
    pub issues: Vec<(String, Value)>,
    /// (key, body)
    pub comments: Vec<(String, Value)>,
}

#[derive(Clone)]
pub struct FakeJira {
    pub server: Arc<MockServer>,
    pub state: Arc<Mutex<State>>,
}

struct Responder {
    auth: String,
    project: String,
    state: Arc<Mutex<State>>,
}

fn errors(status: u16, messages: &[&str], fields: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"errorMessages": messages, "errors": fields}))
}

fn is_adf(v: &Value) -> bool {
    v["type"] == "doc"
        && v["version"] == 1
        && v["content"].as_array().is_some_and(|c| !c.is_empty())
        && !v.to_string().contains("\"text\":\"\"")
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
        if auth.as_deref() != Some(self.auth.as_str()) {
            return ResponseTemplate::new(401).set_body_string("Client must be authenticated to access this resource.");
        }
        match (method.as_str(), path.as_str()) {
            ("GET", "/rest/api/3/myself") => {
                ResponseTemplate::new(200).set_body_json(json!({"accountId": "1", "displayName": "Ada"}))
            }
            ("GET", p) if p.starts_with("/rest/api/3/project/") => {
                if p.ends_with(&format!("/{}", self.project)) {
                    ResponseTemplate::new(200).set_body_json(json!({"key": self.project}))
                } else {
                    errors(404, &["No project could be found"], json!({}))
                }
            }
            ("GET", "/rest/api/3/search/jql") => {
                let jql: String = req
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "jql")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                if !jql.contains(&format!("project = \"{}\"", self.project)) {
                    return errors(400, &["The value for field 'project' does not exist."], json!({}));
                }
                let labels: Vec<String> = jql
                    .split("labels = \"")
                    .skip(1)
                    .filter_map(|s| s.split('"').next())
                    .map(str::to_string)
                    .collect();
                let found: Vec<Value> = state
                    .issues
                    .iter()
                    .filter(|(_, f)| {
                        labels
                            .iter()
                            .all(|l| f["labels"].as_array().is_some_and(|a| a.iter().any(|x| x == l)))
                    })
                    .map(|(k, f)| json!({"key": k, "fields": {"summary": f["summary"]}}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"issues": found, "isLast": true}))
            }
            ("POST", "/rest/api/3/issue") => {
                let f = &body["fields"];
                if f.pointer("/project/key").and_then(Value::as_str) != Some(self.project.as_str()) {
                    return errors(400, &[], json!({"project": "valid project is required"}));
                }
                let summary = f["summary"].as_str().unwrap_or_default();
                if summary.is_empty() || summary.contains('\n') || summary.chars().count() > 255 {
                    return errors(
                        400,
                        &[],
                        json!({"summary": "Summary must be one line of at most 255 characters."}),
                    );
                }
                if !is_adf(&f["description"]) {
                    return errors(
                        400,
                        &[],
                        json!({"description": "Operation value must be an Atlassian Document."}),
                    );
                }
                if f.pointer("/issuetype/name").and_then(Value::as_str).is_none() {
                    return errors(400, &[], json!({"issuetype": "Specify an issue type"}));
                }
                let key = format!("{}-{}", self.project, state.issues.len() + 1);
                state.issues.push((key.clone(), f.clone()));
                ResponseTemplate::new(201).set_body_json(json!({"id": "1000", "key": key, "self": "x"}))
            }
            ("POST", p) if p.starts_with("/rest/api/3/issue/") && p.ends_with("/comment") => {
                let key = &p["/rest/api/3/issue/".len()..p.len() - "/comment".len()];
                if !state.issues.iter().any(|(k, _)| k == key) {
                    return errors(
                        404,
                        &["Issue does not exist or you do not have permission to see it."],
                        json!({}),
                    );
                }
                if !is_adf(&body["body"]) {
                    return errors(400, &[], json!({"comment": "Comment body is not valid ADF."}));
                }
                state.comments.push((key.to_string(), body["body"].clone()));
                ResponseTemplate::new(201).set_body_json(json!({"id": "1"}))
            }
            _ => errors(404, &["Not found"], json!({})),
        }
    }
}

impl FakeJira {
    pub async fn start(auth: &str, project: &str) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder {
                auth: auth.into(),
                project: project.into(),
                state: state.clone(),
            })
            .mount(&server)
            .await;
        Self {
            server: Arc::new(server),
            state,
        }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn all_bodies(&self) -> String {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .map(|c| format!("{} {}\n", c.url, c.raw))
            .collect()
    }
}
