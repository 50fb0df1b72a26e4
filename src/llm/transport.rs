//! How the providers' HTTP calls fail and are retried: the classification of a failed
//! attempt, the provider's error message, and the LLM retry loop on the shared policy of
//! [`crate::net::retry`].
//!
//! Policy (after the Anthropic SDK): connection errors, timeouts, a stream cut short and
//! HTTP 408/409/429/5xx are retried; `retry-after-ms` / `retry-after` and
//! `x-should-retry` are obeyed; 400/401/403/404/413 are never retried, nor is a 429 that
//! reports a spend limit.

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::LlmError;
use crate::net::client;
use crate::net::retry::{self, Call, Retry, RetryPolicy};

/// Statuses that are never retried, whatever `x-should-retry` says.
const NEVER_RETRY: [u16; 5] = [400, 401, 403, 404, 413];

/// The HTTP client for LLM calls: the read timeout is the per-call deadline (it resets on
/// every read, so long streams work), no total timeout.
///
/// No connection is reused: local servers (llama.cpp) close after each streamed answer
/// while advertising keep-alive, and a request sent on such a connection fails. One TCP
/// (and TLS) handshake per call is nothing beside an LLM answer's seconds.
pub fn http_client(request_timeout: Duration) -> Result<reqwest::Client, LlmError> {
    client::build(&client::Options {
        read_timeout: Some(request_timeout),
        fresh_connections: true,
        ..client::Options::default()
    })
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
    /// The prompt does not fit the model's context window (never retried as is).
    ContextOverflow,
    /// The Anthropic endpoint answered with an OpenAI-shaped error: a wrong `base_url`.
    WrongEndpoint { url: String },
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
    /// The provider's id for the request (`request-id`, `x-request-id`), for reports.
    pub request_id: Option<String>,
}

