//! The day's state machine: PRIME → FORGE → GATE ∥ SENTINEL ∥ CONDUIT → SCRIBE, with the
//! retries, advisory backlog, clearance days and human gates of the contract ("The day").
//!
//! Whatever happens after the day directory exists — SHIP, HOLD, budget, an outage, a
//! signal — [`run`] writes `run.json`, the summary and `PROGRESS.md` and commits them.

use std::future::Future;
use std::time::Duration;

use crate::artifacts::{self, AttemptRecord, BacklogItem, DayDir, PaceDir, RunDecision, RunRecord, Totals};
use crate::config::settings::Settings;
use crate::env::Env;
use crate::error::{self, ExitKind, Hint, PaceError};
use crate::git::{Git, GitError};
use crate::llm::{Client, LlmError};
use crate::platform::{Platform, PlatformError};
use crate::redact::Redactor;
use crate::report::printer::{Event, Printer};
use crate::report::progress::ProgressDay;
use crate::report::summary::DaySummary;
use crate::sandbox::{Sandbox, SandboxContext, SandboxError};
use crate::schemas::{GateReport, Handoff, ReviewReport, StoryCard};

pub mod agents;
pub mod context;
pub mod decide;
pub mod lock;
pub mod tools;

pub use context::{DayContext, DayPlan};

use agents::forge::{ForgeInput, ForgeOutcome};
use agents::prime::PrimeOutcome;
use agents::scribe::ScribeMode;
use agents::{CONDUIT, SENTINEL};
use decide::Verdict;

#[derive(Debug, thiserror::Error)]
pub enum DayError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Artifact(#[from] artifacts::ArtifactError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The checkout cannot be used as it is (opening it, its branch): a person fixes it.
    #[error(transparent)]
    Checkout(GitError),
    /// A tool call hit an infrastructure failure (FORGE's `run` and Docker): the attempt
    /// stops, and the sandbox's hint reaches the user.
    #[error("{agent} tool `{tool}` aborted: {source}")]
    ToolAborted {
        agent: String,
        tool: String,
        source: Box<tools::ToolAbort>,
    },
    #[error("cannot resolve the repository root: {0}")]
    RepoRoot(#[source] std::io::Error),
    #[error("interrupted by {0}")]
    Interrupted(Signal),
    /// `budget.max_minutes` passed; the message names the limit and what was running.
    #[error("{0}")]
    TimeBudget(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        })
    }
}

impl Hint for DayError {
    fn exit_kind(&self) -> Option<ExitKind> {
        match self {
            Self::Llm(e) => e.exit_kind(),
            Self::Sandbox(e) => e.exit_kind(),
            Self::Git(e) => e.exit_kind(),
            Self::Artifact(e) => e.exit_kind(),
            Self::Platform(e) => e.exit_kind(),
            Self::Checkout(_) => Some(ExitKind::Config),
            Self::ToolAborted { source, .. } => source.exit_kind(),
            Self::RepoRoot(_) => None,
            Self::Interrupted(Signal::Interrupt) => Some(ExitKind::Interrupted),
            Self::Interrupted(Signal::Terminate) => Some(ExitKind::Terminated),
            Self::TimeBudget(_) => Some(ExitKind::Budget),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Llm(e) => e.hint(),
            Self::Sandbox(e) => e.hint(),
            Self::Git(e) | Self::Checkout(e) => e.hint(),
            Self::Artifact(e) => e.hint(),
            Self::Platform(e) => e.hint(),
            Self::ToolAborted { source, .. } => source.hint(),
            Self::TimeBudget(_) => Some("the work so far is committed and the artifacts are written; re-run the day to continue (the story card is kept), or raise `budget.max_minutes`".into()),
            Self::RepoRoot(_) | Self::Interrupted(_) => None,
        }
    }
}

/// The error for a day stopped by `budget.max_minutes`.
fn out_of_time(ctx: &DayContext, limit: Duration) -> DayError {
    let running = ctx.running_agents();
    let during = if running.is_empty() {
        String::new()
    } else {
        format!(" during {}", running.join(", "))
    };
    DayError::TimeBudget(format!(
        "time budget exhausted: the day ran for {} (`budget.max_minutes: {}`) and was stopped{during}",
        human_duration(limit),
        limit.as_secs_f64() / 60.0
    ))
}

fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 120.0 {
        format!("{secs:.0} s")
    } else {
        format!("{:.1} min", secs / 60.0)
    }
}

/// Everything `pace --day N` needs, resolved by the CLI.
pub struct DayRequest {
    pub settings: Settings,
    pub plan: DayPlan,
    /// The plan's days for `PROGRESS.md`.
    pub progress_days: Vec<ProgressDay>,
    pub start_date: Option<String>,
    pub retry: bool,
    pub dry_run: bool,
    pub env: Env,
    pub printer: Printer,
    pub run_id: String,
}

/// How the day ended, for the CLI's exit code and final line.
#[derive(Debug)]
pub struct DayReport {
    pub exit: ExitKind,
    pub decision: Option<RunDecision>,
    pub message: String,
    pub hint: Option<String>,
}

