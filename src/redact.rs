//! Secret redaction: every string that leaves pace (artifacts, logs, commits, transcript,
//! MR/issue bodies) passes through a [`Redactor`] built from the environment.
//!
//! A secret is found as it is and also encoded the ways a test suite or a model would print
//! it: base64 (standard and URL-safe alphabets, padded or not, alone or inside a larger
//! encoded blob, on one line or wrapped over several as `base64`, PEM and MIME write it), hex (lower and upper case) and URL-encoding (`%XX` in either case, `+` or
//! `%20` for a space). Every needle is computed once in [`Redactor::new`]; a redaction is
//! one pass of an Aho-Corasick automaton over the text plus, for secrets that contain
//! characters URL-encoding changes, one pass of a regex: both linear in the text.

use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use regex::Regex;

pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are redacted only as they are, not in encoded form. The
/// shortest encoded needle of an 8-byte secret is 10 base64 characters (60 bits) or 16 hex
/// digits (64 bits): long enough not to hit ordinary text, commit SHAs or other base64
/// data by chance. A 3-byte secret would be 2 base64 characters at an unaligned offset, and
/// the hex of a short numeric secret is a run of digits that timestamps and counts contain.
/// Real tokens (GitLab, Bitbucket, Jira, LLM keys) are 20 bytes and more.
pub const MIN_ENCODED_LEN: usize = 8;

#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<Inner>,
}

/// Never the secrets: a context that derives `Debug` and is logged must not print them.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.inner.secrets.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// The secrets as given, longest first (kept for [`Redactor::is_empty`]).
    secrets: Vec<String>,
    /// Each secret and its base64 and hex forms; leftmost-longest, so a secret that
    /// contains another (or a padded encoding that contains the unpadded one) is replaced
    /// whole.
    literals: Option<AhoCorasick>,
    /// The URL-encoded forms of the secrets that URL-encoding changes: every character that
    /// an encoder may escape matches as itself or as `%XX` in either case.
    url_encoded: Option<Regex>,
    /// Base64 wrapped over lines ([`WRAPPED_BASE64`]); built only when there are literals.
    wrapped: Option<Regex>,
}

/// A base64 blob wrapped over several lines: `base64` wraps at 76 characters, PEM and
/// `openssl base64` at 64, MIME at 76, YAML and JSON dumps indent the continuation lines.
/// Each line but the last is a run of at least 20 base64 characters (ordinary prose does
/// not end its lines so), so the literal needles, which cannot match across the line
/// break, are looked for again in the joined blob.
const WRAPPED_BASE64: &str = r"(?:[A-Za-z0-9+/_-]{20,}\r?\n[ \t]*)+[A-Za-z0-9+/=_-]+";

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let mut needles: Vec<String> = Vec::new();
        let mut url_patterns: Vec<String> = Vec::new();
        for secret in &secrets {
            needles.push(secret.clone());
            if secret.len() >= MIN_ENCODED_LEN {
                needles.extend(encoded_needles(secret.as_bytes()));
                if let Some(pattern) = url_encoded_pattern(secret) {
                    url_patterns.push(pattern);
                }
            }
        }
        needles.sort();
        needles.dedup();
        let literals = (!needles.is_empty())
            .then(|| {
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&needles)
                    .map_err(|e| tracing::warn!("redaction: cannot build the secret matcher: {e}"))
                    .ok()
            })
            .flatten();
        // Longest secret first: an alternation prefers its earlier branches.
        let url_encoded = (!url_patterns.is_empty())
            .then(|| {
                regex::RegexBuilder::new(&url_patterns.join("|"))
                    .size_limit(64 << 20)
                    .build()
                    .map_err(|e| tracing::warn!("redaction: cannot build the URL-encoded secret matcher: {e}"))
                    .ok()
            })
            .flatten();
        let wrapped = literals.as_ref().and_then(|_| {
            Regex::new(WRAPPED_BASE64)
                .map_err(|e| tracing::warn!("redaction: {e}"))
                .ok()
        });
        Self {
            inner: Arc::new(Inner {
                secrets,
                literals,
                url_encoded,
                wrapped,
            }),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = match &self.inner.literals {
            Some(ac) => {
                let mut out = String::with_capacity(text.len());
                ac.replace_all_with(text, &mut out, |_, _, dst| {
                    dst.push_str(REDACTED);
                    true
                });
                out
            }
            None => text.to_string(),
        };
        if let (Some(ac), Some(wrapped)) = (&self.inner.literals, &self.inner.wrapped) {
            out = redact_wrapped(ac, wrapped, out);
        }
        if let Some(re) = &self.inner.url_encoded
            && re.is_match(&out)
        {
            out = re.replace_all(&out, REDACTED).into_owned();
        }
        out
    }

    /// Redacts every string inside a JSON value, keys included.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => *s = self.redact(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
                for (key, mut v) in entries {
                    self.redact_json(&mut v);
                    map.insert(self.redact(&key), v);
                }
            }
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.inner.secrets.is_empty()
    }
}

