//! Raw file values → [`Settings`], with the semantic checks that need more than a type.
//!
//! Precedence, written down once (highest first):
//! 1. CLI: `--config PATH` chooses the file (see `config::load`); no other flag overrides a key.
//! 2. Environment: only *defaults* come from it, never overrides of a value in the file:
//!    `sandbox.image` defaults to `CI_JOB_IMAGE` when `GITLAB_CI` is `true`. The cache scope
//!    (not a key of the file) comes from `CI_COMMIT_REF_PROTECTED` / `BITBUCKET_BRANCH`.
//! 3. The file.
//! 4. [`Settings::defaults`], plus per-provider defaults (`llm.api_key_env`, `llm.model`).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::diagnostic::{Sink, suggest};
use super::raw::{At, RawConfig, RawLlm, RawLlmLimits, RawPrices, RawRelease, RawSandbox, RawSourceDir, RawTracker};
use super::settings::{
    CacheScope, ModelPrice, NetworkMode, PlatformKind, Provider, PullPolicy, Settings, SetupCommand, SourceDir,
    StructuredOutput, WorkspaceMode,
};
use crate::env::{self, Env};

/// Image used when neither the file nor the CI job names one.
pub const DEFAULT_SANDBOX_IMAGE: &str = "busybox:1.36";

fn val<T: Clone>(at: Option<&At<T>>) -> Option<T> {
    at.map(|a| a.value.clone())
}

/// One of a fixed set of words; an error (with a suggestion) otherwise.
fn choice<T: Copy>(at: &At<String>, path: &str, options: &[(&str, T)], sink: &mut Sink) -> Option<T> {
    let word = at.value.trim();
    if let Some((_, value)) = options.iter().find(|(name, _)| name.eq_ignore_ascii_case(word)) {
        return Some(*value);
    }
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let mut message = format!("`{path}`: unknown value `{word}`; expected one of {list}");
    if let Some(close) = suggest(word, &names) {
        message.push_str(&format!(" (did you mean `{close}`?)"));
    }
    sink.error(at.line, at.column, message);
    None
}

fn missing(sink: &mut Sink, line: u64, column: u64, key: &str, hint: &str) {
    let (line, column) = if line == 0 { (1, 1) } else { (line, column) };
    sink.error_hint(line, column, format!("missing required key `{key}`"), hint);
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A repository-relative directory: not absolute, no `..`; normalised with a trailing `/`.
fn relative_dir(at: &At<String>, path: &str, sink: &mut Sink) -> Option<String> {
    let text = at.value.trim();
    if text.is_empty() {
        sink.error(at.line, at.column, format!("`{path}` is empty"));
        return None;
    }
    let p = Path::new(text);
    if p.is_absolute() || text.starts_with('/') {
        sink.error_hint(
            at.line,
            at.column,
            format!("`{path}` is absolute (`{text}`)"),
            "write it relative to the repository root, e.g. `src/`",
        );
        return None;
    }
    if p.components().any(|c| c == Component::ParentDir) {
        sink.error_hint(
            at.line,
            at.column,
            format!("`{path}` leaves the repository (`{text}` contains `..`)"),
            "write it relative to the repository root, inside it",
        );
        return None;
    }
    if text.ends_with('/') {
        Some(text.to_string())
    } else {
        Some(format!("{text}/"))
    }
}

/// Merges the file onto `s`, one section at a time in the order of the file's documentation
/// (the order the diagnostics come out in).
pub(crate) fn resolve(raw: &RawConfig, mut s: Settings, env: &Env, sink: &mut Sink) -> Settings {
    let repo_root = s.repo_root.clone();
    let root = (raw.line.max(1), raw.column.max(1));
    resolve_product(raw, &mut s, root, sink);
    resolve_sprint(raw, &mut s, sink);
    resolve_source(raw, &mut s, &repo_root, root, sink);
    resolve_tech(raw, &mut s, root, sink);
    resolve_platform(raw, &mut s, sink);
    resolve_llm(raw, &mut s, &repo_root, sink);
    resolve_advisory_and_reporter(raw, &mut s);
    resolve_cost_control(raw, &mut s, sink);
    resolve_forge(raw, &mut s, sink);
    resolve_releases(raw, sink);
    resolve_sandbox(raw, &mut s, env, sink);
    resolve_budget(raw, &mut s, sink);
    resolve_git(raw, &mut s, sink);
    s
}

/// `root` is the position of the document, where a missing section is reported.
fn resolve_product(raw: &RawConfig, s: &mut Settings, root: (u64, u64), sink: &mut Sink) {
    let product = raw.product.as_ref().map(|p| &p.value);
    match product.and_then(|p| p.name.as_ref()) {
        Some(name) if name.value.trim().is_empty() => sink.error(name.line, name.column, "`product.name` is empty"),
        Some(name) => s.product.name = name.value.trim().to_string(),
        None if product.is_some_and(|p| p.reported("name")) => {}
        None => {
            let (l, c) = product.map_or(root, |p| (p.line, p.column));
            missing(sink, l, c, "product.name", "add `product: {name: My Shop}`");
        }
    }
    if let Some(d) = product.and_then(|p| val(p.description.as_ref())) {
        s.product.description = d.trim().to_string();
    }
}

fn resolve_sprint(raw: &RawConfig, s: &mut Settings, sink: &mut Sink) {
    let Some(sprint) = raw.sprint.as_ref().map(|s| &s.value) else {
        return;
    };
    if let Some(days) = &sprint.duration_days {
        if days.value == 0 {
            sink.error(days.line, days.column, "`sprint.duration_days` must be positive");
        } else {
            s.sprint.duration_days = days.value;
        }
    }
    if let Some(every) = val(sprint.clearance_every.as_ref()) {
        s.sprint.clearance_every = every;
    }
}

fn resolve_tech(raw: &RawConfig, s: &mut Settings, root: (u64, u64), sink: &mut Sink) {
    let tech = raw.tech.as_ref().map(|t| &t.value);
    match tech.and_then(|t| t.test_command.as_ref()) {
        Some(cmd) if cmd.value.trim().is_empty() => sink.error(cmd.line, cmd.column, "`tech.test_command` is empty"),
        Some(cmd) => s.tech.test_command = cmd.value.trim().to_string(),
        None if tech.is_some_and(|t| t.reported("test_command")) => {}
        None => {
            let (l, c) = tech.map_or(root, |t| (t.line, t.column));
            missing(
                sink,
                l,
                c,
                "tech.test_command",
                "the command GATE runs in the sandbox, e.g. `tech: {test_command: go test ./...}`",
            );
        }
    }
    let Some(tech) = tech else { return };
    if let Some(v) = val(tech.primary_language.as_ref()) {
        s.tech.primary_language = v;
    }
    s.tech.secondary_language = val(tech.secondary_language.as_ref()).or(s.tech.secondary_language.take());
    if let Some(v) = val(tech.ci_system.as_ref()) {
        s.tech.ci_system = v;
    }
    s.tech.build_command = val(tech.build_command.as_ref()).or(s.tech.build_command.take());
    if let Some(cmd) = &tech.setup_command {
        s.tech.setup_command = setup_command(&cmd.value);
    }
}

/// `tech.setup_command`: `false` or empty turns the phase off (a plain `false` arrives as
/// the text `false`: string fields take any scalar).
fn setup_command(value: &str) -> SetupCommand {
    match value.trim() {
        "" | "false" | "False" | "FALSE" => SetupCommand::Off,
        cmd => SetupCommand::Command(cmd.to_string()),
    }
}

/// `sandbox.setup_network`: `bridge`, `host`, `none`, or a network's name as Docker
/// spells it (letters, digits, `_`, `.`, `-`, starting with a letter or digit).
fn setup_network(at: &At<String>, sink: &mut Sink) -> Option<String> {
    let name = at.value.trim();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        return Some(name.to_string());
    }
    sink.error(
        at.line,
        at.column,
        format!(
            "`sandbox.setup_network`: `{name}` is not a network name; use `bridge` (the default), `host`, `none` or the name of a network on the Docker daemon (`docker network ls`)"
        ),
    );
    None
}

