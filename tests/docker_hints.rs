//! Each way a CI job's Docker daemon can be out of reach gets its own message, naming the
//! runner setting or the variable to change; pinned as snapshots (`exit_paths` style).
//! Simulated here: a port that accepts and closes (a DinD service that cannot start, the
//! runner not privileged), a TLS server with another CA, no daemon at all, the client
//! certificates missing (no `/certs/client` volume), and a service name that does not
//! resolve (TLS variables without the service).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::exit_paths::assert_exit;
use crate::sandbox_conn::make_certs;
use crate::support::scenario::Scenario;

/// A listener that accepts every connection and closes it at once.
fn accept_and_close() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn tls_env(host: &str, certs: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("DOCKER_HOST", host.to_string()),
        ("DOCKER_TLS_VERIFY", "1".to_string()),
        ("DOCKER_CERT_PATH", certs.display().to_string()),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `openssl s_server` with the certificate of `certs` (its own CA), stopped on drop.
struct TlsServer(Child);

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_server(certs: &std::path::Path, port: u16) -> TlsServer {
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(certs.join("server-cert.pem"))
        .arg("-key")
        .arg(certs.join("server-key.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = TlsServer(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dind_service_that_accepts_and_closes_needs_a_privileged_runner() {
    if !have_openssl() {
        eprintln!("SKIPPED: needs `openssl`");
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let day = Scenario::greeter().start().await;
    let env = tls_env(&format!("tcp://127.0.0.1:{}", accept_and_close()), certs.path());
    let out = day.pace_with(&["--day", "1"], &pairs(&env)).await;
    assert_exit("exit_4_docker_accepts_and_closes", &out.0, 4);
    assert!(out.stderr().contains("privileged = true"), "{}", out.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_daemon_with_another_ca_names_the_certificates() {
    if !have_openssl() {
        eprintln!("SKIPPED: needs `openssl`");
        return;
    }
    let server_certs = tempfile::tempdir().unwrap();
    make_certs(server_certs.path());
    let client_certs = tempfile::tempdir().unwrap();
    make_certs(client_certs.path());
    let port = free_port();
    let _server = tls_server(server_certs.path(), port);
    let day = Scenario::greeter().start().await;
    let env = tls_env(&format!("tcp://127.0.0.1:{port}"), client_certs.path());
    let out = day.pace_with(&["--day", "1"], &pairs(&env)).await;
    assert_exit("exit_4_docker_tls_wrong_ca", &out.0, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_daemon_on_the_port() {
    let day = Scenario::greeter().start().await;
    let host = format!("tcp://127.0.0.1:{}", free_port());
    let out = day.pace_with(&["--day", "1"], &[("DOCKER_HOST", &host)]).await;
    assert_exit("exit_4_docker_no_daemon_on_the_port", &out.0, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_client_certificates_name_the_certs_volume() {
    let day = Scenario::greeter().start().await;
    let env = tls_env(
        &format!("tcp://127.0.0.1:{}", free_port()),
        std::path::Path::new("/nonexistent/certs/client"),
    );
    let out = day.pace_with(&["--day", "1"], &pairs(&env)).await;
    assert_exit("exit_4_docker_no_certs_volume", &out.0, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_variables_without_the_service() {
    let certs = tempfile::tempdir().unwrap();
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::write(certs.path().join(f), "not read before the name resolves").unwrap();
    }
    let day = Scenario::greeter().start().await;
    // No `tcp://` host at all: the variables were written for a service.
    let env = vec![
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock".to_string()),
        ("DOCKER_TLS_VERIFY", "1".to_string()),
        ("DOCKER_CERT_PATH", certs.path().display().to_string()),
    ];
    let out = day.pace_with(&["--day", "1"], &pairs(&env)).await;
    assert_exit("exit_4_docker_tls_without_the_service", &out.0, 4);
}
