//! `plan.yaml`: the sprint's days, in either format of the original.
//!
//! - legacy: `days: [{day, week, week_label, target, gate_criterion, human_gate, notes, issue,
//!   story_branch}]`
//! - v3: `{release, context_version, stories: [{id: story-N, title, status, shipped_at,
//!   human_gate, ...}]}`; `title` becomes `target`, `N` the day. Extra story keys are accepted.
//!
//! Both have the top-level `pace_version`, `product`, `start_date`. When both lists are present
//! `stories` wins (as in the original), with a warning.
//!
//! Public API:
//! - [`Plan`] / [`PlanDay`], [`Plan::day`]
//! - [`parse`]`(text, sink) -> Option<Plan>`: problems (with positions) go to the sink
//! - [`select_day`]`(settings, plan, day, plan_file) -> Result<PlanDay, PaceError>`

use std::path::Path;

use crate::config::diagnostic::Sink;
use crate::config::raw::{At, raw_struct};
use crate::config::settings::Settings;
use crate::config::yaml;
use crate::error::PaceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    /// `days:` (what the original's template ships).
    Days,
    /// v3 `stories:`.
    Stories,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub start_date: Option<String>,
    pub product: Option<String>,
    /// v3 only.
    pub release: Option<String>,
    pub format: PlanFormat,
    /// Sorted by day, day numbers unique and >= 1.
    pub days: Vec<PlanDay>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDay {
    pub day: u32,
    /// The story's goal (`target`, or a story's `title`).
    pub target: String,
    /// `week` as written, else `(day - 1) / 7 + 1`.
    pub week: u32,
    pub week_label: Option<String>,
    pub gate_criterion: Option<String>,
    pub human_gate: bool,
    pub notes: Option<String>,
    /// Tracker issue number.
    pub issue: Option<u64>,
    pub story_branch: Option<String>,
    /// v3 `status` (`pending`, `in_progress`, `shipped`, `hold`); `None` in legacy plans.
    pub status: Option<String>,
}

impl Plan {
    pub fn day(&self, n: u32) -> Option<&PlanDay> {
        self.days.iter().find(|d| d.day == n)
    }
}

raw_struct! {
    pub struct RawPlan {
        "pace_version" => pace_version: String,
        "product" => product: String,
        "start_date" => start_date: String,
        "days" => days: Vec<At<RawDay>>,
        "release" => release: String,
        "context_version" => context_version: String,
        "stories" => stories: Vec<At<RawStory>>,
    }
    ignored: []
}

raw_struct! {
    pub struct RawDay {
        "day" => day: u32,
        "week" => week: u32,
        "week_label" => week_label: String,
        "target" => target: String,
        "gate_criterion" => gate_criterion: String,
        "human_gate" => human_gate: bool,
        "notes" => notes: String,
        "issue" => issue: u64,
        "story_branch" => story_branch: String,
    }
    ignored: []
}

raw_struct! {
    pub struct RawStory {
        "id" => id: String,
        "title" => title: String,
        "status" => status: String,
        "shipped_at" => shipped_at: String,
        "human_gate" => human_gate: bool,
        "week" => week: u32,
        "week_label" => week_label: String,
        "gate_criterion" => gate_criterion: String,
        "notes" => notes: String,
        "issue" => issue: u64,
        "story_branch" => story_branch: String,
    }
    ignored: ["*"]
}

const STATUSES: [&str; 4] = ["pending", "in_progress", "shipped", "hold"];

fn val<T: Clone>(at: Option<&At<T>>) -> Option<T> {
    at.map(|a| a.value.clone())
}

fn default_week(day: u32) -> u32 {
    day.saturating_sub(1) / 7 + 1
}

/// Parses and checks a plan. Every problem goes to `sink`; `None` when the text is not a
/// usable plan at all. A `Some` plan may still come with errors in the sink.
pub fn parse(text: &str, sink: &mut Sink) -> Option<Plan> {
    use crate::config::raw::FromNode;
    let root = yaml::parse(text, sink)?;
    let raw = RawPlan::from_node(&root, "", sink)?;
    let (format, mut days) = if let Some(stories) = &raw.stories {
        if let Some(legacy) = &raw.days {
            sink.warning(
                legacy.line,
                legacy.column,
                "the plan has both `stories` and `days`; `days` is ignored",
            );
        }
        (PlanFormat::Stories, story_days(&stories.value, sink))
    } else if let Some(list) = &raw.days {
        (PlanFormat::Days, legacy_days(&list.value, sink))
    } else {
        sink.error_hint(
            raw.line,
            raw.column,
            "the plan has neither `days` nor `stories`",
            "add `days: [{day: 1, target: ...}]`",
        );
        return None;
    };
    days.sort_by_key(|d| d.day);
    Some(Plan {
        start_date: val(raw.start_date.as_ref()),
        product: val(raw.product.as_ref()),
        release: val(raw.release.as_ref()),
        format,
        days,
    })
}

