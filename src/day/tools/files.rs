//! Reading the repository for the file tools: the sorted, bounded walk behind
//! `list_files` and `search` (never following symlinks, skipping `.git`, `.pace`,
//! dependency and build directories), capped text reads and directory listings.

use std::fs;
use std::io::Read;
use std::path::Path;

use super::paths::{INTERNAL_DIRS, Jail, PathError, Resolved};
use super::{ToolContext, ToolOutcome};

/// Largest `write_file` / `write_doc` content.
pub(super) const WRITE_CAP_BYTES: usize = 1024 * 1024;

/// Directories a recursive walk does not enter (dependencies, build output, caches).
pub(super) const SKIP_DIRS: [&str; 15] = [
    "node_modules",
    "target",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
    ".gradle",
    ".idea",
    ".next",
    "vendor",
    ".terraform",
    "dist",
];

/// Entries visited by one walk at most (keeps a huge tree from stalling the loop).
const MAX_WALK_ENTRIES: usize = 50_000;
/// Entries `list_files` / `read_file` on a directory show at most.
const MAX_LIST_ENTRIES: usize = 2_000;

/// A confinement refusal as the model sees it.
pub(super) fn path_error(e: &PathError) -> ToolOutcome {
    ToolOutcome::error(e.to_string())
}

/// SCRIBE's path prefixes: `docs:x` → the docs root (the repository when none is
/// configured); `repo:x` or `x` → the repository.
pub(super) fn scribe_root<'c>(ctx: &'c ToolContext<'_>, raw: &'c str) -> (&'c Jail, &'c str) {
    if let Some(rest) = raw.strip_prefix("docs:") {
        (ctx.docs.as_ref().unwrap_or(&ctx.jail), rest)
    } else {
        (&ctx.jail, raw.strip_prefix("repo:").unwrap_or(raw))
    }
}

pub(super) fn is_skipped_dir(name: &str) -> bool {
    INTERNAL_DIRS
        .iter()
        .chain(SKIP_DIRS.iter())
        .any(|d| name.eq_ignore_ascii_case(d))
}

/// One entry of a walk: repository-relative path and whether it is a directory.
pub(super) struct Entry {
    pub rel: String,
    pub is_dir: bool,
}

/// Depth-first, sorted walk below `start` (absolute, `start_rel` its relative form).
/// Stops when `visit` returns false or after [`MAX_WALK_ENTRIES`]; returns whether it
/// stopped early.
pub(super) fn walk(start: &Path, start_rel: &str, visit: &mut dyn FnMut(&Entry) -> bool) -> bool {
    let mut stack = vec![(start.to_path_buf(), start_rel.to_string())];
    let mut seen = 0usize;
    while let Some((dir, dir_rel)) = stack.pop() {
        let Ok(read) = fs::read_dir(&dir) else {
            continue;
        };
        let mut children: Vec<(String, bool, bool)> = read
            .filter_map(Result::ok)
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let ft = e.file_type().ok();
                let is_link = ft.is_some_and(|t| t.is_symlink());
                let is_dir = ft.is_some_and(|t| t.is_dir());
                (name, is_dir, is_link)
            })
            .collect();
        children.sort_by(|a, b| a.0.cmp(&b.0));
        let mut subdirs = Vec::new();
        for (name, is_dir, is_link) in children {
            if INTERNAL_DIRS.iter().any(|d| name.eq_ignore_ascii_case(d)) {
                continue;
            }
            seen += 1;
            if seen > MAX_WALK_ENTRIES {
                return true;
            }
            let rel = if dir_rel.is_empty() {
                name.clone()
            } else {
                format!("{dir_rel}/{name}")
            };
            if !visit(&Entry {
                rel: rel.clone(),
                is_dir,
            }) {
                return true;
            }
            if is_dir && !is_link && !is_skipped_dir(&name) {
                subdirs.push((dir.join(&name), rel));
            }
        }
        // Reverse so the alphabetically first directory is walked first.
        stack.extend(subdirs.into_iter().rev());
    }
    false
}

/// A NUL byte in the first 8 KiB marks a binary file (git's heuristic).
pub(super) fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8 * 1024).any(|b| *b == 0)
}

/// A text file, cut at `cap` bytes with a note; binary files are refused.
pub(super) fn read_text(resolved: &Resolved, raw: &str, cap: usize) -> ToolOutcome {
    let size = fs::metadata(&resolved.abs).map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX);
    let read = fs::File::open(&resolved.abs).and_then(|f| f.take(limit).read_to_end(&mut bytes));
    if let Err(e) = read {
        return ToolOutcome::error(format!("Could not read {raw}: {e}"));
    }
    if is_binary(&bytes) {
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
pub(super) fn list_entries(dir: &Resolved, recursive: bool) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut cut = false;
    if recursive {
        cut = walk(&dir.abs, &dir.rel, &mut |e: &Entry| {
            out.push(if e.is_dir { format!("{}/", e.rel) } else { e.rel.clone() });
            out.len() < MAX_LIST_ENTRIES
        });
    } else if let Ok(read) = fs::read_dir(&dir.abs) {
        let mut entries: Vec<String> = read
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if INTERNAL_DIRS.iter().any(|d| name.eq_ignore_ascii_case(d)) {
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

pub(super) fn render_entries((entries, cut): &(Vec<String>, bool), raw: &str) -> String {
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