/// Runs the day. `interrupt` resolves when SIGINT/SIGTERM arrives; the day then stops,
/// removes its containers, records what it has and exits 130/143. `budget.max_minutes`
/// stops it the same way (FORGE's work committed, exit 5, decision BUDGET).
pub async fn run(req: DayRequest, platform: Box<dyn Platform>, interrupt: impl Future<Output = Signal>) -> DayReport {
    let day_started = tokio::time::Instant::now();
    let redactor = redactor_for(&req.env, &req.settings);
    let git = match Git::open(
        &req.settings.repo_root,
        &req.settings.git.author_name,
        &req.settings.git.author_email,
    ) {
        Ok(g) => g,
        Err(e) => return early_exit(&DayError::Checkout(e)),
    };
    let branch = match git.current_branch() {
        Ok(b) => b,
        Err(e) => return early_exit(&DayError::Checkout(e)),
    };
    let pace = PaceDir::new(&req.settings.repo_root);
    let day_dir = pace.day(req.plan.day);
    // A link in pace's own paths (committed to the repository, or left by a suite) is
    // refused before anything there is read or written, and before a token is spent.
    // Exit 2 as for a dirty work tree: the checkout has to be fixed, not the runner.
    if let Err(e) = pace.check_no_links(req.plan.day) {
        return early_exit(&e);
    }
    if let Some(shipped) = already_shipped(&day_dir) {
        return DayReport {
            exit: ExitKind::Ship,
            decision: Some(RunDecision::Ship),
            message: format!(
                "Day {} was already shipped at `{}`; nothing to do",
                req.plan.day,
                short(&shipped.commit)
            ),
            hint: None,
        };
    }
    let _lock = match lock::RunLock::acquire(&pace, req.plan.day) {
        Ok(l) => l,
        Err(e) => return early_exit(&e),
    };
    // A person's uncommitted edits would end up in FORGE's commit (or be tested by GATE
    // as if they were the day's work): the day refuses to start before writing anything.
    match uncommitted_user_changes(&git, &req.settings) {
        Ok(files) if !files.is_empty() => return early_exit(&GitError::DirtyWorkTree(files)),
        Ok(_) => {}
        Err(e) => return early_exit(&e),
    }
    if let Err(e) = day_dir.create() {
        return early_exit(&e);
    }
    let started_at = artifacts::now_rfc3339();
    let prior_attempts = artifacts::read_attempts(&day_dir);
    let base_commit = day_base_commit(&day_dir, &git);

    // Credentials and Docker are checked before any token is spent; a failure still
    // leaves run.json, the summary and PROGRESS.md.
    let attempt = prior_attempts.len() as u32 + 1;
    let stop_early = |error: DayError| {
        finish_without_context(
            &req,
            &git,
            &day_dir,
            &pace,
            &branch,
            &redactor,
            &started_at,
            attempt,
            error,
        )
    };
    let llm = match Client::from_settings(
        &req.settings.llm,
        &req.settings.budget,
        &req.env,
        day_dir.transcript().to_path_buf(),
        redactor.clone(),
    ) {
        Ok(c) => c,
        Err(e) => return stop_early(e.into()),
    };
    let sandbox_ctx = SandboxContext::for_run(
        &req.settings,
        &req.env,
        req.run_id.clone(),
        req.plan.day,
        redactor.clone(),
    );
    let sandbox = match Sandbox::connect(sandbox_ctx).await {
        Ok(s) => s,
        Err(e) => return stop_early(e.into()),
    };
    if let Ok(n) = sandbox.remove_stale(&req.settings.repo_root).await
        && n > 0
    {
        req.printer.emit(&Event::Info(format!(
            "removed {n} stale sandbox container(s) of killed runs"
        )));
    }
    let ctx = DayContext::new(
        req.settings.clone(),
        req.plan.clone(),
        llm,
        sandbox,
        git,
        redactor,
        req.printer.clone(),
        branch,
        base_commit,
    );
    let mut state = CycleState::new(prior_attempts);
    let mut interrupt = std::pin::pin!(interrupt);
    // `budget.max_minutes` bounds the whole day, a provider that never answers included.
    let time_budget = req.settings.budget.max_duration;
    let out_of_time_at = async {
        match time_budget {
            Some(limit) => tokio::time::sleep_until(day_started + limit).await,
            None => std::future::pending::<()>().await,
        }
    };
    let outcome = tokio::select! {
        outcome = cycle(&ctx, &req, platform.as_ref(), &mut state) => outcome,
        signal = &mut interrupt => Err(DayError::Interrupted(signal)),
        () = out_of_time_at => Err(out_of_time(&ctx, time_budget.unwrap_or_default())),
    };
    let stopped = match &outcome {
        Err(DayError::Interrupted(signal)) => Some((
            format!("interrupted by {signal}"),
            error::exit_kind(&DayError::Interrupted(*signal)),
        )),
        Err(DayError::TimeBudget(_)) => Some(("stopped by `budget.max_minutes`".to_string(), ExitKind::Budget)),
        _ => None,
    };
    if let Some((why, exit)) = stopped {
        // The cycle future is gone: its containers may still run, and FORGE's edits are
        // not committed yet. Both are handled within a bound so a hung daemon cannot
        // keep a cancelled CI job alive.
        let message = format!("Day {}: FORGE — work in progress ({why})", ctx.plan.day);
        let cleanup = async {
            let _ = ctx.sandbox.remove_run_containers().await;
            if let Err(e) = agents::forge::commit_writable(&ctx, &message) {
                ctx.warn(format!("could not commit FORGE's work in progress: {e}"));
            }
            finish(&ctx, &req, platform.as_ref(), &state, outcome, &started_at, None).await
        };
        return match tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await {
            Ok(report) => report,
            Err(_) => DayReport {
                exit,
                decision: Some(if exit == ExitKind::Budget {
                    RunDecision::Budget
                } else {
                    RunDecision::Error
                }),
                message: format!("{why}; cleanup did not finish within {} s", CLEANUP_TIMEOUT.as_secs()),
                hint: Some(
                    "remove leftover containers with `docker rm -f $(docker ps -aq --filter label=pace.run-id)`".into(),
                ),
            },
        };
    }
    // A signal while the result is pushed and published stops that too (the artifacts
    // are still written and committed locally, within the cleanup bound).
    let report = finish(
        &ctx,
        &req,
        platform.as_ref(),
        &state,
        outcome,
        &started_at,
        Some(interrupt.as_mut()),
    )
    .await;
    // FORGE's session containers are removed in the background: none may outlive pace.
    if tokio::time::timeout(CLEANUP_TIMEOUT, settle_sandbox(&ctx))
        .await
        .is_err()
    {
        ctx.warn(format!(
            "removing FORGE's sandbox containers did not finish within {} s; remove them with `docker rm -fv $(docker ps -aq --filter label=pace.run-id={})`",
            CLEANUP_TIMEOUT.as_secs(),
            req.run_id
        ));
    }
    report
}

