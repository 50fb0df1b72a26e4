//! Scripted model behaviour for the greeter example (the recorded cassette comes from
//! [`greeter_day1`]).

use std::sync::Arc;

use serde_json::json;

use super::fake_llm::{Reply, Script, Turn};

pub const TEST_GREET: &str = "out=$(sh src/greet.sh Ada) && [ \"$out\" = \"Hello, Ada!\" ] || { echo \"expected 'Hello, Ada!', got '$out'\"; exit 1; }\nout=$(sh src/greet.sh) && [ \"$out\" = \"Hello, World!\" ] || { echo \"expected 'Hello, World!', got '$out'\"; exit 1; }\n";
pub const GREET_OK: &str =
    "#!/bin/sh\n# Prints a greeting for the name given, or for the World.\necho \"Hello, ${1:-World}!\"\n";
pub const GREET_BUGGY: &str = "#!/bin/sh\necho \"Hello, $1\"\n";

pub const AC1: &str = "`sh src/greet.sh Ada` prints `Hello, Ada!`";
pub const AC2: &str = "`sh src/greet.sh` prints `Hello, World!`";

pub fn story_card() -> String {
    format!(
        "```yaml\nstory: \"As a user, when I run greet with a name, I see a friendly greeting.\"\ngiven: \"the greeter is installed\"\nwhen: \"I run `sh src/greet.sh NAME`\"\nthen: \"it prints `Hello, NAME!`\"\nacceptance:\n  - \"{}\"\n  - \"{}\"\nout_of_scope:\n  - \"options such as --shout\"\n```\n",
        AC1.replace('"', "\\\""),
        AC2.replace('"', "\\\"")
    )
}

pub fn gate_yaml() -> String {
    format!(
        "```yaml\ncriteria_results:\n  - criterion: \"{}\"\n    result: PASS\n    evidence: \"PASS test_greet\"\n  - criterion: \"{}\"\n    result: PASS\n    evidence: \"PASS test_greet\"\nblockers: []\ndeferred: []\nhold_reason: \"\"\n```\n",
        AC1.replace('"', "\\\""),
        AC2.replace('"', "\\\"")
    )
}

pub fn review_yaml(agent: &str, decision: &str, advisory: Option<&str>) -> String {
    let key = format!("{}_decision", agent.to_ascii_lowercase());
    let (advisories, result) = match advisory {
        Some(a) => (format!("[\"{a}\"]"), "ADVISORY"),
        None => ("[]".to_string(), "PASS"),
    };
    let hold = if decision == "HOLD" {
        "\"hard-coded credential in src/greet.sh\""
    } else {
        "\"\""
    };
    let blockers = if decision == "HOLD" {
        "[\"hard-coded credential\"]"
    } else {
        "[]"
    };
    format!(
        "```yaml\nfindings:\n  - check: \"diff review\"\n    result: {result}\n    evidence: \"src/greet.sh\"\nadvisories: {advisories}\nblockers: {blockers}\n{key}: {decision}\nhold_reason: {hold}\n```\n"
    )
}

const DOCS: [&str; 4] = ["product.md", "engineering.md", "security.md", "devops.md"];

fn scribe(turn: &Turn) -> Reply {
    if turn.call == 1 || turn.first_user_text().contains("Generate") {
        if turn.last_tool_results().is_empty() {
            let mut calls: Vec<(&'static str, serde_json::Value)> = DOCS
                .iter()
                .map(|d| ("write_doc", json!({"name": d, "content": format!("# {d}\n\nThe greeter prints greetings. Tests: `sh tests/run.sh`.\n")})))
                .collect();
            calls.push(("finish", json!({"summary": "wrote the four context documents"})));
            return Reply::Tools(calls);
        }
        return Reply::Text("Done.".into());
    }
    if turn.last_tool_results().is_empty() {
        return Reply::Tools(vec![
            (
                "write_doc",
                json!({"name": "engineering.md", "content": "# engineering.md\n\n## Module Map\n- `src/greet.sh`: prints `Hello, NAME!`\n\n## Test Patterns\n`tests/test_*.sh`, run by `sh tests/run.sh`.\n"}),
            ),
            ("finish", json!({"summary": "documented greet.sh"})),
        ]);
    }
    Reply::Text("Done.".into())
}

/// FORGE: red (write the test, see it fail), green (write the code), handoff. On a retry
/// (the brief mentions an attempt number) it writes `greet_code` right away.
fn forge(turn: &Turn, first_code: &'static str) -> Reply {
    let results = turn.last_tool_results();
    let retry = turn.attempt_brief_mentions("This is attempt");
    let step = turn.body["messages"].as_array().map(|m| m.len() / 2).unwrap_or(0);
    if retry {
        return match step {
            0 => Reply::Tools(vec![(
                "write_file",
                json!({"path": "src/greet.sh", "content": GREET_OK}),
            )]),
            1 => Reply::Tools(vec![("run", json!({"command": "sh tests/run.sh"}))]),
            _ => handoff("fixed the default name"),
        };
    }
    match step {
        0 => Reply::Tools(vec![(
            "write_file",
            json!({"path": "tests/test_greet.sh", "content": TEST_GREET}),
        )]),
        1 => Reply::Tools(vec![("run", json!({"command": "sh tests/run.sh"}))]),
        2 => {
            let output = results.first().map(|(_, c)| c.clone()).unwrap_or_default();
            Reply::Tools(vec![(
                "confirm_red_phase",
                json!({"failing_tests": output, "tests_written": ["tests/test_greet.sh"]}),
            )])
        }
        3 => Reply::Tools(vec![(
            "write_file",
            json!({"path": "src/greet.sh", "content": first_code}),
        )]),
        4 => Reply::Tools(vec![("run", json!({"command": "sh tests/run.sh"}))]),
        _ => handoff("test first, then a one-line implementation"),
    }
}

fn handoff(approach: &str) -> Reply {
    Reply::Tools(vec![(
        "complete_handoff",
        json!({
            "approach": approach,
            "risk": "low",
            "dependencies": "none",
            "built": "src/greet.sh prints Hello, NAME! (World by default); tests/test_greet.sh covers both cases",
            "edge_cases_tested": "- no name given\n- a name given",
            "known_gaps": []
        }),
    )])
}

/// Options of the greeter scenarios.
#[derive(Clone, Copy)]
pub struct Options {
    /// FORGE's first implementation (the buggy one makes GATE's suite fail → HOLD).
    pub first_code: &'static str,
    /// PRIME answers garbage twice.
    pub prime_invalid: bool,
    pub sentinel_advisory: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            first_code: GREET_OK,
            prime_invalid: false,
            sentinel_advisory: false,
        }
    }
}

pub fn greeter(options: Options) -> Script {
    Arc::new(move |turn: &Turn| match turn.agent.as_str() {
        "PRIME" if options.prime_invalid => Reply::Text("I think the story is about greeting people.".into()),
        "PRIME" => Reply::Text(story_card()),
        "FORGE" => forge(turn, options.first_code),
        "GATE" => Reply::Text(gate_yaml()),
        "SENTINEL" if options.sentinel_advisory => Reply::Text(review_yaml(
            "SENTINEL",
            "ADVISORY",
            Some("quote the name argument in greet.sh"),
        )),
        "SENTINEL" => Reply::Text(review_yaml("SENTINEL", "SHIP", None)),
        "CONDUIT" => Reply::Text(review_yaml("CONDUIT", "SHIP", None)),
        "SCRIBE" => scribe(turn),
        other => Reply::Text(format!("unexpected agent {other}")),
    })
}

pub fn greeter_day1() -> Script {
    greeter(Options::default())
}
