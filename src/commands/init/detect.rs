//! What `pace init` finds in the repository: the stack (by its manifest at the root), the
//! platform (by the `origin` remote and the CI environment) and, per stack, the commands,
//! the images and the directories it writes into the config.

use std::path::Path;

use crate::env::{self, Env};

/// A stack `pace init` knows, in the order detection prefers when several manifests are
/// at the root (the order the set-up phase also uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stack {
    Go,
    Npm,
    Pnpm,
    Yarn,
    Maven,
    Gradle,
    Dotnet,
    Rust,
    Python,
}

impl Stack {
    pub(super) const ALL: [Stack; 9] = [
        Stack::Go,
        Stack::Npm,
        Stack::Pnpm,
        Stack::Yarn,
        Stack::Maven,
        Stack::Gradle,
        Stack::Dotnet,
        Stack::Rust,
        Stack::Python,
    ];

    /// The word a person types to choose it (and that `--help`-like lists show).
    pub(super) fn key(self) -> &'static str {
        match self {
            Stack::Go => "go",
            Stack::Npm => "npm",
            Stack::Pnpm => "pnpm",
            Stack::Yarn => "yarn",
            Stack::Maven => "maven",
            Stack::Gradle => "gradle",
            Stack::Dotnet => "dotnet",
            Stack::Rust => "rust",
            Stack::Python => "python",
        }
    }

    pub(super) fn from_key(word: &str) -> Option<Stack> {
        let word = word.trim().to_ascii_lowercase();
        let word = match word.as_str() {
            "node" | "javascript" | "typescript" => "npm",
            "java" => "maven",
            ".net" | "c#" | "csharp" => "dotnet",
            "golang" => "go",
            other => other,
        };
        Stack::ALL.into_iter().find(|s| s.key() == word)
    }

    /// The runner image of the stack (`images/runner-*`): pace, git and the toolchain.
    /// Rust and Python have none.
    pub(super) fn runner_image(self) -> Option<&'static str> {
        match self {
            Stack::Go => Some("pace/runner-go:0.1"),
            Stack::Npm | Stack::Pnpm | Stack::Yarn => Some("pace/runner-node:0.1"),
            Stack::Maven | Stack::Gradle => Some("pace/runner-temurin:0.1"),
            Stack::Dotnet => Some("pace/runner-dotnet:0.1"),
            Stack::Rust | Stack::Python => None,
        }
    }
}

/// The stacks whose manifest is at `repo`'s root, in [`Stack::ALL`] order, each with the
/// file that showed it.
pub(super) fn stacks(repo: &Path) -> Vec<(Stack, String)> {
    let names = root_files(repo);
    let has = |name: &str| names.iter().any(|n| n == name);
    let mut found = Vec::new();
    if has("go.mod") {
        found.push((Stack::Go, "go.mod".to_string()));
    }
    if has("package.json") {
        // The lockfile names the package manager; without one, npm (it writes one).
        let (stack, file) = if has("pnpm-lock.yaml") {
            (Stack::Pnpm, "package.json + pnpm-lock.yaml")
        } else if has("yarn.lock") {
            (Stack::Yarn, "package.json + yarn.lock")
        } else if has("package-lock.json") {
            (Stack::Npm, "package.json + package-lock.json")
        } else {
            (Stack::Npm, "package.json")
        };
        found.push((stack, file.to_string()));
    }
    if has("pom.xml") {
        found.push((Stack::Maven, "pom.xml".to_string()));
    }
    if let Some(gradle) = ["build.gradle.kts", "build.gradle"].into_iter().find(|n| has(n)) {
        found.push((Stack::Gradle, gradle.to_string()));
    }
    if let Some(dotnet) = names
        .iter()
        .find(|n| has_extension(n, "sln") || has_extension(n, "csproj"))
    {
        found.push((Stack::Dotnet, dotnet.clone()));
    }
    if has("Cargo.toml") {
        found.push((Stack::Rust, "Cargo.toml".to_string()));
    }
    if has("pyproject.toml") {
        found.push((Stack::Python, "pyproject.toml".to_string()));
    }
    found
}

