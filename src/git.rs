//! git through the CLI, with typed errors. pace commits on the checked-out branch with a
//! configured identity passed per command (`-c user.name=...`), never written to config.
//!
//! Every git process pace starts comes from [`hardened_command`] (or [`Git`], which builds
//! on it). The work tree, the repositories nested in it and, in bind mode, even `.git/` are
//! written by code from the sandbox, while pace runs with `GITLAB_TOKEN` and the LLM key in
//! its environment. So: no program named by the repository runs, and no git process sees
//! pace's secrets (the push gets its credential as one config value, nothing else).
//!
//! Trusted: the runner's system and global git config (outside the checkout: Git LFS or a
//! custom CA keep working) and pace's overrides. Untrusted: the repository's config
//! (`.git/config`, `config.worktree` and every file they include), the work tree
//! (`.gitattributes` picks filter, diff and merge drivers by name) and every nested repository.
//! git reads a repository's config whatever the environment says (`GIT_CONFIG_NOSYSTEM` and
//! `GIT_CONFIG_GLOBAL` only reach the trusted files), and `include.path` / `includeIf` in it
//! cannot be switched off; the command line is git's last config scope, so pace's overrides
//! win over whatever the repository or an included file sets.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `-c` overrides on every git command line, each with why it is there (git-config(1),
/// gitattributes(5), githooks(5): the keys that make git run a program or leave the host).
const OVERRIDES: &[&str] = &[
    // Runs a program to list changed files: status, add, commit, ls-files --others, reset.
    // The issue's first attack: a nested repository's config set it, and `git status`
    // recursed into it. The override also reaches every git that git itself starts.
    "core.fsmonitor=false",
    // Hooks (pre-commit, commit-msg, post-commit, reference-transaction, post-index-change,
    // pre-push, pre-auto-gc, post-rewrite, ...): a directory below a device file, where no
    // hook can exist. Config-defined hooks (`hook.<name>.command`, git >= 2.54) are switched
    // off by name, see `repository_overrides`.
    "core.hooksPath=/dev/null",
    // A password prompt runs `core.askPass`; pace never types one (`GIT_ASKPASS=` too).
    "core.askPass=",
    // Credential helpers are programs. An empty value empties the list built so far, and
    // `credential.<url>.helper` entries are applied in order with this one, so none is left.
    "credential.helper=",
    // ssh transport (a lazy fetch of a partial clone): the plain `ssh` on the sanitised PATH.
    "core.sshCommand=ssh",
    // Editors: pace always passes `-m`; `:` is git's "no editor".
    "core.editor=:",
    "sequence.editor=:",
    // The pager only starts on a terminal and `--no-pager` is passed too; `pager.<cmd>` is
    // covered by the same flag.
    "core.pager=cat",
    // Signing runs `gpg.program` / `gpg.<format>.program` / `gpg.ssh.defaultKeyCommand`, and
    // `log.showSignature` runs the verifier on `git log`: pace neither signs nor verifies.
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "push.gpgSign=false",
    "log.showSignature=false",
    // Transports. `ext::` runs a command; `file://` and local paths run
    // git-upload-pack/receive-pack (`remote.<name>.uploadpack`) on this host; `git://` goes
    // through `core.gitProxy`, whose *first* match wins (so the repository's value could
    // not be overridden); remote helpers (`remote.<name>.vcs`) are programs. Only http(s)
    // and ssh stay, for a partial clone's lazy fetch; `Git::push` allows its own URL's scheme.
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.http.allow=always",
    "protocol.ssh.allow=always",
    // Asked for the refs of an alternate object store (fetch), in place of for-each-ref;
    // `true` advertises none.
    "core.alternateRefsCommand=true",
    // No command recurses into a nested repository (its config, fsmonitor and hooks are the
    // sandbox's); `status` and `diff` also get `--ignore-submodules=all` (see `Git::run`).
    "submodule.recurse=false",
    "push.recurseSubmodules=no",
    "fetch.recurseSubmodules=false",
    "diff.submodule=short",
    "status.submoduleSummary=false",
    // A bare repository planted in the work tree is never picked up by discovery.
    "safe.bareRepository=explicit",
    // `git commit` starts `git maintenance run --auto` / `git gc --auto` in the background:
    // pace leaves no process behind it.
    "gc.auto=0",
    "maintenance.auto=false",
    // pace parses git's output and puts it into prompts and patches: no colour escapes
    // (`color.ui=always` in the repository's config).
    "color.ui=never",
    "color.diff=never",
    "color.status=never",
];
// Not overridden, on purpose: `diff.external` (an empty value makes `git diff` fail; every
// diff pace runs passes `--no-ext-diff`, see `Git::run`), `uploadpack.packObjectsHook` (git
// honours it only from system/global/command-line config), `trailer.<token>.command`
// (`--trailer` / interpret-trailers only), `alias.*` (a built-in cannot be aliased),
// `difftool`/`mergetool`/`web.browser`/`man.*`/`sendemail.*` (commands pace never runs),
// `remote.*`, `url.*.insteadOf` and `http.*` (the push runs in a repository of pace's own,
// see `Git::push`), `core.worktree` (`Git` pins `GIT_WORK_TREE`), `core.attributesFile`
// (attributes only pick drivers, and those are neutralised), and `GIT_ATTR_SOURCE` (an
// empty attribute source would also drop `text`/`eol` normalisation that projects rely on).

