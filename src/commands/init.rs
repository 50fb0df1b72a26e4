//! `pace init`: detects the stack, the platform and the CI environment, writes a commented
//! `pace.config.yaml`, a `plan.yaml` skeleton and the platform's CI file, and says what to
//! do next. It never replaces a file without `--force`: when one exists it names them all
//! and writes nothing (exit 2). Questions only on a terminal and without `--yes`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use super::common;
use crate::env::Env;
use crate::error::PaceError;

mod detect;
mod render;

use detect::{Platform, Profile, Stack};
use render::Provider;

/// The flags of `pace init`.
pub(super) struct Args {
    pub(super) yes: bool,
    pub(super) force: bool,
}

/// What the files are made for: detected, then confirmed on a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Choice {
    stack: Option<Stack>,
    /// Where the stack was seen (`go.mod`), or `your answer`.
    stack_from: String,
    platform: Platform,
    platform_from: String,
    provider: Provider,
}

/// The line `pace-env.env` gets in `.gitignore`: the dotenv report is written at the root
/// on every run (GitLab's `artifacts:reports:dotenv` reads it there) and is never committed.
const DOTENV_IGNORE: &str = "/pace-env.env";

pub(super) fn run(args: Args, config: Option<&Path>, env: &Env) -> Result<u8, PaceError> {
    if let Some(path) = config {
        // Written anywhere else, the config would not be found without `--config` on every
        // later command: refuse rather than ignore the flag.
        return Err(PaceError::config(format!(
            "`pace init` writes pace.config.yaml at the repository root, not at `{}`",
            path.display()
        ))
        .with_hint("run `pace init` without `--config`, then move the files if you need them elsewhere"));
    }
    let root = common::repo_root()?;
    let found = detect::stacks(&root);
    let choice = choose(&root, &found, args.yes, env)?;
    let Some(stack) = choice.stack else {
        return Err(no_stack());
    };
    let profile = Profile::of(stack, &root);
    let product = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "my-product".to_string());
    let files = render::files(&render::Inputs {
        product: &product,
        profile: &profile,
        stack_from: &choice.stack_from,
        platform: choice.platform,
        provider: choice.provider,
    });

    let existing = existing_files(&root, &files, args.force)?;
    // A link or a special file where a file goes is refused before anything is written, so
    // a refusal never leaves half of the files behind (also with `--force`).
    for name in files.iter().map(|(name, _)| *name).chain([".gitignore"]) {
        crate::safe_write::check(&root, &root.join(name), false).map_err(|e| PaceError::from_error(&e))?;
    }

    println!(
        "pace init: {} (from {}), platform {} ({}), provider {}",
        profile.language,
        choice.stack_from,
        choice.platform.key(),
        choice.platform_from,
        choice.provider.key()
    );
    for (name, text) in &files {
        crate::safe_write::write(&root, &root.join(name), text.as_bytes()).map_err(|e| PaceError::from_error(&e))?;
        let verb = if existing.contains(name) { "replaced" } else { "wrote" };
        println!("{verb} {name}");
    }
    if existing.contains(&LEGACY_CONFIG) {
        println!("note: `{LEGACY_CONFIG}` stays, but pace now reads `pace.config.yaml` (remove the old one)");
    }
    if ignore_dotenv(&root)? {
        println!("added {DOTENV_IGNORE} to .gitignore (the dotenv report pace writes on every run)");
    }
    for (other, file) in found.iter().filter(|(s, _)| Some(*s) != choice.stack) {
        println!(
            "note: {file} ({}) is here too; pace.config.yaml is for {} (`tech.test_command` can run both)",
            other.key(),
            profile.language
        );
    }
    println!("\nNext:\n{}", next_steps(choice.platform, choice.provider));
    Ok(0)
}

