//! The editor through the router, on a temporary git repository: every command, its
//! errors, the path rules, and how both providers are offered it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::day::tools::{ToolContext, ToolOutcome, ToolResult, Toolset, dispatch, forge_tools};
use crate::llm::{Block, ChatRequest, Message, Role};
use crate::redact::Redactor;

struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Repo {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
}

/// `root` (a git repository with `src/`, `tests/`, `docs/`, `.git`, `.pace`, a gitignored
/// `src/.env`, links in and out) and `outside` (what the editor must never touch).
fn repo() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(dir.path()).unwrap();
    let root = base.join("repo");
    let outside = base.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(root.join("src/nested/deeper")).unwrap();
    fs::create_dir_all(root.join("tests")).unwrap();
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::create_dir_all(root.join(".pace/context")).unwrap();
    let status = std::process::Command::new("git")
        .args(["init", "-q"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());
    let r = Repo {
        _dir: dir,
        root,
        outside,
    };
    r.write("src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n");
    r.write("src/nested/mod.rs", "// nested\n");
    r.write("src/nested/deeper/far.rs", "// too deep to list\n");
    r.write("src/.hidden", "x\n");
    r.write("docs/guide.md", "# guide\n");
    r.write(".gitignore", ".env\n");
    r.write("src/.env", "TOKEN=dont-leak-me\n");
    fs::write(r.outside.join("secret.txt"), "outside secret\n").unwrap();
    std::os::unix::fs::symlink("lib.rs", r.path("src/inlink")).unwrap();
    std::os::unix::fs::symlink(r.outside.join("secret.txt"), r.path("src/outfile")).unwrap();
    std::os::unix::fs::symlink(&r.outside, r.path("src/outdir")).unwrap();
    r
}

fn forge<'a>(r: &Repo) -> ToolContext<'a> {
    ToolContext::new(
        Toolset::Forge { tdd: false },
        &r.root,
        &["src/", "tests/"],
        None,
        Redactor::default(),
        Duration::from_secs(60),
    )
    .unwrap()
}

async fn edit(ctx: &mut ToolContext<'_>, input: Value) -> ToolOutcome {
    dispatch(ctx, "toolu_1", super::NAME, &input).await
}

#[track_caller]
fn ok(outcome: &ToolOutcome) -> (String, Vec<String>) {
    match outcome {
        ToolOutcome::Result(ToolResult {
            content,
            is_error: false,
            changed,
        }) => (content.clone(), changed.clone()),
        other => panic!("expected a result, got {other:?}"),
    }
}

