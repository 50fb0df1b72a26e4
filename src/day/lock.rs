//! `.pace/pipeline.lock`: one run per repository at a time. Taken atomically
//! (`create_new`); a lock whose process is gone, or older than [`STALE_AFTER`], is taken
//! over; only the owner removes it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A run never legitimately lasts this long (the original used 4 h too).
pub const STALE_AFTER: Duration = Duration::from_secs(4 * 3600);

#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another pace run holds `{path}` ({holder})")]
    Held { path: PathBuf, holder: String },
    #[error("cannot create `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl RunLock {
    pub fn acquire(path: &Path, day: u32) -> Result<Self, LockError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LockError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        // The content is written first and the file linked into place, so a competing run
        // never reads a half-written lock (which it would take for a stale one).
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let started = chrono::Utc::now().timestamp();
        writeln!(tmp, "pid={}\nstarted={started}\nday={day}", std::process::id()).map_err(io)?;
        for _ in 0..2 {
            match std::fs::hard_link(tmp.path(), path) {
                Ok(()) => {
                    return Ok(Self {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    if is_stale(&text) {
                        // Taken over: the run that wrote it is gone.
                        let _ = std::fs::remove_file(path);
                        continue;
                    }
                    return Err(LockError::Held {
                        path: path.to_path_buf(),
                        holder: text.replace('\n', " ").trim().to_string(),
                    });
                }
                Err(source) => {
                    return Err(LockError::Io {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Err(LockError::Held {
            path: path.to_path_buf(),
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
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_run_is_refused_and_stale_lock_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pace/pipeline.lock");
        let lock = RunLock::acquire(&path, 1).unwrap();
        assert!(matches!(RunLock::acquire(&path, 1), Err(LockError::Held { .. })));
        drop(lock);
        assert!(!path.exists());
        std::fs::write(&path, "pid=999999999\nstarted=1\n").unwrap();
        let _taken = RunLock::acquire(&path, 1).unwrap();
    }
}
