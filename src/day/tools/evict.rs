//! Context eviction, run before each model call so the input grows slowly.
//!
//! Only the text inside blocks changes: no block or message is added or removed and every
//! id stays, so each `tool_result` still answers its `tool_use`. All rules are idempotent.
//!
//! (a) a `read_file` result or an editor `view` whose path a LATER call changed
//!     (`write_file`, an editor edit, `run`: the paths their handlers returned,
//!     [`ChangedByCall`]) is replaced by a stub; a read after the last change stays;
//! (b) of several `run` calls with the same command only the latest result stays;
//! (c) `write_file` / `write_doc` contents, and the editor's texts above
//!     [`EDIT_STUB_MIN_BYTES`], older than [`KEEP_WRITE_TURNS`] turns become a
//!     `[N bytes written]` (`old_str`: `[N bytes replaced]`) stub in the `tool_use` input;
//! (d) long `run` outputs older than [`KEEP_RUN_TURNS`] turns keep only head and tail.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::ChangedByCall;
use super::edit::NAME as EDITOR;
use super::paths::normalise_rel;
use super::run::{CHANGED_MARKER, REFUSED_MARKER};
use crate::llm::{Block, Message, Role};
use crate::text::{head_tail, truncate_chars};

/// Assistant turns whose `write_file` contents stay verbatim.
pub const KEEP_WRITE_TURNS: usize = 2;
/// Assistant turns whose `run` outputs stay complete.
pub const KEEP_RUN_TURNS: usize = 3;
/// Older `run` outputs above this size are cut to head + tail.
const OLD_RUN_MAX_BYTES: usize = 2_400;
const OLD_RUN_HEAD_BYTES: usize = 600;
const OLD_RUN_TAIL_BYTES: usize = 1_200;
/// Editor texts (`file_text`, `new_str`, `old_str`, `insert_text`) up to this size stay:
/// a small edit costs little and keeps the story of the session readable.
pub const EDIT_STUB_MIN_BYTES: usize = 400;
/// The editor's input fields whose text a stub replaces, with the stub's verb.
const EDITOR_TEXTS: [(&str, &str); 4] = [
    ("file_text", "written"),
    ("new_str", "written"),
    ("insert_text", "written"),
    ("old_str", "replaced"),
];
/// Characters of a command quoted in a superseded stub.
const CMD_QUOTE_CHARS: usize = 80;

const EVICTED_PREFIX: &str = "[evicted: ";
const SUPERSEDED_PREFIX: &str = "[superseded: ";

/// One tool call in history order.
struct Call<'h> {
    /// Position of the `tool_use`: (message, block); history order.
    at: (usize, usize),
    /// The paths the call changed (from [`ChangedByCall`]; empty when none).
    changed: &'h [String],
    /// Index of the assistant turn it belongs to (0-based).
    turn: usize,
    name: String,
    input: Value,
    /// Position and text of its `tool_result`, if answered.
    result: Option<((usize, usize), String)>,
}

/// New texts for `tool_result` blocks, by position.
type Replacements = HashMap<(usize, usize), String>;

/// Shrinks stale tool results and old write payloads in place (see the module docs).
/// `changed` says what each call changed ([`super::ToolContext::changed_by_call`]).
pub fn evict_stale(messages: &mut [Message], changed: &ChangedByCall) {
    let calls = collect_calls(messages, changed);
    let turns = messages.iter().filter(|m| m.role == Role::Assistant).count();

    // Decide everything from the history as it is, then apply.
    let mut replace = Replacements::new();
    plan_stale_reads(&calls, &mut replace);
    let superseded = plan_superseded_runs(&calls, &mut replace);
    plan_old_run_outputs(&calls, &superseded, turns, &mut replace);
    for ((m, b), new_text) in replace {
        if let Some(Block::ToolResult { content, .. }) = messages.get_mut(m).and_then(|msg| msg.content.get_mut(b)) {
            *content = new_text;
        }
    }
    stub_old_writes(messages, &calls, turns);
}

