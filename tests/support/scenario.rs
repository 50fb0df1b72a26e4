//! A builder for end-to-end days, so a scenario reads as what it sets up and what it
//! expects: the greeter example in a fresh repository, a fake model, optionally a fake
//! GitLab, and the real `pace` binary with a real Docker daemon running the suite.
//!
//! ```ignore
//! let day = Scenario::greeter().options(Options { first_code: GREET_BUGGY, ..Default::default() })
//!     .gitlab().start().await;
//! let ran = day.pace(&["--day", "1"]).await.expect_exit(1);
//! assert_eq!(day.run_json(1)["decision"], "HOLD");
//! ```

use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use super::docker::busybox_image;
use super::fake_gitlab::{FakeGitlab, PROJECT_PATH};
use super::fake_llm::{FakeLlm, Script};
use super::project::{Project, stderr, stdout};
use super::scripts::{self, Options};

/// The model's API key every scenario uses (the fake LLM accepts only this one).
pub const KEY: &str = "sk-ant-test-SCENARIO-KEY-0001";
/// The GitLab token with `api` + `write_repository`, and one with only `read_api`.
pub const GITLAB_TOKEN: &str = "glpat-SCENARIO-5678abcd";
pub const GITLAB_READONLY: &str = "glpat-SCENARIO-READONLY-12";

/// What a scenario is made of, before anything starts.
pub struct Scenario {
    script: Script,
    config: String,
    edits: Vec<(String, String)>,
    gitlab: bool,
    env: Vec<(String, String)>,
    with_key: bool,
    openai: bool,
    /// The fake model behind a front that can drop connections ([`FakeLlm::start_dropping`]).
    dropping: bool,
}

impl Scenario {
    /// The greeter example, the model scripted with default [`Options`] (a day that ships).
    pub fn greeter() -> Self {
        Self {
            script: scripts::greeter(Options::default()),
            config: String::new(),
            edits: Vec::new(),
            gitlab: false,
            env: Vec::new(),
            with_key: true,
            openai: false,
            dropping: false,
        }
    }

    /// `llm.provider: openai` against the fake's OpenAI-compatible endpoint (the same
    /// script; `OPENAI_API_KEY` instead of `ANTHROPIC_API_KEY`).
    pub fn openai(mut self) -> Self {
        self.openai = true;
        self
    }

    pub fn options(mut self, options: Options) -> Self {
        self.script = scripts::greeter(options);
        self
    }

    /// A model scripted by hand (`tests/support/fake_llm.rs`).
    pub fn script(mut self, script: Script) -> Self {
        self.script = script;
        self
    }

    /// YAML appended to `pace.config.yaml` (a new top-level section).
    pub fn config(mut self, yaml: &str) -> Self {
        self.config.push_str(yaml);
        self
    }

    /// Replaces `from` with `to` in the committed config (it must be there).
    pub fn edit_config(mut self, from: &str, to: &str) -> Self {
        self.edits.push((from.into(), to.into()));
        self
    }

    /// `platform.type: gitlab` against a fake GitLab holding the project.
    pub fn gitlab(mut self) -> Self {
        self.gitlab = true;
        self
    }

    /// The fake model can drop connections mid-answer (`Reply::Dropped`).
    pub fn dropping(mut self) -> Self {
        self.dropping = true;
        self
    }

    /// One more variable in pace's environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// No `ANTHROPIC_API_KEY` in pace's environment.
    pub fn without_key(mut self) -> Self {
        self.with_key = false;
        self
    }