#[track_caller]
fn error(outcome: &ToolOutcome, needle: &str) -> String {
    match outcome {
        ToolOutcome::Result(ToolResult {
            content,
            is_error: true,
            changed,
        }) => {
            assert!(changed.is_empty(), "a refused call changed {changed:?}");
            assert!(content.starts_with("ERROR: "), "{content}");
            assert!(!content.starts_with("ERROR: ERROR"), "doubled prefix: {content}");
            assert!(content.contains(needle), "expected {needle:?} in {content}");
            content.clone()
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

fn numbered_file(lines: usize) -> String {
    (1..=lines)
        .flat_map(|i| ["line ".to_string(), i.to_string(), "\n".to_string()])
        .collect()
}

// ------------------------------------------------------------------ view

#[tokio::test]
async fn view_numbers_lines_and_ranges_read_to_the_end_or_are_refused_out_of_bounds() {
    let r = repo();
    r.write("src/ten.txt", &numbered_file(10));
    let mut ctx = forge(&r);
    let (whole, changed) = ok(&edit(&mut ctx, json!({"command": "view", "path": "src/lib.rs"})).await);
    assert_eq!(whole, "     1\tpub fn answer() -> u32 {\n     2\t    42\n     3\t}\n");
    assert!(changed.is_empty());

    let (part, _) = ok(&edit(
        &mut ctx,
        json!({"command": "view", "path": "src/ten.txt", "view_range": [3, 4]}),
    )
    .await);
    assert_eq!(part, "     3\tline 3\n     4\tline 4\n[lines 3-4 of 10]");
    let (tail, _) = ok(&edit(
        &mut ctx,
        json!({"command": "view", "path": "src/ten.txt", "view_range": [9, -1]}),
    )
    .await);
    assert_eq!(tail, "     9\tline 9\n    10\tline 10\n[lines 9-10 of 10]");
    // An end past the file reads to its end.
    let (past, _) = ok(&edit(
        &mut ctx,
        json!({"command": "view", "path": "src/ten.txt", "view_range": [10, 500]}),
    )
    .await);
    assert_eq!(past, "    10\tline 10\n[lines 10-10 of 10]");

    for (range, needle) in [
        (json!([0, 3]), "starts at line 0, but src/ten.txt has lines 1 to 10"),
        (json!([11, -1]), "starts at line 11"),
        (json!([5, 2]), "ends at 2, before its start 5"),
        (json!([5]), "must be two line numbers"),
        (json!([1, 2, 3]), "must be two line numbers"),
        (json!(["1", "2"]), "'view_range' argument (array of integers)"),
    ] {
        let out = edit(
            &mut ctx,
            json!({"command": "view", "path": "src/ten.txt", "view_range": range}),
        )
        .await;
        error(&out, needle);
    }
}

#[tokio::test]
async fn view_lists_a_directory_two_levels_deep_without_hidden_or_internal_entries() {
    let r = repo();
    let mut ctx = forge(&r);
    let (listing, _) = ok(&edit(&mut ctx, json!({"command": "view", "path": "src"})).await);
    assert!(
        listing.starts_with("Files and directories up to 2 levels deep in src"),
        "{listing}"
    );
    for present in ["src/lib.rs", "src/nested/", "src/nested/mod.rs", "src/nested/deeper/"] {
        assert!(listing.lines().any(|l| l == present), "{present} missing:\n{listing}");
    }
    assert!(!listing.contains("far.rs"), "three levels deep:\n{listing}");
    assert!(!listing.contains(".hidden") && !listing.contains(".env"), "{listing}");
    assert!(!listing.contains("secret.txt"), "followed a link out:\n{listing}");
    let (root, _) = ok(&edit(&mut ctx, json!({"command": "view", "path": "."})).await);
    assert!(!root.contains(".git") && !root.contains(".pace"), "{root}");
    error(
        &edit(
            &mut ctx,
            json!({"command": "view", "path": "src", "view_range": [1, 2]}),
        )
        .await,
        "is a directory",
    );
}

#[tokio::test]
async fn view_refuses_what_read_file_refuses() {
    let r = repo();
    let mut ctx = forge(&r);
    for (path, needle) in [
        (".GIT/config", "cannot access"),
        (".pace/context", "cannot access"),
        ("src/.env", "secret"),
        ("src/outfile", "outside the repository"),
        ("../outside/secret.txt", "`..`"),
        ("src/missing.rs", "File not found"),
    ] {
        let out = edit(&mut ctx, json!({"command": "view", "path": path})).await;
        let text = error(&out, needle);
        assert!(
            !text.contains("outside secret") && !text.contains("dont-leak-me"),
            "{text}"
        );
    }
}

// ------------------------------------------------------------------ str_replace

#[tokio::test]
async fn str_replace_changes_exactly_one_occurrence_and_reports_the_changed_path() {
    let r = repo();
    let mut ctx = forge(&r);
    let out = edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "./src/lib.rs", "old_str": "    42\n}", "new_str": "    // the answer\n    42\n}"}),
    )
    .await;
    let (text, changed) = ok(&out);
    assert_eq!(changed, ["src/lib.rs"]);
    assert_eq!(
        r.read("src/lib.rs"),
        "pub fn answer() -> u32 {\n    // the answer\n    42\n}\n"
    );
    assert!(text.starts_with("The file src/lib.rs has been edited."), "{text}");
    assert!(
        text.contains("     2\t    // the answer\n"),
        "the snippet shows the edit: {text}"
    );
    assert_eq!(ctx.written_paths(), ["src/lib.rs"]);
    assert!(ctx.changed_by_call().contains_key("toolu_1"));

    // Deleting: `new_str` absent or empty.
    ok(&edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/lib.rs", "old_str": "    // the answer\n"}),
    )
    .await);
    assert_eq!(r.read("src/lib.rs"), "pub fn answer() -> u32 {\n    42\n}\n");
}

