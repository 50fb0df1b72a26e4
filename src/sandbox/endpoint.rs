//! Where the Docker daemon is: `DOCKER_HOST` (`unix://`, `tcp://`, `http://`, `https://`),
//! with TLS when `DOCKER_TLS_VERIFY` is set (certificates from `DOCKER_CERT_PATH`).
//!
//! The same rules as bollard's `connect_with_defaults`, but read from an explicit set of
//! variables, so that callers (and tests) can point one sandbox at a daemon without
//! changing the process environment. Podman works through its Docker-compatible socket:
//! `DOCKER_HOST=unix:///run/user/$UID/podman/podman.sock`.

use std::path::{Path, PathBuf};

use bollard::{API_DEFAULT_VERSION, Docker};

/// The default when `DOCKER_HOST` is unset.
pub(super) const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// bollard's per-request timeout (seconds) for the response head.
const REQUEST_TIMEOUT: u64 = 120;

/// The client certificate files in the TLS directory.
pub(super) const TLS_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `DOCKER_HOST` as given (or the default socket).
    pub host: String,
    /// Whether `DOCKER_HOST` was set (else the default socket).
    pub host_from_env: bool,
    /// The certificate directory when TLS is on (`DOCKER_TLS_VERIFY` set, or `https://`).
    pub tls_dir: Option<PathBuf>,
    /// The TLS variables that are set (`DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`), also when
    /// the host makes them unused: set without a `tcp://` host they mean a `DinD` service
    /// was meant and is missing.
    pub tls_vars: Vec<&'static str>,
}

/// Why a connection failed, as far as the error and the variables tell: each cause has
/// its own hint naming the runner setting or the variable to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH` set but `DOCKER_HOST` is not `tcp://`: the
    /// job was written for a `DinD` service it does not have.
    TlsWithoutService,
    /// The unix socket does not exist (no daemon here, or socket binding without the
    /// socket mounted into the job).
    NoSocket,
    /// The client certificate files are missing: in GitLab `DinD`, the `/certs/client`
    /// volume is not shared with the job.
    NoCertificates,
    /// The `DOCKER_HOST` name does not resolve: no service of that name in the job.
    NoSuchHost,
    /// Nothing listens at the address.
    Refused,
    /// Something accepts connections and closes them without answering: a `DinD` service
    /// whose daemon cannot start (the runner is not privileged).
    ClosedAtOnce,
    /// The TLS handshake failed on a certificate: another daemon's CA, or the wrong name.
    Certificate,
    /// Plain HTTP to Docker's TLS port 2376.
    PlainToTlsPort,
    /// Anything else.
    Other,
}

/// The GitLab runner setting that lets the `DinD` service start.
const PRIVILEGED: &str = "`privileged = true` in the `[runners.docker]` section of the runner's config.toml";
/// The GitLab runner setting that shares the `DinD` service's client certificates.
const CERTS_VOLUME: &str =
    "`volumes = [\"/certs/client\"]` in the `[runners.docker]` section of the runner's config.toml";
/// The GitLab runner setting that mounts the host's socket into jobs (socket binding).
const SOCKET_VOLUME: &str = "`volumes = [\"/var/run/docker.sock:/var/run/docker.sock\"]` in the `[runners.docker]` section of the runner's config.toml";

impl Endpoint {
    /// From pace's environment snapshot.
    pub fn from_env(env: &crate::env::Env) -> Self {
        Self::from_vars(|name| env.get(name).map(str::to_string))
    }

