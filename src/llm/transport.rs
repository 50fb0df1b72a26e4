//! HTTP transport shared by the providers: the reqwest client, the classification of
//! failed attempts, and the retry loop with backoff.
//!
//! Policy (after the Anthropic SDK): connection errors, timeouts, a stream cut short and
//! HTTP 408/409/429/500/502/503/504/529 are retried; `retry-after-ms` / `retry-after`
//! (seconds or HTTP date, capped at [`MAX_RETRY_AFTER`]) and `x-should-retry` are obeyed;
//! otherwise the delay is `min(base·2^n, 8 s) × (1 − 0.25·rand)`. 400/401/403/404/413
//! are never retried.

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::LlmError;
use crate::config::settings::LlmSettings;

/// Connecting should never take long; a slow answer is covered by the read timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First backoff step in production.
pub const BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest computed backoff step.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// A server-provided delay is never waited longer than this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Statuses that are never retried, whatever `x-should-retry` says.
const NEVER_RETRY: [u16; 5] = [400, 401, 403, 404, 413];
/// Statuses that are retried by default.
const RETRY_STATUSES: [u16; 8] = [408, 409, 429, 500, 502, 503, 504, 529];

/// Installs ring as the process-wide rustls provider; a provider already installed
/// (by `main` or another test) is kept.
pub fn install_crypto_provider() {
    // `Err` only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client for LLM calls: connect timeout 10 s, read timeout = the per-call
/// deadline (it resets on every read, so long streams work), no total timeout.
pub fn http_client(request_timeout: Duration) -> Result<reqwest::Client, LlmError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(request_timeout)
        .user_agent(concat!("pace/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LlmError::Protocol {
            provider: "http".into(),
            message: format!("cannot build the HTTP client: {e}"),
        })
}

/// What kind of failure one attempt ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptKind {
    /// The server answered with an error status (or an in-stream error event).
    Http,
    /// No answer: connection refused/reset, DNS, TLS.
    Connection,
    /// The read timeout expired.
    Timeout,
    /// The answer stopped before it was complete.
    StreamCut,
    /// The answer was complete but could not be understood.
    Decode,
    /// Replay: the request does not match the cassette.
    Divergence { agent: String, call: u32 },
}

/// One failed attempt, classified for the retry loop.
#[derive(Debug, Clone)]
pub struct AttemptError {
    pub kind: AttemptKind,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// The HTTP status (for in-stream errors: the status the error type corresponds to).
    pub status: Option<u16>,
    /// The delay the server asked for.
    pub retry_after: Option<Duration>,
    /// The provider's message, or a description of the transport failure.
    pub message: String,
}

impl AttemptError {
    pub fn new(kind: AttemptKind, retryable: bool, message: impl Into<String>) -> Self {
        Self {
            kind,
            retryable,
            status: None,
            retry_after: None,
            message: message.into(),
        }
    }

    /// A complete answer pace cannot read (not retried).
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(AttemptKind::Decode, false, message)
    }

    /// The answer ended early (retried).
    pub fn stream_cut(message: impl Into<String>) -> Self {
        Self::new(AttemptKind::StreamCut, true, message)
    }

    /// An error status with the provider's message.
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Self {
            kind: AttemptKind::Http,
            retryable: status_is_retryable(status),
            status: Some(status),
            retry_after: None,
            message: message.into(),
        }
    }

    pub fn divergence(agent: &str, call: u32, detail: impl Into<String>) -> Self {
        Self::new(
            AttemptKind::Divergence {
                agent: agent.to_string(),
                call,
            },
            false,
            detail,
        )
    }

    /// Classifies a reqwest error (sending, or reading the body).
    pub fn from_reqwest(err: &reqwest::Error) -> Self {
        let detail = error_chain(err);
        if err.is_builder() {
            // A malformed URL or header: no attempt can succeed.
            Self::new(
                AttemptKind::Connection,
                false,
                format!("cannot build the request: {detail}"),
            )
        } else if err.is_timeout() {
            Self::new(AttemptKind::Timeout, true, format!("timed out: {detail}"))
        } else if err.is_connect() {
            Self::new(AttemptKind::Connection, true, format!("connection failed: {detail}"))
        } else if err.is_body() || err.is_request() || err.is_decode() {
            // reqwest reports a body cut off while streaming as a decode error; pace
            // decodes JSON itself, so a reqwest decode error is always a broken transfer.
            Self::new(AttemptKind::StreamCut, true, format!("connection broken: {detail}"))
        } else {
            Self::new(AttemptKind::Connection, true, detail)
        }
    }

    /// A short description for `LlmError::Unavailable`.
    pub fn describe(&self) -> String {
        match self.status {
            Some(status) => format!("HTTP {status}: {}", self.message),
            None => self.message.clone(),
        }
    }

    /// The error the caller sees once no more attempts are made.
    pub fn into_llm_error(self, provider: &str, attempts: u32) -> LlmError {
        let provider = provider.to_string();
        if let AttemptKind::Divergence { agent, call } = self.kind {
            return LlmError::Divergence {
                agent,
                call,
                detail: self.message,
            };
        }
        if self.retryable {
            return LlmError::Unavailable {
                provider,
                attempts,
                last: self.describe(),
            };
        }
        match self.status {
            Some(status @ (401 | 403)) => LlmError::Auth {
                provider,
                status,
                message: self.message,
            },
            Some(status) => LlmError::Rejected {
                provider,
                status,
                message: self.message,
            },
            None => LlmError::Protocol {
                provider,
                message: self.message,
            },
        }
    }
}