    /// Starts the fakes and writes and commits the project's config.
    pub async fn start(self) -> Day {
        let llm = if self.dropping {
            FakeLlm::start_dropping(self.script, Some(KEY)).await
        } else {
            FakeLlm::start(self.script, Some(KEY)).await
        };
        let base_url = if self.openai {
            format!("{}/v1", llm.url())
        } else {
            llm.url()
        };
        let project = Project::greeter();
        project.use_fake_llm(&base_url, &busybox_image(), &self.config);
        let mut edits = self.edits;
        if self.openai {
            edits.push(("provider: anthropic".into(), "provider: openai".into()));
        }
        let gitlab = if self.gitlab {
            edits.push(("platform:\n  type: local".into(), "platform:\n  type: gitlab".into()));
            Some(FakeGitlab::start(GITLAB_TOKEN, GITLAB_READONLY).await)
        } else {
            None
        };
        if !edits.is_empty() {
            let mut config = project.read("pace.config.yaml");
            for (from, to) in &edits {
                assert!(config.contains(from.as_str()), "`{from}` is not in pace.config.yaml");
                config = config.replace(from.as_str(), to);
            }
            std::fs::write(project.path("pace.config.yaml"), config).unwrap();
            project.git(&["commit", "-q", "-am", "scenario config"]);
        }
        let mut env = Vec::new();
        if self.with_key {
            let name = if self.openai {
                "OPENAI_API_KEY"
            } else {
                "ANTHROPIC_API_KEY"
            };
            env.push((name.to_string(), KEY.to_string()));
        }
        if let Some(gitlab) = &gitlab {
            env.extend([
                ("GITLAB_TOKEN".to_string(), GITLAB_TOKEN.to_string()),
                ("GITLAB_PROJECT".to_string(), PROJECT_PATH.to_string()),
                ("GITLAB_URL".to_string(), gitlab.url()),
            ]);
        }
        env.extend(self.env);
        Day {
            project,
            llm,
            gitlab,
            env,
        }
    }
}

/// A started scenario: the repository, the fakes, and pace's environment.
pub struct Day {
    pub project: Project,
    pub llm: FakeLlm,
    pub gitlab: Option<FakeGitlab>,
    env: Vec<(String, String)>,
}

impl Day {
    /// Runs `pace args` to completion with the scenario's environment.
    pub async fn pace(&self, args: &[&str]) -> Ran {
        self.pace_with(args, &[]).await
    }

    /// Runs `pace args` with `extra` variables on top of the scenario's environment.
    pub async fn pace_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Ran {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra);
        Ran(self.project.pace(args, &env).await)
    }

    /// Starts `pace args` without waiting (for signals), output piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pace"));
        cmd.args(args).current_dir(&self.project.root).env_clear();
        for key in ["PATH", "HOME", "DOCKER_HOST"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.env("NO_COLOR", "1").envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// `.pace/day-N/run.json`, parsed.
    #[track_caller]
    pub fn run_json(&self, day: u32) -> Value {
        serde_json::from_str(&self.artifact(day, "run.json")).unwrap()
    }

    /// A file of `.pace/day-N/`.
    #[track_caller]
    pub fn artifact(&self, day: u32, name: &str) -> String {
        self.project.read(&format!(".pace/day-{day}/{name}"))
    }

    /// The fake GitLab (panics when the scenario has none).
    #[track_caller]
    pub fn gitlab(&self) -> &FakeGitlab {
        self.gitlab
            .as_ref()
            .expect("the scenario has no GitLab: call .gitlab()")
    }

    /// The commit subjects of the branch, newest first.
    pub fn log(&self) -> String {
        self.project.git(&["log", "--format=%s"])
    }

    /// Uncommitted changes in FORGE's and pace's paths (empty when all is committed).
    pub fn uncommitted(&self) -> String {
        self.project
            .git(&["status", "--porcelain", "--", "src", "tests", ".pace", "PROGRESS.md"])
    }
}

/// The output of one finished `pace` run.
pub struct Ran(pub Output);

impl Ran {
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect_exit(self, code: i32) -> Self {
        assert_eq!(self.0.status.code(), Some(code), "{}", self.text());
        self
    }

    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    pub fn stdout(&self) -> String {
        stdout(&self.0)
    }

    pub fn stderr(&self) -> String {
        stderr(&self.0)
    }

    /// Both streams, for assertion messages and searches.
    pub fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }
}