    /// From the process environment.
    pub fn from_process_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// From any source of variables (`None` = unset or blank).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let given = get("DOCKER_HOST").map(|h| h.trim().to_string());
        let host_from_env = given.is_some();
        let host = given.unwrap_or_else(|| DEFAULT_HOST.to_string());
        let tls = host.starts_with("https://")
            || (get("DOCKER_TLS_VERIFY").is_some() && (host.starts_with("tcp://") || host.starts_with("http://")));
        let tls_vars = ["DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"]
            .into_iter()
            .filter(|name| get(name).is_some())
            .collect();
        let tls_dir = tls.then(|| {
            get("DOCKER_CERT_PATH")
                .or_else(|| get("DOCKER_CONFIG"))
                .map(PathBuf::from)
                .or_else(|| get("HOME").map(|h| Path::new(&h).join(".docker")))
                .unwrap_or_else(|| PathBuf::from(".docker"))
        });
        Self {
            host,
            host_from_env,
            tls_dir,
            tls_vars,
        }
    }

    /// A unix socket path, when the host is one.
    pub fn socket_path(&self) -> Option<&Path> {
        self.host.strip_prefix("unix://").map(Path::new)
    }

    /// A short description for messages: `tcp://127.0.0.1:2376 (TLS, certificates in /certs/client)`.
    pub fn describe(&self) -> String {
        match &self.tls_dir {
            Some(dir) => format!("{} (TLS, certificates in {})", self.host, dir.display()),
            None => self.host.clone(),
        }
    }

    /// A client for this endpoint (no request is made yet).
    pub fn client(&self) -> Result<Docker, bollard::errors::Error> {
        // bollard's TLS needs a process-wide rustls provider; "already installed" is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = self.host.as_str();
        if let Some(dir) = &self.tls_dir {
            return Docker::connect_with_ssl(
                host,
                &dir.join("key.pem"),
                &dir.join("cert.pem"),
                &dir.join("ca.pem"),
                REQUEST_TIMEOUT,
                API_DEFAULT_VERSION,
            );
        }
        if host.starts_with("unix://") {
            Docker::connect_with_unix(host, REQUEST_TIMEOUT, API_DEFAULT_VERSION)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(host, REQUEST_TIMEOUT, API_DEFAULT_VERSION)
        } else {
            Err(bollard::errors::Error::UnsupportedURISchemeError { uri: host.to_string() })
        }
    }

    /// Problems with the TLS files (missing or unreadable), one message each; empty when
    /// TLS is off or all three are readable.
    pub fn tls_problems(&self) -> Vec<String> {
        let Some(dir) = &self.tls_dir else {
            return Vec::new();
        };
        TLS_FILES
            .iter()
            .filter_map(|f| {
                let path = dir.join(f);
                match std::fs::File::open(&path) {
                    Ok(_) => None,
                    Err(e) => Some(format!("`{}`: {e}", path.display())),
                }
            })
            .collect()
    }

    /// What to try when connecting failed, without knowing how (`pace doctor` before it
    /// connects).
    pub fn hint(&self) -> String {
        self.hint_for_cause(self.cause_of_text(""))
    }

    /// What to try after `err`: the hint of its [`Cause`].
    pub fn hint_for(&self, err: &bollard::errors::Error) -> String {
        self.hint_for_cause(self.cause(err))
    }

    /// Why connecting failed with `err`.
    pub fn cause(&self, err: &bollard::errors::Error) -> Cause {
        if matches!(err, bollard::errors::Error::CertPathError { .. }) && !self.tls_problems().is_empty() {
            return Cause::NoCertificates;
        }
        self.cause_of_text(&format!("{} {err:?}", super::error_chain(err)))
    }

    /// The cause from the variables and the error's text (bollard wraps hyper, rustls and
    /// the resolver; their messages are the only common ground).
    fn cause_of_text(&self, error: &str) -> Cause {
        let text = error.to_ascii_lowercase();
        let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
        if let Some(path) = self.socket_path() {
            if !self.tls_vars.is_empty() && !path.exists() {
                return Cause::TlsWithoutService;
            }
            return if path.exists() { Cause::Other } else { Cause::NoSocket };
        }
        if self.tls_dir.is_some() && !self.tls_problems().is_empty() {
            return Cause::NoCertificates;
        }
        if has(&[
            "dns error",
            "failed to lookup address",
            "name or service not known",
            "no address associated",
        ]) {
            Cause::NoSuchHost
        } else if has(&[
            "certificate",
            "unknownissuer",
            "unknown ca",
            "badcertificate",
            "decrypt error",
        ]) {
            Cause::Certificate
        } else if has(&["connection refused"]) {
            Cause::Refused
        } else if self.tls_dir.is_none() && self.host.ends_with(":2376") && !error.is_empty() {
            Cause::PlainToTlsPort
        } else if has(&[
            "connection reset",
            "connection closed",
            "unexpected eof",
            "unexpectedeof",
            "handshake eof",
            "early eof",
            "incompletemessage",
            "broken pipe",
            "peer closed",
        ]) {
            Cause::ClosedAtOnce
        } else {
            Cause::Other
        }
    }

    /// The hint for `cause`: what to change, naming the runner setting or the variable.
    pub fn hint_for_cause(&self, cause: Cause) -> String {
        let host = &self.host;
        let dir = self
            .tls_dir
            .as_ref()
            .map_or_else(|| "(unset)".to_string(), |d| d.display().to_string());
        match cause {
            Cause::TlsWithoutService => {
                let names = self.tls_vars.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(" and ");
                format!(
                "{} {} set, but `DOCKER_HOST` is not a `tcp://` address: these variables are for a Docker-in-Docker service. \
                 Add the service to the job (`services: [docker:27-dind]`) with `DOCKER_HOST: tcp://docker:2376`; \
                 or, for socket binding, remove {} and mount the socket ({SOCKET_VOLUME})",
                names,
                if self.tls_vars.len() == 1 { "is" } else { "are" },
                names,
            )
            }
            Cause::NoSocket => {
                let path = self.socket_path().map(|p| p.display().to_string()).unwrap_or_default();
                format!(
                    "is the Docker daemon running? there is no socket at `{path}`: start it, or set `DOCKER_HOST` (for TLS also \
                     `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`; Podman: `unix:///run/user/$UID/podman/podman.sock`). \
                     In CI with socket binding the runner must mount it: {SOCKET_VOLUME}"
                )
            }
            Cause::NoCertificates => format!(
                "the client certificates are not in `DOCKER_CERT_PATH` ({dir}): the DinD service writes them to \
                 `$DOCKER_TLS_CERTDIR/client`, which the job sees only through a shared volume: add {CERTS_VOLUME}, \
                 keep `DOCKER_TLS_CERTDIR: \"/certs\"` and set `DOCKER_CERT_PATH: /certs/client`"
            ),
            Cause::NoSuchHost => format!(
                "the host of `DOCKER_HOST` ({host}) does not resolve: the job has no service of that name. Add \
                 `services: [docker:27-dind]` to the job (its host is `docker`); or, for socket binding, remove \
                 `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` and mount the socket ({SOCKET_VOLUME})"
            ),
            Cause::Refused => format!(
                "is the Docker daemon running? nothing listens at `{host}`: start it or correct `DOCKER_HOST`. A DinD service whose daemon \
                 exits at once (see the service's log) needs {PRIVILEGED}"
            ),
            Cause::ClosedAtOnce => format!(
                "something at `{host}` accepts connections and closes them without answering: a Docker-in-Docker \
                 service whose daemon cannot start does this because the runner is not privileged: set {PRIVILEGED}"
            ),
            Cause::Certificate => format!(
                "the TLS handshake failed on a certificate: `DOCKER_CERT_PATH` ({dir}) must hold ca.pem, cert.pem and \
                 key.pem issued by this daemon's CA, and the server certificate must name the host of `DOCKER_HOST`. \
                 With GitLab DinD, the job's certificates come from its own service through {CERTS_VOLUME}; \
                 a stale `/certs/client` from another daemon fails like this"
            ),
            Cause::PlainToTlsPort => format!(
                "`{host}` is Docker's TLS port: set `DOCKER_TLS_VERIFY: \"1\"` and `DOCKER_CERT_PATH: /certs/client` \
                 (with {CERTS_VOLUME}); or serve plain TCP on 2375 with `DOCKER_TLS_CERTDIR: \"\"` on the service"
            ),
            Cause::Other => match &self.tls_dir {
                Some(_) => format!(
                    "check that `DOCKER_CERT_PATH` ({dir}) holds ca.pem, cert.pem and key.pem issued by the daemon's CA, \
                     and that the server certificate names the host of `DOCKER_HOST`; or run `pace doctor`"
                ),
                None => "is the Docker daemon running? set `DOCKER_HOST` (and `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH` for TLS), \
                         or run `pace doctor`"
                    .to_string(),
            },
        }
    }
}

