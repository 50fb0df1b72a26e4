//! Integration tests: the egress allowlist (issue 12 item 2). The proxy itself against
//! local servers (no Docker): a real HTTP client through it, CONNECT tunnels, refusals
//! and the tally. Then the sidecar on the real daemon: the set-up container of `pace gate`
//! on an internal network with the proxy, "outside" a user-defined bridge where busybox
//! `httpd` serves `allowed.test` and `blocked.test` (this daemon has no NAT): the allowed
//! host is reached, the blocked one refused at once and listed in `egress.yaml`, a direct
//! connection has no route, the attacker's spellings are refused, and the proxy and its
//! network are gone after the run, after a failed set-up and after SIGTERM.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pace::proxy::{Allowlist, Entry, Tally, TallyEntry};
use pace::sandbox::{LABEL_PROJECT, project_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::docker::busybox_image;
use crate::support::project::{Project, stderr, stdout};

/// A tiny upstream: answers every connection with one HTTP response naming the request
/// line it got.
async fn upstream() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&got).to_string();
                let body = format!("upstream saw: {}", text.lines().next().unwrap_or_default());
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, task)
}

async fn proxy(allow: &[String]) -> (u16, Tally) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let allow = Allowlist::new(allow.iter().map(|a| Entry::parse(a).unwrap()).collect());
    let tally = Tally::new(None);
    tokio::spawn(pace::proxy::serve(listener, allow, tally.clone()));
    (port, tally)
}

