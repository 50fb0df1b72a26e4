//! Configuration: `pace.config.yaml` (root, else `pace/pace.config.yaml`) and `plan.yaml`.
//!
//! Public API (what the rest of pace calls):
//! - [`load`]`(repo_root, explicit_config, env) -> Result<Loaded, ConfigError>`: finds the
//!   config (`--config PATH`, else `pace.config.yaml`, else `pace/pace.config.yaml`), reads it
//!   and `plan.yaml` beside it, and reports every problem of both files at once.
//! - [`Loaded`] `{ settings, plan, warnings }`; [`ConfigError`] `{ diagnostics, is_plan_error }`
//!   (`impl From<ConfigError> for PaceError`: exit 2, or 3 when only the plan is wrong).
//! - [`Diagnostic`] `{ file, line, column, severity, message, hint }`, displayed as
//!   `file:line:column: error: message` (+ `\n  hint: ...`).
//! - [`select_day`]`(settings, plan, day, plan_file) -> Result<PlanDay, PaceError>` (exit 3).
//! - [`discover`]`(repo_root, explicit) -> Result<PathBuf, ConfigError>`.
//!
//! Inside: `yaml` (positioned node tree, budgets), `raw` (the file's keys, type-driven),
//! `resolve` (semantic checks, precedence, → `settings::Settings`).
pub mod diagnostic;
pub mod load;
pub mod plan;
pub mod raw;
pub mod resolve;
pub mod settings;
pub mod yaml;

pub use diagnostic::{Diagnostic, Severity};
pub use load::{ConfigError, Loaded, discover, load};
pub use plan::{Plan, PlanDay, select_day};

/// `pace doctor`'s `config` check: the config and the plan load; the settings, when they do.
pub fn doctor(
    root: &std::path::Path,
    explicit: Option<&std::path::Path>,
    env: &crate::env::Env,
) -> (crate::check::Check, Option<settings::Settings>) {
    use crate::check::Check;
    match load(root, explicit, env) {
        Ok(l) => {
            let detail = format!(
                "{} ({} days planned)",
                l.settings.config_path.display(),
                l.plan.days.len()
            );
            (Check::ok("config", detail), Some(l.settings))
        }
        Err(e) => {
            let check = Check::fail("config", crate::error::PaceError::from(e).message)
                .with_hint("run `pace validate` for every problem with its position");
            (check, None)
        }
    }
}
