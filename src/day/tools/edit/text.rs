//! The editor's text operations, free of the filesystem: line endings, numbered views,
//! exact-match counting, replacement, insertion and the hints for a failed match.

use std::fmt::Write as _;

/// Lines of context shown around an edit.
const SNIPPET_CONTEXT: usize = 4;
/// Match positions named in an "ambiguous" error at most.
const MAX_NAMED_MATCHES: usize = 20;
/// Similar lines shown for an absent `old_str`, and how similar they must be (0..1).
const MAX_SIMILAR_LINES: usize = 3;
const MIN_SIMILARITY: f64 = 0.5;
/// The similarity search looks at this many lines and characters per line at most, so a
/// huge file cannot stall the loop (edit distance is quadratic in the line length).
const MAX_SIMILARITY_LINES: usize = 20_000;
const MAX_SIMILARITY_CHARS: usize = 160;

/// A file's text as the editor works on it: CRLF files are handled as LF and written back
/// as CRLF, so the model never has to send `\r`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Doc {
    pub(super) text: String,
    /// Every line break of the file was `\r\n`.
    pub(super) crlf: bool,
    /// The file holds a `\r` that is not part of a consistent CRLF style (kept as is).
    mixed: bool,
}

impl Doc {
    pub(super) fn parse(raw: &str) -> Self {
        let breaks = raw.matches('\n').count();
        let crlf_breaks = raw.matches("\r\n").count();
        let crlf = breaks > 0 && breaks == crlf_breaks;
        if crlf {
            return Self {
                text: raw.replace("\r\n", "\n"),
                crlf,
                mixed: false,
            };
        }
        Self {
            text: raw.to_string(),
            crlf: false,
            mixed: raw.contains('\r'),
        }
    }

    /// New text (`old_str`, `new_str`, `insert_text`, `file_text`) in the form the
    /// document holds: `\r\n` becomes `\n` unless the file mixes line endings (then the
    /// model's text must match the raw bytes).
    pub(super) fn normalise(&self, input: &str) -> String {
        if self.mixed {
            input.to_string()
        } else {
            input.replace("\r\n", "\n")
        }
    }

    /// The bytes to write: CRLF again when the file was CRLF.
    pub(super) fn render(&self, text: &str) -> String {
        if self.crlf {
            text.replace('\n', "\r\n")
        } else {
            text.to_string()
        }
    }
}

/// The lines of `text` without their `\n`; a final line break does not start a line, an
/// empty text has none.
pub(super) fn lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if text.is_empty() || text.ends_with('\n') {
        lines.pop();
    }
    lines
}

/// `cat -n`: each line with its 1-based number (right-aligned in six columns) and a tab.
pub(super) fn numbered(lines: &[&str], first_number: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(out, "{:>6}\t{line}", first_number + i);
    }
    out
}

/// 1-based line of the byte `offset`.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Start offsets of every occurrence of `needle`, overlapping ones included (`aa` occurs
/// twice in `aaa`: replacing "the one" would be a guess).
pub(super) fn occurrences(text: &str, needle: &str) -> Vec<usize> {
    let mut found = Vec::new();
    if needle.is_empty() {
        return found;
    }
    let mut from = 0;
    while let Some(i) = text.get(from..).and_then(|rest| rest.find(needle)) {
        let at = from + i;
        found.push(at);
        // Step one character, not one byte: the next search must start on a boundary.
        from = at + text[at..].chars().next().map_or(1, char::len_utf8);
    }
    found
}

/// The numbered lines `first..=last` (1-based, clamped) of `text`, with their range.
pub(super) fn snippet(text: &str, first: usize, last: usize) -> (usize, usize, String) {
    let all = lines(text);
    if all.is_empty() {
        return (0, 0, String::new());
    }
    let first = first.clamp(1, all.len());
    let last = last.clamp(first, all.len());
    (first, last, numbered(&all[first - 1..last], first))
}

/// The snippet around lines `first..=last` of an edited text, with context.
pub(super) fn edit_snippet(text: &str, first: usize, last: usize) -> (usize, usize, String) {
    snippet(
        text,
        first.saturating_sub(SNIPPET_CONTEXT).max(1),
        last + SNIPPET_CONTEXT,
    )
}

/// Lines a text spans (at least one: an empty replacement still sits on a line).
pub(super) fn line_span(s: &str) -> usize {
    lines(s).len().max(1)
}

