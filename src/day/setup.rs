//! The day's dependency set-up phase (see `sandbox::setup`): run before FORGE's first
//! command (and again before GATE when `forge.setup_on_change` is on and FORGE changed a
//! lockfile). A failing set-up holds the day with its log's tail; one that failed to reach
//! the network is an infrastructure error (exit 4).

use std::path::{Path, PathBuf};

use crate::day::DayError;
use crate::day::context::DayContext;
use crate::report::printer::Event;
use crate::sandbox::setup::{SetupOutcome, SetupStatus, command_for};
use crate::sandbox::{Sandbox, SandboxError};

/// Lines of the log's tail quoted in the hold reason.
const TAIL_LINES: usize = 20;

/// What the day does after the set-up.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing to set up, skipped or succeeded: go on.
    Ready,
    /// The set-up failed: the day holds with this reason.
    Hold(String),
}

/// Runs the set-up phase of the day (`None` command: nothing to do).
pub async fn run(ctx: &DayContext) -> Result<Verdict, DayError> {
    let repo = &ctx.settings.repo_root;
    let Some(command) = command_for(&ctx.settings.tech, repo) else {
        return Ok(Verdict::Ready);
    };
    let dir = ctx.day_dir.path("setup");
    let outcome = run_in(&ctx.sandbox, repo, &command, &dir).await?;
    ctx.emit(&Event::Info(describe(&outcome)));
    verdict(&outcome, &dir.join("output.log"), &ctx.settings.sandbox.setup_network).map_err(DayError::Sandbox)
}