/// Sends `head` to the proxy and reads until it closes (or 5 s).
async fn raw(proxy: u16, head: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_proxy_lets_through_only_the_listed_hosts_and_counts_them() {
    let (up, _server) = upstream().await;
    let (other, _other_server) = upstream().await;
    let (port, tally) = proxy(&[format!("localhost:{up}")]).await;

    // A real client (reqwest) through the proxy, plain HTTP: origin form upstream.
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://127.0.0.1:{port}")).unwrap())
        .build()
        .unwrap();
    let ok = client
        .get(format!("http://localhost:{up}/pkg/a?v=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "upstream saw: GET /pkg/a?v=1 HTTP/1.1");
    let refused = client.get(format!("http://localhost:{other}/")).send().await.unwrap();
    assert_eq!(refused.status(), 403, "another port of an allowed name");
    assert!(refused.text().await.unwrap().contains("sandbox.egress"));

    // A CONNECT tunnel carries whatever the client speaks (here: HTTP).
    let tunnel = raw(
        port,
        &format!("CONNECT localhost:{up} HTTP/1.1\r\nHost: localhost:{up}\r\n\r\nGET /t HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert!(
        tunnel.starts_with("HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK"),
        "{tunnel}"
    );
    assert!(tunnel.ends_with("upstream saw: GET /t HTTP/1.1"), "{tunnel}");

    // Refusals are immediate (nothing is resolved or connected for them).
    let started = Instant::now();
    for target in [
        "blocked.invalid:443".to_string(),
        format!("127.0.0.1:{up}"),
        format!("localhost.:{up}"),
        format!("x@localhost:{up}"),
    ] {
        let answer = raw(port, &format!("CONNECT {target} HTTP/1.1\r\n\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{target}: {answer}");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let bad = raw(port, "NOT HTTP\r\n\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");

    let entries = tally.entries();
    let find = |host: &str, p: u16, allowed: bool| {
        entries
            .iter()
            .find(|e| e.host == host && e.port == p && e.allowed == allowed)
            .map(|e| e.count)
    };
    assert_eq!(find("localhost", up, true), Some(2), "{entries:?}");
    assert_eq!(find("localhost", other, false), Some(1), "{entries:?}");
    assert_eq!(find("blocked.invalid", 443, false), Some(1), "{entries:?}");
    assert_eq!(find("127.0.0.1", up, false), Some(1), "{entries:?}");
}

#[tokio::test]
async fn pace_proxy_writes_its_tally_file() {
    let (up, _server) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tally.yaml");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pace"))
        .args(["proxy", "--listen", &format!("127.0.0.1:{port}"), "--log"])
        .arg(&log)
        .args(["--allow", &format!("localhost:{up}")])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "pace proxy never wrote its tally");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "[]\n");
    let answer = raw(port, "CONNECT evil.example:443 HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let tally = pace::proxy::parse_tally(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(
        tally,
        [TallyEntry {
            host: "evil.example".into(),
            port: 443,
            allowed: false,
            count: 1
        }]
    );
    let _ = child.kill().await;
}

#[test]
fn bad_egress_entries_are_located_errors() {
    const BASE: &str =
        "product:\n  name: Shop\nsource:\n  dirs:\n    - {name: core, path: src/}\ntech:\n  test_command: make test\n";
    let load = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pace.config.yaml"), text).unwrap();
        std::fs::write(dir.path().join("plan.yaml"), "days:\n  - day: 1\n    target: x\n").unwrap();
        pace::config::load(dir.path(), None, &pace::env::Env::default())
    };
    let ok = load(&format!(
        "{BASE}sandbox:\n  egress: [go, NPM, repo.example.com:8443, '*.cdn.example.net']\n  egress_for_tests: false\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let hosts: Vec<String> = ok.settings.sandbox.egress.iter().map(ToString::to_string).collect();
    assert_eq!(hosts.len(), 5, "{hosts:?}");
    assert!(hosts.contains(&"repo.example.com:8443".to_string()) && hosts.contains(&"*.cdn.example.net".to_string()));
    assert!(!ok.settings.sandbox.egress_for_tests);

    let err = load(&format!(
        "{BASE}sandbox:\n  egress:\n    - nmp\n    - 10.0.0.1\n    - a@b.example\n"
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("pace.config.yaml:10:7")
            && err.contains("`sandbox.egress[0]`: `nmp` is not a preset (did you mean `npm`?)"),
        "{err}"
    );
    assert!(
        err.contains("pace.config.yaml:11:7") && err.contains("IP address"),
        "{err}"
    );
    assert!(
        err.contains("pace.config.yaml:12:7") && err.contains("`sandbox.egress[2]`"),
        "{err}"
    );

    let err = load(&format!("{BASE}sandbox:\n  setup_network: host\n  egress: [npm]\n"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("pace.config.yaml:10:11") && err.contains("`sandbox.setup_network: host`"),
        "{err}"
    );
}

// --- the sidecar on the real daemon ---

use crate::support::docker::{cli as docker, debian_base as debian};

/// "Outside": a user-defined bridge with two busybox web servers, `allowed.test` (ports
/// 80 and 8080) and `blocked.test`. Removed when dropped.
pub(crate) struct Outside {
    pub(crate) network: String,
    servers: Vec<String>,
    pub(crate) allowed_ip: String,
    pub(crate) blocked_ip: String,
}

impl Outside {
    pub(crate) fn start(tag: &str) -> Self {
        let network = format!("pace-test-egress-out-{tag}");
        docker(&["network", "create", &network]);
        let mut servers = Vec::new();
        for (name, alias) in [("allowed", "allowed.test"), ("blocked", "blocked.test")] {
            let container = format!("pace-test-egress-{name}-{tag}");
            let script = format!(
                "mkdir -p /www && echo {name}-content > /www/index.html && httpd -p 8080 -h /www && exec httpd -f -p 80 -h /www"
            );
            docker(&[
                "run",
                "-d",
                "--name",
                &container,
                "--network",
                &network,
                "--network-alias",
                alias,
                &busybox_image(),
                "sh",
                "-c",
                &script,
            ]);
            servers.push(container);
        }
        let ip = |server: &str| {
            let ip = docker(&[
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                server,
            ])
            .trim()
            .to_string();
            assert!(!ip.is_empty(), "the test server {server} has no address");
            ip
        };
        let (allowed_ip, blocked_ip) = (ip(&servers[0]), ip(&servers[1]));
        Self {
            network,
            servers,
            allowed_ip,
            blocked_ip,
        }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        for s in &self.servers {
            docker(&["rm", "-f", s]);
        }
        docker(&["network", "rm", &self.network]);
    }
}

/// The set-up script: each line `RESULT name status` for one attempt, through the proxy
/// named by `$HTTP_PROXY` or directly.
const FETCH: &str = r#"#!/bin/bash
proxy=${HTTP_PROXY#http://}; ph=${proxy%:*}; pp=${proxy##*:}
# $1 label, $2 request head (through the proxy); prints the status line's code.
ask() {
  exec 3<>"/dev/tcp/$ph/$pp" || { echo "RESULT $1 noproxy"; return; }
  printf '%b' "$2" >&3
  code=$(timeout 5 head -c 12 <&3 | cut -d' ' -f2)
  echo "RESULT $1 ${code:-none}"
  exec 3<&-
}
ask connect-allowed 'CONNECT allowed.test:80 HTTP/1.1\r\nHost: allowed.test:80\r\n\r\n'
exec 3<>"/dev/tcp/$ph/$pp"; printf 'GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n' >&3
timeout 5 cat <&3 | grep -q allowed-content && echo "RESULT get-allowed content" || echo "RESULT get-allowed nothing"
exec 3<&-
ask get-blocked 'GET http://blocked.test/ HTTP/1.1\r\nHost: blocked.test\r\n\r\n'
ask connect-blocked 'CONNECT blocked.test:80 HTTP/1.1\r\n\r\n'
ask suffix 'CONNECT allowed.test.blocked.test:80 HTTP/1.1\r\n\r\n'
ask fragment 'CONNECT blocked.test#allowed.test:80 HTTP/1.1\r\n\r\n'
ask userinfo 'CONNECT allowed.test@blocked.test:80 HTTP/1.1\r\n\r\n'
ask userinfo-get 'GET http://allowed.test@blocked.test/ HTTP/1.1\r\nHost: blocked.test\r\n\r\n'
ask trailing-dot 'CONNECT allowed.test.:80 HTTP/1.1\r\n\r\n'
ask ip 'CONNECT ALLOWED_IP:80 HTTP/1.1\r\n\r\n'
ask other-port 'CONNECT allowed.test:8080 HTTP/1.1\r\n\r\n'
ask host-header 'GET http://blocked.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n'
# No other route: the server by address, and by name without the proxy.
timeout 5 bash -c 'exec 3<>/dev/tcp/ALLOWED_IP/80' 2>/dev/null && echo "RESULT direct-ip open" || echo "RESULT direct-ip closed"
timeout 5 bash -c 'exec 3<>/dev/tcp/allowed.test/80' 2>/dev/null && echo "RESULT direct-name open" || echo "RESULT direct-name closed"
exit ${SETUP_EXIT:-0}
"#;

/// A project whose set-up runs `FETCH` behind the egress proxy allowing `allowed.test`.
fn project(outside: &Outside, image: &str, exit: u32, sleep: u32) -> Project {
    let p = Project::example_with_image(image);
    let script = FETCH
        .replace("ALLOWED_IP", &outside.allowed_ip)
        .replace("exit ${SETUP_EXIT:-0}", &format!("sleep {sleep}; exit {exit}"));
    std::fs::write(p.path("fetch.sh"), script).unwrap();
    let config = p
        .read("pace.config.yaml")
        .replace(
            "  test_command: sh tests/run.sh",
            "  test_command: echo SUITE-RAN\n  setup_command: bash fetch.sh",
        )
        .replace(
            "  caches: false        # a shell project has no dependencies to cache",
            &format!(
                "  caches: false\n  setup_network: {}\n  egress: [allowed.test, 'allowed.test:80']",
                outside.network
            ),
        );
    assert!(config.contains("egress: [allowed.test, 'allowed.test:80']"), "{config}");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "egress"]);
    p
}

/// This project's containers and egress networks still on the daemon.
fn leftovers(p: &Project) -> (String, String) {
    let filter = format!("label={LABEL_PROJECT}={}", project_id(&p.root));
    let containers = docker(&["ps", "-aq", "--filter", &filter]);
    let networks = docker(&["network", "ls", "-q", "--filter", &filter]);
    (containers.trim().to_string(), networks.trim().to_string())
}

fn results(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

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
fn the_set_up_reaches_only_the_allowed_host_and_every_trick_is_refused() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("{:x}", std::process::id()));
    let p = project(&outside, &image, 0, 0);
    let out = p.pace_gate().output().unwrap();
    expect_code(&out, 0);
    assert!(stdout(&out).contains("SUITE-RAN"));
    let log = p.read(".pace/setup/output.log");
    let got = results(&log);
    let expected: Vec<(String, String)> = [
        ("connect-allowed", "200"),
        ("get-allowed", "content"),
        ("get-blocked", "403"),
        ("connect-blocked", "403"),
        ("suffix", "403"),
        ("fragment", "403"),
        ("userinfo", "403"),
        ("userinfo-get", "403"),
        ("trailing-dot", "403"),
        ("ip", "403"),
        ("other-port", "403"),
        ("host-header", "403"),
        ("direct-ip", "closed"),
        ("direct-name", "closed"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, expected, "{log}");

    let tally = pace::proxy::parse_tally(&p.read(".pace/egress.yaml")).unwrap();
    let count = |host: &str, port: u16, allowed: bool| {
        tally
            .iter()
            .find(|e| e.host == host && e.port == port && e.allowed == allowed)
            .map_or(0, |e| e.count)
    };
    assert_eq!(count("allowed.test", 80, true), 2, "{tally:?}");
    assert_eq!(count("blocked.test", 80, false), 3, "{tally:?}");
    assert_eq!(count("allowed.test", 8080, false), 1, "{tally:?}");
    assert_eq!(count(&outside.allowed_ip, 80, false), 1, "{tally:?}");
    assert!(
        tally.iter().all(|e| !e.allowed || e.host == "allowed.test"),
        "{tally:?}"
    );
    assert_eq!(
        leftovers(&p),
        (String::new(), String::new()),
        "proxy and network removed"
    );
}

#[test]
fn a_failed_set_up_and_a_terminated_one_leave_no_proxy_or_network() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("{:x}t", std::process::id()));
    // A set-up that fails (the day would hold): the suite does not run.
    let failing = project(&outside, &image, 3, 0);
    let out = failing.pace_gate().output().unwrap();
    expect_code(&out, 1);
    assert!(!stdout(&out).contains("SUITE-RAN"));
    assert!(failing.read(".pace/egress.yaml").contains("blocked.test"));
    assert_eq!(leftovers(&failing), (String::new(), String::new()));

    // SIGTERM while the set-up runs behind the proxy.
    let slow = project(&outside, &image, 0, 60);
    let child = slow
        .pace_gate()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // The proxy and the set-up container behind it both run (the log is written as the
    // container's output arrives, but may lag: not waited for).
    while leftovers(&slow).0.lines().count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no set-up container behind the proxy appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!leftovers(&slow).1.is_empty(), "the internal network exists meanwhile");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 143);
    assert_eq!(leftovers(&slow), (String::new(), String::new()));
}

