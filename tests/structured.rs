//! Native structured outputs (issue 11 item 3) end to end: PRIME, GATE, SENTINEL and
//! CONDUIT ask with their answer's JSON schema on both providers, the fake model answers
//! JSON (or calls the forced tool) as constrained decoding would, and the day writes the
//! same YAML artifacts. The fakes reject a malformed `output_config`, `tool_choice` or
//! `response_format` (strict rules included), so a shipped day also proves the requests
//! were valid.

use std::sync::Arc;

use serde_json::Value;

use crate::support::fake_llm::{Reply, Turn};
use crate::support::scenario::{Day, Scenario};
use crate::support::scripts::{self, Options};

const STRUCTURED: [(&str, &str); 4] = [
    ("PRIME", "story_card"),
    ("GATE", "gate_criteria"),
    ("SENTINEL", "sentinel_review"),
    ("CONDUIT", "conduit_review"),
];

fn bodies_of(day: &Day, agent: &str) -> Vec<Value> {
    day.llm
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(a, _)| a == agent)
        .map(|(_, b)| b.clone())
        .collect()
}

/// The YAML artifacts are the same whatever the wire: parsed, with the scripted content.
fn assert_yaml_artifacts(day: &Day) {
    let card = day.artifact(1, "story-card.yaml");
    assert!(card.contains("acceptance:"), "{card}");
    assert!(card.contains(scripts::AC1), "{card}");
    assert!(
        !card.trim_start().starts_with('{'),
        "the card is YAML, not JSON: {card}"
    );
    let gate = day.artifact(1, "gate-report.yaml");
    assert!(gate.contains("gate_decision: SHIP"), "{gate}");
    assert!(gate.contains("result: PASS"), "{gate}");
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_day_ships_with_output_config_and_json_answers() {
    require_docker!();
    // PRIME's first card has no acceptance criteria: valid JSON per the schema, refused
    // by validation, so the single re-ask follows (asking for JSON, not YAML).
    let base = scripts::greeter(Options::default());
    let script = Arc::new(move |turn: &Turn| match (turn.agent.as_str(), turn.call) {
        ("PRIME", 1) => Reply::Text("story: s\ngiven: g\nwhen: w\nthen: t\nacceptance: []\nout_of_scope: []\n".into()),
        _ => base(turn),
    });
    let day = Scenario::greeter().script(script).start().await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    assert_eq!(day.llm.rejected(), Vec::<String>::new(), "{}", ran.text());
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    for (agent, _) in STRUCTURED {
        let body = &bodies_of(&day, agent)[0];
        let format = &body["output_config"]["format"];
        assert_eq!(format["type"], "json_schema", "{agent}: {body}");
        assert_eq!(format["schema"]["additionalProperties"], false, "{agent}");
        assert!(body.get("tool_choice").is_none(), "{agent}: {body}");
    }
    let prime = bodies_of(&day, "PRIME");
    assert_eq!(prime[0]["output_config"]["format"]["schema"]["required"][0], "story");
    // The JSON answer went back in the history and the re-ask names the problem.
    assert_eq!(prime.len(), 2);
    let history = prime[1]["messages"].to_string();
    assert!(history.contains(r#"\"acceptance\":[]"#), "{history}");
    assert!(history.contains("`acceptance` needs at least 1 item(s)"), "{history}");
    assert!(history.contains("the complete JSON object only"), "{history}");
    assert!(
        ran.text().contains("PRIME answer was invalid, asking once more"),
        "{}",
        ran.text()
    );
    // FORGE and SCRIBE use tools, never a response schema.
    for agent in ["FORGE", "SCRIBE"] {
        assert!(bodies_of(&day, agent).iter().all(|b| b.get("output_config").is_none()));
    }
    assert_yaml_artifacts(&day);
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_day_ships_with_a_strict_json_schema_response_format() {
    require_docker!();
    let day = Scenario::greeter().openai().start().await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    assert_eq!(day.llm.rejected(), Vec::<String>::new(), "{}", ran.text());
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    for (agent, name) in STRUCTURED {
        let format = &bodies_of(&day, agent)[0]["response_format"];
        assert_eq!(format["type"], "json_schema", "{agent}");
        assert_eq!(format["json_schema"]["name"], name, "{agent}");
        assert_eq!(format["json_schema"]["strict"], true, "{agent}");
    }
    assert!(bodies_of(&day, "FORGE").iter().all(|b| b["response_format"].is_null()));
    assert_yaml_artifacts(&day);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_output_config_gets_the_forced_tool_once_remembered() {
    require_docker!();
    let day = Scenario::greeter().start().await;
    day.llm.reject_output_config();
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    // One rejected request for the whole run: the fallback is remembered.
    assert_eq!(
        day.llm.rejected(),
        vec!["output_config: Extra inputs are not permitted".to_string()],
        "{}",
        ran.text()
    );
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    let prime = bodies_of(&day, "PRIME");
    assert!(prime[0].get("output_config").is_some(), "tried natively first");
    assert_eq!(prime.len(), 2, "the rejected request, then the forced tool");
    for (agent, name) in STRUCTURED {
        let body = bodies_of(&day, agent).into_iter().last().unwrap();
        assert!(body.get("output_config").is_none(), "{agent}: {body}");
        let tool = format!("emit_{name}");
        assert_eq!(body["tool_choice"]["type"], "tool", "{agent}");
        assert_eq!(body["tool_choice"]["name"], tool.as_str(), "{agent}");
        let offered = body["tools"].as_array().unwrap();
        assert!(
            offered
                .iter()
                .any(|t| t["name"] == tool.as_str() && t["input_schema"].is_object())
        );
    }
    assert_yaml_artifacts(&day);
}

#[tokio::test(flavor = "multi_thread")]
async fn structured_output_off_keeps_the_yaml_path() {
    require_docker!();
    let day = Scenario::greeter()
        .edit_config("  max_retries: 2", "  max_retries: 2\n  structured_output: off")
        .start()
        .await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    assert_eq!(day.llm.rejected(), Vec::<String>::new(), "{}", ran.text());
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    for (agent, _) in STRUCTURED {
        for body in bodies_of(&day, agent) {
            assert!(body.get("output_config").is_none(), "{agent}: {body}");
            assert!(body.get("tool_choice").is_none(), "{agent}: {body}");
        }
    }
    assert_yaml_artifacts(&day);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_without_structured_outputs_gets_the_forced_tool_at_once() {
    require_docker!();
    // A local model behind the Anthropic API (llama.cpp, Ollama): no `output_config` try.
    let day = Scenario::greeter()
        .edit_config(
            "analysis_model: claude-haiku-4-5-20251001",
            "analysis_model: qwen2.5-coder",
        )
        .start()
        .await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    assert_eq!(day.llm.rejected(), Vec::<String>::new(), "{}", ran.text());
    for (agent, name) in STRUCTURED {
        let bodies = bodies_of(&day, agent);
        assert_eq!(bodies.len(), 1, "{agent}");
        assert!(bodies[0].get("output_config").is_none(), "{agent}");
        assert_eq!(
            bodies[0]["tool_choice"]["name"],
            format!("emit_{name}").as_str(),
            "{agent}"
        );
    }
    assert_yaml_artifacts(&day);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_server_without_response_format_falls_back_to_yaml_once() {
    require_docker!();
    let day = Scenario::greeter().openai().start().await;
    day.llm.reject_output_config();
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);

    assert_eq!(
        day.llm.rejected(),
        vec!["Unrecognized request argument supplied: response_format".to_string()],
        "{}",
        ran.text()
    );
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    // The rejected request is not shown to the script: PRIME's one call has no schema,
    // and no later agent tries again.
    for (agent, _) in STRUCTURED {
        for body in bodies_of(&day, agent) {
            assert!(body["response_format"].is_null(), "{agent}: {body}");
        }
    }
    assert_yaml_artifacts(&day);
}
