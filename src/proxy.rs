//! `pace proxy`: the egress allowlist's forward proxy (HTTP `CONNECT` tunnels and plain
//! HTTP requests in absolute form). It runs as a sidecar container, the only member of the
//! set-up's internal network with a route out (see `sandbox/egress.rs`), and lets through
//! only the hosts of `sandbox.egress`.
//!
//! Owns: the allowlist's entries and how a request target is matched against them, the
//! request head (parsed with `httparse`), the tunnel, and the tally of decisions per
//! (host, port, allowed) that pace reads back into `.pace/day-N/egress.yaml`.
//!
//! Decisions:
//! - **Names only.** A target must be a DNS name: IP literals (v4 in any spelling, v6),
//!   user info (`allowed@evil`), a trailing dot, `#`, `%`, `_` or any other character than
//!   letters, digits, `-` and `.` are refused before anything is resolved. Comparison is
//!   on the lowercased name; `*.example.org` matches names below `example.org`, not the
//!   name itself (list both when both are needed).
//! - **Ports.** An entry without a port allows 443 and 80; with one, only that port.
//! - **Plain HTTP** is forwarded once per client connection with `Connection: close`,
//!   the checked host as `Host` and only the body `Content-Length` declares: a later
//!   request on the same connection would reach the upstream uncounted (with any `Host`,
//!   another site behind the same CDN), so none is read or sent.
//! - **Not handled:** an allowed name whose DNS answer points inside (rebinding); the
//!   proxy resolves with the container's resolver like any client would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head read (request line and headers).
const HEAD_LIMIT: usize = 16 * 1024;
/// A client that sends no complete head in this time is dropped (nothing to wait for).
const HEAD_TIMEOUT: Duration = Duration::from_secs(15);
/// Connecting to an allowed host: long enough for a slow registry, short next to the
/// set-up's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// A tunnel or forwarded exchange with no byte either way for this long is closed: a
/// client that went with its removed container never closes its side, and its slot would
/// stay taken for the rest of a day-long proxy. Package managers send or receive something
/// well within it; an idle keep-alive connection is reopened by the client.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Concurrent client connections (package managers open a few dozen at most).
const MAX_CLIENTS: usize = 512;
/// Headers read; more is refused as malformed.
const MAX_HEADERS: usize = 100;
/// A refused target longer than this is recorded cut (it is shown in the MR body).
const RECORDED_TARGET_MAX: usize = 120;
/// Distinct (host, port) kept in the tally per decision (allowed, refused); later ones are
/// counted under [`OTHER_HOSTS`]. pace reads the tally back with a cap (1 MiB) and a set-up
/// asking for thousands of invented names must not push the hosts it really tried out of
/// it (nor make every rewrite of the file slower).
const TALLY_HOSTS_MAX: usize = 256;
/// Where the requests past [`TALLY_HOSTS_MAX`] distinct hosts are counted.
pub const OTHER_HOSTS: &str = "(other hosts)";

/// One `sandbox.egress` host: an exact name or `*.suffix`, with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The lowercased name, without the `*.` of a wildcard.
    name: String,
    wildcard: bool,
    port: Option<u16>,
}

impl Entry {
    /// Parses `HOST`, `HOST:PORT`, `*.SUFFIX` or `*.SUFFIX:PORT`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = parse_port(port).ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
                (host, Some(port))
            }
            None => (text, None),
        };
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let name = host_name(name)?;
        if wildcard && !name.contains('.') {
            return Err(format!(
                "`*.{name}` would allow a whole top-level domain; name the registry's domain"
            ));
        }
        Ok(Self { name, wildcard, port })
    }

    fn allows(&self, host: &str, port: u16, via: Via) -> bool {
        // Without a port: TLS tunnels to 443 and plain HTTP to 80. A tunnel to port 80
        // would carry plain HTTP the proxy never sees, with any `Host` (another site behind
        // the same CDN).
        let port_ok = match (self.port, via) {
            (Some(p), _) => p == port,
            (None, Via::Tunnel) => port == 443,
            (None, Via::Plain) => port == 80,
        };
        let name_ok = if self.wildcard {
            host.strip_suffix(&self.name)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty())
        } else {
            host == self.name
        };
        port_ok && name_ok
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

