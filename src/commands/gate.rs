//! `pace gate [--image IMAGE]`: runs the build and test commands in the sandbox exactly
//! as GATE does (the same context constructor, the same `run_suite`), streaming the
//! output; exits with the suite's exit code.

use std::io::Write;
use std::path::Path;

use super::common;
use crate::day::{self, Signal};
use crate::env::Env;
use crate::error::{ExitKind, PaceError};
use crate::report::printer::{Event, Printer};
use crate::sandbox::{EventSink, Sandbox, SandboxContext};

pub(super) async fn run(explicit: Option<&Path>, image: Option<String>, env: &Env) -> Result<u8, PaceError> {
    let loaded = common::load(explicit, env)?;
    let mut settings = loaded.settings;
    if let Some(image) = image {
        settings.sandbox.image = image;
    }
    // Day 0: `pace gate` belongs to no day of the plan.
    // What the sandbox has to say (a refused option, a kept container) is printed as in a
    // day, through the printer.
    let printer = Printer::quiet();
    let events = EventSink::new(move |event| printer.emit(&Event::Notice(event.to_string())));
    let ctx = SandboxContext::for_run(
        &settings,
        env,
        common::run_id(),
        0,
        day::redactor_for(env, &settings),
        events,
    );
    let sandbox = Sandbox::connect(ctx).await.map_err(|e| PaceError::from_error(&e))?;
    // As at the start of a day: containers left by killed runs go first.
    if let Ok(n) = sandbox.remove_stale(&settings.repo_root).await
        && n > 0
    {
        eprintln!("pace gate: removed {n} stale sandbox container(s) of killed runs");
    }
    let gate_dir = settings.repo_root.join(".pace/gate");
    let command = day::agents::gate::gate_command(settings.tech.build_command.as_deref(), &settings.tech.test_command);
    // The suite's output goes to the job log: inert, so it cannot forge pace's sections,
    // overwrite lines or plant hyperlinks (colours go too).
    let lines = std::sync::Mutex::new(crate::inert::LogLines::default());
    let stream = |chunk: &[u8]| {
        if let Ok(mut lines) = lines.lock() {
            let _ = std::io::stdout().lock().write_all(lines.push(chunk).as_bytes());
        }
    };
    // As before GATE in a day: the dependency set-up, with its network, first; a signal
    // during either removes their containers. `None`: the set-up failed (exit 1).
    let run = async {
        if !setup(&sandbox, &settings).await? {
            return Ok(None);
        }
        eprintln!("pace gate: running `{command}` in `{}`", settings.sandbox.image);
        Ok::<_, PaceError>(Some(
            day::agents::gate::run_suite(&sandbox, &settings.repo_root, &command, &gate_dir, Some(&stream)).await,
        ))
    };
    let result = tokio::select! {
        r = run => r,
        s = common::signal() => {
            let _ = sandbox.remove_run_containers().await;
            return Ok(if s == Signal::Interrupt { ExitKind::Interrupted.code() } else { ExitKind::Terminated.code() });
        }
    };
    // A container dropped on an error is removed in the background: waited for (bounded)
    // before pace exits, or its removal dies with the process.
    let _ = tokio::time::timeout(day::CLEANUP_TIMEOUT, sandbox.settle()).await;
    // The suite's egress proxy (`sandbox.egress_for_tests`): its tally into `.pace/egress.yaml`.
    let egress_file = settings.repo_root.join(".pace").join(day::setup::EGRESS_FILE);
    day::setup::finish_egress(&sandbox, &settings.repo_root, &egress_file).await;
    let result = result?;
    let Some(result) = result else {
        return Ok(1);
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

/// The set-up phase as in a day (with `tech.setup_command` or the stack's default); false
/// when it failed (its reason is printed), an error when the network was the cause.
async fn setup(sandbox: &Sandbox, settings: &crate::config::settings::Settings) -> Result<bool, PaceError> {
    let Some(setup) = crate::sandbox::setup::command_for(&settings.tech, &settings.repo_root) else {
        return Ok(true);
    };
    let dir = settings.repo_root.join(".pace/setup");
    eprintln!(
        "pace gate: set-up `{setup}` (network `{}`)",
        settings.sandbox.setup_network
    );
    let outcome = day::setup::run_in(sandbox, &settings.repo_root, &setup, &dir)
        .await
        .map_err(|e| PaceError::from_error(&e))?;
    eprintln!("pace gate: {}", day::setup::describe(&outcome));
    let verdict = day::setup::verdict(&outcome, &dir.join("output.log"), &settings.sandbox.setup_network)
        .map_err(|e| PaceError::from_error(&e))?;
    if let day::setup::Verdict::Hold(reason) = verdict {
        eprintln!("pace gate: {reason}");
        return Ok(false);
    }
    Ok(true)
}
