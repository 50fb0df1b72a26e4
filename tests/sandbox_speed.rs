//! Integration tests: sandbox_speed (issue 9, item 10). GATE streams the workspace through
//! the container's stdin and reads the file listing after a per-run mark on its stdout;
//! FORGE's session containers are removed in the background. Real Docker.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pace::sandbox::{LABEL_RUN_ID, RunOutcome, RunRequest, Sandbox, SandboxContext, SandboxError};

use crate::support::docker::busybox_image;
use crate::support::project::{git, stderr, stdout};

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "-q"]);
    std::fs::write(p.join(".gitignore"), "ignored.txt\n").unwrap();
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::write(p.join("src/lib.txt"), "lib\n").unwrap();
    std::fs::create_dir_all(p.join("tests")).unwrap();
    std::fs::write(p.join("tests/run.sh"), "echo run\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "init"]);
    std::fs::write(p.join("untracked.txt"), "untracked\n").unwrap();
    std::fs::write(p.join("ignored.txt"), "ignored\n").unwrap();
    dir
}

fn context(name: &str, image: &str, edit: impl FnOnce(&mut pace::config::settings::SandboxSettings)) -> SandboxContext {
    crate::support::sandbox::context(&format!("speed-{name}"), 4, |s| {
        s.image = image.to_string();
        // Temporary repositories would each leave a cache volume behind.
        s.caches = false;
        edit(s);
    })
}

async fn containers_of(run_id: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_RUN_ID}={run_id}")])]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    bollard::Docker::connect_with_defaults()
        .unwrap()
        .list_containers(Some(opts))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

async fn gate(
    sb: &Sandbox,
    repo: &Path,
    command: &str,
) -> (Result<RunOutcome, SandboxError>, String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("output.log");
    let outcome = sb
        .run(RunRequest {
            repo,
            command: command.to_string(),
            output_log: &log,
            collect_into: &out.path().join("collected"),
            on_output: None,
        })
        .await;
    let text = std::fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    (outcome, text, out)
}

