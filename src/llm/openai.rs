//! OpenAI-compatible chat completions (`POST {base}/chat/completions`): OpenAI, gateways,
//! Ollama, vLLM, LM Studio, Groq, Mistral. Not streamed.
//!
//! Owns the translation from pace's Anthropic-shaped messages: tool results become `tool`
//! messages (followed by a `user` message for any text beside them), tool calls carry
//! their input as a JSON string, and arguments that are not JSON are kept as
//! `{"_invalid_arguments": "<raw>"}` for the tool layer to report.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value, json};

use super::anthropic::parse_tool_input;
use super::transport::{AttemptError, error_from_response};
use super::{Block, ChatRequest, ChatResponse, Message, Provider, Role, StopReason, Usage};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    /// The server refused `response_format` once (no structured outputs): the rest of the
    /// run asks without it and the answers come back as YAML text, validated as before.
    no_response_format: AtomicBool,
}

impl OpenAi {
    /// `api_key: None` sends no `Authorization` header (local servers).
    pub fn new(http: reqwest::Client, base_url: Option<&str>, api_key: Option<String>) -> Self {
        let base = base_url.unwrap_or(DEFAULT_BASE_URL).trim_end_matches('/');
        Self {
            http,
            url: format!("{base}/chat/completions"),
            api_key,
            no_response_format: AtomicBool::new(false),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait::async_trait]
impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, AttemptError> {
        if request.response_schema.is_none() || self.no_response_format.load(Ordering::Relaxed) {
            return self.send_body(request, &request_body(&without_schema(request))).await;
        }
        match self.send_body(request, &request_body(request)).await {
            Err(e) if rejects_response_format(&e) => {
                // Remembered for the run: one rejected request, then the YAML path.
                self.no_response_format.store(true, Ordering::Relaxed);
                tracing::warn!(
                    model = %request.model,
                    message = %e.message,
                    "the server refused `response_format`; asking for YAML answers from now on (set `llm.structured_output: off` to skip the try)"
                );
                self.send_body(request, &request_body(&without_schema(request))).await
            }
            other => other,
        }
    }
}

/// A 400/422 that names `response_format` (unknown field, unsupported schema).
fn rejects_response_format(e: &AttemptError) -> bool {
    matches!(e.status, Some(400 | 422)) && e.message.contains("response_format")
}

fn without_schema(request: &ChatRequest) -> ChatRequest {
    ChatRequest {
        response_schema: None,
        ..request.clone()
    }
}

impl OpenAi {
    async fn send_body(&self, request: &ChatRequest, body: &Value) -> Result<ChatResponse, AttemptError> {
        let mut builder = self.http.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        let response = builder.send().await.map_err(|e| AttemptError::from_reqwest(&e))?;
        if !response.status().is_success() {
            return Err(error_from_response(response, None).await);
        }
        let body = response.bytes().await.map_err(|e| AttemptError::from_reqwest(&e))?;
        let json: Value = serde_json::from_slice(&body).map_err(|e| {
            AttemptError::decode(format!(
                "the answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            ))
        })?;
        response_from_json(&json, &request.model)
    }
}

/// The request JSON.
pub fn request_body(request: &ChatRequest) -> Value {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    for message in &request.messages {
        push_message(&mut messages, message);
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(request.max_tokens));
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema,
                }})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(schema) = &request.response_schema {
        // The schemas follow the strict rules (see `schemas::answer_schema`); llama.cpp,
        // vLLM and Ollama read the same field and turn the schema into a grammar.
        body.insert(
            "response_format".into(),
            json!({"type": "json_schema", "json_schema": {
                "name": schema.name, "schema": schema.schema, "strict": true,
            }}),
        );
    }
    Value::Object(body)
}

