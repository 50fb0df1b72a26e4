//! One function per tool. Arguments were checked against the spec by the router, so a
//! handler reads them with defaults only as a second line of defence; every failure the
//! model can fix is an `ERROR: ...` result.

use std::fs;
use std::io::Read;
use std::time::Duration;

use regex::RegexBuilder;
use serde_json::{Value, json};

use super::paths::{self, Jail, PathError, Resolved};
use super::search::{self, Entry};
use super::specs::SCRIBE_DOCS;
use super::{DEFAULT_RUN_TIMEOUT, ToolContext, ToolOutcome};

/// FORGE reads: larger files are cut with a note.
pub const READ_CAP_BYTES: usize = 256 * 1024;
/// SCRIBE reads (documentation sources): larger files are cut with a note.
pub const SCRIBE_READ_CAP_BYTES: usize = 64 * 1024;
/// Largest `write_file` / `write_doc` content.
pub const WRITE_CAP_BYTES: usize = 1024 * 1024;
/// `run` output shown to the model: the beginning and the (more telling) end.
pub const RUN_HEAD_BYTES: usize = 4 * 1024;
pub const RUN_TAIL_BYTES: usize = 12 * 1024;
/// Entries `list_files` / `read_file` on a directory show at most.
const MAX_LIST_ENTRIES: usize = 2_000;
/// `search` results: default and ceiling.
const DEFAULT_SEARCH_RESULTS: usize = 100;
const MAX_SEARCH_RESULTS: usize = 500;
/// Changed files named in a `run` result at most.
const MAX_CHANGED_LISTED: usize = 50;
/// Largest compiled regex (the model's pattern cannot blow up memory).
const REGEX_SIZE_LIMIT: usize = 1024 * 1024;

/// Starts the line of a `run` result that names the files the command changed; eviction
/// reads it to know which earlier reads went stale.
pub const CHANGED_MARKER: &str = "[files changed by this command: ";

fn arg_str<'v>(input: &'v Value, name: &str) -> &'v str {
    input.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn path_error(e: &PathError) -> ToolOutcome {
    ToolOutcome::error(e.to_string())
}

// ---------------------------------------------------------------- FORGE

pub fn read_file(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = arg_str(input, "path");
    if raw.trim().is_empty() {
        return ToolOutcome::error("read_file requires a 'path' argument (string)");
    }
    let resolved = match ctx.jail.resolve_read(raw) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if resolved.abs.is_dir() {
        let entries = list_one_level(&resolved, false);
        return ToolOutcome::error(format!(
            "'{raw}' is a directory, not a file. Entries:\n{}",
            render_entries(&entries, raw)
        ));
    }
    read_text(&resolved, raw, READ_CAP_BYTES)
}

pub fn write_file(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
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
    ctx.record_written(resolved.rel.clone());
    ToolOutcome::ok(format!("OK: wrote {} bytes to {}", content.len(), resolved.rel))
}

pub fn list_files(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = input.get("path").and_then(Value::as_str).unwrap_or(".");
    let recursive = input.get("recursive").and_then(Value::as_bool).unwrap_or(false);
    let resolved = match ctx.jail.resolve_read(raw) {
        Ok(r) => r,
        Err(e) => return path_error(&e),
    };
    if !resolved.abs.is_dir() {
        return ToolOutcome::error(format!("'{raw}' is a file, not a directory; use read_file"));
    }
    let entries = list_one_level(&resolved, recursive);
    ToolOutcome::ok(render_entries(&entries, raw))
}

