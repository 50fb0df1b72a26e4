//! GitLab end to end: the real `pace` binary and git, a real Docker daemon for the day,
//! the fake Anthropic server, and a fake GitLab (REST v4 + `git http-backend`) on
//! 127.0.0.1.

use std::sync::Arc;

use serde_json::Value;

use crate::support::docker::busybox_image;
use crate::support::fake_gitlab::{DEFAULT_BRANCH, FakeGitlab, PROJECT_PATH};
use crate::support::fake_llm::{FakeLlm, Reply, Script, Turn};
use crate::support::project::{Project, stderr, stdout};
use crate::support::scripts::{self, Options};

const KEY: &str = "sk-ant-test-KEYVALUE-0042";
const TOKEN: &str = "glpat-GOODTOKEN-5678abcd";
const READONLY: &str = "glpat-READONLY-1234wxyz";
const JOB_TOKEN: &str = "glcbt-JOBTOKEN-9999";
const BRANCH: &str = "sprint/demo";

fn env(fake: &FakeGitlab) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_API_KEY", KEY.into()),
        ("GITLAB_TOKEN", TOKEN.into()),
        ("GITLAB_PROJECT", PROJECT_PATH.into()),
        ("GITLAB_URL", fake.url()),
        ("GITLAB_CI", "true".into()),
        ("CI_JOB_TOKEN", JOB_TOKEN.into()),
        ("CI_JOB_URL", "https://gitlab.example/group/proj/-/jobs/77".into()),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The greeter on `platform.type: gitlab`, with `extra` replacing text in the config.
async fn gitlab_project(script: Script, edits: &[(&str, &str)]) -> (Project, FakeLlm, FakeGitlab) {
    let llm = FakeLlm::start(script, Some(KEY)).await;
    let gitlab = FakeGitlab::start(TOKEN, READONLY).await;
    let project = Project::greeter();
    project.use_fake_llm(&llm.url(), &busybox_image(), "");
    let mut config = project
        .read("pace.config.yaml")
        .replace("platform:\n  type: local", "platform:\n  type: gitlab");
    for (from, to) in edits {
        assert!(config.contains(from), "{from} not in the config");
        config = config.replace(from, to);
    }
    std::fs::write(project.path("pace.config.yaml"), config).unwrap();
    project.git(&["commit", "-q", "-am", "gitlab platform"]);
    (project, llm, gitlab)
}

fn run_json(p: &Project, day: u32) -> Value {
    serde_json::from_str(&p.read(&format!(".pace/day-{day}/run.json"))).unwrap()
}

fn assert_no_secret(text: &str) {
    for secret in [KEY, TOKEN, JOB_TOKEN, &crate_base64_credential()] {
        assert!(!text.contains(secret), "secret {secret} leaked");
    }
}

