//! One model turn of a tool loop (FORGE, SCRIBE): evict stale tool results, call the
//! model, dispatch its tool calls in order. The loops decide what a turn means; answers
//! that are no answer (empty, a refusal, a full context window) are classified here and
//! handled the same way in both loops by [`NoAnswer`].

use serde_json::Value;

use crate::day::DayError;
use crate::day::context::DayContext;
use crate::day::tools::{ToolContext, ToolOutcome, evict, router};
use crate::llm::{Block, ChatRequest, LlmError, Message, Role, StopReason, ToolSpec};

/// Empty answers in a row before the agent gives up.
pub const MAX_EMPTY_ANSWERS: u32 = 2;
/// Tool results and inputs longer than this are stubbed when the context window is full.
const OVERFLOW_KEEP_CHARS: usize = 200;

/// The fixed parts of a tool loop's requests.
pub struct LoopRequest<'a> {
    pub agent: &'static str,
    pub system: &'a str,
    pub specs: &'a [ToolSpec],
    pub max_tokens: u32,
}

/// What the model's answer was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Text and/or tool calls (kept in the history, the calls dispatched).
    Given,
    /// No text and no tool call. Not kept: the APIs reject empty messages in the history.
    Empty,
    /// The model refused (the reason quotes it). Nothing of it is sent again.
    Refused(String),
    /// The conversation no longer fits the model's context window (a 400, or
    /// `model_context_window_exceeded`); a partial answer is dropped.
    Overflow(String),
}

pub struct Turn {
    /// Tool results answering the calls (to send back in the next user message).
    pub results: Vec<Block>,
    /// The calls dispatched: (tool name, input).
    pub called: Vec<(String, Value)>,
    pub handoff: Option<Value>,
    pub finished: Option<String>,
    pub stop_reason: StopReason,
    pub answer: Answer,
}

impl Turn {
    fn without_answer(answer: Answer, stop_reason: StopReason) -> Self {
        Self {
            results: Vec::new(),
            called: Vec::new(),
            handoff: None,
            finished: None,
            stop_reason,
            answer,
        }
    }
}

pub async fn tool_turn(
    ctx: &DayContext,
    request: &LoopRequest<'_>,
    tools: &mut ToolContext<'_>,
    messages: &mut Vec<Message>,
) -> Result<Turn, DayError> {
    evict::evict_stale(messages, tools.changed_by_call());
    let result = ctx
        .llm
        .chat(ChatRequest {
            agent: request.agent.into(),
            model: ctx.settings.llm.model.clone(),
            system: request.system.to_string(),
            messages: messages.clone(),
            tools: request.specs.to_vec(),
            max_tokens: request.max_tokens,
            response_schema: None,
        })
        .await;
    let response = match result {
        Ok(r) => r,
        Err(LlmError::ContextOverflow { message, .. }) => {
            return Ok(Turn::without_answer(Answer::Overflow(message), StopReason::EndTurn));
        }
        Err(e) => return Err(e.into()),
    };
    match response.stop_reason {
        StopReason::Refusal => {
            return Ok(Turn::without_answer(
                Answer::Refused(response.refusal_text()),
                StopReason::Refusal,
            ));
        }
        StopReason::ContextWindowExceeded => {
            return Ok(Turn::without_answer(
                Answer::Overflow("the answer stopped at `model_context_window_exceeded`".into()),
                StopReason::ContextWindowExceeded,
            ));
        }
        _ if response.is_empty() => {
            return Ok(Turn::without_answer(Answer::Empty, response.stop_reason));
        }
        _ => {}
    }
    messages.push(response.to_assistant_message());
    let mut turn = Turn::without_answer(Answer::Given, response.stop_reason.clone());
    for (id, name, input) in response.tool_calls() {
        let outcome = router::dispatch(tools, id, name, input).await;
        if let ToolOutcome::Abort(abort) = outcome {
            return Err(DayError::ToolAborted {
                agent: request.agent.to_string(),
                tool: name.to_string(),
                source: Box::new(abort),
            });
        }
        turn.called.push((name.to_string(), input.clone()));
        turn.results.extend(outcome.to_block(id));
        match outcome {
            ToolOutcome::Handoff(value) => turn.handoff = Some(value),
            ToolOutcome::Finished(summary) => turn.finished = Some(summary),
            _ => continue,
        }
        // Calls after the handoff in the same answer are not run: the attempt is over.
        break;
    }
    Ok(turn)
}

