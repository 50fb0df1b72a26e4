//! git through the CLI, with typed errors. pace commits on the checked-out branch with a
//! configured identity passed per command (`-c user.name=...`), never written to config.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run `git`: {0}")]
    Spawn(std::io::Error),
    #[error("`git {args}` failed in `{dir}`: {stderr}")]
    Failed { args: String, dir: PathBuf, stderr: String },
    #[error("`{0}` is not inside a git repository")]
    NotARepo(PathBuf),
    #[error("HEAD is detached in `{0}`: pace commits on a branch")]
    DetachedHead(PathBuf),
    #[error("the work tree has uncommitted changes that pace would mix with its own work: {}", list_files(.0))]
    DirtyWorkTree(Vec<String>),
}

fn list_files(files: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = files
        .iter()
        .take(SHOWN)
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > SHOWN {
        text.push_str(&format!(" and {} more", files.len() - SHOWN));
    }
    text
}

impl GitError {
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NotARepo(_) => Some("run pace at the root of the project's git checkout (`git init` for a new one)".into()),
            Self::DetachedHead(_) => Some(
                "check out the sprint branch first (`git checkout -B sprint/NAME`); in GitLab CI set `GIT_STRATEGY: clone` and run the pipeline on the branch"
                    .into(),
            ),
            Self::DirtyWorkTree(_) => Some(
                "commit them (`git add -A && git commit`) or stash them (`git stash -u`), then run the day again; pace never commits changes it did not make"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// A git process for `dir` that runs no program the repository configures.
pub fn hardened_command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"])
        .env("GIT_TERMINAL_PROMPT", "0");
    cmd
}

#[derive(Debug, Clone)]
pub struct Git {
    root: PathBuf,
    author_name: String,
    author_email: String,
}

impl Git {
    /// Opens the repository containing `dir` (its top level becomes the root).
    pub fn open(dir: &Path, author_name: &str, author_email: &str) -> Result<Self, GitError> {
        let out = Command::new("git")
            .args(["rev-parse", "--show-toplevel"])
            .current_dir(dir)
            .output()
            .map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Err(GitError::NotARepo(dir.to_path_buf()));
        }
        let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Ok(Self {
            root,
            author_name: author_name.into(),
            author_email: author_email.into(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.current_dir(&self.root)
            .arg("-c")
            .arg(format!("user.name={}", self.author_name))
            .arg("-c")
            .arg(format!("user.email={}", self.author_email))
            // Never let a hook or pager of the user's configuration run under pace.
            .args(["-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat"])
            .env("GIT_TERMINAL_PROMPT", "0");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.command().args(args).output().map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Err(GitError::Failed {
                args: args.join(" "),
                dir: self.root.clone(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The checked-out branch; an error on a detached HEAD.
    pub fn current_branch(&self) -> Result<String, GitError> {
        let name = self
            .run(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .map_err(|_| GitError::DetachedHead(self.root.clone()))?;
        Ok(name.trim().to_string())
    }

    /// The commit HEAD points at, or an empty string in a repository with no commits.
    pub fn head(&self) -> String {
        self.run(&["rev-parse", "--verify", "--quiet", "HEAD"])
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// Stages `paths` (additions, changes and deletions) and commits if anything is staged.
    /// Returns the new commit, or `None` when there was nothing to commit.
    pub fn commit_paths(&self, paths: &[String], message: &str) -> Result<Option<String>, GitError> {
        if paths.is_empty() {
            return Ok(None);
        }
        let mut args = vec!["add", "--all", "--"];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args)?;
        let mut staged_args = vec!["diff", "--cached", "--name-only", "--"];
        staged_args.extend(paths.iter().map(String::as_str));
        if self.run(&staged_args)?.trim().is_empty() {
            return Ok(None);
        }
        // Only these paths: whatever else a person had staged stays out of pace's commit.
        let mut commit = vec!["commit", "--quiet", "--no-verify", "-m", message, "--"];
        commit.extend(paths.iter().map(String::as_str));
        self.run(&commit)?;
        Ok(Some(self.head()))
    }

    /// Files changed (in the work tree or index, tracked or untracked-not-ignored) under `paths`.
    pub fn changed_files(&self, paths: &[String]) -> Result<Vec<String>, GitError> {
        let mut args = vec!["status", "--porcelain=v1", "-z", "--untracked-files=all", "--"];
        args.extend(paths.iter().map(String::as_str));
        let out = self.run(&args)?;
        let mut files = Vec::new();
        let mut entries = out.split('\0').filter(|e| !e.is_empty());
        while let Some(entry) = entries.next() {
            if entry.len() > 3 {
                files.push(entry[3..].to_string());
            }
            // A rename is followed by its source path.
            if entry.starts_with('R') {
                entries.next();
            }
        }
        Ok(files)
    }

    /// A person's uncommitted work: every tracked file changed in the index or the work
    /// tree, and untracked (not ignored) files under `untracked_dirs` (where FORGE's commit
    /// would pick them up). Paths under `except` (pace's own outputs) are left out.
    pub fn uncommitted_changes(&self, untracked_dirs: &[String], except: &[&str]) -> Result<Vec<String>, GitError> {
        let out = self.run(&["status", "--porcelain=v1", "-z", "--untracked-files=all"])?;
        let under = |path: &str, dir: &str| {
            let dir = dir.trim_end_matches('/');
            dir.is_empty() || dir == "." || path == dir || path.starts_with(&format!("{dir}/"))
        };
        let mut files = Vec::new();
        let mut entries = out.split('\0').filter(|e| !e.is_empty());
        while let Some(entry) = entries.next() {
            if entry.starts_with('R') || entry.starts_with('C') {
                entries.next();
            }
            let (Some(code), Some(path)) = (entry.get(..2), entry.get(3..)) else {
                continue;
            };
            if except.iter().any(|e| under(path, e)) {
                continue;
            }
            if code == "??" && !untracked_dirs.iter().any(|d| under(path, d)) {
                continue;
            }
            files.push(path.to_string());
        }
        Ok(files)
    }

    /// The diff of `base..HEAD` (the day's work), capped for prompts by the caller.
    pub fn diff_since(&self, base: &str) -> Result<String, GitError> {
        if base.is_empty() {
            return self.run(&["show", "--format=", "HEAD"]);
        }
        self.run(&["diff", &format!("{base}..HEAD")])
    }

    /// Commits after `base` whose author is not pace (a human's fix before `--retry`).
    pub fn human_commits_since(&self, base: &str) -> Result<Vec<String>, GitError> {
        if base.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.run(&["log", "--format=%H%x09%ae%x09%s", &format!("{base}..HEAD")])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, '\t');
                let sha = parts.next()?;
                let email = parts.next()?;
                let subject = parts.next().unwrap_or_default();
                (email != self.author_email).then(|| format!("{} {subject}", &sha[..sha.len().min(10)]))
            })
            .collect())
    }

    /// The URL of a remote (`origin`), if configured.
    pub fn remote_url(&self, remote: &str) -> Option<String> {
        self.run(&["remote", "get-url", remote])
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Pushes `HEAD` to `branch` at `url` (an https URL without credentials). The
    /// credential is an HTTP header passed through git's environment (`GIT_CONFIG_*`), so
    /// it never appears in the command line, `.git/config`, a log or an artifact.
    pub fn push(&self, url: &str, branch: &str, auth_header: &str) -> Result<(), GitError> {
        let refspec = format!("HEAD:refs/heads/{branch}");
        let out = self
            .command()
            .args(["push", "--porcelain", url, &refspec])
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", auth_header)
            .output()
            .map_err(GitError::Spawn)?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).replace(auth_header, "[REDACTED]");
        let stdout = String::from_utf8_lossy(&out.stdout).replace(auth_header, "[REDACTED]");
        Err(GitError::Failed {
            args: format!("push {url} {refspec}"),
            dir: self.root.clone(),
            stderr: format!("{}\n{}", stdout.trim(), stderr.trim()).trim().to_string(),
        })
    }

    pub fn is_ancestor(&self, commit: &str) -> bool {
        !commit.is_empty() && self.run(&["merge-base", "--is-ancestor", commit, "HEAD"]).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Git) {
        let dir = tempfile::tempdir().unwrap();
        Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        let git = Git::open(dir.path(), "pace", "pace@localhost").unwrap();
        (dir, git)
    }

    #[test]
    fn commits_only_named_paths() {
        let (dir, git) = repo();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("other.txt"), "o").unwrap();
        let sha = git.commit_paths(&["src".into()], "Day 1: work").unwrap().unwrap();
        assert_eq!(git.head(), sha);
        assert_eq!(git.changed_files(&[".".into()]).unwrap(), vec!["other.txt"]);
        assert_eq!(git.commit_paths(&["src".into()], "nothing").unwrap(), None);
        // A person's staged change elsewhere stays staged, out of pace's commit.
        Command::new("git")
            .args(["add", "other.txt"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        std::fs::write(dir.path().join("src/b.txt"), "b").unwrap();
        git.commit_paths(&["src".into()], "Day 1: more").unwrap().unwrap();
        assert_eq!(
            git.run(&["diff", "--cached", "--name-only"]).unwrap().trim(),
            "other.txt"
        );
        assert_eq!(git.current_branch().unwrap(), "main");
    }

    #[test]
    fn uncommitted_changes_are_tracked_edits_and_untracked_files_in_the_source_dirs() {
        let (dir, git) = repo();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("README"), "r").unwrap();
        git.commit_paths(&["src".into(), "README".into()], "one").unwrap();
        let dirs = vec!["src/".to_string()];
        let except = [".pace", "PROGRESS.md"];
        assert!(git.uncommitted_changes(&dirs, &except).unwrap().is_empty());
        std::fs::write(dir.path().join("notes.txt"), "untracked outside").unwrap();
        std::fs::create_dir_all(dir.path().join(".pace")).unwrap();
        std::fs::write(dir.path().join(".pace/pipeline.lock"), "pid=1").unwrap();
        std::fs::write(dir.path().join("PROGRESS.md"), "p").unwrap();
        assert!(git.uncommitted_changes(&dirs, &except).unwrap().is_empty());
        std::fs::write(dir.path().join("src/new.txt"), "n").unwrap();
        std::fs::write(dir.path().join("README"), "changed").unwrap();
        let mut found = git.uncommitted_changes(&dirs, &except).unwrap();
        found.sort();
        assert_eq!(found, vec!["README", "src/new.txt"]);
        let e = GitError::DirtyWorkTree(found);
        assert!(e.to_string().contains("`README`") && e.hint().unwrap().contains("git stash -u"));
    }

    #[test]
    fn push_sends_the_header_only_through_the_environment() {
        let (dir, git) = repo();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        git.commit_paths(&["a".into()], "one").unwrap();
        let bare = tempfile::tempdir().unwrap();
        Command::new("git")
            .args(["init", "-q", "--bare"])
            .current_dir(bare.path())
            .status()
            .unwrap();
        let url = format!("file://{}", bare.path().display());
        git.push(&url, "sprint/x", "Authorization: Basic c2VjcmV0").unwrap();
        let pushed = Command::new("git")
            .args(["rev-parse", "refs/heads/sprint/x"])
            .current_dir(bare.path())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&pushed.stdout).trim(), git.head());
        let config = std::fs::read_to_string(dir.path().join(".git/config")).unwrap();
        assert!(!config.contains("c2VjcmV0"));
        let err = git
            .push("file:///nonexistent/repo.git", "b", "Authorization: Basic c2VjcmV0")
            .unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn human_commits_are_found() {
        let (dir, git) = repo();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        let base = git.commit_paths(&["a".into()], "pace").unwrap().unwrap();
        std::fs::write(dir.path().join("a"), "2").unwrap();
        let human = Git::open(dir.path(), "Ada", "ada@example.com").unwrap();
        human.commit_paths(&["a".into()], "fix the test").unwrap();
        let found = git.human_commits_since(&base).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].ends_with("fix the test"));
    }
}
