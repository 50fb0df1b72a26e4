//! Model text on its way to GitLab and the job log, end to end: the real `pace` binary,
//! git and Docker, the fake Anthropic server and the fake GitLab. SENTINEL's hold reason
//! carries quick actions, an OSC 8 hyperlink, a forged job-log section and a mass mention;
//! GitLab must receive them inert and the job log must show none of the escapes.

use std::sync::Arc;

use crate::support::docker::busybox_image;
use crate::support::fake_gitlab::{FakeGitlab, PROJECT_PATH};
use crate::support::fake_llm::{FakeLlm, Reply, Script, Turn};
use crate::support::project::{Project, stderr, stdout};
use crate::support::scripts::{self, Options};

const KEY: &str = "sk-ant-test-KEYVALUE-0077";
const TOKEN: &str = "glpat-GOODTOKEN-inert-5678";
const READONLY: &str = "glpat-READONLY-inert-1234";
const ZWSP: char = '\u{200B}';

/// YAML double-quoted: `\n` newlines, `\x1b` ESC, `\\` a backslash (the ST of OSC 8).
const HOSTILE_REASON: &str = r#"found a secret\n/merge\n/approve\n  /assign @mallory\n\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ here\n\x1b[0Ksection_start:1:forged[collapsed=true]\r\x1b[0Kall green <!-- hidden --> @all"#;

/// The story PRIME writes: FORGE's commit subject is made of it.
const HOSTILE_STORY: &str = r#"Closes #1 ABC-7 #close \x1b[31mgreet\x1b[0m for @all"#;

/// PRIME writes the hostile story, SENTINEL holds with the hostile reason; everything else
/// is the greeter's script.
fn hostile_hold() -> Script {
    let inner = scripts::greeter(Options::default());
    Arc::new(move |turn: &Turn| match turn.agent.as_str() {
        "PRIME" => Reply::Text(scripts::story_card().replace(
            "As a user, when I run greet with a name, I see a friendly greeting.",
            HOSTILE_STORY,
        )),
        "SENTINEL" => Reply::Text(format!(
            "```yaml\nfindings:\n  - check: \"diff review\"\n    result: FAIL\n    evidence: \"src/greet.sh\"\nadvisories: []\nblockers: [\"credential\"]\nsentinel_decision: HOLD\nhold_reason: \"{HOSTILE_REASON}\"\n```\n"
        )),
        _ => inner(turn),
    })
}

/// Markdown for GitLab: no quick-action line, no hiding HTML, no mass mention, no escape.
fn assert_inert(what: &str, text: &str) {
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with('/'),
            "{what}: quick action line {line:?} in {text:?}"
        );
    }
    for forbidden in ["<!--", "@all", "\x1b", "\r", "http://evil.example"] {
        assert!(!text.contains(forbidden), "{what}: {forbidden:?} in {text:?}");
    }
}

/// A job log: no escape, no carriage return, no hyperlink target, no forged section.
fn assert_log_clean(what: &str, text: &str) {
    for forbidden in ["\x1b", "\r", "http://evil.example", "section_start:1:forged"] {
        assert!(!text.contains(forbidden), "{what}: {forbidden:?} in {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_reason_with_quick_actions_and_escapes_reaches_gitlab_inert() {
    require_docker!();
    let llm = FakeLlm::start(hostile_hold(), Some(KEY)).await;
    let gitlab = FakeGitlab::start(TOKEN, READONLY).await;
    let p = Project::greeter();
    p.use_fake_llm(&llm.url(), &busybox_image(), "");
    let config = p
        .read("pace.config.yaml")
        .replace("platform:\n  type: local", "platform:\n  type: gitlab")
        .replace("  max_iterations: 20", "  max_iterations: 20\n  max_retries: 0");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-q", "-am", "gitlab platform"]);
    let env = [
        ("ANTHROPIC_API_KEY", KEY.to_string()),
        ("GITLAB_TOKEN", TOKEN.into()),
        ("GITLAB_PROJECT", PROJECT_PATH.into()),
        ("GITLAB_URL", gitlab.url()),
        ("GITLAB_CI", "true".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = p.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));

    let issues = gitlab.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let issue = &issues[0];
    assert_inert("issue description", &issue.description);
    assert_inert("issue title", &issue.title);
    // Still readable: the lines are there, behind a zero-width space.
    for shown in [
        format!("\n{ZWSP}/merge\n"),
        format!("\n{ZWSP}/approve\n"),
        format!("  {ZWSP}/assign @{ZWSP}mallory"),
        "click here".to_string(),
        format!("<{ZWSP}!-- hidden -->"),
    ] {
        assert!(
            issue.description.contains(&shown),
            "{shown:?} not in {:?}",
            issue.description
        );
    }
    // The same for every byte any API call carried (JSON would escape ESC as \u001b).
    let bodies = gitlab.all_bodies();
    assert!(!bodies.contains("\\u001b") && !bodies.contains("\\n/merge"), "{bodies}");

    // The job log: the final line quotes the reason; only pace's own sections are there.
    let log = stdout(&out);
    assert_log_clean("stdout", &log);
    assert!(log.contains("click here"), "{log}");
    let err = stderr(&out);
    // The sections' bodies carry the agents' detail (here SENTINEL's hold reason), inert:
    // no hyperlink target, no working forged marker.
    assert!(
        !err.contains("http://evil.example") && !err.contains("section_start:1:forged"),
        "{err}"
    );
    assert!(err.contains("click here"), "{err}");
    assert_eq!(
        err.matches("section_start:").count(),
        err.matches("section_end:").count(),
        "{err}"
    );
    // FORGE's commit subject carries the story: no closing pattern, no smart commit, no
    // escape reaches the history.
    let history = p.git(&["log", "--format=%B"]);
    assert!(
        history.contains(&format!("C{ZWSP}loses #1 ABC-7 #{ZWSP}close greet")),
        "{history}"
    );
    assert!(
        !history.contains("Closes #1") && !history.contains(" #close") && !history.contains('\x1b'),
        "{history}"
    );
    // The artifacts committed to the repository say the same.
    assert_inert("summary.md", &p.read(".pace/day-1/summary.md"));
}

/// `pace gate` streams the suite's output to the job log: a suite that prints an OSC 52
/// clipboard write, a forged section and a carriage-return overwrite shows up inert on
/// stdout, while `output.log` keeps the bytes as they were.
#[tokio::test(flavor = "multi_thread")]
async fn pace_gate_streams_the_suites_output_inert() {
    require_docker!();
    let p = Project::example_with_image(&busybox_image());
    p.set_gate_config(
        r"printf '\033]52;c;ZXZpbA==\007copied\n\033[0Ksection_start:1:forged[collapsed=true]\r\033[0Kall green\nPASS\rFAIL\n'",
        120,
    );
    let out = p.pace(&["gate"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let log = stdout(&out);
    assert_log_clean("pace gate stdout", &log);
    assert!(!log.contains("section_start:") && !log.contains("ZXZpbA=="), "{log:?}");
    assert!(log.contains("copied\n") && log.contains("PASS\nFAIL\n"), "{log:?}");
    let raw = p.read(".pace/gate/output.log");
    assert!(
        raw.contains("\x1b]52;c;ZXZpbA==\x07") && raw.contains("PASS\rFAIL"),
        "{raw:?}"
    );
}
