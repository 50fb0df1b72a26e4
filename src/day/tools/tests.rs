//! Dispatch, handlers and confinement together, on a temporary git repository.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

struct Fixture {
    _base: tempfile::TempDir,
    base: PathBuf,
    repo: PathBuf,
    outside: PathBuf,
}

/// `base/repo` (a git repository with `src/`, `tests/`, `docs/`, `.git`, `.pace`, a
/// gitignored `.env`) and `base/outside` (files the tools must never touch).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(dir.path()).unwrap();
    let repo = base.join("repo");
    let outside = base.join("outside");
    fs::create_dir_all(repo.join("src/nested")).unwrap();
    fs::create_dir_all(repo.join("tests")).unwrap();
    fs::create_dir_all(repo.join("docs")).unwrap();
    fs::create_dir_all(repo.join(".pace/day-1")).unwrap();
    fs::create_dir_all(repo.join("node_modules/dep")).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let status = std::process::Command::new("git")
        .args(["init", "-q"])
        .arg(&repo)
        .status()
        .unwrap();
    assert!(status.success());
    fs::write(repo.join("src/lib.rs"), "pub fn answer() -> u32 {\n    42\n}\n").unwrap();
    fs::write(repo.join("src/nested/deep.rs"), "// needle here\n").unwrap();
    fs::write(repo.join("node_modules/dep/index.js"), "needle in a dependency\n").unwrap();
    fs::write(repo.join("src/blob.bin"), b"needle\0\x01\x02").unwrap();
    fs::write(repo.join("README.md"), "# demo\nneedle at the root\n").unwrap();
    fs::write(repo.join(".pace/day-1/run.json"), "{}").unwrap();
    fs::write(repo.join(".gitignore"), ".env\n").unwrap();
    fs::write(repo.join(".env"), "TOKEN=dont-leak-me\n").unwrap();
    fs::write(repo.join(".env.example"), "TOKEN=\n").unwrap();
    fs::write(outside.join("secret.txt"), "outside secret\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink("/etc", repo.join("src/link")).unwrap();
        symlink(outside.join("secret.txt"), repo.join("src/outfile")).unwrap();
        symlink(&outside, repo.join("src/outdir")).unwrap();
        symlink("lib.rs", repo.join("src/inlink")).unwrap();
        symlink(outside.join("nothing-here"), repo.join("src/dangling")).unwrap();
        fs::hard_link(outside.join("secret.txt"), repo.join("src/hard")).unwrap();
    }
    Fixture {
        _base: dir,
        base,
        repo,
        outside,
    }
}

fn forge_ctx<'a>(f: &Fixture, tdd: bool) -> ToolContext<'a> {
    ToolContext::new(
        Toolset::Forge { tdd },
        &f.repo,
        &["src/", "tests/"],
        None,
        Redactor::new(vec!["s3cr3t-token-value".into()]),
        Duration::from_secs(300),
    )
    .unwrap()
}

/// Every file under `dir` with its content (symlinks as their target), for "nothing
/// changed" checks.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(p.clone(), format!("-> {}", fs::read_link(&p).unwrap().display()));
            } else if ft.is_dir() {
                out.insert(p.clone(), "dir".into());
                stack.push(p);
            } else {
                out.insert(p.clone(), String::from_utf8_lossy(&fs::read(&p).unwrap()).into());
            }
        }
    }
    out
}

async fn call(ctx: &mut ToolContext<'_>, name: &str, input: Value) -> ToolOutcome {
    dispatch(ctx, "call-1", name, &input).await
}

#[track_caller]
fn expect_error(outcome: &ToolOutcome, needle: &str) -> String {
    match outcome {
        ToolOutcome::Result(ToolResult {
            content,
            is_error: true,
            ..
        }) => {
            assert!(content.starts_with("ERROR: "), "no ERROR prefix: {content}");
            assert!(content.contains(needle), "expected {needle:?} in {content}");
            content.clone()
        }
        other => panic!("expected an error result, got {other:?}"),
    }
}

