//! Finding, reading and checking `pace.config.yaml` and `plan.yaml` in one go.

use std::fmt;
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Severity, Sink, display_path};
use super::plan::{self, Plan};
use super::raw::{FromNode, RawConfig};
use super::resolve::resolve;
use super::settings::Settings;
use super::yaml;
use crate::env::Env;
use crate::error::{ExitKind, PaceError};

pub const CONFIG_FILE: &str = "pace.config.yaml";
pub const PLAN_FILE: &str = "plan.yaml";

/// A config and plan without errors (warnings may remain).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    pub plan: Plan,
    pub warnings: Vec<Diagnostic>,
}

/// Everything wrong with the config and the plan: errors AND warnings, config first, each file
/// in source order. `is_plan_error` is true when only the plan has errors (exit 3, else 2).
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
    pub is_plan_error: bool,
}

impl ConfigError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors().count();
        let what = if self.is_plan_error { "plan" } else { "configuration" };
        write!(f, "invalid {what}: {count} error{}", if count == 1 { "" } else { "s" })?;
        for d in &self.diagnostics {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl crate::error::Hint for ConfigError {
    /// The hints are inside the diagnostics, next to the position they are about.
    fn exit_kind(&self) -> Option<ExitKind> {
        Some(if self.is_plan_error {
            ExitKind::Plan
        } else {
            ExitKind::Config
        })
    }
}

impl From<ConfigError> for PaceError {
    fn from(err: ConfigError) -> Self {
        PaceError::from_error(&err)
    }
}

/// The config file: `explicit` (relative paths are taken from `repo_root`), else
/// `<repo>/pace.config.yaml`, else `<repo>/pace/pace.config.yaml`.
pub fn discover(repo_root: &Path, explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let fail = |file: PathBuf, message: String, hint: &str| ConfigError {
        diagnostics: vec![Diagnostic {
            file,
            line: 0,
            column: 0,
            severity: Severity::Error,
            message,
            hint: Some(hint.to_string()),
        }],
        is_plan_error: false,
    };
    if let Some(path) = explicit {
        let path = repo_root.join(path);
        if path.is_file() {
            return Ok(path);
        }
        let shown = display_path(repo_root, &path);
        return Err(fail(
            shown.clone(),
            format!("config file `{}` (from `--config`) does not exist", shown.display()),
            "check the path given to `--config`",
        ));
    }
    let candidates = [repo_root.join(CONFIG_FILE), repo_root.join("pace").join(CONFIG_FILE)];
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    Err(fail(
        PathBuf::from(CONFIG_FILE),
        format!(
            "no config file: looked for `{CONFIG_FILE}` and `pace/{CONFIG_FILE}` in `{}`",
            repo_root.display()
        ),
        "create `pace.config.yaml` at the repository root (see the README), or pass `--config PATH`",
    ))
}

/// Reads, checks and resolves the config and its plan. All problems of both files are
/// collected before returning; see [`ConfigError`].
pub fn load(repo_root: &Path, explicit_config: Option<&Path>, env: &Env) -> Result<Loaded, ConfigError> {
    let config_path = discover(repo_root, explicit_config)?;
    let plan_path = config_path
        .parent()
        .map_or_else(|| repo_root.join(PLAN_FILE), |dir| dir.join(PLAN_FILE));

    let mut config_sink = Sink::new(display_path(repo_root, &config_path));
    let mut settings = Settings::defaults(repo_root.to_path_buf());
    settings.config_path.clone_from(&config_path);
    settings.plan_path.clone_from(&plan_path);
    let settings = yaml::read_source(&config_path, &mut config_sink)
        .and_then(|text| yaml::parse(&text, &mut config_sink))
        .and_then(|root| RawConfig::from_node(&root, "", &mut config_sink))
        .map(|raw| resolve(&raw, settings, env, &mut config_sink));

    let mut plan_sink = Sink::new(display_path(repo_root, &plan_path));
    let plan = if plan_path.is_file() {
        yaml::read_source(&plan_path, &mut plan_sink).and_then(|text| plan::parse(&text, &mut plan_sink))
    } else {
        plan_sink.error_hint(
            0,
            0,
            format!("no plan: `{}` does not exist", plan_sink.file().display()),
            "put `plan.yaml` beside the config file, with `days: [{day: 1, target: ...}]`",
        );
        None
    };
    if let (Some(settings), Some(plan)) = (&settings, &plan) {
        let duration = settings.sprint.duration_days;
        for d in plan.days.iter().filter(|d| d.day > duration) {
            plan_sink.warning(
                0,
                0,
                format!(
                    "day {} is beyond `sprint.duration_days` ({duration}) and cannot run",
                    d.day
                ),
            );
        }
    }

    let config_failed = config_sink.has_errors() || settings.is_none();
    let plan_failed = plan_sink.has_errors() || plan.is_none();
    let mut diagnostics = config_sink.diagnostics;
    diagnostics.sort_by_key(|d| (d.line, d.column));
    let mut plan_diagnostics = plan_sink.diagnostics;
    plan_diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics.extend(plan_diagnostics);
    match (settings, plan) {
        (Some(settings), Some(plan)) if !config_failed && !plan_failed => Ok(Loaded {
            settings,
            plan,
            warnings: diagnostics,
        }),
        _ => Err(ConfigError {
            diagnostics,
            is_plan_error: !config_failed,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_error_exits_3_and_a_config_error_2() {
        let plan = ConfigError {
            diagnostics: Vec::new(),
            is_plan_error: true,
        };
        assert_eq!(PaceError::from(plan).kind, ExitKind::Plan);
        let config = ConfigError {
            diagnostics: Vec::new(),
            is_plan_error: false,
        };
        assert_eq!(PaceError::from(config).kind, ExitKind::Config);
    }
}