/// The names of the regular files at the root, sorted (so the choice among several
/// `*.sln` is the same on every machine).
fn root_files(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn has_extension(name: &str, ext: &str) -> bool {
    Path::new(name).extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// `platform.type` as `pace init` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Platform {
    Gitlab,
    Bitbucket,
    Local,
}

impl Platform {
    pub(super) const ALL: [Platform; 3] = [Platform::Gitlab, Platform::Bitbucket, Platform::Local];

    pub(super) fn key(self) -> &'static str {
        match self {
            Platform::Gitlab => "gitlab",
            Platform::Bitbucket => "bitbucket",
            Platform::Local => "local",
        }
    }

    pub(super) fn from_key(word: &str) -> Option<Platform> {
        let word = word.trim().to_ascii_lowercase();
        Platform::ALL.into_iter().find(|p| p.key() == word)
    }

    /// The CI file pace writes for the platform, relative to the root.
    pub(super) fn ci_file(self) -> Option<&'static str> {
        match self {
            Platform::Gitlab => Some(".gitlab-ci.yml"),
            Platform::Bitbucket => Some("bitbucket-pipelines.yml"),
            Platform::Local => None,
        }
    }
}

/// The platform and why: the CI job pace runs in (`GITLAB_CI=true`, Bitbucket's
/// `BITBUCKET_BUILD_NUMBER`), else the host of the `origin` remote (GitLab also self-hosted,
/// when `gitlab` is in the host name), else local.
pub(super) fn platform(origin: Option<&str>, env: &Env) -> (Platform, String) {
    if env.in_gitlab_ci() {
        return (Platform::Gitlab, "GITLAB_CI=true".to_string());
    }
    if env.get(env::BITBUCKET_BUILD_NUMBER).is_some() {
        return (Platform::Bitbucket, "a Bitbucket Pipelines job".to_string());
    }
    let Some(url) = origin else {
        return (Platform::Local, "no `origin` remote".to_string());
    };
    let host = remote_host(url).to_ascii_lowercase();
    let platform = if host == "bitbucket.org" || host.ends_with(".bitbucket.org") {
        Platform::Bitbucket
    } else if host.contains("gitlab") {
        Platform::Gitlab
    } else {
        Platform::Local
    };
    // The URL is the repository's (a clone's config): a control character in it must not
    // reach the terminal as an escape sequence.
    (platform, format!("`origin` is at {}", host.escape_debug()))
}

/// The host of a remote URL: `https://user@host:port/path`, `ssh://git@host/path` or the
/// scp form `git@host:path`. A local path gives itself (no platform matches it).
fn remote_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    // `host:port` (URL form) and `host:group/repo` (scp form) both end the host at `:`.
    host.split(':').next().unwrap_or(host)
}

/// What the config says about one stack in one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Profile {
    pub(super) stack: Stack,
    /// `tech.primary_language` (the set-up phase picks its default by it too).
    pub(super) language: &'static str,
    pub(super) test_command: String,
    pub(super) build_command: Option<String>,
    /// `tech.setup_command` as a suggestion, and whether it is what the set-up phase runs
    /// by default for this stack (else it runs nothing unless the key is set).
    pub(super) setup_command: String,
    pub(super) setup_is_default: bool,
    /// `source.dirs` that exist (`./` when none of the usual ones does).
    pub(super) source_dirs: Vec<String>,
    /// `source.test_dirs` that exist (maybe none: Go keeps tests beside the code).
    pub(super) test_dirs: Vec<String>,
}