#[track_caller]
fn expect_ok(outcome: &ToolOutcome) -> String {
    match outcome {
        ToolOutcome::Result(ToolResult {
            content,
            is_error: false,
            ..
        }) => content.clone(),
        other => panic!("expected a successful result, got {other:?}"),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn confinement_table_refuses_every_escape() {
    let f = fixture();
    let before_outside = snapshot(&f.outside);
    let before_repo = snapshot(&f.repo);
    let mut ctx = forge_ctx(&f, false);

    let refused_reads = [
        ("../../etc/passwd", "`..`"),
        ("/etc/passwd", "absolute"),
        ("src/../../x", "`..`"),
        ("%2e%2e/x", "percent-encoded"),
        ("%2E%2E%2Fetc%2Fpasswd", "percent-encoded"),
        (".git/hooks/pre-commit", "`.git/`"),
        (".git/config", "`.git/`"),
        (".pace/day-1/run.json", "`.pace/`"),
        ("src/../.git/config", "`..`"),
        ("src/link/passwd", "outside the repository"),
        ("src/link", "outside the repository"),
        ("src/outfile", "outside the repository"),
        ("src/outdir/secret.txt", "outside the repository"),
        ("src/dangling", "outside the repository"),
        ("~/.git-credentials", "`~`"),
        ("/proc/self/environ", "absolute"),
        ("C:\\Windows\\win.ini", "Windows"),
        ("\\\\server\\share\\x", "Windows"),
        ("src/a\0b", "NUL"),
        (".env", "secret"),
    ];
    for (path, why) in refused_reads {
        for tool in ["read_file", "list_files"] {
            let out = call(&mut ctx, tool, json!({ "path": path })).await;
            expect_error(&out, why);
        }
        let out = call(&mut ctx, "search", json!({ "pattern": "x", "path": path })).await;
        if path != ".env" {
            expect_error(&out, why);
        }
    }

    let refused_writes = [
        ("../../etc/passwd", "`..`"),
        ("/etc/passwd", "absolute"),
        ("src/../../x", "`..`"),
        ("%2e%2e/x", "percent-encoded"),
        (".git/hooks/pre-commit", "`.git/`"),
        (".git/config", "`.git/`"),
        (".pace/day-1/run.json", "`.pace/`"),
        ("src/../.git/config", "`..`"),
        ("src/link/passwd", "outside the repository"),
        ("src/outfile", "symbolic link"),
        ("src/outdir/new.txt", "outside the repository"),
        ("src/dangling", "symbolic link"),
        ("src/dangling/x.rs", "outside the repository"),
        ("src/hard", "hard links"),
        ("src/inlink", "symbolic link"),
        ("~/.git-credentials", "`~`"),
        ("/proc/self/environ", "absolute"),
        ("docs/new.md", "outside the writable directories"),
        ("README.md", "outside the writable directories"),
        ("pace.config.yaml", "CI configuration"),
        ("src/.gitattributes", "CI configuration"),
        ("src/vendor/.GIT/config", "`.GIT/`"),
        ("src", "directory"),
        ("", "the path is empty"),
    ];
    for (path, why) in refused_writes {
        let out = call(&mut ctx, "write_file", json!({ "path": path, "content": "pwned" })).await;
        let text = expect_error(&out, why);
        assert!(!text.contains("pwned"));
    }

    assert_eq!(
        snapshot(&f.outside),
        before_outside,
        "something outside the repo changed"
    );
    assert_eq!(snapshot(&f.repo), before_repo, "a refused write changed the repo");
    assert!(ctx.written_paths().is_empty());
    // Nothing appeared beside the repository either.
    let names: Vec<_> = fs::read_dir(&f.base).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn allowed_reads_and_writes_work() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, false);
    let text = expect_ok(&call(&mut ctx, "read_file", json!({"path": "./src//lib.rs"})).await);
    assert!(text.contains("42"));
    // A symlink that stays inside the repository is fine to read.
    let text = expect_ok(&call(&mut ctx, "read_file", json!({"path": "src/inlink"})).await);
    assert!(text.contains("42"));
    // Tracked-or-plain `.env.example` is not a secret.
    expect_ok(&call(&mut ctx, "read_file", json!({"path": ".env.example"})).await);

    let out = call(
        &mut ctx,
        "write_file",
        json!({"path": "src/new/mod.rs", "content": "héllo"}),
    )
    .await;
    assert_eq!(expect_ok(&out), "OK: wrote 6 bytes to src/new/mod.rs");
    assert_eq!(fs::read_to_string(f.repo.join("src/new/mod.rs")).unwrap(), "héllo");
    let out = call(
        &mut ctx,
        "write_file",
        json!({"path": "tests/a_test.rs", "content": "x"}),
    )
    .await;
    expect_ok(&out);
    assert_eq!(ctx.written_paths(), ["src/new/mod.rs", "tests/a_test.rs"]);

    // Overwrite keeps the file's mode.
    fs::set_permissions(f.repo.join("src/lib.rs"), fs::Permissions::from_mode(0o755)).unwrap();
    expect_ok(&call(&mut ctx, "write_file", json!({"path": "src/lib.rs", "content": "y"})).await);
    let mode = fs::metadata(f.repo.join("src/lib.rs")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(f.repo.join("src"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pace-write-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test]
async fn read_file_on_a_directory_lists_it_and_missing_files_are_reported() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, false);
    let text = expect_error(
        &call(&mut ctx, "read_file", json!({"path": "src"})).await,
        "is a directory",
    );
    assert!(text.contains("src/lib.rs") && text.contains("src/nested/"));
    expect_error(
        &call(&mut ctx, "read_file", json!({"path": "src/nope.rs"})).await,
        "File not found: src/nope.rs",
    );
    expect_error(
        &call(&mut ctx, "read_file", json!({"path": "src/blob.bin"})).await,
        "binary",
    );

    let root = expect_ok(&call(&mut ctx, "list_files", json!({})).await);
    assert!(root.contains("README.md") && root.contains("src/"));
    assert!(!root.contains(".git/") && !root.contains(".pace"));
    let tree = expect_ok(&call(&mut ctx, "list_files", json!({"path": "src", "recursive": true})).await);
    assert!(tree.contains("src/nested/deep.rs"), "{tree}");
}

#[tokio::test]
async fn large_reads_are_cut_with_a_note_and_large_writes_refused() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, false);
    fs::write(f.repo.join("src/big.txt"), "a".repeat(read_file::READ_CAP_BYTES + 10)).unwrap();
    let text = expect_ok(&call(&mut ctx, "read_file", json!({"path": "src/big.txt"})).await);
    assert!(text.contains("[truncated: src/big.txt is 262154 bytes"));
    assert!(text.len() < read_file::READ_CAP_BYTES + 200);
    let big = "b".repeat(files::WRITE_CAP_BYTES + 1);
    expect_error(
        &call(&mut ctx, "write_file", json!({"path": "src/x", "content": big})).await,
        "at most",
    );
    assert!(!f.repo.join("src/x").exists());
}

