//! Runner images (issue "Images"): the static binary, the four Dockerfiles built on a
//! local base (no registry), and the nested path a CI job takes: pace inside a runner
//! image with the host's Docker socket, running GATE in a sibling container. The images
//! go through a real TLS registry with a login and come back by digest; the slow part
//! (arm64 under qemu, both architectures in one manifest list) is `#[ignore]`d and run by
//! `make images-check` (docs/images.md).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::registry_auth::Registry;
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
                    // One architecture here: both are the ignored multi-arch test's (slow under qemu).
                    "PLATFORMS=linux/amd64",
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
        // The set-up defaults' programs come from the official bases (not pullable here);
        // pace's part is that runner-temurin puts its Maven and Gradle on PATH.
        if lang == "temurin" {
            let path = run(Command::new("docker").args(["run", "--rm", &image, "/bin/sh", "-c", "echo $PATH"]));
            assert!(
                path.contains("/opt/maven/bin") && path.contains("/opt/gradle/bin"),
                "{lang}: {path}"
            );
        }
        let inspect = run(Command::new("docker").args([
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}}|{{index .Config.Labels \"org.opencontainers.image.version\"}}|{{index .Config.Labels \"org.opencontainers.image.base.name\"}}|{{index .Config.Labels \"org.opencontainers.image.base.digest\"}}",
            &image,
        ]));
        let fields: Vec<&str> = inspect.trim().split('|').collect();
        let [entrypoint, version, base, base_digest] = fields[..] else {
            panic!("{lang}: {inspect}")
        };
        assert_eq!(entrypoint, "null", "{lang} has an entrypoint");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        // The base the image was built on, for scanners and for rebuilding it: a local base
        // never came from a registry, so its digest is its image ID.
        assert_eq!(base, LOCAL_BASE, "{lang}: org.opencontainers.image.base.name");
        assert_eq!(
            base_digest,
            image_id(LOCAL_BASE),
            "{lang}: org.opencontainers.image.base.digest"
        );
        // The three tags name one image.
        let minor = env!("CARGO_PKG_VERSION").rsplit_once('.').unwrap().0;
        for tag in [
            env!("CARGO_PKG_VERSION"),
            minor,
            &format!("{}-amd64", env!("CARGO_PKG_VERSION")),
        ] {
            assert_eq!(
                image_id(&format!("pace/runner-{lang}:{tag}")),
                image_id(&image),
                "{lang}: tag {tag}"
            );
        }
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
    ships_a_day_inside("pace/runner-go:latest").await;
}

/// Day 1 of the greeter (scripted model, GATE in a busybox sibling container) run by the
/// pace inside `image`, as a CI job with the socket-binding set-up runs it.
async fn ships_a_day_inside(image: &str) {
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
        .args([image, "/bin/sh", "-c", script])
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

fn image_id(image: &str) -> String {
    run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]))
        .trim()
        .to_string()
}

/// One line of the digest record `make images-push` writes: `repo:tag@digest platforms`.
#[derive(Debug)]
struct Pushed {
    /// `host/path/runner-go` (no tag).
    repo: String,
    tag: String,
    digest: String,
    platforms: String,
}

impl Pushed {
    fn by_digest(&self) -> String {
        format!("{}@{}", self.repo, self.digest)
    }
}

fn read_record(path: &Path) -> Vec<Pushed> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let (reference, platforms) = line.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            let (name, digest) = reference.split_once('@').unwrap_or_else(|| panic!("{line}"));
            let (repo, tag) = name.rsplit_once(':').unwrap_or_else(|| panic!("{line}"));
            assert!(digest.starts_with("sha256:") && digest.len() == 71, "{line}");
            Pushed {
                repo: repo.to_string(),
                tag: tag.to_string(),
                digest: digest.to_string(),
                platforms: platforms.to_string(),
            }
        })
        .collect()
}

/// The registry (TLS from its own CA, a login) and the `DOCKER_CONFIG` holding that login.
struct PushTarget {
    registry: Registry,
    docker_config: tempfile::TempDir,
}

