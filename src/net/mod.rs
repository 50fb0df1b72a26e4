//! The HTTP layer the LLM providers and the platforms share: how a client is built
//! ([`client`]), when and how long a failed call is retried ([`retry`]), and the encodings
//! requests need ([`codec`]: base64 for Basic credentials, percent-encoding for URLs).
//!
//! What a status or a body *means* stays with the caller (`llm::transport`,
//! `platform::http`): this module knows HTTP, not the services.

pub mod client;
pub mod codec;
pub mod retry;