#[tokio::test]
async fn search_finds_lines_and_skips_internal_dependency_and_binary_files() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, false);
    let text = expect_ok(&call(&mut ctx, "search", json!({"pattern": "need+le"})).await);
    assert!(text.contains("src/nested/deep.rs:1: // needle here"), "{text}");
    assert!(text.contains("README.md:2: needle at the root"), "{text}");
    assert!(!text.contains("node_modules"), "{text}");
    assert!(!text.contains("blob.bin"), "{text}");
    let text = expect_ok(
        &call(
            &mut ctx,
            "search",
            json!({"pattern": "needle", "path": "src", "max_results": 1}),
        )
        .await,
    );
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("[stopped after 1 matches"));
    expect_error(
        &call(&mut ctx, "search", json!({"pattern": "("})).await,
        "invalid regular expression",
    );
    let text = expect_ok(&call(&mut ctx, "search", json!({"pattern": "dont-leak"})).await);
    assert!(text.starts_with("No matches"), "secret files are not searched: {text}");
}

#[tokio::test]
async fn dispatch_rejects_unknown_tools_and_bad_arguments() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, false);
    let text = expect_error(
        &call(&mut ctx, "git_commit", json!({"message": "x"})).await,
        "Unknown tool: git_commit",
    );
    assert!(
        text.contains("Available: str_replace_based_edit_tool, write_file, list_files, search, run, complete_handoff"),
        "{text}"
    );
    // TDD off: confirm_red_phase is not a tool.
    expect_error(&call(&mut ctx, "confirm_red_phase", json!({})).await, "Unknown tool");

    expect_error(
        &call(&mut ctx, "read_file", json!({})).await,
        "read_file requires a 'path' argument (string)",
    );
    expect_error(
        &call(&mut ctx, "read_file", json!({"path": 7})).await,
        "read_file requires a 'path' argument (string), got a number",
    );
    expect_error(
        &call(&mut ctx, "write_file", json!({"path": "src/a.rs"})).await,
        "write_file requires a 'content' argument (string)",
    );
    expect_error(
        &call(&mut ctx, "list_files", json!({"recursive": "yes"})).await,
        "list_files requires a 'recursive' argument (boolean), got a string",
    );
    expect_error(
        &call(&mut ctx, "run", json!({"command": "ls", "timeout_seconds": "10"})).await,
        "'timeout_seconds' argument (integer)",
    );
    expect_error(
        &call(&mut ctx, "read_file", json!("src/lib.rs")).await,
        "must be a JSON object",
    );
    let text = expect_error(
        &call(
            &mut ctx,
            "write_file",
            json!({"_invalid_arguments": "{\"path\": \"src/a.rs\", \"content\": \"unterminated"}),
        )
        .await,
        "the arguments of write_file are not valid JSON: EOF while parsing",
    );
    assert!(text.contains("received"), "{text}");
    assert!(!f.repo.join("src/a.rs").exists());
}

