// Local test images built without a registry.
//
// `busybox_image()` builds `pace-test/busybox:1` (`FROM scratch` + the host's static
// `/bin/busybox`, recipe in `examples/sandbox/Dockerfile`) once per test process; an image
// already on the daemon is reused, so parallel test processes are fine.

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt;

pub const BUSYBOX_IMAGE: &str = "pace-test/busybox:1";
const DOCKERFILE: &str = include_str!("../../examples/sandbox/Dockerfile");
const BUSYBOX_BINARY: &str = "/bin/busybox";

/// Runs `f` on a fresh runtime in its own thread (callable from sync and async tests).
fn on_runtime<T: Send + 'static>(f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f())
    })
    .join()
    .expect("docker helper thread panicked")
}

fn client() -> Option<bollard::Docker> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    bollard::Docker::connect_with_defaults().ok()
}

/// Whether a Docker daemon answers (`DOCKER_HOST` or the default socket).
pub fn docker_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        on_runtime(async || {
            let Some(docker) = client() else { return false };
            let docker = docker.with_timeout(Duration::from_secs(5));
            docker.ping().await.is_ok()
        })
    })
}

/// The tag of the local busybox test image, building it on first use.
pub fn busybox_image() -> String {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| on_runtime(build_busybox));
    BUSYBOX_IMAGE.to_string()
}

async fn build_busybox() {
    let docker = client().expect("docker client");
    build_busybox_on(&docker).await;
}

/// Builds the busybox test image on `docker` (any daemon, e.g. a second one started by a
/// test) unless it is there already.
pub async fn build_busybox_on(docker: &bollard::Docker) {
    if docker.inspect_image(BUSYBOX_IMAGE).await.is_ok() {
        return;
    }
    let busybox = std::fs::read(BUSYBOX_BINARY).expect("a static /bin/busybox (Debian: busybox-static)");
    let mut context = Vec::new();
    {
        let mut tar = tar::Builder::new(&mut context);
        for (name, data, mode) in [
            ("Dockerfile", DOCKERFILE.as_bytes(), 0o644),
            ("busybox", &busybox[..], 0o755),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(0);
            tar.append_data(&mut h, name, data).expect("tar");
        }
        tar.finish().expect("tar");
    }
    let opts = bollard::query_parameters::BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(BUSYBOX_IMAGE)
        .rm(true)
        .forcerm(true)
        .build();
    let mut build = docker.build_image(opts, None, Some(bollard::body_full(context.into())));
    let mut log = String::new();
    while let Some(item) = build.next().await {
        match item {
            Ok(info) => {
                if let Some(s) = info.stream {
                    log.push_str(&s);
                }
                if let Some(detail) = info.error_detail {
                    panic!("building {BUSYBOX_IMAGE} failed: {:?}\n{log}", detail.message);
                }
            }
            Err(e) => panic!("building {BUSYBOX_IMAGE} failed: {e}\n{log}"),
        }
    }
    docker
        .inspect_image(BUSYBOX_IMAGE)
        .await
        .unwrap_or_else(|e| panic!("{BUSYBOX_IMAGE} missing after build: {e}\n{log}"));
}

/// Skips the calling test (with a printed notice) when no Docker daemon answers.
macro_rules! require_docker {
    () => {
        if !$crate::support::docker::docker_available() {
            eprintln!(
                "SKIPPED {}: no Docker daemon reachable (DOCKER_HOST / /var/run/docker.sock)",
                module_path!()
            );
            return;
        }
    };
}

/// `docker ARGS` through the CLI: its stdout (failures show up as what is missing).
pub fn cli(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The local Debian base (`scripts/build-local-base.sh`, debootstrap; bash, git, and a
/// glibc the debug build of pace runs on), built once per machine. `None` (with a printed
/// reason) when this machine cannot.
pub fn debian_base() -> Option<String> {
    const BASE: &str = "pace-test/debian-git:bookworm";
    if !cli(&["image", "inspect", "-f", "{{.Id}}", BASE]).trim().is_empty() {
        return Some(BASE.into());
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(root.join("scripts/build-local-base.sh"))
        .arg(BASE)
        .output()
        .unwrap();
    if out.status.success() {
        Some(BASE.into())
    } else {
        eprintln!(
            "SKIPPED: no local Debian base ({})",
            String::from_utf8_lossy(&out.stderr)
        );
        None
    }
}
