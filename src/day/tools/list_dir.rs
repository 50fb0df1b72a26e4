//! SCRIBE's `list_dir`: one directory level as `dir  name` / `file  name` lines.

use std::fs;

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::files::{is_skipped_dir, path_error, scribe_root};
use super::paths::PathError;
use super::write_doc::SCRIBE_DOCS;
use super::{ToolContext, ToolOutcome};
use crate::llm::ToolSpec;

pub(super) const NAME: &str = "list_dir";

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "List one directory level as `dir  name` / `file  name` lines. Prefix `docs:` lists \
         the documentation directory, `context:` the context documents written so far, \
         `repo:` or no prefix the repository. Examples: `docs:`, `docs:technical`, \
         `context:`, `.`, `src`.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Directory with an optional `docs:`, `context:` or `repo:` prefix"}
            },
            "required": ["path"]
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = arg_str(input, "path");
    if raw.trim() == "context:" {
        return list_context_docs(ctx);
    }
    let (jail, rel) = scribe_root(ctx, raw);
    let resolved = match jail.resolve_read(rel) {
        Ok(r) => r,
        Err(PathError::NotFound(_)) => {
            return ToolOutcome::error(format!("Directory not found: {raw}"));
        }
        Err(e) => return path_error(&e),
    };
    if !resolved.abs.is_dir() {
        return ToolOutcome::error(format!("{raw} is a file. Use read_file instead."));
    }
    let Ok(read) = fs::read_dir(&resolved.abs) else {
        return ToolOutcome::error(format!("Could not list {raw}"));
    };
    let mut lines: Vec<String> = read
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_skipped_dir(&name) {
                return None;
            }
            let kind = if e.file_type().is_ok_and(|t| t.is_dir()) {
                "dir"
            } else {
                "file"
            };
            Some(format!("{kind}  {name}"))
        })
        .collect();
    lines.sort();
    if lines.is_empty() {
        return ToolOutcome::ok("(empty)");
    }
    ToolOutcome::ok(lines.join("\n"))
}

/// The context documents that exist (`.pace/context/` holds pace's other files too, and
/// the path is pace's own: nothing under it is listed but the four documents).
fn list_context_docs(ctx: &ToolContext<'_>) -> ToolOutcome {
    let present: Vec<String> = SCRIBE_DOCS
        .iter()
        .filter(|name| {
            ctx.jail
                .resolve_own_file(&[".pace", "context", name])
                .is_ok_and(|r| r.abs.is_file())
        })
        .map(|name| format!("file  {name}"))
        .collect();
    if present.is_empty() {
        return ToolOutcome::ok("(no context document yet)");
    }
    ToolOutcome::ok(present.join("\n"))
}
