//! SCRIBE's `read_file`: the same name as FORGE's, but reading from the documentation
//! directory (`docs:`) or the repository (`repo:` or no prefix), with a smaller cap.

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::files::{path_error, read_text, scribe_root};
use super::{ToolContext, ToolOutcome};
use crate::llm::ToolSpec;

pub(super) const NAME: &str = "read_file";
/// Documentation sources: larger files are cut with a note.
pub(super) const SCRIBE_READ_CAP_BYTES: usize = 64 * 1024;

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Read a text file. Prefix `docs:` reads from the documentation directory, `repo:` or \
         no prefix from the repository. Examples: `docs:product/mvp.md`, `repo:README.md`, \
         `go.mod`. Files over 64 KiB are cut with a note.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path with an optional `docs:` or `repo:` prefix"}
            },
            "required": ["path"]
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = arg_str(input, "path");
    let (jail, rel) = scribe_root(ctx, raw);
    if rel.trim().is_empty() {
        return ToolOutcome::error(format!("{raw} is a directory. Use list_dir instead."));
    }
    let resolved = match jail.resolve_read(rel) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if resolved.abs.is_dir() {
        return ToolOutcome::error(format!("{raw} is a directory. Use list_dir instead."));
    }
    read_text(&resolved, raw, SCRIBE_READ_CAP_BYTES)
}
