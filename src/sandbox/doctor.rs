//! `pace doctor`'s Docker checks: TLS files, the daemon, its API version, the sandbox image
//! and whether bind mounts reach this filesystem, each with a hint when it fails.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;

use super::container::unix_now;
use super::docker::DockerClient;
use super::endpoint::{Endpoint, TLS_FILES};
use super::image::{ImagePull, ensure_image};
use super::registry::RegistryLogin;
use super::{LABEL_CREATED, LABEL_RUN_ID, error_chain};
use crate::check::Check;
use crate::config::settings::{SandboxSettings, WorkspaceMode};
use crate::error::Hint as _;

/// What to do when `sandbox.workspace: bind` cannot work.
const USE_UPLOAD: &str = "remove `sandbox.workspace: bind` (or set `upload`): the workspace is then uploaded as a tar";

/// How long the bind-mount probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the checks in order; a failure that makes the later ones meaningless ends the list.
pub async fn diagnose(
    settings: &SandboxSettings,
    login: &RegistryLogin,
    endpoint: &Endpoint,
    repo: &Path,
    setup_command: Option<&str>,
) -> Vec<Check> {
    let mut checks: Vec<Check> = tls_check(endpoint).into_iter().collect();
    let docker = match DockerClient::connect(endpoint).await {
        Ok(d) => {
            checks.push(Check::ok(
                "docker",
                format!("daemon answers at {}", describe_host(endpoint)),
            ));
            d
        }
        Err(e) => {
            let hint = e.hint().unwrap_or_else(|| endpoint.hint());
            checks.push(Check::fail("docker", e.to_string()).with_hint(hint));
            return checks;
        }
    };
    checks.push(api_check(&docker).await);
    let image = image_check(&docker, &ImagePull::of(settings, login)).await;
    let image_ok = image.ok;
    checks.push(image);
    if image_ok {
        checks.push(bind_check(&docker, settings, repo).await);
        if let Some(command) = setup_command {
            checks.push(setup_check(&docker, &settings.image, repo, command).await);
        }
    }
    checks
}

/// The set-up command's program: in the repository (`./gradlew`) or on the image's `PATH`.
async fn setup_check(docker: &DockerClient, image: &str, repo: &Path, command: &str) -> Check {
    let Some(program) = setup_program(command) else {
        return Check::ok(
            "setup",
            format!("set-up `{command}`: its program cannot be told before it runs (a shell construct)"),
        );
    };
    if program.contains('/') && !program.starts_with('/') {
        return if repo.join(&program).is_file() {
            Check::ok("setup", format!("set-up `{command}`: `{program}` is in the repository"))
        } else {
            Check::fail(
                "setup",
                format!("set-up `{command}`: `{program}` is not in the repository"),
            )
            .with_hint("commit it, or set `tech.setup_command` in pace.config.yaml (`false` turns the phase off)")
        };
    }
    let probe = tokio::time::timeout(
        PROBE_TIMEOUT,
        probe(docker, image, "command -v \"$1\"", &program, Vec::new()),
    )
    .await;
    match probe {
        Ok(Ok((0, _))) => Check::ok("setup", format!("set-up `{command}`: `{program}` is in `{image}`")),
        Ok(Ok(_)) => Check::fail("setup", format!("set-up `{command}`: `{program}` is not on the `PATH` of `{image}`"))
            .with_hint(format!(
                "use an image with `{program}` (`sandbox.image`, e.g. the runner image of your stack), or set `tech.setup_command` in pace.config.yaml (`false` turns the phase off)"
            )),
        Ok(Err(e)) => Check::fail("setup", format!("cannot look for `{program}` in `{image}`: {e}")),
        Err(_) => Check::fail(
            "setup",
            format!("looking for `{program}` in `{image}` took longer than {} s", PROBE_TIMEOUT.as_secs()),
        ),
    }
}

