//! Issue 9, item 2 ("Host git cannot be steered by the tree"): hostile repositories, each
//! set up as the sandbox could leave them, and every git operation pace runs on the host
//! (open, status, uncommitted changes, commit, diff, log, format-patch, the sandbox's
//! listing and check-ignore, push). A payload would create a file in a canary directory
//! outside the repository; the tests assert that nothing was created and that pace's git
//! still did its work.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pace::git::{Git, hardened_command};

use crate::support::project::git;

/// A repository with one commit (`src/a.txt`, `README`) and a canary directory beside it.
struct Hostile {
    _dir: tempfile::TempDir,
    root: PathBuf,
    canaries: PathBuf,
    remote: PathBuf,
}

impl Hostile {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let canaries = dir.path().join("canaries");
        let remote = dir.path().join("remote.git");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(&canaries).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        git(dir.path(), &["init", "-q", "--bare", remote.to_str().unwrap()]);
        std::fs::write(root.join("src/a.txt"), "a\n").unwrap();
        std::fs::write(root.join("README"), "r\n").unwrap();
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-q", "-m", "one"]);
        Self {
            _dir: dir,
            root,
            canaries,
            remote,
        }
    }

    /// A shell command that leaves `name` in the canary directory (and passes stdin on, so
    /// a filter or textconv payload would also look like it works).
    fn payload(&self, name: &str) -> String {
        format!("touch '{}'; cat", self.canaries.join(name).display())
    }

    fn append_config(&self, text: &str) {
        let path = self.root.join(".git/config");
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(text);
        std::fs::write(path, config).unwrap();
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// An executable script at `rel` (a hook).
    fn script(&self, path: &Path, name: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("#!/bin/sh\n{}\n", self.payload(name))).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn canaries(&self) -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(&self.canaries)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        found
    }

    /// Every git operation pace runs on the host, in the order of a day, asserting that
    /// each still does its work. Returns the commit's refused gitlinks.
    #[track_caller]
    fn exercise(&self) -> Vec<String> {
        // Changes FORGE would leave: an edit, a new file (both under the filter/diff drivers).
        std::fs::write(self.root.join("src/a.txt"), "a changed\n").unwrap();
        std::fs::write(self.root.join("src/new.txt"), "new\n").unwrap();
        let g = Git::open(&self.root, "pace", "pace@localhost").unwrap();
        assert_eq!(g.current_branch().unwrap(), "main");
        let base = g.head();
        assert_eq!(base.len(), 40);
        let mut pending = g.uncommitted_changes(&["src/".into()], &[".pace"]).unwrap();
        pending.sort();
        assert!(pending.contains(&"src/a.txt".to_string()), "{pending:?}");
        let changed = g.changed_files(&["src".into()]).unwrap();
        assert!(changed.contains(&"src/new.txt".to_string()), "{changed:?}");
        let committed = g.commit_paths(&changed, "Day 1: FORGE").unwrap();
        let sha = committed.sha.clone().expect("the edit is committed");
        assert_eq!(g.head(), sha);
        assert_eq!(git(&self.root, &["show", "HEAD:src/new.txt"]), "new\n");
        assert!(g.diff_since(&base).unwrap().contains("+a changed"));
        assert!(g.diff_since("").unwrap().contains("+new"));
        assert!(g.human_commits_since(&base).unwrap().is_empty());
        assert!(g.is_ancestor(&base));
        let range = format!("{base}..HEAD");
        assert!(
            g.run(&["format-patch", "--stdout", &range])
                .unwrap()
                .contains("Day 1: FORGE")
        );
        self.sandbox_listing();
        assert!(!check_ignore_quiet(&self.root, "src/a.txt"));
        let url = format!("file://{}", self.remote.display());
        push(&g, &url).unwrap();
        assert_eq!(git(&self.remote, &["rev-parse", "refs/heads/sprint/x"]).trim(), sha);
        committed.refused_gitlinks
    }

    /// The sandbox's `list_files` and `ignored` (src/sandbox/workspace.rs), same arguments.
    #[track_caller]
    fn sandbox_listing(&self) {
        let out = hardened_command(&self.root)
            .args([
                "-c",
                "core.quotepath=off",
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("src/new.txt"));
        let mut child = hardened_command(&self.root)
            .args(["check-ignore", "-z", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"src/a.txt\0README\0").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "nothing is ignored");
    }

    #[track_caller]
    fn assert_contained(&self) {
        assert_eq!(
            self.canaries(),
            Vec::<String>::new(),
            "a program from the repository ran on the host"
        );
    }
}

