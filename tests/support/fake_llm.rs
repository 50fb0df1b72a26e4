//! A fake Anthropic Messages API on 127.0.0.1 that speaks the real wire format (SSE
//! streaming, tool_use blocks, usage, error bodies) and plays a scripted conversation.
//! Each request is routed by agent (read from the system prompt, "You are PRIME, ...")
//! and the agent's call number; every request is recorded for assertions.
//!
//! Every fake also serves the same script as an OpenAI-compatible `/v1/chat/completions`
//! (JSON, `tool_calls`; [`FakeLlm::start_openai`] names that use). Both reject a `tools`
//! list the real API rejects (HTTP 400): Anthropic-defined tools must be exactly
//! `{type, name}` with the name their type fixes, custom tools need an `input_schema`;
//! OpenAI tools must be functions with `parameters`.
//!
//! Like the real API it rejects, with the real 400 bodies, what pace must never send:
//! empty messages, whitespace-only text blocks, a `tool_use` without its `tool_result`
//! (or the reverse), and a conversation that ends with an assistant message other than
//! the continuation of a paused turn (this model does not support prefill). Rejections are
//! answered before the script is asked and are listed in [`FakeLlm::rejected`].
//!
//! Structured outputs: a malformed `output_config` / `tool_choice` (Anthropic) or
//! `response_format` (OpenAI, with the strict-mode schema rules) is rejected the same way;
//! [`FakeLlm::reject_output_config`] plays a model, proxy or server without structured
//! outputs on both wires.
//! A request that asks for a schema gets the script's YAML answer as the model under
//! constrained decoding would give it: JSON text, or the forced tool's call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const AGENTS: [&str; 6] = ["PRIME", "FORGE", "GATE", "SENTINEL", "CONDUIT", "SCRIBE"];

/// What the script sees of one request.
pub struct Turn {
    pub agent: String,
    /// 1-based call number of this agent over the whole test.
    pub call: u32,
    pub body: Value,
}

