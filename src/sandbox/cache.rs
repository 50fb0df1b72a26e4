//! Dependency caches: named volumes per project, mounted at `/cache`, with the language
//! tools pointed into them through their environment variables, so that the second GATE
//! run of a day does not download again.
//!
//! A project has one volume per *scope* (`pace-cache-<name>-<hash>-<scope>`): the cache
//! persists and the next run executes what is in it, so a run whose tests anyone could
//! have pushed must not write the cache that protected branches' runs read (see
//! [`CacheScope`]). GitLab: `protected` / `unprotected` by `CI_COMMIT_REF_PROTECTED`, as
//! GitLab separates its own caches; Bitbucket and local runs: one volume per branch.
//!
//! Environment variables rather than mounts at `~/.m2` or `~/go` so that any image user
//! works. A name listed in `sandbox.env` wins over the value here (the user's own choice).
//! The volume carries `pace.cache=1` and is never removed by pace's cleanup (only the
//! anonymous `/workspace` volumes of removed containers are).

use std::collections::HashMap;
use std::path::Path;

use super::docker::DockerClient;
use crate::config::settings::CacheScope;

/// Where the cache volume is mounted.
pub const CACHE_MOUNT: &str = "/cache";
/// The label every cache volume carries.
pub const LABEL_CACHE: &str = "pace.cache";
/// The project directory's name (for people reading `docker volume ls`).
pub(super) const LABEL_CACHE_PROJECT: &str = "pace.cache.project";
/// `protected`, `unprotected` or `branch` (see the module header).
pub const LABEL_CACHE_SCOPE: &str = "pace.cache.scope";
/// The branch of a `branch` scope, as git names it.
pub const LABEL_CACHE_BRANCH: &str = "pace.cache.branch";
/// How much of a branch name shows in a volume name (the hash keeps them apart).
const BRANCH_SLUG_CHARS: usize = 24;

/// The variables that send each tool's cache into the volume.
pub const CACHE_ENV: [(&str, &str); 6] = [
    ("GOMODCACHE", "/cache/go/mod"),
    ("GOCACHE", "/cache/go/build"),
    ("npm_config_cache", "/cache/npm"),
    // Maven reads system properties from MAVEN_OPTS (also with the wrapper, `mvnw`).
    ("MAVEN_OPTS", "-Dmaven.repo.local=/cache/maven"),
    ("GRADLE_USER_HOME", "/cache/gradle"),
    ("NUGET_PACKAGES", "/cache/nuget"),
];

/// The directories created (and handed to a non-root user) in a fresh volume.
pub(crate) const CACHE_DIRS: [&str; 8] = [
    "cache",
    "cache/go",
    "cache/go/mod",
    "cache/go/build",
    "cache/npm",
    "cache/maven",
    "cache/gradle",
    "cache/nuget",
];

/// One scoped cache volume of a project: its name and the labels it is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheVolume {
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// The cache volume of `repo` for runs of `scope`. The project part is keyed by the
/// `origin` remote when there is one (clones of one project share it), else by the
/// repository's absolute path.
pub fn volume_for(repo: &Path, scope: &CacheScope) -> CacheVolume {
    let name: String = slug(&project_name(repo), 30);
    let project = project_id(repo);
    let base = if name.is_empty() {
        format!("pace-cache-{project}")
    } else {
        format!("pace-cache-{name}-{project}")
    };
    let mut labels = HashMap::from([
        (LABEL_CACHE.to_string(), "1".to_string()),
        (LABEL_CACHE_PROJECT.to_string(), project_name(repo)),
    ]);
    let suffix = match resolve_scope(repo, scope) {
        Resolved::Protected => {
            labels.insert(LABEL_CACHE_SCOPE.into(), "protected".into());
            "protected".to_string()
        }
        Resolved::Unprotected => {
            labels.insert(LABEL_CACHE_SCOPE.into(), "unprotected".into());
            "unprotected".to_string()
        }
        Resolved::Branch(branch) => {
            labels.insert(LABEL_CACHE_SCOPE.into(), "branch".into());
            labels.insert(LABEL_CACHE_BRANCH.into(), branch.clone());
            // The slug is lossy (`Main` and `main`, long names cut); the SHA-256 of the exact
            // name keeps every branch apart, also from a name chosen to collide.
            let digest = ring::digest::digest(&ring::digest::SHA256, branch.as_bytes());
            let hex = hex::encode(&digest.as_ref()[..8]);
            match slug(&branch, BRANCH_SLUG_CHARS) {
                s if s.is_empty() => format!("branch-{hex}"),
                s => format!("branch-{s}-{hex}"),
            }
        }
    };
    CacheVolume {
        name: format!("{base}-{suffix}"),
        labels,
    }
}