fn resolve_advisory_and_reporter(raw: &RawConfig, s: &mut Settings) {
    if let Some(a) = raw.advisory.as_ref().and_then(|a| val(a.value.push_to_issues.as_ref())) {
        s.advisory.push_to_issues = a;
    }
    if let Some(tz) = raw.reporter.as_ref().and_then(|r| val(r.value.timezone.as_ref())) {
        s.reporter.timezone = tz;
    }
}

fn resolve_cost_control(raw: &RawConfig, s: &mut Settings, sink: &mut Sink) {
    let Some(cc) = raw.cost_control.as_ref().map(|c| &c.value) else {
        return;
    };
    if let Some(v) = val(cc.max_story_ac.as_ref()) {
        s.cost_control.max_story_ac = v;
    }
    if let Some(v) = &cc.max_story_cost_usd {
        if v.value < 0.0 {
            sink.error(
                v.line,
                v.column,
                "`cost_control.max_story_cost_usd` must not be negative",
            );
        } else {
            s.cost_control.max_story_cost_usd = v.value;
        }
    }
}

fn resolve_budget(raw: &RawConfig, s: &mut Settings, sink: &mut Sink) {
    let Some(b) = raw.budget.as_ref().map(|b| &b.value) else {
        return;
    };
    if let Some(v) = &b.max_usd {
        if v.value <= 0.0 {
            sink.error(
                v.line,
                v.column,
                "`budget.max_usd` must be positive (leave it out for no limit)",
            );
        } else {
            s.budget.max_usd = Some(v.value);
        }
    }
    if let Some(v) = &b.max_tokens {
        if v.value == 0 {
            sink.error(
                v.line,
                v.column,
                "`budget.max_tokens` must be positive (leave it out for no limit)",
            );
        } else {
            s.budget.max_tokens = Some(v.value);
        }
    }
    if let Some(v) = &b.max_minutes {
        // Fractions are allowed (0.5 = 30 s); more than a week is surely a typo.
        if v.value > 0.0 && v.value <= 7.0 * 24.0 * 60.0 {
            s.budget.max_duration = Some(Duration::from_secs_f64(v.value * 60.0));
        } else {
            sink.error(
                v.line,
                v.column,
                "`budget.max_minutes` must be a positive number of minutes, at most 10080 (leave it out for no limit)",
            );
        }
    }
}

