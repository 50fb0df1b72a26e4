//! The return-path policy: which paths may enter the checkout from untrusted hands.
//!
//! One set of rules for every way a path comes back to the runner: FORGE's file tools,
//! FORGE's `run` write-back, GATE's result collection and bind mode. A path is accepted only
//! when it is a regular file (or a directory, or a link that stays inside the repository)
//! inside `source.dirs` / `test_dirs`, no component is a name that git, CI or pace
//! interprets, and it fits the size and count caps.
//!
//! Names are compared ASCII-case-insensitively and after dropping what case-insensitive
//! or Unicode-normalising filesystems ignore (macOS ignores some zero-width code points,
//! Windows trailing dots and spaces, and `GIT~1` is `.git`'s 8.3 short name), because the
//! checkout may live on such a filesystem, or be copied to one.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// Directories that belong to git and to pace, refused at any depth: a nested `.git` becomes
/// an embedded repository whose config (fsmonitor, hooks) host git would obey; `.pace` holds
/// pace's own state and artifacts.
pub const INTERNAL_DIRS: [&str; 2] = [".git", ".pace"];

/// Files git reads from the work tree at any depth: `.gitattributes` names filter and diff
/// drivers, `.gitmodules` submodule URLs and update commands.
const GIT_CONTROL_FILES: [&str; 2] = [".gitattributes", ".gitmodules"];

/// Top-level names that configure pace or CI: changing them changes what runs next time
/// with the runner's secrets (a new `llm.base_url`, a weakened pipeline).
const PROTECTED_TOP_LEVEL: [&str; 17] = [
    // pace's own outputs at the top: the GitLab dotenv report and the progress file.
    "pace-env.env",
    "PROGRESS.md",
    "test-results",
    "pace.config.yaml",
    "plan.yaml",
    "pace",
    ".github",
    ".gitlab",
    ".gitlab-ci.yml",
    "bitbucket-pipelines.yml",
    "Jenkinsfile",
    ".circleci",
    ".travis.yml",
    "azure-pipelines.yml",
    ".buildkite",
    ".woodpecker.yml",
    ".drone.yml",
];

/// Code points HFS+/APFS ignore when comparing names (git's own `is_hfs_dotgit` list):
/// `.g\u{200c}it` is `.git` on a Mac.
const HFS_IGNORABLE: [char; 16] = [
    '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}',
    '\u{206a}', '\u{206b}', '\u{206c}', '\u{206d}', '\u{206e}', '\u{206f}', '\u{feff}',
];

/// How much may come back from one command or one suite run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One file's apparent size (a sparse file counts by what it would take to write out).
    pub max_file_bytes: u64,
    /// All files of one sync together.
    pub max_sync_bytes: u64,
    /// Paths written in one sync.
    pub max_sync_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 64 * 1024 * 1024,
            max_sync_bytes: 512 * 1024 * 1024,
            max_sync_files: 10_000,
        }
    }
}

/// Why a path was not let through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{name}` is {what}; pace never takes it from the sandbox")]
    ControlName { name: String, what: &'static str },
    #[error("`{0}` is pace or CI configuration")]
    Protected(String),
    #[error("outside the writable directories ({0})")]
    NotWritable(String),
    #[error("not a relative path inside the repository")]
    Unsafe,
    #[error("the name contains a control character or a newline")]
    BadName,
    #[error(
        "a symbolic link to `{0}`: links that come back may only point down from their own directory (no `..`, not absolute)"
    )]
    LinkEscapes(String),
    #[error("not a regular file, directory or link ({0})")]
    NotRegular(&'static str),
    #[error("{size} bytes, over the {cap}-byte limit for one file")]
    TooLarge { size: u64, cap: u64 },
    #[error("over the limit of {0} bytes for one command's changes")]
    SyncBytes(u64),
    #[error("over the limit of {0} files for one command's changes")]
    SyncFiles(usize),
}

/// Where a refused path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// FORGE's `run` tool.
    Run,
    /// GATE's test run.
    Gate,
}

/// A path the policy kept out, as listed in `.pace/day-N/refused.yaml` and `summary.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub path: String,
    pub reason: String,
    pub from: Origin,
}

impl Refused {
    pub fn new(path: impl Into<String>, refusal: &Refusal, from: Origin) -> Self {
        Self {
            path: path.into(),
            reason: refusal.to_string(),
            from,
        }
    }
}

/// The rules for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boundary {
    /// Normalised writable directories (`src`, `tests`); `""` is the whole repository.
    writable: Vec<String>,
    pub limits: Limits,
}

