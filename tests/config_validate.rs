//! Integration tests: config_validate — `pace::config::load` on a corpus of broken configs and
//! plans (`tests/fixtures/config/`), both plan formats, day selection and precedence.

use std::path::{Path, PathBuf};

use pace::config::{self, ConfigError, Loaded, Severity};
use pace::env::Env;
use pace::error::{ExitKind, PaceError};

const MINIMAL_CONFIG: &str =
    "product:\n  name: Shop\ntech:\n  test_command: make test\nsource:\n  dirs:\n    - {name: core, path: src/}\n";
const MINIMAL_PLAN: &str = "days:\n  - day: 1\n    target: Login\n";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn fixture(name: &str) -> Vec<u8> {
    match std::fs::read(fixtures().join(name)) {
        Ok(bytes) => bytes,
        Err(err) => panic!("fixture {name}: {err}"),
    }
}

/// A temp repository with `src/`, the given config at the root and the given plan beside it.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(config: &[u8], plan: &[u8]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("src")).expect("src");
        std::fs::write(dir.path().join("pace.config.yaml"), config).expect("config");
        std::fs::write(dir.path().join("plan.yaml"), plan).expect("plan");
        Self { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn load(&self) -> Result<Loaded, ConfigError> {
        self.load_env(&Env::default())
    }

    fn load_env(&self, env: &Env) -> Result<Loaded, ConfigError> {
        config::load(self.root(), None, env)
    }
}

#[track_caller]
fn expect_err(result: Result<Loaded, ConfigError>) -> ConfigError {
    match result {
        Ok(loaded) => panic!("expected an error, loaded with warnings {:?}", loaded.warnings),
        Err(err) => err,
    }
}

#[track_caller]
fn expect_ok(result: Result<Loaded, ConfigError>) -> Loaded {
    match result {
        Ok(loaded) => loaded,
        Err(err) => panic!("expected success:\n{err}"),
    }
}

fn rendered(err: &ConfigError) -> String {
    err.diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn corpus(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("fixtures dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_broken_config_gives_positioned_errors() {
    let names = corpus("bad-");
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let repo = Repo::new(&fixture(&name), MINIMAL_PLAN.as_bytes());
        let err = expect_err(repo.load());
        assert!(!err.is_plan_error, "{name}: {err}");
        let errors: Vec<_> = err.errors().collect();
        assert!(!errors.is_empty(), "{name}: no error");
        for d in errors {
            assert_eq!(d.file, Path::new("pace.config.yaml"), "{name}: {d}");
            assert!(d.line > 0 && d.column > 0, "{name}: no position: {d}");
            assert!(
                d.to_string()
                    .starts_with(&format!("pace.config.yaml:{}:{}: error: ", d.line, d.column)),
                "{name}: {d}"
            );
        }
    }
}

#[test]
fn every_broken_plan_gives_plan_errors() {
    let names = corpus("plan-bad-");
    assert!(names.len() >= 2);
    for name in names {
        let repo = Repo::new(MINIMAL_CONFIG.as_bytes(), &fixture(&name));
        let err = expect_err(repo.load());
        assert!(err.is_plan_error, "{name}: {err}");
        for d in err.errors() {
            assert_eq!(d.file, Path::new("plan.yaml"), "{name}: {d}");
            assert!(d.line > 0 && d.column > 0, "{name}: no position: {d}");
        }
        let pace_err: PaceError = err.into();
        assert_eq!(pace_err.kind, ExitKind::Plan, "{name}");
    }
}

#[test]
fn config_errors_exit_2_and_list_every_diagnostic() {
    let repo = Repo::new(&fixture("bad-three-problems.yaml"), MINIMAL_PLAN.as_bytes());
    let err = expect_err(repo.load());
    let text = err.to_string();
    let pace_err: PaceError = err.into();
    assert_eq!(pace_err.kind, ExitKind::Config);
    assert_eq!(pace_err.message, text);
    assert!(text.starts_with("invalid configuration: 3 errors\n"), "{text}");
}

#[test]
fn three_independent_problems_are_all_reported() {
    let repo = Repo::new(&fixture("bad-three-problems.yaml"), MINIMAL_PLAN.as_bytes());
    let err = expect_err(repo.load());
    let errors: Vec<String> = err.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "pace.config.yaml:4:18: error: `sprint.duration_days`: expected a non-negative integer, found `-3`"
        ),
        "{errors:#?}"
    );
    assert!(
        errors[1].starts_with("pace.config.yaml:11:12: error: `sandbox.network`: unknown value `wide`"),
        "{errors:#?}"
    );
    assert_eq!(
        errors[2],
        "pace.config.yaml:12:1: error: unknown key `platfrom` in `<root>` (did you mean `platform`?)"
    );
}