/// What a loop does after a turn without a usable answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The history was repaired (a note added, or old tool output evicted): call again.
    Retry,
    /// The conversation ends with this reason.
    Stop(String),
}

/// Counts empty answers in a row and whether the context was already compacted, so a
/// model that keeps answering nothing, or a conversation that keeps overflowing, ends
/// with a clear reason instead of looping.
#[derive(Debug, Default)]
pub struct NoAnswer {
    empty_in_a_row: u32,
    compacted: bool,
}

impl NoAnswer {
    /// `None` when the turn had an answer (the empty count resets). `expected` says what
    /// the agent should do next, for the note after an empty answer.
    pub fn check(
        &mut self,
        agent: &str,
        answer: &Answer,
        messages: &mut Vec<Message>,
        expected: &str,
    ) -> Option<Recovery> {
        match answer {
            Answer::Given => {
                self.empty_in_a_row = 0;
                None
            }
            Answer::Empty => {
                self.empty_in_a_row += 1;
                if self.empty_in_a_row > MAX_EMPTY_ANSWERS {
                    return Some(Recovery::Stop(format!(
                        "{agent} gave {} empty answers in a row (no text and no tool call); the model or the server behind `llm.base_url` is not answering: see transcript.jsonl",
                        self.empty_in_a_row
                    )));
                }
                push_user_text(
                    messages,
                    format!("Your previous answer was empty (no text and no tool call). {expected}"),
                );
                Some(Recovery::Retry)
            }
            Answer::Refused(text) => Some(Recovery::Stop(format!(
                "{agent}: the model refused to continue (stop reason `refusal`): {text}"
            ))),
            Answer::Overflow(detail) => {
                if self.compacted {
                    return Some(Recovery::Stop(format!(
                        "{agent}'s conversation no longer fits the model's context window, even after evicting old tool output ({detail}); use a model with a larger window or split the story"
                    )));
                }
                self.compacted = true;
                compact_for_overflow(messages);
                Some(Recovery::Retry)
            }
        }
    }
}

/// Adds `text` to the last user message (a fresh user message if the last is the
/// model's): two user messages in a row are merged by Anthropic, and a note beside the
/// tool results keeps every `tool_result` right after its `tool_use`.
pub fn push_user_text(messages: &mut Vec<Message>, text: String) {
    match messages.last_mut() {
        Some(last) if last.role == Role::User => last.content.push(Block::Text { text }),
        _ => messages.push(Message::user_text(text)),
    }
}

/// The one-off eviction when the context window is full: every tool result and long
/// tool input except in the last exchange becomes a stub (ids and blocks stay, so each
/// `tool_result` still answers its `tool_use`). The first message (the brief) is kept.
pub fn compact_for_overflow(messages: &mut [Message]) {
    let keep_from = messages.len().saturating_sub(2);
    for message in messages.iter_mut().take(keep_from).skip(1) {
        for block in &mut message.content {
            match block {
                Block::ToolResult { content, .. } if content.chars().count() > OVERFLOW_KEEP_CHARS => {
                    *content = format!(
                        "[evicted to fit the context window: {} characters; call the tool again if you still need it]",
                        content.chars().count()
                    );
                }
                Block::ToolUse { input, .. } => stub_long_strings(input),
                _ => {}
            }
        }
    }
}