impl Boundary {
    /// `dirs` as configured (`src/`, `./tests`, `.`).
    pub fn new<S: AsRef<str>>(dirs: &[S], limits: Limits) -> Self {
        let mut writable: Vec<String> = dirs.iter().map(|d| normalise_dir(d.as_ref())).collect();
        writable.sort();
        writable.dedup();
        Self { writable, limits }
    }

    /// The rules for a configured project: `source.dirs[].path` ∪ `source.test_dirs`.
    pub fn for_settings(settings: &crate::config::settings::Settings) -> Self {
        let mut dirs: Vec<&str> = settings.source.dirs.iter().map(|d| d.path.as_str()).collect();
        dirs.extend(settings.source.test_dirs.iter().map(String::as_str));
        Self::new(&dirs, Limits::default())
    }

    /// The writable directories, normalised (`""` for the whole repository).
    pub fn writable(&self) -> &[String] {
        &self.writable
    }

    /// Whether anything at all is writable (no source or test directory configured: no).
    pub fn any_writable(&self) -> bool {
        !self.writable.is_empty()
    }

    /// May a file or directory at `rel` (repository-relative, `/`-separated) be written?
    pub fn check_path(&self, rel: &str) -> Result<(), Refusal> {
        check_name(rel)?;
        if self.inside_writable(rel) {
            Ok(())
        } else {
            Err(Refusal::NotWritable(self.describe_writable()))
        }
    }

    /// May a symbolic link at `rel` pointing to `target` be written? Relative targets that
    /// stay inside the repository, lexically, are fine (pace never follows links itself).
    pub fn check_link(&self, rel: &str, target: &Path) -> Result<(), Refusal> {
        self.check_path(rel)?;
        if link_stays_inside(rel, target) {
            Ok(())
        } else {
            Err(Refusal::LinkEscapes(target.to_string_lossy().into_owned()))
        }
    }

    /// One file's size against the per-file cap.
    pub fn check_size(&self, size: u64) -> Result<(), Refusal> {
        if size > self.limits.max_file_bytes {
            Err(Refusal::TooLarge {
                size,
                cap: self.limits.max_file_bytes,
            })
        } else {
            Ok(())
        }
    }

    /// Whether `rel` lies inside one of the writable directories.
    pub fn inside_writable(&self, rel: &str) -> bool {
        self.writable
            .iter()
            .any(|d| d.is_empty() || rel == d || rel.starts_with(&format!("{d}/")))
    }