fn parse_port(text: &str) -> Option<u16> {
    // `u16::from_str` takes a leading `+`; a port is digits only.
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p > 0)
}

/// `text` as a DNS name pace compares: lowercased; labels of letters, digits and `-`
/// (not at either end), 1-63 bytes, 253 in all; the last label not all digits (which
/// refuses every IPv4 spelling: `127.1`, `2130706433`, `0x7f.1` has a letter but `0x7f`
/// is not a top-level domain either: a last label must start with a letter).
pub fn host_name(text: &str) -> Result<String, String> {
    let name = text.to_ascii_lowercase();
    if name.is_empty() {
        return Err("the host is empty".into());
    }
    if name.len() > 253 {
        return Err(format!("`{text}` is longer than a DNS name (253)"));
    }
    if name.ends_with('.') {
        return Err(format!("`{text}` ends with a dot; write the name without it"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "`{text}` is not a host name (letters, digits, `-` and `.`; no IP address, user, path or port)"
            ));
        }
    }
    let last = name.rsplit('.').next().unwrap_or_default();
    if !last.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!(
            "`{text}` is an IP address or not a public name; list host names"
        ));
    }
    Ok(name)
}

/// The presets of `sandbox.egress`: what each ecosystem's default client downloads from.
pub const PRESETS: [(&str, &[&str]); 6] = [
    // The module proxy and the checksum database (`GOPROXY`, `GOSUMDB` defaults).
    ("go", &["proxy.golang.org", "sum.golang.org"]),
    ("npm", &["registry.npmjs.org"]),
    // Maven Central under both of its names.
    ("maven", &["repo.maven.apache.org", "repo1.maven.org"]),
    ("nuget", &["api.nuget.org"]),
    // The index and the file host.
    ("pypi", &["pypi.org", "files.pythonhosted.org"]),
    // The sparse index, the crate files and the API.
    ("cargo", &["index.crates.io", "static.crates.io", "crates.io"]),
];

/// The hosts of preset `name` (case-insensitive); `None` when it is not one.
pub fn preset(name: &str) -> Option<Vec<Entry>> {
    let (_, hosts) = PRESETS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
    Some(hosts.iter().filter_map(|h| Entry::parse(h).ok()).collect())
}

/// How a request reaches its host: a `CONNECT` tunnel or a plain HTTP request the proxy
/// forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Tunnel,
    Plain,
}

/// The hosts the proxy lets through, and whom it serves.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Vec<Entry>,
    /// The set-up's internal network: the proxy is also on `sandbox.setup_network`, where
    /// other containers (the runner's other jobs on the default bridge) must not use it or
    /// add to this day's tally. `None`: everyone (tests on 127.0.0.1).
    clients: Option<ipnet::IpNet>,
}

impl Allowlist {
    pub fn new(entries: Vec<Entry>) -> Self {
        Self { entries, clients: None }
    }

    /// Serves only peers in `clients`.
    #[must_use]
    pub fn with_clients(mut self, clients: Option<ipnet::IpNet>) -> Self {
        self.clients = clients;
        self
    }

    /// Whether `host` (already a [`host_name`]) and `port` are allowed `via` a tunnel or
    /// plain HTTP.
    pub fn allows(&self, host: &str, port: u16, via: Via) -> bool {
        self.entries.iter().any(|e| e.allows(host, port, via))
    }

    /// Whether a connection from `peer` is served at all.
    pub fn serves(&self, peer: std::net::IpAddr) -> bool {
        self.clients.is_none_or(|net| net.contains(&peer))
    }
}

/// One line of the tally: `.pace/day-N/egress.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyEntry {
    pub host: String,
    pub port: u16,
    pub allowed: bool,
    pub count: u64,
}

