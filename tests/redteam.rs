//! Red team for issue 9 ("nothing that comes back from a container can act on the runner"):
//! attacks written as a hostile repository would run them (the model only runs commands),
//! each asserting the *secure* behaviour. A test here that fails is a hole still open; one
//! that passes is an attack the return path contains today (kept as a regression test).
//!
//! Findings (fail today): `chained_links_*`, `forged_report_*`, `killed_wrapper_*`,
//! `bind_forged_report_*`, `bind_gate_collection_*`, `bind_setuid_*`, `gate_listing_*`,
//! `pace_outputs_*`, `wrapped_base64_*`. Contained (pass): `contained_*`.
//!
//! After the stdin upload (GATE's workspace in on stdin, its listing out after a mark):
//! `forged_listing_sizes_*` (claimed sizes charged the sync byte cap) and
//! `gate_suite_steals_the_mark_*` (the mark read from the wrapper's memory) were holes, fixed
//! in `sandbox::container`; they pass now.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pace::boundary::{Boundary, Limits};
use pace::config::settings::WorkspaceMode;
use pace::sandbox::{ExecOutcome, ExecSession, RunOutcome, RunRequest, Sandbox, SandboxContext};

use crate::support::project::git;

/// A repository `outer/repo` (so that `outer/secret.txt` is a file right next to it, outside)
/// with tracked `src/lib.txt`, `README.md`, and `tests/`.
struct Fixture {
    outer: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        let p = outer.path().join("repo");
        std::fs::create_dir_all(p.join("src")).unwrap();
        std::fs::create_dir_all(p.join("tests")).unwrap();
        git(&p, &["init", "-q"]);
        std::fs::write(p.join("README.md"), "readme\n").unwrap();
        std::fs::write(p.join("src/lib.txt"), "lib\n").unwrap();
        std::fs::write(p.join("tests/t.txt"), "t\n").unwrap();
        git(&p, &["add", "."]);
        git(&p, &["commit", "-qm", "init"]);
        std::fs::create_dir_all(p.join(".pace")).unwrap();
        std::fs::write(outer.path().join("secret.txt"), "runner secret\n").unwrap();
        Self { outer }
    }

    fn repo(&self) -> PathBuf {
        self.outer.path().join("repo")
    }

    fn secret(&self) -> PathBuf {
        self.outer.path().join("secret.txt")
    }
}

fn context(name: &str, mode: WorkspaceMode, limits: Limits) -> SandboxContext {
    let mut ctx = crate::support::sandbox::context(&format!("redteam-{name}"), 1, |s| {
        s.caches = false;
        s.workspace = mode;
    });
    ctx.boundary = Boundary::new(&["src/", "tests/"], limits);
    ctx
}