#[test]
fn with_egress_for_tests_the_suite_is_behind_the_proxy_too() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("{:x}s", std::process::id()));
    let p = project(&outside, &image, 0, 0);
    let config = p
        .read("pace.config.yaml")
        .replace(
            "  test_command: echo SUITE-RAN\n  setup_command: bash fetch.sh",
            "  test_command: bash fetch.sh\n  setup_command: false",
        )
        .replace(
            "egress: [allowed.test, 'allowed.test:80']",
            "egress: [allowed.test, 'allowed.test:80']\n  egress_for_tests: true",
        );
    assert!(config.contains("egress_for_tests: true") && config.contains("setup_command: false"));
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-qam", "suite behind the proxy"]);
    let out = p.pace_gate().output().unwrap();
    expect_code(&out, 0);
    let got = results(&stdout(&out));
    assert!(got.contains(&("get-allowed".into(), "content".into())), "{got:?}");
    assert!(got.contains(&("get-blocked".into(), "403".into())), "{got:?}");
    assert!(got.contains(&("direct-ip".into(), "closed".into())), "{got:?}");
    let tally = p.read(".pace/egress.yaml");
    assert!(
        tally.contains("host: allowed.test") && tally.contains("host: blocked.test"),
        "{tally}"
    );
    assert_eq!(leftovers(&p), (String::new(), String::new()));
}