/// Requests per (host, port, allowed).
type Counts = BTreeMap<(String, u16, bool), u64>;

/// Decisions counted per (host, port, allowed), written to a file after each one.
#[derive(Debug, Clone)]
pub struct Tally {
    counts: Arc<Mutex<Counts>>,
    file: Option<PathBuf>,
}

impl Tally {
    /// A tally written to `file` (`None`: kept in memory only, for tests).
    pub fn new(file: Option<PathBuf>) -> Self {
        Self {
            counts: Arc::default(),
            file,
        }
    }

    /// The decisions so far, allowed first, then by host and port.
    pub fn entries(&self) -> Vec<TallyEntry> {
        self.counts.lock().map(|c| entries_of(&c)).unwrap_or_default()
    }

    fn count(&self, host: &str, port: u16, allowed: bool) {
        let Ok(mut counts) = self.counts.lock() else { return };
        let key = (host.to_string(), port, allowed);
        let kept = counts.keys().filter(|k| k.2 == allowed).count();
        let key = if counts.contains_key(&key) || kept < TALLY_HOSTS_MAX {
            key
        } else {
            (OTHER_HOSTS.to_string(), 0, allowed)
        };
        *counts.entry(key).or_default() += 1;
        // Written under the lock: two decisions at once would otherwise write the same
        // temporary file together, or rename an older snapshot over a newer one.
        if let Err(e) = self.write_counts(&counts) {
            tracing::warn!(error = %e, "proxy: cannot write the tally");
        }
    }

    /// Writes the tally to its file (a new file renamed over the old: a reader never sees
    /// half of it).
    pub fn write(&self) -> std::io::Result<()> {
        let counts = self
            .counts
            .lock()
            .map_err(|_| std::io::Error::other("the tally's lock is poisoned"))?;
        self.write_counts(&counts)
    }

    fn write_counts(&self, counts: &Counts) -> std::io::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        let text = render_tally(&entries_of(counts));
        let part = file.with_extension(format!("part.{}", std::process::id()));
        std::fs::write(&part, text)?;
        std::fs::rename(&part, file)
    }
}

/// `counts` as tally lines, allowed first, then by host and port.
fn entries_of(counts: &Counts) -> Vec<TallyEntry> {
    let mut list: Vec<TallyEntry> = counts
        .iter()
        .map(|((host, port, allowed), count)| TallyEntry {
            host: host.clone(),
            port: *port,
            allowed: *allowed,
            count: *count,
        })
        .collect();
    list.sort_by(|a, b| {
        b.allowed
            .cmp(&a.allowed)
            .then(a.host.cmp(&b.host))
            .then(a.port.cmp(&b.port))
    });
    list
}

/// `a` and `b` added up per (host, port, allowed), in the tally's order.
pub fn merge_tallies(a: &[TallyEntry], b: &[TallyEntry]) -> Vec<TallyEntry> {
    let tally = Tally::new(None);
    if let Ok(mut counts) = tally.counts.lock() {
        for e in a.iter().chain(b) {
            *counts.entry((e.host.clone(), e.port, e.allowed)).or_default() += e.count;
        }
    }
    tally.entries()
}

/// One line for people: how many hosts were allowed (and their requests), and the refused
/// ones with their counts; `None` when nothing asked.
/// E.g. `2 hosts allowed (31 requests), 1 blocked: evil.example:443 ×3`.
pub fn describe_tally(entries: &[TallyEntry]) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let allowed: Vec<&TallyEntry> = entries.iter().filter(|e| e.allowed).collect();
    let blocked: Vec<&TallyEntry> = entries.iter().filter(|e| !e.allowed).collect();
    let hosts: std::collections::BTreeSet<&str> = allowed.iter().map(|e| e.host.as_str()).collect();
    let requests: u64 = allowed.iter().map(|e| e.count).sum();
    let plural = |n: usize, one: &str, many: &str| if n == 1 { one.to_string() } else { many.to_string() };
    let mut line = format!(
        "{} {} allowed ({requests} {})",
        hosts.len(),
        plural(hosts.len(), "host", "hosts"),
        plural(usize::try_from(requests).unwrap_or(usize::MAX), "request", "requests")
    );
    if blocked.is_empty() {
        line.push_str(", none blocked");
    } else {
        const SHOWN: usize = 10;
        let list: Vec<String> = blocked
            .iter()
            .take(SHOWN)
            // Port 0: the target was refused before a port could be read from it.
            .map(|e| match e.port {
                0 => format!("{} ×{}", e.host, e.count),
                port => format!("{}:{port} ×{}", e.host, e.count),
            })
            .collect();
        line.push_str(&format!(", {} blocked: {}", blocked.len(), list.join(", ")));
        if blocked.len() > SHOWN {
            line.push_str(&format!(" and {} more", blocked.len() - SHOWN));
        }
    }
    Some(line)
}

