//! Reliability (issue 6, "Faults"): git, platform and process faults against the real
//! `pace` binary, real git, a real Docker daemon and the fake Anthropic / GitLab /
//! Bitbucket servers. Each scenario prints one `RELIABILITY <scenario>: <exit> <checked>`
//! line for `docs/reliability.md`.
//!
//! A rejected push is covered by `gitlab::a_rejected_push_exits_4_with_the_work_committed_and_a_patch`
//! and `bitbucket::a_rejected_push_exits_4_with_the_work_committed_and_a_patch`; SIGTERM
//! during FORGE by `day::sigterm_during_forge_leaves_no_container_and_records_the_stop`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::docker::busybox_image;
use crate::support::fake_bitbucket::FakeBitbucket;
use crate::support::fake_gitlab::{FakeGitlab, PROJECT_PATH};
use crate::support::fake_llm::{FakeLlm, Reply, Script, Turn};
use crate::support::project::{Project, stderr, stdout};
use crate::support::scenario::Scenario;
use crate::support::scripts::{self, Options};

const KEY: &str = "sk-ant-test-KEYVALUE-0066";
const GITLAB_TOKEN: &str = "glpat-RELIABLE-5678abcd";
const BB_TOKEN: &str = "bbat-RELIABLE-SECRET-0001";

fn report(scenario: &str, code: Option<i32>, checked: &str) {
    let code = code.map_or_else(|| "none".to_string(), |c| c.to_string());
    eprintln!("RELIABILITY {scenario}: {code} {checked}");
}

fn run_json(p: &Project, day: u32) -> Value {
    serde_json::from_str(&p.read(&format!(".pace/day-{day}/run.json"))).unwrap()
}

async fn greeter(script: Script) -> (Project, FakeLlm) {
    let fake = FakeLlm::start(script, Some(KEY)).await;
    let p = Project::greeter();
    p.use_fake_llm(&fake.url(), &busybox_image(), "");
    (p, fake)
}

/// Replaces `platform:\n  type: local` in the committed config.
fn set_platform(p: &Project, platform: &str) {
    let config = p
        .read("pace.config.yaml")
        .replace("platform:\n  type: local", &format!("platform:\n  type: {platform}"));
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "platform"]);
}