impl AttemptError {
    pub fn new(kind: AttemptKind, retryable: bool, message: impl Into<String>) -> Self {
        Self {
            kind,
            retryable,
            status: None,
            retry_after: None,
            message: message.into(),
            request_id: None,
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
            request_id: None,
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
        if !retry::transport_is_transient(err) {
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
        match self.kind {
            AttemptKind::Divergence { agent, call } => {
                return LlmError::Divergence {
                    agent,
                    call,
                    detail: self.message,
                };
            }
            AttemptKind::ContextOverflow => {
                return LlmError::ContextOverflow {
                    provider,
                    message: self.message,
                };
            }
            AttemptKind::WrongEndpoint { url } => {
                return LlmError::WrongEndpoint {
                    url,
                    status: self.status.unwrap_or_default(),
                    message: self.message,
                };
            }
            _ => {}
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
                key_env: None,
            },
            Some(status @ (400 | 422)) if !is_account_problem(&self.message) => {
                let request_id = self.request_id.unwrap_or_else(|| "(none given)".into());
                tracing::warn!(%provider, status, %request_id, "the provider rejected pace's request as invalid");
                LlmError::InvalidRequest {
                    provider,
                    status,
                    request_id,
                    message: self.message,
                }
            }
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

/// A 400 about the account, not the request (Anthropic answers "credit balance is too
/// low" as an `invalid_request_error`).
fn is_account_problem(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("credit balance") || lower.contains("billing")
}

/// Whether an error body says the prompt does not fit the context window: Anthropic
/// ("prompt is too long", "input length and `max_tokens` exceed context limit"), OpenAI (`context_length_exceeded`), llama.cpp
/// (`exceed_context_size_error`), vLLM and Ollama ("maximum context length").
pub fn is_context_overflow(json: Option<&Value>, message: &str) -> bool {
    let code_says = json.is_some_and(|j| {
        ["/error/code", "/error/type"].iter().any(|p| {
            j.pointer(p)
                .and_then(Value::as_str)
                .is_some_and(|c| matches!(c, "context_length_exceeded" | "exceed_context_size_error"))
        })
    });
    let lower = message.to_ascii_lowercase();
    code_says
        || lower.contains("prompt is too long")
        || lower.contains("exceed context limit")
        || lower.contains("maximum context length")
        || lower.contains("exceeds the available context size")
        || lower.contains("context window")
}

/// The request id a provider gave: the `request-id` header (Anthropic), `x-request-id`
/// (OpenAI and most gateways), else the body's `request_id`.
pub fn request_id(headers: &HeaderMap, json: Option<&Value>) -> Option<String> {
    ["request-id", "x-request-id"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(String::from)
        .or_else(|| json?.get("request_id")?.as_str().map(String::from))
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

/// The shared transient statuses (429, 5xx), plus 408 and 409, which the providers'
/// SDKs retry (a request timeout, a lock that was held).
pub fn status_is_retryable(status: u16) -> bool {
    retry::status_is_transient(status) || matches!(status, 408 | 409)
}

/// Builds the [`AttemptError`] for a non-success response: status, the provider's error
/// message from the body, `retry-after`, `x-should-retry`, and Anthropic's spend limit.
/// `anthropic_url` is set when the request went to the Anthropic Messages API there: a
/// 5xx without Anthropic's error shape then names a wrong endpoint instead of an outage.
pub async fn error_from_response(response: reqwest::Response, anthropic_url: Option<&str>) -> AttemptError {
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
    let mut err = error_from_parts(status, &headers, &body);
    if let Some(url) = anthropic_url
        && status >= 500
        && openai_shaped(&body)
    {
        err.kind = AttemptKind::WrongEndpoint { url: url.to_string() };
        err.retryable = false;
    }
    err
}

/// `{"error": {"message": …}}` without Anthropic's top-level `"type": "error"`: what
/// OpenAI-compatible servers (llama.cpp, `vLLM`, `LiteLLM`) answer.
pub fn openai_shaped(body: &str) -> bool {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    json.pointer("/error/message").is_some() && json.get("type").and_then(Value::as_str) != Some("error")
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
    let overflow = matches!(status, 400 | 413) && is_context_overflow(json.as_ref(), &message);
    let mut err = AttemptError::http(status, message);
    err.retry_after = retry::retry_after(headers);
    err.request_id = request_id(headers, json.as_ref());
    if overflow {
        err.kind = AttemptKind::ContextOverflow;
    }
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

/// Runs `attempt` until it succeeds, fails for good, or the retries are used up; the
/// last failure becomes the [`LlmError`] the caller sees.
pub async fn with_retries<T, F, Fut>(policy: &RetryPolicy, provider: &str, attempt: F) -> Result<T, LlmError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let call = Call {
        service: provider,
        operation: "LLM call",
        warn: true,
    };
    let (outcome, attempts) = retry::run(policy, call, attempt, transient).await;
    outcome.map_err(|err| err.into_llm_error(provider, attempts))
}

/// A failure classified as retryable is retried, after the delay the server named.
fn transient<T>(outcome: &Result<T, AttemptError>) -> Option<Retry> {
    match outcome {
        Err(err) if err.retryable => Some(Retry {
            after: err.retry_after,
            reason: err.describe(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::net::test_headers as headers;

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

    #[test]
    fn invalid_requests_overflows_and_wrong_endpoints() {
        let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages.1: all messages must have non-empty content except for the optional final assistant message"},"request_id":"req_body"}"#;
        let err = error_from_parts(400, &headers(&[("request-id", "req_header")]), body);
        assert_eq!(err.request_id.as_deref(), Some("req_header"));
        match err.into_llm_error("anthropic", 1) {
            LlmError::InvalidRequest { request_id, .. } => assert_eq!(request_id, "req_header"),
            other => panic!("{other:?}"),
        }
        let err = error_from_parts(400, &headers(&[]), body);
        assert_eq!(err.request_id.as_deref(), Some("req_body"));
        let openai = r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#;
        let err = error_from_parts(400, &headers(&[("x-request-id", "req_oa")]), openai);
        assert_eq!(err.request_id.as_deref(), Some("req_oa"));

        // The account, not the request: still "refused".
        let credit = r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        assert!(matches!(
            error_from_parts(400, &headers(&[]), credit).into_llm_error("anthropic", 1),
            LlmError::Rejected { status: 400, .. }
        ));

        for body in [
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 197000 + 21333 > 200000, decrease input length or `max_tokens` and try again"}}"#,
            r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#,
        ] {
            let err = error_from_parts(400, &headers(&[]), body);
            assert_eq!(err.kind, AttemptKind::ContextOverflow, "{body}");
            assert!(matches!(err.into_llm_error("x", 1), LlmError::ContextOverflow { .. }));
        }

        assert!(openai_shaped(
            r#"{"error":{"code":500,"message":"boom","type":"server_error"}}"#
        ));
        assert!(!openai_shaped(
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#
        ));
        assert!(!openai_shaped("<html>502</html>"));
    }
}
