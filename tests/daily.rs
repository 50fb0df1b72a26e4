//! Daily use from CI: `--day next` across a sprint, the refusal to run on the default
//! branch (each way pace knows it), and the dotenv report on every exit path.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::fake_llm::{Reply, Script, Turn};
use crate::support::project::{Project, git, stderr, stdout};
use crate::support::scenario::{Day, Scenario};
use crate::support::scripts::{self, Options};

/// A four-day plan without a human gate (the example's has three, the last a review).
const PLAN: &str = "pace_version: \"1.0\"\nproduct: Greeter\nstart_date: \"2026-11-23\"\ndays:\n  - day: 1\n    target: Add a `greet` command\n  - day: 2\n    target: Greet by name\n  - day: 3\n    target: Greet the World by default\n  - day: 4\n    target: Document the greeter\n";

/// The greeter with a four-day sprint; SENTINEL holds while `hold` is set.
async fn sprint(hold: Arc<AtomicBool>) -> Day {
    let inner = scripts::greeter(Options::default());
    let script: Script = Arc::new(move |turn: &Turn| {
        if turn.agent == "SENTINEL" && hold.load(Ordering::SeqCst) {
            return Reply::Text(scripts::review_yaml("SENTINEL", "HOLD", None));
        }
        inner(turn)
    });
    let day = Scenario::greeter()
        .script(script)
        .edit_config("  duration_days: 3", "  duration_days: 4")
        .edit_config("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0")
        .start()
        .await;
    std::fs::write(day.project.path("plan.yaml"), PLAN).unwrap();
    day.project.git(&["commit", "-q", "-am", "a four-day plan"]);
    day
}

fn dotenv(p: &Project) -> String {
    p.read("pace-env.env")
}

#[tokio::test(flavor = "multi_thread")]
async fn next_runs_a_sprint_ship_ship_hold_retry_ship_complete() {
    require_docker!();
    let hold = Arc::new(AtomicBool::new(false));
    let day = sprint(hold.clone()).await;
    let p = &day.project;

    // Day 1: the first day not shipped. `GITLAB_CI=false` is not a GitLab job.
    let ran = day
        .pace_with(&["--day", "next"], &[("GITLAB_CI", "false")])
        .await
        .expect_exit(0);
    assert!(
        ran.stderr()
            .contains("`--day next` chose day 1 (no day has shipped yet); `--retry` was not passed"),
        "{}",
        ran.text()
    );
    assert!(!ran.stderr().contains("section_start"), "{}", ran.text());
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    assert_eq!(p.read(".pace/junit.xml"), day.artifact(1, "gate/junit.xml"));

    // Day 2 through `PACE_DAY=next`, in a GitLab job: sections whose bodies are the
    // agents' detail, not their header again.
    let ran = day
        .pace_with(&[], &[("PACE_DAY", "next"), ("GITLAB_CI", "true")])
        .await
        .expect_exit(0);
    assert!(
        ran.stderr().contains("chose day 2 (day 1 has shipped)"),
        "{}",
        ran.text()
    );
    assert_eq!(day.run_json(2)["decision"], "SHIP");
    let log = ran.stderr();
    assert!(log.contains("section_start:"), "{log}");
    assert!(log.contains("\n    suite `sh tests/run.sh` exited 0: "), "{log}");
    assert!(!log.contains("GATE: SHIP after"), "{log}");
    assert!(dotenv(p).contains("PACE_DAY=2\nPACE_DECISION=SHIP\nPACE_EXIT_CODE=0\n"));

    // Day 3 holds (no retries left): escalated, exit 1.
    hold.store(true, Ordering::SeqCst);
    day.pace(&["--day", "next"]).await.expect_exit(1);
    assert_eq!(day.run_json(3)["decision"], "HOLD");
    assert!(p.exists(".pace/day-3/escalation.md"));

    // `next` without `--retry`: the held day does not run again; exit 1 says where its
    // escalation is, and no token is spent.
    let calls = day.llm.requests.lock().unwrap().len();
    let ran = day.pace(&["--day", "next"]).await.expect_exit(1);
    let err = ran.stderr();
    assert!(err.contains("day 3 holds (attempt 1)"), "{}", ran.text());
    assert!(
        err.contains("its escalation: ") && err.contains(".pace/day-3/escalation.md"),
        "{}",
        ran.text()
    );
    assert!(
        err.contains("hint: push a fix") && err.contains("--retry"),
        "{}",
        ran.text()
    );
    assert_eq!(day.llm.requests.lock().unwrap().len(), calls, "no token spent");
    assert!(dotenv(p).contains("PACE_DAY=3\nPACE_DECISION=HOLD\nPACE_EXIT_CODE=1\n"));
    assert!(dotenv(p).contains("PACE_COST_USD=0.0000"));

    // A human fixes it; `--day next --retry` runs day 3 again and it ships; the stale
    // escalation does not stay beside the merge request.
    p.git(&["commit", "-q", "--allow-empty", "-m", "remove the credential by hand"]);
    hold.store(false, Ordering::SeqCst);
    let ran = day.pace(&["--day", "next", "--retry"]).await.expect_exit(0);
    assert!(
        ran.stderr()
            .contains("chose day 3 (days 1 to 2 have shipped); it holds and `--retry` was passed"),
        "{}",
        ran.text()
    );
    assert_eq!(day.run_json(3)["decision"], "SHIP");
    assert_eq!(day.run_json(3)["attempt"], 2);
    assert!(p.exists(".pace/day-3/merge-request.md"));
    assert!(
        !p.exists(".pace/day-3/escalation.md"),
        "a stale escalation beside the merge request"
    );

    // Day 4, then the sprint is complete: exit 0, nothing runs.
    day.pace(&["--day", "next"]).await.expect_exit(0);
    assert_eq!(day.run_json(4)["decision"], "SHIP");
    assert_eq!(p.read(".pace/junit.xml"), day.artifact(4, "gate/junit.xml"));
    let calls = day.llm.requests.lock().unwrap().len();
    let ran = day.pace(&["--day", "next"]).await.expect_exit(0);
    assert!(ran.stdout().contains("sprint complete"), "{}", ran.text());
    assert_eq!(day.llm.requests.lock().unwrap().len(), calls);
    assert!(dotenv(p).contains("PACE_DAY=\nPACE_DECISION=COMPLETE\nPACE_EXIT_CODE=0\n"));
    // Every day's record is committed (what `next` reads in a fresh clone).
    assert!(day.uncommitted().trim().is_empty(), "{}", day.uncommitted());
}

