//! Resolved settings: what the rest of pace reads. Built from the raw file types by
//! `config::load` (precedence: CLI > env > file > default, written down once there).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The git repository root (the directory pace runs in).
    pub repo_root: PathBuf,
    /// The config file that was read.
    pub config_path: PathBuf,
    /// `plan.yaml` beside the config file.
    pub plan_path: PathBuf,
    pub product: Product,
    pub sprint: Sprint,
    pub source: Source,
    pub tech: Tech,
    pub llm: LlmSettings,
    pub forge: ForgeSettings,
    pub sandbox: SandboxSettings,
    pub platform: PlatformSettings,
    pub budget: Budget,
    pub git: GitIdentity,
    pub advisory: Advisory,
    pub cost_control: CostControl,
    pub reporter: Reporter,
    /// `llm.limits.*_input_tokens` (the original parses them; pace uses them to trim context).
    pub input_limits: InputLimits,
}

#[derive(Debug, Clone)]
pub struct Reporter {
    /// IANA name for timestamps in PROGRESS.md and summaries.
    pub timezone: String,
}

#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    pub forge_input_tokens: u32,
    pub analysis_input_tokens: u32,
}

#[derive(Debug, Clone)]
pub struct Product {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Sprint {
    pub duration_days: u32,
    /// Every Nth day clears the advisory backlog (original: hard-coded 7). 0 disables.
    pub clearance_every: u32,
}

#[derive(Debug, Clone)]
pub struct SourceDir {
    pub name: String,
    /// Relative to the repository root, normalised with a trailing `/`.
    pub path: String,
    pub language: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub dirs: Vec<SourceDir>,
    /// Directories FORGE may write tests into besides `dirs` (default: `tests/`, `test/`).
    pub test_dirs: Vec<String>,
    pub docs_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Tech {
    pub primary_language: String,
    pub secondary_language: Option<String>,
    pub ci_system: String,
    pub test_command: String,
    pub build_command: Option<String>,
    /// `tech.setup_command`: what fetches the dependencies before FORGE and GATE.
    pub setup_command: SetupCommand,
}

/// `tech.setup_command` as written: absent (the default for the stack), off, or a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupCommand {
    /// Not written: the default for `tech.primary_language` or the lockfiles found
    /// (`sandbox::setup::default_command`).
    Default,
    /// `false` or empty: no set-up phase.
    Off,
    /// The shell command to run.
    Command(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Anthropic,
    OpenAi,
    Replay,
}

#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub provider: Provider,
    /// FORGE and SCRIBE.
    pub model: String,
    /// PRIME, GATE, SENTINEL, CONDUIT.
    pub analysis_model: String,
    /// API base (default per provider); for `openai` e.g. `http://localhost:11434/v1`.
    pub base_url: Option<String>,
    /// Name of the variable holding the key (`ANTHROPIC_API_KEY` / `OPENAI_API_KEY` default).
    pub api_key_env: String,
    /// The cassette for `replay` (default: `.pace/cassettes/day-N.jsonl`... see `llm.cassette`).
    pub cassette: Option<PathBuf>,
    pub max_retries: u32,
    /// Per-call deadline.
    pub request_timeout: Duration,
    pub forge_max_tokens: u32,
    pub analysis_max_tokens: u32,
    /// `llm.prices`: model name → price, over pace's table (`llm::cost`).
    pub prices: Vec<(String, ModelPrice)>,
    /// `llm.structured_output`: whether PRIME, GATE, SENTINEL and CONDUIT ask for their
    /// answer with the provider's JSON-schema output (`auto`) or as YAML text only (`off`).
    pub structured_output: StructuredOutput,
}

/// `llm.structured_output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StructuredOutput {
    /// The provider's native structured output where it has one (the YAML re-ask stays
    /// the fallback for an answer that still fails validation).
    #[default]
    Auto,
    /// YAML text with one re-ask, for servers that reject or mishandle the schema field.
    Off,
}

/// USD per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

