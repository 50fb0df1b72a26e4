//! FORGE's `search`: a regular expression over the repository's text files, line by line.

use std::fs;
use std::io::Read;
use std::path::Path;

use regex::{Regex, RegexBuilder};
use serde_json::{Value, json};

use super::args::{arg_str, spec as tool_spec};
use super::files::{Entry, is_binary, path_error, walk};
use super::paths::looks_like_secret;
use super::{ToolContext, ToolOutcome};
use crate::llm::ToolSpec;
use crate::text::truncate_chars;

pub(super) const NAME: &str = "search";
/// Results: default and ceiling.
const DEFAULT_SEARCH_RESULTS: usize = 100;
const MAX_SEARCH_RESULTS: usize = 500;
/// Largest compiled regex (the model's pattern cannot blow up memory).
const REGEX_SIZE_LIMIT: usize = 1024 * 1024;
/// Files larger than this are not searched.
const MAX_SEARCH_FILE_BYTES: u64 = 1024 * 1024;
/// A matching line is shown up to this many characters.
const MAX_LINE_CHARS: usize = 200;

pub(super) fn spec() -> ToolSpec {
    tool_spec(
        NAME,
        "Search the repository's text files for a regular expression (Rust regex syntax, \
         e.g. `fn\\s+parse_`, `(?i)todo`). Returns matching lines as `path:line: text`. \
         Binary files, `.git`, `.pace` and dependency or build directories are skipped.",
        json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Regular expression to look for, line by line"},
                "path": {"type": "string", "description": "Directory or file to search in, relative to the repository root (default: everything)"},
                "max_results": {"type": "integer", "description": "Maximum number of matching lines (default 100, at most 500)"}
            },
            "required": ["pattern"]
        }),
    )
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let pattern = arg_str(input, "pattern");
    if pattern.is_empty() {
        return ToolOutcome::error("search requires a non-empty 'pattern' argument (string)");
    }
    let re = match RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build() {
        Ok(re) => re,
        Err(e) => return ToolOutcome::error(format!("invalid regular expression: {e}")),
    };
    let raw = input.get("path").and_then(Value::as_str).unwrap_or(".");
    let max = input
        .get("max_results")
        .and_then(Value::as_f64)
        .map_or(DEFAULT_SEARCH_RESULTS, |n| {
            // Saturating float-to-int conversion; the value is clamped right after.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = n as usize;
            n.clamp(1, MAX_SEARCH_RESULTS)
        });
    let resolved = match ctx.jail.resolve_read(raw) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    let mut hits = Vec::new();
    let mut stopped = false;
    if resolved.abs.is_dir() {
        let root = ctx.jail.root().to_path_buf();
        stopped = walk(&resolved.abs, &resolved.rel, &mut |entry: &Entry| {
            if !entry.is_dir {
                search_file(&root.join(&entry.rel), &entry.rel, &re, max, &mut hits);
            }
            hits.len() < max
        });
    } else {
        search_file(&resolved.abs, &resolved.rel, &re, max, &mut hits);
    }
    if hits.is_empty() {
        return ToolOutcome::ok(format!("No matches for `{pattern}` in {raw}"));
    }
    let mut out = hits.join("\n");
    if stopped || hits.len() >= max {
        out.push_str(&format!(
            "\n[stopped after {} matches: narrow the pattern or the path, or raise max_results (at most {MAX_SEARCH_RESULTS})]",
            hits.len()
        ));
    }
    ToolOutcome::ok(out)
}

/// Matches of `re` in one file as `rel:line: text`, appended to `hits` up to `max`.
/// Binary, oversized and secret-looking files are skipped.
fn search_file(abs: &Path, rel: &str, re: &Regex, max: usize, hits: &mut Vec<String>) {
    if looks_like_secret(rel) {
        return;
    }
    let Ok(meta) = fs::symlink_metadata(abs) else {
        return;
    };
    if !meta.is_file() || meta.len() > MAX_SEARCH_FILE_BYTES {
        return;
    }
    let mut bytes = Vec::new();
    let Ok(file) = fs::File::open(abs) else {
        return;
    };
    if file.take(MAX_SEARCH_FILE_BYTES).read_to_end(&mut bytes).is_err() {
        return;
    }
    if is_binary(&bytes) {
        return;
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return;
    };
    for (n, line) in text.lines().enumerate() {
        if hits.len() >= max {
            return;
        }
        if re.is_match(line) {
            let shown = truncate_chars(line.trim_end(), MAX_LINE_CHARS, "...");
            hits.push(format!("{rel}:{}: {shown}", n + 1));
        }
    }
}
