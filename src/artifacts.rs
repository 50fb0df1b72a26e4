//! The `.pace/` layout and the files of a day (contract: "Outputs"). Everything written
//! here passes through the [`Redactor`]; writes are atomic (temp file + rename) so a run
//! killed half-way never leaves a truncated artifact.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::redact::Redactor;

pub const RUN_SCHEMA_VERSION: u32 = 1;
pub const CONTEXT_DOCS: [&str; 4] = ["product.md", "engineering.md", "security.md", "devops.md"];

#[derive(Debug, thiserror::Error)]
#[error("cannot write `{path}`: {source}")]
pub struct ArtifactError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Paths of one repository's `.pace/` directory.
#[derive(Debug, Clone)]
pub struct PaceDir {
    pub root: PathBuf,
}

impl PaceDir {
    pub fn new(repo_root: &Path) -> Self {
        Self {
            root: repo_root.join(".pace"),
        }
    }
    pub fn day(&self, day: u32) -> DayDir {
        DayDir {
            dir: self.root.join(format!("day-{day}")),
            day,
        }
    }
    pub fn context_dir(&self) -> PathBuf {
        self.root.join("context")
    }
    pub fn context_doc(&self, name: &str) -> PathBuf {
        self.context_dir().join(name)
    }
    pub fn backlog(&self) -> PathBuf {
        self.root.join("advisory-backlog.yaml")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("pipeline.lock")
    }
    pub fn missing_context_docs(&self) -> Vec<&'static str> {
        CONTEXT_DOCS
            .into_iter()
            .filter(|d| !self.context_doc(d).is_file())
            .collect()
    }
}

/// Paths of `.pace/day-N/`.
#[derive(Debug, Clone)]
pub struct DayDir {
    pub dir: PathBuf,
    pub day: u32,
}

impl DayDir {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn run_json(&self) -> PathBuf {
        self.path("run.json")
    }
    pub fn story_card(&self) -> PathBuf {
        self.path("story-card.yaml")
    }
    pub fn handoff(&self) -> PathBuf {
        self.path("handoff.yaml")
    }
    pub fn gate_report(&self) -> PathBuf {
        self.path("gate-report.yaml")
    }
    pub fn review_report(&self, agent: &str) -> PathBuf {
        self.path(&format!("{}-report.yaml", agent.to_ascii_lowercase()))
    }
    pub fn scribe_report(&self) -> PathBuf {
        self.path("scribe-report.yaml")
    }
    pub fn gate_dir(&self) -> PathBuf {
        self.path("gate")
    }
    pub fn gate_log(&self) -> PathBuf {
        self.gate_dir().join("output.log")
    }
    pub fn gate_junit(&self) -> PathBuf {
        self.gate_dir().join("junit.xml")
    }
    pub fn summary(&self) -> PathBuf {
        self.path("summary.md")
    }
    pub fn transcript(&self) -> PathBuf {
        self.path("transcript.jsonl")
    }
    /// What the sandbox's return-path policy kept out of the repository.
    pub fn refused(&self) -> PathBuf {
        self.path("refused.yaml")
    }

    pub fn attempts(&self) -> PathBuf {
        self.path("attempts.yaml")
    }
    pub fn merge_request(&self) -> PathBuf {
        self.path("merge-request.md")
    }
    pub fn escalation(&self) -> PathBuf {
        self.path("escalation.md")
    }
    pub fn create(&self) -> Result<(), ArtifactError> {
        std::fs::create_dir_all(self.gate_dir()).map_err(|source| ArtifactError {
            path: self.gate_dir(),
            source,
        })
    }
}

