//! Integration tests: llm_providers
//!
//! Fake Anthropic and OpenAI-compatible servers (wiremock on 127.0.0.1) speaking the real
//! wire formats; the assertions check what pace sent and what it made of the answers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pace::config::settings::{Budget, LlmSettings, Provider as ProviderKind, Settings};
use pace::env::Env;
use pace::llm::{Block, ChatRequest, ChatResponse, Client, LlmError, Message, Role, StopReason, ToolSpec, Usage};
use pace::net::retry::RetryPolicy;
use pace::redact::Redactor;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-ant-test-key-0123456789";

// ---------------------------------------------------------------- helpers

fn llm_settings(provider: ProviderKind, base_url: Option<String>) -> LlmSettings {
    let mut llm = Settings::defaults(PathBuf::from("/repo")).llm;
    llm.provider = provider;
    llm.base_url = base_url;
    llm.max_retries = 2;
    llm.request_timeout = Duration::from_secs(5);
    if provider == ProviderKind::OpenAi {
        llm.api_key_env = "OPENAI_API_KEY".into();
    }
    llm
}

fn env_with(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())))
}

fn redactor(env: &Env) -> Redactor {
    Redactor::new(env.secret_values(&[]))
}

#[track_caller]
fn client(settings: &LlmSettings, budget: &Budget, env: &Env, transcript: &Path) -> Client {
    Client::from_settings(settings, budget, env, transcript.to_path_buf(), redactor(env))
        .unwrap()
        .with_retry_policy(RetryPolicy::fast(settings.max_retries))
}

async fn anthropic(server: &MockServer, dir: &Path) -> Client {
    anthropic_with_budget(server, dir, &Budget::default()).await
}

async fn anthropic_with_budget(server: &MockServer, dir: &Path, budget: &Budget) -> Client {
    let env = env_with(&[("ANTHROPIC_API_KEY", KEY)]);
    client(
        &llm_settings(ProviderKind::Anthropic, Some(server.uri())),
        budget,
        &env,
        &dir.join("transcript.jsonl"),
    )
}

fn request(agent: &str, messages: Vec<Message>, tools: &[&str]) -> ChatRequest {
    ChatRequest {
        agent: agent.into(),
        model: "claude-sonnet-4-6".into(),
        system: format!("You are {agent}."),
        messages,
        tools: tools
            .iter()
            .map(|name| ToolSpec {
                name: (*name).into(),
                description: format!("the {name} tool"),
                input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
                anthropic_type: None,
            })
            .collect(),
        max_tokens: 1024,
        response_schema: None,
    }
}

/// An SSE body from `(event, data)` pairs.
fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|data| format!("event: {}\ndata: {data}\n\n", data["type"].as_str().unwrap()))
        .collect()
}

fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn message_start(input: u64, cache_read: u64, cache_write: u64) -> Value {
    json!({"type": "message_start", "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input, "output_tokens": 1,
                  "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write}}})
}

fn message_end(stop: &str, output: u64) -> Vec<Value> {
    vec![
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": {"output_tokens": output}}),
        json!({"type": "message_stop"}),
    ]
}

/// A complete streamed text answer.
fn text_stream(text: &str, input: u64, output: u64) -> String {
    let mut events = vec![
        message_start(input, 0, 0),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
    ];
    let (a, b) = text.split_at(text.len() / 2);
    for piece in [a, b] {
        events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}));
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.extend(message_end("end_turn", output));
    sse(&events)
}

/// A streamed answer that calls `read_file` with its input split into fragments.
fn tool_stream(id: &str, path_arg: &str) -> String {
    let input = json!({"path": path_arg}).to_string();
    let (a, b) = input.split_at(5);
    let mut events = vec![
        message_start(50, 1000, 200),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me look."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": id, "name": "read_file", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": a}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": b}}),
        json!({"type": "content_block_stop", "index": 1}),
    ];
    events.extend(message_end("tool_use", 30));
    sse(&events)
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011"}))
}

async fn requests(server: &MockServer) -> Vec<wiremock::Request> {
    server.received_requests().await.unwrap()
}

