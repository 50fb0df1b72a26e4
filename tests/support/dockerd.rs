//! A private `dockerd` for tests that must not touch the machine's daemon (a TLS daemon, a
//! daemon killed mid-run): its own socket, data-root, exec-root and pidfile under `dir`.

use std::path::Path;
use std::process::{Command, Stdio};

/// The command for a private daemon listening on `unix://<dir>/d.sock`, logging to
/// `<dir>/dockerd.log`; callers add their own flags (TLS, a TCP host) and spawn it.
pub fn command(dir: &Path) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("dockerd.log"))
        .unwrap();
    let mut cmd = Command::new("dockerd");
    cmd.arg("-H")
        .arg(format!("unix://{}", dir.join("d.sock").display()))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("d.pid"))
        .args(["--iptables=false", "--bridge=none", "--storage-driver=vfs"])
        .stdout(Stdio::null())
        .stderr(log);
    cmd
}
