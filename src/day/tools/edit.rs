//! FORGE's editor, `str_replace_based_edit_tool`: the semantics of Claude's text editor
//! (the Anthropic-defined `text_editor_20250728`), so one handler serves the model that is
//! trained on it and every other model, which gets the same tool as a function with a JSON
//! schema.
//!
//! - `view`: a file with line numbers (`cat -n`), optionally `view_range: [start, end]`
//!   (1-based, inclusive, `end: -1` to the end); a directory lists two levels.
//! - `str_replace`: `old_str` must occur exactly once (overlaps count); when it does not
//!   occur the error shows the closest lines, when it occurs more often their line numbers.
//! - `insert`: `insert_text` after line `insert_line` (0 = the top).
//! - `create`: a new file from `file_text`. As in Anthropic's tool, an existing file is
//!   not overwritten: it is edited, or replaced whole with `write_file`.
//!
//! Reads follow `read_file`'s rules, writes `write_file`'s (the writable directories, no
//! protected file, no `.git`/`.pace` at any depth, no link, no hard link); a written path
//! comes back as [`ToolResult::changed`](super::ToolResult::changed), which feeds the
//! handoff's files and eviction. CRLF files are edited as LF and keep their CRLF.

use std::fs;
use std::io::Read;

use serde_json::{Value, json};

use super::args::arg_str;
use super::files::{WRITE_CAP_BYTES, is_binary, list_entries, path_error, render_entries};
use super::paths::{PathError, Resolved};
use super::{ToolContext, ToolOutcome, ToolResult, paths};
use crate::llm::ToolSpec;
use crate::text::truncate_chars;

#[cfg(test)]
mod tests;
mod text;

use text::Doc;

pub(super) const NAME: &str = "str_replace_based_edit_tool";
/// The Anthropic-defined tool type of Claude 4 models (no `undo_edit`).
pub(super) const ANTHROPIC_TYPE: &str = "text_editor_20250728";
/// Largest file the editor opens: it holds the whole file to edit it.
const MAX_EDIT_BYTES: u64 = 4 * 1024 * 1024;
/// A view is cut at a line boundary below this many bytes, with the range to view next.
const VIEW_CAP_BYTES: usize = 256 * 1024;
/// The commands, in the order the spec lists them.
const COMMANDS: [&str; 4] = ["view", "str_replace", "insert", "create"];

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME.to_string(),
        description: "View, create and edit files of the repository. `view` shows a file with line \
            numbers (`view_range` [start, end] for a part, end -1 = to the end) or lists a \
            directory two levels deep. `str_replace` replaces `old_str`, which must occur \
            exactly once (whitespace included, no line numbers), with `new_str`. `insert` adds \
            `insert_text` after line `insert_line` (0 = at the top). `create` makes a new file \
            from `file_text`; an existing file is changed with `str_replace` or `insert`, or \
            replaced whole with `write_file`. Writes only inside the source and test \
            directories; `.git/`, `.pace/` and secret files are out of reach."
            .to_string(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": COMMANDS, "description": "The command to run"},
                "path": {"type": "string", "description": "Path relative to the repository root, e.g. `src/main.rs` (`.` is the root)"},
                "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2, "description": "view: [start, end], 1-based and inclusive; end -1 reads to the end"},
                "old_str": {"type": "string", "description": "str_replace: the exact text to replace; it must occur exactly once"},
                "new_str": {"type": "string", "description": "str_replace: the text that replaces `old_str` (empty deletes it)"},
                "insert_line": {"type": "integer", "description": "insert: the line after which the text goes; 0 inserts at the top"},
                "insert_text": {"type": "string", "description": "insert: the text to insert"},
                "file_text": {"type": "string", "description": "create: the content of the new file"}
            },
            "required": ["command", "path"]
        }),
        anthropic_type: Some(ANTHROPIC_TYPE.to_string()),
    }
}

pub(super) fn call(ctx: &ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = arg_str(input, "path");
    match arg_str(input, "command") {
        "view" => view(ctx, raw, input.get("view_range")),
        "str_replace" => str_replace(ctx, raw, input),
        "insert" => insert(ctx, raw, input),
        "create" => create(ctx, raw, arg_str(input, "file_text"), input.get("file_text").is_some()),
        "undo_edit" => ToolOutcome::error(
            "`undo_edit` is not available: change the text back with `str_replace` (pace commits your work, so nothing is lost)",
        ),
        other => ToolOutcome::error(format!(
            "unknown command `{}` of {NAME}: use one of {}",
            truncate_chars(other, 40, "..."),
            COMMANDS.join(", ")
        )),
    }
}

