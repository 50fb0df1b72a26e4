//! The HTTP client every platform API call goes through: auth header, JSON bodies,
//! retries on 429 and 5xx (honouring `retry-after`) on the shared policy of
//! [`crate::net::retry`], and errors that name the call.
//!
//! Each endpoint is a short method in its platform module (build the URL, the request,
//! decode); this file owns what they share.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::PlatformError;
use crate::net::client;
use crate::net::retry::{self, Call, Ended, Retry, RetryPolicy};
use crate::redact::Redactor;

/// Attempts for a retryable answer (429, 5xx, connection error) before giving up.
pub const MAX_ATTEMPTS: u32 = 4;
/// Platform answers are small: a call that takes longer than this is stuck.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub enum Auth {
    /// `PRIVATE-TOKEN: <token>` (GitLab).
    PrivateToken(String),
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic base64(user:secret)`.
    Basic { user: String, secret: String },
    /// No credential: a proxy that adds its own (Bitbucket Pipelines' Code Insights proxy).
    None,
}

/// One answer: the status and the decoded JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

#[derive(Clone)]
pub struct ApiClient {
    client: reqwest::Client,
    platform: &'static str,
    auth: Auth,
    redactor: Redactor,
    retry: RetryPolicy,
}

impl ApiClient {
    pub fn new(platform: &'static str, auth: Auth, redactor: Redactor) -> Result<Self, PlatformError> {
        Self::build(platform, auth, redactor, None)
    }

    /// A client whose every request goes through the HTTP proxy `proxy` (e.g.
    /// `http://localhost:29418`, the Code Insights proxy inside Bitbucket Pipelines).
    pub fn through_proxy(
        platform: &'static str,
        auth: Auth,
        redactor: Redactor,
        proxy: &str,
    ) -> Result<Self, PlatformError> {
        Self::build(platform, auth, redactor, Some(proxy))
    }

    fn build(
        platform: &'static str,
        auth: Auth,
        redactor: Redactor,
        proxy: Option<&str>,
    ) -> Result<Self, PlatformError> {
        let client = client::build(&client::Options {
            total_timeout: Some(TIMEOUT),
            proxy,
            ..client::Options::default()
        })
        .map_err(|e| PlatformError::Api {
            platform,
            call: "client".into(),
            message: e.to_string(),
        })?;
        Ok(Self {
            client,
            platform,
            auth,
            redactor,
            retry: RetryPolicy::new(MAX_ATTEMPTS - 1),
        })
    }

    #[must_use]
    pub fn with_base_delay(mut self, delay: Duration) -> Self {
        self.retry.base_delay = delay;
        self
    }

    pub fn platform(&self) -> &'static str {
        self.platform
    }

    fn authorise(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Auth::PrivateToken(t) => request.header("PRIVATE-TOKEN", t),
            Auth::Bearer(t) => request.bearer_auth(t),
            Auth::Basic { user, secret } => request.basic_auth(user, Some(secret)),
            Auth::None => request,
        }
    }

    /// One request: the answer (status, body, the server's `retry-after`), or the
    /// transport error when none arrived (refused, reset, timed out).
    async fn attempt(&self, method: &Method, url: &str, body: Option<&Value>) -> Outcome {
        let mut request = self.authorise(self.client.request(method.clone(), url));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let delay = retry::retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((
            ApiResponse {
                status,
                body,
                text: self.redactor.redact(&text),
            },
            delay,
        ))
    }

    fn no_answer(&self, call: &str, attempt: u32, e: &reqwest::Error) -> PlatformError {
        PlatformError::Api {
            platform: self.platform,
            call: call.to_string(),
            message: self
                .redactor
                .redact(&format!("no answer after {attempt} attempts: {e}")),
        }
    }

    fn call<'a>(&self, operation: &'a str) -> Call<'a> {
        Call {
            service: self.platform,
            operation,
            warn: false,
        }
    }

    /// Sends `method url` with an optional JSON body; retries 429/5xx and connection
    /// errors. Every answer that arrives is returned (also 4xx): the caller maps statuses
    /// to what they mean for its call. `call` names the operation in errors. For a POST
    /// that creates something use [`ApiClient::create`], which never creates a twin.
    pub async fn send(
        &self,
        call: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, PlatformError> {
        let attempt = || self.attempt(&method, url, body);
        let (outcome, attempts) = retry::run(&self.retry, self.call(call), attempt, transient).await;
        self.answer(call, outcome, attempts)
    }

    /// `POST url` that creates one object (a merge request, an issue), retried like
    /// [`ApiClient::send`] with one difference: when the outcome of an attempt is unknown
    /// (no answer, a timeout, a 5xx from a proxy after the server acted), `find` looks
    /// for the object first, and a found one is returned instead of posting again.
    pub async fn create<T, F, Fut>(
        &self,
        call: &str,
        url: &str,
        body: &Value,
        find: F,
    ) -> Result<Created<T>, PlatformError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, PlatformError>>,
    {
        let attempt = || self.attempt(&Method::POST, url, Some(body));
        let find_before_repost = || async {
            match find().await {
                Ok(None) => None,
                Ok(Some(found)) => {
                    tracing::debug!(platform = self.platform, call, "created by an earlier attempt");
                    Some(Ok(Created::Found(found)))
                }
                Err(e) => Some(Err(e)),
            }
        };
        match retry::run_with_hook(&self.retry, self.call(call), attempt, transient, find_before_repost).await {
            Ended::Hooked(result) => result,
            // The last attempt got no answer: it may still have created the object.
            Ended::Last {
                outcome: Err(e),
                attempts,
            } => match find().await? {
                Some(found) => Ok(Created::Found(found)),
                None => Err(self.no_answer(call, attempts, &e)),
            },
            Ended::Last { outcome, attempts } => self.answer(call, outcome, attempts).map(Created::Answer),
        }
    }

    /// The answer of the last attempt, or the error for none.
    fn answer(&self, call: &str, outcome: Outcome, attempts: u32) -> Result<ApiResponse, PlatformError> {
        outcome
            .map(|(response, _)| response)
            .map_err(|e| self.no_answer(call, attempts, &e))
    }

    /// An error for an answer the call cannot use, with the server's message; what to
    /// do is its hint.
    pub fn error(&self, call: &str, response: &ApiResponse, what_to_do: &str) -> PlatformError {
        let server = server_message(&response.body).unwrap_or_else(|| response.text.chars().take(300).collect());
        PlatformError::Status {
            platform: self.platform,
            call: call.to_string(),
            status: response.status.as_u16(),
            message: server,
            hint: what_to_do.to_string(),
        }
    }
}

