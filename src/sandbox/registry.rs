//! Registry credentials for pulling the sandbox image.
//!
//! Under Docker-in-Docker the job's daemon is empty, so the sandbox image (by default the
//! job's own image, usually a company's private one) is pulled in every pipeline — and the
//! daemon knows no credentials: they go with the pull, in the `X-Registry-Auth` header.
//! They are found where a CI user already keeps them, in this order (GitLab Runner's own):
//!
//! 1. `DOCKER_AUTH_CONFIG`: a Docker `config.json` as a CI/CD variable (`auths`);
//! 2. `CI_REGISTRY` + `CI_REGISTRY_USER` + `CI_REGISTRY_PASSWORD` for the GitLab registry;
//! 3. `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: `auths`, then
//!    `credHelpers` / `credsStore` when the `docker-credential-<name>` program exists.
//!
//! A credential is never logged or stored: [`Credential`]'s `Debug` prints only where it
//! came from, and [`secrets`] gives the day's redactor every form of it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bollard::auth::DockerCredentials;
use serde::Deserialize;

use crate::env::Env;

/// Docker Hub's key in `config.json` (the Docker CLI writes this one).
const DOCKER_HUB: &str = "https://index.docker.io/v1/";
/// Other names Docker Hub is known by in hand-written configs.
const DOCKER_HUB_ALIASES: [&str; 4] = [DOCKER_HUB, "index.docker.io", "docker.io", "registry-1.docker.io"];

/// Where a credential came from (the only part of it that is ever printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    DockerAuthConfig,
    CiRegistry,
    DockerConfigFile(PathBuf),
    Helper(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DockerAuthConfig => f.write_str("`DOCKER_AUTH_CONFIG`"),
            Self::CiRegistry => f.write_str("`CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD`"),
            Self::DockerConfigFile(path) => write!(f, "`{}`", path.display()),
            Self::Helper(name) => write!(f, "the credential helper `docker-credential-{name}`"),
        }
    }
}

/// A registry login for one pull.
#[derive(Clone)]
pub struct Credential {
    pub source: Source,
    username: String,
    secret: Secret,
}

#[derive(Clone)]
enum Secret {
    Password(String),
    /// An OAuth identity token (`identitytoken`, or a helper's `<token>` user).
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// The header bollard sends with the pull.
    pub fn docker_credentials(&self, registry: &str) -> DockerCredentials {
        let (password, identitytoken) = match &self.secret {
            Secret::Password(p) => (Some(p.clone()), None),
            Secret::IdentityToken(t) => (None, Some(t.clone())),
        };
        DockerCredentials {
            username: Some(self.username.clone()).filter(|u| !u.is_empty()),
            password,
            identitytoken,
            serveraddress: Some(registry.to_string()),
            ..Default::default()
        }
    }
}

/// The variables a pull's credentials may come from, and nothing else of pace's environment
/// (the sandbox context is cloned and logged; its `Debug` names only which are set).
#[derive(Clone, Default)]
pub struct RegistryLogin {
    vars: Env,
}

/// What [`RegistryLogin`] reads.
const LOGIN_VARS: [&str; 6] = [
    "DOCKER_AUTH_CONFIG",
    "CI_REGISTRY",
    "CI_REGISTRY_USER",
    "CI_REGISTRY_PASSWORD",
    "DOCKER_CONFIG",
    "HOME",
];

impl RegistryLogin {
    pub fn from_env(env: &Env) -> Self {
        let vars = LOGIN_VARS
            .iter()
            .filter_map(|name| env.get(name).map(|v| ((*name).to_string(), v.to_string())));
        Self {
            vars: Env::from_pairs(vars),
        }
    }

    /// The credential for the registry of `image` (see the module documentation).
    pub fn for_image(&self, image: &str) -> Result<Option<Credential>, Unreadable> {
        lookup(&self.vars, &registry_of(image))
    }
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: Vec<&str> = LOGIN_VARS
            .iter()
            .copied()
            .filter(|n| self.vars.get(n).is_some())
            .collect();
        f.debug_struct("RegistryLogin").field("set", &set).finish()
    }
}

/// The registry an image reference names, as `config.json` keys it: `host[:port]`, or
/// Docker Hub's key when the first component is not a host.
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first.to_string(),
        _ => DOCKER_HUB.to_string(),
    }
}

