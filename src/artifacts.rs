//! The `.pace/` layout and the files of a day (contract: "Outputs"). Everything written
//! here passes through the [`Redactor`] and [`crate::safe_write`]: writes are atomic (temp
//! file + rename) so a run killed half-way never leaves a truncated artifact, and never
//! follow a link the checkout holds (the code under test can leave `.pace/day-2 -> /etc`).

use std::ops::Deref;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::redact::Redactor;
use crate::safe_write::{self, OwnFileError};

pub const RUN_SCHEMA_VERSION: u32 = 1;
pub const CONTEXT_DOCS: [&str; 4] = ["product.md", "engineering.md", "security.md", "devops.md"];

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Write(#[from] OwnFileError),
    #[error("cannot serialise `{path}`: {message}")]
    Serialise { path: PathBuf, message: String },
}

impl ArtifactError {
    /// The write was refused because of a link or special file in the checkout.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Write(e) if e.is_refusal())
    }
}

impl crate::error::Hint for ArtifactError {
    fn exit_kind(&self) -> Option<crate::error::ExitKind> {
        match self {
            Self::Write(e) => crate::error::Hint::exit_kind(e),
            Self::Serialise { .. } => None,
        }
    }
}

/// A file or directory of pace's own inside a repository: the absolute path (what
/// `Deref` gives, for reading and messages) and the root it is written from, so every
/// writer can refuse links below that root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnPath {
    repo: PathBuf,
    abs: PathBuf,
}

impl OwnPath {
    pub fn new(repo: &Path, rel: impl AsRef<Path>) -> Self {
        Self {
            repo: repo.to_path_buf(),
            abs: repo.join(rel),
        }
    }

    /// The repository root the path is anchored at.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// `name` inside this directory, anchored at the same root.
    #[must_use]
    pub fn child(&self, name: impl AsRef<Path>) -> Self {
        Self {
            repo: self.repo.clone(),
            abs: self.abs.join(name),
        }
    }
}

impl Deref for OwnPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.abs
    }
}

impl AsRef<Path> for OwnPath {
    fn as_ref(&self) -> &Path {
        &self.abs
    }
}

/// Paths of one repository's `.pace/` directory and of the files pace writes at the
/// repository root.
#[derive(Debug, Clone)]
pub struct PaceDir {
    /// `.pace/`.
    pub root: OwnPath,
}

impl PaceDir {
    pub fn new(repo_root: &Path) -> Self {
        Self {
            root: OwnPath::new(repo_root, ".pace"),
        }
    }
    pub fn repo(&self) -> &Path {
        self.root.repo()
    }
    pub fn day(&self, day: u32) -> DayDir {
        DayDir {
            dir: self.root.child(format!("day-{day}")),
            day,
        }
    }
    pub fn context_dir(&self) -> OwnPath {
        self.root.child("context")
    }
    pub fn context_doc(&self, name: &str) -> OwnPath {
        self.context_dir().child(name)
    }
    pub fn backlog(&self) -> OwnPath {
        self.root.child("advisory-backlog.yaml")
    }
    pub fn lock(&self) -> OwnPath {
        self.root.child("pipeline.lock")
    }
    pub fn gitignore(&self) -> OwnPath {
        self.root.child(".gitignore")
    }
    /// `PROGRESS.md` at the repository root.
    pub fn progress(&self) -> OwnPath {
        OwnPath::new(self.repo(), "PROGRESS.md")
    }
    /// `pace-env.env` (the dotenv report) at the repository root.
    pub fn dotenv(&self) -> OwnPath {
        OwnPath::new(self.repo(), "pace-env.env")
    }
    pub fn missing_context_docs(&self) -> Vec<&'static str> {
        CONTEXT_DOCS
            .into_iter()
            .filter(|d| !self.context_doc(d).is_file())
            .collect()
    }

    /// Before day `day` writes anything: none of pace's directories (`.pace`, the day's,
    /// its `gate/`, `context/`), nothing directly inside them, and neither `PROGRESS.md`
    /// nor `pace-env.env` is a link, a hard-linked file or of the wrong type. A repository
    /// can commit such links and a suite can leave them; failing here costs no tokens.
    pub fn check_no_links(&self, day: u32) -> Result<(), OwnFileError> {
        let day = self.day(day);
        let repo = self.repo();
        for dir in [&self.root, &day.dir, &day.gate_dir(), &self.context_dir()] {
            safe_write::check(repo, dir, true)?;
            // A concurrent run may be linking its lock into place (two links for a moment);
            // it then says "held" itself.
            safe_write::check_entries(repo, dir, &["pipeline.lock"])?;
        }
        for file in [self.progress(), self.dotenv()] {
            safe_write::check(repo, &file, false)?;
        }
        Ok(())
    }
}