/// A whole day behind the proxy: the tally in `.pace/day-1/egress.yaml`, the line in
/// `summary.md` and the merge request, and nothing left on the daemon after the day.
#[tokio::test]
async fn a_day_records_the_tally_and_summarises_it() {
    day_behind_the_proxy(false).await;
}

/// With `sandbox.egress_for_tests` the proxy started for the set-up stays for FORGE and
/// GATE (the suite sees the proxy variables) and goes at the end of the day.
#[tokio::test]
async fn with_egress_for_tests_a_day_keeps_the_proxy_until_its_end() {
    day_behind_the_proxy(true).await;
}

async fn day_behind_the_proxy(for_tests: bool) {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("{:x}d{}", std::process::id(), u8::from(for_tests)));
    let day = crate::support::scenario::Scenario::greeter()
        .edit_config("image: pace-test/busybox:1", &format!("image: {image}"))
        .edit_config(
            "  caches: false\n",
            &format!(
                "  caches: false\n  setup_network: {}\n  egress: [allowed.test, 'allowed.test:80']\n  egress_for_tests: {for_tests}\n",
                outside.network
            ),
        )
        .edit_config(
            "  test_command: sh tests/run.sh",
            "  test_command: echo \"proxy=$HTTPS_PROXY\"; sh tests/run.sh\n  setup_command: bash fetch.sh",
        )
        .start()
        .await;
    let script = FETCH
        .replace("ALLOWED_IP", &outside.allowed_ip)
        .replace("exit ${SETUP_EXIT:-0}", "exit 0");
    std::fs::write(day.project.path("fetch.sh"), script).unwrap();
    day.project.git(&["add", "fetch.sh"]);
    day.project.git(&["commit", "-qm", "the set-up's script"]);
    day.pace(&["--day", "1"]).await.expect_exit(0);
    let tally = pace::proxy::parse_tally(&day.artifact(1, "egress.yaml")).unwrap();
    assert!(
        tally
            .iter()
            .any(|e| e.host == "allowed.test" && e.allowed && e.count == 2),
        "{tally:?}"
    );
    for name in ["summary.md", "merge-request.md"] {
        let text = day.artifact(1, name);
        assert!(
            text.contains("**Network (set-up, `sandbox.egress`):** `1 host allowed (2 requests), 8 blocked: ")
                && text.contains(" allowed.test@blocked.test ×1, ")
                && text.contains(" blocked.test:80 ×3, "),
            "{name}:\n{text}"
        );
    }
    let gate_log = day.artifact(1, "gate/output.log");
    let expected = if for_tests {
        "proxy=http://pace-egress-proxy:3128"
    } else {
        "proxy=\n"
    };
    assert!(gate_log.contains(expected), "{gate_log}");
    assert_eq!(leftovers(&day.project), (String::new(), String::new()));
}