#[tokio::test]
async fn str_replace_absent_string_shows_the_nearest_lines_and_changes_nothing() {
    let r = repo();
    r.write(
        "src/a.go",
        "package a\n\nfunc Greet(name string) string {\n\treturn \"Hello, \" + name\n}\n",
    );
    let before = r.read("src/a.go");
    let mut ctx = forge(&r);
    let out = edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/a.go", "old_str": "return \"Hello \" + name", "new_str": "x"}),
    )
    .await;
    let text = error(&out, "does not occur verbatim in src/a.go");
    assert!(text.contains("     4\t\treturn \"Hello, \" + name"), "{text}");
    // Whitespace only: the lines are named with their exact indentation.
    let out = edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/a.go", "old_str": "func Greet(name string) string {\n    return \"Hello, \" + name\n}", "new_str": "x"}),
    )
    .await;
    error(&out, "Lines 3-5 match it when whitespace is ignored");
    assert_eq!(r.read("src/a.go"), before);
}

#[tokio::test]
async fn str_replace_ambiguous_string_names_every_line_and_changes_nothing() {
    let r = repo();
    r.write("src/dup.txt", "x = 1\ny = 2\nx = 1\nz\nx = 1\n");
    let mut ctx = forge(&r);
    let out = edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/dup.txt", "old_str": "x = 1", "new_str": "x = 9"}),
    )
    .await;
    error(&out, "occurs 3 times in src/dup.txt, at lines 1, 3, 5");
    // Overlapping occurrences are ambiguous too.
    r.write("src/aaa.txt", "aaa\n");
    let out = edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/aaa.txt", "old_str": "aa", "new_str": "b"}),
    )
    .await;
    error(&out, "occurs 2 times");
    assert_eq!(r.read("src/dup.txt"), "x = 1\ny = 2\nx = 1\nz\nx = 1\n");
    // A multi-line `old_str` makes it unique.
    ok(&edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/dup.txt", "old_str": "z\nx = 1", "new_str": "z\nx = 9"}),
    )
    .await);
    assert_eq!(r.read("src/dup.txt"), "x = 1\ny = 2\nx = 1\nz\nx = 9\n");
}

#[tokio::test]
async fn str_replace_refuses_empty_and_identical_strings() {
    let r = repo();
    let mut ctx = forge(&r);
    error(
        &edit(
            &mut ctx,
            json!({"command": "str_replace", "path": "src/lib.rs", "old_str": "", "new_str": "x"}),
        )
        .await,
        "`old_str` is empty",
    );
    error(
        &edit(
            &mut ctx,
            json!({"command": "str_replace", "path": "src/lib.rs", "old_str": "42", "new_str": "42"}),
        )
        .await,
        "are the same",
    );
    error(
        &edit(
            &mut ctx,
            json!({"command": "str_replace", "path": "src/lib.rs", "new_str": "42"}),
        )
        .await,
        "requires `old_str`",
    );
    error(
        &edit(
            &mut ctx,
            json!({"command": "str_replace", "path": "src/new.rs", "old_str": "a", "new_str": "b"}),
        )
        .await,
        "File not found: src/new.rs. Use the `create` command",
    );
}

