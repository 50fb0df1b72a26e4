//! Integration tests: the dependency set-up phase (issue 12 item 1) against a real Docker
//! daemon, with a fake installer in the local busybox image (no registry): its output in
//! `setup/output.log`, its workspace output and cache seen by GATE without network, the
//! skip while the lockfiles are unchanged, the rerun when they change, a failing set-up
//! holding, and a set-up without network failing as an infrastructure error. Skipped with
//! a notice without a daemon.

use std::process::{Command, Output};

use std::time::Duration;

use pace::config::settings::CacheScope;
use pace::sandbox::setup::SetupStatus;
use pace::sandbox::{LABEL_PROJECT, Sandbox, cache_volume_name, project_id};

use crate::support::docker::busybox_image;
use crate::support::project::{Project, stderr, stdout};
use crate::support::scenario::Scenario;

/// A fake `npm ci`: a package in the workspace (from the lockfile), a tarball in the npm
/// cache, and a line saying so.
const FAKE_INSTALL: &str = "mkdir -p node_modules/x && cp package-lock.json node_modules/x/index.txt \
    && mkdir -p /cache/npm && echo cached-tarball > /cache/npm/x.tgz && echo installed";

/// GATE's suite: prints what the set-up left and the offline setting.
const SUITE: &str = "cat node_modules/x/index.txt && cat /cache/npm/x.tgz && echo offline=$npm_config_offline";

/// The example project with a lockfile, `node_modules/` ignored, a set-up command and a
/// cache volume; removes its containers and volume when dropped.
struct SetupProject {
    project: Project,
}

impl SetupProject {
    fn new(setup: &str, test: &str, sandbox_extra: &str) -> Self {
        Self::with_image(&busybox_image(), setup, test, sandbox_extra)
    }

    fn with_image(image: &str, setup: &str, test: &str, sandbox_extra: &str) -> Self {
        let project = Project::example_with_image(image);
        std::fs::write(project.path("package-lock.json"), "{\"lock\": 1}\n").unwrap();
        let ignore = project.read(".gitignore") + "node_modules/\n";
        std::fs::write(project.path(".gitignore"), ignore).unwrap();
        let config = project
            .read("pace.config.yaml")
            .replace(
                "  test_command: sh tests/run.sh",
                &format!(
                    "  test_command: '{}'\n  setup_command: '{}'",
                    test.replace('\'', "''"),
                    setup.replace('\'', "''")
                ),
            )
            .replace(
                "  caches: false        # a shell project has no dependencies to cache",
                &format!("  caches: true\n{sandbox_extra}"),
            );
        assert!(
            config.contains("setup_command") && config.contains("caches: true"),
            "{config}"
        );
        std::fs::write(project.path("pace.config.yaml"), config).unwrap();
        project.git(&["add", "-A"]);
        project.git(&["commit", "-qm", "set-up phase"]);
        Self { project }
    }

    fn gate(&self) -> Output {
        self.project.pace_gate().output().unwrap()
    }

    fn setup_log(&self) -> String {
        self.project.read(".pace/setup/output.log")
    }

    /// `docker inspect` of this project's containers: (name, network mode, env).
    fn containers(&self) -> Vec<(String, String, String)> {
        let filter = format!("label={LABEL_PROJECT}={}", project_id(&self.project.root));
        let ids = docker(&["ps", "-aq", "--filter", &filter]);
        ids.split_whitespace()
            .map(|id| {
                let info = docker(&[
                    "inspect",
                    "-f",
                    "{{.Name}}|{{.HostConfig.NetworkMode}}|{{join .Config.Env \" \"}}",
                    id,
                ]);
                let mut parts = info.trim().splitn(3, '|');
                let mut next = || parts.next().unwrap_or_default().to_string();
                (next(), next(), next())
            })
            .collect()
    }

    fn remove_containers(&self) {
        let filter = format!("label={LABEL_PROJECT}={}", project_id(&self.project.root));
        for id in docker(&["ps", "-aq", "--filter", &filter]).split_whitespace() {
            docker(&["rm", "-fv", id]);
        }
    }
}

impl Drop for SetupProject {
    fn drop(&mut self) {
        self.remove_containers();
        // The repository is on branch `sprint/demo`: the checkout scope's volume.
        docker(&[
            "volume",
            "rm",
            "-f",
            &cache_volume_name(&self.project.root, &CacheScope::Checkout),
        ]);
    }
}

use crate::support::docker::cli as docker;

