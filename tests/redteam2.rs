//! Red team of the editor (`str_replace_based_edit_tool`), SCRIBE's reads and the registry
//! credentials. Each test is an attack written as the model (or a hostile repository) would
//! run it, asserting the *secure* behaviour: a failing test is an open hole.
//!
//! Holes found and fixed on this branch:
//! - `gitignore_negation_unlocks_an_ignored_secret_for_view`: the model created
//!   `src/.gitignore` with `!.env`, after which git no longer called `src/.env` ignored and
//!   `view` showed it. Secret-looking files are now readable only when git tracks them
//!   (`contained_secret_reads_*` failed too: an untracked, not ignored `.ENV.local` was read).
//! - `creds_store_name_with_a_slash_runs_a_program_of_the_repository`: `credsStore:
//!   "x/evil"` made pace run `docker-credential-x/evil` relative to its working directory
//!   (the checkout). Helper names are now plain names, looked up on `PATH` only.
//!
//! - `init_prints_no_remote_credential_nor_terminal_control`: an ESC/BEL in the `origin`
//!   URL's host reached the terminal; the host is now escaped (the token never was printed).
//!
//! Open (ignored, needs a larger change or a decision): `gitignore_negation_uploads_*`: the
//! same negation puts the ignored `src/.env` into the sandbox, where `run cat src/.env` shows
//! it; `docs_dir_outside_*`: `source.docs_dir` may point SCRIBE's `docs:` outside the checkout.
//!
//! The other tests are attacks that are contained today (kept as regression tests).

use std::path::PathBuf;
use std::time::Duration;

use pace::day::tools::{ToolContext, ToolOutcome, Toolset, dispatch};
use pace::env::Env;
use pace::redact::Redactor;
use serde_json::{Value, json};

use crate::support::project::git;

const SECRET: &str = "sk-live-redteam2-0123456789";
const OUTSIDE: &str = "outside-content-redteam2\n";

/// `outer/repo` with tracked `src/lib.rs`, `tests/t.rs`, a `.gitignore` ignoring `.env`,
/// an ignored `.env` and `src/.env` holding [`SECRET`], and `outer/outside.txt`.
struct Repo {
    outer: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        let p = outer.path().join("repo");
        std::fs::create_dir_all(p.join("src")).unwrap();
        std::fs::create_dir_all(p.join("tests")).unwrap();
        git(&p, &["init", "-q"]);
        std::fs::write(p.join(".gitignore"), ".env\n").unwrap();
        std::fs::write(p.join("src/lib.rs"), "pub fn a() {}\n").unwrap();
        std::fs::write(p.join("tests/t.rs"), "#[test]\nfn t() {}\n").unwrap();
        git(&p, &["add", "."]);
        git(&p, &["commit", "-qm", "init"]);
        std::fs::write(p.join(".env"), format!("API_KEY={SECRET}\n")).unwrap();
        std::fs::write(p.join("src/.env"), format!("API_KEY={SECRET}\n")).unwrap();
        std::fs::write(outer.path().join("outside.txt"), OUTSIDE).unwrap();
        Self { outer }
    }

    fn root(&self) -> PathBuf {
        self.outer.path().join("repo")
    }

    fn outside(&self) -> PathBuf {
        self.outer.path().join("outside.txt")
    }

    fn forge(&self) -> ToolContext<'static> {
        ToolContext::new(
            Toolset::Forge { tdd: false },
            &self.root(),
            &["src", "tests"],
            None,
            Redactor::new(Vec::new()),
            Duration::from_secs(5),
        )
        .unwrap()
    }
}

async fn call(ctx: &mut ToolContext<'_>, name: &str, input: &Value) -> (String, bool) {
    match dispatch(ctx, "rt2", name, input).await {
        ToolOutcome::Result(r) => (r.content, r.is_error),
        other => panic!("{name} {input}: unexpected {other:?}"),
    }
}

async fn edit(ctx: &mut ToolContext<'_>, input: Value) -> (String, bool) {
    call(ctx, "str_replace_based_edit_tool", &input).await
}

// ------------------------------------------------------------------ item 1: the editor