#[tokio::test]
async fn crlf_files_match_lf_strings_and_keep_their_line_endings() {
    let r = repo();
    r.write("src/win.txt", "one\r\ntwo\r\nthree\r\n");
    let mut ctx = forge(&r);
    ok(&edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/win.txt", "old_str": "one\ntwo", "new_str": "one\n2\n2b"}),
    )
    .await);
    assert_eq!(r.read("src/win.txt"), "one\r\n2\r\n2b\r\nthree\r\n");
    // A CRLF `old_str` matches too; inserted text gets CRLF.
    ok(&edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/win.txt", "old_str": "2\r\n2b", "new_str": "two"}),
    )
    .await);
    ok(&edit(
        &mut ctx,
        json!({"command": "insert", "path": "src/win.txt", "insert_line": 3, "insert_text": "four"}),
    )
    .await);
    assert_eq!(r.read("src/win.txt"), "one\r\ntwo\r\nthree\r\nfour\r\n");
    let (view, _) = ok(&edit(
        &mut ctx,
        json!({"command": "view", "path": "src/win.txt", "view_range": [1, 1]}),
    )
    .await);
    assert!(view.starts_with("     1\tone\n"), "no \\r shown: {view:?}");
}

// ------------------------------------------------------------------ insert

#[tokio::test]
async fn insert_at_the_top_after_a_line_at_the_end_and_never_past_it() {
    let r = repo();
    r.write("src/list.txt", "b\nc");
    let mut ctx = forge(&r);
    ok(&edit(
        &mut ctx,
        json!({"command": "insert", "path": "src/list.txt", "insert_line": 0, "insert_text": "a"}),
    )
    .await);
    assert_eq!(r.read("src/list.txt"), "a\nb\nc");
    let (text, changed) = ok(&edit(
        &mut ctx,
        json!({"command": "insert", "path": "src/list.txt", "insert_line": 3, "insert_text": "d\ne\n"}),
    )
    .await);
    assert_eq!(
        r.read("src/list.txt"),
        "a\nb\nc\nd\ne\n",
        "the last line got its line break first"
    );
    assert_eq!(changed, ["src/list.txt"]);
    assert!(
        text.starts_with("Inserted 2 line(s) after line 3 of src/list.txt"),
        "{text}"
    );
    // Claude's earlier editors call the text `new_str`.
    ok(&edit(
        &mut ctx,
        json!({"command": "insert", "path": "src/list.txt", "insert_line": 1, "new_str": "a2"}),
    )
    .await);
    assert_eq!(r.read("src/list.txt"), "a\na2\nb\nc\nd\ne\n");

    for (line, needle) in [
        (json!(7), "`insert_line` 7 is outside src/list.txt, which has 6 lines"),
        (json!(-1), "`insert_line` -1 is outside"),
    ] {
        let out = edit(
            &mut ctx,
            json!({"command": "insert", "path": "src/list.txt", "insert_line": line, "insert_text": "z"}),
        )
        .await;
        error(&out, needle);
    }
    error(
        &edit(
            &mut ctx,
            json!({"command": "insert", "path": "src/list.txt", "insert_text": "z"}),
        )
        .await,
        "requires `insert_line`",
    );
    error(
        &edit(
            &mut ctx,
            json!({"command": "insert", "path": "src/list.txt", "insert_line": "2", "insert_text": "z"}),
        )
        .await,
        "'insert_line' argument (integer)",
    );
    assert_eq!(r.read("src/list.txt"), "a\na2\nb\nc\nd\ne\n");
}

// ------------------------------------------------------------------ create

#[tokio::test]
async fn create_makes_new_files_and_never_overwrites() {
    let r = repo();
    let mut ctx = forge(&r);
    let (text, changed) = ok(&edit(
        &mut ctx,
        json!({"command": "create", "path": "tests/new/t.sh", "file_text": "echo ok\n"}),
    )
    .await);
    assert_eq!(r.read("tests/new/t.sh"), "echo ok\n");
    assert_eq!(changed, ["tests/new/t.sh"]);
    assert_eq!(text, "Created tests/new/t.sh (1 line, 8 bytes)");

    let out = edit(
        &mut ctx,
        json!({"command": "create", "path": "src/lib.rs", "file_text": "gone"}),
    )
    .await;
    error(&out, "src/lib.rs already exists (a file); create makes new files only");
    assert!(r.read("src/lib.rs").contains("42"));
    error(
        &edit(
            &mut ctx,
            json!({"command": "create", "path": "src/nested", "file_text": "x"}),
        )
        .await,
        "'src/nested' is a directory",
    );
    error(
        &edit(&mut ctx, json!({"command": "create", "path": "src/empty.txt"})).await,
        "requires `file_text`",
    );
    ok(&edit(
        &mut ctx,
        json!({"command": "create", "path": "src/empty.txt", "file_text": ""}),
    )
    .await);
    assert_eq!(r.read("src/empty.txt"), "");
}

