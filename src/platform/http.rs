//! The HTTP client every platform API call goes through: auth header, JSON bodies,
//! retries on 429 and 5xx (honouring `retry-after`), and errors that name the call.
//!
//! Each endpoint is a short method in its platform module (build the URL, the request,
//! decode); this file owns what they share.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::PlatformError;
use crate::redact::Redactor;

/// Attempts for a retryable answer (429, 5xx, connection error) before giving up.
pub const MAX_ATTEMPTS: u32 = 4;
const BASE_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(8);
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
    /// Test seam: backoff steps (production: 500 ms doubling to 8 s).
    base_delay: Duration,
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
        crate::llm::transport::install_crypto_provider();
        let failed = |e: reqwest::Error| PlatformError::Api {
            platform,
            call: "client".into(),
            message: e.to_string(),
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(TIMEOUT)
            .user_agent(concat!("pace/", env!("CARGO_PKG_VERSION")));
        if let Some(proxy) = proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy).map_err(failed)?);
        }
        let client = builder.build().map_err(failed)?;
        Ok(Self {
            client,
            platform,
            auth,
            redactor,
            base_delay: BASE_DELAY,
        })
    }

    #[must_use]
    pub fn with_base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
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
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(ApiResponse, Option<Duration>), reqwest::Error> {
        let mut request = self.authorise(self.client.request(method.clone(), url));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let delay = crate::llm::transport::retry_after(response.headers());
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

    /// Waits before the next attempt: the server's `retry-after` (at most a minute), else
    /// an exponential backoff.
    async fn pause(&self, call: &str, attempt: u32, retry_after: Option<Duration>, last: &str) {
        let backoff = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt - 1))
            .min(MAX_DELAY);
        let wait = retry_after.unwrap_or(backoff).min(Duration::from_secs(60));
        tracing::debug!(platform = self.platform, call, attempt, %last, ?wait, "retrying");
        tokio::time::sleep(wait).await;
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
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (retry_after, last) = match self.attempt(&method, url, body).await {
                Ok((response, delay)) => {
                    if !retryable(response.status) || attempt >= MAX_ATTEMPTS {
                        return Ok(response);
                    }
                    (delay, format!("HTTP {}", response.status))
                }
                Err(e) if attempt >= MAX_ATTEMPTS => return Err(self.no_answer(call, attempt, &e)),
                Err(e) => (None, e.to_string()),
            };
            self.pause(call, attempt, retry_after, &last).await;
        }
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
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1
                && let Some(found) = find().await?
            {
                tracing::debug!(platform = self.platform, call, attempt, "created by an earlier attempt");
                return Ok(Created::Found(found));
            }
            let (retry_after, last) = match self.attempt(&Method::POST, url, Some(body)).await {
                Ok((response, delay)) => {
                    if !retryable(response.status) || attempt >= MAX_ATTEMPTS {
                        return Ok(Created::Answer(response));
                    }
                    (delay, format!("HTTP {}", response.status))
                }
                Err(e) if attempt >= MAX_ATTEMPTS => {
                    if let Some(found) = find().await? {
                        return Ok(Created::Found(found));
                    }
                    return Err(self.no_answer(call, attempt, &e));
                }
                Err(e) => (None, e.to_string()),
            };
            self.pause(call, attempt, retry_after, &last).await;
        }
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

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
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
