//! The Anthropic Messages API (`POST {base}/v1/messages`), streamed.
//!
//! Owns the request JSON (prompt-caching breakpoints, tool results first in a user
//! message) and the event stream (`message_start` … `message_stop`, an `error` event
//! after HTTP 200). One attempt per call; retries live in [`super::transport`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::sse::{SseEvent, SseParser};
use super::transport::{AttemptError, error_from_response};
use super::{Block, ChatRequest, ChatResponse, Message, Provider, Role, StopReason, Usage, without_blank_text};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The only version the API has (the SDKs hard-code it).
pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    http: reqwest::Client,
    url: String,
    api_key: String,
    /// The server refused `output_config` once (an older model, a proxy): the rest of
    /// the run asks for structured answers with a forced tool call instead.
    no_output_config: AtomicBool,
}

impl Anthropic {
    /// `base_url` overrides `https://api.anthropic.com` (a proxy, or Ollama's
    /// Anthropic-compatible endpoint); a trailing `/v1` is accepted.
    pub fn new(http: reqwest::Client, base_url: Option<&str>, api_key: impl Into<String>) -> Self {
        let base = base_url.unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        Self {
            http,
            url: format!("{base}/v1/messages"),
            api_key: api_key.into(),
            no_output_config: AtomicBool::new(false),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait::async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, AttemptError> {
        let mut mode = schema_mode(&request.model);
        if mode == SchemaMode::Native && self.no_output_config.load(Ordering::Relaxed) {
            mode = SchemaMode::ForcedTool;
        }
        match self.send_as(request, mode).await {
            Err(e) if request.response_schema.is_some() && mode == SchemaMode::Native && rejects_output_config(&e) => {
                // Remembered for the run: every later structured call goes straight to
                // the forced tool instead of paying for another rejected request.
                self.no_output_config.store(true, Ordering::Relaxed);
                tracing::warn!(
                    model = %request.model,
                    message = %e.message,
                    "the server refused `output_config`; using a forced tool call for structured answers from now on"
                );
                self.send_as(request, SchemaMode::ForcedTool).await
            }
            other => other,
        }
    }
}

impl Anthropic {
    async fn send_as(&self, request: &ChatRequest, mode: SchemaMode) -> Result<ChatResponse, AttemptError> {
        let response = self
            .http
            .post(&self.url)
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION)
            .json(&request_body_as(request, mode))
            .send()
            .await
            .map_err(|e| AttemptError::from_reqwest(&e))?;
        if !response.status().is_success() {
            return Err(error_from_response(response, Some(&self.url)).await);
        }
        if let Some(id) = response.headers().get("request-id").and_then(|v| v.to_str().ok()) {
            tracing::debug!(request_id = id, agent = %request.agent, "anthropic answered");
        }
        let is_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_stream {
            // A proxy that ignores `stream`: one JSON message.
            let body = response.bytes().await.map_err(|e| AttemptError::from_reqwest(&e))?;
            let message: Value = serde_json::from_slice(&body)
                .map_err(|e| AttemptError::decode(format!("the answer is not JSON: {e}")))?;
            return message_from_json(&message).map(|r| structured_answer(request, mode, r));
        }
        let mut stream = response.bytes_stream();
        let mut parser = SseParser::new();
        let mut state = StreamState::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| AttemptError::from_reqwest(&e))?;
            for event in parser.feed(&chunk) {
                state.apply(&event)?;
            }
            if state.done {
                break;
            }
        }
        state
            .finish(&request.model)
            .map(|r| structured_answer(request, mode, r))
    }
}

/// How a request's [`ChatRequest::response_schema`] goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaMode {
    /// `output_config.format` (structured outputs): the answer is a text block of JSON.
    Native,
    /// A tool `emit_<name>` with the schema as its input, forced with `tool_choice`: the
    /// models and servers without structured outputs still follow a tool's schema.
    ForcedTool,
}