/// The `config.json` shape (only what a pull needs).
#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Why the credentials for a pull could not be read (the pull then goes without them and
/// this is said beside a refusal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// The credential for `registry`, from the first source that has one.
pub fn lookup(env: &Env, registry: &str) -> Result<Option<Credential>, Unreadable> {
    if let Some(text) = env.get("DOCKER_AUTH_CONFIG").filter(|t| !t.trim().is_empty()) {
        let config = parse_config(text)
            .map_err(|e| Unreadable(format!("`DOCKER_AUTH_CONFIG` is not a Docker config.json: {e}")))?;
        if let Some(found) = from_auths(&config, registry, &Source::DockerAuthConfig)? {
            return Ok(Some(found));
        }
    }
    if let Some(found) = from_ci_registry(env, registry) {
        return Ok(Some(found));
    }
    let Some(path) = config_file(env) else {
        return Ok(None);
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let config = parse_config(&text)
        .map_err(|e| Unreadable(format!("`{}` is not a Docker config.json: {e}", path.display())))?;
    if let Some(found) = from_auths(&config, registry, &Source::DockerConfigFile(path.clone()))? {
        return Ok(Some(found));
    }
    from_helper(&config, registry, &path)
}

fn parse_config(text: &str) -> Result<DockerConfig, serde_json::Error> {
    serde_json::from_str(text)
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn config_file(env: &Env) -> Option<PathBuf> {
    if let Some(dir) = env.get("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// `host[:port]` of a `config.json` key (keys may carry a scheme and a path).
fn key_host(key: &str) -> &str {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    without_scheme.split('/').next().unwrap_or(without_scheme)
}

fn same_registry(key: &str, registry: &str) -> bool {
    if registry == DOCKER_HUB {
        return DOCKER_HUB_ALIASES.iter().any(|alias| key_host(alias) == key_host(key));
    }
    key_host(key).eq_ignore_ascii_case(registry)
}

fn from_auths(config: &DockerConfig, registry: &str, source: &Source) -> Result<Option<Credential>, Unreadable> {
    let Some((key, entry)) = config.auths.iter().find(|(key, _)| same_registry(key, registry)) else {
        return Ok(None);
    };
    let unreadable = |what: &str| Unreadable(format!("{source}: the entry for `{key}` {what}"));
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential {
            source: source.clone(),
            username: entry.username.clone().unwrap_or_default(),
            secret: Secret::IdentityToken(token.clone()),
        }));
    }
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(Credential {
            source: source.clone(),
            username: user.clone(),
            secret: Secret::Password(password.clone()),
        }));
    }
    let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let decoded = STANDARD
        .decode(auth.trim())
        .map_err(|_| unreadable("has an `auth` that is not base64 (it must be base64 of `user:password`)"))?;
    let text = String::from_utf8(decoded).map_err(|_| unreadable("has an `auth` that is not UTF-8 text"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| unreadable("has an `auth` without `:` (it must be base64 of `user:password`)"))?;
    Ok(Some(Credential {
        source: source.clone(),
        username: user.to_string(),
        secret: Secret::Password(password.to_string()),
    }))
}

/// GitLab's registry with the job's own registry login.
fn from_ci_registry(env: &Env, registry: &str) -> Option<Credential> {
    let ci_registry = env.get("CI_REGISTRY").filter(|r| !r.is_empty())?;
    if !same_registry(ci_registry, registry) {
        return None;
    }
    Some(Credential {
        source: Source::CiRegistry,
        username: env.get("CI_REGISTRY_USER")?.to_string(),
        secret: Secret::Password(env.get("CI_REGISTRY_PASSWORD")?.to_string()),
    })
}

/// A `credHelpers` entry for the registry, else `credsStore`, when its program exists.
fn from_helper(config: &DockerConfig, registry: &str, path: &Path) -> Result<Option<Credential>, Unreadable> {
    let Some((field, helper)) = config
        .cred_helpers
        .iter()
        .find(|(key, _)| same_registry(key, registry))
        .map(|(_, name)| ("credHelpers", name.clone()))
        .or_else(|| config.creds_store.clone().map(|name| ("credsStore", name)))
    else {
        return Ok(None);
    };
    // The config file may come from the checkout (`DOCKER_CONFIG` pointing into it): a name
    // with a `/` would make `docker-credential-<name>` a path relative to pace's working
    // directory, i.e. a program the repository ships, run with the runner's secrets.
    if !is_helper_name(&helper) {
        return Err(Unreadable(format!(
            "`{}`: `{field}` names the credential helper `{}`, which is not a plain program name (letters, digits, `.`, `_`, `-`); pace runs only a `docker-credential-<name>` program found on PATH. Fix the entry",
            path.display(),
            helper.escape_debug()
        )));
    }
    match run_helper(&helper, registry) {
        Ok(found) => Ok(found),
        Err(e) => {
            tracing::warn!(helper = %helper, registry, "sandbox: the credential helper failed: {e}");
            Ok(None)
        }
    }
}

