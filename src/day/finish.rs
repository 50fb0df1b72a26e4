//! The day's last phase, whatever the end was — SHIP, HOLD, budget, an outage, a signal:
//! one [`Ending`] (decision, reason, exit kind, hint), the push and the merge request or
//! escalation as a [`Published`] value, then `run.json`, the summary, `PROGRESS.md` and
//! the dotenv report, committed, and the [`DayReport`] for the final line.

use std::future::Future;
use std::pin::Pin;

use crate::artifacts::{self, AgentRecord, DayDir, PaceDir, RunDecision, RunRecord, Totals};
use crate::config::settings::Settings;
use crate::env::Env;
use crate::error::{self, ExitKind};
use crate::git::GitError;
use crate::platform::Platform;
use crate::redact::Redactor;
use crate::report::dotenv::Dotenv;
use crate::report::progress::ProgressDay;
use crate::report::summary::DaySummary;
use crate::schemas::{GateReport, Handoff, ReviewReport, StoryCard};

use super::cycle::{CycleState, Decided};
use super::preflight::Checkout;
use super::{DayContext, DayError, DayReport, DayRequest, Signal};

/// How the day ended: what run.json, the summary and the final line say about it.
#[derive(Debug, Clone)]
pub(super) struct Ending {
    pub(super) decision: RunDecision,
    pub(super) reason: String,
    pub(super) exit: ExitKind,
    pub(super) hint: Option<String>,
}

impl Ending {
    /// The end the cycle reached, or the error that stopped it.
    fn of_cycle(outcome: &Result<(), DayError>, state: &CycleState, redactor: &Redactor) -> Self {
        let (decision, reason, exit) = match (outcome, &state.result) {
            (Err(e), _) => return Self::of_error(e, redactor),
            (Ok(()), Some(Decided::Ship)) => (RunDecision::Ship, String::new(), ExitKind::Ship),
            // A human gate holds for review: a successful run.
            (Ok(()), Some(Decided::Hold(reason))) if state.human_gate => {
                (RunDecision::Hold, reason.clone(), ExitKind::Ship)
            }
            (Ok(()), Some(Decided::Hold(reason))) => (RunDecision::Hold, reason.clone(), ExitKind::Hold),
            (Ok(()), None) => (
                RunDecision::Error,
                "the day ended without a decision".into(),
                ExitKind::Infrastructure,
            ),
        };
        Self {
            decision,
            reason,
            exit,
            hint: None,
        }
    }

    /// A day stopped by an error: BUDGET when a budget stopped it, else ERROR.
    fn of_error(e: &DayError, redactor: &Redactor) -> Self {
        let exit = error::exit_kind(e);
        Self {
            decision: if exit == ExitKind::Budget {
                RunDecision::Budget
            } else {
                RunDecision::Error
            },
            reason: redactor.redact(&e.to_string()),
            exit,
            hint: error::hint(e),
        }
    }

    /// The end once publishing is over: a push or an MR/issue call that failed makes the
    /// day an infrastructure error whatever the agents decided (run.json and the dotenv
    /// report say so, and a re-run publishes again); a signal makes it an interrupted day.
    fn after_publishing(self, unpublished: Option<&Unpublished>, redactor: &Redactor) -> Self {
        match unpublished {
            None => self,
            Some(Unpublished::Interrupted(signal)) => {
                let e = DayError::Interrupted(*signal);
                Self {
                    decision: RunDecision::Error,
                    reason: format!("{e} while publishing (the day was {})", self.decision.as_str()),
                    exit: error::exit_kind(&e),
                    hint: error::hint(&e),
                }
            }
            Some(Unpublished::Push { message, .. } | Unpublished::Platform { message, .. })
                if matches!(self.exit, ExitKind::Ship | ExitKind::Hold) =>
            {
                Self {
                    exit: ExitKind::Infrastructure,
                    reason: redactor.redact(&format!("{message} (the day was {})", self.decision.as_str())),
                    ..self
                }
            }
            Some(_) => self,
        }
    }
}

/// Where the day's result was published.
#[derive(Debug, Clone, Default)]
pub(super) struct Published {
    pub(super) mr_url: Option<String>,
    pub(super) issue_url: Option<String>,
}

/// Why the result was not published.
#[derive(Debug)]
enum Unpublished {
    /// The push failed; nothing was opened.
    Push { message: String, advice: Option<String> },
    /// Pushed, but the merge request or escalation could not be opened.
    Platform { message: String, advice: Option<String> },
    /// A signal stopped the push or the platform call.
    Interrupted(Signal),
}