/// Structured outputs by model name: Claude Opus 4.1 and every Claude from 4.5 on
/// (Sonnet 4.5, Haiku 4.5, Opus 4.5, …). Older Claudes and other models behind this
/// API (a local server, a proxy) get the forced tool. Gateway ids
/// (`anthropic/claude-…`) count.
pub fn schema_mode(model: &str) -> SchemaMode {
    let model = model.to_ascii_lowercase();
    let version = ["opus", "sonnet", "haiku"].iter().find_map(|family| {
        let rest = &model[model.find(&format!("claude-{family}-"))? + family.len() + 8..];
        let mut parts = rest.split('-');
        let major: u32 = parts.next()?.parse().ok()?;
        // A date (`claude-sonnet-4-20250514`) is no minor version.
        let minor: u32 = parts
            .next()
            .filter(|p| p.len() <= 2)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Some((*family, major, minor))
    });
    match version {
        Some((_, major, _)) if major >= 5 => SchemaMode::Native,
        Some((_, 4, minor)) if minor >= 5 => SchemaMode::Native,
        Some(("opus", 4, 1)) => SchemaMode::Native,
        _ => SchemaMode::ForcedTool,
    }
}

/// A 400 that names `output_config` (unknown field, not supported for this model):
/// the forced tool works where structured outputs do not.
fn rejects_output_config(e: &AttemptError) -> bool {
    e.status == Some(400) && e.message.contains("output_config")
}

fn emit_tool_name(schema: &super::ResponseSchema) -> String {
    format!("emit_{}", schema.name)
}

/// The forced tool's call becomes the text answer it stands for (the JSON of its input),
/// so the agents read every structured answer the same way and the history holds no
/// tool call without a result.
fn structured_answer(request: &ChatRequest, mode: SchemaMode, mut response: ChatResponse) -> ChatResponse {
    let Some(schema) = &request.response_schema else {
        return response;
    };
    if mode != SchemaMode::ForcedTool {
        return response;
    }
    let tool = emit_tool_name(schema);
    let input = response.content.iter().find_map(|b| match b {
        Block::ToolUse { name, input, .. } if *name == tool => Some(input.to_string()),
        _ => None,
    });
    if let Some(text) = input {
        response.content = vec![Block::Text { text }];
        if response.stop_reason == StopReason::ToolUse {
            response.stop_reason = StopReason::EndTurn;
        }
    }
    response
}

/// The JSON body for a streamed Messages request, with cache breakpoints on the system
/// prompt, the last tool and the last block of the last user message (3 of the 4 allowed).
pub fn request_body(request: &ChatRequest) -> Value {
    request_body_as(request, schema_mode(&request.model))
}

/// [`request_body`] with the response schema (if any) sent as `mode` says.
pub fn request_body_as(request: &ChatRequest, mode: SchemaMode) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(request.max_tokens));
    body.insert("stream".into(), json!(true));
    if !request.system.is_empty() {
        body.insert(
            "system".into(),
            json!([{"type": "text", "text": request.system, "cache_control": ephemeral()}]),
        );
    }
    let defined = knows_defined_tools(&request.model);
    let mut tools: Vec<Value> = request.tools.iter().map(|t| tool_json(t, defined)).collect();
    match (&request.response_schema, mode) {
        (Some(schema), SchemaMode::Native) => {
            body.insert(
                "output_config".into(),
                json!({"format": {"type": "json_schema", "schema": schema.schema}}),
            );
        }
        (Some(schema), SchemaMode::ForcedTool) => {
            let name = emit_tool_name(schema);
            tools.push(json!({
                "name": name,
                "description": "Give your complete answer as this tool's input.",
                "input_schema": schema.schema,
            }));
            body.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
        }
        (None, _) => {}
    }
    if !tools.is_empty() {
        if let Some(Value::Object(last)) = tools.last_mut() {
            last.insert("cache_control".into(), ephemeral());
        }
        body.insert("tools".into(), Value::Array(tools));
    }
    let mut messages: Vec<Value> = request.messages.iter().map(message_json).collect();
    let last_user = request.messages.iter().rposition(|m| m.role == Role::User);
    if let Some(Value::Object(last_block)) = last_user
        .and_then(|i| messages.get_mut(i))
        .and_then(|m| m.get_mut("content"))
        .and_then(Value::as_array_mut)
        .and_then(|blocks| blocks.last_mut())
    {
        last_block.insert("cache_control".into(), ephemeral());
    }
    body.insert("messages".into(), Value::Array(messages));
    Value::Object(body)
}