#[tokio::test]
async fn call_cap_refuses_all_but_the_final_tool() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, false).with_max_tool_calls(2);
    expect_ok(&call(&mut ctx, "read_file", json!({"path": "src/lib.rs"})).await);
    expect_ok(&call(&mut ctx, "read_file", json!({"path": "src/lib.rs"})).await);
    let text = expect_error(
        &call(&mut ctx, "read_file", json!({"path": "src/lib.rs"})).await,
        "limit of 2 tool calls",
    );
    assert!(text.contains("call complete_handoff"));
    expect_error(&call(&mut ctx, "nonsense", json!({})).await, "limit of 2 tool calls");
    assert_eq!(ctx.calls(), 4);
    let handoff = json!({"approach": "a", "risk": "low", "dependencies": "none", "built": "b",
        "edge_cases_tested": [], "known_gaps": []});
    assert!(matches!(
        call(&mut ctx, "complete_handoff", handoff).await,
        ToolOutcome::Handoff(_)
    ));
}

struct FakeRunner {
    results: Vec<Result<CommandResult, ToolAbort>>,
    seen: Vec<(String, Duration)>,
}

#[async_trait::async_trait]
impl CommandRunner for FakeRunner {
    async fn run(&mut self, command: &str, timeout: Duration) -> Result<CommandResult, ToolAbort> {
        self.seen.push((command.to_string(), timeout));
        if self.results.is_empty() {
            return Err(ToolAbort::Runner("no scripted result".into()));
        }
        self.results.remove(0)
    }
}

#[allow(clippy::unnecessary_wraps, reason = "the shape of a sandbox run's answer")]
fn result(exit_code: i64, output: &str) -> Result<CommandResult, ToolAbort> {
    Ok(CommandResult {
        exit_code,
        output: output.into(),
        ..CommandResult::default()
    })
}

