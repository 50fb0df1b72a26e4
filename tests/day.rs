//! End-to-end days: the real `pace` binary, a real git repository, a real Docker daemon
//! running the suite, and a fake Anthropic server playing the model.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::docker::busybox_image;
use crate::support::fake_llm::{Reply, Turn};
use crate::support::project::{Project, stderr, stdout};
use crate::support::scenario::{KEY, Scenario};
use crate::support::scripts::{self, GREET_BUGGY, Options};

const SECRETS: [(&str, &str); 3] = [
    ("GITLAB_TOKEN", "glpat-SECRETVALUE-5678"),
    ("MY_SERVICE_PASSWORD", "hunter2-SECRETVALUE"),
    ("DEPLOY_KEY", "ssh-SECRETVALUE-abcdef"),
];

fn run_json(p: &Project, day: u32) -> Value {
    serde_json::from_str(&p.read(&format!(".pace/day-{day}/run.json"))).unwrap()
}

/// The greeter with the secrets a CI job has in its environment.
fn with_secrets(mut scenario: Scenario) -> Scenario {
    for (key, value) in SECRETS {
        scenario = scenario.env(key, value);
    }
    scenario
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_ships_with_every_artifact_and_no_secret_anywhere() {
    let day = with_secrets(Scenario::greeter()).start().await;
    let (p, fake) = (&day.project, &day.llm);
    let out = day.pace(&["--day", "1"]).await.expect_exit(0);

    let run = day.run_json(1);
    assert_eq!(run["decision"], "SHIP");
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["branch"], "sprint/demo");
    let agents: Vec<&str> = run["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for agent in ["SCRIBE", "PRIME", "FORGE", "GATE", "SENTINEL", "CONDUIT"] {
        assert!(agents.contains(&agent), "{agent} missing from {agents:?}");
    }
    assert!(run["totals"]["input_tokens"].as_u64().unwrap() > 0);
    for file in [
        "story-card.yaml",
        "handoff.yaml",
        "gate-report.yaml",
        "sentinel-report.yaml",
        "conduit-report.yaml",
        "scribe-report.yaml",
        "gate/output.log",
        "gate/junit.xml",
        "summary.md",
        "transcript.jsonl",
        "attempts.yaml",
        "merge-request.md",
    ] {
        assert!(p.exists(&format!(".pace/day-1/{file}")), "missing {file}");
    }
    // The suite really ran in the container: its own output and its own JUnit.
    assert!(day.artifact(1, "gate/output.log").contains("PASS test_greet"));
    assert!(day.artifact(1, "gate/junit.xml").contains("name=\"greeter\""));
    let gate = day.artifact(1, "gate-report.yaml");
    assert!(gate.contains("gate_decision: SHIP"), "{gate}");
    assert!(
        day.artifact(1, "sentinel-report.yaml")
            .contains("sentinel_decision: SHIP")
    );
    for doc in ["product", "engineering", "security", "devops"] {
        assert!(p.exists(&format!(".pace/context/{doc}.md")));
    }
    assert!(p.read("PROGRESS.md").contains("| 1 |"));
    let dotenv = p.read("pace-env.env");
    assert!(
        dotenv.contains("PACE_DECISION=SHIP") && dotenv.contains("PACE_EXIT_CODE=0"),
        "{dotenv}"
    );

    // FORGE's work and pace's artifacts are committed on the sprint branch.
    assert_eq!(p.read("src/greet.sh"), scripts::GREET_OK);
    let log = day.log();
    assert!(log.contains("Day 1: FORGE"), "{log}");
    assert!(log.contains("Day 1: SHIP — artifacts"), "{log}");
    assert_eq!(day.uncommitted(), "");

    // Secrets: nowhere in artifacts, output, commits, or what the model was sent.
    let everywhere = format!(
        "{}{}{}{}",
        p.all_artifacts_text(),
        out.text(),
        p.git(&["log", "-p", "--all"]),
        fake.all_request_text()
    );
    for (_, secret) in SECRETS.iter().chain([("ANTHROPIC_API_KEY", KEY)].iter()) {
        assert!(!everywhere.contains(secret), "secret {secret} leaked");
    }

    // Running the shipped day again does nothing.
    let before = p.git(&["rev-parse", "HEAD"]);
    let calls = fake.requests.lock().unwrap().len();
    let again = day.pace(&["--day", "1"]).await.expect_exit(0);
    assert!(again.stdout().contains("already shipped"), "{}", again.text());
    assert_eq!(p.git(&["rev-parse", "HEAD"]), before);
    assert_eq!(fake.requests.lock().unwrap().len(), calls);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_suite_holds_then_the_retry_ships() {
    let day = Scenario::greeter().options(buggy_first()).start().await;
    day.pace(&["--day", "1"]).await.expect_exit(0);
    let attempts = day.artifact(1, "attempts.yaml");
    assert!(
        attempts.contains("outcome: HOLD") && attempts.contains("outcome: SHIP"),
        "{attempts}"
    );
    assert!(
        attempts.contains("exited with 1"),
        "the hold reason names the suite's exit code: {attempts}"
    );
    // The second FORGE attempt was told why.
    let requests = day.llm.requests.lock().unwrap();
    let retry_brief = requests
        .iter()
        .filter(|(a, _)| a == "FORGE")
        .map(|(_, b)| b["messages"][0].to_string())
        .find(|m| m.contains("This is attempt 2"));
    assert!(retry_brief.is_some_and(|m| m.contains("exited with 1")));
    assert_eq!(day.run_json(1)["attempt"], 2);
}

/// FORGE's first implementation fails the suite.
fn buggy_first() -> Options {
    Options {
        first_code: GREET_BUGGY,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_after_all_retries_escalates_and_retry_after_a_human_fix_ships() {
    // No retries: the first HOLD escalates.
    let day = Scenario::greeter()
        .options(buggy_first())
        .edit_config("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0")
        .start()
        .await;
    let p = &day.project;
    day.pace(&["--day", "1"]).await.expect_exit(1);
    assert_eq!(day.run_json(1)["decision"], "HOLD");
    let escalation = day.artifact(1, "escalation.md");
    assert!(
        escalation.contains("pace-hold") && escalation.contains("pace-day-1"),
        "{escalation}"
    );
    assert!(escalation.contains("exited with 1"), "{escalation}");
    assert!(p.read("pace-env.env").contains("PACE_DECISION=HOLD"));

    // A human fixes the code and pushes; `--retry` continues from there.
    std::fs::write(p.path("src/greet.sh"), scripts::GREET_OK).unwrap();
    p.git(&["commit", "-q", "-am", "fix default name by hand"]);
    day.pace(&["--day", "1", "--retry"]).await.expect_exit(0);
    assert_eq!(day.run_json(1)["attempt"], 2);
    let requests = day.llm.requests.lock().unwrap();
    let brief = requests
        .iter()
        .rev()
        .find(|(a, _)| a == "FORGE")
        .map(|(_, b)| b["messages"][0].to_string())
        .unwrap();
    assert!(
        brief.contains("fix default name by hand"),
        "the retry names the human commit: {brief}"
    );
    // PRIME ran once: the story card is kept.
    assert_eq!(requests.iter().filter(|(a, _)| a == "PRIME").count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_model_output_is_reasked_once_then_holds() {
    let day = Scenario::greeter()
        .options(Options {
            prime_invalid: true,
            ..Options::default()
        })
        .start()
        .await;
    day.pace(&["--day", "1"]).await.expect_exit(1);
    assert_eq!(day.llm.calls_of("PRIME"), 2);
    let run = day.run_json(1);
    assert_eq!(run["decision"], "HOLD");
    assert!(
        run["reason"].as_str().unwrap().contains("PRIME output invalid"),
        "{run}"
    );
    assert!(day.project.exists(".pace/day-1/escalation.md"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_is_retried_and_bad_key_stops_with_exit_4() {
    let inner = scripts::greeter_day1();
    let script = Arc::new(move |turn: &Turn| {
        if turn.agent == "PRIME" && turn.call == 1 {
            return Reply::Error {
                status: 429,
                kind: "rate_limit_error",
                message: "slow down",
                headers: vec![("retry-after", "0")],
            };
        }
        inner(turn)
    });
    let day = Scenario::greeter().script(script).start().await;
    day.pace(&["--day", "1"]).await.expect_exit(0);
    assert_eq!(day.llm.calls_of("PRIME"), 2);

    let q = Project::greeter();
    q.use_fake_llm(&day.llm.url(), &busybox_image(), "");
    let out = q
        .pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", "sk-ant-wrong-key-0000")])
        .await;
    assert_eq!(out.status.code(), Some(4), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("credentials"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("sk-ant-wrong-key-0000"));
    assert_eq!(run_json(&q, 1)["decision"], "ERROR");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_key_exits_2_before_any_call() {
    let day = Scenario::greeter().without_key().start().await;
    let out = day.pace(&["--day", "1"]).await.expect_exit(2);
    assert!(out.stderr().contains("ANTHROPIC_API_KEY"), "{}", out.text());
    assert_eq!(day.llm.requests.lock().unwrap().len(), 0);
    assert_eq!(day.run_json(1)["decision"], "ERROR");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_budget_exits_5_with_the_work_committed() {
    // The fake reports its real token counts; a small cap stops the day inside FORGE.
    let day = Scenario::greeter()
        .config("\nbudget:\n  max_tokens: 9000\n")
        .start()
        .await;
    let out = day.pace(&["--day", "1"]).await.expect_exit(5);
    assert_eq!(day.run_json(1)["decision"], "BUDGET");
    assert!(out.stderr().contains("budget"), "{}", out.text());
    // Nothing FORGE wrote is left uncommitted.
    assert_eq!(day.project.git(&["status", "--porcelain", "--", "src", "tests"]), "");
    assert!(day.log().contains("Day 1: BUDGET — artifacts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_tool_calls_are_refused_and_nothing_leaks() {
    let marker = format!("/tmp/pace-pwned-{}", std::process::id());
    let marker2 = marker.clone();
    let inner = scripts::greeter_day1();
    let script = Arc::new(move |turn: &Turn| {
        if turn.agent == "FORGE" && turn.call == 1 {
            return Reply::Tools(vec![
                ("read_file", json!({"path": "../../etc/passwd"})),
                ("read_file", json!({"path": "/etc/passwd"})),
                ("read_file", json!({"path": "src/link/passwd"})),
                ("write_file", json!({"path": marker2.clone(), "content": "x"})),
                (
                    "write_file",
                    json!({"path": ".git/hooks/pre-commit", "content": "curl evil"}),
                ),
                (
                    "run",
                    json!({"command": "printenv; cat /proc/self/environ | tr '\\0' '\\n'"}),
                ),
            ]);
        }
        inner(turn)
    });
    let day = with_secrets(Scenario::greeter()).script(script).start().await;
    let (p, fake) = (&day.project, &day.llm);
    std::os::unix::fs::symlink("/etc", p.path("src/link")).unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "a symlink out of the tree"]);
    let _ = day.pace(&["--day", "1"]).await;

    let requests = fake.requests.lock().unwrap();
    let second = requests
        .iter()
        .filter(|(a, _)| a == "FORGE")
        .nth(1)
        .map(|(_, b)| b.clone())
        .expect("FORGE continued");
    let turn = Turn {
        agent: "FORGE".into(),
        call: 2,
        body: second,
    };
    let results = turn.last_tool_results();
    assert_eq!(results.len(), 6);
    for (i, (_, content)) in results.iter().take(5).enumerate() {
        assert!(content.starts_with("ERROR"), "call {i} was not refused: {content}");
        assert!(!content.contains("root:x:0:0"), "call {i} leaked /etc/passwd");
    }
    let printenv = &results[5].1;
    assert!(printenv.contains("exit code"), "{printenv}");
    for (name, secret) in SECRETS.iter().chain([("ANTHROPIC_API_KEY", KEY)].iter()) {
        assert!(!printenv.contains(secret), "{name} visible in the sandbox: {printenv}");
    }
    assert!(!std::path::Path::new(&marker).exists());
    assert!(!p.read(".git/hooks/pre-commit.sample").is_empty() || !p.exists(".git/hooks/pre-commit"));
    assert!(!p.exists(".git/hooks/pre-commit"));
}

/// Records the example's cassette: `cargo test --test all record_example_cassette -- --ignored`.
/// Run it after changing a prompt, a tool or the example; the replay test below then
/// checks the committed cassette still drives a whole day.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "writes examples/greeter/cassette/day-1.jsonl"]
async fn record_example_cassette() {
    let day = Scenario::greeter().start().await;
    day.pace(&["--day", "1"]).await.expect_exit(0);
    let p = &day.project;
    let target = crate::support::project::example_dir().join("cassette/day-1.jsonl");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(p.path(".pace/day-1/transcript.jsonl"), &target).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_example_ships_offline_from_its_cassette() {
    let p = Project::example_with_image(&busybox_image());
    // No key, no network: the replay provider and a real container.
    let out = p.pace(&["--day", "1"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(run_json(&p, 1)["decision"], "SHIP");
    assert!(p.read(".pace/day-1/gate/output.log").contains("PASS test_greet"));
    assert_eq!(p.read("src/greet.sh"), scripts::GREET_OK);
    assert!(
        run_json(&p, 1)["totals"]["cost_usd"].as_f64().unwrap() > 0.0,
        "replayed usage is accounted"
    );

    // A changed repository diverges from the cassette with a clear error.
    let q = Project::example_with_image(&busybox_image());
    let config = q
        .read("pace.config.yaml")
        .replace("tdd_enforcement: true", "tdd_enforcement: false");
    std::fs::write(q.path("pace.config.yaml"), config).unwrap();
    q.git(&["commit", "-q", "-am", "tdd off"]);
    let out = q.pace(&["--day", "1"], &[]).await;
    assert_eq!(out.status.code(), Some(4), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("replay diverged from the cassette at FORGE call 1"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_reports_config_plan_and_pause_with_their_exit_codes() {
    let p = Project::greeter();
    // Paused: nothing runs.
    let out = p.pace(&["--day", "1"], &[("PACE_PAUSED", "true")]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("paused"));
    // A day beyond the sprint and a day missing from the plan are plan errors.
    let out = p.pace(&["--day", "9"], &[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("duration_days"), "{}", stderr(&out));
    let plan = p.read("plan.yaml");
    let cut = plan.find("  - day: 2").unwrap();
    let end = plan.find("  - day: 3").unwrap();
    std::fs::write(p.path("plan.yaml"), format!("{}{}", &plan[..cut], &plan[end..])).unwrap();
    let out = p.pace(&["--day", "2"], &[("PACE_DAY", "1")]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("plan.yaml"), "{}", stderr(&out));
    // PACE_DAY is read when --day is absent.
    let out = p.pace(&[], &[("PACE_DAY", "2")]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // A broken config: every problem, each with file:line:column, exit 2.
    let config = p.read("pace.config.yaml").replace(
        "sprint:\n  duration_days: 3",
        "sprint:\n  duration_days: three\n  lenght: 3",
    );
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    let out = p.pace(&["validate"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("pace.config.yaml:12:"), "{err}");
    assert!(err.contains("lenght"), "{err}");
    let out = p.pace(&["--day", "1"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_forge_leaves_no_container_and_records_the_stop() {
    let run_marker = "sleep 120";
    let inner = scripts::greeter_day1();
    let script = Arc::new(move |turn: &Turn| {
        if turn.agent == "FORGE" && turn.call == 1 {
            return Reply::Tools(vec![
                (
                    "write_file",
                    json!({"path": "tests/test_greet.sh", "content": scripts::TEST_GREET}),
                ),
                ("run", json!({"command": run_marker})),
            ]);
        }
        inner(turn)
    });
    let day = Scenario::greeter().script(script).start().await;
    let (p, fake) = (&day.project, &day.llm);
    let mut child = day.spawn(&["--day", "1"]);
    // Wait until FORGE's command runs in its container (labelled with this run's id).
    let mut seen_run_ids = String::new();
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let ps = std::process::Command::new("docker")
            .args([
                "ps",
                "--filter",
                "label=pace.day=1",
                "--format",
                "{{.Label \"pace.run-id\"}}",
            ])
            .output()
            .unwrap();
        seen_run_ids = String::from_utf8_lossy(&ps.stdout).to_string();
        if fake.calls_of("FORGE") >= 1 && !seen_run_ids.trim().is_empty() {
            break;
        }
    }
    assert!(!seen_run_ids.trim().is_empty(), "FORGE's container never started");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    send_signal(child.id(), "TERM");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(143));
    let run = day.run_json(1);
    assert_eq!(run["decision"], "ERROR");
    assert!(run["reason"].as_str().unwrap().contains("SIGTERM"), "{run}");
    // FORGE's edit before the signal is committed, not lost with the CI job.
    assert!(
        p.git(&["log", "--format=%s"])
            .contains("work in progress (interrupted by SIGTERM)")
    );
    assert_eq!(p.git(&["status", "--porcelain", "--", "tests"]), "");
    assert_eq!(p.read("tests/test_greet.sh"), scripts::TEST_GREET);
    let run_id = run["run_id"].as_str().unwrap().to_string();
    assert!(
        seen_run_ids.lines().any(|l| l == run_id),
        "the container carried {seen_run_ids}, run.json says {run_id}"
    );
    let left = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=pace.run-id={run_id}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "containers left behind"
    );
}

fn send_signal(pid: u32, signal: &str) {
    std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_down_exits_4_with_a_hint_and_still_writes_artifacts() {
    let day = with_secrets(Scenario::greeter())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .start()
        .await;
    let out = day.pace(&["--day", "1"]).await.expect_exit(4);
    assert!(
        out.stderr().contains("hint: is the Docker daemon running?"),
        "{}",
        out.text()
    );
    assert_eq!(
        day.llm.requests.lock().unwrap().len(),
        0,
        "no token is spent before Docker answers"
    );
    assert_eq!(day.run_json(1)["decision"], "ERROR");
    assert!(day.project.exists(".pace/day-1/summary.md") && day.project.exists("PROGRESS.md"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_advisory_retries_once_then_ships_into_the_backlog() {
    let day = Scenario::greeter()
        .options(Options {
            sentinel_advisory: true,
            ..Options::default()
        })
        .start()
        .await;
    day.pace(&["--day", "1"]).await.expect_exit(0);
    let attempts = day.artifact(1, "attempts.yaml");
    assert!(
        attempts.contains("outcome: ADVISORY") && attempts.contains("outcome: SHIP"),
        "{attempts}"
    );
    let backlog = day.project.read(".pace/advisory-backlog.yaml");
    assert!(
        backlog.contains("sentinel-day1-1") && backlog.contains("status: open"),
        "{backlog}"
    );
    assert_eq!(day.llm.calls_of("SENTINEL"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_human_gate_day_stops_for_review_without_running_the_agents() {
    let day = Scenario::greeter().start().await;
    let out = day.pace(&["--day", "3"]).await.expect_exit(0);
    assert!(out.stdout().contains("human gate"), "{}", out.text());
    assert_eq!(day.llm.calls_of("FORGE"), 0);
    assert_eq!(day.llm.calls_of("PRIME"), 0);
    assert!(day.artifact(3, "merge-request.md").contains("review"));
}

/// `sandbox.keep` in a day: the sandbox reports each kept container as an event, and the
/// day's printer shows it with the words `pace gate` uses (`sandbox_conn` pins those).
#[tokio::test(flavor = "multi_thread")]
async fn kept_containers_are_named_through_the_day_s_printer() {
    let day = Scenario::greeter()
        .edit_config("  timeout: 60\n", "  timeout: 60\n  keep: true\n")
        .start()
        .await;
    let out = day.pace(&["--day", "1"]).await;
    let err = out.stderr();
    let kept: Vec<String> = err
        .lines()
        .filter_map(|l| l.strip_prefix("pace: kept sandbox container `"))
        .filter_map(|rest| rest.split('`').next())
        .map(String::from)
        .collect();
    // Removed before asserting: a failed assertion must not leave them on the daemon.
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    for name in &kept {
        let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let _ = docker.remove_container(name, Some(opts)).await;
    }
    out.expect_exit(0);
    assert!(
        kept.iter().any(|n| n.contains("-forge-")),
        "no FORGE session kept: {err}"
    );
    assert!(
        kept.iter().any(|n| n.contains("-gate-")),
        "no GATE container kept: {err}"
    );
    let line = err.lines().find(|l| l.contains("kept sandbox container")).unwrap();
    assert!(
        line.ends_with(&format!("(sandbox.keep); remove it with `docker rm -fv {}`", kept[0])),
        "{line}"
    );
}