/// A custom tool with its schema, or an Anthropic-defined one as `{type, name}` (the API
/// rejects a description or a schema beside a defined type) when `defined` says the model
/// knows it.
fn tool_json(tool: &super::ToolSpec, defined: bool) -> Value {
    match &tool.anthropic_type {
        Some(kind) if defined => json!({"type": kind, "name": tool.name}),
        _ => json!({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}),
    }
}

/// Whether `model` is a Claude 4 or later, trained on the Anthropic-defined tools pace
/// offers (`text_editor_20250728`). Other models behind this API (a local server's
/// Anthropic endpoint, which turns a schema-less tool into a function without
/// parameters; Claude 3, for which the API refuses the tool) get the custom tool with its
/// schema instead. Gateway ids (`anthropic/claude-…`, `anthropic.claude-…`) count.
fn knows_defined_tools(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model.contains("claude-") && !model.contains("claude-3") && !model.contains("claude-2")
}

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

/// One message; in a user message the `tool_result` blocks come first (the API requires
/// it after a `tool_use` turn). Empty and whitespace-only text blocks are dropped when
/// other blocks remain (the API refuses them).
fn message_json(message: &Message) -> Value {
    let mut blocks: Vec<&Block> = message.content.iter().collect();
    if message.role == Role::User {
        blocks.sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
    }
    if blocks.iter().any(|b| !is_empty_text(b)) {
        blocks.retain(|b| !is_empty_text(b));
    }
    let content: Vec<Value> = blocks.into_iter().map(block_json).collect();
    json!({"role": message.role, "content": content})
}

fn is_empty_text(block: &Block) -> bool {
    matches!(block, Block::Text { text } if text.trim().is_empty())
}

fn block_json(block: &Block) -> Value {
    match block {
        Block::Text { text } => json!({"type": "text", "text": text}),
        Block::ToolUse { id, name, input } => {
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut v = json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
            if *is_error {
                v["is_error"] = json!(true);
            }
            v
        }
    }
}

pub fn stop_reason(value: Option<&str>, has_tool_calls: bool) -> StopReason {
    match value {
        Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("refusal") => StopReason::Refusal,
        Some("pause_turn") => StopReason::PauseTurn,
        Some("model_context_window_exceeded") => StopReason::ContextWindowExceeded,
        Some(other) => StopReason::Other(other.to_string()),
        None if has_tool_calls => StopReason::ToolUse,
        None => StopReason::EndTurn,
    }
}

/// A refusal's `stop_details` (`{"type": "refusal", "category": …, "explanation": …}`)
/// as one line; `None` when absent or empty.
fn refusal_details(details: Option<&Value>) -> Option<String> {
    let details = details?;
    let field = |name: &str| {
        details
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    match (field("explanation"), field("category")) {
        (Some(explanation), Some(category)) => Some(format!("{explanation} (category: {category})")),
        (Some(explanation), None) => Some(explanation.to_string()),
        (None, Some(category)) => Some(format!("category: {category}")),
        (None, None) => None,
    }
}

/// Copies the usage fields present in `value` (Anthropic names) into `usage`.
/// `message_delta` carries cumulative counts, so a present field replaces the old one.
fn merge_usage(usage: &mut Usage, value: &Value) {
    let field = |name: &str| value.get(name).and_then(Value::as_u64);
    if let Some(n) = field("input_tokens") {
        usage.input_tokens = n;
    }
    if let Some(n) = field("output_tokens") {
        usage.output_tokens = n;
    }
    if let Some(n) = field("cache_read_input_tokens") {
        usage.cache_read_tokens = n;
    }
    if let Some(n) = field("cache_creation_input_tokens") {
        usage.cache_write_tokens = n;
    }
}

/// A tool input as the model wrote it; invalid JSON is kept for the tool layer to report.
pub fn parse_tool_input(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(raw).unwrap_or_else(|_| json!({ "_invalid_arguments": raw }))
}

/// An in-stream `error` event's type → the HTTP status it stands for.
fn status_for_error_type(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    }
}

