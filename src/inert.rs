//! Untrusted text made inert. Everything a model wrote or a test suite printed passes one
//! of these functions, chosen by where it goes, before it reaches a platform, a commit or
//! the job log:
//!
//! | sink | function |
//! |---|---|
//! | GitLab / Bitbucket / local Markdown (MR/PR, issue, note, comment, `summary.md`) | [`markdown`] |
//! | a title (MR/PR, issue, Jira summary, build status) | [`title`] |
//! | inline code / a fenced block inside pace's Markdown | [`code_span`], [`fenced`] |
//! | a Jira ADF text node (plain text: Jira parses no markup in it) | [`jira`] |
//! | a commit message | [`commit_message`] |
//! | a terminal line or the CI job log | [`log`] |
//!
//! Every sink first drops what a terminal or a log viewer would execute ([`strip_controls`]).
//! What a sink would otherwise interpret is kept visible and made inert by a zero-width space
//! (U+200B) at the one place that makes it a command, so the text reads the same and the
//! same function works in plain text, in code spans and in code blocks alike.

use std::sync::LazyLock;

use regex::Regex;

use crate::redact::Redactor;

/// Inserted where a character would otherwise start a command, a tag or a mention.
pub const ZWSP: char = '\u{200B}';

/// Removes what a terminal, a log viewer or a bidi-aware renderer would act on, and keeps
/// the text: ANSI/VT escape sequences (CSI, OSC including OSC 8 hyperlinks and OSC 52
/// clipboard writes, DCS, SOS, PM, APC, and two-character `ESC x`), the C1 controls
/// U+0080–U+009F (the 8-bit forms of the same introducers), every other C0 control and
/// DEL, and the bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069)
/// that reorder what is shown. `\n` and `\t` stay; `\r\n` becomes `\n` and a lone `\r`
/// becomes `\n`, so a carriage return cannot overwrite a line in a log and what it would
/// have hidden stays visible.
///
/// Not `strip-ansi-escapes`: it drops `\t`, keeps C1 controls and bidi overrides, and an
/// unterminated OSC swallows the rest of the text. Here a string sequence ends at the end
/// of its line at the latest.
pub fn strip_controls(text: &str) -> String {
    // Most text is printable ASCII: nothing to remove (suite output streams through here).
    if text
        .bytes()
        .all(|b| (b' '..b'\x7f').contains(&b) || b == b'\n' || b == b'\t')
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\u{1b}' => match chars.peek().copied() {
                Some('[') => {
                    chars.next();
                    skip_csi(&mut chars);
                }
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    chars.next();
                    skip_string(&mut chars);
                }
                // nF escapes (`ESC ( B`, ...): intermediates, then one final byte.
                Some(' '..='/') => {
                    while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
                    chars.next_if(|c| ('0'..='~').contains(c));
                }
                // Two-character escapes (`ESC c` resets the terminal, `ESC 7`, ...).
                Some('0'..='~') => {
                    chars.next();
                }
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if is_hidden(c) => {}
            c => out.push(c),
        }
    }
    out
}

fn is_hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// After `ESC [`: parameter bytes, intermediate bytes, one final byte. Anything else ends
/// the sequence early (and is then handled as text: a newline stays a newline).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|c| ('0'..='?').contains(c)).is_some() {}
    while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
    chars.next_if(|c| ('@'..='~').contains(c));
}

/// After an OSC/DCS/SOS/PM/APC introducer: everything up to BEL, ST (`ESC \` or U+009C),
/// or the end of the line (which stays). Another `ESC` ends the string too and is left to
/// start the next sequence.
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(&c) = chars.peek() {
        match c {
            '\n' | '\r' => return,
            '\u{7}' | '\u{9c}' => {
                chars.next();
                return;
            }
            '\u{1b}' => {
                let mut ahead = chars.clone();
                ahead.next();
                if ahead.peek() == Some(&'\\') {
                    chars.next();
                    chars.next();
                }
                return;
            }
            _ => {
                chars.next();
            }
        }
    }
}