#[tokio::test]
async fn run_reports_exit_code_timeouts_changes_and_redacts() {
    let f = fixture();
    let mut runner = FakeRunner {
        results: vec![
            result(0, "all good\n"),
            result(101, "test failed: token=s3cr3t-token-value\n"),
            Ok(CommandResult {
                exit_code: 137,
                timed_out: true,
                output: String::new(),
                changed: vec![],
                refused: vec![],
            }),
            Ok(CommandResult {
                exit_code: 0,
                timed_out: false,
                output: "formatted".into(),
                changed: vec![PathBuf::from("src/lib.rs"), PathBuf::from("./tests/x.rs")],
                refused: vec![crate::boundary::Refused::new(
                    "src/vendor/.git",
                    &crate::boundary::Refusal::NotRegular("x"),
                    crate::boundary::Origin::Run,
                )],
            }),
            result(0, &format!("{}{}", "h".repeat(10_000), "t".repeat(20_000))),
            Err(ToolAbort::Runner("container vanished".into())),
        ],
        seen: Vec::new(),
    };
    {
        let mut ctx = forge_ctx(&f, false).with_runner(&mut runner);
        let text = expect_ok(&call(&mut ctx, "run", json!({"command": "cargo test"})).await);
        assert_eq!(text, "exit code: 0\nall good\n");

        let text = expect_error_like_run(&call(&mut ctx, "run", json!({"command": "cargo test"})).await);
        assert!(text.starts_with("exit code: 101\n"), "{text}");
        assert!(text.contains("token=[REDACTED]") && !text.contains("s3cr3t"), "{text}");

        let text = expect_error_like_run(
            &call(
                &mut ctx,
                "run",
                json!({"command": "sleep 999", "timeout_seconds": 9999}),
            )
            .await,
        );
        assert_eq!(text, "exit code: 137\ntimed out after 300 s\n(no output)");

        let text = expect_ok(&call(&mut ctx, "run", json!({"command": "cargo fmt"})).await);
        assert!(
            text.contains(
                "[files changed by this command: src/lib.rs, tests/x.rs]\n[refused by pace: src/vendor/.git ("
            ),
            "{text}"
        );
        assert_eq!(ctx.written_paths(), ["src/lib.rs", "tests/x.rs"]);

        let text = expect_ok(&call(&mut ctx, "run", json!({"command": "noisy"})).await);
        assert!(text.contains("bytes omitted"), "output is capped");
        assert!(text.len() < run::RUN_HEAD_BYTES + run::RUN_TAIL_BYTES + 100);
        assert!(text.ends_with("tttt"), "the end of the output is kept");

        let out = call(&mut ctx, "run", json!({"command": "ls"})).await;
        assert!(matches!(out, ToolOutcome::Abort(ToolAbort::Runner(_))), "{out:?}");
        expect_error(
            &call(&mut ctx, "run", json!({"command": "  "})).await,
            "non-empty 'command'",
        );
    }
    assert_eq!(runner.seen[0].1, DEFAULT_RUN_TIMEOUT);
    assert_eq!(
        runner.seen[2].1,
        Duration::from_secs(300),
        "capped by the sandbox timeout"
    );

    let mut ctx = forge_ctx(&f, false);
    expect_error(
        &call(&mut ctx, "run", json!({"command": "ls"})).await,
        "no sandbox session",
    );
}

#[track_caller]
fn expect_error_like_run(outcome: &ToolOutcome) -> String {
    match outcome {
        ToolOutcome::Result(ToolResult {
            content,
            is_error: true,
            ..
        }) => content.clone(),
        other => panic!("expected a failing run, got {other:?}"),
    }
}

#[tokio::test]
async fn tdd_gate_and_handoff() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, true);
    let handoff = json!({
        "commit": "deadbeef",
        "approach": "small parser",
        "risk": "low",
        "dependencies": "none",
        "built": "src/parse.rs",
        "edge_cases_tested": "- empty input\n- unicode\n-\n\n* overflow",
        "known_gaps": [],
    });
    expect_error(
        &call(&mut ctx, "complete_handoff", handoff.clone()).await,
        "TDD violation",
    );
    expect_error(
        &call(
            &mut ctx,
            "confirm_red_phase",
            json!({"failing_tests": "  ", "tests_written": ["tests/a.rs"]}),
        )
        .await,
        "non-empty failing_tests",
    );
    expect_error(
        &call(
            &mut ctx,
            "confirm_red_phase",
            json!({"failing_tests": "1 failed", "tests_written": []}),
        )
        .await,
        "at least one test file",
    );
    assert!(!ctx.red_phase_confirmed());
    let text = expect_ok(
        &call(
            &mut ctx,
            "confirm_red_phase",
            json!({"failing_tests": "1 failed", "tests_written": ["tests/a.rs"]}),
        )
        .await,
    );
    assert!(text.starts_with("Red phase confirmed. Tests written: tests/a.rs."));
    expect_error(
        &call(
            &mut ctx,
            "complete_handoff",
            json!({"approach": " ", "risk": "low", "dependencies": "none",
            "built": "x", "edge_cases_tested": [], "known_gaps": []}),
        )
        .await,
        "non-empty 'approach'",
    );
    let ToolOutcome::Handoff(h) = call(&mut ctx, "complete_handoff", handoff).await else {
        panic!("handoff refused")
    };
    assert_eq!(h["edge_cases_tested"], json!(["empty input", "unicode", "overflow"]));
    assert_eq!(h["known_gaps"], json!([]));
    assert_eq!(h["tdd_red_phase_confirmed"], json!(true));
    assert!(h.get("commit").is_none(), "pace sets the commit itself");

    // A retry starts confirmed.
    let mut retry = forge_ctx(&f, true).with_red_phase_confirmed(true);
    let handoff = json!({"approach": "a", "risk": "low", "dependencies": "none", "built": "b",
        "edge_cases_tested": ["x"], "known_gaps": "none yet"});
    assert!(matches!(
        call(&mut retry, "complete_handoff", handoff).await,
        ToolOutcome::Handoff(_)
    ));
}

