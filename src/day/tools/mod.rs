//! FORGE and SCRIBE tools: the registry, dispatch, handlers, path confinement, eviction.
//!
//! Owns everything between "the model asked for a tool" and "this is the tool result":
//! - one file per tool ([`edit`] (the text editor: `view`, `str_replace`, `insert`, `create`),
//!   [`read_file`], [`write_file`], [`list_files`], [`search`], [`run`],
//!   [`confirm_red_phase`], [`complete_handoff`]; SCRIBE's [`scribe_read_file`],
//!   [`list_dir`], [`write_doc`], [`finish`]) holding its spec (name, description, JSON
//!   schema) and its handler;
//! - [`registry::Tool`]: the enum of those tools, giving each toolset's spec list and the
//!   one `match` that reaches a handler;
//! - [`router::dispatch`]: the one place that counts calls, checks arguments against the
//!   specs ([`args`]), times and logs calls, runs the handler, redacts its result and
//!   records the paths it changed;
//! - [`paths`]: the confinement every file tool goes through (repository only, never
//!   `.git/` or `.pace/`, writes only into the source and test directories, no links out);
//!   [`files`]: the bounded reads and walks the file tools share;
//! - [`evict`]: shrinking stale tool results before each model call, from the changed
//!   paths the handlers returned.
//!
//! Dependencies point one way: `router` → `registry` → the tool files → `args`, `files`,
//! `paths` and this module's types; `evict` reads `run`'s markers and the editor's name.
//! No tool imports `router` or `registry`.
//!
//! Two kinds of failure: what the model can fix (bad path, bad arguments, failing command)
//! becomes a tool result with `is_error: true`; what it cannot (the sandbox died) is a
//! [`ToolAbort`] and pace stops the attempt.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::config::settings::Settings;
use crate::llm::Block;
use crate::redact::Redactor;
use crate::sandbox::{ExecSession, SandboxError};

mod args;
mod complete_handoff;
mod confirm_red_phase;
mod edit;
pub mod evict;
mod files;
mod finish;
mod list_dir;
mod list_files;
pub mod paths;
mod read_file;
pub mod registry;
pub mod router;
mod run;
mod scribe_read_file;
mod search;
mod write_doc;
mod write_file;

pub use evict::{check_pairing, estimate_tokens, evict_stale};
pub use registry::{Tool, forge_tools, scribe_tools};
pub use router::dispatch;
pub use write_doc::SCRIBE_DOCS;

/// Tool calls allowed per attempt before every call but the final one is refused.
pub const DEFAULT_MAX_TOOL_CALLS: u32 = 400;
/// `run` timeout when the model does not ask for one.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Which agent's tools a context serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolset {
    Forge { tdd: bool },
    Scribe,
}

/// A tool result for the model, and what the call did to the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    pub content: String,
    /// For everything the model should fix.
    pub is_error: bool,
    /// Repository-relative paths (`/`-separated) the call created, changed or deleted:
    /// eviction and the handoff's `files_written` read this, never the text.
    pub changed: Vec<String>,
}

/// Repository-relative paths each call changed, by `tool_use` id: the
/// [`ToolResult::changed`] of every answered call (calls that changed nothing are absent).
pub type ChangedByCall = HashMap<String, Vec<String>>;

/// What a tool call produced.
#[derive(Debug)]
pub enum ToolOutcome {
    Result(ToolResult),
    /// `complete_handoff` was accepted: the normalised handoff (redacted). pace adds
    /// `day`, `agent`, `commit` and the counters.
    Handoff(Value),
    /// SCRIBE's `finish` was accepted: its summary (redacted).
    Finished(String),
    /// Infrastructure failed; pace stops the attempt.
    Abort(ToolAbort),
}

/// Text sent back for an accepted `complete_handoff`.
pub const HANDOFF_ACCEPTED: &str = "Handoff recorded. Implementation complete.";
/// Text sent back for an accepted `finish`.
pub const FINISH_ACCEPTED: &str = "Finished. The documents are recorded.";

impl ToolOutcome {
    /// A successful result that changed nothing.
    pub(crate) fn ok(content: impl Into<String>) -> Self {
        Self::Result(ToolResult {
            content: content.into(),
            is_error: false,
            changed: Vec::new(),
        })
    }

    /// An error the model should see; `message` gets the `ERROR: ` prefix.
    pub(crate) fn error(message: impl AsRef<str>) -> Self {
        Self::Result(ToolResult {
            content: format!("ERROR: {}", message.as_ref()),
            is_error: true,
            changed: Vec::new(),
        })
    }