/// `err` and its sources, joined (reqwest's own message hides the cause).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// The listed statuses, and any other 5xx (the SDKs retry every server error).
pub fn status_is_retryable(status: u16) -> bool {
    RETRY_STATUSES.contains(&status) || status >= 500
}

/// The delay the server asked for: `retry-after-ms`, else `retry-after` in seconds (float
/// allowed) or as an HTTP date. Capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let delay = if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        secs(ms / 1000.0)
    } else {
        let value = header("retry-after")?;
        match value.parse::<f64>() {
            Ok(s) => secs(s),
            Err(_) => {
                let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
                let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
                Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
            }
        }
    }?;
    Some(delay.min(MAX_RETRY_AFTER))
}

fn secs(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// Builds the [`AttemptError`] for a non-success response: status, the provider's error
/// message from the body, `retry-after`, `x-should-retry`, and Anthropic's spend limit.
pub async fn error_from_response(response: reqwest::Response) -> AttemptError {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = match response.text().await {
        Ok(body) => body,
        Err(e) if status_is_retryable(status) => {
            return AttemptError {
                status: Some(status),
                ..AttemptError::from_reqwest(&e)
            };
        }
        Err(e) => error_chain(&e),
    };
    error_from_parts(status, &headers, &body)
}

/// The pure part of [`error_from_response`].
pub fn error_from_parts(status: u16, headers: &HeaderMap, body: &str) -> AttemptError {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let message = json.as_ref().and_then(error_message).unwrap_or_else(|| {
        let trimmed = body.trim();
        if trimmed.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            truncate(trimmed, 500)
        }
    });
    let mut err = AttemptError::http(status, message);
    err.retry_after = retry_after(headers);
    if !NEVER_RETRY.contains(&status) {
        match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
            Some("true") => err.retryable = true,
            Some("false") => err.retryable = false,
            _ => {}
        }
    }
    let spend_limit = json
        .as_ref()
        .and_then(|j| j.pointer("/error/details/error_code"))
        .and_then(Value::as_str)
        .is_some_and(|code| code == "enforced_spend_limit_reached");
    if spend_limit {
        err.retryable = false;
    }
    err
}

/// `{"error": {"message": …}}` (Anthropic, OpenAI) or `{"error": "…"}` (Ollama and others).
pub fn error_message(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    if let Some(text) = error.as_str() {
        return Some(text.to_string());
    }
    let message = error.get("message").and_then(Value::as_str)?;
    match error.get("type").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() => Some(format!("{kind}: {message}")),
        _ => Some(message.to_string()),
    }
}

