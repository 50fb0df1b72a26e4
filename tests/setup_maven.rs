//! Integration test: a Maven project whose dependencies and plugins come from a company
//! repository (issue 12), played by an HTTP server on 127.0.0.1 that serves Debian's
//! packaged Maven repository (the image's `/usr/share/maven-repo`, links resolved). The
//! set-up phase reaches it with the host's network and fills `/cache/maven`; GATE's suite
//! then compiles and runs the JUnit test with no network, from the cache alone (the server
//! sees no request while it runs), with Maven's offline setting in its environment.
//! Needs a Debian image with Maven and a JDK (built once per machine); without one the test
//! says SKIPPED.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pace::config::settings::CacheScope;
use pace::sandbox::setup::SetupStatus;
use pace::sandbox::{RunRequest, Sandbox, cache_volume_name};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::setup_phase::debian_image;

const PACKAGES: &str =
    "maven default-jdk-headless libmaven-compiler-plugin-java libsurefire-java libmaven-resources-plugin-java junit4";

/// What resolves everything `mvn test` needs, the test provider included: surefire fetches
/// its JUnit provider only when tests run (`dependency:go-offline` and `-DskipTests` or
/// `-Dtest=none` leave it out, and GATE then fails offline), so the set-up runs them once.
const SETUP: &str = "mvn -B -q test";

const POM: &str = r#"<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>adder</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.source>17</maven.compiler.source>
    <maven.compiler.target>17</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency><groupId>junit</groupId><artifactId>junit</artifactId><version>4.13.2</version><scope>test</scope></dependency>
  </dependencies>
</project>
"#;

/// Serves files under its root by the request's path (a Maven repository layout).
struct Files(std::path::PathBuf);

impl Respond for Files {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let rel = request.url.path().trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            return ResponseTemplate::new(400);
        }
        match std::fs::read(self.0.join(rel)) {
            Ok(bytes) if request.method.as_str() == "HEAD" => {
                ResponseTemplate::new(200).insert_header("content-length", bytes.len().to_string().as_str())
            }
            Ok(bytes) => ResponseTemplate::new(200).set_body_bytes(bytes),
            Err(_) => ResponseTemplate::new(404),
        }
    }
}

/// The image's packaged Maven repository with its links resolved, into `dest`.
fn extract_repository(image: &str, dest: &Path) {
    let tar = Command::new("docker")
        .args([
            "run",
            "--rm",
            image,
            "tar",
            "-chf",
            "-",
            "-C",
            "/usr/share/maven-repo",
            ".",
        ])
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
    tar::Archive::new(tar.stdout.as_slice()).unpack(dest).unwrap();
}

fn project(dir: &Path, repository_url: &str) {
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("pom.xml", POM);
    write(
        ".mvn/settings.xml",
        &format!(
            "<settings><mirrors><mirror><id>company</id><mirrorOf>*</mirrorOf><url>{repository_url}</url></mirror></mirrors></settings>\n"
        ),
    );
    write(".mvn/maven.config", "-s .mvn/settings.xml\n");
    write(
        "src/main/java/example/Adder.java",
        "package example;\npublic class Adder { public static int add(int a, int b) { return a + b; } }\n",
    );
    write(
        "src/test/java/example/AdderTest.java",
        "package example;\nimport org.junit.Test;\nimport static org.junit.Assert.assertEquals;\npublic class AdderTest { @Test public void adds() { assertEquals(5, Adder.add(2, 3)); } }\n",
    );
    crate::support::project::git(dir, &["init", "-q", "-b", "main"]);
    crate::support::project::git(dir, &["add", "-A"]);
    crate::support::project::git(dir, &["commit", "-qm", "init"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_maven_project_is_set_up_from_a_company_repository_and_tested_offline() {
    require_docker!();
    let Some(image) = debian_image("pace-test/debian-maven:bookworm", PACKAGES) else {
        return;
    };
    let repository = tempfile::tempdir().unwrap();
    extract_repository(&image, repository.path());
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Files(repository.path().to_path_buf()))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    project(p, &server.uri());
    let volume = cache_volume_name(p, &CacheScope::Checkout);
    let ctx = crate::support::sandbox::context("setup-maven", 1, |s| {
        s.image = image.clone();
        s.caches = true;
        s.setup_network = "host".into();
        s.timeout = Duration::from_secs(300);
        s.memory_bytes = 1024 * 1024 * 1024;
        s.cpus = 2.0;
    });
    let sb = Sandbox::connect(ctx).await.unwrap();
    let log = p.join(".pace/day-1/setup/output.log");
    let outcome = sb.setup(p, SETUP, &log, None).await.unwrap();
    let setup_log = std::fs::read_to_string(&log).unwrap_or_default();
    let fetched = server.received_requests().await.unwrap_or_default().len();

    let out = tempfile::tempdir().unwrap();
    let gate = sb
        .run(RunRequest {
            repo: p,
            command: "echo \"args=$MAVEN_ARGS opts=$MAVEN_OPTS\"; ls /sys/class/net; ls /cache/maven/junit/junit; mvn -B test".into(),
            output_log: &out.path().join("output.log"),
            collect_into: &out.path().join("collected"),
            on_output: None,
        })
        .await;
    let _ = sb.remove_run_containers().await;
    Command::new("docker")
        .args(["volume", "rm", "-f", &volume])
        .output()
        .unwrap();
    assert_eq!(outcome.status, SetupStatus::Ran, "{setup_log}");
    assert!(
        fetched > 20,
        "the set-up downloaded from the company repository: {fetched} requests"
    );
    let gate = gate.unwrap();
    let text = std::fs::read_to_string(out.path().join("output.log")).unwrap();
    assert_eq!(gate.exit_code, 0, "{text}");
    assert!(
        text.starts_with("args=-o opts=-Dmaven.repo.local=/cache/maven\nlo\n4.13.2\n"),
        "{text}"
    );
    // The set-up's `target/` (build output) stayed in its container: GATE compiled afresh.
    assert!(text.contains("Compiling 1 source file"), "{text}");
    assert!(text.contains("Tests run: 1, Failures: 0, Errors: 0"), "{text}");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        fetched,
        "GATE reached the repository"
    );
}