#[tokio::test]
async fn gitignore_negation_unlocks_an_ignored_secret_for_view() {
    let repo = Repo::new();
    let mut ctx = repo.forge();
    let (before, refused) = edit(&mut ctx, json!({"command": "view", "path": "src/.env"})).await;
    assert!(
        refused && !before.contains(SECRET),
        "ignored src/.env was shown: {before}"
    );
    // A `.gitignore` in a writable directory is an ordinary file for the write rules...
    let (created, failed) = edit(
        &mut ctx,
        json!({"command": "create", "path": "src/.gitignore", "file_text": "!.env\n"}),
    )
    .await;
    assert!(!failed, "{created}");
    // ...and must not change what counts as a secret.
    let (after, _) = edit(&mut ctx, json!({"command": "view", "path": "src/.env"})).await;
    assert!(
        !after.contains(SECRET),
        "the negated ignore rule unlocked src/.env: {after}"
    );
    let (range, _) = edit(
        &mut ctx,
        json!({"command": "view", "path": "src/.env", "view_range": [1, -1]}),
    )
    .await;
    assert!(!range.contains(SECRET), "{range}");
}

#[tokio::test]
async fn contained_secret_reads_through_links_case_and_spelling() {
    let repo = Repo::new();
    let root = repo.root();
    std::os::unix::fs::symlink("../.env", root.join("src/notes.txt")).unwrap();
    std::os::unix::fs::symlink(repo.outside(), root.join("src/out.txt")).unwrap();
    std::fs::write(root.join(".ENV.local"), SECRET).unwrap();
    let mut ctx = repo.forge();
    for path in [
        ".env",
        "./.env",
        "src//.env",
        "src/./.env",
        "src/notes.txt",
        "src/out.txt",
        ".ENV.local",
        "src/../.env",
        "/etc/passwd",
        "src/.env\u{0}",
        ".git/config",
        ".GiT/config",
        "src/.PACE/x",
    ] {
        let (text, is_error) = edit(&mut ctx, json!({"command": "view", "path": path})).await;
        assert!(is_error, "view {path:?} was answered: {text}");
        assert!(!text.contains(SECRET) && !text.contains(OUTSIDE), "{path:?}: {text}");
    }
    // A directory view lists neither hidden files nor the link targets' contents.
    let (listing, _) = edit(&mut ctx, json!({"command": "view", "path": "."})).await;
    assert!(!listing.contains(SECRET) && !listing.contains(".env"), "{listing}");
    // SCRIBE's reads: `context:` names only the four documents, `repo:` follows the read rules.
    let mut scribe = ToolContext::new(
        Toolset::Scribe,
        &root,
        &[],
        None,
        Redactor::new(Vec::new()),
        Duration::from_secs(5),
    )
    .unwrap();
    for path in [
        "context:../../.env",
        "context:/etc/passwd",
        ".pace/context/../../.env",
        "repo:.env",
        "docs:.env",
        "repo:src/notes.txt",
    ] {
        let (text, is_error) = call(&mut scribe, "read_file", &json!({"path": path})).await;
        assert!(is_error && !text.contains(SECRET), "read_file {path:?}: {text}");
    }
}

#[tokio::test]
async fn contained_str_replace_on_a_file_swapped_for_a_link_after_view() {
    let repo = Repo::new();
    let root = repo.root();
    let mut ctx = repo.forge();
    let (_, failed) = edit(&mut ctx, json!({"command": "view", "path": "src/lib.rs"})).await;
    assert!(!failed);
    // Between the model's view and its edit, something (a `run` write-back, a race) puts a
    // link where the file was.
    std::fs::write(repo.outside(), "pub fn a() {}\n").unwrap();
    std::fs::remove_file(root.join("src/lib.rs")).unwrap();
    std::os::unix::fs::symlink(repo.outside(), root.join("src/lib.rs")).unwrap();
    let (text, is_error) = edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/lib.rs", "old_str": "pub fn a() {}", "new_str": "pwned"}),
    )
    .await;
    assert!(is_error, "{text}");
    assert_eq!(std::fs::read_to_string(repo.outside()).unwrap(), "pub fn a() {}\n");
    // A hard link to a file outside is not edited either.
    std::fs::remove_file(root.join("src/lib.rs")).unwrap();
    std::fs::hard_link(repo.outside(), root.join("src/lib.rs")).unwrap();
    let (text, is_error) = edit(
        &mut ctx,
        json!({"command": "insert", "path": "src/lib.rs", "insert_line": 0, "insert_text": "pwned\n"}),
    )
    .await;
    assert!(is_error, "{text}");
    assert_eq!(std::fs::read_to_string(repo.outside()).unwrap(), "pub fn a() {}\n");
    // Protected and internal files are not created, at any depth or case.
    for path in [
        ".gitattributes",
        "src/.gitattributes",
        "src/.GITMODULES",
        "src/.git/config",
        "src/.Pace/x",
        ".gitlab-ci.yml",
        "pace.config.yaml",
    ] {
        let (text, is_error) = edit(&mut ctx, json!({"command": "create", "path": path, "file_text": "x"})).await;
        assert!(is_error, "create {path} was accepted: {text}");
        assert!(!root.join(path).exists(), "{path} exists");
    }
}