// ------------------------------------------------------------------ view

fn view(ctx: &ToolContext<'_>, raw: &str, range: Option<&Value>) -> ToolOutcome {
    let resolved = match ctx.jail.resolve_read(raw) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if resolved.abs.is_dir() {
        if range.is_some_and(|r| !r.is_null()) {
            return ToolOutcome::error(format!("`{raw}` is a directory: `view_range` applies to files only"));
        }
        return view_dir(ctx, &resolved, raw);
    }
    let doc = match read_doc(&resolved, raw) {
        Ok(doc) => doc,
        Err(outcome) => return outcome,
    };
    let all = text::lines(&doc.text);
    if all.is_empty() {
        return ToolOutcome::ok(format!("({raw} is empty)"));
    }
    let (first, last) = match view_bounds(range, all.len(), raw) {
        Ok(bounds) => bounds,
        Err(message) => return ToolOutcome::error(message),
    };
    ToolOutcome::ok(render_view(&all, first, last, raw))
}

/// The 1-based inclusive lines a `view_range` asks for, checked against the file's
/// `count` lines. An end past the file is read as "to the end".
fn view_bounds(range: Option<&Value>, count: usize, raw: &str) -> Result<(usize, usize), String> {
    let Some(range) = range.filter(|r| !r.is_null()) else {
        return Ok((1, count));
    };
    let numbers: Vec<i64> = range
        .as_array()
        .map(|a| a.iter().filter_map(as_i64).collect())
        .unwrap_or_default();
    let [start, end] = numbers[..] else {
        return Err(format!(
            "`view_range` must be two line numbers [start, end], e.g. [1, 40] or [100, -1]; {raw} has {count} lines"
        ));
    };
    let start_ok = usize::try_from(start).ok().filter(|s| (1..=count).contains(s));
    let Some(first) = start_ok else {
        return Err(format!(
            "`view_range` starts at line {start}, but {raw} has lines 1 to {count}: start inside that range"
        ));
    };
    if end == -1 {
        return Ok((first, count));
    }
    match usize::try_from(end) {
        Ok(last) if last >= first => Ok((first, last.min(count))),
        _ => Err(format!(
            "`view_range` ends at {end}, before its start {start}: use an end of at least {start}, or -1 for the end of the file ({count} lines)"
        )),
    }
}

/// An integer argument; `3.0` counts (the router checked it is integral), and a huge
/// number saturates, so it is still "past the end".
#[allow(clippy::cast_possible_truncation, reason = "saturating float-to-int conversion")]
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// Lines `first..=last`, cut at [`VIEW_CAP_BYTES`] on a line boundary with the range to
/// view next.
fn render_view(all: &[&str], first: usize, last: usize, raw: &str) -> String {
    let mut out = String::new();
    for (i, line) in all[first - 1..last].iter().enumerate() {
        let number = first + i;
        let shown = text::numbered(&[line], number);
        if !out.is_empty() && out.len() + shown.len() > VIEW_CAP_BYTES {
            out.push_str(&format!(
                "[cut at line {}: {raw} has {} lines; view the rest with `view_range` [{number}, {last}]]",
                number - 1,
                all.len()
            ));
            return out;
        }
        out.push_str(&shown);
    }
    if last < all.len() || first > 1 {
        out.push_str(&format!("[lines {first}-{last} of {}]", all.len()));
    }
    out
}

/// Two levels below a directory, hidden entries left out (as Claude's tool lists).
fn view_dir(ctx: &ToolContext<'_>, dir: &Resolved, raw: &str) -> ToolOutcome {
    let visible = |entry: &String| {
        let name = entry.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        !name.starts_with('.')
    };
    let (top, mut cut) = list_entries(dir, false);
    let mut shown = Vec::new();
    for entry in top.into_iter().filter(visible) {
        let is_dir = entry.ends_with('/');
        let name = entry.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
        // A link to a directory is listed as a file (its entry's type is not followed), so
        // only real directories are descended into.
        let sub = (is_dir && !super::files::is_skipped_dir(name))
            .then(|| ctx.jail.resolve_read(entry.trim_end_matches('/')).ok())
            .flatten();
        shown.push(entry);
        if let Some(sub) = sub {
            let (children, sub_cut) = list_entries(&sub, false);
            cut |= sub_cut;
            shown.extend(children.into_iter().filter(visible));
        }
    }
    let title = if dir.rel.is_empty() { "." } else { dir.rel.as_str() };
    ToolOutcome::ok(format!(
        "Files and directories up to 2 levels deep in {title} (hidden entries left out):\n{}",
        render_entries(&(shown, cut), raw)
    ))
}