fn crate_base64_credential() -> String {
    pace::platform::gitlab::base64(format!("oauth2:{TOKEN}").as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn ship_opens_one_merge_request_and_the_next_day_adds_a_note() {
    let (p, llm, gitlab) = gitlab_project(scripts::greeter(Options::default()), &[]).await;
    // The first creation answers 500: pace retries it.
    gitlab.state.lock().unwrap().fail_mr_create = 1;
    let env = env(&gitlab);
    let out = p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));

    let mrs = gitlab.merge_requests();
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    let mr = &mrs[0];
    assert_eq!(mr.source_branch, BRANCH);
    assert_eq!(mr.target_branch, DEFAULT_BRANCH, "the project's default branch");
    assert_eq!(mr.labels, vec!["pace"]);
    assert!(mr.title.starts_with("PACE Day 1: "), "{}", mr.title);
    assert!(mr.description.contains("Day 1 of the sprint shipped by PACE"));
    assert!(
        mr.description
            .contains("https://gitlab.example/group/proj/-/jobs/77/artifacts"),
        "{}",
        mr.description
    );
    assert_eq!(gitlab.count("POST", "/merge_requests"), 2, "500 then 201");
    let url = run_json(&p, 1)["mr_url"].as_str().unwrap().to_string();
    assert!(url.ends_with("/group/proj/-/merge_requests/1"), "{url}");
    assert!(p.read("pace-env.env").contains("PACE_MR_URL="));
    // The branch really reached the remote, artifacts commit included.
    assert_eq!(
        gitlab.pushed(BRANCH).as_deref(),
        Some(p.git(&["rev-parse", "HEAD"]).trim())
    );
    // GitLab job-log sections, green agents collapsed.
    let err = stderr(&out);
    assert!(err.contains("section_start:"), "{err}");
    assert!(err.contains("pace_forge_1[collapsed=true]"), "{err}");
    assert!(err.contains("section_end:"), "{err}");

    // Day 2 on the same branch: a note and a refreshed description, no second MR.
    let out = p.pace(&["--day", "2"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let mrs = gitlab.merge_requests();
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    assert!(
        mrs[0].description.contains("Day 2 of the sprint"),
        "{}",
        mrs[0].description
    );
    let notes = gitlab.notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!((notes[0].0.as_str(), notes[0].1), ("merge_requests", 1));
    assert!(notes[0].2.contains("Day 2 shipped"), "{}", notes[0].2);
    assert_eq!(gitlab.count("PUT", "/merge_requests/1"), 1);
    assert_eq!(run_json(&p, 2)["mr_url"].as_str(), Some(url.as_str()));
    assert_eq!(
        gitlab.pushed(BRANCH).as_deref(),
        Some(p.git(&["rev-parse", "HEAD"]).trim())
    );

    // Day 3 is a human gate: the review request lands on the same MR as a note.
    let out = p.pace(&["--day", "3"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(gitlab.merge_requests().len(), 1);
    let notes = gitlab.notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[1].2.contains("Review requested (Day 3)"), "{}", notes[1].2);

    // No secret in anything sent to GitLab (API and git), to the model, or written.
    assert_no_secret(&gitlab.all_bodies());
    assert_no_secret(&llm.all_request_text());
    assert_no_secret(&format!(
        "{}{}{}{}",
        p.all_artifacts_text(),
        stdout(&out),
        stderr(&out),
        p.git(&["log", "-p", "--all"])
    ));
}

/// SENTINEL always holds: every run of the day ends in HOLD (no retries).
fn always_hold() -> Script {
    let inner = scripts::greeter(Options::default());
    Arc::new(move |turn: &Turn| match turn.agent.as_str() {
        "SENTINEL" => Reply::Text(scripts::review_yaml("SENTINEL", "HOLD", None)),
        _ => inner(turn),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_opens_one_issue_and_a_rerun_adds_a_note() {
    let (p, llm, gitlab) = gitlab_project(
        always_hold(),
        &[("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0")],
    )
    .await;
    let env = env(&gitlab);
    let out = p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let issues = gitlab.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let issue = &issues[0];
    assert_eq!(issue.labels, vec!["pace-hold", "pace-day-1"]);
    assert!(issue.title.starts_with("[PACE HOLD] Day 1: "), "{}", issue.title);
    assert!(
        issue.description.contains("hard-coded credential"),
        "{}",
        issue.description
    );
    assert!(
        issue
            .description
            .contains("Job: https://gitlab.example/group/proj/-/jobs/77"),
        "{}",
        issue.description
    );
    assert!(issue.description.contains("RETRY=true"));
    assert!(gitlab.merge_requests().is_empty());
    let url = run_json(&p, 1)["issue_url"].as_str().unwrap().to_string();
    assert!(url.ends_with("/group/proj/-/issues/1"), "{url}");

    // The held day is run again (RETRY=true): a note on the same issue, no twin.
    let out = p.pace(&["--day", "1", "--retry"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(gitlab.issues().len(), 1);
    let notes = gitlab.notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!((notes[0].0.as_str(), notes[0].1), ("issues", 1));
    assert!(notes[0].2.contains("Held again (attempt 2)"), "{}", notes[0].2);
    assert_eq!(run_json(&p, 1)["issue_url"].as_str(), Some(url.as_str()));
    assert_no_secret(&gitlab.all_bodies());
    assert_no_secret(&llm.all_request_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_token_and_missing_variables_stop_with_exit_2_before_any_llm_call() {
    let llm = FakeLlm::start(scripts::greeter(Options::default()), Some(KEY)).await;
    let gitlab = FakeGitlab::start(TOKEN, READONLY).await;
    let p = Project::greeter();
    // No Docker needed: the platform is checked before the LLM client and the sandbox.
    p.use_fake_llm(&llm.url(), "pace-test/never-used:1", "");
    let config = p
        .read("pace.config.yaml")
        .replace("platform:\n  type: local", "platform:\n  type: gitlab");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "gitlab"]);
    let url = gitlab.url();
    let base = [
        ("ANTHROPIC_API_KEY", KEY),
        ("GITLAB_URL", url.as_str()),
        ("CI_PROJECT_ID", "42"),
    ];

    let mut job = base.to_vec();
    job.extend([("CI_JOB_TOKEN", JOB_TOKEN), ("GITLAB_TOKEN", JOB_TOKEN)]);
    let out = p.pace(&["--day", "1"], &job).await;
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("CI_JOB_TOKEN") && err.contains("`api`") && err.contains("project access token"),
        "{err}"
    );
    assert!(!err.contains(JOB_TOKEN), "{err}");

    let mut only_job = base.to_vec();
    only_job.push(("CI_JOB_TOKEN", JOB_TOKEN));
    let out = p.pace(&["--day", "1"], &only_job).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`GITLAB_TOKEN` is not set"), "{}", stderr(&out));

    let out = p
        .pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", KEY), ("GITLAB_TOKEN", TOKEN)])
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("GITLAB_PROJECT"), "{}", stderr(&out));

    assert_eq!(llm.requests.lock().unwrap().len(), 0, "no LLM call");
    assert!(gitlab.calls().is_empty(), "no GitLab call either");
    assert!(!p.exists(".pace/day-1/run.json"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_push_exits_4_with_the_work_committed_and_a_patch() {
    let (p, _llm, gitlab) = gitlab_project(scripts::greeter(Options::default()), &[]).await;
    gitlab.state.lock().unwrap().refuse_push = true;
    let env = env(&gitlab);
    let out = p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(4), "{}\n{}", stdout(&out), stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("push of `sprint/demo` was rejected"), "{text}");
    assert!(text.contains("write_repository"), "what to change: {text}");
    assert!(text.contains("changes.patch"), "{text}");
    assert_no_secret(&text);
    // Nothing was published, the work is committed locally, and the patch holds it.
    assert!(gitlab.merge_requests().is_empty());
    assert_eq!(gitlab.pushed(BRANCH), None);
    let log = p.git(&["log", "--format=%s"]);
    assert!(
        log.contains("Day 1: FORGE") && log.contains("Day 1: SHIP — artifacts"),
        "{log}"
    );
    let patch = p.read(".pace/day-1/changes.patch");
    assert!(
        patch.contains("Subject: [PATCH") && patch.contains("src/greet.sh"),
        "{patch}"
    );
    assert_no_secret(&patch);
    let run = run_json(&p, 1);
    assert_eq!(run["exit_code"], 4);
    assert!(p.read("pace-env.env").contains("PACE_EXIT_CODE=4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_the_token_scope_project_and_branch() {
    let gitlab = FakeGitlab::start(TOKEN, READONLY).await;
    let p = Project::greeter();
    let config = p
        .read("pace.config.yaml")
        .replace("platform:\n  type: local", "platform:\n  type: gitlab");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "gitlab"]);
    let url = gitlab.url();
    let out = p
        .pace(
            &["doctor"],
            &[
                ("GITLAB_TOKEN", TOKEN),
                ("GITLAB_PROJECT", PROJECT_PATH),
                ("GITLAB_URL", &url),
            ],
        )
        .await;
    let text = stdout(&out);
    assert!(text.contains("ok   token") && text.contains("api"), "{text}");
    assert!(
        text.contains("ok   project  `group/proj` (default branch `main`)"),
        "{text}"
    );
    assert!(text.contains("ok   branch   target `main` exists"), "{text}");

    let out = p
        .pace(
            &["doctor"],
            &[
                ("GITLAB_TOKEN", READONLY),
                ("GITLAB_PROJECT", "other/proj"),
                ("GITLAB_URL", &url),
            ],
        )
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("FAIL token") && text.contains("`api` scope"), "{text}");
    assert!(
        text.contains("FAIL project") && text.contains("404 Project Not Found"),
        "{text}"
    );
    assert!(!text.contains(READONLY));
    assert!(gitlab.calls().iter().all(|c| c.method == "GET"), "doctor only reads");
}

/// Validates one YAML document against GitLab's CI schema (check-jsonschema's vendored
/// copy); skips with a notice when check-jsonschema is not installed.
fn check_gitlab_schema(label: &str, yaml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("doc.yml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.gitlab-ci"])
        .arg(&file)
        .output();
    match out {
        Err(_) => eprintln!("SKIPPED: `check-jsonschema` is not installed (pip install check-jsonschema)"),
        Ok(o) => assert!(
            o.status.success(),
            "{label}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// What every way of running a day in GitLab must contain.
fn assert_runs_a_day(label: &str, text: &str) {
    for needle in [
        "pace --day \"$DAY\"",
        "DOCKER_TLS_CERTDIR: \"/certs\"",
        "dotenv: pace-env.env",
        // This day's JUnit only: the copy pace writes at a fixed path.
        "junit: .pace/junit.xml",
        "when: always",
        "RETRY",
        // Scheduled pipelines run, with `DAY=next` (the default).
        "$CI_PIPELINE_SOURCE == \"schedule\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from {label}");
    }
    assert!(
        !text.contains("day-*/gate/junit.xml"),
        "{label}: every earlier day's JUnit again"
    );
    assert!(
        !text.contains("pip install") && !text.contains("python"),
        "{label}: no Python, no install step"
    );
    assert!(
        !text.contains(":latest"),
        "{label}: images are pinned to X.Y, not :latest"
    );
}

#[test]
fn the_gitlab_ci_template_is_valid_against_the_gitlab_ci_schema() {
    let rel = "templates/gitlab/pace-day.yml";
    let text = repo_file(rel);
    assert_runs_a_day(rel, &text);
    assert!(text.contains("docker:27-dind") && text.contains("image: pace/runner-go:0.1"));
    assert!(text.contains("value: \"next\""), "DAY defaults to `next`");
    check_gitlab_schema(rel, &text);
}

#[test]
fn the_ci_cd_component_has_a_spec_and_a_valid_job() {
    let rel = "templates/pace-day/template.yml";
    let text = repo_file(rel);
    let (spec, body) = text
        .split_once("\n---\n")
        .expect("a component is a `spec:` document, `---`, then the jobs");
    // The spec parses, and declares the inputs the README documents, each with a default.
    let spec: serde_json::Value = serde_saphyr::from_str(spec).unwrap();
    let inputs = spec["spec"]["inputs"].as_object().expect("spec.inputs");
    for input in ["image", "day", "retry", "stage", "dind_image"] {
        assert!(inputs[input].get("default").is_some(), "input {input} has no default");
    }
    assert_eq!(inputs["day"]["default"], "next", "DAY defaults to `next`");
    // Every input is used in the jobs, and the jobs use no input it does not declare.
    for input in inputs.keys() {
        assert!(
            body.contains(&format!("$[[ inputs.{input} ]]")),
            "input {input} is never used"
        );
    }
    for used in body.split("$[[ inputs.").skip(1) {
        let name = used.split(' ').next().unwrap();
        assert!(inputs.contains_key(name), "the jobs use undeclared input {name}");
    }
    assert_runs_a_day(rel, body);
    assert!(
        !body.lines().any(|l| l.starts_with("workflow:")),
        "a component must not change the including pipeline"
    );
    check_gitlab_schema(&format!("{rel} (spec)"), spec_text(&text));
    check_gitlab_schema(&format!("{rel} (jobs)"), body);
}

fn spec_text(text: &str) -> &str {
    text.split_once("\n---\n").map_or(text, |(spec, _)| spec)
}

#[test]
fn the_projects_own_pipeline_is_valid_and_runs_lint_and_the_ci_entry_point() {
    let text = repo_file(".gitlab-ci.yml");
    for needle in [
        "make lint",
        ".ci/run",
        "make release",
        "cosign sign-blob",
        "make images-push",
        "cosign sign --yes",
    ] {
        assert!(text.contains(needle), "{needle} missing from .gitlab-ci.yml");
    }
    check_gitlab_schema(".gitlab-ci.yml", &text);
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_ci_gives_gate_the_pipeline_of_the_pushed_commit() {
    let (p, llm, gitlab) = gitlab_project(
        scripts::greeter(Options::default()),
        &[(
            "platform:\n  type: gitlab",
            "platform:\n  type: gitlab\n  wait_for_ci: true",
        )],
    )
    .await;
    let env = env(&gitlab);
    let out = p.pace(&["--day", "1"], &pairs(&env)).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    // FORGE's commit was pushed before GATE, and its pipeline polled by sha.
    assert!(gitlab.count("GET", "/pipelines") >= 1);
    let requests = llm.requests.lock().unwrap();
    let gate = requests
        .iter()
        .find(|(a, _)| a == "GATE")
        .map(|(_, b)| b.to_string())
        .unwrap();
    assert!(gate.contains("CI pipeline of the pushed commit"), "{gate}");
    assert!(
        gate.contains("GitLab pipeline #7") && gate.contains("success"),
        "{gate}"
    );
}
