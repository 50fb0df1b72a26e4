//! `pace --day N`: resolves the config, the plan day and the platform, runs the day and
//! prints its last line; exit codes other than SHIP and HOLD are returned as errors so
//! they are rendered with every other error.

use std::io::Write;
use std::path::Path;

use super::common;
use crate::config::settings::{PlatformKind, Settings};
use crate::day::{self, DayPlan, DayRequest};
use crate::env::{self, Env};
use crate::error::{ExitKind, PaceError};
use crate::platform::Platform;
use crate::report::printer::Printer;
use crate::report::progress::ProgressDay;

/// What the command line says about the day to run.
#[derive(Clone, Copy)]
pub(super) struct Args<'a> {
    pub(super) day: Option<u32>,
    pub(super) retry: bool,
    pub(super) dry_run: bool,
    pub(super) config: Option<&'a Path>,
}

pub(super) fn run(args: Args<'_>, env: Env, printer: Printer) -> Result<u8, PaceError> {
    if env.is_true(env::PACE_PAUSED) {
        println!("pace is paused (PACE_PAUSED=true): resolve the open escalation, then set PACE_PAUSED=false");
        return Ok(0);
    }
    let Some(day) = args.day else {
        return Err(PaceError::new(ExitKind::Config, "no day given")
            .with_hint("run `pace --day N` (or set `PACE_DAY`); `pace --help` lists the commands"));
    };
    let loaded = common::load(args.config, &env)?;
    let settings = loaded.settings;
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
    // The message quotes the hold reason (model text) and goes to the job log.
    let message = crate::inert::log(&report.message);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{message}");
    if report.exit != ExitKind::Ship && report.exit != ExitKind::Hold {
        // Rendered with every other error, by `crate::run`.
        let mut err = PaceError::new(report.exit, message);
        err.hint = report.hint;
        return Err(err);
    }
    Ok(report.exit.code())
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
