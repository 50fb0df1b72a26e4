//! SCRIBE's `read_file`: the same name as FORGE's, but reading from the documentation
//! directory (`docs:`), the context documents SCRIBE itself writes (`context:`, also
//! spelt `.pace/context/`: its update brief asks it to read them first), or the repository
//! (`repo:` or no prefix), with a smaller cap.

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::files::{path_error, read_text, scribe_root};
use super::write_doc::SCRIBE_DOCS;
use super::{ToolContext, ToolOutcome};
use crate::llm::ToolSpec;
use crate::text::truncate_chars;

pub(super) const NAME: &str = "read_file";
/// Documentation sources: larger files are cut with a note.
pub(super) const SCRIBE_READ_CAP_BYTES: usize = 64 * 1024;

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Read a text file. Prefix `docs:` reads from the documentation directory, \
         `context:` one of the context documents you write (`context:engineering.md`), \
         `repo:` or no prefix from the repository. Examples: `docs:product/mvp.md`, \
         `context:product.md`, `repo:README.md`, `go.mod`. Files over 64 KiB are cut with \
         a note.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path with an optional `docs:`, `context:` or `repo:` prefix"}
            },
            "required": ["path"]
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = arg_str(input, "path");
    if let Some(name) = context_doc_name(raw) {
        return read_context_doc(ctx, raw, name);
    }
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

/// The document a `context:NAME` or `.pace/context/NAME` path names, if it is one.
fn context_doc_name(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    raw.strip_prefix("context:")
        .or_else(|| raw.strip_prefix("./").unwrap_or(raw).strip_prefix(".pace/context/"))
}

/// One of the four documents under `.pace/context/`: pace's own files, so the path is
/// built by pace (no link at any component, no hard link), never taken from the model.
fn read_context_doc(ctx: &ToolContext<'_>, raw: &str, name: &str) -> ToolOutcome {
    let Some(name) = SCRIBE_DOCS.iter().find(|d| **d == name) else {
        return ToolOutcome::error(format!(
            "`{}` is not a context document; `context:` reads {}",
            truncate_chars(raw, 80, "..."),
            SCRIBE_DOCS.join(", ")
        ));
    };
    let resolved = match ctx.jail.resolve_own_file(&[".pace", "context", name]) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if !resolved.abs.is_file() {
        return ToolOutcome::error(format!("context:{name} does not exist yet: write it with write_doc"));
    }
    read_text(&resolved, raw, SCRIBE_READ_CAP_BYTES)
}