#[tokio::test]
async fn contained_huge_and_odd_files_stay_bounded() {
    let repo = Repo::new();
    let root = repo.root();
    // One 3 MiB line: the view is cut, never the whole line many times over.
    std::fs::write(root.join("src/long.txt"), "a".repeat(3 * 1024 * 1024)).unwrap();
    // Over the editor's cap.
    std::fs::write(root.join("src/huge.txt"), vec![b'b'; 5 * 1024 * 1024]).unwrap();
    // CRLF with a lone CR: an edit keeps the bytes it did not touch.
    std::fs::write(root.join("src/crlf.txt"), "one\r\ntwo\rthree\r\n").unwrap();
    let mut ctx = repo.forge();
    let (long, _) = edit(&mut ctx, json!({"command": "view", "path": "src/long.txt"})).await;
    assert!(long.len() < 4 * 1024 * 1024, "{} bytes", long.len());
    let (huge, is_error) = edit(&mut ctx, json!({"command": "view", "path": "src/huge.txt"})).await;
    assert!(is_error && huge.len() < 1024, "{}", &huge[..huge.len().min(200)]);
    let (text, is_error) = edit(
        &mut ctx,
        json!({"command": "str_replace", "path": "src/crlf.txt", "old_str": "one", "new_str": "ONE"}),
    )
    .await;
    assert!(!is_error, "{text}");
    assert_eq!(
        std::fs::read(root.join("src/crlf.txt")).unwrap(),
        b"ONE\r\ntwo\rthree\r\n".to_vec()
    );
}

// ------------------------------------------------------------------ item 2: registry logins

/// Removes the planted directory even when the test fails.
struct Planted(PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn creds_store_name_with_a_slash_runs_a_program_of_the_repository() {
    // pace runs in the checkout; a repository that ships `docker-credential-<x>/evil` and a
    // Docker config naming `credsStore: "<x>/evil"` (DOCKER_CONFIG pointing into the
    // checkout, as some pipelines do) must not get that program run on the runner.
    let cwd = std::env::current_dir().unwrap();
    let unique = format!("rt2-{}", std::process::id());
    let planted = Planted(cwd.join(format!("docker-credential-{unique}")));
    std::fs::create_dir_all(&planted.0).unwrap();
    let marker = tempfile::tempdir().unwrap();
    let ran = marker.path().join("ran");
    let script = planted.0.join("evil");
    std::fs::write(&script, format!("#!/bin/sh\ntouch '{}'\nexit 1\n", ran.display())).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = tempfile::tempdir().unwrap();
    for name in [format!("{unique}/evil"), format!("{unique}/../{unique}/evil")] {
        std::fs::write(
            config.path().join("config.json"),
            json!({"credsStore": name, "credHelpers": {"registry.example.com": name}}).to_string(),
        )
        .unwrap();
        let env = Env::from_pairs([("DOCKER_CONFIG".to_string(), config.path().display().to_string())]);
        let found = pace::sandbox::registry::lookup(&env, "registry.example.com");
        assert!(!ran.exists(), "credsStore {name:?} ran {}", script.display());
        // The refusal names the field and what to do.
        let why = found.expect_err("a helper name with a path is refused").0;
        assert!(why.contains("credHelpers") || why.contains("credsStore"), "{why}");
    }
}

#[test]
fn contained_registry_login_debug_and_refusal_name_no_credential() {
    let auth = base64_of(&format!("ci:{SECRET}"));
    let config = json!({"auths": {"registry.example.com": {"auth": auth}}}).to_string();
    let env = Env::from_pairs([
        ("DOCKER_AUTH_CONFIG".to_string(), config.clone()),
        ("CI_REGISTRY_PASSWORD".to_string(), SECRET.to_string()),
    ]);
    let login = pace::sandbox::registry::RegistryLogin::from_env(&env);
    let credential = login.for_image("registry.example.com/a/b:1").unwrap().unwrap();
    for shown in [
        format!("{login:?}"),
        format!("{credential:?}"),
        credential.source.to_string(),
    ] {
        assert!(!shown.contains(SECRET) && !shown.contains(&auth), "{shown}");
    }
    // The redactor knows every form the variable carries.
    let secrets = pace::sandbox::registry::secrets(&env);
    let redactor = Redactor::new(secrets);
    let line = format!("pull failed: {config} {auth} {SECRET}");
    let redacted = redactor.redact(&line);
    assert!(!redacted.contains(SECRET) && !redacted.contains(&auth), "{redacted}");
    // A broken `auth` is described, never quoted.
    let broken = json!({"auths": {"registry.example.com": {"auth": format!("{SECRET}!!")}}}).to_string();
    let env = Env::from_pairs([("DOCKER_AUTH_CONFIG".to_string(), broken)]);
    let why = pace::sandbox::registry::lookup(&env, "registry.example.com")
        .unwrap_err()
        .0;
    assert!(!why.contains(SECRET), "{why}");
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

// ------------------------------------------------------------------ item 3: pace init

#[test]
fn init_prints_no_remote_credential_nor_terminal_control() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("go.mod"), "module shop\n\ngo 1.22\n").unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    // The host carries an OSC title sequence and a screen clear; the user part a token.
    let url = format!("https://ci:{SECRET}@gitlab\u{1b}]0;pwned\u{7}\u{1b}[2J.example.com/g/shop.git");
    git(&root, &["remote", "add", "origin", &url]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["init", "--yes"])
        .current_dir(&root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains(SECRET), "the remote's token was printed: {shown}");
    assert!(
        !shown.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
        "a control character of the remote URL reached the terminal: {shown:?}"
    );
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(!text.contains(SECRET), "{} holds the token", path.display());
        }
    }
}

