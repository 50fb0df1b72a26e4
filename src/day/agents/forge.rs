//! FORGE: the coding agent's tool loop. Its commands run in one sandbox container per
//! attempt; pace commits what it changed in the source and test directories, also when
//! the attempt stops early (budget, outage), so no work is lost.

use serde_json::Value;

use super::FORGE;
use super::turn::{LoopRequest, NoAnswer, Recovery, Turn, tool_turn};
use crate::day::DayError;
use crate::day::context::{DayContext, render, untrusted};
use crate::day::tools::ToolContext;
use crate::llm::{Block, Message, Role, StopReason};
use crate::sandbox::{ExecSession, SandboxError};
use crate::schemas::{Handoff, StoryCard, handoff_fields};

const SYSTEM: &str = include_str!("prompts/forge.md");
const TDD: &str = include_str!("prompts/forge-tdd.md");
const BASIC: &str = include_str!("prompts/forge-basic.md");
const COVERAGE: &str = include_str!("prompts/forge-coverage.md");
/// Text-only answers in a row before the attempt is given up.
const MAX_NUDGES: u32 = 2;
/// After a text answer cut off by the output limit.
const CUT_OFF: &str = "Your answer was cut off by the output limit. Continue with smaller steps: change existing files with `str_replace` instead of rewriting them, one file per call.";
/// After an answer whose last tool call was cut off (the tool reported its arguments invalid).
const CALL_CUT_OFF: &str = "Your answer was cut off by the output limit, so its last tool call was incomplete. Repeat it in smaller steps (one file per call; `str_replace` for a part of a file instead of rewriting it).";
/// What FORGE is asked to do after an answer without a tool call.
const EXPECTED: &str =
    "Continue with the tools. When the story is implemented and the tests pass, call `complete_handoff`.";

pub enum ForgeOutcome {
    Handoff(Handoff),
    /// No handoff: the attempt holds with this reason (its work is committed anyway).
    NoHandoff {
        reason: String,
        commit: String,
        files_changed: Vec<String>,
    },
}

pub struct ForgeInput<'a> {
    pub story: &'a StoryCard,
    pub hold_reason: Option<&'a str>,
    pub attempt: u32,
    /// An earlier attempt confirmed the red phase (its tests exist already).
    pub red_phase_confirmed: bool,
}

struct LoopResult {
    handoff: Option<Value>,
    iterations: u32,
    red_phase_confirmed: bool,
    end_reason: String,
}

/// A FORGE session started ahead of FORGE (the first attempt's starts while PRIME writes
/// the story card, so its container is ready when FORGE runs its first command).
pub type EarlySession = Result<ExecSession, SandboxError>;

pub async fn run(
    ctx: &DayContext,
    input: ForgeInput<'_>,
    early: Option<EarlySession>,
) -> Result<ForgeOutcome, DayError> {
    let timer = ctx.start_agent(FORGE, input.attempt);
    let cost_before = ctx.agent_cost(FORGE);
    let started = match early {
        Some(started) => started,
        None => ctx.sandbox.start_session(&ctx.settings.repo_root).await,
    };
    let mut session = match started {
        Ok(s) => s,
        Err(e) => {
            ctx.finish_agent_with(timer, Some("ERROR"), vec![e.to_string()]);
            return Err(e.into());
        }
    };
    let looped = tool_loop(ctx, &input, &mut session).await;
    // Bind mode: a last check of the checkout after the container stopped, before the commit.
    // Without it nothing is committed: an unchecked checkout may hold what the policy refuses.
    if let Err(e) = session.finish().await {
        let _ = session.close().await;
        ctx.finish_agent_with(timer, Some("ERROR"), vec![e.to_string()]);
        return Err(e.into());
    }
    ctx.record_refused(session.take_refused());
    // Removed while the day goes on (the reviews start meanwhile); the day waits for it.
    ctx.sandbox.close_later(session);
    // Commit whatever FORGE changed, whatever happened in the loop (contract: no work lost).
    let committed = commit_work(ctx, input.story, input.attempt);
    let (looped, (commit, files_changed)) = match (looped, committed) {
        (Err(e), _) | (Ok(_), Err(e)) => {
            ctx.finish_agent_with(timer, Some("ERROR"), vec![e.to_string()]);
            return Err(e);
        }
        (Ok(l), Ok(c)) => (l, c),
    };
    let Some(raw) = looped.handoff else {
        ctx.finish_agent_with(timer, Some("HOLD"), vec![format!("no handoff: {}", looped.end_reason)]);
        return Ok(ForgeOutcome::NoHandoff {
            reason: looped.end_reason,
            commit,
            files_changed,
        });
    };
    let cost_after = ctx.agent_cost(FORGE);
    let handoff = match handoff_fields(&raw) {
        Ok(fields) => Handoff {
            day: ctx.plan.day,
            agent: FORGE.into(),
            commit,
            approach: fields.approach,
            risk: fields.risk,
            dependencies: fields.dependencies,
            built: fields.built,
            edge_cases_tested: fields.edge_cases_tested,
            known_gaps: fields.known_gaps,
            iterations_used: looped.iterations,
            tdd_red_phase_confirmed: looped.red_phase_confirmed,
            forge_cost_usd: ((cost_after - cost_before) * 10_000.0).round() / 10_000.0,
            files_changed,
        },
        Err(problem) => {
            ctx.finish_agent_with(timer, Some("HOLD"), vec![format!("handoff invalid: {problem}")]);
            return Ok(ForgeOutcome::NoHandoff {
                reason: format!("FORGE handoff invalid: {problem}"),
                commit,
                files_changed,
            });
        }
    };
    crate::artifacts::write_yaml(&ctx.day_dir.handoff(), &handoff, &ctx.redactor)?;
    let detail = vec![
        format!("built: {}", handoff.built),
        format!(
            "{} file(s) changed in {} iteration(s)",
            handoff.files_changed.len(),
            handoff.iterations_used
        ),
    ];
    ctx.finish_agent_with(timer, Some("done"), detail);
    Ok(ForgeOutcome::Handoff(handoff))
}

