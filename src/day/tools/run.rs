//! FORGE's `run`: a shell command in the sandbox session. The files the command changed
//! come back as [`ToolResult::changed`] (eviction and `files_written` use that) and are
//! also named on the result's last lines, for the model.

use std::time::Duration;

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::{DEFAULT_RUN_TIMEOUT, ToolContext, ToolOutcome, ToolResult, paths};
use crate::llm::ToolSpec;
use crate::text::head_tail;

pub(super) const NAME: &str = "run";
/// Output shown to the model: the beginning and the (more telling) end.
pub(super) const RUN_HEAD_BYTES: usize = 4 * 1024;
pub(super) const RUN_TAIL_BYTES: usize = 12 * 1024;
/// Changed (or refused) files named in a result at most.
const MAX_CHANGED_LISTED: usize = 50;

/// Starts the line of a result that names the files the command changed.
pub(super) const CHANGED_MARKER: &str = "[files changed by this command: ";
/// Starts the line of a result that names what pace kept out of the repository.
pub(super) const REFUSED_MARKER: &str = "[refused by pace: ";

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Run a shell command (`/bin/sh -c`) in the repository root inside an isolated \
         sandbox container: build, test, lint and format commands. The container holds no \
         credentials. The result starts with `exit code: N`; long output keeps its beginning \
         and its end. Files the command creates or changes are copied back into the \
         repository. Do not commit or push: pace commits your work after complete_handoff.",
        json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command, e.g. `cargo test 2>&1`"},
                "timeout_seconds": {"type": "integer", "description": "Time limit in seconds (default 120; the sandbox's limit caps it)"}
            },
            "required": ["command"]
        }),
    )
}

pub(super) async fn call(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let command = arg_str(input, "command").trim().to_string();
    if command.is_empty() {
        return ToolOutcome::error("run requires a non-empty 'command' argument (string)");
    }
    let timeout = input
        .get("timeout_seconds")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 1.0)
        // A number too large for a Duration (`1e300`) means "as long as allowed".
        .map_or(DEFAULT_RUN_TIMEOUT, |s| {
            Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
        })
        .min(ctx.max_run_timeout);
    let Some(runner) = ctx.runner.as_deref_mut() else {
        return ToolOutcome::error("run is not available: this attempt has no sandbox session");
    };
    let result = match runner.run(&command, timeout).await {
        Ok(r) => r,
        Err(abort) => return ToolOutcome::Abort(abort),
    };
    let changed: Vec<String> = result
        .changed
        .iter()
        .map(|p| paths::normalise_rel(&p.to_string_lossy()))
        .filter(|p| !p.is_empty())
        .collect();
    let mut out = format!("exit code: {}\n", result.exit_code);
    if result.timed_out {
        out.push_str(&format!("timed out after {} s\n", timeout.as_secs()));
    }
    let output = head_tail(&result.output, RUN_HEAD_BYTES, RUN_TAIL_BYTES);
    if output.trim().is_empty() {
        out.push_str("(no output)");
    } else {
        out.push_str(&output);
    }
    if !changed.is_empty() {
        let mut listed = changed
            .iter()
            .take(MAX_CHANGED_LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if changed.len() > MAX_CHANGED_LISTED {
            listed.push_str(&format!(", ... ({} more)", changed.len() - MAX_CHANGED_LISTED));
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{CHANGED_MARKER}{listed}]"));
    }
    if !result.refused.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&refused_line(&result.refused));
    }
    ToolOutcome::Result(ToolResult {
        content: out,
        is_error: result.exit_code != 0 || result.timed_out,
        changed,
    })
}

/// `[refused by pace: src/lib/.git (…), … — not written to the repository; write only
/// regular files in the writable directories]`.
fn refused_line(refused: &[crate::boundary::Refused]) -> String {
    let mut items: Vec<String> = refused
        .iter()
        .take(MAX_CHANGED_LISTED)
        .map(|r| format!("{} ({})", r.path, r.reason))
        .collect();
    if refused.len() > MAX_CHANGED_LISTED {
        items.push(format!("... ({} more)", refused.len() - MAX_CHANGED_LISTED));
    }
    format!(
        "{REFUSED_MARKER}{} — these were not written to the repository; only regular files inside the writable directories come back from `run`]",
        items.join(", ")
    )
}
