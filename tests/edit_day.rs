//! Integration tests: edit_day
//!
//! FORGE working the way models are trained to: it creates files with the text editor,
//! views one line, fixes it with `str_replace`, and the day ships. On both providers: the
//! anthropic one offers Claude's own tool (`text_editor_20250728`), the openai one the
//! same tool as a function; the fakes reject a malformed `tools` list as the real APIs do.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::fake_llm::{FakeLlm, Reply, Script, Turn};
use crate::support::scenario::Scenario;
use crate::support::scripts::{self, GREET_BUGGY, GREET_OK, TEST_GREET};

const EDITOR: &str = "str_replace_based_edit_tool";
/// What `view` of line 2 of the buggy greeter shows.
const VIEW_LINE_2: &str = "     2\techo \"Hello, $1\"\n[lines 2-2 of 2]";

/// FORGE by call number (the same on both wires): create the test and a buggy greeter,
/// see the test fail, view the faulty line, replace it, see the tests pass, hand off.
fn forge(turn: &Turn) -> Reply {
    match turn.call {
        1 => Reply::Tools(vec![
            (
                EDITOR,
                json!({"command": "create", "path": "tests/test_greet.sh", "file_text": TEST_GREET}),
            ),
            (
                EDITOR,
                json!({"command": "create", "path": "src/greet.sh", "file_text": GREET_BUGGY}),
            ),
        ]),
        2 | 6 => Reply::Tools(vec![("run", json!({"command": "sh tests/run.sh"}))]),
        3 => Reply::Tools(vec![(
            "confirm_red_phase",
            json!({"failing_tests": "FAIL test_greet", "tests_written": ["tests/test_greet.sh"]}),
        )]),
        4 => Reply::Tools(vec![(
            EDITOR,
            json!({"command": "view", "path": "src/greet.sh", "view_range": [2, -1]}),
        )]),
        5 => Reply::Tools(vec![(
            EDITOR,
            json!({
                "command": "str_replace",
                "path": "src/greet.sh",
                "old_str": "echo \"Hello, $1\"",
                "new_str": "# Prints a greeting for the name given, or for the World.\necho \"Hello, ${1:-World}!\""
            }),
        )]),
        _ => Reply::Tools(vec![(
            "complete_handoff",
            json!({
                "approach": "test first, then a one-line fix with str_replace",
                "risk": "low",
                "dependencies": "none",
                "built": "src/greet.sh prints Hello, NAME! (World by default)",
                "edge_cases_tested": ["no name given", "a name given"],
                "known_gaps": []
            }),
        )]),
    }
}

fn script() -> Script {
    let others = scripts::greeter_day1();
    Arc::new(move |turn: &Turn| {
        if turn.agent == "FORGE" {
            forge(turn)
        } else {
            others(turn)
        }
    })
}

