//! Build metadata: `pace --version` names the commit the binary was built from, so a
//! binary or image found on a runner can be traced to its source.
//!
//! `PACE_REVISION` (set by a release pipeline) wins; otherwise the short commit of the
//! checkout; a build from a source archive without git says only the version.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PACE_REVISION");
    let revision = std::env::var("PACE_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision);
    let version = env!("CARGO_PKG_VERSION");
    let long = match revision {
        Some(revision) => format!("{version} ({})", revision.trim()),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=PACE_LONG_VERSION={long}");
}

/// The short commit of HEAD, re-read whenever HEAD or the branch it points at moves.
fn git_revision() -> Option<String> {
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // A path that does not exist would make cargo rebuild pace on every build.
        if let Some(file) = git(&["rev-parse", "--git-path", &name])
            && std::path::Path::new(&file).exists()
        {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
