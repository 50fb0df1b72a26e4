//! Runner images (issue "Images"): the static binary, the four Dockerfiles built on a
//! local base (no registry), and the nested path a CI job takes: pace inside a runner
//! image with the host's Docker socket, running GATE in a sibling container.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::support::docker::{busybox_image, docker_available};
use crate::support::fake_llm::FakeLlm;
use crate::support::project::{Project, stderr, stdout};
use crate::support::scripts;

const LOCAL_BASE: &str = "pace-test/debian-git:bookworm";
const LANGS: [&str; 4] = ["go", "node", "temurin", "dotnet"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the static binary, the local base and the four images once per test process.
/// `None` (with a printed reason) when this machine cannot: no daemon, no musl toolchain,
/// or no Debian mirror for the base.
fn images_built() -> Option<&'static ()> {
    static BUILT: OnceLock<Option<()>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if !docker_available() {
                eprintln!("SKIPPED images: no Docker daemon");
                return None;
            }
            if Command::new("musl-gcc")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
            {
                eprintln!("SKIPPED images: musl-tools is not installed (apt-get install musl-tools)");
                return None;
            }
            run(Command::new("make").arg("static").current_dir(root()));
            let base = Command::new(root().join("scripts/build-local-base.sh"))
                .arg(LOCAL_BASE)
                .output()
                .unwrap();
            if !base.status.success() {
                eprintln!(
                    "SKIPPED images: no local base ({})",
                    String::from_utf8_lossy(&base.stderr)
                );
                return None;
            }
            run(Command::new("make")
                .args([
                    "images",
                    &format!("BASE_IMAGE={LOCAL_BASE}"),
                    "IMAGE_BUILD_ARGS=--build-arg WITH_BUILD_TOOLS=0",
                ])
                .current_dir(root()));
            Some(())
        })
        .as_ref()
}

#[test]
fn the_static_binary_runs_in_an_empty_image() {
    if images_built().is_none() {
        return;
    }
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("target/x86_64-unknown-linux-musl/release/pace"),
        ctx.path().join("pace"),
    )
    .unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY pace /pace\nENTRYPOINT [\"/pace\"]\n",
    )
    .unwrap();
    run(Command::new("docker")
        .args(["build", "-q", "-t", "pace-test/scratch-pace:1"])
        .arg(ctx.path()));
    let version = run(Command::new("docker").args(["run", "--rm", "pace-test/scratch-pace:1", "--version"]));
    assert!(version.starts_with("pace "), "{version}");
    let size = std::fs::metadata(root().join("target/x86_64-unknown-linux-musl/release/pace"))
        .unwrap()
        .len();
    assert!(size < 15 * 1024 * 1024, "static binary is {size} bytes");
}

#[test]
fn every_runner_image_has_pace_git_a_shell_and_no_entrypoint() {
    if images_built().is_none() {
        return;
    }
    for lang in LANGS {
        let image = format!("pace/runner-{lang}:latest");
        let out = run(Command::new("docker").args([
            "run",
            "--rm",
            &image,
            "/bin/sh",
            "-c",
            "pace --version && git --version && echo shell-ok",
        ]));
        assert!(
            out.contains("pace ") && out.contains("git version") && out.contains("shell-ok"),
            "{lang}: {out}"
        );
        let inspect = run(Command::new("docker").args([
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}}|{{index .Config.Labels \"org.opencontainers.image.version\"}}|{{index .Config.Labels \"org.opencontainers.image.base.name\"}}",
            &image,
        ]));
        let fields: Vec<&str> = inspect.trim().split('|').collect();
        let [entrypoint, version, base] = fields[..] else {
            panic!("{lang}: {inspect}")
        };
        assert_eq!(entrypoint, "null", "{lang} has an entrypoint");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        // The base the image was built on, for scanners and for rebuilding it.
        assert_eq!(base, LOCAL_BASE, "{lang}: org.opencontainers.image.base.name");
    }
}

/// The CI job path: the runner image runs with the host's socket mounted and the project
/// checked out inside it (so bind mounts of its paths would fail); pace must upload the
/// workspace to a sibling container, ship, and leave the artifacts in the job's workspace.
#[tokio::test(flavor = "multi_thread")]
async fn pace_in_a_runner_image_runs_gate_in_a_sibling_container_and_ships() {
    if images_built().is_none() {
        return;
    }
    let fake = FakeLlm::start(scripts::greeter_day1(), Some("sk-ant-job-key")).await;
    let project = Project::greeter();
    project.use_fake_llm(&fake.url(), &busybox_image(), "");
    // The job's checkout is a tar stream into the container, not a host path.
    let tar = Command::new("tar")
        .args(["-c", "--exclude=.git", "-C"])
        .arg(&project.root)
        .arg(".")
        .output()
        .unwrap()
        .stdout;
    let script = "mkdir -p /builds/job && cd /builds/job && tar -x && git init -q -b sprint/demo && \
                  git -c user.name=ci -c user.email=ci@example.com add -A && git -c user.name=ci -c user.email=ci@example.com commit -qm checkout && \
                  pace --day 1; status=$?; cat .pace/day-1/run.json; ls .pace/day-1/gate; exit $status";
    let mut child = Command::new("docker")
        .args([
            "run",
            "--rm",
            "-i",
            "--network",
            "host",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-e",
            "ANTHROPIC_API_KEY=sk-ant-job-key",
        ])
        .args(["pace/runner-go:latest", "/bin/sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&tar).unwrap();
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\"decision\": \"SHIP\""), "{text}");
    assert!(text.contains("output.log") && text.contains("junit.xml"), "{text}");
    assert!(fake.calls_of("GATE") >= 1);
}