    /// The `tool_result` block answering `call_id`, if this outcome has one (everything but
    /// [`ToolOutcome::Abort`]). Keeps the history well-formed when the loop stops.
    pub fn to_block(&self, call_id: &str) -> Option<Block> {
        let (content, is_error) = match self {
            Self::Result(result) => (result.content.clone(), result.is_error),
            Self::Handoff(_) => (HANDOFF_ACCEPTED.to_string(), false),
            Self::Finished(_) => (FINISH_ACCEPTED.to_string(), false),
            Self::Abort(_) => return None,
        };
        Some(Block::ToolResult {
            tool_use_id: call_id.to_string(),
            content,
            is_error,
        })
    }

    pub fn is_error(&self) -> bool {
        match self {
            Self::Result(result) => result.is_error,
            Self::Abort(_) => true,
            Self::Handoff(_) | Self::Finished(_) => false,
        }
    }
}

/// Infrastructure failures: the attempt cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum ToolAbort {
    #[error("the sandbox failed while running a FORGE command: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("the command runner failed: {0}")]
    Runner(String),
}

impl crate::error::Hint for ToolAbort {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Sandbox(e) => crate::error::Hint::hint(e),
            Self::Runner(_) => None,
        }
    }

    fn exit_kind(&self) -> Option<crate::error::ExitKind> {
        match self {
            Self::Sandbox(e) => crate::error::Hint::exit_kind(e),
            Self::Runner(_) => None,
        }
    }
}

/// One command's result as `run` sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandResult {
    pub exit_code: i64,
    pub timed_out: bool,
    pub output: String,
    /// Repository-relative paths the command created, changed or deleted.
    pub changed: Vec<PathBuf>,
    /// What the command wrote that pace kept out of the repository.
    pub refused: Vec<crate::boundary::Refused>,
}

/// Runs FORGE's `run` commands. The sandbox's [`ExecSession`] in production, fakes in tests.
#[async_trait::async_trait]
pub trait CommandRunner: Send {
    async fn run(&mut self, command: &str, timeout: Duration) -> Result<CommandResult, ToolAbort>;
}

#[async_trait::async_trait]
impl CommandRunner for ExecSession {
    async fn run(&mut self, command: &str, timeout: Duration) -> Result<CommandResult, ToolAbort> {
        let outcome = self.exec(command, timeout).await?;
        Ok(CommandResult {
            exit_code: outcome.exit_code,
            timed_out: outcome.timed_out,
            output: outcome.output,
            changed: outcome.changed,
            refused: outcome.refused,
        })
    }
}

/// Everything the tools of one attempt need. Built with [`ToolContext::forge`] or
/// [`ToolContext::scribe`], then adjusted with the `with_*` methods.
pub struct ToolContext<'a> {
    pub(crate) toolset: Toolset,
    pub(crate) jail: paths::Jail,
    /// Repository-relative directories FORGE may write into (`src`, `tests`; no slashes
    /// at the ends; empty means the whole repository).
    pub(crate) writable: Vec<String>,
    /// SCRIBE's `docs:` root (canonical), when configured and present.
    pub(crate) docs: Option<paths::Jail>,
    pub(crate) red_phase_confirmed: bool,
    pub(crate) written: Vec<String>,
    pub(crate) docs_written: BTreeSet<String>,
    pub(crate) runner: Option<&'a mut dyn CommandRunner>,
    pub(crate) redactor: Redactor,
    pub(crate) max_run_timeout: Duration,
    pub(crate) max_tool_calls: u32,
    pub(crate) calls: u32,
    /// What each call changed, by `tool_use` id (recorded by the router).
    pub(crate) changed_by_call: ChangedByCall,
}