async fn sandbox(name: &str, mode: WorkspaceMode, limits: Limits) -> Sandbox {
    Sandbox::connect(context(name, mode, limits))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

async fn exec(session: &mut ExecSession, command: &str) -> ExecOutcome {
    session
        .exec(command, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("exec `{command}`: {e}"))
}

async fn gate(sb: &Sandbox, repo: &Path, command: &str) -> (RunOutcome, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let outcome = sb
        .run(RunRequest {
            repo,
            command: command.to_string(),
            output_log: &out.path().join("output.log"),
            collect_into: &out.path().join("collected"),
            on_output: None,
        })
        .await
        .unwrap_or_else(|e| panic!("gate `{command}`: {e}"));
    (outcome, out)
}

/// Every symbolic link under `dir` whose target, resolved on the host, is outside `repo`.
fn links_leaving(repo: &Path, dir: &Path) -> Vec<PathBuf> {
    let repo = std::fs::canonicalize(repo).unwrap();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.file_type().is_symlink() {
                if let Ok(real) = std::fs::canonicalize(e.path())
                    && !real.starts_with(&repo)
                {
                    found.push(e.path());
                }
            } else if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    found
}

/// The wrapper's report, forged by the command: printed on the wrapper's own stdout, after
/// which the wrapper is killed so that its real report never comes. (The wrapper's shell
/// saved its stdout as fd 10 while it runs the command with `1>&2`; busybox and dash both
/// do, and any pipe in `/proc/$PPID/fd` that is not the command's stderr would do.)
fn forge_report(body: &str) -> String {
    let escaped = body.replace('\n', "\\n");
    format!("printf '\\001PACE-REPORT\\nstatus 0\\nprocs 1 1\\n{escaped}' > /proc/$PPID/fd/10; kill -9 $PPID")
}

// --- F1: a chain of links, each "inside" on its own, leaves the repository ------------------

/// `src/a -> ..` is the repository root; `src/b -> a/../secret.txt` is, lexically,
/// `src/secret.txt`, but on disk `a/..` is the repository's *parent*. The policy checks each
/// link alone, lexically, so the pair brings a link to a runner file into the checkout
/// (FORGE commits it; anything that later follows it reads or writes outside).
async fn chained_links(mode: WorkspaceMode) {
    let fx = Fixture::new();
    let repo = fx.repo();
    let sb = sandbox("chain", mode, Limits::default()).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    let ran = exec(
        &mut session,
        "ln -s .. src/a && ln -s a/../secret.txt src/b && echo linked",
    )
    .await;
    session.close().await.unwrap();
    assert!(ran.output.contains("linked"), "{}", ran.output);
    let leaving = links_leaving(&repo, &repo.join("src"));
    let through = std::fs::read_to_string(repo.join("src/b")).ok();
    assert!(
        leaving.is_empty(),
        "links resolving outside the repository came back: {leaving:?} (reading src/b gives {through:?}); refused: {:?}",
        ran.refused
    );
    assert_eq!(std::fs::read_to_string(fx.secret()).unwrap(), "runner secret\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_links_leave_the_repository_upload() {
    require_docker!();
    chained_links(WorkspaceMode::Upload).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_links_leave_the_repository_bind() {
    require_docker!();
    chained_links(WorkspaceMode::Bind).await;
}

// --- F2/F3: the wrapper's report can be forged ----------------------------------------------

/// The command writes its own report (`procs 1 1`) to the wrapper's stdout and kills the
/// wrapper: pace believes no process was left behind, so a daemon survives into every later
/// command of the session (where it can race the next `tar` fetch or rewrite the wrapper's
/// state under `/workspace/.pace`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_report_keeps_a_daemon_alive() {
    require_docker!();
    let fx = Fixture::new();
    let sb = sandbox("daemon", WorkspaceMode::Upload, Limits::default()).await;
    let mut session = sb.start_session(&fx.repo()).await.unwrap();
    let cmd = format!(
        "sleep 1000 >/dev/null 2>&1 & {}",
        forge_report("changed\ndeleted\noutside\n")
    );
    exec(&mut session, &cmd).await;
    let after = exec(&mut session, "ps | grep -c '[s]leep 1000' || true").await;
    session.close().await.unwrap();
    assert_eq!(
        after.output.trim(),
        "0",
        "a process the command started is still running in the next command"
    );
}

/// Without forging anything: the command kills the wrapper, pace lists the workspace again
/// on its own (no command, so no process count) and never stops what was left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_wrapper_keeps_a_daemon_alive() {
    require_docker!();
    let fx = Fixture::new();
    let sb = sandbox("killed", WorkspaceMode::Upload, Limits::default()).await;
    let mut session = sb.start_session(&fx.repo()).await.unwrap();
    exec(&mut session, "sleep 1000 >/dev/null 2>&1 & kill -9 $PPID").await;
    let after = exec(&mut session, "ps | grep -c '[s]leep 1000' || true").await;
    session.close().await.unwrap();
    assert_eq!(
        after.output.trim(),
        "0",
        "a process the command started is still running in the next command"
    );
}

/// Memory tests measure this process's peak (`VmHWM`), which every test shares: one at a time.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resets the peak resident memory to the current one (`clear_refs` 5, Linux ≥ 4.0).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// Peak resident memory of this test process, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// The wrapper's stdout (where only its report should be) is collected whole in memory.
/// A command writing 400 MB of zeros there makes pace hold all of it: with GBs, the runner
/// runs out of memory (the command's own output is capped; this channel is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_report_channel_floods_pace_memory() {
    require_docker!();
    let fx = Fixture::new();
    let sb = sandbox("flood", WorkspaceMode::Upload, Limits::default()).await;
    let mut session = sb.start_session(&fx.repo()).await.unwrap();
    let _one_at_a_time = MEMORY.lock().await;
    reset_peak();
    let before = peak_rss();
    exec(&mut session, "head -c 400000000 /dev/zero > /proc/$PPID/fd/10").await;
    let grown = peak_rss().saturating_sub(before);
    session.close().await.unwrap();
    assert!(
        grown < 100 * 1024 * 1024,
        "pace's memory grew by {} MB for one command's report channel",
        grown / (1024 * 1024)
    );
}