fn resolve_git(raw: &RawConfig, s: &mut Settings, sink: &mut Sink) {
    let Some(g) = raw.git.as_ref().map(|g| &g.value) else {
        return;
    };
    if let Some(v) = &g.author_name {
        if v.value.trim().is_empty() {
            sink.error(v.line, v.column, "`git.author_name` is empty");
        } else {
            s.git.author_name = v.value.trim().to_string();
        }
    }
    if let Some(v) = &g.author_email {
        if v.value.contains('@') && !v.value.contains(char::is_whitespace) {
            s.git.author_email.clone_from(&v.value);
        } else {
            sink.error(
                v.line,
                v.column,
                format!("`git.author_email`: `{}` is not an email address", v.value),
            );
        }
    }
}

fn resolve_source(raw: &RawConfig, s: &mut Settings, repo_root: &Path, root: (u64, u64), sink: &mut Sink) {
    let source = raw.source.as_ref().map(|x| &x.value);
    let dirs = source.and_then(|x| x.dirs.as_ref());
    let hint = "list the code directories, e.g. `source: {dirs: [{name: core, path: src/}]}`";
    match dirs {
        None if source.is_some_and(|x| x.reported("dirs")) => {}
        None => {
            let (l, c) = source.map_or(root, |x| (x.line, x.column));
            missing(sink, l, c, "source.dirs", hint);
        }
        Some(list) if list.value.is_empty() => {
            sink.error_hint(
                list.line,
                list.column,
                "`source.dirs` needs at least one entry with `name` and `path`",
                hint,
            );
        }
        Some(list) => {
            s.source.dirs = list
                .value
                .iter()
                .enumerate()
                .filter_map(|(i, dir)| source_dir(dir, &format!("source.dirs[{i}]"), repo_root, sink))
                .collect();
        }
    }
    let Some(source) = source else { return };
    if let Some(tests) = &source.test_dirs {
        s.source.test_dirs = tests
            .value
            .iter()
            .enumerate()
            .filter_map(|(i, t)| relative_dir(t, &format!("source.test_dirs[{i}]"), sink))
            .collect();
    }
    if let Some(docs) = &source.docs_dir {
        let dir = repo_root.join(docs.value.trim());
        if !dir.is_dir() {
            sink.warning(
                docs.line,
                docs.column,
                format!("`source.docs_dir` `{}` does not exist", docs.value.trim()),
            );
        }
        s.source.docs_dir = Some(dir);
    }
}

/// One entry of `source.dirs` (`base` is its path, `source.dirs[i]`); `None` when its name or
/// path is unusable (both are checked, so both problems are reported).
fn source_dir(dir: &At<RawSourceDir>, base: &str, repo_root: &Path, sink: &mut Sink) -> Option<SourceDir> {
    let d = &dir.value;
    let name = match &d.name {
        Some(n) if !n.value.trim().is_empty() => Some(n.value.trim().to_string()),
        Some(n) => {
            sink.error(n.line, n.column, format!("`{base}.name` is empty"));
            None
        }
        None if d.reported("name") => None,
        None => {
            missing(
                sink,
                dir.line,
                dir.column,
                &format!("{base}.name"),
                "a label such as `core`",
            );
            None
        }
    };
    let path = match &d.path {
        Some(p) => source_dir_path(p, base, repo_root, sink),
        None if d.reported("path") => None,
        None => {
            missing(
                sink,
                dir.line,
                dir.column,
                &format!("{base}.path"),
                "a directory relative to the repository root, e.g. `src/`",
            );
            None
        }
    };
    Some(SourceDir {
        name: name?,
        path: path?,
        language: val(d.language.as_ref()).unwrap_or_default(),
        description: val(d.description.as_ref()).unwrap_or_default(),
    })
}

/// `source.dirs[i].path`, normalised; warns when it lacks the trailing `/` or does not exist.
fn source_dir_path(p: &At<String>, base: &str, repo_root: &Path, sink: &mut Sink) -> Option<String> {
    relative_dir(p, &format!("{base}.path"), sink).inspect(|norm| {
        if !p.value.trim().ends_with('/') {
            sink.warning(
                p.line,
                p.column,
                format!("`{base}.path` should end with `/`; using `{norm}`"),
            );
        }
        if !repo_root.join(norm).is_dir() {
            sink.warning(p.line, p.column, format!("source directory `{norm}` does not exist"));
        }
    })
}

const UNSUPPORTED_PLATFORM_HINT: &str =
    "pace supports `gitlab`, `bitbucket` and `local`; set `platform.type` to one of them";

fn platform_kind(at: &At<String>, path: &str, sink: &mut Sink) -> Option<PlatformKind> {
    let word = at.value.trim().to_ascii_lowercase();
    if matches!(word.as_str(), "github" | "jenkins") {
        sink.error_hint(
            at.line,
            at.column,
            format!("`{path}`: pace does not support `{word}`"),
            UNSUPPORTED_PLATFORM_HINT,
        );
        return None;
    }
    let options = [
        ("local", PlatformKind::Local),
        ("gitlab", PlatformKind::Gitlab),
        ("bitbucket", PlatformKind::Bitbucket),
    ];
    choice(at, path, &options, sink)
}