// --- the default branch ------------------------------------------------------------------

/// `pace args` in `dir` with only PATH, HOME, `NO_COLOR` and `env`.
fn pace_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pace"));
    cmd.args(args).current_dir(dir).env_clear();
    for key in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("NO_COLOR", "1").envs(env.iter().copied());
    cmd.output().unwrap()
}

#[track_caller]
fn assert_refused(out: &std::process::Output, source: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{}{err}", stdout(out));
    assert!(
        err.contains("the day would run on `sprint/demo`, the default/target branch") && err.contains(source),
        "{err}"
    );
    assert!(err.contains("platform.allow_default_branch: true"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_on_the_default_branch_stops_with_exit_2_each_way_it_is_known() {
    let key = [("ANTHROPIC_API_KEY", "sk-ant-test-DAILY-0001")];
    // GitLab CI's `CI_DEFAULT_BRANCH`.
    let p = Project::greeter();
    let out = p
        .pace(&["--day", "1"], &[key[0], ("CI_DEFAULT_BRANCH", "sprint/demo")])
        .await;
    assert_refused(&out, "`CI_DEFAULT_BRANCH`");
    assert!(!p.exists(".pace/day-1"), "nothing recorded");
    assert!(p.read("pace-env.env").contains("PACE_EXIT_CODE=2"));
    // A feature of GitLab's: `CI_DEFAULT_BRANCH` names another branch, the day runs on.
    let out = p.pace(&["--day", "1"], &[("CI_DEFAULT_BRANCH", "main")]).await;
    assert!(!stderr(&out).contains("default/target branch"), "{}", stderr(&out));

    // `platform.target_branch` in the config.
    let config = p.read("pace.config.yaml").replace(
        "platform:\n  type: local",
        "platform:\n  type: local\n  target_branch: sprint/demo",
    );
    std::fs::write(p.path("pace.config.yaml"), &config).unwrap();
    p.git(&["commit", "-q", "-am", "target branch"]);
    assert_refused(&p.pace(&["--day", "1"], &key).await, "`platform.target_branch`");

    // ... unless `platform.allow_default_branch: true`: the day goes on (here to the
    // LLM check: the example's cassette is not in the test project).
    let allowed = config.replace(
        "  target_branch: sprint/demo",
        "  target_branch: sprint/demo\n  allow_default_branch: true",
    );
    std::fs::write(p.path("pace.config.yaml"), allowed).unwrap();
    p.git(&["commit", "-q", "-am", "allowed"]);
    let out = p.pace(&["--day", "1"], &[("CI_DEFAULT_BRANCH", "sprint/demo")]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("default/target branch"), "{}", stderr(&out));
    assert!(stderr(&out).contains("cassette"), "{}", stderr(&out));

    // `origin/HEAD` of a local clone.
    let q = Project::greeter();
    q.git(&["update-ref", "refs/remotes/origin/sprint/demo", "HEAD"]);
    q.git(&[
        "symbolic-ref",
        "refs/remotes/origin/HEAD",
        "refs/remotes/origin/sprint/demo",
    ]);
    assert_refused(&q.pace(&["--day", "1"], &key).await, "`origin/HEAD`");
}

/// Bitbucket Pipelines has no variable for the default branch; its clone
/// (`git clone --branch B --depth 50`) records `origin/HEAD` when B is the default branch.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipelines_style_clone_of_the_default_branch_is_refused_and_a_sprint_branch_is_not() {
    let p = Project::greeter();
    p.git(&["branch", "sprint/2"]);
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("greeter.git");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            p.root.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let url = format!("file://{}", bare.display());
    let key = [("ANTHROPIC_API_KEY", "sk-ant-test-DAILY-0001")];

    let on_default = dir.path().join("default");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--branch",
            "sprint/demo",
            "--depth",
            "50",
            &url,
            on_default.to_str().unwrap(),
        ],
    );
    assert_refused(&pace_in(&on_default, &["--day", "1"], &key), "`origin/HEAD`");

    let on_sprint = dir.path().join("sprint");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--branch",
            "sprint/2",
            "--depth",
            "50",
            &url,
            on_sprint.to_str().unwrap(),
        ],
    );
    let out = pace_in(&on_sprint, &["--day", "1"], &[]);
    assert!(!stderr(&out).contains("default/target branch"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cassette"),
        "went on to the LLM check: {}",
        stderr(&out)
    );
}

