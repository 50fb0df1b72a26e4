//! The egress allowlist's sidecar: with `sandbox.egress`, the set-up container gets only an
//! *internal* Docker network (no route out) shared with a proxy container that runs pace's
//! own binary (`pace proxy`, see `crate::proxy`) and is also attached to
//! `sandbox.setup_network`, its route out. The proxy lets through only the listed hosts and
//! counts every decision; pace reads the tally back before removing both.
//!
//! Owns: the internal network, the proxy container (created, the binary uploaded, attached,
//! started, waited for), the environment that points the toolchains at it, and their
//! removal on every exit path: [`Egress::finish`] normally; its `Drop` (errors,
//! cancellation) in the background, registered with the sandbox's closing tasks; and
//! [`remove_run_networks`] after `remove_run_containers` on signals (the proxy carries the
//! run's labels like every pace container).
//!
//! Decisions:
//! - **The binary.** The running executable is uploaded into a container of the sandbox
//!   image (already on the daemon: no second image to pull or build, the same under `DinD`,
//!   socket binding and Podman). The release binary is static, so any image runs it; a
//!   dynamically linked build (`cargo build`) needs an image with a compatible C library.
//! - **Which toolchains follow the proxy.** `HTTP(S)_PROXY` in both cases and `NO_PROXY`
//!   reach Go, npm, pip, Cargo, `dotnet`, curl and wget; `JAVA_TOOL_OPTIONS` carries the
//!   JVM's proxy properties for Gradle and JVM clients. Maven's resolver reads neither: it
//!   needs a `<proxy>` in `settings.xml` (the README says so); its requests are then
//!   refused, which shows in `egress.yaml` as nothing at all, and the set-up fails offline.
//! - **No route out, whatever the firewall.** Docker enforces `internal` with iptables;
//!   a daemon started with `--iptables=false` still gives the members a default route
//!   through the bridge's address on the host, which forwards. The network is created
//!   without that address (`inhibit_ipv4`), so there is no gateway to route through; a
//!   daemon that refuses the option gets a plain internal network and a warning.
//! - **Same limits as other containers**: dropped capabilities, no new privileges, the
//!   pids limit, labels for cleanup; a fixed small memory (the proxy holds no bodies).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::container::{Sandbox, unix_now};
use super::guard::Closing;
use super::spec::Role;
use super::{LABEL_CREATED, LABEL_DAY, LABEL_PROJECT, LABEL_RUN_ID, LABEL_TIMEOUT, SandboxError};
use crate::proxy::TallyEntry;

/// The proxy's name on the internal network (what the set-up's proxy variables name).
pub const PROXY_ALIAS: &str = "pace-egress-proxy";
const PROXY_PORT: u16 = 3128;
/// Where the binary is uploaded in the proxy container.
const PROXY_DIR: &str = "/pace-egress";
const PROXY_BINARY: &str = "/pace-egress/pace";
/// Where the proxy writes its tally (`/tmp`: writable whatever the image's user).
const TALLY_PATH: &str = "/tmp/pace-egress.yaml";
/// Marks the networks pace creates for this (with the run id for cleanup).
pub const LABEL_EGRESS: &str = "pace.egress";
/// The bridge driver's option that leaves the bridge without an address on the host.
const INHIBIT_IPV4: &str = "com.docker.network.bridge.inhibit_ipv4";
/// How long the proxy may take to listen (it writes its empty tally then).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The proxy's memory: it copies streams and holds no bodies.
const PROXY_MEMORY: i64 = 256 * 1024 * 1024;
/// The recorded lifetime of a proxy kept for the day (as a FORGE session's).
const DAY_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The largest tally read back (a few thousand hosts).
const TALLY_CAP: usize = 1024 * 1024;

/// What a container behind the proxy gets: the internal network and the proxy variables.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub network: String,
    pub env: Vec<(String, String)>,
}

