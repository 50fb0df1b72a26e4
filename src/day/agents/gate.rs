//! GATE: runs the build and test commands in the sandbox; the suite's exit status and the
//! JUnit counts decide whether the tests pass, the model maps evidence to each acceptance
//! criterion. The full output goes to `gate/output.log`; the model sees head and tail.

use std::path::Path;

use super::GATE;
use crate::artifacts::write_yaml;
use crate::day::DayError;
use crate::day::context::{AskError, DayContext, render, untrusted};
use crate::report::junit;
use crate::sandbox::{RunOutcome, RunRequest};
use crate::schemas::{
    CriterionResult, Decision, GateMapping, GateReport, Handoff, StoryCard, TestRun, parse_gate_criteria,
};
use crate::text::head_tail;

const SYSTEM: &str = include_str!("prompts/gate.md");

/// The shell command GATE runs: the build (if any) then the tests.
pub fn gate_command(build: Option<&str>, test: &str) -> String {
    match build.map(str::trim).filter(|b| !b.is_empty()) {
        Some(build) => format!("( {build} ) && ( {test} )"),
        None => test.to_string(),
    }
}

/// Runs the suite exactly as GATE does; also used by `pace gate`.
pub async fn run_suite(
    sandbox: &crate::sandbox::Sandbox,
    repo: &Path,
    command: &str,
    gate_dir: &Path,
    on_output: Option<crate::sandbox::OutputSink<'_>>,
) -> Result<(RunOutcome, TestRun), crate::sandbox::SandboxError> {
    let log = gate_dir.join("output.log");
    let collected_dir = gate_dir.join("collected");
    // The sandbox writes `output.log` and the collected files below `gate_dir`: it is
    // created (or found) here without following links, so a planted `gate -> /etc` is
    // refused before anything is written through it.
    crate::safe_write::create_dir_all(repo, gate_dir).map_err(|e| crate::sandbox::SandboxError::Io {
        path: gate_dir.to_path_buf(),
        source: e.into(),
    })?;
    let outcome = sandbox
        .run(RunRequest {
            repo,
            command: command.to_string(),
            output_log: &log,
            collect_into: &collected_dir,
            on_output,
        })
        .await?;
    let test_run = test_run_from(repo, command, &outcome, &gate_dir.join("junit.xml"));
    Ok((outcome, test_run))
}