fn bodies(reqs: &[wiremock::Request]) -> Vec<Value> {
    reqs.iter().map(|r| r.body_json::<Value>().unwrap()).collect()
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---------------------------------------------------------------- Anthropic

#[tokio::test]
async fn anthropic_text_answer_sends_headers_and_cached_system() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(sse_response(text_stream("Hello from the model", 12, 7)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let answer = client
        .chat(request("PRIME", vec![Message::user_text("plan the day")], &[]))
        .await
        .unwrap();

    assert_eq!(answer.text(), "Hello from the model");
    assert_eq!(answer.stop_reason, StopReason::EndTurn);
    assert_eq!(
        answer.usage,
        Usage {
            input_tokens: 12,
            output_tokens: 7,
            ..Usage::default()
        }
    );
    let reqs = requests(&server).await;
    assert_eq!(reqs.len(), 1);
    let headers = &reqs[0].headers;
    assert_eq!(headers.get("x-api-key").unwrap(), KEY);
    assert_eq!(headers.get("anthropic-version").unwrap(), "2023-06-01");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let body = &bodies(&reqs)[0];
    assert_eq!(body["model"], "claude-sonnet-4-6");
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You are PRIME.", "cache_control": {"type": "ephemeral"}}])
    );
    assert!(body.get("tools").is_none());
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "plan the day", "cache_control": {"type": "ephemeral"}}]}])
    );
}

#[tokio::test]
async fn anthropic_tool_use_round_trip() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(sse_response(tool_stream("toolu_01A", "src/lib.rs")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(sse_response(text_stream("Done.", 80, 3)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let mut messages = vec![Message::user_text("implement the story")];
    let first = client
        .chat(request("FORGE", messages.clone(), &["read_file", "write_file"]))
        .await
        .unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    let calls: Vec<_> = first.tool_calls().collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "toolu_01A");
    assert_eq!(calls[0].1, "read_file");
    assert_eq!(calls[0].2, &json!({"path": "src/lib.rs"}));
    assert_eq!(
        first.usage,
        Usage {
            input_tokens: 50,
            output_tokens: 30,
            cache_read_tokens: 1000,
            cache_write_tokens: 200
        }
    );

    messages.push(first.to_assistant_message());
    // The orchestrator appends a note beside the result: it must come after the result.
    messages.push(Message {
        role: Role::User,
        content: vec![
            Block::Text {
                text: "Reminder: tests first.".into(),
            },
            Block::ToolResult {
                tool_use_id: "toolu_01A".into(),
                content: "no such file".into(),
                is_error: true,
            },
        ],
    });
    let second = client
        .chat(request("FORGE", messages, &["read_file", "write_file"]))
        .await
        .unwrap();
    assert_eq!(second.text(), "Done.");

    let sent = bodies(&requests(&server).await);
    let body = &sent[1];
    assert!(body["tools"][0].get("cache_control").is_none());
    assert_eq!(
        body["tools"][1],
        json!({"name": "write_file", "description": "the write_file tool",
               "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
               "cache_control": {"type": "ephemeral"}})
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01A", "name": "read_file", "input": {"path": "src/lib.rs"}}]})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "no such file", "is_error": true},
            {"type": "text", "text": "Reminder: tests first.", "cache_control": {"type": "ephemeral"}}]})
    );
    // Only the last user message carries a breakpoint; 3 in all (system, tools, message).
    assert!(body["messages"][0]["content"][0].get("cache_control").is_none());
    assert_eq!(body.to_string().matches("cache_control").count(), 3);
}

#[tokio::test]
async fn anthropic_429_honours_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            anthropic_error(
                429,
                "rate_limit_error",
                "Number of request tokens has exceeded your rate limit",
            )
            .insert_header("retry-after-ms", "300")
            .insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("ok now", 5, 2)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let started = Instant::now();
    let answer = client
        .chat(request("GATE", vec![Message::user_text("review")], &[]))
        .await
        .unwrap();
    let elapsed = started.elapsed();

    assert_eq!(answer.text(), "ok now");
    assert_eq!(requests(&server).await.len(), 2);
    // The fast policy backs off for milliseconds: only the header explains the wait.
    assert!(elapsed >= Duration::from_millis(300), "waited only {elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1000),
        "waited {elapsed:?}: retry-after-ms must win over retry-after"
    );
}