/// An in-stream `error` event as a failed attempt (after HTTP 200).
fn stream_error(data: &Value) -> AttemptError {
    let error_type = data
        .pointer("/error/type")
        .and_then(Value::as_str)
        .unwrap_or("api_error");
    let message = data
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let mut err = AttemptError::http(
        status_for_error_type(error_type),
        format!("{error_type}: {message} (in stream)"),
    );
    // Only the server's own trouble is worth another attempt; a fresh attempt
    // starts a fresh `StreamState`, so nothing of this one is kept.
    err.retryable = matches!(
        error_type,
        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error"
    );
    if super::transport::is_context_overflow(Some(data), message) {
        err.kind = super::transport::AttemptKind::ContextOverflow;
    }
    err
}

#[derive(Debug)]
enum PartialBlock {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        json: String,
        initial: Value,
    },
    /// Thinking, server tools, …: not part of pace's model.
    Ignored,
}

/// The message being assembled from stream events.
#[derive(Debug, Default)]
pub struct StreamState {
    model: Option<String>,
    blocks: BTreeMap<u64, PartialBlock>,
    stop_reason: Option<String>,
    stop_details: Option<Value>,
    usage: Usage,
    started: bool,
    done: bool,
}

impl StreamState {
    /// Applies one event; an `error` event ends the attempt.
    pub fn apply(&mut self, event: &SseEvent) -> Result<(), AttemptError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| AttemptError::decode(format!("event `{}` is not JSON: {e}", event.event)))?;
        let kind = data.get("type").and_then(Value::as_str).unwrap_or(&event.event);
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "message_start" => {
                self.started = true;
                let message = data.get("message").unwrap_or(&Value::Null);
                self.model = message.get("model").and_then(Value::as_str).map(String::from);
                if let Some(usage) = message.get("usage") {
                    merge_usage(&mut self.usage, usage);
                }
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
                let partial = match block.get("type").and_then(Value::as_str) {
                    Some("text") => PartialBlock::Text(text("text")),
                    Some("tool_use") => PartialBlock::ToolUse {
                        id: text("id"),
                        name: text("name"),
                        json: String::new(),
                        initial: block.get("input").cloned().unwrap_or_else(|| json!({})),
                    },
                    _ => PartialBlock::Ignored,
                };
                self.blocks.insert(index, partial);
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let piece = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or_default();
                match (self.blocks.get_mut(&index), delta.get("type").and_then(Value::as_str)) {
                    (Some(PartialBlock::Text(text)), Some("text_delta")) => text.push_str(piece("text")),
                    (Some(PartialBlock::ToolUse { json, .. }), Some("input_json_delta")) => {
                        json.push_str(piece("partial_json"));
                    }
                    (None, _) => {
                        return Err(AttemptError::decode(format!(
                            "a delta for block {index}, which never started"
                        )));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(details) = data.pointer("/delta/stop_details").filter(|d| !d.is_null()) {
                    self.stop_details = Some(details.clone());
                }
                if let Some(usage) = data.get("usage") {
                    merge_usage(&mut self.usage, usage);
                }
            }
            "message_stop" => self.done = true,
            "error" => return Err(stream_error(&data)),
            // `ping`, `content_block_stop` (inputs are parsed at the end) and future events.
            _ => {}
        }
        Ok(())
    }

    /// The complete response, or a retryable error if the stream stopped early.
    pub fn finish(self, requested_model: &str) -> Result<ChatResponse, AttemptError> {
        if !self.done {
            let what = if self.started {
                "before `message_stop`"
            } else {
                "without any event"
            };
            return Err(AttemptError::stream_cut(format!("the event stream ended {what}")));
        }
        let content: Vec<Block> = self
            .blocks
            .into_values()
            .filter_map(|block| match block {
                PartialBlock::Text(text) if !text.trim().is_empty() => Some(Block::Text { text }),
                PartialBlock::ToolUse {
                    id,
                    name,
                    json,
                    initial,
                } => {
                    let input = if json.is_empty() {
                        initial
                    } else {
                        parse_tool_input(&json)
                    };
                    Some(Block::ToolUse { id, name, input })
                }
                _ => None,
            })
            .collect();
        let has_tools = content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
        Ok(ChatResponse {
            stop_reason: stop_reason(self.stop_reason.as_deref(), has_tools),
            content,
            usage: self.usage,
            model: self.model.unwrap_or_else(|| requested_model.to_string()),
            refusal: refusal_details(self.stop_details.as_ref()),
            cost_usd: None,
        })
    }
}

