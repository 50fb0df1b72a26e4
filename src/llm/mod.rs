//! The LLM layer: one request/response model for every provider.
//!
//! Agents build a [`ChatRequest`] (a single-turn call is a request with one user message
//! and no tools) and get a [`ChatResponse`]. [`Client`] adds what every call needs: retries
//! with backoff, the transcript (`transcript.jsonl`, also the replay cassette), per-agent
//! usage and cost, and the budget. Providers only translate wire formats.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod anthropic;
pub mod client;
pub mod cost;
pub mod openai;
pub mod probe;
pub mod replay;
pub mod sse;
pub mod transcript;
pub mod transport;

pub use client::{AgentUsage, Client};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A content block, Anthropic-shaped (the richest of the wire formats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![Block::Text { text: text.into() }],
        }
    }
}

/// A tool the model may call: name, description and the JSON schema of its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    /// The Anthropic-defined tool this spec stands for (e.g. `text_editor_20250728`): the
    /// anthropic provider sends `{type, name}` without description or schema (the model
    /// knows it from training); every other provider sends the schema as a function tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatRequest {
    /// PRIME, FORGE, GATE, SENTINEL, CONDUIT, SCRIBE: for accounting, transcript, replay.
    pub agent: String,
    pub model: String,
    pub system: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
    /// The JSON schema the answer must follow, for providers with native structured
    /// output (single-turn agents under `llm.structured_output: auto`). The answer still
    /// comes back as one text block holding the JSON. Absent in cassettes recorded before
    /// it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<ResponseSchema>,
}

/// A named JSON schema for the answer (the name is what OpenAI's `json_schema.name` and the
/// Anthropic forced tool `emit_<name>` carry: letters, digits, `_`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    pub name: String,
    pub schema: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    /// The model declined (Anthropic `refusal`, OpenAI `content_filter` or a `refusal`
    /// message): the API documents that the same conversation is refused again, so the
    /// agent's conversation ends at once.
    Refusal,
    /// Anthropic paused a long turn; [`Client::chat`] continues it as documented.
    PauseTurn,
    /// The answer stopped because the context window filled up.
    #[serde(rename = "model_context_window_exceeded")]
    ContextWindowExceeded,
    #[serde(untagged)]
    Other(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens
    }
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub content: Vec<Block>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    pub model: String,
    /// Why the model refused, as the provider explained it (Anthropic `stop_details`,
    /// OpenAI's `refusal` text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// What the call cost, as recorded when it was made (replay reports this, never a
    /// price from today's table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl ChatResponse {
    /// All text blocks joined (single-turn agents read their YAML from here).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }

    /// No tool call and no visible text: the real APIs refuse such a message in the
    /// history (400), so the agents treat it as "no answer" and never send it back.
    pub fn is_empty(&self) -> bool {
        self.content
            .iter()
            .all(|b| matches!(b, Block::Text { text } if text.trim().is_empty()))
    }

    /// The refusal as a reason can quote it: the provider's explanation and any text.
    pub fn refusal_text(&self) -> String {
        let text = self.text();
        let parts: Vec<&str> = [self.refusal.as_deref().unwrap_or_default(), text.trim()]
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .collect();
        if parts.is_empty() {
            "(the provider gave no explanation)".into()
        } else {
            crate::text::one_line(&parts.join(" — "), 300)
        }
    }

    pub fn to_assistant_message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: self.content.clone(),
        }
    }
}

/// Text blocks that hold only whitespace are dropped: the real APIs reject them in the
/// history ("text content blocks must contain non-whitespace text").
pub fn without_blank_text(blocks: Vec<Block>) -> Vec<Block> {
    blocks
        .into_iter()
        .filter(|b| !matches!(b, Block::Text { text } if text.trim().is_empty()))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Bad key, no permission: retrying cannot help (exit 4 with a hint).
    #[error("{provider} rejected the credentials (HTTP {status}): {message}")]
    Auth {
        provider: String,
        status: u16,
        message: String,
        /// The variable the key came from (`llm.api_key_env`), when the client knows it.
        key_env: Option<String>,
    },
    /// Non-retryable answers that are not about pace's request (404 no such model, a
    /// spend limit, no credit).
    #[error("{provider} refused the request (HTTP {status}): {message}")]
    Rejected {
        provider: String,
        status: u16,
        message: String,
    },
    /// 400/422: the provider says the request pace built is invalid. pace's fault (or a
    /// server that differs from the API it imitates), not the provider's.
    #[error(
        "pace sent a request that {provider} rejected as invalid (HTTP {status}, request id {request_id}): {message}"
    )]
    InvalidRequest {
        provider: String,
        status: u16,
        request_id: String,
        message: String,
    },
    /// The prompt no longer fits the model's context window ("prompt is too long",
    /// `context_length_exceeded`): the tool loops evict and try once more.
    #[error("the request is larger than {provider}'s context window for this model: {message}")]
    ContextOverflow { provider: String, message: String },
    /// `/v1/messages` answered with an OpenAI-shaped error: `llm.base_url` points at an
    /// OpenAI-compatible server (or the wrong path), not an outage worth retrying.
    #[error(
        "`{url}` answered like an OpenAI-compatible server, not the Anthropic Messages API (HTTP {status}): {message}"
    )]
    WrongEndpoint { url: String, status: u16, message: String },
    /// Still failing after all retries (5xx, 429, timeouts, connection errors).
    #[error("{provider} is unavailable after {attempts} attempts: {last}")]
    Unavailable {
        provider: String,
        attempts: u32,
        last: String,
    },
    /// The answer could not be decoded.
    #[error("{provider} sent an answer pace cannot read: {message}")]
    Protocol { provider: String, message: String },
    /// `budget.max_usd` / `budget.max_tokens` reached.
    #[error("budget exhausted: {0}")]
    Budget(String),
    /// Replay: the run asked for something the cassette does not hold.
    #[error("replay diverged from the cassette at {agent} call {call}: {detail}")]
    Divergence { agent: String, call: u32, detail: String },
    /// The key variable is missing.
    #[error("missing API key: `{0}` is not set")]
    MissingKey(String),
    #[error("cannot write the transcript `{path}`: {source}")]
    Transcript { path: String, source: std::io::Error },
    /// Replay: the cassette is not configured, unreadable or malformed (`message` names
    /// the line).
    #[error("cannot replay from the cassette `{path}`: {message}")]
    Cassette { path: String, message: String },
}