impl Route {
    fn new(network: String) -> Self {
        let url = format!("http://{PROXY_ALIAS}:{PROXY_PORT}");
        let no_proxy = "localhost,127.0.0.1,::1".to_string();
        let java = format!(
            "-Dhttp.proxyHost={PROXY_ALIAS} -Dhttp.proxyPort={PROXY_PORT} -Dhttps.proxyHost={PROXY_ALIAS} -Dhttps.proxyPort={PROXY_PORT} -Dhttp.nonProxyHosts=localhost|127.0.0.1"
        );
        let env = [
            ("HTTP_PROXY", url.clone()),
            ("HTTPS_PROXY", url.clone()),
            ("http_proxy", url.clone()),
            ("https_proxy", url),
            ("NO_PROXY", no_proxy.clone()),
            ("no_proxy", no_proxy),
            ("JAVA_TOOL_OPTIONS", java),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Self { network, env }
    }
}

/// The running sidecar: its internal network and proxy container. Removed by
/// [`Egress::finish`], else when dropped (in the background, waited for by
/// `Sandbox::settle`).
pub(super) struct Egress {
    docker: Docker,
    network: String,
    container: Option<String>,
    keep: bool,
    /// Removed (or kept) by [`Egress::finish`]: nothing left for `Drop`.
    done: bool,
    closing: Closing,
}

impl Egress {
    pub(super) fn route(&self) -> Route {
        Route::new(self.network.clone())
    }

    /// Reads the tally, then removes the proxy and the network. With `sandbox.keep` both
    /// stay (their names are printed), as the other containers do.
    pub(super) async fn finish(mut self) -> Result<Vec<TallyEntry>, SandboxError> {
        self.done = true;
        let tally = match &self.container {
            Some(id) => read_tally(&self.docker, id).await,
            None => Vec::new(),
        };
        if self.keep {
            tracing::warn!(network = %self.network, container = ?self.container, "sandbox: keeping the egress proxy and its network (`sandbox.keep: true`)");
            self.container = None;
            return Ok(tally);
        }
        let result = remove_both(&self.docker, self.container.take(), &self.network).await;
        result.map(|()| tally)
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        if self.keep || self.done {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(network = %self.network, "sandbox: egress proxy left behind (no runtime to remove it)");
            return;
        };
        let (docker, network, container) = (self.docker.clone(), self.network.clone(), self.container.take());
        let task = handle.spawn(async move { remove_both(&docker, container, &network).await });
        match self.closing.lock() {
            Ok(mut closing) => closing.push(task),
            Err(_) => tracing::warn!("sandbox: cannot track the egress proxy's removal"),
        }
    }
}

async fn remove_both(docker: &Docker, container: Option<String>, network: &str) -> Result<(), SandboxError> {
    if let Some(id) = container {
        remove(docker, &id)
            .await
            .map_err(|source| egress_err("remove the proxy container", &id, &source))?;
    }
    match docker.remove_network(network).await {
        Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(egress_err("remove the network", network, &e)),
    }
}

/// Removes a container and its anonymous volumes, running or not.
async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    docker.remove_container(id, Some(opts)).await
}

fn egress_err(operation: &'static str, target: &str, source: &DockerError) -> SandboxError {
    SandboxError::Egress {
        operation,
        target: target.to_string(),
        message: super::error_chain(source),
    }
}