/// A forged report names a *directory* as one changed file of 0 bytes: the per-sync budget
/// counts one file, `tar -c` recurses, and every file inside comes back. The same hole:
/// a `tar` planted earlier in PATH, or a daemon that swaps a file for a directory between
/// the report and the fetch (see above). The caps are checked against the report, not
/// against the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_report_directory_bypasses_the_sync_file_cap() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let limits = Limits {
        max_sync_files: 5,
        ..Limits::default()
    };
    let sb = sandbox("dircap", WorkspaceMode::Upload, limits).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    let cmd = format!(
        "mkdir -p src/many && for i in $(seq 1 40); do echo $i > src/many/f$i; done; {}",
        forge_report("changed\n1/0/x/y/./src/many\ndeleted\noutside\n")
    );
    let ran = exec(&mut session, &cmd).await;
    session.close().await.unwrap();
    let written = std::fs::read_dir(repo.join("src/many")).map_or(0, |d| d.count());
    assert!(
        written <= 5,
        "{written} files came back in one sync over `max_sync_files: 5` (changed: {})",
        ran.changed.len()
    );
}

/// Control: without forging, the same 40 files are capped at 5 and the rest refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contained_sync_file_cap_holds_for_an_honest_report() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let limits = Limits {
        max_sync_files: 5,
        ..Limits::default()
    };
    let sb = sandbox("cap", WorkspaceMode::Upload, limits).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    let ran = exec(
        &mut session,
        "mkdir -p src/many && for i in $(seq 1 40); do echo $i > src/many/f$i; done",
    )
    .await;
    session.close().await.unwrap();
    let written = std::fs::read_dir(repo.join("src/many")).map_or(0, |d| d.count());
    assert_eq!(written, 5);
    assert_eq!(ran.refused.len(), 35, "{:?}", ran.refused);
}

