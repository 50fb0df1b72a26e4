//! The human summary of a day. `summary.md`, the MR/PR body and the escalation body are
//! all rendered from one [`DaySummary`] so they never disagree.
//!
//! Most of a summary is model or suite text (story, evidence, reasons, file names). Every
//! rendered body leaves through [`inert::markdown`] and every title through
//! [`inert::title`]: redacted, without escapes, with quick actions, HTML, mentions and
//! closing patterns made inert. Code spans around untrusted text use [`inert::code_span`].

use std::fmt::Write as _;

use crate::artifacts::{AgentRecord, RunDecision, Totals};
use crate::inert;
use crate::redact::Redactor;
use crate::schemas::{GateReport, Handoff, ReviewReport, StoryCard};

#[derive(Debug, Clone)]
pub struct DaySummary {
    pub product: String,
    pub day: u32,
    pub target: String,
    pub decision: RunDecision,
    pub reason: String,
    pub attempt: u32,
    pub branch: String,
    pub commit: String,
    pub story: Option<StoryCard>,
    pub handoff: Option<Handoff>,
    pub gate: Option<GateReport>,
    pub sentinel: Option<ReviewReport>,
    pub conduit: Option<ReviewReport>,
    pub agents: Vec<AgentRecord>,
    pub totals: Totals,
    /// Where the full artifacts are: a CI job URL, else the local `.pace/day-N/` path.
    pub artifacts_location: String,
    /// Paths from the sandbox that pace kept out of the repository.
    pub refused: Vec<crate::boundary::Refused>,
    /// What the egress proxy allowed and blocked during the set-up (`egress.yaml`).
    pub egress: Vec<crate::proxy::TallyEntry>,
}

fn icon(decision: &str) -> &'static str {
    match decision {
        "SHIP" | "PASS" => "✅",
        "HOLD" | "FAIL" => "🔴",
        "ADVISORY" | "PARTIAL" => "⚠️",
        "BUDGET" => "💸",
        _ => "⛔",
    }
}

impl DaySummary {
    pub fn title(&self, redactor: &Redactor) -> String {
        format!("PACE Day {}: {}", self.day, inert::title(&self.target, 100, redactor))
    }

    /// `summary.md`.
    pub fn render_markdown(&self, redactor: &Redactor) -> String {
        let mut md = String::new();
        let d = self.decision.as_str();
        let _ = writeln!(md, "# PACE Day {} — {} {d}\n", self.day, icon(d));
        let _ = writeln!(md, "**Product:** {}  ", self.product);
        let _ = writeln!(md, "**Target:** {}  ", one_line(&self.target, 300));
        let _ = writeln!(md, "**Branch:** `{}` at `{}`  ", self.branch, short(&self.commit));
        let _ = writeln!(md, "**Attempt:** {}", self.attempt);
        if !self.reason.is_empty() {
            let _ = writeln!(md, "\n**Reason:** {}", self.reason);
        }
        self.render_sections(&mut md);
        self.render_refused(&mut md);
        inert::markdown(&md, redactor)
    }