/// Waits for the FORGE session containers being removed in the background.
async fn settle_sandbox(ctx: &DayContext) {
    for e in ctx.sandbox.settle().await {
        ctx.warn(format!("could not remove FORGE's sandbox container: {e}"));
    }
}

/// HEAD when the day first started, kept in `.pace/day-N/base-commit`: a re-run or
/// `--retry` reviews the whole day's work, not only this run's.
fn day_base_commit(day_dir: &DayDir, git: &Git) -> String {
    let path = day_dir.path("base-commit");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let commit = text.trim().to_string();
        if git.is_ancestor(&commit) {
            return commit;
        }
    }
    let head = git.head();
    let _ = crate::safe_write::write(path.repo(), &path, format!("{head}\n").as_bytes());
    head
}

/// Uncommitted changes that are not pace's own outputs (`.pace/`, `PROGRESS.md`, the
/// dotenv report): tracked files anywhere, untracked files in the source and test dirs.
fn uncommitted_user_changes(git: &Git, settings: &Settings) -> Result<Vec<String>, GitError> {
    let mut dirs: Vec<String> = settings.source.dirs.iter().map(|d| d.path.clone()).collect();
    dirs.extend(settings.source.test_dirs.iter().cloned());
    git.uncommitted_changes(&dirs, &[".pace", "PROGRESS.md", "pace-env.env"])
}