impl std::fmt::Debug for ToolContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolContext")
            .field("toolset", &self.toolset)
            .field("root", &self.jail.root())
            .field("writable", &self.writable)
            .field("red_phase_confirmed", &self.red_phase_confirmed)
            .field("written", &self.written)
            .field("calls", &self.calls)
            .field("has_runner", &self.runner.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> ToolContext<'a> {
    /// FORGE's tools for `settings.repo_root`: writable dirs are `source.dirs[].path` ∪
    /// `source.test_dirs`; TDD from `forge.tdd_enforcement`; the `run` timeout is capped by
    /// `sandbox.timeout`. Fails only when the repository root cannot be resolved.
    pub fn forge(settings: &Settings, redactor: Redactor) -> std::io::Result<Self> {
        let mut dirs: Vec<&str> = settings.source.dirs.iter().map(|d| d.path.as_str()).collect();
        dirs.extend(settings.source.test_dirs.iter().map(String::as_str));
        Self::new(
            Toolset::Forge {
                tdd: settings.forge.tdd_enforcement,
            },
            &settings.repo_root,
            &dirs,
            None,
            redactor,
            settings.sandbox.timeout,
        )
    }

    /// SCRIBE's tools: reads under the repository and `source.docs_dir`, writes only the
    /// four documents under `.pace/context/`.
    pub fn scribe(settings: &Settings, redactor: Redactor) -> std::io::Result<Self> {
        Self::new(
            Toolset::Scribe,
            &settings.repo_root,
            &[],
            settings.source.docs_dir.as_deref(),
            redactor,
            settings.sandbox.timeout,
        )
    }

    /// The general constructor (tests, or callers without [`Settings`]). `docs_dir` may be
    /// relative to `repo_root`; a missing one is ignored (`docs:` then reads the repository),
    /// and so is one that resolves outside the repository (an absolute path, `..`, a link):
    /// the config is the repository's, and `docs:` must not read the runner's files.
    pub fn new(
        toolset: Toolset,
        repo_root: &Path,
        writable_dirs: &[&str],
        docs_dir: Option<&Path>,
        redactor: Redactor,
        max_run_timeout: Duration,
    ) -> std::io::Result<Self> {
        let jail = paths::Jail::new(repo_root)?;
        let docs = docs_dir
            .map(|d| {
                if d.is_absolute() {
                    d.to_path_buf()
                } else {
                    repo_root.join(d)
                }
            })
            .and_then(|d| paths::Jail::new(&d).ok())
            .filter(|docs| docs.root().starts_with(jail.root()));
        let mut writable: Vec<String> = writable_dirs
            .iter()
            .map(|d| paths::normalise_dir(d))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        writable.sort();
        Ok(Self {
            toolset,
            jail,
            writable,
            docs,
            red_phase_confirmed: false,
            written: Vec::new(),
            docs_written: BTreeSet::new(),
            runner: None,
            redactor,
            max_run_timeout: max_run_timeout.max(Duration::from_secs(1)),
            max_tool_calls: DEFAULT_MAX_TOOL_CALLS,
            calls: 0,
            changed_by_call: ChangedByCall::new(),
        })
    }

    /// The sandbox session that runs `run` commands (FORGE).
    #[must_use]
    pub fn with_runner(mut self, runner: &'a mut dyn CommandRunner) -> Self {
        self.runner = Some(runner);
        self
    }

    /// Retry attempts start with the red phase confirmed (the tests exist already).
    #[must_use]
    pub fn with_red_phase_confirmed(mut self, confirmed: bool) -> Self {
        self.red_phase_confirmed = confirmed;
        self
    }

    #[must_use]
    pub fn with_max_tool_calls(mut self, max: u32) -> Self {
        self.max_tool_calls = max;
        self
    }

    /// Paths written in earlier turns (a resumed history), so they count as written.
    #[must_use]
    pub fn with_written(mut self, paths: impl IntoIterator<Item = String>) -> Self {
        for p in paths {
            self.record_written(p);
        }
        self
    }

    pub fn toolset(&self) -> Toolset {
        self.toolset
    }

    pub fn repo_root(&self) -> &Path {
        self.jail.root()
    }

    pub fn red_phase_confirmed(&self) -> bool {
        self.red_phase_confirmed
    }

    /// Repository-relative paths written this attempt (by `write_file` or changed by
    /// `run`), in the order of their first write.
    pub fn written_paths(&self) -> &[String] {
        &self.written
    }

    /// SCRIBE documents written this session (`product.md`, ...).
    pub fn docs_written(&self) -> &BTreeSet<String> {
        &self.docs_written
    }

    /// Tool calls dispatched so far.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// The paths each call of this attempt changed, by `tool_use` id: what
    /// [`evict_stale`] needs to know which earlier reads went stale.
    pub fn changed_by_call(&self) -> &ChangedByCall {
        &self.changed_by_call
    }

    pub(crate) fn record_written(&mut self, path: String) {
        if !self.written.contains(&path) {
            self.written.push(path);
        }
    }
}

#[cfg(test)]
mod tests;
