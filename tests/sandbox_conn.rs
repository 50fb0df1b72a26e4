//! Integration tests: sandbox_conn (how pace reaches the daemon and what it mounts): a TLS
//! daemon on 127.0.0.1 with generated certificates, bind mode, the dependency cache volume,
//! the stale sweep's volumes, `sandbox.keep` and `pace doctor`. A real Docker daemon is
//! needed (skipped with a notice without one); the TLS test also needs root, `dockerd` and
//! `openssl` and starts its own second daemon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pace::config::settings::{CacheScope, SandboxSettings, WorkspaceMode};
use pace::error::Hint as _;
use pace::sandbox::{
    CACHE_MOUNT, Endpoint, LABEL_CACHE, LABEL_CREATED, LABEL_PROJECT, LABEL_RUN_ID, LABEL_TIMEOUT, RunOutcome,
    RunRequest, Sandbox, SandboxContext, SandboxError, cache_volume_name, project_id,
};

use crate::support::docker::{build_busybox_on, busybox_image};
use crate::support::project::git;
use crate::support::project::{Project, stderr, stdout};

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "-q"]);
    std::fs::write(p.join(".gitignore"), "reports/\n").unwrap();
    std::fs::write(p.join("a.txt"), "tracked\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "init"]);
    dir
}

fn context(name: &str, edit: impl FnOnce(&mut SandboxSettings)) -> SandboxContext {
    crate::support::sandbox::context(name, 2, edit)
}

async fn connect(ctx: SandboxContext) -> Sandbox {
    Sandbox::connect(ctx)
        .await
        .unwrap_or_else(|e| panic!("connect: {e} ({:?})", e.hint()))
}

fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_defaults().unwrap()
}

