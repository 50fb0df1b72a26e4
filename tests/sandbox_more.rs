//! Integration tests: `pace gate` (the real binary) against a real Docker daemon — large
//! output with bounded memory, signals, the stale-container sweep, pace inside a container
//! with the host socket, and exit-status / JUnit propagation. Skipped with a notice
//! without a daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::docker::busybox_image;
use crate::support::project::{Project, stderr, stdout};

/// The example project with `test_command` and `sandbox.timeout` replaced.
fn gate_project(test_command: &str, timeout_secs: u64) -> Project {
    let p = Project::example_with_image(&busybox_image());
    p.set_gate_config(test_command, timeout_secs);
    p
}

async fn output_of(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn docker_cli(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Containers (running or not) labelled with this run id.
fn containers_of(run_id: &str) -> Vec<String> {
    docker_cli(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=pace.run-id={run_id}"),
        "--format",
        "{{.ID}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// Waits until the `pace gate` process `pid` has a running container and returns its run
/// id (pace's run ids end with `-<pid>`; other tests run `pace gate` in parallel).
async fn running_gate_container(pid: u32) -> String {
    let suffix = format!("-{pid}");
    for _ in 0..150 {
        let ps = docker_cli(&[
            "ps",
            "--filter",
            "label=pace.day=0",
            "--filter",
            "status=running",
            "--format",
            "{{.Label \"pace.run-id\"}}",
        ]);
        if let Some(id) = ps.lines().find(|l| l.ends_with(&suffix)) {
            return id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the container of `pace gate` (pid {pid}) never started");
}

fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_saves_60_mb_of_output_whole_with_bounded_memory() {
    require_docker!();
    let size: u64 = 60 * 1024 * 1024;
    let p = gate_project(
        &format!("yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c {size}"),
        300,
    );
    let rss_dir = tempfile::tempdir().unwrap();
    let rss_file = rss_dir.path().join("rss");
    // GNU time reports the peak RSS (KiB) of pace and of what pace waited for (wait4).
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(env!("CARGO_BIN_EXE_pace"))
        .arg("gate")
        .current_dir(&p.root)
        .env_clear()
        .stdout(Stdio::null());
    for key in ["PATH", "HOME", "DOCKER_HOST"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("SKIPPED gate_saves_60_mb...: /usr/bin/time (Debian package `time`) is missing");
        return;
    }
    let out = output_of(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = p.path(".pace/gate/output.log");
    assert_eq!(std::fs::metadata(&log).unwrap().len(), size);
    let text = std::fs::read(&log).unwrap();
    assert!(text.starts_with(b"0123456789abcdef0123"));
    assert_eq!(
        text.iter().filter(|b| **b == b'\n').count() as u64,
        size / 64,
        "every line arrived"
    );
    drop(text);
    let kib: u64 = std::fs::read_to_string(&rss_file).unwrap().trim().parse().unwrap();
    eprintln!("pace gate with {size} bytes of output: peak RSS {} KiB", kib);
    assert!(kib < 64 * 1024, "peak RSS {kib} KiB for {size} bytes of output");
}

async fn interrupted_gate_leaves_no_container(signal: &str, expected: i32) {
    let p = gate_project("echo started; sleep 600", 900);
    let mut cmd = p.pace_gate();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let run_id = running_gate_container(pid).await;
    assert_eq!(containers_of(&run_id).len(), 1);
    send_signal(pid, signal);
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(expected), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cleanup took {:?}",
        started.elapsed()
    );
    assert!(stdout(&out).contains("started"), "{}", stdout(&out));
    assert_eq!(
        containers_of(&run_id),
        Vec::<String>::new(),
        "containers left after SIG{signal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_gate_exits_130_and_leaves_no_container() {
    require_docker!();
    interrupted_gate_leaves_no_container("INT", 130).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_gate_exits_143_and_leaves_no_container() {
    require_docker!();
    interrupted_gate_leaves_no_container("TERM", 143).await;
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Starts `pace gate` (a `sleep 600` suite), waits for its container and kills pace with
/// SIGKILL, so nothing cleans up. `clock_offset` (libfaketime syntax, e.g. `-2h`) shifts
/// pace's wall clock, hence the `pace.created` label of its container.
async fn killed_gate_run(p: &Project, clock_offset: Option<&str>) -> String {
    let mut cmd = p.pace_gate();
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(offset) = clock_offset {
        cmd.env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME", offset)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let run_id = running_gate_container(pid).await;
    send_signal(pid, "KILL");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), None, "pace was killed by a signal");
    run_id
}

/// Removes the containers of these run ids (also when the test fails).
struct RemoveOnDrop(Vec<String>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for run_id in &self.0 {
            // No asserting helpers here: this may run while a failed test unwinds.
            let Ok(ps) = Command::new("docker")
                .args(["ps", "-aq", "--filter", &format!("label=pace.run-id={run_id}")])
                .output()
            else {
                continue;
            };
            let ids = String::from_utf8_lossy(&ps.stdout).into_owned();
            if !ids.trim().is_empty() {
                let _ = Command::new("docker")
                    .args(["rm", "-fv"])
                    .args(ids.split_whitespace())
                    .output();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_container_of_a_killed_run_is_swept_by_the_next_gate() {
    require_docker!();
    if !Path::new(LIBFAKETIME).exists() {
        eprintln!(
            "SKIPPED a_stale_container...: {LIBFAKETIME} is missing (Debian package `faketime`); \
             it backdates the killed run's `pace.created` label"
        );
        return;
    }
    let p = gate_project("sleep 600", 900);
    // A run killed 1800 s ago (its clock was set back) and one killed just now, both with
    // `sandbox.timeout: 900` recorded on their containers: stale is older than that plus
    // pace's 600 s margin, whatever the sweeping run's own timeout. The sweep only
    // touches this project's containers, so other tests' runs leave them alone. The young
    // one first: its run's own sweep would remove the old one.
    let mut cleanup = RemoveOnDrop(Vec::new());
    let recent = killed_gate_run(&p, None).await;
    cleanup.0.push(recent.clone());
    let old = killed_gate_run(&p, Some("-1800")).await;
    cleanup.0.push(old.clone());
    let created = docker_cli(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=pace.run-id={old}"),
        "--format",
        "{{.Label \"pace.created\"}}",
    ]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let age = now - created.trim().parse::<u64>().unwrap();
    assert!((1790..1820).contains(&age), "label age {age} s");
    // SIGKILL: no cleanup happened, both containers are still there (and running).
    assert_eq!(containers_of(&old).len(), 1);
    assert_eq!(containers_of(&recent).len(), 1);

    // The next `pace gate` sweeps containers older than their own `sandbox.timeout` plus
    // pace's margin, and leaves the young one of the other (maybe still live) run alone.
    p.set_gate_config("echo next run", 1);
    let out = output_of(p.pace_gate()).await;
    let (old_left, recent_left) = (containers_of(&old), containers_of(&recent));
    drop(cleanup);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("next run"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("removed 1 stale sandbox container"),
        "{}",
        stderr(&out)
    );
    assert_eq!(old_left, Vec::<String>::new(), "the stale container was not swept");
    assert_eq!(recent_left.len(), 1, "a young container was swept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_exit_status_propagates_and_junit_is_written() {
    require_docker!();
    let p = gate_project("true", 120);
    let junit = p.path(".pace/gate/junit.xml");
    for (command, code) in [("echo fine", 0), ("echo broken; exit 1", 1), ("exit 3", 3)] {
        p.set_gate_config(command, 120);
        let out = output_of(p.pace_gate()).await;
        assert_eq!(out.status.code(), Some(code), "`{command}`: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("pace gate: exit code {code};")),
            "{}",
            stderr(&out)
        );
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("name=\"pace-gate\""), "synthesized: {xml}");
        let failures = if code == 0 { "failures=\"0\"" } else { "failures=\"1\"" };
        assert!(xml.contains(failures), "`{command}`: {xml}");
        if code != 0 {
            assert!(xml.contains(&format!("exit code {code}")), "{xml}");
        }
        std::fs::remove_file(&junit).unwrap();
    }

    // A suite that writes its own report: that report becomes gate/junit.xml.
    let own = "<testsuite name=\"own\" tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\"><testcase name=\"a\"/></testsuite>";
    p.set_gate_config(
        &format!("mkdir -p reports && echo '{own}' > reports/junit.xml; exit 1"),
        120,
    );
    let out = output_of(p.pace_gate()).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("name=\"own\"") && !xml.contains("pace-gate"), "{xml}");
    assert!(stderr(&out).contains("4 tests, 1 failures"), "{}", stderr(&out));
}

/// Paths of the shared libraries `binary` needs (from `ldd`), the loader included.
fn shared_libs(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    assert!(out.status.success(), "ldd {}", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn copy_into(root: &Path, host_path: &Path, image_path: &str) {
    let target = root.join(image_path.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(host_path, &target).unwrap_or_else(|e| panic!("{}: {e}", host_path.display()));
}

/// A `FROM scratch` image holding the pace binary under test, git, busybox and the
/// shared libraries they need (copied from this host), plus the example project as a
/// template. There is no static musl build of pace yet, hence the copied glibc libs.
fn build_ci_job_image(tag: &str, test_command: &str) {
    let ctx = tempfile::tempdir().unwrap();
    let rootfs = ctx.path().join("rootfs");
    let pace = Path::new(env!("CARGO_BIN_EXE_pace"));
    // Debug builds are large: strip the copy (falls back to a plain copy).
    let target = rootfs.join("usr/local/bin/pace");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&target)
        .arg(pace)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(pace, &target).unwrap();
    }
    copy_into(&rootfs, Path::new("/usr/bin/git"), "/usr/bin/git");
    copy_into(&rootfs, Path::new("/bin/busybox"), "/bin/busybox");
    let mut libs = shared_libs(pace);
    libs.extend(shared_libs(Path::new("/usr/bin/git")));
    libs.sort();
    libs.dedup();
    for lib in &libs {
        copy_into(&rootfs, lib, &lib.to_string_lossy());
    }
    // The project template (created as a repository inside the job container).
    let template = Project::example_with_image(&busybox_image());
    template.set_gate_config(test_command, 120);
    for rel in [
        "pace.config.yaml",
        "plan.yaml",
        "tests/run.sh",
        "src/README.md",
        "README.md",
    ] {
        copy_into(&rootfs, &template.path(rel), &format!("/template/{rel}"));
    }
    let lib_dirs: Vec<String> = libs
        .iter()
        .filter_map(|l| l.parent().map(|d| d.display().to_string()))
        .collect();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY rootfs/ /\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             RUN [\"/bin/sh\", \"-c\", \"mkdir -p /tmp /root && chmod 1777 /tmp\"]\n\
             ENV PATH=/usr/local/bin:/usr/bin:/bin LD_LIBRARY_PATH={} HOME=/root\n",
            lib_dirs.join(":")
        ),
    )
    .unwrap();
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pace_inside_a_container_with_the_host_socket_runs_the_suite_by_upload() {
    require_docker!();
    let socket = "/var/run/docker.sock";
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if !(host.is_empty() || host == format!("unix://{socket}")) || !Path::new(socket).exists() {
        eprintln!("SKIPPED pace_inside_a_container...: needs the daemon on {socket} (DOCKER_HOST={host})");
        return;
    }
    busybox_image();
    let tag = format!("pace-test/ci-job:{}", std::process::id());
    // The suite proves it sees the job's files (uploaded: the job's /job path exists only
    // inside the job container, never on the daemon's host).
    build_ci_job_image(
        &tag,
        "test -f tests/run.sh && test -f pace.config.yaml && echo suite-saw-the-files; \
         echo uploaded > from-the-job.txt; exit 3",
    );
    assert!(!Path::new("/job").exists(), "the host must not have /job");
    let script = "set -e; cp -r /template /job; cd /job; git init -q; git add -A; \
                  git -c user.name=ci -c user.email=ci@example.invalid commit -qm job; \
                  set +e; pace gate; code=$?; ls; exit $code";
    let out = output_of({
        let mut cmd = Command::new("docker");
        cmd.args([
            "run",
            "--rm",
            "--network",
            "host",
            "-v",
            &format!("{socket}:{socket}"),
            &tag,
            "sh",
            "-c",
            script,
        ]);
        cmd
    })
    .await;
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("suite-saw-the-files"), "{}", stdout(&out));
    assert!(stderr(&out).contains("pace gate: exit code 3"), "{}", stderr(&out));
    // The suite ran in its own container: its file stayed there.
    assert!(!stdout(&out).contains("from-the-job.txt"), "{}", stdout(&out));
    assert!(!Path::new("/job").exists(), "the host must not have /job");
}
