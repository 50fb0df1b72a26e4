//! `pace-env.env`, the dotenv report a GitLab job exports (`artifacts:reports:dotenv`):
//! `PACE_DAY`, `PACE_DECISION`, `PACE_EXIT_CODE`, `PACE_COMMIT`, `PACE_MR_URL`,
//! `PACE_ISSUE_URL`, `PACE_COST_USD`, one line each, no quotes.
//!
//! Written on every exit of `pace --day` — also when the config, the plan or the checkout
//! stopped it before a day was recorded — so a later job (and a person reading the
//! pipeline's variables) always sees how this run ended, never a stale file.

use crate::artifacts::{self, ArtifactError, PaceDir, RunRecord};
use crate::redact::Redactor;

/// `PACE_DECISION` when `--day next` found every planned day shipped.
pub const SPRINT_COMPLETE: &str = "COMPLETE";

/// What the dotenv report says about one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Dotenv {
    /// The day run (or chosen by `--day next`); `None` when no day was known.
    pub day: Option<u32>,
    pub decision: String,
    pub exit_code: u8,
    pub commit: String,
    pub mr_url: Option<String>,
    pub issue_url: Option<String>,
    /// What this run spent (a run that stopped before an agent spent nothing).
    pub cost_usd: f64,
}

impl Dotenv {
    /// A recorded day: the values of its `run.json`.
    pub fn of_record(record: &RunRecord) -> Self {
        Self {
            day: Some(record.day),
            decision: record.decision.as_str().to_string(),
            exit_code: record.exit_code,
            commit: record.commit.clone(),
            mr_url: record.mr_url.clone(),
            issue_url: record.issue_url.clone(),
            cost_usd: record.totals.cost_usd,
        }
    }

    /// A run that ended before (or without) recording a day: a config, plan or checkout
    /// error, or `--day next` with nothing to run.
    pub fn unrecorded(day: Option<u32>, decision: &str, exit_code: u8) -> Self {
        Self {
            day,
            decision: decision.to_string(),
            exit_code,
            commit: String::new(),
            mr_url: None,
            issue_url: None,
            cost_usd: 0.0,
        }
    }

    pub fn render(&self) -> String {
        let day = self.day.map(|d| d.to_string()).unwrap_or_default();
        [
            ("PACE_DAY", day.as_str()),
            ("PACE_DECISION", self.decision.as_str()),
            ("PACE_EXIT_CODE", &self.exit_code.to_string()),
            ("PACE_COMMIT", self.commit.as_str()),
            ("PACE_MR_URL", self.mr_url.as_deref().unwrap_or("")),
            ("PACE_ISSUE_URL", self.issue_url.as_deref().unwrap_or("")),
            ("PACE_COST_USD", &format!("{:.4}", self.cost_usd)),
        ]
        .iter()
        .map(|(key, value)| artifacts::dotenv_line(key, value))
        .collect()
    }

    /// Writes `pace-env.env` at the repository root (never through a link).
    pub fn write(&self, pace: &PaceDir, redactor: &Redactor) -> Result<(), ArtifactError> {
        artifacts::write_text(&pace.dotenv(), &self.render(), redactor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrecorded_run_still_names_its_exit_code() {
        let text = Dotenv::unrecorded(Some(3), "ERROR", 3).render();
        assert_eq!(
            text,
            "PACE_DAY=3\nPACE_DECISION=ERROR\nPACE_EXIT_CODE=3\nPACE_COMMIT=\nPACE_MR_URL=\nPACE_ISSUE_URL=\nPACE_COST_USD=0.0000\n"
        );
        assert!(Dotenv::unrecorded(None, "ERROR", 2).render().starts_with("PACE_DAY=\n"));
    }
}