/// `text` with the text of `insert` added after line `after` (0 = before the first line).
/// `after` must be at most the number of lines. The inserted block ends with a line break,
/// and a last line without one gets it first.
pub(super) fn insert_after(text: &str, after: usize, insert: &str) -> String {
    let mut offset = 0;
    for line in text.split_inclusive('\n').take(after) {
        offset += line.len();
    }
    let mut block = String::new();
    if offset == text.len() && !text.is_empty() && !text.ends_with('\n') {
        block.push('\n');
    }
    block.push_str(insert);
    if !insert.ends_with('\n') {
        block.push('\n');
    }
    let mut out = String::with_capacity(text.len() + block.len());
    out.push_str(&text[..offset]);
    out.push_str(&block);
    out.push_str(&text[offset..]);
    out
}

/// "It occurs N times": where, as line numbers.
pub(super) fn describe_matches(text: &str, found: &[usize]) -> String {
    let mut lines: Vec<String> = found
        .iter()
        .take(MAX_NAMED_MATCHES)
        .map(|at| line_at(text, *at).to_string())
        .collect();
    if found.len() > MAX_NAMED_MATCHES {
        lines.push(format!("and {} more", found.len() - MAX_NAMED_MATCHES));
    }
    lines.join(", ")
}

/// Why `old` is not in `text`, and what is closest: the same lines with other whitespace,
/// line-number prefixes copied from `view`, or the lines most like its first line.
pub(super) fn absent_hint(text: &str, old: &str) -> String {
    let file_lines = lines(text);
    let old_lines = lines(old);
    if old_lines.iter().any(|l| has_view_prefix(l)) {
        return "It seems to contain the line numbers of `view` (`     12\\t`): they are not part of the file, leave them out.".into();
    }
    if let Some(start) = whitespace_insensitive_match(&file_lines, &old_lines) {
        let end = start + old_lines.len() - 1;
        return format!(
            "Lines {start}-{end} match it when whitespace is ignored: copy them exactly (indentation, tabs or spaces, trailing spaces):\n{}",
            numbered(&file_lines[start - 1..end], start)
        );
    }
    let Some(probe) = old_lines.iter().map(|l| l.trim()).find(|l| !l.is_empty()) else {
        return "It is only whitespace: give the exact text to replace.".into();
    };
    let similar = most_similar(&file_lines, probe);
    if similar.is_empty() {
        return "No line of the file resembles its first line: `view` the file and copy the text exactly.".into();
    }
    let mut out = String::from("The lines most like its first line are:\n");
    for (number, line) in similar {
        let _ = writeln!(out, "{number:>6}\t{line}");
    }
    out
}

/// `     12\t...` or `12: ...` at the start of a line: a number copied from a view.
fn has_view_prefix(line: &str) -> bool {
    let trimmed = line.trim_start_matches(' ');
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && trimmed[digits..].starts_with('\t')
}

/// The first 1-based line where every line of `old` equals the file's line once both are
/// trimmed.
fn whitespace_insensitive_match(file: &[&str], old: &[&str]) -> Option<usize> {
    if old.is_empty() || old.len() > file.len() || old.iter().all(|l| l.trim().is_empty()) {
        return None;
    }
    (0..=file.len() - old.len())
        .find(|&start| {
            old.iter()
                .zip(&file[start..start + old.len()])
                .all(|(a, b)| a.trim() == b.trim())
        })
        .map(|start| start + 1)
}