fn system_prompt(ctx: &DayContext) -> String {
    let s = &ctx.settings;
    let dirs: Vec<String> = s
        .source
        .dirs
        .iter()
        .map(|d| format!("  {:<30} ({}) — {}", d.path, d.language, d.description))
        .collect();
    let languages = match &s.tech.secondary_language {
        Some(second) => format!("{}, {second}", s.tech.primary_language),
        None => s.tech.primary_language.clone(),
    };
    render(
        SYSTEM,
        &[
            ("product", &s.product.name),
            ("product_description", &s.product.description),
            ("source_dirs", &dirs.join("\n")),
            ("test_dirs", &s.source.test_dirs.join(", ")),
            ("languages", &languages),
            ("ci_system", &s.tech.ci_system),
            ("build_command", s.tech.build_command.as_deref().unwrap_or("(none)")),
            ("test_command", &s.tech.test_command),
            (
                "tdd_tool",
                if s.forge.tdd_enforcement {
                    ", `confirm_red_phase`"
                } else {
                    ""
                },
            ),
            ("workflow", if s.forge.tdd_enforcement { TDD } else { BASIC }),
            ("coverage_rule", if s.forge.coverage_rule { COVERAGE } else { "" }),
        ],
    )
}

fn first_message(ctx: &DayContext, input: &ForgeInput<'_>) -> String {
    let card = serde_saphyr::to_string(input.story).unwrap_or_default();
    let mut parts = vec![format!("Story card for Day {}:\n```yaml\n{card}```", ctx.plan.day)];
    if let Some(eng) = ctx.context_doc("engineering.md") {
        parts.push(format!("Engineering context:\n{eng}"));
    }
    if let Some(reason) = input.hold_reason {
        parts.push(format!(
            "This is attempt {}. The previous attempt was held — focus your fix on this:\n{}",
            input.attempt,
            untrusted("hold reason", reason)
        ));
    }
    parts.join("\n\n")
}