/// A line that GitLab would run as a quick action: `/word` at the start of a line (GitLab
/// requires column 0; leading whitespace is neutralised too, in case a later version
/// trims it).
static QUICK_ACTION: LazyLock<Regex> = LazyLock::new(|| regex(r"(?m)^([ \t]*)/"));
/// A Markdown link reference definition (`[label]: url`, invisible when rendered), also
/// inside a blockquote or a list item.
static LINK_DEFINITION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?m)^((?:[ \t]*(?:>|[*+-]|\d{1,9}[.)]))*[ \t]*)\[([^\]\n]*\]:)"));
/// The start of an HTML tag, comment, declaration or processing instruction, and of an
/// autolink: `<` followed by a letter, `/`, `!` or `?`.
static HTML_START: LazyLock<Regex> = LazyLock::new(|| regex(r"<([A-Za-z/!?])"));
/// A mention: `@name` (GitLab, Bitbucket), `@{uuid}` (Bitbucket), not an email address.
/// GitLab's `(?<!\w)@name` with Ruby's ASCII `\w`.
static MENTION: LazyLock<Regex> = LazyLock::new(|| regex(r"(^|[^0-9A-Za-z_])@([0-9A-Za-z_.{-])"));
/// GitLab's default closing pattern (and Jira's through the integration): a keyword
/// followed by an issue reference closes that issue when the MR or commit is merged.
static CLOSING: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b([cfri])(los(?:e[sd]?|ing)|ix(?:e[sd]|ing)?|esolv(?:e[sd]?|ing)|mplement(?:s|ed|ing)?)(:?[ \t]+(?:issues?[ \t]+)?(?:[\w./-]*#\d|https?://|[A-Z][A-Z0-9_]+-\d))",
    )
});
/// Jira smart commits: `KEY-12 #close`, `#comment ...`, `#time 1h` in a commit message act
/// on the issue; a command is a `#word` in a message that names an issue key.
static ISSUE_KEY: LazyLock<Regex> = LazyLock::new(|| regex(r"\b[A-Z][A-Z0-9_]+-\d+\b"));
static SMART_COMMAND: LazyLock<Regex> = LazyLock::new(|| regex(r"(^|\s)#([A-Za-z])"));
/// GitLab's job-log section markers.
static SECTION: LazyLock<Regex> = LazyLock::new(|| regex(r"section_(start|end):"));

#[allow(clippy::expect_used)]
fn regex(pattern: &str) -> Regex {
    // The patterns are constants of this module; the unit tests compile every one.
    Regex::new(pattern).expect("a constant regex of src/inert.rs")
}

/// Markdown for GitLab and Bitbucket (MR/PR and issue descriptions, notes, comments) and
/// the local `summary.md` / `merge-request.md` / `escalation.md`:
/// - controls and escapes removed ([`strip_controls`]), then secrets redacted (so an escape
///   cannot split a secret past the redactor, and no zero-width space below can);
/// - quick actions: a zero-width space before the `/` that starts a line (GitLab matches
///   `^/command`; a code block would protect it only if model text could not close it);
/// - HTML (comments, `<details>`, tags, autolinks): a zero-width space after `<`, so the
///   tag shows as text instead of hiding or folding what follows;
/// - link reference definitions (`[x]: url`, not rendered): a zero-width space before `[`;
/// - mentions (`@user`, `@all`, `@{uuid}`): a zero-width space after `@`, so model text
///   notifies nobody; `#123` and `!123` references stay links;
/// - closing patterns (`Closes #12`, `fixes group/p#3`, `Resolves ABC-1`): a zero-width
///   space inside the keyword, so merging the MR closes nothing.
///
/// Idempotent: the platforms apply it again to whatever they wrap around a summary.
pub fn markdown(text: &str, redactor: &Redactor) -> String {
    let text = redactor.redact(&strip_controls(text));
    let text = QUICK_ACTION.replace_all(&text, format!("${{1}}{ZWSP}/").as_str());
    let text = LINK_DEFINITION.replace_all(&text, format!("${{1}}{ZWSP}[${{2}}").as_str());
    let text = HTML_START.replace_all(&text, format!("<{ZWSP}${{1}}").as_str());
    let text = MENTION.replace_all(&text, format!("${{1}}@{ZWSP}${{2}}").as_str());
    neutralise_closing(&text)
}

fn neutralise_closing(text: &str) -> String {
    CLOSING
        .replace_all(text, format!("${{1}}{ZWSP}${{2}}${{3}}").as_str())
        .into_owned()
}

/// A title (MR/PR, issue, Jira summary, build status): [`markdown`] on one line of at most
/// `max` characters (platform titles reject newlines).
pub fn title(text: &str, max: usize, redactor: &Redactor) -> String {
    crate::text::one_line(&markdown(text, redactor), max)
}

