//! `PROGRESS.md`: one row per sprint day, the status taken from each day's `run.json`
//! (the original read GATE's verdict alone and showed SENTINEL-held days as shipped).

use std::fmt::Write as _;

use crate::artifacts::{PaceDir, RunRecord, read_json};

#[derive(Debug, Clone)]
pub struct ProgressDay {
    pub day: u32,
    pub target: String,
    pub week: Option<u32>,
    pub week_label: Option<String>,
}

pub struct ProgressInput<'a> {
    pub product: &'a str,
    pub start_date: Option<&'a str>,
    pub duration_days: u32,
    pub days: &'a [ProgressDay],
    pub current_day: u32,
    pub updated_at: &'a str,
}

fn status_of(record: Option<&RunRecord>, day: u32, current: u32) -> &'static str {
    if record.is_some_and(|r| r.human_gate) {
        return "👀 REVIEW";
    }
    match record.map(|r| r.decision.as_str()) {
        Some("SHIP") => "✅ SHIP",
        Some("HOLD") => "🔴 HOLD",
        Some("BUDGET") => "💸 BUDGET",
        Some(_) => "⛔ ERROR",
        None if day <= current => "⏳ IN PROGRESS",
        None => "⏳ PENDING",
    }
}

pub fn render(pace: &PaceDir, input: &ProgressInput<'_>) -> String {
    let records: Vec<(u32, Option<RunRecord>)> = (1..=input.duration_days)
        .map(|d| (d, read_json(&pace.day(d).run_json())))
        .collect();
    let shipped = records
        .iter()
        .filter(|(_, r)| r.as_ref().is_some_and(|r| r.decision.as_str() == "SHIP"))
        .count();
    let held = records
        .iter()
        .filter(|(_, r)| {
            r.as_ref()
                .is_some_and(|r| r.decision.as_str() == "HOLD" && !r.human_gate)
        })
        .count();
    let cost: f64 = records
        .iter()
        .filter_map(|(_, r)| r.as_ref().map(|r| r.totals.cost_usd))
        .sum();
    let open_advisories = crate::artifacts::read_backlog(pace)
        .iter()
        .filter(|i| i.status == crate::artifacts::BacklogStatus::Open)
        .count();

    let mut md = String::new();
    let _ = writeln!(md, "# {} — PACE Sprint Progress\n", input.product);
    let _ = writeln!(md, "**Started:** {}  ", input.start_date.unwrap_or("TBD"));
    let _ = writeln!(md, "**Last updated:** {}  ", input.updated_at);
    let _ = writeln!(md, "**Target:** {}-day sprint\n", input.duration_days);
    let _ = writeln!(md, "| Metric | Value |\n|---|---|");
    let _ = writeln!(md, "| Days complete | {shipped}/{} |", input.duration_days);
    let rate = if input.current_day > 0 {
        100.0 * shipped as f64 / f64::from(input.current_day)
    } else {
        0.0
    };
    let _ = writeln!(md, "| SHIP rate | {rate:.0}% |");
    let _ = writeln!(md, "| Escalated holds | {held} |");
    let _ = writeln!(md, "| Open advisories | {open_advisories} |");
    let _ = writeln!(md, "| Spend | ${cost:.2} |\n");
    let _ = writeln!(
        md,
        "## Day Log\n\n| Day | Story | Status | Attempts | Cost |\n|---|---|---|---|---|"
    );
    for (day, record) in &records {
        let target = input
            .days
            .iter()
            .find(|d| d.day == *day)
            .map(|d| d.target.as_str())
            .unwrap_or("—");
        let status = status_of(record.as_ref(), *day, input.current_day);
        let (attempts, cost) = record
            .as_ref()
            .map(|r| (r.attempt.to_string(), format!("${:.2}", r.totals.cost_usd)))
            .unwrap_or(("—".into(), "—".into()));
        let _ = writeln!(
            md,
            "| {day} | {} | {status} | {attempts} | {cost} |",
            super::summary::one_line(target, 60).replace('|', "\\|")
        );
    }
    render_weeks(&mut md, input, &records);
    md
}

fn render_weeks(md: &mut String, input: &ProgressInput<'_>, records: &[(u32, Option<RunRecord>)]) {
    let mut weeks: Vec<u32> = input.days.iter().filter_map(|d| d.week).collect();
    weeks.sort_unstable();
    weeks.dedup();
    if weeks.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## Weekly Breakdown");
    for week in weeks {
        let days: Vec<&ProgressDay> = input.days.iter().filter(|d| d.week == Some(week)).collect();
        let label = days.iter().find_map(|d| d.week_label.as_deref()).unwrap_or("");
        let shipped = days
            .iter()
            .filter(|d| {
                records
                    .iter()
                    .any(|(n, r)| *n == d.day && r.as_ref().is_some_and(|r| r.decision.as_str() == "SHIP"))
            })
            .count();
        let _ = writeln!(
            md,
            "\n### Week {week} — {label}\n\n**{shipped}/{} days shipped**\n",
            days.len()
        );
        for d in days {
            let record = records.iter().find(|(n, _)| *n == d.day).and_then(|(_, r)| r.as_ref());
            let _ = writeln!(
                md,
                "- Day {}: {} {}",
                d.day,
                status_of(record, d.day, input.current_day),
                super::summary::one_line(&d.target, 80)
            );
        }
    }
}