/// A non-streamed Messages answer.
pub fn message_from_json(message: &Value) -> Result<ChatResponse, AttemptError> {
    let blocks = message
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| AttemptError::decode("the answer has no `content` array"))?;
    let mut content = Vec::new();
    for block in blocks {
        let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        match block.get("type").and_then(Value::as_str) {
            Some("text") if !text("text").is_empty() => content.push(Block::Text { text: text("text") }),
            Some("tool_use") => content.push(Block::ToolUse {
                id: text("id"),
                name: text("name"),
                input: block.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            _ => {}
        }
    }
    let mut usage = Usage::default();
    if let Some(u) = message.get("usage") {
        merge_usage(&mut usage, u);
    }
    let content = without_blank_text(content);
    let has_tools = content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
    Ok(ChatResponse {
        stop_reason: stop_reason(message.get("stop_reason").and_then(Value::as_str), has_tools),
        refusal: refusal_details(message.get("stop_details")),
        cost_usd: None,
        content,
        usage,
        model: message
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolSpec;

    fn structured_request(model: &str) -> ChatRequest {
        ChatRequest {
            agent: "PRIME".into(),
            model: model.into(),
            system: "You are PRIME.".into(),
            messages: vec![Message::user_text("the card")],
            tools: Vec::new(),
            max_tokens: 100,
            response_schema: Some(crate::llm::ResponseSchema {
                name: "story_card".into(),
                schema: crate::schemas::answer_schema::story_card(),
            }),
        }
    }

    #[test]
    fn structured_outputs_by_model_name() {
        for native in [
            "claude-sonnet-4-6",
            "claude-haiku-4-5-20251001",
            "claude-opus-4-5",
            "claude-opus-4-1-20250805",
            "anthropic/claude-sonnet-4-5",
            "claude-sonnet-5",
        ] {
            assert_eq!(schema_mode(native), SchemaMode::Native, "{native}");
        }
        for forced in [
            "claude-sonnet-4-20250514",
            "claude-opus-4-20250514",
            "claude-3-7-sonnet-20250219",
            "claude-3-5-haiku-latest",
            "qwen2.5-coder",
            "smollm2",
        ] {
            assert_eq!(schema_mode(forced), SchemaMode::ForcedTool, "{forced}");
        }
    }

    #[test]
    fn a_response_schema_is_output_config_or_a_forced_tool() {
        let request = structured_request("claude-sonnet-4-6");
        let body = request_body(&request);
        assert_eq!(body["output_config"]["format"]["type"], "json_schema");
        assert_eq!(
            body["output_config"]["format"]["schema"],
            crate::schemas::answer_schema::story_card()
        );
        assert!(
            body.get("tool_choice").is_none() && body.get("tools").is_none(),
            "{body}"
        );

        let body = request_body_as(&request, SchemaMode::ForcedTool);
        assert!(body.get("output_config").is_none(), "{body}");
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "emit_story_card"}));
        assert_eq!(body["tools"][0]["name"], "emit_story_card");
        assert_eq!(
            body["tools"][0]["input_schema"],
            crate::schemas::answer_schema::story_card()
        );
        assert_eq!(body["tools"][0]["cache_control"], json!({"type": "ephemeral"}));
        // An older model gets the forced tool without trying `output_config`.
        assert_eq!(
            request_body(&structured_request("claude-3-5-haiku-latest"))["tool_choice"]["name"],
            "emit_story_card"
        );
        // Without a schema, neither.
        let mut plain = request;
        plain.response_schema = None;
        let body = request_body(&plain);
        assert!(body.get("output_config").is_none() && body.get("tool_choice").is_none());
    }

    #[test]
    fn the_forced_tool_call_is_read_as_the_json_answer() {
        let request = structured_request("qwen");
        let input = json!({"story": "s", "acceptance": ["a"]});
        let answer = ChatResponse {
            content: vec![Block::ToolUse {
                id: "toolu_1".into(),
                name: "emit_story_card".into(),
                input: input.clone(),
            }],
            stop_reason: StopReason::ToolUse,
            usage: Usage::default(),
            model: "qwen".into(),
            refusal: None,
            cost_usd: None,
        };
        let read = structured_answer(&request, SchemaMode::ForcedTool, answer.clone());
        assert_eq!(
            read.content,
            vec![Block::Text {
                text: input.to_string()
            }]
        );
        assert_eq!(read.stop_reason, StopReason::EndTurn);
        // Natively the answer is already text; a call of another tool is left alone.
        assert_eq!(structured_answer(&request, SchemaMode::Native, answer.clone()), answer);
        let mut other = request;
        other.response_schema.as_mut().unwrap().name = "gate_criteria".into();
        assert_eq!(
            structured_answer(&other, SchemaMode::ForcedTool, answer.clone()),
            answer
        );
    }

    #[test]
    fn only_a_400_about_output_config_falls_back() {
        let mut e = AttemptError::new(
            super::super::transport::AttemptKind::Http,
            false,
            "output_config: Extra inputs are not permitted",
        );
        e.status = Some(400);
        assert!(rejects_output_config(&e));
        e.message = "messages.0: text content blocks must contain non-whitespace text".into();
        assert!(!rejects_output_config(&e));
        e.message = "output_config: Extra inputs are not permitted".into();
        e.status = Some(500);
        assert!(!rejects_output_config(&e));
    }

    fn feed(text: &str) -> Result<ChatResponse, AttemptError> {
        let mut parser = SseParser::new();
        let mut state = StreamState::default();
        for event in parser.feed(text.as_bytes()) {
            state.apply(&event)?;
        }
        state.finish("requested")
    }

    #[test]
    fn assembles_text_and_tool_input_fragments() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-6\",\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":1,\"cache_read_input_tokens\":7,\"cache_creation_input_tokens\":3}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Reading \"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"it.\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"read_file\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"pa\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"th\\\": \\\"a.rs\\\"}\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"list\",\"input\":{}}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":42}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let response = feed(stream).unwrap();
        assert_eq!(response.model, "claude-sonnet-4-6");
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.content,
            vec![
                Block::Text {
                    text: "Reading it.".into()
                },
                Block::ToolUse {
                    id: "toolu_1".into(),
                    name: "read_file".into(),
                    input: json!({"path": "a.rs"})
                },
                Block::ToolUse {
                    id: "toolu_2".into(),
                    name: "list".into(),
                    input: json!({})
                },
            ]
        );
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 42,
                cache_read_tokens: 7,
                cache_write_tokens: 3
            }
        );
    }

    #[test]
    fn cut_stream_and_error_event_are_classified() {
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":1}}}\n\n";
        let cut = feed(start).unwrap_err();
        assert!(cut.retryable);
        assert!(cut.message.contains("before `message_stop`"), "{}", cut.message);

        let overloaded = format!(
            "{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n"
        );
        let err = feed(&overloaded).unwrap_err();
        assert!(err.retryable);
        assert_eq!(err.status, Some(529));

        let invalid = format!(
            "{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}}}\n\n"
        );
        let err = feed(&invalid).unwrap_err();
        assert!(!err.retryable);
    }

    fn stream_ending(delta: &str) -> String {
        format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"m\",\"usage\":{{}}}}}}\n\n\
             event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\\n\\n \"}}}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{delta},\"usage\":{{\"output_tokens\":0}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        )
    }

    #[test]
    fn stop_reasons_refusal_details_and_blank_text() {
        let r = feed(&stream_ending(r#"{"stop_reason":"some_future_reason"}"#)).unwrap();
        assert_eq!(r.stop_reason, StopReason::Other("some_future_reason".into()));
        // Whitespace-only text is no content (the API rejects it in the history).
        assert!(r.content.is_empty());
        assert!(r.is_empty());

        let r = feed(&stream_ending(
            r#"{"stop_reason":"refusal","stop_details":{"type":"refusal","category":"cyber","explanation":"Not allowed."}}"#,
        ))
        .unwrap();
        assert_eq!(r.stop_reason, StopReason::Refusal);
        assert_eq!(r.refusal_text(), "Not allowed. (category: cyber)");
        let r = feed(&stream_ending(r#"{"stop_reason":"refusal"}"#)).unwrap();
        assert_eq!(r.refusal_text(), "(the provider gave no explanation)");

        for (wire, reason) in [
            ("pause_turn", StopReason::PauseTurn),
            ("model_context_window_exceeded", StopReason::ContextWindowExceeded),
        ] {
            let r = feed(&stream_ending(&format!(r#"{{"stop_reason":"{wire}"}}"#))).unwrap();
            assert_eq!(r.stop_reason, reason);
            // The transcript keeps the wire name.
            assert_eq!(serde_json::to_value(&r.stop_reason).unwrap(), json!(wire));
        }
    }

    #[test]
    fn blank_text_blocks_are_never_sent() {
        let request = ChatRequest {
            agent: "FORGE".into(),
            model: "m".into(),
            system: String::new(),
            messages: vec![
                Message::user_text("go"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Block::Text { text: "\n\n".into() },
                        Block::ToolUse {
                            id: "t".into(),
                            name: "run".into(),
                            input: json!({}),
                        },
                    ],
                },
            ],
            tools: Vec::new(),
            max_tokens: 10,
            response_schema: None,
        };
        let body = request_body(&request);
        assert_eq!(body["messages"][1]["content"].as_array().unwrap().len(), 1);
        assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
    }

    #[test]
    fn body_has_cache_breakpoints_and_tool_results_first() {
        let request = ChatRequest {
            agent: "FORGE".into(),
            model: "claude-sonnet-4-6".into(),
            system: "You are FORGE.".into(),
            messages: vec![
                Message::user_text("do it"),
                Message {
                    role: Role::Assistant,
                    content: vec![Block::ToolUse {
                        id: "t1".into(),
                        name: "read".into(),
                        input: json!({"p": 1}),
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Block::Text { text: "note".into() },
                        Block::ToolResult {
                            tool_use_id: "t1".into(),
                            content: "boom".into(),
                            is_error: true,
                        },
                    ],
                },
            ],
            tools: vec![
                ToolSpec {
                    name: "read".into(),
                    description: "r".into(),
                    input_schema: json!({"type": "object"}),
                    anthropic_type: None,
                },
                ToolSpec {
                    name: "write".into(),
                    description: "w".into(),
                    input_schema: json!({"type": "object"}),
                    anthropic_type: None,
                },
            ],
            max_tokens: 100,
            response_schema: None,
        };
        let body = request_body(&request);
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["system"][0]["cache_control"], json!({"type": "ephemeral"}));
        assert!(body["tools"][0].get("cache_control").is_none());
        assert_eq!(body["tools"][1]["cache_control"], json!({"type": "ephemeral"}));
        assert!(body["messages"][0]["content"][0].get("cache_control").is_none());
        let last = &body["messages"][2]["content"];
        assert_eq!(
            last[0],
            json!({"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true})
        );
        assert_eq!(
            last[1],
            json!({"type": "text", "text": "note", "cache_control": {"type": "ephemeral"}})
        );
        let breakpoints = body.to_string().matches("cache_control").count();
        assert!(breakpoints <= 4, "{breakpoints}");
    }
}
