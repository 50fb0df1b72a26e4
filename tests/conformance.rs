//! Conformance with a real model server (`make conformance`, see scripts/conformance.sh):
//! llama.cpp's `llama-server` with SmolLM2-135M-Instruct, reached through its OpenAI
//! endpoint (`/v1/chat/completions`) and its Anthropic endpoint (`/v1/messages`).
//!
//! A 135M model writes poor code and often no valid story card; what is asserted is pace's
//! side of the conversation: the server accepted every request pace sent (its own log
//! counts the answers by status), every answer's stream and usage were parsed, the day ended
//! with an exit code that matches its recorded decision and a reason a user can act on, the
//! artifacts are all written, a free local model is not billed, and the transcript replays
//! offline to the same decision at the same cost.
//!
//! The tests are `#[ignore]`d: they need the server that `make conformance` starts
//! (`PACE_CONFORMANCE_URL`), and they run one at a time (one model, two cores).
// Test code may unwrap, panic and print (Cargo.toml [lints] hold the library).
#![allow(
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]

#[macro_use]
mod support;

use std::time::Instant;

use serde_json::Value;

use support::docker::busybox_image;
use support::project::{Project, stderr};

/// The key the server is started with (`--api-key`): a request without it is refused, so a
/// day that passes proves pace sent the key the way each endpoint expects it.
const SERVER_KEY: &str = "pace-conformance-key";

fn server_url() -> String {
    std::env::var("PACE_CONFORMANCE_URL").expect("PACE_CONFORMANCE_URL: run `make conformance`")
}

/// The server's answers by HTTP status since `offset` bytes of its log.
fn statuses_since(offset: u64) -> Vec<u16> {
    let Ok(path) = std::env::var("PACE_CONFORMANCE_SERVER_LOG") else {
        return Vec::new();
    };
    let log = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&log[(offset as usize).min(log.len())..]).to_string();
    // llama-server logs each request as `... request: POST /v1/messages 127.0.0.1 200`.
    text.lines()
        .filter(|l| l.contains("request: POST"))
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse().ok())
        .collect()
}

fn log_len() -> u64 {
    std::env::var("PACE_CONFORMANCE_SERVER_LOG")
        .ok()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len())
}

/// The greeter with `llm` pointed at the real server through `provider`.
fn greeter_through(provider: &str, base_url: &str) -> Project {
    let p = Project::greeter();
    p.use_fake_llm(base_url, &busybox_image(), "");
    let config = p
        .read("pace.config.yaml")
        .replace("provider: anthropic", &format!("provider: {provider}"))
        .replace("model: claude-sonnet-4-6", "model: smollm2-135m")
        .replace("analysis_model: claude-haiku-4-5-20251001", "analysis_model: smollm2-135m")
        .replace("max_iterations: 20", "max_iterations: 6")
        .replace(
            "  max_retries: 2\n",
            // A 135M model on two cores: short answers, patient calls.
            "  max_retries: 2\n  timeout_seconds: 600\n  limits:\n    forge_output_tokens: 512\n    analysis_output_tokens: 512\n",
        )
        + "\nbudget:\n  max_usd: 0.01\n";
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "conformance: a local model"]);
    p
}

fn key_env(provider: &str) -> (&'static str, &'static str) {
    match provider {
        "openai" => ("OPENAI_API_KEY", SERVER_KEY),
        _ => ("ANTHROPIC_API_KEY", SERVER_KEY),
    }
}

