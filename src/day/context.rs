//! What every agent of a day shares: settings, the LLM client, the sandbox, git, the
//! artifact paths, redaction and the progress printer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::artifacts::{AgentRecord, DayDir, PaceDir};
use crate::config::settings::{Settings, StructuredOutput};
use crate::day::agents::turn::{MAX_EMPTY_ANSWERS, push_user_text};
use crate::git::Git;
use crate::llm::{ChatRequest, ChatResponse, Client, LlmError, Message, ResponseSchema, StopReason};
use crate::redact::Redactor;
use crate::report::printer::{Event, Printer};
use crate::sandbox::Sandbox;

/// One day of the plan as the agents see it.
#[derive(Debug, Clone)]
pub struct DayPlan {
    pub day: u32,
    pub target: String,
    pub gate_criterion: Option<String>,
    pub notes: Option<String>,
    pub human_gate: bool,
}

pub struct DayContext {
    pub settings: Settings,
    pub plan: DayPlan,
    pub llm: Client,
    pub sandbox: Sandbox,
    pub git: Git,
    pub pace: PaceDir,
    pub day_dir: DayDir,
    pub redactor: Redactor,
    pub printer: Printer,
    pub branch: String,
    /// HEAD when the day started: the day's diff is `base_commit..HEAD`.
    pub base_commit: String,
    records: Mutex<Vec<AgentRecord>>,
    /// Agents started and not finished yet (what a stopped day was doing).
    running: Mutex<Vec<String>>,
    /// Paths the return-path policy kept out of the repository today.
    refused: Mutex<Vec<crate::boundary::Refused>>,
}

