//! Dependency caches: one named volume per project (`pace-cache-<name>-<hash>`), mounted
//! at `/cache`, with the language tools pointed into it through their environment
//! variables, so that the second GATE run of a day does not download again.
//!
//! Environment variables rather than mounts at `~/.m2` or `~/go` so that any image user
//! works. A name listed in `sandbox.env` wins over the value here (the user's own choice).
//! The volume carries `pace.cache=1` and is never removed by pace's cleanup (only the
//! anonymous `/workspace` volumes of removed containers are).

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::models::VolumeCreateRequest;

/// Where the cache volume is mounted.
pub const CACHE_MOUNT: &str = "/cache";
/// The label every cache volume carries.
pub const LABEL_CACHE: &str = "pace.cache";
/// The project directory's name (for people reading `docker volume ls`).
pub const LABEL_CACHE_PROJECT: &str = "pace.cache.project";

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

/// The cache volume's name for a repository: keyed by its `origin` remote when it has one
/// (clones of one project share it), else by its absolute path.
pub fn volume_name(repo: &Path) -> String {
    let key = origin_url(repo).map(|u| normalize_remote(&u)).unwrap_or_else(|| {
        std::fs::canonicalize(repo)
            .unwrap_or_else(|_| repo.to_path_buf())
            .to_string_lossy()
            .into_owned()
    });
    let name: String = project_name(repo)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(30)
        .collect();
    let name = name.trim_matches('-');
    let hash = fnv1a(key.as_bytes());
    if name.is_empty() {
        format!("pace-cache-{hash:016x}")
    } else {
        format!("pace-cache-{name}-{hash:016x}")
    }
}

/// The variables to add to a container's environment (those not already in `env`).
pub fn env_for(env: &[(String, String)]) -> Vec<String> {
    CACHE_ENV
        .iter()
        .filter(|(name, _)| !env.iter().any(|(n, _)| n == name))
        .map(|(name, value)| format!("{name}={value}"))
        .collect()
}

/// Creates the volume if it does not exist (creating an existing one is a no-op).
pub async fn ensure_volume(docker: &Docker, name: &str, repo: &Path) -> Result<(), bollard::errors::Error> {
    let labels = HashMap::from([
        (LABEL_CACHE.to_string(), "1".to_string()),
        (LABEL_CACHE_PROJECT.to_string(), project_name(repo)),
    ]);
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

fn project_name(repo: &Path) -> String {
    std::fs::canonicalize(repo)
        .unwrap_or_else(|_| repo.to_path_buf())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn origin_url(repo: &Path) -> Option<String> {
    let out = crate::git::hardened_command(repo)
        .args(["config", "--get", "remote.origin.url"])
        .current_dir(repo)
        .output()
        .ok()?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !url.is_empty()).then_some(url)
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

    #[test]
    fn names_are_valid_volume_names_and_differ_by_path() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let a = volume_name(one.path());
        let b = volume_name(two.path());
        assert_ne!(a, b);
        assert_eq!(a, volume_name(one.path()));
        assert!(a.starts_with("pace-cache-"));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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