fn test_run_from(repo: &Path, command: &str, outcome: &RunOutcome, junit_path: &Path) -> TestRun {
    let reports = junit::read_reports(&outcome.collected);
    let counts = reports.counts();
    match &counts {
        Some(_) => merge_junit(repo, &reports.texts, junit_path),
        None => {
            let xml = junit::synthesize(
                command,
                outcome.exit_code,
                outcome.timed_out,
                outcome.duration.as_secs_f64(),
                &outcome.tail,
            );
            let _ = junit::write_synthesized(repo, junit_path, &xml);
        }
    }
    let counts = counts.unwrap_or(junit::JunitCounts {
        tests: 1,
        failures: u64::from(outcome.exit_code != 0 || outcome.timed_out),
        errors: 0,
        skipped: 0,
    });
    let mut notes = reports.skipped;
    if outcome.timed_out {
        notes.push(format!("timed out after {} s", outcome.duration.as_secs()));
    }
    if outcome.oom_killed {
        notes.push("killed: out of memory (exit 137); raise `sandbox.memory`".to_string());
    }
    if outcome.exit_code != 0 && output_says_disk_full(outcome) {
        notes.push(
            "the container ran out of disk space (`No space left on device`); free space on the Docker daemon's disk or make the suite write less"
                .to_string(),
        );
    }
    if let Some(hint) = &outcome.network_hint {
        notes.push(hint.clone());
    }
    TestRun {
        command: command.to_string(),
        exit_code: outcome.exit_code,
        timed_out: outcome.timed_out,
        tests: counts.tests,
        failures: counts.failures,
        errors: counts.errors,
        skipped: counts.skipped,
        duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// The suite's output (head or tail) reports a full filesystem.
fn output_says_disk_full(outcome: &RunOutcome) -> bool {
    const ENOSPC: &str = "No space left on device";
    outcome.tail.contains(ENOSPC) || outcome.head.contains(ENOSPC)
}

/// `gate/junit.xml` holds the suite's own reports (several files become one `<testsuites>`).
fn merge_junit(repo: &Path, texts: &[String], target: &Path) {
    let mut suites = Vec::new();
    for text in texts {
        let body = match text.find("?>") {
            Some(i) if text.trim_start().starts_with("<?xml") => text[i + 2..].trim().to_string(),
            _ => text.trim().to_string(),
        };
        suites.push(body);
    }
    let xml = if suites.len() == 1 {
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", suites[0])
    } else {
        let inner: Vec<String> = suites
            .iter()
            .map(|s| {
                s.trim_start_matches("<testsuites>")
                    .trim_end_matches("</testsuites>")
                    .to_string()
            })
            .collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n{}\n</testsuites>\n",
            inner.join("\n")
        )
    };
    let _ = junit::write_synthesized(repo, target, &xml);
}

/// `ci`: the CI pipeline's result for the pushed commit (`platform.wait_for_ci`), evidence
/// for the model next to the sandbox run.
pub async fn run(
    ctx: &DayContext,
    story: &StoryCard,
    handoff: &Handoff,
    ci: Option<&str>,
    attempt: u32,
) -> Result<GateReport, DayError> {
    let timer = ctx.start_agent(GATE, attempt);
    let command = gate_command(
        ctx.settings.tech.build_command.as_deref(),
        &ctx.settings.tech.test_command,
    );
    let (outcome, test_run) = match run_suite(
        &ctx.sandbox,
        &ctx.settings.repo_root,
        &command,
        &ctx.day_dir.gate_dir(),
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            ctx.finish_agent_with(timer, Some("ERROR"), vec![e.to_string()]);
            return Err(e.into());
        }
    };
    ctx.record_refused(outcome.refused.clone());
    let system = render(SYSTEM, &[("product", &ctx.settings.product.name)]);
    let user = user_message(ctx, story, handoff, &outcome, &test_run, ci);
    let schema = crate::llm::ResponseSchema {
        name: "gate_criteria".into(),
        schema: crate::schemas::answer_schema::gate_criteria(),
    };
    let mapped = ctx.ask_validated(GATE, system, user, schema, parse_gate_criteria).await;
    let report = match mapped {
        Ok(mapping) => decide(ctx.plan.day, story, mapping, test_run),
        Err(AskError::Invalid(reason)) => {
            let mut r = decide(ctx.plan.day, story, GateMapping::default(), test_run);
            r.gate_decision = Decision::Hold;
            r.hold_reason = format!("GATE could not map the evidence: {reason}");
            r
        }
        Err(AskError::Llm(e)) => {
            ctx.finish_agent_with(timer, Some("ERROR"), vec![e.to_string()]);
            return Err(e.into());
        }
    };
    write_yaml(&ctx.day_dir.gate_report(), &report, &ctx.redactor)?;
    ctx.finish_agent_with(timer, Some(report.gate_decision.as_str()), gate_detail(&report));
    Ok(report)
}

/// The verdict: the suite decides pass/fail; every acceptance criterion needs a PASS (or a
/// PARTIAL that is deferred); the model's opinion of the tests never overrules the exit code.
pub fn decide(day: u32, story: &StoryCard, mapping: GateMapping, test_run: TestRun) -> GateReport {
    let GateMapping {
        criteria,
        blockers,
        deferred,
        hold_reason: model_reason,
    } = mapping;
    let reasons: Vec<String> = [
        suite_failure(&test_run),
        criteria_listed(
            "acceptance criteria not met",
            criteria.iter().filter(|c| c.result == "FAIL"),
        ),
        // A PARTIAL is acceptable only with the missing part named in `deferred` (the
        // prompt asks for it to map to the card's `out_of_scope`).
        criteria_listed(
            "only partly met, with nothing deferred",
            criteria.iter().filter(|c| c.result == "PARTIAL" && deferred.is_empty()),
        ),
        missing_evidence(story, &criteria),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (gate_decision, hold_reason) = match (reasons.is_empty(), model_reason.is_empty()) {
        (true, _) => (Decision::Ship, String::new()),
        (false, true) => (Decision::Hold, reasons.join(". ")),
        (false, false) => (Decision::Hold, format!("{}. {model_reason}", reasons.join(". "))),
    };
    GateReport {
        day,
        agent: GATE.into(),
        criteria_results: criteria,
        blockers,
        deferred,
        gate_decision,
        hold_reason,
        test_run,
    }
}

/// Why the suite's run fails the day, when it does: the exit code, a timeout or the JUnit
/// failures, with pace's note on the run.
fn suite_failure(test_run: &TestRun) -> Option<String> {
    if test_run.passed() {
        return None;
    }
    let what = if test_run.timed_out {
        format!("the test command timed out after {} s", test_run.duration_ms / 1000)
    } else if test_run.exit_code != 0 {
        format!("the test command exited with {}", test_run.exit_code)
    } else {
        format!(
            "JUnit reports {} failure(s) and {} error(s)",
            test_run.failures, test_run.errors
        )
    };
    Some(match &test_run.note {
        Some(note) => format!("{what} ({note})"),
        None => what,
    })
}

/// `what: a; b` for the criteria given, or nothing when there are none.
fn criteria_listed<'a>(what: &str, criteria: impl Iterator<Item = &'a CriterionResult>) -> Option<String> {
    let names: Vec<&str> = criteria.map(|c| c.criterion.as_str()).collect();
    (!names.is_empty()).then(|| format!("{what}: {}", names.join("; ")))
}