fn resolve_platform(raw: &RawConfig, s: &mut Settings, sink: &mut Sink) {
    let Some(p) = raw.platform.as_ref().map(|p| &p.value) else {
        return;
    };
    let from_type = p.kind.as_ref().and_then(|k| platform_kind(k, "platform.type", sink));
    let from_ci = p.ci.as_ref().and_then(|k| platform_kind(k, "platform.ci", sink));
    if let (Some(t), Some(c), Some(ci)) = (from_type, from_ci, &p.ci)
        && t != c
    {
        sink.warning(
            ci.line,
            ci.column,
            "`platform.ci` differs from `platform.type`; `platform.type` is used",
        );
    }
    if let Some(kind) = from_type.or(from_ci) {
        s.platform.kind = kind;
    }
    if let Some(tracker) = &p.tracker {
        platform_tracker(tracker, s, sink);
    }
    if let Some(branch) = &p.target_branch {
        if branch.value.trim().is_empty() {
            sink.error(branch.line, branch.column, "`platform.target_branch` is empty");
        } else {
            s.platform.target_branch = Some(branch.value.trim().to_string());
        }
    }
    if let Some(wait) = val(p.wait_for_ci.as_ref()) {
        s.platform.wait_for_ci = wait;
    }
    if let Some(allow) = val(p.allow_default_branch.as_ref()) {
        s.platform.allow_default_branch = allow;
    }
    if let Some(push) = raw.advisory.as_ref().and_then(|a| a.value.push_to_issues.as_ref())
        && push.value
        && s.platform.kind == PlatformKind::Local
        && s.platform.tracker.is_none()
    {
        sink.warning(
            push.line,
            push.column,
            "`advisory.push_to_issues` has no effect with the local platform",
        );
    }
}

/// `platform.tracker`: a name, or a section with `type` and `project`. Only `jira` is a
/// tracker of its own; the platforms' names mean "the platform's issues".
fn platform_tracker(tracker: &At<RawTracker>, s: &mut Settings, sink: &mut Sink) {
    let (name, project) = match &tracker.value {
        RawTracker::Name(name) => (
            Some(At {
                value: name.clone(),
                line: tracker.line,
                column: tracker.column,
            }),
            None,
        ),
        RawTracker::Section(section) => (section.kind.clone(), val(section.project.as_ref())),
    };
    if let Some(name) = name {
        let word = name.value.trim().to_ascii_lowercase();
        match word.as_str() {
            "jira" => s.platform.tracker = Some("jira".into()),
            "github" | "jenkins" => sink.error_hint(
                name.line,
                name.column,
                format!("`platform.tracker`: pace does not support `{word}`"),
                "use `jira`, or leave `tracker` out to use the platform's own issues",
            ),
            "gitlab" | "bitbucket" | "local" => s.platform.tracker = None,
            _ => {
                let options = [("jira", ()), ("gitlab", ()), ("bitbucket", ()), ("local", ())];
                let _ = choice(&name, "platform.tracker", &options, sink);
            }
        }
    }
    s.platform.tracker_project = project;
}

fn resolve_llm(raw: &RawConfig, s: &mut Settings, repo_root: &Path, sink: &mut Sink) {
    let Some(section) = raw.llm.as_ref() else {
        return;
    };
    let llm = &section.value;
    if let Some(p) = &llm.provider {
        llm_provider(p, s, sink);
    }
    llm_models(section, s, sink);
    if let Some(url) = &llm.base_url {
        let u = url.value.trim();
        if u.starts_with("http://") || u.starts_with("https://") {
            s.llm.base_url = Some(u.trim_end_matches('/').to_string());
        } else {
            sink.error(
                url.line,
                url.column,
                format!("`llm.base_url`: `{u}` is not an http(s) URL"),
            );
        }
    }
    llm_api_key_env(llm, s, sink);
    llm_cassette(llm, s, repo_root, sink);
    if let Some(v) = val(llm.max_retries.as_ref()) {
        s.llm.max_retries = v;
    }
    if let Some(t) = &llm.timeout_seconds {
        if t.value == 0 {
            sink.error(t.line, t.column, "`llm.timeout_seconds` must be positive");
        } else {
            s.llm.request_timeout = Duration::from_secs(t.value);
        }
    }
    if let Some(limits) = llm.limits.as_ref().map(|l| &l.value) {
        llm_limits(limits, s, sink);
    }
    if let Some(prices) = llm.prices.as_ref().map(|p| &p.value) {
        llm_prices(prices, s, sink);
    }
    if let Some(mode) = &llm.structured_output {
        let options = [("auto", StructuredOutput::Auto), ("off", StructuredOutput::Off)];
        if let Some(mode) = choice(mode, "llm.structured_output", &options, sink) {
            s.llm.structured_output = mode;
        }
    }
}

