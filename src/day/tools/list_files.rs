//! FORGE's `list_files`: one directory level, or the tree below it.

use serde_json::{Value, json};

use super::args::spec as tool_spec;
use super::files::{list_entries, path_error, render_entries};
use super::{ToolContext, ToolOutcome};
use crate::llm::ToolSpec;

pub(super) const NAME: &str = "list_files";

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "List the entries of a repository directory (default: the root); directories end \
         with `/`. With `recursive: true` the whole tree below is listed, without `.git`, \
         `.pace` and dependency or build directories such as `node_modules` and `target`.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Directory relative to the repository root (default `.`)"},
                "recursive": {"type": "boolean", "description": "List the whole tree below (default false)"}
            }
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = input.get("path").and_then(Value::as_str).unwrap_or(".");
    let recursive = input.get("recursive").and_then(Value::as_bool).unwrap_or(false);
    let resolved = match ctx.jail.resolve_read(raw) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if !resolved.abs.is_dir() {
        return ToolOutcome::error(format!("'{raw}' is a file, not a directory; use read_file"));
    }
    let entries = list_entries(&resolved, recursive);
    ToolOutcome::ok(render_entries(&entries, raw))
}