#[test]
fn config_and_plan_problems_are_reported_together() {
    let repo = Repo::new(
        &fixture("bad-unknown-key.yaml"),
        &fixture("plan-bad-duplicate-day.yaml"),
    );
    let err = expect_err(repo.load());
    assert!(!err.is_plan_error, "config errors win: exit 2");
    let files: Vec<_> = err.errors().map(|d| d.file.clone()).collect();
    assert!(
        files.contains(&PathBuf::from("pace.config.yaml")) && files.contains(&PathBuf::from("plan.yaml")),
        "{files:?}"
    );
}

#[test]
fn each_unimplemented_original_key_warns_once() {
    let repo = Repo::new(&fixture("config-unimplemented-keys.yaml"), MINIMAL_PLAN.as_bytes());
    let loaded = expect_ok(repo.load());
    let mut keys: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|w| w.severity == Severity::Warning && w.message.starts_with("pace does not implement"))
        .map(|w| {
            assert!(w.line > 0 && w.column > 0, "{w}");
            assert!(w.message.ends_with("; it is ignored"), "{w}");
            w.message.split('`').nth(1).unwrap_or_default().to_string()
        })
        .collect();
    keys.sort();
    let mut expected = vec![
        "alerts",
        "cron",
        "forge.compression_model",
        "forge.file_hints_confidence_threshold",
        "forge.file_hints_enabled",
        "forge.fork_enabled",
        "notifications",
        "plugins",
        "product.github_org",
        "training",
        "updates",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(loaded.warnings.len(), expected.len(), "{:#?}", loaded.warnings);
    let first = loaded
        .warnings
        .iter()
        .find(|w| w.message.contains("`product.github_org`"))
        .map(ToString::to_string);
    assert_eq!(
        first.as_deref(),
        Some("pace.config.yaml:3:3: warning: pace does not implement `product.github_org`; it is ignored")
    );
}

#[test]
fn full_original_template_loads() {
    let repo = Repo::new(&fixture("valid-full-original.yaml"), &fixture("plan-days.yaml"));
    let loaded = expect_ok(repo.load());
    let s = &loaded.settings;
    assert_eq!(s.product.name, "My Product");
    assert!(s.product.description.starts_with("A short description"));
    assert_eq!(s.sprint.duration_days, 30);
    assert_eq!(s.source.dirs.len(), 1);
    assert_eq!(s.source.dirs[0].path, "src/");
    assert_eq!(s.tech.test_command, "pytest -v --tb=short");
    assert_eq!(s.platform.kind, config::settings::PlatformKind::Gitlab);
    assert_eq!(s.platform.tracker, None);
    assert_eq!(s.llm.analysis_model, "claude-haiku-4-5-20251001");
    assert_eq!(s.llm.forge_max_tokens, 16_384);
    assert_eq!(s.llm.api_key_env, "ANTHROPIC_API_KEY");
    assert!((s.cost_control.max_story_cost_usd - 1.5).abs() < f64::EPSILON);
    assert_eq!(s.forge.max_iterations, 35);
    assert_eq!(s.forge.max_retries, 2);
    assert_eq!(s.sprint.clearance_every, 7);
    assert_eq!(s.sandbox.image, "busybox:1.36");
    assert_eq!(s.config_path, repo.root().join("pace.config.yaml"));
    assert_eq!(s.plan_path, repo.root().join("plan.yaml"));
    // fork_enabled, updates, cron, training, github_org: one warning each, nothing else.
    let messages: Vec<_> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 5, "{messages:#?}");
}