/// (a) A read is stale when a later call changed its path.
fn plan_stale_reads(calls: &[Call<'_>], replace: &mut Replacements) {
    for (i, call) in calls.iter().enumerate() {
        if !is_read(call) {
            continue;
        }
        let (Some(path), Some((pos, text))) = (path_of(&call.input), &call.result) else {
            continue;
        };
        if text.starts_with(EVICTED_PREFIX) || !calls[i + 1..].iter().any(|c| c.changed.contains(&path)) {
            continue;
        }
        replace.insert(
            *pos,
            format!("[evicted: {path} was rewritten after this read — read it again if needed]"),
        );
    }
}

/// (b) Only the latest run of each command keeps its output. Returns the indices of the
/// superseded calls.
fn plan_superseded_runs(calls: &[Call<'_>], replace: &mut Replacements) -> HashSet<usize> {
    let mut latest: HashMap<&str, usize> = HashMap::new();
    for (i, call) in calls.iter().enumerate() {
        if call.name == "run"
            && let Some(cmd) = command_of(&call.input)
        {
            latest.insert(cmd, i);
        }
    }
    let mut superseded = HashSet::new();
    for (i, call) in calls.iter().enumerate() {
        if call.name != "run" {
            continue;
        }
        let (Some(cmd), Some((pos, text))) = (command_of(&call.input), &call.result) else {
            continue;
        };
        if latest.get(cmd) == Some(&i) {
            continue;
        }
        superseded.insert(i);
        if text.starts_with(SUPERSEDED_PREFIX) {
            continue;
        }
        let quoted = truncate_chars(cmd, CMD_QUOTE_CHARS, "...").replace('`', "'");
        let mut stub = format!("[superseded: a later run of `{quoted}` is below]");
        // Keep, for the model, which files the command changed and what pace refused to
        // bring back (it must not assume those files exist on the host).
        for marker in [CHANGED_MARKER, REFUSED_MARKER] {
            if let Some(line) = text.lines().rev().find(|l| l.starts_with(marker)) {
                stub.push('\n');
                stub.push_str(line);
            }
        }
        replace.insert(*pos, stub);
    }
    superseded
}

/// (d) Long outputs of older runs keep head and tail.
fn plan_old_run_outputs(calls: &[Call<'_>], superseded: &HashSet<usize>, turns: usize, replace: &mut Replacements) {
    for (i, call) in calls.iter().enumerate() {
        if call.name != "run" || superseded.contains(&i) || call.turn + KEEP_RUN_TURNS >= turns {
            continue;
        }
        if let Some((pos, text)) = &call.result
            && text.len() > OLD_RUN_MAX_BYTES
        {
            replace.insert(*pos, head_tail(text, OLD_RUN_HEAD_BYTES, OLD_RUN_TAIL_BYTES));
        }
    }
}

/// `read_file`, or the editor's `view`.
fn is_read(call: &Call<'_>) -> bool {
    call.name == "read_file" || (call.name == EDITOR && command_of(&call.input) == Some("view"))
}

/// (c) Old write payloads become stubs (the input stays a valid JSON object).
fn stub_old_writes(messages: &mut [Message], calls: &[Call<'_>], turns: usize) {
    for call in calls {
        let fields: &[(&str, &str)] = match call.name.as_str() {
            "write_file" | "write_doc" => &[("content", "written")],
            EDITOR => &EDITOR_TEXTS,
            _ => continue,
        };
        if call.turn + KEEP_WRITE_TURNS >= turns {
            continue;
        }
        let min_bytes = if call.name == EDITOR { EDIT_STUB_MIN_BYTES } else { 0 };
        let (m, b) = call.at;
        let Some(Block::ToolUse { input, .. }) = messages.get_mut(m).and_then(|msg| msg.content.get_mut(b)) else {
            continue;
        };
        for (field, verb) in fields {
            if let Some(Value::String(text)) = input.get_mut(*field)
                && text.len() > min_bytes
                && !is_write_stub(text)
            {
                *text = format!("[{} bytes {verb}]", text.len());
            }
        }
    }
}

fn is_write_stub(s: &str) -> bool {
    s.starts_with('[') && (s.ends_with(" bytes written]") || s.ends_with(" bytes replaced]")) && s.len() < 40
}

fn collect_calls<'h>(messages: &[Message], changed: &'h ChangedByCall) -> Vec<Call<'h>> {
    let mut results: HashMap<&str, ((usize, usize), &str)> = HashMap::new();
    for (m, msg) in messages.iter().enumerate() {
        for (b, block) in msg.content.iter().enumerate() {
            if let Block::ToolResult {
                tool_use_id, content, ..
            } = block
            {
                results
                    .entry(tool_use_id.as_str())
                    .or_insert(((m, b), content.as_str()));
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
                    changed: changed.get(id).map_or(&[], Vec::as_slice),
                    turn,
                    name: name.clone(),
                    input: input.clone(),
                    result: results.get(id.as_str()).map(|(pos, text)| (*pos, (*text).to_string())),
                });
            }
        }
        turn += 1;
    }
    calls
}

