//! The `replay` provider: answers from a recorded `transcript.jsonl` (the cassette).
//!
//! The k-th call of an agent (counted per agent over the whole day, from 1) gets the k-th
//! recorded response of that agent; lines without a response (failed calls) are skipped.
//! A request must match its recording in shape — number of messages, the `tool_use` ids the
//! last message answers, the tool names offered, the answer's schema when both have one —
//! but not in text (paths and times differ between machines). Usage is replayed, so cost accounting works offline.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;

use super::transcript::Entry;
use super::transport::AttemptError;
use super::{Block, ChatRequest, ChatResponse, LlmError, Message, Provider};

#[derive(Debug, Clone)]
struct Recorded {
    /// Line in the cassette, for messages.
    line: usize,
    request: ChatRequest,
    response: ChatResponse,
}

#[derive(Debug)]
pub struct Replay {
    calls: HashMap<String, Vec<Recorded>>,
    /// Calls served so far, per agent.
    served: Mutex<HashMap<String, u32>>,
}

impl Replay {
    /// Reads the cassette; a missing, unreadable or malformed file is an error naming it
    /// (and the line).
    pub fn from_path(path: &Path) -> Result<Self, LlmError> {
        let fail = |message: String| LlmError::Cassette {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let mut calls: HashMap<String, Vec<Recorded>> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value =
                serde_json::from_str(line).map_err(|e| fail(format!("line {line_no} is not JSON: {e}")))?;
            if value.get("response").is_none_or(Value::is_null) {
                continue; // a failed call
            }
            let entry: Entry = serde_json::from_value(value)
                .map_err(|e| fail(format!("line {line_no} is not a transcript entry: {e}")))?;
            let Some(request) = entry.request else {
                return Err(fail(format!("line {line_no} has a response but no request")));
            };
            let Some(response) = entry.response else {
                continue;
            };
            calls.entry(entry.agent).or_default().push(Recorded {
                line: line_no,
                request,
                response,
            });
        }
        Ok(Self {
            calls,
            served: Mutex::new(HashMap::new()),
        })
    }

    /// Recorded responses per agent (agents sorted by name).
    pub fn recorded_calls(&self) -> BTreeMap<String, usize> {
        self.calls
            .iter()
            .map(|(agent, calls)| (agent.clone(), calls.len()))
            .collect()
    }

    fn next(&self, agent: &str) -> u32 {
        let mut served = self.served.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = served.entry(agent.to_string()).or_insert(0);
        *n += 1;
        *n
    }
}

#[async_trait::async_trait]
impl Provider for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    async fn send(&self, request: &ChatRequest) -> Result<ChatResponse, AttemptError> {
        let agent = request.agent.as_str();
        let call = self.next(agent);
        let recorded = self.calls.get(agent).map(Vec::as_slice).unwrap_or_default();
        let index = usize::try_from(call - 1).unwrap_or(usize::MAX);
        let Some(rec) = recorded.get(index) else {
            let n = recorded.len();
            let s = if n == 1 { "" } else { "s" };
            return Err(AttemptError::divergence(
                agent,
                call,
                format!("the cassette has only {n} {agent} call{s}"),
            ));
        };
        if let Some(detail) = mismatch(&rec.request, request) {
            return Err(AttemptError::divergence(
                agent,
                call,
                format!("{detail} (cassette line {})", rec.line),
            ));
        }
        Ok(rec.response.clone())
    }
}

/// Why `actual` does not match `recorded`, if it does not.
fn mismatch(recorded: &ChatRequest, actual: &ChatRequest) -> Option<String> {
    if recorded.messages.len() != actual.messages.len() {
        return Some(format!(
            "the request has {} messages, the recording {}",
            actual.messages.len(),
            recorded.messages.len()
        ));
    }
    let (want, got) = (
        answered_ids(recorded.messages.last()),
        answered_ids(actual.messages.last()),
    );
    if want != got {
        return Some(format!(
            "the last message answers tool calls {got:?}, the recording {want:?}"
        ));
    }
    let (want, got) = (tool_names(recorded), tool_names(actual));
    if want != got {
        return Some(format!("the request offers tools {got:?}, the recording {want:?}"));
    }
    // Cassettes recorded before structured outputs (or with `llm.structured_output: off`)
    // hold YAML answers, which the same validation reads: only two different schemas
    // are a divergence.
    if let (Some(want), Some(got)) = (&recorded.response_schema, &actual.response_schema)
        && want.name != got.name
    {
        return Some(format!(
            "the request asks for a `{}` answer, the recording for `{}`",
            got.name, want.name
        ));
    }
    None
}