    /// What the sandbox's return path refused (summary.md only: the paths come from the
    /// suite and the model, and the list is in the artifacts).
    fn render_refused(&self, md: &mut String) {
        if self.refused.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "\n## Refused from the sandbox\n\nThese paths were written in the sandbox but kept out of the repository (`refused.yaml` has the list):\n"
        );
        for r in self.refused.iter().take(50) {
            let from = match r.from {
                crate::boundary::Origin::Run => "FORGE run",
                crate::boundary::Origin::Gate => "GATE",
            };
            let _ = writeln!(
                md,
                "- `{}` ({from}): {}",
                r.path.replace('`', "'"),
                r.reason.replace('`', "'")
            );
        }
        if self.refused.len() > 50 {
            let _ = writeln!(md, "- ... and {} more", self.refused.len() - 50);
        }
    }

    /// The MR/PR description on SHIP.
    pub fn render_merge_request(&self, redactor: &Redactor) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "Day {} of the sprint shipped by PACE.\n", self.day);
        let _ = writeln!(md, "**Target:** {}", one_line(&self.target, 300));
        self.render_sections(&mut md);
        let _ = writeln!(md, "\nArtifacts: {}", self.artifacts_location);
        inert::markdown(&md, redactor)
    }

    /// The escalation (issue / Jira / `escalation.md`) on HOLD.
    pub fn render_escalation(&self, redactor: &Redactor) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "PACE held Day {} after {} attempt(s) and needs a human.\n",
            self.day, self.attempt
        );
        let _ = writeln!(md, "**Hold reason:** {}\n", self.reason);
        let _ = writeln!(md, "**Target:** {}", one_line(&self.target, 300));
        let _ = writeln!(md, "**Branch:** `{}` at `{}`", self.branch, short(&self.commit));
        self.render_sections(&mut md);
        let _ = writeln!(md, "\n## What to do\n");
        let _ = writeln!(
            md,
            "Push a fix to `{}`, then re-run the day with `pace --day {} --retry` (in CI: run the pipeline with `DAY={}` and `RETRY=true`).",
            self.branch, self.day, self.day
        );
        let _ = writeln!(md, "\nArtifacts: {}", self.artifacts_location);
        inert::markdown(&md, redactor)
    }

    /// The sections every body shares, in this order: story card, FORGE handoff, GATE, the
    /// two reviews, the agents table. Each is left out when its agent did not report.
    fn render_sections(&self, md: &mut String) {
        if let Some(story) = &self.story {
            render_story(md, story);
        }
        if let Some(h) = &self.handoff {
            render_handoff(md, h);
        }
        if let Some(g) = &self.gate {
            render_gate(md, g);
        }
        for review in [&self.sentinel, &self.conduit].into_iter().flatten() {
            render_review(md, review);
        }
        if let Some(line) = crate::proxy::describe_tally(&self.egress) {
            // Refused names come from the set-up's requests: shown as code, never as links.
            let _ = writeln!(
                md,
                "\n**Network (set-up, `sandbox.egress`):** {} (`egress.yaml` has every host)",
                inert::code_span(&line)
            );
        }
        if !self.agents.is_empty() {
            render_agents(md, &self.agents, &self.totals);
        }
    }
}

