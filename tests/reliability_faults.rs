//! Reliability: faults of the LLM provider and of Docker during a real day (the `pace`
//! binary, a real git repository, the real daemon, a fake Anthropic server).
//!
//! Every scenario checks the contract of issue 6: a clear message naming what failed and
//! what to do, the right exit code, `run.json` and `summary.md` written, FORGE's work
//! committed where FORGE ran, and no secret in the artifacts or the output. Each prints one
//! `RELIABILITY <scenario>: <exit code> <what was checked>` line for docs/reliability.md.
//!
//! The 429-with-`retry-after` case lives in `tests/day.rs`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::docker::{build_busybox_on, busybox_image};
use crate::support::fake_llm::{FakeLlm, Reply, Script, Turn};
use crate::support::project::{Project, stderr, stdout};
use crate::support::scripts;

const KEY: &str = "sk-ant-test-RELIABILITY-0042";
const SECRETS: [(&str, &str); 2] = [
    ("GITLAB_TOKEN", "glpat-RELIABILITY-SECRET-77"),
    ("DB_PASSWORD", "hunter2-RELIABILITY-SECRET"),
];

fn env_with_key() -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("ANTHROPIC_API_KEY", KEY)];
    env.extend(SECRETS);
    env
}

/// The greeter project pointed at `base_url`, with `edit` applied to the generated config
/// (committed).
fn project(base_url: &str, edit: impl FnOnce(String) -> String) -> Project {
    let p = Project::greeter();
    p.use_fake_llm(base_url, &busybox_image(), "");
    let config = edit(p.read("pace.config.yaml"));
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "--allow-empty", "-am", "reliability config"]);
    p
}

/// Replaces `old` (which must occur) in a config text.
fn set(config: String, old: &str, new: &str) -> String {
    assert!(config.contains(old), "`{old}` not in the config:\n{config}");
    config.replacen(old, new, 1)
}

fn no_forge_retries(config: String) -> String {
    set(config, "  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0")
}

fn run_json(p: &Project, day: u32) -> Value {
    serde_json::from_str(&p.read(&format!(".pace/day-{day}/run.json"))).unwrap()
}