// --- the dotenv report and the error, on every exit path ---------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn every_exit_writes_the_dotenv_report_and_prints_its_error_once() {
    let key = ("ANTHROPIC_API_KEY", "sk-ant-test-DAILY-0001");
    // 2: a broken config.
    let p = Project::greeter();
    let config = p
        .read("pace.config.yaml")
        .replace("sprint:\n  duration_days: 3", "sprint:\n  duration_days: three");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "broken"]);
    std::fs::write(p.path("pace-env.env"), "PACE_DAY=7\nPACE_DECISION=SHIP\n").unwrap();
    let out = p.pace(&["--day", "1"], &[key]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        p.read("pace-env.env"),
        "PACE_DAY=1\nPACE_DECISION=ERROR\nPACE_EXIT_CODE=2\nPACE_COMMIT=\nPACE_MR_URL=\nPACE_ISSUE_URL=\nPACE_COST_USD=0.0000\n",
        "a stale report is replaced"
    );

    // 3: a day outside the plan.
    let p = Project::greeter();
    let out = p.pace(&["--day", "9"], &[key]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        p.read("pace-env.env")
            .starts_with("PACE_DAY=9\nPACE_DECISION=ERROR\nPACE_EXIT_CODE=3\n")
    );

    // 4: no Docker daemon, after the day directory exists; the error is printed once, on
    // stderr only.
    let day = Scenario::greeter().start().await;
    let p = &day.project;
    let out = day
        .pace_with(&["--day", "1"], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")])
        .await
        .0;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        p.read("pace-env.env")
            .starts_with("PACE_DAY=1\nPACE_DECISION=ERROR\nPACE_EXIT_CODE=4\n")
    );
    let both = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(both.matches("cannot connect to the Docker daemon").count(), 1, "{both}");
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}
