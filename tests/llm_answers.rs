//! Real-model answers end to end (issue 11): empty and whitespace-only answers, refusals,
//! paused turns, errors in the middle of a stream, a full context window, requests the
//! provider rejects and a wrong endpoint. The fake Anthropic server rejects, with the real
//! 400 bodies, whatever the real API would reject, so each day also proves that pace never
//! sent such a request.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::fake_llm::{DROP_MARKER, Reply, Turn};
use crate::support::scenario::Scenario;
use crate::support::scripts::{self, Options};

/// The greeter's script with `change` deciding some turns first.
fn greeter_but(change: impl Fn(&Turn) -> Option<Reply> + Send + Sync + 'static) -> crate::support::fake_llm::Script {
    let base = scripts::greeter(Options::default());
    Arc::new(move |turn: &Turn| change(turn).unwrap_or_else(|| base(turn)))
}

/// The request bodies the fake received from `agent`, in order.
fn bodies_of(day: &crate::support::scenario::Day, agent: &str) -> Vec<Value> {
    day.llm
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, _)| a == agent)
        .map(|(_, b)| b.clone())
        .collect()
}

fn last_message(body: &Value) -> Value {
    body["messages"].as_array().unwrap().last().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_answers_are_recovered_and_the_day_ships() {
    require_docker!();
    let script = greeter_but(|turn| match (turn.agent.as_str(), turn.call) {
        ("PRIME", 1) => Some(Reply::Empty),
        ("FORGE", 2) => Some(Reply::Blank),
        ("FORGE", 4) => Some(Reply::Empty),
        // A paused turn: pace sends it back as the last message, then the model goes on.
        ("GATE", 1) => Some(Reply::Paused("Mapping the evidence.".into())),
        ("SENTINEL", 1) => Some(Reply::ErrorMidStream),
        ("SCRIBE", 1) => Some(Reply::Dropped),
        ("CONDUIT", 1) => Some(Reply::CloseAfter(Box::new(Reply::Text(scripts::review_yaml(
            "CONDUIT", "SHIP", None,
        ))))),
        _ => None,
    });
    let day = Scenario::greeter().script(script).dropping().start().await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    assert_eq!(day.llm.rejected(), Vec::<String>::new(), "{}", ran.text());
    let run = day.run_json(1);
    assert_eq!(run["decision"], "SHIP", "{run}");

    // The empty answer was not sent back: the second PRIME request is the first one plus
    // a note in the same user message.
    let prime = bodies_of(&day, "PRIME");
    assert_eq!(prime.len(), 2);
    assert_eq!(prime[1]["messages"].as_array().unwrap().len(), 1);
    assert!(
        last_message(&prime[1])
            .to_string()
            .contains("Your previous answer was empty")
    );

    // FORGE: the blank and the empty answers are dropped; the history stays valid (the
    // fake would have rejected it) and the note says what is expected.
    let forge = bodies_of(&day, "FORGE");
    let after_blank = &forge[2];
    assert!(!after_blank.to_string().contains("\\n\\n\"}"), "{after_blank}");
    assert!(
        last_message(after_blank)
            .to_string()
            .contains("previous answer was empty")
    );
    assert!(last_message(after_blank).to_string().contains("complete_handoff"));

    // GATE's paused turn went back as the last (assistant) message, no user turn added.
    let gate = bodies_of(&day, "GATE");
    assert_eq!(gate.len(), 2);
    let resumed = last_message(&gate[1]);
    assert_eq!(resumed["role"], "assistant");
    assert_eq!(resumed["content"][0]["text"], "Mapping the evidence.");
    assert_eq!(gate[1]["messages"].as_array().unwrap().len(), 2);

    // The stream cut by an error event was retried from scratch: nothing of it remains.
    assert_eq!(bodies_of(&day, "SENTINEL").len(), 2);
    let transcript = day.artifact(1, "transcript.jsonl");
    assert!(!transcript.contains("this half is dropped"), "{transcript}");
    // The connection dropped mid-answer was retried on a fresh one.
    // (SCRIBE generates the documents, once more after the drop, and updates them at the end.)
    assert_eq!(bodies_of(&day, "SCRIBE").len(), 3);
    assert!(day.project.exists(".pace/context/product.md"));
    assert!(ran.stderr().contains("connection broken"), "{}", ran.text());
    assert!(!transcript.contains(DROP_MARKER), "{transcript}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_ends_forge_at_once_and_the_hold_quotes_it() {
    require_docker!();
    let script = greeter_but(|turn| {
        (turn.agent == "FORGE").then(|| Reply::Refusal {
            text: String::new(),
            explanation: Some("This request asks for content that violates the usage policy."),
            category: Some("cyber"),
        })
    });
    let day = Scenario::greeter()
        .script(script)
        .edit_config("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 1")
        .start()
        .await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(1);

    assert_eq!(day.llm.rejected(), Vec::<String>::new());
    // One refused call per attempt: never nudged in the same conversation.
    assert_eq!(day.llm.calls_of("FORGE"), 2, "{}", ran.text());
    let run = day.run_json(1);
    assert_eq!(run["decision"], "HOLD");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.contains("refused"), "{reason}");
    assert!(
        reason.contains("violates the usage policy. (category: cyber)"),
        "{reason}"
    );
    assert!(!reason.contains("stopped using its tools"), "{reason}");
    assert!(
        day.artifact(1, "escalation.md").contains("violates the usage policy"),
        "{}",
        day.artifact(1, "escalation.md")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prime_refusal_holds_the_day_with_one_call() {
    require_docker!();
    let script = greeter_but(|turn| {
        (turn.agent == "PRIME").then(|| Reply::Refusal {
            text: "I can't help with that.".into(),
            explanation: None,
            category: None,
        })
    });
    let day = Scenario::greeter().script(script).start().await;
    day.pace(&["--day", "1"]).await.expect_exit(1);

    assert_eq!(day.llm.calls_of("PRIME"), 1);
    let run = day.run_json(1);
    assert_eq!(run["decision"], "HOLD");
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("PRIME: the model refused") && reason.contains("I can't help with that."),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_answers_forever_end_forge_with_a_clear_reason() {
    require_docker!();
    let script = greeter_but(|turn| (turn.agent == "FORGE").then_some(Reply::Empty));
    let day = Scenario::greeter()
        .script(script)
        .edit_config("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0")
        .start()
        .await;
    day.pace(&["--day", "1"]).await.expect_exit(1);

    assert_eq!(day.llm.rejected(), Vec::<String>::new());
    // The first answer and two more after a note each; then the attempt ends.
    assert_eq!(day.llm.calls_of("FORGE"), 3);
    let reason = day.run_json(1)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("FORGE gave 3 empty answers in a row"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_context_window_evicts_once_then_holds() {
    require_docker!();
    let script = greeter_but(|turn| match (turn.agent.as_str(), turn.call) {
        ("FORGE", 1 | 2) => None,
        // A 400 "prompt is too long": pace evicts old tool output and tries again, …
        ("FORGE", 3) => Some(Reply::Error {
            status: 400,
            kind: "invalid_request_error",
            message: "prompt is too long: 210345 tokens > 200000 maximum",
            headers: vec![("request-id", "req_overflow")],
        }),
        // … and when the window is still full, the attempt holds.
        ("FORGE", _) => Some(Reply::Stopped("partial".into(), "model_context_window_exceeded")),
        _ => None,
    });
    let day = Scenario::greeter()
        .script(script)
        .edit_config("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0")
        .start()
        .await;
    day.pace(&["--day", "1"]).await.expect_exit(1);

    assert_eq!(day.llm.rejected(), Vec::<String>::new());
    assert_eq!(day.llm.calls_of("FORGE"), 4);
    let forge = bodies_of(&day, "FORGE");
    // The retried request after the overflow: the written test file's content evicted.
    let compacted = forge[3].to_string();
    assert!(compacted.contains("evicted to fit the context window"), "{compacted}");
    let reason = day.run_json(1)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("no longer fits the model's context window"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_provider_rejects_is_paces_fault_with_the_request_id() {
    require_docker!();
    let script = greeter_but(|turn| {
        (turn.agent == "PRIME").then(|| Reply::Error {
            status: 400,
            kind: "invalid_request_error",
            message: "messages.0.content.0.type: Field required",
            headers: vec![("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy")],
        })
    });
    let day = Scenario::greeter().script(script).start().await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(4);

    assert_eq!(day.llm.calls_of("PRIME"), 1);
    let text = ran.stderr();
    assert!(
        text.contains("pace sent a request that anthropic rejected as invalid"),
        "{text}"
    );
    assert!(text.contains("req_011CSHoEeqs5C35K2UUqR7Fy"), "{text}");
    assert!(!text.contains("anthropic refused the request"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_shaped_500_from_the_messages_api_names_the_base_url() {
    require_docker!();
    let script = greeter_but(|turn| {
        (turn.agent == "PRIME").then(|| {
            Reply::Raw(
                500,
                json!({"error": {"code": 500, "message": "tools param requires --jinja flag", "type": "server_error"}}),
            )
        })
    });
    let day = Scenario::greeter().script(script).start().await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(4);

    // Not an outage: asked once, not retried.
    assert_eq!(day.llm.calls_of("PRIME"), 1);
    let text = ran.stderr();
    assert!(text.contains("answered like an OpenAI-compatible server"), "{text}");
    assert!(text.contains("llm.base_url"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_a_cut_tool_call_is_reported_and_empty_answers_are_dropped() {
    require_docker!();
    let base = scripts::greeter(Options::default());
    let script: crate::support::fake_llm::Script =
        Arc::new(move |turn: &Turn| match (turn.agent.as_str(), turn.call) {
            ("PRIME", 1) => Reply::Empty,
            ("FORGE", 2) => Reply::Truncated {
                text: String::new(),
                partial_tool: Some((
                    "write_file",
                    r##"{"path": "src/greet.sh", "content": "#!/bin/sh\necho \"Hel"##,
                )),
            },
            ("FORGE", 4) => Reply::Blank,
            // Later FORGE turns: the script sees the history without the cut exchange, so the
            // greeter's steps go on where they stopped.
            ("FORGE", n) if n > 2 => {
                let mut body = turn.body.clone();
                body["messages"].as_array_mut().unwrap().drain(3..5);
                base(&Turn {
                    agent: turn.agent.clone(),
                    call: turn.call,
                    body,
                })
            }
            _ => base(turn),
        });
    let day = Scenario::greeter().script(script).openai().start().await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    assert_eq!(day.llm.rejected(), Vec::<String>::new(), "{}", ran.text());
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    let prime = bodies_of(&day, "PRIME");
    assert!(
        last_message(&prime[1])
            .to_string()
            .contains("Your previous answer was empty")
    );
    // After the cut: the call is answered as invalid (every tool call needs its tool
    // message) and the model is told its last call was cut off.
    let after_cut = last_message(&bodies_of(&day, "FORGE")[2]).to_string();
    assert!(after_cut.contains("tool_result"), "{after_cut}");
    assert!(after_cut.contains("its last tool call was incomplete"), "{after_cut}");
    assert!(day.project.read("src/greet.sh").contains("Hello, ${1:-World}!"));
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_a_content_filter_refusal_holds_with_its_text() {
    require_docker!();
    let script = greeter_but(|turn| {
        (turn.agent == "FORGE").then(|| Reply::Refusal {
            text: String::new(),
            explanation: Some("I'm sorry, but I can't assist with that request."),
            category: None,
        })
    });
    let day = Scenario::greeter()
        .script(script)
        .openai()
        .edit_config("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0")
        .start()
        .await;
    day.pace(&["--day", "1"]).await.expect_exit(1);

    assert_eq!(day.llm.calls_of("FORGE"), 1);
    let reason = day.run_json(1)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("FORGE: the model refused"), "{reason}");
    assert!(reason.contains("I can't assist with that request."), "{reason}");
}

/// A refused key is not an outage: exit 4 at once, and the hint names the variable the
/// key came from (not only the config key that names it).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_names_its_variable() {
    let day = Scenario::greeter()
        .env("ANTHROPIC_API_KEY", "sk-ant-wrong-key-0000")
        .start()
        .await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(4);
    assert!(
        ran.stderr()
            .contains("hint: check `ANTHROPIC_API_KEY` (the variable `llm.api_key_env` names)"),
        "{}",
        ran.text()
    );
    let sent = day.llm.server.received_requests().await.unwrap_or_default().len();
    assert_eq!(sent, 1, "no retry of a refused key");
}
