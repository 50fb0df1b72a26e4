//! `make bench`: figures printed side by side with the obvious alternative, measured in
//! the same run. Ignored by `make test`; never a timed assertion.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::docker::busybox_image;
use crate::support::fake_llm::FakeLlm;
use crate::support::project::{Project, stderr, stdout};
use crate::support::scripts;
use pace::llm::{Block, Message, Role};

const KEY: &str = "sk-ant-bench-0000";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_command(program: &str, args: &[&str], runs: usize) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let status = std::process::Command::new(program).args(args).output().unwrap().status;
                assert!(status.success(), "{program} {args:?}");
                start.elapsed()
            })
            .collect(),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run_greeter_day(latency: Duration, test_command: Option<&str>) -> (Duration, Value, Project) {
    let fake = FakeLlm::start_with_latency(scripts::greeter_day1(), Some(KEY), latency).await;
    let p = Project::greeter();
    p.use_fake_llm(&fake.url(), &busybox_image(), "");
    if let Some(command) = test_command {
        let config = p
            .read("pace.config.yaml")
            .replace("test_command: sh tests/run.sh", &format!("test_command: {command}"));
        std::fs::write(p.path("pace.config.yaml"), config).unwrap();
        p.git(&["commit", "-q", "-am", "bench test command"]);
    }
    let start = Instant::now();
    let out = p.pace(&["--day", "1", "-q"], &[("ANTHROPIC_API_KEY", KEY)]).await;
    let wall = start.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let run: Value = serde_json::from_str(&p.read(".pace/day-1/run.json")).unwrap();
    (wall, run, p)
}

fn agent_ms(run: &Value, name: &str) -> f64 {
    run["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == name)
        .map(|a| a["duration_ms"].as_f64().unwrap())
        .sum()
}

fn llm_ms(p: &Project) -> f64 {
    p.read(".pace/day-1/transcript.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["duration_ms"].as_f64())
        .sum()
}

#[test]
#[ignore = "benchmark: make bench"]
fn bench_version_cold_start() {
    let pace = env!("CARGO_BIN_EXE_pace");
    let runs = 30;
    let t_pace = time_command(pace, &["--version"], runs);
    let t_git = time_command("git", &["--version"], runs);
    println!(
        "BENCH pace --version: median {:.2} ms over {runs} runs (git --version: {:.2} ms, ratio {:.2}x)",
        ms(t_pace),
        ms(t_git),
        ms(t_pace) / ms(t_git)
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: make bench"]
async fn bench_day_overhead_with_zero_latency_llm() {
    let (wall, run, p) = run_greeter_day(Duration::ZERO, Some("true")).await;
    let llm = llm_ms(&p);
    let gate: Value = serde_saphyr::from_str(&p.read(".pace/day-1/gate-report.yaml")).unwrap();
    let test_ms = gate["test_run"]["duration_ms"].as_f64().unwrap_or(0.0);
    let start = Instant::now();
    let status = std::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", &busybox_image(), "true"])
        .status()
        .unwrap();
    assert!(status.success());
    let docker_run = start.elapsed();
    // FORGE's time is its sandbox session: one container, the workspace upload, and the
    // scripted commands (two runs of the test script), minus its LLM calls.
    let forge_llm: f64 = p
        .read(".pace/day-1/transcript.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["agent"] == "FORGE")
        .filter_map(|v| v["duration_ms"].as_f64())
        .sum();
    let forge_sandbox = agent_ms(&run, "FORGE") - forge_llm;
    let rest = ms(wall) - llm - test_ms - forge_sandbox;
    println!(
        "BENCH day overhead (zero-latency LLM, test command `true`): wall {:.0} ms = LLM {:.0} ms + GATE container {:.0} ms + FORGE sandbox session {:.0} ms + pace's own work {:.0} ms (target < 1000 ms); one `docker run --rm … true` for scale: {:.0} ms",
        ms(wall),
        llm,
        test_ms,
        forge_sandbox,
        rest,
        ms(docker_run)
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: make bench"]
async fn bench_review_phase_overlap_with_1s_llm_latency() {
    let (wall, run, _p) = run_greeter_day(Duration::from_secs(1), None).await;
    let reviews = ["GATE", "SENTINEL", "CONDUIT"];
    let sequential: f64 = reviews.iter().map(|a| agent_ms(&run, a)).sum();
    let concurrent = reviews.iter().map(|a| agent_ms(&run, a)).fold(0.0, f64::max);
    let all_agents: f64 = run["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["duration_ms"].as_f64().unwrap())
        .sum();
    println!(
        "BENCH review phase with 1 s per LLM call: GATE∥SENTINEL∥CONDUIT {:.0} ms vs sequential sum {:.0} ms → {:.2}x (target ≥ 1.5x)",
        concurrent,
        sequential,
        sequential / concurrent
    );
    println!(
        "BENCH whole day with 1 s per LLM call: wall {:.0} ms vs sum of agent times {:.0} ms → {:.2}x",
        ms(wall),
        all_agents,
        all_agents / ms(wall)
    );
}

/// A 20-call FORGE conversation: reads, rewrites and test runs of a few files.
fn scripted_forge_turn(i: usize) -> (Value, String, &'static str) {
    let file = format!("src/module_{}.go", i % 4);
    let body = format!(
        "package main\n{}",
        "// a line of code that the model reads and rewrites\n".repeat(120)
    );
    match i % 3 {
        0 => (json!({"path": file}), body, "read_file"),
        1 => (
            json!({"path": file, "content": body}),
            format!("OK: wrote {} bytes to {file}", body.len()),
            "write_file",
        ),
        _ => (
            json!({"command": "go test ./..."}),
            format!(
                "exit code: 1\n{}",
                "--- FAIL: TestX (0.00s)\n    x_test.go:12: got 1 want 2\n".repeat(60)
            ),
            "run",
        ),
    }
}

fn forge_input_tokens(evict: bool) -> usize {
    let mut messages = vec![Message {
        role: Role::User,
        content: vec![Block::Text {
            text: "Story card ...".repeat(50),
        }],
    }];
    let mut total = 0;
    for i in 0..20 {
        if evict {
            pace::day::tools::evict::evict_stale(&mut messages);
        }
        total += pace::day::tools::evict::estimate_tokens(&messages);
        let (input, result, name) = scripted_forge_turn(i);
        let id = format!("toolu_{i}");
        messages.push(Message {
            role: Role::Assistant,
            content: vec![Block::ToolUse {
                id: id.clone(),
                name: name.into(),
                input,
            }],
        });
        messages.push(Message {
            role: Role::User,
            content: vec![Block::ToolResult {
                tool_use_id: id,
                content: result,
                is_error: false,
            }],
        });
    }
    total
}

#[test]
#[ignore = "benchmark: make bench"]
fn bench_forge_input_tokens_with_and_without_eviction() {
    let without = forge_input_tokens(false);
    let with = forge_input_tokens(true);
    println!(
        "BENCH FORGE input tokens over a 20-call scripted conversation: {with} with eviction vs {without} without → {:.2}x fewer",
        without as f64 / with as f64
    );
}