impl Profile {
    pub(super) fn of(stack: Stack, repo: &Path) -> Self {
        let existing = |candidates: &[&str]| -> Vec<String> {
            candidates
                .iter()
                .filter(|d| repo.join(d).is_dir())
                .map(|d| format!("{d}/"))
                .collect()
        };
        let (language, commands, sources, tests) = match stack {
            Stack::Go => (
                "Go",
                Commands::new("go test ./...", Some("go build ./..."), "go mod download", true),
                existing(&["cmd", "internal", "pkg"]),
                existing(&["test", "tests"]),
            ),
            Stack::Npm | Stack::Pnpm | Stack::Yarn => (
                if repo.join("tsconfig.json").is_file() {
                    "TypeScript"
                } else {
                    "JavaScript"
                },
                node_commands(stack, repo),
                existing(&["src", "lib", "app"]),
                existing(&["test", "tests", "__tests__", "spec"]),
            ),
            Stack::Maven => (
                "Java",
                Commands::new(
                    "mvn -B test",
                    Some("mvn -B -DskipTests package"),
                    "mvn -B -q dependency:go-offline",
                    true,
                ),
                existing(&["src/main"]),
                existing(&["src/test"]),
            ),
            Stack::Gradle => (
                if repo.join("src/main/kotlin").is_dir() {
                    "Kotlin"
                } else {
                    "Java"
                },
                gradle_commands(repo),
                existing(&["src/main"]),
                existing(&["src/test"]),
            ),
            Stack::Dotnet => (
                "C#",
                dotnet_commands(repo),
                existing(&["src"]),
                existing(&["tests", "test"]),
            ),
            Stack::Rust => (
                "Rust",
                Commands::new("cargo test", Some("cargo build"), "cargo fetch", false),
                existing(&["src"]),
                existing(&["tests", "benches"]),
            ),
            Stack::Python => (
                "Python",
                Commands::new("python -m pytest", None, "pip install -e . pytest", false),
                existing(&["src"]).into_iter().chain(python_packages(repo)).collect(),
                existing(&["tests", "test"]),
            ),
        };
        Self {
            stack,
            language,
            test_command: commands.test,
            build_command: commands.build,
            setup_command: commands.setup,
            setup_is_default: commands.setup_is_default,
            source_dirs: if sources.is_empty() { vec!["./".into()] } else { sources },
            test_dirs: tests,
        }
    }

    /// The image GATE and FORGE's commands run in outside GitLab (and on GitLab when the
    /// stack has no runner image, whose job image then lacks the toolchain).
    pub(super) fn sandbox_image(&self) -> &'static str {
        match self.stack {
            Stack::Rust => "rust:1",
            Stack::Python => "python:3.12",
            other => other.runner_image().unwrap_or("busybox:1.36"),
        }
    }

    /// The job image of the CI file: the stack's runner image, else the Go one (pace only
    /// needs git and the Docker API on the runner; the toolchain is in `sandbox.image`).
    pub(super) fn job_image(&self) -> &'static str {
        self.stack.runner_image().unwrap_or("pace/runner-go:0.1")
    }
}

/// A stack's test, build and set-up commands.
struct Commands {
    test: String,
    build: Option<String>,
    setup: String,
    /// The set-up phase runs `setup` by default for this stack.
    setup_is_default: bool,
}

impl Commands {
    fn new(test: &str, build: Option<&str>, setup: &str, setup_is_default: bool) -> Self {
        Self {
            test: test.to_string(),
            build: build.map(str::to_string),
            setup: setup.to_string(),
            setup_is_default,
        }
    }
}

/// npm, pnpm or yarn; a build command only when `package.json` has a `build` script.
fn node_commands(stack: Stack, repo: &Path) -> Commands {
    let has_build = package_has_build_script(repo);
    let lockfile = repo.join("package-lock.json").is_file();
    let (tool, setup, is_default) = match stack {
        Stack::Pnpm => ("pnpm", "pnpm install --frozen-lockfile", false),
        Stack::Yarn => ("yarn", "yarn install --frozen-lockfile", false),
        // `npm ci` needs the lockfile; without one the set-up phase has no default.
        _ if lockfile => ("npm", "npm ci", true),
        _ => ("npm", "npm install", false),
    };
    let build = format!("{tool} run build");
    Commands::new(
        &format!("{tool} test"),
        has_build.then_some(build.as_str()),
        setup,
        is_default,
    )
}

/// Gradle through the project's wrapper when it has one; no daemon in a one-off container.
fn gradle_commands(repo: &Path) -> Commands {
    let gradle = if repo.join("gradlew").is_file() {
        "./gradlew"
    } else {
        "gradle"
    };
    Commands::new(
        &format!("{gradle} --no-daemon test"),
        Some(&format!("{gradle} --no-daemon assemble")),
        &format!("{gradle} --no-daemon dependencies"),
        true,
    )
}

