//! The day's second phase: PRIME's story card, then up to `forge.max_retries + 1`
//! attempts of FORGE → GATE ∥ SENTINEL ∥ CONDUIT, with the advisory retry, the clearance
//! day's backlog and SCRIBE after a SHIP. What it learns is kept in [`CycleState`], outside
//! the cycle's future, so a day stopped by a signal or the time budget still records it.

use crate::artifacts::{self, AttemptOutcome, AttemptRecord, BacklogItem, BacklogStatus};
use crate::llm::LlmError;
use crate::platform::Platform;
use crate::report::printer::Event;
use crate::schemas::{GateReport, Handoff, ReviewReport, StoryCard};

use super::agents::forge::{EarlySession, ForgeInput, ForgeOutcome};
use super::agents::prime::PrimeOutcome;
use super::agents::scribe::ScribeMode;
use super::agents::{self, CONDUIT, SENTINEL};
use super::decide::{self, Verdict};
use super::{DayContext, DayError, DayRequest, short};

/// What the agents decided about the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decided {
    Ship,
    /// Held with this reason (on a human-gate day: stopped for review).
    Hold(String),
}

/// What the cycle learned, kept outside the cycle future so an interrupted day can still
/// record it.
pub(super) struct CycleState {
    pub(super) prior: Vec<AttemptRecord>,
    pub(super) attempts: Vec<AttemptRecord>,
    pub(super) story: Option<StoryCard>,
    pub(super) handoff: Option<Handoff>,
    pub(super) gate: Option<GateReport>,
    pub(super) sentinel: Option<ReviewReport>,
    pub(super) conduit: Option<ReviewReport>,
    /// The agents' decision; `None` until the cycle decides.
    pub(super) result: Option<Decided>,
    pub(super) human_gate: bool,
    /// FORGE confirmed a failing test (TDD) in some attempt of this day.
    pub(super) red_phase_confirmed: bool,
    /// LLM spend when the previous attempt was recorded (attempt costs are differences).
    pub(super) spend_recorded: f64,
}