/// Writes text atomically after redaction.
pub fn write_text(path: &Path, text: &str, redactor: &Redactor) -> Result<(), ArtifactError> {
    let err = |source| ArtifactError {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    std::io::Write::write_all(&mut tmp, redactor.redact(text).as_bytes()).map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

pub fn write_yaml<T: Serialize>(path: &Path, value: &T, redactor: &Redactor) -> Result<(), ArtifactError> {
    let text = serde_saphyr::to_string(value).map_err(|e| ArtifactError {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    write_text(path, &text, redactor)
}

pub fn write_json<T: Serialize>(path: &Path, value: &T, redactor: &Redactor) -> Result<(), ArtifactError> {
    let mut v = serde_json::to_value(value).map_err(|e| ArtifactError {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    redactor.redact_json(&mut v);
    let text = serde_json::to_string_pretty(&v).map_err(|e| ArtifactError {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    write_text(path, &(text + "\n"), redactor)
}

/// Reads a YAML artifact written by pace; `None` when absent or unreadable.
pub fn read_yaml<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_saphyr::from_str(&text).ok()
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunDecision {
    Ship,
    Hold,
    Error,
    Budget,
}

impl RunDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ship => "SHIP",
            Self::Hold => "HOLD",
            Self::Error => "ERROR",
            Self::Budget => "BUDGET",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub name: String,
    pub decision: Option<String>,
    pub duration_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub duration_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cost_usd: f64,
}

/// `run.json` (contract fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema_version: u32,
    /// Labels this run's sandbox containers (`pace.run-id`).
    #[serde(default)]
    pub run_id: String,
    pub day: u32,
    pub attempt: u32,
    pub decision: RunDecision,
    pub exit_code: u8,
    pub reason: String,
    pub started_at: String,
    pub finished_at: String,
    pub branch: String,
    pub commit: String,
    pub mr_url: Option<String>,
    pub issue_url: Option<String>,
    pub agents: Vec<AgentRecord>,
    pub totals: Totals,
    /// A human-gate day: stopped for review (decision HOLD, exit 0).
    #[serde(default)]
    pub human_gate: bool,
}

/// One entry of `attempts.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub date: String,
    pub outcome: String,
    #[serde(default)]
    pub hold_reason: String,
    pub cost_usd: f64,
    #[serde(default)]
    pub commit: String,
    #[serde(default)]
    pub red_phase_confirmed: bool,
}

pub fn read_attempts(day: &DayDir) -> Vec<AttemptRecord> {
    read_yaml(&day.attempts()).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacklogItem {
    pub id: String,
    pub day_raised: u32,
    pub agent: String,
    pub finding: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_day: Option<u32>,
}

pub fn read_backlog(pace: &PaceDir) -> Vec<BacklogItem> {
    read_yaml(&pace.backlog()).unwrap_or_default()
}

/// Adds findings to the backlog; a finding already open is not added twice (a finding
/// that recurs after it was cleared is added again — the original dropped it).
pub fn add_to_backlog(items: &mut Vec<BacklogItem>, day: u32, agent: &str, findings: &[String]) -> usize {
    let mut added = 0;
    for finding in findings {
        let open_twin = items
            .iter()
            .any(|i| i.status == "open" && i.agent == agent && &i.finding == finding);
        if open_twin {
            continue;
        }
        let n = items.len() + 1;
        items.push(BacklogItem {
            id: format!("{}-day{day}-{n}", agent.to_ascii_lowercase()),
            day_raised: day,
            agent: agent.to_string(),
            finding: finding.clone(),
            status: "open".into(),
            cleared_day: None,
        });
        added += 1;
    }
    added
}

/// `pace-env.env`: a GitLab dotenv report (no quotes, no multi-line values).
pub fn dotenv_line(key: &str, value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("{key}={}\n", clean.replace('"', "'"))
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_dedups_open_items_only() {
        let mut items = Vec::new();
        assert_eq!(add_to_backlog(&mut items, 2, "SENTINEL", &["a".into(), "a".into()]), 1);
        items[0].status = "cleared".into();
        assert_eq!(add_to_backlog(&mut items, 3, "SENTINEL", &["a".into()]), 1);
        assert_eq!(items[1].id, "sentinel-day3-2");
    }

    #[test]
    fn dotenv_values_are_single_line() {
        assert_eq!(dotenv_line("K", "a\nb \"c\""), "K=a b 'c'\n");
    }

    #[test]
    fn writes_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/y.txt");
        write_text(&path, "token=abcd1234", &Redactor::new(vec!["abcd1234".into()])).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "token=[REDACTED]");
    }
}
