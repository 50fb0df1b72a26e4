//! The files `pace init` writes, as text: a commented `pace.config.yaml`, a `plan.yaml`
//! skeleton with one example day, and the CI file of the platform (the templates under
//! `templates/`, embedded, with the stack's runner image).

use super::detect::{Platform, Profile, Stack};

/// The GitLab template, copied as `.gitlab-ci.yml` (a self-contained file: the CI/CD
/// component needs the path the project publishes pace's component under, which pace cannot
/// know).
const GITLAB_TEMPLATE: &str = include_str!("../../../templates/gitlab/pace-day.yml");
const BITBUCKET_TEMPLATE: &str = include_str!("../../../templates/bitbucket/bitbucket-pipelines.yml");
/// The image line of both templates, replaced by the stack's runner image.
const TEMPLATE_IMAGE: &str = "image: pace/runner-go:0.1\n";

/// `llm.provider` as `pace init` writes it (`replay` is for recorded runs, not a start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provider {
    Anthropic,
    OpenAi,
}

impl Provider {
    pub(super) const ALL: [Provider; 2] = [Provider::Anthropic, Provider::OpenAi];

    pub(super) fn key(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
        }
    }

    pub(super) fn from_key(word: &str) -> Option<Provider> {
        let word = word.trim().to_ascii_lowercase();
        Provider::ALL.into_iter().find(|p| p.key() == word)
    }

    /// The variable that holds the key (`llm.api_key_env`'s default).
    pub(super) fn key_variable(self) -> &'static str {
        match self {
            Provider::Anthropic => crate::env::ANTHROPIC_API_KEY,
            Provider::OpenAi => crate::env::OPENAI_API_KEY,
        }
    }
}

/// What the files are rendered from.
#[derive(Debug, Clone)]
pub(super) struct Inputs<'a> {
    pub(super) product: &'a str,
    pub(super) profile: &'a Profile,
    /// Where the stack was seen (`go.mod`), or `chosen` when a person picked it.
    pub(super) stack_from: &'a str,
    pub(super) platform: Platform,
    pub(super) provider: Provider,
}

/// Every file to write, relative to the repository root, in the order they are written.
pub(super) fn files(inputs: &Inputs<'_>) -> Vec<(&'static str, String)> {
    let mut files = vec![
        (crate::config::load::CONFIG_FILE, config(inputs)),
        (crate::config::load::PLAN_FILE, plan(inputs)),
    ];
    if let (Some(name), Some(text)) = (inputs.platform.ci_file(), ci_file(inputs.platform, inputs.profile)) {
        files.push((name, text));
    }
    files
}

/// `pace.config.yaml`: only the keys a newcomer decides, each with why; the rest keeps
/// pace's defaults (README "Configuration").
pub(super) fn config(inputs: &Inputs<'_>) -> String {
    let p = inputs.profile;
    let mut out = String::new();
    out.push_str(&format!(
        "# pace.config.yaml, written by `pace init`: {} (from {}), platform {}.\n",
        p.language,
        inputs.stack_from,
        inputs.platform.key()
    ));
    out.push_str(
        "# Every key is described in pace's README (\"Configuration\"). `pace validate` checks this\n\
         # file and plan.yaml; `pace doctor` checks Docker, the sandbox image, git and the LLM key.\n\n",
    );
    out.push_str(&format!(
        "product:\n  name: {}\n  # description: what the product is and who uses it (every agent reads it)\n\n",
        scalar(inputs.product)
    ));
    out.push_str("sprint:\n  duration_days: 10   # plan.yaml may not plan beyond this day\n\n");
    out.push_str(&source(p));
    out.push_str(&tech(p));
    out.push_str(&llm(inputs.provider));
    out.push_str(&sandbox(p, inputs.platform));
    out.push_str("budget:\n  max_usd: 5.0        # per run: the day stops with exit 5, its work so far committed\n\n");
    out.push_str(&platform(inputs.platform));
    out
}

fn source(p: &Profile) -> String {
    let mut out = String::from("# FORGE writes only in these directories (and in test_dirs).\nsource:\n  dirs:\n");
    if p.source_dirs == ["./"] {
        out.push_str(
            "    # None of the usual source directories exists: the whole repository (except pace's\n    \
             # files and the CI configuration). Name the directories of your code instead.\n",
        );
    }
    for dir in &p.source_dirs {
        out.push_str(&format!(
            "    - name: {}\n      path: {}\n      language: {}\n",
            scalar(&dir_label(dir)),
            scalar(dir),
            scalar(p.language)
        ));
    }
    if p.test_dirs.is_empty() {
        let why = if p.stack == Stack::Go {
            "Go keeps its tests beside the code"
        } else {
            "none of the usual test directories exists"
        };
        out.push_str(&format!("  # test_dirs: [tests/]   # {why}\n\n"));
    } else {
        let dirs: Vec<String> = p.test_dirs.iter().map(|d| scalar(d)).collect();
        out.push_str(&format!("  test_dirs: [{}]\n\n", dirs.join(", ")));
    }
    out
}

