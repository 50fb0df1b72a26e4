//! The day's first phase: everything that can stop it before an agent runs — the
//! checkout, pace's own paths, an already shipped day, the lock, uncommitted edits, the
//! LLM credentials and Docker. It ends in a [`Ready`] day or in the report of why not.

use crate::artifacts::{self, DayDir, PaceDir, RunDecision, RunRecord};
use crate::config::settings::Settings;
use crate::error::{ExitKind, PaceError};
use crate::git::{Git, GitError};
use crate::llm::Client;
use crate::redact::Redactor;
use crate::report::dotenv::Dotenv;
use crate::report::printer::Event;
use crate::sandbox::{EventSink, Sandbox, SandboxContext};

use super::cycle::CycleState;
use super::lock::RunLock;
use super::{DayContext, DayError, DayReport, DayRequest, finish, redactor_for, short};

/// A day that passed preflight: its context, what earlier runs of it recorded, and the
/// lock that keeps a second `pace --day N` out until the day's end is recorded.
pub(super) struct Ready {
    pub(super) ctx: DayContext,
    pub(super) state: CycleState,
    pub(super) started_at: String,
    pub(super) lock: RunLock,
}

/// The checkout as preflight found it, once the day directory exists.
pub(super) struct Checkout {
    pub(super) git: Git,
    pub(super) branch: String,
    pub(super) pace: PaceDir,
    pub(super) day_dir: DayDir,
    lock: RunLock,
}

/// Runs every check in the contract's order. `Err` is the day's final report: before the
/// day directory exists nothing is recorded; after it, run.json, the summary and
/// `PROGRESS.md` say why the day stopped.
pub(super) async fn preflight(req: &DayRequest) -> Result<Ready, DayReport> {
    let redactor = redactor_for(&req.env, &req.settings);
    let checkout = check_checkout(req)?;
    let started_at = artifacts::now_rfc3339();
    let prior_attempts = artifacts::read_attempts(&checkout.day_dir);
    let base_commit = day_base_commit(&checkout.day_dir, &checkout.git);

    // Credentials and Docker are checked before any token is spent; a failure still
    // leaves run.json, the summary and PROGRESS.md.
    let attempt = prior_attempts.len() as u32 + 1;
    let stop_early = |error: DayError| finish::record_early(req, &checkout, &redactor, &started_at, attempt, &error);
    let llm = match Client::from_settings(
        &req.settings.llm,
        &req.settings.budget,
        &req.env,
        checkout.day_dir.transcript().to_path_buf(),
        redactor.clone(),
    ) {
        Ok(c) => c,
        Err(e) => return Err(stop_early(e.into())),
    };
    let sandbox = match Sandbox::connect(sandbox_context(req, &redactor)).await {
        Ok(s) => s,
        Err(e) => return Err(stop_early(e.into())),
    };
    // The day settles the sandbox after its reviews and before it ends.
    sandbox.defer_removals();
    if let Ok(n) = sandbox.remove_stale(&req.settings.repo_root).await
        && n > 0
    {
        req.printer.emit(&Event::Info(format!(
            "removed {n} stale sandbox container(s) of killed runs"
        )));
    }
    let Checkout { git, branch, lock, .. } = checkout;
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
    Ok(Ready {
        ctx,
        state: CycleState::new(prior_attempts),
        started_at,
        lock,
    })
}

/// The checks that need no credentials, up to creating the day directory.
fn check_checkout(req: &DayRequest) -> Result<Checkout, DayReport> {
    let git = Git::open(
        &req.settings.repo_root,
        &req.settings.git.author_name,
        &req.settings.git.author_email,
    )
    .map_err(|e| early_exit(&DayError::Checkout(e)))?;
    let branch = git.current_branch().map_err(|e| early_exit(&DayError::Checkout(e)))?;
    let pace = PaceDir::new(&req.settings.repo_root);
    let day_dir = pace.day(req.plan.day);
    // A link in pace's own paths (committed to the repository, or left by a suite) is
    // refused before anything there is read or written, and before a token is spent.
    // Exit 2 as for a dirty work tree: the checkout has to be fixed, not the runner.
    pace.check_no_links(req.plan.day).map_err(|e| early_exit(&e))?;
    if let Some(shipped) = already_shipped(&day_dir) {
        // This run spent nothing; the dotenv report still names the shipped day's result.
        let dotenv = Dotenv {
            cost_usd: 0.0,
            ..Dotenv::of_record(&shipped)
        };
        let _ = dotenv.write(&pace, &redactor_for(&req.env, &req.settings));
        return Err(DayReport {
            exit: ExitKind::Ship,
            decision: Some(RunDecision::Ship),
            message: format!(
                "Day {} was already shipped at `{}`; nothing to do",
                req.plan.day,
                short(&shipped.commit)
            ),
            hint: None,
        });
    }
    let lock = RunLock::acquire(&pace, req.plan.day).map_err(|e| early_exit(&e))?;
    // A person's uncommitted edits would end up in FORGE's commit (or be tested by GATE
    // as if they were the day's work): the day refuses to start before writing anything.
    match uncommitted_user_changes(&git, &req.settings) {
        Ok(files) if !files.is_empty() => return Err(early_exit(&GitError::DirtyWorkTree(files))),
        Ok(_) => {}
        Err(e) => return Err(early_exit(&e)),
    }
    day_dir.create().map_err(|e| early_exit(&e))?;
    Ok(Checkout {
        git,
        branch,
        pace,
        day_dir,
        lock,
    })
}

/// What FORGE's `run` and GATE get from the day: its settings, the allowed environment
/// variables and the boundary of what may come back into the repository. What the sandbox
/// has to say goes to the day's printer.
fn sandbox_context(req: &DayRequest, redactor: &Redactor) -> SandboxContext {
    let printer = req.printer.clone();
    SandboxContext::for_run(
        &req.settings,
        &req.env,
        req.run_id.clone(),
        req.plan.day,
        redactor.clone(),
        EventSink::new(move |event| printer.emit(&Event::Notice(event.to_string()))),
    )
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
fn early_exit(err: &dyn crate::error::Hint) -> DayReport {
    let e = PaceError::from_error(err);
    DayReport {
        exit: e.kind,
        decision: None,
        message: e.message,
        hint: e.hint,
    }
}

fn already_shipped(day: &DayDir) -> Option<RunRecord> {
    artifacts::read_json::<RunRecord>(&day.run_json()).filter(|r| r.decision == RunDecision::Ship && r.exit_code == 0)
}