/// The tool results a request sends back, in either wire format.
fn tool_results(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        if message["role"] == "tool" {
            out.push(message["content"].as_str().unwrap_or_default().to_string());
        }
        for block in message["content"].as_array().into_iter().flatten() {
            if block["type"] == "tool_result" {
                out.push(block["content"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    out
}

async fn a_day_fixed_with_str_replace(openai: bool) {
    require_docker!();
    let mut scenario = Scenario::greeter().script(script());
    if openai {
        scenario = scenario.openai();
    }
    let day = scenario.start().await;
    day.pace(&["--day", "1"]).await.expect_exit(0);
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    assert_eq!(
        day.project.read("src/greet.sh"),
        GREET_OK,
        "the str_replace landed, committed"
    );
    assert!(day.uncommitted().is_empty(), "{}", day.uncommitted());
    let handoff = day.artifact(1, "handoff.yaml");
    assert!(
        handoff.contains("src/greet.sh") && handoff.contains("tests/test_greet.sh"),
        "{handoff}"
    );

    let forge: Vec<Value> = day
        .llm
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(agent, _)| agent == "FORGE")
        .map(|(_, body)| body.clone())
        .collect();
    assert_eq!(forge.len(), 7);
    let offered = &forge[0]["tools"][0];
    if openai {
        assert_eq!(offered["type"], "function");
        assert_eq!(offered["function"]["name"], EDITOR);
        assert!(offered["function"]["parameters"]["properties"]["old_str"].is_object());
    } else {
        assert_eq!(offered, &json!({"type": "text_editor_20250728", "name": EDITOR}));
    }
    let all: Vec<String> = forge.iter().flat_map(tool_results).collect();
    // The red phase's failing run is an error result (on the openai wire `ERROR: exit
    // code: 1`, the prefix once, also when eviction superseded it); every editor call
    // succeeded.
    assert!(all.iter().all(|r| !r.contains("ERROR: ERROR")), "{all:#?}");
    assert!(
        all.iter()
            .all(|r| !r.starts_with("ERROR") || r.contains("exit code: 1") || r.contains("[superseded:")),
        "{all:#?}"
    );
    assert!(all.iter().any(|r| r == VIEW_LINE_2), "{all:#?}");
    let edited = tool_results(&forge[5]);
    assert!(
        edited
            .last()
            .is_some_and(|r| r.starts_with("The file src/greet.sh has been edited.")
                && r.contains("     3\techo \"Hello, ${1:-World}!\"")),
        "{edited:#?}"
    );
    // The view of the old line went stale with the edit: evicted from later requests.
    assert!(
        tool_results(&forge[6])
            .iter()
            .any(|r| r.starts_with("[evicted: src/greet.sh"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_day_edits_with_claude_s_text_editor() {
    a_day_fixed_with_str_replace(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_day_edits_with_the_same_tool_as_a_function() {
    a_day_fixed_with_str_replace(true).await;
}

/// The fakes accept what pace sends and refuse what the real APIs refuse, so the day tests
/// above would fail on a malformed editor tool.
#[tokio::test]
async fn the_fakes_reject_a_malformed_editor_tool() {
    pace::net::client::install_crypto_provider();
    let http = reqwest::Client::new();
    let request = pace::llm::ChatRequest {
        agent: "FORGE".into(),
        model: "claude-sonnet-4-6".into(),
        system: "You are FORGE.".into(),
        messages: vec![pace::llm::Message::user_text("go")],
        tools: pace::day::tools::forge_tools(true),
        max_tokens: 64,
        response_schema: None,
    };
    let text = |_: &Turn| Reply::Text("ok".into());
    let anthropic = FakeLlm::start(Arc::new(text), None).await;
    let openai = FakeLlm::start_openai(Arc::new(text), None).await;
    let post = |url: String, body: Value| {
        let http = http.clone();
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let messages = format!("{}/v1/messages", anthropic.url());
    let completions = format!("{}/v1/chat/completions", openai.url());

    let good = pace::llm::anthropic::request_body(&request);
    assert_eq!(post(messages.clone(), good.clone()).await.0, 200);
    for (tool, message) in [
        (
            json!({"type": "text_editor_20250728", "name": EDITOR, "input_schema": {"type": "object"}}),
            "tools.0.text_editor_20250728.input_schema: Extra inputs are not permitted",
        ),
        (
            json!({"type": "text_editor_20250728", "name": "edit"}),
            "tools.0.text_editor_20250728.name: Input should be 'str_replace_based_edit_tool'",
        ),
        (
            json!({"type": "text_editor_2099", "name": EDITOR}),
            "does not match any of the expected tags",
        ),
        (
            json!({"name": EDITOR, "description": "x"}),
            "tools.0.custom.input_schema: Field required",
        ),
    ] {
        let mut bad = good.clone();
        bad["tools"][0] = tool;
        let (status, body) = post(messages.clone(), bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(message), "{body}");
    }

    let good = pace::llm::openai::request_body(&request);
    assert_eq!(post(completions.clone(), good.clone()).await.0, 200);
    let mut bad = good.clone();
    bad["tools"][0] = json!({"type": "text_editor_20250728", "name": EDITOR});
    let (status, body) = post(completions, bad).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Supported values are: 'function' and 'custom'"), "{body}");
}