/// The day numbers met so far in a plan, each with the line it was first seen on.
#[derive(Default)]
struct SeenDays(Vec<(u32, u64)>);

impl SeenDays {
    /// Whether `day` may be used: it is at least 1 and not already taken (an error otherwise).
    fn accept(&mut self, day: u32, at: (u64, u64), sink: &mut Sink) -> bool {
        if day < 1 {
            sink.error(at.0, at.1, "day numbers start at 1");
            return false;
        }
        if let Some((_, line)) = self.0.iter().find(|(d, _)| *d == day) {
            sink.error(
                at.0,
                at.1,
                format!("day {day} appears twice in the plan (first at line {line})"),
            );
            return false;
        }
        self.0.push((day, at.0));
        true
    }
}

/// The v3 `stories:` list; an entry with a problem is reported and left out.
fn story_days(stories: &[At<RawStory>], sink: &mut Sink) -> Vec<PlanDay> {
    let mut seen = SeenDays::default();
    let mut days = Vec::new();
    for (i, story) in stories.iter().enumerate() {
        let s = &story.value;
        check_story_status(s, i, sink);
        let day = story_day(story, i, sink).filter(|day| seen.accept(day.value, (day.line, day.column), sink));
        let target = if s.reported("title") {
            None
        } else {
            required_text(s.title.as_ref(), story, &format!("stories[{i}].title"), sink)
        };
        if let (Some(day), Some(target)) = (day, target) {
            days.push(PlanDay {
                day: day.value,
                target,
                week: val(s.week.as_ref()).unwrap_or_else(|| default_week(day.value)),
                week_label: val(s.week_label.as_ref()),
                gate_criterion: val(s.gate_criterion.as_ref()),
                human_gate: val(s.human_gate.as_ref()).unwrap_or(false),
                notes: val(s.notes.as_ref()),
                issue: val(s.issue.as_ref()),
                story_branch: val(s.story_branch.as_ref()),
                status: val(s.status.as_ref()).map(|x| x.trim().to_string()),
            });
        }
    }
    days
}

fn check_story_status(s: &RawStory, i: usize, sink: &mut Sink) {
    if let Some(status) = &s.status
        && !STATUSES.contains(&status.value.trim())
    {
        let list = STATUSES.map(|x| format!("`{x}`")).join(", ");
        sink.error(
            status.line,
            status.column,
            format!(
                "`stories[{i}].status`: unknown value `{}`; expected one of {list}",
                status.value
            ),
        );
    }
}

/// The legacy `days:` list; an entry with a problem is reported and left out.
fn legacy_days(list: &[At<RawDay>], sink: &mut Sink) -> Vec<PlanDay> {
    let mut seen = SeenDays::default();
    let mut days = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let d = &entry.value;
        let Some(day) = &d.day else {
            if d.reported("day") {
                continue;
            }
            sink.error_hint(
                entry.line,
                entry.column,
                format!("missing required key `days[{i}].day`"),
                "number the day: `day: 1`",
            );
            continue;
        };
        let fresh = seen.accept(day.value, (day.line, day.column), sink);
        let target = if d.reported("target") {
            None
        } else {
            required_text(d.target.as_ref(), entry, &format!("days[{i}].target"), sink)
        };
        if let (true, Some(target)) = (fresh, target) {
            days.push(PlanDay {
                day: day.value,
                target,
                week: val(d.week.as_ref()).unwrap_or_else(|| default_week(day.value)),
                week_label: val(d.week_label.as_ref()),
                gate_criterion: val(d.gate_criterion.as_ref()),
                human_gate: val(d.human_gate.as_ref()).unwrap_or(false),
                notes: val(d.notes.as_ref()),
                issue: val(d.issue.as_ref()),
                story_branch: val(d.story_branch.as_ref()),
                status: None,
            });
        }
    }
    days
}