impl Sandbox {
    /// Creates the internal network and starts the proxy for `sandbox.egress`, attached to
    /// it and to `sandbox.setup_network`; returns once the proxy listens.
    pub(super) async fn start_egress(&self, repo: &Path) -> Result<Egress, SandboxError> {
        let s = &self.ctx.settings;
        let tag = format!("{:08x}", fastrand::u32(..));
        let name = format!("pace-egress-{}-{tag}", short(&self.ctx.run_id));
        // The lifetime a later run's stale sweep reads: the set-up's, or the whole day's
        // when FORGE and GATE use the proxy too.
        let lifetime = if s.egress_for_tests {
            DAY_LIFETIME.max(s.timeout)
        } else {
            s.timeout
        };
        let labels = HashMap::from([
            (LABEL_RUN_ID.to_string(), self.ctx.run_id.clone()),
            (LABEL_DAY.to_string(), self.ctx.day.to_string()),
            (LABEL_CREATED.to_string(), unix_now().to_string()),
            (LABEL_PROJECT.to_string(), super::cache::project_id(repo)),
            (LABEL_TIMEOUT.to_string(), lifetime.as_secs().to_string()),
            (LABEL_EGRESS.to_string(), "proxy".to_string()),
        ]);
        self.create_internal_network(&name, &labels).await?;
        let mut egress = Egress {
            docker: self.docker.raw().clone(),
            network: name.clone(),
            container: None,
            keep: s.keep,
            done: false,
            closing: self.closing.clone(),
        };
        let clients = self.internal_subnet(&name).await;
        let body = proxy_body(s, labels, clients);
        let container = format!("pace-{}-egress-proxy-{tag}", short(&self.ctx.run_id));
        let opts = CreateContainerOptionsBuilder::default().name(&container).build();
        let created = self
            .docker
            .raw()
            .create_container(Some(opts), body)
            .await
            .map_err(|e| egress_err("create the proxy container", &container, &e))?;
        egress.container = Some(created.id.clone());
        upload_binary(self.docker.raw(), &created.id).await?;
        let attach = NetworkConnectRequest {
            container: created.id.clone(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(vec![PROXY_ALIAS.to_string()]),
                ..Default::default()
            }),
        };
        self.docker
            .raw()
            .connect_network(&name, attach)
            .await
            .map_err(|e| egress_err("attach the proxy to the network", &name, &e))?;
        self.docker
            .raw()
            .start_container(&created.id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| egress_err("start the proxy container", &container, &e))?;
        wait_ready(self.docker.raw(), &created.id, &s.image).await?;
        tracing::debug!(network = %name, container = %container, "sandbox: egress proxy ready");
        Ok(egress)
    }

    /// The internal network the set-up container and the proxy share.
    async fn create_internal_network(&self, name: &str, labels: &HashMap<String, String>) -> Result<(), SandboxError> {
        let create = |options: Option<HashMap<String, String>>| NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(true),
            labels: Some(labels.clone()),
            options,
            ..Default::default()
        };
        // `internal` alone is enforced by the daemon's iptables rules: a daemon without
        // them (`--iptables=false`) still routes the network's gateway out through the
        // host. Without an address on the bridge the gateway does not exist, whatever the
        // firewall; members still reach each other (the proxy).
        let inhibit = HashMap::from([(INHIBIT_IPV4.to_string(), "true".to_string())]);
        if let Err(first) = self.docker.raw().create_network(create(Some(inhibit))).await {
            tracing::warn!(network = %name, error = %first, "sandbox: the daemon refused a bridge without an address; the internal network relies on its firewall");
            self.docker
                .raw()
                .create_network(create(None))
                .await
                .map_err(|e| egress_err("create the internal network", name, &e))?;
        }
        Ok(())
    }

    /// The subnet the daemon gave the internal network: the only clients the proxy serves.
    /// `None` (the proxy then serves every peer) when the daemon does not say.
    async fn internal_subnet(&self, name: &str) -> Option<ipnet::IpNet> {
        let network = self
            .docker
            .raw()
            .inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
            .map_err(
                |e| tracing::warn!(network = %name, error = %e, "sandbox: cannot read the internal network's subnet"),
            )
            .ok()?;
        let subnet = network.ipam?.config?.into_iter().find_map(|c| c.subnet?.parse().ok());
        if subnet.is_none() {
            tracing::warn!(network = %name, "sandbox: the internal network has no subnet; the proxy serves every peer");
        }
        subnet
    }
}

impl Sandbox {
    /// The route of a container for `role` behind the proxy: the set-up's with
    /// `sandbox.egress`, GATE's and FORGE's too with `sandbox.egress_for_tests`; starts the
    /// sidecar when none runs. `None`: the container gets its usual network.
    pub(super) async fn egress_route(&self, role: Role, repo: &Path) -> Result<Option<Route>, SandboxError> {
        let s = &self.ctx.settings;
        if s.egress.is_empty() || (role != Role::Setup && !s.egress_for_tests) {
            return Ok(None);
        }
        let mut slot = self.egress.lock().await;
        if slot.is_none() {
            *slot = Some(self.start_egress(repo).await?);
        }
        Ok(slot.as_ref().map(Egress::route))
    }