/// What a git child inherits from pace; everything else (the secrets) is cleared. `HOME`
/// and `XDG_CONFIG_HOME` locate the runner's global config; `PATH` is sanitised.
const INHERITED_ENV: &[&str] = &["HOME", "XDG_CONFIG_HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// What the push also needs to reach the platform from a CI runner: proxies and TLS trust.
const PUSH_ENV: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "GIT_SSL_NO_VERIFY",
    "GIT_SSL_CERT",
    "GIT_SSL_KEY",
    "GIT_PROXY_SSL_CAINFO",
];

/// A `git` command in `dir` that the repository cannot steer: a cleared environment, the
/// [`OVERRIDES`], and the drivers and config hooks the repository's own config defines
/// switched off (see [`repository_overrides`]). Every git process pace starts is built here.
pub fn hardened_command(dir: &Path) -> Command {
    command_in(dir, None)
}

/// [`hardened_command`], optionally pinned to a git directory (and work tree) so that a
/// `.git` file or `core.worktree` written later cannot redirect it.
fn command_in(dir: &Path, pin: Option<(&Path, Option<&Path>)>) -> Command {
    let mut cmd = base_command(dir, pin);
    let listing = base_command(dir, pin)
        .args(["config", "--list", "-z", "--show-scope"])
        .stderr(Stdio::null())
        .output();
    // No listing (not a repository yet): nothing to switch off, and the command itself fails.
    if let Ok(out) = listing
        && out.status.success()
    {
        for (key, value) in repository_overrides(&out.stdout) {
            append_config_env(&mut cmd, &key, OsStr::new(value));
        }
    }
    cmd
}

fn base_command(dir: &Path, pin: Option<(&Path, Option<&Path>)>) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).env_clear().stdin(Stdio::null());
    if let Some(path) = std::env::var_os("PATH").and_then(|path| sanitised_path(&path, dir)) {
        cmd.env("PATH", path);
    }
    for key in INHERITED_ENV {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    // An empty GIT_ASKPASS stops git before `core.askPass` and SSH_ASKPASS; no terminal
    // prompt either. `:` is "no editor"; replace refs cannot make git show other content.
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("GIT_EDITOR", ":")
        .env("GIT_SEQUENCE_EDITOR", ":")
        .env("GIT_PAGER", "cat")
        .env("GIT_NO_REPLACE_OBJECTS", "1");
    if let Some((git_dir, work_tree)) = pin {
        cmd.env("GIT_DIR", git_dir);
        if let Some(work_tree) = work_tree {
            cmd.env("GIT_WORK_TREE", work_tree);
        }
    }
    cmd.arg("--no-pager");
    for o in OVERRIDES {
        cmd.arg("-c").arg(o);
    }
    cmd
}

