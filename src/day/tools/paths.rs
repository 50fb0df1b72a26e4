//! Path confinement for every file tool.
//!
//! A path from the model is checked twice: lexically (relative, no `..`, no NUL or control
//! characters, no percent-encoded separators, no Windows forms, never `.git/` or `.pace/`)
//! and then on disk (the existing prefix is canonicalised, following symlinks, and must stay
//! inside the root). Reads refuse secret-looking files that git does not track. Writes must
//! land in a writable directory and go through [`crate::safe_write`], the one writer of pace: never
//! through a symlink at any component or into a file with other hard links, always to a
//! temporary file in the same directory that is renamed over the target.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::safe_write::{self, OwnFileError};

/// Longest path accepted from the model.
const MAX_PATH_LEN: usize = 4096;

/// Directories no tool may read, list or write (compared case-insensitively, any depth).
pub use crate::boundary::INTERNAL_DIRS;
use crate::boundary::{self, Refusal};

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path is too long ({0} bytes)")]
    TooLong(usize),
    #[error("the path contains a NUL byte or a control character")]
    ControlChar,
    #[error("`{0}` is absolute: use a path relative to the repository root")]
    Absolute(String),
    #[error("`{0}` starts with `~`: use a path relative to the repository root")]
    Home(String),
    #[error("`{0}` is a Windows drive, UNC or backslash path: use `/` and a path relative to the repository root")]
    Windows(String),
    #[error("`{0}` contains percent-encoded path characters: write the path literally")]
    Encoded(String),
    #[error("`{0}` contains `..`: paths must stay inside the repository")]
    Traversal(String),
    #[error("`{path}` is inside `{dir}/`, which the tools cannot access")]
    Internal { path: String, dir: String },
    #[error("`{0}` resolves outside the repository (through a symbolic link)")]
    Escapes(String),
    #[error("`{0}` looks like a secret file that git does not track; it cannot be read")]
    Secret(String),
    #[error("`{path}` is outside the writable directories: {dirs}")]
    NotWritable { path: String, dirs: String },
    #[error("`{0}` is pace, git or CI configuration and cannot be written")]
    Protected(String),
    #[error("`{0}` is a symbolic link; writing through links is not allowed")]
    Symlink(String),
    #[error("`{0}` has other hard links (it may be shared with a file outside the repository); it cannot be written")]
    HardLink(String),
    #[error("File not found: {0}")]
    NotFound(String),
    #[error("'{0}' is a directory, not a file. Specify the full file path (e.g. '{0}/main.rs')")]
    IsDirectory(String),
    #[error("cannot access `{path}`: {source}")]
    Io { path: String, source: std::io::Error },
}

impl PathError {
    /// The writer's refusal in the tools' words (without a link's target: the model is not
    /// told what exists outside the repository).
    fn from_own(raw: &str, e: OwnFileError) -> Self {
        match e {
            OwnFileError::Symlink { .. } => Self::Symlink(raw.to_string()),
            OwnFileError::HardLink { .. } => Self::HardLink(raw.to_string()),
            OwnFileError::WrongType { found: "directory", .. } => Self::IsDirectory(raw.to_string()),
            OwnFileError::Outside { .. } => Self::Escapes(raw.to_string()),
            OwnFileError::Io { source, .. } => Self::Io {
                path: raw.to_string(),
                source,
            },
            e @ OwnFileError::WrongType { .. } => Self::Io {
                path: raw.to_string(),
                source: e.into(),
            },
        }
    }
}

/// A path that passed confinement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Absolute path on disk (canonical for the existing part).
    pub abs: PathBuf,
    /// Relative to the root, `/`-separated, `""` for the root itself.
    pub rel: String,
    /// The confinement root: writes refuse links below it.
    root: PathBuf,
}

/// A confinement root (the repository, or SCRIBE's docs directory).
#[derive(Debug, Clone)]
pub struct Jail {
    root: PathBuf,
}