#[track_caller]
fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn gate_sees_the_set_up_offline_and_an_unchanged_lockfile_skips_it() {
    require_docker!();
    let p = SetupProject::new(FAKE_INSTALL, SUITE, "  keep: true\n");

    // Day one: the set-up installs, GATE reads what it left, without network.
    let out = p.gate();
    expect_code(&out, 0);
    let log = p.setup_log();
    assert!(log.contains("installed"), "setup/output.log: {log}");
    let suite = stdout(&out);
    assert!(suite.contains("{\"lock\": 1}"), "GATE saw node_modules/x: {suite}");
    assert!(suite.contains("cached-tarball"), "GATE saw the cache: {suite}");
    assert!(suite.contains("offline=true"), "npm told to stay offline: {suite}");
    assert!(
        !p.project.exists("node_modules"),
        "the set-up's output never comes back into the repository"
    );
    let containers = p.containers();
    let setup = containers.iter().find(|c| c.0.contains("-setup-"));
    let gate = containers.iter().find(|c| c.0.contains("-gate-"));
    let (Some(setup), Some(gate)) = (setup, gate) else {
        panic!("kept containers: {containers:?}");
    };
    assert_eq!(setup.1, "bridge", "the set-up has `sandbox.setup_network`");
    assert_eq!(gate.1, "none", "GATE has no network");
    assert!(!setup.2.contains("npm_config_offline"), "{}", setup.2);
    assert!(gate.2.contains("npm_config_offline=true"), "{}", gate.2);
    p.remove_containers();

    // The same lockfile: skipped, and GATE still has the packages.
    let out = p.gate();
    expect_code(&out, 0);
    let log = p.setup_log();
    assert!(log.starts_with("pace: set-up skipped"), "setup/output.log: {log}");
    assert!(!log.contains("installed"), "{log}");
    assert!(stdout(&out).contains("{\"lock\": 1}"), "{}", stdout(&out));
    assert!(stderr(&out).contains("skipped"), "{}", stderr(&out));
    p.remove_containers();

    // A changed lockfile: the set-up runs again and GATE gets the new packages.
    std::fs::write(p.project.path("package-lock.json"), "{\"lock\": 2}\n").unwrap();
    let out = p.gate();
    expect_code(&out, 0);
    assert!(p.setup_log().contains("installed"), "{}", p.setup_log());
    assert!(stdout(&out).contains("{\"lock\": 2}"), "{}", stdout(&out));
}

#[test]
fn a_failing_set_up_stops_before_the_suite_with_the_tail_and_a_hint() {
    require_docker!();
    let p = SetupProject::new(
        "echo resolving; echo \"npm ERR! 404 Not Found - GET left-pad@9.9.9\"; exit 3",
        "echo SUITE-RAN",
        "",
    );
    let out = p.gate();
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("404 Not Found - GET left-pad@9.9.9"), "{err}");
    assert!(
        err.contains("exit code 3") && err.contains("tech.setup_command"),
        "{err}"
    );
    assert!(
        !stdout(&out).contains("SUITE-RAN"),
        "GATE must not run: {}",
        stdout(&out)
    );
    assert!(p.setup_log().contains("npm ERR! 404"), "{}", p.setup_log());
}

#[test]
fn a_set_up_without_network_is_an_infrastructure_error() {
    require_docker!();
    // A download from an address that needs a route: without a network the connect fails
    // at once (busybox's `nc`; its `wget` crashes in this image).
    let p = SetupProject::new(
        "nc -w 5 10.255.255.1 80 </dev/null > left-pad.tgz",
        "echo SUITE-RAN",
        "  setup_network: none\n",
    );
    let out = p.gate();
    expect_code(&out, 4);
    let err = stderr(&out);
    assert!(err.contains("could not reach the network"), "{err}");
    assert!(err.contains("`sandbox.setup_network` is `none`"), "{err}");
    assert!(!stdout(&out).contains("SUITE-RAN"), "{}", stdout(&out));
}

#[tokio::test]
async fn a_failing_set_up_holds_the_day() {
    require_docker!();
    let day = Scenario::greeter()
        .edit_config(
            "  test_command: sh tests/run.sh",
            "  test_command: sh tests/run.sh\n  setup_command: 'echo fetching; echo \"E: Unable to locate package libfoo\"; exit 100'",
        )
        .start()
        .await;
    day.pace(&["--day", "1"]).await.expect_exit(1);
    assert_eq!(day.run_json(1)["decision"], "HOLD");
    let log = day.artifact(1, "setup/output.log");
    assert!(log.contains("Unable to locate package libfoo"), "{log}");
    let escalation = day.artifact(1, "escalation.md");
    assert!(
        escalation.contains("Unable to locate package libfoo") && escalation.contains("exit code 100"),
        "{escalation}"
    );
    assert_eq!(day.llm.calls_of("FORGE"), 0, "FORGE never started");
}

