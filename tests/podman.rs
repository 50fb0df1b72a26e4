//! Podman as the sandbox's daemon (issue 13): Debian's Podman 4 serving its
//! Docker-compatible API on a socket (`podman system service`, vfs storage in a temporary
//! directory), `pace gate` and a whole day through it, with and without `catatonit` (the
//! init binary `--init` needs, a separate package on Debian).
//!
//! Some machines (this project's CI among them) refuse `setrlimit` to containers' runtime,
//! and Podman, unlike Docker, always asks runc for rlimits: the service is given a runtime
//! that is runc with the spec's rlimits removed. Nothing else differs from a user's Podman.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::docker::busybox_image;
use crate::support::project::{Project, stderr, stdout};
use crate::support::scenario::Scenario;

/// runc without the OCI spec's `process.rlimits` (see the module documentation).
const RUNC_WITHOUT_RLIMITS: &str = r#"#!/bin/sh
bundle=""; process=""; prev=""
for a in "$@"; do
  if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then bundle=$a; fi
  if [ "$prev" = "--process" ] || [ "$prev" = "-p" ]; then process=$a; fi
  case "$a" in --bundle=*) bundle=${a#--bundle=};; --process=*) process=${a#--process=};; esac
  prev=$a
done
strip() {
  python3 -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); (c.get("process") or c).pop("rlimits",None); json.dump(c,open(p,"w"))' "$1"
}
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then strip "$bundle/config.json"; fi
if [ -n "$process" ] && [ -f "$process" ]; then strip "$process"; fi
exec runc "$@"
"#;

struct Podman {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // vfs layers are plain directories owned by root: remove them with the service's help.
        let _ = self.podman(&["system", "reset", "--force"]).output();
    }
}

impl Podman {
    /// `None` (the test says why and passes) on a machine without Podman.
    fn start(with_catatonit: bool) -> Option<Self> {
        if Command::new("podman").arg("--version").output().is_err() {
            eprintln!("skipped: no `podman` (apt-get install podman catatonit)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/graph\"\n",
                root.display()
            ),
        )
        .unwrap();
        let runtime = root.join("runc-without-rlimits");
        std::fs::write(&runtime, RUNC_WITHOUT_RLIMITS).unwrap();
        Command::new("chmod").arg("+x").arg(&runtime).status().unwrap();
        std::fs::write(
            root.join("containers.conf"),
            format!(
                // Each service its own tmp_dir: conmon's exit files live there (default
                // /run/libpod, shared by every service on the machine).
                "[engine]\nruntime = \"pace-test\"\ntmp_dir = \"{}/tmp\"\n[engine.runtimes]\npace-test = [\"{}\"]\n",
                root.display(),
                runtime.display()
            ),
        )
        .unwrap();
        let socket = format!("unix://{}/podman.sock", root.display());
        // Without catatonit: the service sees an empty directory where Podman keeps it
        // (a private mount namespace; the machine's Podman is untouched).
        let mut service = if with_catatonit {
            let mut cmd = Command::new("podman");
            cmd.args(["system", "service", "--time=0", &socket]);
            cmd
        } else {
            if !Command::new("unshare")
                .args(["-m", "true"])
                .status()
                .is_ok_and(|s| s.success())
            {
                eprintln!("skipped: this machine refuses a private mount namespace (`unshare -m`)");
                return None;
            }
            let hide =
                format!("mount -t tmpfs none /usr/libexec/podman && exec podman system service --time=0 {socket}");
            let mut cmd = Command::new("unshare");
            cmd.args(["-m", "sh", "-c", &hide]);
            cmd
        };
        let child = service
            .envs(conf_env(root))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let podman = Self { child, dir };
        for _ in 0..100 {
            if podman.socket_path().exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(podman.socket_path().exists(), "podman system service did not start");
        podman.load_busybox();
        Some(podman)
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket_path().display())
    }

    fn podman(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.args(args).envs(conf_env(self.dir.path()));
        cmd
    }

    /// The busybox test image, from Docker into Podman's storage (no registry).
    fn load_busybox(&self) {
        let mut save = Command::new("docker")
            .args(["save", &busybox_image()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = self
            .podman(&["load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success());
        assert!(load.status.success(), "podman load: {}", stderr(&load));
    }

    /// Names of the containers Podman still has.
    fn containers(&self) -> String {
        let out = self.podman(&["ps", "-a", "--format", "{{.Names}}"]).output().unwrap();
        stdout(&out)
    }
}

fn conf_env(root: &Path) -> [(&'static str, PathBuf); 2] {
    [
        ("CONTAINERS_STORAGE_CONF", root.join("storage.conf")),
        ("CONTAINERS_CONF", root.join("containers.conf")),
    ]
}

fn gate_on(podman: &Podman) -> std::process::Output {
    let p = Project::greeter();
    p.use_fake_llm("http://127.0.0.1:9", &busybox_image(), "");
    p.set_gate_config("sh tests/run.sh && echo suite-ran-on-podman", 60);
    let mut cmd = p.pace_gate();
    cmd.env("DOCKER_HOST", podman.docker_host());
    cmd.output().unwrap()
}

#[test]
fn pace_gate_runs_on_podman() {
    require_docker!();
    let Some(podman) = Podman::start(true) else { return };
    let out = gate_on(&podman);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("suite-ran-on-podman") || stderr(&out).contains("suite-ran-on-podman"));
    assert!(!stderr(&out).contains("catatonit"), "{}", stderr(&out));
    assert_eq!(podman.containers(), "", "the gate container is removed");
}

#[test]
fn without_catatonit_the_sandbox_runs_without_init_and_says_so() {
    require_docker!();
    let Some(podman) = Podman::start(false) else { return };
    let out = gate_on(&podman);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("install `catatonit`"), "{err}");
    assert_eq!(err.matches("install `catatonit`").count(), 1, "one note: {err}");
    assert_eq!(podman.containers(), "", "the refused container is removed too");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_ships_on_podman() {
    require_docker!();
    let Some(podman) = Podman::start(true) else { return };
    let day = Scenario::greeter()
        .env("DOCKER_HOST", &podman.docker_host())
        .start()
        .await;
    let ran = day.pace(&["--day", "1"]).await.expect_exit(0);
    assert_eq!(day.run_json(1)["decision"], "SHIP");
    assert_eq!(
        podman.containers(),
        "",
        "FORGE's session and GATE's container are removed:\n{}",
        ran.text()
    );
}
