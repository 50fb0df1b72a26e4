//! Integration test: a Node project with a real dependency from the npm registry (issue 12).
//! `pace --day 1` with the scripted model runs `npm ci` in the set-up phase with the host's
//! network (this daemon's bridge has no NAT), GATE's suite then requires the package
//! without network (the container's only interface is `lo`; npm is told to stay offline)
//! through the link into the cache volume, and the second day skips the set-up because the
//! lockfile did not change. Needs a Debian image with `nodejs` and `npm` (built once per
//! machine) and the registry; without either the test says SKIPPED and why.

use std::process::Command;

use pace::config::settings::CacheScope;
use pace::sandbox::setup::SKIPPED_LINE;
use pace::sandbox::{LABEL_PROJECT, cache_volume_name, project_id};

use crate::setup_phase::debian_image;
use crate::support::scenario::{Day, Scenario};

const IMAGE: &str = "pace-test/debian-node:bookworm";

/// One dependency; the lockfile names no registry (npm uses its default one), as
/// `omit-lockfile-registry-resolved` writes it.
const PACKAGE_JSON: &str = r#"{
  "name": "greeter",
  "version": "1.0.0",
  "private": true,
  "dependencies": { "left-pad": "1.3.0" }
}
"#;
const PACKAGE_LOCK: &str = r#"{
  "name": "greeter",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": { "name": "greeter", "version": "1.0.0", "dependencies": { "left-pad": "1.3.0" } },
    "node_modules/left-pad": { "version": "1.3.0" }
  }
}
"#;
const CHECK_JS: &str =
    "const pad = require('left-pad');\nif (pad('7', 3, '0') !== '007') process.exit(1);\nconsole.log('left-pad ok');\n";

/// The suite: the greeter's tests, the dependency used, and what GATE's container saw.
const SUITE: &str = "sh tests/run.sh && node check.js && echo \"net=$(ls /sys/class/net | tr '\\n' ' ')\" && echo \"offline=$npm_config_offline\" && echo \"modules=$(readlink node_modules)\"";

use crate::support::docker::cli as docker;

/// The host's trust store: where a TLS-intercepting proxy's CA lives on machines like this
/// one (npm in the container does not read the system store by itself).
fn host_ca_bundle() -> Option<Vec<u8>> {
    let path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".into());
    std::fs::read(path).ok()
}

/// Whether the registry answers from a container of `image` on the host's network (the
/// CA bundle mounted as the set-up will see it); the reason when it does not.
fn registry_reachable(image: &str, ca: &std::path::Path) -> Result<(), String> {
    let mount = format!("{}:/ca.crt:ro", ca.display());
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "host",
            "-v",
            &mount,
            "-e",
            "NODE_EXTRA_CA_CERTS=/ca.crt",
        ])
        .args([image, "timeout", "60", "npm", "view", "left-pad@1.3.0", "version"])
        .output()
        .unwrap();
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1.3.0" {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join(" | "))
    }
}

/// Removes the day's containers and cache volume however the test ends.
struct Cleanup<'a>(&'a Day);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        cleanup(self.0);
    }
}

fn cleanup(day: &Day) {
    let root = &day.project.root;
    let filter = format!("label={LABEL_PROJECT}={}", project_id(root));
    for id in docker(&["ps", "-aq", "--filter", &filter]).split_whitespace() {
        docker(&["rm", "-fv", id]);
    }
    docker(&["volume", "rm", "-f", &cache_volume_name(root, &CacheScope::Checkout)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_project_installs_from_the_registry_once_and_tests_offline() {
    require_docker!();
    let Some(image) = debian_image(IMAGE, "nodejs npm") else {
        return;
    };
    let Some(ca) = host_ca_bundle() else {
        eprintln!("SKIPPED: no CA bundle on this machine");
        return;
    };
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &ca).unwrap();
    if let Err(why) = registry_reachable(&image, ca_file.path()) {
        eprintln!("SKIPPED: the npm registry is not reachable from a container here: {why}");
        return;
    }
    let day = Scenario::greeter()
        .edit_config(
            &format!("image: {}", crate::support::docker::busybox_image()),
            &format!("image: {image}"),
        )
        .edit_config(
            "  caches: false\n",
            "  caches: true\n  setup_network: host\n  env: [NODE_EXTRA_CA_CERTS]\n  timeout: 300\n  memory: 1g\n",
        )
        .edit_config("  timeout: 60\n", "")
        .edit_config(
            "test_command: sh tests/run.sh",
            &format!("test_command: '{}'", SUITE.replace('\'', "''")),
        )
        .env("NODE_EXTRA_CA_CERTS", "/workspace/certs/ca.crt")
        .start()
        .await;
    let _cleanup = Cleanup(&day);
    let p = &day.project;
    std::fs::write(p.path("package.json"), PACKAGE_JSON).unwrap();
    std::fs::write(p.path("package-lock.json"), PACKAGE_LOCK).unwrap();
    std::fs::write(p.path("check.js"), CHECK_JS).unwrap();
    std::fs::create_dir_all(p.path("certs")).unwrap();
    std::fs::write(p.path("certs/ca.crt"), &ca).unwrap();
    std::fs::write(p.path(".gitignore"), p.read(".gitignore") + "node_modules/\n").unwrap();
    p.git(&["add", "-A"]);
    p.git(&["commit", "-qm", "a Node dependency"]);

    day.pace(&["--day", "1"]).await.expect_exit(0);
    let setup = p.read(".pace/day-1/setup/output.log");
    let gate = p.read(".pace/day-1/gate/output.log");
    assert!(setup.contains("added 1 package"), "npm ci installed: {setup}");
    assert!(gate.contains("left-pad ok"), "{gate}");
    assert!(gate.contains("net=lo \n"), "GATE's container has no network: {gate}");
    assert!(gate.contains("offline=true"), "{gate}");
    assert!(
        gate.contains("modules=/cache/.pace-setup/"),
        "node_modules is on the cache volume: {gate}"
    );
    assert!(
        !p.path("node_modules").exists(),
        "nothing of the install in the checkout"
    );

    let second = day.pace(&["--day", "2"]).await;
    let setup = p.read(".pace/day-2/setup/output.log");
    let gate = p.read(".pace/day-2/gate/output.log");
    assert!(setup.starts_with(SKIPPED_LINE), "the lockfile is unchanged: {setup}");
    assert!(gate.contains("left-pad ok"), "{gate}\n{}", second.stderr());
}
