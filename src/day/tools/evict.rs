//! Context eviction, run before each model call so the input grows slowly.
//!
//! Only the text inside blocks changes: no block or message is added or removed and every
//! id stays, so each tool_result still answers its tool_use. All rules are idempotent.
//!
//! (a) a `read_file` result whose path is written (`write_file`) or changed by a `run`
//!     LATER in the history is replaced by a stub; a read after the last write stays;
//! (b) of several `run` calls with the same command only the latest result stays;
//! (c) `write_file` / `write_doc` contents older than [`KEEP_WRITE_TURNS`] turns become a
//!     `[N bytes written]` stub in the tool_use input;
//! (d) long `run` outputs older than [`KEEP_RUN_TURNS`] turns keep only head and tail.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::handlers::{CHANGED_MARKER, changed_files_in, head_tail};
use super::paths::normalise_rel;
use crate::llm::{Block, Message, Role};

/// Assistant turns whose `write_file` contents stay verbatim.
pub const KEEP_WRITE_TURNS: usize = 2;
/// Assistant turns whose `run` outputs stay complete.
pub const KEEP_RUN_TURNS: usize = 3;
/// Older `run` outputs above this size are cut to head + tail.
const OLD_RUN_MAX_BYTES: usize = 2_400;
const OLD_RUN_HEAD_BYTES: usize = 600;
const OLD_RUN_TAIL_BYTES: usize = 1_200;
/// Characters of a command quoted in a superseded stub.
const CMD_QUOTE_CHARS: usize = 80;

const EVICTED_PREFIX: &str = "[evicted: ";
const SUPERSEDED_PREFIX: &str = "[superseded: ";

/// One tool call in history order.
struct Call {
    /// Position of the tool_use: (message, block); history order.
    at: (usize, usize),
    /// Index of the assistant turn it belongs to (0-based).
    turn: usize,
    name: String,
    input: Value,
    /// Position of its tool_result, if answered.
    result: Option<(usize, usize)>,
}

/// Shrinks stale tool results and old write payloads in place (see the module docs).
pub fn evict_stale(messages: &mut [Message]) {
    let calls = collect_calls(messages);
    let turns = messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .count();
    let result_text = |pos: Option<(usize, usize)>| -> Option<String> {
        let (m, b) = pos?;
        match messages.get(m)?.content.get(b)? {
            Block::ToolResult { content, .. } => Some(content.clone()),
            _ => None,
        }
    };

    // Decide everything from the history as it is, then apply.
    let mut replace: HashMap<(usize, usize), String> = HashMap::new();

    // (a) Paths written by each call, in order.
    let writes: Vec<Vec<String>> = calls
        .iter()
        .map(|c| match c.name.as_str() {
            "write_file" => path_of(&c.input).into_iter().collect(),
            "run" => result_text(c.result)
                .map(|t| changed_files_in(&t))
                .unwrap_or_default(),
            _ => Vec::new(),
        })
        .collect();
    for (i, call) in calls.iter().enumerate() {
        if call.name != "read_file" {
            continue;
        }
        let (Some(path), Some(pos)) = (path_of(&call.input), call.result) else {
            continue;
        };
        let rewritten = writes[i + 1..].iter().any(|w| w.contains(&path));
        if rewritten && !result_text(Some(pos)).is_some_and(|t| t.starts_with(EVICTED_PREFIX)) {
            replace.insert(
                pos,
                format!(
                    "[evicted: {path} was rewritten after this read — read it again if needed]"
                ),
            );
        }
    }

    // (b) Only the latest run of each command keeps its output.
    let mut latest: HashMap<&str, usize> = HashMap::new();
    for (i, call) in calls.iter().enumerate() {
        if call.name == "run"
            && let Some(cmd) = command_of(&call.input)
        {
            latest.insert(cmd, i);
        }
    }
    let mut superseded: HashSet<usize> = HashSet::new();
    for (i, call) in calls.iter().enumerate() {
        if call.name != "run" {
            continue;
        }
        let (Some(cmd), Some(pos)) = (command_of(&call.input), call.result) else {
            continue;
        };
        if latest.get(cmd) == Some(&i) {
            continue;
        }
        superseded.insert(i);
        let Some(text) = result_text(Some(pos)) else {
            continue;
        };
        if text.starts_with(SUPERSEDED_PREFIX) {
            continue;
        }
        let quoted = super::router::truncate_chars(cmd, CMD_QUOTE_CHARS).replace('`', "'");
        let mut stub = format!("[superseded: a later run of `{quoted}` is below]");
        // Keep the changed-files line: rule (a) still needs it on later passes.
        if let Some(line) = text.lines().rev().find(|l| l.starts_with(CHANGED_MARKER)) {
            stub.push('\n');
            stub.push_str(line);
        }
        replace.insert(pos, stub);
    }

    // (d) Long outputs of older runs keep head and tail.
    for (i, call) in calls.iter().enumerate() {
        if call.name != "run" || superseded.contains(&i) || call.turn + KEEP_RUN_TURNS >= turns {
            continue;
        }
        let Some(pos) = call.result else { continue };
        if let Some(text) = result_text(Some(pos))
            && text.len() > OLD_RUN_MAX_BYTES
        {
            replace.insert(
                pos,
                head_tail(&text, OLD_RUN_HEAD_BYTES, OLD_RUN_TAIL_BYTES),
            );
        }
    }

    for ((m, b), new_text) in replace {
        if let Some(Block::ToolResult { content, .. }) =
            messages.get_mut(m).and_then(|msg| msg.content.get_mut(b))
        {
            *content = new_text;
        }
    }

    // (c) Old write payloads become stubs (the input stays a valid JSON object).
    for call in &calls {
        if !matches!(call.name.as_str(), "write_file" | "write_doc")
            || call.turn + KEEP_WRITE_TURNS >= turns
        {
            continue;
        }
        let (m, b) = call.at;
        if let Some(Block::ToolUse { input, .. }) =
            messages.get_mut(m).and_then(|msg| msg.content.get_mut(b))
            && let Some(Value::String(content)) = input.get_mut("content")
            && !is_write_stub(content)
        {
            *content = format!("[{} bytes written]", content.len());
        }
    }
}