/// What run.json and the summary say about the day besides how it ended.
struct DayFacts {
    run_id: String,
    product: String,
    day: u32,
    target: String,
    attempt: u32,
    branch: String,
    commit: String,
    story: Option<StoryCard>,
    handoff: Option<Handoff>,
    gate: Option<GateReport>,
    sentinel: Option<ReviewReport>,
    conduit: Option<ReviewReport>,
    agents: Vec<AgentRecord>,
    totals: Totals,
    artifacts_location: String,
    refused: Vec<crate::boundary::Refused>,
    /// The egress proxy's tally of the day's set-up (`egress.yaml`; empty without one).
    egress: Vec<crate::proxy::TallyEntry>,
    human_gate: bool,
    started_at: String,
}

/// The day's `egress.yaml` (written by the set-up behind the egress proxy); empty when
/// there is none or it cannot be read (the summary then has no network line).
fn egress_tally(ctx: &DayContext) -> Vec<crate::proxy::TallyEntry> {
    let path = ctx.day_dir.path(crate::day::setup::EGRESS_FILE);
    crate::safe_write::read_to_string(&ctx.settings.repo_root, &path)
        .ok()
        .flatten()
        .and_then(|text| crate::proxy::parse_tally(&text).ok())
        .unwrap_or_default()
}

impl DayFacts {
    fn of_day(ctx: &DayContext, req: &DayRequest, state: &CycleState, started_at: &str) -> Self {
        Self {
            run_id: req.run_id.clone(),
            product: ctx.settings.product.name.clone(),
            day: ctx.plan.day,
            target: ctx.plan.target.clone(),
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
            egress: egress_tally(ctx),
            human_gate: state.human_gate,
            started_at: started_at.to_string(),
        }
    }

    /// A day stopped in preflight: no agent ran.
    fn before_agents(req: &DayRequest, checkout: &Checkout, started_at: &str, attempt: u32) -> Self {
        Self {
            run_id: req.run_id.clone(),
            product: req.settings.product.name.clone(),
            day: req.plan.day,
            target: req.plan.target.clone(),
            attempt,
            branch: checkout.branch.clone(),
            commit: checkout.git.head(),
            story: None,
            handoff: None,
            gate: None,
            sentinel: None,
            conduit: None,
            agents: Vec::new(),
            totals: Totals::default(),
            artifacts_location: artifacts_location(&req.env, &checkout.day_dir),
            refused: Vec::new(),
            egress: Vec::new(),
            human_gate: false,
            started_at: started_at.to_string(),
        }
    }

    /// The summary (`summary.md`, and the body of the merge request or escalation).
    fn summary(&self, ending: &Ending) -> DaySummary {
        DaySummary {
            product: self.product.clone(),
            day: self.day,
            target: self.target.clone(),
            decision: ending.decision,
            reason: ending.reason.clone(),
            attempt: self.attempt,
            branch: self.branch.clone(),
            commit: self.commit.clone(),
            story: self.story.clone(),
            handoff: self.handoff.clone(),
            gate: self.gate.clone(),
            sentinel: self.sentinel.clone(),
            conduit: self.conduit.clone(),
            agents: self.agents.clone(),
            totals: self.totals.clone(),
            artifacts_location: self.artifacts_location.clone(),
            refused: self.refused.clone(),
            egress: self.egress.clone(),
        }
    }

    /// `run.json`, finished now.
    fn run_record(&self, ending: &Ending, published: &Published) -> RunRecord {
        RunRecord {
            schema_version: artifacts::RUN_SCHEMA_VERSION,
            run_id: self.run_id.clone(),
            day: self.day,
            attempt: self.attempt,
            decision: ending.decision,
            exit_code: ending.exit.code(),
            reason: ending.reason.clone(),
            started_at: self.started_at.clone(),
            finished_at: artifacts::now_rfc3339(),
            branch: self.branch.clone(),
            commit: self.commit.clone(),
            mr_url: published.mr_url.clone(),
            issue_url: published.issue_url.clone(),
            agents: self.agents.clone(),
            totals: self.totals.clone(),
            human_gate: self.human_gate,
        }
    }
}