/// `llm.prices.<model>`: `input` and `output` are required (a price without them would
/// silently count as free); the cache rates default to Anthropic's multiples of `input`
/// (reads 0.1×, 5-minute writes 1.25×). No value may be negative.
fn llm_prices(prices: &RawPrices, s: &mut Settings, sink: &mut Sink) {
    for (model, price) in &prices.0 {
        let p = &price.value;
        let name = &model.value;
        let mut ok = true;
        let mut rate = |at: Option<&At<f64>>, key: &str, required: bool| -> Option<f64> {
            match at {
                Some(v) if v.value < 0.0 => {
                    sink.error(
                        v.line,
                        v.column,
                        format!("`llm.prices.{name}.{key}` must not be negative"),
                    );
                    ok = false;
                    None
                }
                Some(v) => Some(v.value),
                None if required && !p.reported(key) => {
                    sink.error(
                        price.line,
                        price.column,
                        format!("`llm.prices.{name}` needs `{key}` (USD per million tokens)"),
                    );
                    ok = false;
                    None
                }
                None => None,
            }
        };
        let input = rate(p.input.as_ref(), "input", true);
        let output = rate(p.output.as_ref(), "output", true);
        let cache_read = rate(p.cache_read.as_ref(), "cache_read", false);
        let cache_write = rate(p.cache_write.as_ref(), "cache_write", false);
        if let (true, Some(input), Some(output)) = (ok, input, output) {
            s.llm.prices.push((
                name.clone(),
                ModelPrice {
                    input,
                    output,
                    cache_read: cache_read.unwrap_or(input * 0.1),
                    cache_write: cache_write.unwrap_or(input * 1.25),
                },
            ));
        }
    }
}

/// `llm.provider`; the original's `litellm` is read as `openai`, with a warning.
fn llm_provider(p: &At<String>, s: &mut Settings, sink: &mut Sink) {
    if p.value.trim().eq_ignore_ascii_case("litellm") {
        sink.warning_hint(
            p.line,
            p.column,
            "`llm.provider: litellm` is treated as `openai`",
            "write `provider: openai` (any OpenAI-compatible endpoint, set `llm.base_url`)",
        );
        s.llm.provider = Provider::OpenAi;
    } else {
        let options = [
            ("anthropic", Provider::Anthropic),
            ("openai", Provider::OpenAi),
            ("replay", Provider::Replay),
        ];
        if let Some(provider) = choice(p, "llm.provider", &options, sink) {
            s.llm.provider = provider;
        }
    }
}

/// `llm.model` (required for `openai`: there is no default model for an unknown endpoint) and
/// `llm.analysis_model` (defaults to `llm.model`). Runs after the provider is known.
fn llm_models(section: &At<RawLlm>, s: &mut Settings, sink: &mut Sink) {
    let llm = &section.value;
    match &llm.model {
        Some(m) if m.value.trim().is_empty() => sink.error(m.line, m.column, "`llm.model` is empty"),
        Some(m) => s.llm.model = m.value.trim().to_string(),
        None if s.llm.provider == Provider::OpenAi => {
            missing(
                sink,
                section.line,
                section.column,
                "llm.model",
                "name the model of your endpoint, e.g. `model: gpt-4o` or `model: qwen2.5-coder`",
            );
        }
        None => {}
    }
    s.llm.analysis_model =
        val(llm.analysis_model.as_ref()).map_or_else(|| s.llm.model.clone(), |m| m.trim().to_string());
}

/// `llm.api_key_env`: a variable name, defaulting per provider. Runs after the provider is known.
fn llm_api_key_env(llm: &RawLlm, s: &mut Settings, sink: &mut Sink) {
    s.llm.api_key_env = match &llm.api_key_env {
        Some(name) if is_var_name(name.value.trim()) => name.value.trim().to_string(),
        Some(name) => {
            sink.error_hint(
                name.line,
                name.column,
                format!("`llm.api_key_env`: `{}` is not a variable name", name.value),
                "name the variable that holds the key, not the key itself",
            );
            s.llm.api_key_env.clone()
        }
        None if s.llm.provider == Provider::OpenAi => env::OPENAI_API_KEY.to_string(),
        None => env::ANTHROPIC_API_KEY.to_string(),
    };
}

/// `llm.cassette` (relative to the repository root), which the `replay` provider requires.
fn llm_cassette(llm: &RawLlm, s: &mut Settings, repo_root: &Path, sink: &mut Sink) {
    if let Some(c) = &llm.cassette {
        let p = PathBuf::from(c.value.trim());
        s.llm.cassette = Some(if p.is_absolute() { p } else { repo_root.join(p) });
    }
    if s.llm.provider == Provider::Replay && s.llm.cassette.is_none() {
        let at = llm.provider.as_ref();
        let (l, c) = at.map_or((1, 1), |a| (a.line, a.column));
        sink.error_hint(
            l,
            c,
            "`llm.provider: replay` needs `llm.cassette`",
            "point `llm.cassette` at a recorded `.pace/day-N/transcript.jsonl`",
        );
    }
}

/// `llm.limits.*`: token limits, each positive.
fn llm_limits(limits: &RawLlmLimits, s: &mut Settings, sink: &mut Sink) {
    let mut positive = |at: Option<&At<u32>>, key: &str| -> Option<u32> {
        let at = at?;
        if at.value == 0 {
            sink.error(at.line, at.column, format!("`llm.limits.{key}` must be positive"));
            return None;
        }
        Some(at.value)
    };
    if let Some(v) = positive(limits.forge_output_tokens.as_ref(), "forge_output_tokens") {
        s.llm.forge_max_tokens = v;
    }
    if let Some(v) = positive(limits.analysis_output_tokens.as_ref(), "analysis_output_tokens") {
        s.llm.analysis_max_tokens = v;
    }
    if let Some(v) = positive(limits.forge_input_tokens.as_ref(), "forge_input_tokens") {
        s.input_limits.forge_input_tokens = v;
    }
    if let Some(v) = positive(limits.analysis_input_tokens.as_ref(), "analysis_input_tokens") {
        s.input_limits.analysis_input_tokens = v;
    }
}