fn stub_long_strings(value: &mut Value) {
    match value {
        Value::String(s) if s.chars().count() > OVERFLOW_KEEP_CHARS => {
            *s = format!("[{} characters, evicted to fit the context window]", s.chars().count());
        }
        Value::Object(map) => map.values_mut().for_each(stub_long_strings),
        Value::Array(items) => items.iter_mut().for_each(stub_long_strings),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool_round(id: &str, result: &str) -> [Message; 2] {
        [
            Message {
                role: Role::Assistant,
                content: vec![Block::ToolUse {
                    id: id.into(),
                    name: "write_file".into(),
                    input: json!({"path": "a", "content": "x".repeat(500)}),
                }],
            },
            Message {
                role: Role::User,
                content: vec![Block::ToolResult {
                    tool_use_id: id.into(),
                    content: result.into(),
                    is_error: false,
                }],
            },
        ]
    }

    #[test]
    fn empty_answers_add_a_note_then_stop() {
        let mut guard = NoAnswer::default();
        let mut messages = vec![Message::user_text("brief")];
        for _ in 0..MAX_EMPTY_ANSWERS {
            assert_eq!(
                guard.check("FORGE", &Answer::Empty, &mut messages, "Call a tool."),
                Some(Recovery::Retry)
            );
        }
        // The notes join the last user message: no empty assistant turn, no new message.
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].content.len(), 3);
        assert!(
            matches!(&messages[0].content[1], Block::Text { text } if text.contains("previous answer was empty") && text.ends_with("Call a tool."))
        );
        match guard.check("FORGE", &Answer::Empty, &mut messages, "x") {
            Some(Recovery::Stop(reason)) => assert!(reason.contains("3 empty answers in a row"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // A real answer resets the count.
        let mut guard = NoAnswer::default();
        guard.check("FORGE", &Answer::Empty, &mut messages, "x");
        assert_eq!(guard.check("FORGE", &Answer::Given, &mut messages, "x"), None);
        assert_eq!(
            guard.check("FORGE", &Answer::Empty, &mut messages, "x"),
            Some(Recovery::Retry)
        );
    }

    #[test]
    fn overflow_compacts_once_then_stops() {
        let mut messages = vec![Message::user_text("brief ".repeat(100))];
        messages.extend(tool_round("t1", &"old output ".repeat(100)));
        messages.extend(tool_round("t2", &"new output ".repeat(100)));
        let mut guard = NoAnswer::default();
        let overflow = Answer::Overflow("prompt is too long".into());
        assert_eq!(
            guard.check("FORGE", &overflow, &mut messages, ""),
            Some(Recovery::Retry)
        );
        let Block::ToolResult {
            content, tool_use_id, ..
        } = &messages[2].content[0]
        else {
            panic!()
        };
        assert_eq!(tool_use_id, "t1");
        assert!(content.starts_with("[evicted to fit the context window"), "{content}");
        let Block::ToolUse { input, .. } = &messages[1].content[0] else {
            panic!()
        };
        assert!(input["content"].as_str().unwrap().contains("evicted"));
        assert_eq!(input["path"], "a");
        // The brief and the last exchange stay verbatim.
        assert!(matches!(&messages[0].content[0], Block::Text { text } if text.len() == 600));
        assert!(
            matches!(&messages[4].content[0], Block::ToolResult { content, .. } if content.starts_with("new output"))
        );
        match guard.check("FORGE", &overflow, &mut messages, "") {
            Some(Recovery::Stop(reason)) => assert!(reason.contains("context window"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_stops_at_once_and_quotes_it() {
        let mut messages = vec![Message::user_text("brief")];
        let answer = Answer::Refused("I can't help with that (category: cyber)".into());
        match NoAnswer::default().check("FORGE", &answer, &mut messages, "") {
            Some(Recovery::Stop(reason)) => {
                assert!(reason.contains("refused"), "{reason}");
                assert!(reason.contains("I can't help with that (category: cyber)"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(messages.len(), 1);
    }
}