/// The day stopped before the agents could run (bad key, Docker down): the artifacts
/// are still written so CI has something to show.
pub(super) fn record_early(
    req: &DayRequest,
    checkout: &Checkout,
    redactor: &Redactor,
    started_at: &str,
    attempt: u32,
    error: &DayError,
) -> DayReport {
    let ending = Ending {
        decision: RunDecision::Error,
        reason: redactor.redact(&error.to_string()),
        exit: error::exit_kind(error),
        hint: error::hint(error),
    };
    let facts = DayFacts::before_agents(req, checkout, started_at, attempt);
    let record = facts.run_record(&ending, &Published::default());
    let summary = facts.summary(&ending);
    let day_dir = &checkout.day_dir;
    let _ = artifacts::write_json(&day_dir.run_json(), &record, redactor);
    let _ = artifacts::write_text(&day_dir.summary(), &summary.render_markdown(redactor), redactor);
    let _ = write_progress(
        &checkout.pace,
        &req.settings,
        &req.progress_days,
        req.start_date.as_deref(),
        req.plan.day,
        redactor,
    );
    let _ = write_dotenv(&req.settings, &record, redactor);
    // No suite ran: an earlier day's JUnit must not be reported as this one's.
    let _ = latest_junit(&checkout.pace, day_dir, redactor);
    DayReport {
        exit: ending.exit,
        decision: Some(RunDecision::Error),
        message: ending.reason,
        hint: ending.hint,
    }
}