/// A run killed with SIGKILL leaves its egress network: the next run of the project
/// sweeps it once its recorded lifetime has passed, and leaves a live one alone.
#[tokio::test]
async fn a_killed_runs_egress_network_is_swept_by_the_next_run() {
    require_docker!();
    let repo = tempfile::tempdir().unwrap();
    let project = project_id(repo.path());
    let tag = format!("{:x}", std::process::id());
    let network = |name: &str, created: &str| {
        docker(&[
            "network",
            "create",
            "--internal",
            "--label",
            &format!("{LABEL_PROJECT}={project}"),
            "--label",
            "pace.run-id=killed-run",
            "--label",
            &format!("pace.created={created}"),
            "--label",
            "pace.timeout=60",
            "--label",
            &format!("{}=proxy", pace::sandbox::LABEL_EGRESS),
            name,
        ]);
    };
    let (old, live) = (format!("pace-test-stale-{tag}"), format!("pace-test-live-{tag}"));
    network(&old, "1000");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    network(&live, &now.to_string());
    let ctx = crate::support::sandbox::context("egress-sweep", 1, |_| {});
    let sb = pace::sandbox::Sandbox::connect(ctx).await.unwrap();
    sb.remove_stale(repo.path()).await.unwrap();
    let left = docker(&["network", "ls", "--format", "{{.Name}}"]);
    docker(&["network", "rm", &live]);
    assert!(!left.lines().any(|n| n == old), "{left}");
    assert!(left.lines().any(|n| n == live), "{left}");
}