/// The tally as YAML (a list of [`TallyEntry`]).
pub fn render_tally(entries: &[TallyEntry]) -> String {
    if entries.is_empty() {
        return "[]\n".into();
    }
    serde_saphyr::to_string(&entries.to_vec()).unwrap_or_else(|_| "[]\n".into())
}

/// Reads a tally written by [`Tally::write`].
pub fn parse_tally(text: &str) -> Result<Vec<TallyEntry>, String> {
    serde_saphyr::from_str(text).map_err(|e| e.to_string())
}

/// Serves proxy clients on `listener` until the process ends.
pub async fn serve(listener: TcpListener, allow: Allowlist, tally: Tally) {
    serve_with_idle(listener, allow, tally, IDLE_TIMEOUT).await;
}

/// [`serve`] with connections closed after `idle` without traffic (tests use seconds).
pub async fn serve_with_idle(listener: TcpListener, allow: Allowlist, tally: Tally, idle: Duration) {
    let allow = Arc::new(allow);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A neighbour on the outside network: closed unanswered and uncounted.
        if !allow.serves(peer.ip()) {
            tracing::debug!(%peer, "proxy: not a client of this proxy");
            drop(client);
            continue;
        }
        // All slots taken (a flood, or connections still inside their idle limit): the
        // client is told at once instead of waiting unanswered until its own timeout,
        // which would stall the day's commands.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                tokio::spawn(async move {
                    let mut client = client;
                    let msg = format!("pace proxy: {MAX_CLIENTS} connections are open already; retry when some close");
                    let _ = respond(&mut client, 503, &msg).await;
                });
                continue;
            }
            Err(tokio::sync::TryAcquireError::Closed) => return,
        };
        let (allow, tally) = (allow.clone(), tally.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = handle(client, &allow, &tally, idle).await {
                tracing::debug!(%peer, error = %e, "proxy: client connection ended");
            }
        });
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// `CONNECT host:port`.
    Tunnel { host: String, port: u16 },
    /// `METHOD http://host[:port]/path`: forwarded as `METHOD /path` to host, with the
    /// `body` bytes its `Content-Length` declares and nothing after them.
    Forward {
        host: String,
        port: u16,
        head: Vec<u8>,
        body: u64,
    },
}

/// Why a request is refused: the status and what the client is told; `host`/`port` are
/// what the tally records.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    status: u16,
    host: String,
    port: u16,
    message: String,
}