/// A forged report asks pace to delete and fetch paths outside the writable directories,
/// with `..`, absolute, and through a link the command had brought back earlier
/// (`src/up -> ..`). Nothing outside `src/`/`tests/` changes on the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contained_forged_report_cannot_delete_or_fetch_outside() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let sb = sandbox("forged", WorkspaceMode::Upload, Limits::default()).await;
    // A link that leaves its directory cannot come back from the sandbox any more; the
    // repository itself may hold one (committed by a person), which is the case here.
    std::os::unix::fs::symlink("..", repo.join("src/up")).unwrap();
    let mut session = sb.start_session(&repo).await.unwrap();
    let linked = exec(&mut session, "rm src/up && ln -s .. src/up").await;
    assert_eq!(
        linked.refused.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec!["src/up"]
    );
    std::fs::write(repo.join(".gitlab-ci.yml"), "ci\n").unwrap();
    // (`..` or absolute names under `changed` end the run instead: see the test below.)
    let body = "changed\n\
        1/9/x/y/./.gitlab-ci.yml\n\
        1/9/x/y/./src/.GIT/config\n\
        deleted\n\
        ./src/up/README.md\n\
        ./src/up/.gitlab-ci.yml\n\
        ../secret.txt\n\
        /tmp/x\n\
        .gitlab-ci.yml\n\
        README.md\n\
        src/.git\n\
        outside\n";
    let cmd = format!(
        "echo pwned > README.md; echo pwned > .gitlab-ci.yml; echo pwned > /etc/hostname; {}",
        forge_report(body)
    );
    exec(&mut session, &cmd).await;
    session.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(repo.join("README.md")).unwrap(), "readme\n");
    assert_eq!(std::fs::read_to_string(repo.join(".gitlab-ci.yml")).unwrap(), "ci\n");
    assert_eq!(std::fs::read_to_string(fx.secret()).unwrap(), "runner secret\n");
    assert!(
        std::fs::symlink_metadata(repo.join("src/up"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// A forged report naming a changed file *through* a link (`src/up/README.md`, `src/up ->
/// ..`), or `../x`, or `/etc/x`, makes `git check-ignore` fail ("beyond a symbolic link",
/// "outside repository": it runs before the policy), and that error fails the whole `run`:
/// FORGE's attempt stops (ToolAbort). Such a path should be refused, not end the attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_report_path_through_a_link_aborts_the_run() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let sb = sandbox("abort", WorkspaceMode::Upload, Limits::default()).await;
    std::os::unix::fs::symlink("..", repo.join("src/up")).unwrap();
    let mut session = sb.start_session(&repo).await.unwrap();
    let cmd = forge_report("changed\n1/9/x/y/./src/up/README.md\ndeleted\noutside\n");
    let ran = session.exec(&cmd, Duration::from_secs(30)).await;
    session.close().await.unwrap();
    assert_eq!(std::fs::read_to_string(repo.join("README.md")).unwrap(), "readme\n");
    let ran = ran.unwrap_or_else(|e| panic!("the forged path ended the run with an error: {e}"));
    assert!(
        ran.refused.iter().any(|r| r.path.starts_with("src/up")),
        "{:?}",
        ran.refused
    );
}

// --- a `tar` planted in PATH returns a hostile archive ----------------------------------------

fn hostile_archive() -> Vec<u8> {
    let mut data = Vec::new();
    {
        let mut b = tar::Builder::new(&mut data);
        let raw = |b: &mut tar::Builder<&mut Vec<u8>>, name: &[u8], kind: tar::EntryType, link: &[u8], body: &[u8]| {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            h.set_entry_type(kind);
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, body).unwrap();
        };
        raw(&mut b, b"../secret.txt", tar::EntryType::Regular, b"", b"pwned\n");
        raw(
            &mut b,
            b"src/../../secret.txt",
            tar::EntryType::Regular,
            b"",
            b"pwned\n",
        );
        raw(&mut b, b"/tmp/abs-redteam", tar::EntryType::Regular, b"", b"pwned\n");
        raw(&mut b, b"src/hard", tar::EntryType::Link, b"README.md", b"");
        raw(&mut b, b"src/l", tar::EntryType::Symlink, b"..", b"");
        raw(&mut b, b"src/l/README.md", tar::EntryType::Regular, b"", b"pwned\n");
        raw(&mut b, b"src/m", tar::EntryType::Symlink, b"l/../secret.txt", b"");
        raw(&mut b, b"src/v/.git/config", tar::EntryType::Regular, b"", b"[core]\n");
        raw(&mut b, b".gitlab-ci.yml", tar::EntryType::Regular, b"", b"pwned\n");
        b.finish().unwrap();
    }
    data
}

/// The command installs `/usr/local/bin/tar` (earlier in PATH than busybox's), so pace's
/// fetch receives an archive the attacker wrote: `..` and absolute names, a hard link,
/// a link then a file through it, a nested `.git`, a CI file. Nothing lands outside
/// `src/`, nothing through a link. (The chained link `src/m` is finding F1 again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contained_planted_tar_cannot_write_outside() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    std::fs::create_dir_all(repo.join("tests/fixtures")).unwrap();
    std::fs::write(repo.join("tests/fixtures/payload.tar"), hostile_archive()).unwrap();
    let sb = sandbox("tar", WorkspaceMode::Upload, Limits::default()).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    let ran = exec(
        &mut session,
        "mkdir -p /usr/local/bin && printf '#!/bin/sh\\ncat /workspace/tests/fixtures/payload.tar\\n' > /usr/local/bin/tar \
         && chmod +x /usr/local/bin/tar && echo x > src/trigger.txt && which tar",
    )
    .await;
    session.close().await.unwrap();
    assert!(ran.output.contains("/usr/local/bin/tar"), "{}", ran.output);
    assert_eq!(std::fs::read_to_string(fx.secret()).unwrap(), "runner secret\n");
    assert_eq!(std::fs::read_to_string(repo.join("README.md")).unwrap(), "readme\n");
    assert!(!repo.join(".gitlab-ci.yml").exists());
    assert!(!repo.join("src/v").exists());
    assert!(!repo.join("src/hard").exists());
    assert!(!Path::new("/tmp/abs-redteam").exists());
    assert!(!Path::new("/tmp/secret.txt").exists());
}