#[tokio::test]
async fn anthropic_529_overloaded_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(anthropic_error(529, "overloaded_error", "Overloaded").insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("fine", 5, 2)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let answer = client
        .chat(request("GATE", vec![Message::user_text("review")], &[]))
        .await
        .unwrap();
    assert_eq!(answer.text(), "fine");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn anthropic_500_burst_exhausts_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(anthropic_error(500, "api_error", "Internal server error"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let err = client
        .chat(request("GATE", vec![Message::user_text("review")], &[]))
        .await
        .unwrap_err();
    match &err {
        LlmError::Unavailable {
            provider,
            attempts,
            last,
        } => {
            assert_eq!(provider, "anthropic");
            assert_eq!(*attempts, 3);
            assert!(
                last.contains("HTTP 500") && last.contains("Internal server error"),
                "{last}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(requests(&server).await.len(), 3, "1 attempt + max_retries 2");
    // The failed call is in the transcript, without a response.
    let lines = read_lines(&dir.path().join("transcript.jsonl"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["agent"], "GATE");
    assert_eq!(lines[0]["call"], 1);
    assert!(lines[0].get("response").is_none());
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("unavailable after 3 attempts")
    );
}

#[tokio::test]
async fn anthropic_401_is_auth_error_without_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(anthropic_error(401, "authentication_error", "invalid x-api-key"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let err = client
        .chat(request("PRIME", vec![Message::user_text("x")], &[]))
        .await
        .unwrap_err();
    match err {
        LlmError::Auth { status, message, .. } => {
            assert_eq!(status, 401);
            assert!(message.contains("invalid x-api-key"), "{message}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn anthropic_400_is_paces_invalid_request_with_the_server_message() {
    let server = MockServer::start().await;
    let message = "messages.2: Did not find 1 `tool_result` block(s) at the beginning of this message.";
    Mock::given(method("POST"))
        .respond_with(anthropic_error(400, "invalid_request_error", message).insert_header("x-should-retry", "true"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let err = client
        .chat(request("FORGE", vec![Message::user_text("x")], &[]))
        .await
        .unwrap_err();
    match &err {
        LlmError::InvalidRequest {
            status,
            message: got,
            request_id,
            ..
        } => {
            assert_eq!(*status, 400);
            assert!(got.contains(message), "{got}");
            assert_eq!(request_id, "req_011");
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("pace sent a request that anthropic rejected"),
        "{err}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn anthropic_error_event_after_200_is_retried() {
    let server = MockServer::start().await;
    let failing = sse(&[
        message_start(5, 0, 0),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hal"}}),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ]);
    Mock::given(method("POST"))
        .respond_with(sse_response(failing))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("Whole answer", 5, 3)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let answer = client
        .chat(request("SENTINEL", vec![Message::user_text("scan")], &[]))
        .await
        .unwrap();
    assert_eq!(answer.text(), "Whole answer");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn anthropic_non_retryable_error_event_fails_at_once() {
    let server = MockServer::start().await;
    let failing = sse(&[
        message_start(5, 0, 0),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}),
    ]);
    Mock::given(method("POST"))
        .respond_with(sse_response(failing))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let err = client
        .chat(request("SENTINEL", vec![Message::user_text("scan")], &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::ContextOverflow { message, .. } if message.contains("prompt is too long")),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn anthropic_stream_cut_short_is_retried() {
    let server = MockServer::start().await;
    let cut = sse(&[
        message_start(5, 0, 0),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Half an ans"}}),
    ]) + "event: content_block_delta\ndata: {\"type\":\"content_blo";
    Mock::given(method("POST"))
        .respond_with(sse_response(cut))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("Whole answer", 5, 3)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    let answer = client
        .chat(request("CONDUIT", vec![Message::user_text("check ci")], &[]))
        .await
        .unwrap();
    assert_eq!(answer.text(), "Whole answer");
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn read_timeout_is_retried_then_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("late", 1, 1)).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(&[("ANTHROPIC_API_KEY", KEY)]);
    let mut settings = llm_settings(ProviderKind::Anthropic, Some(server.uri()));
    settings.request_timeout = Duration::from_millis(200);
    settings.max_retries = 1;
    let client = client(&settings, &Budget::default(), &env, &dir.path().join("t.jsonl"));

    let started = Instant::now();
    let err = client
        .chat(request("GATE", vec![Message::user_text("x")], &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Unavailable { attempts: 2, last, .. } if last.contains("timed out")),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[test]
fn missing_keys_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::default();
    let t = dir.path().join("t.jsonl");
    let anthropic = llm_settings(ProviderKind::Anthropic, None);
    let err = Client::from_settings(&anthropic, &Budget::default(), &env, t.clone(), Redactor::default()).unwrap_err();
    assert!(
        matches!(&err, LlmError::MissingKey(name) if name == "ANTHROPIC_API_KEY"),
        "{err:?}"
    );
    let openai = llm_settings(ProviderKind::OpenAi, None);
    let err = Client::from_settings(&openai, &Budget::default(), &env, t.clone(), Redactor::default()).unwrap_err();
    assert!(
        matches!(&err, LlmError::MissingKey(name) if name == "OPENAI_API_KEY"),
        "{err:?}"
    );
    let local = llm_settings(ProviderKind::OpenAi, Some("http://localhost:11434/v1".into()));
    assert!(Client::from_settings(&local, &Budget::default(), &env, t, Redactor::default()).is_ok());
}

// ---------------------------------------------------------------- OpenAI-compatible

fn openai_answer(message: Value, finish: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
                  "prompt_tokens_details": {"cached_tokens": 400}}}))
}

#[tokio::test]
async fn openai_tool_calls_with_invalid_arguments_and_bearer_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(openai_answer(
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a.py\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "write_file", "arguments": "{\"path\": \"b.py\", "}}]}),
            "tool_calls",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(openai_answer(
            json!({"role": "assistant", "content": "All done."}),
            "stop",
        ))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(&[("OPENAI_API_KEY", "sk-openai-test-999")]);
    let settings = llm_settings(ProviderKind::OpenAi, Some(format!("{}/v1", server.uri())));
    let client = client(&settings, &Budget::default(), &env, &dir.path().join("t.jsonl"));

    let mut messages = vec![Message::user_text("implement")];
    let mut req = request("FORGE", messages.clone(), &["read_file", "write_file"]);
    req.model = "gpt-4o".into();
    let first = client.chat(req.clone()).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(
        first.content,
        vec![
            Block::ToolUse {
                id: "call_1".into(),
                name: "read_file".into(),
                input: json!({"path": "a.py"})
            },
            Block::ToolUse {
                id: "call_2".into(),
                name: "write_file".into(),
                input: json!({"_invalid_arguments": "{\"path\": \"b.py\", "}),
            },
        ]
    );
    assert_eq!(
        first.usage,
        Usage {
            input_tokens: 600,
            output_tokens: 100,
            cache_read_tokens: 400,
            cache_write_tokens: 0
        }
    );

    messages.push(first.to_assistant_message());
    messages.push(Message {
        role: Role::User,
        content: vec![
            Block::ToolResult {
                tool_use_id: "call_1".into(),
                content: "print(1)".into(),
                is_error: false,
            },
            Block::ToolResult {
                tool_use_id: "call_2".into(),
                content: "arguments are not JSON".into(),
                is_error: true,
            },
            Block::Text {
                text: "Iteration budget: 3 left.".into(),
            },
        ],
    });
    req.messages = messages;
    let second = client.chat(req).await.unwrap();
    assert_eq!(second.text(), "All done.");
    assert_eq!(second.stop_reason, StopReason::EndTurn);

    let reqs = requests(&server).await;
    assert_eq!(
        reqs[0].headers.get("authorization").unwrap(),
        "Bearer sk-openai-test-999"
    );
    let body = &bodies(&reqs)[1];
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "read_file");
    assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
    let sent = body["messages"].as_array().unwrap();
    assert_eq!(sent.len(), 6, "{sent:#?}");
    assert_eq!(sent[0], json!({"role": "system", "content": "You are FORGE."}));
    assert_eq!(sent[1], json!({"role": "user", "content": "implement"}));
    assert_eq!(sent[2]["role"], "assistant");
    assert_eq!(sent[2]["content"], Value::Null);
    assert_eq!(sent[2]["tool_calls"][0]["function"]["arguments"], "{\"path\":\"a.py\"}");
    assert_eq!(sent[2]["tool_calls"][1]["id"], "call_2");
    assert_eq!(
        sent[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "print(1)"})
    );
    assert_eq!(sent[4]["role"], "tool");
    assert_eq!(sent[4]["tool_call_id"], "call_2");
    assert_eq!(sent[5], json!({"role": "user", "content": "Iteration budget: 3 left."}));

    // gpt-4o: 600 × 2.5 + 400 cached × 1.25 + 100 × 10 per million, twice.
    let totals = client.totals();
    assert!((totals.cost_usd - 2.0 * 0.003).abs() < 1e-9, "{}", totals.cost_usd);
}

#[tokio::test]
async fn openai_local_server_without_key_sends_no_auth_and_costs_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "qwen2.5-coder:32b",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5000, "completion_tokens": 500}})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = llm_settings(ProviderKind::OpenAi, Some(format!("{}/v1/", server.uri())));
    let client = client(
        &settings,
        &Budget::default(),
        &Env::default(),
        &dir.path().join("t.jsonl"),
    );
    let mut req = request("PRIME", vec![Message::user_text("x")], &[]);
    req.model = "qwen2.5-coder:32b".into();
    let answer = client.chat(req).await.unwrap();
    assert_eq!(answer.text(), "hi");
    assert_eq!(answer.usage.input_tokens, 5000);
    let reqs = requests(&server).await;
    assert!(reqs[0].headers.get("authorization").is_none());
    let totals = client.totals();
    assert_eq!(totals.total_tokens(), 5500);
    assert!(totals.cost_usd.abs() < f64::EPSILON, "{}", totals.cost_usd);
}

#[tokio::test]
async fn openai_errors_use_the_server_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {"message": "The model `gpt-5-nano-x` does not exist", "type": "invalid_request_error",
                      "param": null, "code": "model_not_found"}})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(&[("OPENAI_API_KEY", "sk-openai-test-999")]);
    let settings = llm_settings(ProviderKind::OpenAi, Some(format!("{}/v1", server.uri())));
    let client = client(&settings, &Budget::default(), &env, &dir.path().join("t.jsonl"));
    let err = client
        .chat(request("PRIME", vec![Message::user_text("x")], &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Rejected { status: 404, message, .. } if message.contains("does not exist")),
        "{err:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

// ---------------------------------------------------------------- accounting, budget, transcript

#[tokio::test]
async fn usage_and_cost_per_agent_in_first_call_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_response(tool_stream("toolu_9", "x")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("ok", 1000, 100)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let client = anthropic(&server, dir.path()).await;

    client
        .chat(request("SCRIBE", vec![Message::user_text("a")], &["read_file"]))
        .await
        .unwrap();
    client
        .chat(request("PRIME", vec![Message::user_text("b")], &[]))
        .await
        .unwrap();
    client
        .chat(request("SCRIBE", vec![Message::user_text("c")], &[]))
        .await
        .unwrap();

    let usage = client.usage_by_agent();
    let names: Vec<&str> = usage.iter().map(|u| u.agent.as_str()).collect();
    assert_eq!(names, ["SCRIBE", "PRIME"]);
    let scribe = &usage[0];
    assert_eq!(scribe.calls, 2);
    assert_eq!(scribe.input_tokens, 1050);
    assert_eq!(scribe.output_tokens, 130);
    assert_eq!(scribe.cache_read_tokens, 1000);
    assert_eq!(scribe.cache_write_tokens, 200);
    // Sonnet: (1050 × 3 + 130 × 15 + 1000 × 0.3 + 200 × 3.75) / 1e6
    assert!((scribe.cost_usd - 0.00615).abs() < 1e-9, "{}", scribe.cost_usd);
    // (1000 × 3 + 100 × 15) / 1e6
    assert!((usage[1].cost_usd - 0.0045).abs() < 1e-9, "{}", usage[1].cost_usd);
    let totals = client.totals();
    assert_eq!(totals.calls, 3);
    assert_eq!(totals.input_tokens, 2050);
    assert!((totals.cost_usd - 0.01065).abs() < 1e-9);
}

#[tokio::test]
async fn budget_stops_the_next_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("ok", 1000, 100)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    // One call costs $0.0045.
    let budget = Budget {
        max_usd: Some(0.004),
        max_tokens: None,
        max_duration: None,
    };
    let client = anthropic_with_budget(&server, dir.path(), &budget).await;

    client
        .chat(request("PRIME", vec![Message::user_text("a")], &[]))
        .await
        .unwrap();
    let err = client
        .chat(request("FORGE", vec![Message::user_text("b")], &[]))
        .await
        .unwrap_err();
    match &err {
        LlmError::Budget(text) => assert!(text.contains("spent $0.0045 of $0.0040"), "{text}"),
        other => panic!("expected Budget, got {other:?}"),
    }
    assert_eq!(requests(&server).await.len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let budget = Budget {
        max_usd: None,
        max_tokens: Some(1100),
        max_duration: None,
    };
    let client = anthropic_with_budget(&server, dir.path(), &budget).await;
    client
        .chat(request("PRIME", vec![Message::user_text("a")], &[]))
        .await
        .unwrap();
    let err = client
        .chat(request("PRIME", vec![Message::user_text("b")], &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Budget(t) if t.contains("1100 of 1100 tokens")),
        "{err:?}"
    );
}

#[tokio::test]
async fn transcript_is_redacted_and_line_atomic_under_concurrency() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("answer", 10, 5)))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let secret = "glpat-SUPERSECRET-4242";
    let env = env_with(&[("ANTHROPIC_API_KEY", KEY), ("GITLAB_TOKEN", secret)]);
    let settings = llm_settings(ProviderKind::Anthropic, Some(server.uri()));
    let transcript = dir.path().join("day-1").join("transcript.jsonl");
    let client = client(&settings, &Budget::default(), &env, &transcript);

    let agents = ["GATE", "SENTINEL", "CONDUIT"];
    let calls = agents.iter().flat_map(|agent| {
        (0..4).map(|i| {
            let mut req = request(
                agent,
                vec![Message::user_text(format!("token is {secret}, call {i}"))],
                &[],
            );
            req.system = format!("big prompt {} {secret}", "x".repeat(20_000));
            client.chat(req)
        })
    });
    for result in futures_util::future::join_all(calls).await {
        result.unwrap();
    }

    let text = std::fs::read_to_string(&transcript).unwrap();
    assert!(!text.contains(secret), "the secret leaked into the transcript");
    assert!(!text.contains(KEY));
    assert!(text.contains("[REDACTED]"));
    let lines = read_lines(&transcript);
    assert_eq!(lines.len(), 12);
    let mut seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>(), "seq follows file order");
    seqs.clear();
    for agent in agents {
        let mut calls: Vec<u64> = lines
            .iter()
            .filter(|l| l["agent"] == agent)
            .map(|l| l["call"].as_u64().unwrap())
            .collect();
        calls.sort_unstable();
        assert_eq!(calls, [1, 2, 3, 4]);
    }
    let first = &lines[0];
    assert!(chrono::DateTime::parse_from_rfc3339(first["at"].as_str().unwrap()).is_ok());
    assert!(first["duration_ms"].is_u64());
    assert_eq!(first["response"]["content"][0]["text"], "answer");
    assert_eq!(first["request"]["messages"][0]["role"], "user");
}