#[derive(Debug, Clone)]
pub struct ForgeSettings {
    pub tdd_enforcement: bool,
    pub coverage_rule: bool,
    pub max_iterations: u32,
    /// Percent of iterations kept in reserve: the budget warning comes at
    /// `max_iterations * (100 - retry_iterations) / 100`.
    pub retry_iterations: u32,
    /// FORGE retries after a HOLD (contract default 2).
    pub max_retries: u32,
    /// `forge.setup_on_change`: run the set-up phase again after FORGE changed a lockfile.
    pub setup_on_change: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    None,
    Bridge,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceMode {
    /// Streamed tar upload into a volume (works everywhere).
    Upload,
    /// Bind-mount the repository (only when the daemon shares the filesystem).
    Bind,
}

/// `sandbox.pull`: when pace pulls the sandbox image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Only when the daemon does not have it (the default: `DinD` daemons start empty).
    IfNotPresent,
    /// Every run (a moving tag such as `:1` is refreshed).
    Always,
    /// Never: a missing image is an error (air-gapped daemons).
    Never,
}

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub image: String,
    pub network: NetworkMode,
    /// Names of variables passed into the container (values from pace's environment).
    pub env: Vec<String>,
    pub memory_bytes: i64,
    pub cpus: f64,
    pub pids_limit: i64,
    pub timeout: Duration,
    /// `uid[:gid]`; `None` runs as the image's user.
    pub user: Option<String>,
    pub keep: bool,
    /// Globs (relative to /workspace) of result files copied back into `.pace/day-N/gate/`.
    pub collect: Vec<String>,
    pub workspace: WorkspaceMode,
    /// A per-project named volume at `/cache` for Go, npm, Maven, Gradle and NuGet caches.
    pub caches: bool,
    /// Which of the project's cache volumes this run mounts (from the CI environment).
    pub cache_scope: CacheScope,
    /// `sandbox.log_limit`: the most bytes of output `gate/output.log` keeps (its first and
    /// last halves, with a marker between); 0 keeps everything.
    pub log_limit: u64,
    pub pull: PullPolicy,
    /// `sandbox.setup_network`: the Docker network of the set-up phase's container
    /// (`bridge`, `host`, `none` or the name of a network on the daemon).
    pub setup_network: String,
    /// `sandbox.egress`: the only hosts the set-up phase reaches, through pace's proxy
    /// (presets expanded); empty: the set-up gets `setup_network` directly.
    pub egress: Vec<crate::proxy::Entry>,
    /// `sandbox.egress_for_tests`: GATE's and FORGE's containers get the same proxy
    /// instead of `sandbox.network`.
    pub egress_for_tests: bool,
}

/// Default `sandbox.log_limit`: generous for any real suite, small next to a runner's disk.
pub const DEFAULT_LOG_LIMIT: u64 = 256 * 1024 * 1024;

/// Which cache volume of a project a run uses. Runs whose code may be untrusted (any
/// branch anyone can push to) must not write the cache that protected branches' runs read:
/// a poisoned Go module or npm tarball there would run in the protected branch's tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheScope {
    /// GitLab: a protected branch or tag (`CI_COMMIT_REF_PROTECTED=true`).
    Protected,
    /// GitLab: any other ref; also a detached checkout or a Bitbucket pipeline without a
    /// branch (tags, commits).
    Unprotected,
    /// Bitbucket Pipelines: one cache per branch (`BITBUCKET_BRANCH`; Pipelines does not
    /// say whether a branch is protected).
    Branch(String),
    /// Outside CI: the branch checked out in the repository, read when the volume is named
    /// (a detached HEAD counts as [`CacheScope::Unprotected`]).
    Checkout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformKind {
    Local,
    Gitlab,
    Bitbucket,
}