// --- F4: bind mode, a process outlives the check ---------------------------------------------

/// Bind mode checks what a command changed right after it returns, and does not stop what
/// it left running. A background writer waits a moment, then writes CI configuration and an
/// embedded repository into the checkout; the next command's snapshot takes them as the
/// starting point, so they are never checked, and FORGE's commit picks them up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contained_bind_background_writer_is_policed_next_time() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let sb = sandbox("bindbg", WorkspaceMode::Bind, Limits::default()).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    exec(
        &mut session,
        "(sleep 1; echo 'pwn: {script: [env]}' > .gitlab-ci.yml; mkdir -p src/v/.git; \
          printf '[core]\\n\\tfsmonitor = touch /tmp/canary\\n' > src/v/.git/config) >/dev/null 2>&1 &",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let next = exec(&mut session, "true").await;
    session.close().await.unwrap();
    let left: Vec<&str> = [".gitlab-ci.yml", "src/v/.git/config"]
        .into_iter()
        .filter(|p| repo.join(p).exists())
        .collect();
    assert!(
        left.is_empty(),
        "written by a leftover process after the check, never refused: {left:?} (next refused: {:?})",
        next.refused
    );
}

/// The same with the bind wrapper's report forged (`procs 1 1`, wrapper killed): pace does
/// not stop the writer, and when the command was the session's last one (FORGE's commit
/// follows `close`), nothing polices what it writes after the check: an escaping link,
/// CI configuration and an embedded repository stay in the checkout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_forged_report_writer_outlives_the_last_check() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let sb = sandbox("bindlast", WorkspaceMode::Bind, Limits::default()).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    let cmd = format!(
        "(sleep 1; echo 'pwn: {{script: [env]}}' > .gitlab-ci.yml; ln -s /etc src/etc; mkdir -p src/v/.git; \
          printf '[core]\\n\\tfsmonitor = touch /tmp/canary\\n' > src/v/.git/config) >/dev/null 2>&1 & {}",
        forge_report("")
    );
    let ran = exec(&mut session, &cmd).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    session.close().await.unwrap();
    let left: Vec<&str> = [".gitlab-ci.yml", "src/etc", "src/v/.git/config"]
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(repo.join(p)).is_ok())
        .collect();
    assert!(
        left.is_empty(),
        "written by a leftover process after the last check, never refused: {left:?} (output: {})",
        ran.output
    );
}

/// Control: the same writes done by the command itself are undone and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contained_bind_foreground_writes_are_undone() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let sb = sandbox("bindfg", WorkspaceMode::Bind, Limits::default()).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    let ran = exec(
        &mut session,
        "echo pwn > .gitlab-ci.yml; mkdir -p src/v/.git; echo x > src/v/.git/config; \
         echo pwned > README.md; mkfifo src/fifo; ln -s /etc src/etc",
    )
    .await;
    session.close().await.unwrap();
    assert!(!repo.join(".gitlab-ci.yml").exists());
    assert!(!repo.join("src/v/.git").exists());
    assert!(std::fs::symlink_metadata(repo.join("src/fifo")).is_err());
    assert!(std::fs::symlink_metadata(repo.join("src/etc")).is_err());
    assert_eq!(std::fs::read_to_string(repo.join("README.md")).unwrap(), "readme\n");
    let mut paths: Vec<&str> = ran.refused.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        vec![".gitlab-ci.yml", "README.md", "src/etc", "src/fifo", "src/v/.git"]
    );
}

// --- F5: bind mode's GATE collection skips the name rules and the caps ------------------------

const OVERSIZED_RESULTS: &str = "mkdir -p reports/.GIT && echo '<testsuite/>' > reports/.GIT/junit.xml \
     && truncate -s 4M reports/junit-big.xml && echo '<testsuite/>' > reports/junit.xml";

fn small_files() -> Limits {
    Limits {
        max_file_bytes: 1024 * 1024,
        ..Limits::default()
    }
}