fn resolve_forge(raw: &RawConfig, s: &mut Settings, sink: &mut Sink) {
    let Some(f) = raw.forge.as_ref().map(|f| &f.value) else {
        return;
    };
    if let Some(v) = val(f.tdd_enforcement.as_ref()) {
        s.forge.tdd_enforcement = v;
    }
    if let Some(v) = val(f.coverage_rule.as_ref()) {
        s.forge.coverage_rule = v;
    }
    if let Some(v) = &f.max_iterations {
        if v.value < 1 {
            sink.error(v.line, v.column, "`forge.max_iterations` must be at least 1");
        } else {
            s.forge.max_iterations = v.value;
        }
    }
    if let Some(v) = &f.retry_iterations {
        if v.value >= 100 {
            sink.error(v.line, v.column, "`forge.retry_iterations` is a percentage below 100");
        } else {
            s.forge.retry_iterations = v.value;
        }
    }
    if let Some(v) = val(f.max_retries.as_ref()) {
        s.forge.max_retries = v;
    }
    if let Some(v) = val(f.setup_on_change.as_ref()) {
        s.forge.setup_on_change = v;
    }
}

/// `releases[]` / `release`: accepted and checked as the original's tester does; no behaviour.
fn resolve_releases(raw: &RawConfig, sink: &mut Sink) {
    if let (Some(_), Some(legacy)) = (&raw.releases, &raw.release) {
        sink.warning(
            legacy.line,
            legacy.column,
            "`release` is ignored because `releases` is set",
        );
    }
    if let Some(legacy) = &raw.release {
        check_release(legacy, "release", sink);
    }
    let Some(list) = &raw.releases else { return };
    if list.value.is_empty() {
        sink.error(list.line, list.column, "`releases` is empty");
        return;
    }
    let mut names: Vec<&str> = Vec::new();
    let mut active = 0;
    for (i, r) in list.value.iter().enumerate() {
        let path = format!("releases[{i}]");
        check_release(r, &path, sink);
        if let Some(name) = &r.value.name {
            if names.contains(&name.value.as_str()) {
                sink.error(
                    name.line,
                    name.column,
                    format!("duplicate release name `{}`", name.value),
                );
            }
            names.push(&name.value);
        }
        if r.value
            .status
            .as_ref()
            .is_none_or(|s| s.value.trim().eq_ignore_ascii_case("active"))
        {
            active += 1;
        }
    }
    if active != 1 {
        sink.error(
            list.line,
            list.column,
            format!("exactly one release must be `active`, found {active}"),
        );
    }
}

/// One release (`path` is `release` or `releases[i]`): a name, positive day counts, a sprint
/// no longer than its release, a known status.
fn check_release(r: &At<RawRelease>, path: &str, sink: &mut Sink) {
    let v = &r.value;
    if !v.reported("name") && v.name.as_ref().is_none_or(|n| n.value.trim().is_empty()) {
        missing(
            sink,
            r.line,
            r.column,
            &format!("{path}.name"),
            "name the release, e.g. `name: v1`",
        );
    }
    for (at, key) in [(&v.release_days, "release_days"), (&v.sprint_days, "sprint_days")] {
        if let Some(at) = at
            && at.value == 0
        {
            sink.error(at.line, at.column, format!("`{path}.{key}` must be positive"));
        }
    }
    if let (Some(r_days), Some(s_days)) = (&v.release_days, &v.sprint_days)
        && s_days.value > r_days.value
    {
        sink.error(
            s_days.line,
            s_days.column,
            format!("`{path}.sprint_days` is larger than `{path}.release_days`"),
        );
    }
    if let Some(status) = &v.status {
        let options = [("active", ()), ("completed", ()), ("planned", ())];
        let _ = choice(status, &format!("{path}.status"), &options, sink);
    }
}

/// Which cache volume this run may write. GitLab says whether the ref is protected (the
/// same split as GitLab's own `cache:` separation); Bitbucket Pipelines does not, so each
/// branch gets its own; outside CI the checked-out branch decides (see [`CacheScope`]).
fn cache_scope(env: &Env) -> CacheScope {
    if let Some(protected) = env.get(env::CI_COMMIT_REF_PROTECTED) {
        return if protected.trim() == "true" {
            CacheScope::Protected
        } else {
            CacheScope::Unprotected
        };
    }
    if env.in_gitlab_ci() {
        return CacheScope::Unprotected;
    }
    if let Some(branch) = env.get(env::BITBUCKET_BRANCH) {
        return CacheScope::Branch(branch.to_string());
    }
    if env.get(env::BITBUCKET_BUILD_NUMBER).is_some() {
        return CacheScope::Unprotected;
    }
    CacheScope::Checkout
}