/// `git check-ignore -q` as the FORGE tools run it (src/day/tools/paths.rs): true if ignored.
fn check_ignore_quiet(root: &Path, rel: &str) -> bool {
    hardened_command(root)
        .args(["check-ignore", "-q", "--", rel])
        .status()
        .unwrap()
        .success()
}

/// Makes `dir` a repository with one commit whose config runs the fsmonitor payload.
fn nested_repo_with_fsmonitor(h: &Hostile, dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q"]);
    std::fs::write(dir.join("lib.c"), "int x;\n").unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "vendored"]);
    let config = dir.join(".git/config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("[core]\n\tfsmonitor = \"{}\"\n", h.payload(name)));
    std::fs::write(config, text).unwrap();
}

#[test]
fn the_fixture_payloads_do_run_under_plain_git() {
    // The control: the same setups do run their payload under an unhardened `git`, so a
    // missing canary below means pace's git stopped it (and not a broken payload).
    let h = Hostile::new();
    h.append_config(&format!("[core]\n\tfsmonitor = \"{}\"\n", h.payload("fsmonitor")));
    h.append_config(&format!(
        "[filter \"evil\"]\n\tclean = \"{}\"\n[diff \"evil\"]\n\ttextconv = \"{}\"\n",
        h.payload("clean"),
        h.payload("textconv")
    ));
    h.write(".gitattributes", "*.txt filter=evil diff=evil\n");
    h.script(&h.root.join(".git/hooks/pre-commit"), "pre-commit");
    std::fs::write(h.root.join("src/a.txt"), "changed\n").unwrap();
    git(&h.root, &["status", "--porcelain"]);
    git(&h.root, &["add", "src/a.txt"]);
    git(&h.root, &["commit", "-q", "-m", "x"]);
    git(&h.root, &["log", "-p", "-1"]);
    assert_eq!(h.canaries(), vec!["clean", "fsmonitor", "pre-commit", "textconv"]);
}

#[test]
fn core_fsmonitor_in_the_repository_config_does_not_run() {
    let h = Hostile::new();
    h.append_config(&format!("[core]\n\tfsmonitor = \"{}\"\n", h.payload("fsmonitor")));
    h.exercise();
    h.assert_contained();
}

#[test]
fn a_nested_repository_is_refused_and_its_fsmonitor_never_runs() {
    // The issue's first attack: the test suite leaves `src/vendor/lib/.git` with
    // `core.fsmonitor` set; FORGE's commit would add it as a gitlink and the next
    // `git status` would recurse into it.
    let h = Hostile::new();
    nested_repo_with_fsmonitor(&h, &h.root.join("src/vendor/lib"), "nested-fsmonitor");
    let refused = h.exercise();
    assert_eq!(refused, vec!["src/vendor/lib"]);
    let tree = git(&h.root, &["ls-tree", "-r", "HEAD"]);
    assert!(!tree.contains("160000") && !tree.contains("src/vendor"), "{tree}");
    assert!(
        git(&h.root, &["ls-files", "-s"])
            .lines()
            .all(|l| !l.starts_with("160000"))
    );
    // The other changes went in.
    assert!(tree.contains("src/new.txt"), "{tree}");
    h.assert_contained();
}

#[test]
fn a_gitlink_already_in_head_is_not_recursed_into() {
    // A gitlink an earlier pace committed: `status` would run `git status` inside it.
    let h = Hostile::new();
    let lib = h.root.join("src/vendor/lib");
    nested_repo_with_fsmonitor(&h, &lib, "submodule-fsmonitor");
    git(&h.root, &["-c", "core.fsmonitor=false", "add", "src/vendor/lib"]);
    git(
        &h.root,
        &["-c", "core.fsmonitor=false", "commit", "-q", "-m", "gitlink"],
    );
    std::fs::write(lib.join("dirty.c"), "int y;\n").unwrap();
    let refused = h.exercise();
    assert!(refused.is_empty(), "a gitlink HEAD has is not refused: {refused:?}");
    h.assert_contained();
}