pub fn search(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
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
        stopped = search::walk(&resolved.abs, &resolved.rel, &mut |entry: &Entry| {
            if !entry.is_dir {
                search::search_file(&root.join(&entry.rel), &entry.rel, &re, max, &mut hits);
            }
            hits.len() < max
        });
    } else {
        search::search_file(&resolved.abs, &resolved.rel, &re, max, &mut hits);
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

pub async fn run(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let command = arg_str(input, "command").trim().to_string();
    if command.is_empty() {
        return ToolOutcome::error("run requires a non-empty 'command' argument (string)");
    }
    let timeout = input
        .get("timeout_seconds")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 1.0)
        // A number too large for a Duration (`1e300`) means "as long as allowed".
        .map_or(DEFAULT_RUN_TIMEOUT, |s| {
            Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
        })
        .min(ctx.max_run_timeout);
    let Some(runner) = ctx.runner.as_deref_mut() else {
        return ToolOutcome::error("run is not available: this attempt has no sandbox session");
    };
    let result = match runner.run(&command, timeout).await {
        Ok(r) => r,
        Err(abort) => return ToolOutcome::Abort(abort),
    };
    let changed: Vec<String> = result
        .changed
        .iter()
        .map(|p| paths::normalise_rel(&p.to_string_lossy()))
        .filter(|p| !p.is_empty())
        .collect();
    for path in &changed {
        ctx.record_written(path.clone());
    }
    let mut out = format!("exit code: {}\n", result.exit_code);
    if result.timed_out {
        out.push_str(&format!("timed out after {} s\n", timeout.as_secs()));
    }
    let output = head_tail(&result.output, RUN_HEAD_BYTES, RUN_TAIL_BYTES);
    if output.trim().is_empty() {
        out.push_str("(no output)");
    } else {
        out.push_str(&output);
    }
    if !changed.is_empty() {
        let mut listed = changed
            .iter()
            .take(MAX_CHANGED_LISTED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if changed.len() > MAX_CHANGED_LISTED {
            listed.push_str(&format!(", ... ({} more)", changed.len() - MAX_CHANGED_LISTED));
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{CHANGED_MARKER}{listed}]"));
    }
    if !result.refused.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&refused_line(&result.refused));
    }
    ToolOutcome::Result {
        content: out,
        is_error: result.exit_code != 0 || result.timed_out,
    }
}

/// Starts the line of a `run` result that names what pace kept out of the repository.
pub const REFUSED_MARKER: &str = "[refused by pace: ";

/// `[refused by pace: src/lib/.git (…), … — not written to the repository; write only
/// regular files in the writable directories]`.
fn refused_line(refused: &[crate::boundary::Refused]) -> String {
    let mut items: Vec<String> = refused
        .iter()
        .take(MAX_CHANGED_LISTED)
        .map(|r| format!("{} ({})", r.path, r.reason))
        .collect();
    if refused.len() > MAX_CHANGED_LISTED {
        items.push(format!("... ({} more)", refused.len() - MAX_CHANGED_LISTED));
    }
    format!(
        "{REFUSED_MARKER}{} — these were not written to the repository; only regular files inside the writable directories come back from `run`]",
        items.join(", ")
    )
}

pub fn confirm_red_phase(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
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

pub fn complete_handoff(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let tdd = matches!(ctx.toolset, super::Toolset::Forge { tdd: true });
    if tdd && !ctx.red_phase_confirmed {
        return ToolOutcome::error(
            "TDD violation — confirm_red_phase was never called. You must write tests first, run them to confirm failure, and call confirm_red_phase before completing the handoff. Go back to Phase 1.",
        );
    }
    let mut handoff = serde_json::Map::new();
    for field in ["approach", "risk", "dependencies", "built"] {
        let value = arg_str(input, field).trim();
        if value.is_empty() {
            return ToolOutcome::error(format!(
                "complete_handoff requires a non-empty '{field}' argument (string)"
            ));
        }
        handoff.insert(field.to_string(), json!(value));
    }
    for field in ["edge_cases_tested", "known_gaps"] {
        handoff.insert(field.to_string(), json!(string_list(input.get(field))));
    }
    handoff.insert("tdd_red_phase_confirmed".into(), json!(ctx.red_phase_confirmed));
    handoff.insert("files_written".into(), json!(ctx.written));
    ToolOutcome::Handoff(Value::Object(handoff))
}

// ---------------------------------------------------------------- SCRIBE

/// `docs:x` → the docs root (the repository when none is configured); `repo:x` or `x` →
/// the repository.
fn scribe_root<'c>(ctx: &'c ToolContext<'_>, raw: &'c str) -> (&'c Jail, &'c str) {
    if let Some(rest) = raw.strip_prefix("docs:") {
        (ctx.docs.as_ref().unwrap_or(&ctx.jail), rest)
    } else {
        (&ctx.jail, raw.strip_prefix("repo:").unwrap_or(raw))
    }
}