fn resolve_sandbox(raw: &RawConfig, s: &mut Settings, env: &Env, sink: &mut Sink) {
    let sandbox = raw.sandbox.as_ref().map(|x| &x.value);
    s.sandbox.image = sandbox_image(sandbox, env, sink);
    s.sandbox.cache_scope = cache_scope(env);
    let Some(x) = sandbox else { return };
    if let Some(n) = &x.network {
        let options = [
            ("none", NetworkMode::None),
            ("bridge", NetworkMode::Bridge),
            ("host", NetworkMode::Host),
        ];
        if let Some(network) = choice(n, "sandbox.network", &options, sink) {
            s.sandbox.network = network;
        }
    }
    if let Some(vars) = &x.env {
        s.sandbox.env = sandbox_env(vars, sink);
    }
    if let Some(m) = val(x.memory.as_ref()) {
        s.sandbox.memory_bytes = m.0;
    }
    sandbox_cpus_and_pids(x, s, sink);
    if let Some(t) = val(x.timeout.as_ref()) {
        s.sandbox.timeout = t.0;
    }
    if let Some(u) = &x.user {
        sandbox_user(u, s, sink);
    }
    if let Some(k) = val(x.keep.as_ref()) {
        s.sandbox.keep = k;
    }
    if let Some(c) = val(x.caches.as_ref()) {
        s.sandbox.caches = c;
    }
    if let Some(l) = val(x.log_limit.as_ref()) {
        s.sandbox.log_limit = l.0;
    }
    if let Some(globs) = &x.collect {
        s.sandbox.collect = collect_globs(globs, sink);
    }
    if let Some(w) = &x.workspace {
        let options = [("upload", WorkspaceMode::Upload), ("bind", WorkspaceMode::Bind)];
        if let Some(mode) = choice(w, "sandbox.workspace", &options, sink) {
            s.sandbox.workspace = mode;
        }
    }
    if let Some(p) = &x.pull {
        let options = [
            ("if-not-present", PullPolicy::IfNotPresent),
            ("always", PullPolicy::Always),
            ("never", PullPolicy::Never),
        ];
        if let Some(policy) = choice(p, "sandbox.pull", &options, sink) {
            s.sandbox.pull = policy;
        }
    }
    if let Some(n) = &x.setup_network
        && let Some(network) = setup_network(n, sink)
    {
        s.sandbox.setup_network = network;
    }
    if let Some(list) = &x.egress {
        s.sandbox.egress = egress(list, sink);
        egress_network(list, &s.sandbox.setup_network, sink);
    }
    if let Some(t) = &x.egress_for_tests {
        s.sandbox.egress_for_tests = t.value;
        if t.value && s.sandbox.egress.is_empty() {
            sink.error(
                t.line,
                t.column,
                "`sandbox.egress_for_tests: true` needs the hosts in `sandbox.egress` (a preset such as `go` or `npm`, or host names)",
            );
        }
    }
}

/// `sandbox.egress`: presets ([`crate::proxy::PRESETS`]) and host names (`name`,
/// `*.suffix`, optionally `:port`), each checked where it is written. A word without a
/// dot must be a preset, so that a misspelt preset is not taken for a host.
fn egress(list: &At<Vec<At<String>>>, sink: &mut Sink) -> Vec<crate::proxy::Entry> {
    let presets: Vec<&str> = crate::proxy::PRESETS.iter().map(|(name, _)| *name).collect();
    let mut entries = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let text = item.value.trim();
        if let Some(hosts) = crate::proxy::preset(text) {
            entries.extend(hosts);
            continue;
        }
        let host = text.rsplit_once(':').map_or(text, |(h, _)| h);
        let result = if host.contains('.') {
            crate::proxy::Entry::parse(text)
        } else {
            let mut why = format!("`{text}` is not a preset");
            if let Some(close) = suggest(text, &presets) {
                why.push_str(&format!(" (did you mean `{close}`?)"));
            }
            Err(why)
        };
        match result {
            Ok(entry) => entries.push(entry),
            Err(why) => sink.error_hint(
                item.line,
                item.column,
                format!("`sandbox.egress[{i}]`: {why}"),
                format!(
                    "write a preset ({}) or a host name such as `repo.example.com`, `*.example.com` or `repo.example.com:8443`",
                    presets.join(", ")
                ),
            ),
        }
    }
    entries.dedup();
    entries
}

/// The proxy needs a network with a route out beside the set-up's internal one: `host`
/// and `none` cannot be one of several networks.
fn egress_network(list: &At<Vec<At<String>>>, setup_network: &str, sink: &mut Sink) {
    if list.value.is_empty() || !matches!(setup_network, "host" | "none") {
        return;
    }
    sink.error_hint(
        list.line,
        list.column,
        format!(
            "`sandbox.egress` cannot be used with `sandbox.setup_network: {setup_network}`: pace's proxy joins the set-up's internal network and `setup_network` for its route out, and `{setup_network}` cannot be combined with another network"
        ),
        "set `sandbox.setup_network` to `bridge` or the name of a network with a route out (`docker network create`), or remove `sandbox.egress` to give the set-up that network directly",
    );
}

/// `sandbox.image`, else the CI job's own image on GitLab, else [`DEFAULT_SANDBOX_IMAGE`].
fn sandbox_image(sandbox: Option<&RawSandbox>, env: &Env, sink: &mut Sink) -> String {
    let file_image = sandbox.and_then(|x| x.image.as_ref()).and_then(|image| {
        if image.value.trim().is_empty() {
            sink.error(image.line, image.column, "`sandbox.image` is empty");
            None
        } else {
            Some(image.value.trim().to_string())
        }
    });
    let ci_image = env
        .in_gitlab_ci()
        .then(|| env.get(env::CI_JOB_IMAGE))
        .flatten()
        .map(str::to_string);
    file_image
        .or(ci_image)
        .unwrap_or_else(|| DEFAULT_SANDBOX_IMAGE.to_string())
}

