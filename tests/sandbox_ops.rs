//! Integration tests: sandbox_ops (issue 9, items 6-8) against a real Docker daemon and
//! real git: cache volumes per scope (a run on an unprotected ref cannot poison the
//! protected ref's cache), the stale sweep touching only this project's expired containers,
//! the capped `gate/output.log` (head, marker, tail) and that it is not written through a
//! link. Skipped with a notice without a daemon.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use pace::config::settings::{CacheScope, SandboxSettings};
use pace::error::Hint as _;
use pace::sandbox::{
    LABEL_CACHE, LABEL_CACHE_BRANCH, LABEL_CACHE_SCOPE, LABEL_CREATED, LABEL_PROJECT, LABEL_RUN_ID, LABEL_TIMEOUT,
    RunOutcome, RunRequest, Sandbox, SandboxContext, cache_volume_name, project_id,
};

use crate::support::docker::busybox_image;
use crate::support::project::{Project, git, stderr, stdout};

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join("a.txt"), "tracked\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "init"]);
    dir
}

fn context(name: &str, edit: impl FnOnce(&mut SandboxSettings)) -> SandboxContext {
    crate::support::sandbox::context(&format!("ops-{name}"), 4, edit)
}

async fn connect(ctx: SandboxContext) -> Sandbox {
    Sandbox::connect(ctx)
        .await
        .unwrap_or_else(|e| panic!("connect: {e} ({:?})", e.hint()))
}

fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_defaults().unwrap()
}

/// Runs `command` as GATE does; returns the outcome and `output.log`.
async fn gate(sb: &Sandbox, repo: &Path, command: &str) -> (RunOutcome, String) {
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
        .await
        .unwrap();
    (outcome, std::fs::read_to_string(&log).unwrap())
}

async fn volume_labels(name: &str) -> Option<HashMap<String, String>> {
    docker().inspect_volume(name).await.ok().map(|v| v.labels)
}

async fn remove_volume(name: &str) {
    let opts = bollard::query_parameters::RemoveVolumeOptionsBuilder::default()
        .force(true)
        .build();
    let _ = docker().remove_volume(name, Some(opts)).await;
}

async fn output_of(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The example project with `test_command`, a 60 s timeout and `sandbox` lines added
/// (`caches: false` unless they say otherwise: each temporary project would leave a volume).
fn gate_project(test_command: &str, sandbox_lines: &str) -> Project {
    let sandbox_lines = if sandbox_lines.contains("caches:") {
        sandbox_lines.to_string()
    } else {
        format!("{sandbox_lines}  caches: false\n")
    };
    let p = Project::example_with_image(&busybox_image());
    p.set_gate_config(test_command, 60);
    let config = p.read("pace.config.yaml");
    let config = config
        .lines()
        .filter(|l| !l.trim_start().starts_with("caches:"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("  timeout: 60\n", &format!("  timeout: 60\n{sandbox_lines}"));
    std::fs::write(p.path("pace.config.yaml"), config + "\n").unwrap();
    p
}

// --- item 7: caches per scope ----------------------------------------------------------

/// `pace gate` in GitLab CI: a job on an unprotected ref writes into `/cache`; the next
/// job on a protected ref of the same project does not see it (and the other way round a
/// protected job's cache is kept for protected jobs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_unprotected_run_cannot_poison_the_protected_cache() {
    require_docker!();
    let p = gate_project(
        "if [ -e /cache/poison ]; then echo POISONED; else echo clean; fi; echo x > /cache/poison",
        "  caches: true\n",
    );
    let protected = cache_volume_name(&p.root, &CacheScope::Protected);
    let unprotected = cache_volume_name(&p.root, &CacheScope::Unprotected);
    assert_ne!(protected, unprotected);
    let job = |protected: &str| {
        let mut cmd = p.pace_gate();
        cmd.env("GITLAB_CI", "true").env("CI_COMMIT_REF_PROTECTED", protected);
        cmd
    };

    // The attacker's job: a feature branch, unprotected.
    let out = output_of(job("false")).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "clean\n");
    // The protected branch's job: its own cache, not the poisoned one.
    let out = output_of(job("true")).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "clean\n",
        "the protected run saw the unprotected run's write"
    );
    // Caching still works within a scope: the next unprotected job sees the first's file
    // (an empty value counts as unprotected).
    let out = output_of(job("")).await;
    assert_eq!(stdout(&out), "POISONED\n");

    let labels = volume_labels(&protected).await.expect("protected cache volume");
    assert_eq!(labels.get(LABEL_CACHE_SCOPE).map(String::as_str), Some("protected"));
    assert_eq!(labels.get(LABEL_CACHE).map(String::as_str), Some("1"));
    let labels = volume_labels(&unprotected).await.expect("unprotected cache volume");
    assert_eq!(labels.get(LABEL_CACHE_SCOPE).map(String::as_str), Some("unprotected"));
    remove_volume(&protected).await;
    remove_volume(&unprotected).await;
}

