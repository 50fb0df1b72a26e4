//! Integration tests: sandbox_docker (a real Docker daemon; skipped with a notice without one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pace::error::Hint as _;
use pace::sandbox::{
    ExecOutcome, LABEL_CREATED, LABEL_PROJECT, LABEL_RUN_ID, LABEL_TIMEOUT, PROMPT_HEAD_BYTES, PROMPT_TAIL_BYTES,
    RunOutcome, RunRequest, Sandbox, SandboxContext, SandboxError, project_id,
};

use crate::support::docker::busybox_image;
use crate::support::project::git;

/// A repository with a tracked file, an untracked file and an ignored one.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "-q"]);
    std::fs::write(p.join(".gitignore"), "secret.env\nbuild/\n").unwrap();
    std::fs::write(p.join("a.txt"), "tracked\n").unwrap();
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::write(p.join("src/lib.txt"), "lib\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "init"]);
    std::fs::write(p.join("b.txt"), "untracked\n").unwrap();
    std::fs::write(p.join("secret.env"), "TOKEN=ignored\n").unwrap();
    std::fs::create_dir_all(p.join(".pace")).unwrap();
    std::fs::write(p.join(".pace/state"), "internal\n").unwrap();
    dir
}

fn run_id(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("t-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn context(name: &str, edit: impl FnOnce(&mut pace::config::settings::SandboxSettings)) -> SandboxContext {
    crate::support::sandbox::context(name, 3, |s| {
        // Temporary repositories would each leave a cache volume behind.
        s.caches = false;
        edit(s);
    })
}

async fn connect(ctx: SandboxContext) -> Sandbox {
    Sandbox::connect(ctx)
        .await
        .unwrap_or_else(|e| panic!("connect: {e} ({:?})", e.hint()))
}

fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_defaults().unwrap()
}

async fn containers_of(run_id: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_RUN_ID}={run_id}")])]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker()
        .list_containers(Some(opts))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