pub fn truncate(text: &str, max_chars: usize) -> String {
    crate::text::truncate_chars(text, max_chars, "…")
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First computed backoff step (tests use a few milliseconds).
    pub base_delay: Duration,
    /// Longest computed backoff step.
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &LlmSettings) -> Self {
        Self {
            max_retries: settings.max_retries,
            base_delay: BASE_DELAY,
            max_delay: MAX_DELAY,
        }
    }

    /// The same number of retries with millisecond backoff, for tests.
    #[must_use]
    pub fn fast(max_retries: u32) -> Self {
        Self {
            max_retries,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    /// Backoff before retry number `retry` (0-based) when the server named no delay.
    pub fn backoff(&self, retry: u32) -> Duration {
        let step = self.base_delay.saturating_mul(2u32.saturating_pow(retry.min(20)));
        let capped = step.min(self.max_delay);
        capped.mul_f64(1.0 - 0.25 * fastrand::f64())
    }

    /// The delay before retry number `retry`, preferring the server's.
    pub fn delay(&self, retry: u32, err: &AttemptError) -> Duration {
        err.retry_after
            .map_or_else(|| self.backoff(retry), |d| d.min(MAX_RETRY_AFTER))
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the retries are used up.
pub async fn with_retries<T, F, Fut>(policy: &RetryPolicy, provider: &str, mut attempt: F) -> Result<T, LlmError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if err.retryable && attempts <= policy.max_retries => {
                let delay = policy.delay(attempts - 1, &err);
                tracing::warn!(
                    provider,
                    attempt = attempts,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "LLM call failed, retrying: {}",
                    err.describe()
                );
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(err.into_llm_error(provider, attempts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn retry_after_variants() {
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "10")])),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1.5")])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "3600")])), Some(MAX_RETRY_AFTER));
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "20"), ("retry-after", "5")])),
            Some(Duration::from_millis(20))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&headers(&[])), None);
        let past = retry_after(&headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]));
        assert_eq!(past, Some(Duration::ZERO));
    }

    #[test]
    fn classification() {
        for s in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(status_is_retryable(s), "{s}");
        }
        for s in [400, 401, 402, 403, 404, 413, 422] {
            assert!(!status_is_retryable(s), "{s}");
        }
        let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: required"}}"#;
        let err = error_from_parts(400, &headers(&[("x-should-retry", "true")]), body);
        assert!(!err.retryable);
        assert_eq!(err.message, "invalid_request_error: max_tokens: required");
        let err = error_from_parts(500, &headers(&[("x-should-retry", "false")]), "oops");
        assert!(!err.retryable);
        assert_eq!(err.message, "oops");
        let err = error_from_parts(409, &headers(&[]), r#"{"error":"model is loading"}"#);
        assert!(err.retryable);
        assert_eq!(err.message, "model is loading");
    }

    #[test]
    fn spend_limit_429_is_final() {
        let body = r#"{"type":"error","error":{"type":"rate_limit_error","message":"spend limit","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        let err = error_from_parts(429, &headers(&[("retry-after", "1")]), body);
        assert!(!err.retryable);
        assert!(matches!(
            err.into_llm_error("anthropic", 1),
            LlmError::Rejected { status: 429, .. }
        ));
        let plain = error_from_parts(
            429,
            &headers(&[]),
            r#"{"error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert!(plain.retryable);
    }

    #[test]
    fn backoff_grows_and_is_capped_with_jitter() {
        let p = RetryPolicy {
            max_retries: 5,
            base_delay: BASE_DELAY,
            max_delay: MAX_DELAY,
        };
        for _ in 0..50 {
            let d0 = p.backoff(0);
            assert!(
                d0 <= Duration::from_millis(500) && d0 >= Duration::from_millis(375),
                "{d0:?}"
            );
            let d3 = p.backoff(3);
            assert!(d3 <= Duration::from_secs(4) && d3 >= Duration::from_secs(3), "{d3:?}");
            let d9 = p.backoff(9);
            assert!(d9 <= MAX_DELAY && d9 >= Duration::from_secs(6), "{d9:?}");
        }
    }

    #[test]
    fn error_mapping() {
        let auth = AttemptError::http(401, "bad key").into_llm_error("anthropic", 1);
        assert!(matches!(auth, LlmError::Auth { status: 401, .. }));
        let gone = AttemptError::http(503, "down").into_llm_error("openai", 3);
        match gone {
            LlmError::Unavailable { attempts, last, .. } => {
                assert_eq!(attempts, 3);
                assert_eq!(last, "HTTP 503: down");
            }
            other => panic!("{other:?}"),
        }
        let protocol = AttemptError::decode("not json").into_llm_error("openai", 1);
        assert!(matches!(protocol, LlmError::Protocol { .. }));
    }

    #[tokio::test]
    async fn loop_stops_at_max_retries_and_on_final_errors() {
        let policy = RetryPolicy::fast(2);
        let mut calls = 0;
        let result: Result<(), _> = with_retries(&policy, "x", || {
            calls += 1;
            async { Err(AttemptError::http(500, "boom")) }
        })
        .await;
        assert_eq!(calls, 3);
        assert!(matches!(result, Err(LlmError::Unavailable { attempts: 3, .. })));

        let mut calls = 0;
        let result: Result<(), _> = with_retries(&policy, "x", || {
            calls += 1;
            async { Err(AttemptError::http(404, "no such model")) }
        })
        .await;
        assert_eq!(calls, 1);
        assert!(matches!(result, Err(LlmError::Rejected { status: 404, .. })));

        let mut calls = 0;
        let result = with_retries(&policy, "x", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 2 {
                    Err(AttemptError::stream_cut("cut"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
    }
}