/// The daemon is shared: the names the push and the pulls gave (`<host>/pace/...`, by tag
/// and by digest) go with the registry.
impl Drop for PushTarget {
    fn drop(&mut self) {
        let Ok(out) = Command::new("docker")
            .args([
                "images",
                "--digests",
                "--format",
                "{{.Repository}}:{{.Tag}} {{.Repository}}@{{.Digest}}",
            ])
            .output()
        else {
            return;
        };
        let prefix = format!("{}/", self.registry.host);
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter(|name| name.starts_with(&prefix) && !name.ends_with(":<none>") && !name.ends_with("@<none>"))
            .map(str::to_string)
            .collect();
        if !names.is_empty() {
            let _ = Command::new("docker").arg("rmi").args(&names).output();
        }
    }
}

impl PushTarget {
    fn start() -> Option<Self> {
        // The manifest lists of a registry on 127.0.0.1 are pushed with podman
        // (scripts/images.sh, join_architectures).
        if Command::new("podman").arg("--version").output().is_err() {
            eprintln!("SKIPPED images registry round trip: no podman (apt-get install podman)");
            return None;
        }
        let Some(registry) = Registry::start_tls() else {
            eprintln!("SKIPPED images registry round trip: no `docker-registry` or no /etc/docker/certs.d");
            return None;
        };
        let docker_config = tempfile::tempdir().unwrap();
        registry.login(docker_config.path());
        Some(Self {
            registry,
            docker_config,
        })
    }

    fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_CONFIG", self.docker_config.path());
        cmd
    }

    /// `make images-push` of the images built under `prefix` for `platforms`; checks the
    /// record names every image, each architecture and one index per tag.
    fn push(&self, prefix: &str, platforms: &[&str]) -> Vec<Pushed> {
        let record = self.docker_config.path().join("images.txt");
        run(Command::new("make")
            .args([
                "images-push".to_string(),
                format!("REGISTRY={}/pace", self.registry.host),
                format!("PLATFORMS={}", platforms.join(" ")),
                format!("IMAGE_PREFIX={prefix}"),
                format!("IMAGES_RECORD={}", record.display()),
            ])
            .env("DOCKER_CONFIG", self.docker_config.path())
            .current_dir(root()));
        let pushed = read_record(&record);
        let version = env!("CARGO_PKG_VERSION");
        let minor = version.rsplit_once('.').unwrap().0;
        for lang in LANGS {
            let repo = format!("{}/pace/runner-{lang}", self.registry.host);
            for platform in platforms {
                let arch = platform.rsplit('/').next().unwrap();
                let one = pushed
                    .iter()
                    .find(|p| p.repo == repo && p.tag == format!("{version}-{arch}"))
                    .unwrap_or_else(|| panic!("{repo}:{version}-{arch} not recorded: {pushed:#?}"));
                assert_eq!(one.platforms, *platform);
            }
            let indexes: Vec<&Pushed> = pushed
                .iter()
                .filter(|p| p.repo == repo && [version, minor, "latest"].contains(&p.tag.as_str()))
                .collect();
            assert_eq!(indexes.len(), 3, "{repo}: {pushed:#?}");
            assert!(
                indexes.iter().all(|p| p.digest == indexes[0].digest),
                "X.Y.Z, X.Y and latest are one manifest list: {indexes:#?}"
            );
            assert_eq!(indexes[0].platforms, platforms.join(","));
            // What the registry serves under the tag: one entry per architecture.
            let listed = run(self.docker().args(["manifest", "inspect", &indexes[0].by_digest()]));
            for platform in platforms {
                let arch = platform.rsplit('/').next().unwrap();
                assert!(
                    listed.contains(&format!("\"architecture\": \"{arch}\"")),
                    "{arch}: {listed}"
                );
            }
        }
        pushed
    }

    /// Forgets every local name of `reference`'s repository that the push made, then pulls
    /// it by digest with the login: the image comes from the registry, not the daemon's tags.
    fn pull_back(&self, pushed: &[Pushed], lang: &str, tag: &str, platform: &str) -> String {
        let repo = format!("{}/pace/runner-{lang}", self.registry.host);
        for p in pushed.iter().filter(|p| p.repo == repo) {
            let _ = Command::new("docker")
                .args(["rmi", &format!("{}:{}", p.repo, p.tag)])
                .output();
            let _ = Command::new("docker").args(["rmi", &p.by_digest()]).output();
        }
        let one = pushed
            .iter()
            .find(|p| p.repo == repo && p.tag == tag)
            .unwrap_or_else(|| panic!("{repo}:{tag} not recorded"));
        let reference = one.by_digest();
        run(self.docker().args(["pull", "-q", "--platform", platform, &reference]));
        let got =
            run(Command::new("docker").args(["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", &reference]));
        assert_eq!(got.trim(), platform, "{reference}");
        reference
    }
}