async fn handle(mut client: TcpStream, allow: &Allowlist, tally: &Tally, idle: Duration) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(2048);
    let head_len = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf)).await {
        Ok(Ok(Some(n))) => n,
        Ok(Ok(None)) => return respond(&mut client, 400, "pace proxy: malformed or oversized request head").await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let target = match target_of(&buf[..head_len], allow) {
        Ok(t) => t,
        Err(r) => {
            tally.count(&r.host, r.port, false);
            tracing::info!(host = %r.host, port = r.port, "proxy: refused");
            return respond(&mut client, r.status, &r.message).await;
        }
    };
    let (host, port) = match &target {
        Target::Tunnel { host, port } | Target::Forward { host, port, .. } => (host.clone(), *port),
    };
    tally.count(&host, port, true);
    let upstream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port))).await;
    let mut upstream = match upstream {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let msg = format!("pace proxy: cannot reach {host}:{port}: {e}");
            return respond(&mut client, 502, &msg).await;
        }
        Err(_) => {
            let msg = format!(
                "pace proxy: {host}:{port} did not answer in {}s",
                CONNECT_TIMEOUT.as_secs()
            );
            return respond(&mut client, 504, &msg).await;
        }
    };
    let rest = &buf[head_len..];
    match target {
        Target::Tunnel { .. } => {
            client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
            upstream.write_all(rest).await?;
            let (client_in, client_out) = client.split();
            let (upstream_in, upstream_out) = upstream.split();
            relay(client_in, client_out, upstream_in, upstream_out, idle, Ends::BothClosed).await
        }
        Target::Forward { head, body, .. } => forward(client, upstream, &head, rest, body, idle).await,
    }
}

/// When a relayed connection is over.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// A tunnel: when both sides have closed (each close passed on to the other).
    BothClosed,
    /// A forwarded exchange: with the answer (upstream closes after it, `Connection:
    /// close`); the end of the request body is not passed on as a close.
    WithAnswer,
}

