//! Bitbucket Cloud end to end: the real `pace` binary and git, a real Docker daemon for the
//! suite, fake Bitbucket / Jira / Code Insights proxy / Anthropic servers on 127.0.0.1.
//! Pushes go to a real bare repository through a `file://` URL (`PACE_BITBUCKET_GIT_URL`);
//! the git credential header itself is unit-tested in `src/platform/bitbucket.rs`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::docker::busybox_image;
use crate::support::fake_bitbucket::{FakeBitbucket, FakeInsightsProxy};
use crate::support::fake_jira::FakeJira;
use crate::support::fake_llm::{FakeLlm, Reply, Script, Turn};
use crate::support::project::{Project, stderr, stdout};
use crate::support::scripts::{self, GREET_BUGGY, Options};

const KEY: &str = "sk-ant-test-KEYVALUE-0001";
const ACCESS_TOKEN: &str = "bbat-ACCESS-SECRET-0001";
const API_TOKEN: &str = "ATATT-API-SECRET-0003";
const EMAIL: &str = "ada@example.com";
const JIRA_TOKEN: &str = "jira-API-SECRET-0002";
const WS: &str = "acme";
const SLUG: &str = "greeter";

fn basic(user: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        pace::platform::bitbucket::base64(format!("{user}:{secret}").as_bytes())
    )
}

struct Setup {
    p: Project,
    llm: FakeLlm,
    bb: FakeBitbucket,
    _bare_dir: tempfile::TempDir,
    bare: std::path::PathBuf,
}

impl Setup {
    /// The variables of a run against the fakes (credential vars come from `extra`).
    fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("ANTHROPIC_API_KEY".into(), KEY.into()),
            ("BITBUCKET_WORKSPACE".into(), WS.into()),
            ("BITBUCKET_REPO_SLUG".into(), SLUG.into()),
            ("BITBUCKET_API_URL".into(), self.bb.api_url()),
            (
                "PACE_BITBUCKET_GIT_URL".into(),
                format!("file://{}", self.bare.display()),
            ),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    async fn pace(&self, args: &[&str], env: &[(String, String)]) -> std::process::Output {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.p.pace(args, &pairs).await
    }

