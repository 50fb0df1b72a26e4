//! The encodings pace's requests need, from the crates that own them: base64 for the
//! Basic credential of a push, percent-encoding for URL path segments and query values.

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`) is escaped:
/// safe in a path segment and in a query value alike.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Standard base64 (RFC 4648, with padding), for `Authorization: Basic` headers.
pub fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Percent-encodes one URL component (a query value, a single path segment).
pub fn encode_component(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// Percent-encodes a path whose `/` separate segments (a branch name like `pace/sprint`):
/// the `/` stay, everything else is encoded as in [`encode_component`].
pub fn encode_path(path: &str) -> String {
    path.split('/').map(encode_component).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("oauth2:secret", "b2F1dGgyOnNlY3JldA=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn components_keep_only_unreserved_characters() {
        assert_eq!(
            encode_component("labels = \"pace-day-1\" AND x!=Done"),
            "labels%20%3D%20%22pace-day-1%22%20AND%20x%21%3DDone"
        );
        assert_eq!(encode_component("a/b?c#d&e+f~g.h_i"), "a%2Fb%3Fc%23d%26e%2Bf~g.h_i");
        assert_eq!(encode_component("é"), "%C3%A9");
    }

    #[test]
    fn paths_keep_their_separators() {
        assert_eq!(encode_path("pace/sprint #1"), "pace/sprint%20%231");
        assert_eq!(encode_path("a%2Fb"), "a%252Fb");
    }
}