/// The checks every fault shares: exit code, run.json and summary.md agree with it, and no
/// secret appears in the artifacts, the output or the history.
#[track_caller]
fn assert_recorded(p: &Project, out: &std::process::Output, exit: i32, decision: &str) -> Value {
    assert_eq!(
        out.status.code(),
        Some(exit),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    let run = run_json(p, 1);
    assert_eq!(run["exit_code"], exit, "{run}");
    assert_eq!(run["decision"], decision, "{run}");
    let summary = p.read(".pace/day-1/summary.md");
    assert!(summary.contains(decision), "{summary}");
    assert!(p.exists("PROGRESS.md"));
    let everywhere = format!(
        "{}{}{}{}",
        p.all_artifacts_text(),
        stdout(out),
        stderr(out),
        p.git(&["log", "-p", "--all"])
    );
    for (_, secret) in SECRETS.iter().chain([("ANTHROPIC_API_KEY", KEY)].iter()) {
        assert!(!everywhere.contains(secret), "secret {secret} leaked");
    }
    run
}

/// FORGE's first edit (the test it writes first) is committed and the tree is clean.
#[track_caller]
fn assert_forge_work_committed(p: &Project) {
    assert_eq!(p.read("tests/test_greet.sh"), scripts::TEST_GREET);
    assert_eq!(p.git(&["status", "--porcelain", "--", "src", "tests"]), "");
    let log = p.git(&["log", "--format=%s"]);
    assert!(log.contains("Day 1: FORGE"), "{log}");
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn containers_with_label(label: &str) -> String {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fault for one call: (agent, its call number, the reply instead of the script's).
type Fault = (&'static str, u32, fn() -> Reply);

/// `inner`, except that the calls listed in `faults` get the fault instead.
fn with_faults(inner: Script, faults: Vec<Fault>) -> Script {
    Arc::new(move |turn: &Turn| {
        for (agent, call, reply) in &faults {
            if turn.agent == *agent && turn.call == *call {
                return reply();
            }
        }
        inner(turn)
    })
}

// --- LLM ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn llm_connection_refused_exits_4_after_the_retries() {
    require_docker!();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let p = project(&url, |c| c);
    let started = Instant::now();
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    let run = assert_recorded(&p, &out, 4, "ERROR");
    let err = stderr(&out);
    assert!(err.contains("unavailable after 3 attempts"), "{err}");
    assert!(err.contains("connection failed"), "{err}");
    assert!(err.contains("llm.base_url"), "the hint names the setting: {err}");
    assert!(run["reason"].as_str().unwrap().contains("connection failed"), "{run}");
    assert!(started.elapsed() < Duration::from_secs(60));
    eprintln!(
        "RELIABILITY llm-connection-refused: 4 after 3 attempts in {:.1} s; message names the failure and `llm.base_url`; run.json+summary.md written",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_that_never_answers_is_bounded_by_the_per_call_timeout() {
    require_docker!();
    let fake = FakeLlm::start(Arc::new(|_: &Turn| Reply::Hang), Some(KEY)).await;
    let p = project(&fake.url(), |c| {
        let c = set(c, "  max_retries: 2\n", "  max_retries: 1\n");
        set(c, "  max_retries: 1\n", "  max_retries: 1\n  timeout_seconds: 2\n")
    });
    let started = Instant::now();
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    let elapsed = started.elapsed();
    let run = assert_recorded(&p, &out, 4, "ERROR");
    let err = stderr(&out);
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("unavailable after 2 attempts"), "{err}");
    assert!(err.contains("llm.timeout_seconds"), "the hint names the setting: {err}");
    assert!(run["reason"].as_str().unwrap().contains("timed out"), "{run}");
    assert_eq!(fake.requests.lock().unwrap().len(), 2, "one call, retried once");
    // Two attempts of 2 s and one backoff, plus start-up.
    assert!(elapsed < Duration::from_secs(40), "{elapsed:?}");
    eprintln!(
        "RELIABILITY llm-never-answers-per-call: 4 \"timed out\" after 2 attempts x `llm.timeout_seconds: 2` in {:.1} s; hint names the setting; run.json+summary.md written",
        elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_that_hangs_inside_forge_is_stopped_by_the_day_time_budget_with_exit_5() {
    require_docker!();
    // FORGE writes its test and runs the suite, then the provider never answers again.
    // The per-call timeout stays at its 600 s default: only the day's budget can stop it.
    let script = with_faults(scripts::greeter_day1(), vec![("FORGE", 3, || Reply::Hang)]);
    let fake = FakeLlm::start(script, Some(KEY)).await;
    let p = project(&fake.url(), |c| format!("{c}\nbudget:\n  max_minutes: 0.5\n"));
    let started = Instant::now();
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    let elapsed = started.elapsed();
    let run = assert_recorded(&p, &out, 5, "BUDGET");
    let err = stderr(&out);
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.contains("time budget exhausted"), "{run}");
    assert!(reason.contains("budget.max_minutes: 0.5"), "{run}");
    assert!(reason.contains("during FORGE"), "the reason names the stage: {run}");
    assert!(err.contains("budget.max_minutes"), "{err}");
    assert!(err.contains("re-run the day"), "the hint says what to do: {err}");
    assert_eq!(fake.calls_of("FORGE"), 3);
    // Stopped at 30 s, cleaned up within the bound.
    assert!(elapsed >= Duration::from_secs(30), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(75), "{elapsed:?}");
    // FORGE's edit is committed as work in progress, no container is left.
    assert_forge_work_committed(&p);
    let log = p.git(&["log", "--format=%s"]);
    assert!(
        log.contains("work in progress (stopped by `budget.max_minutes`)"),
        "{log}"
    );
    assert!(log.contains("Day 1: BUDGET — artifacts"), "{log}");
    let run_id = run["run_id"].as_str().unwrap();
    assert_eq!(containers_with_label(&format!("pace.run-id={run_id}")), "");
    assert!(p.read("pace-env.env").contains("PACE_EXIT_CODE=5"));
    eprintln!(
        "RELIABILITY llm-never-answers-day-budget: 5 (BUDGET) after {:.1} s with `budget.max_minutes: 0.5`, reason names FORGE; WIP committed, no container left",
        elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn day_time_budget_is_validated() {
    let p = Project::greeter();
    for (value, ok) in [
        ("0", false),
        ("-1", false),
        ("lots", false),
        ("20000", false),
        ("0.5", true),
    ] {
        let config = format!("{}\nbudget:\n  max_minutes: {value}\n", p.read("pace.config.yaml"));
        let path = p.path("pace.config.yaml");
        let original = p.read("pace.config.yaml");
        std::fs::write(&path, config).unwrap();
        let out = p.pace(&["validate"], &[]).await;
        std::fs::write(&path, original).unwrap();
        if ok {
            assert_eq!(out.status.code(), Some(0), "{value}: {}", stderr(&out));
        } else {
            assert_eq!(out.status.code(), Some(2), "{value}: {}", stderr(&out));
            assert!(stderr(&out).contains("max_minutes"), "{value}: {}", stderr(&out));
            assert!(stderr(&out).contains("pace.config.yaml:"), "{}", stderr(&out));
        }
    }
    eprintln!("RELIABILITY budget-max-minutes-validation: 2 for 0, -1, text and > 1 week, with file:line:column");
}

#[tokio::test(flavor = "multi_thread")]
async fn overloaded_529_and_a_cut_stream_are_retried_and_the_day_ships() {
    require_docker!();
    let script = with_faults(
        scripts::greeter_day1(),
        vec![
            ("PRIME", 1, || Reply::Error {
                status: 529,
                kind: "overloaded_error",
                message: "Overloaded",
                headers: vec![],
            }),
            ("FORGE", 2, || Reply::Cut),
        ],
    );
    let fake = FakeLlm::start(script, Some(KEY)).await;
    let p = project(&fake.url(), |c| c);
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_recorded(&p, &out, 0, "SHIP");
    assert_eq!(fake.calls_of("PRIME"), 2, "the 529 was retried once");
    // FORGE's second call was cut and repeated: the repeat carries the same conversation.
    let requests = fake.requests.lock().unwrap();
    let forge: Vec<&Value> = requests.iter().filter(|(a, _)| a == "FORGE").map(|(_, b)| b).collect();
    assert_eq!(
        forge[1]["messages"], forge[2]["messages"],
        "the cut call was sent again as it was"
    );
    drop(requests);
    let transcript = p.read(".pace/day-1/transcript.jsonl");
    assert!(
        !transcript.contains("this answer will not arrive in full"),
        "the cut answer is not used"
    );
    assert_eq!(p.read("src/greet.sh"), scripts::GREET_OK);
    eprintln!("RELIABILITY llm-529-overloaded: 0 (SHIP) after one retry of PRIME's call");
    eprintln!(
        "RELIABILITY llm-stream-cut: 0 (SHIP); FORGE's cut answer (no message_stop) was discarded and the same request retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_500s_exhausts_the_retries_with_forge_work_committed() {
    require_docker!();
    let inner = scripts::greeter_day1();
    let script: Script = Arc::new(move |turn: &Turn| {
        if turn.agent == "SENTINEL" {
            return Reply::Error {
                status: 500,
                kind: "api_error",
                message: "Internal server error",
                headers: vec![],
            };
        }
        inner(turn)
    });
    let fake = FakeLlm::start(script, Some(KEY)).await;
    let p = project(&fake.url(), |c| c);
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    let run = assert_recorded(&p, &out, 4, "ERROR");
    let err = stderr(&out);
    assert!(err.contains("unavailable after 3 attempts"), "{err}");
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(err.contains("re-run the day"), "{err}");
    assert!(run["reason"].as_str().unwrap().contains("HTTP 500"), "{run}");
    assert_eq!(fake.calls_of("SENTINEL"), 3);
    assert_forge_work_committed(&p);
    assert_eq!(p.read("src/greet.sh"), scripts::GREET_OK);
    // GATE finished alongside and its report is kept.
    assert!(p.exists(".pace/day-1/gate-report.yaml"));
    assert!(p.git(&["log", "--format=%s"]).contains("Day 1: ERROR — artifacts"));
    eprintln!("RELIABILITY llm-500-burst: 4 after 3 attempts of SENTINEL; FORGE's work and GATE's report committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_truncated_by_max_tokens_are_repeated_and_the_day_ships() {
    require_docker!();
    let inner = scripts::greeter_day1();
    let script: Script = Arc::new(move |turn: &Turn| match (turn.agent.as_str(), turn.call) {
        // PRIME's YAML stops in the middle of the card.
        ("PRIME", 1) => Reply::Truncated {
            text: "```yaml\nstory: \"As a user, when I run greet".into(),
            partial_tool: None,
        },
        // FORGE's first write_file stops inside its arguments.
        ("FORGE", 1) => Reply::Truncated {
            text: "Writing the test first.".into(),
            partial_tool: Some((
                "write_file",
                "{\"path\": \"tests/test_greet.sh\", \"content\": \"out=$(sh src/gr",
            )),
        },
        ("FORGE", _) => {
            // The scripted FORGE counts its steps by messages: hide the truncated turn.
            let mut body = turn.body.clone();
            if let Some(messages) = body["messages"].as_array_mut()
                && messages.len() >= 3
            {
                messages.drain(1..3);
            }
            inner(&Turn {
                agent: turn.agent.clone(),
                call: turn.call,
                body,
            })
        }
        _ => inner(turn),
    });
    let fake = FakeLlm::start(script, Some(KEY)).await;
    let p = project(&fake.url(), |c| c);
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_recorded(&p, &out, 0, "SHIP");
    // The warning reads in one go: the problem last, no parentheses inside parentheses.
    let err = stderr(&out);
    assert!(
        err.contains("warning: PRIME answer was invalid, asking once more: it was cut off at the output limit of "),
        "{err}"
    );
    assert!(!err.contains("tokens ("), "{err}");
    let requests = fake.requests.lock().unwrap();
    // PRIME was asked again, told its answer was cut off.
    let prime: Vec<&Value> = requests.iter().filter(|(a, _)| a == "PRIME").map(|(_, b)| b).collect();
    assert_eq!(prime.len(), 2);
    let reask = prime[1]["messages"].to_string();
    assert!(reask.contains("cut off at the output limit"), "{reask}");
    // FORGE got a tool error for the incomplete call and the note, and went on.
    let forge2 = requests
        .iter()
        .filter(|(a, _)| a == "FORGE")
        .nth(1)
        .map(|(_, b)| b.clone())
        .unwrap();
    let turn = Turn {
        agent: "FORGE".into(),
        call: 2,
        body: forge2.clone(),
    };
    let results = turn.last_tool_results();
    assert_eq!(results.len(), 1);
    assert!(results[0].1.starts_with("ERROR"), "{results:?}");
    assert!(
        forge2["messages"].to_string().contains("cut off by the output limit"),
        "{}",
        forge2["messages"]
    );
    drop(requests);
    assert_eq!(p.read("tests/test_greet.sh"), scripts::TEST_GREET);
    assert_eq!(p.read("src/greet.sh"), scripts::GREET_OK);
    eprintln!(
        "RELIABILITY llm-max-tokens-truncation: 0 (SHIP); PRIME re-asked naming the cut, FORGE's partial tool call refused with a note and repeated"
    );
}

// --- Docker ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn docker_tcp_endpoint_not_listening_exits_4_before_any_llm_call() {
    require_docker!();
    let fake = FakeLlm::start(scripts::greeter_day1(), Some(KEY)).await;
    let p = project(&fake.url(), |c| c);
    let host = format!("tcp://127.0.0.1:{}", closed_port());
    let mut env = env_with_key();
    env.push(("DOCKER_HOST", &host));
    let started = Instant::now();
    let out = p.pace(&["--day", "1"], &env).await;
    assert_recorded(&p, &out, 4, "ERROR");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot connect to the Docker daemon at `{host}`")),
        "{err}"
    );
    assert!(err.contains("hint: is the Docker daemon running?"), "{err}");
    assert_eq!(fake.requests.lock().unwrap().len(), 0, "no token spent");
    eprintln!(
        "RELIABILITY docker-down-tcp: 4 after waiting {:.0} s for the daemon; message names DOCKER_HOST, no LLM call",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_exits_4_naming_sandbox_image() {
    require_docker!();
    let fake = FakeLlm::start(scripts::greeter_day1(), Some(KEY)).await;
    let image = "pace-test/no-such-image:0";
    let p = project(&fake.url(), |c| {
        set(
            c,
            &format!("  image: {}\n", busybox_image()),
            &format!("  image: {image}\n"),
        )
    });
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_recorded(&p, &out, 4, "ERROR");
    let err = stderr(&out);
    assert!(err.contains(&format!("image `{image}` is not available")), "{err}");
    assert!(err.contains("sandbox.image"), "{err}");
    assert_eq!(fake.requests.lock().unwrap().len(), 0, "no token spent");
    eprintln!("RELIABILITY docker-image-missing: 4; message names the image and `sandbox.image`, no LLM call");
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_in_the_container_is_a_hold_with_the_output() {
    require_docker!();
    let fake = FakeLlm::start(scripts::greeter_day1(), Some(KEY)).await;
    let p = project(&fake.url(), |c| {
        let c = no_forge_retries(c);
        set(
            c,
            "  test_command: sh tests/run.sh",
            "  test_command: sh tests/run.sh && echo writing the coverage report && dd if=/dev/zero of=/dev/full bs=1k count=1",
        )
    });
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    let run = assert_recorded(&p, &out, 1, "HOLD");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.contains("exited with 1"), "{run}");
    assert!(reason.contains("No space left on device"), "the reason says why: {run}");
    let gate = p.read(".pace/day-1/gate-report.yaml");
    assert!(
        gate.contains("gate_decision: HOLD") && gate.contains("exit_code: 1"),
        "{gate}"
    );
    let log = p.read(".pace/day-1/gate/output.log");
    assert!(
        log.contains("PASS test_greet") && log.contains("No space left on device"),
        "{log}"
    );
    assert!(p.read(".pace/day-1/escalation.md").contains("No space left on device"));
    assert_forge_work_committed(&p);
    eprintln!(
        "RELIABILITY docker-disk-full: 1 (HOLD); \"No space left on device\" in gate-report, hold reason, escalation and output.log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oom_killed_suite_is_a_hold_reported_as_137_out_of_memory() {
    require_docker!();
    let fake = FakeLlm::start(scripts::greeter_day1(), Some(KEY)).await;
    let p = project(&fake.url(), |c| {
        let c = no_forge_retries(c);
        let c = set(c, "  caches: false\n", "  caches: false\n  memory: 16m\n");
        set(
            c,
            "  test_command: sh tests/run.sh",
            "  test_command: sh tests/run.sh && awk 'BEGIN { s = \"xxxxxxxxxxxxxxxx\"; while (1) s = s s }'",
        )
    });
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    let run = assert_recorded(&p, &out, 1, "HOLD");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.contains("exited with 137"), "{run}");
    assert!(reason.contains("out of memory"), "{run}");
    assert!(reason.contains("sandbox.memory"), "{run}");
    let gate = p.read(".pace/day-1/gate-report.yaml");
    assert!(
        gate.contains("exit_code: 137") && gate.contains("out of memory"),
        "{gate}"
    );
    assert_forge_work_committed(&p);
    eprintln!(
        "RELIABILITY docker-oom-killed: 1 (HOLD); gate-report exit_code 137 + \"out of memory\", hold reason names `sandbox.memory`"
    );
}

// --- Docker: the daemon dies in the middle of GATE --------------------------------------

/// A private dockerd on a unix socket under /tmp, with its own data-root, exec-root and
/// pidfile; never the machine's daemon.
struct PrivateDaemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateDaemon {
    fn socket(&self) -> String {
        format!("unix://{}", self.dir.path().join("d.sock").display())
    }

    fn spawn(dir: &std::path::Path) -> Child {
        crate::support::dockerd::command(dir).spawn().unwrap()
    }

    async fn start() -> Option<Self> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let have = Command::new("sh")
            .args(["-c", "command -v dockerd"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !root || !have {
            eprintln!("SKIPPED reliability_faults daemon-killed: needs root and `dockerd`");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("pace-reld-")
            .tempdir_in("/tmp")
            .unwrap();
        let child = Self::spawn(dir.path());
        let daemon = Self {
            child: Some(child),
            dir,
        };
        let client = daemon.wait_ready().await;
        build_busybox_on(&client).await;
        Some(daemon)
    }

    async fn wait_ready(&self) -> bollard::Docker {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(client) = bollard::Docker::connect_with_unix(&self.socket(), 120, bollard::API_DEFAULT_VERSION)
                && client.ping().await.is_ok()
            {
                return client;
            }
            assert!(
                Instant::now() < deadline,
                "the private dockerd did not start: {}",
                std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn docker_cli(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("-H")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILL to dockerd, as when the daemon crashes (its containerd dies with it; the
    /// container's shim and process are left behind, see [`Self::reap`]).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl PrivateDaemon {
    /// What a killed daemon leaves: the containerd shims of this daemon (their command
    /// line names this daemon's directory) with the container processes under them, and
    /// the mounts under the directory. Only processes this test started are signalled.
    fn reap(&self) {
        let dir = self.dir.path().display().to_string();
        let mut procs: Vec<(u32, u32, String)> = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: the fields after the last `)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            procs.push((pid, ppid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
        let shims: Vec<u32> = procs
            .iter()
            .filter(|(_, _, cmd)| cmd.contains("containerd-shim") && cmd.contains(&dir))
            .map(|(pid, _, _)| *pid)
            .collect();
        let children = procs
            .iter()
            .filter(|(_, ppid, _)| shims.contains(ppid))
            .map(|(pid, _, _)| *pid);
        for pid in children.collect::<Vec<_>>().into_iter().chain(shims) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&dir))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        self.stop();
        self.reap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_killed_during_gate_exits_4_with_forge_work_committed() {
    require_docker!();
    let Some(mut daemon) = PrivateDaemon::start().await else {
        return;
    };
    let fake = FakeLlm::start(scripts::greeter_day1(), Some(KEY)).await;
    let p = project(&fake.url(), |c| {
        let c = no_forge_retries(c);
        set(c, "  test_command: sh tests/run.sh", "  test_command: sleep 30")
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["--day", "1"])
        .current_dir(&p.root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("DOCKER_HOST", daemon.socket())
        .envs(env_with_key())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for GATE's container on the private daemon, then kill the daemon.
    let mut gate_seen = false;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if daemon.docker_cli(&["ps", "--format", "{{.Names}}"]).contains("-gate-") {
            gate_seen = true;
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    assert!(gate_seen, "GATE's container never started on the private daemon");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    daemon.kill();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let after_kill = killed_at.elapsed();
    let run = assert_recorded(&p, &out, 4, "ERROR");
    let err = stderr(&out);
    let reason = run["reason"].as_str().unwrap();
    assert!(
        reason.contains("container"),
        "the reason names the Docker operation: {run}"
    );
    assert!(err.contains("Docker daemon"), "the hint names the daemon: {err}");
    assert!(err.contains("re-run the day"), "the hint says what to do: {err}");
    // Long before the 30 s suite would have ended.
    assert!(after_kill < Duration::from_secs(25), "{after_kill:?}");
    assert_forge_work_committed(&p);
    assert_eq!(p.read("src/greet.sh"), scripts::GREET_OK);
    assert!(p.git(&["log", "--format=%s"]).contains("Day 1: ERROR — artifacts"));
    drop(daemon);
    eprintln!(
        "RELIABILITY docker-daemon-killed-mid-gate: 4 {:.1} s after the kill; reason names the container operation, hint the daemon; FORGE's work committed",
        after_kill.as_secs_f64()
    );
}