impl Jail {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let root = fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("`{}` is not a directory", root.display()),
            ));
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// An existing file or directory to read or list. `""` and `"."` are the root.
    pub fn resolve_read(&self, raw: &str) -> Result<Resolved, PathError> {
        let comps = lexical(raw, true)?;
        let (prefix, rest) = self.existing_prefix(raw, &comps)?;
        if !rest.is_empty() {
            return Err(PathError::NotFound(raw.to_string()));
        }
        let rel = self.relative(raw, &prefix)?;
        check_internal(raw, &rel)?;
        if prefix.is_file() && looks_like_secret(&rel) && !git_tracks(&self.root, &rel) {
            return Err(PathError::Secret(raw.to_string()));
        }
        Ok(Resolved {
            abs: prefix,
            rel,
            root: self.root.clone(),
        })
    }

    /// A file to create or replace. `writable` holds normalised directory prefixes
    /// (see [`normalise_dir`]); `None` skips that check (pace's own files).
    pub fn resolve_write(&self, raw: &str, writable: Option<&[String]>) -> Result<Resolved, PathError> {
        let comps = lexical(raw, false)?;
        let Some((name, parents)) = comps.split_last() else {
            return Err(PathError::Empty);
        };
        let (parent, rest) = self.existing_prefix(raw, parents)?;
        let mut target = parent;
        target.extend(rest.iter());
        target.push(name);
        let rel = self.relative(raw, &target)?;
        check_internal(raw, &rel)?;
        // Links (a dangling one included) and hard links, checked now so the model hears
        // why; the write itself checks again without following anything.
        safe_write::check(&self.root, &target, false).map_err(|e| PathError::from_own(raw, e))?;
        if let Some(dirs) = writable {
            check_writable(raw, &rel, dirs)?;
        }
        Ok(Resolved {
            abs: target,
            rel,
            root: self.root.clone(),
        })
    }

    /// A file of pace's own under the root (e.g. `.pace/context/product.md`): the path is
    /// fixed by pace, so the internal-directory rule does not apply, but no existing
    /// component may be a symlink and the target may not have other hard links.
    pub fn resolve_own_file(&self, comps: &[&str]) -> Result<Resolved, PathError> {
        let rel = comps.join("/");
        let mut abs = self.root.clone();
        abs.extend(comps.iter());
        safe_write::check(&self.root, &abs, false).map_err(|e| PathError::from_own(&rel, e))?;
        Ok(Resolved {
            abs,
            rel,
            root: self.root.clone(),
        })
    }

    /// Canonicalises the longest existing prefix of `comps` (following symlinks) and checks
    /// it stays inside the root. Returns it with the components that do not exist yet.
    fn existing_prefix<'c>(&self, raw: &str, comps: &'c [String]) -> Result<(PathBuf, &'c [String]), PathError> {
        for i in (0..=comps.len()).rev() {
            let mut candidate = self.root.clone();
            candidate.extend(comps[..i].iter());
            match fs::canonicalize(&candidate) {
                Ok(canonical) => {
                    if !canonical.starts_with(&self.root) {
                        return Err(PathError::Escapes(raw.to_string()));
                    }
                    return Ok((canonical, &comps[i..]));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    // A symlink at this level whose target is outside: say so rather than
                    // "not found" (and never reveal what exists out there).
                    if i > 0
                        && let Ok(target) = fs::read_link(&candidate)
                    {
                        let base = candidate.parent().map(Path::to_path_buf).unwrap_or_default();
                        let joined = base.join(target);
                        if !lexically_inside(&joined, &self.root) {
                            return Err(PathError::Escapes(raw.to_string()));
                        }
                    }
                }
                Err(source) => {
                    return Err(PathError::Io {
                        path: raw.to_string(),
                        source,
                    });
                }
            }
        }
        Err(PathError::Escapes(raw.to_string()))
    }

    fn relative(&self, raw: &str, abs: &Path) -> Result<String, PathError> {
        let rel = abs
            .strip_prefix(&self.root)
            .map_err(|_| PathError::Escapes(raw.to_string()))?;
        let parts: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        Ok(parts.join("/"))
    }
}

/// `src/`, `./tests`, `/lib/` → `src`, `tests`, `lib`; `.` and `` → `` (the whole tree).
pub fn normalise_dir(dir: &str) -> String {
    boundary::normalise_dir(dir)
}

/// `./src//a.rs` → `src/a.rs`: the form eviction compares paths in.
pub fn normalise_rel(path: &str) -> String {
    normalise_dir(path)
}

/// Lexical checks; returns the normal components. `allow_root` accepts `""` / `"."`.
fn lexical(raw: &str, allow_root: bool) -> Result<Vec<String>, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong(raw.len()));
    }
    if raw.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    let trimmed = raw.trim();
    if trimmed.starts_with('~') {
        return Err(PathError::Home(raw.to_string()));
    }
    if trimmed.contains('\\') || has_drive_prefix(trimmed) {
        return Err(PathError::Windows(raw.to_string()));
    }
    if trimmed.starts_with('/') {
        return Err(PathError::Absolute(raw.to_string()));
    }
    if has_encoded_separator(trimmed) {
        return Err(PathError::Encoded(raw.to_string()));
    }
    let mut comps = Vec::new();
    for part in trimmed.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::Traversal(raw.to_string())),
            p => comps.push(p.to_string()),
        }
    }
    if comps.is_empty() && !allow_root {
        return Err(PathError::Empty);
    }
    check_internal(raw, &comps.join("/"))?;
    Ok(comps)
}