/// Loads `config` (with a one-day plan) from a fresh directory.
fn load(config: &str) -> Result<pace::config::Loaded, pace::config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("pace.config.yaml"), config).unwrap();
    std::fs::write(dir.path().join("plan.yaml"), "days:\n  - day: 1\n    target: Login\n").unwrap();
    pace::config::load(dir.path(), None, &pace::env::Env::default())
}

#[test]
fn the_set_up_keys_resolve_and_a_bad_network_name_is_positioned() {
    use pace::config::settings::SetupCommand;
    const BASE: &str = "product:\n  name: Shop\nsource:\n  dirs:\n    - {name: core, path: src/}\n";
    let settings = |text: &str| match load(text) {
        Ok(loaded) => loaded.settings,
        Err(e) => panic!("{text}\n{e}"),
    };
    let s = settings(&format!("{BASE}tech:\n  test_command: make test\n"));
    assert_eq!(s.tech.setup_command, SetupCommand::Default);
    assert_eq!(s.sandbox.setup_network, "bridge");
    assert!(!s.forge.setup_on_change);
    let s = settings(&format!(
        "{BASE}tech:\n  test_command: make test\n  setup_command: false\nsandbox:\n  setup_network: ci_net-1\nforge:\n  setup_on_change: yes\n"
    ));
    assert_eq!(s.tech.setup_command, SetupCommand::Off);
    assert_eq!(s.sandbox.setup_network, "ci_net-1");
    assert!(s.forge.setup_on_change);
    let s = settings(&format!(
        "{BASE}tech:\n  test_command: make test\n  setup_command: \"npm ci\"\n"
    ));
    assert_eq!(s.tech.setup_command, SetupCommand::Command("npm ci".into()));
    let s = settings(&format!(
        "{BASE}tech:\n  test_command: make test\n  setup_command: \"\"\n"
    ));
    assert_eq!(s.tech.setup_command, SetupCommand::Off);

    let text = format!("{BASE}tech:\n  test_command: make test\nsandbox:\n  setup_network: \"my net\"\n");
    let err = match load(&text) {
        Ok(_) => panic!("`my net` accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("pace.config.yaml:9:18"), "{err}");
    assert!(
        err.contains("`sandbox.setup_network`") && err.contains("docker network ls"),
        "{err}"
    );
}

#[tokio::test]
async fn a_forge_session_sees_the_set_up_and_is_told_how_to_add_a_dependency() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    crate::support::project::git(p, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::write(p.join("src/a.txt"), "a\n").unwrap();
    std::fs::write(p.join("package-lock.json"), "{\"lock\": 7}\n").unwrap();
    std::fs::write(p.join(".gitignore"), "node_modules/\n").unwrap();
    crate::support::project::git(p, &["add", "-A"]);
    crate::support::project::git(p, &["commit", "-qm", "init"]);
    let volume = cache_volume_name(p, &CacheScope::Checkout);
    let ctx = crate::support::sandbox::context("setup-forge", 1, |s| s.caches = true);
    let sb = Sandbox::connect(ctx).await.unwrap();
    let log = p.join(".pace/day-1/setup/output.log");
    let outcome = sb.setup(p, FAKE_INSTALL, &log, None).await.unwrap();
    assert_eq!(
        outcome.status,
        SetupStatus::Ran,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );

    let mut session = sb.start_session(p).await.unwrap();
    let timeout = Duration::from_secs(30);
    let first = session
        .exec(
            "cat node_modules/x/index.txt; echo offline=$npm_config_offline",
            timeout,
        )
        .await
        .unwrap();
    assert!(first.output.contains("{\"lock\": 7}"), "{}", first.output);
    assert!(first.output.contains("offline=true"), "{}", first.output);
    assert!(first.changed.is_empty() && first.refused.is_empty(), "{first:?}");
    let add = session.exec("npm install left-pad", timeout).await.unwrap();
    assert_ne!(add.exit_code, 0);
    assert!(
        add.output.contains("package.json") && add.output.contains("set-up"),
        "{}",
        add.output
    );
    let write = session
        .exec("echo new > src/new.txt && ls node_modules/x", timeout)
        .await
        .unwrap();
    assert_eq!(
        write.changed,
        vec![std::path::PathBuf::from("src/new.txt")],
        "{write:?}"
    );
    assert!(write.refused.is_empty(), "{write:?}");
    assert!(
        !p.join("node_modules").exists(),
        "the set-up's output stays out of the repository"
    );
    let _ = session.close().await;
    let _ = sb.remove_run_containers().await;
    docker(&["volume", "rm", "-f", &volume]);
}

#[tokio::test]
async fn setup_on_change_runs_the_set_up_again_before_gate_and_it_skips_itself() {
    require_docker!();
    let day = Scenario::greeter()
        .edit_config(
            "  test_command: sh tests/run.sh",
            "  test_command: sh tests/run.sh\n  setup_command: echo installed",
        )
        .edit_config("  caches: false", "  caches: true")
        .edit_config("  max_iterations: 20", "  max_iterations: 20\n  setup_on_change: true")
        .start()
        .await;
    let volume = cache_volume_name(&day.project.root, &CacheScope::Checkout);
    let ran = day.pace(&["--day", "1"]).await;
    docker(&["volume", "rm", "-f", &volume]);
    let ran = ran.expect_exit(0);
    let text = ran.text();
    let done = text.find("set-up `echo installed` done");
    let skipped = text.find("set-up `echo installed` skipped");
    assert!(
        matches!((done, skipped), (Some(d), Some(s)) if d < s),
        "the first set-up ran, the one before GATE skipped: {text}"
    );
    assert!(day.artifact(1, "setup/output.log").starts_with("pace: set-up skipped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_whether_the_set_up_program_is_in_the_image() {
    require_docker!();
    let p = SetupProject::new("npm ci", "true", "");
    let out = p.project.pace(&["doctor"], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}{}", stderr(&out));
    assert!(text.contains("FAIL setup"), "{text}");
    assert!(text.contains("`npm` is not on the `PATH`"), "{text}");
    assert!(text.contains("tech.setup_command"), "{text}");

    let p = SetupProject::new(FAKE_INSTALL, "true", "");
    let out = p.project.pace(&["doctor"], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("ok   setup"), "{text}");
}

#[tokio::test]
async fn without_caches_the_set_up_runs_every_time_and_leaves_nothing_for_gate() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    crate::support::project::git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join("package-lock.json"), "{\"lock\": 3}\n").unwrap();
    crate::support::project::git(p, &["add", "-A"]);
    crate::support::project::git(p, &["commit", "-qm", "init"]);
    let ctx = crate::support::sandbox::context("setup-nocache", 1, |s| s.caches = false);
    let sb = Sandbox::connect(ctx).await.unwrap();
    let log = p.join(".pace/day-1/setup/output.log");
    let install = "mkdir -p node_modules/x && echo installed";
    for _ in 0..2 {
        let outcome = sb.setup(p, install, &log, None).await.unwrap();
        assert_eq!(outcome.status, SetupStatus::Ran);
        assert!(std::fs::read_to_string(&log).unwrap().contains("installed"));
    }
    let out = tempfile::tempdir().unwrap();
    let gate = sb
        .run(pace::sandbox::RunRequest {
            repo: p,
            command: "test -e node_modules || echo no-node-modules; echo offline=$npm_config_offline".into(),
            output_log: &out.path().join("output.log"),
            collect_into: &out.path().join("collected"),
            on_output: None,
        })
        .await
        .unwrap();
    assert_eq!(gate.exit_code, 0);
    let text = std::fs::read_to_string(out.path().join("output.log")).unwrap();
    assert_eq!(text, "no-node-modules\noffline=\n");
}

#[test]
fn a_terminated_set_up_leaves_no_container() {
    require_docker!();
    let p = SetupProject::new("echo fetching; sleep 60", "echo SUITE-RAN", "");
    let child = p
        .project
        .pace_gate()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !p.containers().iter().any(|c| c.0.contains("-setup-")) {
        assert!(std::time::Instant::now() < deadline, "no set-up container appeared");
        std::thread::sleep(Duration::from_millis(200));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 143);
    assert!(!stdout(&out).contains("SUITE-RAN"));
    assert_eq!(p.containers(), Vec::new(), "the set-up container is removed");
}

#[tokio::test]
async fn in_bind_mode_the_set_up_writes_the_checkout_and_runs_every_time() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    crate::support::project::git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join("package-lock.json"), "{\"lock\": 4}\n").unwrap();
    std::fs::write(p.join(".gitignore"), "node_modules/\n").unwrap();
    crate::support::project::git(p, &["add", "-A"]);
    crate::support::project::git(p, &["commit", "-qm", "init"]);
    let volume = cache_volume_name(p, &CacheScope::Checkout);
    let ctx = crate::support::sandbox::context("setup-bind", 1, |s| {
        s.caches = true;
        s.workspace = pace::config::settings::WorkspaceMode::Bind;
    });
    let sb = Sandbox::connect(ctx).await.unwrap();
    let log = p.join(".pace/day-1/setup/output.log");
    for _ in 0..2 {
        let outcome = sb.setup(p, FAKE_INSTALL, &log, None).await.unwrap();
        assert_eq!(
            outcome.status,
            SetupStatus::Ran,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
    assert_eq!(
        std::fs::read_to_string(p.join("node_modules/x/index.txt")).unwrap(),
        "{\"lock\": 4}\n",
        "ignored output stays in the checkout"
    );
    let out = tempfile::tempdir().unwrap();
    let gate = sb
        .run(pace::sandbox::RunRequest {
            repo: p,
            command: SUITE.into(),
            output_log: &out.path().join("output.log"),
            collect_into: &out.path().join("collected"),
            on_output: None,
        })
        .await
        .unwrap();
    let text = std::fs::read_to_string(out.path().join("output.log")).unwrap();
    assert_eq!(gate.exit_code, 0, "{text}");
    assert!(
        text.contains("{\"lock\": 4}") && text.contains("offline=true"),
        "{text}"
    );
    assert!(!p.join("node_modules/x").is_symlink());
    let _ = sb.remove_run_containers().await;
    docker(&["volume", "rm", "-f", &volume]);
}

/// A Debian image with `packages` installed, tagged `tag` and kept for later runs: built
/// on the local Debian base (`scripts/build-local-base.sh`, debootstrap) with the host's
/// network (the daemon's bridge may have no route out). `None` (with a printed reason)
/// when this machine cannot.
pub(crate) fn debian_image(tag: &str, packages: &str) -> Option<String> {
    if !docker(&["image", "inspect", "-f", "{{.Id}}", tag]).trim().is_empty() {
        return Some(tag.to_string());
    }
    let base = crate::support::docker::debian_base()?;
    let dockerfile = format!(
        "FROM {base}\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {packages} >/dev/null && rm -rf /var/lib/apt/lists/*\n"
    );
    let mut build = Command::new("docker")
        .args(["build", "--network", "host", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut build.stdin.take().unwrap(), dockerfile.as_bytes()).unwrap();
    let out = build.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("SKIPPED: cannot build {tag}: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(tag.to_string())
}

#[tokio::test]
async fn a_go_module_is_set_up_by_default_and_tested_offline() {
    require_docker!();
    let Some(image) = debian_image("pace-test/debian-go:bookworm", "golang-go") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    crate::support::project::git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join("go.mod"), "module example.com/m\n\ngo 1.19\n").unwrap();
    std::fs::write(p.join("m.go"), "package m\n\nfunc Add(a, b int) int { return a + b }\n").unwrap();
    std::fs::write(
        p.join("m_test.go"),
        "package m\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal(\"2+3\")\n\t}\n}\n",
    )
    .unwrap();
    crate::support::project::git(p, &["add", "-A"]);
    crate::support::project::git(p, &["commit", "-qm", "init"]);
    let command = pace::sandbox::setup::default_command(p, "Go 1.19");
    assert_eq!(command.as_deref(), Some("go mod download"));
    let volume = cache_volume_name(p, &CacheScope::Checkout);
    let ctx = crate::support::sandbox::context("setup-go", 1, |s| {
        s.image = image.clone();
        s.caches = true;
        s.timeout = Duration::from_secs(300);
        s.memory_bytes = 1024 * 1024 * 1024;
    });
    let sb = Sandbox::connect(ctx).await.unwrap();
    let log = p.join(".pace/day-1/setup/output.log");
    let outcome = sb.setup(p, &command.unwrap(), &log, None).await.unwrap();
    assert_eq!(
        outcome.status,
        SetupStatus::Ran,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let out = tempfile::tempdir().unwrap();
    let gate = sb
        .run(pace::sandbox::RunRequest {
            repo: p,
            command: "go env GOFLAGS GOPROXY GOMODCACHE && go test ./...".into(),
            output_log: &out.path().join("output.log"),
            collect_into: &out.path().join("collected"),
            on_output: None,
        })
        .await
        .unwrap();
    let _ = sb.remove_run_containers().await;
    docker(&["volume", "rm", "-f", &volume]);
    let text = std::fs::read_to_string(out.path().join("output.log")).unwrap();
    assert_eq!(gate.exit_code, 0, "{text}");
    assert!(
        text.starts_with("-mod=mod\noff\n/cache/go/mod\n"),
        "Go told to stay offline: {text}"
    );
    assert!(text.contains("ok  \texample.com/m"), "{text}");
}
