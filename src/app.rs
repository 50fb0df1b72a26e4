//! Command dispatch: resolves the repository, the config and the platform, runs the
//! command on a tokio runtime and turns its result into an exit code.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command};
use crate::config::settings::PlatformKind;
use crate::day::{self, DayPlan, DayRequest, Signal};
use crate::env::{self, Env};
use crate::error::{ExitKind, PaceError};
use crate::report::printer::{Printer, Verbosity};
use crate::report::progress::ProgressDay;

pub fn init_logging(verbose: u8, quiet: bool, env: &Env) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "pace=debug,info",
        (false, _) => "debug",
    };
    let filter = env
        .get("RUST_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

fn install_crypto_provider() {
    // One rustls provider for reqwest and bollard; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn runtime() -> Result<tokio::runtime::Runtime, PaceError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PaceError::infra(format!("cannot start the async runtime: {e}")))
}

/// The repository root: the git top level of the working directory, else the directory.
pub(crate) fn repo_root() -> Result<PathBuf, PaceError> {
    let cwd =
        std::env::current_dir().map_err(|e| PaceError::config(format!("cannot read the working directory: {e}")))?;
    let out = crate::git::hardened_command(&cwd)
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(&cwd)
        .output();
    Ok(match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => cwd,
    })
}

pub fn dispatch(cli: Cli, env: Env) -> Result<u8, PaceError> {
    install_crypto_provider();
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let printer = Printer::new(verbosity, env.get(env::NO_COLOR).is_some())
        .with_gitlab_sections(env.get(env::GITLAB_CI).is_some());
    match cli.command {
        Some(Command::Validate) => validate(cli.config.as_deref(), &env),
        Some(Command::Doctor) => runtime()?.block_on(crate::app_doctor::doctor(cli.config.as_deref(), &env)),
        Some(Command::Gate { image }) => runtime()?.block_on(gate(cli.config.as_deref(), image, &env)),
        None => {
            if env.is_true(env::PACE_PAUSED) {
                println!("pace is paused (PACE_PAUSED=true): resolve the open escalation, then set PACE_PAUSED=false");
                return Ok(0);
            }
            let Some(day) = cli.day else {
                return Err(PaceError::new(ExitKind::Config, "no day given")
                    .with_hint("run `pace --day N` (or set `PACE_DAY`); `pace --help` lists the commands"));
            };
            run_day(day, cli.retry, cli.dry_run, cli.config.as_deref(), env, printer)
        }
    }
}

fn load(explicit: Option<&Path>, env: &Env) -> Result<crate::config::Loaded, PaceError> {
    let root = repo_root()?;
    let loaded = crate::config::load(&root, explicit, env).map_err(PaceError::from)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    Ok(loaded)
}

fn validate(explicit: Option<&Path>, env: &Env) -> Result<u8, PaceError> {
    let loaded = load(explicit, env)?;
    let s = &loaded.settings;
    println!(
        "{} and {} are valid: {} day(s) planned of a {}-day sprint",
        s.config_path.display(),
        s.plan_path.display(),
        loaded.plan.days.len(),
        s.sprint.duration_days
    );
    Ok(0)
}

fn run_day(
    day: u32,
    retry: bool,
    dry_run: bool,
    explicit: Option<&Path>,
    env: Env,
    printer: Printer,
) -> Result<u8, PaceError> {
    let loaded = load(explicit, &env)?;
    let settings = loaded.settings;
    let plan_day = crate::config::select_day(&settings, &loaded.plan, day, &settings.plan_path)?;
    let platform = platform_for(&settings, dry_run, &env)?;
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
        retry,
        dry_run,
        run_id: run_id(),
        env,
        printer,
        settings,
    };
    let report = runtime()?.block_on(day::run(request, platform, signal()));
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

fn platform_for(
    settings: &crate::config::settings::Settings,
    dry_run: bool,
    env: &Env,
) -> Result<Box<dyn crate::platform::Platform>, PaceError> {
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

/// A run id unique enough to label this run's containers, also on a shared Docker daemon:
/// CI jobs in their own PID namespaces often share a PID (hence the random part), and
/// `remove_run_containers` removes every container with this id. Ends with `-<pid>`.
fn run_id() -> String {
    format!(
        "{}-{:08x}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S"),
        fastrand::u32(..),
        std::process::id()
    )
}

/// Resolves on the first SIGINT or SIGTERM.
async fn signal() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Signal::Interrupt,
        _ = term.recv() => Signal::Terminate,
    }
}

async fn gate(explicit: Option<&Path>, image: Option<String>, env: &Env) -> Result<u8, PaceError> {
    let loaded = load(explicit, env)?;
    let mut settings = loaded.settings;
    if let Some(image) = image {
        settings.sandbox.image = image;
    }
    let ctx = crate::sandbox::SandboxContext {
        env: settings
            .sandbox
            .env
            .iter()
            .filter_map(|n| env.get(n).map(|v| (n.clone(), v.to_string())))
            .collect(),
        settings: settings.sandbox.clone(),
        run_id: run_id(),
        day: 0,
        boundary: crate::boundary::Boundary::for_settings(&settings),
        redactor: day::redactor_for(env, &settings),
    };
    let sandbox = crate::sandbox::Sandbox::connect(ctx)
        .await
        .map_err(|e| PaceError::from_error(&e))?;
    // As at the start of a day: containers left by killed runs go first.
    if let Ok(n) = sandbox.remove_stale(&settings.repo_root).await
        && n > 0
    {
        eprintln!("pace gate: removed {n} stale sandbox container(s) of killed runs");
    }
    let gate_dir = settings.repo_root.join(".pace/gate");
    let command = day::agents::gate::gate_command(settings.tech.build_command.as_deref(), &settings.tech.test_command);
    eprintln!("pace gate: running `{command}` in `{}`", settings.sandbox.image);
    // The suite's output goes to the job log: inert, so it cannot forge pace's sections,
    // overwrite lines or plant hyperlinks (colours go too).
    let lines = std::sync::Mutex::new(crate::inert::LogLines::default());
    let stream = |chunk: &[u8]| {
        if let Ok(mut lines) = lines.lock() {
            let _ = std::io::stdout().lock().write_all(lines.push(chunk).as_bytes());
        }
    };
    let run = day::agents::gate::run_suite(&sandbox, &settings.repo_root, &command, &gate_dir, Some(&stream));
    let result = tokio::select! {
        r = run => r,
        s = signal() => {
            let _ = sandbox.remove_run_containers().await;
            return Ok(if s == Signal::Interrupt { ExitKind::Interrupted.code() } else { ExitKind::Terminated.code() });
        }
    };
    if let Ok(mut lines) = lines.lock() {
        let _ = std::io::stdout().lock().write_all(lines.finish().as_bytes());
    }
    let (outcome, test_run) = result.map_err(|e| PaceError::from_error(&e))?;
    eprintln!(
        "pace gate: exit code {}{}; {} tests, {} failures, {} errors; log: {}",
        outcome.exit_code,
        if outcome.timed_out { " (timed out)" } else { "" },
        test_run.tests,
        test_run.failures,
        test_run.errors,
        gate_dir.join("output.log").display()
    );
    if let Some(hint) = &outcome.network_hint {
        eprintln!("hint: {hint}");
    }
    Ok(u8::try_from(outcome.exit_code.clamp(0, 255)).unwrap_or(1))
}
