//! A day never runs on the default/target branch by accident: GitLab's and Bitbucket's
//! "Run pipeline" preselect it, and pace commits on the branch it runs on and opens its
//! merge request from there. Unless `platform.allow_default_branch: true`, a day on that
//! branch stops (exit 2) before anything is written or spent.
//!
//! Where the default branch is known from, each a cheap local read:
//! - `platform.target_branch`: where the merge requests go;
//! - `CI_DEFAULT_BRANCH`: GitLab CI's project default branch;
//! - `origin/HEAD`: a clone records the remote's default branch there. Bitbucket Pipelines
//!   has no variable for it, but its clone (`--branch B --depth N`) records `origin/HEAD`
//!   exactly when B is the default branch, which is when it matters.

use std::path::Path;

use crate::config::settings::Settings;
use crate::env::{self, Env};
use crate::error::PaceError;

/// A branch the day must not run on, and how pace knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Protected {
    pub(super) branch: String,
    pub(super) source: String,
}

/// Every default/target branch pace can know of, most explicit first.
pub(super) fn known_default_branches(settings: &Settings, env: &Env) -> Vec<Protected> {
    let mut known = Vec::new();
    if let Some(target) = &settings.platform.target_branch {
        known.push(Protected {
            branch: target.clone(),
            source: "`platform.target_branch`".into(),
        });
    }
    if let Some(default) = env.get(env::CI_DEFAULT_BRANCH) {
        known.push(Protected {
            branch: default.trim().to_string(),
            source: "`CI_DEFAULT_BRANCH`".into(),
        });
    }
    if let Some(head) = origin_head(&settings.repo_root) {
        known.push(Protected {
            branch: head,
            source: "`origin/HEAD`".into(),
        });
    }
    known
}

/// Refuses a day on a default/target branch unless the config allows it.
pub(super) fn refuse_default_branch(settings: &Settings, env: &Env) -> Result<(), PaceError> {
    if settings.platform.allow_default_branch {
        return Ok(());
    }
    // A detached HEAD or a checkout without git is the day's own error to report.
    let Some(current) = current_branch(&settings.repo_root) else {
        return Ok(());
    };
    let known = known_default_branches(settings, env);
    match known.iter().find(|p| p.branch == current) {
        Some(p) => Err(on_default_branch(&current, &p.source)),
        None => Ok(()),
    }
}

fn on_default_branch(branch: &str, source: &str) -> PaceError {
    PaceError::config(format!(
        "the day would run on `{branch}`, the default/target branch ({source}): pace commits the day on the branch it runs on"
    ))
    .with_hint(format!(
        "run the pipeline on the sprint branch (create it once: `git switch -c sprint/1 && git push -u origin sprint/1`, then pick it in \"Run pipeline\")\nor, to run days on `{branch}` on purpose, set `platform.allow_default_branch: true` in the config"
    ))
}

/// The checked-out branch; `None` on a detached HEAD.
fn current_branch(root: &Path) -> Option<String> {
    git_line(root, &["symbolic-ref", "--quiet", "--short", "HEAD"])
}

/// The branch `origin/HEAD` points at (`origin/main` → `main`).
fn origin_head(root: &Path) -> Option<String> {
    let full = git_line(root, &["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"])?;
    full.strip_prefix("refs/remotes/origin/").map(str::to_string)
}

fn git_line(root: &Path, args: &[&str]) -> Option<String> {
    let out = crate::git::hardened_command(root)
        .args(args)
        .current_dir(root)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !line.is_empty()).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(target: Option<&str>) -> Settings {
        let mut s = Settings::defaults(std::path::PathBuf::from("/nonexistent"));
        s.platform.target_branch = target.map(str::to_string);
        s
    }

    #[test]
    fn the_config_and_gitlab_name_default_branches() {
        let env = Env::from_pairs([(env::CI_DEFAULT_BRANCH, "trunk")]);
        let known = known_default_branches(&settings(Some("develop")), &env);
        let names: Vec<_> = known.iter().map(|p| (p.branch.as_str(), p.source.as_str())).collect();
        assert_eq!(
            names,
            [
                ("develop", "`platform.target_branch`"),
                ("trunk", "`CI_DEFAULT_BRANCH`")
            ]
        );
        assert!(known_default_branches(&settings(None), &Env::default()).is_empty());
    }

    #[test]
    fn the_refusal_names_the_branch_its_source_and_both_ways_out() {
        let e = on_default_branch("main", "`CI_DEFAULT_BRANCH`");
        assert_eq!(e.kind, crate::error::ExitKind::Config);
        assert!(
            e.message.contains("`main`") && e.message.contains("`CI_DEFAULT_BRANCH`"),
            "{}",
            e.message
        );
        let hint = e.hint.unwrap_or_default();
        assert!(
            hint.contains("platform.allow_default_branch: true") && hint.contains("sprint branch"),
            "{hint}"
        );
    }
}