    /// Stops the egress sidecar if it runs and returns the tally of every proxy of this
    /// run so far (`None`: none ran now), redacted: a refused target is whatever the
    /// container asked for, a `sandbox.env` secret spelled as a host name included, and the
    /// tally becomes an artifact. A second set-up of the day (`forge.setup_on_change`) adds
    /// to the first's here, in memory: never to an `egress.yaml` found in the checkout,
    /// which the repository could have planted.
    pub async fn stop_egress(&self) -> Result<Option<Vec<TallyEntry>>, SandboxError> {
        let running = self.egress.lock().await.take();
        let Some(egress) = running else { return Ok(None) };
        let tally: Vec<TallyEntry> = egress
            .finish()
            .await?
            .into_iter()
            .map(|mut e| {
                e.host = self.ctx.redactor.redact(&e.host);
                e
            })
            .collect();
        // Two names redacted alike are one line.
        let mut seen = self.egress_seen.lock().map_err(|_| SandboxError::Egress {
            operation: "count",
            target: "the tally".into(),
            message: "a poisoned lock".into(),
        })?;
        *seen = crate::proxy::merge_tallies(&seen, &tally);
        Ok(Some(seen.clone()))
    }
}

/// The proxy container: pace's binary as the entry point, `sandbox.setup_network` (its
/// route out), the usual restrictions and a small memory limit.
fn proxy_body(
    s: &crate::config::settings::SandboxSettings,
    labels: HashMap<String, String>,
    clients: Option<ipnet::IpNet>,
) -> ContainerCreateBody {
    let mut cmd = vec![
        "proxy".to_string(),
        "--listen".into(),
        format!("0.0.0.0:{PROXY_PORT}"),
        "--log".into(),
        TALLY_PATH.into(),
    ];
    if let Some(net) = clients {
        cmd.push("--clients".into());
        cmd.push(net.to_string());
    }
    for entry in &s.egress {
        cmd.push("--allow".into());
        cmd.push(entry.to_string());
    }
    ContainerCreateBody {
        image: Some(s.image.clone()),
        entrypoint: Some(vec![PROXY_BINARY.to_string()]),
        cmd: Some(cmd),
        env: Some(vec!["RUST_LOG=warn".to_string()]),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(s.setup_network.clone()),
            memory: Some(PROXY_MEMORY),
            memory_swap: Some(PROXY_MEMORY),
            pids_limit: (s.pids_limit > 0).then_some(s.pids_limit),
            cap_drop: Some(vec!["ALL".to_string()]),
            security_opt: Some(vec!["no-new-privileges:true".to_string()]),
            privileged: Some(false),
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The run id's last part (unique per run), for names Docker accepts.
fn short(run_id: &str) -> String {
    let clean: String = run_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let start = clean.len().saturating_sub(24);
    clean[start..].trim_start_matches('-').to_string()
}

/// Streams the running executable into the container at [`PROXY_BINARY`].
async fn upload_binary(docker: &Docker, id: &str) -> Result<(), SandboxError> {
    let exe = std::env::current_exe().map_err(|source| SandboxError::Io {
        path: "the pace executable".into(),
        source,
    })?;
    let file = std::fs::File::open(&exe).map_err(|source| SandboxError::Io {
        path: exe.clone(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| SandboxError::Io {
            path: exe.clone(),
            source,
        })?
        .len();
    let (reader, writer) = tokio::io::duplex(256 * 1024);
    let packer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut builder = tar::Builder::new(tokio_util::io::SyncIoBridge::new(writer));
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        builder.append_data(&mut dir, PROXY_DIR.trim_start_matches('/'), std::io::empty())?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_size(len);
        builder.append_data(&mut header, PROXY_BINARY.trim_start_matches('/'), file)?;
        builder.into_inner()?.shutdown()
    });
    let stream = tokio_util::io::ReaderStream::new(reader);
    let opts = UploadToContainerOptionsBuilder::default().path("/").build();
    let uploaded = docker
        .upload_to_container(id, Some(opts), bollard::body_try_stream(stream))
        .await;
    let packed = packer.await.map_err(std::io::Error::other).and_then(|r| r);
    match (uploaded, packed) {
        (_, Err(source)) => Err(SandboxError::Io { path: exe, source }),
        (Err(e), Ok(())) => Err(egress_err("upload pace into the proxy container", id, &e)),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// Waits until the proxy wrote its (empty) tally; a proxy that exits instead is an error
/// with its output (a binary the image cannot run says so there).
async fn wait_ready(docker: &Docker, id: &str, image: &str) -> Result<(), SandboxError> {
    let started = std::time::Instant::now();
    loop {
        if download(docker, id, TALLY_PATH).await.is_some() {
            return Ok(());
        }
        let running = docker
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            .unwrap_or(false);
        if !running || started.elapsed() > READY_TIMEOUT {
            let opts = LogsOptionsBuilder::default()
                .stdout(true)
                .stderr(true)
                .tail("20")
                .build();
            let mut logs = docker.logs(id, Some(opts));
            let mut output = String::new();
            while let Some(Ok(chunk)) = logs.next().await {
                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
            return Err(SandboxError::EgressProxy {
                image: image.to_string(),
                output: output.trim().to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One small regular file of a container, in memory (`None`: absent or too large).
async fn download(docker: &Docker, id: &str, path: &str) -> Option<Vec<u8>> {
    let opts = DownloadFromContainerOptionsBuilder::default().path(path).build();
    super::docker::small_file(docker.download_from_container(id, Some(opts)), TALLY_CAP)
        .await
        .ok()
}

/// The proxy's tally (empty, with a warning, when it cannot be read).
async fn read_tally(docker: &Docker, id: &str) -> Vec<TallyEntry> {
    let Some(bytes) = download(docker, id, TALLY_PATH).await else {
        tracing::warn!(container = id, "sandbox: the egress proxy's tally cannot be read");
        return Vec::new();
    };
    crate::proxy::parse_tally(&String::from_utf8_lossy(&bytes)).unwrap_or_else(|e| {
        tracing::warn!(container = id, error = %e, "sandbox: the egress proxy's tally is not valid");
        Vec::new()
    })
}

/// Removes `project`'s egress networks whose recorded lifetime (plus `margin`) has passed
/// at `now`: left by a run that was killed (its containers go through `remove_stale`).
pub(super) async fn remove_stale_networks(docker: &Docker, project: &str, now: u64, margin: Duration) -> usize {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_PROJECT}={project}")])]);
    let opts = ListNetworksOptionsBuilder::default().filters(&filters).build();
    let Ok(networks) = docker.list_networks(Some(opts)).await else {
        return 0;
    };
    let mut removed = 0;
    for network in networks {
        let labels = network.labels.unwrap_or_default();
        let number = |key: &str| labels.get(key).and_then(|v| v.trim().parse::<u64>().ok());
        let (Some(created), Some(timeout)) = (number(LABEL_CREATED), number(LABEL_TIMEOUT)) else {
            continue;
        };
        // Checked again: a daemon that ignored the filter must not widen the sweep.
        if labels.get(LABEL_PROJECT).map(String::as_str) != Some(project) || !labels.contains_key(LABEL_EGRESS) {
            continue;
        }
        if now <= created.saturating_add(timeout).saturating_add(margin.as_secs()) {
            continue;
        }
        if let Some(name) = network.name {
            match docker.remove_network(&name).await {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(network = %name, error = %e, "sandbox: cannot remove a stale egress network"),
            }
        }
    }
    removed
}

/// Removes this run's egress networks (after its containers, on signals and at exit).
pub(super) async fn remove_run_networks(docker: &Docker, run_id: &str) {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_RUN_ID}={run_id}")])]);
    let opts = ListNetworksOptionsBuilder::default().filters(&filters).build();
    let Ok(networks) = docker.list_networks(Some(opts)).await else {
        return;
    };
    for network in networks {
        let labels = network.labels.unwrap_or_default();
        // Checked again: a daemon that ignored the filter must not widen the removal.
        if labels.get(LABEL_RUN_ID).map(String::as_str) != Some(run_id) || !labels.contains_key(LABEL_EGRESS) {
            continue;
        }
        if let Some(name) = network.name
            && let Err(e) = docker.remove_network(&name).await
        {
            tracing::warn!(network = %name, error = %e, "sandbox: cannot remove the egress network");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_points_every_client_at_the_proxy() {
        let route = Route::new("pace-egress-x".into());
        let get = |k: &str| route.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://pace-egress-proxy:3128"));
        assert_eq!(get("http_proxy"), Some("http://pace-egress-proxy:3128"));
        assert!(get("JAVA_TOOL_OPTIONS").is_some_and(|j| j.contains("-Dhttps.proxyHost=pace-egress-proxy")));
        assert_eq!(route.network, "pace-egress-x");
    }

    #[test]
    fn names_keep_the_run_ids_end() {
        assert_eq!(short("run-abc_def-4242"), "run-abcdef-4242");
        assert_eq!(short("20261202T111213-abcdef-4242"), "61202T111213-abcdef-4242");
        assert_eq!(short("x".repeat(40).as_str()).len(), 24);
    }
}
