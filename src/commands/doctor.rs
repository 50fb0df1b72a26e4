//! `pace doctor`: checks what a day needs, without an LLM call. The config, git, the LLM
//! settings, the platform and the sandbox each give [`Check`]s; they are rendered here,
//! one line per check and a hint for each failure. Exits 0 when everything passed, 2 when
//! the config failed, 4 otherwise.

use std::path::Path;

use super::common;
use crate::check::Check;
use crate::config::settings::{Provider, Settings};
use crate::env::Env;
use crate::error::{ExitKind, Hint as _, PaceError};

pub(super) async fn run(explicit: Option<&Path>, env: &Env) -> Result<u8, PaceError> {
    let root = common::repo_root()?;
    let (config, settings) = config_check(&root, explicit, env);
    let mut checks = vec![config, git_check(&root)];
    if let Some(settings) = &settings {
        checks.push(llm_check(settings, env));
        checks.extend(llm_server_check(settings, env).await);
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

/// The config and the plan load; the settings, when they do.
fn config_check(root: &Path, explicit: Option<&Path>, env: &Env) -> (Check, Option<Settings>) {
    match crate::config::load(root, explicit, env) {
        Ok(l) => {
            let detail = format!(
                "{} ({} days planned)",
                l.settings.config_path.display(),
                l.plan.days.len()
            );
            (Check::ok("config", detail), Some(l.settings))
        }
        Err(e) => {
            let check = Check::fail("config", PaceError::from(e).message)
                .with_hint("run `pace validate` for every problem with its position");
            (check, None)
        }
    }
}

/// The repository opens and is on a branch.
fn git_check(root: &Path) -> Check {
    let branch = crate::git::Git::open(root, "pace", "pace@localhost").and_then(|git| git.current_branch());
    match branch {
        Ok(branch) => Check::ok("git", format!("on branch `{branch}`")),
        Err(e) => Check::fail("git", e.to_string()).with_hints(e.hint()),
    }
}

/// The provider can be called: its key is set (not needed for an OpenAI-compatible
/// server at `llm.base_url`), or the replay cassette exists.
/// A self-hosted server behind `llm.base_url` (llama.cpp) that would drop the tools.
async fn llm_server_check(settings: &Settings, env: &Env) -> Option<Check> {
    let llm = &settings.llm;
    let base_url = llm.base_url.as_deref().filter(|_| llm.provider != Provider::Replay)?;
    crate::llm::probe::llama_cpp_tools(base_url, env.get(&llm.api_key_env)).await
}

fn llm_check(settings: &Settings, env: &Env) -> Check {
    let llm = &settings.llm;
    if llm.provider == Provider::Replay {
        let cassette = llm.cassette.as_ref();
        let ok = cassette.is_some_and(|c| settings.repo_root.join(c).is_file());
        let shown = cassette.map(|c| c.display().to_string()).unwrap_or_default();
        return Check::new("llm", ok, format!("replay from `{shown}`"))
            .with_hint("set `llm.cassette` to a `transcript.jsonl` recorded by pace");
    }
    let present = env.get(&llm.api_key_env).is_some();
    let optional = llm.provider == Provider::OpenAi && llm.base_url.is_some();
    let detail = if present {
        format!("`{}` is set", llm.api_key_env)
    } else {
        format!("`{}` is not set", llm.api_key_env)
    };
    Check::new("llm", present || optional, detail)
        .with_hint(format!("add `{}` as a masked CI/CD variable", llm.api_key_env))
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
