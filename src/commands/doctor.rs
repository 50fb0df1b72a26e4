//! `pace doctor`: checks what a day needs, without an LLM call. The config, git, the LLM
//! settings, the platform and the sandbox each give [`Check`]s; they are rendered here,
//! one line per check and a hint for each failure. Exits 0 when everything passed, 2 when
//! the config failed, 4 otherwise.

use std::path::Path;

use super::common;
use crate::check::Check;
use crate::env::Env;
use crate::error::{ExitKind, PaceError};

pub(super) async fn run(explicit: Option<&Path>, env: &Env) -> Result<u8, PaceError> {
    let root = common::repo_root()?;
    let (config, settings) = crate::config::doctor(&root, explicit, env);
    let mut checks = vec![config, crate::git::doctor(&root)];
    if let Some(settings) = &settings {
        checks.extend(crate::llm::probe::doctor(&settings.llm, &settings.repo_root, env).await);
        let redactor = crate::day::redactor_for(env, settings);
        checks.extend(crate::platform::doctor(&settings.platform, env, redactor).await);
        let endpoint = crate::sandbox::Endpoint::from_env(env);
        let login = crate::sandbox::registry::RegistryLogin::from_env(env);
        let setup = crate::sandbox::setup::command_for(&settings.tech, &root);
        checks.extend(
            crate::sandbox::doctor::diagnose(&settings.sandbox, &login, &endpoint, &root, setup.as_deref()).await,
        );
    }
    print!("{}", render(&checks));
    Ok(exit_code(&checks))
}

/// The one rendering of checks: `ok  `/`FAIL`, the name, the detail; a failed check's
/// hints on the lines below.
fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        out.push_str(&format!("{mark} {:<8} {}\n", c.name, c.detail));
        if !c.ok {
            for hint in &c.hints {
                out.push_str(&format!("     hint: {hint}\n"));
            }
        }
    }
    out
}

/// 0 when every check passed; 2 when the config did not load (nothing else can be
/// trusted then); 4 for any other failure.
fn exit_code(checks: &[Check]) -> u8 {
    if checks.iter().all(|c| c.ok) {
        0
    } else if checks.iter().any(|c| c.name == "config" && !c.ok) {
        ExitKind::Config.code()
    } else {
        ExitKind::Infrastructure.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_shows_its_hints_and_a_passed_one_does_not() {
        let checks = [
            Check::ok("llm", "`KEY` is set").with_hint("not shown"),
            Check::fail("docker", "no daemon").with_hint("start it"),
        ];
        assert_eq!(
            render(&checks),
            "ok   llm      `KEY` is set\nFAIL docker   no daemon\n     hint: start it\n"
        );
    }

    #[test]
    fn the_config_failing_exits_2_any_other_failure_4() {
        let ok = Check::ok("git", "on branch `main`");
        assert_eq!(exit_code(std::slice::from_ref(&ok)), 0);
        let docker = Check::fail("docker", "down");
        assert_eq!(exit_code(&[ok.clone(), docker.clone()]), 4);
        assert_eq!(exit_code(&[Check::fail("config", "bad"), ok, docker]), 2);
    }
}
