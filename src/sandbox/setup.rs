//! The dependency set-up phase: `tech.setup_command` (or the default for the stack) runs
//! once per day in a container of the sandbox image, with the network of
//! `sandbox.setup_network`, before FORGE's first command and before GATE, which then run
//! without network against what it fetched.
//!
//! Owns: the default command per stack, the hash of the set-up's inputs, the shell script
//! the set-up container runs, and what FORGE's and GATE's containers get from it (the links
//! to its workspace outputs and the toolchains' offline settings).
//!
//! Decisions:
//! - **Where its outputs live.** The toolchains' caches are on the project's cache volume
//!   (`/cache`, see `cache.rs`). What the set-up writes into the workspace (`node_modules/`,
//!   `vendor/`, `.venv/`: the top-level entries that were not there before it ran) is moved
//!   onto the same volume, under `/cache/.pace-setup/<hash>/workspace/`, and FORGE's session
//!   and GATE's container get a symbolic link at `/workspace/<name>` to each. One copy per
//!   input hash, so a later day with the same lockfiles finds them too (a per-run volume
//!   would have to be filled again every day), nothing is uploaded from the runner, and the
//!   return path never brings them back: GATE collects regular files only and FORGE's
//!   wrapper lists the links (made before its first command) as unchanged, without
//!   descending into them. They carry the cache volume's trust (one volume per scope):
//!   a suite that writes into `node_modules/` writes into that scope's cache.
//! - **When it runs again.** The hash covers the command and every lockfile of the
//!   workspace ([`is_lockfile`]); the set-up container itself looks for
//!   `/cache/.pace-setup/<hash>/done` and stops at once when it is there (a container start
//!   and the workspace upload, no download). Entries older than a week are removed.
//! - **`sandbox.caches: false`** leaves nowhere to record anything: the set-up runs every
//!   time, its downloads and workspace outputs are lost with its container, and FORGE and
//!   GATE get neither links nor offline settings.
//! - **`sandbox.workspace: bind`**: the workspace is the checkout, so the set-up's outputs
//!   stay there (git-ignored build output survives the return path, as on a developer's
//!   machine) and nothing is linked. It is not recorded either and runs every time: a CI
//!   job's fresh checkout would not have the outputs a skip relies on.
//! - **Offline settings** ([`OFFLINE_ENV`]) are set in FORGE's and GATE's containers only
//!   after a set-up succeeded and with `sandbox.network: none` (a name in `sandbox.env`
//!   wins). .NET has no such variable:
//!   GATE's command should use `dotnet test --no-restore`.

use std::io;
use std::path::{Path, PathBuf};

use super::container::Sandbox;
use super::{RunRequest, SandboxError};
use crate::config::settings::{SetupCommand, Tech, WorkspaceMode};

/// Where the set-up records its runs on the cache volume.
pub const SETUP_RECORDS: &str = "/cache/.pace-setup";
/// The first line of the log when the inputs are unchanged.
pub const SKIPPED_LINE: &str = "pace: set-up skipped";

/// What makes FORGE's commands and GATE's suite use the warm cache without the network,
/// per toolchain.
pub const OFFLINE_ENV: [(&str, &str); 4] = [
    // Go: resolve from GOMODCACHE only (`-mod=mod`: no vendor directory needed).
    ("GOFLAGS", "-mod=mod"),
    ("GOPROXY", "off"),
    // npm: never ask the registry; `npm ci`/`npm install` use the cache.
    ("npm_config_offline", "true"),
    // Maven 3.9+ adds these arguments to every `mvn` call: offline.
    ("MAVEN_ARGS", "-o"),
];

/// How the phase ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupStatus {
    /// The inputs were unchanged since a set-up succeeded (nothing ran).
    Skipped,
    /// The command ran and succeeded.
    Ran,
    /// The command failed: the day holds.
    Failed {
        exit_code: i64,
        timed_out: bool,
        /// The end of `setup/output.log`.
        tail: String,
        /// The output looks like a failed network access (an infrastructure error).
        network: bool,
    },
}

