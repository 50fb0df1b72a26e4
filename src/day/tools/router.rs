//! Dispatch in one place: call counting, the tool's existence, argument checks against
//! its spec, timing, logging and redaction happen here; handlers only do the work.

use std::time::Instant;

use serde_json::Value;

use super::{ToolContext, ToolOutcome, Toolset, handlers};
use crate::llm::ToolSpec;

/// Key the OpenAI adapter puts the raw text under when a call's arguments are not JSON.
pub const INVALID_ARGUMENTS_KEY: &str = "_invalid_arguments";

/// Runs one tool call. Everything the model can fix comes back as
/// [`ToolOutcome::Result`] with `is_error: true` and an `ERROR: ...` text; only
/// infrastructure failures are [`ToolOutcome::Abort`]. Results, handoffs and summaries
/// are redacted before they are returned.
pub async fn dispatch(ctx: &mut ToolContext<'_>, call_id: &str, name: &str, input: &Value) -> ToolOutcome {
    let started = Instant::now();
    ctx.calls = ctx.calls.saturating_add(1);
    let outcome = route(ctx, name, input).await;
    let outcome = redact(ctx, outcome);
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match &outcome {
        ToolOutcome::Result { content, is_error } => tracing::debug!(
            tool = name,
            call_id,
            call = ctx.calls,
            elapsed_ms,
            is_error,
            result_chars = content.len(),
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
        Toolset::Forge { .. } => "complete_handoff",
        Toolset::Scribe => "finish",
    };
    // The final tool stays callable past the cap, otherwise the model could never stop.
    if ctx.calls > ctx.max_tool_calls && name != final_tool {
        return ToolOutcome::error(format!(
            "the limit of {} tool calls for this attempt is reached. Stop working and call {final_tool} now with what is done and what is missing",
            ctx.max_tool_calls
        ));
    }
    let specs = ctx.specs();
    let Some(spec) = specs.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return ToolOutcome::error(format!(
            "Unknown tool: {}. Available: {}",
            truncate_chars(name, 80),
            names.join(", ")
        ));
    };
    if let Err(message) = check_arguments(spec, input) {
        return ToolOutcome::Result {
            content: message,
            is_error: true,
        };
    }
    match name {
        "read_file" if ctx.toolset == Toolset::Scribe => handlers::scribe_read_file(ctx, input),
        "read_file" => handlers::read_file(ctx, input),
        "write_file" => handlers::write_file(ctx, input),
        "list_files" => handlers::list_files(ctx, input),
        "search" => handlers::search(ctx, input),
        "run" => handlers::run(ctx, input).await,
        "confirm_red_phase" => handlers::confirm_red_phase(ctx, input),
        "complete_handoff" => handlers::complete_handoff(ctx, input),
        "list_dir" => handlers::list_dir(ctx, input),
        "write_doc" => handlers::write_doc(ctx, input),
        "finish" => handlers::finish(ctx, input),
        // A spec without a handler is a pace bug; still a tool result, never a panic.
        _ => ToolOutcome::error(format!("{name} is not implemented")),
    }
}

fn redact(ctx: &ToolContext<'_>, outcome: ToolOutcome) -> ToolOutcome {
    if ctx.redactor.is_empty() {
        return outcome;
    }
    match outcome {
        ToolOutcome::Result { content, is_error } => ToolOutcome::Result {
            content: ctx.redactor.redact(&content),
            is_error,
        },
        ToolOutcome::Handoff(mut value) => {
            ctx.redactor.redact_json(&mut value);
            ToolOutcome::Handoff(value)
        }
        ToolOutcome::Finished(summary) => ToolOutcome::Finished(ctx.redactor.redact(&summary)),
        abort @ ToolOutcome::Abort(_) => abort,
    }
}

/// Checks `input` against the spec's schema: an object, every required property present,
/// every present property of the declared type. Returns the `ERROR: ...` text otherwise.
fn check_arguments(spec: &ToolSpec, input: &Value) -> Result<(), String> {
    let tool = spec.name.as_str();
    let Some(args) = input.as_object() else {
        return Err(format!(
            "ERROR: the arguments of {tool} must be a JSON object, got {}",
            type_name(input)
        ));
    };
    if let Some(raw) = args.get(INVALID_ARGUMENTS_KEY) {
        let raw = raw.as_str().map_or_else(|| raw.to_string(), str::to_string);
        let reason = match serde_json::from_str::<Value>(&raw) {
            Err(e) => e.to_string(),
            Ok(_) => "not a JSON object".to_string(),
        };
        return Err(format!(
            "ERROR: the arguments of {tool} are not valid JSON: {reason} (received {} characters starting with {:?}). Send the arguments as one JSON object",
            raw.chars().count(),
            truncate_chars(&raw, 120)
        ));
    }
    let empty = serde_json::Map::new();
    let properties = spec
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = spec
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (arg, schema) in properties {
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("string");
        let value = args.get(arg).filter(|v| !v.is_null());
        match value {
            None if required.contains(&arg.as_str()) => {
                return Err(format!(
                    "ERROR: {tool} requires a '{arg}' argument ({})",
                    type_label(expected)
                ));
            }
            None => {}
            Some(v) if !type_matches(expected, v) => {
                return Err(format!(
                    "ERROR: {tool} requires a '{arg}' argument ({}), got {}",
                    type_label(expected),
                    type_name(v)
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn type_matches(expected: &str, v: &Value) -> bool {
    match expected {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        // Lists of strings; a markdown bullet string is accepted and split by the handler.
        "array" => v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "object" => v.is_object(),
        _ => true,
    }
}

fn type_label(expected: &str) -> &str {
    match expected {
        "array" => "array of strings",
        other => other,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}
