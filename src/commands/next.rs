//! `--day next` (`PACE_DAY=next`, the templates' default): the first day of the plan that
//! has not shipped, read from the committed `.pace/day-N/run.json` files, so a scheduled
//! pipeline advances one day per run without anyone editing `DAY`.
//!
//! A held day stays next: it runs again only with `--retry` (a person pushed a fix);
//! without it `next` stops with exit 1 and points at the escalation, so a schedule does
//! not spend tokens on a day nobody looked at.

use crate::artifacts::{PaceDir, RunDecision, RunRecord};

/// How a planned day stands, from its `run.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Shipped, or a human-gate day that stopped for its review (the review happens on
    /// the merge request; the sprint goes on).
    Done,
    /// Held after all retries: waits for a person.
    Held,
    /// Never ran, or stopped without a decision (an outage, a budget, a signal, a failed
    /// publication): running it again continues it.
    Open,
}

fn standing(record: Option<&RunRecord>) -> Standing {
    let Some(r) = record else { return Standing::Open };
    match r.decision {
        RunDecision::Ship if r.exit_code == 0 => Standing::Done,
        RunDecision::Hold if r.human_gate && r.exit_code == 0 => Standing::Done,
        RunDecision::Hold => Standing::Held,
        _ => Standing::Open,
    }
}

/// What `--day next` found.
#[derive(Debug)]
pub(super) enum Next {
    /// Run `day`; `held` when it holds and `--retry` was passed. `done` lists the days
    /// before it that are done.
    Run { day: u32, held: bool, done: Vec<u32> },
    /// The next day holds and `--retry` was not passed.
    Held { day: u32, record: Box<RunRecord> },
    /// Every planned day is done.
    Complete { days: usize, last: u32 },
}

/// The next day among `days` (the plan's, in order), given each day's record.
pub(super) fn choose(days: &[u32], record_of: impl Fn(u32) -> Option<RunRecord>, retry: bool) -> Next {
    let mut done = Vec::new();
    for &day in days {
        let record = record_of(day);
        match standing(record.as_ref()) {
            Standing::Done => done.push(day),
            Standing::Open => return Next::Run { day, held: false, done },
            Standing::Held if retry => return Next::Run { day, held: true, done },
            Standing::Held => {
                if let Some(record) = record {
                    return Next::Held {
                        day,
                        record: Box::new(record),
                    };
                }
                return Next::Run { day, held: false, done };
            }
        }
    }
    Next::Complete {
        days: days.len(),
        last: days.last().copied().unwrap_or(0),
    }
}

/// The largest `run.json` `next` reads (pace's own are a few KiB).
const MAX_RUN_JSON_BYTES: u64 = 1024 * 1024;

/// `.pace/day-N/run.json` as committed in the checkout, read without following links (a
/// link there is the day's own refusal to report; here it counts as no record).
pub(super) fn read_record(pace: &PaceDir, day: u32) -> Option<RunRecord> {
    let path = pace.day(day).run_json();
    // pace writes a few KiB; a committed run.json larger than this is not pace's (a hostile
    // repository's), and is not read into memory: the day counts as not run.
    let too_large = std::fs::symlink_metadata(&path).is_ok_and(|m| m.len() > MAX_RUN_JSON_BYTES);
    if too_large {
        return None;
    }
    let text = crate::safe_write::read_to_string(pace.repo(), &path).ok()??;
    serde_json::from_str(&text).ok()
}

/// Where a held day's escalation is: the issue, else the local file, else the summary.
pub(super) fn escalation_of(pace: &PaceDir, record: &RunRecord) -> String {
    if let Some(url) = &record.issue_url {
        return url.clone();
    }
    let day = pace.day(record.day);
    for name in ["escalation.md", "summary.md"] {
        let path = day.path(name);
        if matches!(crate::safe_write::read_to_string(pace.repo(), &path), Ok(Some(_))) {
            return format!(".pace/day-{}/{name}", record.day);
        }
    }
    format!(".pace/day-{}/", record.day)
}