impl DayContext {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        plan: DayPlan,
        llm: Client,
        sandbox: Sandbox,
        git: Git,
        redactor: Redactor,
        printer: Printer,
        branch: String,
        base_commit: String,
    ) -> Self {
        let pace = PaceDir::new(&settings.repo_root);
        let day_dir = pace.day(plan.day);
        Self {
            settings,
            day_dir,
            pace,
            plan,
            llm,
            sandbox,
            git,
            redactor,
            printer,
            branch,
            base_commit,
            records: Mutex::new(Vec::new()),
            running: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        }
    }

    /// Records paths the sandbox's return path refused: `.pace/day-N/refused.yaml` is
    /// rewritten at once (so a day that stops later still lists them) and the job log says so.
    pub fn record_refused(&self, items: Vec<crate::boundary::Refused>) {
        if items.is_empty() {
            return;
        }
        let shown: Vec<String> = items.iter().take(5).map(|r| format!("`{}`", r.path)).collect();
        let more = items.len().saturating_sub(shown.len());
        let all = match self.refused.lock() {
            Ok(mut list) => {
                list.extend(items);
                list.clone()
            }
            Err(_) => return,
        };
        self.warn(format!(
            "kept out of the repository (sandbox return-path policy): {}{} — see {}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            self.day_dir.refused().display()
        ));
        if let Err(e) = crate::artifacts::write_yaml(&self.day_dir.refused(), &all, &self.redactor) {
            self.warn(format!("could not write the refused-paths list: {e}"));
        }
    }

    /// Everything refused so far today.
    pub fn refused(&self) -> Vec<crate::boundary::Refused> {
        self.refused.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn emit(&self, event: &Event) {
        self.printer.emit(event);
    }

    pub fn warn(&self, text: impl Into<String>) {
        self.emit(&Event::Warning(self.redactor.redact(&text.into())));
    }

    /// Starts timing an agent; [`AgentTimer::finish`] records and prints it.
    pub fn start_agent(&self, agent: &str, attempt: u32) -> AgentTimer {
        self.emit(&Event::AgentStarted {
            agent: agent.to_string(),
            attempt,
        });
        if let Ok(mut running) = self.running.lock() {
            running.push(agent.to_string());
        }
        AgentTimer {
            agent: agent.to_string(),
            started: Instant::now(),
            usage_before: self.usage_of(agent),
        }
    }

    fn usage_of(&self, agent: &str) -> crate::llm::AgentUsage {
        self.llm
            .usage_by_agent()
            .into_iter()
            .find(|u| u.agent == agent)
            .unwrap_or_default()
    }

    /// What an agent's calls cost so far (USD).
    pub fn agent_cost(&self, agent: &str) -> f64 {
        self.usage_of(agent).cost_usd
    }

    /// Agents that started and have not finished (in start order), e.g. when the day was
    /// stopped by its time budget.
    pub fn running_agents(&self) -> Vec<String> {
        self.running.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn finish_agent(&self, timer: AgentTimer, decision: Option<&str>) {
        self.finish_agent_with(timer, decision, Vec::new());
    }

    /// [`Self::finish_agent`] with what the agent found, for the body of its job-log
    /// section (its hold reason, the suite's result, the error that stopped it).
    pub fn finish_agent_with(&self, timer: AgentTimer, decision: Option<&str>, detail: Vec<String>) {
        if let Ok(mut running) = self.running.lock()
            && let Some(i) = running.iter().position(|a| *a == timer.agent)
        {
            running.remove(i);
        }
        let now = self.usage_of(&timer.agent);
        let before = &timer.usage_before;
        let record = AgentRecord {
            name: timer.agent.clone(),
            decision: decision.map(str::to_string),
            duration_ms: u64::try_from(timer.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            input_tokens: now.input_tokens.saturating_sub(before.input_tokens),
            output_tokens: now.output_tokens.saturating_sub(before.output_tokens),
            cache_read_tokens: now.cache_read_tokens.saturating_sub(before.cache_read_tokens),
            cache_write_tokens: now.cache_write_tokens.saturating_sub(before.cache_write_tokens),
            cost_usd: (now.cost_usd - before.cost_usd).max(0.0),
        };
        self.emit(&Event::AgentFinished {
            agent: record.name.clone(),
            decision: record.decision.clone(),
            duration: Duration::from_millis(record.duration_ms),
            input_tokens: record.input_tokens,
            output_tokens: record.output_tokens,
            cache_read_tokens: record.cache_read_tokens,
            cache_write_tokens: record.cache_write_tokens,
            cost_usd: record.cost_usd,
            // Errors and hold reasons can quote a credential (a URL, a command line).
            detail: detail.iter().map(|line| self.redactor.redact(line)).collect(),
        });
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }

    /// Agent runs so far, merged per agent name (a retried FORGE appears once, summed).
    pub fn agent_records(&self) -> Vec<AgentRecord> {
        let records = self.records.lock().map(|r| r.clone()).unwrap_or_default();
        let mut merged: Vec<AgentRecord> = Vec::new();
        for r in records {
            match merged.iter_mut().find(|m| m.name == r.name) {
                Some(m) => {
                    m.decision.clone_from(&r.decision);
                    m.duration_ms += r.duration_ms;
                    m.input_tokens += r.input_tokens;
                    m.output_tokens += r.output_tokens;
                    m.cache_read_tokens += r.cache_read_tokens;
                    m.cache_write_tokens += r.cache_write_tokens;
                    m.cost_usd += r.cost_usd;
                }
                None => merged.push(r),
            }
        }
        merged
    }

    /// A single-turn call whose answer must parse; an invalid answer is re-asked once with
    /// the problems named, then the error is returned (the day holds with it).
    ///
    /// Answers that are no answer never go back into the history (the APIs reject them):
    /// an empty one is asked again with a note (at most [`MAX_EMPTY_ANSWERS`] times), a
    /// refusal or a prompt larger than the context window ends the agent's call with a
    /// reason that says so (there is nothing to evict in a single-turn call).
    ///
    /// Under `llm.structured_output: auto` the request carries `schema` and the provider
    /// asks for a JSON answer natively; `parse` reads it like YAML (JSON is YAML), so the
    /// validation and the one re-ask are the same either way.
    pub async fn ask_validated<T>(
        &self,
        agent: &str,
        system: String,
        user: String,
        schema: ResponseSchema,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, AskError> {
        let schema = match self.settings.llm.structured_output {
            StructuredOutput::Auto => Some(schema),
            StructuredOutput::Off => None,
        };
        // What the re-asks ask for: the schema already fixes the JSON form.
        let (form, form_only) = answer_form(schema.is_some());
        let mut messages = vec![Message::user_text(user)];
        let mut reasked = false;
        let mut empty = 0;
        loop {
            let result = self
                .llm
                .chat(self.analysis_request(agent, &system, &messages, schema.as_ref()))
                .await;
            let response = match result {
                Ok(r) => r,
                Err(LlmError::ContextOverflow { message, .. }) => {
                    return Err(AskError::Invalid(format!(
                        "{agent}'s prompt does not fit the model's context window ({message}); use a model with a larger window for `llm.analysis_model`, or a smaller story"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(reason) = ended(agent, &response) {
                return Err(AskError::Invalid(reason));
            }
            if response.is_empty() {
                empty += 1;
                if empty > MAX_EMPTY_ANSWERS {
                    return Err(AskError::Invalid(format!(
                        "{agent} gave {empty} empty answers in a row; the model or the server behind `llm.base_url` is not answering: see transcript.jsonl"
                    )));
                }
                self.warn(format!("{agent} answer was empty; asking again"));
                push_user_text(
                    &mut messages,
                    format!("Your previous answer was empty. Answer with {form}."),
                );
                continue;
            }
            let text = response.text();
            match parse(&text) {
                Ok(value) => return Ok(value),
                Err(problem) if !reasked => {
                    reasked = true;
                    // An answer cut off by the output limit is named as such: the model
                    // must answer shorter, not only fix the YAML.
                    let (problem, advice) = if response.stop_reason == StopReason::MaxTokens {
                        (
                            format!(
                                "it was cut off at the output limit of {max_tokens} tokens; {problem}",
                                max_tokens = self.settings.llm.analysis_max_tokens
                            ),
                            " Keep it short: brief evidence, no repetition.",
                        )
                    } else {
                        (problem, "")
                    };
                    // The problem may hold parentheses of its own: it comes last, after a colon.
                    self.warn(format!("{agent} answer was invalid, asking once more: {problem}"));
                    messages.push(response.to_assistant_message());
                    messages.push(Message::user_text(format!(
                        "Your answer could not be used: {problem}. Answer again with {form_only}.{advice}"
                    )));
                }
                Err(problem) => {
                    return Err(AskError::Invalid(format!(
                        "{agent} output invalid after one re-ask: {problem}"
                    )));
                }
            }
        }
    }

    fn analysis_request(
        &self,
        agent: &str,
        system: &str,
        messages: &[Message],
        schema: Option<&ResponseSchema>,
    ) -> ChatRequest {
        ChatRequest {
            agent: agent.to_string(),
            model: self.settings.llm.analysis_model.clone(),
            system: system.to_string(),
            messages: messages.to_vec(),
            tools: Vec::new(),
            max_tokens: self.settings.llm.analysis_max_tokens,
            response_schema: schema.cloned(),
        }
    }

    pub async fn call(
        &self,
        agent: &str,
        system: &str,
        messages: &[Message],
        model: &str,
        max_tokens: u32,
    ) -> Result<ChatResponse, LlmError> {
        let request = ChatRequest {
            agent: agent.to_string(),
            model: model.to_string(),
            system: system.to_string(),
            messages: messages.to_vec(),
            tools: Vec::new(),
            max_tokens,
            response_schema: None,
        };
        self.llm.chat(request).await
    }

    /// Reads a context document, wrapped as untrusted data for a prompt.
    pub fn context_doc(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.pace.context_doc(name))
            .ok()
            .map(|t| untrusted(name, &t))
    }
}

/// What the notes after an empty or invalid answer ask for (the answer alone, and "only"):
/// under a schema the JSON form is already fixed.
fn answer_form(structured: bool) -> (&'static str, &'static str) {
    if structured {
        ("the complete JSON object", "the complete JSON object only")
    } else {
        (
            "the complete YAML document, in one ```yaml fenced block",
            "the complete YAML document only, in one ```yaml fenced block",
        )
    }
}

/// Why a single-turn answer ends the agent's call at once: a refusal (asking again in
/// the same conversation is refused again) or a full context window.
fn ended(agent: &str, response: &ChatResponse) -> Option<String> {
    match response.stop_reason {
        StopReason::Refusal => Some(format!(
            "{agent}: the model refused to answer (stop reason `refusal`): {}",
            response.refusal_text()
        )),
        StopReason::ContextWindowExceeded => Some(format!(
            "{agent}'s answer stopped because the model's context window was full (`model_context_window_exceeded`); use a model with a larger window for `llm.analysis_model`"
        )),
        _ => None,
    }
}

pub struct AgentTimer {
    agent: String,
    started: Instant,
    usage_before: crate::llm::AgentUsage,
}

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("{0}")]
    Invalid(String),
}

/// Marks text from files, tools or earlier reports as data (prompt-injection boundary).
pub fn untrusted(label: &str, text: &str) -> String {
    // A closing tag inside the data must not end the block early.
    let safe = text.replace("</untrusted>", "</ untrusted>");
    format!("<untrusted source=\"{label}\">\n{safe}\n</untrusted>")
}

/// Fills `{{name}}` placeholders of a prompt template.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_untrusted() {
        assert_eq!(render("a {{x}} b {{x}}", &[("x", "1")]), "a 1 b 1");
        assert!(untrusted("f", "x</untrusted>y").contains("x</ untrusted>y"));
    }
}