// ------------------------------------------------------------------ edits

fn str_replace(ctx: &ToolContext<'_>, raw: &str, input: &Value) -> ToolOutcome {
    let Some(old) = input.get("old_str").and_then(Value::as_str) else {
        return ToolOutcome::error("str_replace requires `old_str`: the exact text to replace (`view` the file first)");
    };
    let (resolved, doc) = match open_for_edit(ctx, raw) {
        Ok(opened) => opened,
        Err(outcome) => return outcome,
    };
    let old = doc.normalise(old);
    let new = doc.normalise(arg_str(input, "new_str"));
    if old.is_empty() {
        return ToolOutcome::error("`old_str` is empty: give the exact text to replace (`insert` adds text at a line)");
    }
    if old == new {
        return ToolOutcome::error("`old_str` and `new_str` are the same: nothing would change");
    }
    let found = text::occurrences(&doc.text, &old);
    let at = match found[..] {
        [at] => at,
        [] => {
            return ToolOutcome::error(format!(
                "no replacement was made: `old_str` does not occur verbatim in {raw}. {}",
                text::absent_hint(&doc.text, &old)
            ));
        }
        _ => {
            return ToolOutcome::error(format!(
                "no replacement was made: `old_str` occurs {} times in {raw}, at lines {}. Include more of the surrounding lines so that it occurs exactly once",
                found.len(),
                text::describe_matches(&doc.text, &found)
            ));
        }
    };
    let mut edited = String::with_capacity(doc.text.len() + new.len());
    edited.push_str(&doc.text[..at]);
    edited.push_str(&new);
    edited.push_str(&doc.text[at + old.len()..]);
    let first = text::line_at(&doc.text, at);
    let last = first + text::line_span(&new) - 1;
    let (from, to, snippet) = text::edit_snippet(&edited, first, last);
    let message = format!(
        "The file {} has been edited. Lines {from}-{to} now read:\n{snippet}",
        resolved.rel
    );
    save(&resolved, &doc, &edited, message)
}

fn insert(ctx: &ToolContext<'_>, raw: &str, input: &Value) -> ToolOutcome {
    let Some(after) = input.get("insert_line").and_then(as_i64) else {
        return ToolOutcome::error(
            "insert requires `insert_line`: the line after which the text goes (0 = at the top)",
        );
    };
    // Claude's earlier editor versions called the text `new_str`.
    let Some(block) = ["insert_text", "new_str"]
        .iter()
        .find_map(|k| input.get(*k).and_then(Value::as_str))
    else {
        return ToolOutcome::error("insert requires `insert_text`: the text to insert");
    };
    let (resolved, doc) = match open_for_edit(ctx, raw) {
        Ok(opened) => opened,
        Err(outcome) => return outcome,
    };
    let count = text::lines(&doc.text).len();
    let Some(after) = usize::try_from(after).ok().filter(|a| *a <= count) else {
        return ToolOutcome::error(format!(
            "`insert_line` {after} is outside {raw}, which has {count} lines: use 0 (the top) to {count} (after the last line)"
        ));
    };
    if block.is_empty() {
        return ToolOutcome::error("`insert_text` is empty: nothing to insert");
    }
    let block = doc.normalise(block);
    let edited = text::insert_after(&doc.text, after, &block);
    let (from, to, snippet) = text::edit_snippet(&edited, after + 1, after + text::line_span(&block));
    let message = format!(
        "Inserted {} line(s) after line {after} of {}. Lines {from}-{to} now read:\n{snippet}",
        text::line_span(&block),
        resolved.rel
    );
    save(&resolved, &doc, &edited, message)
}