/// The program a set-up command starts: its first word after `VAR=value` assignments;
/// `None` for what only the shell knows (`cd`, a subshell, `if`).
fn setup_program(command: &str) -> Option<String> {
    let word = command
        .split_whitespace()
        .find(|w| !w.contains('=') || w.starts_with('='))?;
    let shell_only = [
        "cd", "(", "{", "if", "for", "while", "set", "export", ".", "source", "exec",
    ];
    (!shell_only.contains(&word) && !word.starts_with('(') && !word.starts_with('$')).then(|| word.to_string())
}

/// With `DOCKER_TLS_VERIFY`: the client certificate files are readable.
fn tls_check(endpoint: &Endpoint) -> Option<Check> {
    let dir = endpoint.tls_dir.as_ref()?;
    let problems = endpoint.tls_problems();
    if problems.is_empty() {
        return Some(Check::ok(
            "tls",
            format!("{} readable in `{}`", TLS_FILES.join(", "), dir.display()),
        ));
    }
    Some(
        Check::fail("tls", format!("`DOCKER_TLS_VERIFY` is set but {}", problems.join("; "))).with_hint(format!(
            "{}; or unset `DOCKER_TLS_VERIFY` for a plain `tcp://` daemon",
            endpoint.hint_for_cause(super::endpoint::Cause::NoCertificates)
        )),
    )
}

/// The daemon's version and API range, next to the API version pace speaks.
async fn api_check(docker: &DockerClient) -> Check {
    match docker.raw().version().await {
        Ok(v) => Check::ok(
            "api",
            format!(
                "Docker Engine {} ({}/{}), API {} (minimum {}); pace uses API {}",
                v.version.as_deref().unwrap_or("?"),
                v.os.as_deref().unwrap_or("?"),
                v.arch.as_deref().unwrap_or("?"),
                v.api_version.as_deref().unwrap_or("?"),
                v.min_api_version.as_deref().unwrap_or("?"),
                docker.raw().client_version()
            ),
        ),
        Err(e) => Check::fail("api", format!("cannot read the daemon's version: {}", error_chain(&e)))
            .with_hint("the daemon answered a ping but not `GET /version`; is `DOCKER_HOST` a Docker-compatible API?"),
    }
}

/// `sandbox.image` is on the daemon (pulled if it is not).
async fn image_check(docker: &DockerClient, pull: &ImagePull<'_>) -> Check {
    let image = pull.image;
    match ensure_image(docker, pull).await {
        Ok(_) => Check::ok("image", format!("`{image}` is on the daemon")),
        Err(e) => Check::fail("image", e.to_string()).with_hints(e.hint()),
    }
}