/// The cache volume's name for `repo` and `scope` (see [`volume_for`]).
pub fn volume_name(repo: &Path, scope: &CacheScope) -> String {
    volume_for(repo, scope).name
}

/// The project `repo` belongs to, hashed: the same for every clone with the same `origin`
/// (credentials and transport ignored), else per absolute path. Containers carry it as
/// `pace.project` so that cleanup only touches this project's containers.
pub fn project_id(repo: &Path) -> String {
    let key = origin_url(repo).map(|u| normalize_remote(&u)).unwrap_or_else(|| {
        std::fs::canonicalize(repo)
            .unwrap_or_else(|_| repo.to_path_buf())
            .to_string_lossy()
            .into_owned()
    });
    format!("{:016x}", fnv1a(key.as_bytes()))
}

/// A [`CacheScope`] with the checkout's branch looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolved {
    Protected,
    Unprotected,
    Branch(String),
}

fn resolve_scope(repo: &Path, scope: &CacheScope) -> Resolved {
    match scope {
        CacheScope::Protected => Resolved::Protected,
        CacheScope::Unprotected => Resolved::Unprotected,
        CacheScope::Branch(b) => Resolved::Branch(b.clone()),
        CacheScope::Checkout => current_branch(repo).map_or(Resolved::Unprotected, Resolved::Branch),
    }
}

/// Lower-case ASCII letters and digits, other characters as `-`, at most `max` characters.
fn slug(text: &str, max: usize) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    s.trim_matches('-').to_string()
}

