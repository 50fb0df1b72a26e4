//! PLACEHOLDER — replaced by the LLM layer implementation.
use std::path::PathBuf;

use serde::Serialize;

use super::{ChatRequest, ChatResponse, LlmError};
use crate::config::settings::{Budget, LlmSettings};
use crate::env::Env;
use crate::redact::Redactor;

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentUsage {
    pub agent: String,
    pub calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
}

/// Shared by all agents of a day (`&self` methods, internally synchronised).
pub struct Client {}

impl Client {
    /// Builds the provider named by `settings.provider`; the transcript of this day is
    /// appended to `transcript` (redacted). For `replay`, `cassette` is read instead of
    /// calling a server.
    pub fn from_settings(
        _settings: &LlmSettings,
        _budget: &Budget,
        _env: &Env,
        _transcript: PathBuf,
        _redactor: Redactor,
    ) -> Result<Self, LlmError> {
        Ok(Self {})
    }
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        Err(LlmError::Budget(request.agent))
    }
    /// Usage per agent, in the order agents first called.
    pub fn usage_by_agent(&self) -> Vec<AgentUsage> {
        Vec::new()
    }
    pub fn totals(&self) -> AgentUsage {
        AgentUsage::default()
    }
}
