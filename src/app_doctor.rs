//! `pace doctor`: checks what a day needs, without an LLM call; one line per check and a
//! hint for each failure. Exits 0 when everything passed, 4 otherwise (2 for the config).

use std::path::Path;

use crate::config::settings::Provider;
use crate::env::Env;
use crate::error::{ExitKind, Hint, PaceError};

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    hint: Option<String>,
}

pub async fn doctor(explicit: Option<&Path>, env: &Env) -> Result<u8, PaceError> {
    let mut checks = Vec::new();
    let root = crate::app::repo_root()?;
    let loaded = crate::config::load(&root, explicit, env);
    let settings = match loaded {
        Ok(l) => {
            checks.push(Check {
                name: "config",
                ok: true,
                detail: format!(
                    "{} ({} days planned)",
                    l.settings.config_path.display(),
                    l.plan.days.len()
                ),
                hint: None,
            });
            Some(l.settings)
        }
        Err(e) => {
            checks.push(Check {
                name: "config",
                ok: false,
                detail: PaceError::from(e).message,
                hint: Some("run `pace validate` for every problem with its position".into()),
            });
            None
        }
    };
    match crate::git::Git::open(&root, "pace", "pace@localhost") {
        Ok(git) => match git.current_branch() {
            Ok(branch) => checks.push(Check {
                name: "git",
                ok: true,
                detail: format!("on branch `{branch}`"),
                hint: None,
            }),
            Err(e) => checks.push(Check {
                name: "git",
                ok: false,
                detail: e.to_string(),
                hint: e.hint(),
            }),
        },
        Err(e) => checks.push(Check {
            name: "git",
            ok: false,
            detail: e.to_string(),
            hint: e.hint(),
        }),
    }
    if let Some(settings) = &settings {
        checks.push(llm_key_check(settings, env));
        match settings.platform.kind {
            crate::config::settings::PlatformKind::Bitbucket => checks.extend(bitbucket_checks(settings, env).await),
            crate::config::settings::PlatformKind::Gitlab => checks.extend(gitlab_checks(settings, env).await),
            crate::config::settings::PlatformKind::Local => {}
        }
        let endpoint = crate::sandbox::Endpoint::from_env(env);
        for c in crate::sandbox::doctor::diagnose(&settings.sandbox, &endpoint, &root).await {
            checks.push(Check {
                name: c.name,
                ok: c.ok,
                detail: c.detail,
                hint: c.hint,
            });
        }
    }
    let mut failed = false;
    for c in &checks {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        println!("{mark} {:<8} {}", c.name, c.detail);
        if let Some(h) = &c.hint
            && !c.ok
        {
            println!("     hint: {h}");
        }
        failed |= !c.ok;
    }
    if failed {
        let config_failed = checks.iter().any(|c| c.name == "config" && !c.ok);
        return Ok(if config_failed {
            ExitKind::Config.code()
        } else {
            ExitKind::Infrastructure.code()
        });
    }
    Ok(0)
}

fn llm_key_check(settings: &crate::config::settings::Settings, env: &Env) -> Check {
    let llm = &settings.llm;
    match llm.provider {
        Provider::Replay => Check {
            name: "llm",
            ok: llm
                .cassette
                .as_ref()
                .is_some_and(|c| settings.repo_root.join(c).is_file()),
            detail: format!(
                "replay from `{}`",
                llm.cassette
                    .as_ref()
                    .map(|c| c.display().to_string())
                    .unwrap_or_default()
            ),
            hint: Some("set `llm.cassette` to a `transcript.jsonl` recorded by pace".into()),
        },
        _ => {
            let present = env.get(&llm.api_key_env).is_some();
            let optional = llm.provider == Provider::OpenAi && llm.base_url.is_some();
            Check {
                name: "llm",
                ok: present || optional,
                detail: if present {
                    format!("`{}` is set", llm.api_key_env)
                } else {
                    format!("`{}` is not set", llm.api_key_env)
                },
                hint: Some(format!("add `{}` as a masked CI/CD variable", llm.api_key_env)),
            }
        }
    }
}

/// GitLab: variables, token and `api` scope, project, target branch (read-only calls).
async fn gitlab_checks(settings: &crate::config::settings::Settings, env: &Env) -> Vec<Check> {
    let redactor = crate::day::redactor_for(env, settings);
    crate::platform::gitlab::doctor(env, &settings.platform, redactor)
        .await
        .into_iter()
        .map(|c| Check {
            name: c.name,
            ok: c.ok,
            detail: c.detail,
            hint: c.hint,
        })
        .collect()
}

/// Bitbucket: credential, token valid, repository found, target branch exists, and Jira
/// reachable when it is the tracker. Read-only calls; no LLM.
async fn bitbucket_checks(settings: &crate::config::settings::Settings, env: &Env) -> Vec<Check> {
    let fail = |name: &'static str, detail: String, hint: Option<String>| Check {
        name,
        ok: false,
        detail,
        hint,
    };
    let redactor = crate::day::redactor_for(env, settings);
    let platform = match crate::platform::bitbucket_platform(&settings.platform, env, redactor) {
        Ok(p) => p,
        Err(e) => return vec![fail("bitbucket", e.message, e.hint)],
    };
    let repo = format!("{}/{}", platform.config().workspace, platform.config().slug);
    let mut checks = Vec::new();
    match platform.check_token().await {
        Ok(detail) => checks.push(Check {
            name: "token",
            ok: true,
            detail,
            hint: None,
        }),
        Err(e) => {
            checks.push(fail(
                "token",
                e.with_advice(),
                Some("create a repository access token (repository:write, pullrequest:write, pipeline:write) as BITBUCKET_ACCESS_TOKEN, or a user API token with scopes as BITBUCKET_API_TOKEN with BITBUCKET_EMAIL".into()),
            ));
            return checks;
        }
    }
    match platform.repository().await {
        Ok(_) => checks.push(Check {
            name: "repo",
            ok: true,
            detail: format!("repository `{repo}` found"),
            hint: None,
        }),
        Err(e) => {
            checks.push(fail(
                "repo",
                e.with_advice(),
                Some("check BITBUCKET_WORKSPACE and BITBUCKET_REPO_SLUG (Pipelines injects them when Pipelines is enabled)".into()),
            ));
            return checks;
        }
    }
    let branch = platform.target_branch().await;
    match branch {
        Ok(b) => match platform.branch_exists(&b).await {
            Ok(true) => checks.push(Check {
                name: "branch",
                ok: true,
                detail: format!("target branch `{b}` exists"),
                hint: None,
            }),
            Ok(false) => checks.push(fail(
                "branch",
                format!("target branch `{b}` does not exist in `{repo}`"),
                Some("set `platform.target_branch` to an existing branch, or push it first".into()),
            )),
            Err(e) => checks.push(fail("branch", e.with_advice(), None)),
        },
        Err(e) => checks.push(fail("branch", e.with_advice(), None)),
    }
    match platform.jira() {
        Some(jira) => match jira.check().await {
            Ok(detail) => checks.push(Check {
                name: "jira",
                ok: true,
                detail,
                hint: None,
            }),
            Err(e) => checks.push(fail(
                "jira",
                e.with_advice(),
                Some("check JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and `platform.tracker.project`".into()),
            )),
        },
        None => checks.push(Check {
            name: "tracker",
            ok: true,
            detail: "no Jira: a HOLD is a FAILED build status, a Code Insights report and .pace/day-N/escalation.md (Bitbucket Issues were removed on 2026-08-20)".into(),
            hint: None,
        }),
    }
    checks
}