/// `dotnet test` without an argument fails when the root holds more than one project or
/// solution: the (first) solution is named then, also for the set-up, whose default
/// (`dotnet restore`) would fail the same way.
fn dotnet_commands(repo: &Path) -> Commands {
    let files = root_files(repo);
    let projects = files
        .iter()
        .filter(|n| has_extension(n, "sln") || has_extension(n, "csproj"))
        .count();
    let target = files
        .into_iter()
        .find(|n| has_extension(n, "sln"))
        .filter(|_| projects > 1)
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    Commands::new(
        &format!("dotnet test{target}"),
        Some(&format!("dotnet build{target}")),
        &format!("dotnet restore{target}"),
        target.is_empty(),
    )
}

/// Whether `package.json` has a `build` script (else there is no build command).
fn package_has_build_script(repo: &Path) -> bool {
    std::fs::read_to_string(repo.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|v| v.pointer("/scripts/build").is_some())
}

/// Top-level Python packages (a directory with `__init__.py`), except tests.
fn python_packages(repo: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(repo)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()) && e.path().join("__init__.py").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !matches!(n.as_str(), "tests" | "test") && !n.starts_with('.'))
                .map(|n| format!("{n}/"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_hosts_of_every_url_form() {
        assert_eq!(remote_host("git@gitlab.com:group/app.git"), "gitlab.com");
        assert_eq!(
            remote_host("https://gitlab.example.com:8443/g/app.git"),
            "gitlab.example.com"
        );
        assert_eq!(remote_host("https://me@bitbucket.org/ws/app.git"), "bitbucket.org");
        assert_eq!(
            remote_host("ssh://git@code.example.com:2222/app.git"),
            "code.example.com"
        );
    }

    #[test]
    fn the_platform_comes_from_ci_then_the_remote() {
        let none = Env::default();
        let at = |url: &str| platform(Some(url), &none).0;
        assert_eq!(at("git@gitlab.com:g/app.git"), Platform::Gitlab);
        assert_eq!(at("https://gitlab.internal.example/g/app.git"), Platform::Gitlab);
        assert_eq!(at("git@bitbucket.org:ws/app.git"), Platform::Bitbucket);
        assert_eq!(at("https://github.com/o/app.git"), Platform::Local);
        // A path that merely contains the word is not a GitLab host.
        assert_eq!(at("https://code.example.com/gitlab/app.git"), Platform::Local);
        assert_eq!(platform(None, &none).0, Platform::Local);
        let gitlab_ci = Env::from_pairs([(env::GITLAB_CI, "true")]);
        assert_eq!(platform(Some("https://github.com/o/a"), &gitlab_ci).0, Platform::Gitlab);
        let not_ci = Env::from_pairs([(env::GITLAB_CI, "false")]);
        assert_eq!(platform(None, &not_ci).0, Platform::Local);
        let pipelines = Env::from_pairs([(env::BITBUCKET_BUILD_NUMBER, "7")]);
        assert_eq!(platform(None, &pipelines).0, Platform::Bitbucket);
    }

    #[test]
    fn stacks_by_manifest_and_lockfile() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |name: &str| std::fs::write(dir.path().join(name), "{}").unwrap();
        assert!(stacks(dir.path()).is_empty());
        touch("package.json");
        touch("yarn.lock");
        touch("go.mod");
        touch("App.csproj");
        let found: Vec<Stack> = stacks(dir.path()).into_iter().map(|(s, _)| s).collect();
        assert_eq!(found, vec![Stack::Go, Stack::Yarn, Stack::Dotnet]);
        touch("pnpm-lock.yaml");
        assert_eq!(stacks(dir.path())[1].0, Stack::Pnpm);
        assert_eq!(Stack::from_key(" Java "), Some(Stack::Maven));
        assert_eq!(Stack::from_key("cobol"), None);
    }

    #[test]
    fn a_profile_names_only_directories_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/main/kotlin")).unwrap();
        std::fs::write(dir.path().join("gradlew"), "").unwrap();
        let p = Profile::of(Stack::Gradle, dir.path());
        assert_eq!(p.language, "Kotlin");
        assert_eq!(p.test_command, "./gradlew --no-daemon test");
        assert_eq!(p.source_dirs, vec!["src/main/".to_string()]);
        assert!(p.test_dirs.is_empty());
        let go = Profile::of(Stack::Go, dir.path());
        assert_eq!(go.source_dirs, vec!["./".to_string()]);
    }
}