// ---------------------------------------------------------------- replay

/// Runs a small day against `client`: FORGE's tool loop, then GATE.
async fn small_day(client: &Client) -> Result<Vec<ChatResponse>, LlmError> {
    let mut out = Vec::new();
    let tools = ["read_file", "write_file"];
    let mut messages = vec![Message::user_text(format!(
        "story at {}",
        std::env::temp_dir().display()
    ))];
    loop {
        let answer = client.chat(request("FORGE", messages.clone(), &tools)).await?;
        out.push(answer.clone());
        if answer.stop_reason != StopReason::ToolUse {
            break;
        }
        let results = answer
            .tool_calls()
            .map(|(id, _, _)| Block::ToolResult {
                tool_use_id: id.into(),
                content: "ok".into(),
                is_error: false,
            })
            .collect();
        messages.push(answer.to_assistant_message());
        messages.push(Message {
            role: Role::User,
            content: results,
        });
    }
    out.push(
        client
            .chat(request("GATE", vec![Message::user_text("review the diff")], &[]))
            .await?,
    );
    Ok(out)
}

async fn recording_server() -> MockServer {
    let server = MockServer::start().await;
    for (i, id) in ["toolu_A", "toolu_B"].iter().enumerate() {
        Mock::given(method("POST"))
            .respond_with(sse_response(tool_stream(id, &format!("f{i}.rs"))))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(sse_response(text_stream("story done", 300, 40)))
        .mount(&server)
        .await;
    server
}

fn replay_client(cassette: &Path, transcript: &Path) -> Client {
    let mut settings = llm_settings(ProviderKind::Replay, None);
    settings.cassette = Some(cassette.to_path_buf());
    Client::from_settings(
        &settings,
        &Budget::default(),
        &Env::default(),
        transcript.to_path_buf(),
        Redactor::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn replay_serves_the_recorded_day_offline() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = anthropic(&server, dir.path()).await;
    let recorded = small_day(&recorder).await.unwrap();
    assert_eq!(recorded.len(), 4);
    let cassette = dir.path().join("transcript.jsonl");
    drop(server); // offline from here on

    let replay = replay_client(&cassette, &dir.path().join("replayed.jsonl"));
    assert_eq!(replay.provider_name(), "replay");
    let replayed = small_day(&replay).await.unwrap();
    assert_eq!(replayed, recorded);
    let (a, b) = (recorder.usage_by_agent(), replay.usage_by_agent());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            (&x.agent, x.calls, x.input_tokens, x.output_tokens),
            (&y.agent, y.calls, y.input_tokens, y.output_tokens)
        );
        assert!((x.cost_usd - y.cost_usd).abs() < 1e-12);
    }
    assert_eq!(read_lines(&dir.path().join("replayed.jsonl")).len(), 4);
}

