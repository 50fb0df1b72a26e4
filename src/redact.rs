//! Secret redaction: every string that leaves pace (artifacts, logs, commits, transcript,
//! MR/issue bodies) passes through a [`Redactor`] built from the environment.

use std::sync::Arc;

pub const REDACTED: &str = "[REDACTED]";

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    pub fn new(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self {
            secrets: Arc::new(secrets),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
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
        self.secrets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let r = Redactor::new(vec!["abcd".into(), "abcdefgh".into()]);
        assert_eq!(r.redact("x abcdefgh y abcd"), "x [REDACTED] y [REDACTED]");
    }

    #[test]
    fn redacts_inside_json() {
        let r = Redactor::new(vec!["s3cret-value".into()]);
        let mut v = serde_json::json!({"a": ["s3cret-value!"], "s3cret-value": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["[REDACTED]!"], "[REDACTED]": 1}));
    }
}