/// Paths of `.pace/day-N/`.
#[derive(Debug, Clone)]
pub struct DayDir {
    pub dir: OwnPath,
    pub day: u32,
}

impl DayDir {
    pub fn path(&self, name: &str) -> OwnPath {
        self.dir.child(name)
    }
    pub fn run_json(&self) -> OwnPath {
        self.path("run.json")
    }
    pub fn story_card(&self) -> OwnPath {
        self.path("story-card.yaml")
    }
    pub fn handoff(&self) -> OwnPath {
        self.path("handoff.yaml")
    }
    pub fn gate_report(&self) -> OwnPath {
        self.path("gate-report.yaml")
    }
    pub fn review_report(&self, agent: &str) -> OwnPath {
        self.path(&format!("{}-report.yaml", agent.to_ascii_lowercase()))
    }
    pub fn scribe_report(&self) -> OwnPath {
        self.path("scribe-report.yaml")
    }
    pub fn gate_dir(&self) -> OwnPath {
        self.path("gate")
    }
    pub fn gate_log(&self) -> OwnPath {
        self.gate_dir().child("output.log")
    }
    pub fn gate_junit(&self) -> OwnPath {
        self.gate_dir().child("junit.xml")
    }
    pub fn summary(&self) -> OwnPath {
        self.path("summary.md")
    }
    pub fn transcript(&self) -> OwnPath {
        self.path("transcript.jsonl")
    }
    /// What the sandbox's return-path policy kept out of the repository.
    pub fn refused(&self) -> OwnPath {
        self.path("refused.yaml")
    }

    pub fn attempts(&self) -> OwnPath {
        self.path("attempts.yaml")
    }
    pub fn merge_request(&self) -> OwnPath {
        self.path("merge-request.md")
    }
    pub fn escalation(&self) -> OwnPath {
        self.path("escalation.md")
    }
    /// Creates `.pace/day-N/gate/` (the sandbox's `collect_into` is below it) without
    /// following links.
    pub fn create(&self) -> Result<(), ArtifactError> {
        Ok(safe_write::create_dir_all(self.dir.repo(), &self.gate_dir())?)
    }
}

/// Writes text atomically after redaction.
pub fn write_text(path: &OwnPath, text: &str, redactor: &Redactor) -> Result<(), ArtifactError> {
    Ok(safe_write::write(path.repo(), path, redactor.redact(text).as_bytes())?)
}

pub fn write_yaml<T: Serialize>(path: &OwnPath, value: &T, redactor: &Redactor) -> Result<(), ArtifactError> {
    let text = serde_saphyr::to_string(value).map_err(|e| serialise_error(path, e))?;
    write_text(path, &text, redactor)
}

pub fn write_json<T: Serialize>(path: &OwnPath, value: &T, redactor: &Redactor) -> Result<(), ArtifactError> {
    let mut v = serde_json::to_value(value).map_err(|e| serialise_error(path, e))?;
    redactor.redact_json(&mut v);
    let text = serde_json::to_string_pretty(&v).map_err(|e| serialise_error(path, e))?;
    write_text(path, &(text + "\n"), redactor)
}

fn serialise_error(path: &Path, e: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Serialise {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
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
    /// Prompt-cache writes (billed above the input rate); absent in older run.json files.
    #[serde(default)]
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub duration_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
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

/// How one attempt ended, as `attempts.yaml` spells it. A value pace does not write (a
/// hand-edited file) is kept as it is rather than making the whole file unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AttemptOutcome {
    Ship,
    Hold,
    /// Shipable, but retried once to address the reviewers' advisories.
    Advisory,
    #[serde(untagged)]
    Other(String),
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ship => "SHIP",
            Self::Hold => "HOLD",
            Self::Advisory => "ADVISORY",
            Self::Other(text) => text,
        })
    }
}