impl crate::error::Hint for LlmError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Auth { key_env: Some(name), .. } => Some(format!(
                "check `{name}` (the variable `llm.api_key_env` names): is the key complete, active and meant for this provider?"
            )),
            Self::Auth { key_env: None, .. } => Some("check the API key variable (`llm.api_key_env`) and that the key is active".into()),
            Self::MissingKey(name) => Some(format!(
                "set `{name}` (a CI/CD variable, masked) or choose `llm.provider: replay` for an offline run"
            )),
            Self::Budget(_) => Some("the work so far is committed; the budget applies to each run: re-run the day to continue, or raise `budget.max_usd` / `budget.max_tokens`".into()),
            Self::Divergence { .. } => Some("the cassette was recorded for another repository state or config; record a new one with a real provider".into()),
            Self::Unavailable { last, .. } => Some(unavailable_hint(last)),
            // A server that lacks the structured-output field pace sent for it.
            Self::InvalidRequest { message, .. }
                if ["response_format", "output_config", "json_schema"].iter().any(|f| message.contains(f)) =>
            {
                Some("the server does not accept the JSON-schema answer format pace sent: set `llm.structured_output: off` (answers as YAML text), or report the server with `.pace/day-N/transcript.jsonl`".into())
            }
            Self::InvalidRequest { .. } => Some("this is a bug in pace, or a proxy/server that differs from the API it imitates: report it with the request id and `.pace/day-N/transcript.jsonl` (re-running will not help)".into()),
            Self::ContextOverflow { .. } => Some("use a model with a larger context window, or split the day's story into smaller ones".into()),
            Self::WrongEndpoint { .. } => Some("check `llm.provider` and `llm.base_url`: for llama.cpp, Ollama or vLLM use `provider: openai` with the `/v1` base URL, or point `provider: anthropic` at the server's Anthropic-compatible root".into()),
            _ => None,
        }
    }

    fn exit_kind(&self) -> Option<crate::error::ExitKind> {
        use crate::error::ExitKind;
        match self {
            Self::Budget(_) => Some(ExitKind::Budget),
            // The run cannot start as configured: the config or the CI variables change.
            Self::MissingKey(_) | Self::Cassette { .. } => Some(ExitKind::Config),
            // A link planted where the transcript goes: the checkout has to be fixed.
            Self::Transcript { source, .. } => {
                crate::safe_write::own_file_error(source).and_then(crate::error::Hint::exit_kind)
            }
            _ => None,
        }
    }
}

/// What to try when the provider still failed after all retries, by the last failure.
fn unavailable_hint(last: &str) -> String {
    let what = if last.starts_with("timed out") {
        "the provider did not answer within `llm.timeout_seconds`; check that it is up (a proxy or a local server may hang), raise `llm.timeout_seconds` for slow models, "
    } else if last.starts_with("connection failed") {
        "the provider could not be reached; check `llm.base_url`, the network and any proxy, "
    } else {
        "the provider is down or rate-limited: wait, "
    };
    format!("{what}then re-run the day (the story card and committed work are kept)")
}

/// A provider translates [`ChatRequest`] to its wire format and back. One attempt per
/// call: retries, accounting and recording live in [`Client`].
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, transport::AttemptError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint;

    #[test]
    fn a_rejected_schema_field_points_at_structured_output_off() {
        let rejected = |message: &str| LlmError::InvalidRequest {
            provider: "openai".into(),
            status: 400,
            request_id: "req_1".into(),
            message: message.into(),
        };
        let hint = rejected("Unrecognized request argument supplied: response_format")
            .hint()
            .unwrap();
        assert!(hint.contains("`llm.structured_output: off`"), "{hint}");
        let hint = rejected("messages.0: text content blocks must contain non-whitespace text")
            .hint()
            .unwrap();
        assert!(!hint.contains("structured_output"), "{hint}");
        assert!(hint.contains("bug in pace"), "{hint}");
    }
}