#[tokio::test]
async fn handoff_is_redacted() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, false);
    let handoff = json!({"approach": "used s3cr3t-token-value", "risk": "low", "dependencies": "none",
        "built": "b", "edge_cases_tested": [], "known_gaps": []});
    let ToolOutcome::Handoff(h) = call(&mut ctx, "complete_handoff", handoff).await else {
        panic!()
    };
    assert_eq!(h["approach"], "used [REDACTED]");
    assert_eq!(
        h["tdd_red_phase_confirmed"],
        json!(false),
        "TDD off: no red phase was witnessed"
    );
}

#[tokio::test]
async fn scribe_tools_read_prefixes_write_docs_and_finish() {
    let f = fixture();
    let ext = f.repo.join("product-docs");
    fs::create_dir_all(&ext).unwrap();
    fs::write(ext.join("mvp.md"), "# MVP\n").unwrap();
    let mut ctx = ToolContext::new(
        Toolset::Scribe,
        &f.repo,
        &[],
        Some(&ext),
        Redactor::default(),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(ctx.specs(), scribe_tools());
    assert!(expect_ok(&call(&mut ctx, "read_file", json!({"path": "docs:mvp.md"})).await).contains("# MVP"));
    assert!(expect_ok(&call(&mut ctx, "read_file", json!({"path": "repo:README.md"})).await).contains("# demo"));
    expect_error(
        &call(&mut ctx, "read_file", json!({"path": "docs:../repo/.env"})).await,
        "`..`",
    );
    expect_error(
        &call(&mut ctx, "read_file", json!({"path": "src"})).await,
        "Use list_dir instead",
    );
    expect_error(
        &call(&mut ctx, "read_file", json!({"path": ".pace/day-1/run.json"})).await,
        "`.pace/`",
    );
    let listing = expect_ok(&call(&mut ctx, "list_dir", json!({"path": "."})).await);
    assert!(listing.lines().any(|l| l == "dir  src"), "{listing}");
    assert!(listing.lines().any(|l| l == "file  README.md"), "{listing}");
    assert!(
        !listing.lines().any(|l| l.ends_with(" .git") || l.ends_with(" .pace")),
        "{listing}"
    );
    assert!(!listing.contains("node_modules"), "{listing}");
    expect_error(
        &call(&mut ctx, "list_dir", json!({"path": "nope"})).await,
        "Directory not found: nope",
    );
    expect_error(
        &call(&mut ctx, "list_dir", json!({"path": "README.md"})).await,
        "Use read_file instead",
    );
    expect_error(
        &call(&mut ctx, "write_file", json!({"path": "src/x", "content": "x"})).await,
        "Unknown tool",
    );

    expect_error(
        &call(&mut ctx, "write_doc", json!({"name": "../../evil.md", "content": "x"})).await,
        "Unknown doc '../../evil.md'. Allowed: devops.md, engineering.md, product.md, security.md",
    );
    expect_error(
        &call(&mut ctx, "finish", json!({"summary": "done"})).await,
        "still missing: product.md",
    );
    for doc in SCRIBE_DOCS {
        let text = expect_ok(&call(&mut ctx, "write_doc", json!({"name": doc, "content": "## Vision\n"})).await);
        assert_eq!(text, format!("OK: wrote {doc} (10 bytes)"));
    }
    assert_eq!(
        fs::read_to_string(f.repo.join(".pace/context/security.md")).unwrap(),
        "## Vision\n"
    );
    let ToolOutcome::Finished(summary) = call(&mut ctx, "finish", json!({"summary": "all four"})).await else {
        panic!("finish refused")
    };
    assert_eq!(summary, "all four");
}

#[test]
fn outcome_blocks_answer_their_call() {
    let block = ToolOutcome::Handoff(json!({})).to_block("id-9");
    assert_eq!(
        block,
        Some(crate::llm::Block::ToolResult {
            tool_use_id: "id-9".into(),
            content: HANDOFF_ACCEPTED.into(),
            is_error: false
        })
    );
    assert!(
        ToolOutcome::Abort(ToolAbort::Runner("x".into()))
            .to_block("id")
            .is_none()
    );
}

#[test]
fn exec_session_is_a_command_runner() {
    fn assert_runner<T: CommandRunner>() {}
    assert_runner::<crate::sandbox::ExecSession>();
}

#[test]
fn context_from_settings_uses_source_and_test_dirs() {
    let f = fixture();
    let settings = crate::config::settings::Settings::defaults(f.repo.clone());
    let ctx = ToolContext::forge(&settings, Redactor::default()).unwrap();
    assert_eq!(ctx.writable, ["src", "test", "tests"]);
    assert_eq!(ctx.toolset(), Toolset::Forge { tdd: true });
    assert_eq!(ctx.repo_root(), f.repo.as_path());
    assert_eq!(ctx.max_run_timeout, settings.sandbox.timeout);
}

#[test]
fn dispatch_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let f = fixture();
    let mut ctx = forge_ctx(&f, false);
    let input = json!({"path": "src/lib.rs"});
    let fut = dispatch(&mut ctx, "id", "read_file", &input);
    assert_send(&fut);
}