/// What was detected, confirmed by a person on a terminal (unless `--yes`).
fn choose(root: &Path, found: &[(Stack, String)], yes: bool, env: &Env) -> Result<Choice, PaceError> {
    let origin = crate::git::Git::open(root, "pace", "pace@example.invalid")
        .ok()
        .and_then(|git| git.remote_url("origin"));
    let (platform, platform_from) = detect::platform(origin.as_deref(), env);
    let mut choice = Choice {
        stack: found.first().map(|(s, _)| *s),
        stack_from: found.first().map(|(_, f)| f.clone()).unwrap_or_default(),
        platform,
        platform_from,
        provider: Provider::Anthropic,
    };
    if !yes && std::io::stdin().is_terminal() {
        let stdin = std::io::stdin();
        confirm(&mut choice, &mut stdin.lock(), &mut std::io::stderr())
            .map_err(|e| PaceError::config(format!("cannot read the answer from the terminal: {e}")))?;
    }
    Ok(choice)
}

/// The config of the Python PACE layout: a root config would silently take its place.
const LEGACY_CONFIG: &str = "pace/pace.config.yaml";

/// The files of `files` (and [`LEGACY_CONFIG`]) that exist; an error naming them all
/// unless `force`.
fn existing_files(root: &Path, files: &[(&'static str, String)], force: bool) -> Result<Vec<&'static str>, PaceError> {
    let existing: Vec<&'static str> = files
        .iter()
        .map(|(name, _)| *name)
        .chain([LEGACY_CONFIG])
        .filter(|name| root.join(name).symlink_metadata().is_ok())
        .collect();
    if existing.is_empty() || force {
        return Ok(existing);
    }
    Err(PaceError::config(format!(
        "{} already exist{}: `pace init` replaces no file without `--force`, so it wrote nothing",
        existing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
        if existing.len() == 1 { "s" } else { "" }
    ))
    .with_hint("check them with `pace validate`, or run `pace init --force` to replace them"))
}

fn no_stack() -> PaceError {
    PaceError::config(
        "`pace init` found no manifest it knows at the repository root (go.mod, package.json, pom.xml, build.gradle(.kts), *.csproj, *.sln, Cargo.toml, pyproject.toml)",
    )
    .with_hint(
        "run it at the root of your project, run it in a terminal to choose the stack, or write pace.config.yaml by hand (README, \"Configuration\")",
    )
}

/// Adds [`DOTENV_IGNORE`] to the root `.gitignore` unless a line ignores it already;
/// whether it did.
fn ignore_dotenv(root: &Path) -> Result<bool, PaceError> {
    let path = root.join(".gitignore");
    let current = crate::safe_write::read_to_string(root, &path)
        .map_err(|e| PaceError::from_error(&e))?
        .unwrap_or_default();
    let ignored = current
        .lines()
        .map(str::trim)
        .any(|l| l == "pace-env.env" || l == DOTENV_IGNORE);
    if ignored {
        return Ok(false);
    }
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "# pace's dotenv report (exported by the CI job, never committed)\n{DOTENV_IGNORE}\n"
    ));
    crate::safe_write::write(root, &path, text.as_bytes()).map_err(|e| PaceError::from_error(&e))?;
    Ok(true)
}

/// The two things left to do: the credentials, then `pace doctor` and the first day.
fn next_steps(platform: Platform, provider: Provider) -> String {
    let key = provider.key_variable();
    match platform {
        Platform::Gitlab => format!(
            "  1. Add the CI/CD variables (Settings → CI/CD → Variables, masked): GITLAB_TOKEN (a project\n     \
             access token with the scopes `api` and `write_repository`, role Developer) and {key}\n  \
             2. Run `pace doctor`, then commit these files, push a sprint branch and run the pipeline\n     \
             on it (Build → Pipelines → Run pipeline, DAY=next)"
        ),
        Platform::Bitbucket => format!(
            "  1. Add the secured repository variables (Repository settings → Pipelines → Repository\n     \
             variables): BITBUCKET_ACCESS_TOKEN (a repository access token with repository:write,\n     \
             pullrequest:write and pipeline:write) and {key}\n  \
             2. Run `pace doctor`, then commit these files, push a sprint branch and run the custom\n     \
             pipeline `pace-day` on it (DAY=next)"
        ),
        Platform::Local => format!(
            "  1. Set the LLM key in your shell: `export {key}=...`\n  \
             2. Run `pace doctor`, then commit these files on a sprint branch (`git checkout -b sprint/1`)\n     \
             and run `pace --day next`"
        ),
    }
}

/// The questions on a terminal: stack, platform and provider, each with the detected
/// answer as the default (Enter keeps it).
fn confirm(choice: &mut Choice, input: &mut impl BufRead, out: &mut impl Write) -> std::io::Result<()> {
    let stacks: Vec<&str> = Stack::ALL.iter().map(|s| s.key()).collect();
    let detected = choice.stack.map(Stack::key);
    let answer = ask(input, out, "Stack", &stacks, detected)?;
    if let Some(stack) = Stack::from_key(&answer)
        && Some(stack) != choice.stack
    {
        choice.stack = Some(stack);
        choice.stack_from = "your answer".into();
    }
    let platforms: Vec<&str> = Platform::ALL.iter().map(|p| p.key()).collect();
    let answer = ask(input, out, "Platform", &platforms, Some(choice.platform.key()))?;
    if let Some(platform) = Platform::from_key(&answer)
        && platform != choice.platform
    {
        choice.platform = platform;
        choice.platform_from = "your answer".into();
    }
    let providers: Vec<&str> = Provider::ALL.iter().map(|p| p.key()).collect();
    let answer = ask(input, out, "LLM provider", &providers, Some(choice.provider.key()))?;
    if let Some(provider) = Provider::from_key(&answer) {
        choice.provider = provider;
    }
    Ok(())
}

/// One question until the answer is one of `choices` (Enter: `default`). The end of the
/// input gives the default (or an empty answer when there is none).
fn ask(
    input: &mut impl BufRead,
    out: &mut impl Write,
    question: &str,
    choices: &[&str],
    default: Option<&str>,
) -> std::io::Result<String> {
    loop {
        match default {
            Some(d) => write!(out, "{question} [{}] ({d}): ", choices.join("/"))?,
            None => write!(out, "{question} [{}]: ", choices.join("/"))?,
        }
        out.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            writeln!(out)?;
            return Ok(default.unwrap_or_default().to_string());
        }
        let answer = line.trim().to_ascii_lowercase();
        match (answer.as_str(), default) {
            ("", Some(d)) => return Ok(d.to_string()),
            (a, _) if choices.contains(&a) => return Ok(a.to_string()),
            _ => writeln!(out, "  choose one of: {}", choices.join(", "))?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detected() -> Choice {
        Choice {
            stack: Some(Stack::Go),
            stack_from: "go.mod".into(),
            platform: Platform::Local,
            platform_from: "no `origin` remote".into(),
            provider: Provider::Anthropic,
        }
    }

    #[test]
    fn enter_keeps_what_was_detected() {
        let mut choice = detected();
        let mut out = Vec::new();
        confirm(&mut choice, &mut "\n\n\n".as_bytes(), &mut out).unwrap();
        assert_eq!(choice, detected());
        let shown = String::from_utf8(out).unwrap();
        assert!(
            shown.contains("Stack [go/npm/pnpm/yarn/maven/gradle/dotnet/rust/python] (go): "),
            "{shown}"
        );
    }

    #[test]
    fn answers_change_the_choice_and_a_wrong_one_is_asked_again() {
        let mut choice = detected();
        let mut out = Vec::new();
        confirm(&mut choice, &mut "cobol\nRust\ngitlab\nopenai\n".as_bytes(), &mut out).unwrap();
        assert_eq!(choice.stack, Some(Stack::Rust));
        assert_eq!(choice.stack_from, "your answer");
        assert_eq!(choice.platform, Platform::Gitlab);
        assert_eq!(choice.provider, Provider::OpenAi);
        assert!(String::from_utf8(out).unwrap().contains("choose one of: go, npm"));
    }

    #[test]
    fn no_stack_and_no_answer_stays_without_a_stack() {
        let mut choice = Choice {
            stack: None,
            ..detected()
        };
        confirm(&mut choice, &mut "".as_bytes(), &mut Vec::new()).unwrap();
        assert_eq!(choice.stack, None);
    }

    #[test]
    fn the_dotenv_report_is_ignored_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gitignore"), "target").unwrap();
        assert!(ignore_dotenv(dir.path()).unwrap());
        assert!(!ignore_dotenv(dir.path()).unwrap());
        let text = std::fs::read_to_string(dir.path().join(".gitignore")).unwrap();
        assert!(text.starts_with("target\n# pace's dotenv report"), "{text}");
        assert_eq!(text.matches(DOTENV_IGNORE).count(), 1);
    }
}