// ------------------------------------------------------------------ path rules

#[tokio::test]
async fn every_write_command_obeys_the_path_rules() {
    let r = repo();
    r.write("README.md", "# readme\n");
    let mut ctx = forge(&r);
    let writes = |path: &str| {
        [
            json!({"command": "create", "path": path, "file_text": "x"}),
            json!({"command": "str_replace", "path": path, "old_str": "readme", "new_str": "x"}),
            json!({"command": "insert", "path": path, "insert_line": 0, "insert_text": "x"}),
        ]
    };
    for (path, needle) in [
        ("README.md", "outside the writable directories"),
        ("docs/guide.md", "outside the writable directories"),
        (".GIT/config", "cannot access"),
        ("src/.git/config", "cannot access"),
        ("src/.PACE/x", "cannot access"),
        ("src/inlink", "symbolic link"),
        ("src/outfile", "symbolic link"),
        ("src/outdir/x.txt", "outside the repository"),
        ("/etc/passwd", "absolute"),
        ("src/../../outside/secret.txt", "`..`"),
    ] {
        for input in writes(path) {
            let out = edit(&mut ctx, input.clone()).await;
            error(&out, needle);
        }
    }
    // A gitignored secret inside a writable directory is not opened for an edit either.
    let out = edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/.env", "old_str": "TOKEN", "new_str": "X"}),
    )
    .await;
    let text = error(&out, "secret");
    assert!(!text.contains("dont-leak-me"));
    assert_eq!(r.read("src/.env"), "TOKEN=dont-leak-me\n");
    assert_eq!(
        fs::read_to_string(r.outside.join("secret.txt")).unwrap(),
        "outside secret\n"
    );
    assert_eq!(fs::read_dir(&r.outside).unwrap().count(), 1);
    assert_eq!(r.read("README.md"), "# readme\n");
    assert!(ctx.written_paths().is_empty());
}

#[tokio::test]
async fn unknown_and_undo_commands_are_explained() {
    let r = repo();
    let mut ctx = forge(&r);
    error(
        &edit(&mut ctx, json!({"command": "delete", "path": "src/lib.rs"})).await,
        "unknown command `delete` of str_replace_based_edit_tool: use one of view, str_replace, insert, create",
    );
    error(
        &edit(&mut ctx, json!({"command": "undo_edit", "path": "src/lib.rs"})).await,
        "`undo_edit` is not available",
    );
    error(
        &edit(&mut ctx, json!({"path": "src/lib.rs"})).await,
        "requires a 'command' argument",
    );
}

#[tokio::test]
async fn binary_and_non_utf8_files_are_not_edited() {
    let r = repo();
    fs::write(r.path("src/blob.bin"), b"ab\0cd").unwrap();
    fs::write(r.path("src/latin1.txt"), b"caf\xe9\n").unwrap();
    let mut ctx = forge(&r);
    error(
        &edit(&mut ctx, json!({"command": "view", "path": "src/blob.bin"})).await,
        "binary",
    );
    error(
        &edit(
            &mut ctx,
            json!({"command": "str_replace", "path": "src/latin1.txt", "old_str": "caf", "new_str": "x"}),
        )
        .await,
        "not UTF-8",
    );
    assert_eq!(fs::read(r.path("src/latin1.txt")).unwrap(), b"caf\xe9\n");
}

// ------------------------------------------------------------------ providers

fn forge_request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        agent: "FORGE".into(),
        model: "claude-sonnet-4-6".into(),
        system: "You are FORGE.".into(),
        messages,
        tools: forge_tools(true),
        max_tokens: 100,
        response_schema: None,
    }
}