fn gitlab_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_API_KEY", KEY.into()),
        ("GITLAB_TOKEN", GITLAB_TOKEN.into()),
        ("GITLAB_PROJECT", PROJECT_PATH.into()),
        ("GITLAB_URL", url.into()),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn spawn_pace(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pace"));
    cmd.args(args).current_dir(&p.root).env_clear();
    for key in ["PATH", "HOME", "DOCKER_HOST"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("NO_COLOR", "1").envs(env.iter().copied());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

async fn wait_output(child: Child) -> std::process::Output {
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// Waits (up to 60 s) until `ready` holds.
async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..600 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every file under `.pace/` whose name marks a half-written temporary file.
fn temporary_files(p: &Project) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![p.path(".pace")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                stack.push(e.path());
            } else if name.starts_with(".tmp") || name.ends_with(".tmp") {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

fn containers_of(run_id: &str) -> String {
    let out = Command::new("docker")
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
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------- git

#[tokio::test(flavor = "multi_thread")]
async fn remote_unreachable_exits_4_with_the_work_committed_and_a_patch() {
    let (p, _llm) = greeter(scripts::greeter(Options::default())).await;
    set_platform(&p, "gitlab");
    // A port nothing listens on: API and git both get "connection refused".
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let env = gitlab_env(&url);
    let out = p.pace(&["--day", "1"], &pairs(&env)).await;
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("push of `sprint/demo` was rejected"), "{text}");
    assert!(text.contains("changes.patch"), "{text}");
    assert!(!text.contains(GITLAB_TOKEN), "{text}");
    let log = p.git(&["log", "--format=%s"]);
    assert!(
        log.contains("Day 1: FORGE") && log.contains("Day 1: SHIP — artifacts"),
        "{log}"
    );
    assert_eq!(p.git(&["status", "--porcelain", "--", "src", "tests", ".pace"]), "");
    let patch = p.read(".pace/day-1/changes.patch");
    assert!(patch.contains("src/greet.sh"), "{patch}");
    let run = run_json(&p, 1);
    assert_eq!(
        (run["decision"].as_str(), run["exit_code"].as_u64()),
        (Some("SHIP"), Some(4))
    );
    report(
        "git remote unreachable",
        out.status.code(),
        "push to a closed port: work committed locally, changes.patch written, run.json exit_code 4",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_detached_head_exits_2_with_the_hint_and_writes_nothing() {
    let (p, llm) = greeter(scripts::greeter(Options::default())).await;
    p.git(&["checkout", "-q", "--detach"]);
    let out = p.pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}\n{err}", stdout(&out));
    assert!(err.contains("HEAD is detached"), "{err}");
    assert!(err.contains("git checkout -B"), "{err}");
    assert!(!p.exists(".pace"), "nothing written into .pace/");
    // Only the dotenv report, written on every exit so the CI job's variables say why.
    assert_eq!(
        p.git(&["status", "--porcelain", "--untracked-files=all"]),
        "?? pace-env.env\n"
    );
    assert!(
        p.read("pace-env.env")
            .contains("PACE_DECISION=ERROR\nPACE_EXIT_CODE=2\n")
    );
    assert_eq!(llm.requests.lock().unwrap().len(), 0);
    report(
        "git detached HEAD",
        out.status.code(),
        "hint to check out a branch; no .pace/, clean work tree, no LLM call",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dirty_work_tree_exits_2_and_leaves_the_changes_alone() {
    let (p, llm) = greeter(scripts::greeter(Options::default())).await;
    let head = p.git(&["rev-parse", "HEAD"]);
    // A person's uncommitted work: a tracked edit in src/, a new file in src/, a tracked
    // edit elsewhere, an untracked file outside the source dirs (alone it would not block).
    std::fs::write(p.path("src/greet.sh"), "#!/bin/sh\necho 'work in progress'\n").unwrap();
    std::fs::write(p.path("src/draft.sh"), "echo draft\n").unwrap();
    let readme = format!("{}\nA note.\n", p.read("README.md"));
    std::fs::write(p.path("README.md"), &readme).unwrap();
    std::fs::write(p.path("notes.txt"), "todo\n").unwrap();
    // A lock left by a killed run (its pid is gone) is taken over on the way.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::create_dir_all(p.path(".pace")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(
        p.path(".pace/pipeline.lock"),
        format!("pid={dead_pid}\nstarted={now}\nday=1\n"),
    )
    .unwrap();

    let out = p.pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}\n{err}", stdout(&out));
    assert!(err.contains("uncommitted changes"), "{err}");
    for file in ["src/greet.sh", "src/draft.sh", "README.md"] {
        assert!(err.contains(file), "{file} not named: {err}");
    }
    assert!(!err.contains("notes.txt"), "{err}");
    assert!(err.contains("git stash -u"), "{err}");
    assert!(
        !err.contains("another pace run"),
        "the stale lock was taken over: {err}"
    );
    assert!(!p.exists(".pace/pipeline.lock"), "the taken-over lock is released");
    // Nothing touched: same HEAD, the person's files as they were, no day directory.
    assert_eq!(p.git(&["rev-parse", "HEAD"]), head);
    assert_eq!(p.read("src/greet.sh"), "#!/bin/sh\necho 'work in progress'\n");
    assert_eq!(p.read("README.md"), readme);
    assert!(p.exists("src/draft.sh") && p.exists("notes.txt"));
    assert!(!p.exists(".pace/day-1"));
    assert_eq!(llm.requests.lock().unwrap().len(), 0);
    report(
        "git dirty work tree at start",
        out.status.code(),
        "refused before writing anything; files named, commit/stash hint; changes untouched",
    );
    report(
        "git stale lock of a killed run",
        out.status.code(),
        "lock with a dead pid taken over (the run went on to the work-tree check) and released",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_run_is_refused_with_exit_4_while_the_first_ships() {
    let held = Arc::new(AtomicBool::new(false));
    let inner = scripts::greeter(Options::default());
    let flag = held.clone();
    let script: Script = Arc::new(move |turn: &Turn| {
        let reply = inner(turn);
        if turn.agent == "PRIME" && !flag.swap(true, Ordering::SeqCst) {
            return Reply::Delayed(Duration::from_secs(6), Box::new(reply));
        }
        reply
    });
    let (p, llm) = greeter(script).await;
    let first = spawn_pace(&p, &["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]);
    let first_pid = first.id();
    wait_until("PRIME's call", || llm.calls_of("PRIME") >= 1).await;
    let second = p.pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]).await;
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(4), "{}\n{err}", stdout(&second));
    assert!(err.contains("another pace run holds"), "{err}");
    assert!(err.contains(".pace/pipeline.lock"), "{err}");
    assert!(err.contains(&format!("pid={first_pid}")), "{err}");
    assert_eq!(llm.calls_of("PRIME"), 1, "the second run made no call");
    let out = wait_output(first).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(run_json(&p, 1)["decision"], "SHIP");
    assert!(!p.exists(".pace/pipeline.lock"));
    report(
        "git concurrent run on the same repository",
        second.status.code(),
        "second run refused naming .pace/pipeline.lock and the holder's pid; the first shipped (exit 0)",
    );
}

// ----------------------------------------------------------------------- platform

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_after_the_mr_was_created_does_not_create_a_second_one() {
    let (p, _llm) = greeter(scripts::greeter(Options::default())).await;
    set_platform(&p, "gitlab");
    let gitlab = FakeGitlab::start(GITLAB_TOKEN, "glpat-unused-0000").await;
    gitlab.state.lock().unwrap().lose_create_answer = 1;
    let env = gitlab_env(&gitlab.url());
    let out = p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let mrs = gitlab.merge_requests();
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    assert_eq!(gitlab.count("POST", "/merge_requests"), 1, "no second POST");
    assert!(gitlab.notes().is_empty(), "{:?}", gitlab.notes());
    let url = run_json(&p, 1)["mr_url"].as_str().unwrap().to_string();
    assert!(url.ends_with("/group/proj/-/merge_requests/1"), "{url}");
    assert!(stdout(&out).contains(&url), "{}", stdout(&out));
    report(
        "platform MR created but the answer lost",
        out.status.code(),
        "connection dropped after creation: re-found before a retry, exactly one MR, its URL reported",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_after_the_issue_was_created_does_not_create_a_second_one() {
    // SENTINEL always holds and there are no retries: the day escalates.
    let inner = scripts::greeter(Options::default());
    let script: Script = Arc::new(move |turn: &Turn| match turn.agent.as_str() {
        "SENTINEL" => Reply::Text(scripts::review_yaml("SENTINEL", "HOLD", None)),
        _ => inner(turn),
    });
    let (p, _llm) = greeter(script).await;
    let config = p
        .read("pace.config.yaml")
        .replace("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    set_platform(&p, "gitlab");
    let gitlab = FakeGitlab::start(GITLAB_TOKEN, "glpat-unused-0000").await;
    gitlab.state.lock().unwrap().lose_create_answer = 1;
    let env = gitlab_env(&gitlab.url());
    let out = p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(gitlab.issues().len(), 1, "{:?}", gitlab.issues());
    assert_eq!(gitlab.count("POST", "/issues"), 1, "no second POST");
    let url = run_json(&p, 1)["issue_url"].as_str().unwrap().to_string();
    assert!(url.ends_with("/group/proj/-/issues/1"), "{url}");
    report(
        "platform issue created but the answer lost",
        out.status.code(),
        "HOLD escalation: connection dropped after creation, re-found, exactly one issue, its URL in run.json",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_a_503_burst_on_pull_request_creation_are_retried() {
    let (p, _llm) = greeter(scripts::greeter(Options::default())).await;
    set_platform(&p, "bitbucket");
    let bb = FakeBitbucket::start("acme", "greeter", &format!("Bearer {BB_TOKEN}"), None).await;
    bb.state
        .lock()
        .unwrap()
        .pr_create_errors
        .extend([(429, Some("1")), (503, None), (503, None)]);
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = bare_dir.path().join("greeter.git");
    let ok = Command::new("git")
        .args(["init", "-q", "--bare", bare.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(ok.success());
    let api = bb.api_url();
    let git_url = format!("file://{}", bare.display());
    let env = [
        ("ANTHROPIC_API_KEY", KEY),
        ("BITBUCKET_WORKSPACE", "acme"),
        ("BITBUCKET_REPO_SLUG", "greeter"),
        ("BITBUCKET_API_URL", api.as_str()),
        ("PACE_BITBUCKET_GIT_URL", git_url.as_str()),
        ("BITBUCKET_ACCESS_TOKEN", BB_TOKEN),
    ];
    let started = std::time::Instant::now();
    let out = p.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let posts = bb
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.url.ends_with("/pullrequests"))
        .count();
    assert_eq!(posts, 4, "429, 503, 503, then 201");
    assert_eq!(bb.state.lock().unwrap().pull_requests.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "retry-after: 1 honoured");
    assert!(
        run_json(&p, 1)["mr_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/pull-requests/1"))
    );
    report(
        "platform 429 and 503 burst on PR creation",
        out.status.code(),
        "Bitbucket: 429 retry-after 1, 503, 503, then created: one PR, 4 POSTs",
    );
}

// ------------------------------------------------------------------------ process

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Prime,
    Forge,
    Gate,
    Reviews,
    Scribe,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Self::Prime => "PRIME",
            Self::Forge => "FORGE",
            Self::Gate => "GATE",
            Self::Reviews => "reviews",
            Self::Scribe => "SCRIBE",
        }
    }

    /// Whether `turn` is the call to hold for this stage.
    fn holds(self, turn: &Turn) -> bool {
        match self {
            Self::Prime => turn.agent == "PRIME",
            Self::Forge => turn.agent == "FORGE" && turn.call == 3,
            Self::Gate => turn.agent == "GATE",
            Self::Reviews => turn.agent == "SENTINEL",
            // The documentation update after SHIP (call 1 generates the context).
            Self::Scribe => turn.agent == "SCRIBE" && turn.call > 1 && !turn.first_user_text().contains("Generate"),
        }
    }
}

/// The signal arrives while `stage` waits for the model; then a plain re-run ships.
async fn signal_then_resume(stage: Stage, signal: &str, expected: i32) {
    let held = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(AtomicBool::new(false));
    let inner = scripts::greeter(Options::default());
    let (flag, seen) = (held.clone(), arrived.clone());
    let script: Script = Arc::new(move |turn: &Turn| {
        let reply = inner(turn);
        if stage.holds(turn) && !flag.swap(true, Ordering::SeqCst) {
            seen.store(true, Ordering::SeqCst);
            return Reply::Delayed(Duration::from_secs(120), Box::new(reply));
        }
        reply
    });
    let (p, _llm) = greeter(script).await;
    let child = spawn_pace(&p, &["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]);
    let pid = child.id();
    wait_until(stage.name(), || arrived.load(Ordering::SeqCst)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    let started = std::time::Instant::now();
    let out = wait_output(child).await;
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(expected), "{text}");
    assert!(started.elapsed() < Duration::from_secs(30), "stopped promptly");
    let sig = format!("SIG{signal}");
    let run = run_json(&p, 1);
    assert_eq!(run["decision"], "ERROR", "{run}");
    assert_eq!(run["exit_code"].as_i64(), Some(i64::from(expected)), "{run}");
    assert!(run["reason"].as_str().unwrap_or_default().contains(&sig), "{run}");
    assert!(temporary_files(&p).is_empty(), "{:?}", temporary_files(&p));
    assert!(!p.exists(".pace/pipeline.lock"));
    let run_id = run["run_id"].as_str().unwrap().to_string();
    assert_eq!(containers_of(&run_id), "", "containers left behind");
    // Everything is committed: nothing a CI runner would throw away.
    assert_eq!(
        p.git(&["status", "--porcelain", "--", "src", "tests", ".pace", "PROGRESS.md"]),
        ""
    );
    assert!(
        p.git(&["log", "-1", "--format=%s"]).contains("ERROR — artifacts"),
        "{}",
        p.git(&["log", "-3", "--format=%s"])
    );

    // A plain re-run continues and ships.
    let again = p.pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]).await;
    assert_eq!(again.status.code(), Some(0), "{}\n{}", stdout(&again), stderr(&again));
    assert_eq!(run_json(&p, 1)["decision"], "SHIP");
    assert_eq!(p.read("src/greet.sh"), scripts::GREET_OK);
    report(
        &format!("process {sig} during {}", stage.name()),
        out.status.code(),
        "run.json ERROR with the signal, no temp files, no containers, all committed; plain re-run shipped (exit 0)",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_prime_then_a_rerun_ships() {
    signal_then_resume(Stage::Prime, "INT", 130).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_forge_then_a_rerun_ships() {
    signal_then_resume(Stage::Forge, "INT", 130).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_gate_then_a_rerun_ships() {
    signal_then_resume(Stage::Gate, "TERM", 143).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_the_reviews_then_a_rerun_ships() {
    signal_then_resume(Stage::Reviews, "INT", 130).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_scribe_then_a_rerun_ships() {
    signal_then_resume(Stage::Scribe, "TERM", 143).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_push_then_a_rerun_ships() {
    let day = Scenario::greeter().gitlab().start().await;
    let (p, gitlab) = (&day.project, day.gitlab());
    gitlab.state.lock().unwrap().hold_push = true;
    let child = day.spawn(&["--day", "1"]);
    let pid = child.id();
    let g = gitlab.clone();
    wait_until("the push", move || {
        g.calls()
            .iter()
            .any(|c| c.path.ends_with("git-receive-pack") && c.method == "POST")
    })
    .await;
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    // The push is held until released below: pace has to stop it, not wait for it (a
    // cancelled CI job gets SIGKILL after its grace period, and must not publish meanwhile).
    let out = tokio::time::timeout(Duration::from_secs(120), wait_output(child))
        .await
        .expect("pace waited for the held push instead of stopping it");
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(143), "{text}");
    let run = day.run_json(1);
    assert_eq!(run["decision"], "ERROR", "{run}");
    assert!(run["reason"].as_str().unwrap_or_default().contains("SIGTERM"), "{run}");
    assert!(temporary_files(p).is_empty());
    assert_eq!(day.uncommitted(), "");
    assert!(gitlab.merge_requests().is_empty(), "nothing published");
    gitlab.state.lock().unwrap().hold_push = false;
    day.pace(&["--day", "1"]).await.expect_exit(0);
    assert_eq!(gitlab.merge_requests().len(), 1);
    assert_eq!(
        gitlab.pushed("sprint/demo").as_deref(),
        Some(p.git(&["rev-parse", "HEAD"]).trim())
    );
    report(
        "process SIGTERM during the push",
        out.status.code(),
        "run.json ERROR with the signal, all committed, nothing published; plain re-run pushed and opened the MR (exit 0)",
    );
}
