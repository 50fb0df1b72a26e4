//! `pace --day N|next`: resolves the config, the plan day and the platform, runs the day
//! and prints its last line; exit codes other than SHIP and HOLD are returned as errors so
//! they are rendered (once) with every other error.
//!
//! Every exit of a day run leaves the dotenv report `pace-env.env`: the day writes it when
//! it records itself, and this command writes it when the run stopped before that (a
//! config, plan or checkout error, `next` with nothing to run).

use std::io::Write;
use std::path::Path;

use super::common;
use super::next::{self, Next};
use crate::artifacts::PaceDir;
use crate::cli::DayArg;
use crate::config::settings::{PlatformKind, Settings};
use crate::day::{self, DayPlan, DayRequest};
use crate::env::{self, Env};
use crate::error::{ExitKind, PaceError};
use crate::platform::Platform;
use crate::redact::Redactor;
use crate::report::dotenv::{self, Dotenv};
use crate::report::printer::Printer;
use crate::report::progress::ProgressDay;

/// What the command line says about the day to run.
#[derive(Clone, Copy)]
pub(super) struct Args<'a> {
    pub(super) day: Option<DayArg>,
    pub(super) retry: bool,
    pub(super) dry_run: bool,
    pub(super) config: Option<&'a Path>,
}

/// What the run has left behind so far, for the dotenv report of an early exit.
#[derive(Default)]
struct Trace {
    /// The day given, or chosen by `next`.
    day: Option<u32>,
    /// `pace-env.env` is written (the day recorded itself, or `next` wrote it).
    dotenv_written: bool,
}

pub(super) fn run(args: Args<'_>, env: Env, printer: Printer) -> Result<u8, PaceError> {
    if env.is_true(env::PACE_PAUSED) {
        println!("pace is paused (PACE_PAUSED=true): resolve the open escalation, then set PACE_PAUSED=false");
        return Ok(0);
    }
    let Some(day) = args.day else {
        return Err(PaceError::new(ExitKind::Config, "no day given").with_hint(
            "run `pace --day N` or `pace --day next` (or set `PACE_DAY`); `pace --help` lists the commands",
        ));
    };
    let redactor = Redactor::new(env.secret_values(&[]));
    let mut trace = Trace {
        day: day.number(),
        dotenv_written: false,
    };
    let result = run_day(args, day, env, printer, &mut trace);
    if !trace.dotenv_written {
        let code = match &result {
            Ok(code) => *code,
            Err(e) => e.kind.code(),
        };
        // A run stopped before the day recorded itself; the job's variables still say so.
        if let Ok(root) = common::repo_root() {
            let report = Dotenv::unrecorded(trace.day, "ERROR", code);
            if let Err(e) = report.write(&PaceDir::new(&root), &redactor) {
                tracing::warn!(error = %e, "cannot write the dotenv report `pace-env.env`");
            }
        }
    }
    result
}