#[test]
fn a_file_replaced_by_a_nested_repository_stays_a_file() {
    // `src/a.txt` was a file in HEAD; the sandbox turns it into a repository. The commit
    // pathspec lists `src`, which `git commit -- src` would re-add from the work tree.
    let h = Hostile::new();
    std::fs::write(h.root.join("src/b.txt"), "b\n").unwrap();
    git(&h.root, &["add", "-A"]);
    git(&h.root, &["commit", "-q", "-m", "b"]);
    std::fs::remove_file(h.root.join("src/b.txt")).unwrap();
    nested_repo_with_fsmonitor(&h, &h.root.join("src/b.txt"), "typechange-fsmonitor");
    std::fs::write(h.root.join("src/c.txt"), "c\n").unwrap();
    let g = Git::open(&h.root, "pace", "pace@localhost").unwrap();
    let committed = g.commit_paths(&["src".into()], "Day 1").unwrap();
    assert_eq!(committed.refused_gitlinks, vec!["src/b.txt"]);
    assert!(committed.sha.is_some());
    let tree = git(&h.root, &["ls-tree", "-r", "HEAD", "--", "src"]);
    assert!(tree.contains("100644 blob") && tree.contains("src/c.txt"), "{tree}");
    assert!(!tree.contains("160000"), "{tree}");
    h.assert_contained();
}

#[test]
fn hooks_in_the_hooks_directory_do_not_run() {
    let h = Hostile::new();
    for hook in [
        "pre-commit",
        "prepare-commit-msg",
        "commit-msg",
        "post-commit",
        "reference-transaction",
        "post-index-change",
        "pre-push",
        "pre-auto-gc",
        "post-checkout",
        "post-rewrite",
    ] {
        h.script(&h.root.join(".git/hooks").join(hook), hook);
    }
    // The bare remote's own receive hooks are the remote's business, not the tree's.
    h.exercise();
    h.assert_contained();
}

#[test]
fn core_hooks_path_into_the_work_tree_does_not_run() {
    let h = Hostile::new();
    for hook in [
        "pre-commit",
        "post-commit",
        "reference-transaction",
        "post-index-change",
        "pre-push",
    ] {
        h.script(&h.root.join("src/hooks").join(hook), &format!("hookspath-{hook}"));
    }
    h.append_config("[core]\n\thooksPath = src/hooks\n");
    h.exercise();
    h.assert_contained();
}

#[test]
fn config_defined_hooks_are_switched_off() {
    // git >= 2.54 runs `hook.<name>.command` for `hook.<name>.event`; older git ignores it.
    let h = Hostile::new();
    h.append_config(&format!(
        "[hook \"lint\"]\n\tevent = pre-commit\n\tevent = post-commit\n\tcommand = \"{}\"\n",
        h.payload("config-hook")
    ));
    h.exercise();
    h.assert_contained();
}

#[test]
fn a_gitattributes_filter_does_not_run() {
    let h = Hostile::new();
    h.append_config(&format!(
        "[filter \"evil\"]\n\tclean = \"{}\"\n\tsmudge = \"{}\"\n\tprocess = \"{}\"\n\trequired = true\n",
        h.payload("clean"),
        h.payload("smudge"),
        h.payload("process")
    ));
    // A driver name with `=`: `-c filter.x=y.clean=` would be parsed as another key.
    h.append_config(&format!(
        "[filter \"x=y\"]\n\tclean = \"{}\"\n\trequired = true\n",
        h.payload("clean-eq")
    ));
    h.write(".gitattributes", "*.txt filter=evil\nREADME filter=x=y\n");
    h.write("README", "r changed\n");
    h.exercise();
    // The content went in as it was (no filter).
    assert_eq!(git(&h.root, &["show", "HEAD:src/a.txt"]), "a changed\n");
    h.assert_contained();
}

