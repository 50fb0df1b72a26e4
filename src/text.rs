//! Cutting text to a size: the one place that knows about character boundaries and cut
//! markers.
//!
//! Every helper cuts between characters, never inside a UTF-8 sequence. Sizes are bytes
//! where the limit protects a buffer or a request (tool results, prompts, descriptions a
//! server counts in bytes) and characters where a reader or a service counts characters
//! (titles, error excerpts).

/// What platforms append to a text they had to cut.
pub const TRUNCATED_NOTE: &str = "\n\n… (truncated; the full text is in the artifacts)";

/// The longest prefix of `text` of at most `max_bytes` bytes.
pub fn head(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The longest suffix of `text` of at most `max_bytes` bytes.
pub fn tail(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// `text` if it fits in `head_bytes + tail_bytes` bytes, else its first `head_bytes` and
/// last `tail_bytes` bytes around a line saying how many bytes were left out. Long outputs
/// keep their end because that is where compilers and test runners say what failed.
pub fn head_tail(text: &str, head_bytes: usize, tail_bytes: usize) -> String {
    if text.len() <= head_bytes.saturating_add(tail_bytes) {
        return text.to_string();
    }
    let (h, t) = (head(text, head_bytes), tail(text, tail_bytes));
    let omitted = text.len() - h.len() - t.len();
    format!("{h}\n[... {omitted} bytes omitted ...]\n{t}")
}

/// `text` if it has at most `max_bytes` bytes, else its longest prefix within that size
/// followed by `note`.
pub fn truncate_bytes(text: &str, max_bytes: usize, note: &str) -> String {
    if text.len() <= max_bytes {
        return text.to_string();
    }
    format!("{}{note}", head(text, max_bytes))
}

/// The first `max_chars` characters of `text`.
pub fn head_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `text` if it has at most `max_chars` characters, else its first `max_chars` followed
/// by `note` (`"..."`, `"…"`, [`TRUNCATED_NOTE`]).
pub fn truncate_chars(text: &str, max_chars: usize, note: &str) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}{note}", &text[..end]),
        None => text.to_string(),
    }
}

/// One line (every run of whitespace, newlines included, becomes one space) of at most
/// `max_chars` characters, the last one `…` when cut. For titles and table cells, which
/// platforms and Markdown break on newlines.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        return flat;
    }
    truncate_chars(&flat, max_chars.saturating_sub(1), "…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_tail_never_split_a_character() {
        // `é` is two bytes: a cut in its middle moves out of the character.
        assert_eq!(head("aéb", 2), "a");
        assert_eq!(head("aéb", 3), "aé");
        assert_eq!(tail("aéb", 2), "b");
        assert_eq!(tail("aéb", 3), "éb");
        assert_eq!(head("abc", 10), "abc");
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(head("abc", 0), "");
        assert_eq!(tail("abc", 0), "");
    }

    #[test]
    fn head_tail_keeps_both_ends_and_counts_what_it_left_out() {
        assert_eq!(
            head_tail("abcdefghijklmnop", 4, 4),
            "abcd\n[... 8 bytes omitted ...]\nmnop"
        );
        assert_eq!(head_tail("abcdefgh", 4, 4), "abcdefgh", "a text that fits is whole");
        assert_eq!(head_tail("abcdef", 2, 0), "ab\n[... 4 bytes omitted ...]\n");
        assert_eq!(head_tail("abc", usize::MAX, usize::MAX), "abc");
        let cut = head_tail(&"é".repeat(100), 11, 11);
        // 5 characters (10 bytes) on each side; the rest, 180 bytes, is named.
        assert_eq!(
            cut,
            format!("{}\n[... 180 bytes omitted ...]\n{}", "é".repeat(5), "é".repeat(5))
        );
    }

    #[test]
    fn truncate_bytes_appends_the_note_only_when_it_cuts() {
        assert_eq!(truncate_bytes("abcdef", 6, "[cut]"), "abcdef");
        assert_eq!(truncate_bytes("abcdef", 4, "[cut]"), "abcd[cut]");
        assert_eq!(truncate_bytes("ééé", 5, "[cut]"), "éé[cut]");
    }

    #[test]
    fn character_limits_count_characters_not_bytes() {
        assert_eq!(head_chars("ééé", 2), "éé");
        assert_eq!(head_chars("ééé", 9), "ééé");
        assert_eq!(truncate_chars("ééé", 3, "..."), "ééé");
        assert_eq!(truncate_chars("éééé", 3, "..."), "ééé...");
        assert_eq!(truncate_chars("abcd", 0, "…"), "…");
        assert_eq!(
            truncate_chars("long body", 4, TRUNCATED_NOTE),
            "long\n\n… (truncated; the full text is in the artifacts)"
        );
    }

    #[test]
    fn one_line_flattens_whitespace_and_marks_the_cut_within_the_limit() {
        assert_eq!(one_line("a\n  b\tc ", 10), "a b c");
        assert_eq!(one_line("abcdef", 6), "abcdef");
        assert_eq!(one_line("abcdefg", 6), "abcde…");
        assert_eq!(one_line("abcdefg", 6).chars().count(), 6);
        assert_eq!(one_line("ab", 0), "…");
    }
}