/// A label for a source directory: its last component (`src/main/` → `main`).
fn dir_label(dir: &str) -> String {
    dir.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|l| !l.is_empty() && *l != ".")
        .unwrap_or("root")
        .to_string()
}

fn tech(p: &Profile) -> String {
    let mut out = format!(
        "tech:\n  primary_language: {}\n  # GATE runs the test command in the sandbox; its exit status is the verdict.\n  test_command: {}\n",
        scalar(p.language),
        scalar(&p.test_command)
    );
    if let Some(build) = &p.build_command {
        out.push_str(&format!("  build_command: {}\n", scalar(build)));
    }
    out.push_str("  # FORGE and GATE run without network: the set-up phase fetches the dependencies first.\n");
    if p.setup_is_default {
        out.push_str(&format!(
            "  # This is its default for {}; uncomment to change it (`false` turns the phase off):\n",
            p.language
        ));
    } else {
        out.push_str(&format!(
            "  # It has no default for {}: uncomment this suggestion to fetch them:\n",
            p.language
        ));
    }
    out.push_str(&format!("  # setup_command: {}\n\n", scalar(&p.setup_command)));
    out
}

fn llm(provider: Provider) -> String {
    match provider {
        Provider::Anthropic => "llm:\n  \
             provider: anthropic                          # anthropic | openai (any compatible server)\n  \
             model: claude-sonnet-4-6                     # FORGE and SCRIBE\n  \
             analysis_model: claude-haiku-4-5-20251001    # PRIME, GATE, SENTINEL, CONDUIT\n  \
             # api_key_env: ANTHROPIC_API_KEY             # the variable that holds the key\n\n"
            .to_string(),
        Provider::OpenAi => "llm:\n  \
             provider: openai                             # anthropic | openai (any compatible server)\n  \
             model: gpt-4o                                # FORGE and SCRIBE\n  \
             analysis_model: gpt-4o-mini                  # PRIME, GATE, SENTINEL, CONDUIT\n  \
             # base_url: http://localhost:11434/v1        # another server: Ollama, vLLM, a gateway\n  \
             # api_key_env: OPENAI_API_KEY                # the variable that holds the key\n\n"
            .to_string(),
    }
}

fn sandbox(p: &Profile, platform: Platform) -> String {
    let mut out = String::from("# GATE's tests and FORGE's commands run in a container of this image.\nsandbox:\n");
    match (platform, p.stack.runner_image()) {
        (Platform::Gitlab, Some(runner)) => out.push_str(&format!(
            "  # In GitLab CI the default is the job's own image (`CI_JOB_IMAGE`, {runner} in\n  \
             # .gitlab-ci.yml), which has the toolchain. Elsewhere (`pace gate`, a day run on your\n  \
             # machine) the default is busybox: uncomment to use the runner image there too.\n  \
             # image: {runner}\n"
        )),
        (Platform::Gitlab, None) => out.push_str(&format!(
            "  image: {}   # the job image ({}) has pace but no {} toolchain\n",
            p.sandbox_image(),
            p.job_image(),
            p.language
        )),
        (_, Some(_)) => out.push_str(&format!(
            "  image: {}   # the runner image of {}: the toolchain, git and pace\n",
            p.sandbox_image(),
            p.stack.key()
        )),
        (_, None) => out.push_str(&format!(
            "  image: {}   # the official {} toolchain image\n",
            p.sandbox_image(),
            p.language
        )),
    }
    out.push_str("  network: none       # none | bridge | host\n\n");
    out
}

fn platform(platform: Platform) -> String {
    let detail = match platform {
        Platform::Gitlab => {
            "  # target_branch: main        # default: the project's default branch\n  \
             # Credentials: GITLAB_TOKEN (and GITLAB_PROJECT, GITLAB_URL outside GitLab CI).\n"
        }
        Platform::Bitbucket => {
            "  # target_branch: main        # default: the repository's main branch\n  \
             # tracker: jira               # HOLD escalations as Jira issues (JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN)\n  \
             # Credentials: BITBUCKET_ACCESS_TOKEN, or BITBUCKET_EMAIL + BITBUCKET_API_TOKEN.\n"
        }
        Platform::Local => {
            "  # The merge request and the escalation are written as files under .pace/day-N/.\n  \
             # gitlab | bitbucket open them on the platform instead.\n"
        }
    };
    format!(
        "# Where SHIP opens the merge request and HOLD the escalation.\nplatform:\n  type: {}\n{detail}",
        platform.key()
    )
}