/// A day stopped before its directory exists: nothing is recorded, only reported.
fn early_exit(err: &dyn Hint) -> DayReport {
    let e = PaceError::from_error(err);
    DayReport {
        exit: e.kind,
        decision: None,
        message: e.message,
        hint: e.hint,
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

fn already_shipped(day: &DayDir) -> Option<RunRecord> {
    artifacts::read_json::<RunRecord>(&day.run_json()).filter(|r| r.decision == RunDecision::Ship && r.exit_code == 0)
}

/// Every credential value (contract "Secrets"), including the configured LLM key variable.
pub fn redactor_for(env: &Env, settings: &Settings) -> Redactor {
    Redactor::new(env.secret_values(&[settings.llm.api_key_env.as_str()]))
}

/// What the cycle learned, kept outside the cycle future so an interrupted day can still
/// record it.
pub struct CycleState {
    pub prior: Vec<AttemptRecord>,
    pub attempts: Vec<AttemptRecord>,
    pub story: Option<StoryCard>,
    pub handoff: Option<Handoff>,
    pub gate: Option<GateReport>,
    pub sentinel: Option<ReviewReport>,
    pub conduit: Option<ReviewReport>,
    pub result: Option<(RunDecision, String)>,
    pub human_gate: bool,
    /// FORGE confirmed a failing test (TDD) in some attempt of this day.
    pub red_phase_confirmed: bool,
    /// LLM spend when the previous attempt was recorded (attempt costs are differences).
    pub spend_recorded: f64,
}

impl CycleState {
    fn new(prior: Vec<AttemptRecord>) -> Self {
        Self {
            prior,
            attempts: Vec::new(),
            story: None,
            handoff: None,
            gate: None,
            sentinel: None,
            conduit: None,
            result: None,
            human_gate: false,
            red_phase_confirmed: false,
            spend_recorded: 0.0,
        }
    }
    fn attempt_number(&self) -> u32 {
        (self.prior.len() + self.attempts.len()).max(1) as u32
    }
    fn next_attempt(&self) -> u32 {
        (self.prior.len() + self.attempts.len() + 1) as u32
    }
}

/// The previous HOLD's reason, plus the commits a human pushed since (`--retry`).
fn carried_hold_reason(ctx: &DayContext, state: &CycleState, retry: bool) -> Option<String> {
    let last = state.prior.last()?;
    if last.outcome == "SHIP" {
        return None;
    }
    let mut reason = if last.hold_reason.is_empty() {
        format!("the previous attempt ended with {}", last.outcome)
    } else {
        last.hold_reason.clone()
    };
    if retry
        && let Ok(commits) = ctx.git.human_commits_since(&last.commit)
        && !commits.is_empty()
    {
        reason.push_str(&format!(
            "\nA human pushed these commits since; build on them:\n- {}",
            commits.join("\n- ")
        ));
    }
    Some(reason)
}

async fn cycle(
    ctx: &DayContext,
    req: &DayRequest,
    platform: &dyn Platform,
    state: &mut CycleState,
) -> Result<(), DayError> {
    let attempt0 = state.next_attempt();
    ctx.emit(&Event::DayStarted {
        day: ctx.plan.day,
        target: ctx.plan.target.clone(),
        attempt: attempt0,
    });
    if agents::scribe::context_is_stale(ctx) {
        agents::scribe::run(ctx, ScribeMode::Generate, attempt0).await?;
    }
    if ctx.plan.human_gate {
        state.human_gate = true;
        state.result = Some((
            RunDecision::Hold,
            format!("Day {} is a human gate: the sprint stops here for review", ctx.plan.day),
        ));
        return Ok(());
    }
    let story = match agents::prime::run(ctx, attempt0).await? {
        PrimeOutcome::Card(card) => card,
        PrimeOutcome::Invalid(reason) => {
            state.result = Some((RunDecision::Hold, reason));
            return Ok(());
        }
    };
    state.story = Some(story.clone());

    let mut hold_reason = carried_hold_reason(ctx, state, req.retry);
    let clearance = decide::is_clearance_day(ctx.plan.day, ctx.settings.sprint.clearance_every);
    let mut backlog = artifacts::read_backlog(&ctx.pace);
    let open_at_start: Vec<BacklogItem> = if clearance {
        backlog.iter().filter(|i| i.status == "open").cloned().collect()
    } else {
        Vec::new()
    };
    if !open_at_start.is_empty() {
        let items: Vec<String> = open_at_start
            .iter()
            .map(|i| format!("- [{}] {} (raised Day {}): {}", i.id, i.agent, i.day_raised, i.finding))
            .collect();
        let text = format!(
            "Advisory backlog to clear (Day {} is a clearance day):\n{}",
            ctx.plan.day,
            items.join("\n")
        );
        hold_reason = Some(match hold_reason {
            Some(r) => format!("{r}\n\n{text}"),
            None => text,
        });
    }
    let mut advisory_retry_used = false;
    let mut red_phase = state.prior.iter().any(|a| a.red_phase_confirmed);
    let max_attempts = ctx.settings.forge.max_retries + 1;
    for local in 1..=max_attempts {
        let attempt = state.next_attempt();
        let forge = agents::forge::run(
            ctx,
            ForgeInput {
                story: &story,
                hold_reason: hold_reason.as_deref(),
                attempt,
                red_phase_confirmed: red_phase,
            },
        )
        .await?;
        let handoff = match forge {
            ForgeOutcome::Handoff(h) => h,
            ForgeOutcome::NoHandoff { reason, commit, .. } => {
                // An earlier attempt's reviews no longer describe the code.
                state.gate = None;
                state.sentinel = None;
                state.conduit = None;
                record_attempt(ctx, state, attempt, "HOLD", &reason, &commit)?;
                hold_reason = Some(reason.clone());
                if local == max_attempts {
                    state.result = Some((RunDecision::Hold, reason));
                }
                continue;
            }
        };
        red_phase = red_phase || handoff.tdd_red_phase_confirmed;
        state.red_phase_confirmed = red_phase;
        state.handoff = Some(handoff.clone());
        let sentinel_backlog: Vec<BacklogItem> =
            open_at_start.iter().filter(|i| i.agent == SENTINEL).cloned().collect();
        let conduit_backlog: Vec<BacklogItem> = open_at_start.iter().filter(|i| i.agent == CONDUIT).cloned().collect();
        let ci = ci_evidence(ctx, req, platform, &handoff.commit).await;
        let (gate, sentinel, conduit) = tokio::join!(
            agents::gate::run(ctx, &story, &handoff, ci.as_deref(), attempt),
            agents::review::run(ctx, SENTINEL, &story, &handoff, &sentinel_backlog, attempt),
            agents::review::run(ctx, CONDUIT, &story, &handoff, &conduit_backlog, attempt),
        );
        settle_sandbox(ctx).await;
        // Keep whatever finished before reporting an error of another reviewer.
        if let Ok(g) = &gate {
            state.gate = Some(g.clone());
        }
        if let Ok(s) = &sentinel {
            state.sentinel = Some(s.clone());
        }
        if let Ok(c) = &conduit {
            state.conduit = Some(c.clone());
        }
        let (gate, sentinel, conduit) = (gate?, sentinel?, conduit?);
        let attempts_left = local < max_attempts;
        let verdict = decide::combine(&gate, &[&sentinel, &conduit], attempts_left && !advisory_retry_used);
        match verdict {
            Verdict::Hold { reason } => {
                record_attempt(ctx, state, attempt, "HOLD", &reason, &handoff.commit)?;
                if !attempts_left {
                    state.result = Some((RunDecision::Hold, reason.clone()));
                }
                hold_reason = Some(reason);
            }
            Verdict::AdvisoryRetry { reason } => {
                advisory_retry_used = true;
                record_attempt(ctx, state, attempt, "ADVISORY", &reason, &handoff.commit)?;
                hold_reason = Some(reason);
            }
            Verdict::Ship { advisories } => {
                for (agent, text) in &advisories {
                    artifacts::add_to_backlog(&mut backlog, ctx.plan.day, agent, std::slice::from_ref(text));
                }
                let open_ids: Vec<String> = open_at_start.iter().map(|i| i.id.clone()).collect();
                let mut cleared = decide::cleared_ids(&sentinel, &open_ids);
                cleared.extend(decide::cleared_ids(&conduit, &open_ids));
                for item in backlog.iter_mut().filter(|i| cleared.contains(&i.id)) {
                    item.status = "cleared".into();
                    item.cleared_day = Some(ctx.plan.day);
                }
                if !advisories.is_empty() || !cleared.is_empty() {
                    artifacts::write_yaml(&ctx.pace.backlog(), &backlog, &ctx.redactor)?;
                }
                let still_open: Vec<&BacklogItem> = open_at_start.iter().filter(|i| !cleared.contains(&i.id)).collect();
                if !still_open.is_empty() {
                    let reason = format!(
                        "clearance day: advisory items still open after all agents ran: {}",
                        still_open.iter().map(|i| i.id.as_str()).collect::<Vec<_>>().join(", ")
                    );
                    record_attempt(ctx, state, attempt, "HOLD", &reason, &handoff.commit)?;
                    state.result = Some((RunDecision::Hold, reason));
                    return Ok(());
                }
                record_attempt(ctx, state, attempt, "SHIP", "", &handoff.commit)?;
                state.result = Some((RunDecision::Ship, String::new()));
                // The day has shipped: a documentation update that fails is reported, not
                // allowed to turn the SHIP into an error (a budget stop still is one).
                match agents::scribe::run(ctx, ScribeMode::Update, attempt).await {
                    Err(DayError::Llm(LlmError::Budget(_))) | Ok(_) => {}
                    Err(e) => ctx.warn(format!("SCRIBE could not update the context documents: {e}")),
                }
                return Ok(());
            }
        }
    }
    if state.result.is_none() {
        state.result = Some((
            RunDecision::Hold,
            hold_reason.unwrap_or_else(|| "retries exhausted".into()),
        ));
    }
    Ok(())
}

/// `platform.wait_for_ci`: push FORGE's commit and wait for its pipeline; the result is
/// evidence for GATE. A failure here is reported to GATE as such, not fatal.
async fn ci_evidence(ctx: &DayContext, req: &DayRequest, platform: &dyn Platform, commit: &str) -> Option<String> {
    if !ctx.settings.platform.wait_for_ci || req.dry_run || commit.is_empty() {
        return None;
    }
    if let Err(e) = platform.push(&ctx.git, &ctx.branch, &ctx.day_dir).await {
        let e = e.with_advice();
        ctx.warn(format!("wait_for_ci: could not push `{}`: {e}", ctx.branch));
        return Some(format!("not available: the push of `{}` failed ({e})", ctx.branch));
    }
    ctx.emit(&Event::Info(format!(
        "waiting for the CI pipeline of {}",
        short(commit)
    )));
    match platform.wait_for_ci(commit).await {
        Ok(result) => result,
        Err(e) => {
            let e = e.with_advice();
            ctx.warn(format!("wait_for_ci: {e}"));
            Some(format!("not available: {e}"))
        }
    }
}

fn record_attempt(
    ctx: &DayContext,
    state: &mut CycleState,
    attempt: u32,
    outcome: &str,
    reason: &str,
    commit: &str,
) -> Result<(), DayError> {
    state.attempts.push(AttemptRecord {
        attempt,
        date: artifacts::now_rfc3339(),
        outcome: outcome.into(),
        hold_reason: crate::text::head_chars(reason, 2000).to_string(),
        cost_usd: ((ctx.llm.totals().cost_usd - state.spend_recorded) * 10_000.0).round() / 10_000.0,
        commit: commit.to_string(),
        red_phase_confirmed: state.red_phase_confirmed,
    });
    state.spend_recorded = ctx.llm.totals().cost_usd;
    let all: Vec<AttemptRecord> = state.prior.iter().chain(state.attempts.iter()).cloned().collect();
    artifacts::write_yaml(&ctx.day_dir.attempts(), &all, &ctx.redactor)?;
    Ok(())
}

/// Records, publishes and commits the day's end, whatever it was.
async fn finish(
    ctx: &DayContext,
    req: &DayRequest,
    platform: &dyn Platform,
    state: &CycleState,
    outcome: Result<(), DayError>,
    started_at: &str,
    interrupt: Option<std::pin::Pin<&mut (dyn Future<Output = Signal> + '_)>>,
) -> DayReport {
    let (mut decision, mut reason, mut exit, mut hint) = match (&outcome, &state.result) {
        (Ok(()), Some((RunDecision::Ship, _))) => (RunDecision::Ship, String::new(), ExitKind::Ship, None),
        (Ok(()), Some((d, reason))) if state.human_gate => (*d, reason.clone(), ExitKind::Ship, None),
        (Ok(()), Some((_, reason))) => (RunDecision::Hold, reason.clone(), ExitKind::Hold, None),
        (Ok(()), None) => (
            RunDecision::Error,
            "the day ended without a decision".into(),
            ExitKind::Infrastructure,
            None,
        ),
        (Err(e), _) => {
            let exit = error::exit_kind(e);
            let decision = if exit == ExitKind::Budget {
                RunDecision::Budget
            } else {
                RunDecision::Error
            };
            (decision, ctx.redactor.redact(&e.to_string()), exit, error::hint(e))
        }
    };
    let mut summary = DaySummary {
        product: ctx.settings.product.name.clone(),
        day: ctx.plan.day,
        target: ctx.plan.target.clone(),
        decision,
        reason: reason.clone(),
        attempt: state.attempt_number(),
        branch: ctx.branch.clone(),
        commit: ctx.git.head(),
        story: state.story.clone(),
        handoff: state.handoff.clone(),
        gate: state.gate.clone(),
        sentinel: state.sentinel.clone(),
        conduit: state.conduit.clone(),
        agents: ctx.agent_records(),
        totals: totals(ctx),
        artifacts_location: artifacts_location(&req.env, &ctx.day_dir),
        refused: ctx.refused(),
    };
    let mut warnings = Vec::new();
    // Push the work first so the MR/issue can point at it; a failed push is reported
    // but the artifacts below are still written and committed locally.
    let publishing = async {
        let (mut mr_url, mut issue_url) = (None, None);
        if !req.dry_run
            && let Err(e) = platform.push(&ctx.git, &ctx.branch, &ctx.day_dir).await
        {
            return (Some((e.to_string(), error::hint(&e))), None, mr_url, issue_url);
        }
        let published = match decision {
            RunDecision::Ship => platform.ship(&summary, &ctx.day_dir).await.map(|p| mr_url = p.url),
            RunDecision::Hold if state.human_gate => platform
                .request_review(&summary, &ctx.day_dir)
                .await
                .map(|p| mr_url = p.url),
            RunDecision::Hold => platform
                .escalate(&summary, &ctx.day_dir)
                .await
                .map(|p| issue_url = p.url),
            _ => Ok(()),
        };
        let publish_error = published.err().map(|e| {
            (
                format!("{} could not publish the result: {e}", platform.name()),
                error::hint(&e),
            )
        });
        (None, publish_error, mr_url, issue_url)
    };
    let published = match interrupt {
        Some(signal) => tokio::select! {
            published = publishing => Ok(published),
            signal = signal => Err(signal),
        },
        None => Ok(publishing.await),
    };
    let (mut push_error, publish_error, mr_url, issue_url) = match published {
        Ok(p) => p,
        Err(signal) => {
            // Stopped while pushing or publishing: recorded like any interrupted day (a
            // re-run pushes and publishes again); the patch below keeps the work.
            let e = DayError::Interrupted(signal);
            reason = format!("{e} while publishing (the day was {})", decision.as_str());
            (decision, exit, hint) = (RunDecision::Error, error::exit_kind(&e), error::hint(&e));
            summary.decision = decision;
            summary.reason = reason.clone();
            (Some((reason.clone(), None)), None, None, None)
        }
    };
    // A push or an MR/issue call that failed makes the day an infrastructure error whatever
    // the agents decided: run.json and the dotenv report say so, and a re-run publishes again.
    let (exit, reason) = match push_error.as_ref().or(publish_error.as_ref()).map(|(e, _)| e) {
        Some(e) if matches!(exit, ExitKind::Ship | ExitKind::Hold) => (
            ExitKind::Infrastructure,
            ctx.redactor.redact(&format!("{e} (the day was {})", decision.as_str())),
        ),
        _ => (exit, reason),
    };
    let record = RunRecord {
        schema_version: artifacts::RUN_SCHEMA_VERSION,
        run_id: req.run_id.clone(),
        day: ctx.plan.day,
        attempt: state.attempt_number(),
        decision,
        exit_code: exit.code(),
        reason: reason.clone(),
        started_at: started_at.to_string(),
        finished_at: artifacts::now_rfc3339(),
        branch: ctx.branch.clone(),
        commit: ctx.git.head(),
        mr_url: mr_url.clone(),
        issue_url: issue_url.clone(),
        agents: ctx.agent_records(),
        totals: totals(ctx),
        human_gate: state.human_gate,
    };
    let written = write_day_files(ctx, req, &record, &summary);
    if let Err(e) = &written {
        warnings.push(format!("could not write the day's artifacts: {e}"));
    }
    let message = ctx.redactor.redact(&format!(
        "Day {}: {} — artifacts (attempt {})",
        ctx.plan.day,
        decision.as_str(),
        record.attempt
    ));
    if let Err(e) = commit_artifacts(ctx, &message) {
        warnings.push(format!("could not commit the artifacts: {e}"));
    } else if !req.dry_run
        && push_error.is_none()
        && let Err(e) = platform.push(&ctx.git, &ctx.branch, &ctx.day_dir).await
    {
        push_error = Some((e.to_string(), error::hint(&e)));
    }
    for w in &warnings {
        ctx.warn(w.clone());
    }
    if let Some((push, advice)) = push_error {
        let patch = match write_changes_patch(ctx) {
            Ok(path) => format!(" (also as `{}`)", path.display()),
            Err(e) => {
                ctx.warn(format!("could not write the day's patch: {e}"));
                String::new()
            }
        };
        return DayReport {
            exit,
            decision: Some(decision),
            message: ctx.redactor.redact(&push),
            hint: Some(after_platform_advice(
                advice,
                if matches!(exit, ExitKind::Interrupted | ExitKind::Terminated) {
                    format!(
                        "the work is committed locally and in the artifacts{patch}; re-run the day to push and publish it"
                    )
                } else {
                    format!(
                        "the work is committed locally and in the artifacts{patch}; fix the push (network, rights) and re-run the day"
                    )
                },
            )),
        };
    }
    if let Some((publish, advice)) = publish_error {
        return DayReport {
            exit,
            decision: Some(decision),
            message: ctx.redactor.redact(&publish),
            hint: Some(after_platform_advice(
                advice,
                "the branch is pushed and the artifacts are written; fix the token or project settings (`pace doctor`) and re-run the day to publish".into(),
            )),
        };
    }
    // A link left in pace's own paths during the day (e.g. by the suite in bind mode):
    // the artifacts are incomplete and the checkout needs fixing, whatever the agents
    // decided (the refusal is also among the warnings above).
    if let Err(e) = &written
        && e.is_refusal()
    {
        return DayReport {
            exit: error::exit_kind(e),
            decision: Some(decision),
            message: ctx.redactor.redact(&format!(
                "{e} (the day was {}; run.json records that)",
                decision.as_str()
            )),
            hint: None,
        };
    }
    let message = match decision {
        RunDecision::Ship if state.human_gate => reason.clone(),
        RunDecision::Ship => format!(
            "Day {} shipped: {}",
            ctx.plan.day,
            mr_url.as_deref().unwrap_or("no merge request")
        ),
        RunDecision::Hold if state.human_gate => {
            format!("{reason}; review request: {}", mr_url.as_deref().unwrap_or("-"))
        }
        RunDecision::Hold => format!(
            "Day {} held after {} attempt(s): {reason}",
            ctx.plan.day, record.attempt
        ),
        _ => reason.clone(),
    };
    DayReport {
        exit,
        decision: Some(decision),
        message: ctx
            .redactor
            .redact(&format!("{message}\nartifacts: {}", ctx.day_dir.dir.display())),
        hint,
    }
}

/// The platform's advice (what to change there) first, then what pace kept and how to go
/// on: one `hint:` line each.
fn after_platform_advice(advice: Option<String>, next: String) -> String {
    match advice {
        Some(advice) => format!("{advice}\n{next}"),
        None => next,
    }
}

/// After a failed push: the day's commits (since its base commit) as `changes.patch` in
/// the day directory, so the work survives an ephemeral CI runner through its artifacts
/// (`git am .pace/day-N/changes.patch`).
fn write_changes_patch(ctx: &DayContext) -> Result<std::path::PathBuf, DayError> {
    let range = if ctx.base_commit.is_empty() {
        "--root".to_string()
    } else {
        format!("{}..HEAD", ctx.base_commit)
    };
    let mut args = vec!["format-patch", "--stdout", range.as_str()];
    if ctx.base_commit.is_empty() {
        args.push("HEAD");
    }
    let patch = ctx.git.run(&args)?;
    let path = ctx.day_dir.path("changes.patch");
    artifacts::write_text(&path, &patch, &ctx.redactor)?;
    Ok(path.to_path_buf())
}

fn totals(ctx: &DayContext) -> Totals {
    let t = ctx.llm.totals();
    let duration_ms = ctx.agent_records().iter().map(|a| a.duration_ms).sum();
    Totals {
        duration_ms,
        input_tokens: t.input_tokens,
        output_tokens: t.output_tokens,
        cache_read_tokens: t.cache_read_tokens,
        cost_usd: t.cost_usd,
    }
}

fn artifacts_location(env: &Env, day: &DayDir) -> String {
    env.get("CI_JOB_URL")
        .map(|u| format!("{u}/artifacts/browse/.pace/day-{}/", day.day))
        .or_else(|| {
            env.get("BITBUCKET_GIT_HTTP_ORIGIN")
                .zip(env.get("BITBUCKET_BUILD_NUMBER"))
                .map(|(o, n)| format!("{o}/pipelines/results/{n}"))
        })
        .unwrap_or_else(|| format!(".pace/day-{}/", day.day))
}

fn write_day_files(
    ctx: &DayContext,
    req: &DayRequest,
    record: &RunRecord,
    summary: &DaySummary,
) -> Result<(), artifacts::ArtifactError> {
    artifacts::write_json(&ctx.day_dir.run_json(), record, &ctx.redactor)?;
    artifacts::write_text(
        &ctx.day_dir.summary(),
        &summary.render_markdown(&ctx.redactor),
        &ctx.redactor,
    )?;
    write_progress(
        &ctx.pace,
        &req.settings,
        &req.progress_days,
        req.start_date.as_deref(),
        ctx.plan.day,
        &ctx.redactor,
    )?;
    write_dotenv(&req.settings, record, &ctx.redactor)
}

pub fn write_progress(
    pace: &PaceDir,
    settings: &Settings,
    days: &[ProgressDay],
    start: Option<&str>,
    current: u32,
    redactor: &Redactor,
) -> Result<(), artifacts::ArtifactError> {
    let updated = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let text = crate::report::progress::render(
        pace,
        &crate::report::progress::ProgressInput {
            product: &settings.product.name,
            start_date: start,
            duration_days: settings.sprint.duration_days,
            days,
            current_day: current,
            updated_at: &updated,
        },
    );
    artifacts::write_text(&pace.progress(), &text, redactor)
}

fn write_dotenv(settings: &Settings, record: &RunRecord, redactor: &Redactor) -> Result<(), artifacts::ArtifactError> {
    let mut text = String::new();
    text.push_str(&artifacts::dotenv_line("PACE_DAY", &record.day.to_string()));
    text.push_str(&artifacts::dotenv_line("PACE_DECISION", record.decision.as_str()));
    text.push_str(&artifacts::dotenv_line("PACE_EXIT_CODE", &record.exit_code.to_string()));
    text.push_str(&artifacts::dotenv_line("PACE_COMMIT", &record.commit));
    text.push_str(&artifacts::dotenv_line(
        "PACE_MR_URL",
        record.mr_url.as_deref().unwrap_or(""),
    ));
    text.push_str(&artifacts::dotenv_line(
        "PACE_ISSUE_URL",
        record.issue_url.as_deref().unwrap_or(""),
    ));
    text.push_str(&artifacts::dotenv_line(
        "PACE_COST_USD",
        &format!("{:.4}", record.totals.cost_usd),
    ));
    artifacts::write_text(&PaceDir::new(&settings.repo_root).dotenv(), &text, redactor)
}

/// `.pace/` (without the lock and the raw test log, which can be huge and stays a CI
/// artifact) and `PROGRESS.md`.
fn commit_artifacts(ctx: &DayContext, message: &str) -> Result<Option<String>, GitError> {
    ensure_pace_gitignore(&ctx.pace);
    let mut paths = vec![".pace".to_string()];
    // Only a regular file: a link planted there is refused by the writer and not committed.
    if std::fs::symlink_metadata(ctx.pace.progress()).is_ok_and(|m| m.is_file()) {
        paths.push("PROGRESS.md".into());
    }
    ctx.git
        .commit_paths(&paths, &crate::inert::commit_message(message, &ctx.redactor))
        .map(|c| c.sha)
}

/// What pace writes under `.pace/` but never commits: the lock of the running process and
/// the raw test logs (complete, possibly huge; they stay CI artifacts).
const PACE_GITIGNORE: &str =
    "# written by pace: not committed\npipeline.lock\nday-*/gate/output.log\nday-*/changes.patch\n/gate/\n";

fn ensure_pace_gitignore(pace: &PaceDir) {
    let path = pace.gitignore();
    if matches!(crate::safe_write::read_to_string(pace.repo(), &path), Ok(None)) {
        let _ = crate::safe_write::write(pace.repo(), &path, PACE_GITIGNORE.as_bytes());
    }
}

/// The day stopped before the agents could run (bad key, Docker down): the artifacts
/// are still written so CI has something to show.
#[allow(clippy::too_many_arguments)]
fn finish_without_context(
    req: &DayRequest,
    git: &Git,
    day_dir: &DayDir,
    pace: &PaceDir,
    branch: &str,
    redactor: &Redactor,
    started_at: &str,
    attempt: u32,
    error: DayError,
) -> DayReport {
    let exit = error::exit_kind(&error);
    let reason = redactor.redact(&error.to_string());
    let record = RunRecord {
        schema_version: artifacts::RUN_SCHEMA_VERSION,
        run_id: req.run_id.clone(),
        day: req.plan.day,
        attempt,
        decision: RunDecision::Error,
        exit_code: exit.code(),
        reason: reason.clone(),
        started_at: started_at.to_string(),
        finished_at: artifacts::now_rfc3339(),
        branch: branch.to_string(),
        commit: git.head(),
        mr_url: None,
        issue_url: None,
        agents: Vec::new(),
        totals: Totals::default(),
        human_gate: false,
    };
    let summary = DaySummary {
        product: req.settings.product.name.clone(),
        day: req.plan.day,
        target: req.plan.target.clone(),
        decision: RunDecision::Error,
        reason: reason.clone(),
        attempt,
        branch: branch.to_string(),
        commit: git.head(),
        story: None,
        handoff: None,
        gate: None,
        sentinel: None,
        conduit: None,
        agents: Vec::new(),
        totals: Totals::default(),
        artifacts_location: artifacts_location(&req.env, day_dir),
        refused: Vec::new(),
    };
    let _ = artifacts::write_json(&day_dir.run_json(), &record, redactor);
    let _ = artifacts::write_text(&day_dir.summary(), &summary.render_markdown(redactor), redactor);
    let _ = write_progress(
        pace,
        &req.settings,
        &req.progress_days,
        req.start_date.as_deref(),
        req.plan.day,
        redactor,
    );
    let _ = write_dotenv(&req.settings, &record, redactor);
    DayReport {
        exit,
        decision: Some(RunDecision::Error),
        message: reason,
        hint: error::hint(&error),
    }
}

/// A bounded wait used when cleaning up after a signal.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

impl From<DayError> for PaceError {
    fn from(e: DayError) -> Self {
        PaceError::from_error(&e)
    }
}