/// Copies both ways between a client and upstream until the exchange `ends`, or until
/// nothing moved either way for `idle` (a peer that went with its container never closes).
async fn relay(
    mut client_in: impl tokio::io::AsyncRead + Unpin,
    mut client_out: impl tokio::io::AsyncWrite + Unpin,
    mut upstream_in: impl tokio::io::AsyncRead + Unpin,
    mut upstream_out: impl tokio::io::AsyncWrite + Unpin,
    idle: Duration,
    ends: Ends,
) -> std::io::Result<()> {
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            read = client_in.read(&mut up), if !up_done => match read? {
                0 => {
                    up_done = true;
                    if ends == Ends::BothClosed {
                        upstream_out.shutdown().await?;
                    }
                }
                n => upstream_out.write_all(&up[..n]).await?,
            },
            read = upstream_in.read(&mut down), if !down_done => match read? {
                0 => {
                    down_done = true;
                    client_out.shutdown().await?;
                    if ends == Ends::WithAnswer {
                        return Ok(());
                    }
                }
                n => client_out.write_all(&down[..n]).await?,
            },
            () = tokio::time::sleep(idle) => {
                tracing::debug!(idle_secs = idle.as_secs(), "proxy: closing an idle connection");
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One plain HTTP exchange: the head, the `body` bytes it declares (some already read, in
/// `rest`) and nothing more upstream (a pipelined second request would reach the host
/// uncounted and unchecked); the answer back until the host closes (`Connection: close`).
async fn forward(
    mut client: TcpStream,
    mut upstream: TcpStream,
    head: &[u8],
    rest: &[u8],
    body: u64,
    idle: Duration,
) -> std::io::Result<()> {
    let already = rest.len().min(usize::try_from(body).unwrap_or(usize::MAX));
    upstream.write_all(head).await?;
    upstream.write_all(&rest[..already]).await?;
    let remaining = body - already as u64;
    let (client_in, client_out) = client.split();
    let (upstream_in, upstream_out) = upstream.split();
    // The body goes up while the answer comes down (an early answer or `100 Continue`
    // must not wait for it); nothing past the declared body is read.
    relay(
        client_in.take(remaining),
        client_out,
        upstream_in,
        upstream_out,
        idle,
        Ends::WithAnswer,
    )
    .await
}

/// Reads until the end of the head; `Some(its length)`, `None` when it is malformed or
/// longer than [`HEAD_LIMIT`] (or the client left before finishing it).
async fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(buf) {
            Ok(httparse::Status::Complete(n)) => return Ok(Some(n)),
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Ok(None),
        }
        if buf.len() >= HEAD_LIMIT {
            return Ok(None);
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn respond(client: &mut TcpStream, status: u16, message: &str) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let body = format!("{message}\n");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

/// The decision on one complete request head.
fn target_of(head: &[u8], allow: &Allowlist) -> Result<Target, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let bad = |message: &str| Refusal {
        status: 400,
        host: "(malformed request)".into(),
        port: 0,
        message: format!("pace proxy: {message}"),
    };
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return Err(bad("malformed request head"));
    }
    let method = req.method.unwrap_or_default();
    let path = req.path.unwrap_or_default();
    let (host, port, forward) = if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = authority(path, None)?;
        (host, port, None)
    } else {
        let Some(rest) = strip_prefix_ci(path, "http://") else {
            return Err(bad(
                "only `CONNECT host:port` and `http://` URLs in absolute form are proxied",
            ));
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (auth, origin) = rest.split_at(end);
        let (host, port) = authority(auth, Some(80))?;
        let origin = if origin.starts_with('?') {
            format!("/{origin}")
        } else if origin.is_empty() {
            "/".to_string()
        } else {
            origin.to_string()
        };
        if origin.contains('#') {
            return Err(bad("a request target has no fragment"));
        }
        let body = declared_body(req.headers).map_err(|why| bad(&why))?;
        (host, port, Some((method.to_string(), origin, body)))
    };
    let via = if forward.is_some() { Via::Plain } else { Via::Tunnel };
    if !allow.allows(&host, port, via) {
        return Err(Refusal {
            status: 403,
            message: format!(
                "pace proxy: {host}:{port} is not in `sandbox.egress` (the set-up's egress allowlist); add it there if the set-up needs it"
            ),
            host,
            port,
        });
    }
    Ok(match forward {
        None => Target::Tunnel { host, port },
        Some((method, origin, body)) => {
            let mut out = format!("{method} {origin} HTTP/1.1\r\n").into_bytes();
            // The host checked, never the client's `Host`: behind a CDN (most registries
            // are) another `Host` reaches another site on the same addresses.
            let authority = if port == 80 {
                host.clone()
            } else {
                format!("{host}:{port}")
            };
            out.extend_from_slice(format!("Host: {authority}\r\n").as_bytes());
            for h in req.headers.iter() {
                let name = h.name.to_ascii_lowercase();
                // Hop-by-hop headers, the proxy's own and the client's `Host` stay here.
                if name.starts_with("proxy-") || name == "connection" || name == "keep-alive" || name == "host" {
                    continue;
                }
                out.extend_from_slice(h.name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(h.value);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"Connection: close\r\n\r\n");
            Target::Forward {
                host,
                port,
                head: out,
                body,
            }
        }
    })
}

/// The body length a forwarded request declares (`Content-Length`, 0 without one).
/// `Transfer-Encoding` is refused: where a proxy and a server read a body's length
/// differently, the rest of the body is a second request the proxy never checked.
fn declared_body(headers: &[httparse::Header<'_>]) -> Result<u64, String> {
    let mut length: Option<u64> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("request bodies with `Transfer-Encoding` are not forwarded over plain HTTP (use https)".into());
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
            let parsed = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<u64>().ok())
                .flatten();
            match (parsed, length) {
                (None, _) => return Err(format!("`Content-Length: {}` is not a length", recorded(value))),
                (Some(n), Some(m)) if n != m => return Err("two different `Content-Length` headers".into()),
                (Some(n), _) => length = Some(n),
            }
        }
    }
    Ok(length.unwrap_or(0))
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// `host:port` (the port optional when `default` is given) as a checked name and port.
fn authority(text: &str, default: Option<u16>) -> Result<(String, u16), Refusal> {
    let refuse = |host: &str, port: u16, why: String| Refusal {
        status: 403,
        host: recorded(host),
        port,
        message: format!("pace proxy: refused `{}`: {why}", recorded(text)),
    };
    if text.contains('@') {
        return Err(refuse(text, 0, "a target has no user information".into()));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !host.contains(']') => match parse_port(port) {
            Some(p) => (host, p),
            None => return Err(refuse(text, 0, format!("`{port}` is not a port"))),
        },
        // `[v6]` or a bare v6 address: not a name.
        Some(_) => {
            return Err(refuse(
                text,
                0,
                "IP addresses are not allowed; use the host's name".into(),
            ));
        }
        None => match default {
            Some(p) => (text, p),
            None => return Err(refuse(text, 0, "`CONNECT` needs `host:port`".into())),
        },
    };
    match host_name(host) {
        Ok(name) => Ok((name, port)),
        Err(why) => Err(refuse(host, port, why)),
    }
}

/// A refused target as the tally records it: lowercased, printable, cut.
fn recorded(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() {
                c.to_ascii_lowercase()
            } else {
                '?'
            }
        })
        .take(RECORDED_TARGET_MAX)
        .collect();
    if clean.is_empty() { "(empty)".into() } else { clean }
}

