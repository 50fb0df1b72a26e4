//! `transcript.jsonl`: one line per LLM call, redacted, appended atomically. The same
//! file is the replay cassette ([`super::replay`]).
//!
//! The file is opened once, through [`crate::safe_write::open_append`] (no link at the
//! file, no hard-linked file, `O_NOFOLLOW`), and every line goes to that open inode, so a
//! link planted at the path later is never followed. It is appended rather than rewritten
//! atomically per line: a rewrite would copy the whole transcript (every request carries
//! the conversation so far) on each of the day's calls.
//!
//! A successful call: `{"seq", "agent", "call", "at", "duration_ms", "request", "response"}`;
//! a failed one: `{"seq", "agent", "call", "at", "duration_ms", "error"}`. `seq` numbers
//! the lines of the file; `call` numbers the calls of one agent, from 1.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ChatRequest, ChatResponse, LlmError};
use crate::redact::Redactor;

/// One line of the transcript.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub agent: String,
    pub call: u32,
    /// RFC 3339 start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ChatRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ChatResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Appends redacted entries; safe to share between concurrent agents.
#[derive(Debug)]
pub struct TranscriptWriter {
    path: PathBuf,
    redactor: Redactor,
    /// The file and the last `seq` written, under one lock so `seq` follows file order.
    inner: Mutex<(File, u64)>,
}

impl TranscriptWriter {
    /// Opens `path` for appending; numbering continues after the lines already in the
    /// file. Its directory is the anchor below which no link is followed: the day creates
    /// `.pace/day-N/` through [`crate::safe_write`] (refusing links from the repository
    /// root) just before, while no container of the run exists yet. A missing directory
    /// is created (tests, tools pointing elsewhere).
    pub fn open(path: PathBuf, redactor: Redactor) -> Result<Self, LlmError> {
        let fail = |source| LlmError::Transcript {
            path: path.display().to_string(),
            source,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path.file_name().map(Path::new).ok_or_else(|| {
            fail(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the transcript path names no file",
            ))
        })?;
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut file = crate::safe_write::open_append(dir, name).map_err(|e| fail(e.into()))?;
        let existing = count_lines(&mut file).map_err(fail)?;
        Ok(Self {
            path,
            redactor,
            inner: Mutex::new((file, existing)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `entry` (its `seq` is assigned here) as one redacted line; returns the `seq`.
    pub fn append(&self, mut entry: Entry) -> Result<u64, LlmError> {
        let fail = |source| LlmError::Transcript {
            path: self.path.display().to_string(),
            source,
        };
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (file, seq) = &mut *guard;
        entry.seq = *seq + 1;
        let mut value = serde_json::to_value(&entry).map_err(|e| fail(std::io::Error::other(e)))?;
        self.redactor.redact_json(&mut value);
        let mut line = ordered_line(&value);
        line.push('\n');
        // One write of the whole line while holding the lock: lines never interleave.
        file.write_all(line.as_bytes()).map_err(fail)?;
        *seq = entry.seq;
        Ok(entry.seq)
    }
}

/// The fields in a fixed, readable order (`seq` first), whatever the map's order.
fn ordered_line(value: &Value) -> String {
    const ORDER: [&str; 8] = [
        "seq",
        "agent",
        "call",
        "at",
        "duration_ms",
        "request",
        "response",
        "error",
    ];
    let Some(map) = value.as_object() else {
        return value.to_string();
    };
    let fields: Vec<String> = ORDER
        .iter()
        .filter_map(|key| map.get(*key).map(|v| format!("{}:{v}", Value::from(*key))))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Non-empty lines of the open file (read from its start; appends still go to the end).
fn count_lines(file: &mut File) -> std::io::Result<u64> {
    let mut n = 0;
    for line in BufReader::new(file).split(b'\n') {
        if !line?.is_empty() {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_ordered_redacted_lines_and_continues_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("t.jsonl");
        let entry = |error: &str| Entry {
            seq: 0,
            agent: "GATE".into(),
            call: 1,
            at: None,
            duration_ms: Some(5),
            request: None,
            response: None,
            error: Some(error.into()),
        };
        let writer = TranscriptWriter::open(path.clone(), Redactor::new(vec!["hunter22".into()])).unwrap();
        assert_eq!(writer.append(entry("key hunter22 refused")).unwrap(), 1);
        drop(writer);
        let writer = TranscriptWriter::open(path.clone(), Redactor::default()).unwrap();
        assert_eq!(writer.append(entry("later")).unwrap(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"seq":1,"agent":"GATE","call":1,"duration_ms":5,"error":"key [REDACTED] refused"}"#
        );
        assert!(lines[1].starts_with(r#"{"seq":2,"#));
    }

    #[test]
    fn a_linked_transcript_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched\n").unwrap();
        let path = dir.path().join("t.jsonl");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let err = TranscriptWriter::open(path, Redactor::default()).unwrap_err();
        assert!(err.to_string().contains("`t.jsonl` is a symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    }
}