/// `pass`, `ecr-login`, `secretservice`: a name found on PATH, never a path.
fn is_helper_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// `docker-credential-<name> get` with the registry on stdin (the helper protocol). A
/// helper that is not installed is no error: the pull goes without credentials.
fn run_helper(name: &str, registry: &str) -> std::io::Result<Option<Credential>> {
    let program = format!("docker-credential-{name}");
    let mut child = match Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(registry.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        // "credentials not found in native keychain": no login for this registry.
        return Ok(None);
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(std::io::Error::other)?;
    let secret = if answer.username == "<token>" {
        Secret::IdentityToken(answer.secret)
    } else {
        Secret::Password(answer.secret)
    };
    Ok(Some(Credential {
        source: Source::Helper(name.to_string()),
        username: if answer.username == "<token>" {
            String::new()
        } else {
            answer.username
        },
        secret,
    }))
}

/// Every secret `DOCKER_AUTH_CONFIG` carries, for the redactor: the `auth` strings as
/// written and decoded, passwords and identity tokens (the variable's name does not say
/// "token" or "password", so the environment scan alone would miss them).
pub fn secrets(env: &Env) -> Vec<String> {
    let Some(text) = env.get("DOCKER_AUTH_CONFIG") else {
        return Vec::new();
    };
    let mut found = vec![text.to_string()];
    let Ok(config) = parse_config(text) else {
        return found;
    };
    for entry in config.auths.values() {
        found.extend(entry.password.iter().cloned());
        found.extend(entry.identitytoken.iter().cloned());
        if let Some(auth) = &entry.auth {
            found.push(auth.clone());
            let decoded = STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            if let Some((_, password)) = decoded.as_deref().and_then(|t| t.split_once(':')) {
                found.push(password.to_string());
            }
        }
    }
    found.retain(|s| !s.is_empty());
    found
}

/// A pull the registry refused for want of (valid) credentials.
#[derive(Debug)]
pub struct PullRefusal {
    pub image: String,
    pub registry: String,
    /// The registry's words, as the daemon passed them on.
    pub message: String,
    /// Where the credentials sent came from (`None`: none were found).
    pub sent: Option<Source>,
    /// A credential source that could not be read.
    pub unreadable: Option<String>,
}

impl std::fmt::Display for PullRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pulling `{}` from `{}` was refused: {}",
            self.image, self.registry, self.message
        )
    }
}

impl PullRefusal {
    /// Which variable to set (or fix).
    pub fn hint(&self) -> String {
        let registry = &self.registry;
        if let Some(why) = &self.unreadable {
            return format!("{why}; fix it, then re-run");
        }
        match &self.sent {
            Some(source) => format!(
                "`{registry}` refused the credentials from {source}: check the user and that the password or token is valid and may read the image"
            ),
            None => format!(
                "no credentials for `{registry}` were found: set `DOCKER_AUTH_CONFIG` (a masked CI/CD variable holding a Docker config.json: {{\"auths\": {{\"{registry}\": {{\"auth\": \"<base64 of user:token>\"}}}}}}), or use the GitLab registry with `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD`, or `docker login {registry}` on a local machine"
            ),
        }
    }
}

