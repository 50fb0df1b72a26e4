//! SCRIBE's `finish`, its final tool: accepted once all four documents exist.

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::write_doc::SCRIBE_DOCS;
use super::{ToolContext, ToolOutcome};
use crate::llm::ToolSpec;

pub(super) const NAME: &str = "finish";

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Call this once all four documents are written, as your final action.",
        json!({
            "type": "object",
            "properties": {
                "summary": {"type": "string", "description": "What was written and from which sources"}
            },
            "required": ["summary"]
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let context_dir = ctx.jail.root().join(".pace").join("context");
    let missing: Vec<&str> = SCRIBE_DOCS
        .iter()
        .copied()
        .filter(|d| !ctx.docs_written.contains(*d) && !context_dir.join(d).is_file())
        .collect();
    if !missing.is_empty() {
        return ToolOutcome::error(format!(
            "not finished: these documents are still missing: {}. Write them with write_doc, then call finish",
            missing.join(", ")
        ));
    }
    ToolOutcome::Finished(arg_str(input, "summary").trim().to_string())
}