fn story_day(story: &At<RawStory>, i: usize, sink: &mut Sink) -> Option<At<u32>> {
    let Some(id) = &story.value.id else {
        sink.error_hint(
            story.line,
            story.column,
            format!("missing required key `stories[{i}].id`"),
            "give the story an id `story-N` (N is its day)",
        );
        return None;
    };
    let number = id
        .value
        .trim()
        .strip_prefix("story-")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match number.and_then(|n| n.parse::<u32>().ok()) {
        Some(n) => Some(At {
            value: n,
            line: id.line,
            column: id.column,
        }),
        None => {
            sink.error_hint(
                id.line,
                id.column,
                format!("`stories[{i}].id`: `{}` is not `story-N`", id.value),
                "the id is `story-` and the day number, e.g. `story-3`",
            );
            None
        }
    }
}

fn required_text<T>(at: Option<&At<String>>, entry: &At<T>, key: &str, sink: &mut Sink) -> Option<String> {
    match at {
        Some(t) if !t.value.trim().is_empty() => Some(t.value.trim().to_string()),
        Some(t) => {
            sink.error(t.line, t.column, format!("`{key}` is empty"));
            None
        }
        None => {
            sink.error_hint(
                entry.line,
                entry.column,
                format!("missing required key `{key}`"),
                "say what the day should deliver",
            );
            None
        }
    }
}

/// The day to run: within `1..=sprint.duration_days` and present in the plan (exit 3 otherwise).
pub fn select_day(settings: &Settings, plan: &Plan, day: u32, plan_file: &Path) -> Result<PlanDay, PaceError> {
    let duration = settings.sprint.duration_days;
    if day == 0 || day > duration {
        return Err(PaceError::plan(format!(
            "day {day} is outside the sprint: `sprint.duration_days` is {duration} (days 1 to {duration})"
        ))
        .with_hint("pass a day between 1 and `sprint.duration_days`, or raise `sprint.duration_days`"));
    }
    let shown = plan_file.strip_prefix(&settings.repo_root).unwrap_or(plan_file);
    match plan.day(day) {
        Some(d) => Ok(d.clone()),
        None => {
            let have = if plan.days.is_empty() {
                "none".to_string()
            } else {
                plan.days
                    .iter()
                    .map(|d| d.day.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(PaceError::plan(format!(
                "day {day} is not in `{}` (days in the plan: {have})",
                shown.display()
            ))
            .with_hint(format!("add a `day: {day}` entry (or `story-{day}`)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Plan>, Vec<String>) {
        let mut sink = Sink::new("plan.yaml".into());
        let plan = parse(text, &mut sink);
        (plan, sink.diagnostics.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn legacy_days_sorted_with_default_week() {
        let (plan, diags) = parse_text(
            "start_date: 2026-01-05\ndays:\n  - day: 9\n    target: b\n  - day: 1\n    target: a\n    human_gate: yes\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let plan = plan.expect("plan");
        assert_eq!(plan.days.iter().map(|d| d.day).collect::<Vec<_>>(), vec![1, 9]);
        assert_eq!(plan.day(9).map(|d| d.week), Some(2));
        assert!(plan.day(1).is_some_and(|d| d.human_gate));
        assert_eq!(plan.start_date.as_deref(), Some("2026-01-05"));
    }

    #[test]
    fn stories_map_to_days() {
        let (plan, diags) = parse_text(
            "release: v1\nstories:\n  - id: story-2\n    title: Login\n    status: shipped\n    extra: kept\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let plan = plan.expect("plan");
        assert_eq!(plan.format, PlanFormat::Stories);
        assert_eq!(plan.day(2).map(|d| d.target.as_str()), Some("Login"));
    }

    #[test]
    fn every_plan_problem_is_reported() {
        let (_, diags) = parse_text(
            "days:\n  - day: 1\n    target: a\n  - day: 1\n    target: b\n  - day: 0\n    target: c\n  - day: 3\n",
        );
        assert_eq!(diags.len(), 3, "{diags:?}");
        assert!(
            diags[0].starts_with("plan.yaml:4:10: error: day 1 appears twice"),
            "{diags:?}"
        );
        assert!(
            diags[1].starts_with("plan.yaml:6:10: error: day numbers start at 1"),
            "{diags:?}"
        );
        assert!(
            diags[2].starts_with("plan.yaml:8:5: error: missing required key `days[3].target`"),
            "{diags:?}"
        );
    }
}