#[tokio::test]
async fn replay_divergence_names_agent_and_call() {
    let server = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let recorder = anthropic(&server, dir.path()).await;
    small_day(&recorder).await.unwrap();
    let cassette = dir.path().join("transcript.jsonl");

    // One call too many.
    let replay = replay_client(&cassette, &dir.path().join("r1.jsonl"));
    small_day(&replay).await.unwrap();
    let err = replay
        .chat(request("FORGE", vec![Message::user_text("again")], &[]))
        .await
        .unwrap_err();
    match &err {
        LlmError::Divergence { agent, call, detail } => {
            assert_eq!((agent.as_str(), *call), ("FORGE", 4));
            assert!(detail.contains("only 3 FORGE calls"), "{detail}");
        }
        other => panic!("expected Divergence, got {other:?}"),
    }
    assert!(err.to_string().contains("FORGE call 4"), "{err}");

    // A different tool offer on the first call.
    let replay = replay_client(&cassette, &dir.path().join("r2.jsonl"));
    let err = replay
        .chat(request("FORGE", vec![Message::user_text("x")], &["read_file"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LlmError::Divergence { call: 1, detail, .. } if detail.contains("offers tools")),
        "{err:?}"
    );

    // An agent the recording never saw.
    let err = replay
        .chat(request("SCRIBE", vec![Message::user_text("x")], &[]))
        .await
        .unwrap_err();
    assert!(matches!(&err, LlmError::Divergence { call: 1, detail, .. } if detail.contains("only 0 SCRIBE calls")));
}

#[test]
fn replay_without_cassette_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let settings = llm_settings(ProviderKind::Replay, None);
    let t = dir.path().join("t.jsonl");
    let err = Client::from_settings(
        &settings,
        &Budget::default(),
        &Env::default(),
        t.clone(),
        Redactor::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("llm.cassette"), "{err}");
    let mut settings = settings;
    settings.cassette = Some(dir.path().join("missing.jsonl"));
    let err =
        Client::from_settings(&settings, &Budget::default(), &Env::default(), t, Redactor::default()).unwrap_err();
    assert!(
        matches!(&err, LlmError::Cassette { path, .. } if path.ends_with("missing.jsonl")),
        "{err:?}"
    );
}

