//! Walking the repository for `list_files` (recursive) and `search`: sorted, bounded,
//! never following symlinks, skipping `.git`, `.pace`, dependency and build directories.

use std::fs;
use std::io::Read;
use std::path::Path;

use regex::Regex;

use super::paths::{INTERNAL_DIRS, looks_like_secret};

/// Directories a recursive walk does not enter (dependencies, build output, caches).
pub const SKIP_DIRS: [&str; 15] = [
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
/// Files larger than this are not searched.
const MAX_SEARCH_FILE_BYTES: u64 = 1024 * 1024;
/// A matching line is shown up to this many characters.
const MAX_LINE_CHARS: usize = 200;

pub fn is_skipped_dir(name: &str) -> bool {
    INTERNAL_DIRS
        .iter()
        .chain(SKIP_DIRS.iter())
        .any(|d| name.eq_ignore_ascii_case(d))
}

/// One entry of a walk: repository-relative path and whether it is a directory.
pub struct Entry {
    pub rel: String,
    pub is_dir: bool,
}

/// Depth-first, sorted walk below `start` (absolute, `start_rel` its relative form).
/// Stops when `visit` returns false or after [`MAX_WALK_ENTRIES`]; returns whether it
/// stopped early.
pub fn walk(start: &Path, start_rel: &str, visit: &mut dyn FnMut(&Entry) -> bool) -> bool {
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

/// Matches of `re` in one file as `rel:line: text`, appended to `hits` up to `max`.
/// Binary, oversized and secret-looking files are skipped.
pub fn search_file(abs: &Path, rel: &str, re: &Regex, max: usize, hits: &mut Vec<String>) {
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
            let shown = super::router::truncate_chars(line.trim_end(), MAX_LINE_CHARS);
            hits.push(format!("{rel}:{}: {shown}", n + 1));
        }
    }
}

/// A NUL byte in the first 8 KiB marks a binary file (git's heuristic).
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8 * 1024).any(|b| *b == 0)
}