impl Turn {
    /// Text of the first user message (the attempt's brief).
    pub fn first_user_text(&self) -> String {
        self.body["messages"][0]["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .or_else(|| self.body["messages"][0]["content"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Tool results in the last user message: (tool_use_id, content).
    pub fn last_tool_results(&self) -> Vec<(String, String)> {
        let Some(messages) = self.body["messages"].as_array() else {
            return Vec::new();
        };
        let Some(last) = messages.last() else { return Vec::new() };
        last["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_result")
                    .map(|b| {
                        let content = b["content"].as_str().map(str::to_string).unwrap_or_else(|| {
                            b["content"]
                                .as_array()
                                .map(|a| a.iter().filter_map(|x| x["text"].as_str()).collect::<String>())
                                .unwrap_or_default()
                        });
                        (b["tool_use_id"].as_str().unwrap_or_default().to_string(), content)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn attempt_brief_mentions(&self, needle: &str) -> bool {
        self.first_user_text().contains(needle)
    }
}

pub enum Reply {
    Text(String),
    /// Tool calls (name, input), optionally preceded by text.
    Tools(Vec<(&'static str, Value)>),
    /// An HTTP error with an Anthropic error body and extra headers.
    Error {
        status: u16,
        kind: &'static str,
        message: &'static str,
        headers: Vec<(&'static str, &'static str)>,
    },
    /// `reply`, answered only after `delay` (holds the day inside one agent's call).
    Delayed(std::time::Duration, Box<Reply>),
    /// Accepts the request and never answers (a hung provider or proxy).
    Hang,
    /// HTTP 200 and an event stream that stops after the first text delta, without
    /// `message_stop` (a proxy or load balancer closing the stream early).
    Cut,
    /// An answer stopped by the output limit (`stop_reason: max_tokens`): `text`, then
    /// optionally a tool call whose arguments are the (incomplete) raw JSON given.
    Truncated {
        text: String,
        partial_tool: Option<(&'static str, &'static str)>,
    },
    /// `content: []` with `stop_reason: end_turn` (documented: most often right after
    /// tool results).
    Empty,
    /// One text block of whitespace only (`"\n\n"`), `end_turn`.
    Blank,
    /// `stop_reason: refusal` after `text` (may be empty), with `stop_details` when an
    /// explanation or category is given.
    Refusal {
        text: String,
        explanation: Option<&'static str>,
        category: Option<&'static str>,
    },
    /// `text` with `stop_reason: pause_turn`: pace must send it back as the last message.
    Paused(String),
    /// `text` ending with any stop reason (e.g. `model_context_window_exceeded`).
    Stopped(String, &'static str),
    /// HTTP 200, a first text delta, then `event: error` with `overloaded_error`.
    ErrorMidStream,
    /// `reply` with `Connection: close` (the server closes after answering).
    CloseAfter(Box<Reply>),
    /// Any status with this JSON body as is (e.g. an OpenAI-shaped error).
    Raw(u16, Value),
    /// HTTP 200, then the connection is dropped in the middle of the answer (a proxy or
    /// server going away). Needs [`FakeLlm::start_dropping`].
    Dropped,
}

pub type Script = Arc<dyn Fn(&Turn) -> Reply + Send + Sync>;

/// Where the dropping front cuts a [`Reply::Dropped`] answer.
pub const DROP_MARKER: &str = "<<connection dropped here>>";

thread_local! {
    /// The model of the request being answered: the answer names it, as the real API does
    /// (so the cost is the requested model's).
    static MODEL: std::cell::RefCell<String> = std::cell::RefCell::new("fake-model".into());
}

#[derive(Clone)]
pub struct FakeLlm {
    pub server: Arc<MockServer>,
    /// A TCP front that drops connections ([`FakeLlm::start_dropping`]); `url()` is its.
    front: Option<String>,
    pub requests: Arc<Mutex<Vec<(String, Value)>>>,
    /// The 400 messages of requests rejected as the real API would (empty when pace
    /// sent only valid requests).
    pub rejected: Arc<Mutex<Vec<String>>>,
    /// When the first request arrived (benchmarks: time to the first agent's call).
    pub first_request_at: Arc<Mutex<Option<std::time::Instant>>>,
    /// Answer `output_config` with the 400 of a model or proxy without structured outputs.
    rejects_output_config: Arc<std::sync::atomic::AtomicBool>,
}

/// The Anthropic-defined tools the fake knows, with the name each type requires.
const DEFINED_TOOLS: [(&str, &str); 4] = [
    ("text_editor_20250728", "str_replace_based_edit_tool"),
    ("text_editor_20250429", "str_replace_based_edit_tool"),
    ("text_editor_20250124", "str_replace_editor"),
    ("bash_20250124", "bash"),
];

/// What the Messages API answers about `tools`, as its 400 message, if it refuses them.
pub fn anthropic_tools_problem(body: &Value) -> Option<String> {
    let tools = body.get("tools")?.as_array()?;
    for (i, tool) in tools.iter().enumerate() {
        let Some(obj) = tool.as_object() else {
            return Some(format!("tools.{i}: Input should be an object"));
        };
        let kind = obj.get("type").and_then(Value::as_str).unwrap_or("custom");
        if kind == "custom" {
            if !obj.get("name").is_some_and(Value::is_string) {
                return Some(format!("tools.{i}.custom.name: Field required"));
            }
            if !obj.get("input_schema").is_some_and(Value::is_object) {
                return Some(format!("tools.{i}.custom.input_schema: Field required"));
            }
            continue;
        }
        let Some((_, name)) = DEFINED_TOOLS.iter().find(|(t, _)| *t == kind) else {
            return Some(format!(
                "tools.{i}: Input tag '{kind}' found using 'type' does not match any of the expected tags"
            ));
        };
        if obj.get("name").and_then(Value::as_str) != Some(name) {
            return Some(format!("tools.{i}.{kind}.name: Input should be '{name}'"));
        }
        let allowed = ["type", "name", "cache_control", "max_characters"];
        if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Some(format!("tools.{i}.{kind}.{extra}: Extra inputs are not permitted"));
        }
    }
    None
}

/// What an OpenAI-compatible server answers about `tools`, if it refuses them.
pub fn openai_tools_problem(body: &Value) -> Option<String> {
    let tools = body.get("tools")?.as_array()?;
    for (i, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind != "function" {
            return Some(format!(
                "Invalid value: '{kind}'. Supported values are: 'function' and 'custom'. (tools[{i}].type)"
            ));
        }
        if !tool.pointer("/function/name").is_some_and(Value::is_string) {
            return Some(format!("Missing required parameter: 'tools[{i}].function.name'."));
        }
        if !tool.pointer("/function/parameters").is_none_or(Value::is_object) {
            return Some(format!(
                "Invalid type for 'tools[{i}].function.parameters': expected an object."
            ));
        }
    }
    None
}

/// The model's answer under a JSON schema: the scripted YAML answer (fenced or not) as
/// a JSON object, or `None` when it is not a YAML mapping (a script playing a broken
/// answer).
pub fn yaml_answer_as_json(text: &str) -> Option<Value> {
    let body = match text.find("```") {
        Some(start) => {
            let after = &text[start + 3..];
            let from = after.find('\n')? + 1;
            let rest = &after[from..];
            &rest[..rest.find("```").unwrap_or(rest.len())]
        }
        None => text,
    };
    let value: Value = serde_saphyr::from_str(body).ok()?;
    value.is_object().then_some(value)
}

/// What the Messages API answers with 400 about `output_config` and `tool_choice`.
pub fn anthropic_structured_problem(body: &Value, rejects_output_config: bool) -> Option<String> {
    if let Some(config) = body.get("output_config") {
        if rejects_output_config {
            return Some("output_config: Extra inputs are not permitted".into());
        }
        let format = &config["format"];
        if format["type"] != "json_schema" {
            return Some(format!(
                "output_config.format.type: Input should be 'json_schema', got {}",
                format["type"]
            ));
        }
        if format["schema"]["type"] != "object" {
            return Some("output_config.format.schema: the schema must be an object schema (`type: object`)".into());
        }
    }
    if let Some(choice) = body.get("tool_choice") {
        match choice["type"].as_str() {
            Some("auto" | "any" | "none") => {}
            Some("tool") => {
                let name = choice["name"].as_str().unwrap_or_default();
                let offered = body["tools"]
                    .as_array()
                    .is_some_and(|tools| tools.iter().any(|t| t["name"] == name));
                if !offered {
                    return Some(format!("tool_choice: tool `{name}` is not in `tools`"));
                }
            }
            _ => {
                return Some(format!(
                    "tool_choice.type: Input tag {} is not one of 'auto', 'any', 'tool', 'none'",
                    choice["type"]
                ));
            }
        }
    }
    None
}

/// OpenAI's strict-mode rules for a schema: every object forbids extra properties and
/// lists every property as required.
fn strict_schema_problem(schema: &Value, at: &str) -> Option<String> {
    if schema["type"] == "object" {
        if schema["additionalProperties"] != json!(false) {
            return Some(format!(
                "In context=({at}), 'additionalProperties' is required to be supplied and to be false."
            ));
        }
        let properties = schema["properties"].as_object().cloned().unwrap_or_default();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, property) in &properties {
            if !required.contains(&name.as_str()) {
                return Some(format!(
                    "In context=({at}), 'required' is required to be supplied and to be an array including every key in properties. Missing '{name}'."
                ));
            }
            if let Some(problem) = strict_schema_problem(property, &format!("{at}'properties', '{name}', ")) {
                return Some(problem);
            }
        }
    }
    for keyword in ["minItems", "maxItems", "minLength", "maxLength", "pattern", "format"] {
        if schema.get(keyword).is_some() {
            return Some(format!("In context=({at}), '{keyword}' is not permitted."));
        }
    }
    if let Some(items) = schema.get("items") {
        return strict_schema_problem(items, &format!("{at}'items', "));
    }
    None
}

/// What OpenAI answers with 400 about `response_format`.
pub fn openai_response_format_problem(body: &Value) -> Option<String> {
    let format = body.get("response_format")?;
    match format["type"].as_str() {
        Some("text" | "json_object") => None,
        Some("json_schema") => {
            let spec = &format["json_schema"];
            let name = spec["name"].as_str().unwrap_or_default();
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Some(format!(
                    "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$', got '{name}'."
                ));
            }
            if !spec["schema"].is_object() {
                return Some("Missing required parameter: 'response_format.json_schema.schema'.".into());
            }
            if spec["strict"] == json!(true) {
                return strict_schema_problem(&spec["schema"], "")
                    .map(|p| format!("Invalid schema for response_format '{name}': {p}"));
            }
            None
        }
        _ => Some(format!(
            "Invalid value: {}. Supported values are: 'text', 'json_object', and 'json_schema'. (response_format.type)",
            format["type"]
        )),
    }
}

struct Responder {
    script: Script,
    /// Texts of the answers served with `pause_turn` (the only allowed final assistant turns).
    paused: Mutex<Vec<String>>,
    rejected: Arc<Mutex<Vec<String>>>,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    expected_key: Option<String>,
    latency: std::time::Duration,
    first_request_at: Arc<Mutex<Option<std::time::Instant>>>,
    rejects_output_config: Arc<std::sync::atomic::AtomicBool>,
}

fn agent_of(body: &Value) -> String {
    // OpenAI: the system prompt is the first message.
    let system = if body["system"].is_null() && body["messages"][0]["role"] == "system" {
        &body["messages"][0]["content"]
    } else {
        &body["system"]
    };
    let system = match system {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    AGENTS
        .iter()
        .find(|a| system.starts_with(&format!("You are {a}")))
        .map(|a| (*a).to_string())
        .unwrap_or_else(|| "UNKNOWN".into())
}

fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

fn message_events(agent: &str, call: u32, reply_blocks: &[Value], stop: &str, input_tokens: u64) -> String {
    message_events_with(agent, call, reply_blocks, stop, Value::Null, input_tokens)
}

fn message_events_with(
    agent: &str,
    call: u32,
    reply_blocks: &[Value],
    stop: &str,
    stop_details: Value,
    input_tokens: u64,
) -> String {
    let mut events = vec![(
        "message_start",
        json!({"type":"message_start","message":{"id":format!("msg_{agent}_{call}"),"type":"message","role":"assistant","model":MODEL.with(|m| m.borrow().clone()),"content":[],"stop_reason":null,"usage":{"input_tokens":input_tokens,"output_tokens":1,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}}),
    )];
    let mut output_tokens = 1u64;
    for (index, block) in reply_blocks.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => {
                let text = block["text"].as_str().unwrap_or_default();
                output_tokens += text.len() as u64 / 4 + 1;
                events.push((
                    "content_block_start",
                    json!({"type":"content_block_start","index":index,"content_block":{"type":"text","text":""}}),
                ));
                // Two deltas, so the client really accumulates.
                let mid = text
                    .char_indices()
                    .nth(text.chars().count() / 2)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                events.push(("content_block_delta", json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":&text[..mid]}})));
                events.push(("ping", json!({"type":"ping"})));
                events.push(("content_block_delta", json!({"type":"content_block_delta","index":index,"delta":{"type":"text_delta","text":&text[mid..]}})));
            }
            _ => {
                let input = block["input"].to_string();
                output_tokens += input.len() as u64 / 4 + 1;
                events.push((
                    "content_block_start",
                    json!({"type":"content_block_start","index":index,"content_block":{"type":"tool_use","id":block["id"],"name":block["name"],"input":{}}}),
                ));
                let mid = input
                    .char_indices()
                    .nth(input.chars().count() / 2)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                events.push(("content_block_delta", json!({"type":"content_block_delta","index":index,"delta":{"type":"input_json_delta","partial_json":&input[..mid]}})));
                events.push(("content_block_delta", json!({"type":"content_block_delta","index":index,"delta":{"type":"input_json_delta","partial_json":&input[mid..]}})));
            }
        }
        events.push(("content_block_stop", json!({"type":"content_block_stop","index":index})));
    }
    events.push(("message_delta", json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null,"stop_details":stop_details},"usage":{"output_tokens":output_tokens}})));
    events.push(("message_stop", json!({"type":"message_stop"})));
    sse(&events)
}

/// The texts of a message's content, joined (a string content is its own text).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// What the real Messages API answers with 400 for this body, if anything.
fn invalid_request(body: &Value, paused: &[String]) -> Option<String> {
    let Some(messages) = body["messages"].as_array() else {
        return Some("messages: Field required".into());
    };
    if messages.is_empty() {
        return Some("messages: at least one message is required".into());
    }
    if messages[0]["role"] != "user" {
        return Some("messages: first message must use the \"user\" role".into());
    }
    let last = messages.len() - 1;
    for (i, message) in messages.iter().enumerate() {
        let assistant = message["role"] == "assistant";
        let empty = match &message["content"] {
            Value::String(s) => s.is_empty(),
            Value::Array(blocks) => blocks.is_empty(),
            _ => true,
        };
        if empty && !(assistant && i == last) {
            return Some(format!(
                "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            ));
        }
        let blocks = message["content"].as_array().cloned().unwrap_or_default();
        for block in &blocks {
            if block["type"] == "text" && block["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                return Some("messages: text content blocks must contain non-whitespace text".into());
            }
        }
        let ids = |of: &[Value], kind: &str, key: &str| -> Vec<String> {
            of.iter()
                .filter(|b| b["type"] == kind)
                .filter_map(|b| b[key].as_str().map(String::from))
                .collect()
        };
        if assistant {
            let uses = ids(&blocks, "tool_use", "id");
            if i < last && !uses.is_empty() {
                let next = messages[i + 1]["content"].as_array().cloned().unwrap_or_default();
                let answered = ids(&next, "tool_result", "tool_use_id");
                if let Some(missing) = uses.iter().find(|id| !answered.contains(id)) {
                    return Some(format!(
                        "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                        i + 1
                    ));
                }
            }
        } else {
            let results = ids(&blocks, "tool_result", "tool_use_id");
            let previous = if i > 0 {
                messages[i - 1]["content"].as_array().cloned().unwrap_or_default()
            } else {
                Vec::new()
            };
            let offered = ids(&previous, "tool_use", "id");
            if let Some((j, stray)) = results.iter().enumerate().find(|(_, id)| !offered.contains(id)) {
                return Some(format!(
                    "messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {stray}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                ));
            }
        }
    }
    if messages[last]["role"] == "assistant" && !paused.contains(&content_text(&messages[last]["content"])) {
        return Some(format!(
            "messages.{last}: This model does not support assistant message prefill. The conversation must end with a user message."
        ));
    }
    None
}

/// The events of an answer cut off at the output limit: the text and the raw start of a
/// tool call's arguments as the model streamed them, then `stop_reason: max_tokens`.
fn truncated_events(
    agent: &str,
    call: u32,
    text: &str,
    partial_tool: Option<(&str, &str)>,
    input_tokens: u64,
) -> String {
    let mut events = vec![(
        "message_start",
        json!({"type":"message_start","message":{"id":format!("msg_{agent}_{call}"),"type":"message","role":"assistant","model":MODEL.with(|m| m.borrow().clone()),"content":[],"stop_reason":null,"usage":{"input_tokens":input_tokens,"output_tokens":1}}}),
    )];
    events.push((
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    ));
    events.push((
        "content_block_delta",
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
    ));
    events.push(("content_block_stop", json!({"type":"content_block_stop","index":0})));
    if let Some((name, raw)) = partial_tool {
        events.push((
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":format!("toolu_{agent}_{call}_cut"),"name":name,"input":{}}}),
        ));
        events.push((
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":raw}}),
        ));
        events.push(("content_block_stop", json!({"type":"content_block_stop","index":1})));
    }
    events.push((
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":64}}),
    ));
    events.push(("message_stop", json!({"type":"message_stop"})));
    sse(&events)
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.first_request_at
            .lock()
            .unwrap()
            .get_or_insert_with(std::time::Instant::now);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let agent = agent_of(&body);
        if let Some(expected) = &self.expected_key {
            let sent = request.headers.get("x-api-key").and_then(|v| v.to_str().ok());
            if sent.unwrap_or_default() != expected {
                return ResponseTemplate::new(401).set_body_json(json!({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_fake"}));
            }
        }
        let rejects_output_config = self.rejects_output_config.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(message) =
            anthropic_tools_problem(&body).or_else(|| anthropic_structured_problem(&body, rejects_output_config))
        {
            self.rejected.lock().unwrap().push(message.clone());
            self.requests.lock().unwrap().push((agent, body));
            return ResponseTemplate::new(400).set_body_json(
                json!({"type":"error","error":{"type":"invalid_request_error","message":message},"request_id":"req_fake"}),
            );
        }
        let model = body["model"].as_str().unwrap_or("fake-model").to_string();
        MODEL.with(|m| *m.borrow_mut() = model);
        let invalid = invalid_request(&body, &self.paused.lock().unwrap());
        if let Some(message) = invalid {
            self.rejected.lock().unwrap().push(message.clone());
            return ResponseTemplate::new(400)
                .insert_header("request-id", "req_fake_invalid")
                .set_body_json(json!({"type":"error","error":{"type":"invalid_request_error","message":message},"request_id":"req_fake_invalid"}));
        }
        let turn = record_turn(&self.counts, &self.requests, &agent, body.clone());
        let call = turn.call;
        let input_tokens = (request.body.len() / 4) as u64;
        let mut reply = (self.script)(&turn);
        let mut extra_delay = std::time::Duration::ZERO;
        while let Reply::Delayed(delay, inner) = reply {
            extra_delay += delay;
            reply = *inner;
        }
        let mut close = false;
        while let Reply::CloseAfter(inner) = reply {
            close = true;
            reply = *inner;
        }
        let hang = matches!(reply, Reply::Hang);
        // Under a schema the model answers JSON (structured outputs) or calls the forced
        // tool; a script's YAML answer is played that way.
        let forced = (body["tool_choice"]["type"] == "tool")
            .then(|| body["tool_choice"]["name"].as_str().unwrap_or_default().to_string());
        if let Reply::Text(text) = &reply {
            if let Some(tool) = &forced {
                let input = yaml_answer_as_json(text).unwrap_or_else(|| json!({"_raw": text}));
                let block =
                    json!({"type":"tool_use","id":format!("toolu_{agent}_{call}_emit"),"name":tool,"input":input});
                let sse = message_events(&agent, call, &[block], "tool_use", input_tokens);
                return ResponseTemplate::new(200)
                    .set_body_raw(sse, "text/event-stream")
                    .set_delay(self.latency + extra_delay);
            }
            if body.get("output_config").is_some()
                && let Some(json) = yaml_answer_as_json(text)
            {
                reply = Reply::Text(json.to_string());
            }
        }
        let template = match reply {
            Reply::Empty => {
                let sse = message_events(&agent, call, &[], "end_turn", input_tokens);
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
            Reply::Blank => {
                let sse = message_events(
                    &agent,
                    call,
                    &[json!({"type":"text","text":"\n\n"})],
                    "end_turn",
                    input_tokens,
                );
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
            Reply::Refusal {
                text,
                explanation,
                category,
            } => {
                let blocks = if text.is_empty() {
                    Vec::new()
                } else {
                    vec![json!({"type":"text","text":text})]
                };
                let details = if explanation.is_some() || category.is_some() {
                    json!({"type":"refusal","category":category,"explanation":explanation})
                } else {
                    Value::Null
                };
                let sse = message_events_with(&agent, call, &blocks, "refusal", details, input_tokens);
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
            Reply::Paused(text) => {
                self.paused.lock().unwrap().push(text.clone());
                let sse = message_events(
                    &agent,
                    call,
                    &[json!({"type":"text","text":text})],
                    "pause_turn",
                    input_tokens,
                );
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
            Reply::Stopped(text, stop) => {
                let sse = message_events(&agent, call, &[json!({"type":"text","text":text})], stop, input_tokens);
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
            Reply::ErrorMidStream => {
                let whole = message_events(
                    &agent,
                    call,
                    &[json!({"type":"text","text":"this half is dropped"})],
                    "end_turn",
                    input_tokens,
                );
                let cut_at = whole.find("event: ping").unwrap_or(whole.len() / 2);
                let error = sse(&[(
                    "error",
                    json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
                )]);
                ResponseTemplate::new(200).set_body_raw(format!("{}{error}", &whole[..cut_at]), "text/event-stream")
            }
            Reply::CloseAfter(_) => unreachable!("unwrapped above"),
            Reply::Raw(status, body) => ResponseTemplate::new(status).set_body_json(body),
            Reply::Dropped => {
                // The whole answer; the dropping front ([`FakeLlm::start_dropping`]) cuts the
                // connection where the marker begins.
                let sse = message_events(
                    &agent,
                    call,
                    // Twice: the text is streamed in two deltas split in the middle.
                    &[json!({"type":"text","text":format!("{DROP_MARKER}{DROP_MARKER}")})],
                    "end_turn",
                    input_tokens,
                );
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
            Reply::Text(text) => {
                let sse = message_events(
                    &agent,
                    call,
                    &[json!({"type":"text","text":text})],
                    "end_turn",
                    input_tokens,
                );
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
            Reply::Tools(calls) => {
                let blocks: Vec<Value> = calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, input))| json!({"type":"tool_use","id":format!("toolu_{agent}_{call}_{i}"),"name":name,"input":input}))
                    .collect();
                let sse = message_events(&agent, call, &blocks, "tool_use", input_tokens);
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
            Reply::Error {
                status,
                kind,
                message,
                headers,
            } => {
                let mut t = ResponseTemplate::new(status).set_body_json(
                    json!({"type":"error","error":{"type":kind,"message":message},"request_id":"req_fake"}),
                );
                for (k, v) in headers {
                    t = t.insert_header(k, v);
                }
                t
            }
            Reply::Delayed(..) => unreachable!("unwrapped above"),
            // Held for an hour: the client's read timeout or the day's deadline ends it.
            Reply::Hang => ResponseTemplate::new(200)
                .set_body_raw(String::new(), "text/event-stream")
                .set_delay(std::time::Duration::from_secs(3600)),
            Reply::Cut => {
                let whole = message_events(
                    &agent,
                    call,
                    &[json!({"type":"text","text":"this answer will not arrive in full"})],
                    "end_turn",
                    input_tokens,
                );
                // Up to the first text delta (after `message_start` and the block start).
                let cut_at = whole.find("event: ping").unwrap_or(whole.len() / 2);
                ResponseTemplate::new(200).set_body_raw(whole[..cut_at].to_string(), "text/event-stream")
            }
            Reply::Truncated { text, partial_tool } => {
                let sse = truncated_events(&agent, call, &text, partial_tool, input_tokens);
                ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
            }
        };
        let template = if close {
            template.insert_header("connection", "close")
        } else {
            template
        };
        if hang {
            template
        } else {
            template.set_delay(self.latency + extra_delay)
        }
    }
}

/// The same scripted model behind OpenAI's chat completions (`{url}/v1/chat/completions`,
/// not streamed). The request is shown to the script in the Anthropic shape (system
/// prompt apart, tool results as `tool_result` blocks of a user message), so the same
/// scripts play both providers. It rejects what OpenAI rejects: an assistant message with
/// neither content nor tool calls, a tool call without its tool message, a tool message
/// without its call.
struct OpenAiResponder {
    script: Script,
    expected_key: Option<String>,
    rejected: Arc<Mutex<Vec<String>>>,
    counts: Arc<Mutex<HashMap<String, u32>>>,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    rejects_output_config: Arc<std::sync::atomic::AtomicBool>,
}

/// What OpenAI answers with 400 for these messages, if anything.
fn openai_invalid(messages: &[Value]) -> Option<String> {
    let mut open: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or_default();
        if role != "tool" && !open.is_empty() {
            return Some(format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                open.join(", ")
            ));
        }
        match role {
            "assistant" => {
                let calls: Vec<String> = m["tool_calls"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|c| c["id"].as_str().map(String::from)).collect())
                    .unwrap_or_default();
                if m["content"].is_null() && calls.is_empty() {
                    return Some(format!(
                        "Invalid value for 'messages[{i}].content': expected a string, got null."
                    ));
                }
                open = calls;
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                let Some(at) = open.iter().position(|o| o == id) else {
                    return Some("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.".into());
                };
                open.remove(at);
            }
            _ => {}
        }
    }
    None
}

/// An OpenAI request in the Anthropic shape the scripts read.
fn as_anthropic(body: &Value) -> Value {
    let mut system = String::new();
    let mut out: Vec<Value> = Vec::new();
    for m in body["messages"].as_array().cloned().unwrap_or_default() {
        let text = m["content"].as_str().unwrap_or_default().to_string();
        let block = match m["role"].as_str().unwrap_or_default() {
            "system" => {
                system = text;
                continue;
            }
            "assistant" => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in m["tool_calls"].as_array().cloned().unwrap_or_default() {
                    let raw = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let input: Value = serde_json::from_str(raw).unwrap_or(json!({"_raw": raw}));
                    blocks.push(
                        json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}),
                    );
                }
                out.push(json!({"role": "assistant", "content": blocks}));
                continue;
            }
            "tool" => json!({"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": text}),
            _ => json!({"type": "text", "text": text}),
        };
        // Tool results and the text after them form one user message, as in Anthropic's API.
        match out.last_mut() {
            Some(last) if last["role"] == "user" => last["content"].as_array_mut().unwrap().push(block),
            _ => out.push(json!({"role": "user", "content": [block]})),
        }
    }
    json!({"model": body["model"], "system": system, "messages": out, "tools": body["tools"], "response_format": body["response_format"]})
}

fn openai_answer(model: &Value, message: Value, finish: &str, input_tokens: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": input_tokens, "completion_tokens": 20, "total_tokens": input_tokens + 20},
    }))
}

impl Respond for OpenAiResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let raw: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if let Some(expected) = &self.expected_key {
            let sent = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if sent.unwrap_or_default() != expected {
                return ResponseTemplate::new(401).set_body_json(
                    json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}),
                );
            }
        }
        let messages = raw["messages"].as_array().cloned().unwrap_or_default();
        let unsupported = (self.rejects_output_config.load(std::sync::atomic::Ordering::Relaxed)
            && raw.get("response_format").is_some())
        .then(|| "Unrecognized request argument supplied: response_format".to_string());
        if let Some(message) = unsupported
            .or_else(|| openai_tools_problem(&raw))
            .or_else(|| openai_response_format_problem(&raw))
            .or_else(|| openai_invalid(&messages))
        {
            self.rejected.lock().unwrap().push(message.clone());
            return ResponseTemplate::new(400)
                .insert_header("x-request-id", "req_fake_openai_invalid")
                .set_body_json(json!({"error": {"message": message, "type": "invalid_request_error", "param": "messages", "code": null}}));
        }
        let body = as_anthropic(&raw);
        let agent = agent_of(&body);
        let turn = record_turn(&self.counts, &self.requests, &agent, body);
        let call = turn.call;
        let input_tokens = (request.body.len() / 4) as u64;
        let model = &raw["model"];
        let mut reply = (self.script)(&turn);
        while let Reply::Delayed(_, inner) | Reply::CloseAfter(inner) = reply {
            reply = *inner;
        }
        let calls = |calls: Vec<(String, String)>| -> Value {
            calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, arguments))| json!({"id": format!("call_{agent}_{call}_{i}"), "type": "function", "function": {"name": name, "arguments": arguments}}))
                .collect()
        };
        if raw["response_format"]["type"] == "json_schema"
            && let Reply::Text(text) = &reply
            && let Some(json) = yaml_answer_as_json(text)
        {
            reply = Reply::Text(json.to_string());
        }
        match reply {
            Reply::Text(text) | Reply::Paused(text) => {
                openai_answer(model, json!({"role": "assistant", "content": text}), "stop", input_tokens)
            }
            Reply::Stopped(text, stop) => {
                openai_answer(model, json!({"role": "assistant", "content": text}), stop, input_tokens)
            }
            Reply::Tools(list) => {
                let list = list.into_iter().map(|(n, input)| (n.to_string(), input.to_string())).collect();
                openai_answer(
                    model,
                    json!({"role": "assistant", "content": null, "tool_calls": calls(list)}),
                    "tool_calls",
                    input_tokens,
                )
            }
            Reply::Truncated { text, partial_tool } => {
                let mut message = json!({"role": "assistant", "content": text});
                if let Some((name, raw)) = partial_tool {
                    message["tool_calls"] = calls(vec![(name.to_string(), raw.to_string())]);
                }
                openai_answer(model, message, "length", input_tokens)
            }
            Reply::Empty => openai_answer(model, json!({"role": "assistant", "content": ""}), "stop", input_tokens),
            Reply::Blank => openai_answer(model, json!({"role": "assistant", "content": "\n\n"}), "stop", input_tokens),
            Reply::Refusal { text, explanation, .. } => {
                let refusal = explanation.map(String::from).unwrap_or(text);
                openai_answer(
                    model,
                    json!({"role": "assistant", "content": null, "refusal": refusal}),
                    "content_filter",
                    input_tokens,
                )
            }
            Reply::Error { status, kind, message, headers } => {
                let mut t = ResponseTemplate::new(status)
                    .set_body_json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}}));
                for (k, v) in headers {
                    t = t.insert_header(k, v);
                }
                t
            }
            Reply::Raw(status, body) => ResponseTemplate::new(status).set_body_json(body),
            Reply::Dropped => ResponseTemplate::new(500).set_body_json(
                json!({"error": {"message": "this behaviour is only played on the streamed Anthropic wire", "type": "server_error"}}),
            ),
            Reply::Hang => ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(3600)),
            Reply::Cut | Reply::ErrorMidStream => ResponseTemplate::new(500).set_body_json(
                json!({"error": {"message": "this behaviour is only played on the streamed Anthropic wire", "type": "server_error"}}),
            ),
            Reply::Delayed(..) | Reply::CloseAfter(_) => unreachable!("unwrapped above"),
        }
    }
}

