//! The one way pace builds an HTTP client: rustls with ring, the system's proxy settings
//! (reqwest's `system-proxy`), a 10 s connect timeout and pace's user agent. Callers add
//! the timeouts and proxy their calls need through [`Options`].

use std::time::Duration;

/// Connecting should never take long; a slow answer is covered by the caller's timeouts.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const USER_AGENT: &str = concat!("pace/", env!("CARGO_PKG_VERSION"));

/// What differs between pace's clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Reset on every read, so a long stream works and a stalled one fails (LLM calls).
    pub read_timeout: Option<Duration>,
    /// For the whole exchange (platform API calls, whose answers are small).
    pub total_timeout: Option<Duration>,
    /// Every request through this HTTP proxy (e.g. the Code Insights proxy inside
    /// Bitbucket Pipelines) instead of the system's proxy settings.
    pub proxy: Option<&'a str>,
    /// Never reuse a connection (a fresh one per request). For servers that close the
    /// connection after an answer while advertising keep-alive (llama.cpp's server after
    /// each streamed answer): reusing the dead one fails with "connection closed before
    /// message completed".
    pub fresh_connections: bool,
}

/// Installs ring as the process-wide rustls provider; a provider already installed
/// (by `main` or another test) is kept.
pub fn install_crypto_provider() {
    // `Err` only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client with pace's defaults and `options`. The error is reqwest's (a bad proxy URL,
/// no TLS backend): the caller wraps it with what it was building the client for.
pub fn build(options: &Options<'_>) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(USER_AGENT);
    if let Some(timeout) = options.read_timeout {
        builder = builder.read_timeout(timeout);
    }
    if let Some(timeout) = options.total_timeout {
        builder = builder.timeout(timeout);
    }
    if options.fresh_connections {
        builder = builder.pool_max_idle_per_host(0);
    }
    if let Some(proxy) = options.proxy {
        builder = builder.proxy(reqwest::Proxy::all(proxy)?);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_proxy_is_an_error_not_a_panic() {
        let err = build(&Options {
            proxy: Some("http://[::1"),
            ..Options::default()
        })
        .unwrap_err();
        assert!(err.is_builder(), "{err}");
        assert!(build(&Options::default()).is_ok());
    }
}
