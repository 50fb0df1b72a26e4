//! FORGE's `confirm_red_phase` (only offered when TDD is enforced): the model shows a
//! failing test run before it writes the implementation.

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec, string_list};
use super::{ToolContext, ToolOutcome};
use crate::llm::ToolSpec;

pub(super) const NAME: &str = "confirm_red_phase";

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "REQUIRED TDD checkpoint. Call this after writing the tests and running the test \
         suite, once at least one new test fails. Provide the failing test output as \
         evidence. Call it before writing any implementation code; complete_handoff is \
         refused until it has been called.",
        json!({
            "type": "object",
            "properties": {
                "failing_tests": {"type": "string", "description": "The test runner output showing at least one failing test"},
                "tests_written": {"type": "array", "items": {"type": "string"}, "description": "Paths of the test files written in this phase"}
            },
            "required": ["failing_tests", "tests_written"]
        }),
    )
}

pub(super) fn call(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    if arg_str(input, "failing_tests").trim().is_empty() {
        return ToolOutcome::error(
            "confirm_red_phase requires non-empty failing_tests output. Run the test suite first and provide the output.",
        );
    }
    let tests = string_list(input.get("tests_written"));
    if tests.is_empty() {
        return ToolOutcome::error("confirm_red_phase requires at least one test file path in tests_written.");
    }
    ctx.red_phase_confirmed = true;
    ToolOutcome::ok(format!(
        "Red phase confirmed. Tests written: {}. You may now proceed to Phase 2: write the minimum implementation to make these tests pass.",
        tests.join(", ")
    ))
}