fn joined_text(blocks: &[Block]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text } if !text.is_empty() => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn push_message(out: &mut Vec<Value>, message: &Message) {
    let text = joined_text(&message.content);
    match message.role {
        Role::Assistant => {
            let calls: Vec<Value> = message
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolUse { id, name, input } => Some(json!({
                        "id": id, "type": "function",
                        "function": {"name": name, "arguments": input.to_string()},
                    })),
                    _ => None,
                })
                .collect();
            let mut m =
                json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            out.push(m);
        }
        Role::User => {
            for block in &message.content {
                if let Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } = block
                {
                    // The format has no error flag: say it in the content, once (pace's
                    // tools already start their errors with it).
                    let content = if *is_error && !content.starts_with("ERROR") {
                        format!("ERROR: {content}")
                    } else {
                        content.clone()
                    };
                    out.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}));
                }
            }
            if !text.is_empty() {
                out.push(json!({"role": "user", "content": text}));
            }
        }
    }
}

/// Decodes `choices[0]` and `usage`.
pub fn response_from_json(json: &Value, requested_model: &str) -> Result<ChatResponse, AttemptError> {
    if let Some(message) = super::transport::error_message(json) {
        // Some servers answer 200 with an error object.
        return Err(AttemptError::decode(message));
    }
    let choice = json
        .pointer("/choices/0")
        .ok_or_else(|| AttemptError::decode(format!("the answer has no `choices`: {json}")))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(text) = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    {
        content.push(Block::Text { text: text.to_string() });
    }
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, call) in calls.iter().enumerate() {
        let id = call.get("id").and_then(Value::as_str).filter(|s| !s.is_empty());
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let input = match call.pointer("/function/arguments") {
            Some(Value::String(raw)) => parse_tool_input(raw),
            // Some servers send the object itself.
            Some(value @ Value::Object(_)) => value.clone(),
            _ => json!({}),
        };
        content.push(Block::ToolUse {
            id: id.map_or_else(|| format!("call_{i}"), String::from),
            name: name.to_string(),
            input,
        });
    }
    // OpenAI puts a refusal in its own field (structured outputs); the content filter
    // ends the answer with `content_filter`.
    let refusal = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .map(String::from);
    let stop_reason = match choice.get("finish_reason").and_then(Value::as_str) {
        _ if refusal.is_some() => StopReason::Refusal,
        Some("content_filter") => StopReason::Refusal,
        // Cut off by the output limit: the last tool call's arguments are incomplete, so
        // this is not a finished tool call (the agents say so to the model).
        Some("length") => StopReason::MaxTokens,
        _ if !calls.is_empty() => StopReason::ToolUse,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("stop") | None => StopReason::EndTurn,
        Some(other) => StopReason::Other(other.to_string()),
    };
    let count = |pointer: &str| json.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("/usage/prompt_tokens_details/cached_tokens");
    // `prompt_tokens` includes the cached tokens; pace counts them apart.
    let usage = Usage {
        input_tokens: count("/usage/prompt_tokens").saturating_sub(cached),
        output_tokens: count("/usage/completion_tokens"),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
    };
    let model = json
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(requested_model)
        .to_string();
    Ok(ChatResponse {
        content,
        stop_reason,
        usage,
        model,
        refusal,
        cost_usd: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolSpec;

    #[test]
    fn only_a_4xx_about_response_format_falls_back() {
        let mut e = AttemptError::new(
            super::super::transport::AttemptKind::Http,
            false,
            "Unrecognized request argument supplied: response_format",
        );
        e.status = Some(400);
        assert!(rejects_response_format(&e));
        e.status = Some(422);
        assert!(rejects_response_format(&e));
        e.status = Some(503);
        assert!(!rejects_response_format(&e));
        e.status = Some(400);
        e.message = "Invalid value for 'messages[1].content': expected a string, got null.".into();
        assert!(!rejects_response_format(&e));
    }

    #[test]
    fn a_response_schema_is_a_strict_json_schema_response_format() {
        let schema = crate::schemas::answer_schema::gate_criteria();
        let request = ChatRequest {
            agent: "GATE".into(),
            model: "qwen".into(),
            system: "sys".into(),
            messages: vec![Message::user_text("map")],
            tools: Vec::new(),
            max_tokens: 50,
            response_schema: Some(crate::llm::ResponseSchema {
                name: "gate_criteria".into(),
                schema: schema.clone(),
            }),
        };
        let body = request_body(&request);
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "gate_criteria", "schema": schema, "strict": true}})
        );
        assert!(body.get("tools").is_none());
        let mut plain = request;
        plain.response_schema = None;
        assert!(request_body(&plain).get("response_format").is_none());
    }

    #[test]
    fn maps_messages_tools_and_mixed_tool_results() {
        let request = ChatRequest {
            agent: "FORGE".into(),
            model: "qwen".into(),
            system: "sys".into(),
            messages: vec![
                Message::user_text("go"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        Block::Text { text: "reading".into() },
                        Block::ToolUse {
                            id: "c1".into(),
                            name: "read".into(),
                            input: json!({"path": "a"}),
                        },
                        Block::ToolUse {
                            id: "c2".into(),
                            name: "read".into(),
                            input: json!({"path": "b"}),
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        Block::ToolResult {
                            tool_use_id: "c1".into(),
                            content: "A".into(),
                            is_error: false,
                        },
                        Block::ToolResult {
                            tool_use_id: "c2".into(),
                            content: "nope".into(),
                            is_error: true,
                        },
                        Block::Text {
                            text: "HOLD: tests fail".into(),
                        },
                    ],
                },
            ],
            tools: vec![ToolSpec {
                name: "read".into(),
                description: "d".into(),
                input_schema: json!({"type": "object"}),
                anthropic_type: None,
            }],
            max_tokens: 50,
            response_schema: None,
        };
        let body = request_body(&request);
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "reading", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"a\"}"}},
                    {"id": "c2", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"b\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "A"},
                {"role": "tool", "tool_call_id": "c2", "content": "ERROR: nope"},
                {"role": "user", "content": "HOLD: tests fail"},
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "read", "description": "d", "parameters": {"type": "object"}}}])
        );
    }

    #[test]
    fn decodes_tool_calls_invalid_arguments_and_usage() {
        let answer = json!({
            "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"x\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "write", "arguments": "{path: x"}},
                ]}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 60}}
        });
        let r = response_from_json(&answer, "req").unwrap();
        assert_eq!(r.stop_reason, StopReason::ToolUse);
        assert_eq!(
            r.content,
            vec![
                Block::ToolUse {
                    id: "call_a".into(),
                    name: "read".into(),
                    input: json!({"path": "x"})
                },
                Block::ToolUse {
                    id: "call_b".into(),
                    name: "write".into(),
                    input: json!({"_invalid_arguments": "{path: x"})
                },
            ]
        );
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 40,
                output_tokens: 20,
                cache_read_tokens: 60,
                cache_write_tokens: 0
            }
        );

        let length = json!({"choices": [{"finish_reason": "length", "message": {"content": "abc"}}]});
        let r = response_from_json(&length, "m").unwrap();
        assert_eq!(r.stop_reason, StopReason::MaxTokens);
        assert_eq!(r.model, "m");
        assert_eq!(r.text(), "abc");
        assert!(response_from_json(&json!({"object": "list"}), "m").is_err());
    }

    #[test]
    fn refusals_cut_tool_calls_and_blank_text() {
        let filtered = json!({"choices": [{"finish_reason": "content_filter", "message": {"content": null}}]});
        let r = response_from_json(&filtered, "m").unwrap();
        assert_eq!(r.stop_reason, StopReason::Refusal);
        assert!(r.is_empty());

        let refusal = json!({"choices": [{"finish_reason": "stop", "message": {"content": null, "refusal": "I can't help with that."}}]});
        let r = response_from_json(&refusal, "m").unwrap();
        assert_eq!(r.stop_reason, StopReason::Refusal);
        assert_eq!(r.refusal_text(), "I can't help with that.");

        // Cut off inside a tool call: not a finished tool call.
        let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "write_file", "arguments": "{\"path\": \"a\", \"content\": \"abc"}}]}}]});
        let r = response_from_json(&cut, "m").unwrap();
        assert_eq!(r.stop_reason, StopReason::MaxTokens);
        let (_, _, input) = r.tool_calls().next().unwrap();
        assert!(input.get("_invalid_arguments").is_some(), "{input}");

        let blank = json!({"choices": [{"finish_reason": "stop", "message": {"content": "\n\n  "}}]});
        let r = response_from_json(&blank, "m").unwrap();
        assert!(r.content.is_empty());
        assert!(r.is_empty());
    }
}