/// pace's `PATH` without relative entries and without directories inside `dir`: the work
/// tree (e.g. `node_modules/.bin` added by a CI job) must not provide `git` or a program
/// git starts.
fn sanitised_path(path: &OsStr, dir: &Path) -> Option<OsString> {
    let real_dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let guard = real_dir.parent().is_some();
    let kept = std::env::split_paths(path).filter(|p| {
        p.is_absolute() && !(guard && (p.starts_with(dir) || p.canonicalize().is_ok_and(|c| c.starts_with(&real_dir))))
    });
    std::env::join_paths(kept.collect::<Vec<_>>()).ok()
}

/// Adds one config entry through git's environment (`GIT_CONFIG_COUNT`/`_KEY_n`/`_VALUE_n`):
/// unlike `-c key=value`, a key with `=` in a name the repository picked stays one key.
fn append_config_env(cmd: &mut Command, key: &OsStr, value: &OsStr) {
    let count = cmd
        .get_envs()
        .find(|(k, _)| *k == "GIT_CONFIG_COUNT")
        .and_then(|(_, v)| v?.to_str()?.parse::<usize>().ok())
        .unwrap_or(0);
    cmd.env(format!("GIT_CONFIG_KEY_{count}"), key)
        .env(format!("GIT_CONFIG_VALUE_{count}"), value)
        .env("GIT_CONFIG_COUNT", (count + 1).to_string());
}

/// Overrides for what the repository's own config (`local`/`worktree` scope, includes
/// followed) defines under a name that `.gitattributes` or git picks:
/// - `filter.<driver>.clean/smudge/process` run on `add`, `status`, `commit`: emptied (git
///   then copies the content as is); `required` off, so an empty filter is no error;
/// - `diff.<driver>.textconv` runs on `diff`/`show`/`log -p`: `cat` (the content as is);
///   `diff.<driver>.command` (an external diff): `false` (also off through `--no-ext-diff`);
/// - `merge.<driver>.driver` runs on a merge: `false`;
/// - `hook.<name>.command` (config-defined hooks, git >= 2.54, from any scope, as for
///   `core.hooksPath`): `hook.<name>.enabled=false`.
///
/// Drivers of the system and global config stay (Git LFS).
fn repository_overrides(listing: &[u8]) -> Vec<(OsString, &'static str)> {
    let mut found = BTreeSet::new();
    let mut fields = listing.split(|b| *b == 0);
    while let (Some(scope), Some(entry)) = (fields.next(), fields.next()) {
        let key = entry.split(|b| *b == b'\n').next().unwrap_or_default();
        let Some(first_dot) = key.iter().position(|b| *b == b'.') else {
            continue;
        };
        let Some(last_dot) = key.iter().rposition(|b| *b == b'.') else {
            continue;
        };
        if last_dot <= first_dot {
            continue;
        }
        let (section, name, var) = (&key[..first_dot], &key[first_dot + 1..last_dot], &key[last_dot + 1..]);
        let repository = scope == b"local" || scope == b"worktree";
        let overrides: &[(&[u8], &'static str)] = match (section, var) {
            (b"filter", b"clean" | b"smudge" | b"process" | b"required") if repository => &[
                (b"clean", ""),
                (b"smudge", ""),
                (b"process", ""),
                (b"required", "false"),
            ],
            (b"diff", b"textconv" | b"command") if repository => &[(b"textconv", "cat"), (b"command", "false")],
            (b"merge", b"driver") if repository => &[(b"driver", "false")],
            (b"hook", _) if scope != b"command" => &[(b"enabled", "false")],
            _ => &[],
        };
        for (var, value) in overrides {
            let mut key = section.to_vec();
            key.push(b'.');
            key.extend_from_slice(name);
            key.push(b'.');
            key.extend_from_slice(var);
            found.insert((os_from_bytes(key), *value));
        }
    }
    found.into_iter().collect()
}

#[cfg(unix)]
fn os_from_bytes(raw: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(raw)
}

#[cfg(not(unix))]
fn os_from_bytes(raw: Vec<u8>) -> OsString {
    OsString::from(String::from_utf8_lossy(&raw).into_owned())
}

/// Flags that keep a porcelain command inside the repository: no external diff or
/// textconv program, no recursion into nested repositories. Inserted right after the
/// subcommand, so an explicit flag of the caller (later on the line) still wins.
fn hardening_flags(subcommand: &str) -> &'static [&'static str] {
    match subcommand {
        "status" => &["--ignore-submodules=all"],
        "diff" => &["--no-ext-diff", "--no-textconv", "--ignore-submodules=all"],
        "show" | "log" => &["--no-ext-diff", "--no-textconv"],
        _ => &[],
    }
}