/// For pace's own Markdown templates; the body they go into still passes [`markdown`].
/// `text` as an inline code span that it cannot close: the fence is one backtick longer
/// than the longest run of backticks inside (CommonMark), padded with a space when the
/// text starts or ends with a backtick. Controls are removed and the span is one line.
pub fn code_span(text: &str) -> String {
    let text = crate::text::one_line(&strip_controls(text), usize::MAX);
    let fence = "`".repeat(longest_run(&text, '`') + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// `text` as a fenced code block that no line of it can close: the fence is longer than
/// any run of backticks in the text (CommonMark: a closing fence is at least as long as the
/// opening one). The body it goes into still passes [`markdown`], which neutralises quick
/// actions inside the block too, for a platform that reads fences differently.
pub fn fenced(text: &str, info: &str) -> String {
    let text = strip_controls(text);
    let fence = "`".repeat((longest_run(&text, '`') + 1).max(3));
    let info = crate::text::one_line(&strip_controls(info), 40).replace('`', "");
    format!("{fence}{info}\n{}\n{fence}", text.trim_end_matches('\n'))
}

fn longest_run(text: &str, c: char) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for x in text.chars() {
        run = if x == c { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// Text for a Jira ADF text node. ADF is a JSON tree: a text node is shown as it is (no
/// wiki markup, no mentions: those are separate node types), so only the controls go
/// (the escalation body arrives rendered by [`markdown`], already redacted).
pub fn jira(text: &str) -> String {
    strip_controls(text)
}

/// A commit message: controls removed, secrets redacted; closing patterns neutralised (GitLab closes
/// `Closes #12` issues when the commit reaches the default branch); Jira smart-commit
/// commands (`ABC-1 #close`, `#comment`, `#time`) neutralised in a message that names an
/// issue key (Jira reads the commands of a key on the following lines too). Quick actions and HTML mean nothing in a commit message and are left as written.
pub fn commit_message(text: &str, redactor: &Redactor) -> String {
    let text = neutralise_closing(&redactor.redact(&strip_controls(text)));
    if ISSUE_KEY.is_match(&text) {
        SMART_COMMAND
            .replace_all(&text, format!("${{1}}#{ZWSP}${{2}}").as_str())
            .into_owned()
    } else {
        text
    }
}

/// A terminal line or the CI job log (the caller has redacted it: the printer has no
/// secrets): controls removed (GitLab's log renderer acts on
/// ANSI escapes and `\r`), and `section_start:`/`section_end:` broken by a zero-width
/// space (a marker needs `\r` and `ESC [0K`, which are gone, but a forged marker should not
/// even look like one). pace's own sections are added after this, by the printer.
pub fn log(text: &str) -> String {
    SECTION
        .replace_all(&strip_controls(text), format!("section{ZWSP}_${{1}}:").as_str())
        .into_owned()
}

/// A held line longer than this is shown anyway (one line of a suite's output can be a
/// megabyte of minified text); an escape split exactly there loses its tail's meaning only.
const LOG_LINE_MAX: usize = 64 * 1024;

/// A byte stream (a test suite's output, streamed by `pace gate`) made inert for a terminal
/// or the job log. Each chunk goes through [`log`] once it is whole: up to its last newline
/// at once; the rest of the line at once too when it is plain text (a progress bar stays
/// live), and held until its newline when it holds a control character or ends inside a
/// UTF-8 character (an escape sequence split across chunks is judged whole).
#[derive(Debug, Default)]
pub struct LogLines {
    pending: Vec<u8>,
}

impl LogLines {
    /// What to print now for `chunk`.
    pub fn push(&mut self, chunk: &[u8]) -> String {
        self.pending.extend_from_slice(chunk);
        let lines = self.pending.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let rest = &self.pending[lines..];
        let plain = std::str::from_utf8(rest).is_ok_and(|s| !s.chars().any(|c| c.is_control() && c != '\t'));
        let cut = if plain || rest.len() >= LOG_LINE_MAX {
            self.pending.len()
        } else {
            lines
        };
        let done: Vec<u8> = self.pending.drain(..cut).collect();
        log(&String::from_utf8_lossy(&done))
    }

    /// What is left when the stream ends.
    pub fn finish(&mut self) -> String {
        let done = std::mem::take(&mut self.pending);
        log(&String::from_utf8_lossy(&done))
    }
}

#[cfg(test)]
mod tests;