/// The changed paths `run` and `write_file` return are what eviction reads: a read of a
/// file a later call rewrote is evicted in a history built from real dispatch results.
#[tokio::test]
async fn run_results_feed_eviction() {
    use crate::llm::{Block, Message, Role};
    let f = fixture();
    fs::write(f.repo.join("tests/t.rs"), "old").unwrap();
    let mut runner = FakeRunner {
        results: vec![Ok(CommandResult {
            exit_code: 0,
            timed_out: false,
            output: String::new(),
            changed: vec![PathBuf::from("src/lib.rs")],
            refused: vec![],
        })],
        seen: Vec::new(),
    };
    let mut ctx = forge_ctx(&f, false).with_runner(&mut runner);
    let mut messages = Vec::new();
    for (id, name, input) in [
        ("r1", "read_file", json!({"path": "src/lib.rs"})),
        ("r2", "read_file", json!({"path": "tests/t.rs"})),
        ("x1", "run", json!({"command": "cargo fmt"})),
        ("w1", "write_file", json!({"path": "./tests//t.rs", "content": "x"})),
    ] {
        let outcome = dispatch(&mut ctx, id, name, &input).await;
        messages.push(Message {
            role: Role::Assistant,
            content: vec![Block::ToolUse {
                id: id.into(),
                name: name.into(),
                input,
            }],
        });
        messages.push(Message {
            role: Role::User,
            content: vec![outcome.to_block(id).unwrap()],
        });
    }
    assert_eq!(ctx.changed_by_call().get("x1"), Some(&vec!["src/lib.rs".to_string()]));
    assert_eq!(ctx.changed_by_call().get("w1"), Some(&vec!["tests/t.rs".to_string()]));
    assert_eq!(ctx.changed_by_call().get("r1"), None, "a read changes nothing");
    evict_stale(&mut messages, ctx.changed_by_call());
    check_pairing(&messages).unwrap();
    for (at, path) in [(1, "src/lib.rs"), (3, "tests/t.rs")] {
        let Block::ToolResult { content, .. } = &messages[at].content[0] else {
            panic!()
        };
        assert!(content.starts_with(&format!("[evicted: {path}")), "{content}");
    }
}