/// Counts the agent's call, records the request and makes the script's [`Turn`] (both
/// wires' responders).
fn record_turn(
    counts: &Mutex<HashMap<String, u32>>,
    requests: &Mutex<Vec<(String, Value)>>,
    agent: &str,
    body: Value,
) -> Turn {
    let call = {
        let mut counts = counts.lock().unwrap();
        let c = counts.entry(agent.to_string()).or_insert(0);
        *c += 1;
        *c
    };
    requests.lock().unwrap().push((agent.to_string(), body.clone()));
    Turn {
        agent: agent.to_string(),
        call,
        body,
    }
}

impl FakeLlm {
    pub async fn start(script: Script, expected_key: Option<&str>) -> Self {
        Self::start_with_latency(script, expected_key, std::time::Duration::ZERO).await
    }

    /// For an OpenAI-compatible provider: every fake serves the same script at
    /// `/v1/chat/completions` (Bearer key) too; this name says which one a test uses.
    pub async fn start_openai(script: Script, expected_key: Option<&str>) -> Self {
        Self::start(script, expected_key).await
    }

    /// Every answer is delayed by `latency` (benchmarks of the day's concurrency).
    pub async fn start_with_latency(script: Script, expected_key: Option<&str>, latency: std::time::Duration) -> Self {
        let server = MockServer::start().await;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let first_request_at = Arc::new(Mutex::new(None));
        let rejected = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let rejects_output_config = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let openai = OpenAiResponder {
            script: script.clone(),
            expected_key: expected_key.map(str::to_string),
            rejected: rejected.clone(),
            counts: counts.clone(),
            requests: requests.clone(),
            rejects_output_config: rejects_output_config.clone(),
        };
        Mock::given(method("POST"))
            // `llm.base_url` with or without `/v1`.
            .and(path_regex(r"^(/v1)?/chat/completions$"))
            .respond_with(openai)
            .mount(&server)
            .await;
        let responder = Responder {
            script,
            paused: Mutex::new(Vec::new()),
            rejected: rejected.clone(),
            counts,
            requests: requests.clone(),
            expected_key: expected_key.map(str::to_string),
            latency,
            first_request_at: first_request_at.clone(),
            rejects_output_config: rejects_output_config.clone(),
        };
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(responder)
            .mount(&server)
            .await;
        Self {
            server: Arc::new(server),
            front: None,
            requests,
            rejected,
            first_request_at,
            rejects_output_config,
        }
    }