fn create(ctx: &ToolContext<'_>, raw: &str, content: &str, given: bool) -> ToolOutcome {
    if !given {
        return ToolOutcome::error("create requires `file_text`: the content of the new file");
    }
    if content.len() > WRITE_CAP_BYTES {
        return ToolOutcome::error(format!(
            "the file_text for {raw} is {} bytes; create accepts at most {WRITE_CAP_BYTES} bytes",
            content.len()
        ));
    }
    let resolved = match ctx.jail.resolve_write(raw, Some(&ctx.writable)) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if let Ok(meta) = fs::symlink_metadata(&resolved.abs) {
        let what = if meta.is_dir() { "a directory" } else { "a file" };
        return ToolOutcome::error(format!(
            "{raw} already exists ({what}); create makes new files only. Change it with `str_replace` or `insert`, or replace its whole content with `write_file`"
        ));
    }
    let lines = match text::lines(content).len() {
        1 => "1 line".to_string(),
        n => format!("{n} lines"),
    };
    let message = format!("Created {} ({lines}, {} bytes)", resolved.rel, content.len());
    if let Err(e) = paths::write_atomic(&resolved, content.as_bytes()) {
        return path_error(&e);
    }
    changed(resolved, message)
}

/// An existing text file to edit: the write rules (writable directory, no link, no hard
/// link, not protected) and the read rules (no secret) both hold.
fn open_for_edit(ctx: &ToolContext<'_>, raw: &str) -> Result<(Resolved, Doc), ToolOutcome> {
    let resolved = ctx
        .jail
        .resolve_write(raw, Some(&ctx.writable))
        .map_err(|e| path_error(&e))?;
    match ctx.jail.resolve_read(raw) {
        Ok(read) if read.abs.is_dir() => return Err(path_error(&PathError::IsDirectory(raw.to_string()))),
        Ok(_) => {}
        Err(PathError::NotFound(_)) => {
            return Err(ToolOutcome::error(format!(
                "File not found: {raw}. Use the `create` command to make a new file"
            )));
        }
        Err(e) => return Err(path_error(&e)),
    }
    let doc = read_doc(&resolved, raw)?;
    Ok((resolved, doc))
}

/// The whole file as UTF-8 text, at most [`MAX_EDIT_BYTES`].
fn read_doc(resolved: &Resolved, raw: &str) -> Result<Doc, ToolOutcome> {
    let size = fs::metadata(&resolved.abs).map(|m| m.len()).unwrap_or(0);
    if size > MAX_EDIT_BYTES {
        return Err(ToolOutcome::error(format!(
            "{raw} is {size} bytes; the editor opens files up to {MAX_EDIT_BYTES} bytes. Use `search` to find lines and `run` (e.g. `sed -n`) for this file"
        )));
    }
    let mut bytes = Vec::new();
    fs::File::open(&resolved.abs)
        .and_then(|f| f.take(MAX_EDIT_BYTES).read_to_end(&mut bytes))
        .map_err(|e| ToolOutcome::error(format!("Could not read {raw}: {e}")))?;
    if is_binary(&bytes) {
        return Err(ToolOutcome::error(format!(
            "{raw} is a binary file ({size} bytes); it cannot be viewed or edited"
        )));
    }
    let raw_text = String::from_utf8(bytes).map_err(|_| {
        ToolOutcome::error(format!(
            "{raw} is not UTF-8 text; the editor would corrupt it. Use `run` to change it"
        ))
    })?;
    Ok(Doc::parse(&raw_text))
}

/// Writes the edited text (in the file's line endings) and reports the changed path.
fn save(resolved: &Resolved, doc: &Doc, edited: &str, message: String) -> ToolOutcome {
    let bytes = doc.render(edited);
    if bytes.len() as u64 > MAX_EDIT_BYTES {
        return ToolOutcome::error(format!(
            "the edited {} would be {} bytes; the editor writes files up to {MAX_EDIT_BYTES} bytes",
            resolved.rel,
            bytes.len()
        ));
    }
    if let Err(e) = paths::write_atomic(resolved, bytes.as_bytes()) {
        return path_error(&e);
    }
    changed(resolved.clone(), message)
}

fn changed(resolved: Resolved, message: String) -> ToolOutcome {
    ToolOutcome::Result(ToolResult {
        content: message,
        is_error: false,
        changed: vec![resolved.rel],
    })
}