/// Whether a pull failed because the registry wants (other) credentials. The daemon passes
/// the registry's words on: "no basic auth credentials", "unauthorized: authentication
/// required", "denied: requested access to the resource is denied", "pull access denied".
pub fn is_auth_refusal(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    [
        "no basic auth credentials",
        "unauthorized",
        "authentication required",
        "access denied",
        "denied:",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())))
    }

    fn auth(user_pass: &str) -> String {
        STANDARD.encode(user_pass)
    }

    #[test]
    fn registry_of_follows_docker_reference_rules() {
        assert_eq!(registry_of("busybox"), DOCKER_HUB);
        assert_eq!(registry_of("pace/runner-go:0.1"), DOCKER_HUB);
        assert_eq!(registry_of("registry.gitlab.com/acme/runner:1"), "registry.gitlab.com");
        assert_eq!(registry_of("127.0.0.1:5000/x/y@sha256:ab"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/x"), "localhost");
    }

    #[test]
    fn docker_auth_config_wins_and_decodes_auth() {
        let config = format!(
            r#"{{"auths":{{"https://registry.example.com/v2/":{{"auth":"{}"}}}}}}"#,
            auth("ci:pw:with:colons")
        );
        let e = env(&[
            ("DOCKER_AUTH_CONFIG", &config),
            ("CI_REGISTRY", "registry.example.com"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "job-token"),
        ]);
        let found = lookup(&e, "registry.example.com").unwrap().unwrap();
        assert_eq!(found.source, Source::DockerAuthConfig);
        let creds = found.docker_credentials("registry.example.com");
        assert_eq!(creds.username.as_deref(), Some("ci"));
        assert_eq!(creds.password.as_deref(), Some("pw:with:colons"));
        assert_eq!(creds.serveraddress.as_deref(), Some("registry.example.com"));
    }

    #[test]
    fn ci_registry_applies_only_to_its_registry() {
        let e = env(&[
            ("CI_REGISTRY", "registry.gitlab.example:5050"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "job-token"),
            ("HOME", "/nonexistent"),
        ]);
        let found = lookup(&e, "registry.gitlab.example:5050").unwrap().unwrap();
        assert_eq!(found.source, Source::CiRegistry);
        assert!(lookup(&e, DOCKER_HUB).unwrap().is_none());
    }

    #[test]
    fn docker_hub_matches_every_alias() {
        for key in ["https://index.docker.io/v1/", "docker.io", "index.docker.io"] {
            let config = format!(r#"{{"auths":{{"{key}":{{"username":"u","password":"p"}}}}}}"#);
            let found = lookup(
                &env(&[("DOCKER_AUTH_CONFIG", &config)]),
                &registry_of("pace/runner-go:0.1"),
            );
            assert!(found.unwrap().is_some(), "{key}");
        }
    }

    #[test]
    fn config_file_from_docker_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#, auth("u:p"));
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let e = env(&[("DOCKER_CONFIG", dir.path().to_str().unwrap())]);
        let found = lookup(&e, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(found.source, Source::DockerConfigFile(dir.path().join("config.json")));
    }

    #[test]
    fn a_missing_helper_is_no_credential() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"credsStore":"pace-test-absent"}"#).unwrap();
        let e = env(&[("DOCKER_CONFIG", dir.path().to_str().unwrap())]);
        assert!(lookup(&e, "127.0.0.1:5000").unwrap().is_none());
    }

    #[test]
    fn malformed_sources_name_themselves() {
        let e = env(&[("DOCKER_AUTH_CONFIG", "{not json")]);
        let err = lookup(&e, "r.example").unwrap_err();
        assert!(err.0.contains("`DOCKER_AUTH_CONFIG`"), "{err}");
        let e = env(&[("DOCKER_AUTH_CONFIG", r#"{"auths":{"r.example":{"auth":"%%%"}}}"#)]);
        let err = lookup(&e, "r.example").unwrap_err();
        assert!(err.0.contains("base64 of `user:password`"), "{err}");
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let config = r#"{"auths":{"r.example":{"username":"u","password":"hunter2-registry"}}}"#;
        let found = lookup(&env(&[("DOCKER_AUTH_CONFIG", config)]), "r.example")
            .unwrap()
            .unwrap();
        assert!(!format!("{found:?}").contains("hunter2"));
    }

    #[test]
    fn secrets_cover_every_form() {
        let config = format!(
            r#"{{"auths":{{"a.example":{{"auth":"{}"}},"b.example":{{"identitytoken":"idtok-12345"}}}}}}"#,
            auth("user:registry-pw-123")
        );
        let found = secrets(&env(&[("DOCKER_AUTH_CONFIG", &config)]));
        assert!(found.contains(&"registry-pw-123".to_string()));
        assert!(found.contains(&auth("user:registry-pw-123")));
        assert!(found.contains(&"idtok-12345".to_string()));
    }

    #[test]
    fn auth_refusals_are_recognised() {
        assert!(is_auth_refusal(
            "Head \"http://127.0.0.1:5055/v2/x/manifests/1\": no basic auth credentials"
        ));
        assert!(is_auth_refusal("unauthorized: authentication required"));
        assert!(is_auth_refusal(
            "pull access denied for x, repository does not exist or may require 'docker login'"
        ));
        assert!(!is_auth_refusal("manifest for x:1 not found: manifest unknown"));
    }
}