    /// From now on `output_config` (Anthropic) and `response_format` (OpenAI) are refused
    /// with HTTP 400, as by a model, proxy or server without structured outputs.
    pub fn reject_output_config(&self) {
        self.rejects_output_config
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Like [`FakeLlm::start`], behind a TCP front that forwards every connection and cuts
    /// it, mid-answer, where an answer holds [`DROP_MARKER`] ([`Reply::Dropped`]): a real
    /// dropped connection, which the mock server alone cannot play.
    pub async fn start_dropping(script: Script, expected_key: Option<&str>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut fake = Self::start(script, expected_key).await;
        let upstream = fake.server.address().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        fake.front = Some(format!("http://{}", listener.local_addr().unwrap()));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let requests = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    });
                    let mut seen: Vec<u8> = Vec::new();
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = server_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let from = seen.len();
                        seen.extend_from_slice(&buf[..n]);
                        let cut = seen
                            .windows(DROP_MARKER.len())
                            .position(|w| w == DROP_MARKER.as_bytes());
                        if let Some(at) = cut {
                            if at > from {
                                let _ = client_write.write_all(&seen[from..at]).await;
                            }
                            break;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Dropping both halves closes the client's connection mid-answer.
                    requests.abort();
                });
            }
        });
        fake
    }

    pub fn url(&self) -> String {
        self.front.clone().unwrap_or_else(|| self.server.uri())
    }

    /// The requests the fake rejected as the real API would.
    pub fn rejected(&self) -> Vec<String> {
        self.rejected.lock().unwrap().clone()
    }

    pub fn calls_of(&self, agent: &str) -> usize {
        self.requests.lock().unwrap().iter().filter(|(a, _)| a == agent).count()
    }

    pub fn all_request_text(&self) -> String {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