/// Claude gets the defined tool as `{type, name}` (the API refuses a schema beside a
/// defined type); an openai-compatible server the same tool as a function with its schema.
#[test]
fn the_editor_is_offered_as_claude_s_own_tool_and_as_a_function_elsewhere() {
    let request = forge_request(vec![Message::user_text("go")]);
    let anthropic = crate::llm::anthropic::request_body(&request);
    let tools = anthropic["tools"].as_array().unwrap();
    assert_eq!(
        tools[0],
        json!({"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"})
    );
    assert!(
        tools[1..]
            .iter()
            .all(|t| t.get("type").is_none() && t["input_schema"].is_object())
    );

    // A model that is not trained on it (a local model behind a server's Anthropic
    // endpoint, Claude 3) gets the same tool with its schema.
    for model in ["qwen2.5-coder:7b", "claude-3-7-sonnet-latest", "smollm2-135m"] {
        let mut other = request.clone();
        other.model = model.into();
        let body = crate::llm::anthropic::request_body(&other);
        let editor = &body["tools"][0];
        assert_eq!(editor["name"], "str_replace_based_edit_tool", "{model}");
        assert!(editor.get("type").is_none(), "{model}: {editor}");
        assert!(editor["input_schema"]["properties"]["old_str"].is_object(), "{model}");
    }
    for model in [
        "claude-opus-4-1",
        "anthropic/claude-haiku-4-5",
        "anthropic.claude-sonnet-4-5-v1:0",
    ] {
        let mut claude = request.clone();
        claude.model = model.into();
        let body = crate::llm::anthropic::request_body(&claude);
        assert_eq!(body["tools"][0]["type"], "text_editor_20250728", "{model}");
    }

    let openai = crate::llm::openai::request_body(&request);
    let function = &openai["tools"][0];
    assert_eq!(function["type"], "function");
    assert_eq!(function["function"]["name"], "str_replace_based_edit_tool");
    assert_eq!(
        function["function"]["parameters"]["properties"]["command"]["enum"],
        json!(["view", "str_replace", "insert", "create"])
    );
    assert!(!openai.to_string().contains("text_editor_20250728"));
}

/// The tool layer writes `ERROR: ` once; the openai provider (no error flag) must not add
/// a second one.
#[tokio::test]
async fn a_tool_error_reaches_the_openai_wire_with_one_prefix() {
    let r = repo();
    let mut ctx = forge(&r);
    let outcome = edit(&mut ctx, json!({"command": "view", "path": "src/missing.rs"})).await;
    let result = outcome.to_block("c1").unwrap();
    let request = forge_request(vec![
        Message::user_text("go"),
        Message {
            role: Role::Assistant,
            content: vec![Block::ToolUse {
                id: "c1".into(),
                name: super::NAME.into(),
                input: json!({"command": "view", "path": "src/missing.rs"}),
            }],
        },
        Message {
            role: Role::User,
            content: vec![result],
        },
    ]);
    let body = crate::llm::openai::request_body(&request);
    let tool_message = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .cloned()
        .unwrap();
    let content = tool_message["content"].as_str().unwrap();
    assert!(
        content.starts_with("ERROR: File not found: src/missing.rs"),
        "{content}"
    );
    assert!(!content.contains("ERROR: ERROR"), "{content}");
}

// ------------------------------------------------------------------ eviction