/// The repository-relative path a read names (`repo:` prefix dropped); `None` for
/// SCRIBE's `docs:` and `context:` paths, which FORGE never writes.
fn path_of(input: &Value) -> Option<String> {
    let raw = input.get("path")?.as_str()?;
    if raw.starts_with("docs:") || raw.starts_with("context:") {
        return None;
    }
    let p = normalise_rel(raw.strip_prefix("repo:").unwrap_or(raw));
    (!p.is_empty()).then_some(p)
}

fn command_of(input: &Value) -> Option<&str> {
    input.get("command")?.as_str().map(str::trim).filter(|c| !c.is_empty())
}

/// Rough token count (characters / 4) of everything the model is sent back.
pub fn estimate_tokens(messages: &[Message]) -> usize {
    let chars: usize = messages
        .iter()
        .flat_map(|m| m.content.iter())
        .map(|block| match block {
            Block::Text { text } => text.chars().count(),
            Block::ToolUse { name, input, id } => name.len() + id.len() + input.to_string().chars().count(),
            Block::ToolResult {
                content, tool_use_id, ..
            } => content.chars().count() + tool_use_id.len(),
        })
        .sum();
    chars.div_ceil(4)
}

fn use_ids(msg: &Message) -> Vec<&str> {
    msg.content
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

fn result_ids(msg: &Message) -> Vec<&str> {
    msg.content
        .iter()
        .filter_map(|b| match b {
            Block::ToolResult { tool_use_id, .. } => Some(tool_use_id.as_str()),
            _ => None,
        })
        .collect()
}

/// Checks the protocol invariant: every `tool_use` of an assistant message is answered by
/// exactly one `tool_result` in the next (user) message, `tool_results` come before any text
/// there, every `tool_result` answers a `tool_use` of the message before, ids are unique. A
/// trailing assistant message may still have unanswered calls.
pub fn check_pairing(messages: &[Message]) -> Result<(), String> {
    let mut seen_ids: HashSet<&str> = HashSet::new();
    for (i, msg) in messages.iter().enumerate() {
        let uses = use_ids(msg);
        let results = result_ids(msg);
        match msg.role {
            Role::Assistant if !results.is_empty() => {
                return Err(format!("message {i}: an assistant message holds tool_result blocks"));
            }
            Role::User if !uses.is_empty() => {
                return Err(format!("message {i}: a user message holds tool_use blocks"));
            }
            _ => {}
        }
        if let Some(id) = uses.iter().find(|id| !seen_ids.insert(id)) {
            return Err(format!("message {i}: tool_use id `{id}` is used twice"));
        }
        if !uses.is_empty()
            && let Some(next) = messages.get(i + 1)
        {
            if next.role != Role::User {
                return Err(format!("message {}: tool calls are not answered", i + 1));
            }
            let answered = result_ids(next);
            for id in &uses {
                let n = answered.iter().filter(|a| *a == id).count();
                if n != 1 {
                    return Err(format!("message {}: tool_use `{id}` is answered {n} times", i + 1));
                }
            }
        }
        if !results.is_empty() {
            let first_text = msg
                .content
                .iter()
                .position(|b| matches!(b, Block::Text { .. }))
                .unwrap_or(usize::MAX);
            let last_result = msg.content.iter().rposition(|b| matches!(b, Block::ToolResult { .. }));
            if last_result.is_some_and(|r| first_text < r) {
                return Err(format!("message {i}: text comes before a tool_result"));
            }
            let asked: Vec<&str> = i
                .checked_sub(1)
                .and_then(|p| messages.get(p))
                .map(use_ids)
                .unwrap_or_default();
            if let Some(id) = results.iter().find(|id| !asked.contains(id)) {
                return Err(format!(
                    "message {i}: tool_result `{id}` answers no tool_use of the message before"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A scripted history: each step is one assistant turn with its calls and the user
    /// message with their results; `changed` is what the handlers would have returned
    /// (a `write_file` its path, filled in by `turn`; a `run` what the test says).
    #[derive(Default)]
    struct History {
        messages: Vec<Message>,
        changed: ChangedByCall,
        next_id: usize,
    }

    impl History {
        fn turn(&mut self, calls: &[(&str, Value, &str)]) -> Vec<String> {
            let mut uses = Vec::new();
            let mut results = Vec::new();
            let mut ids = Vec::new();
            for (name, input, result) in calls {
                self.next_id += 1;
                let id = format!("toolu_{:03}", self.next_id);
                if *name == "write_file"
                    && let Some(path) = input["path"].as_str()
                {
                    self.changed.insert(id.clone(), vec![normalise_rel(path)]);
                }
                uses.push(Block::ToolUse {
                    id: id.clone(),
                    name: (*name).into(),
                    input: input.clone(),
                });
                results.push(Block::ToolResult {
                    tool_use_id: id.clone(),
                    content: (*result).into(),
                    is_error: false,
                });
                ids.push(id);
            }
            self.messages.push(Message {
                role: Role::Assistant,
                content: uses,
            });
            self.messages.push(Message {
                role: Role::User,
                content: results,
            });
            ids
        }

        fn evict(&mut self) {
            evict_stale(&mut self.messages, &self.changed);
        }

        fn result(&self, id: &str) -> String {
            self.messages
                .iter()
                .flat_map(|m| m.content.iter())
                .find_map(|b| match b {
                    Block::ToolResult {
                        tool_use_id, content, ..
                    } if tool_use_id == id => Some(content.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        }

        fn input(&self, id: &str) -> Value {
            self.messages
                .iter()
                .flat_map(|m| m.content.iter())
                .find_map(|b| match b {
                    Block::ToolUse { id: i, input, .. } if i == id => Some(input.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        }
    }

    fn read(path: &str) -> (&'static str, Value) {
        ("read_file", json!({ "path": path }))
    }

    fn write(path: &str, content: &str) -> (&'static str, Value) {
        ("write_file", json!({ "path": path, "content": content }))
    }

    fn run(cmd: &str) -> (&'static str, Value) {
        ("run", json!({ "command": cmd }))
    }

    #[test]
    fn a_read_before_a_later_write_is_evicted_a_read_after_it_stays() {
        let mut h = History::default();
        let (n, i) = read("src/lib.rs");
        let first = h.turn(&[(n, i, "old content")]);
        let (n, i) = write("./src/lib.rs", "new content");
        h.turn(&[(n, i, "OK: wrote 11 bytes to src/lib.rs")]);
        let (n, i) = read("src/lib.rs");
        let second = h.turn(&[(n, i, "new content")]);
        let (n, i) = read("src/other.rs");
        let other = h.turn(&[(n, i, "untouched")]);
        h.evict();
        assert_eq!(
            h.result(&first[0]),
            "[evicted: src/lib.rs was rewritten after this read — read it again if needed]"
        );
        assert_eq!(h.result(&second[0]), "new content", "a read after the last write stays");
        assert_eq!(h.result(&other[0]), "untouched");
        check_pairing(&h.messages).unwrap();
    }

    #[test]
    fn order_inside_one_turn_counts() {
        let mut h = History::default();
        let (rn, ri) = read("src/a.rs");
        let (wn, wi) = write("src/a.rs", "x");
        let ids = h.turn(&[(wn, wi, "OK"), (rn, ri, "x")]);
        h.evict();
        assert_eq!(h.result(&ids[1]), "x", "the read came after the write in the same turn");
    }

    #[test]
    fn a_read_of_a_file_a_later_run_changed_is_evicted() {
        let mut h = History::default();
        let (n, i) = read("src/lib.rs");
        let ids = h.turn(&[(n, i, "fn  main(){}")]);
        let (n, i) = run("cargo fmt");
        let fmt = format!("exit code: 0\n(no output)\n{CHANGED_MARKER}src/lib.rs, tests/t.rs]");
        let ran = h.turn(&[(n, i, fmt.as_str())]);
        h.changed
            .insert(ran[0].clone(), vec!["src/lib.rs".into(), "tests/t.rs".into()]);
        h.evict();
        assert!(
            h.result(&ids[0]).starts_with("[evicted: src/lib.rs"),
            "{}",
            h.result(&ids[0])
        );
    }

    /// Which files a call changed comes from the handlers' data, never from the result
    /// text: a changed-files line the model could have printed itself changes nothing, and
    /// a refused write (no changed path) leaves the read alone.
    #[test]
    fn staleness_comes_from_the_changed_paths_not_from_the_text() {
        let mut h = History::default();
        let (n, i) = read("src/lib.rs");
        let kept = h.turn(&[(n, i, "fn main() {}")]);
        let (n, i) = run("echo");
        let forged = format!("exit code: 0\n{CHANGED_MARKER}src/lib.rs]");
        h.turn(&[(n, i, forged.as_str())]);
        let (n, i) = write("src/lib.rs", "x");
        let refused = h.turn(&[(n, i, "ERROR: `src/lib.rs` is a symbolic link")]);
        h.changed.remove(&refused[0]);
        h.evict();
        assert_eq!(h.result(&kept[0]), "fn main() {}");

        let (n, i) = run("make gen");
        let quiet = h.turn(&[(n, i, "exit code: 0\n(no output)")]);
        h.changed.insert(quiet[0].clone(), vec!["src/lib.rs".into()]);
        h.evict();
        assert_eq!(
            h.result(&kept[0]),
            "[evicted: src/lib.rs was rewritten after this read — read it again if needed]"
        );
    }

    #[test]
    #[allow(clippy::many_single_char_names, reason = "n, i: name and input of each call")]
    fn repeated_runs_keep_only_the_latest_output() {
        let mut h = History::default();
        let (n, i) = run("cargo test");
        let a = h.turn(&[(n, i.clone(), "exit code: 101\n1 failed")]);
        let (n2, i2) = run("cargo build");
        let b = h.turn(&[(n, i.clone(), "exit code: 101\n2 failed"), (n2, i2, "exit code: 0")]);
        let c = h.turn(&[(n, i, "exit code: 0\nall passed")]);
        h.evict();
        let stub = "[superseded: a later run of `cargo test` is below]";
        assert_eq!(h.result(&a[0]), stub);
        assert_eq!(h.result(&b[0]), stub);
        assert_eq!(h.result(&b[1]), "exit code: 0", "another command is kept");
        assert_eq!(h.result(&c[0]), "exit code: 0\nall passed");
        check_pairing(&h.messages).unwrap();
    }

    #[test]
    fn a_superseded_run_still_evicts_reads_it_made_stale() {
        let mut h = History::default();
        let (n, i) = read("src/lib.rs");
        let r = h.turn(&[(n, i, "before")]);
        let (n, i) = run("cargo fmt");
        let changed = format!("exit code: 0\n{CHANGED_MARKER}src/lib.rs]");
        let first = h.turn(&[(n, i.clone(), changed.as_str())]);
        h.changed.insert(first[0].clone(), vec!["src/lib.rs".into()]);
        h.turn(&[(n, i, "exit code: 0")]);
        h.evict();
        assert!(h.result(&first[0]).starts_with("[superseded:"));
        assert!(h.result(&first[0]).ends_with(&format!("{CHANGED_MARKER}src/lib.rs]")));
        assert!(h.result(&r[0]).starts_with("[evicted:"));
    }

    #[test]
    fn old_write_payloads_become_stubs_and_stay_json_objects() {
        let mut h = History::default();
        let (n, i) = write("src/a.rs", &"x".repeat(5_000));
        let old = h.turn(&[(n, i, "OK: wrote 5000 bytes to src/a.rs")]);
        for k in 0..KEEP_WRITE_TURNS {
            let (n, i) = write(&format!("src/b{k}.rs"), "recent");
            h.turn(&[(n, i, "OK")]);
        }
        let last_id = format!("toolu_{:03}", h.next_id);
        h.evict();
        assert_eq!(
            h.input(&old[0]),
            json!({"path": "src/a.rs", "content": "[5000 bytes written]"})
        );
        assert_eq!(h.input(&last_id)["content"], "recent");
        let before = h.messages.clone();
        h.evict();
        assert_eq!(h.messages, before, "eviction is idempotent");
    }

    #[test]
    fn long_outputs_of_old_runs_keep_head_and_tail() {
        let mut h = History::default();
        let long = format!("exit code: 1\n{}{}", "a".repeat(5_000), "z".repeat(5_000));
        let (n, i) = run("make check");
        let old = h.turn(&[(n, i, long.as_str())]);
        for k in 0..KEEP_RUN_TURNS {
            let (n, i) = run(&format!("echo {k}"));
            h.turn(&[(n, i, long.as_str())]);
        }
        let recent = format!("toolu_{:03}", h.next_id);
        h.evict();
        let cut = h.result(&old[0]);
        assert!(cut.starts_with("exit code: 1\naaa") && cut.ends_with("zzz"), "{cut}");
        assert!(cut.contains("bytes omitted") && cut.len() < 2_000);
        assert_eq!(h.result(&recent), long);
    }

    #[test]
    fn pairing_checker_catches_broken_histories() {
        let mut h = History::default();
        let (n, i) = read("a");
        h.turn(&[(n, i.clone(), "x"), (n, i, "y")]);
        check_pairing(&h.messages).unwrap();

        // A pending call at the end is fine.
        let mut pending = h.messages.clone();
        pending.push(Message {
            role: Role::Assistant,
            content: vec![Block::ToolUse {
                id: "p".into(),
                name: "run".into(),
                input: json!({}),
            }],
        });
        check_pairing(&pending).unwrap();

        let mut missing = h.messages.clone();
        missing[1].content.pop();
        assert!(check_pairing(&missing).is_err());

        let mut orphan = h.messages.clone();
        if let Block::ToolResult { tool_use_id, .. } = &mut orphan[1].content[0] {
            *tool_use_id = "nobody".into();
        }
        assert!(check_pairing(&orphan).is_err());

        let mut text_first = h.messages.clone();
        text_first[1].content.insert(0, Block::Text { text: "hi".into() });
        assert!(check_pairing(&text_first).is_err());

        let mut twice = h.messages.clone();
        twice.extend(h.messages.clone());
        assert!(check_pairing(&twice).is_err(), "ids must be unique");
    }

    /// A 20-call FORGE session: reading, writing, re-running the tests. The input sent
    /// over all model calls must be smaller with eviction, and pairing must hold throughout.
    #[test]
    fn eviction_slows_token_growth_over_a_scripted_session() {
        let file = |tag: &str| format!("// {tag}\n{}", "let x = compute(1, 2, 3);\n".repeat(80));
        let test_output = |failed: usize| {
            format!(
                "exit code: {}\n{}{failed} failed\n",
                u8::from(failed > 0),
                "test ok ... ok\n".repeat(400)
            )
        };
        let mut steps: Vec<(&str, Value, String)> = Vec::new();
        for round in 0..4 {
            let p = format!("src/mod{}.rs", round % 2);
            steps.push((read(&p).0, read(&p).1, file("before")));
            steps.push((write(&p, &file("after")).0, write(&p, &file("after")).1, "OK".into()));
            steps.push((run("cargo test").0, run("cargo test").1, test_output(3 - round)));
            steps.push((read(&p).0, read(&p).1, file("after")));
            steps.push((run("cargo clippy").0, run("cargo clippy").1, test_output(0)));
        }
        assert_eq!(steps.len(), 20);

        let mut plain = History::default();
        let mut evicted = History::default();
        let (mut plain_total, mut evicted_total) = (0usize, 0usize);
        for (name, input, result) in &steps {
            plain.turn(&[(name, input.clone(), result.as_str())]);
            evicted.turn(&[(name, input.clone(), result.as_str())]);
            evicted.evict();
            check_pairing(&evicted.messages).unwrap();
            plain_total += estimate_tokens(&plain.messages);
            evicted_total += estimate_tokens(&evicted.messages);
        }
        let (plain_last, evicted_last) = (estimate_tokens(&plain.messages), estimate_tokens(&evicted.messages));
        assert!(
            evicted_last * 2 < plain_last,
            "final context {evicted_last} vs {plain_last}"
        );
        assert!(
            evicted_total < plain_total,
            "total input {evicted_total} vs {plain_total}"
        );
        // Ids and order are untouched.
        let ids = |h: &History| -> Vec<String> {
            h.messages
                .iter()
                .flat_map(|m| m.content.iter())
                .map(|b| match b {
                    Block::ToolUse { id, .. } => format!("use:{id}"),
                    Block::ToolResult { tool_use_id, .. } => format!("result:{tool_use_id}"),
                    Block::Text { .. } => "text".into(),
                })
                .collect()
        };
        assert_eq!(ids(&plain), ids(&evicted));
    }

    #[test]
    fn estimate_is_chars_over_four() {
        let m = vec![Message::user_text("abcdefgh")];
        assert_eq!(estimate_tokens(&m), 2);
    }
}