/// What [`ApiClient::create`] ended with.
#[derive(Debug)]
pub enum Created<T> {
    /// The server's answer to the last POST (success or an error to report).
    Answer(ApiResponse),
    /// The object an earlier attempt created although its answer was lost.
    Found(T),
}

/// One attempt: the answer with the server's `retry-after`, or the transport error.
type Outcome = Result<(ApiResponse, Option<Duration>), reqwest::Error>;

/// What in an attempt's outcome is worth another attempt (see [`crate::net::retry`]).
fn transient(outcome: &Outcome) -> Option<Retry> {
    match outcome {
        Ok((response, after)) if retry::status_is_transient(response.status.as_u16()) => Some(Retry {
            after: *after,
            reason: format!("HTTP {}", response.status),
        }),
        Err(e) if retry::transport_is_transient(e) => Some(Retry {
            after: None,
            reason: e.to_string(),
        }),
        _ => None,
    }
}

/// The human part of an error body (`message`, `error`, `error.message`, `errorMessages`).
pub fn server_message(body: &Value) -> Option<String> {
    let pick = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(items) => Some(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Value::Object(_) => Some(v.to_string()),
            _ => None,
        }
    };
    body.get("message")
        .and_then(pick)
        .or_else(|| body.pointer("/error/message").and_then(pick))
        .or_else(|| body.get("error").and_then(pick))
        .or_else(|| body.get("errorMessages").and_then(pick))
}
