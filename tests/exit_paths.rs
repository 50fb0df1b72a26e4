//! What users see on every exit path of the `pace` binary, pinned as insta snapshots:
//! the exit code and the rendered stderr (`error: ...`, `hint: ...`, warnings, progress).
//! Every wording change to an error or a hint shows in review as a snapshot diff.
//!
//! Temp paths, ports, durations, run ids, SHAs, costs and token counts vary between runs
//! and are filtered; the parallel reviewers' progress lines (GATE ∥ SENTINEL ∥ CONDUIT)
//! finish in any order, so progress lines are sorted within each block of them.
//!
//! Accept new snapshots with `INSTA_UPDATE=always cargo test --test all exit_paths::`
//! (or `cargo insta review`), then read the `.snap` files.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::support::docker::busybox_image;
use crate::support::fake_bitbucket::FakeBitbucket;
use crate::support::fake_gitlab::{FakeGitlab, PROJECT_PATH};
use crate::support::fake_llm::{FakeLlm, Reply, Turn};
use crate::support::project::{Project, git, stderr, stdout};
use crate::support::scripts::{self, Options};

const KEY: &str = "sk-ant-test-EXITPATHS-0001";
const GITLAB_TOKEN: &str = "glpat-EXITPATHS-5678abcd";
const GITLAB_READONLY: &str = "glpat-READONLY-EXITPATHS";
const BB_TOKEN: &str = "bbat-EXITPATHS-SECRET-0001";
const BB_EMAIL: &str = "ada@example.com";
const BB_API_TOKEN: &str = "ATATT-EXITPATHS-SECRET-0003";

/// Replacements applied in order: the more specific patterns (run ids, which contain hex)
/// come before the generic ones (SHAs, numbers with units).
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
        // Temp directories (tempfile's `.tmpXXXXXX`), and what follows them in the path.
        (r"(/private)?/[^\s`']*/\.tmp[A-Za-z0-9_]+", "[TMP]"),
        (r"\d{8}T\d{6}-[0-9a-f]{8}-\d+", "[RUN_ID]"),
        (r"(127\.0\.0\.1|localhost):\d+", "$1:[PORT]"),
        (r"\b[0-9a-f]{7,40}\b", "[SHA]"),
        (r"\$\d+(\.\d+)?", "$$[COST]"),
        // Token counts follow the prompts' sizes, which other changes move.
        (r"\b\d+ in / \d+ out\b", "[N] in / [N] out"),
        (r"\bused \d+ of \d+ tokens\b", "used [N] of [N] tokens"),
        // Retry back-off has jitter.
        (r"\bdelay_ms=\d+", "delay_ms=[N]"),
        (r"\b\d+(\.\d+)?\s?(ms|s|min)\b", "[DURATION]"),
        (r"\bpid \d+\b", "pid [PID]"),
    ]
}

/// Sorts each run of consecutive progress lines of the parallel agents, so the snapshot
/// does not depend on who started or finished first.
fn stable_order(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    let flush = |block: &mut Vec<&str>, out: &mut Vec<String>| {
        block.sort_unstable();
        out.extend(block.drain(..).map(str::to_string));
    };
    for line in text.lines() {
        if is_parallel_progress(line) {
            block.push(line);
        } else {
            flush(&mut block, &mut out);
            out.push(line.to_string());
        }
    }
    flush(&mut block, &mut out);
    out.join("\n")
}

fn is_parallel_progress(line: &str) -> bool {
    line.starts_with("  ")
        && ["GATE", "SENTINEL", "CONDUIT"]
            .iter()
            .any(|a| line.contains(&format!(" {a} ")))
}