    fn bare_ref(&self, branch: &str) -> String {
        let out = Command::new("git")
            .args(["rev-parse", &format!("refs/heads/{branch}")])
            .current_dir(&self.bare)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The greeter on `platform.type: bitbucket` (with `platform_extra` under `platform:`),
/// pushing into a fresh bare repository; `hold` makes the first HOLD final.
async fn setup(script: Script, platform_extra: &str, hold: bool, read_only: bool) -> Setup {
    let llm = FakeLlm::start(script, Some(KEY)).await;
    let bb = FakeBitbucket::start(
        WS,
        SLUG,
        &format!("Bearer {ACCESS_TOKEN}"),
        read_only.then_some(basic(EMAIL, API_TOKEN)).as_deref(),
    )
    .await;
    let p = Project::greeter();
    p.use_fake_llm(&llm.url(), &busybox_image(), "");
    let mut config = p.read("pace.config.yaml").replace(
        "platform:\n  type: local\n",
        &format!("platform:\n  type: bitbucket\n{platform_extra}"),
    );
    if hold {
        config = config.replace("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0");
    }
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "bitbucket"]);
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = bare_dir.path().join("greeter.git");
    let out = Command::new("git")
        .args(["init", "-q", "--bare", bare.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    Setup {
        p,
        llm,
        bb,
        _bare_dir: bare_dir,
        bare,
    }
}

fn run_json(p: &Project, day: u32) -> Value {
    serde_json::from_str(&p.read(&format!(".pace/day-{day}/run.json"))).unwrap()
}

/// FORGE never fixes the bug, also when told the hold reason: every run holds.
fn always_buggy() -> Script {
    let inner = scripts::greeter(Options {
        first_code: GREET_BUGGY,
        ..Options::default()
    });
    Arc::new(move |turn: &Turn| {
        if turn.agent == "FORGE" && turn.attempt_brief_mentions("This is attempt") {
            let step = turn.body["messages"].as_array().map(|m| m.len() / 2).unwrap_or(0);
            return match step {
                0 => Reply::Tools(vec![(
                    "write_file",
                    json!({"path": "src/greet.sh", "content": GREET_BUGGY}),
                )]),
                1 => Reply::Tools(vec![("run", json!({"command": "sh tests/run.sh"}))]),
                _ => Reply::Tools(vec![(
                    "complete_handoff",
                    json!({
                        "approach": "kept the implementation",
                        "risk": "low",
                        "dependencies": "none",
                        "built": "src/greet.sh",
                        "edge_cases_tested": "- a name given",
                        "known_gaps": []
                    }),
                )]),
            };
        }
        inner(turn)
    })
}

fn assert_no_secret(everything: &str) {
    for secret in [KEY, ACCESS_TOKEN, API_TOKEN, JIRA_TOKEN] {
        assert!(!everything.contains(secret), "secret {secret} leaked");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ship_opens_one_pull_request_and_the_next_day_comments_on_it() {
    let s = setup(scripts::greeter(Options::default()), "", false, false).await;
    let env = s.env(&[
        ("BITBUCKET_ACCESS_TOKEN", ACCESS_TOKEN),
        ("BITBUCKET_BUILD_NUMBER", "7"),
        ("BITBUCKET_GIT_HTTP_ORIGIN", "http://bitbucket.org/acme/greeter"),
    ]);
    let out = s.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    {
        let state = s.bb.state.lock().unwrap();
        assert_eq!(state.pull_requests.len(), 1);
        let (_, source, dest, title, description) = &state.pull_requests[0];
        assert_eq!((source.as_str(), dest.as_str()), ("sprint/demo", "main"));
        assert!(title.starts_with("PACE Day 1:"), "{title}");
        assert!(description.contains("Day 1 of the sprint shipped"), "{description}");
        assert!(description.contains("/pipelines/results/7"), "{description}");
    }
    assert_eq!(
        run_json(&s.p, 1)["mr_url"],
        "https://bitbucket.org/acme/greeter/pull-requests/1"
    );
    // The target came from the repository's main branch; every call had the token.
    let calls = s.bb.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.method == "GET" && c.url == "/2.0/repositories/acme/greeter")
    );
    assert!(
        calls
            .iter()
            .all(|c| c.auth.as_deref() == Some(&format!("Bearer {ACCESS_TOKEN}")[..]))
    );
    // The pushed branch holds the artifacts commit; the JUnit is where the Tests tab looks.
    assert_eq!(s.bare_ref("sprint/demo"), s.p.git(&["rev-parse", "HEAD"]).trim());
    assert!(s.p.read("test-results/pace-day-1.xml").contains("greeter"));

    // Day 2 (the implementation removed by hand, so FORGE has work): a comment, no second PR.
    s.p.git(&["rm", "-q", "src/greet.sh"]);
    s.p.git(&["commit", "-q", "-m", "start day 2 from scratch"]);
    let out = s.pace(&["--day", "2"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    {
        let state = s.bb.state.lock().unwrap();
        assert_eq!(state.pull_requests.len(), 1, "a second pull request was created");
        assert_eq!(state.comments.len(), 1);
        assert_eq!(state.comments[0].0, 1);
        assert!(state.comments[0].1.contains("PACE Day 2"), "{}", state.comments[0].1);
    }
    assert_eq!(
        run_json(&s.p, 2)["mr_url"],
        "https://bitbucket.org/acme/greeter/pull-requests/1"
    );
    let everything = format!(
        "{}{}{}{}{}",
        s.bb.all_bodies(),
        s.p.all_artifacts_text(),
        stdout(&out),
        stderr(&out),
        s.llm.all_request_text()
    );
    assert_no_secret(&everything);
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_opens_one_jira_issue_and_a_rerun_comments_on_it() {
    let jira_auth = basic(EMAIL, JIRA_TOKEN);
    let jira = FakeJira::start(&jira_auth, "PACE").await;
    let s = setup(
        always_buggy(),
        "  tracker:\n    type: jira\n    project: PACE\n",
        true,
        false,
    )
    .await;
    let jira_url = jira.url();
    let env = s.env(&[
        ("BITBUCKET_ACCESS_TOKEN", ACCESS_TOKEN),
        ("JIRA_URL", &jira_url),
        ("JIRA_EMAIL", EMAIL),
        ("JIRA_API_TOKEN", JIRA_TOKEN),
    ]);
    let out = s.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let run = run_json(&s.p, 1);
    assert_eq!(run["decision"], "HOLD");
    assert_eq!(run["issue_url"], format!("{jira_url}/browse/PACE-1"));
    {
        let state = jira.state.lock().unwrap();
        assert_eq!(state.issues.len(), 1);
        let fields = &state.issues[0].1;
        assert_eq!(fields["labels"], json!(["pace-hold", "pace-day-1"]));
        assert_eq!(fields["issuetype"]["name"], "Bug");
        assert!(fields["summary"].as_str().unwrap().starts_with("[PACE HOLD] Day 1:"));
        let description = fields["description"].to_string();
        assert!(description.contains("needs a human"), "{description}");
        assert!(description.contains("\"heading\""), "{description}");
        assert!(
            state
                .calls
                .iter()
                .all(|c| c.auth.as_deref() == Some(jira_auth.as_str()))
        );
    }
    // Also a FAILED build status and a Code Insights report on the pushed head commit
    // (outside Pipelines: the report goes straight to the API), and the text in the artifacts.
    let head = s.bare_ref("sprint/demo");
    {
        let state = s.bb.state.lock().unwrap();
        assert_eq!(state.statuses.len(), 1);
        let (sha, status) = &state.statuses[0];
        assert_eq!(status["state"], "FAILED");
        assert_eq!(status["key"], "pace-day-1");
        assert_eq!(status["url"], "https://bitbucket.org/acme/greeter");
        assert!(s.p.git(&["merge-base", "--is-ancestor", sha, &head]).is_empty());
        assert_eq!(state.reports.len(), 1);
        assert_eq!(state.reports[0].1, "pace-day-1");
        assert_eq!(state.reports[0].2["result"], "FAILED");
        assert!(state.pull_requests.is_empty());
    }
    assert!(s.p.read(".pace/day-1/escalation.md").contains("pace-day-1"));

    // The same day again holds again: a comment on the open issue, no twin.
    let out = s.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    {
        let state = jira.state.lock().unwrap();
        assert_eq!(state.issues.len(), 1, "a second issue was opened");
        assert_eq!(state.comments.len(), 1);
        assert_eq!(state.comments[0].0, "PACE-1");
        assert_eq!(state.comments[0].1["type"], "doc");
    }
    assert_eq!(run_json(&s.p, 1)["issue_url"], format!("{jira_url}/browse/PACE-1"));
    let everything = format!(
        "{}{}{}{}{}",
        s.bb.all_bodies(),
        jira.all_bodies(),
        s.p.all_artifacts_text(),
        stdout(&out),
        stderr(&out)
    );
    assert_no_secret(&everything);
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_without_jira_in_pipelines_sets_a_failed_status_and_reports_through_the_proxy() {
    let proxy = FakeInsightsProxy::start().await;
    let s = setup(always_buggy(), "", true, false).await;
    // A user API token this time (Basic email:token).
    let bb = FakeBitbucket::start(WS, SLUG, &basic(EMAIL, API_TOKEN), None).await;
    let proxy_url = proxy.url();
    let api_url = bb.api_url();
    let env: Vec<(String, String)> = s
        .env(&[
            ("BITBUCKET_EMAIL", EMAIL),
            ("BITBUCKET_API_TOKEN", API_TOKEN),
            ("BITBUCKET_BUILD_NUMBER", "9"),
            ("BITBUCKET_GIT_HTTP_ORIGIN", "http://bitbucket.org/acme/greeter"),
            ("PACE_BITBUCKET_INSIGHTS_PROXY", &proxy_url),
        ])
        .into_iter()
        .map(|(k, v)| {
            if k == "BITBUCKET_API_URL" {
                (k, api_url.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    let out = s.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("Bitbucket Issues were removed"),
        "the run says where the escalation went: {}",
        stderr(&out)
    );
    let escalation = s.p.read(".pace/day-1/escalation.md");
    assert!(
        escalation.contains("pace-hold") && escalation.contains("exited with 1"),
        "{escalation}"
    );
    let issue_url = run_json(&s.p, 1)["issue_url"].as_str().unwrap().to_string();
    assert!(issue_url.ends_with(".pace/day-1/escalation.md"), "{issue_url}");
    {
        let state = bb.state.lock().unwrap();
        assert_eq!(state.statuses.len(), 1);
        assert_eq!(state.statuses[0].1["state"], "FAILED");
        assert_eq!(
            state.statuses[0].1["url"],
            "http://bitbucket.org/acme/greeter/pipelines/results/9"
        );
        assert!(
            state.reports.is_empty(),
            "inside Pipelines the report goes through the proxy"
        );
        assert!(
            state
                .calls
                .iter()
                .all(|c| c.auth.as_deref() == Some(&basic(EMAIL, API_TOKEN)[..]))
        );
    }
    let calls = proxy.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].method, "PUT");
    assert!(
        calls[0].url.contains("/2.0/repositories/acme/greeter/commit/")
            && calls[0].url.ends_with("/reports/pace-day-1"),
        "{}",
        calls[0].url
    );
    assert_eq!(calls[0].auth, None, "the proxy adds the credentials");
    assert_eq!(calls[0].body["result"], "FAILED");
    assert!(s.p.exists("test-results/pace-day-1.xml"));
    assert!(s.bb.calls().is_empty());
    let everything = format!(
        "{}{}{}{}",
        bb.all_bodies(),
        s.p.all_artifacts_text(),
        stdout(&out),
        stderr(&out)
    );
    assert_no_secret(&everything);
}

#[tokio::test(flavor = "multi_thread")]
async fn app_passwords_and_missing_repository_variables_stop_before_any_llm_call() {
    let s = setup(scripts::greeter(Options::default()), "", false, false).await;
    let env = s.env(&[("BITBUCKET_USER", "ada"), ("BITBUCKET_APP_PASSWORD", "app-pw-SECRET-9")]);
    let out = s.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("removed app passwords on 2026-07-28"), "{err}");
    assert!(
        err.contains("access token") && err.contains("pullrequest:write"),
        "{err}"
    );
    assert!(!err.contains("app-pw-SECRET-9"));

    let env: Vec<(String, String)> = s
        .env(&[("BITBUCKET_ACCESS_TOKEN", ACCESS_TOKEN)])
        .into_iter()
        .map(|(k, v)| {
            if k == "BITBUCKET_WORKSPACE" {
                (k, String::new())
            } else {
                (k, v)
            }
        })
        .collect();
    let out = s.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("BITBUCKET_WORKSPACE") && err.contains("Pipelines is enabled"),
        "{err}"
    );

    assert_eq!(s.llm.requests.lock().unwrap().len(), 0);
    assert!(s.bb.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_push_exits_4_with_the_work_committed_and_a_patch() {
    let s = setup(scripts::greeter(Options::default()), "", false, false).await;
    let hook = s.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'branch sprint/demo is protected: pushes need a pull request' >&2\nexit 1\n",
    )
    .unwrap();
    make_executable(&hook);
    let env = s.env(&[("BITBUCKET_ACCESS_TOKEN", ACCESS_TOKEN)]);
    let out = s.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(4), "{}\n{}", stdout(&out), stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("is protected"), "the reason is shown: {all}");
    assert!(all.contains("Branch restrictions"), "what to change is shown: {all}");
    assert!(all.contains(".pace/day-1/changes.patch"), "{all}");
    let patch = s.p.read(".pace/day-1/changes.patch");
    assert!(
        patch.contains("src/greet.sh") && patch.contains("Hello, ${1:-World}!"),
        "{patch}"
    );
    assert!(s.p.git(&["log", "--format=%s"]).contains("Day 1: FORGE"));
    assert_eq!(run_json(&s.p, 1)["exit_code"], 4);
    assert_ne!(s.bare_ref("sprint/demo"), s.p.git(&["rev-parse", "HEAD"]).trim());
    assert!(s.bb.state.lock().unwrap().pull_requests.is_empty());
    assert_no_secret(&all);
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_token_repository_branch_and_jira() {
    let jira = FakeJira::start(&basic(EMAIL, JIRA_TOKEN), "PACE").await;
    let s = setup(
        scripts::greeter(Options::default()),
        "  target_branch: develop\n  tracker:\n    type: jira\n    project: PACE\n",
        false,
        false,
    )
    .await;
    let jira_url = jira.url();
    let env = s.env(&[
        ("BITBUCKET_ACCESS_TOKEN", ACCESS_TOKEN),
        ("JIRA_URL", &jira_url),
        ("JIRA_EMAIL", EMAIL),
        ("JIRA_API_TOKEN", JIRA_TOKEN),
    ]);
    let out = s.pace(&["doctor"], &env).await;
    let text = stdout(&out);
    assert!(text.contains("ok   token"), "{text}");
    assert!(text.contains("repository `acme/greeter` found"), "{text}");
    assert!(text.contains("FAIL branch"), "{text}");
    assert!(text.contains("target branch `develop` does not exist"), "{text}");
    assert!(text.contains("platform.target_branch"), "{text}");
    assert!(text.contains("ok   jira"), "{text}");
    assert_eq!(out.status.code(), Some(4));

    // A wrong token: 401 with a hint; no secret in the output.
    let env = s.env(&[
        ("BITBUCKET_ACCESS_TOKEN", "bbat-WRONG-SECRET-0009"),
        ("JIRA_URL", &jira_url),
        ("JIRA_EMAIL", EMAIL),
        ("JIRA_API_TOKEN", JIRA_TOKEN),
    ]);
    let out = s.pace(&["doctor"], &env).await;
    let text = stdout(&out);
    assert!(text.contains("FAIL token") && text.contains("HTTP 401"), "{text}");
    assert!(text.contains("hint: create a repository access token"), "{text}");
    assert!(!text.contains("bbat-WRONG-SECRET-0009"));
    assert_eq!(s.llm.requests.lock().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_write_scope_gets_bitbuckets_403_explained() {
    // Reads are allowed, the PR creation is refused: the day still ships locally and the
    // run names the missing scope.
    let s = setup(scripts::greeter(Options::default()), "", false, true).await;
    let env = s.env(&[("BITBUCKET_EMAIL", EMAIL), ("BITBUCKET_API_TOKEN", API_TOKEN)]);
    let out = s.pace(&["--day", "1"], &env).await;
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("HTTP 403"), "{all}");
    assert!(all.contains("lack one or more required privilege scopes"), "{all}");
    assert!(all.contains("pullrequest:write"), "{all}");
    assert!(s.bb.state.lock().unwrap().pull_requests.is_empty());
    assert_no_secret(&all);
}

#[test]
fn the_pipelines_template_matches_the_published_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let template = "templates/bitbucket/bitbucket-pipelines.yml";
    let yaml = std::fs::read_to_string(root.join(template)).unwrap();
    assert!(yaml.contains("pace-day") && yaml.contains("services:") && yaml.contains("- docker"));
    assert!(
        yaml.contains("default: \"next\""),
        "DAY defaults to `next` (scheduled pipelines)"
    );
    assert!(!yaml.contains(":latest"), "the runner image is pinned to X.Y");
    assert!(!yaml.contains("pip install") && !yaml.contains("python"));
    let Ok(out) = Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.bitbucket-pipelines", template])
        .current_dir(root)
        .output()
    else {
        println!("notice: check-jsonschema is not installed (pip install check-jsonschema); schema check skipped");
        return;
    };
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