/// `pace --version` of `image` for `platform` (under qemu for a foreign one), with the
/// machine it saw.
fn version_in(image: &str, platform: &str) -> String {
    run(Command::new("docker").args([
        "run",
        "--rm",
        "--platform",
        platform,
        image,
        "/bin/sh",
        "-c",
        "uname -m && pace --version && git --version",
    ]))
}

/// The images CI builds (amd64 on the local base) go to a TLS registry with a login, are
/// recorded by digest, and runner-go pulled back by its index digest runs a day.
#[tokio::test(flavor = "multi_thread")]
async fn images_are_pushed_to_a_tls_registry_and_a_day_runs_in_runner_go_pulled_by_digest() {
    if images_built().is_none() {
        return;
    }
    let Some(target) = PushTarget::start() else { return };
    let pushed = target.push("pace", &["linux/amd64"]);
    let image = target.pull_back(&pushed, "go", env!("CARGO_PKG_VERSION"), "linux/amd64");
    let seen = version_in(&image, "linux/amd64");
    assert!(
        seen.starts_with("x86_64\n") && seen.contains(&format!("pace {}", env!("CARGO_PKG_VERSION"))),
        "{seen}"
    );
    ships_a_day_inside(&image).await;
}

/// Both architectures (arm64 RUN steps and pace under qemu-user), one manifest list per
/// tag, pulled back by digest per architecture. Slow (an arm64 Debian bootstrapped under
/// qemu once per machine, cross-built pace): `make images-check`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "slow: make images-check"]
async fn both_architectures_go_through_the_registry_and_arm64_pace_runs_under_qemu() {
    const PREFIX: &str = "pace-test-multiarch";
    let arm_base = format!("{LOCAL_BASE}-arm64");
    if images_built().is_none() {
        return;
    }
    let binfmt = Command::new(root().join("scripts/qemu-binfmt.sh"))
        .arg("arm64")
        .output()
        .unwrap();
    if !binfmt.status.success() {
        eprintln!("SKIPPED multi-arch images: no qemu binfmt ({})", stderr(&binfmt).trim());
        return;
    }
    if Command::new("cargo-zigbuild").arg("--version").output().is_err() {
        eprintln!("SKIPPED multi-arch images: no cargo-zigbuild (`make release` installs it)");
        return;
    }
    let base = Command::new(root().join("scripts/build-local-base.sh"))
        .args([arm_base.as_str(), "arm64"])
        .output()
        .unwrap();
    assert!(base.status.success(), "arm64 base: {}", stderr(&base));
    run(Command::new("make")
        .args([
            "images".to_string(),
            "PLATFORMS=linux/amd64 linux/arm64".to_string(),
            format!("BASE_IMAGE_AMD64={LOCAL_BASE}"),
            format!("BASE_IMAGE_ARM64={arm_base}"),
            format!("IMAGE_PREFIX={PREFIX}"),
            "IMAGE_BUILD_ARGS=--build-arg WITH_BUILD_TOOLS=0".to_string(),
        ])
        .current_dir(root()));
    let version = env!("CARGO_PKG_VERSION");
    for lang in LANGS {
        let image = format!("{PREFIX}/runner-{lang}:{version}-arm64");
        let labels = run(Command::new("docker").args([
            "inspect",
            "--format",
            "{{.Architecture}}|{{index .Config.Labels \"org.opencontainers.image.base.name\"}}|{{index .Config.Labels \"org.opencontainers.image.base.digest\"}}",
            &image,
        ]));
        assert_eq!(
            labels.trim(),
            format!("arm64|{arm_base}|{}", image_id(&arm_base)),
            "{image}"
        );
    }
    let Some(target) = PushTarget::start() else { return };
    let pushed = target.push(PREFIX, &["linux/amd64", "linux/arm64"]);

    let arm = target.pull_back(&pushed, "go", &format!("{version}-arm64"), "linux/arm64");
    let seen = version_in(&arm, "linux/arm64");
    assert!(
        seen.starts_with("aarch64\n") && seen.contains(&format!("pace {version}")),
        "the arm64 image runs its own pace under qemu: {seen}"
    );
    // e_machine of the binary in the image: 0xb7 (AArch64). An x86_64 pace would also
    // run here (natively), so `uname -m` alone would not tell.
    let machine = run(Command::new("docker").args([
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &arm,
        "od",
        "-An",
        "-tx1",
        "-j18",
        "-N2",
        "/usr/local/bin/pace",
    ]));
    assert_eq!(
        machine.trim(),
        "b7 00",
        "{arm}: /usr/local/bin/pace is not an aarch64 binary"
    );
    let index = target.pull_back(&pushed, "go", "latest", "linux/amd64");
    assert!(version_in(&index, "linux/amd64").starts_with("x86_64\n"));
    ships_a_day_inside(&index).await;
}