/// The exit code and the stderr of `out`, filtered, as one snapshot named `name`.
#[track_caller]
pub(crate) fn assert_exit(name: &str, out: &Output, expected: i32) {
    assert_eq!(
        out.status.code(),
        Some(expected),
        "{name}\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    let text = format!("exit code: {expected}\n--- stderr ---\n{}", stable_order(&stderr(out)));
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    for (pattern, replacement) in filters() {
        settings.add_filter(pattern, replacement);
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn env_with_key() -> Vec<(&'static str, &'static str)> {
    vec![("ANTHROPIC_API_KEY", KEY)]
}

/// The greeter pointed at a fake Anthropic server playing `script`, committed.
async fn greeter(script: crate::support::fake_llm::Script, extra_config: &str) -> (Project, FakeLlm) {
    let fake = FakeLlm::start(script, Some(KEY)).await;
    let p = Project::greeter();
    p.use_fake_llm(&fake.url(), &busybox_image(), extra_config);
    (p, fake)
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

// --- 2: configuration ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn config_no_config_file() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    let out = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["--day", "1"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_exit("exit_2_no_config_file", &out, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_bad_field() {
    let p = Project::greeter();
    let config = p.read("pace.config.yaml").replace(
        "sprint:\n  duration_days: 3",
        "sprint:\n  duration_days: three\n  lenght: 3",
    );
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "a broken config"]);
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_exit("exit_2_bad_field", &out, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn config_dirty_work_tree() {
    let (p, llm) = greeter(scripts::greeter_day1(), "").await;
    std::fs::write(p.path("src/greet.sh"), "#!/bin/sh\necho 'work in progress'\n").unwrap();
    std::fs::write(p.path("src/draft.sh"), "echo draft\n").unwrap();
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_exit("exit_2_dirty_work_tree", &out, 2);
    assert_eq!(llm.requests.lock().unwrap().len(), 0, "no token spent");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_link_in_pace_dir() {
    let (p, llm) = greeter(scripts::greeter_day1(), "").await;
    std::fs::create_dir_all(p.path(".pace")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p.path(".pace/day-1")).unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "a link"]);
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_exit("exit_2_link_in_pace_dir", &out, 2);
    assert_eq!(llm.requests.lock().unwrap().len(), 0, "no token spent");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_missing_llm_key() {
    let (p, llm) = greeter(scripts::greeter_day1(), "").await;
    let out = p.pace(&["--day", "1"], &[]).await;
    assert_exit("exit_2_missing_llm_key", &out, 2);
    assert_eq!(llm.requests.lock().unwrap().len(), 0, "no token spent");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_no_day_given() {
    let p = Project::greeter();
    let out = p.pace(&[], &[]).await;
    assert_exit("exit_2_no_day_given", &out, 2);
}

// --- 3: plan ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn plan_day_beyond_the_sprint() {
    let p = Project::greeter();
    let out = p.pace(&["--day", "9"], &[]).await;
    assert_exit("exit_3_day_beyond_the_sprint", &out, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_day_missing_from_the_plan() {
    let p = Project::greeter();
    let plan = p.read("plan.yaml");
    let cut = plan.find("  - day: 2").unwrap();
    let end = plan.find("  - day: 3").unwrap();
    std::fs::write(p.path("plan.yaml"), format!("{}{}", &plan[..cut], &plan[end..])).unwrap();
    let out = p.pace(&["--day", "2"], &[]).await;
    assert_exit("exit_3_day_missing_from_the_plan", &out, 3);
}

// --- 4: infrastructure -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn infra_docker_down() {
    let (p, llm) = greeter(scripts::greeter_day1(), "").await;
    let mut env = env_with_key();
    env.push(("DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    let out = p.pace(&["--day", "1"], &env).await;
    assert_exit("exit_4_docker_down", &out, 4);
    assert_eq!(llm.requests.lock().unwrap().len(), 0, "no token spent");
}

#[tokio::test(flavor = "multi_thread")]
async fn infra_pace_gate_docker_down() {
    let p = Project::greeter();
    let out = p
        .pace_gate()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_exit("exit_4_pace_gate_docker_down", &out, 4);
}

/// Sets `sandbox.user` to a user the image does not have: the daemon then refuses to
/// start any container (after the image check passed), inside FORGE's `run` and GATE.
fn with_unknown_sandbox_user(p: &Project) {
    let config = p
        .read("pace.config.yaml")
        .replace("  caches: false\n", "  caches: false\n  user: nosuchuser\n");
    assert!(config.contains("user: nosuchuser"));
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "an unknown sandbox user"]);
}

/// FORGE's command session cannot start (before FORGE's first call).
#[tokio::test(flavor = "multi_thread")]
async fn infra_docker_refuses_forge_sandbox() {
    require_docker!();
    let (p, llm) = greeter(scripts::greeter_day1(), "").await;
    with_unknown_sandbox_user(&p);
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_exit("exit_4_docker_refuses_forge_sandbox", &out, 4);
    assert_eq!(llm.calls_of("PRIME"), 1, "PRIME ran, the day stopped in FORGE");
}

#[tokio::test(flavor = "multi_thread")]
async fn infra_docker_refuses_pace_gate() {
    require_docker!();
    let (p, _llm) = greeter(scripts::greeter_day1(), "").await;
    with_unknown_sandbox_user(&p);
    let out = p.pace_gate().output().unwrap();
    assert_exit("exit_4_docker_refuses_pace_gate", &out, 4);
    assert!(
        stderr(&out).contains("\nhint: the Docker daemon refused the operation"),
        "the Docker hint reaches `pace gate`: {}",
        stderr(&out)
    );
    // The container that could not start is gone when pace exits (a removal left to the
    // guard's drop would run in the background and be lost with the process).
    let err = stderr(&out);
    let name = err
        .split("failed to start container `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the error names the container");
    let inspect = std::process::Command::new("docker")
        .args(["container", "inspect", name])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "{name} was left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn infra_llm_overloaded() {
    require_docker!();
    let script = Arc::new(|_: &Turn| Reply::Error {
        status: 529,
        kind: "overloaded_error",
        message: "Overloaded",
        headers: vec![("retry-after", "0")],
    });
    let (p, llm) = greeter(script, "").await;
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_exit("exit_4_llm_overloaded", &out, 4);
    let calls = llm.requests.lock().unwrap().len();
    assert_eq!(calls, 3, "the first call, retried twice (`llm.max_retries: 2`)");
}

#[tokio::test(flavor = "multi_thread")]
async fn infra_llm_connection_refused() {
    require_docker!();
    let p = Project::greeter();
    p.use_fake_llm(&format!("http://127.0.0.1:{}", closed_port()), &busybox_image(), "");
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_exit("exit_4_llm_connection_refused", &out, 4);
}

/// The greeter on GitLab (the fake), ready to run day 1 with [`gitlab_env`].
async fn gitlab_greeter() -> (Project, FakeLlm, FakeGitlab) {
    let (p, llm) = greeter(scripts::greeter_day1(), "").await;
    let gitlab = FakeGitlab::start(GITLAB_TOKEN, GITLAB_READONLY).await;
    let config = p
        .read("pace.config.yaml")
        .replace("platform:\n  type: local", "platform:\n  type: gitlab");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "gitlab platform"]);
    (p, llm, gitlab)
}

fn gitlab_env(gitlab: &FakeGitlab) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_API_KEY", KEY.into()),
        ("GITLAB_TOKEN", GITLAB_TOKEN.into()),
        ("GITLAB_PROJECT", PROJECT_PATH.into()),
        ("GITLAB_URL", gitlab.url()),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn infra_gitlab_push_refused() {
    require_docker!();
    let (p, _llm, gitlab) = gitlab_greeter().await;
    gitlab.state.lock().unwrap().refuse_push = true;
    let env = gitlab_env(&gitlab);
    let out = p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_exit("exit_4_gitlab_push_refused", &out, 4);
    assert_eq!(gitlab.pushed("sprint/demo"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn infra_bitbucket_push_refused() {
    require_docker!();
    let s = bitbucket_greeter(false).await;
    let hook = s.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'branch sprint/demo is protected: pushes need a pull request' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = s.env(&[("BITBUCKET_ACCESS_TOKEN", BB_TOKEN)]);
    let out = s.p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_exit("exit_4_bitbucket_push_refused", &out, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn infra_bitbucket_403_on_the_pull_request() {
    require_docker!();
    let s = bitbucket_greeter(true).await;
    let env = s.env(&[("BITBUCKET_EMAIL", BB_EMAIL), ("BITBUCKET_API_TOKEN", BB_API_TOKEN)]);
    let out = s.p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_exit("exit_4_bitbucket_403", &out, 4);
    assert!(s.bb.state.lock().unwrap().pull_requests.is_empty());
}

struct Bitbucket {
    p: Project,
    _llm: FakeLlm,
    bb: FakeBitbucket,
    _bare_dir: tempfile::TempDir,
    bare: std::path::PathBuf,
}

impl Bitbucket {
    fn env(&self, extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("ANTHROPIC_API_KEY", KEY.to_string()),
            ("BITBUCKET_WORKSPACE", "acme".into()),
            ("BITBUCKET_REPO_SLUG", "greeter".into()),
            ("BITBUCKET_API_URL", self.bb.api_url()),
            ("PACE_BITBUCKET_GIT_URL", format!("file://{}", self.bare.display())),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    }
}

/// The greeter on Bitbucket (the fake), pushing into a fresh bare repository;
/// `read_only` makes the API-token credential read-only (403 on writes).
async fn bitbucket_greeter(read_only: bool) -> Bitbucket {
    let (p, llm) = greeter(scripts::greeter_day1(), "").await;
    let basic = format!(
        "Basic {}",
        pace::platform::bitbucket::base64(format!("{BB_EMAIL}:{BB_API_TOKEN}").as_bytes())
    );
    let bb = FakeBitbucket::start(
        "acme",
        "greeter",
        &format!("Bearer {BB_TOKEN}"),
        read_only.then_some(basic.as_str()),
    )
    .await;
    let config = p
        .read("pace.config.yaml")
        .replace("platform:\n  type: local\n", "platform:\n  type: bitbucket\n");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "bitbucket"]);
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = bare_dir.path().join("greeter.git");
    git(bare_dir.path(), &["init", "-q", "--bare", bare.to_str().unwrap()]);
    Bitbucket {
        p,
        _llm: llm,
        bb,
        _bare_dir: bare_dir,
        bare,
    }
}

// --- 5: budget -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn budget_tokens_exhausted() {
    require_docker!();
    let (p, _llm) = greeter(scripts::greeter_day1(), "\nbudget:\n  max_tokens: 9000\n").await;
    let out = p.pace(&["--day", "1"], &env_with_key()).await;
    assert_exit("exit_5_budget_tokens", &out, 5);
}

// --- 130 / 143: signals ----------------------------------------------------------------

/// Day 1 with PRIME's first answer held back, stopped by `signal` while PRIME waits.
async fn stopped_by(signal: &str) -> Output {
    let inner = scripts::greeter(Options::default());
    let script = Arc::new(move |turn: &Turn| {
        if turn.agent == "PRIME" && turn.call == 1 {
            return Reply::Delayed(Duration::from_secs(120), Box::new(inner(turn)));
        }
        inner(turn)
    });
    let (p, llm) = greeter(script, "").await;
    let child = Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["--day", "1"])
        .current_dir(&p.root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(std::env::var("DOCKER_HOST").map(|h| ("DOCKER_HOST", h)))
        .env("NO_COLOR", "1")
        .env("ANTHROPIC_API_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if llm.calls_of("PRIME") >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(llm.calls_of("PRIME"), 1, "PRIME was never called");
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(p.read(".pace/day-1/run.json").contains(&format!("SIG{signal}")));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn signal_sigint() {
    require_docker!();
    let out = stopped_by("INT").await;
    assert_exit("exit_130_sigint", &out, 130);
}

#[tokio::test(flavor = "multi_thread")]
async fn signal_sigterm() {
    require_docker!();
    let out = stopped_by("TERM").await;
    assert_exit("exit_143_sigterm", &out, 143);
}