    /// The writable directories for messages: `` `src/`, `tests/` ``.
    pub fn describe_writable(&self) -> String {
        if self.writable.is_empty() {
            return "none configured".into();
        }
        self.writable
            .iter()
            .map(|d| {
                if d.is_empty() {
                    "`.`".to_string()
                } else {
                    format!("`{d}/`")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Counts what one sync lets through against the per-sync caps.
#[derive(Debug)]
pub struct SyncBudget {
    limits: Limits,
    files: usize,
    bytes: u64,
}

impl SyncBudget {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            files: 0,
            bytes: 0,
        }
    }

    /// Takes one file of `size` bytes from the budget, or says which cap it would break.
    pub fn take(&mut self, size: u64) -> Result<(), Refusal> {
        if self.files >= self.limits.max_sync_files {
            return Err(Refusal::SyncFiles(self.limits.max_sync_files));
        }
        if self.bytes.saturating_add(size) > self.limits.max_sync_bytes {
            return Err(Refusal::SyncBytes(self.limits.max_sync_bytes));
        }
        self.files += 1;
        self.bytes += size;
        Ok(())
    }
}

/// A GATE result file (`sandbox.collect`) of `size` bytes at `rel`: the copies land in
/// `.pace/day-N/gate/`, which is committed, so the name rules and the caps hold there as in
/// the repository (the writable directories do not: results live anywhere).
pub fn check_result_file(rel: &str, size: u64, limits: Limits, budget: &mut SyncBudget) -> Result<(), Refusal> {
    check_name(rel)?;
    if size > limits.max_file_bytes {
        return Err(Refusal::TooLarge {
            size,
            cap: limits.max_file_bytes,
        });
    }
    budget.take(size)
}

/// The name rules alone (no writable-directory check): every component of `rel`.
pub fn check_name(rel: &str) -> Result<(), Refusal> {
    if rel.is_empty() || rel.starts_with('/') {
        return Err(Refusal::Unsafe);
    }
    if rel.chars().any(char::is_control) {
        return Err(Refusal::BadName);
    }
    for (depth, comp) in rel.split('/').enumerate() {
        if comp.is_empty() || comp == "." || comp == ".." {
            return Err(Refusal::Unsafe);
        }
        let folded = fold_name(comp);
        if let Some(dir) = INTERNAL_DIRS.iter().find(|d| folded == **d) {
            return Err(Refusal::ControlName {
                name: comp.to_string(),
                what: if *dir == ".git" {
                    "git's own directory (a nested one becomes an embedded repository)"
                } else {
                    "pace's own directory"
                },
            });
        }
        if folded == "git~1" {
            return Err(Refusal::ControlName {
                name: comp.to_string(),
                what: "the short name of `.git` on Windows filesystems",
            });
        }
        if GIT_CONTROL_FILES.contains(&folded.as_str()) {
            return Err(Refusal::ControlName {
                name: comp.to_string(),
                what: "read by git (drivers and submodule commands)",
            });
        }
        if depth == 0 && PROTECTED_TOP_LEVEL.iter().any(|p| folded == p.to_ascii_lowercase()) {
            return Err(Refusal::Protected(comp.to_string()));
        }
    }
    Ok(())
}

/// Whether one path component names an internal directory (`.git`, `.pace`, in any case
/// or filesystem-equivalent spelling). For listings that hide them.
pub fn is_internal_component(comp: &str) -> bool {
    let folded = fold_name(comp);
    INTERNAL_DIRS.contains(&folded.as_str()) || folded == "git~1"
}

/// A name as a case-insensitive, normalising filesystem would compare it.
fn fold_name(comp: &str) -> String {
    let kept: String = comp.chars().filter(|c| !HFS_IGNORABLE.contains(c)).collect();
    kept.trim_end_matches(['.', ' ']).to_ascii_lowercase()
}

/// Whether a link's target stays inside the repository whatever else is a link: only
/// targets that go down from the link's own directory (`sub/file`, never `..` or an
/// absolute path). A lexical check of `..` is not enough: `src/a -> ..` and
/// `src/b -> a/../x` each look inside, and together resolve outside. A link that only goes
/// down cannot leave the directory it is in, and that directory is inside the repository.
fn link_stays_inside(_rel: &str, target: &Path) -> bool {
    if target.as_os_str().is_empty() {
        return false;
    }
    target.components().all(|comp| match comp {
        // A link into `.git` would let a later write reach git's config.
        Component::Normal(name) => name.to_str().is_some_and(|n| !is_internal_component(n)),
        Component::CurDir => true,
        Component::ParentDir | Component::RootDir | Component::Prefix(_) => false,
    })
}

/// Whether a link at `rel` with a relative `target` resolves inside the repository when
/// read lexically (`node_modules/.bin/x -> ../pkg/x`). Weaker than the return path's rule
/// (a chain of such links can leave); for build output that pace neither commits nor
/// follows.
pub fn link_lexically_inside(rel: &str, target: &Path) -> bool {
    if target.as_os_str().is_empty() || target.is_absolute() {
        return false;
    }
    let mut depth: Vec<&str> = rel.split('/').collect();
    depth.pop(); // the link's own name
    for comp in target.components() {
        match comp {
            Component::Normal(name) => {
                let Some(name) = name.to_str() else { return false };
                if is_internal_component(name) {
                    return false;
                }
                depth.push(name);
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// `src/`, `./tests`, `/lib/` → `src`, `tests`, `lib`; `.` and `` → `` (the whole tree).
pub fn normalise_dir(dir: &str) -> String {
    dir.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// A repository-relative path as the policy sees it (`/`-separated), `None` when it is not
/// made only of normal UTF-8 components.
pub fn rel_string(rel: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for comp in rel.components() {
        match comp {
            Component::Normal(name) => parts.push(name.to_str()?),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The shortest prefix of `rel` that a name rule refuses (`src/vendor/lib/.git` for
/// `src/vendor/lib/.git/config`), so a refused directory is reported once, not per file.
pub fn refused_prefix(rel: &str) -> Option<PathBuf> {
    let mut prefix = PathBuf::new();
    for comp in rel.split('/') {
        prefix.push(comp);
        let shown = prefix.to_string_lossy();
        if check_name(&shown).is_err() {
            return Some(prefix);
        }
    }
    None
}

/// `.env`, `*.pem`, `*.key`, `id_rsa*` and friends (`.env.example` and the like are fine).
pub fn looks_like_secret(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel).to_ascii_lowercase();
    if name == ".env" {
        return true;
    }
    if let Some(suffix) = name.strip_prefix(".env.") {
        return !matches!(suffix, "example" | "sample" | "template" | "dist" | "defaults");
    }
    let exact = [".git-credentials", ".netrc", "_netrc", ".pgpass", "credentials.json"];
    if exact.contains(&name.as_str()) {
        return true;
    }
    let ssh = ["id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"];
    if ssh.iter().any(|p| name.starts_with(p)) {
        return true;
    }
    [".pem", ".key", ".p12", ".pfx", ".keystore", ".jks"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src_tests() -> Boundary {
        Boundary::new(&["src/", "tests"], Limits::default())
    }

    #[test]
    fn internal_names_at_any_depth_in_any_spelling() {
        let b = src_tests();
        for rel in [
            "src/vendor/lib/.git/config",
            "src/.GIT/config",
            "src/.Git",
            "tests/.PACE/x",
            "src/.git./config",
            "src/.git /config",
            "src/.g\u{200c}it/config",
            "src/\u{feff}.git/HEAD",
            "src/GIT~1/config",
            "src/.gitattributes",
            "src/deep/.GitModules",
            ".git/config",
        ] {
            assert!(b.check_path(rel).is_err(), "accepted {rel:?}");
        }
        for rel in [
            "src/git/x.go",
            "src/.gitignore",
            "src/gitattributes.md",
            "tests/.pacer",
            "src/my.git.rs",
        ] {
            assert_eq!(b.check_path(rel), Ok(()), "{rel}");
        }
    }

    #[test]
    fn protected_top_level_and_writable_dirs() {
        let b = src_tests();
        for rel in [
            ".gitlab-ci.yml",
            ".GITHUB/workflows/x.yml",
            "pace.config.yaml",
            "Plan.yaml",
            "pace/pace.config.yaml",
            "pace-env.env",
            "progress.md",
            "test-results/junit.xml",
        ] {
            assert!(matches!(b.check_path(rel), Err(Refusal::Protected(_))), "{rel}");
        }
        assert!(matches!(b.check_path("README.md"), Err(Refusal::NotWritable(_))));
        assert!(matches!(b.check_path("srcx/a"), Err(Refusal::NotWritable(_))));
        assert_eq!(b.check_path("src/a/b.rs"), Ok(()));
        // The whole tree writable still protects CI and pace's config.
        let all = Boundary::new(&["."], Limits::default());
        assert_eq!(all.check_path("README.md"), Ok(()));
        assert!(all.check_path(".gitlab-ci.yml").is_err());
        assert!(all.check_path("x/.gitattributes").is_err());
        // A project may have its own `src/pace/` or `src/plan.yaml`: only the top level is pace's.
        assert_eq!(all.check_path("src/pace/plan.yaml"), Ok(()));
        assert!(
            Boundary::new::<&str>(&[], Limits::default())
                .check_path("src/a")
                .is_err()
        );
    }

    #[test]
    fn unsafe_and_control_names() {
        let b = src_tests();
        for rel in [
            "",
            "/etc/passwd",
            "src/../x",
            "src//a",
            "src/./a",
            "src/a\nb",
            "src/\u{1b}[31m",
        ] {
            assert!(b.check_path(rel).is_err(), "accepted {rel:?}");
        }
    }

    #[test]
    fn links_must_stay_inside() {
        let b = src_tests();
        assert_eq!(b.check_link("src/a", Path::new("b")), Ok(()));
        assert_eq!(b.check_link("src/a", Path::new("./sub/b.rs")), Ok(()));
        // `src/a -> ..` with `src/b -> a/../x` would chain out: no `..` at all.
        for target in [
            "sub/.git/config",
            "../b",
            "a/../x",
            "..",
            "/etc/passwd",
            "../../x",
            "../../../etc",
            "",
            "../.git/config",
            "../.git",
        ] {
            assert!(b.check_link("src/a", Path::new(target)).is_err(), "accepted {target:?}");
        }
    }

    #[test]
    fn caps() {
        let limits = Limits {
            max_file_bytes: 10,
            max_sync_bytes: 15,
            max_sync_files: 2,
        };
        let b = Boundary::new(&["src"], limits);
        assert!(b.check_size(10).is_ok());
        assert!(matches!(b.check_size(11), Err(Refusal::TooLarge { .. })));
        let mut budget = SyncBudget::new(limits);
        budget.take(10).unwrap();
        assert!(matches!(budget.take(6), Err(Refusal::SyncBytes(15))));
        budget.take(5).unwrap();
        assert!(matches!(budget.take(0), Err(Refusal::SyncFiles(2))));
    }

    #[test]
    fn refused_prefix_names_the_directory_once() {
        assert_eq!(
            refused_prefix("src/vendor/lib/.git/config"),
            Some(PathBuf::from("src/vendor/lib/.git"))
        );
        assert_eq!(refused_prefix("src/ok.rs"), None);
        assert_eq!(
            refused_prefix(".github/workflows/x.yml"),
            Some(PathBuf::from(".github"))
        );
    }
}