#[test]
fn pace_sections_resolve() {
    let text = format!(
        "{MINIMAL_CONFIG}llm:\n  provider: litellm\n  model: qwen2.5-coder\n  base_url: http://localhost:11434/v1/\n  max_retries: 2\n  timeout_seconds: 30\n\
sandbox:\n  image: golang:1.23\n  network: bridge\n  env: [GOFLAGS]\n  memory: 512m\n  cpus: 1.5\n  pids_limit: 256\n  timeout: 15m\n  user: \"1000:1000\"\n  keep: yes\n  collect: [\"**/report.xml\"]\n  workspace: bind\n  caches: no\n\
platform:\n  type: bitbucket\n  tracker: {{type: jira, project: SHOP}}\n  target_branch: main\n  wait_for_ci: on\n\
budget: {{max_usd: 2.5, max_tokens: 1000000}}\ngit: {{author_name: Bot, author_email: bot@example.com}}\n\
sprint: {{duration_days: 10, clearance_every: 0}}\nforge: {{max_retries: 1}}\nsource_extra_is_not_allowed: 1\n"
    );
    // The last key is unknown: first check that it is reported, then load without it.
    let err = expect_err(Repo::new(text.as_bytes(), MINIMAL_PLAN.as_bytes()).load());
    assert_eq!(err.errors().count(), 1, "{err}");
    let text = text.replace("source_extra_is_not_allowed: 1\n", "");
    let loaded = expect_ok(Repo::new(text.as_bytes(), MINIMAL_PLAN.as_bytes()).load());
    let s = &loaded.settings;
    use config::settings::{NetworkMode, PlatformKind, Provider, WorkspaceMode};
    assert_eq!(s.llm.provider, Provider::OpenAi);
    assert_eq!(s.llm.api_key_env, "OPENAI_API_KEY");
    assert_eq!(s.llm.base_url.as_deref(), Some("http://localhost:11434/v1"));
    assert_eq!(s.llm.analysis_model, "qwen2.5-coder");
    assert_eq!(s.llm.request_timeout.as_secs(), 30);
    assert_eq!(s.sandbox.image, "golang:1.23");
    assert_eq!(s.sandbox.network, NetworkMode::Bridge);
    assert_eq!(s.sandbox.env, vec!["GOFLAGS".to_string()]);
    assert_eq!(s.sandbox.memory_bytes, 512 * 1024 * 1024);
    assert_eq!(s.sandbox.pids_limit, 256);
    assert_eq!(s.sandbox.timeout.as_secs(), 900);
    assert_eq!(s.sandbox.user.as_deref(), Some("1000:1000"));
    assert!(s.sandbox.keep);
    assert_eq!(s.sandbox.collect, vec!["**/report.xml".to_string()]);
    assert_eq!(s.sandbox.workspace, WorkspaceMode::Bind);
    assert!(!s.sandbox.caches);
    assert_eq!(s.platform.kind, PlatformKind::Bitbucket);
    assert_eq!(s.platform.tracker.as_deref(), Some("jira"));
    assert_eq!(s.platform.tracker_project.as_deref(), Some("SHOP"));
    assert_eq!(s.platform.target_branch.as_deref(), Some("main"));
    assert!(s.platform.wait_for_ci);
    assert_eq!(s.budget.max_tokens, Some(1_000_000));
    assert_eq!(s.git.author_email, "bot@example.com");
    assert_eq!(s.sprint.clearance_every, 0);
    assert_eq!(s.forge.max_retries, 1);
    // litellm is accepted with a warning.
    assert!(
        loaded.warnings.iter().any(|w| w.message.contains("litellm")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn ci_job_image_is_the_default_only_without_sandbox_image() {
    let env = Env::from_pairs([
        ("GITLAB_CI", "true"),
        ("CI_JOB_IMAGE", "registry.example.com/pace/runner-go:1"),
    ]);
    let repo = Repo::new(MINIMAL_CONFIG.as_bytes(), MINIMAL_PLAN.as_bytes());
    assert_eq!(
        expect_ok(repo.load_env(&env)).settings.sandbox.image,
        "registry.example.com/pace/runner-go:1"
    );
    // Outside GitLab CI the variable alone does not count.
    let outside = Env::from_pairs([("CI_JOB_IMAGE", "x:1")]);
    assert_eq!(
        expect_ok(repo.load_env(&outside)).settings.sandbox.image,
        "busybox:1.36"
    );
    let with_image = format!("{MINIMAL_CONFIG}sandbox:\n  image: node:22\n");
    let repo = Repo::new(with_image.as_bytes(), MINIMAL_PLAN.as_bytes());
    assert_eq!(expect_ok(repo.load_env(&env)).settings.sandbox.image, "node:22");
}

#[test]
fn source_paths_are_normalised_with_warnings() {
    let text = MINIMAL_CONFIG.replace("path: src/", "path: src") + "  test_dirs: [spec]\n";
    let repo = Repo::new(text.as_bytes(), MINIMAL_PLAN.as_bytes());
    let loaded = expect_ok(repo.load());
    assert_eq!(loaded.settings.source.dirs[0].path, "src/");
    assert_eq!(loaded.settings.source.test_dirs, vec!["spec/".to_string()]);
    let warnings: Vec<_> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        vec!["pace.config.yaml:7:26: warning: `source.dirs[0].path` should end with `/`; using `src/`"]
    );

    let missing_dir = MINIMAL_CONFIG.replace("path: src/", "path: lib/");
    let loaded = expect_ok(Repo::new(missing_dir.as_bytes(), MINIMAL_PLAN.as_bytes()).load());
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message == "source directory `lib/` does not exist"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn discovery_prefers_root_then_pace_dir_then_explicit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("pace")).expect("pace dir");
    std::fs::create_dir_all(root.join("src")).expect("src");

    let err = expect_err(config::load(root, None, &Env::default()));
    let text = rendered(&err);
    assert!(
        text.contains("`pace.config.yaml` and `pace/pace.config.yaml`"),
        "{text}"
    );
    assert!(text.contains("hint: "), "{text}");
    assert!(!err.is_plan_error);

    std::fs::write(root.join("pace/pace.config.yaml"), MINIMAL_CONFIG).expect("config");
    std::fs::write(root.join("pace/plan.yaml"), MINIMAL_PLAN).expect("plan");
    let loaded = expect_ok(config::load(root, None, &Env::default()));
    assert_eq!(loaded.settings.plan_path, root.join("pace/plan.yaml"));

    // Root wins over pace/; its plan is the one beside it (missing here: a plan error).
    std::fs::write(root.join("pace.config.yaml"), MINIMAL_CONFIG).expect("config");
    let err = expect_err(config::load(root, None, &Env::default()));
    assert!(err.is_plan_error, "{err}");
    assert!(
        rendered(&err).contains("no plan: `plan.yaml` does not exist"),
        "{}",
        rendered(&err)
    );

    let loaded = expect_ok(config::load(
        root,
        Some(Path::new("pace/pace.config.yaml")),
        &Env::default(),
    ));
    assert_eq!(loaded.settings.config_path, root.join("pace/pace.config.yaml"));
    let err = expect_err(config::load(root, Some(Path::new("nope.yaml")), &Env::default()));
    assert!(
        rendered(&err).contains("`nope.yaml` (from `--config`) does not exist"),
        "{}",
        rendered(&err)
    );
}

#[test]
fn oversized_file_is_refused_by_name() {
    let mut big = MINIMAL_CONFIG.to_string();
    while big.len() <= 1024 * 1024 {
        big.push_str("# padding padding padding padding padding padding padding padding padding\n");
    }
    let repo = Repo::new(big.as_bytes(), MINIMAL_PLAN.as_bytes());
    let err = expect_err(repo.load());
    assert_eq!(
        rendered(&err),
        "pace.config.yaml: error: `pace.config.yaml` is larger than 1 MiB; refusing to parse it\n  hint: a pace config or plan is a few kilobytes; check that the right file is named"
    );
}

#[test]
fn invalid_utf8_names_the_file_and_position() {
    let repo = Repo::new(&fixture("bad-invalid-utf8.yaml"), MINIMAL_PLAN.as_bytes());
    let err = expect_err(repo.load());
    assert_eq!(
        rendered(&err),
        "pace.config.yaml:2:12: error: `pace.config.yaml` is not valid UTF-8\n  hint: save the file as UTF-8"
    );
}

#[test]
fn alias_bomb_is_stopped() {
    let repo = Repo::new(&fixture("bad-alias-bomb.yaml"), MINIMAL_PLAN.as_bytes());
    let started = std::time::Instant::now();
    let err = expect_err(repo.load());
    assert!(started.elapsed().as_secs() < 5);
    assert_eq!(err.errors().count(), 1, "{err}");
}

fn snapshot(name: &str, text: String) {
    insta::with_settings!({ snapshot_path => "fixtures/config/snapshots", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn rendered_diagnostics_snapshot() {
    // The whole corpus in one file, for review.
    let mut all = String::new();
    for name in corpus("bad-") {
        let repo = Repo::new(&fixture(&name), MINIMAL_PLAN.as_bytes());
        all.push_str(&format!("## {name}\n{}\n\n", rendered(&expect_err(repo.load()))));
    }
    for name in corpus("plan-bad-") {
        let repo = Repo::new(MINIMAL_CONFIG.as_bytes(), &fixture(&name));
        all.push_str(&format!("## {name}\n{}\n\n", rendered(&expect_err(repo.load()))));
    }
    snapshot("corpus", all);
}

#[test]
fn both_plan_formats_select_the_right_day() {
    for name in ["plan-days.yaml", "plan-stories.yaml"] {
        let repo = Repo::new(MINIMAL_CONFIG.as_bytes(), &fixture(name));
        let loaded = expect_ok(repo.load());
        assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
        assert_eq!(loaded.plan.start_date.as_deref(), Some("2026-01-05"), "{name}");
        let plan_file = loaded.settings.plan_path.clone();
        let day2 = config::select_day(&loaded.settings, &loaded.plan, 2, &plan_file).expect("day 2");
        assert_eq!(day2.target, "Logout", "{name}");
        assert!(day2.human_gate, "{name}");
        assert_eq!(day2.week, 1, "{name}");
        let day1 = config::select_day(&loaded.settings, &loaded.plan, 1, &plan_file).expect("day 1");
        assert_eq!(day1.target, "Login page", "{name}");
    }
    let repo = Repo::new(MINIMAL_CONFIG.as_bytes(), &fixture("plan-days.yaml"));
    let day1 = expect_ok(repo.load()).plan.day(1).cloned().expect("day 1");
    assert_eq!(day1.issue, Some(12));
    assert_eq!(day1.story_branch.as_deref(), Some("story/login"));
    assert_eq!(day1.week_label.as_deref(), Some("Foundations"));
    assert_eq!(day1.gate_criterion.as_deref(), Some("login works"));
}

#[test]
fn days_outside_the_sprint_or_the_plan_are_plan_errors() {
    let repo = Repo::new(MINIMAL_CONFIG.as_bytes(), &fixture("plan-days.yaml"));
    let loaded = expect_ok(repo.load());
    let plan_file = loaded.settings.plan_path.clone();

    let err = config::select_day(&loaded.settings, &loaded.plan, 31, &plan_file).expect_err("beyond");
    assert_eq!(err.kind, ExitKind::Plan);
    assert!(
        err.message.contains("31") && err.message.contains("30") && err.message.contains("sprint.duration_days"),
        "{err}"
    );

    let err = config::select_day(&loaded.settings, &loaded.plan, 0, &plan_file).expect_err("zero");
    assert_eq!(err.kind, ExitKind::Plan);

    let err = config::select_day(&loaded.settings, &loaded.plan, 5, &plan_file).expect_err("missing");
    assert_eq!(err.kind, ExitKind::Plan);
    assert_eq!(err.message, "day 5 is not in `plan.yaml` (days in the plan: 1, 2)");
    assert_eq!(err.hint.as_deref(), Some("add a `day: 5` entry (or `story-5`)"));
}

#[test]
fn llm_prices_resolve_with_cache_defaults_and_report_every_problem() {
    let text = format!(
        "{MINIMAL_CONFIG}llm:\n  prices:\n    qwen2.5-coder: {{ input: 0.5, output: 1.5 }}\n    claude-sonnet-4-6: {{ input: 0, output: 0, cache_read: 0, cache_write: 0 }}\n"
    );
    let loaded = expect_ok(Repo::new(text.as_bytes(), MINIMAL_PLAN.as_bytes()).load());
    let prices = &loaded.settings.llm.prices;
    assert_eq!(prices.len(), 2);
    let (name, qwen) = &prices[0];
    assert_eq!(name, "qwen2.5-coder");
    assert_eq!((qwen.input, qwen.output), (0.5, 1.5));
    // Cache rates default to Anthropic's multiples of the input rate.
    assert!((qwen.cache_read - 0.05).abs() < 1e-12 && (qwen.cache_write - 0.625).abs() < 1e-12);
    assert_eq!(prices[1].1.input, 0.0);

    let bad = format!(
        "{MINIMAL_CONFIG}llm:\n  prices:\n    a: {{ input: 1 }}\n    b: {{ input: -1, output: 2 }}\n    c: {{ input: 1, output: 2, cache_reads: 1 }}\n    d: [1, 2]\n"
    );
    let err = expect_err(Repo::new(bad.as_bytes(), MINIMAL_PLAN.as_bytes()).load());
    let text = err.to_string();
    assert_eq!(err.errors().count(), 4, "{text}");
    assert!(text.contains("`llm.prices.a` needs `output`"), "{text}");
    assert!(text.contains("`llm.prices.b.input` must not be negative"), "{text}");
    assert!(
        text.contains("unknown key `cache_reads` in `llm.prices.c` (did you mean `cache_read`?)"),
        "{text}"
    );
    assert!(text.contains("`llm.prices.d`: expected a mapping"), "{text}");
}

#[test]
fn llm_structured_output_is_auto_by_default_off_on_request_and_checked() {
    use pace::config::settings::StructuredOutput;
    let loaded = expect_ok(Repo::new(MINIMAL_CONFIG.as_bytes(), MINIMAL_PLAN.as_bytes()).load());
    assert_eq!(loaded.settings.llm.structured_output, StructuredOutput::Auto);

    let off = format!("{MINIMAL_CONFIG}llm:\n  structured_output: off\n");
    let loaded = expect_ok(Repo::new(off.as_bytes(), MINIMAL_PLAN.as_bytes()).load());
    assert_eq!(loaded.settings.llm.structured_output, StructuredOutput::Off);

    let bad = format!("{MINIMAL_CONFIG}llm:\n  structured_output: of\n");
    let err = expect_err(Repo::new(bad.as_bytes(), MINIMAL_PLAN.as_bytes()).load());
    let text = err.to_string();
    assert!(
        text.contains("`llm.structured_output`: unknown value `of`; expected one of `auto`, `off`"),
        "{text}"
    );
}