fn answered_ids(message: Option<&Message>) -> Vec<&str> {
    message
        .map(|m| {
            m.content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolResult { tool_use_id, .. } => Some(tool_use_id.as_str()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn tool_names(request: &ChatRequest) -> Vec<&str> {
    let mut names: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Role, StopReason, ToolSpec, Usage};
    use serde_json::json;

    fn request(agent: &str, messages: Vec<Message>, tools: &[&str]) -> ChatRequest {
        ChatRequest {
            agent: agent.into(),
            model: "m".into(),
            system: "s".into(),
            messages,
            tools: tools
                .iter()
                .map(|n| ToolSpec {
                    name: (*n).into(),
                    description: String::new(),
                    input_schema: json!({}),
                    anthropic_type: None,
                })
                .collect(),
            max_tokens: 10,
            response_schema: None,
        }
    }

    fn response(text: &str) -> ChatResponse {
        ChatResponse {
            content: vec![Block::Text { text: text.into() }],
            stop_reason: StopReason::EndTurn,
            usage: Usage {
                input_tokens: 5,
                output_tokens: 2,
                ..Usage::default()
            },
            model: "m".into(),
            refusal: None,
            cost_usd: None,
        }
    }

    fn line(seq: u64, agent: &str, call: u32, req: &ChatRequest, resp: Option<&ChatResponse>) -> String {
        let entry = Entry {
            seq,
            agent: agent.into(),
            call,
            at: None,
            duration_ms: None,
            request: Some(req.clone()),
            response: resp.cloned(),
            error: resp.is_none().then(|| "HTTP 500".to_string()),
        };
        serde_json::to_string(&entry).unwrap()
    }

    #[tokio::test]
    async fn serves_per_agent_in_order_and_checks_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let first = request("FORGE", vec![Message::user_text("a")], &["read", "write"]);
        let tool_turn = vec![
            Message::user_text("a"),
            Message {
                role: Role::Assistant,
                content: vec![Block::ToolUse {
                    id: "t1".into(),
                    name: "read".into(),
                    input: json!({}),
                }],
            },
            Message {
                role: Role::User,
                content: vec![Block::ToolResult {
                    tool_use_id: "t1".into(),
                    content: "x".into(),
                    is_error: false,
                }],
            },
        ];
        let second = request("FORGE", tool_turn.clone(), &["write", "read"]);
        let gate = request("GATE", vec![Message::user_text("g")], &[]);
        let lines = [
            line(1, "FORGE", 1, &first, Some(&response("one"))),
            line(2, "GATE", 1, &gate, Some(&response("gate"))),
            line(3, "FORGE", 2, &second, None),
            line(4, "FORGE", 3, &second, Some(&response("two"))),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let replay = Replay::from_path(&path).unwrap();
        assert_eq!(replay.recorded_calls().get("FORGE"), Some(&2));

        assert_eq!(replay.send(&gate).await.unwrap().text(), "gate");
        assert_eq!(replay.send(&first).await.unwrap().text(), "one");
        // Texts differ, the shape matches.
        let mut moved = second.clone();
        moved.system = "other machine".into();
        assert_eq!(replay.send(&moved).await.unwrap().text(), "two");
        let err = replay.send(&first).await.unwrap_err();
        assert_eq!(
            err.kind,
            super::super::transport::AttemptKind::Divergence {
                agent: "FORGE".into(),
                call: 3
            }
        );
        assert_eq!(err.message, "the cassette has only 2 FORGE calls");
    }

    #[tokio::test]
    async fn reports_each_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let base = vec![Message {
            role: Role::User,
            content: vec![Block::ToolResult {
                tool_use_id: "t1".into(),
                content: "x".into(),
                is_error: false,
            }],
        }];
        let recorded = request("SCRIBE", base.clone(), &["read"]);
        std::fs::write(&path, line(1, "SCRIBE", 1, &recorded, Some(&response("r"))) + "\n").unwrap();

        let cases = [
            (
                request("SCRIBE", vec![base[0].clone(), Message::user_text("x")], &["read"]),
                "2 messages",
            ),
            (
                request(
                    "SCRIBE",
                    vec![Message {
                        role: Role::User,
                        content: vec![Block::ToolResult {
                            tool_use_id: "t9".into(),
                            content: "x".into(),
                            is_error: false,
                        }],
                    }],
                    &["read"],
                ),
                "answers tool calls [\"t9\"]",
            ),
            (request("SCRIBE", base.clone(), &["read", "write"]), "offers tools"),
        ];
        for (req, expected) in cases {
            let replay = Replay::from_path(&path).unwrap();
            let err = replay.send(&req).await.unwrap_err();
            assert!(err.message.contains(expected), "{}", err.message);
            assert!(err.message.contains("cassette line 1"), "{}", err.message);
        }
    }

    #[tokio::test]
    async fn a_response_schema_matches_leniently_against_old_cassettes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let schema = |name: &str| {
            Some(crate::llm::ResponseSchema {
                name: name.into(),
                schema: serde_json::json!({"type": "object"}),
            })
        };
        let old = request("PRIME", vec![Message::user_text("card")], &[]);
        let mut new = old.clone();
        new.response_schema = schema("story_card");
        let lines = [
            line(1, "PRIME", 1, &old, Some(&response("story: a"))),
            line(2, "PRIME", 2, &new, Some(&response("{}"))),
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let replay = Replay::from_path(&path).unwrap();
        // A cassette recorded without a schema (YAML answers) serves a request with one.
        assert_eq!(replay.send(&new).await.unwrap().text(), "story: a");
        // Two different schemas are a divergence.
        let mut other = new.clone();
        other.response_schema = schema("gate_criteria");
        let err = replay.send(&other).await.unwrap_err();
        assert!(
            err.message
                .contains("asks for a `gate_criteria` answer, the recording for `story_card`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_cassettes_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.jsonl");
        let err = Replay::from_path(&missing).unwrap_err().to_string();
        assert!(err.contains("nope.jsonl") && err.contains("cannot read"), "{err}");

        let bad = dir.path().join("bad.jsonl");
        std::fs::write(
            &bad,
            "{\"seq\":1,\"agent\":\"A\",\"call\":1,\"error\":\"x\"}\n\n{oops\n",
        )
        .unwrap();
        let err = Replay::from_path(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl") && err.contains("line 3"), "{err}");

        std::fs::write(&bad, "{\"seq\":1,\"agent\":\"A\",\"call\":1,\"response\":{\"x\":1}}\n").unwrap();
        let err = Replay::from_path(&bad).unwrap_err().to_string();
        assert!(err.contains("line 1 is not a transcript entry"), "{err}");
    }
}
