//! FORGE's `read_file`: a text file of the repository, or the entries of a directory.

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::files::{list_entries, path_error, read_text, render_entries};
use super::{ToolContext, ToolOutcome};
use crate::llm::ToolSpec;

pub(super) const NAME: &str = "read_file";
/// Larger files are cut with a note.
pub(super) const READ_CAP_BYTES: usize = 256 * 1024;

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Read a text file of the repository. Reading a directory lists its entries instead. \
         Files over 256 KiB are cut with a note (use `search` to find the part you need). \
         `.git/`, `.pace/` and secret files such as `.env` cannot be read.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path relative to the repository root, e.g. `src/main.rs`"}
            },
            "required": ["path"]
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = arg_str(input, "path");
    if raw.trim().is_empty() {
        return ToolOutcome::error("read_file requires a 'path' argument (string)");
    }
    let resolved = match ctx.jail.resolve_read(raw) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if resolved.abs.is_dir() {
        let entries = list_entries(&resolved, false);
        return ToolOutcome::error(format!(
            "'{raw}' is a directory, not a file. Entries:\n{}",
            render_entries(&entries, raw)
        ));
    }
    read_text(&resolved, raw, READ_CAP_BYTES)
}