/// The GitLab CI/CD component's job (templates/pace-day/template.yml, included with
/// `inputs:`) run by gitlab-ci-local — a real implementation of GitLab's job model — in the
/// socket-binding set-up: the job image is runner-go, the host's socket is mounted and
/// `DOCKER_HOST` points at it (pipeline variables win over the job's DinD ones, as in
/// GitLab), and the DinD service gets a local stand-in (the busybox image; the job does not
/// use it). The day is the example's replayed one, so nothing leaves the machine.
#[test]
#[ignore = "installs gitlab-ci-local from npm: make images-check"]
fn the_component_job_runs_a_day_under_gitlab_ci_local() {
    if images_built().is_none() {
        return;
    }
    let install = Command::new(root().join("scripts/gitlab-ci-local.sh"))
        .output()
        .unwrap();
    if !install.status.success() {
        eprintln!(
            "SKIPPED gitlab-ci-local: cannot be installed here ({})",
            stderr(&install).trim()
        );
        return;
    }
    let gitlab_ci_local = stdout(&install).trim().to_string();
    let project = Project::example_with_image(&busybox_image());
    std::fs::create_dir_all(project.path(".gitlab")).unwrap();
    std::fs::copy(
        root().join("templates/pace-day/template.yml"),
        project.path(".gitlab/pace-day.yml"),
    )
    .unwrap();
    // `include: component:` needs a GitLab server; a local include with the same inputs
    // expands the same `spec:`.
    std::fs::write(
        project.path(".gitlab-ci.yml"),
        format!(
            "include:\n  - local: .gitlab/pace-day.yml\n    inputs:\n      image: pace/runner-go:latest\n      dind_image: {}\n",
            busybox_image()
        ),
    )
    .unwrap();
    project.git(&["add", "-A"]);
    project.git(&["commit", "-q", "-m", "the component"]);
    let out = Command::new(&gitlab_ci_local)
        .args([
            // The local base + rsync (scripts/gitlab-ci-local.sh builds it): the default
            // helper image is on Docker Hub.
            "--helper-image",
            "pace-test/gcl-helper:1",
            "--pull-policy",
            "if-not-present",
            "--ignore-predefined-vars",
            "CI_PIPELINE_SOURCE",
            // The job's rules run it only when started by a person, a trigger or a schedule.
            "--variable",
            "CI_PIPELINE_SOURCE=web",
            "--variable",
            "DOCKER_HOST=unix:///var/run/docker.sock",
            "--unset-variable",
            "DOCKER_TLS_VERIFY",
            "--unset-variable",
            "DOCKER_CERT_PATH",
            "--volume",
            "/var/run/docker.sock:/var/run/docker.sock",
            "--home",
        ])
        .arg(project.path(".gitlab-ci-local-home"))
        .arg("pace-day")
        .current_dir(&project.root)
        .output()
        .unwrap();
    let log = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{log}");
    assert!(log.contains("pace-day starting pace/runner-go:latest"), "{log}");
    assert!(
        log.contains("`--day next` chose day 1"),
        "DAY defaults to the input `next`: {log}"
    );
    assert!(log.contains("Day 1 shipped"), "{log}");
    assert!(log.contains("PASS") && log.contains("pace-day"), "{log}");
    // The job's `artifacts:` came back from the job container.
    let run: serde_json::Value = serde_json::from_str(&project.read(".pace/day-1/run.json")).unwrap();
    assert_eq!(run["decision"], "SHIP", "{run}");
    assert!(
        project.path(".pace/junit.xml").exists(),
        "the junit report the component names"
    );
}