/// The variables to add to a container's environment (those not already in `env`).
pub(super) fn env_for(env: &[(String, String)]) -> Vec<String> {
    CACHE_ENV
        .iter()
        .filter(|(name, _)| !env.iter().any(|(n, _)| n == name))
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

/// Creates the volume if it does not exist (creating an existing one is a no-op).
pub(super) async fn ensure_volume(docker: &DockerClient, volume: &CacheVolume) -> Result<(), super::SandboxError> {
    docker.create_volume(&volume.name, volume.labels.clone()).await
}

fn project_name(repo: &Path) -> String {
    std::fs::canonicalize(repo)
        .unwrap_or_else(|_| repo.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn origin_url(repo: &Path) -> Option<String> {
    git_line(repo, &["config", "--get", "remote.origin.url"])
}

/// The checked-out branch; `None` on a detached HEAD (or without git).
fn current_branch(repo: &Path) -> Option<String> {
    git_line(repo, &["symbolic-ref", "--quiet", "--short", "HEAD"])
}

/// The first line of a read-only git query (neither command runs a program from the tree).
fn git_line(repo: &Path, args: &[&str]) -> Option<String> {
    let out = crate::git::hardened_command(repo)
        .args(args)
        .current_dir(repo)
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !line.is_empty()).then_some(line)
}

/// The same project whatever the credentials or transport in the URL:
/// `https://user:tok@gitlab.com/g/p.git` and `git@gitlab.com:g/p` give `gitlab.com/g/p`.
fn normalize_remote(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest.replacen(':', "/", 1);
    let rest = rest.trim_end_matches('/');
    let rest = rest.strip_suffix(".git").unwrap_or(rest);
    // A port left by `host:port/path` becomes a path segment; harmless for a key.
    rest.to_ascii_lowercase()
}

/// 64-bit FNV-1a: stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_of_one_project_share_a_key() {
        let a = normalize_remote("https://oauth2:glpat-x@gitlab.com/group/proj.git");
        let b = normalize_remote("git@gitlab.com:group/proj");
        let c = normalize_remote("ssh://git@gitlab.com/group/proj.git/");
        assert_eq!(a, "gitlab.com/group/proj");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, normalize_remote("https://gitlab.com/group/other.git"));
    }

    fn valid_volume_name(name: &str) -> bool {
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }

    #[test]
    fn names_are_valid_volume_names_and_differ_by_path() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let a = volume_name(one.path(), &CacheScope::Protected);
        let b = volume_name(two.path(), &CacheScope::Protected);
        assert_ne!(a, b);
        assert_eq!(a, volume_name(one.path(), &CacheScope::Protected));
        assert!(a.starts_with("pace-cache-"));
        assert!(a.ends_with("-protected"));
        assert!(valid_volume_name(&a));
    }

    #[test]
    fn scopes_of_one_project_get_their_own_volumes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let protected = volume_for(repo, &CacheScope::Protected);
        let unprotected = volume_for(repo, &CacheScope::Unprotected);
        let main = volume_for(repo, &CacheScope::Branch("main".into()));
        // Names a slug cannot tell apart still get different volumes.
        let look_alike = volume_for(repo, &CacheScope::Branch("Main".into()));
        let long = "release/2026-q3-very-long-branch-name-";
        let long_a = volume_for(repo, &CacheScope::Branch(format!("{long}a")));
        let long_b = volume_for(repo, &CacheScope::Branch(format!("{long}b")));
        let names = [
            &protected.name,
            &unprotected.name,
            &main.name,
            &look_alike.name,
            &long_a.name,
            &long_b.name,
        ];
        for (i, a) in names.iter().enumerate() {
            assert!(valid_volume_name(a), "{a}");
            assert!(a.len() < 128, "{a}");
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // One project: the same project part before the scope.
        let project = project_id(repo);
        assert!(names.iter().all(|n| n.contains(&project)));
        assert_eq!(protected.labels[LABEL_CACHE_SCOPE], "protected");
        assert_eq!(unprotected.labels[LABEL_CACHE_SCOPE], "unprotected");
        assert_eq!(main.labels[LABEL_CACHE_SCOPE], "branch");
        assert_eq!(main.labels[LABEL_CACHE_BRANCH], "main");
        assert!(main.name.contains("-branch-main-"), "{}", main.name);
        assert_eq!(main.labels[LABEL_CACHE], "1");
    }

    #[test]
    fn a_checkout_uses_its_branch_and_a_detached_head_the_unprotected_volume() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .current_dir(repo)
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q", "-b", "feature/x"]);
        git(&["commit", "-q", "--allow-empty", "-m", "one"]);
        assert_eq!(
            volume_for(repo, &CacheScope::Checkout),
            volume_for(repo, &CacheScope::Branch("feature/x".into()))
        );
        git(&["checkout", "-q", "--detach"]);
        assert_eq!(
            volume_for(repo, &CacheScope::Checkout),
            volume_for(repo, &CacheScope::Unprotected)
        );
    }

    #[test]
    fn allowlisted_names_win() {
        let env = vec![("GOCACHE".to_string(), "/mine".to_string())];
        let vars = env_for(&env);
        assert!(vars.contains(&"GOMODCACHE=/cache/go/mod".to_string()));
        assert!(!vars.iter().any(|v| v.starts_with("GOCACHE=")));
        assert_eq!(vars.len(), CACHE_ENV.len() - 1);
    }
}
