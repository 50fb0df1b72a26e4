//! FORGE's `write_file`: creates or replaces a file inside the writable directories. The
//! written path comes back as [`ToolResult::changed`](super::ToolResult::changed).

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::files::{WRITE_CAP_BYTES, path_error};
use super::{ToolContext, ToolOutcome, ToolResult, paths};
use crate::llm::ToolSpec;

pub(super) const NAME: &str = "write_file";

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Create a file or replace its whole content; parent directories are created. Only \
         paths inside the source and test directories named in the instructions can be \
         written (at most 1 MiB). Returns the number of bytes written.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path relative to the repository root"},
                "content": {"type": "string", "description": "The complete new content of the file"}
            },
            "required": ["path", "content"]
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = arg_str(input, "path");
    let content = arg_str(input, "content");
    if content.len() > WRITE_CAP_BYTES {
        return ToolOutcome::error(format!(
            "the content for {raw} is {} bytes; write_file accepts at most {WRITE_CAP_BYTES} bytes",
            content.len()
        ));
    }
    let resolved = match ctx.jail.resolve_write(raw, Some(&ctx.writable)) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if let Err(e) = paths::write_atomic(&resolved, content.as_bytes()) {
        return path_error(&e);
    }
    ToolOutcome::Result(ToolResult {
        content: format!("OK: wrote {} bytes to {}", content.len(), resolved.rel),
        is_error: false,
        changed: vec![resolved.rel],
    })
}
