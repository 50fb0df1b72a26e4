//! `pace doctor`: checks what a day needs, without an LLM call; one line per check and a
//! hint for each failure. Exits 0 when everything passed, 4 otherwise (2 for the config).

use std::path::Path;

use crate::config::settings::Provider;
use crate::env::Env;
use crate::error::{ExitKind, PaceError};

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