/// A raw HTTP server: the first connection is dropped in the middle of a chunked SSE body
/// (a real connection cut, which wiremock cannot do); later ones get a full answer.
async fn cutting_server(full: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let full = full.clone();
            tokio::spawn(async move {
                // Read the whole request (headers, then Content-Length bytes).
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let read = socket.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                    if read == 0 {
                        return;
                    }
                }
                if n == 0 {
                    let part = &full[..full.len() / 2];
                    let head =
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                    // Announce more bytes than are sent, then hang up.
                    let body = format!("{:x}\r\n{part}", full.len());
                    socket.write_all(head.as_bytes()).await.unwrap();
                    socket.write_all(body.as_bytes()).await.unwrap();
                    socket.shutdown().await.ok();
                } else {
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        full.len()
                    );
                    socket.write_all(head.as_bytes()).await.unwrap();
                    socket.write_all(full.as_bytes()).await.unwrap();
                    socket.shutdown().await.ok();
                }
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn anthropic_connection_cut_mid_body_is_retried() {
    let (base, count) = cutting_server(text_stream("Complete after a cut", 9, 4)).await;
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(&[("ANTHROPIC_API_KEY", KEY)]);
    let settings = llm_settings(ProviderKind::Anthropic, Some(base));
    let client = client(&settings, &Budget::default(), &env, &dir.path().join("t.jsonl"));

    let answer = client
        .chat(request("FORGE", vec![Message::user_text("x")], &[]))
        .await
        .unwrap();
    assert_eq!(answer.text(), "Complete after a cut");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A raw HTTP server like llama.cpp's: it answers with `Connection: keep-alive` (chunked,
/// as a stream) and then serves nothing more on that connection: a second request sent on
/// it is counted and the connection dropped, which is what a client reusing it would see.
/// Returns the base URL, the connections accepted and the requests refused that way.
async fn closing_server(
    content_type: &'static str,
    body: String,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = std::sync::Arc::new(AtomicUsize::new(0));
    let reused = std::sync::Arc::new(AtomicUsize::new(0));
    let (seen, dropped) = (connections.clone(), reused.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let (body, dropped) = (body.clone(), dropped.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(read) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                );
                socket.write_all(head.as_bytes()).await.unwrap();
                // Keep the socket open (the client may pool it), then drop whatever comes next.
                if let Ok(n) = socket.read(&mut chunk).await
                    && n > 0
                {
                    dropped.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    (format!("http://{addr}"), connections, reused)
}

#[tokio::test]
async fn a_server_that_closes_after_each_answer_never_sees_a_reused_connection() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let openai_body = json!({"model": "local", "choices": [{"finish_reason": "stop", "message": {"content": "ok"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    .to_string();
    for (provider, content_type, body) in [
        (ProviderKind::Anthropic, "text/event-stream", text_stream("ok", 3, 1)),
        (ProviderKind::OpenAi, "application/json", openai_body),
    ] {
        let (base, connections, reused) = closing_server(content_type, body).await;
        let env = env_with(&[("ANTHROPIC_API_KEY", KEY)]);
        let mut settings = llm_settings(provider, Some(base));
        // No retries: a reused dead connection would fail the call outright.
        settings.max_retries = 0;
        let client = client(&settings, &Budget::default(), &env, &dir.path().join("t.jsonl"));
        for _ in 0..4 {
            let answer = client
                .chat(request("GATE", vec![Message::user_text("x")], &[]))
                .await
                .unwrap();
            assert_eq!(answer.text(), "ok");
            // Give the pool the time to take the connection back, as between real calls.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 4, "{provider:?}");
        assert_eq!(reused.load(Ordering::SeqCst), 0, "{provider:?}");
    }
}