/// An advisory backlog item's status, as `backlog.yaml` spells it. A status a person wrote
/// (`wontfix`) is kept as it is and counts as not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BacklogStatus {
    Open,
    Cleared,
    #[serde(untagged)]
    Other(String),
}

/// One entry of `attempts.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub date: String,
    pub outcome: AttemptOutcome,
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
    pub status: BacklogStatus,
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
            .any(|i| i.status == BacklogStatus::Open && i.agent == agent && &i.finding == finding);
        if open_twin {
            continue;
        }
        let n = items.len() + 1;
        items.push(BacklogItem {
            id: format!("{}-day{day}-{n}", agent.to_ascii_lowercase()),
            day_raised: day,
            agent: agent.to_string(),
            finding: finding.clone(),
            status: BacklogStatus::Open,
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

    /// The enums spell what `attempts.yaml` and `backlog.yaml` always held, and a value a
    /// person wrote survives a read and a write.
    #[test]
    fn outcomes_and_statuses_keep_their_spelling() {
        for (outcome, text) in [
            (AttemptOutcome::Ship, "SHIP"),
            (AttemptOutcome::Hold, "HOLD"),
            (AttemptOutcome::Advisory, "ADVISORY"),
            (AttemptOutcome::Other("ERROR".into()), "ERROR"),
        ] {
            assert_eq!(outcome.to_string(), text);
            assert_eq!(serde_json::to_string(&outcome).unwrap(), format!("\"{text}\""));
            assert_eq!(serde_saphyr::from_str::<AttemptOutcome>(text).unwrap(), outcome);
        }
        for (status, text) in [
            (BacklogStatus::Open, "open"),
            (BacklogStatus::Cleared, "cleared"),
            (BacklogStatus::Other("wontfix".into()), "wontfix"),
        ] {
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{text}\""));
            assert_eq!(serde_saphyr::from_str::<BacklogStatus>(text).unwrap(), status);
        }
    }

    #[test]
    fn backlog_dedups_open_items_only() {
        let mut items = Vec::new();
        assert_eq!(add_to_backlog(&mut items, 2, "SENTINEL", &["a".into(), "a".into()]), 1);
        items[0].status = BacklogStatus::Cleared;
        assert_eq!(add_to_backlog(&mut items, 3, "SENTINEL", &["a".into()]), 1);
        assert_eq!(items[1].id, "sentinel-day3-2");
    }

    #[test]
    fn dotenv_values_are_single_line() {
        assert_eq!(dotenv_line("K", "a\nb \"c\""), "K=a b 'c'\n");
    }

    #[test]
    fn the_day_refuses_links_in_its_paths_before_it_starts() {
        for (link, target_is_dir) in [
            (".pace", true),
            (".pace/day-1", true),
            (".pace/day-1/gate", true),
            (".pace/context", true),
            (".pace/day-1/run.json", false),
            (".pace/day-1/transcript.jsonl", false),
            (".pace/context/product.md", false),
            ("PROGRESS.md", false),
            ("pace-env.env", false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let repo = dir.path().join("repo");
            let outside = dir.path().join("outside");
            std::fs::create_dir_all(&outside).unwrap();
            std::fs::write(outside.join("victim"), "x").unwrap();
            let parent = repo.join(link);
            std::fs::create_dir_all(parent.parent().unwrap()).unwrap();
            let to = if target_is_dir {
                outside.clone()
            } else {
                outside.join("victim")
            };
            std::os::unix::fs::symlink(&to, repo.join(link)).unwrap();
            let pace = PaceDir::new(&repo);
            let err = pace.check_no_links(1).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "`{link}` is a symbolic link (to {}); pace never writes through links: remove it and re-run",
                    to.display()
                )
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let pace = PaceDir::new(dir.path());
        pace.check_no_links(1).unwrap();
        pace.day(1).create().unwrap();
        write_text(&pace.progress(), "p", &Redactor::default()).unwrap();
        pace.check_no_links(1).unwrap();
        std::fs::hard_link(dir.path().join("PROGRESS.md"), dir.path().join("copy")).unwrap();
        assert!(matches!(
            pace.check_no_links(1),
            Err(OwnFileError::HardLink { links: 2, .. })
        ));
    }

    #[test]
    fn writes_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = OwnPath::new(dir.path(), "x/y.txt");
        write_text(&path, "token=abcd1234", &Redactor::new(vec!["abcd1234".into()])).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "token=[REDACTED]");
    }
}