/// Replaces the needles that a line break inside a wrapped base64 blob hid from the
/// literal pass: each blob is joined without its breaks and indentation, searched, and
/// every match is cut from the text together with the breaks inside it.
fn redact_wrapped(ac: &AhoCorasick, wrapped: &Regex, text: String) -> String {
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for blob in wrapped.find_iter(&text) {
        // Byte offset in `text` of each byte kept in the joined blob (all ASCII).
        let (joined, offsets): (Vec<u8>, Vec<usize>) = blob
            .as_str()
            .bytes()
            .enumerate()
            .filter(|(_, b)| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .map(|(i, b)| (b, blob.start() + i))
            .unzip();
        for found in ac.find_iter(&joined) {
            cuts.push((offsets[found.start()], offsets[found.end() - 1] + 1));
        }
    }
    if cuts.is_empty() {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in cuts {
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The hex and base64 forms of `secret` that are fixed whatever surrounds it.
fn encoded_needles(secret: &[u8]) -> Vec<String> {
    let mut needles = vec![hex::encode(secret), hex::encode_upper(secret)];
    // The secret encoded alone: padded and unpadded (the padded form is the longer match).
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        needles.push(engine.encode(secret));
    }
    // Inside a larger blob the secret starts at byte offset 0, 1 or 2 of a 3-byte group.
    // Encode it behind that many filler bytes and keep only the characters whose 6 bits
    // come from the secret alone: they appear in any blob that contains the secret at
    // that alignment, whatever the bytes around it.
    for offset in 0..3usize {
        let mut bytes = vec![0u8; offset];
        bytes.extend_from_slice(secret);
        let first = (8 * offset).div_ceil(6);
        let end = 8 * (offset + secret.len()) / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&bytes);
            if let Some(stable) = encoded.get(first..end) {
                needles.push(stable.to_string());
            }
        }
    }
    needles
}

/// A regex for `secret` as any URL-encoder writes it, or `None` when URL-encoding leaves
/// it unchanged (then the plain needle finds it). Each character outside RFC 3986's
/// unreserved set matches as itself or as its UTF-8 bytes in `%XX` (either case); a space
/// also as `+`.
fn url_encoded_pattern(secret: &str) -> Option<String> {
    let unreserved = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
    if secret.chars().all(unreserved) {
        return None;
    }
    let mut pattern = String::new();
    for c in secret.chars() {
        if unreserved(c) {
            pattern.push(c);
            continue;
        }
        let mut buf = [0u8; 4];
        let percent: String = c
            .encode_utf8(&mut buf)
            .bytes()
            .map(|b| {
                format!("%{b:02X}")
                    .chars()
                    .map(|h| match h {
                        'A'..='F' => format!("[{h}{}]", h.to_ascii_lowercase()),
                        _ => h.to_string(),
                    })
                    .collect::<String>()
            })
            .collect();
        let plus = if c == ' ' { "|\\+" } else { "" };
        pattern.push_str(&format!("(?:{}|{percent}{plus})", regex::escape(&c.to_string())));
    }
    Some(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "glpat-Zk9Q2vX8mN4pR7tY1wE3";

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let r = Redactor::new(vec!["abcd".into(), "abcdefgh".into()]);
        assert_eq!(r.redact("x abcdefgh y abcd"), "x [REDACTED] y [REDACTED]");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let r = Redactor::new(vec![SECRET.into()]);
        let debug = format!("{r:?}");
        assert!(!debug.contains("Zk9Q2vX8") && debug.contains("secrets: 1"), "{debug}");
    }

    #[test]
    fn redacts_inside_json() {
        let r = Redactor::new(vec!["s3cret-value".into()]);
        let mut v = serde_json::json!({"a": ["s3cret-value!"], "s3cret-value": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["[REDACTED]!"], "[REDACTED]": 1}));
    }

    #[test]
    fn finds_the_secret_in_hex_either_case() {
        let r = Redactor::new(vec![SECRET.into()]);
        for encoded in [hex::encode(SECRET), hex::encode_upper(SECRET)] {
            let out = r.redact(&format!("dump: 00ff{encoded}ff00 end"));
            assert_eq!(out, "dump: 00ff[REDACTED]ff00 end", "{encoded}");
        }
    }

    #[test]
    fn finds_the_secret_base64_encoded_alone_padded_or_not() {
        let r = Redactor::new(vec![SECRET.into()]);
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(SECRET);
            assert_eq!(r.redact(&format!("auth {encoded}\n")), "auth [REDACTED]\n", "{encoded}");
        }
    }

    /// A secret inside a larger base64 blob at each of the three byte alignments, in both
    /// alphabets: what stays is only the blob's characters that mix in the neighbours' bits.
    #[test]
    fn finds_the_secret_inside_a_larger_base64_blob_at_every_alignment() {
        // Bytes chosen so the two alphabets differ (0xfb 0xff encode to `+`/`/` vs `-`/`_`).
        let secret = "s3cr3t?>~value-with-?>-bytes";
        let r = Redactor::new(vec![secret.into()]);
        for engine in [&STANDARD, &URL_SAFE] {
            for offset in 0..3 {
                let mut blob = vec![0xfb_u8; offset];
                blob.extend_from_slice(b"prefix-");
                let inner_offset = blob.len();
                blob.extend_from_slice(secret.as_bytes());
                blob.extend_from_slice(&[0xff, 0xfe, b'x', b'y']);
                let encoded = engine.encode(&blob);
                let out = r.redact(&encoded);
                assert!(out.contains(REDACTED), "offset {offset} ({}): {out}", inner_offset % 3);
                // At most the 2 boundary characters on each side survive, plus the
                // encoded neighbours: nothing decodes back to a part of the secret.
                let left = out.split(REDACTED).collect::<Vec<_>>();
                assert_eq!(left.len(), 2, "{out}");
                let max_around = encoded.len() - secret.len() * 4 / 3 + 4;
                assert!(left[0].len() + left[1].len() <= max_around, "{out} vs {encoded}");
            }
        }
    }

    /// What an HTTP error dump carries: `Authorization: Basic base64(user:token)`. The
    /// token sits at byte 7 (`oauth2:`, GitLab) or 13 (`x-token-auth:`, Bitbucket).
    #[test]
    fn finds_the_token_inside_a_basic_auth_header() {
        let r = Redactor::new(vec![SECRET.into()]);
        for user in ["oauth2", "x-token-auth", "ci@example.com"] {
            let header = format!("Authorization: Basic {}", STANDARD.encode(format!("{user}:{SECRET}")));
            let out = r.redact(&header);
            let kept = out.trim_start_matches("Authorization: Basic ");
            assert!(kept.contains(REDACTED), "{user}: {out}");
            // What is left decodes to the user name at most, never to a part of the token.
            assert!(
                kept.replace(REDACTED, "").len() <= STANDARD.encode(format!("{user}:")).len() + 4,
                "{out}"
            );
        }
    }

    #[test]
    fn finds_the_secret_url_encoded_in_either_case_and_with_plus_for_space() {
        let secret = "p@ss w/rd+€&key=1";
        let r = Redactor::new(vec![secret.into()]);
        let variants = [
            "p%40ss%20w%2Frd%2B%E2%82%AC%26key%3D1",
            "p%40ss+w%2frd%2b%e2%82%ac%26key%3d1",
            // An encoder that keeps `/` and `@` (a path) writes the rest escaped.
            "p@ss%20w/rd%2B%E2%82%AC%26key%3D1",
        ];
        for v in variants {
            assert_eq!(r.redact(&format!("?q={v}&x=1")), "?q=[REDACTED]&x=1", "{v}");
        }
    }

    #[test]
    fn short_secrets_are_only_redacted_as_they_are() {
        // `abc12` in hex is `6162633132`, in base64 `YWJjMTI`: such short needles would
        // eat commit SHAs, numbers and unrelated base64.
        let r = Redactor::new(vec!["abc12".into()]);
        let text = "sha 6162633132ff, blob YWJjMTI=, value abc12";
        assert_eq!(r.redact(text), "sha 6162633132ff, blob YWJjMTI=, value [REDACTED]");
        assert!(encoded_needles(b"12345678").iter().all(|n| n.len() >= 10));
    }

    #[test]
    fn unrelated_base64_and_hex_are_left_alone() {
        let r = Redactor::new(vec![SECRET.into()]);
        let text = format!(
            "commit {} data {} and {}",
            "0123456789abcdef0123456789abcdef01234567",
            STANDARD.encode("another value entirely, not the secret"),
            hex::encode("glpat-other-token-value")
        );
        assert_eq!(r.redact(&text), text);
    }

    /// `base64` wraps at 76 characters, PEM at 64, YAML indents: the secret is found
    /// wherever the break falls inside it, alone or inside a larger blob, and what stays
    /// around it is the blob's other lines.
    #[test]
    fn finds_the_secret_in_base64_wrapped_over_lines() {
        let r = Redactor::new(vec![SECRET.into()]);
        let blob = STANDARD.encode(format!("{}{SECRET}{}", "x".repeat(40), "y".repeat(80)));
        for width in [64, 76, 50] {
            for (newline, indent) in [("\n", ""), ("\r\n", ""), ("\n", "    ")] {
                let lines: Vec<String> = blob
                    .as_bytes()
                    .chunks(width)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                let wrapped = lines.join(&format!("{newline}{indent}"));
                let out = r.redact(&format!("key: |\n{indent}{wrapped}\nend\n"));
                assert!(out.contains(REDACTED), "width {width}: {out}");
                let rest: String = out
                    .replace(REDACTED, "")
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                assert!(!rest.contains(&STANDARD.encode(SECRET)[4..14]), "width {width}: {out}");
                assert!(out.starts_with("key: |") && out.ends_with("end\n"), "{out}");
            }
        }
        // Every break position inside the encoded secret alone.
        let alone = STANDARD.encode(SECRET);
        for cut in 1..alone.len() {
            let text = format!("{}{}\n{}", "A".repeat(24), &alone[..cut], &alone[cut..]);
            assert!(r.redact(&text).contains(REDACTED), "cut at {cut}: {text}");
        }
    }

    #[test]
    fn prose_and_unrelated_wrapped_base64_are_left_alone() {
        let r = Redactor::new(vec![SECRET.into()]);
        let unrelated = STANDARD.encode("z".repeat(300));
        let wrapped: Vec<&str> = unrelated
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let text = format!(
            "Notwithstanding the aforementioned\nconsiderations, it works.\n{}\n",
            wrapped.join("\n")
        );
        assert_eq!(r.redact(&text), text);
    }

    /// No timing assertion: the point is that a 5 MB text with many secrets and many
    /// near-misses completes (quadratic behaviour would not, in a test's time).
    #[test]
    fn a_five_megabyte_text_is_redacted_in_one_pass() {
        let secrets: Vec<String> = (0..50)
            .map(|i| format!("token-{i:03}-Zk9Q2vX8mN4pR7tY1wE3&x"))
            .collect();
        let r = Redactor::new(secrets.clone());
        let mut text = String::with_capacity(5 << 20);
        let mut n = 0;
        while text.len() < 5 << 20 {
            text.push_str("token-0 Zk9Q2vX8 dG9rZW4t %74oken- lorem ipsum dolor sit amet\n");
            if n % 1000 == 0 {
                text.push_str(&STANDARD.encode(&secrets[n % 50]));
                text.push('\n');
            }
            n += 1;
        }
        let out = r.redact(&text);
        assert_eq!(out.matches(REDACTED).count(), n.div_ceil(1000));
    }
}