// ------------------------------------------------------------------ item 1, the sandbox side

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitignore_negation_uploads_an_ignored_secret_to_the_sandbox() {
    require_docker!();
    let repo = Repo::new();
    let root = repo.root();
    let mut ctx = crate::support::sandbox::context("redteam2-negation", 1, |s| {
        s.caches = false;
    });
    ctx.boundary = pace::boundary::Boundary::new(&["src/", "tests/"], pace::boundary::Limits::default());
    let sb = pace::sandbox::Sandbox::connect(ctx).await.unwrap();
    let cat = |out: &pace::sandbox::ExecOutcome| out.output.contains(SECRET);
    let mut session = sb.start_session(&root).await.unwrap();
    let before = session
        .exec("cat src/.env; echo end", Duration::from_secs(30))
        .await
        .unwrap();
    session.close().await.unwrap();
    assert!(!cat(&before), "the ignored src/.env was uploaded: {}", before.output);
    // What the model does with the editor (src/ is writable).
    let mut tools = repo.forge();
    let (created, failed) = edit(
        &mut tools,
        json!({"command": "create", "path": "src/.gitignore", "file_text": "!.env\n"}),
    )
    .await;
    assert!(!failed, "{created}");
    let mut session = sb.start_session(&root).await.unwrap();
    let after = session
        .exec("cat src/.env; echo end", Duration::from_secs(30))
        .await
        .unwrap();
    session.close().await.unwrap();
    assert!(
        !cat(&after),
        "src/.gitignore unlocked src/.env in the sandbox: {}",
        after.output
    );
}

#[tokio::test]
async fn docs_dir_outside_the_repository_lets_scribe_read_the_runner() {
    // `source.docs_dir` is the repository's config: an absolute path, `..`, or a link.
    let repo = Repo::new();
    let root = repo.root();
    std::os::unix::fs::symlink(repo.outer.path(), root.join("docs-link")).unwrap();
    for docs in [
        repo.outer.path().to_path_buf(),
        PathBuf::from(".."),
        PathBuf::from("docs-link"),
    ] {
        let mut scribe = ToolContext::new(
            Toolset::Scribe,
            &root,
            &[],
            Some(&docs),
            Redactor::new(Vec::new()),
            Duration::from_secs(5),
        )
        .unwrap();
        let (text, _) = call(&mut scribe, "read_file", &json!({"path": "docs:outside.txt"})).await;
        assert!(!text.contains(OUTSIDE), "docs_dir {docs:?} read outside: {text}");
        let (listing, _) = call(&mut scribe, "list_dir", &json!({"path": "docs:"})).await;
        assert!(
            !listing.contains("outside.txt"),
            "docs_dir {docs:?} listed outside: {listing}"
        );
    }
}