async fn gate(sb: &Sandbox, repo: &Path, command: &str) -> (RunOutcome, String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("logs/gate.log");
    let outcome = sb
        .run(RunRequest {
            repo,
            command: command.to_string(),
            output_log: &log,
            collect_into: &out.path().join("collected"),
            on_output: None,
        })
        .await
        .unwrap_or_else(|e| panic!("run `{command}`: {e}"));
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    (outcome, text, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_exit_codes_propagate_and_containers_are_removed() {
    require_docker!();
    let repo = repo();
    let sb = connect(context("exit", |_| {})).await;
    for (command, expected) in [("echo ok", 0), ("echo failing >&2; exit 1", 1), ("kill -9 $$", 137)] {
        let (outcome, log, _out) = gate(&sb, repo.path(), command).await;
        assert_eq!(outcome.exit_code, expected, "`{command}`: {log}");
        assert!(!outcome.timed_out);
        assert!(outcome.network_hint.is_none());
        // Removed in the background (the suite's result does not wait for it); gone once
        // the sandbox settles, as pace lets it before it exits.
        assert!(sb.settle().await.is_empty());
        assert!(
            containers_of(&sb.context().run_id).await.is_empty(),
            "container left after `{command}`"
        );
    }
    let (_, log, _out) = gate(&sb, repo.path(), "echo out; echo err >&2").await;
    assert!(log.contains("out\n") && log.contains("err\n"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_log_has_full_output_and_head_tail_are_bounded() {
    require_docker!();
    let repo = repo();
    let sb = connect(context("bigout", |_| {})).await;
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("gate.log");
    let seen = Mutex::new(0usize);
    let count = |chunk: &[u8]| *seen.lock().unwrap() += chunk.len();
    let size = 5 * 1024 * 1024;
    let outcome = sb
        .run(RunRequest {
            repo: repo.path(),
            command: format!("echo START; head -c {size} /dev/zero | tr '\\0' a; echo; echo END"),
            output_log: &log,
            collect_into: out.path(),
            on_output: Some(&count),
        })
        .await
        .unwrap();
    let expected = (size + "START\n".len() + "\nEND\n".len()) as u64;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), expected);
    assert_eq!(outcome.output_bytes, expected);
    assert_eq!(*seen.lock().unwrap() as u64, expected);
    assert!(outcome.head.len() <= PROMPT_HEAD_BYTES && outcome.head.starts_with("START\naaa"));
    assert!(outcome.tail.len() <= PROMPT_TAIL_BYTES && outcome.tail.ends_with("aaa\nEND\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_timeout_kills_the_container() {
    require_docker!();
    let repo = repo();
    let sb = connect(context("timeout", |s| s.timeout = Duration::from_secs(2))).await;
    let started = std::time::Instant::now();
    let (outcome, log, _out) = gate(&sb, repo.path(), "echo begin; sleep 600").await;
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, 137);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(log.starts_with("begin\n") && log.contains("timed out"), "{log}");
    assert!(sb.settle().await.is_empty());
    assert!(containers_of(&sb.context().run_id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_env_only_allowlisted_variables() {
    require_docker!();
    // SAFETY: only these tests read these names; set before any sandbox reads the env.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PACE_TEST_SECRET_TOKEN", "s3cr3t-value-xyz");
        std::env::set_var("PACE_TEST_ALLOWED", "visible-value");
    }
    let repo = repo();
    let sb = connect(context("env", |s| s.env = vec!["PACE_TEST_ALLOWED".into()])).await;
    let (outcome, log, _out) = gate(&sb, repo.path(), "env").await;
    assert_eq!(outcome.exit_code, 0);
    assert!(log.contains("PACE_TEST_ALLOWED=visible-value"), "{log}");
    assert!(
        !log.contains("PACE_TEST_SECRET_TOKEN") && !log.contains("s3cr3t"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_network_none_has_no_route_and_hints() {
    require_docker!();
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let repo = repo();
    let sb = connect(context("net", |_| {})).await;
    let script = format!(
        "echo routes:$(tail -n +2 /proc/net/route | wc -l); \
         if wget -T 3 -q -O- http://172.17.0.1:{port}/ ; then echo REACHED; else echo UNREACHABLE; fi; \
         nc 127.0.0.1 1 </dev/null; exit 7"
    );
    let (outcome, log, _out) = gate(&sb, repo.path(), &script).await;
    assert!(log.contains("routes:0"), "{log}");
    assert!(log.contains("UNREACHABLE") && !log.contains("REACHED\n"), "{log}");
    assert_eq!(outcome.exit_code, 7);
    let hint = outcome.network_hint.expect("network hint");
    assert!(hint.contains("sandbox.network"), "{hint}");
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_workspace_contents_and_junit_collection() {
    require_docker!();
    let repo = repo();
    #[cfg(unix)]
    std::os::unix::fs::symlink("a.txt", repo.path().join("link.txt")).unwrap();
    let sb = connect(context("collect", |_| {})).await;
    let script = "set -e; test -f a.txt; test -f b.txt; test -f src/lib.txt; \
                  test ! -e secret.env; test ! -e .git; test ! -e .pace; \
                  test -L link.txt && test \"$(cat link.txt)\" = tracked; \
                  mkdir -p reports && echo '<testsuite/>' > reports/junit.xml; \
                  echo '<x/>' > reports/other.xml; echo done";
    let (outcome, log, out) = gate(&sb, repo.path(), script).await;
    assert_eq!(outcome.exit_code, 0, "{log}");
    let junit = out.path().join("collected/reports/junit.xml");
    assert_eq!(outcome.collected, vec![junit.clone()]);
    assert_eq!(std::fs::read_to_string(junit).unwrap(), "<testsuite/>\n");
}

/// A Maven-sized suite: 300 reports in one directory come back (in one download of the
/// directory), the reports elsewhere too; reports scattered over hundreds of directories
/// (or a forged listing of thousands of paths) come back in one download of the workspace
/// (`collect::plan` is unit-tested for the bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_collects_hundreds_of_reports_in_few_downloads() {
    require_docker!();
    let repo = repo();
    let sb = connect(context("many-reports", |s| s.collect = vec!["**/*.xml".into()])).await;
    let script = "set -e; mkdir -p target/surefire-reports deep/a deep/b; \
                  for i in $(seq 1 300); do echo \"<testsuite name='t$i'/>\" > target/surefire-reports/TEST-$i.xml; done; \
                  echo '<top/>' > junit.xml; echo '<a/>' > deep/a/r.xml; echo '<b/>' > deep/b/r.xml; \
                  echo 'not a report' > target/surefire-reports/output.txt";
    let (outcome, log, out) = gate(&sb, repo.path(), script).await;
    assert_eq!(outcome.exit_code, 0, "{log}");
    let collected = out.path().join("collected");
    assert_eq!(
        outcome.collected.len(),
        303,
        "{:?}",
        &outcome.collected[..5.min(outcome.collected.len())]
    );
    assert_eq!(
        std::fs::read_to_string(collected.join("target/surefire-reports/TEST-217.xml")).unwrap(),
        "<testsuite name='t217'/>\n"
    );
    assert!(!collected.join("target/surefire-reports/output.txt").exists());
    assert_eq!(
        std::fs::read_to_string(collected.join("deep/b/r.xml")).unwrap(),
        "<b/>\n"
    );

    // Reports scattered over 200 directories (or a forged listing of thousands): the
    // workspace comes back in one download, and only the reports are kept.
    let scattered = "set -e; for i in $(seq 1 200); do mkdir -p s/$i; echo \"<r$i/>\" > s/$i/r.xml; done";
    let (outcome, log, out) = gate(&sb, repo.path(), scattered).await;
    assert_eq!(outcome.exit_code, 0, "{log}");
    assert_eq!(outcome.collected.len(), 200, "{log}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("collected/s/123/r.xml")).unwrap(),
        "<r123/>\n"
    );
    assert!(!out.path().join("collected/a.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_runs_as_configured_user() {
    require_docker!();
    let repo = repo();
    let sb = connect(context("user", |s| s.user = Some("1000:1000".into()))).await;
    let (outcome, log, _out) = gate(
        &sb,
        repo.path(),
        "id -u; echo x > a.txt && echo x > new.txt && mkdir -p d && echo wrote",
    )
    .await;
    assert_eq!(outcome.exit_code, 0, "{log}");
    assert!(log.starts_with("1000\n") && log.contains("wrote"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_an_image_error_naming_the_setting() {
    require_docker!();
    let ctx = context("img", |s| s.image = "pace-test/does-not-exist:0".into());
    match Sandbox::connect(ctx).await {
        Err(e @ SandboxError::Image { .. }) => assert!(e.hint().unwrap().contains("sandbox.image")),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("connected with a missing image"),
    }
}

async fn exec(session: &mut pace::sandbox::ExecSession, command: &str) -> ExecOutcome {
    session
        .exec(command, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("exec `{command}`: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_session_syncs_both_ways() {
    require_docker!();
    let repo = repo();
    let p = repo.path();
    let sb = connect(context("forge", |_| {})).await;
    let mut session = sb.start_session(p).await.unwrap();

    let first = exec(&mut session, "cat a.txt; test ! -e secret.env && echo no-secret").await;
    assert_eq!(first.exit_code, 0);
    assert_eq!(first.output, "tracked\nno-secret\n");
    assert!(first.changed.is_empty(), "{:?}", first.changed);

    // Processes a command leaves running are stopped before the next command.
    let daemon = exec(&mut session, "sleep 1000 >/dev/null 2>&1 & echo started").await;
    assert!(
        daemon
            .output
            .contains("processes the command left running were stopped"),
        "{}",
        daemon.output
    );
    let after = exec(&mut session, "ps | grep -c '[s]leep 1000' || true").await;
    assert_eq!(after.output.trim(), "0", "{}", after.output);

    // Host-side changes in the writable directories reach the container; deletions too.
    std::fs::write(p.join("src/notes.txt"), "written between execs\n").unwrap();
    std::fs::write(p.join("src/lib.txt"), "changed on host\n").unwrap();
    let second = exec(&mut session, "cat src/notes.txt src/lib.txt").await;
    assert_eq!(second.output, "written between execs\nchanged on host\n");
    assert!(second.changed.is_empty(), "{:?}", second.changed);
    std::fs::remove_file(p.join("src/notes.txt")).unwrap();
    let gone = exec(&mut session, "test ! -e src/notes.txt && echo notes-gone").await;
    assert_eq!(gone.output, "notes-gone\n");

    // Files the command creates, changes and deletes in the writable directories come back;
    // ignored ones stay in the container; changes elsewhere are refused and reported.
    let third = exec(
        &mut session,
        "mkdir -p src/sub && echo gen > src/gen.txt && echo edited >> src/lib.txt && echo t > src/sub/t.txt \
         && echo junk > secret.env && echo root > a.txt && mkdir -p build && echo o > build/out.o && echo made",
    )
    .await;
    assert_eq!(third.exit_code, 0, "{}", third.output);
    assert_eq!(
        third.changed,
        vec![
            PathBuf::from("src/gen.txt"),
            PathBuf::from("src/lib.txt"),
            PathBuf::from("src/sub/t.txt")
        ]
    );
    assert_eq!(std::fs::read_to_string(p.join("src/gen.txt")).unwrap(), "gen\n");
    assert_eq!(
        std::fs::read_to_string(p.join("src/lib.txt")).unwrap(),
        "changed on host\nedited\n"
    );
    assert_eq!(std::fs::read_to_string(p.join("a.txt")).unwrap(), "tracked\n");
    assert_eq!(
        std::fs::read_to_string(p.join("secret.env")).unwrap(),
        "TOKEN=ignored\n"
    );
    assert!(!p.join("build").exists());
    let refused: Vec<&str> = third.refused.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(refused, vec!["a.txt"], "{:?}", third.refused);

    // A command that changes nothing reports nothing; a rename is a deletion and a creation.
    let quiet = exec(&mut session, "true").await;
    assert!(quiet.changed.is_empty() && quiet.refused.is_empty(), "{quiet:?}");
    let moved = exec(&mut session, "mv src/gen.txt src/sub/gen.txt").await;
    assert_eq!(
        moved.changed,
        vec![PathBuf::from("src/gen.txt"), PathBuf::from("src/sub/gen.txt")]
    );
    assert!(p.join("src/sub/gen.txt").exists() && !p.join("src/gen.txt").exists());
    let removed = exec(&mut session, "rm src/lib.txt").await;
    assert_eq!(removed.changed, vec![PathBuf::from("src/lib.txt")]);
    assert!(!p.join("src/lib.txt").exists());

    // Exit codes and the output cap.
    let failed = exec(&mut session, "echo nope; exit 3").await;
    assert_eq!(failed.exit_code, 3);
    let big = exec(&mut session, "head -c 100000 /dev/zero | tr '\\0' x").await;
    assert!(big.output.contains("bytes omitted ...]"), "{}", &big.output[..100]);
    assert!(big.output.len() <= pace::sandbox::EXEC_OUTPUT_CAP + 100);

    // A timeout kills the command, and the session goes on with its files intact.
    let started = std::time::Instant::now();
    let slow = session
        .exec("echo writing > src/late.txt; sleep 600", Duration::from_secs(2))
        .await
        .unwrap();
    assert!(slow.timed_out && slow.exit_code == 137);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(slow.changed, vec![PathBuf::from("src/late.txt")]);
    let alive = exec(&mut session, "cat src/sub/gen.txt").await;
    assert_eq!(alive.output, "gen\n");

    let run_id = sb.context().run_id.clone();
    assert_eq!(containers_of(&run_id).await.len(), 1);
    session.close().await.unwrap();
    assert!(containers_of(&run_id).await.is_empty());
}

/// Creates a stopped, pace-labelled container of `project` (a 60 s lifetime) by hand.
async fn labelled_container(run_id: &str, created: u64, project: &str) -> String {
    let labels = HashMap::from([
        (LABEL_RUN_ID.to_string(), run_id.to_string()),
        (LABEL_CREATED.to_string(), created.to_string()),
        (LABEL_PROJECT.to_string(), project.to_string()),
        (LABEL_TIMEOUT.to_string(), "60".to_string()),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some(busybox_image()),
        cmd: Some(vec!["true".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    docker().create_container(None, body).await.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_sweep_and_run_cleanup() {
    require_docker!();
    let sb = connect(context("sweep", |_| {})).await;
    let old_run = run_id("old");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let checkout = repo();
    let project = project_id(checkout.path());
    labelled_container(&old_run, now - 7 * 24 * 3600, &project).await;
    let fresh_run = run_id("fresh");
    labelled_container(&fresh_run, now, &project).await;

    assert!(sb.remove_stale(checkout.path()).await.unwrap() >= 1);
    assert!(containers_of(&old_run).await.is_empty());
    assert_eq!(
        containers_of(&fresh_run).await.len(),
        1,
        "a fresh container must survive the sweep"
    );

    let own = sb.context().run_id.clone();
    labelled_container(&own, now, &project).await;
    assert_eq!(sb.remove_run_containers().await.unwrap(), 1);
    assert!(containers_of(&own).await.is_empty());

    let other = connect(SandboxContext {
        run_id: fresh_run.clone(),
        ..sb.context().clone()
    })
    .await;
    assert_eq!(other.remove_run_containers().await.unwrap(), 1);
}