fn render_story(md: &mut String, story: &StoryCard) {
    let _ = writeln!(md, "\n## Story card\n\n**{}**\n", one_line(&story.story, 500));
    let _ = writeln!(md, "| Given | When | Then |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| {} | {} | {} |\n",
        cell(&story.given),
        cell(&story.when),
        cell(&story.then)
    );
    let _ = writeln!(md, "Acceptance criteria:");
    for ac in &story.acceptance {
        let _ = writeln!(md, "- {}", one_line(ac, 300));
    }
    if !story.out_of_scope.is_empty() {
        let _ = writeln!(
            md,
            "\nOut of scope: {}",
            story
                .out_of_scope
                .iter()
                .map(|s| one_line(s, 120))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

fn render_handoff(md: &mut String, h: &Handoff) {
    let _ = writeln!(md, "\n## FORGE handoff\n\n{}", one_line(&h.built, 600));
    if !h.files_changed.is_empty() {
        let _ = writeln!(
            md,
            "\nFiles changed: {}",
            h.files_changed
                .iter()
                .map(|f| inert::code_span(f))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !h.known_gaps.is_empty() {
        let _ = writeln!(md, "\nKnown gaps: {}", h.known_gaps.join("; "));
    }
}

fn render_gate(md: &mut String, g: &GateReport) {
    let d = g.gate_decision.as_str();
    let t = &g.test_run;
    let _ = writeln!(md, "\n## GATE — {} {d}\n", icon(d));
    let status = if t.timed_out {
        "timed out".to_string()
    } else {
        format!("exit code {}", t.exit_code)
    };
    let _ = writeln!(
        md,
        "Tests: {} → {status}; {} tests, {} failures, {} errors, {} skipped\n",
        inert::code_span(&one_line(&t.command, 200)),
        t.tests,
        t.failures,
        t.errors,
        t.skipped
    );
    for c in &g.criteria_results {
        let _ = writeln!(
            md,
            "- {} {} — *{}*",
            icon(&c.result),
            one_line(&c.criterion, 300),
            one_line(&c.evidence, 300)
        );
    }
    list(md, "Blockers", &g.blockers);
    list(md, "Deferred", &g.deferred);
    if !g.hold_reason.is_empty() {
        let _ = writeln!(md, "\nHold reason: {}", g.hold_reason);
    }
}

/// SENTINEL's or CONDUIT's report.
fn render_review(md: &mut String, review: &ReviewReport) {
    let d = review.decision.as_str();
    let _ = writeln!(md, "\n## {} — {} {d}\n", review.agent, icon(d));
    for f in &review.findings {
        let _ = writeln!(
            md,
            "- {} {} — *{}*",
            icon(&f.result),
            one_line(&f.check, 200),
            one_line(&f.evidence, 300)
        );
    }
    list(md, "Advisories", &review.advisories);
    list(md, "Blockers", &review.blockers);
    if !review.hold_reason.is_empty() {
        let _ = writeln!(md, "\nHold reason: {}", review.hold_reason);
    }
}

/// One row per agent run, then the day's totals.
fn render_agents(md: &mut String, agents: &[AgentRecord], t: &Totals) {
    let _ = writeln!(
        md,
        "\n## Agents\n\n| Agent | Decision | Time | Input tokens | Output tokens | Cache read | Cost |\n|---|---|---|---|---|---|---|"
    );
    for a in agents {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1}s | {} | {} | {} | ${:.4} |",
            a.name,
            a.decision.as_deref().unwrap_or("—"),
            a.duration_ms as f64 / 1000.0,
            a.input_tokens,
            a.output_tokens,
            a.cache_read_tokens,
            a.cost_usd
        );
    }
    let _ = writeln!(
        md,
        "| **Total** | | {:.1}s | {} | {} | {} | ${:.4} |",
        t.duration_ms as f64 / 1000.0,
        t.input_tokens,
        t.output_tokens,
        t.cache_read_tokens,
        t.cost_usd
    );
}

fn list(md: &mut String, title: &str, items: &[String]) {
    if !items.is_empty() {
        let _ = writeln!(md, "\n{title}:");
        for i in items {
            let _ = writeln!(md, "- {}", one_line(i, 300));
        }
    }
}

/// One line, at most `max` characters (platform titles reject newlines).
pub use crate::text::one_line;

fn cell(text: &str) -> String {
    one_line(text, 200).replace('|', "\\|")
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas::{CriterionResult, Decision, Finding, TestRun};

    fn summary(decision: RunDecision, reason: &str) -> DaySummary {
        DaySummary {
            product: "Greeter".into(),
            day: 2,
            target: "Add a `--shout` option\nthat prints in capitals".into(),
            decision,
            reason: reason.into(),
            attempt: 2,
            branch: "sprint/demo".into(),
            commit: "0123456789abcdef0123".into(),
            story: Some(StoryCard {
                day: 2,
                agent: "PRIME".into(),
                story: "As a user, when I shout, I see capitals.".into(),
                given: "the greeter".into(),
                when: "I run `greet --shout Ada`".into(),
                then: "it prints `HELLO, ADA!` | loudly".into(),
                acceptance: vec!["prints HELLO, ADA!".into()],
                out_of_scope: vec!["colours".into()],
            }),
            handoff: None,
            gate: Some(GateReport {
                day: 2,
                agent: "GATE".into(),
                criteria_results: vec![CriterionResult {
                    criterion: "prints HELLO, ADA!".into(),
                    result: "FAIL".into(),
                    evidence: "FAIL test_shout".into(),
                }],
                blockers: vec![],
                deferred: vec![],
                gate_decision: Decision::Hold,
                hold_reason: "the test command exited with 1".into(),
                test_run: TestRun {
                    command: "sh tests/run.sh".into(),
                    exit_code: 1,
                    tests: 2,
                    failures: 1,
                    ..TestRun::default()
                },
            }),
            sentinel: Some(ReviewReport {
                day: 2,
                agent: "SENTINEL".into(),
                findings: vec![Finding {
                    check: "input handling".into(),
                    result: "PASS".into(),
                    evidence: "quoted".into(),
                }],
                advisories: vec![],
                blockers: vec![],
                decision: Decision::Ship,
                hold_reason: String::new(),
            }),
            conduit: None,
            agents: vec![AgentRecord {
                name: "GATE".into(),
                decision: Some("HOLD".into()),
                duration_ms: 1500,
                input_tokens: 900,
                output_tokens: 80,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                cost_usd: 0.0031,
            }],
            totals: Totals {
                duration_ms: 1500,
                input_tokens: 900,
                output_tokens: 80,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                cost_usd: 0.0031,
            },
            refused: Vec::new(),
            egress: Vec::new(),
            artifacts_location: "https://gitlab.example.com/g/p/-/jobs/7/artifacts/browse/.pace/day-2/".into(),
        }
    }

    #[test]
    fn summary_merge_request_and_escalation_share_their_sections() {
        let r = Redactor::default();
        let hold = summary(RunDecision::Hold, "GATE: the test command exited with 1");
        insta::assert_snapshot!("summary_md", hold.render_markdown(&r));
        insta::assert_snapshot!("escalation_body", hold.render_escalation(&r));
        insta::assert_snapshot!(
            "merge_request_body",
            summary(RunDecision::Ship, "").render_merge_request(&r)
        );
        assert_eq!(
            hold.title(&r),
            "PACE Day 2: Add a `--shout` option that prints in capitals"
        );
    }

    #[test]
    fn the_egress_tally_is_one_line_in_every_body_and_its_names_stay_code() {
        use crate::proxy::TallyEntry;
        let r = Redactor::default();
        let mut s = summary(RunDecision::Ship, "");
        let entry = |host: &str, port, allowed, count| TallyEntry {
            host: host.into(),
            port,
            allowed,
            count,
        };
        s.egress = vec![
            entry("a.example", 443, true, 30),
            entry("b.example", 80, true, 1),
            entry("evil.example", 443, false, 3),
            entry("x`@all<b>[a](http://e)", 0, false, 1),
        ];
        for body in [
            s.render_markdown(&r),
            s.render_merge_request(&r),
            s.render_escalation(&r),
        ] {
            assert!(
                body.contains("**Network (set-up, `sandbox.egress`):** ``2 hosts allowed (31 requests), 2 blocked: evil.example:443 ×3, x`@\u{200b}all<\u{200b}b>[a](http://e) ×1``"),
                "{body}"
            );
        }
        s.egress.clear();
        assert!(!s.render_merge_request(&r).contains("Network"));
    }

    /// A model (or a prompt-injected repository) that writes quick actions, escapes,
    /// HTML and mentions into every field it controls: the bodies show the text, and none
    /// of it acts.
    #[test]
    fn hostile_model_text_reaches_the_bodies_inert() {
        let r = Redactor::new(vec!["glpat-hostile-secret-1234".into()]);
        let evil = "ok\n/merge\n/approve\n\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ <!-- hidden --> @all Closes #1 glpat-hostile-secret-1234";
        let mut s = summary(RunDecision::Hold, evil);
        s.target = format!("/target_branch main\n{evil}");
        if let Some(story) = s.story.as_mut() {
            story.story = evil.into();
            story.acceptance = vec![evil.into()];
        }
        s.handoff = Some(Handoff {
            day: 2,
            agent: "FORGE".into(),
            commit: String::new(),
            approach: String::new(),
            risk: String::new(),
            dependencies: String::new(),
            built: format!("/assign @mallory\n{evil}"),
            edge_cases_tested: vec![],
            known_gaps: vec![evil.into()],
            iterations_used: 1,
            tdd_red_phase_confirmed: true,
            forge_cost_usd: 0.0,
            files_changed: vec!["src/a`b.rs".into(), "<img src=x>".into()],
        });
        if let Some(g) = s.gate.as_mut() {
            g.hold_reason = evil.into();
            g.test_run.command = "sh -c 'echo `id`'".into();
        }
        let bodies = [
            s.render_markdown(&r),
            s.render_escalation(&r),
            s.render_merge_request(&r),
        ];
        for body in &bodies {
            for line in body.lines() {
                assert!(!line.trim_start().starts_with('/'), "quick action in {line:?}");
            }
            assert!(
                !body.contains('\x1b') && !body.contains("<!--") && !body.contains("@all"),
                "{body:?}"
            );
            assert!(
                !body.contains("glpat-hostile") && !body.contains("Closes #1"),
                "{body:?}"
            );
            assert!(body.contains("``src/a`b.rs``"), "{body:?}");
        }
        insta::assert_snapshot!(
            "hostile_escalation_body",
            bodies[1].replace(crate::inert::ZWSP, "⟨zwsp⟩")
        );
        let title = s.title(&r);
        assert!(!title.contains('\n') && !title.contains('\x1b'), "{title:?}");
    }
}