#[derive(Debug, Clone)]
pub struct PlatformSettings {
    pub kind: PlatformKind,
    /// MR/PR target; `None` = the project's default branch.
    pub target_branch: Option<String>,
    /// `jira` or `None`.
    pub tracker: Option<String>,
    pub tracker_project: Option<String>,
    pub wait_for_ci: bool,
    /// `platform.allow_default_branch`: a day may run on the default/target branch
    /// (default false: "Run pipeline" preselects it, and pace commits where it runs).
    pub allow_default_branch: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Budget {
    pub max_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    /// `budget.max_minutes`: wall-clock limit of one run of a day (PRIME to SCRIBE). When it
    /// passes, the day stops like on a signal (containers removed, FORGE's work committed,
    /// artifacts written) and exits 5.
    pub max_duration: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct GitIdentity {
    pub author_name: String,
    pub author_email: String,
}

#[derive(Debug, Clone, Default)]
pub struct Advisory {
    pub push_to_issues: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CostControl {
    pub max_story_ac: u32,
    pub max_story_cost_usd: f64,
}

impl Settings {
    /// Defaults for a repository, as if the config file only named the product.
    /// Used by tests and as the base the file is merged onto.
    #[allow(
        clippy::too_many_lines,
        reason = "one table of defaults, a field per line; splitting it would scatter the table"
    )]
    pub fn defaults(repo_root: PathBuf) -> Self {
        let config_path = repo_root.join("pace.config.yaml");
        let plan_path = repo_root.join("plan.yaml");
        Self {
            config_path,
            plan_path,
            product: Product {
                name: "My Product".into(),
                description: String::new(),
            },
            sprint: Sprint {
                duration_days: 30,
                clearance_every: 7,
            },
            source: Source {
                dirs: vec![SourceDir {
                    name: "core".into(),
                    path: "src/".into(),
                    language: String::new(),
                    description: String::new(),
                }],
                test_dirs: vec!["tests/".into(), "test/".into()],
                docs_dir: None,
            },
            tech: Tech {
                primary_language: "Python 3.12".into(),
                secondary_language: None,
                ci_system: "GitLab CI".into(),
                test_command: "pytest -v --tb=short".into(),
                build_command: None,
                setup_command: SetupCommand::Default,
            },
            llm: LlmSettings {
                provider: Provider::Anthropic,
                model: "claude-sonnet-4-6".into(),
                analysis_model: "claude-sonnet-4-6".into(),
                base_url: None,
                api_key_env: crate::env::ANTHROPIC_API_KEY.into(),
                cassette: None,
                max_retries: 4,
                request_timeout: Duration::from_secs(600),
                forge_max_tokens: 16_384,
                analysis_max_tokens: 8_192,
                prices: Vec::new(),
                structured_output: StructuredOutput::Auto,
            },
            forge: ForgeSettings {
                tdd_enforcement: true,
                coverage_rule: true,
                max_iterations: 35,
                retry_iterations: 25,
                max_retries: 2,
                setup_on_change: false,
            },
            sandbox: SandboxSettings {
                image: "busybox:1.36".into(),
                network: NetworkMode::None,
                env: Vec::new(),
                memory_bytes: 2 * 1024 * 1024 * 1024,
                cpus: 2.0,
                pids_limit: 512,
                timeout: Duration::from_secs(900),
                user: None,
                keep: false,
                collect: default_collect_globs(),
                workspace: WorkspaceMode::Upload,
                caches: true,
                cache_scope: CacheScope::Checkout,
                log_limit: DEFAULT_LOG_LIMIT,
                pull: PullPolicy::IfNotPresent,
                setup_network: "bridge".into(),
                egress: Vec::new(),
                egress_for_tests: false,
            },
            platform: PlatformSettings {
                kind: PlatformKind::Local,
                target_branch: None,
                tracker: None,
                tracker_project: None,
                wait_for_ci: false,
                allow_default_branch: false,
            },
            budget: Budget::default(),
            git: GitIdentity {
                author_name: "pace".into(),
                author_email: "pace@localhost".into(),
            },
            advisory: Advisory::default(),
            cost_control: CostControl {
                max_story_ac: 5,
                max_story_cost_usd: 0.0,
            },
            reporter: Reporter { timezone: "UTC".into() },
            input_limits: InputLimits {
                forge_input_tokens: 160_000,
                analysis_input_tokens: 80_000,
            },
            repo_root,
        }
    }
}

/// JUnit and coverage files the usual test runners write.
pub fn default_collect_globs() -> Vec<String> {
    [
        "**/junit*.xml",
        "**/TEST-*.xml",
        "**/test-results/**/*.xml",
        "**/surefire-reports/*.xml",
        "**/coverage.xml",
        "**/coverage.out",
        "**/lcov.info",
        "**/cobertura*.xml",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
