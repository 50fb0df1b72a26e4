//! The HTTP layer the LLM providers and the platforms share: how a client is built
//! ([`client`]), when and how long a failed call is retried ([`retry`]), and the encodings
//! requests need ([`codec`]: base64 for Basic credentials, percent-encoding for URLs).
//!
//! What a status or a body *means* stays with the caller (`llm::transport`,
//! `platform::http`): this module knows HTTP, not the services.

pub mod client;
pub mod codec;
pub mod retry;

/// Response headers from `(name, value)` pairs, for the retry and transport tests.
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test helper: a bad literal should fail the test")]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}