#[test]
fn diff_drivers_and_external_diff_do_not_run() {
    let h = Hostile::new();
    h.append_config(&format!(
        "[diff \"evil\"]\n\ttextconv = \"{}\"\n\tcommand = \"{}\"\n[diff]\n\texternal = \"{}\"\n[merge \"evil\"]\n\tdriver = \"{}\"\n",
        h.payload("textconv"),
        h.payload("diff-command"),
        h.payload("diff-external"),
        h.payload("merge-driver")
    ));
    h.write(".gitattributes", "* diff=evil merge=evil\n");
    h.exercise();
    h.assert_contained();
}

#[test]
fn an_included_config_from_the_work_tree_is_overridden() {
    // `include.path` and `includeIf` cannot be switched off: everything the included file
    // sets must lose against pace's overrides or be found by the driver listing.
    for include in [
        "[include]\n\tpath = ../src/evil.cfg\n",
        "[includeIf \"onbranch:main\"]\n\tpath = ../src/evil.cfg\n",
    ] {
        let h = Hostile::new();
        h.script(&h.root.join("src/hooks/pre-commit"), "included-hook");
        h.write(
            "src/evil.cfg",
            &format!(
                "[core]\n\tfsmonitor = \"{}\"\n\thooksPath = src/hooks\n\tpager = \"{}\"\n[filter \"inc\"]\n\tclean = \"{}\"\n[diff \"inc\"]\n\ttextconv = \"{}\"\n[color]\n\tui = always\n",
                h.payload("included-fsmonitor"),
                h.payload("included-pager"),
                h.payload("included-clean"),
                h.payload("included-textconv"),
            ),
        );
        let gitdir = format!(
            "[includeIf \"gitdir:{}/\"]\n\tpath = ../src/evil.cfg\n",
            h.root.join(".git").display()
        );
        h.append_config(include);
        h.append_config(&gitdir);
        h.write(".gitattributes", "*.txt filter=inc diff=inc\n");
        h.exercise();
        let g = Git::open(&h.root, "pace", "pace@localhost").unwrap();
        assert!(!g.diff_since("").unwrap().contains('\u{1b}'), "no colour escapes");
        h.assert_contained();
    }
}

#[test]
fn pager_editor_askpass_and_credential_helpers_do_not_run() {
    let h = Hostile::new();
    h.append_config(&format!(
        "[core]\n\tpager = \"{p}\"\n\teditor = \"{e}\"\n\taskPass = \"{a}\"\n[pager]\n\tdiff = \"{p}\"\n\tlog = \"{p}\"\n[sequence]\n\teditor = \"{e}\"\n[credential]\n\thelper = \"!{c}\"\n[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = \"{g}\"\n[log]\n\tshowSignature = true\n",
        p = h.payload("pager"),
        e = h.payload("editor"),
        a = h.payload("askpass"),
        c = h.payload("credential"),
        g = h.payload("gpg"),
    ));
    h.exercise();
    h.assert_contained();
}

#[test]
fn the_push_cannot_be_redirected_by_the_repository_config() {
    // `url.<base>.pushInsteadOf`, a remote named like the URL with its own `pushurl` and
    // `receivepack`: each would send the commit (and the credential header) elsewhere.
    let h = Hostile::new();
    let attacker = h.remote.with_file_name("attacker.git");
    git(
        h.remote.parent().unwrap(),
        &["init", "-q", "--bare", attacker.to_str().unwrap()],
    );
    let url = format!("file://{}", h.remote.display());
    let evil = format!("file://{}", attacker.display());
    h.append_config(&format!(
        "[url \"{evil}\"]\n\tpushInsteadOf = {url}\n\tinsteadOf = {url}\n[remote \"{url}\"]\n\turl = {evil}\n\tpushurl = {evil}\n\treceivepack = \"{rp}\"\n[http]\n\tproxy = http://127.0.0.1:9\n",
        rp = h.payload("receivepack"),
    ));
    h.exercise();
    assert!(
        git(&attacker, &["for-each-ref"]).trim().is_empty(),
        "nothing reached the attacker's repository"
    );
    h.assert_contained();
    // A transport that runs a command is never allowed, even as pace's own push URL.
    let g = Git::open(&h.root, "pace", "pace@localhost").unwrap();
    let ext = format!("ext::sh -c {}", h.payload("ext").replace(' ', "% "));
    assert!(push(&g, &ext).is_err());
    h.assert_contained();
}