#[derive(Debug, Clone)]
pub struct SetupOutcome {
    pub command: String,
    pub hash: String,
    pub status: SetupStatus,
    pub duration: std::time::Duration,
    /// What the egress proxy allowed and refused (`None`: no `sandbox.egress`).
    pub egress: Option<Vec<crate::proxy::TallyEntry>>,
}

/// The set-up command for this repository: `tech.setup_command`, else the default for the
/// stack ([`default_command`]); `None` when there is none or it is turned off.
pub fn command_for(tech: &Tech, repo: &Path) -> Option<String> {
    match &tech.setup_command {
        SetupCommand::Off => None,
        SetupCommand::Command(cmd) => Some(cmd.clone()),
        SetupCommand::Default => default_command(repo, &tech.primary_language),
    }
}

/// One stack pace knows how to fetch dependencies for, found by its manifest at the
/// repository's root.
struct Stack {
    /// Words of `tech.primary_language` that name it.
    languages: &'static [&'static str],
    command: String,
}

/// The default set-up for the stacks whose manifest is at the repository's root: `go.mod`
/// → `go mod download`, `package-lock.json` → `npm ci`, `pom.xml` → Maven's
/// `dependency:go-offline`, Gradle's build files → `gradle dependencies` (`./gradlew` when
/// present), `*.csproj`/`*.sln` → `dotnet restore`. When several are present, the one
/// `tech.primary_language` names wins, else the first in that order. Other stacks: none.
pub fn default_command(repo: &Path, primary_language: &str) -> Option<String> {
    let names: Vec<String> = std::fs::read_dir(repo)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let has = |name: &str| names.iter().any(|n| n == name);
    let mut stacks = Vec::new();
    if has("go.mod") {
        stacks.push(Stack {
            languages: &["go", "golang"],
            command: "go mod download".into(),
        });
    }
    if has("package-lock.json") {
        stacks.push(Stack {
            languages: &["javascript", "typescript", "node", "nodejs", "node.js", "js", "ts"],
            command: "npm ci".into(),
        });
    }
    if has("pom.xml") {
        stacks.push(Stack {
            languages: &["java", "kotlin", "scala", "maven"],
            command: "mvn -B -q dependency:go-offline".into(),
        });
    }
    if names
        .iter()
        .any(|n| n.starts_with("build.gradle") || n.starts_with("settings.gradle"))
    {
        let gradle = if has("gradlew") { "./gradlew" } else { "gradle" };
        stacks.push(Stack {
            languages: &["java", "kotlin", "gradle"],
            command: format!("{gradle} --no-daemon dependencies"),
        });
    }
    if names
        .iter()
        .any(|n| has_extension(n, "csproj") || has_extension(n, "sln"))
    {
        stacks.push(Stack {
            languages: &["c#", "csharp", ".net", "dotnet", "f#", "fsharp"],
            command: "dotnet restore".into(),
        });
    }
    let language = primary_language.to_ascii_lowercase();
    let words: Vec<&str> = language
        .split(|c: char| c.is_whitespace() || c == '/' || c == ',')
        .collect();
    let named = stacks
        .iter()
        .position(|s| s.languages.iter().any(|l| words.contains(l)));
    let index = named.unwrap_or(0);
    (index < stacks.len()).then(|| stacks.swap_remove(index).command)
}

fn has_extension(name: &str, ext: &str) -> bool {
    Path::new(name).extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Whether a change to `path` changes what the set-up fetches: the lockfiles and manifests
/// of Go, npm/pnpm/yarn, Maven, Gradle, NuGet, pip, Poetry, Bundler and Cargo.
pub fn is_lockfile(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
        return false;
    };
    let name = name.as_ref();
    matches!(
        name,
        "go.mod"
            | "go.sum"
            | "package.json"
            | "package-lock.json"
            | "npm-shrinkwrap.json"
            | "pnpm-lock.yaml"
            | "yarn.lock"
            | "pom.xml"
            | "gradle.lockfile"
            | "packages.lock.json"
            | "Directory.Packages.props"
            | "poetry.lock"
            | "Pipfile.lock"
            | "Gemfile.lock"
            | "Cargo.lock"
    ) || name.contains(".gradle")
        || has_extension(name, "csproj")
        || (name.starts_with("requirements") && has_extension(name, "txt"))
}

