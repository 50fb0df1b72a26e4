//! FORGE's `complete_handoff`, its final tool: the handoff the reviewers read.

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec, string_list};
use super::{ToolContext, ToolOutcome, Toolset};
use crate::llm::ToolSpec;

pub(super) const NAME: &str = "complete_handoff";

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Signal that the implementation is complete; call this as your final action. pace \
         commits your changes itself, so do not run git commit and do not look up a commit \
         SHA (`commit` is optional and ignored). Describe the work for the reviewers.",
        json!({
            "type": "object",
            "properties": {
                "commit": {"type": "string", "description": "Ignored: pace commits the work and records the SHA"},
                "approach": {"type": "string", "description": "How the story was implemented and why this way"},
                "risk": {"type": "string", "description": "Risk of the change (low, medium or high) and the reason"},
                "dependencies": {"type": "string", "description": "New or changed dependencies, or `none`"},
                "built": {"type": "string", "description": "What now exists: files, functions, behaviour"},
                "edge_cases_tested": {"type": "array", "items": {"type": "string"}, "description": "Edge cases covered by tests"},
                "known_gaps": {"type": "array", "items": {"type": "string"}, "description": "What is not done or not tested (empty if nothing)"}
            },
            "required": ["approach", "risk", "dependencies", "built", "edge_cases_tested", "known_gaps"]
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let tdd = matches!(ctx.toolset, Toolset::Forge { tdd: true });
    if tdd && !ctx.red_phase_confirmed {
        return ToolOutcome::error(
            "TDD violation — confirm_red_phase was never called. You must write tests first, run them to confirm failure, and call confirm_red_phase before completing the handoff. Go back to Phase 1.",
        );
    }
    let mut handoff = serde_json::Map::new();
    for field in ["approach", "risk", "dependencies", "built"] {
        let value = arg_str(input, field).trim();
        if value.is_empty() {
            return ToolOutcome::error(format!(
                "complete_handoff requires a non-empty '{field}' argument (string)"
            ));
        }
        handoff.insert(field.to_string(), json!(value));
    }
    for field in ["edge_cases_tested", "known_gaps"] {
        handoff.insert(field.to_string(), json!(string_list(input.get(field))));
    }
    handoff.insert("tdd_red_phase_confirmed".into(), json!(ctx.red_phase_confirmed));
    handoff.insert("files_written".into(), json!(ctx.written));
    ToolOutcome::Handoff(Value::Object(handoff))
}