/// The busybox test image with the host's dash as `/bin/sh` (busybox's own shell runs its
/// `tar` applet whatever is in `/bin`) and `/bin/tar` replaced by `tar_script` (`None`:
/// removed).
fn dash_image_with_tar(tag: &str, tar_script: Option<&str>) -> String {
    let base = busybox_image();
    let ctx = tempfile::tempdir().unwrap();
    let rootfs = ctx.path().join("rootfs");
    let ldd = Command::new("ldd").arg("/bin/dash").output().unwrap();
    let mut files: Vec<String> = stdout(&ldd)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(String::from)
        .collect();
    files.push("/bin/dash".into());
    for file in &files {
        let target = rootfs.join(file.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(file, &target).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let mut dockerfile = format!(
        "FROM {base}\nCOPY rootfs/ /\nRUN [\"/bin/busybox\", \"rm\", \"/bin/tar\", \"/bin/sh\"]\n\
         RUN [\"/bin/busybox\", \"ln\", \"-s\", \"/bin/dash\", \"/bin/sh\"]\n"
    );
    if let Some(script) = tar_script {
        std::fs::write(ctx.path().join("tar"), script).unwrap();
        dockerfile.push_str("COPY tar /bin/tar\nRUN chmod 755 /bin/tar\n");
    }
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build {tag}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    tag.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_streams_the_workspace_in_and_collects_through_the_listing() {
    require_docker!();
    let repo = repo();
    let sb = Sandbox::connect(context("stream", &busybox_image(), |_| {}))
        .await
        .unwrap();
    // The suite sees exactly the uploaded files, no stdin, and writes a report.
    let (outcome, log, out) = gate(
        &sb,
        repo.path(),
        "find . -type f | sort; cat src/lib.txt; test -t 0 || cat; \
         mkdir -p reports && echo '<testsuite tests=\"3\" failures=\"0\"/>' > reports/junit-a.xml; \
         printf 'no newline at the end'; exit 4",
    )
    .await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.exit_code, 4, "{log}");
    for present in [
        "./src/lib.txt",
        "./tests/run.sh",
        "./untracked.txt",
        "./.gitignore",
        "lib\n",
    ] {
        assert!(log.contains(present), "`{present}` missing from the log:\n{log}");
    }
    assert!(!log.contains("./ignored.txt"), "{log}");
    // The wrapper's listing and mark stay out of the log; the suite's last line is whole.
    assert!(log.ends_with("no newline at the end"), "{log:?}");
    assert!(!log.contains("PACE-") && !log.contains("listing"), "{log}");
    assert_eq!(
        outcome.collected,
        vec![out.path().join("collected/reports/junit-a.xml")]
    );
    assert!(
        std::fs::read_to_string(&outcome.collected[0])
            .unwrap()
            .contains("tests=\"3\"")
    );
    assert!(sb.settle().await.is_empty());
    assert!(containers_of(&sb.context().run_id).await.is_empty(), "container left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_suite_cannot_forge_the_listing() {
    require_docker!();
    let repo = repo();
    let sb = Sandbox::connect(context("forge-listing", &busybox_image(), |_| {}))
        .await
        .unwrap();
    // The suite guesses at the mark and lists a report that does not exist, plus paths
    // outside the workspace: that is output like any other, and only the real listing
    // (one real report) is used.
    let fake = "PACE-00000000000000000000000000000000 listing\n12 /workspace/junit-fake.xml\n1 /etc/passwd\n";
    let (outcome, log, out) = gate(
        &sb,
        repo.path(),
        &format!(
            "printf '{}'; echo '<testsuite tests=\"1\"/>' > junit-real.xml",
            fake.replace('\n', "\\n")
        ),
    )
    .await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.exit_code, 0, "{log}");
    assert!(log.contains(fake), "the suite's own output was cut: {log:?}");
    assert_eq!(outcome.collected, vec![out.path().join("collected/junit-real.xml")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_without_result_globs_lists_nothing_and_still_runs() {
    require_docker!();
    let repo = repo();
    let sb = Sandbox::connect(context("no-collect", &busybox_image(), |s| s.collect = Vec::new()))
        .await
        .unwrap();
    let (outcome, log, out) = gate(&sb, repo.path(), "echo x > junit.xml; cat src/lib.txt").await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.exit_code, 0, "{log}");
    assert_eq!(log, "lib\n");
    assert!(outcome.collected.is_empty());
    assert!(!out.path().join("collected").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_image_without_tar_uploads_through_the_api() {
    require_docker!();
    let image = dash_image_with_tar("pace-test/dash-notar:1", None);
    let repo = repo();
    let sb = Sandbox::connect(context("notar", &image, |_| {})).await.unwrap();
    // Twice: the first run finds out, the second goes straight to the archive API.
    for _ in 0..2 {
        let (outcome, log, out) = gate(
            &sb,
            repo.path(),
            "command -v tar || echo no-tar; cat src/lib.txt; echo '<testsuite/>' > junit.xml; exit 2",
        )
        .await;
        let outcome = outcome.unwrap();
        assert_eq!(outcome.exit_code, 2, "{log}");
        assert_eq!(log, "no-tar\nlib\n");
        assert_eq!(outcome.collected, vec![out.path().join("collected/junit.xml")]);
        assert!(sb.settle().await.is_empty());
        assert!(containers_of(&sb.context().run_id).await.is_empty(), "container left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_failed_unpack_is_a_workspace_error_and_the_suite_never_runs() {
    require_docker!();
    let image = dash_image_with_tar(
        "pace-test/dash-brokentar:1",
        Some("#!/bin/sh\necho 'tar: disk full' >&2\nexit 2\n"),
    );
    let repo = repo();
    let sb = Sandbox::connect(context("broken-tar", &image, |_| {})).await.unwrap();
    let (outcome, log, _out) = gate(&sb, repo.path(), "echo the-suite-ran").await;
    let err = outcome.expect_err("a failed unpack must not look like a test result");
    assert!(matches!(err, SandboxError::Workspace { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("tar -x") && message.contains("output.log"),
        "{message}"
    );
    assert!(log.contains("tar: disk full"), "{log}");
    assert!(!log.contains("the-suite-ran"), "{log}");
    assert!(sb.settle().await.is_empty());
    assert!(containers_of(&sb.context().run_id).await.is_empty(), "container left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_as_a_numeric_user_unpacks_into_its_own_workspace() {
    require_docker!();
    let repo = repo();
    let sb = Sandbox::connect(context("uid", &busybox_image(), |s| s.user = Some("1000:1000".into())))
        .await
        .unwrap();
    let (outcome, log, _out) = gate(
        &sb,
        repo.path(),
        "id -u; stat -c '%u' . src/lib.txt; touch src/new && echo writable",
    )
    .await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.exit_code, 0, "{log}");
    assert_eq!(log, "1000\n1000\n1000\nwritable\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_closed_later_are_gone_after_settle_and_after_run_cleanup() {
    require_docker!();
    let repo = repo();
    let sb = Sandbox::connect(context("close-later", &busybox_image(), |_| {}))
        .await
        .unwrap();
    let run_id = sb.context().run_id.clone();
    let session = sb.start_session(repo.path()).await.unwrap();
    assert_eq!(containers_of(&run_id).await.len(), 1);
    sb.close_later(session);
    assert!(sb.settle().await.is_empty());
    assert!(
        containers_of(&run_id).await.is_empty(),
        "settle returned before the removal"
    );
    // A signal's cleanup does not wait for `settle` to be called: it waits by itself.
    let session = sb.start_session(repo.path()).await.unwrap();
    sb.close_later(session);
    sb.remove_run_containers().await.unwrap();
    assert!(
        containers_of(&run_id).await.is_empty(),
        "left after remove_run_containers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_without_tar_in_the_image_still_names_what_is_missing() {
    require_docker!();
    let image = dash_image_with_tar("pace-test/dash-notar:1", None);
    let repo = repo();
    let sb = Sandbox::connect(context("session-notar", &image, |_| {}))
        .await
        .unwrap();
    // The workspace goes in through the API; the session's wrapper then says what it needs.
    let mut session = sb.start_session(repo.path()).await.unwrap();
    let err = session
        .exec("cat src/lib.txt", Duration::from_secs(30))
        .await
        .expect_err("a session without tar");
    assert!(err.to_string().contains("has no `tar`"), "{err}");
    session.close().await.unwrap();
    assert!(sb.settle().await.is_empty());
    assert!(containers_of(&sb.context().run_id).await.is_empty(), "container left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_streamed_in_survives_a_restart_and_a_failed_unpack_is_an_error() {
    require_docker!();
    let repo = repo();
    let sb = Sandbox::connect(context("session-restart", &busybox_image(), |_| {}))
        .await
        .unwrap();
    let mut session = sb.start_session(repo.path()).await.unwrap();
    // A process left running makes pace restart the container; the next command still
    // finds the workspace and a container that waits for it.
    let out = session
        .exec("sleep 600 & cat src/lib.txt", Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        out.output.contains("lib\n") && out.output.contains("were stopped"),
        "{}",
        out.output
    );
    let out = session
        .exec("cat src/lib.txt tests/run.sh untracked.txt", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out.output, "lib\necho run\nuntracked\n");
    session.close().await.unwrap();

    let image = dash_image_with_tar(
        "pace-test/dash-brokentar:1",
        Some("#!/bin/sh\necho 'tar: disk full' >&2\nexit 2\n"),
    );
    let sb = Sandbox::connect(context("session-broken-tar", &image, |_| {}))
        .await
        .unwrap();
    let err = match sb.start_session(repo.path()).await {
        Ok(_) => panic!("a session on a workspace that did not unpack"),
        Err(e) => e,
    };
    assert!(matches!(err, SandboxError::Workspace { .. }), "{err:?}");
    assert!(err.to_string().contains("tar: disk full"), "{err}");
    assert!(sb.settle().await.is_empty());
    assert!(containers_of(&sb.context().run_id).await.is_empty(), "container left");
}
