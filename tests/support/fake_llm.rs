//! A fake Anthropic Messages API on 127.0.0.1 that speaks the real wire format (SSE
//! streaming, tool_use blocks, usage, error bodies) and plays a scripted conversation.
//! Each request is routed by agent (read from the system prompt, "You are PRIME, ...")
//! and the agent's call number; every request is recorded for assertions.
//!
//! [`FakeLlm::start_openai`] serves the same script as an OpenAI-compatible
//! `/v1/chat/completions` (JSON, `tool_calls`). Both reject a `tools` list the real API
//! rejects (HTTP 400): Anthropic-defined tools must be exactly `{type, name}` with the
//! name their type fixes, custom tools need an `input_schema`; OpenAI tools must be
//! functions with `parameters`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
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
}

pub type Script = Arc<dyn Fn(&Turn) -> Reply + Send + Sync>;

#[derive(Clone)]
pub struct FakeLlm {
    pub server: Arc<MockServer>,
    pub requests: Arc<Mutex<Vec<(String, Value)>>>,
    /// When the first request arrived (benchmarks: time to the first agent's call).
    pub first_request_at: Arc<Mutex<Option<std::time::Instant>>>,
}

/// Which API a fake speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Anthropic,
    OpenAi,
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

struct Responder {
    wire: Wire,
    script: Script,
    counts: Mutex<HashMap<String, u32>>,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    expected_key: Option<String>,
    latency: std::time::Duration,
    first_request_at: Arc<Mutex<Option<std::time::Instant>>>,
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
    let mut events = vec![(
        "message_start",
        json!({"type":"message_start","message":{"id":format!("msg_{agent}_{call}"),"type":"message","role":"assistant","model":"fake-model","content":[],"stop_reason":null,"usage":{"input_tokens":input_tokens,"output_tokens":1,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}}),
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
    events.push(("message_delta", json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"output_tokens":output_tokens}})));
    events.push(("message_stop", json!({"type":"message_stop"})));
    sse(&events)
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
        json!({"type":"message_start","message":{"id":format!("msg_{agent}_{call}"),"type":"message","role":"assistant","model":"fake-model","content":[],"stop_reason":null,"usage":{"input_tokens":input_tokens,"output_tokens":1}}}),
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
            let sent = match self.wire {
                Wire::Anthropic => request.headers.get("x-api-key").and_then(|v| v.to_str().ok()),
                Wire::OpenAi => request
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer ")),
            };
            if sent.unwrap_or_default() != expected {
                return ResponseTemplate::new(401).set_body_json(json!({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_fake"}));
            }
        }
        let problem = match self.wire {
            Wire::Anthropic => anthropic_tools_problem(&body),
            Wire::OpenAi => openai_tools_problem(&body),
        };
        if let Some(message) = problem {
            self.requests.lock().unwrap().push((agent, body));
            return ResponseTemplate::new(400).set_body_json(
                json!({"type":"error","error":{"type":"invalid_request_error","message":message},"request_id":"req_fake"}),
            );
        }
        let call = {
            let mut counts = self.counts.lock().unwrap();
            let c = counts.entry(agent.clone()).or_insert(0);
            *c += 1;
            *c
        };
        self.requests.lock().unwrap().push((agent.clone(), body.clone()));
        let turn = Turn {
            agent: agent.clone(),
            call,
            body: body.clone(),
        };
        let input_tokens = (request.body.len() / 4) as u64;
        let mut reply = (self.script)(&turn);
        let mut extra_delay = std::time::Duration::ZERO;
        while let Reply::Delayed(delay, inner) = reply {
            extra_delay += delay;
            reply = *inner;
        }
        let hang = matches!(reply, Reply::Hang);
        if self.wire == Wire::OpenAi {
            return openai_template(&agent, call, reply, input_tokens).set_delay(self.latency + extra_delay);
        }
        let template = match reply {
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
        if hang {
            template
        } else {
            template.set_delay(self.latency + extra_delay)
        }
    }
}

/// An OpenAI chat completion for `reply` (text, tool calls or an error; the stream faults
/// of the Anthropic fake are not modelled here).
fn openai_template(agent: &str, call: u32, reply: Reply, input_tokens: u64) -> ResponseTemplate {
    let (message, finish, output_tokens) = match reply {
        Reply::Text(text) => {
            let tokens = text.len() as u64 / 4 + 1;
            (json!({"role": "assistant", "content": text}), "stop", tokens)
        }
        Reply::Tools(calls) => {
            let mut tokens = 1;
            let calls: Vec<Value> = calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, input))| {
                    let arguments = input.to_string();
                    tokens += arguments.len() as u64 / 4 + 1;
                    json!({"id": format!("call_{agent}_{call}_{i}"), "type": "function",
                           "function": {"name": name, "arguments": arguments}})
                })
                .collect();
            (
                json!({"role": "assistant", "content": null, "tool_calls": calls}),
                "tool_calls",
                tokens,
            )
        }
        Reply::Error { status, message, .. } => {
            return ResponseTemplate::new(status)
                .set_body_json(json!({"error": {"message": message, "type": "invalid_request_error"}}));
        }
        _ => {
            return ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"message": "the fake OpenAI server does not model this reply"}}));
        }
    };
    ResponseTemplate::new(200).set_body_json(json!({
        "id": format!("chatcmpl-{agent}-{call}"), "object": "chat.completion", "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                  "total_tokens": input_tokens + output_tokens},
    }))
}

impl FakeLlm {
    pub async fn start(script: Script, expected_key: Option<&str>) -> Self {
        Self::start_with_latency(script, expected_key, std::time::Duration::ZERO).await
    }

    /// The same script behind an OpenAI-compatible `/v1/chat/completions` (Bearer key).
    pub async fn start_openai(script: Script, expected_key: Option<&str>) -> Self {
        Self::start_wire(Wire::OpenAi, script, expected_key, std::time::Duration::ZERO).await
    }

    /// Every answer is delayed by `latency` (benchmarks of the day's concurrency).
    pub async fn start_with_latency(script: Script, expected_key: Option<&str>, latency: std::time::Duration) -> Self {
        Self::start_wire(Wire::Anthropic, script, expected_key, latency).await
    }

    async fn start_wire(wire: Wire, script: Script, expected_key: Option<&str>, latency: std::time::Duration) -> Self {
        let server = MockServer::start().await;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let first_request_at = Arc::new(Mutex::new(None));
        let responder = Responder {
            wire,
            script,
            counts: Mutex::new(HashMap::new()),
            requests: requests.clone(),
            expected_key: expected_key.map(str::to_string),
            latency,
            first_request_at: first_request_at.clone(),
        };
        let endpoint = match wire {
            Wire::Anthropic => "/v1/messages",
            Wire::OpenAi => "/v1/chat/completions",
        };
        Mock::given(method("POST"))
            .and(path(endpoint))
            .respond_with(responder)
            .mount(&server)
            .await;
        Self {
            server: Arc::new(server),
            requests,
            first_request_at,
        }
    }

    pub fn url(&self) -> String {
        self.server.uri()
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