async fn tool_loop(
    ctx: &DayContext,
    input: &ForgeInput<'_>,
    session: &mut ExecSession,
) -> Result<LoopResult, DayError> {
    let settings = &ctx.settings;
    let max_iterations = settings.forge.max_iterations.max(1);
    let warn_at = max_iterations * (100 - settings.forge.retry_iterations.min(99)) / 100;
    let mut tools = ToolContext::forge(settings, ctx.redactor.clone())
        .map_err(DayError::RepoRoot)?
        .with_runner(session)
        .with_red_phase_confirmed(input.red_phase_confirmed);
    let specs = tools.specs();
    let system = system_prompt(ctx);
    let mut messages = vec![Message::user_text(first_message(ctx, input))];
    let mut nudges = 0;
    let mut warned = false;
    let mut no_answer = NoAnswer::default();
    let request = LoopRequest {
        agent: FORGE,
        system: &system,
        specs: &specs,
        max_tokens: settings.llm.forge_max_tokens,
    };
    for iteration in 1..=max_iterations {
        let Turn {
            mut results,
            called,
            handoff,
            stop_reason,
            answer,
            ..
        } = tool_turn(ctx, &request, &mut tools, &mut messages).await?;
        let stopped = match no_answer.check(FORGE, &answer, &mut messages, EXPECTED) {
            None => None,
            Some(Recovery::Retry) => continue,
            Some(Recovery::Stop(reason)) => Some(reason),
        };
        if handoff.is_some() || stopped.is_some() {
            return Ok(LoopResult {
                handoff,
                iterations: iteration,
                red_phase_confirmed: tools.red_phase_confirmed(),
                end_reason: stopped.unwrap_or_default(),
            });
        }
        if called.is_empty() {
            // The original ended FORGE on a text-only answer; a nudge saves the attempt.
            nudges += 1;
            if nudges > MAX_NUDGES {
                break;
            }
            let why = if stop_reason == StopReason::MaxTokens {
                CUT_OFF
            } else {
                EXPECTED
            };
            results.push(Block::Text { text: why.into() });
        } else {
            nudges = 0;
            if stop_reason == StopReason::MaxTokens {
                // The last call's arguments are incomplete (the tool reported them invalid).
                results.push(Block::Text {
                    text: CALL_CUT_OFF.into(),
                });
            }
        }
        if !warned && iteration >= warn_at {
            warned = true;
            results.push(budget_notice(iteration, max_iterations));
        }
        messages.push(Message {
            role: Role::User,
            content: results,
        });
    }
    Ok(LoopResult {
        handoff: None,
        iterations: max_iterations,
        red_phase_confirmed: tools.red_phase_confirmed(),
        end_reason: out_of_turns(nudges > MAX_NUDGES, max_iterations),
    })
}

/// Why the loop ended without a handoff: text answers only, or no iterations left.
fn out_of_turns(stopped_using_tools: bool, max_iterations: u32) -> String {
    if stopped_using_tools {
        "FORGE stopped using its tools without calling `complete_handoff`".to_string()
    } else {
        format!("FORGE did not call `complete_handoff` within {max_iterations} iterations (`forge.max_iterations`)")
    }
}

/// The one notice when most of `forge.max_iterations` is used.
fn budget_notice(iteration: u32, max_iterations: u32) -> Block {
    Block::Text {
        text: format!(
            "⚠️ Iteration budget notice: you have used {iteration} of {max_iterations} iterations. Finish what is started, run the tests, then call `complete_handoff` with what is done and what is missing in `known_gaps`. Do not start new features."
        ),
    }
}

/// Commits FORGE's changes in the writable directories; returns HEAD and the files.
fn commit_work(ctx: &DayContext, story: &StoryCard, attempt: u32) -> Result<(String, Vec<String>), DayError> {
    let subject = crate::text::one_line(&story.story, 60);
    commit_writable(
        ctx,
        &format!("Day {}: FORGE — {subject} (attempt {attempt})", ctx.plan.day),
    )
}

/// Commits whatever changed in the source and test directories (also used when the day is
/// interrupted, so FORGE's edits survive a cancelled CI job).
pub fn commit_writable(ctx: &DayContext, message: &str) -> Result<(String, Vec<String>), DayError> {
    let s = &ctx.settings;
    let mut dirs: Vec<String> = s.source.dirs.iter().map(|d| d.path.clone()).collect();
    dirs.extend(s.source.test_dirs.iter().cloned());
    dirs.retain(|d| s.repo_root.join(d).exists());
    let files = if dirs.is_empty() {
        Vec::new()
    } else {
        ctx.git.changed_files(&dirs)?
    };
    let mut files = files;
    if !files.is_empty() {
        // The subject carries the story's text: inert (no closing pattern, no smart commit).
        let committed = ctx
            .git
            .commit_paths(&files, &crate::inert::commit_message(message, &ctx.redactor))?;
        // A nested repository (a gitlink) under the writable directories is never committed:
        // its config would steer every later git on the host. It is listed as refused.
        let gitlinks = committed.refused_gitlinks;
        files.retain(|f| {
            !gitlinks
                .iter()
                .any(|g| f == g || f.starts_with(&format!("{}/", g.trim_end_matches('/'))))
        });
        ctx.record_refused(
            gitlinks
                .into_iter()
                .map(|path| {
                    crate::boundary::Refused::new(
                        path,
                        &crate::boundary::Refusal::ControlName {
                            name: ".git".into(),
                            what: "inside a nested git repository, which pace never commits (it would become a gitlink)",
                        },
                        crate::boundary::Origin::Run,
                    )
                })
                .collect(),
        );
    }
    Ok((ctx.git.head(), files))
}
