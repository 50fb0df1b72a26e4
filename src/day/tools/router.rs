//! Dispatch in one place: call counting, the tool's existence, argument checks against
//! its spec, timing, logging, redaction and the bookkeeping of changed paths happen here;
//! handlers only do the work.

use std::time::Instant;

use serde_json::Value;

use super::args::check_arguments;
use super::registry::Tool;
use super::{ToolContext, ToolOutcome, ToolResult, Toolset};
use crate::text::truncate_chars;

pub use super::args::INVALID_ARGUMENTS_KEY;

/// Runs one tool call. Everything the model can fix comes back as
/// [`ToolOutcome::Result`] with `is_error: true` and an `ERROR: ...` text; only
/// infrastructure failures are [`ToolOutcome::Abort`]. Results, handoffs and summaries
/// are redacted before they are returned. The paths a call changed are recorded as
/// written and, under `call_id`, for eviction ([`ToolContext::changed_by_call`]).
pub async fn dispatch(ctx: &mut ToolContext<'_>, call_id: &str, name: &str, input: &Value) -> ToolOutcome {
    let started = Instant::now();
    ctx.calls = ctx.calls.saturating_add(1);
    let outcome = route(ctx, name, input).await;
    let outcome = redact(ctx, outcome);
    if let ToolOutcome::Result(result) = &outcome
        && !result.changed.is_empty()
    {
        for path in &result.changed {
            ctx.record_written(path.clone());
        }
        ctx.changed_by_call.insert(call_id.to_string(), result.changed.clone());
    }
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &outcome {
        ToolOutcome::Result(result) => tracing::debug!(
            tool = name,
            call_id,
            call = ctx.calls,
            elapsed_ms,
            is_error = result.is_error,
            result_chars = result.content.len(),
            changed = result.changed.len(),
            "tool call"
        ),
        ToolOutcome::Handoff(_) => {
            tracing::info!(tool = name, call_id, call = ctx.calls, elapsed_ms, "handoff accepted");
        }
        ToolOutcome::Finished(_) => {
            tracing::info!(tool = name, call_id, call = ctx.calls, elapsed_ms, "finish accepted");
        }
        ToolOutcome::Abort(e) => {
            tracing::warn!(tool = name, call_id, call = ctx.calls, elapsed_ms, error = %e, "tool aborted the attempt");
        }
    }
    outcome
}

async fn route(ctx: &mut ToolContext<'_>, name: &str, input: &Value) -> ToolOutcome {
    let final_tool = match ctx.toolset {
        Toolset::Forge { .. } => Tool::CompleteHandoff,
        Toolset::Scribe => Tool::Finish,
    };
    // The final tool stays callable past the cap, otherwise the model could never stop.
    if ctx.calls > ctx.max_tool_calls && name != final_tool.name() {
        return ToolOutcome::error(format!(
            "the limit of {} tool calls for this attempt is reached. Stop working and call {} now with what is done and what is missing",
            ctx.max_tool_calls,
            final_tool.name()
        ));
    }
    let Some(tool) = Tool::find(ctx.toolset, name) else {
        let names: Vec<&str> = Tool::of(ctx.toolset).into_iter().map(Tool::name).collect();
        return ToolOutcome::error(format!(
            "Unknown tool: {}. Available: {}",
            truncate_chars(name, 80, "..."),
            names.join(", ")
        ));
    };
    if let Err(message) = check_arguments(&tool.spec(), input) {
        return ToolOutcome::Result(ToolResult {
            content: message,
            is_error: true,
            changed: Vec::new(),
        });
    }
    tool.call(ctx, input).await
}

fn redact(ctx: &ToolContext<'_>, outcome: ToolOutcome) -> ToolOutcome {
    if ctx.redactor.is_empty() {
        return outcome;
    }
    match outcome {
        ToolOutcome::Result(result) => ToolOutcome::Result(ToolResult {
            content: ctx.redactor.redact(&result.content),
            ..result
        }),
        ToolOutcome::Handoff(mut value) => {
            ctx.redactor.redact_json(&mut value);
            ToolOutcome::Handoff(value)
        }
        ToolOutcome::Finished(summary) => ToolOutcome::Finished(ctx.redactor.redact(&summary)),
        abort @ ToolOutcome::Abort(_) => abort,
    }
}