/// `plan.yaml`: the legacy `days:` format (what the original's template ships), one day.
pub(super) fn plan(inputs: &Inputs<'_>) -> String {
    format!(
        "# plan.yaml, written by `pace init`: one entry per sprint day. `pace --day next` runs the\n\
         # first day that has not shipped; `pace --day N` runs day N.\n\
         # Per day: `target` (one story: what to build), `gate_criterion` (what GATE must see),\n\
         # `human_gate: true` (stop for a person's review), `notes`, `week` and `week_label`.\n\
         pace_version: \"1.0\"\n\
         product: {}\n\
         days:\n  \
           - day: 1\n    \
             week: 1\n    \
             week_label: Foundations\n    \
             target: Add a health check that reports the version (replace this example with your first story)\n    \
             gate_criterion: the test command passes, with a test for the health check\n  \
           # - day: 2\n  \
           #   target: the next story\n",
        scalar(inputs.product)
    )
}

/// The CI file of `platform` (none for local): its template with the stack's image.
pub(super) fn ci_file(platform: Platform, p: &Profile) -> Option<String> {
    let template = match platform {
        Platform::Gitlab => GITLAB_TEMPLATE,
        Platform::Bitbucket => BITBUCKET_TEMPLATE,
        Platform::Local => return None,
    };
    let image = p.job_image();
    let comment = if p.stack.runner_image().is_some() {
        String::new()
    } else {
        // The job only needs pace and git; the toolchain is the sandbox's (pace.config.yaml).
        format!(
            "# No runner image for {}: pace only needs git and Docker here; the tests run in\n# `sandbox.image` ({}, pace.config.yaml).\n",
            p.language,
            p.sandbox_image()
        )
    };
    let indent = match platform {
        Platform::Gitlab => "  ",
        _ => "",
    };
    let comment = comment.lines().fold(String::new(), |mut out, l| {
        out.push_str(indent);
        out.push_str(l);
        out.push('\n');
        out
    });
    let line = format!("{indent}{TEMPLATE_IMAGE}");
    Some(template.replacen(&line, &format!("{comment}{indent}image: {image}\n"), 1))
}

/// `value` as a YAML scalar: plain when that reads back as the same string, else
/// double-quoted (JSON's escaping is valid YAML).
fn scalar(value: &str) -> String {
    let plain = !value.is_empty()
        && value.trim() == value
        && !value.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`~".contains(c))
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.ends_with(':')
        && !matches!(
            value.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~"
        )
        && value.parse::<f64>().is_err()
        && value.chars().all(|c| !c.is_control());
    if plain {
        value.to_string()
    } else {
        serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_still_have_the_image_line_init_replaces() {
        assert!(GITLAB_TEMPLATE.contains(&format!("  {TEMPLATE_IMAGE}")));
        assert!(
            BITBUCKET_TEMPLATE.starts_with(TEMPLATE_IMAGE)
                || BITBUCKET_TEMPLATE.contains(&format!("\n{TEMPLATE_IMAGE}"))
        );
    }

    /// Every stack, platform and provider: the config and the plan load without an error
    /// or a warning (the integration tests snapshot a subset and run `pace validate`).
    #[test]
    fn every_combination_loads_cleanly() {
        for stack in Stack::ALL {
            let dir = tempfile::tempdir().unwrap();
            let profile = Profile::of(stack, dir.path());
            for platform in Platform::ALL {
                for provider in Provider::ALL {
                    let inputs = Inputs {
                        product: "yes",
                        profile: &profile,
                        stack_from: "a test",
                        platform,
                        provider,
                    };
                    for (name, text) in files(&inputs) {
                        std::fs::write(dir.path().join(name), text).unwrap();
                    }
                    let what = format!("{stack:?} {platform:?} {provider:?}");
                    match crate::config::load(dir.path(), None, &crate::env::Env::default()) {
                        Ok(loaded) => {
                            assert!(loaded.warnings.is_empty(), "{what}: {:?}", loaded.warnings);
                            assert_eq!(loaded.settings.product.name, "yes", "{what}");
                            assert_eq!(loaded.settings.tech.test_command, profile.test_command, "{what}");
                        }
                        Err(e) => panic!("{what}: {e}"),
                    }
                }
            }
        }
    }

    #[test]
    fn scalars_are_quoted_only_when_yaml_would_misread_them() {
        assert_eq!(scalar("go test ./..."), "go test ./...");
        assert_eq!(scalar("shop"), "shop");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("1.0"), "\"1.0\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("#x"), "\"#x\"");
        assert_eq!(dir_label("src/main/"), "main");
        assert_eq!(dir_label("./"), "root");
    }
}