fn collected_names(outcome: &RunOutcome, out: &Path) -> Vec<String> {
    let base = out.join("collected");
    let mut names: Vec<String> = outcome
        .collected
        .iter()
        .map(|p| p.strip_prefix(&base).unwrap_or(p).to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Upload mode refuses a result file named through `.GIT` and one over the per-file cap;
/// bind mode copies both out of the checkout (`copy_matching` checks neither), into
/// `.pace/day-N/gate/collected` in a real day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_gate_collection_skips_names_and_size_caps() {
    require_docker!();
    let fx = Fixture::new();
    let sb = sandbox("bindgate", WorkspaceMode::Bind, small_files()).await;
    let (outcome, out) = gate(&sb, &fx.repo(), OVERSIZED_RESULTS).await;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(collected_names(&outcome, out.path()), vec!["reports/junit.xml"]);
}

/// GATE (upload mode) downloads the wrapper's listing `/workspace/.pace-files` whole into
/// memory. The suite makes it a directory holding a 400 MB (sparse) file: the listing's
/// `find > .pace-files` fails and pace buffers the directory's archive, all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_listing_download_floods_pace_memory() {
    require_docker!();
    let fx = Fixture::new();
    let sb = sandbox("listing", WorkspaceMode::Upload, Limits::default()).await;
    let _one_at_a_time = MEMORY.lock().await;
    reset_peak();
    let before = peak_rss();
    let (outcome, _out) = gate(
        &sb,
        &fx.repo(),
        "mkdir /workspace/.pace-files && truncate -s 400M /workspace/.pace-files/big",
    )
    .await;
    let grown = peak_rss().saturating_sub(before);
    assert_eq!(outcome.exit_code, 0);
    assert!(
        grown < 100 * 1024 * 1024,
        "pace's memory grew by {} MB collecting one suite's results",
        grown / (1024 * 1024)
    );
}

/// Control: the same suite in upload mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contained_upload_gate_collection_keeps_names_and_size_caps() {
    require_docker!();
    let fx = Fixture::new();
    let sb = sandbox("upgate", WorkspaceMode::Upload, small_files()).await;
    let (outcome, out) = gate(&sb, &fx.repo(), OVERSIZED_RESULTS).await;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(collected_names(&outcome, out.path()), vec!["reports/junit.xml"]);
    let mut refused: Vec<&str> = outcome.refused.iter().map(|r| r.path.as_str()).collect();
    refused.sort_unstable();
    assert_eq!(refused, vec!["reports/.GIT/junit.xml", "reports/junit-big.xml"]);
}

// --- pace's own artifact names at the top level ------------------------------------------------

/// With the whole repository writable (`source.dirs: [.]`), a command writes pace's own
/// top-level outputs: `pace-env.env` (GitLab's dotenv report: later jobs read
/// `PACE_DECISION` from it) and `PROGRESS.md` as a link. Both come back and FORGE commits
/// them; the link then makes pace's own end-of-day write refuse and fail the day. They are
/// pace's files like `.pace/`, and should be refused like it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pace_outputs_at_the_top_level_are_not_protected() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let mut ctx = context("outputs", WorkspaceMode::Upload, Limits::default());
    ctx.boundary = Boundary::new(&["."], Limits::default());
    let sb = Sandbox::connect(ctx).await.unwrap();
    let mut session = sb.start_session(&repo).await.unwrap();
    let ran = exec(
        &mut session,
        "printf 'PACE_DECISION=SHIP\\n' > pace-env.env; ln -s src/lib.txt PROGRESS.md",
    )
    .await;
    session.close().await.unwrap();
    let came_back: Vec<&str> = ["pace-env.env", "PROGRESS.md"]
        .into_iter()
        .filter(|p| std::fs::symlink_metadata(repo.join(p)).is_ok())
        .collect();
    assert!(
        came_back.is_empty(),
        "pace's own outputs came back from the container: {came_back:?} (refused: {:?})",
        ran.refused
    );
}

// --- redaction: base64 as `base64` prints it -----------------------------------------------------