/// The hash of the set-up's inputs: the command, then each lockfile of `files` (relative
/// to `repo`) by path and content, in path order. Hex, 32 characters.
pub fn inputs_hash(repo: &Path, files: &[PathBuf], command: &str) -> io::Result<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"pace-setup-v1\0");
    ctx.update(command.as_bytes());
    ctx.update(b"\0");
    let mut locks: Vec<&PathBuf> = files.iter().filter(|f| is_lockfile(f)).collect();
    locks.sort();
    for rel in locks {
        let content = match std::fs::read(repo.join(rel)) {
            Ok(c) => c,
            // Listed by git but deleted from the work tree: not part of the workspace.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("reading `{}`: {e}", rel.display()))),
        };
        ctx.update(rel.to_string_lossy().as_bytes());
        ctx.update(b"\0");
        ctx.update(&(content.len() as u64).to_le_bytes());
        ctx.update(&content);
    }
    Ok(hex::encode(&ctx.finish().as_ref()[..16]))
}

/// The command in single quotes for `/bin/sh`.
pub(super) fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Where the set-up with inputs `hash` keeps its record and its workspace outputs.
pub(super) fn record_dir(hash: &str) -> String {
    format!("{SETUP_RECORDS}/{hash}")
}

/// What the set-up container runs. `record`: skip when its record is on the cache volume,
/// else run, carry the new top-level workspace entries onto the volume and record it.
/// A record in use is touched, so that the weekly pruning only takes unused ones. What the
/// command changes in the workspace's own files is lost with the container.
pub(super) fn setup_script(command: &str, hash: &str, record: bool) -> String {
    if !record {
        return format!("/bin/sh -c {}", sh_quote(command));
    }
    let dir = record_dir(hash);
    // Build output (`target/` of Maven and Cargo, `build/` of Gradle, `bin/` and `obj/` of
    // .NET, `out/`) is not a dependency: linked into later days it would hand GATE classes
    // of sources FORGE has since deleted. It is left in the container.
    let moving = r#"printf '%s\n' "$(ls -A /workspace)" | while IFS= read -r n; do
  case "$n" in ''|.git|.pace|.pace-files|target|build|bin|obj|out) continue ;; esac
  printf '%s\n' "$before" | grep -qxF -- "$n" && continue
  mv -- "/workspace/$n" "$P/workspace/$n" || exit 1
done || { echo "pace: cannot move the set-up's workspace outputs onto the cache volume" >&2; exit 1; }
"#;
    format!(
        r#"D={dir}
P=$D.part.$$
if [ -f "$D/done" ]; then
  touch "$D" 2>/dev/null
  echo "{SKIPPED_LINE}: the command and the lockfiles are unchanged since it last succeeded ({hash})"
  exit 0
fi
before=$(ls -A /workspace)
/bin/sh -c {cmd} </dev/null || exit $?
mkdir -p "$P/workspace" || {{ echo "pace: cannot record the set-up under $D" >&2; exit 1; }}
{moving}touch "$P/done" || {{ echo "pace: cannot record the set-up under $D" >&2; exit 1; }}
# A run with the same inputs that finished meanwhile wins (its links may be in use).
if [ -f "$D/done" ]; then rm -rf "$P"; else rm -rf "$D" && mv "$P" "$D"; fi || {{ echo "pace: cannot record the set-up under $D" >&2; exit 1; }}
find {SETUP_RECORDS} -mindepth 1 -maxdepth 1 -mtime +7 -exec rm -rf {{}} + 2>/dev/null
exit 0"#,
        cmd = sh_quote(command),
    )
}