impl CycleState {
    pub(super) fn new(prior: Vec<AttemptRecord>) -> Self {
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
    pub(super) fn attempt_number(&self) -> u32 {
        (self.prior.len() + self.attempts.len()).max(1) as u32
    }
    fn next_attempt(&self) -> u32 {
        (self.prior.len() + self.attempts.len() + 1) as u32
    }
}

/// The advisory backlog as the day found it: on a clearance day its open items must be
/// cleared by SENTINEL or CONDUIT before the day ships.
struct Clearance {
    backlog: Vec<BacklogItem>,
    open_at_start: Vec<BacklogItem>,
}

impl Clearance {
    fn read(ctx: &DayContext) -> Self {
        let clearance = decide::is_clearance_day(ctx.plan.day, ctx.settings.sprint.clearance_every);
        let backlog = artifacts::read_backlog(&ctx.pace);
        let open_at_start = if clearance {
            backlog
                .iter()
                .filter(|i| i.status == BacklogStatus::Open)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        Self { backlog, open_at_start }
    }

    /// FORGE's brief: the carried HOLD reason, then the items to clear.
    fn brief(&self, day: u32, hold_reason: Option<String>) -> Option<String> {
        if self.open_at_start.is_empty() {
            return hold_reason;
        }
        let items: Vec<String> = self
            .open_at_start
            .iter()
            .map(|i| format!("- [{}] {} (raised Day {}): {}", i.id, i.agent, i.day_raised, i.finding))
            .collect();
        let text = format!(
            "Advisory backlog to clear (Day {day} is a clearance day):\n{}",
            items.join("\n")
        );
        Some(match hold_reason {
            Some(r) => format!("{r}\n\n{text}"),
            None => text,
        })
    }

    fn for_agent(&self, agent: &str) -> Vec<BacklogItem> {
        self.open_at_start
            .iter()
            .filter(|i| i.agent == agent)
            .cloned()
            .collect()
    }

    /// Adds the SHIP's advisories, marks what the reviewers cleared and returns the items
    /// of the clearance day still open.
    fn settle(
        &mut self,
        ctx: &DayContext,
        advisories: &[(String, String)],
        reviews: [&ReviewReport; 2],
    ) -> Result<Vec<&BacklogItem>, DayError> {
        for (agent, text) in advisories {
            artifacts::add_to_backlog(&mut self.backlog, ctx.plan.day, agent, std::slice::from_ref(text));
        }
        let open_ids: Vec<String> = self.open_at_start.iter().map(|i| i.id.clone()).collect();
        let cleared: Vec<String> = reviews
            .iter()
            .flat_map(|review| decide::cleared_ids(review, &open_ids))
            .collect();
        for item in self.backlog.iter_mut().filter(|i| cleared.contains(&i.id)) {
            item.status = BacklogStatus::Cleared;
            item.cleared_day = Some(ctx.plan.day);
        }
        if !advisories.is_empty() || !cleared.is_empty() {
            artifacts::write_yaml(&ctx.pace.backlog(), &self.backlog, &ctx.redactor)?;
        }
        Ok(self.open_at_start.iter().filter(|i| !cleared.contains(&i.id)).collect())
    }
}

/// The attempts' running state: what FORGE is told next and what is still allowed.
struct Attempts<'a> {
    story: &'a StoryCard,
    hold_reason: Option<String>,
    clearance: Clearance,
    advisory_retry_used: bool,
    red_phase: bool,
    /// FORGE's first session, started beside PRIME; later attempts start their own.
    early_session: Option<EarlySession>,
}

/// Whether the cycle goes on with another attempt.
enum Next {
    Retry,
    Decided,
}

/// The story card, then the attempts until one decides the day.
pub(super) async fn cycle(
    ctx: &DayContext,
    req: &DayRequest,
    platform: &dyn Platform,
    state: &mut CycleState,
) -> Result<(), DayError> {
    let Some((story, session)) = open_day(ctx, state).await? else {
        return Ok(());
    };
    let clearance = Clearance::read(ctx);
    let mut attempts = Attempts {
        story: &story,
        hold_reason: clearance.brief(ctx.plan.day, carried_hold_reason(ctx, state, req.retry)),
        clearance,
        advisory_retry_used: false,
        red_phase: state.prior.iter().any(|a| a.red_phase_confirmed),
        early_session: Some(session),
    };
    let max_attempts = ctx.settings.forge.max_retries + 1;
    for local in 1..=max_attempts {
        let last = local == max_attempts;
        if let Next::Decided = attempt(ctx, req, platform, state, &mut attempts, last).await? {
            return Ok(());
        }
    }
    if state.result.is_none() {
        state.result = Some(Decided::Hold(
            attempts.hold_reason.unwrap_or_else(|| "retries exhausted".into()),
        ));
    }
    Ok(())
}

/// The day's start: SCRIBE's context documents when stale, the human gate, PRIME's card.
/// `None` when the day is decided without FORGE. FORGE's first session starts while PRIME
/// writes the card, so its container is ready (or starting) when FORGE's first command comes.
async fn open_day(ctx: &DayContext, state: &mut CycleState) -> Result<Option<(StoryCard, EarlySession)>, DayError> {
    let attempt0 = state.next_attempt();
    ctx.emit(&Event::DayStarted {
        day: ctx.plan.day,
        target: ctx.plan.target.clone(),
        attempt: attempt0,
    });
    if ctx.plan.human_gate {
        refresh_context_docs(ctx, attempt0).await?;
        state.human_gate = true;
        state.result = Some(Decided::Hold(format!(
            "Day {} is a human gate: the sprint stops here for review",
            ctx.plan.day
        )));
        return Ok(None);
    }
    let card = async {
        refresh_context_docs(ctx, attempt0).await?;
        agents::prime::run(ctx, attempt0).await
    };
    // The set-up phase runs while PRIME writes the card, before FORGE's session starts
    // (the session links what it left in the workspace).
    let prepared = async {
        match super::setup::run(ctx).await {
            Ok(super::setup::Verdict::Ready) => Ok(Ok(ctx.sandbox.start_session(&ctx.settings.repo_root).await)),
            Ok(super::setup::Verdict::Hold(reason)) => Ok(Err(reason)),
            Err(e) => Err(e),
        }
    };
    let (card, prepared) = tokio::join!(card, prepared);
    let session = match prepared {
        Ok(Ok(session)) => session,
        Ok(Err(reason)) => {
            if let Ok(PrimeOutcome::Card(card)) = card {
                state.story = Some(card);
            }
            state.result = Some(Decided::Hold(reason));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match card {
        Ok(PrimeOutcome::Card(card)) => {
            state.story = Some(card.clone());
            Ok(Some((card, session)))
        }
        Ok(PrimeOutcome::Invalid(reason)) => {
            close_unused(ctx, session);
            state.result = Some(Decided::Hold(reason));
            Ok(None)
        }
        Err(e) => {
            close_unused(ctx, session);
            Err(e)
        }
    }
}

/// SCRIBE's context documents, when the code moved on since they were written.
async fn refresh_context_docs(ctx: &DayContext, attempt: u32) -> Result<(), DayError> {
    if agents::scribe::context_is_stale(ctx) {
        agents::scribe::run(ctx, ScribeMode::Generate, attempt).await?;
    }
    Ok(())
}

/// A session started for a FORGE that will not run is removed in the background (the day
/// waits for it before it ends).
fn close_unused(ctx: &DayContext, session: EarlySession) {
    if let Ok(session) = session {
        ctx.sandbox.close_later(session);
    }
}

/// One attempt: FORGE, then the three reviews in parallel, then their verdict.
async fn attempt(
    ctx: &DayContext,
    req: &DayRequest,
    platform: &dyn Platform,
    state: &mut CycleState,
    run: &mut Attempts<'_>,
    last: bool,
) -> Result<Next, DayError> {
    let attempt = state.next_attempt();
    let forge = agents::forge::run(
        ctx,
        ForgeInput {
            story: run.story,
            hold_reason: run.hold_reason.as_deref(),
            attempt,
            red_phase_confirmed: run.red_phase,
        },
        run.early_session.take(),
    )
    .await?;
    let handoff = match forge {
        ForgeOutcome::Handoff(h) => h,
        ForgeOutcome::NoHandoff { reason, commit, .. } => {
            // An earlier attempt's reviews no longer describe the code.
            state.gate = None;
            state.sentinel = None;
            state.conduit = None;
            record_attempt(ctx, state, attempt, AttemptOutcome::Hold, &reason, &commit)?;
            run.hold_reason = Some(reason.clone());
            if last {
                state.result = Some(Decided::Hold(reason));
            }
            return Ok(Next::Retry);
        }
    };
    run.red_phase = run.red_phase || handoff.tdd_red_phase_confirmed;
    state.red_phase_confirmed = run.red_phase;
    state.handoff = Some(handoff.clone());
    // `forge.setup_on_change`: the set-up again before GATE; it skips itself unless FORGE
    // changed a lockfile (its inputs' hash).
    if ctx.settings.forge.setup_on_change
        && let super::setup::Verdict::Hold(reason) = super::setup::run(ctx).await?
    {
        record_attempt(ctx, state, attempt, AttemptOutcome::Hold, &reason, &handoff.commit)?;
        run.hold_reason = Some(reason.clone());
        if last {
            state.result = Some(Decided::Hold(reason));
        }
        return Ok(Next::Retry);
    }
    let (gate, sentinel, conduit) = review(ctx, req, platform, state, run, &handoff, attempt).await?;
    let verdict = decide::combine(&gate, &[&sentinel, &conduit], !last && !run.advisory_retry_used);
    match verdict {
        Verdict::Hold { reason } => {
            record_attempt(ctx, state, attempt, AttemptOutcome::Hold, &reason, &handoff.commit)?;
            if last {
                state.result = Some(Decided::Hold(reason.clone()));
            }
            run.hold_reason = Some(reason);
            Ok(Next::Retry)
        }
        Verdict::AdvisoryRetry { reason } => {
            run.advisory_retry_used = true;
            record_attempt(ctx, state, attempt, AttemptOutcome::Advisory, &reason, &handoff.commit)?;
            run.hold_reason = Some(reason);
            Ok(Next::Retry)
        }
        Verdict::Ship { advisories } => {
            let still_open = run.clearance.settle(ctx, &advisories, [&sentinel, &conduit])?;
            ship(ctx, state, &still_open, attempt, &handoff.commit).await?;
            Ok(Next::Decided)
        }
    }
}

/// GATE ∥ SENTINEL ∥ CONDUIT over FORGE's handoff (with the CI pipeline's result as
/// evidence when `platform.wait_for_ci`).
async fn review(
    ctx: &DayContext,
    req: &DayRequest,
    platform: &dyn Platform,
    state: &mut CycleState,
    run: &Attempts<'_>,
    handoff: &Handoff,
    attempt: u32,
) -> Result<(GateReport, ReviewReport, ReviewReport), DayError> {
    let story = run.story;
    let sentinel_backlog = run.clearance.for_agent(SENTINEL);
    let conduit_backlog = run.clearance.for_agent(CONDUIT);
    let ci = ci_evidence(ctx, req, platform, &handoff.commit).await;
    let (gate, sentinel, conduit) = tokio::join!(
        agents::gate::run(ctx, story, handoff, ci.as_deref(), attempt),
        agents::review::run(ctx, SENTINEL, story, handoff, &sentinel_backlog, attempt),
        agents::review::run(ctx, CONDUIT, story, handoff, &conduit_backlog, attempt),
    );
    super::settle_sandbox(ctx).await;
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
    Ok((gate?, sentinel?, conduit?))
}

/// The verdict was SHIP: it holds on a clearance day with items still open; otherwise the
/// day ships and SCRIBE updates the context documents.
async fn ship(
    ctx: &DayContext,
    state: &mut CycleState,
    still_open: &[&BacklogItem],
    attempt: u32,
    commit: &str,
) -> Result<(), DayError> {
    if !still_open.is_empty() {
        let reason = format!(
            "clearance day: advisory items still open after all agents ran: {}",
            still_open.iter().map(|i| i.id.as_str()).collect::<Vec<_>>().join(", ")
        );
        record_attempt(ctx, state, attempt, AttemptOutcome::Hold, &reason, commit)?;
        state.result = Some(Decided::Hold(reason));
        return Ok(());
    }
    record_attempt(ctx, state, attempt, AttemptOutcome::Ship, "", commit)?;
    state.result = Some(Decided::Ship);
    // The day has shipped: a documentation update that fails is reported, not
    // allowed to turn the SHIP into an error (a budget stop still is one).
    match agents::scribe::run(ctx, ScribeMode::Update, attempt).await {
        Err(DayError::Llm(LlmError::Budget(_))) | Ok(_) => {}
        Err(e) => ctx.warn(format!("SCRIBE could not update the context documents: {e}")),
    }
    Ok(())
}

/// The previous HOLD's reason, plus the commits a human pushed since (`--retry`).
fn carried_hold_reason(ctx: &DayContext, state: &CycleState, retry: bool) -> Option<String> {
    let last = state.prior.last()?;
    if last.outcome == AttemptOutcome::Ship {
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

/// Appends the attempt to `attempts.yaml` (all of the day's attempts, earlier runs' too).
fn record_attempt(
    ctx: &DayContext,
    state: &mut CycleState,
    attempt: u32,
    outcome: AttemptOutcome,
    reason: &str,
    commit: &str,
) -> Result<(), DayError> {
    state.attempts.push(AttemptRecord {
        attempt,
        date: artifacts::now_rfc3339(),
        outcome,
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