/// `sandbox.env`: names only (values come from pace's environment); names that look like
/// secrets are passed, with a warning.
fn sandbox_env(vars: &At<Vec<At<String>>>, sink: &mut Sink) -> Vec<String> {
    let mut names = Vec::new();
    for (i, var) in vars.value.iter().enumerate() {
        let name = var.value.trim();
        if !is_var_name(name) {
            sink.error_hint(
                var.line,
                var.column,
                format!("`sandbox.env[{i}]`: `{name}` is not a variable name"),
                "list names only; values come from pace's environment",
            );
            continue;
        }
        let upper = name.to_ascii_uppercase();
        // `DOCKER_AUTH_CONFIG` holds registry passwords though its name says neither.
        if env::SECRET_NAME_FRAGMENTS.iter().any(|f| upper.contains(f)) || upper == "DOCKER_AUTH_CONFIG" {
            sink.warning(
                var.line,
                var.column,
                format!("`sandbox.env` passes `{name}` into the sandbox; it looks like a secret"),
            );
        }
        names.push(name.to_string());
    }
    names
}

fn sandbox_cpus_and_pids(x: &RawSandbox, s: &mut Settings, sink: &mut Sink) {
    if let Some(c) = &x.cpus {
        if c.value > 0.0 {
            s.sandbox.cpus = c.value;
        } else {
            sink.error(c.line, c.column, "`sandbox.cpus` must be positive");
        }
    }
    if let Some(p) = &x.pids_limit {
        if p.value > 0 {
            s.sandbox.pids_limit = p.value;
        } else {
            sink.error(p.line, p.column, "`sandbox.pids_limit` must be positive");
        }
    }
}

/// `sandbox.user`: `user`, `uid` or `uid:gid`.
fn sandbox_user(u: &At<String>, s: &mut Settings, sink: &mut Sink) {
    let user = u.value.trim();
    let valid = !user.is_empty()
        && user.split(':').count() <= 2
        && user
            .split(':')
            .all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
    if valid {
        s.sandbox.user = Some(user.to_string());
    } else {
        sink.error(
            u.line,
            u.column,
            format!("`sandbox.user`: `{user}` is not `user`, `uid` or `uid:gid`"),
        );
    }
}

/// `sandbox.collect`: the globs that parse; each one that does not is an error.
fn collect_globs(globs: &At<Vec<At<String>>>, sink: &mut Sink) -> Vec<String> {
    let mut out = Vec::new();
    for (i, g) in globs.value.iter().enumerate() {
        match globset::Glob::new(g.value.trim()) {
            Ok(_) => out.push(g.value.trim().to_string()),
            Err(err) => sink.error(
                g.line,
                g.column,
                format!("`sandbox.collect[{i}]`: invalid glob: {}", err.kind()),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(pairs: &[(&str, &str)]) -> CacheScope {
        cache_scope(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn cache_scope_follows_the_ci_environment() {
        let gitlab = [(env::GITLAB_CI, "true")];
        assert_eq!(
            scope(&[gitlab[0], (env::CI_COMMIT_REF_PROTECTED, "true")]),
            CacheScope::Protected
        );
        assert_eq!(
            scope(&[gitlab[0], (env::CI_COMMIT_REF_PROTECTED, "false")]),
            CacheScope::Unprotected
        );
        // An unknown value, or an old GitLab without the variable, is not protected.
        assert_eq!(
            scope(&[gitlab[0], (env::CI_COMMIT_REF_PROTECTED, "TRUE ish")]),
            CacheScope::Unprotected
        );
        assert_eq!(scope(&gitlab), CacheScope::Unprotected);
        assert_eq!(
            scope(&[(env::BITBUCKET_BUILD_NUMBER, "7"), (env::BITBUCKET_BRANCH, "feature/x")]),
            CacheScope::Branch("feature/x".into())
        );
        assert_eq!(scope(&[(env::BITBUCKET_BUILD_NUMBER, "7")]), CacheScope::Unprotected);
        assert_eq!(scope(&[]), CacheScope::Checkout);
        // `GITLAB_CI=false` (a job script run by hand) is not a GitLab job.
        assert_eq!(scope(&[(env::GITLAB_CI, "false")]), CacheScope::Checkout);
    }

    #[test]
    fn sandbox_env_warns_about_every_credential_it_passes() {
        let at = |value: &str| At {
            value: value.to_string(),
            line: 1,
            column: 1,
        };
        let vars = At {
            value: vec![at("GOFLAGS"), at("DOCKER_AUTH_CONFIG"), at("NPM_TOKEN")],
            line: 1,
            column: 1,
        };
        let mut sink = Sink::new(PathBuf::from("pace.config.yaml"));
        assert_eq!(sandbox_env(&vars, &mut sink).len(), 3);
        let warned: Vec<&str> = sink.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(warned[0].contains("`DOCKER_AUTH_CONFIG`"), "{warned:?}");
    }
}