/// Links each of the set-up's workspace outputs in `dir` into `/workspace` (what is
/// already there wins); run before GATE's suite and once in each FORGE session.
pub(super) fn link_script(dir: &str) -> String {
    format!(
        r#"for p in {dir}/workspace/* {dir}/workspace/.[!.]* {dir}/workspace/..?*; do
  [ -e "$p" ] || continue
  n=${{p##*/}}
  [ -e "/workspace/$n" ] || [ -L "/workspace/$n" ] || ln -s "$p" "/workspace/$n"
done"#
    )
}

/// When a FORGE command without network looks like adding a dependency, what to tell the
/// model: declare it so that the next set-up fetches it.
pub fn dependency_advice(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let has = |pair: &[&str]| words.windows(pair.len()).any(|w| w == pair);
    // `tool verb package`: a package named after the verb (not an option or `&&`).
    let adds = |tool: &str, verbs: &[&str]| {
        words.windows(3).any(|w| {
            w[0] == tool && verbs.contains(&w[1]) && !w[2].starts_with('-') && !matches!(w[2], "&&" | "||" | ";" | "|")
        })
    };
    let how =
        if adds("npm", &["install", "i", "add"]) || adds("yarn", &["add"]) || adds("pnpm", &["add", "install", "i"]) {
            "add it to `package.json` and `package-lock.json` (edit both, or the `dependencies` entry and the lockfile)"
        } else if has(&["go", "get"]) || has(&["go", "mod", "download"]) {
            "add the `require` line to `go.mod` and its checksums to `go.sum`"
        } else if has(&["mvn", "dependency:get"]) || words.iter().any(|w| w.starts_with("dependency:get")) {
            "add the `<dependency>` to `pom.xml`"
        } else if has(&["dotnet", "add"]) {
            "add the `<PackageReference>` to the `.csproj`"
        } else if has(&["pip", "install"]) {
            "add it to the requirements file"
        } else {
            return None;
        };
    Some(format!(
        "the sandbox has no network for FORGE's commands: dependencies are fetched by the set-up phase (`tech.setup_command`) before FORGE and GATE. To add one, {how}; the next set-up fetches it (with `forge.setup_on_change: true` pace runs it again after this attempt's lockfile change)"
    ))
}

impl Sandbox {
    /// Runs the set-up phase for `repo` with `command`; its output goes to `output_log`.
    /// On success FORGE's sessions and GATE's containers started afterwards get its
    /// outputs and the offline settings.
    pub async fn setup(
        &self,
        repo: &Path,
        command: &str,
        output_log: &Path,
        on_output: Option<super::OutputSink<'_>>,
    ) -> Result<SetupOutcome, SandboxError> {
        let started = std::time::Instant::now();
        let files = super::workspace::list_files(repo).map_err(|source| SandboxError::Workspace {
            path: repo.to_path_buf(),
            source,
        })?;
        let hash = inputs_hash(repo, &files, command).map_err(|source| SandboxError::Workspace {
            path: repo.to_path_buf(),
            source,
        })?;
        let caches = self.caches_usable();
        let record = caches && self.ctx.settings.workspace != WorkspaceMode::Bind;
        let script = setup_script(command, &hash, record);
        let collect_into = output_log.parent().unwrap_or(repo).join("collected");
        // With `sandbox.egress` the set-up reaches only the proxy (see `egress.rs`), which
        // its container starts; it is stopped right after unless FORGE and GATE use it too
        // (`sandbox.egress_for_tests`: stopped at the end of the day).
        let outcome = self
            .run_as(
                super::spec::Role::Setup,
                RunRequest {
                    repo,
                    command: script,
                    output_log,
                    collect_into: &collect_into,
                    on_output,
                },
            )
            .await;
        let s = &self.ctx.settings;
        let tally = if s.egress.is_empty() || s.egress_for_tests {
            None
        } else {
            self.stop_egress().await?
        };
        let outcome = outcome?;
        let status = if outcome.exit_code == 0 && !outcome.timed_out {
            if outcome.head.starts_with(SKIPPED_LINE) {
                SetupStatus::Skipped
            } else {
                SetupStatus::Ran
            }
        } else {
            SetupStatus::Failed {
                exit_code: outcome.exit_code,
                timed_out: outcome.timed_out,
                tail: outcome.tail.clone(),
                network: outcome.network_hint.is_some(),
            }
        };
        let ok = !matches!(status, SetupStatus::Failed { .. });
        // Bind mode: no record to link, but the toolchains' caches are warm.
        self.set_prepared((ok && caches).then(|| super::container::Prepared {
            dir: record_dir(&hash),
            link: record,
        }));
        Ok(SetupOutcome {
            command: command.to_string(),
            hash,
            status,
            duration: started.elapsed(),
            egress: tally,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    #[test]
    fn the_default_follows_the_manifest_and_the_language() {
        let cases: [(&[&str], &str, Option<&str>); 9] = [
            (&["go.mod"], "Go 1.22", Some("go mod download")),
            (&["package-lock.json", "package.json"], "TypeScript", Some("npm ci")),
            (&["pom.xml"], "Java 21", Some("mvn -B -q dependency:go-offline")),
            (&["build.gradle.kts"], "Kotlin", Some("gradle --no-daemon dependencies")),
            (
                &["build.gradle", "gradlew"],
                "Java",
                Some("./gradlew --no-daemon dependencies"),
            ),
            (&["App.csproj"], "C#", Some("dotnet restore")),
            (&["requirements.txt"], "Python 3.12", None),
            // A Java service with a Node front end: the language decides.
            (
                &["package-lock.json", "pom.xml"],
                "Java 17",
                Some("mvn -B -q dependency:go-offline"),
            ),
            (&["package-lock.json", "pom.xml"], "Python", Some("npm ci")),
        ];
        for (files, language, expected) in cases {
            let pairs: Vec<(&str, &str)> = files.iter().map(|f| (*f, "x")).collect();
            let repo = repo_with(&pairs);
            assert_eq!(
                default_command(repo.path(), language).as_deref(),
                expected,
                "{files:?} {language}"
            );
        }
    }

    #[test]
    fn off_and_explicit_commands_win_over_the_default() {
        let repo = repo_with(&[("go.mod", "module x")]);
        let mut tech = crate::config::settings::Settings::defaults(repo.path().to_path_buf()).tech;
        assert_eq!(command_for(&tech, repo.path()).as_deref(), Some("go mod download"));
        tech.setup_command = SetupCommand::Off;
        assert_eq!(command_for(&tech, repo.path()), None);
        tech.setup_command = SetupCommand::Command("make deps".into());
        assert_eq!(command_for(&tech, repo.path()).as_deref(), Some("make deps"));
    }

    #[test]
    fn the_hash_follows_lockfiles_and_the_command_only() {
        let repo = repo_with(&[("package-lock.json", "{}"), ("src/a.js", "1"), ("sub/go.sum", "x")]);
        let files: Vec<PathBuf> = ["package-lock.json", "src/a.js", "sub/go.sum"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let first = inputs_hash(repo.path(), &files, "npm ci").unwrap();
        assert_eq!(first.len(), 32);
        std::fs::write(repo.path().join("src/a.js"), "2").unwrap();
        assert_eq!(inputs_hash(repo.path(), &files, "npm ci").unwrap(), first);
        assert_ne!(inputs_hash(repo.path(), &files, "npm install").unwrap(), first);
        std::fs::write(repo.path().join("sub/go.sum"), "y").unwrap();
        assert_ne!(inputs_hash(repo.path(), &files, "npm ci").unwrap(), first);
    }

    #[test]
    fn lockfiles_are_recognised() {
        for yes in [
            "go.sum",
            "a/package-lock.json",
            "pnpm-lock.yaml",
            "yarn.lock",
            "pom.xml",
            "build.gradle.kts",
            "packages.lock.json",
            "src/App.csproj",
            "requirements-dev.txt",
        ] {
            assert!(is_lockfile(Path::new(yes)), "{yes}");
        }
        for no in ["main.go", "README.md", "src/app.js", "notes.txt"] {
            assert!(!is_lockfile(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(sh_quote("echo 'hi'"), r"'echo '\''hi'\'''");
    }

    #[test]
    fn dependency_commands_get_advice() {
        assert!(dependency_advice("npm install left-pad").is_some_and(|a| a.contains("package.json")));
        assert!(dependency_advice("cd web && npm i left-pad").is_some());
        assert!(dependency_advice("go get example.com/m@v1").is_some_and(|a| a.contains("go.mod")));
        assert!(dependency_advice("mvn dependency:get -Dartifact=a:b:1").is_some_and(|a| a.contains("pom.xml")));
        assert_eq!(dependency_advice("npm install"), None);
        assert_eq!(dependency_advice("cd web && npm install && npm test"), None);
        assert_eq!(dependency_advice("npm install --offline"), None);
        assert_eq!(dependency_advice("npm test"), None);
        assert_eq!(dependency_advice("go test ./..."), None);
    }
}
