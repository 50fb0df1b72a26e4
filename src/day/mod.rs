//! The day's state machine: PRIME → FORGE → GATE ∥ SENTINEL ∥ CONDUIT → SCRIBE, with the
//! retries, advisory backlog, clearance days and human gates of the contract ("The day").
//!
//! The day runs in three phases, one file each: `preflight` (every check before a token
//! is spent, ending in a ready day or a report), `cycle` (PRIME, then FORGE → reviews
//! per attempt, into a `CycleState`) and `finish` (one `Ending`, the publication, the
//! artifacts). Whatever happens after the day directory exists — SHIP, HOLD, budget, an
//! outage, a signal — `run.json`, the summary and `PROGRESS.md` are written and committed.

use std::future::Future;
use std::time::Duration;

use crate::artifacts::{self, RunDecision};
use crate::config::settings::Settings;
use crate::env::Env;
use crate::error::{self, ExitKind, Hint, PaceError};
use crate::git::GitError;
use crate::llm::LlmError;
use crate::platform::{Platform, PlatformError};
use crate::redact::Redactor;
use crate::report::printer::Printer;
use crate::report::progress::ProgressDay;
use crate::sandbox::SandboxError;

pub mod agents;
pub mod context;
mod cycle;
pub mod decide;
mod finish;
pub mod lock;
mod preflight;
pub mod setup;
pub mod tools;

pub use context::{DayContext, DayPlan};

use cycle::CycleState;
pub use finish::write_progress;

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

/// Runs the day: `preflight`, then the attempt `cycle` raced against a signal and
/// `budget.max_minutes`, then `finish`. `interrupt` resolves when SIGINT/SIGTERM
/// arrives; the day then stops, removes its containers, records what it has and exits
/// 130/143. `budget.max_minutes` stops it the same way (FORGE's work committed, exit 5,
/// decision BUDGET).
pub async fn run(req: DayRequest, platform: Box<dyn Platform>, interrupt: impl Future<Output = Signal>) -> DayReport {
    let day_started = tokio::time::Instant::now();
    let ready = match preflight::preflight(&req).await {
        Ok(ready) => ready,
        Err(report) => return report,
    };
    // The lock is held until the day's end is recorded.
    let preflight::Ready {
        lock: _lock,
        ctx,
        mut state,
        started_at,
    } = ready;
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
        outcome = cycle::cycle(&ctx, &req, platform.as_ref(), &mut state) => outcome,
        signal = &mut interrupt => Err(DayError::Interrupted(signal)),
        () = out_of_time_at => Err(out_of_time(&ctx, time_budget.unwrap_or_default())),
    };
    if let Some(stop) = Stopped::by(&outcome) {
        return stop
            .finish(&ctx, &req, platform.as_ref(), &state, outcome, &started_at)
            .await;
    }
    // FORGE's and GATE's egress proxy (`sandbox.egress_for_tests`): its tally goes into
    // `egress.yaml` before the summary is written.
    setup::finish_egress(
        &ctx.sandbox,
        &ctx.settings.repo_root,
        &ctx.day_dir.path(setup::EGRESS_FILE),
    )
    .await;
    // A signal while the result is pushed and published stops that too (the artifacts
    // are still written and committed locally, within the cleanup bound).
    let report = finish::finish(
        &ctx,
        &req,
        platform.as_ref(),
        &state,
        outcome,
        &started_at,
        Some(interrupt.as_mut()),
    )
    .await;
    settle_within_bound(&ctx, &req.run_id).await;
    report
}

/// FORGE's session containers are removed in the background: none may outlive pace.
async fn settle_within_bound(ctx: &DayContext, run_id: &str) {
    if tokio::time::timeout(CLEANUP_TIMEOUT, settle_sandbox(ctx))
        .await
        .is_err()
    {
        ctx.warn(format!(
            "removing FORGE's sandbox containers did not finish within {} s; remove them with `docker rm -fv $(docker ps -aq --filter label=pace.run-id={run_id})`",
            CLEANUP_TIMEOUT.as_secs(),
        ));
    }
}

/// Waits for the FORGE session containers being removed in the background.
pub(super) async fn settle_sandbox(ctx: &DayContext) {
    for e in ctx.sandbox.settle().await {
        ctx.warn(format!("could not remove FORGE's sandbox container: {e}"));
    }
}

/// A cycle stopped from outside, by a signal or `budget.max_minutes`.
struct Stopped {
    why: String,
    exit: ExitKind,
}

impl Stopped {
    fn by(outcome: &Result<(), DayError>) -> Option<Self> {
        match outcome {
            Err(DayError::Interrupted(signal)) => Some(Self {
                why: format!("interrupted by {signal}"),
                exit: error::exit_kind(&DayError::Interrupted(*signal)),
            }),
            Err(DayError::TimeBudget(_)) => Some(Self {
                why: "stopped by `budget.max_minutes`".to_string(),
                exit: ExitKind::Budget,
            }),
            _ => None,
        }
    }

    /// The cycle future is gone: its containers may still run, and FORGE's edits are
    /// not committed yet. Both are handled within a bound so a hung daemon cannot keep a
    /// cancelled CI job alive.
    async fn finish(
        self,
        ctx: &DayContext,
        req: &DayRequest,
        platform: &dyn Platform,
        state: &CycleState,
        outcome: Result<(), DayError>,
        started_at: &str,
    ) -> DayReport {
        let Self { why, exit } = self;
        let message = format!("Day {}: FORGE — work in progress ({why})", ctx.plan.day);
        let cleanup = async {
            setup::finish_egress(
                &ctx.sandbox,
                &ctx.settings.repo_root,
                &ctx.day_dir.path(setup::EGRESS_FILE),
            )
            .await;
            let _ = ctx.sandbox.remove_run_containers().await;
            if let Err(e) = agents::forge::commit_writable(ctx, &message) {
                ctx.warn(format!("could not commit FORGE's work in progress: {e}"));
            }
            finish::finish(ctx, req, platform, state, outcome, started_at, None).await
        };
        match tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await {
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
        }
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// Every credential value (contract "Secrets"), including the configured LLM key variable
/// and the registry logins inside `DOCKER_AUTH_CONFIG` (whose name says neither).
pub fn redactor_for(env: &Env, settings: &Settings) -> Redactor {
    let mut secrets = env.secret_values(&[settings.llm.api_key_env.as_str()]);
    secrets.extend(crate::sandbox::registry::secrets(env));
    Redactor::new(secrets)
}

/// A bounded wait used when cleaning up after a signal.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(20);

impl From<DayError> for PaceError {
    fn from(e: DayError) -> Self {
        PaceError::from_error(&e)
    }
}