/// `pace proxy`: binds `listen`, writes an empty tally to `log` (the sign it is ready),
/// and serves until killed.
pub async fn run(listen: &str, allow: Allowlist, log: &Path) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let tally = Tally::new(Some(log.to_path_buf()));
    tally.write()?;
    tracing::info!(%listen, "proxy: listening");
    serve(listener, allow, tally).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist::new(entries.iter().map(|e| Entry::parse(e).unwrap()).collect())
    }

    fn decide(head: &str, allow: &Allowlist) -> Result<(String, u16), (u16, String)> {
        match target_of(head.as_bytes(), allow) {
            Ok(Target::Tunnel { host, port } | Target::Forward { host, port, .. }) => Ok((host, port)),
            Err(r) => Err((r.status, r.host)),
        }
    }

    #[test]
    fn entries_parse_and_bad_ones_say_why() {
        assert_eq!(
            Entry::parse("Repo.Example.ORG").unwrap().to_string(),
            "repo.example.org"
        );
        assert_eq!(
            Entry::parse("*.example.org:8443").unwrap().to_string(),
            "*.example.org:8443"
        );
        for bad in [
            "",
            "10.0.0.1",
            "a.b.",
            "user@host.org",
            "host.org:0",
            "host.org:+1",
            "*.org",
            "h_o.org",
            "[::1]:443",
            "2130706433",
        ] {
            assert!(Entry::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_preset_parses() {
        for (name, hosts) in PRESETS {
            assert_eq!(preset(name).unwrap().len(), hosts.len(), "{name}");
        }
        assert!(preset("GO").is_some());
        assert!(preset("golang").is_none());
    }

    #[test]
    fn exact_names_wildcards_and_ports() {
        use Via::{Plain, Tunnel};
        let allow = list(&["allowed.com", "*.cdn.example.org", "repo.example.net:8080"]);
        assert!(allow.allows("allowed.com", 443, Tunnel));
        assert!(allow.allows("allowed.com", 80, Plain));
        // Without a port, TLS goes to 443 and plain HTTP to 80, never the other way round.
        assert!(!allow.allows("allowed.com", 80, Tunnel));
        assert!(!allow.allows("allowed.com", 443, Plain));
        assert!(!allow.allows("allowed.com", 22, Tunnel));
        assert!(!allow.allows("sub.allowed.com", 443, Tunnel));
        assert!(allow.allows("a.cdn.example.org", 443, Tunnel));
        assert!(allow.allows("a.b.cdn.example.org", 443, Tunnel));
        assert!(!allow.allows("cdn.example.org", 443, Tunnel));
        assert!(!allow.allows("evilcdn.example.org", 443, Tunnel));
        assert!(allow.allows("repo.example.net", 8080, Tunnel));
        assert!(allow.allows("repo.example.net", 8080, Plain));
        assert!(!allow.allows("repo.example.net", 443, Tunnel));
    }

    #[test]
    fn only_peers_on_the_internal_network_are_served() {
        let open = list(&["allowed.com"]);
        assert!(open.serves("192.0.2.9".parse().unwrap()));
        let internal = open.with_clients(Some("172.30.0.0/16".parse().unwrap()));
        assert!(internal.serves("172.30.4.2".parse().unwrap()));
        assert!(!internal.serves("172.17.0.5".parse().unwrap()));
        assert!(!internal.serves("::1".parse().unwrap()));
    }

    #[test]
    fn an_attackers_spellings_are_refused() {
        let allow = list(&["allowed.com"]);
        let connect = |t: &str| decide(&format!("CONNECT {t} HTTP/1.1\r\nHost: {t}\r\n\r\n"), &allow);
        assert_eq!(connect("allowed.com:443"), Ok(("allowed.com".into(), 443)));
        assert_eq!(connect("ALLOWED.Com:443"), Ok(("allowed.com".into(), 443)));
        for (target, host) in [
            ("allowed.com.evil.net:443", "allowed.com.evil.net"),
            ("evil.net#allowed.com:443", "evil.net#allowed.com"),
            ("allowed.com@evil.net:443", "allowed.com@evil.net:443"),
            ("allowed.com.:443", "allowed.com."),
            ("allowed.com:22", "allowed.com"),
            ("93.184.216.34:443", "93.184.216.34"),
            ("[::1]:443", "[::1]:443"),
            ("allowed.com", "allowed.com"),
            ("allowed.com:0443x", "allowed.com:0443x"),
        ] {
            let got = connect(target);
            assert_eq!(got.as_ref().map_err(|e| e.1.as_str()), Err(host), "{target}");
        }
        let get = |t: &str| decide(&format!("GET {t} HTTP/1.1\r\nHost: x\r\n\r\n"), &allow);
        assert_eq!(get("http://allowed.com/a?b"), Ok(("allowed.com".into(), 80)));
        assert_eq!(get("HTTP://allowed.com?q"), Ok(("allowed.com".into(), 80)));
        // Plain HTTP to 443 needs the port in the entry (443 is for tunnels).
        assert!(get("HTTP://allowed.com:443?q").is_err());
        assert!(get("http://allowed.com@evil.net/").is_err());
        assert!(get("http://evil.net#allowed.com/").is_err());
        assert!(get("http://evil.net/#allowed.com").is_err());
        assert!(get("http://evil.net?allowed.com").is_err());
        assert!(get("https://allowed.com/").is_err());
        assert!(get("/relative").is_err());
        assert!(get("http://127.0.0.1/").is_err());
        assert!(get("http://0x7f.1/").is_err());
    }

    #[test]
    fn a_forwarded_request_is_rewritten_to_origin_form_and_closed() {
        let allow = list(&["allowed.com"]);
        let head = "GET http://allowed.com/x?y HTTP/1.1\r\nHost: allowed.com\r\nProxy-Authorization: a\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n";
        let Ok(Target::Forward { head, .. }) = target_of(head.as_bytes(), &allow) else {
            panic!("not forwarded")
        };
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /x?y HTTP/1.1\r\nHost: allowed.com\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn the_tally_round_trips() {
        let tally = Tally::new(None);
        tally.count("b.org", 443, true);
        tally.count("evil.net", 443, false);
        tally.count("b.org", 443, true);
        tally.count("a.org", 80, true);
        let entries = tally.entries();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.host.as_str(), e.allowed, e.count))
                .collect::<Vec<_>>(),
            [("a.org", true, 1), ("b.org", true, 2), ("evil.net", false, 1)]
        );
        assert_eq!(parse_tally(&render_tally(&entries)).unwrap(), entries);
        let merged = merge_tallies(&entries, &entries[1..]);
        assert_eq!(merged.iter().map(|e| e.count).collect::<Vec<_>>(), [1, 4, 2]);
        assert_eq!(
            describe_tally(&merged).unwrap(),
            "2 hosts allowed (5 requests), 1 blocked: evil.net:443 ×2"
        );
        assert_eq!(
            describe_tally(&entries[..1]).unwrap(),
            "1 host allowed (1 request), none blocked"
        );
        assert_eq!(describe_tally(&[]), None);
        assert_eq!(parse_tally(&render_tally(&[])).unwrap(), []);
    }
}
