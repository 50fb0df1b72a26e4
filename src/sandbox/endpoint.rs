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
}

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

    /// What to try when connecting failed.
    pub fn hint(&self) -> String {
        match (&self.tls_dir, self.socket_path()) {
            (Some(dir), _) => format!(
                "check that `DOCKER_CERT_PATH` ({}) holds ca.pem, cert.pem and key.pem issued by the daemon's CA, \
                 and that the server certificate names the host of `DOCKER_HOST`; or run `pace doctor`",
                dir.display()
            ),
            (None, Some(path)) if !path.exists() => format!(
                "is the Docker daemon running? there is no socket at `{}`: start it, or set `DOCKER_HOST` (for TLS also `DOCKER_TLS_VERIFY`, \
                 `DOCKER_CERT_PATH`; Podman: `unix:///run/user/$UID/podman/podman.sock`)",
                path.display()
            ),
            _ => "is the Docker daemon running? set `DOCKER_HOST` (and `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH` for TLS), \
                  or run `pace doctor`"
                .to_string(),
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
            ["certificate", "unknownissuer", "handshake"]
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
}