/// `env | base64` (coreutils and busybox wrap at 76 columns) splits the encoded secret across
/// a line break about as often as not: neither the whole-secret needle nor the per-alignment
/// stable run matches, and the job log or an MR note carries the decodable token.
#[test]
fn wrapped_base64_of_a_secret_is_redacted() {
    use base64::Engine as _;
    let secret = "glpat-Xq7rT2mV9kLp4sN8wB3z";
    let redactor = pace::redact::Redactor::new(vec![secret.to_string()]);
    let mut leaked = Vec::new();
    for pad in 0..40 {
        let env = format!("{}GITLAB_TOKEN={secret}\nPATH=/usr/bin\n", "X".repeat(pad));
        let encoded = base64::engine::general_purpose::STANDARD.encode(env.as_bytes());
        let wrapped: Vec<String> = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let shown = redactor.redact(&wrapped.join("\n"));
        assert!(shown.contains(pace::redact::REDACTED), "prefix {pad}: {shown}");
        let joined: String = shown.lines().collect();
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(joined)
            && String::from_utf8_lossy(&bytes).contains(secret)
        {
            leaked.push(pad);
        }
    }
    assert!(
        leaked.is_empty(),
        "the token decodes from the redacted log for prefixes {leaked:?}"
    );
}

// --- setuid files ----------------------------------------------------------------------------

/// Mode bits of `path` (no link followed).
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Bind mode: the container's root (the host's root without user namespaces) leaves a
/// setuid-root copy of a shell in the checkout. The policy checks names, kinds, links and
/// sizes, not modes, so it stays: any local user who can reach the checkout gets root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_setuid_file_stays_in_the_checkout() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let sb = sandbox("setuid", WorkspaceMode::Bind, Limits::default()).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    let ran = exec(&mut session, "cp /bin/busybox src/sh && chmod 6755 src/sh && id -u").await;
    session.close().await.unwrap();
    assert_eq!(ran.output.trim(), "0");
    if std::fs::symlink_metadata(repo.join("src/sh")).is_ok() {
        let mode = mode_of(&repo.join("src/sh"));
        assert_eq!(mode & 0o6000, 0, "src/sh came back with mode {mode:o}");
    }
}

/// Control: upload mode writes modes of its own (0644/0755), never setuid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contained_upload_setuid_is_dropped() {
    require_docker!();
    let fx = Fixture::new();
    let repo = fx.repo();
    let sb = sandbox("setuidup", WorkspaceMode::Upload, Limits::default()).await;
    let mut session = sb.start_session(&repo).await.unwrap();
    exec(&mut session, "cp /bin/busybox src/sh && chmod 6755 src/sh").await;
    session.close().await.unwrap();
    assert_eq!(mode_of(&repo.join("src/sh")), 0o755);
}

// --- GATE result files through links ---------------------------------------------------------

/// The suite names links as its JUnit reports: to a runner file next to the checkout (bind
/// mode resolves it on the host) and a directory link matching `**/test-results/**/*.xml`.
/// Neither mode collects through them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contained_gate_results_through_links_are_not_collected() {
    require_docker!();
    for mode in [WorkspaceMode::Upload, WorkspaceMode::Bind] {
        let fx = Fixture::new();
        let sb = sandbox("gatelinks", mode, Limits::default()).await;
        let (outcome, out) = gate(
            &sb,
            &fx.repo(),
            "mkdir -p reports && ln -s ../../secret.txt reports/junit-s.xml && ln -s /etc reports/test-results \
             && echo '<testsuite/>' > reports/junit.xml",
        )
        .await;
        assert_eq!(outcome.exit_code, 0, "{mode:?}");
        assert_eq!(
            collected_names(&outcome, out.path()),
            vec!["reports/junit.xml"],
            "{mode:?}"
        );
    }
}

// --- GATE's listing on stdout: sizes the suite claims ------------------------------------------

