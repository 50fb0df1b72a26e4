//! SENTINEL (security/SRE) and CONDUIT (CI/CD) review the day's diff: SHIP, HOLD or ADVISORY.

use super::{CONDUIT, SENTINEL};
use crate::artifacts::{BacklogItem, write_yaml};
use crate::day::DayError;
use crate::day::context::{AskError, DayContext, render, untrusted};
use crate::schemas::{Decision, Handoff, ReviewReport, StoryCard, parse_review};
use crate::text::head_tail;

const SENTINEL_SYSTEM: &str = include_str!("prompts/sentinel.md");
const CONDUIT_SYSTEM: &str = include_str!("prompts/conduit.md");
/// The diff in a prompt: enough for a day's work, bounded for a runaway one.
const DIFF_HEAD: usize = 40_000;
const DIFF_TAIL: usize = 10_000;
/// Each delivery file CONDUIT reads.
const DELIVERY_FILE_CAP: usize = 8_000;

/// Files CONDUIT reviews (the original only looked at `.github/workflows/*.yml`).
fn delivery_files(repo: &std::path::Path) -> Vec<String> {
    let mut files: Vec<String> = [
        ".gitlab-ci.yml",
        "bitbucket-pipelines.yml",
        "Jenkinsfile",
        "Makefile",
        "Dockerfile",
        "docker-compose.yml",
    ]
    .into_iter()
    .filter(|f| repo.join(f).is_file())
    .map(String::from)
    .collect();
    for dir in [".github/workflows", ".gitlab", "images"] {
        let mut stack = vec![repo.join(dir)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(repo) {
                    let name = rel.to_string_lossy().to_string();
                    let yaml = rel
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"));
                    if yaml || name.contains("Dockerfile") {
                        files.push(name);
                    }
                }
            }
        }
    }
    files.sort();
    files
}

pub async fn run(
    ctx: &DayContext,
    agent: &'static str,
    story: &StoryCard,
    handoff: &Handoff,
    backlog: &[BacklogItem],
    attempt: u32,
) -> Result<ReviewReport, DayError> {
    let timer = ctx.start_agent(agent, attempt);
    let backlog_text = backlog_section(ctx.plan.day, backlog);
    let template = if agent == SENTINEL {
        SENTINEL_SYSTEM
    } else {
        CONDUIT_SYSTEM
    };
    let system = render(
        template,
        &[("product", &ctx.settings.product.name), ("backlog", &backlog_text)],
    );
    let user = user_message(ctx, agent, story, handoff)?;
    let day = ctx.plan.day;
    let report = match ctx
        .ask_validated(agent, system, user, review_schema(agent), |text| {
            parse_review(text, day, agent)
        })
        .await
    {
        Ok(r) => r,
        Err(AskError::Invalid(reason)) => ReviewReport {
            day,
            agent: agent.into(),
            findings: Vec::new(),
            advisories: Vec::new(),
            blockers: vec![reason.clone()],
            decision: Decision::Hold,
            hold_reason: reason,
        },
        Err(AskError::Llm(e)) => {
            ctx.finish_agent_with(timer, Some("ERROR"), vec![e.to_string()]);
            return Err(e.into());
        }
    };
    let path = ctx.day_dir.review_report(agent);
    // Written as YAML with the original's decision key (`sentinel_decision`, ...).
    write_yaml(&path, &report.to_file_value(), &ctx.redactor)?;
    ctx.finish_agent_with(timer, Some(report.decision.as_str()), review_detail(&report));
    Ok(report)
}

/// The answer schema of SENTINEL or CONDUIT (`sentinel_review`, `conduit_review`).
fn review_schema(agent: &str) -> crate::llm::ResponseSchema {
    crate::llm::ResponseSchema {
        name: format!("{}_review", agent.to_ascii_lowercase()),
        schema: crate::schemas::answer_schema::review(agent),
    }
}

fn backlog_section(day: u32, backlog: &[BacklogItem]) -> String {
    if backlog.is_empty() {
        return String::new();
    }
    let items: Vec<String> = backlog
        .iter()
        .map(|i| {
            format!(
                "- id: {}\n  raised: day {}\n  finding: {}",
                i.id, i.day_raised, i.finding
            )
        })
        .collect();
    format!(
        "\nDay {day} is a clearance day: evaluate each backlog item below as its own check (use the item id as `check`); PASS means resolved.\n{}\n",
        items.join("\n")
    )
}

fn user_message(ctx: &DayContext, agent: &str, story: &StoryCard, handoff: &Handoff) -> Result<String, DayError> {
    let diff = ctx.git.diff_since(&ctx.base_commit)?;
    let mut parts = vec![
        format!(
            "Story card:\n```yaml\n{}```",
            serde_saphyr::to_string(story).unwrap_or_default()
        ),
        format!(
            "FORGE handoff:\n```yaml\n{}```",
            serde_saphyr::to_string(handoff).unwrap_or_default()
        ),
        format!(
            "Diff of today's work:\n{}",
            untrusted("git diff", &head_tail(&diff, DIFF_HEAD, DIFF_TAIL))
        ),
    ];
    if agent == SENTINEL {
        parts.push(format!("Secret scan of the added lines:\n{}", secret_scan(&diff)));
        if let Some(doc) = ctx.context_doc("security.md") {
            parts.push(format!("Security context:\n{doc}"));
        }
    }
    if agent == CONDUIT {
        for file in delivery_files(&ctx.settings.repo_root) {
            if let Ok(text) = std::fs::read_to_string(ctx.settings.repo_root.join(&file)) {
                parts.push(untrusted(&file, &head_tail(&text, DELIVERY_FILE_CAP, 0)));
            }
        }
        if let Some(doc) = ctx.context_doc("devops.md") {
            parts.push(format!("DevOps context:\n{doc}"));
        }
    }
    Ok(parts.join("\n\n"))
}

/// Added lines that look like hard-coded credentials; the values are masked so a real
/// secret is never put into the prompt (the original sent the matched values).
pub fn secret_scan(diff: &str) -> String {
    let pattern = regex::Regex::new(
        r#"(?i)(password|passwd|secret|token|api[_-]?key|apikey|private[_-]?key)\s*[=:]\s*["']([^"']{8,})["']"#,
    );
    let Ok(pattern) = pattern else {
        return "scan unavailable".into();
    };
    let hits: Vec<String> = diff
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .filter_map(|l| {
            let caps = pattern.captures(l)?;
            let value = caps.get(2)?.as_str();
            Some(l.replace(value, "[MASKED]"))
        })
        .take(50)
        .collect();
    if hits.is_empty() {
        "No hard-coded secret patterns detected.".into()
    } else {
        hits.join("\n")
    }
}

/// A reviewer's job-log detail: why it holds, its blockers and advisories.
fn review_detail(report: &ReviewReport) -> Vec<String> {
    let mut lines = Vec::new();
    if !report.hold_reason.is_empty() {
        lines.push(format!("hold: {}", report.hold_reason));
    }
    lines.extend(report.blockers.iter().map(|b| format!("blocker: {b}")));
    lines.extend(report.advisories.iter().map(|a| format!("advisory: {a}")));
    if lines.is_empty() {
        lines.push(format!("{} findings, no blocker or advisory", report.findings.len()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_masks_values() {
        let diff = "+++ b/x.py\n+API_KEY = \"sk-live-1234567890\"\n-password = 'oldoldold'\n";
        let out = secret_scan(diff);
        assert!(out.contains("[MASKED]"));
        assert!(!out.contains("sk-live"));
        assert!(!out.contains("oldoldold"));
    }
}