/// Outside CI the checked-out branch picks the volume: what a run on `feature/x` writes
/// is not in `main`'s cache (sandbox API, `CacheScope::Checkout` as `pace` resolves it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_branches_get_their_own_cache() {
    require_docker!();
    let checkout = repo();
    let p = checkout.path();
    let sb = connect(context("branches", |s| {
        s.caches = true;
        s.cache_scope = CacheScope::Checkout;
    }))
    .await;
    let main_volume = cache_volume_name(p, &CacheScope::Branch("main".into()));

    git(p, &["checkout", "-q", "-b", "feature/x"]);
    let feature_volume = cache_volume_name(p, &CacheScope::Checkout);
    assert_ne!(feature_volume, main_volume);
    let (one, log) = gate(&sb, p, "echo evil > /cache/planted && echo wrote").await;
    assert_eq!((one.exit_code, log.as_str()), (0, "wrote\n"));

    git(p, &["checkout", "-q", "main"]);
    let (two, log) = gate(&sb, p, "test ! -e /cache/planted && echo clean").await;
    assert_eq!(
        (two.exit_code, log.as_str()),
        (0, "clean\n"),
        "main's run saw feature/x's write"
    );

    let labels = volume_labels(&feature_volume).await.expect("feature/x cache volume");
    assert_eq!(labels.get(LABEL_CACHE_SCOPE).map(String::as_str), Some("branch"));
    assert_eq!(labels.get(LABEL_CACHE_BRANCH).map(String::as_str), Some("feature/x"));
    let labels = volume_labels(&main_volume).await.expect("main cache volume");
    assert_eq!(labels.get(LABEL_CACHE_BRANCH).map(String::as_str), Some("main"));
    remove_volume(&feature_volume).await;
    remove_volume(&main_volume).await;
}

// --- item 8: cleanup only touches what is yours ----------------------------------------

/// A stopped container with `labels`, created by hand as another run would have left it.
async fn container_with(labels: &[(&str, String)]) -> String {
    let body = bollard::models::ContainerCreateBody {
        image: Some(busybox_image()),
        cmd: Some(vec!["true".into()]),
        labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()),
        ..Default::default()
    };
    docker().create_container(None, body).await.unwrap().id
}