/// The card's acceptance criteria that the mapping does not mention at all.
fn missing_evidence(story: &StoryCard, criteria: &[CriterionResult]) -> Option<String> {
    let missing: Vec<&str> = story
        .acceptance
        .iter()
        .filter(|ac| !criteria.iter().any(|c| normalise(&c.criterion) == normalise(ac)))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| format!("no evidence for: {}", missing.join("; ")))
}

fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
        .trim_end_matches('.')
        .to_string()
}

fn user_message(
    ctx: &DayContext,
    story: &StoryCard,
    handoff: &Handoff,
    outcome: &RunOutcome,
    t: &TestRun,
    ci: Option<&str>,
) -> String {
    let story_yaml = serde_saphyr::to_string(story).unwrap_or_default();
    let handoff_yaml = serde_saphyr::to_string(handoff).unwrap_or_default();
    let output = if outcome.output_bytes as usize <= outcome.head.len() + outcome.tail.len() {
        format!("{}{}", outcome.head, outcome.tail)
    } else {
        format!(
            "{}\n[... {} bytes omitted; the full log is gate/output.log ...]\n{}",
            outcome.head,
            outcome.output_bytes as usize - outcome.head.len() - outcome.tail.len(),
            outcome.tail
        )
    };
    let mut parts = vec![
        format!("Story card:\n```yaml\n{story_yaml}```"),
        format!("FORGE handoff:\n```yaml\n{handoff_yaml}```"),
        format!(
            "Test run (decided by pace, not by you): `{}` → exit code {}{}; JUnit: {} tests, {} failures, {} errors, {} skipped.",
            t.command,
            t.exit_code,
            if t.timed_out { " (timed out)" } else { "" },
            t.tests,
            t.failures,
            t.errors,
            t.skipped
        ),
        format!(
            "Test output (head and tail):\n{}",
            untrusted("test output", &head_tail(&output, 6000, 10000))
        ),
    ];
    if let Some(ci) = ci {
        parts.push(format!("CI pipeline of the pushed commit:\n{}", untrusted("ci", ci)));
    }
    if let Some(eng) = ctx.context_doc("engineering.md") {
        parts.push(format!("Engineering context:\n{eng}"));
    }
    parts.push(format!(
        "Map the evidence to each acceptance criterion for Day {}.",
        ctx.plan.day
    ));
    parts.join("\n\n")
}