/// The listing that comes back after the mark is the wrapper's stdout, which the suite
/// shares: a background job the suite leaves behind keeps printing `0 /workspace/...` lines
/// while the wrapper's `find` runs (slowed by a few thousand files), so some land after the
/// mark. pace charged the per-sync budget with the sizes the listing claims, so five
/// 900 KiB reports claimed at 0 bytes all came back: the bytes written to
/// `.pace/day-N/gate/` were bounded only by `max_file_bytes` times `max_sync_files`. The
/// bytes actually written must stay within `max_sync_bytes`, and what did not fit is
/// listed as refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_listing_sizes_bypass_the_sync_byte_cap() {
    require_docker!();
    let fx = Fixture::new();
    let limits = Limits {
        max_file_bytes: 1024 * 1024,
        max_sync_bytes: 2 * 1024 * 1024,
        ..Limits::default()
    };
    let sb = sandbox("lsizes", WorkspaceMode::Upload, limits).await;
    let suite = "mkdir -p reports pad && for i in 1 2 3 4 5; do head -c 921600 /dev/zero > reports/junit-$i.xml; done \
        && for i in $(seq 3000); do : > pad/f$i; done \
        && (for i in $(seq 3000); do \
              printf '0 /workspace/reports/junit-1.xml\n0 /workspace/reports/junit-2.xml\n0 /workspace/reports/junit-3.xml\n0 /workspace/reports/junit-4.xml\n0 /workspace/reports/junit-5.xml\n'; \
              usleep 3000; done &)";
    let (outcome, out) = gate(&sb, &fx.repo(), suite).await;
    assert_eq!(outcome.exit_code, 0);
    let written: u64 = outcome
        .collected
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let on_disk: u64 = walk_bytes(&out.path().join("collected"));
    assert!(
        on_disk <= limits.max_sync_bytes && written <= limits.max_sync_bytes,
        "{on_disk} bytes of result files written with a sync cap of {} ({} files)",
        limits.max_sync_bytes,
        outcome.collected.len()
    );
    assert!(
        !outcome.collected.is_empty(),
        "nothing collected: the attack did not run"
    );
    assert!(
        outcome.refused.iter().any(|r| r.path.starts_with("reports/junit-")),
        "what did not fit is not listed: {:?}",
        outcome.refused
    );
}

/// The bytes of every regular file under `dir`.
fn walk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

// --- GATE's mark: read from the wrapper's memory ---------------------------------------------

/// A suite that learns GATE's per-run mark from its parent shell's memory
/// (`/proc/$PPID/mem`: same user, and the wrapper read the mark into a variable) and prints
/// it as the mark line of a wrapper report, then fails. `word` is what it claims.
fn mark_stealer(word: &str) -> String {
    format!(
        r#"echo suite-ran
m=$(while read -r range perms rest; do
  case "$perms" in rw*) ;; *) continue;; esac
  s=$((0x${{range%-*}})); e=$((0x${{range#*-}}))
  dd if=/proc/$PPID/mem bs=4096 skip=$((s/4096)) count=$(((e-s)/4096)) 2>/dev/null | grep -ao 'PACE-[0-9a-f]\{{32\}}' | head -1
done < /proc/$PPID/maps | head -1)
[ -n "$m" ] && echo stolen-mark
printf '%s {word}\n' "$m"
exit 1"#
    )
}

/// A failing suite that prints the stolen mark and `unpack` turned its test failure into a
/// workspace (infrastructure) error: "unpacking the workspace failed", exit 4, no HOLD. A
/// wrapper's word must only count when the wrapper said it, before the suite ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_suite_steals_the_mark_and_fakes_a_failed_unpack() {
    require_docker!();
    let fx = Fixture::new();
    let sb = sandbox("markunpack", WorkspaceMode::Upload, Limits::default()).await;
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("output.log");
    let outcome = sb
        .run(RunRequest {
            repo: &fx.repo(),
            command: mark_stealer("unpack"),
            output_log: &log,
            collect_into: &out.path().join("collected"),
            on_output: None,
        })
        .await;
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(said.contains("stolen-mark"), "the suite did not find the mark: {said}");
    let outcome = outcome.unwrap_or_else(|e| panic!("a failing suite became an error: {e}"));
    assert_eq!(outcome.exit_code, 1, "{said}");
}

/// The same suite claiming `notar`: pace believed the image had no tar, ran the suite a
/// second time through the archive API and kept that run's verdict (and uploads every
/// later sandbox of the run through the API).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_suite_steals_the_mark_and_fakes_a_missing_tar() {
    require_docker!();
    let fx = Fixture::new();
    let sb = sandbox("marknotar", WorkspaceMode::Upload, Limits::default()).await;
    let (outcome, out) = gate(&sb, &fx.repo(), &mark_stealer("notar")).await;
    // Only the last run's log is kept: a second run (no mark on its stdin) finds none.
    let said = std::fs::read_to_string(out.path().join("output.log")).unwrap_or_default();
    assert!(
        said.contains("stolen-mark"),
        "the suite ran again, without a mark: {said}"
    );
    assert_eq!(said.matches("suite-ran").count(), 1, "{said}");
    assert_eq!(outcome.exit_code, 1, "{said}");
}