/// The transport `git push` needs for `url` (`protocol.<name>.allow`), if pace pushes over it.
fn push_transport(url: &str) -> Option<&'static str> {
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "https" => Some("https"),
            "http" => Some("http"),
            "ssh" => Some("ssh"),
            "file" => Some("file"),
            _ => None,
        };
    }
    if url.contains("::") {
        return None; // a remote helper (`ext::...`)
    }
    if url.starts_with('/') {
        return Some("file");
    }
    url.contains(':').then_some("ssh")
}

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
    #[error("cannot prepare the repository pace pushes from, at `{0}`: {1}")]
    PushRepository(PathBuf, std::io::Error),
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

impl crate::error::Hint for GitError {
    fn exit_kind(&self) -> Option<crate::error::ExitKind> {
        // The checkout has to be changed by a person; re-running as it is fails the same way.
        matches!(self, Self::NotARepo(_) | Self::DetachedHead(_) | Self::DirtyWorkTree(_))
            .then_some(crate::error::ExitKind::Config)
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::NotARepo(_) => Some("run pace at the root of the project's git checkout (`git init` for a new one)".into()),
            Self::DetachedHead(_) => Some(
                "check out the sprint branch first (`git checkout -B sprint/NAME`); in GitLab CI the job starts on a detached commit: run the pipeline on the sprint branch and `git checkout -B \"$CI_COMMIT_REF_NAME\"` before `pace` (the template does)"
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

/// What [`Git::commit_paths`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new commit; `None` when nothing was staged.
    pub sha: Option<String>,
    /// Nested repositories under the paths (gitlinks, mode 160000) that HEAD does not have:
    /// left out of the index and the commit, for the caller to report as refused. A commit
    /// of one would make every later git on the host a guest of that repository's config.
    pub refused_gitlinks: Vec<String>,
}

/// `pace doctor`'s `git` check: the repository opens and is on a branch.
pub fn doctor(root: &Path) -> crate::check::Check {
    use crate::check::Check;
    use crate::error::Hint as _;
    match Git::open(root, "pace", "pace@localhost").and_then(|git| git.current_branch()) {
        Ok(branch) => Check::ok("git", format!("on branch `{branch}`")),
        Err(e) => Check::fail("git", e.to_string()).with_hints(e.hint()),
    }
}

#[derive(Debug, Clone)]
#[allow(clippy::struct_field_names, reason = "`git_dir` is git's own name for it ($GIT_DIR)")]
pub struct Git {
    root: PathBuf,
    /// Pinned at open: a `.git` file or `core.worktree` written afterwards redirects nothing.
    git_dir: PathBuf,
    author_name: String,
    author_email: String,
}

impl Git {
    /// Opens the repository containing `dir` (its top level becomes the root).
    pub fn open(dir: &Path, author_name: &str, author_email: &str) -> Result<Self, GitError> {
        let out = hardened_command(dir)
            .args(["rev-parse", "--show-toplevel", "--absolute-git-dir"])
            .output()
            .map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Err(GitError::NotARepo(dir.to_path_buf()));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let (Some(root), Some(git_dir)) = (lines.next(), lines.next()) else {
            return Err(GitError::NotARepo(dir.to_path_buf()));
        };
        Ok(Self {
            root: PathBuf::from(root),
            git_dir: PathBuf::from(git_dir),
            author_name: author_name.into(),
            author_email: author_email.into(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn command(&self) -> Command {
        let mut cmd = command_in(&self.root, Some((&self.git_dir, Some(&self.root))));
        cmd.arg("-c")
            .arg(format!("user.name={}", self.author_name))
            .arg("-c")
            .arg(format!("user.email={}", self.author_email));
        cmd
    }

    /// Runs `git <args>` (with [`hardening_flags`] after the subcommand) and returns stdout.
    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let mut cmd = self.command();
        if let Some((subcommand, rest)) = args.split_first() {
            cmd.arg(subcommand).args(hardening_flags(subcommand)).args(rest);
        }
        let out = cmd.output().map_err(GitError::Spawn)?;
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
    /// A nested repository under them that HEAD does not have as a gitlink is not staged
    /// (see [`Committed::refused_gitlinks`]).
    pub fn commit_paths(&self, paths: &[String], message: &str) -> Result<Committed, GitError> {
        if paths.is_empty() {
            return Ok(Committed::default());
        }
        let mut args = vec!["add", "--all", "--"];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args)?;
        let refused = self.unstage_new_gitlinks(paths)?;
        if !refused.is_empty() {
            tracing::warn!(paths = ?refused, "git: nested repositories HEAD does not have are not committed");
        }
        // The refused paths are excluded from the pathspec too: `commit -- <paths>` re-adds
        // what it lists from the work tree, and a path that was a file in HEAD and is now a
        // nested repository would come back as a gitlink.
        let excluded: Vec<String> = refused.iter().map(|p| format!(":(exclude,literal){p}")).collect();
        let kept: Vec<&str> = paths
            .iter()
            .map(String::as_str)
            .filter(|p| {
                let p = p.trim_end_matches('/');
                !refused.iter().any(|r| p == r || p.starts_with(&format!("{r}/")))
            })
            .collect();
        let done = |sha| {
            Ok(Committed {
                sha,
                refused_gitlinks: refused.clone(),
            })
        };
        if kept.is_empty() {
            return done(None);
        }
        let mut pathspec = kept.clone();
        pathspec.extend(excluded.iter().map(String::as_str));
        // `--ignore-submodules=none`: a gitlink HEAD already has may move and is committed.
        let mut staged_args = vec!["diff", "--cached", "--name-only", "--ignore-submodules=none", "--"];
        staged_args.extend(pathspec.iter().copied());
        if self.run(&staged_args)?.trim().is_empty() {
            return done(None);
        }
        // Only these paths: whatever else a person had staged stays out of pace's commit.
        let mut commit = vec!["commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message, "--"];
        commit.extend(pathspec.iter().copied());
        self.run(&commit)?;
        done(Some(self.head()))
    }

    /// Gitlinks staged under `paths` that HEAD does not have at the same path, put back to
    /// HEAD's state in the index (`git reset`: removed, or the file HEAD had).
    fn unstage_new_gitlinks(&self, paths: &[String]) -> Result<Vec<String>, GitError> {
        let mut args = vec!["ls-files", "--stage", "-z", "--"];
        args.extend(paths.iter().map(String::as_str));
        let staged = gitlinks(&self.run(&args)?, "160000 ");
        if staged.is_empty() {
            return Ok(Vec::new());
        }
        let in_head = if self.head().is_empty() {
            BTreeSet::new()
        } else {
            let mut args = vec!["ls-tree", "-z", "HEAD", "--"];
            args.extend(staged.iter().map(String::as_str));
            gitlinks(&self.run(&args)?, "160000 commit ")
        };
        let refused: Vec<String> = staged.into_iter().filter(|p| !in_head.contains(p)).collect();
        if !refused.is_empty() {
            let mut args = vec!["reset", "--quiet", "--"];
            args.extend(refused.iter().map(String::as_str));
            self.run(&args)?;
        }
        Ok(refused)
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
    ///
    /// The push runs from a bare repository of pace's own that borrows this one's objects
    /// (`objects/info/alternates`): the repository's config is not read at all, so neither
    /// `url.<base>.insteadOf`/`pushInsteadOf`, a `remote` named like the URL (`pushurl`,
    /// `receivepack`), nor `http.*` (proxy, `sslVerify`, `curloptResolve`) can send the
    /// header elsewhere. Only the push gets the proxy and TLS variables of the runner.
    ///
    /// The push is the one git call that can take minutes (a slow remote), so it runs as an
    /// async child that is killed when the future is dropped: a SIGTERM from a cancelled CI
    /// job stops the push at once instead of waiting for it and publishing afterwards.
    pub async fn push(&self, url: &str, branch: &str, auth_header: &str) -> Result<(), GitError> {
        let refspec = format!("HEAD:refs/heads/{branch}");
        let sha = self
            .run(&["rev-parse", "--verify", "HEAD^{commit}"])?
            .trim()
            .to_string();
        let format = self.run(&["rev-parse", "--show-object-format"])?.trim().to_string();
        let common = self.run(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?;
        let common = PathBuf::from(common.trim_end_matches('\n'));
        let shadow = tempfile::Builder::new()
            .prefix("pace-push-")
            .tempdir()
            .map_err(|e| GitError::PushRepository(std::env::temp_dir(), e))?;
        let shadow_dir = shadow.path();
        let init = command_in(shadow_dir, Some((shadow_dir, None)))
            .args(["init", "--quiet", "--bare", "--template="])
            .arg(format!("--object-format={format}"))
            .output()
            .map_err(GitError::Spawn)?;
        if !init.status.success() {
            return Err(GitError::Failed {
                args: "init --bare".into(),
                dir: shadow_dir.to_path_buf(),
                stderr: String::from_utf8_lossy(&init.stderr).trim().to_string(),
            });
        }
        let info = shadow_dir.join("objects/info");
        let mut alternates = common.join("objects").into_os_string();
        alternates.push("\n");
        std::fs::create_dir_all(&info)
            .and_then(|()| std::fs::write(info.join("alternates"), alternates.as_encoded_bytes()))
            .map_err(|e| GitError::PushRepository(info.clone(), e))?;
        // A shallow clone (CI): the history ends where this repository says it does.
        let shallow = common.join("shallow");
        if shallow.is_file() {
            std::fs::copy(&shallow, shadow_dir.join("shallow"))
                .map_err(|e| GitError::PushRepository(shallow.clone(), e))?;
        }
        let mut cmd = command_in(shadow_dir, Some((shadow_dir, None)));
        for key in PUSH_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        let transport = push_transport(url);
        if let Some(transport) = transport {
            cmd.arg("-c").arg(format!("protocol.{transport}.allow=always"));
        }
        // Only an HTTP remote gets the header: git hands its `GIT_CONFIG_*` environment on
        // to a local receive-pack (and that repository's hooks), where it would mean nothing.
        if matches!(transport, Some("https" | "http")) {
            append_config_env(&mut cmd, OsStr::new("http.extraHeader"), OsStr::new(auth_header));
        }
        cmd.args(["push", "--porcelain", "--no-verify", "--no-recurse-submodules", url])
            .arg(format!("{sha}:refs/heads/{branch}"));
        let out = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .output()
            .await
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

/// The paths of `-z` entries (`<mode> ...\t<path>`) whose line starts with `prefix`.
fn gitlinks(listing: &str, prefix: &str) -> BTreeSet<String> {
    listing
        .split('\0')
        .filter(|e| e.starts_with(prefix))
        .filter_map(|e| e.split_once('\t').map(|(_, path)| path.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint as _;

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
        let sha = git.commit_paths(&["src".into()], "Day 1: work").unwrap().sha.unwrap();
        assert_eq!(git.head(), sha);
        assert_eq!(git.changed_files(&[".".into()]).unwrap(), vec!["other.txt"]);
        assert_eq!(git.commit_paths(&["src".into()], "nothing").unwrap().sha, None);
        // A person's staged change elsewhere stays staged, out of pace's commit.
        Command::new("git")
            .args(["add", "other.txt"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        std::fs::write(dir.path().join("src/b.txt"), "b").unwrap();
        git.commit_paths(&["src".into()], "Day 1: more").unwrap().sha.unwrap();
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

    #[tokio::test]
    async fn push_sends_the_header_only_through_the_environment() {
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
        git.push(&url, "sprint/x", "Authorization: Basic c2VjcmV0")
            .await
            .unwrap();
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
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
    }

    #[test]
    fn the_repositorys_drivers_and_config_hooks_are_switched_off_by_name() {
        let listing = b"global\0filter.lfs.process\ngit-lfs filter-process\0\
local\0filter.x=y.clean\ntouch /tmp/c\0\
local\0diff.a.b.textconv\nevil\0\
worktree\0merge.m.driver\nevil\0\
local\0filter.\xff.smudge\nevil\0\
global\0hook.lint.command\nlint\0\
command\0filter.ours.clean\n\0\
local\0core.bare\0";
        let found: Vec<(String, &str)> = repository_overrides(listing)
            .into_iter()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v))
            .collect();
        let expected = [
            ("diff.a.b.command", "false"),
            ("diff.a.b.textconv", "cat"),
            ("filter.x=y.clean", ""),
            ("filter.x=y.process", ""),
            ("filter.x=y.required", "false"),
            ("filter.x=y.smudge", ""),
            ("filter.\u{fffd}.clean", ""),
            ("filter.\u{fffd}.process", ""),
            ("filter.\u{fffd}.required", "false"),
            ("filter.\u{fffd}.smudge", ""),
            ("hook.lint.enabled", "false"),
            ("merge.m.driver", "false"),
        ];
        let expected: Vec<(String, &str)> = expected.iter().map(|(k, v)| ((*k).to_string(), *v)).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn path_keeps_only_absolute_directories_outside_the_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("node_modules/.bin");
        std::fs::create_dir_all(&bin).unwrap();
        let path = std::env::join_paths([
            PathBuf::from("/usr/bin"),
            PathBuf::from("."),
            PathBuf::from("bin"),
            bin,
            PathBuf::from("/bin"),
        ])
        .unwrap();
        let kept = sanitised_path(&path, dir.path()).unwrap();
        assert_eq!(kept, OsString::from("/usr/bin:/bin"));
    }

    #[test]
    fn the_push_allows_only_its_own_transport() {
        assert_eq!(push_transport("https://gitlab.com/g/p.git"), Some("https"));
        assert_eq!(push_transport("HTTP://host/p.git"), Some("http"));
        assert_eq!(push_transport("file:///tmp/r.git"), Some("file"));
        assert_eq!(push_transport("/tmp/r.git"), Some("file"));
        assert_eq!(push_transport("git@host:g/p.git"), Some("ssh"));
        assert_eq!(push_transport("ext::sh -c touch% x"), None);
        assert_eq!(push_transport("git://host/p.git"), None);
    }

    #[test]
    fn human_commits_are_found() {
        let (dir, git) = repo();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        let base = git.commit_paths(&["a".into()], "pace").unwrap().sha.unwrap();
        std::fs::write(dir.path().join("a"), "2").unwrap();
        let human = Git::open(dir.path(), "Ada", "ada@example.com").unwrap();
        human.commit_paths(&["a".into()], "fix the test").unwrap();
        let found = git.human_commits_since(&base).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].ends_with("fix the test"));
    }
}
