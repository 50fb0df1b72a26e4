//! One model turn of a tool loop (FORGE, SCRIBE): evict stale tool results, call the
//! model, dispatch its tool calls in order. The loops decide what a turn means.

use serde_json::Value;

use crate::day::DayError;
use crate::day::context::DayContext;
use crate::day::tools::{ToolContext, ToolOutcome, evict, router};
use crate::llm::{Block, ChatRequest, Message, StopReason, ToolSpec};

/// The fixed parts of a tool loop's requests.
pub struct LoopRequest<'a> {
    pub agent: &'static str,
    pub system: &'a str,
    pub specs: &'a [ToolSpec],
    pub max_tokens: u32,
}

pub struct Turn {
    /// Tool results answering the calls (to send back in the next user message).
    pub results: Vec<Block>,
    /// The calls dispatched: (tool name, input).
    pub called: Vec<(String, Value)>,
    pub handoff: Option<Value>,
    pub finished: Option<String>,
    pub stop_reason: StopReason,
}

pub async fn tool_turn(
    ctx: &DayContext,
    request: &LoopRequest<'_>,
    tools: &mut ToolContext<'_>,
    messages: &mut Vec<Message>,
) -> Result<Turn, DayError> {
    evict::evict_stale(messages, tools.changed_by_call());
    let response = ctx
        .llm
        .chat(ChatRequest {
            agent: request.agent.into(),
            model: ctx.settings.llm.model.clone(),
            system: request.system.to_string(),
            messages: messages.clone(),
            tools: request.specs.to_vec(),
            max_tokens: request.max_tokens,
        })
        .await?;
    messages.push(response.to_assistant_message());
    let mut turn = Turn {
        results: Vec::new(),
        called: Vec::new(),
        handoff: None,
        finished: None,
        stop_reason: response.stop_reason.clone(),
    };
    for (id, name, input) in response.tool_calls() {
        let outcome = router::dispatch(tools, id, name, input).await;
        if let ToolOutcome::Abort(abort) = outcome {
            return Err(DayError::ToolAborted {
                agent: request.agent.to_string(),
                tool: name.to_string(),
                source: Box::new(abort),
            });
        }
        turn.called.push((name.to_string(), input.clone()));
        turn.results.extend(outcome.to_block(id));
        match outcome {
            ToolOutcome::Handoff(value) => turn.handoff = Some(value),
            ToolOutcome::Finished(summary) => turn.finished = Some(summary),
            _ => continue,
        }
        // Calls after the handoff in the same answer are not run: the attempt is over.
        break;
    }
    Ok(turn)
}
