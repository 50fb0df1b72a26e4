//! `.pace/pipeline.lock`: one run per repository at a time. Taken atomically
//! ([`safe_write::create_new`]); a lock whose process is gone, or older than
//! [`STALE_AFTER`], is taken over; only the owner removes it. Taking, reading and removing
//! it never follow a link (a `.pace -> /elsewhere` would otherwise lock, take over and
//! delete a file there).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::artifacts::PaceDir;
use crate::safe_write::{self, OwnFileError};

/// A run never legitimately lasts this long (the original used 4 h too).
pub const STALE_AFTER: Duration = Duration::from_secs(4 * 3600);

#[derive(Debug)]
pub struct RunLock {
    repo: PathBuf,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another pace run holds `{path}` ({holder})")]
    Held { path: PathBuf, holder: String },
    /// Includes a link planted at `.pace` or at the lock (never followed).
    #[error(transparent)]
    Io(#[from] OwnFileError),
}

impl crate::error::Hint for LockError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Held { .. } => {
                Some("wait for the other run to finish; a lock left by a killed run is taken over automatically".into())
            }
            Self::Io(e) => crate::error::Hint::hint(e),
        }
    }

    fn exit_kind(&self) -> Option<crate::error::ExitKind> {
        match self {
            Self::Held { .. } => None,
            Self::Io(e) => crate::error::Hint::exit_kind(e),
        }
    }
}

impl RunLock {
    /// Takes `.pace/pipeline.lock` of `pace`'s repository. The lock is written through
    /// [`safe_write`]: a `.pace` that is a link to somewhere else is refused, not locked
    /// (nor, when the run ends, removed) there.
    pub fn acquire(pace: &PaceDir, day: u32) -> Result<Self, LockError> {
        let repo = pace.repo().to_path_buf();
        let path = pace.lock().to_path_buf();
        let started = chrono::Utc::now().timestamp();
        let content = format!("pid={}\nstarted={started}\nday={day}\n", std::process::id());
        for _ in 0..2 {
            // The content is complete before the name appears, so a competing run never
            // reads a half-written lock (which it would take for a stale one).
            if safe_write::create_new(&repo, &path, content.as_bytes())? {
                return Ok(Self { repo, path });
            }
            let text = safe_write::read_to_string(&repo, &path)?.unwrap_or_default();
            if is_stale(&text) {
                // Taken over: the run that wrote it is gone.
                safe_write::remove_file(&repo, &path)?;
                continue;
            }
            return Err(LockError::Held {
                path,
                holder: text.replace('\n', " ").trim().to_string(),
            });
        }
        Err(LockError::Held {
            path,
            holder: "a concurrent run took it first".into(),
        })
    }
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

fn is_stale(text: &str) -> bool {
    let Some(started) = field(text, "started").and_then(|s| s.trim().parse::<i64>().ok()) else {
        return true;
    };
    let age = chrono::Utc::now().timestamp() - started;
    if age > i64::try_from(STALE_AFTER.as_secs()).unwrap_or(i64::MAX) {
        return true;
    }
    match field(text, "pid").and_then(|p| p.trim().parse::<u32>().ok()) {
        // Same machine: a pid that no longer exists means the run was killed.
        Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = safe_write::remove_file(&self.repo, &self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_run_is_refused_and_stale_lock_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let pace = PaceDir::new(dir.path());
        let path = dir.path().join(".pace/pipeline.lock");
        let lock = RunLock::acquire(&pace, 1).unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with(&format!("pid={}\n", std::process::id()))
        );
        assert!(matches!(RunLock::acquire(&pace, 1), Err(LockError::Held { .. })));
        drop(lock);
        assert!(!path.exists());
        std::fs::write(&path, "pid=999999999\nstarted=1\n").unwrap();
        let _taken = RunLock::acquire(&pace, 1).unwrap();
    }

    #[test]
    fn a_linked_pace_dir_is_neither_locked_nor_unlocked_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // A stale lock outside: a run following the link would take it over and delete it.
        std::fs::write(outside.join("pipeline.lock"), "pid=999999999\nstarted=1\n").unwrap();
        std::os::unix::fs::symlink(&outside, repo.join(".pace")).unwrap();
        let err = RunLock::acquire(&PaceDir::new(&repo), 1).unwrap_err();
        assert!(err.to_string().starts_with("`.pace` is a symbolic link"), "{err}");
        assert_eq!(
            std::fs::read_to_string(outside.join("pipeline.lock")).unwrap(),
            "pid=999999999\nstarted=1\n"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }
}