fn is_write_stub(s: &str) -> bool {
    s.starts_with('[') && s.ends_with(" bytes written]") && s.len() < 40
}

fn collect_calls(messages: &[Message]) -> Vec<Call> {
    let mut results: HashMap<&str, (usize, usize)> = HashMap::new();
    for (m, msg) in messages.iter().enumerate() {
        for (b, block) in msg.content.iter().enumerate() {
            if let Block::ToolResult { tool_use_id, .. } = block {
                results.entry(tool_use_id.as_str()).or_insert((m, b));
            }
        }
    }
    let mut calls = Vec::new();
    let mut turn = 0usize;
    for (m, msg) in messages.iter().enumerate() {
        if msg.role != Role::Assistant {
            continue;
        }
        for (b, block) in msg.content.iter().enumerate() {
            if let Block::ToolUse { id, name, input } = block {
                calls.push(Call {
                    at: (m, b),
                    turn,
                    name: name.clone(),
                    input: input.clone(),
                    result: results.get(id.as_str()).copied(),
                });
            }
        }
        turn += 1;
    }
    calls
}

/// The repository-relative path a read/write names (`repo:` prefix dropped); `None` for
/// SCRIBE's `docs:` paths, which FORGE never writes.
fn path_of(input: &Value) -> Option<String> {
    let raw = input.get("path")?.as_str()?;
    if raw.starts_with("docs:") {
        return None;
    }
    let p = normalise_rel(raw.strip_prefix("repo:").unwrap_or(raw));
    (!p.is_empty()).then_some(p)
}

fn command_of(input: &Value) -> Option<&str> {
    input
        .get("command")?
        .as_str()
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

/// Rough token count (characters / 4) of everything the model is sent back.
pub fn estimate_tokens(messages: &[Message]) -> usize {
    let chars: usize = messages
        .iter()
        .flat_map(|m| m.content.iter())
        .map(|block| match block {
            Block::Text { text } => text.chars().count(),
            Block::ToolUse { name, input, id } => {
                name.len() + id.len() + input.to_string().chars().count()
            }
            Block::ToolResult {
                content,
                tool_use_id,
                ..
            } => content.chars().count() + tool_use_id.len(),
        })
        .sum();
    chars.div_ceil(4)
}

/// Checks the protocol invariant: every tool_use of an assistant message is answered by
/// exactly one tool_result in the next (user) message, tool_results come before any text
/// there, every tool_result answers a tool_use of the message before, ids are unique. A
/// trailing assistant message may still have unanswered calls.
pub fn check_pairing(messages: &[Message]) -> Result<(), String> {
    let mut seen_ids: HashSet<&str> = HashSet::new();
    for (i, msg) in messages.iter().enumerate() {
        let uses: Vec<&str> = msg
            .content
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let results: Vec<&str> = msg
            .content
            .iter()
            .filter_map(|b| match b {
                Block::ToolResult { tool_use_id, .. } => Some(tool_use_id.as_str()),
                _ => None,
            })
            .collect();
        match msg.role {
            Role::Assistant if !results.is_empty() => {
                return Err(format!(
                    "message {i}: an assistant message holds tool_result blocks"
                ));
            }
            Role::User if !uses.is_empty() => {
                return Err(format!("message {i}: a user message holds tool_use blocks"));
            }
            _ => {}
        }
        for id in &uses {
            if !seen_ids.insert(id) {
                return Err(format!("message {i}: tool_use id `{id}` is used twice"));
            }
        }
        if msg.role == Role::User && !results.is_empty() {
            let first_text = msg
                .content
                .iter()
                .position(|b| matches!(b, Block::Text { .. }))
                .unwrap_or(usize::MAX);
            let last_result = msg
                .content
                .iter()
                .rposition(|b| matches!(b, Block::ToolResult { .. }))
                .unwrap_or(0);
            if first_text < last_result {
                return Err(format!("message {i}: text comes before a tool_result"));
            }
        }
        if msg.role == Role::Assistant && !uses.is_empty() {
            let Some(next) = messages.get(i + 1) else {
                continue;
            };
            if next.role != Role::User {
                return Err(format!(
                    "message {}: tool calls are not answered by a user message",
                    i + 1
                ));
            }
            let answered: Vec<&str> = next
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::ToolResult { tool_use_id, .. } => Some(tool_use_id.as_str()),
                    _ => None,
                })
                .collect();
            for id in &uses {
                let n = answered.iter().filter(|a| *a == id).count();
                if n != 1 {
                    return Err(format!(
                        "message {}: tool_use `{id}` is answered {n} times",
                        i + 1
                    ));
                }
            }
        }
        if msg.role == Role::User && !results.is_empty() {
            let prev_uses: HashSet<&str> = i
                .checked_sub(1)
                .and_then(|p| messages.get(p))
                .map(|p| {
                    p.content
                        .iter()
                        .filter_map(|b| match b {
                            Block::ToolUse { id, .. } => Some(id.as_str()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            for id in &results {
                if !prev_uses.contains(id) {
                    return Err(format!(
                        "message {i}: tool_result `{id}` answers no tool_use of the message before"
                    ));
                }
            }
        }
    }
    Ok(())
}