/// Runs the set-up with its output in `dir/output.log` (shared with `pace gate`).
pub async fn run_in(sandbox: &Sandbox, repo: &Path, command: &str, dir: &Path) -> Result<SetupOutcome, SandboxError> {
    crate::safe_write::create_dir_all(repo, dir).map_err(|e| SandboxError::Io {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    let outcome = sandbox.setup(repo, command, &dir.join("output.log"), None).await?;
    if let Some(tally) = &outcome.egress {
        record_egress(repo, &dir.with_file_name(EGRESS_FILE), tally)?;
    }
    Ok(outcome)
}

/// The egress proxy's tally beside the set-up's directory: `.pace/day-N/egress.yaml`
/// (`.pace/egress.yaml` for `pace gate`).
pub const EGRESS_FILE: &str = "egress.yaml";

/// Stops the egress sidecar that FORGE and GATE used (`sandbox.egress_for_tests`) and adds
/// its tally to `path` (the day's `egress.yaml`). A failure is logged: the day's result
/// does not depend on it, and the run's cleanup removes what is left.
pub async fn finish_egress(sandbox: &Sandbox, repo: &Path, path: &Path) {
    match sandbox.stop_egress().await {
        Ok(Some(tally)) => {
            if let Err(e) = record_egress(repo, path, &tally) {
                tracing::warn!(error = %e, "egress: cannot write the tally");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "egress: cannot stop the proxy"),
    }
}

/// Writes the run's `tally` (the sandbox adds up a day's proxies) to `path`, replacing
/// what is there: an `egress.yaml` in the checkout is an earlier run's or the
/// repository's own, and neither describes this run.
fn record_egress(repo: &Path, path: &Path, tally: &[crate::proxy::TallyEntry]) -> Result<(), SandboxError> {
    crate::safe_write::write(repo, path, crate::proxy::render_tally(tally).as_bytes()).map_err(|e| SandboxError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// One line for the terminal.
pub fn describe(outcome: &SetupOutcome) -> String {
    match &outcome.status {
        SetupStatus::Skipped => format!(
            "set-up `{}` skipped: lockfiles unchanged ({:.1} s)",
            outcome.command,
            outcome.duration.as_secs_f64()
        ),
        SetupStatus::Ran => format!(
            "set-up `{}` done in {:.1} s",
            outcome.command,
            outcome.duration.as_secs_f64()
        ),
        SetupStatus::Failed { exit_code, .. } => {
            format!("set-up `{}` failed with exit code {exit_code}", outcome.command)
        }
    }
}

/// A failure: the hold reason, or the infrastructure error when the network was the cause.
pub fn verdict(outcome: &SetupOutcome, log: &Path, network: &str) -> Result<Verdict, SandboxError> {
    let SetupStatus::Failed {
        exit_code,
        timed_out,
        tail,
        network: network_failed,
    } = &outcome.status
    else {
        return Ok(Verdict::Ready);
    };
    let tail = last_lines(tail, TAIL_LINES);
    // Refused by the egress proxy: the allowlist is the cause, not the network.
    let blocked: Vec<&crate::proxy::TallyEntry> = outcome.egress.iter().flatten().filter(|e| !e.allowed).collect();
    if *network_failed && blocked.is_empty() {
        return Err(SandboxError::SetupNetwork {
            command: outcome.command.clone(),
            log: log.to_path_buf(),
            network: network.to_string(),
            tail: crate::inert::fenced(&tail, "text"),
        });
    }
    let why = if *timed_out {
        "timed out (`sandbox.timeout`)".to_string()
    } else {
        format!("failed with exit code {exit_code}")
    };
    let egress = if blocked.is_empty() {
        String::new()
    } else {
        let hosts: Vec<String> = blocked
            .iter()
            .take(10)
            .map(|e| format!("{}:{}", e.host, e.port))
            .collect();
        format!(
            "\nThe egress proxy refused {} (`sandbox.egress`; every request is in `egress.yaml`): add the hosts the set-up needs to `sandbox.egress`.",
            crate::inert::code_span(&hosts.join(", "))
        )
    };
    // The output is the container's: fenced (and without controls) so that it cannot
    // forge sections of escalation.md or the MR/PR body it ends up in.
    Ok(Verdict::Hold(format!(
        "the dependency set-up `{}` {why}; the end of `{}`:\n{}{egress}\nhint: fix the command (`tech.setup_command` in pace.config.yaml; `false` turns the phase off) or the manifest it installs from, then re-run the day",
        outcome.command,
        shown(log),
        crate::inert::fenced(&tail, "text"),
    )))
}

fn shown(log: &Path) -> String {
    let parts: Vec<_> = log.components().collect();
    let start = parts.iter().position(|c| c.as_os_str() == ".pace").unwrap_or(0);
    parts[start..].iter().collect::<PathBuf>().display().to_string()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(network: bool) -> SetupOutcome {
        SetupOutcome {
            command: "npm ci".into(),
            hash: "h".into(),
            status: SetupStatus::Failed {
                exit_code: 1,
                timed_out: false,
                tail: (1..=30).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n"),
                network,
            },
            duration: std::time::Duration::from_secs(1),
            egress: None,
        }
    }

    #[test]
    fn a_network_failure_behind_the_proxy_holds_naming_the_blocked_hosts() {
        let log = Path::new("/r/.pace/day-1/setup/output.log");
        let mut outcome = failed(true);
        outcome.egress = Some(vec![crate::proxy::TallyEntry {
            host: "registry.example".into(),
            port: 443,
            allowed: false,
            count: 2,
        }]);
        let Ok(Verdict::Hold(reason)) = verdict(&outcome, log, "bridge") else {
            panic!("not a hold")
        };
        assert!(
            reason.contains("The egress proxy refused `registry.example:443` (`sandbox.egress`"),
            "{reason}"
        );
        outcome.egress = Some(Vec::new());
        assert!(
            verdict(&outcome, log, "bridge").is_err(),
            "no refusal: the network's fault"
        );
    }

    #[test]
    fn a_failure_holds_with_the_tail_and_a_network_failure_is_infrastructure() {
        let log = Path::new("/r/.pace/day-1/setup/output.log");
        let Ok(Verdict::Hold(reason)) = verdict(&failed(false), log, "bridge") else {
            panic!("expected a hold");
        };
        assert!(reason.contains("line 30") && !reason.contains("line 10\n"), "{reason}");
        assert!(reason.contains("```text\nline 11\n"), "the tail is fenced: {reason}");
        assert!(reason.contains(".pace/day-1/setup/output.log"), "{reason}");
        assert!(reason.contains("tech.setup_command"), "{reason}");
        let err = verdict(&failed(true), log, "none").unwrap_err();
        assert_eq!(crate::error::exit_kind(&err), crate::error::ExitKind::Infrastructure);
        let hint = crate::error::Hint::hint(&err).unwrap_or_default();
        assert!(hint.contains("sandbox.setup_network"), "{hint}");
    }
}
