//! SCRIBE: a tool loop that writes `.pace/context/{product,engineering,security,devops}.md`
//! when they are missing or stale, and updates them after a SHIP.

use serde_json::Value;

use super::SCRIBE;
use super::turn::{LoopRequest, NoAnswer, Recovery, tool_turn};
use crate::artifacts::{CONTEXT_DOCS, write_yaml};
use crate::day::DayError;
use crate::day::context::{DayContext, render, untrusted};
use crate::day::tools::ToolContext;
use crate::llm::{Message, Role};
use crate::schemas::ScribeReport;
use crate::text::head_tail;

const SYSTEM: &str = include_str!("prompts/scribe.md");
/// The original's hard-coded cap; documents are short.
const MAX_ITERATIONS: u32 = 30;
/// Files whose change makes the context documents stale.
pub const SOURCE_DOCS: [&str; 4] = ["PRD.md", "SRS.md", "README.md", "ARCHITECTURE.md"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScribeMode {
    /// Documents missing or stale: write all four.
    Generate,
    /// After a SHIP: update the documents with what the day changed.
    Update,
}

pub async fn run(ctx: &DayContext, mode: ScribeMode, attempt: u32) -> Result<ScribeReport, DayError> {
    let timer = ctx.start_agent(SCRIBE, attempt);
    let result = tool_loop(ctx, mode).await;
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            ctx.finish_agent_with(timer, Some("ERROR"), vec![e.to_string()]);
            return Err(e);
        }
    };
    write_yaml(&ctx.day_dir.scribe_report(), &report, &ctx.redactor)?;
    write_manifest(ctx)?;
    let decision = if report.missing_docs.is_empty() {
        "done"
    } else {
        "PARTIAL"
    };
    let mut detail = vec![format!("wrote {}", report.documents_written.join(", "))];
    if !report.missing_docs.is_empty() {
        detail.push(format!("missing: {}", report.missing_docs.join(", ")));
    }
    ctx.finish_agent_with(timer, Some(decision), detail);
    Ok(report)
}

fn user_message(ctx: &DayContext, mode: ScribeMode) -> Result<String, DayError> {
    Ok(match mode {
        ScribeMode::Generate => {
            let missing = ctx.pace.missing_context_docs();
            format!(
                "Generate the context documents. Missing now: {}. Write all four documents, then call `finish`.",
                if missing.is_empty() {
                    "none (they are stale)".to_string()
                } else {
                    missing.join(", ")
                }
            )
        }
        ScribeMode::Update => {
            let diff = ctx.git.diff_since(&ctx.base_commit)?;
            format!(
                "Day {} shipped. Update the documents that today's change affects (read them first with `read_file`, e.g. `context:engineering.md`; rewrite a document only if it changed), then call `finish`.\n\nToday's diff:\n{}",
                ctx.plan.day,
                untrusted("git diff", &head_tail(&diff, 30_000, 5_000))
            )
        }
    })
}

async fn tool_loop(ctx: &DayContext, mode: ScribeMode) -> Result<ScribeReport, DayError> {
    let settings = &ctx.settings;
    let mut tools = ToolContext::scribe(settings, ctx.redactor.clone()).map_err(DayError::RepoRoot)?;
    let specs = tools.specs();
    let docs_note = settings
        .source
        .docs_dir
        .as_ref()
        .map(|d| format!(" `{}`", d.display()))
        .unwrap_or_default();
    let system = render(
        SYSTEM,
        &[
            ("product", &settings.product.name),
            ("product_description", &settings.product.description),
            ("docs_dir", &docs_note),
        ],
    );
    let mut messages = vec![Message::user_text(user_message(ctx, mode)?)];
    let mut read = Vec::new();
    let mut summary = String::new();
    let mut iterations = 0;
    let request = LoopRequest {
        agent: SCRIBE,
        system: &system,
        specs: &specs,
        max_tokens: settings.llm.forge_max_tokens,
    };
    let mut no_answer = NoAnswer::default();
    while iterations < MAX_ITERATIONS {
        iterations += 1;
        let turn = tool_turn(ctx, &request, &mut tools, &mut messages).await?;
        match no_answer.check(
            SCRIBE,
            &turn.answer,
            &mut messages,
            "Write the documents with the tools, then call `finish`.",
        ) {
            None => {}
            Some(Recovery::Retry) => continue,
            Some(Recovery::Stop(reason)) => {
                // The documents are advisory: the day goes on, the report says why.
                ctx.warn(reason.clone());
                summary = reason;
                break;
            }
        }
        if turn.called.is_empty() {
            break;
        }
        read.extend(
            turn.called
                .iter()
                .filter(|(name, _)| name == "read_file")
                .filter_map(|(_, input)| input.get("path").and_then(Value::as_str).map(str::to_string)),
        );
        let finished = turn.finished.is_some();
        if let Some(text) = turn.finished {
            summary = text;
        }
        let results = turn.results;
        messages.push(Message {
            role: Role::User,
            content: results,
        });
        if finished {
            break;
        }
    }
    let written: Vec<String> = tools.docs_written().iter().cloned().collect();
    read.sort();
    read.dedup();
    Ok(ScribeReport {
        documents_written: written,
        source_files_read: read,
        tool_iterations: iterations,
        missing_docs: ctx.pace.missing_context_docs().into_iter().map(String::from).collect(),
        summary,
    })
}

/// `.pace/context/context.manifest.yaml`: hashes of the source documents the context was
/// written from, so a later run can tell the context is stale.
fn write_manifest(ctx: &DayContext) -> Result<(), DayError> {
    let manifest = serde_json::json!({
        "generated_at": crate::artifacts::now_rfc3339(),
        "source_hashes": source_hashes(&ctx.settings.repo_root),
        "files": CONTEXT_DOCS.iter().filter(|d| ctx.pace.context_doc(d).is_file()).collect::<Vec<_>>(),
    });
    write_yaml(
        &ctx.pace.context_dir().child("context.manifest.yaml"),
        &manifest,
        &ctx.redactor,
    )?;
    Ok(())
}

/// A stable fingerprint (FNV-1a) per source document present at the repository root.
pub fn source_hashes(repo: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    SOURCE_DOCS
        .iter()
        .filter_map(|name| {
            let bytes = std::fs::read(repo.join(name)).ok()?;
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for b in bytes {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            Some(((*name).to_string(), format!("{hash:016x}")))
        })
        .collect()
}

/// The context needs SCRIBE: a document is missing or a source document changed.
pub fn context_is_stale(ctx: &DayContext) -> bool {
    if !ctx.pace.missing_context_docs().is_empty() {
        return true;
    }
    let manifest: Option<Value> = crate::artifacts::read_yaml(&ctx.pace.context_dir().join("context.manifest.yaml"));
    let Some(recorded) = manifest.as_ref().and_then(|m| m.get("source_hashes")) else {
        // Hand-written documents without a manifest are trusted as they are.
        return false;
    };
    let current = serde_json::to_value(source_hashes(&ctx.settings.repo_root)).unwrap_or_default();
    &current != recorded
}