/// The job-log line saying what `next` chose and whether `--retry` was passed.
pub(super) fn chosen_line(day: u32, held: bool, done: &[u32], retry: bool) -> String {
    let before = match done {
        [] => "no day has shipped yet".to_string(),
        [one] => format!("day {one} has shipped"),
        [first, .., last] if done.len() == usize::try_from(last - first + 1).unwrap_or(0) => {
            format!("days {first} to {last} have shipped")
        }
        many => format!(
            "days {} have shipped",
            many.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let retry = match (held, retry) {
        (true, _) => "it holds and `--retry` was passed: it runs again from its last hold reason",
        (false, true) => "`--retry` was passed",
        (false, false) => "`--retry` was not passed",
    };
    format!("pace: `--day next` chose day {day} ({before}); {retry}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::Totals;

    fn record(day: u32, decision: RunDecision, exit_code: u8, human_gate: bool) -> RunRecord {
        RunRecord {
            schema_version: crate::artifacts::RUN_SCHEMA_VERSION,
            run_id: String::new(),
            day,
            attempt: 1,
            decision,
            exit_code,
            reason: "tests fail".into(),
            started_at: String::new(),
            finished_at: String::new(),
            branch: "sprint/1".into(),
            commit: "abc".into(),
            mr_url: None,
            issue_url: None,
            agents: Vec::new(),
            totals: Totals::default(),
            human_gate,
        }
    }

    fn next_of(records: &[(u32, RunDecision, u8, bool)], retry: bool) -> Next {
        let records: Vec<RunRecord> = records.iter().map(|&(d, dec, e, h)| record(d, dec, e, h)).collect();
        choose(
            &[1, 2, 3, 4],
            |day| records.iter().find(|r| r.day == day).cloned(),
            retry,
        )
    }

    #[test]
    fn a_run_json_larger_than_pace_writes_is_not_read() {
        let repo = tempfile::tempdir().unwrap();
        let pace = PaceDir::new(repo.path());
        let dir = repo.path().join(".pace/day-1");
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::to_string(&record(1, RunDecision::Ship, 0, false)).unwrap();
        std::fs::write(dir.join("run.json"), &json).unwrap();
        assert!(read_record(&pace, 1).is_some());
        let padded = format!("{json}{}", " ".repeat(usize::try_from(MAX_RUN_JSON_BYTES).unwrap()));
        std::fs::write(dir.join("run.json"), padded).unwrap();
        assert!(read_record(&pace, 1).is_none(), "a 1 MiB+ run.json counts as no record");
    }

    #[test]
    fn next_is_the_first_day_not_done() {
        use RunDecision::{Budget, Error, Hold, Ship};
        assert!(matches!(
            next_of(&[], false),
            Next::Run {
                day: 1,
                held: false,
                ..
            }
        ));
        let run = next_of(&[(1, Ship, 0, false), (2, Ship, 0, false)], false);
        assert!(
            matches!(run, Next::Run { day: 3, held: false, ref done } if done == &[1, 2]),
            "{run:?}"
        );
        // A human gate that stopped for review is done; an outage or a budget stop is not.
        assert!(matches!(
            next_of(&[(1, Hold, 0, true), (2, Error, 4, false)], false),
            Next::Run {
                day: 2,
                held: false,
                ..
            }
        ));
        assert!(matches!(
            next_of(&[(1, Budget, 5, false)], false),
            Next::Run { day: 1, .. }
        ));
        // A shipped day whose merge request could not be opened runs again (it publishes).
        assert!(matches!(
            next_of(&[(1, Ship, 4, false)], false),
            Next::Run { day: 1, .. }
        ));
    }

    #[test]
    fn a_held_day_runs_again_only_with_retry() {
        use RunDecision::{Hold, Ship};
        let records = [(1, Ship, 0, false), (2, Hold, 1, false), (3, Ship, 0, false)];
        assert!(matches!(next_of(&records, false), Next::Held { day: 2, .. }));
        assert!(matches!(next_of(&records, true), Next::Run { day: 2, held: true, .. }));
    }

    #[test]
    fn after_the_last_day_the_sprint_is_complete() {
        let all: Vec<_> = (1..=4).map(|d| (d, RunDecision::Ship, 0, false)).collect();
        assert!(matches!(next_of(&all, false), Next::Complete { days: 4, last: 4 }));
    }

    #[test]
    fn the_job_log_says_what_was_chosen_and_whether_retry_was_passed() {
        assert_eq!(
            chosen_line(1, false, &[], false),
            "pace: `--day next` chose day 1 (no day has shipped yet); `--retry` was not passed"
        );
        assert_eq!(
            chosen_line(4, false, &[1, 2, 3], true),
            "pace: `--day next` chose day 4 (days 1 to 3 have shipped); `--retry` was passed"
        );
        assert_eq!(
            chosen_line(3, true, &[1], true),
            "pace: `--day next` chose day 3 (day 1 has shipped); it holds and `--retry` was passed: it runs again from its last hold reason"
        );
        assert!(chosen_line(5, false, &[1, 4], false).contains("days 1, 4 have shipped"));
    }
}