fn read_json(p: &Project, rel: &str) -> Value {
    serde_json::from_str(&p.read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn transcript(p: &Project) -> Vec<Value> {
    p.read(".pace/day-1/transcript.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What every day must leave behind, whatever the model did.
fn assert_artifacts(p: &Project, decision: &str) {
    for file in ["run.json", "summary.md", "transcript.jsonl"] {
        assert!(p.path(&format!(".pace/day-1/{file}")).is_file(), "{file} missing");
    }
    let decided = if decision == "SHIP" {
        "merge-request.md"
    } else {
        "escalation.md"
    };
    assert!(
        p.path(&format!(".pace/day-1/{decided}")).is_file(),
        "{decided} missing on {decision}"
    );
}

/// One day through `provider`, checked, then replayed offline in a fresh copy.
async fn day_through(provider: &str, base_url: &str) {
    let p = greeter_through(provider, base_url);
    let offset = log_len();
    let started = Instant::now();
    let out = p.pace(&["--day", "1"], &[key_env(provider)]).await;
    let wall = started.elapsed();
    let code = out.status.code().unwrap_or(-1);
    let run = read_json(&p, ".pace/day-1/run.json");
    let decision = run["decision"].as_str().unwrap_or_default().to_string();
    println!(
        "CONFORMANCE {provider}: exit {code}, {decision} in {:.1} s: {}",
        wall.as_secs_f64(),
        run["reason"].as_str().unwrap_or("")
    );

    // The exit code is the decision's, and a HOLD says why.
    let expected = match decision.as_str() {
        "SHIP" => 0,
        "HOLD" => 1,
        other => panic!(
            "a local day ends SHIP or HOLD, not {other} (exit {code}):\n{}",
            stderr(&out)
        ),
    };
    assert_eq!(code, expected, "{}", stderr(&out));
    if decision == "HOLD" {
        assert!(run["reason"].as_str().is_some_and(|r| r.len() > 10), "{run}");
    }
    assert_artifacts(&p, &decision);

    // Every request accepted, every answer parsed with its usage.
    let statuses = statuses_since(offset);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "the server refused a request pace sent: {statuses:?} (see its log)"
    );
    let calls = transcript(&p);
    assert!(!calls.is_empty());
    for call in &calls {
        assert!(call["error"].is_null(), "a call failed: {call}");
        let usage = &call["response"]["usage"];
        assert!(
            usage["input_tokens"].as_u64().unwrap_or(0) > 0,
            "no input usage parsed from {}: {usage}",
            call["agent"]
        );
    }
    if !statuses.is_empty() {
        assert_eq!(statuses.len(), calls.len(), "one HTTP request per recorded call");
    }

    // A free local model costs nothing: the $0.01 budget never stops the day.
    assert_eq!(
        run["totals"]["cost_usd"].as_f64(),
        Some(0.0),
        "a local model is not billed: {run}"
    );

    replay_matches(&p, &run, &decision).await;
}

/// The recorded transcript, replayed in a fresh greeter, decides the same at the same cost.
async fn replay_matches(recorded: &Project, run: &Value, decision: &str) {
    let p = Project::greeter();
    p.use_fake_llm("http://127.0.0.1:9", &busybox_image(), "");
    let cassette = p.path("cassette/conformance.jsonl");
    std::fs::create_dir_all(cassette.parent().unwrap()).unwrap();
    std::fs::copy(recorded.path(".pace/day-1/transcript.jsonl"), &cassette).unwrap();
    let config = recorded
        .read("pace.config.yaml")
        .replace(
            &format!("base_url: {}", base_url_in(recorded)),
            "cassette: cassette/conformance.jsonl",
        )
        .replace("provider: openai", "provider: replay")
        .replace("provider: anthropic", "provider: replay");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "conformance: replay"]);
    let out = p.pace(&["--day", "1"], &[]).await;
    let replayed = read_json(&p, ".pace/day-1/run.json");
    assert_eq!(
        replayed["decision"],
        decision,
        "replay decided otherwise:\n{}",
        stderr(&out)
    );
    for total in ["cost_usd", "input_tokens", "output_tokens"] {
        assert_eq!(
            replayed["totals"][total], run["totals"][total],
            "replay reports the recorded {total}"
        );
    }
}

fn base_url_in(p: &Project) -> String {
    let config = p.read("pace.config.yaml");
    let line = config
        .lines()
        .find(|l| l.trim_start().starts_with("base_url:"))
        .unwrap();
    line.trim_start().trim_start_matches("base_url:").trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real llama-server: make conformance"]
async fn openai_endpoint_day() {
    require_docker!();
    day_through("openai", &format!("{}/v1", server_url())).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real llama-server: make conformance"]
async fn anthropic_endpoint_day() {
    require_docker!();
    day_through("anthropic", &server_url()).await;
}

/// A request without the key is refused by the real server, and pace says so with exit 4
/// naming the key variable (the server's 401 is not an outage to retry).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real llama-server: make conformance"]
async fn a_wrong_key_is_refused_with_a_hint() {
    require_docker!();
    let p = greeter_through("openai", &format!("{}/v1", server_url()));
    let out = p.pace(&["--day", "1"], &[("OPENAI_API_KEY", "wrong")]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hint: check `OPENAI_API_KEY`"),
        "{}",
        stderr(&out)
    );
}

/// `pace doctor` tells a llama.cpp whose template shows tools from one that would drop
/// them: the conformance server (a template with tools) passes; the same model with its
/// own template (no tools), started here, fails the check with the fix.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real llama-server: make conformance"]
async fn doctor_judges_the_servers_chat_template() {
    let p = greeter_through("openai", &format!("{}/v1", server_url()));
    let out = p.pace(&["doctor"], &[key_env("openai")]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("llm-tools") && text.contains("can show tools"), "{text}");

    let (server, model) = (
        std::env::var("PACE_LLAMA_SERVER").unwrap(),
        std::env::var("PACE_CONFORMANCE_MODEL").unwrap(),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(server)
        .args([
            "-m",
            &model,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--jinja",
            "-c",
            "2048",
            "--no-webui",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..120 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let p = greeter_through("openai", &format!("{url}/v1"));
    let mut out = p.pace(&["doctor"], &[key_env("openai")]).await;
    for _ in 0..20 {
        // The port opens before the model is loaded (`/props` answers 503 meanwhile).
        if String::from_utf8_lossy(&out.stdout).contains("llm-tools") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        out = p.pace(&["doctor"], &[key_env("openai")]).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("FAIL") && text.contains("cannot show tools"), "{text}");
    assert!(text.contains("--chat-template-file"), "{text}");
}