async fn gate(sb: &Sandbox, repo: &Path, command: &str) -> (RunOutcome, String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("gate.log");
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

async fn remove_volume(name: &str) {
    let opts = bollard::query_parameters::RemoveVolumeOptionsBuilder::default()
        .force(true)
        .build();
    let _ = docker().remove_volume(name, Some(opts)).await;
}

// --- bind mode -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mode_works_in_the_repository_itself() {
    require_docker!();
    let repo = repo();
    let p = repo.path();
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::write(p.join("src/lib.txt"), "lib\n").unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-qm", "src"]);
    std::fs::create_dir_all(p.join(".pace")).unwrap();
    std::fs::write(p.join(".pace/state"), "pace's own\n").unwrap();
    let sb = connect(context("bind", |s| {
        s.workspace = WorkspaceMode::Bind;
        s.caches = false;
    }))
    .await;
    let (outcome, log, out) = gate(
        &sb,
        p,
        "cat a.txt; ls -A .git .pace; (echo x > .git/config-new) 2>/dev/null || echo git-is-read-only; \
         echo made-inside > from-container.txt; mkdir -p reports; echo '<testsuite/>' > reports/junit.xml",
    )
    .await;
    assert_eq!(outcome.exit_code, 0, "{log}");
    // `.git` and `.pace` are covered by empty read-only mounts.
    assert_eq!(log, "tracked\n.git:\n\n.pace:\ngit-is-read-only\n");
    assert!(p.join(".git/HEAD").exists() && !p.join(".git/config-new").exists());
    assert_eq!(std::fs::read_to_string(p.join(".pace/state")).unwrap(), "pace's own\n");
    // The suite's write outside the writable directories is undone and reported; ignored
    // output (the reports) stays and is collected.
    assert!(!p.join("from-container.txt").exists());
    let refused: Vec<&str> = outcome.refused.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(refused, vec!["from-container.txt"]);
    let junit = out.path().join("collected/reports/junit.xml");
    assert_eq!(outcome.collected, vec![junit.clone()]);
    assert_eq!(std::fs::read_to_string(junit).unwrap(), "<testsuite/>\n");

    // FORGE in bind mode: edits in the writable directories land in place and are
    // reported; a tracked file elsewhere is restored from HEAD and refused.
    let mut session = sb.start_session(p).await.unwrap();
    std::fs::write(p.join("src/host.txt"), "from host\n").unwrap();
    let ran = session
        .exec(
            "cat src/host.txt; echo edited >> src/lib.txt; echo edited >> a.txt",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(ran.output, "from host\n");
    assert_eq!(ran.changed, vec![PathBuf::from("src/lib.txt")]);
    assert_eq!(std::fs::read_to_string(p.join("src/lib.txt")).unwrap(), "lib\nedited\n");
    assert_eq!(std::fs::read_to_string(p.join("a.txt")).unwrap(), "tracked\n");
    assert_eq!(
        ran.refused.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        vec!["a.txt"]
    );
    session.close().await.unwrap();
}

// --- dependency caches -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_volume_survives_runs_and_is_per_project() {
    require_docker!();
    let first = repo();
    let second = repo();
    let volume = cache_volume_name(first.path(), &CacheScope::Checkout);
    let other_volume = cache_volume_name(second.path(), &CacheScope::Checkout);
    assert_ne!(volume, other_volume);

    let sb = connect(context("cache", |s| s.user = Some("1000:1000".into()))).await;
    let (one, log, _o) = gate(
        &sb,
        first.path(),
        "set -e; echo \"$GOMODCACHE $GOCACHE $npm_config_cache $GRADLE_USER_HOME $NUGET_PACKAGES $MAVEN_OPTS\"; \
         echo x > $GOMODCACHE/marker",
    )
    .await;
    assert_eq!(one.exit_code, 0, "{log}");
    assert_eq!(
        log,
        "/cache/go/mod /cache/go/build /cache/npm /cache/gradle /cache/nuget -Dmaven.repo.local=/cache/maven\n"
    );
    // The second GATE run of the day (a fresh container) sees what the first one cached.
    let (two, log, _o) = gate(&sb, first.path(), "cat $GOMODCACHE/marker").await;
    assert_eq!((two.exit_code, log.as_str()), (0, "x\n"));
    // Another project gets its own volume.
    let (three, log, _o) = gate(&sb, second.path(), "test ! -e $GOMODCACHE/marker && echo fresh").await;
    assert_eq!((three.exit_code, log.as_str()), (0, "fresh\n"));

    let info = docker().inspect_volume(&volume).await.unwrap();
    assert_eq!(info.labels.get(LABEL_CACHE).map(String::as_str), Some("1"));

    // `sandbox.caches: false`: no volume, no variables.
    let plain = connect(context("nocache", |s| s.caches = false)).await;
    let (off, log, _o) = gate(
        &plain,
        first.path(),
        "echo \"[$GOMODCACHE]\"; test ! -e /cache && echo none",
    )
    .await;
    assert_eq!((off.exit_code, log.as_str()), (0, "[]\nnone\n"));

    remove_volume(&volume).await;
    remove_volume(&other_volume).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_sweep_removes_workspace_volumes_but_keeps_caches() {
    require_docker!();
    let cache = format!("pace-cache-sweeptest-{}", std::process::id());
    let labels = HashMap::from([(LABEL_CACHE.to_string(), "1".to_string())]);
    docker()
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(cache.clone()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
        .unwrap();
    // A container as a killed run leaves it: anonymous /workspace volume + the cache.
    let week_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7 * 24 * 3600;
    let run = format!("t-stalevol-{}", std::process::id());
    let checkout = repo();
    let body = bollard::models::ContainerCreateBody {
        image: Some(busybox_image()),
        cmd: Some(vec!["true".into()]),
        labels: Some(HashMap::from([
            (LABEL_RUN_ID.to_string(), run.clone()),
            (LABEL_CREATED.to_string(), week_ago.to_string()),
            (LABEL_PROJECT.to_string(), project_id(checkout.path())),
            (LABEL_TIMEOUT.to_string(), "60".to_string()),
        ])),
        volumes: Some(vec!["/workspace".into()]),
        host_config: Some(bollard::models::HostConfig {
            binds: Some(vec![format!("{cache}:{CACHE_MOUNT}")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker().create_container(None, body).await.unwrap().id;
    let mounts = docker().inspect_container(&id, None).await.unwrap().mounts.unwrap();
    let anonymous = mounts
        .iter()
        .find(|m| m.destination.as_deref() == Some("/workspace"))
        .and_then(|m| m.name.clone())
        .expect("anonymous workspace volume");

    let sb = connect(context("stalevol", |_| {})).await;
    assert!(sb.remove_stale(checkout.path()).await.unwrap() >= 1);
    assert!(
        docker().inspect_container(&id, None).await.is_err(),
        "stale container left"
    );
    assert!(
        docker().inspect_volume(&anonymous).await.is_err(),
        "the stale container's /workspace volume was left behind"
    );
    assert!(
        docker().inspect_volume(&cache).await.is_ok(),
        "the cache volume must survive the sweep"
    );
    remove_volume(&cache).await;
}

// --- pace gate with sandbox.keep, pace doctor ------------------------------------------

fn example_project(extra_sandbox: &str) -> Project {
    let project = Project::example_with_image(&busybox_image());
    if !extra_sandbox.is_empty() {
        let config = project
            .read("pace.config.yaml")
            .replace("  timeout: 120\n", &format!("  timeout: 120\n{extra_sandbox}"));
        std::fs::write(project.path("pace.config.yaml"), config).unwrap();
        project.git(&["commit", "-q", "-am", "sandbox settings"]);
    }
    project
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_prints_the_kept_container_names() {
    require_docker!();
    let project = example_project("  keep: true\n");
    let out = project.pace(&["gate"], &[]).await;
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("kept sandbox container"))
        .unwrap_or_else(|| panic!("no kept line: {err}"));
    let name = line.split('`').nth(1).unwrap().to_string();
    assert!(name.starts_with("pace-"), "{line}");
    docker()
        .inspect_container(&name, None)
        .await
        .expect("kept container exists");
    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    docker().remove_container(&name, Some(opts)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_the_daemon_and_fails_without_one() {
    require_docker!();
    let project = example_project("");
    let out = project.pace(&["doctor"], &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for line in [
        "ok   docker   daemon answers at",
        "ok   api      Docker Engine",
        "ok   image",
        "ok   bind",
    ] {
        assert!(text.contains(line), "missing `{line}`:\n{text}");
    }
    assert!(text.contains("pace uses API 1."), "{text}");
    assert!(
        !project.path(".pace").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("doctor-"))
    );

    let out = project
        .pace(&["doctor"], &[("DOCKER_HOST", "unix:///nonexistent.sock")])
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("FAIL docker"), "{text}");
    assert!(text.contains("/nonexistent.sock"), "{text}");
    assert!(
        text.contains("hint: is the Docker daemon running? there is no socket at `/nonexistent.sock`"),
        "{text}"
    );
}

// --- TLS -------------------------------------------------------------------------------

/// A second dockerd on 127.0.0.1 with TLS verification; stopped (SIGTERM, then SIGKILL)
/// and waited for when dropped.
struct TlsDaemon {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for TlsDaemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA in `dir` (ca.pem, ca-key.pem), a server certificate for 127.0.0.1/localhost and a
/// client certificate (cert.pem, key.pem) signed by it.
pub(crate) fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=pace-test-ca",
            ][..],
            &days,
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "localhost"), ("client", "pace-client")] {
        let key = if name == "server" { "server-key.pem" } else { "key.pem" };
        let cert = if name == "server" {
            "server-cert.pem"
        } else {
            "cert.pem"
        };
        let csr = format!("{name}.csr");
        let ext = format!("{name}.ext");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca-key.pem",
                    "-CAcreateserial",
                    "-out",
                    cert,
                    "-extfile",
                    &ext,
                ][..],
                &days,
            ]
            .concat(),
        );
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

async fn start_tls_daemon() -> Option<TlsDaemon> {
    if !is_root() || !have("dockerd") || !have("openssl") {
        eprintln!("SKIPPED sandbox_conn TLS: needs root, `dockerd` and `openssl`");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("pace-tlsd-")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    make_certs(&d.join("certs"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = d.join("certs");
    let child = crate::support::dockerd::command(d)
        .arg("--tlsverify")
        .arg("--tlscacert")
        .arg(c.join("ca.pem"))
        .arg("--tlscert")
        .arg(c.join("server-cert.pem"))
        .arg("--tlskey")
        .arg(c.join("server-key.pem"))
        .arg("-H")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    let daemon = TlsDaemon { child, dir, port };
    let sock = daemon.dir.path().join("d.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if sock.exists()
            && let Ok(client) = bollard::Docker::connect_with_unix(
                &format!("unix://{}", sock.display()),
                120,
                bollard::API_DEFAULT_VERSION,
            )
            && client.ping().await.is_ok()
        {
            build_busybox_on(&client).await;
            return Some(daemon);
        }
        assert!(
            Instant::now() < deadline,
            "the TLS dockerd did not start: {}",
            std::fs::read_to_string(daemon.dir.path().join("dockerd.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn tls_endpoint(port: u16, cert_dir: &Path) -> Endpoint {
    let vars = HashMap::from([
        ("DOCKER_HOST", format!("tcp://127.0.0.1:{port}")),
        ("DOCKER_TLS_VERIFY", "1".to_string()),
        ("DOCKER_CERT_PATH", cert_dir.display().to_string()),
    ]);
    Endpoint::from_vars(|n| vars.get(n).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_daemon_over_tcp_runs_the_suite_and_a_wrong_ca_is_a_clear_error() {
    require_docker!();
    let Some(daemon) = start_tls_daemon().await else { return };
    let certs = daemon.dir.path().join("certs");

    // The suite runs through tcp:// + TLS with the generated client certificate.
    let endpoint = tls_endpoint(daemon.port, &certs);
    assert!(endpoint.tls_dir.is_some());
    let sb = Sandbox::connect_to(context("tls", |_| {}), endpoint)
        .await
        .unwrap_or_else(|e| panic!("TLS connect: {e} ({:?})", e.hint()));
    let repo = repo();
    let (outcome, log, _out) = gate(&sb, repo.path(), "cat a.txt; echo over-tls; exit 3").await;
    assert_eq!(outcome.exit_code, 3, "{log}");
    assert_eq!(log, "tracked\nover-tls\n");
    drop(sb);

    // Through `pace gate` too (the binary reads the three variables).
    let project = example_project("");
    let out = project
        .pace(
            &["gate"],
            &[
                ("DOCKER_HOST", &format!("tcp://127.0.0.1:{}", daemon.port)),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", &certs.display().to_string()),
            ],
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));

    // A client whose certificates come from another CA: a Connect error, quickly, naming
    // the host, with a hint about DOCKER_CERT_PATH.
    let wrong = daemon.dir.path().join("wrong");
    make_certs(&wrong);
    let started = Instant::now();
    match Sandbox::connect_to(context("tls-wrong", |_| {}), tls_endpoint(daemon.port, &wrong)).await {
        Err(e @ SandboxError::Connect { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&format!("127.0.0.1:{}", daemon.port)), "{message}");
            let hint = e.hint().unwrap();
            assert!(hint.contains("DOCKER_CERT_PATH"), "{hint}");
            assert!(hint.contains(&wrong.display().to_string()), "{hint}");
        }
        Err(e) => panic!("expected a Connect error, got {e}"),
        Ok(_) => panic!("connected with certificates of another CA"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a certificate error must not wait for the daemon: {:?}",
        started.elapsed()
    );
    drop(daemon);
}
