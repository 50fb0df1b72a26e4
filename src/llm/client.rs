//! The client every agent calls: provider selection, budget, retries, per-agent usage and
//! cost, and the transcript. Shared by all agents of a day (`&self`, internally
//! synchronised; GATE, SENTINEL and CONDUIT call concurrently).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use super::anthropic::Anthropic;
use super::cost::Pricing;
use super::openai::OpenAi;
use super::replay::Replay;
use super::transcript::{Entry, TranscriptWriter};
use super::transport;
use super::{ChatRequest, ChatResponse, LlmError, Provider, StopReason, Usage};
use crate::config::settings::{Budget, LlmSettings, Provider as ProviderKind};
use crate::env::Env;
use crate::net::retry::RetryPolicy;
use crate::redact::Redactor;

/// Continuations of a paused turn before the paused answer is handed to the agent as is.
pub const MAX_PAUSE_CONTINUATIONS: u32 = 3;

#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentUsage {
    pub agent: String,
    /// Calls sent to the provider (failed ones included).
    pub calls: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
}

impl AgentUsage {
    fn add(&mut self, usage: &Usage, cost_usd: f64) {
        self.input_tokens += usage.input_tokens;
        self.output_tokens += usage.output_tokens;
        self.cache_read_tokens += usage.cache_read_tokens;
        self.cache_write_tokens += usage.cache_write_tokens;
        self.cost_usd += cost_usd;
    }

    /// All tokens, cache reads and writes included.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens
    }
}

