//! The local platform: the MR and the escalation become files in `.pace/day-N/`.

use async_trait::async_trait;

use super::{Platform, PlatformError, Published};
use crate::artifacts::{DayDir, write_text};
use crate::git::Git;
use crate::inert;
use crate::redact::Redactor;
use crate::report::summary::DaySummary;

pub struct LocalPlatform {
    pub redactor: Redactor,
}

#[async_trait]
impl Platform for LocalPlatform {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn push(&self, _git: &Git, _branch: &str, _day: &DayDir) -> Result<(), PlatformError> {
        Ok(())
    }

    async fn ship(&self, summary: &DaySummary, day: &DayDir) -> Result<Published, PlatformError> {
        let body = format!(
            "# {}\n\nSource branch: `{}`\n\n{}",
            summary.title(&self.redactor),
            summary.branch,
            summary.render_merge_request(&self.redactor)
        );
        write_text(
            &day.merge_request(),
            &inert::markdown(&body, &self.redactor),
            &self.redactor,
        )?;
        Ok(Published {
            url: Some(day.merge_request().display().to_string()),
        })
    }

    async fn request_review(&self, summary: &DaySummary, day: &DayDir) -> Result<Published, PlatformError> {
        let body = format!(
            "# [PACE review] Day {}: human gate\n\nSource branch: `{}`\n\nDay {} is a human gate: review the sprint so far on `{}`, then run the next day.\n\n{}",
            summary.day,
            summary.branch,
            summary.day,
            summary.branch,
            summary.render_markdown(&self.redactor)
        );
        write_text(
            &day.merge_request(),
            &inert::markdown(&body, &self.redactor),
            &self.redactor,
        )?;
        Ok(Published {
            url: Some(day.merge_request().display().to_string()),
        })
    }

    async fn escalate(&self, summary: &DaySummary, day: &DayDir) -> Result<Published, PlatformError> {
        let body = format!(
            "# [PACE HOLD] Day {}: {}\n\nLabels: pace-hold, pace-day-{}\n\n{}",
            summary.day,
            inert::title(&summary.reason, 120, &self.redactor),
            summary.day,
            summary.render_escalation(&self.redactor)
        );
        write_text(
            &day.escalation(),
            &inert::markdown(&body, &self.redactor),
            &self.redactor,
        )?;
        Ok(Published {
            url: Some(day.escalation().display().to_string()),
        })
    }
}