#[tokio::test]
async fn a_view_is_evicted_by_a_later_edit_and_big_edit_texts_are_stubbed() {
    use crate::day::tools::evict::{KEEP_WRITE_TURNS, evict_stale};
    let r = repo();
    let mut ctx = forge(&r);
    let mut messages = vec![Message::user_text("go")];
    let big = format!("{}\n", "// filler line\n".repeat(60));
    let steps = [
        json!({"command": "view", "path": "src/lib.rs"}),
        json!({"command": "create", "path": "src/big.rs", "file_text": big}),
        json!({"command": "str_replace", "path": "src/lib.rs", "old_str": "42", "new_str": "43"}),
        json!({"command": "view", "path": "src/lib.rs"}),
    ];
    for (i, input) in steps.iter().enumerate() {
        let id = format!("toolu_{i}");
        let outcome = dispatch(&mut ctx, &id, super::NAME, input).await;
        messages.push(Message {
            role: Role::Assistant,
            content: vec![Block::ToolUse {
                id: id.clone(),
                name: super::NAME.into(),
                input: input.clone(),
            }],
        });
        messages.push(Message {
            role: Role::User,
            content: vec![outcome.to_block(&id).unwrap()],
        });
    }
    for _ in 0..KEEP_WRITE_TURNS {
        messages.push(Message {
            role: Role::Assistant,
            content: vec![Block::Text {
                text: "thinking".into(),
            }],
        });
        messages.push(Message::user_text("go on"));
    }
    evict_stale(&mut messages, ctx.changed_by_call());
    let result = |i: usize| match &messages[2 + 2 * i].content[0] {
        Block::ToolResult { content, .. } => content.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        result(0).starts_with("[evicted: src/lib.rs was rewritten"),
        "{}",
        result(0)
    );
    assert!(result(3).contains("43"), "the view after the edit stays: {}", result(3));
    let Block::ToolUse { input, .. } = &messages[3].content[0] else {
        panic!()
    };
    assert_eq!(input["file_text"], format!("[{} bytes written]", big.len()));
    let Block::ToolUse { input, .. } = &messages[5].content[0] else {
        panic!()
    };
    assert_eq!(input["old_str"], "42", "small edit texts stay");
    crate::day::tools::check_pairing(&messages).unwrap();
}

// ------------------------------------------------------------------ SCRIBE

fn scribe<'a>(r: &Repo) -> ToolContext<'a> {
    ToolContext::new(
        Toolset::Scribe,
        &r.root,
        &[],
        Some(Path::new("docs")),
        Redactor::default(),
        Duration::from_secs(60),
    )
    .unwrap()
}

/// SCRIBE's update brief asks it to read the documents it keeps: its `read_file` opens
/// them (and nothing else under `.pace/`).
#[tokio::test]
async fn scribe_reads_the_context_documents_it_writes() {
    let r = repo();
    r.write(".pace/context/engineering.md", "# engineering\n");
    r.write(".pace/day-1/run.json", "{}");
    let mut ctx = scribe(&r);
    let read = |path: &str| json!({"path": path});
    let (text, _) = ok(&dispatch(&mut ctx, "s1", "read_file", &read("context:engineering.md")).await);
    assert_eq!(text, "# engineering\n");
    let (text, _) = ok(&dispatch(&mut ctx, "s2", "read_file", &read(".pace/context/engineering.md")).await);
    assert_eq!(text, "# engineering\n");
    error(
        &dispatch(&mut ctx, "s3", "read_file", &read("context:product.md")).await,
        "does not exist yet: write it with write_doc",
    );
    error(
        &dispatch(&mut ctx, "s4", "read_file", &read("context:../day-1/run.json")).await,
        "not a context document",
    );
    error(
        &dispatch(&mut ctx, "s5", "read_file", &read(".pace/day-1/run.json")).await,
        "cannot access",
    );
    let (listed, _) = ok(&dispatch(&mut ctx, "s7", "list_dir", &read("context:")).await);
    assert_eq!(listed, "file  engineering.md");
    // A link planted where the documents live is not followed.
    fs::remove_dir_all(r.path(".pace/context")).unwrap();
    fs::create_dir_all(r.outside.join("ctx")).unwrap();
    fs::write(r.outside.join("ctx/engineering.md"), "outside secret").unwrap();
    std::os::unix::fs::symlink(r.outside.join("ctx"), r.path(".pace/context")).unwrap();
    let text = error(
        &dispatch(&mut ctx, "s6", "read_file", &read("context:engineering.md")).await,
        "symbolic link",
    );
    assert!(!text.contains("outside secret"));
}