pub fn scribe_read_file(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
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

pub fn list_dir(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let raw = arg_str(input, "path");
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
            if search::is_skipped_dir(&name) {
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

pub fn write_doc(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let name = arg_str(input, "name");
    let content = arg_str(input, "content");
    if !SCRIBE_DOCS.contains(&name) {
        let mut allowed = SCRIBE_DOCS.to_vec();
        allowed.sort_unstable();
        return ToolOutcome::error(format!(
            "Unknown doc '{}'. Allowed: {}",
            super::router::truncate_chars(name, 80),
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
    ctx.docs_written.insert(name.to_string());
    ToolOutcome::ok(format!("OK: wrote {name} ({} bytes)", content.len()))
}

pub fn finish(ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
    let context_dir = ctx.jail.root().join(".pace").join("context");
    let missing: Vec<&str> = SCRIBE_DOCS
        .iter()
        .copied()
        .filter(|d| !ctx.docs_written.contains(*d) && !context_dir.join(d).is_file())
        .collect();
    if !missing.is_empty() {
        return ToolOutcome::error(format!(
            "not finished: these documents are still missing: {}. Write them with write_doc, then call finish",
            missing.join(", ")
        ));
    }
    ToolOutcome::Finished(arg_str(input, "summary").trim().to_string())
}

// ---------------------------------------------------------------- shared

/// A text file, cut at `cap` bytes with a note; binary files are refused.
fn read_text(resolved: &Resolved, raw: &str, cap: usize) -> ToolOutcome {
    let size = fs::metadata(&resolved.abs).map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX);
    let read = fs::File::open(&resolved.abs).and_then(|f| f.take(limit).read_to_end(&mut bytes));
    if let Err(e) = read {
        return ToolOutcome::error(format!("Could not read {raw}: {e}"));
    }
    if search::is_binary(&bytes) {
        return ToolOutcome::error(format!("{raw} is a binary file ({size} bytes); it cannot be shown"));
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if size > limit {
        // A multi-byte character cut at the cap shows as one replacement character.
        text.push_str(&format!(
            "\n[truncated: {raw} is {size} bytes; this shows the first {cap}. Use search to find the rest]"
        ));
    }
    if text.is_empty() {
        return ToolOutcome::ok(format!("({raw} is empty)"));
    }
    ToolOutcome::ok(text)
}

/// Entries of a directory (one level, or the tree when `recursive`) as repository-relative
/// paths, directories with a trailing `/`. The bool is whether the list was cut.
fn list_one_level(dir: &Resolved, recursive: bool) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut cut = false;
    if recursive {
        cut = search::walk(&dir.abs, &dir.rel, &mut |e: &Entry| {
            out.push(if e.is_dir { format!("{}/", e.rel) } else { e.rel.clone() });
            out.len() < MAX_LIST_ENTRIES
        });
    } else if let Ok(read) = fs::read_dir(&dir.abs) {
        let mut entries: Vec<String> = read
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if paths::INTERNAL_DIRS.iter().any(|d| name.eq_ignore_ascii_case(d)) {
                    return None;
                }
                let rel = if dir.rel.is_empty() {
                    name
                } else {
                    format!("{}/{name}", dir.rel)
                };
                Some(if e.file_type().is_ok_and(|t| t.is_dir()) {
                    format!("{rel}/")
                } else {
                    rel
                })
            })
            .collect();
        entries.sort();
        cut = entries.len() > MAX_LIST_ENTRIES;
        entries.truncate(MAX_LIST_ENTRIES);
        out = entries;
    }
    (out, cut)
}

fn render_entries((entries, cut): &(Vec<String>, bool), raw: &str) -> String {
    if entries.is_empty() {
        return format!("({raw} is empty)");
    }
    let mut text = entries.join("\n");
    if *cut {
        text.push_str(&format!(
            "\n[list cut at {} entries: list a subdirectory]",
            entries.len()
        ));
    }
    text
}

/// A list of strings from an array, or from a markdown bullet string (one item per line,
/// `- `/`* `/`• ` stripped, empty lines and lone bullets dropped).
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    let items: Vec<String> = match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => s.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    items
        .iter()
        .map(|line| {
            let t = line.trim();
            t.strip_prefix("- ")
                .or_else(|| t.strip_prefix("* "))
                .or_else(|| t.strip_prefix("• "))
                .unwrap_or(t)
                .trim()
                .to_string()
        })
        .filter(|t| !t.is_empty() && !matches!(t.as_str(), "-" | "*" | "•"))
        .collect()
}

/// `s` if it fits in `head + tail` bytes, else its first `head` and last `tail` bytes
/// (on character boundaries) around a marker saying how much was left out.
pub fn head_tail(s: &str, head: usize, tail: usize) -> String {
    if s.len() <= head + tail {
        return s.to_string();
    }
    let mut h = head;
    while !s.is_char_boundary(h) {
        h -= 1;
    }
    let mut t = s.len() - tail;
    while !s.is_char_boundary(t) {
        t += 1;
    }
    format!("{}\n[... {} bytes omitted ...]\n{}", &s[..h], t - h, &s[t..])
}

/// The repository-relative paths named on a `run` result's changed-files line.
pub fn changed_files_in(result: &str) -> Vec<String> {
    result
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(CHANGED_MARKER))
        .map(|rest| {
            rest.trim_end_matches(']')
                .split(", ")
                .filter(|p| !p.starts_with("... ("))
                .map(paths::normalise_rel)
                .collect()
        })
        .unwrap_or_default()
}
