//! PLACEHOLDER — replaced by the sandbox implementation.
use std::path::{Path, PathBuf};

/// Files git tracks plus untracked files that are not ignored, relative to `repo`.
pub fn list_files(repo: &Path) -> std::io::Result<Vec<PathBuf>> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(repo)
        .output()?;
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(String::from_utf8_lossy(s).into_owned()))
        .collect())
}
