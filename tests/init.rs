//! Integration tests: init — `pace init` on one small repository per stack and per
//! platform: the written files (snapshots), `pace validate` on them, and the refusal to
//! replace a file without `--force`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::support::project::{git, stderr, stdout};

/// A temporary git repository named `shop` (the product name `pace init` writes).
struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Repo {
    /// `files` (path, content; directories are created), an initial commit, and `origin`.
    fn new(files: &[(&str, &str)], origin: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shop");
        for (path, content) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        if let Some(url) = origin {
            git(&root, &["remote", "add", "origin", url]);
        }
        Self { _dir: dir, root }
    }

    /// `pace ARGS` with stdin not a terminal and only PATH and HOME from the test's
    /// environment, plus `env`.
    fn pace(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pace"));
        cmd.args(args).current_dir(&self.root).env_clear().stdin(Stdio::null());
        for key in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.env("NO_COLOR", "1");
        cmd.envs(env.iter().copied());
        cmd.output().unwrap()
    }

    #[track_caller]
    fn init(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = vec!["init"];
        all.extend_from_slice(args);
        let out = self.pace(&all, env);
        assert!(
            out.status.success(),
            "pace init: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// `pace validate` passes on what was written, without a warning.
    #[track_caller]
    fn assert_valid(&self, env: &[(&str, &str)]) {
        let out = self.pace(&["validate"], env);
        assert!(
            out.status.success() && stdout(&out).contains("are valid"),
            "pace validate: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    }

    #[track_caller]
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

#[track_caller]
fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

const GO: &[(&str, &str)] = &[
    ("go.mod", "module example.com/shop\n\ngo 1.22\n"),
    ("cmd/shop/main.go", "package main\n\nfunc main() {}\n"),
    ("internal/cart/cart.go", "package cart\n"),
];
const NPM: &[(&str, &str)] = &[
    (
        "package.json",
        r#"{"name": "shop", "scripts": {"test": "node --test", "build": "tsc"}}"#,
    ),
    ("package-lock.json", "{}"),
    ("tsconfig.json", "{}"),
    ("src/index.ts", "export {};\n"),
    ("test/index.test.ts", "\n"),
];
const MAVEN: &[(&str, &str)] = &[
    ("pom.xml", "<project/>\n"),
    ("src/main/java/shop/App.java", "package shop;\n"),
    ("src/test/java/shop/AppTest.java", "package shop;\n"),
];
const GRADLE_KTS: &[(&str, &str)] = &[
    ("build.gradle.kts", "plugins { kotlin(\"jvm\") }\n"),
    ("settings.gradle.kts", "rootProject.name = \"shop\"\n"),
    ("gradlew", "#!/bin/sh\n"),
    ("src/main/kotlin/App.kt", "fun main() {}\n"),
    ("src/test/kotlin/AppTest.kt", "\n"),
];
const DOTNET: &[(&str, &str)] = &[
    ("Shop.sln", "\n"),
    ("src/Shop/Shop.csproj", "<Project/>\n"),
    ("tests/Shop.Tests/Shop.Tests.csproj", "<Project/>\n"),
];
const RUST: &[(&str, &str)] = &[
    ("Cargo.toml", "[package]\nname = \"shop\"\n"),
    ("src/lib.rs", "\n"),
    ("tests/cart.rs", "\n"),
];
const PYTHON: &[(&str, &str)] = &[
    ("pyproject.toml", "[project]\nname = \"shop\"\n"),
    ("shop/__init__.py", "\n"),
    ("tests/test_cart.py", "\n"),
];

/// One repository per stack, local platform: the config per stack, validated.
#[test]
fn every_stack_gets_a_config_that_validates() {
    for (name, files) in [
        ("go", GO),
        ("npm", NPM),
        ("maven", MAVEN),
        ("gradle_kts", GRADLE_KTS),
        ("dotnet", DOTNET),
        ("rust", RUST),
        ("python", PYTHON),
    ] {
        let repo = Repo::new(files, None);
        let out = repo.init(&["--yes"], &[]);
        assert!(
            stdout(&out).contains("wrote pace.config.yaml\nwrote plan.yaml\n"),
            "{name}: {}",
            stdout(&out)
        );
        // The local platform has no CI file.
        assert!(!repo.path(".gitlab-ci.yml").exists() && !repo.path("bitbucket-pipelines.yml").exists());
        snapshot(&format!("init_config_{name}"), &repo.read("pace.config.yaml"));
        repo.assert_valid(&[]);
    }
}

/// The plan skeleton and what the command prints, once (they do not depend on the stack
/// beyond the product's name and the platform's next steps).
#[test]
fn the_plan_and_the_next_steps() {
    let repo = Repo::new(GO, None);
    let out = repo.init(&[], &[]);
    snapshot("init_plan", &repo.read("plan.yaml"));
    snapshot("init_stdout_local", &stdout(&out));
}

/// Per platform (the Node stack): the config and the CI file, validated (also as the CI
/// job would, in GitLab with the job's image).
#[test]
fn every_platform_gets_its_ci_file() {
    let gitlab = Repo::new(NPM, Some("git@gitlab.example.com:acme/shop.git"));
    let out = gitlab.init(&["--yes"], &[]);
    assert!(
        stdout(&out).contains("platform gitlab (`origin` is at gitlab.example.com)"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("GITLAB_TOKEN"), "{}", stdout(&out));
    snapshot("init_config_gitlab", &gitlab.read("pace.config.yaml"));
    snapshot("init_ci_gitlab", &gitlab.read(".gitlab-ci.yml"));
    gitlab.assert_valid(&[]);
    gitlab.assert_valid(&[("GITLAB_CI", "true"), ("CI_JOB_IMAGE", "pace/runner-node:0.1")]);

    let bitbucket = Repo::new(NPM, Some("https://me@bitbucket.org/acme/shop.git"));
    let out = bitbucket.init(&["--yes"], &[]);
    assert!(stdout(&out).contains("BITBUCKET_ACCESS_TOKEN"), "{}", stdout(&out));
    snapshot("init_config_bitbucket", &bitbucket.read("pace.config.yaml"));
    snapshot("init_ci_bitbucket", &bitbucket.read("bitbucket-pipelines.yml"));
    bitbucket.assert_valid(&[]);

    let local = Repo::new(NPM, Some("https://code.example.com/acme/shop.git"));
    let out = local.init(&["--yes"], &[]);
    assert!(stdout(&out).contains("platform local"), "{}", stdout(&out));
    snapshot("init_config_local", &local.read("pace.config.yaml"));
    local.assert_valid(&[]);
}

/// In a GitLab job (`GITLAB_CI=true`) the platform is GitLab whatever the remote; a stack
/// without a runner image gets its toolchain image as `sandbox.image` and the Go runner as
/// the job image.
#[test]
fn gitlab_ci_and_a_stack_without_a_runner_image() {
    let repo = Repo::new(RUST, None);
    repo.init(&[], &[("GITLAB_CI", "true")]);
    let config = repo.read("pace.config.yaml");
    assert!(config.contains("type: gitlab"), "{config}");
    assert!(config.contains("\n  image: rust:1 "), "{config}");
    let ci = repo.read(".gitlab-ci.yml");
    assert!(ci.contains("\n  image: pace/runner-go:0.1\n"), "{ci}");
    assert!(ci.contains("No runner image for Rust"), "{ci}");
    // The job's image would be the sandbox's default: the written image wins.
    repo.assert_valid(&[("GITLAB_CI", "true"), ("CI_JOB_IMAGE", "pace/runner-go:0.1")]);
}

/// A file that exists is never replaced without `--force`: all are named, none is
/// written (exit 2); `--force` replaces them.
#[test]
fn existing_files_are_kept_unless_forced() {
    let repo = Repo::new(GO, Some("git@gitlab.com:acme/shop.git"));
    std::fs::write(repo.path("plan.yaml"), "mine\n").unwrap();
    std::fs::write(repo.path(".gitlab-ci.yml"), "ours\n").unwrap();
    let out = repo.pace(&["init", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("`plan.yaml`, `.gitlab-ci.yml` already exist: `pace init` replaces no file without `--force`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint: check them with `pace validate`, or run `pace init --force`"));
    assert!(
        !repo.path("pace.config.yaml").exists(),
        "nothing is written when one file exists"
    );
    assert!(!repo.path(".gitignore").exists());
    assert_eq!(repo.read("plan.yaml"), "mine\n");
    assert_eq!(repo.read(".gitlab-ci.yml"), "ours\n");

    let out = repo.init(&["--yes", "--force"], &[]);
    assert!(
        stdout(&out).contains("wrote pace.config.yaml\nreplaced plan.yaml\nreplaced .gitlab-ci.yml\n"),
        "{}",
        stdout(&out)
    );
    assert!(repo.read("plan.yaml").contains("days:"));
    repo.assert_valid(&[]);
}

/// A link where a file goes is refused before anything is written, also with `--force`:
/// pace never writes through links.
#[test]
fn a_link_is_refused_before_anything_is_written() {
    let repo = Repo::new(GO, None);
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("bashrc");
    std::fs::write(&target, "precious\n").unwrap();
    std::os::unix::fs::symlink(&target, repo.path(".gitignore")).unwrap();
    let out = repo.pace(&["init", "--force"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("`.gitignore` is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.path("pace.config.yaml").exists());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
}

/// The Python PACE layout's config counts as existing: a root config would take its place.
#[test]
fn the_python_pace_layout_counts_as_a_config() {
    let repo = Repo::new(GO, None);
    std::fs::create_dir_all(repo.path("pace")).unwrap();
    std::fs::write(repo.path("pace/pace.config.yaml"), "product: {name: Old}\n").unwrap();
    let out = repo.pace(&["init"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`pace/pace.config.yaml` already exists"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.path("pace.config.yaml").exists());
}

/// `pace-env.env` is git-ignored after `pace init` (it is written at the root on every
/// run), added once to an existing `.gitignore`.
#[test]
fn the_dotenv_report_is_git_ignored() {
    let repo = Repo::new(GO, None);
    std::fs::write(repo.path(".gitignore"), "/bin").unwrap();
    repo.init(&[], &[]);
    assert_eq!(
        repo.read(".gitignore"),
        "/bin\n# pace's dotenv report (exported by the CI job, never committed)\n/pace-env.env\n"
    );
    std::fs::write(repo.path("pace-env.env"), "PACE_DAY=1\n").unwrap();
    let ignored = Command::new("git")
        .args(["check-ignore", "-q", "pace-env.env"])
        .current_dir(&repo.root)
        .status()
        .unwrap();
    assert!(ignored.success(), "git does not ignore pace-env.env");
    std::fs::remove_file(repo.path("pace.config.yaml")).unwrap();
    std::fs::remove_file(repo.path("plan.yaml")).unwrap();
    repo.init(&[], &[]);
    assert_eq!(repo.read(".gitignore").matches("pace-env.env").count(), 1);
}

/// No manifest pace knows, and no terminal to ask on: exit 2 naming what it looked for.
#[test]
fn no_stack_is_an_error_that_says_what_was_looked_for() {
    let repo = Repo::new(&[("README.md", "# shop\n")], None);
    let out = repo.pace(&["init", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("found no manifest it knows at the repository root (go.mod,"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.path("pace.config.yaml").exists());
}

/// `--config` (global) is refused, not ignored: the file would not be found where it went.
#[test]
fn init_refuses_a_config_path() {
    let repo = Repo::new(GO, None);
    let out = repo.pace(&["init", "--config", "ci/pace.config.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("writes pace.config.yaml at the repository root, not at `ci/pace.config.yaml`"),
        "{}",
        stderr(&out)
    );
    assert!(!repo.path("pace.config.yaml").exists() && !repo.path("ci").exists());
}

/// A second manifest is named, and the first in detection order configured.
#[test]
fn a_second_stack_is_named() {
    let mut files = GO.to_vec();
    files.push(("package.json", "{}"));
    let repo = Repo::new(&files, None);
    let out = repo.init(&[], &[]);
    assert!(
        stdout(&out).contains("note: package.json (npm) is here too"),
        "{}",
        stdout(&out)
    );
    assert!(repo.read("pace.config.yaml").contains("test_command: go test ./..."));
}

/// Issue 14 item 6: `make demo` runs the binary where cargo put it, also under
/// `CARGO_TARGET_DIR` (printed by `make -n`, nothing is run).
#[test]
fn make_demo_honours_cargo_target_dir() {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let make = |target_dir: Option<&str>| {
        let mut cmd = Command::new("make");
        cmd.args(["-n", "demo"])
            .current_dir(manifest)
            .env_remove("CARGO_TARGET_DIR");
        if let Some(dir) = target_dir {
            cmd.env("CARGO_TARGET_DIR", dir);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "make -n demo: {}", stderr(&out));
        stdout(&out)
    };
    let moved = make(Some("/elsewhere/build"));
    assert!(
        moved.contains("scripts/demo.sh \"/elsewhere/build/release/pace\""),
        "{moved}"
    );
    assert!(make(None).contains("scripts/demo.sh \"target/release/pace\""));
}

/// The demo's repository is clean after the run: the dotenv report the day writes at the
/// root is excluded (a stand-in `pace` writes what the real one writes there).
#[test]
fn the_demo_leaves_no_untracked_dotenv_report() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("pace");
    std::fs::write(&fake, "#!/bin/sh\nprintf 'PACE_DAY=1\\n' > pace-env.env\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .arg(&fake)
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "demo.sh: {}{}", stdout(&out), stderr(&out));
    let work = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("pace demo in ").map(PathBuf::from))
        .expect("demo.sh names its directory");
    assert!(work.join("pace-env.env").is_file(), "the stand-in did not run");
    assert_eq!(
        git(&work, &["status", "--porcelain"]),
        "",
        "untracked files after the demo"
    );
}

/// `scripts/start-dockerd.sh` stops only the daemon it started, by its pid: never every
/// process of that name.
#[test]
fn start_dockerd_stops_only_its_own_daemon() {
    let script = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/start-dockerd.sh")).unwrap();
    for broad in ["pkill", "killall"] {
        assert!(!script.contains(broad), "start-dockerd.sh uses `{broad}`");
    }
    assert!(
        script.contains("pid=$!") && script.contains("kill \"$pid\""),
        "{script}"
    );
}