/// Records, publishes and commits the day's end, whatever it was. `interrupt`, when
/// given, stops the push and the platform calls (the artifacts are still written).
pub(super) async fn finish(
    ctx: &DayContext,
    req: &DayRequest,
    platform: &dyn Platform,
    state: &CycleState,
    outcome: Result<(), DayError>,
    started_at: &str,
    interrupt: Option<Pin<&mut (dyn Future<Output = Signal> + '_)>>,
) -> DayReport {
    let ending = Ending::of_cycle(&outcome, state, &ctx.redactor);
    let facts = DayFacts::of_day(ctx, req, state, started_at);
    let mut summary = facts.summary(&ending);
    // Push the work first so the MR/issue can point at it; a failed push is reported
    // but the artifacts below are still written and committed locally.
    let published = publish(ctx, req, platform, &summary, state.human_gate, interrupt).await;
    let (published, mut unpublished) = match published {
        Ok(p) => (p, None),
        Err(u) => (Published::default(), Some(u)),
    };
    let ending = ending.after_publishing(unpublished.as_ref(), &ctx.redactor);
    if matches!(unpublished, Some(Unpublished::Interrupted(_))) {
        // Stopped while pushing or publishing: recorded like any interrupted day (a
        // re-run pushes and publishes again); the patch below keeps the work.
        summary = facts.summary(&ending);
    }
    let record = facts.run_record(&ending, &published);
    let mut warnings = Vec::new();
    let written = write_day_files(ctx, req, &record, &summary);
    if let Err(e) = &written {
        warnings.push(format!("could not write the day's artifacts: {e}"));
    }
    let message = ctx.redactor.redact(&format!(
        "Day {}: {} — artifacts (attempt {})",
        ctx.plan.day,
        ending.decision.as_str(),
        record.attempt
    ));
    if let Err(e) = commit_artifacts(ctx, &message) {
        warnings.push(format!("could not commit the artifacts: {e}"));
    } else if !req.dry_run
        && !matches!(
            unpublished,
            Some(Unpublished::Push { .. } | Unpublished::Interrupted(_))
        )
        && let Err(e) = platform.push(&ctx.git, &ctx.branch, &ctx.day_dir).await
    {
        unpublished = Some(Unpublished::Push {
            message: e.to_string(),
            advice: error::hint(&e),
        });
    }
    for w in warnings {
        ctx.warn(w);
    }
    report(ctx, &ending, &record, unpublished, &written, state.human_gate)
}

/// Pushes the branch, then opens the merge request (SHIP, human gate) or the escalation
/// (HOLD); nothing is pushed or opened in a dry run's push, and ERROR/BUDGET open nothing.
async fn publish(
    ctx: &DayContext,
    req: &DayRequest,
    platform: &dyn Platform,
    summary: &DaySummary,
    human_gate: bool,
    interrupt: Option<Pin<&mut (dyn Future<Output = Signal> + '_)>>,
) -> Result<Published, Unpublished> {
    let publishing = async {
        if !req.dry_run
            && let Err(e) = platform.push(&ctx.git, &ctx.branch, &ctx.day_dir).await
        {
            return Err(Unpublished::Push {
                message: e.to_string(),
                advice: error::hint(&e),
            });
        }
        let opened = match summary.decision {
            RunDecision::Ship => platform.ship(summary, &ctx.day_dir).await.map(|p| {
                supersede_escalation(ctx);
                Published {
                    mr_url: p.url,
                    issue_url: None,
                }
            }),
            RunDecision::Hold if human_gate => {
                platform.request_review(summary, &ctx.day_dir).await.map(|p| Published {
                    mr_url: p.url,
                    issue_url: None,
                })
            }
            RunDecision::Hold => platform.escalate(summary, &ctx.day_dir).await.map(|p| Published {
                mr_url: None,
                issue_url: p.url,
            }),
            _ => Ok(Published::default()),
        };
        opened.map_err(|e| Unpublished::Platform {
            message: format!("{} could not publish the result: {e}", platform.name()),
            advice: error::hint(&e),
        })
    };
    match interrupt {
        Some(signal) => tokio::select! {
            published = publishing => published,
            signal = signal => Err(Unpublished::Interrupted(signal)),
        },
        None => publishing.await,
    }
}

/// A retry that ships supersedes an earlier attempt's `escalation.md` (written on the
/// local platform, and beside a Bitbucket escalation): left next to the merge request it
/// would say the day still holds. The escalation itself stays in the history.
fn supersede_escalation(ctx: &DayContext) {
    let escalation = ctx.day_dir.escalation();
    if let Err(e) = crate::safe_write::remove_file(escalation.repo(), &escalation) {
        ctx.warn(format!("could not remove the earlier attempt's escalation: {e}"));
    }
}

/// The final line and its hints: a failed push or publication first (with what was kept
/// and how to go on), then a link refused while writing the artifacts, then the decision.
fn report(
    ctx: &DayContext,
    ending: &Ending,
    record: &RunRecord,
    unpublished: Option<Unpublished>,
    written: &Result<(), artifacts::ArtifactError>,
    human_gate: bool,
) -> DayReport {
    let failed = |message: &str, hint: String| DayReport {
        exit: ending.exit,
        decision: Some(ending.decision),
        message: ctx.redactor.redact(message),
        hint: Some(hint),
    };
    match unpublished {
        Some(Unpublished::Push { message, advice }) => return failed(&message, not_pushed(ctx, ending, advice)),
        Some(Unpublished::Interrupted(_)) => return failed(&ending.reason, not_pushed(ctx, ending, None)),
        Some(Unpublished::Platform { message, advice }) => {
            return failed(
                &message,
                after_platform_advice(
                    advice,
                    "the branch is pushed and the artifacts are written; fix the token or project settings (`pace doctor`) and re-run the day to publish".into(),
                ),
            );
        }
        None => {}
    }
    // A link left in pace's own paths during the day (e.g. by the suite in bind mode):
    // the artifacts are incomplete and the checkout needs fixing, whatever the agents
    // decided (the refusal is also among the warnings above).
    if let Err(e) = written
        && e.is_refusal()
    {
        return DayReport {
            exit: error::exit_kind(e),
            decision: Some(ending.decision),
            message: ctx.redactor.redact(&format!(
                "{e} (the day was {}; run.json records that)",
                ending.decision.as_str()
            )),
            hint: None,
        };
    }
    DayReport {
        exit: ending.exit,
        decision: Some(ending.decision),
        message: ctx.redactor.redact(&format!(
            "{}\nartifacts: {}",
            final_line(ctx, ending, record, human_gate),
            ctx.day_dir.dir.display()
        )),
        hint: ending.hint.clone(),
    }
}

/// The day's result in one line.
fn final_line(ctx: &DayContext, ending: &Ending, record: &RunRecord, human_gate: bool) -> String {
    let reason = &ending.reason;
    match ending.decision {
        RunDecision::Ship if human_gate => reason.clone(),
        RunDecision::Ship => format!(
            "Day {} shipped: {}",
            ctx.plan.day,
            record.mr_url.as_deref().unwrap_or("no merge request")
        ),
        RunDecision::Hold if human_gate => {
            format!("{reason}; review request: {}", record.mr_url.as_deref().unwrap_or("-"))
        }
        RunDecision::Hold => format!(
            "Day {} held after {} attempt(s): {reason}",
            ctx.plan.day, record.attempt
        ),
        _ => reason.clone(),
    }
}

/// The hint after a failed push: the work is kept locally and as `changes.patch`.
fn not_pushed(ctx: &DayContext, ending: &Ending, advice: Option<String>) -> String {
    let patch = match write_changes_patch(ctx) {
        Ok(path) => format!(" (also as `{}`)", path.display()),
        Err(e) => {
            ctx.warn(format!("could not write the day's patch: {e}"));
            String::new()
        }
    };
    let next = if matches!(ending.exit, ExitKind::Interrupted | ExitKind::Terminated) {
        format!("the work is committed locally and in the artifacts{patch}; re-run the day to push and publish it")
    } else {
        format!(
            "the work is committed locally and in the artifacts{patch}; fix the push (network, rights) and re-run the day"
        )
    };
    after_platform_advice(advice, next)
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
        cache_write_tokens: t.cache_write_tokens,
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
    write_dotenv(&req.settings, record, &ctx.redactor)?;
    latest_junit(&ctx.pace, &ctx.day_dir, &ctx.redactor)
}

/// `.pace/junit.xml`: a copy of this day's `gate/junit.xml` at a fixed path, the one the
/// CI templates report (a glob over `day-*/` would report every earlier day's tests
/// again). Removed when this day has none, so a stale copy is never reported.
pub(super) fn latest_junit(pace: &PaceDir, day: &DayDir, redactor: &Redactor) -> Result<(), artifacts::ArtifactError> {
    let latest = artifacts::OwnPath::new(pace.repo(), LATEST_JUNIT);
    match crate::safe_write::read_to_string(pace.repo(), &day.gate_junit()) {
        Ok(Some(xml)) => artifacts::write_text(&latest, &xml, redactor),
        Ok(None) | Err(_) => {
            crate::safe_write::remove_file(pace.repo(), &latest).map_err(artifacts::ArtifactError::from)
        }
    }
}

/// Where the CI templates find this day's JUnit report.
const LATEST_JUNIT: &str = ".pace/junit.xml";

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
    Dotenv::of_record(record).write(&PaceDir::new(&settings.repo_root), redactor)
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
    "# written by pace: not committed\npipeline.lock\nday-*/gate/output.log\nday-*/changes.patch\n/gate/\n/junit.xml\n";

fn ensure_pace_gitignore(pace: &PaceDir) {
    let path = pace.gitignore();
    if matches!(crate::safe_write::read_to_string(pace.repo(), &path), Ok(None)) {
        let _ = crate::safe_write::write(pace.repo(), &path, PACE_GITIGNORE.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(result: Option<Decided>, human_gate: bool) -> CycleState {
        let mut state = CycleState::new(Vec::new());
        state.result = result;
        state.human_gate = human_gate;
        state
    }

    fn ending_of(outcome: Result<(), DayError>, state: &CycleState) -> (RunDecision, String, ExitKind) {
        let e = Ending::of_cycle(&outcome, state, &Redactor::new(Vec::new()));
        (e.decision, e.reason, e.exit)
    }

    #[test]
    fn the_cycle_s_end_gives_decision_reason_and_exit() {
        let ship = decided(Some(Decided::Ship), false);
        assert_eq!(
            ending_of(Ok(()), &ship),
            (RunDecision::Ship, String::new(), ExitKind::Ship)
        );
        let hold = decided(Some(Decided::Hold("tests fail".into())), false);
        assert_eq!(
            ending_of(Ok(()), &hold),
            (RunDecision::Hold, "tests fail".into(), ExitKind::Hold)
        );
        // A human gate holds for review, and that is a successful run.
        let gate = decided(Some(Decided::Hold("review".into())), true);
        assert_eq!(
            ending_of(Ok(()), &gate),
            (RunDecision::Hold, "review".into(), ExitKind::Ship)
        );
        let none = decided(None, false);
        assert_eq!(
            ending_of(Ok(()), &none),
            (
                RunDecision::Error,
                "the day ended without a decision".into(),
                ExitKind::Infrastructure
            )
        );
        // An error wins over a decision already taken.
        let budget = Ending::of_cycle(
            &Err(DayError::TimeBudget("time budget exhausted".into())),
            &ship,
            &Redactor::new(Vec::new()),
        );
        assert_eq!((budget.decision, budget.exit), (RunDecision::Budget, ExitKind::Budget));
        assert!(budget.hint.is_some_and(|h| h.contains("budget.max_minutes")));
        assert_eq!(
            ending_of(Err(DayError::Interrupted(Signal::Terminate)), &ship),
            (
                RunDecision::Error,
                "interrupted by SIGTERM".into(),
                ExitKind::Terminated
            )
        );
    }

    fn ending(decision: RunDecision, exit: ExitKind) -> Ending {
        Ending {
            decision,
            reason: "the agents' reason".into(),
            exit,
            hint: Some("the agents' hint".into()),
        }
    }

    #[test]
    fn a_failed_publication_turns_ship_or_hold_into_an_infrastructure_error() {
        let redactor = Redactor::new(vec!["s3cr3t-token".into()]);
        let push = Unpublished::Push {
            message: "push refused for s3cr3t-token".into(),
            advice: None,
        };
        let shipped = ending(RunDecision::Ship, ExitKind::Ship).after_publishing(Some(&push), &redactor);
        assert_eq!(shipped.decision, RunDecision::Ship);
        assert_eq!(shipped.exit, ExitKind::Infrastructure);
        assert!(!shipped.reason.contains("s3cr3t-token"), "{}", shipped.reason);
        assert!(shipped.reason.ends_with("(the day was SHIP)"), "{}", shipped.reason);
        assert_eq!(shipped.hint.as_deref(), Some("the agents' hint"));

        let platform = Unpublished::Platform {
            message: "gitlab could not publish the result: 403".into(),
            advice: None,
        };
        let held = ending(RunDecision::Hold, ExitKind::Hold).after_publishing(Some(&platform), &redactor);
        assert_eq!(
            held.reason,
            "gitlab could not publish the result: 403 (the day was HOLD)"
        );
        // A budget stop keeps its exit code and reason when the push fails too.
        let budget = ending(RunDecision::Budget, ExitKind::Budget).after_publishing(Some(&push), &redactor);
        assert_eq!(
            (budget.exit, budget.reason.as_str()),
            (ExitKind::Budget, "the agents' reason")
        );
        let published = ending(RunDecision::Ship, ExitKind::Ship).after_publishing(None, &redactor);
        assert_eq!(
            (published.exit, published.reason.as_str()),
            (ExitKind::Ship, "the agents' reason")
        );
    }

    #[test]
    fn a_signal_while_publishing_makes_an_interrupted_error_day() {
        let stopped = ending(RunDecision::Hold, ExitKind::Hold).after_publishing(
            Some(&Unpublished::Interrupted(Signal::Interrupt)),
            &Redactor::new(Vec::new()),
        );
        assert_eq!(stopped.decision, RunDecision::Error);
        assert_eq!(stopped.exit, ExitKind::Interrupted);
        assert_eq!(
            stopped.reason,
            "interrupted by SIGINT while publishing (the day was HOLD)"
        );
        assert_eq!(stopped.hint, None);
    }

    #[test]
    fn run_json_and_the_summary_are_built_from_the_same_facts() {
        let facts = DayFacts {
            run_id: "run-1".into(),
            product: "Greeter".into(),
            day: 3,
            target: "greet".into(),
            attempt: 2,
            branch: "sprint".into(),
            commit: "abc123".into(),
            story: None,
            handoff: None,
            gate: None,
            sentinel: None,
            conduit: None,
            agents: Vec::new(),
            totals: Totals::default(),
            artifacts_location: ".pace/day-3/".into(),
            refused: Vec::new(),
            egress: Vec::new(),
            human_gate: false,
            started_at: "2026-01-01T00:00:00Z".into(),
        };
        let end = ending(RunDecision::Hold, ExitKind::Hold);
        let published = Published {
            mr_url: None,
            issue_url: Some("https://example.invalid/issues/7".into()),
        };
        let record = facts.run_record(&end, &published);
        let summary = facts.summary(&end);
        assert_eq!(
            (record.decision, summary.decision),
            (RunDecision::Hold, RunDecision::Hold)
        );
        assert_eq!(record.exit_code, ExitKind::Hold.code());
        assert_eq!(
            (record.reason.as_str(), summary.reason.as_str()),
            ("the agents' reason", "the agents' reason")
        );
        assert_eq!((record.attempt, summary.attempt), (2, 2));
        assert_eq!((record.commit.as_str(), summary.commit.as_str()), ("abc123", "abc123"));
        assert_eq!(record.issue_url, published.issue_url);
        assert_eq!(record.started_at, "2026-01-01T00:00:00Z");
    }
}