/// Shared by all agents of a day (`&self` methods, internally synchronised).
pub struct Client {
    provider: Box<dyn Provider>,
    retry: RetryPolicy,
    budget: Budget,
    pricing: Pricing,
    transcript: TranscriptWriter,
    /// Per agent, in first-call order.
    accounts: Mutex<Vec<AgentUsage>>,
    /// `llm.api_key_env`, named by a refused key's hint.
    key_env: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.provider.name())
            .field("retry", &self.retry)
            .field("budget", &self.budget)
            .field("transcript", &self.transcript.path())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the provider named by `settings.provider`; the transcript of this day is
    /// appended to `transcript` (redacted). For `replay`, `cassette` is read instead of
    /// calling a server.
    ///
    /// The key comes from `env.get(settings.api_key_env)`: required for `anthropic`, and
    /// for `openai` unless `base_url` is set (a local server; no `Authorization` is sent).
    pub fn from_settings(
        settings: &LlmSettings,
        budget: &Budget,
        env: &Env,
        transcript: PathBuf,
        redactor: Redactor,
    ) -> Result<Self, LlmError> {
        crate::net::client::install_crypto_provider();
        let base_url = settings.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        let key = env.get(&settings.api_key_env).map(String::from);
        let provider: Box<dyn Provider> = match settings.provider {
            ProviderKind::Anthropic => {
                let key = key.ok_or_else(|| LlmError::MissingKey(settings.api_key_env.clone()))?;
                Box::new(Anthropic::new(
                    transport::http_client(settings.request_timeout)?,
                    base_url,
                    key,
                ))
            }
            ProviderKind::OpenAi => {
                if key.is_none() && base_url.is_none() {
                    return Err(LlmError::MissingKey(settings.api_key_env.clone()));
                }
                Box::new(OpenAi::new(
                    transport::http_client(settings.request_timeout)?,
                    base_url,
                    key,
                ))
            }
            ProviderKind::Replay => {
                let path = settings.cassette.as_ref().ok_or_else(|| LlmError::Cassette {
                    path: "(none)".into(),
                    message: "`llm.provider: replay` needs `llm.cassette` (a recorded transcript.jsonl)".into(),
                })?;
                Box::new(Replay::from_path(path)?)
            }
        };
        let pricing = Pricing::new(settings.prices.clone());
        let mut client = Self::from_provider(
            provider,
            RetryPolicy::new(settings.max_retries),
            budget,
            pricing,
            transcript,
            redactor,
        )?;
        client.key_env = Some(settings.api_key_env.clone());
        Ok(client)
    }

    /// A client around any provider (tests, fakes for other modules).
    pub fn from_provider(
        provider: Box<dyn Provider>,
        retry: RetryPolicy,
        budget: &Budget,
        pricing: Pricing,
        transcript: PathBuf,
        redactor: Redactor,
    ) -> Result<Self, LlmError> {
        Ok(Self {
            provider,
            retry,
            budget: budget.clone(),
            pricing,
            transcript: TranscriptWriter::open(transcript, redactor)?,
            accounts: Mutex::new(Vec::new()),
            key_env: None,
        })
    }

    /// Replaces the retry policy (tests use [`RetryPolicy::fast`]).
    #[must_use]
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    /// One call: budget check, attempts with retries, accounting, one transcript line.
    /// A turn the provider paused (`pause_turn`) is continued as the API documents: the
    /// paused content goes back as the last assistant message, with no extra user turn,
    /// and the parts are joined into one answer (at most [`MAX_PAUSE_CONTINUATIONS`]).
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut answer = self.chat_once(&request).await?;
        let mut continued = 0;
        while answer.stop_reason == StopReason::PauseTurn && continued < MAX_PAUSE_CONTINUATIONS {
            continued += 1;
            let mut next = request.clone();
            // An empty paused turn cannot go back (the API refuses empty content): ask again.
            if !answer.is_empty() {
                next.messages.push(answer.to_assistant_message());
            }
            let more = self.chat_once(&next).await?;
            answer.content.extend(more.content);
            answer.usage.add(&more.usage);
            answer.stop_reason = more.stop_reason;
            answer.refusal = more.refusal;
            answer.cost_usd = Some(answer.cost_usd.unwrap_or_default() + more.cost_usd.unwrap_or_default());
        }
        Ok(answer)
    }

    async fn chat_once(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.check_budget()?;
        let call = self.start_call(&request.agent);
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let started = Instant::now();
        let result = transport::with_retries(&self.retry, self.provider.name(), || self.provider.send(request)).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut entry = Entry {
            seq: 0,
            agent: request.agent.clone(),
            call,
            at: Some(at),
            duration_ms: Some(duration_ms),
            request: None,
            response: None,
            error: None,
        };
        match result {
            Ok(mut response) => {
                // A replayed answer carries the cost recorded when it was made.
                let cost = match response.cost_usd {
                    Some(recorded) => recorded,
                    None => self.price_call(&request.model, &response),
                };
                response.cost_usd = Some(cost);
                self.account(&request.agent, &response.usage, cost);
                tracing::info!(
                    agent = %request.agent,
                    call,
                    input_tokens = response.usage.input_tokens,
                    output_tokens = response.usage.output_tokens,
                    cost_usd = cost,
                    duration_ms,
                    "LLM call"
                );
                entry.request = Some(request.clone());
                entry.response = Some(response.clone());
                self.transcript.append(entry)?;
                Ok(response)
            }
            Err(mut err) => {
                if let LlmError::Auth { key_env, .. } = &mut err {
                    key_env.clone_from(&self.key_env);
                }
                entry.error = Some(err.to_string());
                self.transcript.append(entry)?;
                Err(err)
            }
        }
    }

    /// A call's cost: at the price of the model that answered, else of the model asked
    /// for (a proxy or a cassette may name it differently), else $0 with a note, once.
    fn price_call(&self, requested: &str, response: &ChatResponse) -> f64 {
        let model = [response.model.as_str(), requested]
            .into_iter()
            .find(|m| self.pricing.price(m).is_some());
        match model {
            Some(model) => self.pricing.cost_usd(model, &response.usage),
            None => {
                if let Some(note) = self.pricing.unpriced_note(&response.model) {
                    tracing::warn!("{note}");
                }
                0.0
            }
        }
    }

    /// Usage per agent, in the order agents first called.
    pub fn usage_by_agent(&self) -> Vec<AgentUsage> {
        self.lock().clone()
    }

    /// The sum over all agents (`agent` is `total`).
    pub fn totals(&self) -> AgentUsage {
        let mut total = AgentUsage {
            agent: "total".into(),
            ..AgentUsage::default()
        };
        for a in self.lock().iter() {
            total.calls += a.calls;
            total.input_tokens += a.input_tokens;
            total.output_tokens += a.output_tokens;
            total.cache_read_tokens += a.cache_read_tokens;
            total.cache_write_tokens += a.cache_write_tokens;
            total.cost_usd += a.cost_usd;
        }
        total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AgentUsage>> {
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops before a call once the budget is spent. Concurrent calls that pass together
    /// may overshoot by their own cost.
    fn check_budget(&self) -> Result<(), LlmError> {
        let total = self.totals();
        if let Some(max) = self.budget.max_usd
            && total.cost_usd >= max
        {
            return Err(LlmError::Budget(format!(
                "spent ${:.4} of ${max:.4} (`budget.max_usd`)",
                total.cost_usd
            )));
        }
        if let Some(max) = self.budget.max_tokens
            && total.total_tokens() >= max
        {
            return Err(LlmError::Budget(format!(
                "used {} of {max} tokens (`budget.max_tokens`)",
                total.total_tokens()
            )));
        }
        Ok(())
    }

    /// Counts a call for `agent`; returns its number (from 1).
    fn start_call(&self, agent: &str) -> u32 {
        let mut accounts = self.lock();
        let index = match accounts.iter().position(|a| a.agent == agent) {
            Some(i) => i,
            None => {
                accounts.push(AgentUsage {
                    agent: agent.to_string(),
                    ..AgentUsage::default()
                });
                accounts.len() - 1
            }
        };
        accounts[index].calls += 1;
        accounts[index].calls
    }

    fn account(&self, agent: &str, usage: &Usage, cost_usd: f64) {
        if let Some(a) = self.lock().iter_mut().find(|a| a.agent == agent) {
            a.add(usage, cost_usd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn client_and_its_calls_can_cross_threads() {
        let dir = tempfile::tempdir().unwrap();
        let cassette = dir.path().join("cassette.jsonl");
        std::fs::write(&cassette, "").unwrap();
        let mut settings = crate::config::settings::Settings::defaults(dir.path().to_path_buf()).llm;
        settings.provider = ProviderKind::Replay;
        settings.cassette = Some(cassette);
        let client = Client::from_settings(
            &settings,
            &Budget::default(),
            &Env::default(),
            dir.path().join("t.jsonl"),
            Redactor::default(),
        )
        .unwrap();
        assert_send_sync(&client);
        let request = ChatRequest {
            agent: "GATE".into(),
            model: "m".into(),
            system: String::new(),
            messages: Vec::new(),
            tools: Vec::new(),
            max_tokens: 1,
            response_schema: None,
        };
        assert_send(client.chat(request));
    }
}