/// Up to [`MAX_SIMILAR_LINES`] lines (number, text) at least [`MIN_SIMILARITY`] like
/// `probe`, best first.
fn most_similar<'t>(file: &[&'t str], probe: &str) -> Vec<(usize, &'t str)> {
    let probe = crate::text::head_chars(probe, MAX_SIMILARITY_CHARS);
    let probe_len = probe.chars().count();
    let mut scored: Vec<(f64, usize, &str)> = file
        .iter()
        .take(MAX_SIMILARITY_LINES)
        .enumerate()
        .filter_map(|(i, line)| {
            let candidate = crate::text::head_chars(line.trim(), MAX_SIMILARITY_CHARS);
            let len = candidate.chars().count();
            // Lines of very different length cannot reach the threshold: skip the work.
            if candidate.is_empty() || len * 3 < probe_len || probe_len * 3 < len {
                return None;
            }
            let score = strsim::normalized_levenshtein(probe, candidate);
            (score >= MIN_SIMILARITY).then_some((score, i + 1, *line))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(MAX_SIMILAR_LINES)
        .map(|(_, number, line)| (number, line))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_files_are_edited_as_lf_and_written_back_as_crlf() {
        let doc = Doc::parse("a\r\nb\r\n");
        assert!(doc.crlf);
        assert_eq!(doc.text, "a\nb\n");
        assert_eq!(doc.normalise("a\r\nb"), "a\nb");
        assert_eq!(doc.render("a\nc\n"), "a\r\nc\r\n");
        let mixed = Doc::parse("a\r\nb\n");
        assert!(!mixed.crlf);
        assert_eq!(mixed.text, "a\r\nb\n");
        assert_eq!(mixed.normalise("a\r\nb"), "a\r\nb", "a mixed file is matched raw");
        assert_eq!(mixed.render("x\n"), "x\n");
        assert!(!Doc::parse("").crlf);
    }

    #[test]
    fn lines_and_numbering() {
        assert_eq!(lines(""), Vec::<&str>::new());
        assert_eq!(lines("a"), ["a"]);
        assert_eq!(lines("a\n"), ["a"]);
        assert_eq!(lines("a\n\nb"), ["a", "", "b"]);
        assert_eq!(numbered(&["x", "y"], 9), "     9\tx\n    10\ty\n");
        assert_eq!(line_at("a\nb\nc", 4), 3);
    }

    #[test]
    fn occurrences_overlap_and_respect_char_boundaries() {
        assert_eq!(occurrences("aaa", "aa"), [0, 1]);
        assert_eq!(occurrences("éxé", "é"), [0, 3]);
        assert!(occurrences("abc", "").is_empty());
    }

    #[test]
    fn insert_after_top_middle_end_and_missing_final_newline() {
        assert_eq!(insert_after("a\nb\n", 0, "x"), "x\na\nb\n");
        assert_eq!(insert_after("a\nb\n", 1, "x\ny\n"), "a\nx\ny\nb\n");
        assert_eq!(insert_after("a\nb\n", 2, "x"), "a\nb\nx\n");
        assert_eq!(insert_after("a\nb", 2, "x"), "a\nb\nx\n");
        assert_eq!(insert_after("", 0, "x"), "x\n");
    }

    #[test]
    fn hints_for_an_absent_string() {
        let text = "fn main() {\n\tlet x = 1;\n\tprintln!(\"{x}\");\n}\n";
        let ws = absent_hint(text, "    let x = 1;\n    println!(\"{x}\");");
        assert!(ws.starts_with("Lines 2-3 match it when whitespace is ignored"), "{ws}");
        let near = absent_hint(text, "let y = 1;");
        assert!(near.contains("     2\t\tlet x = 1;"), "{near}");
        let numbers = absent_hint(text, "     2\tlet x = 1;");
        assert!(numbers.contains("line numbers of `view`"), "{numbers}");
        let nothing = absent_hint(text, "completely unrelated words here");
        assert!(nothing.starts_with("No line of the file resembles"), "{nothing}");
    }

    proptest::proptest! {
        /// A file goes back to disk as it came, whatever its line endings, and an insert
        /// keeps every line of the file in order with the new lines at their place.
        #[test]
        fn round_trip_and_insert_keep_the_file(raw in "[ab\\r\\n]{0,30}", block in "[xy\\n]{1,8}", at in 0usize..40) {
            let doc = Doc::parse(&raw);
            proptest::prop_assert_eq!(doc.render(&doc.text), raw.clone());
            let before = lines(&doc.text);
            let after = at.min(before.len());
            let edited = insert_after(&doc.text, after, &block);
            let got = lines(&edited);
            let added = lines(&block).len().max(1);
            proptest::prop_assert_eq!(got.len(), before.len() + added);
            proptest::prop_assert_eq!(&got[..after], &before[..after]);
            proptest::prop_assert_eq!(&got[after + added..], &before[after..]);
        }
    }

    #[test]
    fn snippets_are_clamped() {
        let text = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let (first, last, shown) = edit_snippet(text, 1, 1);
        assert_eq!((first, last), (1, 5));
        assert!(shown.starts_with("     1\t1\n"));
        assert_eq!(edit_snippet(text, 10, 12).1, 10);
    }
}
