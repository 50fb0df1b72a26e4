//! Pulling a private sandbox image (issue 13): a real registry (Debian's `docker-registry`,
//! distribution 2.8) on 127.0.0.1 with htpasswd logins, the real daemon pulling from it,
//! the credentials from `DOCKER_AUTH_CONFIG`, `CI_REGISTRY_*` or a Docker config file —
//! and never in an artifact or a log line.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use base64::Engine as _;

use crate::support::docker::busybox_image;
use crate::support::project::{Project, stderr};
use crate::support::scenario::Scenario;

const USER: &str = "pace-ci";
const PASSWORD: &str = "registry-PASSWORD-7f3a9c";

/// A registry with one login, removed (process, data and the daemon's trust in its CA)
/// when dropped. Also used by tests/images.rs to push the runner images.
pub(crate) struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    pub(crate) host: String,
    /// `/etc/docker/certs.d/<host>`: where the daemon looks for the CA of a TLS registry.
    trusted: Option<PathBuf>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.trusted {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, in `dir` (`ca.crt`, `srv.crt`,
/// `srv.key`), made with openssl.
fn make_ca_and_certificate(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=pace-test-registry-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// `None` (the test says why and passes) when the machine has no registry binary.
    fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// Served over TLS with a certificate from a CA made here, which the daemon is told to
    /// trust (`/etc/docker/certs.d/<host>/ca.crt`, read at each pull).
    pub(crate) fn start_tls() -> Option<Self> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Option<Self> {
        if Command::new("docker-registry").arg("--version").output().is_err() {
            eprintln!("skipped: no `docker-registry` (apt-get install docker-registry apache2-utils)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .unwrap();
        assert!(htpasswd.status.success());
        std::fs::write(dir.path().join("htpasswd"), htpasswd.stdout).unwrap();
        let host = format!("127.0.0.1:{}", free_port());
        let root = dir.path().display().to_string();
        let mut trusted = None;
        let tls_config = if tls {
            make_ca_and_certificate(dir.path());
            let certs = PathBuf::from(format!("/etc/docker/certs.d/{host}"));
            if std::fs::create_dir_all(&certs).is_err() {
                eprintln!("skipped: cannot write {} (not root?)", certs.display());
                return None;
            }
            std::fs::copy(dir.path().join("ca.crt"), certs.join("ca.crt")).unwrap();
            trusted = Some(certs);
            format!("  tls:\n    certificate: {root}/srv.crt\n    key: {root}/srv.key\n")
        } else {
            String::new()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\nhttp:\n  addr: {host}\n{tls_config}auth:\n  htpasswd:\n    realm: pace-test\n    path: {root}/htpasswd\n"
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", dir.path().join("config.yml").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Self {
            child,
            dir,
            host,
            trusted,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&registry.host).is_ok() {
                return Some(registry);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the registry did not listen on {}", registry.host);
    }

    /// Pushes the busybox test image as `<host>/private/<name>:1` and removes that tag from
    /// the daemon, so the next use has to pull it with credentials.
    fn push_private(&self, name: &str) -> String {
        let image = format!("{}/private/{name}:1", self.host);
        let docker_config = self.dir.path().join(format!("push-{name}"));
        let docker = |args: &[&str]| {
            let out = Command::new("docker")
                .args(args)
                .env("DOCKER_CONFIG", &docker_config)
                .output()
                .unwrap();
            assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
        };
        docker(&["tag", &busybox_image(), &image]);
        self.login(&docker_config);
        docker(&["push", "-q", &image]);
        docker(&["rmi", &image]);
        image
    }

    /// `docker login` to this registry, the login stored in `docker_config` (a
    /// `DOCKER_CONFIG` directory) so the daemon's other users are not affected.
    pub(crate) fn login(&self, docker_config: &std::path::Path) {
        let mut login = Command::new("docker")
            .args(["login", "-u", USER, "--password-stdin", &self.host])
            .env("DOCKER_CONFIG", docker_config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        login.stdin.take().unwrap().write_all(PASSWORD.as_bytes()).unwrap();
        assert!(login.wait().unwrap().success(), "docker login");
    }

    fn auth_config(&self, password: &str) -> String {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, self.host)
    }
}

fn image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .unwrap()
        .status
        .success()
}

/// The greeter with `sandbox.image` set to `image` (a gate-only project: no model).
fn project_with_image(image: &str) -> Project {
    let p = Project::greeter();
    p.use_fake_llm("http://127.0.0.1:9", image, "");
    p
}

fn pace_gate(p: &Project, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = p.pace_gate();
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn docker_auth_config_pulls_a_private_image_and_no_credential_is_written() {
    require_docker!();
    let Some(registry) = Registry::start() else { return };
    let image = registry.push_private("auth-config");
    let p = project_with_image(&image);
    let auth_config = registry.auth_config(PASSWORD);
    let out = pace_gate(&p, &[("DOCKER_AUTH_CONFIG", &auth_config), ("RUST_LOG", "pace=debug")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(image_present(&image), "the daemon has the pulled image");
    let everything = format!(
        "{}{}{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout),
        p.all_artifacts_text()
    );
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, auth.as_str()] {
        assert!(!everything.contains(secret), "`{secret}` leaked:\n{everything}");
    }
    assert!(
        stderr(&out).contains("`DOCKER_AUTH_CONFIG`"),
        "the debug log names where the credentials came from: {}",
        stderr(&out)
    );
}

#[test]
fn without_credentials_the_refusal_names_the_registry_and_the_variable() {
    require_docker!();
    let Some(registry) = Registry::start() else { return };
    let image = registry.push_private("no-creds");
    let p = project_with_image(&image);
    let out = pace_gate(&p, &[("HOME", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("pulling `{image}` from `{}` was refused", registry.host)),
        "{err}"
    );
    assert!(err.contains("hint: no credentials for"), "{err}");
    assert!(err.contains("DOCKER_AUTH_CONFIG"), "{err}");
}

#[test]
fn wrong_credentials_say_where_they_came_from_without_showing_them() {
    require_docker!();
    let Some(registry) = Registry::start() else { return };
    let image = registry.push_private("wrong-creds");
    let p = project_with_image(&image);
    let wrong = "wrong-PASSWORD-0000aaaa";
    let out = pace_gate(&p, &[("DOCKER_AUTH_CONFIG", &registry.auth_config(wrong))]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refused the credentials from `DOCKER_AUTH_CONFIG`"),
        "{err}"
    );
    assert!(!err.contains(wrong), "{err}");
}

#[test]
fn gitlab_registry_login_and_docker_config_file_are_used() {
    require_docker!();
    let Some(registry) = Registry::start() else { return };
    let image = registry.push_private("ci-registry");
    let p = project_with_image(&image);
    let out = pace_gate(
        &p,
        &[
            ("CI_REGISTRY", registry.host.as_str()),
            ("CI_REGISTRY_USER", USER),
            ("CI_REGISTRY_PASSWORD", PASSWORD),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let image = registry.push_private("config-file");
    let p = project_with_image(&image);
    let docker_config: PathBuf = registry.dir.path().join("user-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::write(docker_config.join("config.json"), registry.auth_config(PASSWORD)).unwrap();
    let out = pace_gate(&p, &[("DOCKER_CONFIG", docker_config.to_str().unwrap())]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn pull_never_refuses_a_missing_image_and_always_refreshes() {
    require_docker!();
    let Some(registry) = Registry::start() else { return };
    let image = registry.push_private("policy");
    let p = project_with_image(&image);
    let config = p
        .read("pace.config.yaml")
        .replace("  caches: false\n", "  caches: false\n  pull: never\n");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    let out = pace_gate(&p, &[("DOCKER_AUTH_CONFIG", &registry.auth_config(PASSWORD))]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("`sandbox.pull` is `never`"), "{}", stderr(&out));

    // `always` pulls although the daemon has the image: with wrong credentials that fails.
    let config = p
        .read("pace.config.yaml")
        .replace("  pull: never\n", "  pull: always\n");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    let out = pace_gate(&p, &[("DOCKER_AUTH_CONFIG", &registry.auth_config(PASSWORD))]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = pace_gate(
        &p,
        &[("DOCKER_AUTH_CONFIG", &registry.auth_config("wrong-PASSWORD-1111bbbb"))],
    );
    assert_eq!(out.status.code(), Some(4), "`always` pulls again: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_with_a_private_sandbox_image_ships_and_keeps_the_login_out_of_artifacts() {
    require_docker!();
    let Some(registry) = Registry::start() else { return };
    let image = registry.push_private("day");
    let auth_config = registry.auth_config(PASSWORD);
    let day = Scenario::greeter()
        .edit_config(&format!("image: {}", busybox_image()), &format!("image: {image}"))
        .env("DOCKER_AUTH_CONFIG", &auth_config)
        .start()
        .await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);
    let everything = day.project.all_artifacts_text() + &day.project.git(&["log", "-p"]) + &ran.text();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, auth.as_str(), auth_config.as_str()] {
        assert!(!everything.contains(secret), "`{secret}` leaked");
    }
}

#[test]
fn a_tls_registry_with_its_own_ca_is_pulled_from_with_the_login() {
    require_docker!();
    let Some(registry) = Registry::start_tls() else { return };
    let image = registry.push_private("tls");
    let p = project_with_image(&image);
    let out = pace_gate(&p, &[("DOCKER_AUTH_CONFIG", &registry.auth_config(PASSWORD))]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(image_present(&image));
    // Without a login the daemon's answer is not the registry's 401 here: 127.0.0.1 is an
    // insecure registry by default, so after the refused HTTPS try the daemon retries over
    // HTTP and reports that error instead; the plain-HTTP tests cover the refusal.
}