fn run_day(args: Args<'_>, day: DayArg, env: Env, printer: Printer, trace: &mut Trace) -> Result<u8, PaceError> {
    let loaded = common::load(args.config, &env)?;
    let settings = loaded.settings;
    super::branch::refuse_default_branch(&settings, &env)?;
    let day = match day {
        DayArg::Number(n) => {
            if args.retry {
                eprintln!("pace: day {n}; `--retry` was passed: it runs again from its last hold reason");
            }
            n
        }
        DayArg::Next => match choose_next(&settings, &loaded.plan, args.retry, &env, trace)? {
            Some(n) => n,
            None => return Ok(ExitKind::Ship.code()),
        },
    };
    trace.day = Some(day);
    let plan_day = crate::config::select_day(&settings, &loaded.plan, day, &settings.plan_path)?;
    let platform = platform_for(&settings, args.dry_run, &env)?;
    let request = DayRequest {
        plan: DayPlan {
            day,
            target: plan_day.target.clone(),
            gate_criterion: plan_day.gate_criterion.clone(),
            notes: plan_day.notes.clone(),
            human_gate: plan_day.human_gate,
        },
        progress_days: loaded
            .plan
            .days
            .iter()
            .map(|d| ProgressDay {
                day: d.day,
                target: d.target.clone(),
                week: Some(d.week),
                week_label: d.week_label.clone(),
            })
            .collect(),
        start_date: loaded.plan.start_date.clone(),
        retry: args.retry,
        dry_run: args.dry_run,
        run_id: common::run_id(),
        env,
        printer,
        settings,
    };
    let report = common::runtime()?.block_on(day::run(request, platform, common::signal()));
    // A report with a decision was recorded, the dotenv report with it.
    trace.dotenv_written = report.decision.is_some();
    // The message quotes the hold reason (model text) and goes to the job log.
    let message = crate::inert::log(&report.message);
    if report.exit != ExitKind::Ship && report.exit != ExitKind::Hold {
        // Rendered with every other error, by `crate::run`: printed once, on stderr.
        let mut err = PaceError::new(report.exit, message);
        err.hint = report.hint;
        return Err(err);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{message}");
    Ok(report.exit.code())
}

/// `--day next`: the day to run, or `None` when the sprint is complete (printed). A held
/// day without `--retry` is an exit-1 error naming the day and its escalation. Whatever it
/// decides is written to the job log and, when no day runs, to the dotenv report.
fn choose_next(
    settings: &Settings,
    plan: &crate::config::plan::Plan,
    retry: bool,
    env: &Env,
    trace: &mut Trace,
) -> Result<Option<u32>, PaceError> {
    let pace = PaceDir::new(&settings.repo_root);
    let days: Vec<u32> = plan
        .days
        .iter()
        .map(|d| d.day)
        .filter(|&d| d <= settings.sprint.duration_days)
        .collect();
    if days.is_empty() {
        return Err(PaceError::plan(format!(
            "`--day next`: `{}` plans no day within `sprint.duration_days` ({})",
            settings.plan_path.display(),
            settings.sprint.duration_days
        ))
        .with_hint("add days to the plan (`pace validate` checks it), or run `pace --day N`"));
    }
    let redactor = Redactor::new(env.secret_values(&[settings.llm.api_key_env.as_str()]));
    match next::choose(&days, |d| next::read_record(&pace, d), retry) {
        Next::Run { day, held, done } => {
            eprintln!("{}", next::chosen_line(day, held, &done, retry));
            Ok(Some(day))
        }
        Next::Held { day, record } => {
            trace.day = Some(day);
            let dotenv = Dotenv {
                cost_usd: 0.0,
                ..Dotenv::of_record(&record)
            };
            trace.dotenv_written = dotenv.write(&pace, &redactor).is_ok();
            // run.json is a file of the checkout: its reason and link reach the job log inert.
            let message = format!(
                "`--day next`: day {day} holds (attempt {}): {}\nits escalation: {}",
                record.attempt,
                record.reason,
                next::escalation_of(&pace, &record)
            );
            Err(PaceError::new(ExitKind::Hold, crate::inert::log(&redactor.redact(&message)))
            .with_hint(format!(
                "push a fix to the sprint branch, then run `pace --day next --retry` (in CI: `RETRY=true`); `--retry` was not passed, so day {day} did not run"
            )))
        }
        Next::Complete { days, last } => {
            let dotenv = Dotenv::unrecorded(None, dotenv::SPRINT_COMPLETE, ExitKind::Ship.code());
            trace.dotenv_written = dotenv.write(&pace, &redactor).is_ok();
            println!(
                "sprint complete: all {days} days of the plan have shipped (the last is day {last}); nothing to run"
            );
            Ok(None)
        }
    }
}

fn platform_for(settings: &Settings, dry_run: bool, env: &Env) -> Result<Box<dyn Platform>, PaceError> {
    let redactor = day::redactor_for(env, settings);
    if dry_run {
        return Ok(crate::platform::local(redactor));
    }
    match settings.platform.kind {
        PlatformKind::Local => Ok(crate::platform::local(redactor)),
        PlatformKind::Gitlab => crate::platform::gitlab(env, &settings.platform, redactor),
        PlatformKind::Bitbucket => crate::platform::bitbucket(&settings.platform, env, redactor),
    }
}
