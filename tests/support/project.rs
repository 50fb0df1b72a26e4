//! A temporary git repository holding the greeter example, and a runner for the real
//! `pace` binary against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Project {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/greeter")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[track_caller]
pub fn git(root: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Project {
    /// The greeter example in a fresh repository on branch `sprint/demo`, without its
    /// cassette (the tests talk to a fake server).
    pub fn greeter() -> Self {
        let project = Self::example_as_is();
        let _ = std::fs::remove_dir_all(project.root.join("cassette"));
        project.git(&["add", "-A"]);
        project.git(&["commit", "-q", "--allow-empty", "-m", "without the cassette"]);
        project
    }

    /// The example exactly as `make demo` uses it (replay provider and cassette), with
    /// the sandbox image replaced by `image`.
    pub fn example_with_image(image: &str) -> Self {
        let project = Self::example_as_is();
        let config = project
            .read("pace.config.yaml")
            .replace("image: pace-example/busybox:1", &format!("image: {image}"));
        std::fs::write(project.path("pace.config.yaml"), config).unwrap();
        project.git(&["commit", "-q", "-am", "test image"]);
        project
    }

    fn example_as_is() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("greeter");
        copy_dir(&example_dir(), &root);
        git(&root, &["init", "-q", "-b", "sprint/demo"]);
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-q", "-m", "initial"]);
        Self { _dir: dir, root }
    }

    /// Points the config at a fake Anthropic server and the local busybox image.
    pub fn use_fake_llm(&self, base_url: &str, image: &str, extra: &str) {
        let config = std::fs::read_to_string(self.root.join("pace.config.yaml")).unwrap();
        let start = config.find("llm:").unwrap();
        let end = config.find("platform:").unwrap();
        let llm = format!(
            "llm:\n  provider: anthropic\n  model: claude-sonnet-4-6\n  analysis_model: claude-haiku-4-5-20251001\n  base_url: {base_url}\n  max_retries: 2\n\nsandbox:\n  image: {image}\n  network: none\n  timeout: 60\n  caches: false\n\n"
        );
        let mut out = format!("{}{}{}", &config[..start], llm, &config[end..]);
        out.push_str(extra);
        std::fs::write(self.root.join("pace.config.yaml"), out).unwrap();
        git(&self.root, &["commit", "-q", "-am", "test config"]);
    }

    /// Sets `tech.test_command` and `sandbox.timeout` in the work tree's config (not
    /// committed: `pace gate` reads the work tree).
    pub fn set_gate_config(&self, test_command: &str, timeout_secs: u64) {
        let config = self.read("pace.config.yaml");
        let mut out = String::new();
        for line in config.lines() {
            if line.starts_with("  test_command:") {
                out.push_str(&format!("  test_command: '{}'\n", test_command.replace('\'', "''")));
            } else if line.starts_with("  timeout:") {
                out.push_str(&format!("  timeout: {timeout_secs}\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        assert!(out.contains("  test_command: '") && out.contains(&format!("  timeout: {timeout_secs}\n")));
        std::fs::write(self.path("pace.config.yaml"), out).unwrap();
    }

    /// `pace gate` in the project with only PATH, HOME and DOCKER_HOST from the test's
    /// environment (not started).
    pub fn pace_gate(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pace"));
        cmd.arg("gate").current_dir(&self.root).env_clear();
        for key in ["PATH", "HOME", "DOCKER_HOST"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.env("NO_COLOR", "1");
        cmd
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    #[track_caller]
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).exists()
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(&self.root, args)
    }

    /// Runs `pace` with only PATH, HOME and `env` in its environment.
    pub async fn pace(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pace"));
        cmd.args(args).current_dir(&self.root).env_clear();
        for key in ["PATH", "HOME", "DOCKER_HOST"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Every text file under `.pace/`, `PROGRESS.md` and `pace-env.env`, concatenated.
    pub fn all_artifacts_text(&self) -> String {
        let mut text = String::new();
        let mut stack = vec![self.root.join(".pace")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for e in entries.flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else if let Ok(t) = std::fs::read_to_string(e.path()) {
                    text.push_str(&t);
                }
            }
        }
        for f in ["PROGRESS.md", "pace-env.env"] {
            text.push_str(&std::fs::read_to_string(self.root.join(f)).unwrap_or_default());
        }
        text
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