#[test]
fn a_work_tree_redirect_written_after_open_is_ignored() {
    // `core.worktree` (or a planted `.git` file) written while pace runs: the repository
    // pace opened stays the one it works on.
    let h = Hostile::new();
    let g = Git::open(&h.root, "pace", "pace@localhost").unwrap();
    let elsewhere = h.remote.with_file_name("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    h.append_config(&format!("[core]\n\tworktree = {}\n", elsewhere.display()));
    std::fs::write(h.root.join("src/new.txt"), "n\n").unwrap();
    assert_eq!(g.changed_files(&["src".into()]).unwrap(), vec!["src/new.txt"]);
}

/// The environment of a program git starts (an alias, as the test's own trusted config)
/// and of the remote's `pre-receive` hook during pace's push, dumped by the child process
/// that `the_environment_of_git_holds_no_secret` starts with secrets in its environment.
#[test]
#[ignore = "run by the_environment_of_git_holds_no_secret in a child process"]
fn env_probe_child() {
    let (Some(out), Some(repo), Some(remote)) = (
        std::env::var_os("PROBE_OUT"),
        std::env::var_os("PROBE_REPO"),
        std::env::var_os("PROBE_REMOTE"),
    ) else {
        return;
    };
    let out = PathBuf::from(out);
    let alias = format!("alias.probe=!env > '{}'", out.join("git-child.env").display());
    let status = hardened_command(Path::new(&repo))
        .args(["-c", &alias, "probe"])
        .status()
        .unwrap();
    assert!(status.success());
    let g = Git::open(Path::new(&repo), "pace", "pace@localhost").unwrap();
    let url = format!("file://{}", Path::new(&remote).display());
    push_as(&g, &url, "sprint/env", "Authorization: Basic SEADERSECRET").unwrap();
}

#[test]
fn the_environment_of_git_holds_no_secret() {
    let h = Hostile::new();
    let out = h.canaries.with_file_name("env");
    std::fs::create_dir_all(&out).unwrap();
    let hook = h.remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\nenv > '{}'\n", out.join("push.env").display()),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "git_hardening::env_probe_child",
            "--ignored",
            "--test-threads=1",
            "-q",
        ])
        .env("PROBE_OUT", &out)
        .env("PROBE_REPO", &h.root)
        .env("PROBE_REMOTE", &h.remote)
        .env("GITLAB_TOKEN", "glpat-PROBE-SECRET-1")
        .env("ANTHROPIC_API_KEY", "sk-ant-PROBE-SECRET-2")
        .env("PACE_BITBUCKET_TOKEN", "bbat-PROBE-SECRET-3")
        .env("GIT_CONFIG_PARAMETERS", "'core.fsmonitor'='touch /tmp/never'")
        .env("HTTPS_PROXY", "http://proxy.invalid:3128")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the probe failed");
    let child = std::fs::read_to_string(out.join("git-child.env")).expect("the alias ran and dumped its env");
    let push = std::fs::read_to_string(out.join("push.env")).expect("the remote's pre-receive hook ran");
    for env in [&child, &push] {
        assert!(!env.contains("PROBE-SECRET"), "a secret reached git's children:\n{env}");
        assert!(!env.contains("SEADERSECRET"), "the push header reached a child:\n{env}");
        assert!(
            !env.contains("touch /tmp/never"),
            "the caller's git config leaked in:\n{env}"
        );
    }
    assert!(child.contains("GIT_TERMINAL_PROMPT=0"), "{child}");
    assert!(!child.contains("HTTPS_PROXY"), "only the push gets the proxy: {child}");
}

/// `Git::push` (async: its child is killed when a signal drops the future) from a test.
fn push(g: &Git, url: &str) -> Result<(), pace::git::GitError> {
    push_as(g, url, "sprint/x", "Authorization: Basic c2VjcmV0")
}

fn push_as(g: &Git, url: &str, branch: &str, header: &str) -> Result<(), pace::git::GitError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(g.push(url, branch, header))
}