fn has_drive_prefix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// `%2e`, `%2f`, `%5c`, `%00`, `%25` (double encoding), `%3a`, `%7e` in any case.
fn has_encoded_separator(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1].to_ascii_lowercase(), w[2].to_ascii_lowercase()),
                (b'2', b'e' | b'f' | b'5') | (b'5', b'c') | (b'0', b'0') | (b'3', b'a') | (b'7', b'e')
            )
    })
}

fn check_internal(raw: &str, rel: &str) -> Result<(), PathError> {
    for comp in rel.split('/') {
        if boundary::is_internal_component(comp) {
            return Err(PathError::Internal {
                path: raw.to_string(),
                dir: comp.to_string(),
            });
        }
    }
    Ok(())
}

/// The return-path policy's write rules (the same the sandbox applies to what comes back).
fn check_writable(raw: &str, rel: &str, dirs: &[String]) -> Result<(), PathError> {
    let policy = boundary::Boundary::new(dirs, boundary::Limits::default());
    match policy.check_path(rel) {
        Ok(()) => Ok(()),
        Err(Refusal::NotWritable(_)) => Err(PathError::NotWritable {
            path: raw.to_string(),
            dirs: policy.describe_writable(),
        }),
        Err(Refusal::Protected(_) | Refusal::ControlName { .. }) => Err(PathError::Protected(raw.to_string())),
        Err(_) => Err(PathError::Traversal(raw.to_string())),
    }
}

pub use crate::boundary::looks_like_secret;

/// True only when git tracks `rel` (it is committed, so no secret of the runner's). "Not
/// ignored" is not enough: the ignore rules live in `.gitignore` files the model may write
/// (`src/.gitignore` with `!.env` would unlock an ignored `src/.env`). Any failure counts as
/// untracked. Literal pathspecs: a name like `*.pem` must not match other files.
fn git_tracks(root: &Path, rel: &str) -> bool {
    crate::git::hardened_command(root)
        .env("GIT_LITERAL_PATHSPECS", "1")
        .args(["ls-files", "--error-unmatch", "--"])
        .arg(rel)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn lexically_inside(path: &Path, root: &Path) -> bool {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out.starts_with(root)
}

/// Writes `content` to a resolved path through [`safe_write::write`]: parent directories
/// are created, the bytes go to a temporary file in the same directory which is then
/// renamed over the target; a link at any component below the root is refused. An
/// existing file keeps its mode.
pub fn write_atomic(target: &Resolved, content: &[u8]) -> Result<(), PathError> {
    safe_write::write(&target.root, &target.abs, content).map_err(|e| PathError::from_own(&target.rel, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_rejects_the_classics() {
        for raw in [
            "../../etc/passwd",
            "/etc/passwd",
            "src/../../x",
            "src/../.git/config",
            "%2e%2e/x",
            "%2E%2E%2Fx",
            "src/%252e%252e/x",
            "a\0b",
            "src/a\nb",
            "C:\\Windows\\win.ini",
            "C:/Windows",
            "\\\\server\\share\\x",
            "~/.git-credentials",
            ".git/config",
            ".GIT/config",
            "sub/.git/HEAD",
            ".pace/day-1/run.json",
            "",
            ".",
        ] {
            assert!(lexical(raw, false).is_err(), "accepted {raw:?}");
        }
        assert_eq!(
            lexical("./src//a.rs", false).ok(),
            Some(vec!["src".into(), "a.rs".into()])
        );
        assert_eq!(lexical(".", true).ok(), Some(vec![]));
    }

    #[test]
    fn secret_names() {
        for s in [".env", "a/.env.local", "k.pem", "x/server.key", "id_rsa.pub", ".netrc"] {
            assert!(looks_like_secret(s), "{s}");
        }
        for s in [".env.example", "src/keyboard.rs", "README.md", "monkey.txt"] {
            assert!(!looks_like_secret(s), "{s}");
        }
    }

    #[test]
    fn own_files_and_writes_refuse_links_also_when_planted_after_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let outside = dir.path().join("outside");
        fs::create_dir_all(repo.join("src")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        let jail = Jail::new(&repo).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, repo.join(".pace")).unwrap();
        assert!(matches!(
            jail.resolve_own_file(&[".pace", "context", "product.md"]),
            Err(PathError::Symlink(p)) if p == ".pace/context/product.md"
        ));
        // Resolved while `src/gen` did not exist; a link appears before the write.
        let target = jail.resolve_write("src/gen/a.rs", None).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, repo.join("src/gen")).unwrap();
        assert!(matches!(write_atomic(&target, b"x"), Err(PathError::Symlink(p)) if p == "src/gen/a.rs"));
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn normalises_dirs() {
        assert_eq!(normalise_dir("./src/"), "src");
        assert_eq!(normalise_dir("."), "");
        assert_eq!(normalise_dir("a//b/"), "a/b");
    }
}