async fn exists(id: &str) -> bool {
    docker().inspect_container(id, None).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_sweep_removes_only_this_projects_expired_containers() {
    require_docker!();
    let ours = repo();
    let theirs = repo();
    let (project, other) = (project_id(ours.path()), project_id(theirs.path()));
    assert_ne!(project, other);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let two_hours_ago = (now - 2 * 3600).to_string();
    let week_ago = (now - 7 * 24 * 3600).to_string();
    let pid = std::process::id();
    let labels = |run: &str, project: &str, created: &str, timeout: Option<&str>| {
        let mut l = vec![
            (LABEL_RUN_ID, format!("t-ops-{run}-{pid}")),
            (LABEL_PROJECT, project.to_string()),
            (LABEL_CREATED, created.to_string()),
        ];
        if let Some(t) = timeout {
            l.push((LABEL_TIMEOUT, t.to_string()));
        }
        l
    };

    // Another project's long-expired container (a shared runner's daemon).
    let other_project = container_with(&labels("other", &other, &week_ago, Some("60"))).await;
    // Ours, two hours old, but its own timeout is a day: a run still going.
    let still_running = container_with(&labels("long", &project, &two_hours_ago, Some("86400"))).await;
    // Ours, two hours old, with a 60 s timeout: left by a killed run.
    let expired = container_with(&labels("expired", &project, &two_hours_ago, Some("60"))).await;
    // Ours by project, but without a recorded timeout (an older pace): not judged.
    let no_timeout = container_with(&labels("old-pace", &project, &week_ago, None)).await;
    // An old pace container without a project label.
    let unlabelled = container_with(&[
        (LABEL_RUN_ID, format!("t-ops-unlabelled-{pid}")),
        (LABEL_CREATED, week_ago.clone()),
    ])
    .await;

    // Our own sandbox_timeout is short: it must not matter for others' containers.
    let sb = connect(context("sweep", |s| s.timeout = Duration::from_secs(1))).await;
    assert_eq!(sb.remove_stale(ours.path()).await.unwrap(), 1);
    assert!(
        !exists(&expired).await,
        "the expired container of this project was left"
    );
    for (id, what) in [
        (&other_project, "another project's container"),
        (&still_running, "a container within its own timeout"),
        (&no_timeout, "a container without `pace.timeout`"),
        (&unlabelled, "a container without `pace.project`"),
    ] {
        assert!(exists(id).await, "the sweep removed {what}");
    }

    // `remove_run_containers` removes this run's containers only, also of this project.
    let own = container_with(&[
        (LABEL_RUN_ID, sb.context().run_id.clone()),
        (LABEL_PROJECT, project.clone()),
    ])
    .await;
    assert_eq!(sb.remove_run_containers().await.unwrap(), 1);
    assert!(!exists(&own).await);
    for id in [&other_project, &still_running, &no_timeout, &unlabelled] {
        assert!(
            exists(id).await,
            "remove_run_containers removed another run's container"
        );
        let _ = docker()
            .remove_container(
                id,
                Some(
                    bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await;
    }
}

/// The labels pace itself puts on a GATE container: the project and the run's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_containers_carry_project_and_timeout() {
    require_docker!();
    let checkout = repo();
    let sb = connect(context("labels", |s| {
        s.caches = false;
        s.keep = true;
        s.timeout = Duration::from_secs(77);
    }))
    .await;
    let (outcome, _) = gate(&sb, checkout.path(), "true").await;
    assert_eq!(outcome.exit_code, 0);
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_RUN_ID}={}", sb.context().run_id)],
    )]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let listed = docker().list_containers(Some(opts)).await.unwrap();
    assert_eq!(listed.len(), 1);
    let labels = listed[0].labels.clone().unwrap_or_default();
    assert_eq!(labels.get(LABEL_PROJECT), Some(&project_id(checkout.path())));
    assert_eq!(labels.get(LABEL_TIMEOUT).map(String::as_str), Some("77"));
    assert_eq!(sb.remove_run_containers().await.unwrap(), 1);
}

// --- item 6: the capped output.log -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_log_keeps_head_and_tail_within_log_limit() {
    require_docker!();
    let p = gate_project("seq 1 200000", "  log_limit: 64k\n");
    let out = output_of(p.pace_gate()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // The terminal still gets everything.
    let full: String = (1..=200_000).map(|n| format!("{n}\n")).collect();
    assert_eq!(stdout(&out), full);

    let log = std::fs::read(p.path(".pace/gate/output.log")).unwrap();
    let left_out = full.len() - 64 * 1024;
    let marker = format!(
        "\n[pace: {left_out} bytes of output omitted here; `sandbox.log_limit` (64 KiB) keeps the first 32 KiB and the last 32 KiB]\n"
    );
    let expected = [
        &full.as_bytes()[..32 * 1024],
        marker.as_bytes(),
        &full.as_bytes()[full.len() - 32 * 1024..],
    ]
    .concat();
    assert_eq!(log.len(), 64 * 1024 + marker.len());
    assert!(log == expected, "output.log is not head + marker + tail");
}

/// A suite that left `.pace/gate` as a link to a directory outside the repository: pace
/// refuses to write the log there, says which path, and the outside file is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_log_is_not_written_through_a_link() {
    require_docker!();
    let p = gate_project("echo suite output", "");
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("output.log");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir_all(p.path(".pace")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path(".pace/gate")).unwrap();

    let out = output_of(p.pace_gate()).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(".pace/gate` is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reports_a_bad_log_limit_with_its_position() {
    let p = gate_project("true", "  log_limit: lots\n");
    let out = p.pace(&["validate"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let line = p
        .read("pace.config.yaml")
        .lines()
        .position(|l| l.contains("log_limit"))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!(
            "pace.config.yaml:{line}:14: error: `sandbox.log_limit`: expected a size such as `256m`, `1g`, a number of bytes, or `0` for no limit, found `lots`"
        )),
        "{text}"
    );
}