/// Whether a connection error will not go away by waiting (certificates, a missing socket,
/// a bad address): `connect` then fails at once instead of waiting for a starting daemon.
pub(crate) fn is_permanent(err: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    match err {
        E::SocketNotFoundError(_)
        | E::UnsupportedURISchemeError { .. }
        | E::CertPathError { .. }
        | E::CertParseError { .. }
        | E::NoNativeCertsError { .. }
        | E::LoadNativeCertsErrors { .. } => true,
        other => {
            let text = format!("{other} {other:?}").to_ascii_lowercase();
            // A service's name resolves as soon as the job starts (the service may still be
            // starting): a name that does not resolve will not.
            [
                "certificate",
                "unknownissuer",
                "handshake",
                "dns error",
                "failed to lookup address",
            ]
            .iter()
            .any(|k| text.contains(k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Endpoint {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Endpoint::from_vars(|n| map.get(n).cloned())
    }

    #[test]
    fn defaults_to_the_local_socket() {
        let e = vars(&[]);
        assert_eq!(e.host, DEFAULT_HOST);
        assert_eq!(e.tls_dir, None);
        assert_eq!(e.socket_path(), Some(Path::new("/var/run/docker.sock")));
    }

    #[test]
    fn tls_only_for_tcp_with_verify_or_https() {
        let gitlab = vars(&[
            ("DOCKER_HOST", "tcp://docker:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", "/certs/client"),
        ]);
        assert_eq!(gitlab.tls_dir, Some(PathBuf::from("/certs/client")));
        assert_eq!(
            gitlab.describe(),
            "tcp://docker:2376 (TLS, certificates in /certs/client)"
        );
        let plain = vars(&[("DOCKER_HOST", "tcp://localhost:2375")]);
        assert_eq!(plain.tls_dir, None);
        let unix = vars(&[("DOCKER_HOST", "unix:///x.sock"), ("DOCKER_TLS_VERIFY", "1")]);
        assert_eq!(unix.tls_dir, None);
        let home = vars(&[("DOCKER_HOST", "https://h:2376"), ("HOME", "/home/u")]);
        assert_eq!(home.tls_dir, Some(PathBuf::from("/home/u/.docker")));
    }

    #[test]
    fn hints_name_the_settings() {
        let tls = vars(&[
            ("DOCKER_HOST", "tcp://127.0.0.1:1"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", "/nowhere"),
        ]);
        assert!(tls.hint().contains("DOCKER_CERT_PATH") && tls.hint().contains("/nowhere"));
        assert_eq!(tls.tls_problems().len(), 3);
        let sock = vars(&[("DOCKER_HOST", "unix:///nonexistent.sock")]);
        assert!(sock.hint().contains("/nonexistent.sock"), "{}", sock.hint());
        assert!(matches!(
            sock.client(),
            Err(bollard::errors::Error::SocketNotFoundError(_))
        ));
        assert!(vars(&[("DOCKER_HOST", "ftp://x")]).client().is_err());
    }

    #[test]
    fn each_failure_has_its_own_cause_and_hint() {
        let dind = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("DOCKER_HOST", "tcp://docker:2376"), ("DOCKER_TLS_VERIFY", "1")];
            pairs.extend_from_slice(extra);
            vars(&pairs)
        };
        let certs = tempfile::tempdir().unwrap();
        for f in TLS_FILES {
            std::fs::write(certs.path().join(f), "x").unwrap();
        }
        let certs_dir = certs.path().display().to_string();
        let with_certs = dind(&[("DOCKER_CERT_PATH", &certs_dir)]);

        // No `/certs/client` volume: the files are not there.
        let no_volume = dind(&[("DOCKER_CERT_PATH", "/nonexistent/certs/client")]);
        assert_eq!(no_volume.cause_of_text("anything"), Cause::NoCertificates);
        assert!(
            no_volume.hint().contains(r#"volumes = ["/certs/client"]"#),
            "{}",
            no_volume.hint()
        );

        // Not privileged: the service accepts and closes.
        let closed = with_certs.cause_of_text("error trying to connect: tls handshake eof");
        assert_eq!(closed, Cause::ClosedAtOnce);
        assert!(with_certs.hint_for_cause(closed).contains("privileged = true"));
        assert_eq!(
            with_certs.cause_of_text("hyper: connection closed before message completed"),
            Cause::ClosedAtOnce
        );

        // Another daemon's CA.
        let ca = with_certs.cause_of_text("invalid peer certificate: UnknownIssuer");
        assert_eq!(ca, Cause::Certificate);
        assert!(with_certs.hint_for_cause(ca).contains(&certs_dir));

        // TLS variables, no service: the name does not resolve, or no `tcp://` host at all.
        let no_host = with_certs.cause_of_text("dns error: failed to lookup address information");
        assert_eq!(no_host, Cause::NoSuchHost);
        assert!(
            with_certs
                .hint_for_cause(no_host)
                .contains("services: [docker:27-dind]")
        );
        let unix_tls = vars(&[
            ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ("DOCKER_TLS_VERIFY", "1"),
        ]);
        assert_eq!(unix_tls.cause_of_text(""), Cause::TlsWithoutService);
        assert!(unix_tls.hint().contains("`DOCKER_TLS_VERIFY`") && unix_tls.hint().contains("tcp://docker:2376"));

        // Socket binding without the socket.
        let no_socket = vars(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
        assert_eq!(no_socket.cause_of_text(""), Cause::NoSocket);
        assert!(no_socket.hint().contains("/var/run/docker.sock:/var/run/docker.sock"));

        // Nothing listens; plain HTTP to the TLS port.
        let plain = vars(&[("DOCKER_HOST", "tcp://docker:2376")]);
        assert_eq!(plain.cause_of_text("Connection refused (os error 111)"), Cause::Refused);
        assert_eq!(
            plain.cause_of_text("Client sent an HTTP request to an HTTPS server."),
            Cause::PlainToTlsPort
        );
        assert!(
            plain
                .hint_for_cause(Cause::PlainToTlsPort)
                .contains("DOCKER_TLS_VERIFY")
        );
    }
}