/// Whether the daemon sees this filesystem, judged against `sandbox.workspace`: only a
/// configured bind mode that cannot work fails.
async fn bind_check(docker: &DockerClient, settings: &SandboxSettings, repo: &Path) -> Check {
    let probe = tokio::time::timeout(PROBE_TIMEOUT, probe_bind(docker, &settings.image, repo)).await;
    let shared = match probe {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the probe container did not finish in {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    };
    let bind_configured = settings.workspace == WorkspaceMode::Bind;
    match (shared, bind_configured) {
        (Ok(true), true) => Check::ok("bind", "bind mounts work; `sandbox.workspace: bind` is used"),
        (Ok(true), false) => Check::ok(
            "bind",
            "bind mounts work; upload mode is configured (`sandbox.workspace: bind` would skip the upload)",
        ),
        (Ok(false), false) => Check::ok(
            "bind",
            "the daemon does not see this filesystem (DinD or a socket from another host); upload mode will be used",
        ),
        (Err(e), false) => Check::ok(
            "bind",
            format!("bind mounts are not possible ({e}); upload mode will be used"),
        ),
        (Ok(false), true) => Check::fail(
            "bind",
            "`sandbox.workspace: bind` is set, but the daemon does not see this filesystem",
        )
        .with_hint(USE_UPLOAD),
        (Err(e), true) => Check::fail(
            "bind",
            format!("`sandbox.workspace: bind` is set, but bind mounts are not possible: {e}"),
        )
        .with_hint(USE_UPLOAD),
    }
}

fn describe_host(endpoint: &Endpoint) -> String {
    let from = if endpoint.host_from_env {
        "from `DOCKER_HOST`"
    } else {
        "the default; `DOCKER_HOST` is unset"
    };
    format!("{} ({from})", endpoint.describe())
}

/// Bind-mounts a directory holding a marker file into a container and reads the marker:
/// `Ok(true)` when the container sees it (the daemon shares this filesystem).
async fn probe_bind(docker: &DockerClient, image: &str, repo: &Path) -> Result<bool, String> {
    // Inside the repository: where `sandbox.workspace: bind` would mount from (and the
    // only place Bitbucket's daemon allows binds from).
    let base = repo.join(".pace");
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create `{}`: {e}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("doctor-bind-")
        .tempdir_in(&base)
        .map_err(|e| format!("cannot create a probe directory: {e}"))?;
    let token = format!("pace-bind-probe-{:016x}", fastrand::u64(..));
    std::fs::write(dir.path().join("marker"), &token).map_err(|e| format!("cannot write the marker: {e}"))?;
    let abs = std::fs::canonicalize(dir.path()).map_err(|e| e.to_string())?;
    let (_, out) = probe(
        docker,
        image,
        "cat /pace-probe/marker 2>/dev/null; true",
        "",
        vec![format!("{}:/pace-probe:ro", abs.display())],
    )
    .await?;
    Ok(out.contains(&token))
}

/// Runs `script` (with `arg` as `$1`) in a throwaway container of `image` without network;
/// returns its exit code and output.
async fn probe(
    docker: &DockerClient,
    image: &str,
    script: &str,
    arg: &str,
    binds: Vec<String>,
) -> Result<(i64, String), String> {
    let labels = HashMap::from([
        (LABEL_RUN_ID.to_string(), format!("doctor-{}", std::process::id())),
        (LABEL_CREATED.to_string(), unix_now().to_string()),
    ]);
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            script.to_string(),
            "pace-doctor".into(),
            arg.to_string(),
        ]),
        labels: Some(labels),
        host_config: Some(HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("pace-doctor-probe-{:08x}", fastrand::u32(..));
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = docker
        .raw()
        .create_container(Some(opts), body)
        .await
        .map_err(|e| error_chain(&e))?
        .id;
    let result = async {
        docker
            .raw()
            .start_container(&id, None)
            .await
            .map_err(|e| error_chain(&e))?;
        let code = docker.wait(&id).await.map_err(|e| e.to_string())?;
        let opts = LogsOptionsBuilder::default().stdout(true).stderr(true).build();
        let mut logs = docker.raw().logs(&id, Some(opts));
        let mut out = Vec::new();
        while let Some(chunk) = logs.next().await {
            out.extend_from_slice(&chunk.map_err(|e| error_chain(&e))?.into_bytes());
        }
        Ok((code, String::from_utf8_lossy(&out).into_owned()))
    }
    .await;
    if let Err(e) = docker.remove(&id).await {
        tracing::warn!(container = %name, error = %e, "doctor: cannot remove the probe container");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::setup_program;

    #[test]
    fn the_set_up_program_is_the_first_word_after_assignments() {
        assert_eq!(setup_program("npm ci").as_deref(), Some("npm"));
        assert_eq!(setup_program("CI=1 GOFLAGS=-x go mod download").as_deref(), Some("go"));
        assert_eq!(
            setup_program("./gradlew --no-daemon dependencies").as_deref(),
            Some("./gradlew")
        );
        assert_eq!(setup_program("cd web && npm ci"), None);
        assert_eq!(setup_program("(npm ci)"), None);
    }
}