/// A handler's changed paths are data on its result, and the router records them as
/// written; a refused write returns none.
#[tokio::test]
async fn write_file_returns_the_path_it_changed() {
    let f = fixture();
    let mut ctx = forge_ctx(&f, false);
    let ToolOutcome::Result(result) =
        call(&mut ctx, "write_file", json!({"path": "./src//new.rs", "content": "x"})).await
    else {
        panic!("no result")
    };
    assert_eq!(result.changed, ["src/new.rs"]);
    assert!(!result.is_error);
    let ToolOutcome::Result(refused) = call(&mut ctx, "write_file", json!({"path": "README.md", "content": "x"})).await
    else {
        panic!("no result")
    };
    assert!(refused.is_error && refused.changed.is_empty(), "{refused:?}");
    assert_eq!(ctx.written_paths(), ["src/new.rs"]);
}

// --- the error model through the day's wrappers ---------------------------------------

fn docker_refused(operation: &'static str) -> crate::sandbox::SandboxError {
    crate::sandbox::SandboxError::Container {
        operation,
        container: "pace-run-forge-1".into(),
        source: bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "unable to find user nosuchuser".into(),
        },
    }
}

#[test]
fn a_docker_failure_inside_forges_run_keeps_the_docker_hint() {
    use crate::error::{ExitKind, PaceError};
    let err = crate::day::DayError::ToolAborted {
        agent: "FORGE".into(),
        tool: "run".into(),
        source: Box::new(ToolAbort::Sandbox(docker_refused("start"))),
    };
    let shown = PaceError::from_error(&err);
    assert_eq!(shown.kind, ExitKind::Infrastructure);
    assert!(
        shown.message.starts_with(
            "FORGE tool `run` aborted: the sandbox failed while running a FORGE command: failed to start container"
        ),
        "{}",
        shown.message
    );
    let hint = shown.hint.unwrap_or_default();
    assert!(hint.contains("the Docker daemon refused the operation"), "{hint}");
    assert!(hint.contains("pace doctor"), "{hint}");
}

#[test]
fn the_day_error_answers_with_the_error_it_wraps() {
    use crate::day::{DayError, Signal};
    use crate::error::{ExitKind, exit_kind, hint};
    use crate::llm::LlmError;
    use crate::sandbox::SandboxError;
    let gate = DayError::Sandbox(docker_refused("start"));
    assert!(hint(&gate).is_some_and(|h| h.contains("the Docker daemon refused the operation")));
    assert_eq!(exit_kind(&gate), ExitKind::Infrastructure);
    let refusal = crate::safe_write::OwnFileError::Symlink {
        path: PathBuf::from(".pace/day-1/gate"),
        target: "/etc".into(),
    };
    let link = SandboxError::Io {
        path: PathBuf::from(".pace/day-1/gate/junit.xml"),
        source: std::io::Error::from(refusal),
    };
    assert_eq!(exit_kind(&DayError::Sandbox(link)), ExitKind::Config);
    let link_in_run = SandboxError::Workspace {
        path: PathBuf::from("/repo"),
        source: std::io::Error::from(crate::safe_write::OwnFileError::Symlink {
            path: PathBuf::from(".pace"),
            target: "/tmp".into(),
        }),
    };
    let aborted = DayError::ToolAborted {
        agent: "FORGE".into(),
        tool: "run".into(),
        source: Box::new(ToolAbort::Sandbox(link_in_run)),
    };
    assert_eq!(exit_kind(&aborted), ExitKind::Config);
    let budget = DayError::Llm(LlmError::Budget("used 10 of 9 tokens".into()));
    assert_eq!(exit_kind(&budget), ExitKind::Budget);
    assert!(hint(&budget).is_some_and(|h| h.contains("budget.max_tokens")));
    let key = DayError::Llm(LlmError::MissingKey("ANTHROPIC_API_KEY".into()));
    assert_eq!(exit_kind(&key), ExitKind::Config);
    let checkout = DayError::Checkout(crate::git::GitError::Failed {
        args: "rev-parse".into(),
        dir: PathBuf::from("/repo"),
        stderr: "fatal".into(),
    });
    assert_eq!(exit_kind(&checkout), ExitKind::Config);
    assert_eq!(
        exit_kind(&DayError::Interrupted(Signal::Terminate)),
        ExitKind::Terminated
    );
    let repo_root = DayError::RepoRoot(std::io::Error::other("gone"));
    assert_eq!(exit_kind(&repo_root), ExitKind::Infrastructure);
    assert_eq!(hint(&repo_root), None);
}
