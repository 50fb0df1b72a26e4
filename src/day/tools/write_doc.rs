//! SCRIBE's `write_doc`: one of the four context documents under `.pace/context/`.

use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::files::{WRITE_CAP_BYTES, path_error};
use super::{ToolContext, ToolOutcome, paths};
use crate::llm::ToolSpec;
use crate::text::truncate_chars;

pub(super) const NAME: &str = "write_doc";
/// The documents `write_doc` accepts, in the order they are listed.
pub const SCRIBE_DOCS: [&str; 4] = ["product.md", "engineering.md", "security.md", "devops.md"];

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Write one context document (the whole document, Markdown). Allowed names: \
         product.md, engineering.md, security.md, devops.md.",
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": SCRIBE_DOCS, "description": "Which document"},
                "content": {"type": "string", "description": "The complete Markdown document"}
            },
            "required": ["name", "content"]
        }),
    )
}

pub(super) fn call(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let name = arg_str(input, "name");
    let content = arg_str(input, "content");
    if !SCRIBE_DOCS.contains(&name) {
        let mut allowed = SCRIBE_DOCS.to_vec();
        allowed.sort_unstable();
        return ToolOutcome::error(format!(
            "Unknown doc '{}'. Allowed: {}",
            truncate_chars(name, 80, "..."),
            allowed.join(", ")
        ));
    }
    if content.trim().is_empty() {
        return ToolOutcome::error(format!("write_doc requires the content of {name}"));
    }
    if content.len() > WRITE_CAP_BYTES {
        return ToolOutcome::error(format!(
            "{name} is {} bytes; write_doc accepts at most {WRITE_CAP_BYTES} bytes",
            content.len()
        ));
    }
    let target = match ctx.jail.resolve_own_file(&[".pace", "context", name]) {
        Ok(t) => t,
        Err(e) => return path_error(&e),
    };
    if let Err(e) = paths::write_atomic(&target, content.as_bytes()) {
        return path_error(&e);
    }
    // SCRIBE's documents are pace's own files, not the day's work: they are counted in
    // `docs_written`, not returned as changed paths (FORGE's `files_written`).
    ctx.docs_written.insert(name.to_string());
    ToolOutcome::ok(format!("OK: wrote {name} ({} bytes)", content.len()))
}
