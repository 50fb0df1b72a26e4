//! Artifacts never follow links: the real `pace` binary in a checkout whose `.pace/`
//! paths, `PROGRESS.md` or `pace-env.env` are links (or hard links) to files outside it.
//! Each run must refuse, say which path and what to do, exit 2, and leave everything
//! outside the checkout as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support::docker::busybox_image;
use crate::support::fake_llm::{FakeLlm, Script, Turn};
use crate::support::project::{Project, stderr, stdout};
use crate::support::scripts::{self, Options};

const KEY: &str = "sk-ant-test-KEYVALUE-0001";

/// A directory outside the checkout with a file an attacker would like overwritten.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("victim.txt"), "# the user's own file\n").unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn victim(&self) -> PathBuf {
        self.dir.path().join("victim.txt")
    }

    /// Every file below the directory with its content.
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.insert(path.clone(), std::fs::read(&path).unwrap());
                }
            }
        }
        files
    }
}

async fn greeter_with(script: Script) -> (Project, FakeLlm) {
    let fake = FakeLlm::start(script, Some(KEY)).await;
    let project = Project::greeter();
    project.use_fake_llm(&fake.url(), &busybox_image(), "");
    (project, fake)
}

/// Links committed to the repository (a hostile one carries them; a suite in bind mode
/// can leave the same) stop the day before it reads, locks or spends anything.
#[tokio::test(flavor = "multi_thread")]
async fn a_link_in_any_of_paces_paths_is_refused_before_the_day_starts() {
    for (link, to_dir) in [
        (".pace", true),
        (".pace/day-1", true),
        (".pace/day-1/gate", true),
        (".pace/context", true),
        (".pace/day-1/run.json", false),
        ("PROGRESS.md", false),
        ("pace-env.env", false),
    ] {
        let outside = Outside::new();
        let before = outside.snapshot();
        let (p, fake) = greeter_with(scripts::greeter(Options::default())).await;
        let target = if to_dir {
            outside.path().to_path_buf()
        } else {
            outside.victim()
        };
        std::fs::create_dir_all(p.path(link).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&target, p.path(link)).unwrap();
        p.git(&["add", "-A"]);
        p.git(&["commit", "-q", "-m", "links"]);

        let out = p.pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]).await;
        assert_eq!(out.status.code(), Some(2), "{link}: {}\n{}", stdout(&out), stderr(&out));
        let expected = format!(
            "`{link}` is a symbolic link (to {}); pace never writes through links: remove it and re-run",
            target.display()
        );
        assert!(stderr(&out).contains(&expected), "{link}: {}", stderr(&out));
        assert_eq!(
            outside.snapshot(),
            before,
            "{link}: something outside the checkout changed"
        );
        assert_eq!(fake.requests.lock().unwrap().len(), 0, "{link}: a token was spent");
        assert!(!p.path(".pace/pipeline.lock").exists(), "{link}: the lock was taken");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard_linked_progress_file_is_refused() {
    let outside = Outside::new();
    let (p, fake) = greeter_with(scripts::greeter(Options::default())).await;
    std::fs::hard_link(outside.victim(), p.path("PROGRESS.md")).unwrap();
    let before = outside.snapshot();
    let out = p.pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]).await;
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("`PROGRESS.md` has 2 hard links"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("remove it and re-run"), "{}", stderr(&out));
    assert_eq!(outside.snapshot(), before);
    assert_eq!(fake.requests.lock().unwrap().len(), 0);
}

/// A link that appears while the day runs (here planted when GATE's model is asked,
/// i.e. after the suite ran) is refused when the day writes its results: the day ends
/// with exit 2 and the refusal, and the link is not committed.
#[tokio::test(flavor = "multi_thread")]
async fn a_link_planted_during_the_day_is_refused_when_the_results_are_written() {
    require_docker!();
    let outside = Outside::new();
    let before = outside.snapshot();
    let project_root = Arc::new(std::sync::Mutex::new(None::<PathBuf>));
    let victim = outside.victim();
    let inner = scripts::greeter(Options::default());
    let root_for_script = project_root.clone();
    let script: Script = Arc::new(move |turn: &Turn| {
        if turn.agent == "GATE"
            && let Some(root) = root_for_script.lock().unwrap().as_ref()
        {
            let link = root.join("PROGRESS.md");
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(&victim, &link).unwrap();
            }
        }
        inner(turn)
    });
    let (p, _fake) = greeter_with(script).await;
    *project_root.lock().unwrap() = Some(p.root.clone());

    let out = p.pace(&["--day", "1"], &[("ANTHROPIC_API_KEY", KEY)]).await;
    assert_eq!(out.status.code(), Some(2), "{}\n{}", stdout(&out), stderr(&out));
    let expected = format!(
        "`PROGRESS.md` is a symbolic link (to {}); pace never writes through links: remove it and re-run",
        outside.victim().display()
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(stderr(&out).contains("(the day was SHIP;"), "{}", stderr(&out));
    assert_eq!(outside.snapshot(), before, "the file outside the checkout changed");
    // What was written before the refusal is in place and committed; the link is not.
    assert!(p.read(".pace/day-1/run.json").contains("\"decision\": \"SHIP\""));
    let committed = p.git(&["ls-files", "PROGRESS.md"]);
    assert_eq!(committed.trim(), "", "the planted link was committed");
}

/// Inside Bitbucket Pipelines the day's JUnit is copied to `test-results/`; a repository
/// whose `test-results` leads outside gets a warning naming it, nothing is written there,
/// and the day's own result stands (the copy is best effort).
#[tokio::test(flavor = "multi_thread")]
async fn a_test_results_link_is_refused_on_bitbucket() {
    use crate::support::fake_bitbucket::FakeBitbucket;
    require_docker!();
    const TOKEN: &str = "bbat-ACCESS-SECRET-0001";
    let outside = Outside::new();
    let before = outside.snapshot();
    let bb = FakeBitbucket::start("acme", "greeter", &format!("Bearer {TOKEN}"), None).await;
    let (p, _fake) = greeter_with(scripts::greeter(Options::default())).await;
    let config = p
        .read("pace.config.yaml")
        .replace("platform:\n  type: local\n", "platform:\n  type: bitbucket\n");
    std::fs::write(p.path("pace.config.yaml"), config).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path("test-results")).unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-q", "-m", "bitbucket, and test-results leads outside"]);
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = bare_dir.path().join("greeter.git");
    crate::support::project::git(bare_dir.path(), &["init", "-q", "--bare", bare.to_str().unwrap()]);
    let api = bb.api_url();
    let git_url = format!("file://{}", bare.display());
    let env = [
        ("ANTHROPIC_API_KEY", KEY),
        ("BITBUCKET_WORKSPACE", "acme"),
        ("BITBUCKET_REPO_SLUG", "greeter"),
        ("BITBUCKET_API_URL", api.as_str()),
        ("PACE_BITBUCKET_GIT_URL", git_url.as_str()),
        ("BITBUCKET_ACCESS_TOKEN", TOKEN),
        ("BITBUCKET_BUILD_NUMBER", "7"),
        ("BITBUCKET_GIT_HTTP_ORIGIN", "http://bitbucket.org/acme/greeter"),
    ];

    let out = p.pace(&["--day", "1"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let expected = format!(
        "could not copy the JUnit report to test-results/: `test-results` is a symbolic link (to {}); pace never writes through links: remove it and re-run",
        outside.path().display()
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert_eq!(outside.snapshot(), before, "the copy was written outside the checkout");
    assert!(p.read(".pace/day-1/gate/junit.xml").contains("greeter"));
}