/// GATE's job-log detail: the suite's result, then why it holds.
fn gate_detail(report: &GateReport) -> Vec<String> {
    let t = &report.test_run;
    let mut lines = vec![format!(
        "suite `{}` exited {}{}: {} tests, {} failures, {} errors, {} skipped",
        t.command,
        t.exit_code,
        if t.timed_out { " (timed out)" } else { "" },
        t.tests,
        t.failures,
        t.errors,
        t.skipped
    )];
    if !report.hold_reason.is_empty() {
        lines.push(format!("hold: {}", report.hold_reason));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story() -> StoryCard {
        StoryCard {
            day: 1,
            agent: "PRIME".into(),
            story: "s".into(),
            given: "g".into(),
            when: "w".into(),
            then: "t".into(),
            acceptance: vec!["prints hello".into(), "exits 0".into()],
            out_of_scope: vec![],
        }
    }

    fn pass(c: &str) -> CriterionResult {
        CriterionResult {
            criterion: c.into(),
            result: "PASS".into(),
            evidence: "ok".into(),
        }
    }

    fn mapping(criteria: Vec<CriterionResult>) -> GateMapping {
        GateMapping {
            criteria,
            ..GateMapping::default()
        }
    }

    fn green() -> TestRun {
        TestRun {
            command: "t".into(),
            tests: 2,
            ..TestRun::default()
        }
    }

    #[test]
    fn failing_suite_holds_even_if_every_criterion_passes() {
        let run = TestRun {
            exit_code: 1,
            ..green()
        };
        let r = decide(1, &story(), mapping(vec![pass("prints hello"), pass("exits 0")]), run);
        assert_eq!(r.gate_decision, Decision::Hold);
        assert!(r.hold_reason.contains("exited with 1"), "{}", r.hold_reason);
    }

    #[test]
    fn green_suite_and_all_criteria_ship() {
        let r = decide(
            1,
            &story(),
            mapping(vec![pass("Prints hello."), pass("exits 0")]),
            green(),
        );
        assert_eq!(r.gate_decision, Decision::Ship);
    }

    #[test]
    fn missing_criterion_holds() {
        let r = decide(1, &story(), mapping(vec![pass("prints hello")]), green());
        assert_eq!(r.gate_decision, Decision::Hold);
        assert!(r.hold_reason.contains("no evidence for: exits 0"));
    }

    #[test]
    fn no_evidence_at_all_holds_and_partial_needs_a_deferral() {
        let r = decide(1, &story(), mapping(vec![]), green());
        assert_eq!(r.gate_decision, Decision::Hold);
        let partial = CriterionResult {
            criterion: "exits 0".into(),
            result: "PARTIAL".into(),
            evidence: "x".into(),
        };
        let r = decide(
            1,
            &story(),
            mapping(vec![pass("prints hello"), partial.clone()]),
            green(),
        );
        assert_eq!(r.gate_decision, Decision::Hold, "{}", r.hold_reason);
        let deferred = GateMapping {
            criteria: vec![pass("prints hello"), partial],
            deferred: vec!["exit codes for errors".into()],
            ..GateMapping::default()
        };
        assert_eq!(decide(1, &story(), deferred, green()).gate_decision, Decision::Ship);
    }

    #[test]
    fn junit_failures_hold_with_exit_zero() {
        let run = TestRun { failures: 2, ..green() };
        let r = decide(1, &story(), mapping(vec![pass("prints hello"), pass("exits 0")]), run);
        assert_eq!(r.gate_decision, Decision::Hold);
    }

    /// A sparse 2 GiB `junit.xml` is not read; the gate report's note says so, and the
    /// exit status decides (a synthesized report takes its place).
    #[test]
    fn an_oversized_junit_is_named_in_the_note_and_the_exit_status_counts() {
        let dir = tempfile::tempdir().unwrap();
        let huge = dir.path().join("junit.xml");
        let file = std::fs::File::create(&huge).unwrap();
        std::io::Write::write_all(&mut &file, br#"<testsuite tests="9000" failures="0">"#).unwrap();
        file.set_len(2 << 30).unwrap();
        let outcome = RunOutcome {
            exit_code: 1,
            timed_out: false,
            oom_killed: false,
            duration: std::time::Duration::from_secs(1),
            head: String::new(),
            tail: "FAIL".into(),
            output_bytes: 4,
            collected: vec![huge],
            network_hint: None,
            refused: Vec::new(),
        };
        let target = dir.path().join("gate/junit.xml");
        let run = test_run_from(dir.path(), "t", &outcome, &target);
        assert_eq!((run.tests, run.failures), (1, 1));
        let note = run.note.unwrap_or_default();
        assert!(note.contains("(2147483648 bytes) was not read"), "{note}");
        assert!(std::fs::metadata(&target).unwrap().len() < 4096);
    }

    #[test]
    fn build_runs_before_tests() {
        assert_eq!(gate_command(Some("make"), "make test"), "( make ) && ( make test )");
        assert_eq!(gate_command(Some(" "), "t"), "t");
    }
}
