//! The workspace on the host side: which files go into the container, how they are packed
//! (a tar stream produced on a blocking thread, never a whole archive in memory), the
//! manifest FORGE sessions sync against, and safe extraction of what comes back.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::Stream;

/// Directories never uploaded nor synced back.
const EXCLUDED_DIRS: [&str; 2] = [".git", ".pace"];

/// Files git tracks plus untracked files that are not ignored, relative to `repo`
/// (without `.git/` and `.pace/`). Tracked files deleted from the work tree are listed too;
/// packing skips them. An untracked file that looks like a secret (`.env`, `*.pem`, …,
/// [`crate::boundary::looks_like_secret`]) is left out: "not ignored" is decided by
/// `.gitignore` files FORGE may write (`src/.gitignore` with `!.env` would send an ignored
/// `src/.env` into the sandbox, where `run cat` shows it to the model).
pub(super) fn list_files(repo: &Path) -> io::Result<Vec<PathBuf>> {
    let out = crate::git::hardened_command(repo)
        .args([
            "-c",
            "core.quotepath=off",
            "ls-files",
            "-z",
            // `H path` tracked, `? path` untracked (and the other status tags of tracked files).
            "-t",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(repo)
        .stdin(std::process::Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`git ls-files` failed in {}: {}",
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut seen = BTreeSet::new();
    for entry in out.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Some((tag, raw)) = entry
            .split_first()
            .and_then(|(tag, rest)| Some((*tag, rest.strip_prefix(b" ")?)))
        else {
            continue;
        };
        let path = path_from_bytes(raw);
        let untracked_secret = tag == b'?' && crate::boundary::looks_like_secret(&path.to_string_lossy());
        if is_safe_relative(&path) && !is_excluded(&path) && !untracked_secret {
            seen.insert(path);
        }
    }
    Ok(seen.into_iter().collect())
}

#[cfg(unix)]
fn path_from_bytes(raw: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(raw))
}

#[cfg(not(unix))]
fn path_from_bytes(raw: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(raw).into_owned())
}

/// `.git/…` or `.pace/…` (at the top of the repository).
pub(crate) fn is_excluded(rel: &Path) -> bool {
    match rel.components().next() {
        Some(Component::Normal(first)) => EXCLUDED_DIRS.iter().any(|d| first == *d),
        _ => false,
    }
}

/// Relative, non-empty, and made only of normal components (no `..`, no root, no `.`).
pub(crate) fn is_safe_relative(rel: &Path) -> bool {
    rel.components().next().is_some() && rel.components().all(|c| matches!(c, Component::Normal(_)))
}

/// What a file looked like when it was last synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub size: u64,
    pub mtime_ns: i128,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    File { executable: bool },
    Symlink,
}

/// Repository-relative path → stamp of every file the container has.
pub(crate) type Manifest = BTreeMap<PathBuf, Stamp>;

/// The stamp of `repo/rel`, `None` when it is missing or neither a file nor a symlink.
pub(crate) fn stamp(repo: &Path, rel: &Path) -> io::Result<Option<Stamp>> {
    match fs::symlink_metadata(repo.join(rel)) {
        Ok(meta) => Ok(stamp_of(&meta)),
        Err(e) if is_vanished(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn stamp_of(meta: &fs::Metadata) -> Option<Stamp> {
    let kind = if meta.file_type().is_symlink() {
        Kind::Symlink
    } else if meta.is_file() {
        Kind::File {
            executable: is_executable(meta),
        }
    } else {
        return None;
    };
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    Some(Stamp {
        size: meta.len(),
        mtime_ns,
        kind,
    })
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

fn is_vanished(e: &io::Error) -> bool {
    // NotADirectory: a parent was replaced by a file between listing and packing.
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// Numeric owner of the uploaded files (`uid[:gid]`); names cannot be resolved here.
pub(crate) fn parse_owner(user: Option<&str>) -> Option<(u64, u64)> {
    let user = user?.trim();
    if user.is_empty() {
        return None;
    }
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u.parse().ok()?, g.parse().ok()?),
        None => {
            let uid = user.parse().ok()?;
            (uid, uid)
        }
    };
    Some((uid, gid))
}

/// What one upload carries.
pub(crate) struct PackPlan {
    pub repo: PathBuf,
    pub files: Vec<PathBuf>,
    /// Owner written into every entry (`None`: root).
    pub owner: Option<(u64, u64)>,
    /// Adds `.pace/stamp` with this mtime (unix seconds), the reference FORGE's change
    /// detection compares against.
    pub stamp_mtime: Option<u64>,
}

/// Writes the files of `plan` as a tar to `w` and returns the stamps of what was packed.
/// Files that vanished since they were listed are skipped; symlinks stay symlinks.
pub(crate) fn pack<W: Write>(w: W, plan: &PackPlan) -> io::Result<Manifest> {
    let mut packer = Packer::new(w, plan.owner.unwrap_or((0, 0)));
    let mut manifest = Manifest::new();
    for rel in &plan.files {
        if !is_safe_relative(rel) {
            continue;
        }
        if let Some(st) = packer.entry(&plan.repo, rel)? {
            manifest.insert(rel.clone(), st);
        }
    }
    if let Some(mtime) = plan.stamp_mtime {
        packer.stamp(mtime)?;
    }
    packer.builder.into_inner()?.flush()?;
    Ok(manifest)
}

/// A tar being written: every entry owned by `owner`, parents added once before their
/// first entry.
struct Packer<W: Write> {
    builder: tar::Builder<W>,
    owner: (u64, u64),
    /// Directories already in the archive.
    dirs: HashSet<PathBuf>,
    /// The mtime of directories and of files whose own cannot be read.
    now: u64,
}

impl<W: Write> Packer<W> {
    fn new(w: W, owner: (u64, u64)) -> Self {
        let mut builder = tar::Builder::new(w);
        builder.follow_symlinks(false);
        Self {
            builder,
            owner,
            dirs: HashSet::new(),
            now: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        }
    }

    fn header(&self, kind: tar::EntryType, mode: u32, mtime: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(self.owner.0);
        h.set_gid(self.owner.1);
        h.set_mtime(mtime);
        h.set_size(size);
        h
    }

    fn add_parents(&mut self, rel: &Path) -> io::Result<()> {
        let mut parents: Vec<&Path> = rel.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()).collect();
        parents.reverse();
        for dir in parents {
            if self.dirs.insert(dir.to_path_buf()) {
                let mut h = self.header(tar::EntryType::Directory, 0o755, self.now, 0);
                self.builder.append_data(&mut h, dir, io::empty())?;
            }
        }
        Ok(())
    }

    /// Adds `repo/rel`; `None` when it vanished or is neither a file nor a symlink.
    fn entry(&mut self, repo: &Path, rel: &Path) -> io::Result<Option<Stamp>> {
        let full = repo.join(rel);
        let meta = match fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if is_vanished(&e) => return Ok(None),
            Err(e) => return Err(with_path(e, &full)),
        };
        let Some(st) = stamp_of(&meta) else { return Ok(None) };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(self.now, |d| d.as_secs());
        let added = match st.kind {
            Kind::Symlink => self.symlink(&full, rel, mtime)?,
            Kind::File { executable } => self.file(&full, rel, mtime, executable)?,
        };
        Ok(added.then_some(st))
    }

    /// False when the link vanished since it was listed.
    fn symlink(&mut self, full: &Path, rel: &Path, mtime: u64) -> io::Result<bool> {
        let target = match fs::read_link(full) {
            Ok(t) => t,
            Err(e) if is_vanished(&e) => return Ok(false),
            Err(e) => return Err(with_path(e, full)),
        };
        self.add_parents(rel)?;
        let mut h = self.header(tar::EntryType::Symlink, 0o777, mtime, 0);
        self.builder.append_link(&mut h, rel, &target)?;
        Ok(true)
    }

    /// False when the file vanished since it was listed.
    fn file(&mut self, full: &Path, rel: &Path, mtime: u64, executable: bool) -> io::Result<bool> {
        let file = match fs::File::open(full) {
            Ok(f) => f,
            Err(e) if is_vanished(&e) => return Ok(false),
            Err(e) => return Err(with_path(e, full)),
        };
        // The size from the open handle; a file that shrinks while being read is padded
        // with zeros so the archive stays well-formed.
        let size = file.metadata().map_err(|e| with_path(e, full))?.len();
        self.add_parents(rel)?;
        let mode = if executable { 0o755 } else { 0o644 };
        let mut h = self.header(tar::EntryType::Regular, mode, mtime, size);
        let content = Padded {
            inner: file.take(size),
            remaining: size,
        };
        self.builder.append_data(&mut h, rel, content)?;
        Ok(true)
    }

    /// `.pace/stamp` with `mtime`, the reference FORGE's change detection compares against.
    fn stamp(&mut self, mtime: u64) -> io::Result<()> {
        let rel = Path::new(".pace/stamp");
        self.add_parents(rel)?;
        let mut h = self.header(tar::EntryType::Regular, 0o644, mtime, 0);
        self.builder.append_data(&mut h, rel, io::empty())
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Reads `inner`, then zeros up to exactly `remaining` bytes in total.
struct Padded<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..max])? {
            0 => {
                buf[..max].fill(0);
                max
            }
            n => n,
        };
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A `Write` on a blocking thread feeding a bounded channel read by the HTTP body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped reading the archive"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

/// Packs `plan` on a blocking thread into a byte stream for `body_try_stream`. A packing
/// error ends the stream with that error (so the upload fails instead of receiving a
/// truncated archive); the handle returns the manifest of what was packed.
pub(crate) fn tar_stream(
    plan: PackPlan,
) -> (
    impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    tokio::task::JoinHandle<io::Result<Manifest>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    let handle = tokio::task::spawn_blocking(move || {
        let err_tx = tx.clone();
        let writer = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let result = pack(writer, &plan);
        if let Err(e) = &result {
            let _ = err_tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        result
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (stream, handle)
}

/// The subset of `paths` git ignores in `repo` (tracked files are never ignored).
pub(crate) fn ignored(repo: &Path, paths: &[PathBuf]) -> io::Result<HashSet<PathBuf>> {
    if paths.is_empty() {
        return Ok(HashSet::new());
    }
    let mut child = crate::git::hardened_command(repo)
        .args(["check-ignore", "-z", "--stdin"])
        .current_dir(repo)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut input = Vec::new();
    for p in paths {
        input.extend_from_slice(p.to_string_lossy().as_bytes());
        input.push(0);
    }
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("git check-ignore: no stdin"))?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| io::Error::other("git check-ignore: writer panicked"))??;
    // 0: some ignored, 1: none ignored, anything else: an error.
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(io::Error::other(format!(
            "`git check-ignore` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(path_from_bytes)
        .collect())
}

/// Creates the directories of `rel`'s parent under `root`, refusing to pass through a
/// symlink (so nothing is ever written outside `root`).
pub(crate) fn safe_parent_dirs(root: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut dir = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for comp in parent.components() {
            dir.push(comp);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} is not a directory (or is a symlink)", dir.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir)?,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(dir)
}

/// Removes `path` if it is a file or a symlink (never follows it).
pub(crate) fn remove_non_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if !m.is_dir() => fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is a directory", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Extracts the regular files of a `/workspace` download (entries `workspace/…`) whose
/// relative path matches `globs` into `dest`, keeping their relative paths. Returns the
/// absolute paths written. Unsafe paths and non-regular entries are skipped.
pub(crate) fn extract_matching<R: Read>(
    reader: R,
    dest: &Path,
    globs: &globset::GlobSet,
    limits: crate::boundary::Limits,
) -> io::Result<Vec<PathBuf>> {
    let mut budget = crate::boundary::SyncBudget::new(limits);
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    let mut written = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let path = entry.path()?.into_owned();
        let Ok(rel) = path.strip_prefix("workspace") else {
            continue;
        };
        let rel = rel.to_path_buf();
        if !is_safe_relative(&rel) || is_excluded(&rel) || !globs.is_match(&rel) {
            continue;
        }
        let shown = rel.to_string_lossy();
        if let Err(why) = crate::boundary::check_result_file(&shown, entry.size(), limits, &mut budget) {
            tracing::warn!(path = %shown, reason = %why, "sandbox: result file not collected");
            continue;
        }
        fs::create_dir_all(dest)?;
        let dir = match safe_parent_dirs(dest, &rel) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(path = %rel.display(), error = %e, "sandbox: result file not collected");
                continue;
            }
        };
        let Some(name) = rel.file_name() else {
            continue;
        };
        let target = dir.join(name);
        remove_non_dir(&target)?;
        let mut out = fs::File::create(&target)?;
        io::copy(&mut entry, &mut out)?;
        written.push(target);
    }
    Ok(written)
}

/// Extracts the one regular file of a single-file download (`GET /archive` of a file: one
/// entry named by its base name) to `dest/rel`. `rel` comes from the container, so it is
/// checked like any other untrusted path.
pub(crate) fn extract_single<R: Read>(reader: R, dest: &Path, rel: &Path, cap: u64) -> io::Result<Option<PathBuf>> {
    if !is_safe_relative(rel) || is_excluded(rel) {
        return Ok(None);
    }
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        fs::create_dir_all(dest)?;
        let dir = safe_parent_dirs(dest, rel)?;
        let Some(name) = rel.file_name() else { return Ok(None) };
        let target = dir.join(name);
        remove_non_dir(&target)?;
        let mut out = fs::File::create(&target)?;
        if entry.size() > cap || io::copy(&mut (&mut entry).take(cap + 1), &mut out)? > cap {
            drop(out);
            fs::remove_file(&target)?;
            return Ok(None);
        }
        return Ok(Some(target));
    }
    Ok(None)
}

/// The repository-relative paths of a `find /workspace -type f` listing.
/// Lines are `SIZE /workspace/PATH` (from `stat`) or a bare `/workspace/PATH` (size
/// unknown, 0: the download is capped anyway).
pub(crate) fn listed_paths(listing: &str) -> Vec<(u64, PathBuf)> {
    listing
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((size, path)) if !l.starts_with('/') => (size.parse().unwrap_or(u64::MAX), path),
            _ => (0, l),
        })
        .filter_map(|(size, l)| Some((size, PathBuf::from(l.strip_prefix("/workspace/")?))))
        .filter(|(_, p)| is_safe_relative(p) && !is_excluded(p))
        .collect()
}

/// Bind mode's result collection: copies the repository's files matching `globs` (outside
/// `.git` and `.pace`, links not followed) to the same relative paths under `dest`, with
/// the return path's name rules and caps (the copies land in `.pace/day-N/gate/`, which is
/// committed). Returns what was copied and what was refused.
pub(crate) fn copy_matching(
    repo: &Path,
    dest: &Path,
    globs: &globset::GlobSet,
    limits: crate::boundary::Limits,
) -> io::Result<(Vec<PathBuf>, Vec<crate::boundary::Refused>)> {
    use crate::boundary::{self, Origin, Refused, SyncBudget};
    let mut budget = SyncBudget::new(limits);
    let mut written = Vec::new();
    let mut refused = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(repo.join(&rel_dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let rel = rel_dir.join(entry.file_name());
            if is_excluded(&rel) {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(rel);
                continue;
            }
            if !meta.is_file() || !globs.is_match(&rel) {
                continue;
            }
            let shown = rel.to_string_lossy().into_owned();
            if let Err(why) = boundary::check_result_file(&shown, meta.len(), limits, &mut budget) {
                refused.push(Refused::new(shown, &why, Origin::Gate));
                continue;
            }
            let target = dest.join(&rel);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            // Contents only: a set-id bit of the suite's file must not survive the copy.
            let mut from = fs::File::open(entry.path())?;
            let mut to = fs::File::create(&target)?;
            io::copy(&mut (&mut from).take(limits.max_file_bytes), &mut to)?;
            written.push(target);
        }
    }
    written.sort();
    Ok((written, refused))
}

/// Deletes `repo/rel` (a file or symlink) if present; `true` when something was removed.
pub(crate) fn delete(repo: &Path, rel: &Path) -> io::Result<bool> {
    if !is_safe_relative(rel) || is_excluded(rel) {
        return Ok(false);
    }
    // Refuse to follow a symlinked parent out of the repository.
    let mut dir = repo.to_path_buf();
    if let Some(parent) = rel.parent() {
        for comp in parent.components() {
            dir.push(comp);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                _ => return Ok(false),
            }
        }
    }
    match fs::symlink_metadata(repo.join(rel)) {
        Ok(m) if !m.is_dir() => {
            fs::remove_file(repo.join(rel))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_parsing() {
        assert_eq!(parse_owner(Some("1000")), Some((1000, 1000)));
        assert_eq!(parse_owner(Some("1000:50")), Some((1000, 50)));
        assert_eq!(parse_owner(Some("node")), None);
        assert_eq!(parse_owner(None), None);
    }

    #[test]
    fn safe_relative_paths() {
        assert!(is_safe_relative(Path::new("a/b.txt")));
        assert!(!is_safe_relative(Path::new("../a")));
        assert!(!is_safe_relative(Path::new("/etc/passwd")));
        assert!(!is_safe_relative(Path::new("")));
        assert!(is_excluded(Path::new(".git/config")));
        assert!(is_excluded(Path::new(".pace/day-1/x")));
        assert!(!is_excluded(Path::new("src/.git")));
    }

    #[test]
    fn pack_skips_vanished_keeps_symlinks_and_pads() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("src")).unwrap();
        fs::write(dir.path().join("src/a.txt"), "hello").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let plan = PackPlan {
            repo: dir.path().to_path_buf(),
            files: vec!["src/a.txt".into(), "gone.txt".into(), "link".into()],
            owner: Some((1000, 1000)),
            stamp_mtime: Some(5),
        };
        let mut out = Vec::new();
        let manifest = pack(&mut out, &plan).unwrap();
        assert!(manifest.contains_key(Path::new("src/a.txt")));
        assert!(!manifest.contains_key(Path::new("gone.txt")));
        let mut archive = tar::Archive::new(&out[..]);
        let mut names = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            names.push((
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
                e.header().uid().unwrap(),
            ));
        }
        assert!(
            names
                .iter()
                .any(|(n, t, u)| n == "src" && *t == tar::EntryType::Directory && *u == 1000)
        );
        assert!(
            names
                .iter()
                .any(|(n, t, _)| n == "src/a.txt" && *t == tar::EntryType::Regular)
        );
        #[cfg(unix)]
        assert!(
            names
                .iter()
                .any(|(n, t, _)| n == "link" && *t == tar::EntryType::Symlink)
        );
        assert!(names.iter().any(|(n, _, _)| n == ".pace/stamp"));

        let mut padded = Padded {
            inner: &b"ab"[..],
            remaining: 4,
        };
        let mut buf = Vec::new();
        padded.read_to_end(&mut buf).unwrap();
        assert_eq!(buf, b"ab\0\0");
    }

    #[test]
    fn extract_matching_rejects_escapes() {
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            for (name, body) in [
                ("workspace/reports/junit.xml", "<testsuite/>"),
                ("workspace/src/x.rs", "fn"),
                // The fallback for images without `find` keeps the result-file rules too.
                ("workspace/reports/.GIT/junit.xml", "<testsuite/>"),
                ("workspace/big/junit.xml", "<testsuite>over the cap</testsuite>"),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(body.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, name, body.as_bytes()).unwrap();
            }
            // A raw `..` name (append_data refuses it, so write the header by hand).
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..25].copy_from_slice(b"workspace/../evil/junit.x");
            h.set_size(0);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
            b.finish().unwrap();
        }
        let dest = tempfile::tempdir().unwrap();
        let mut gb = globset::GlobSetBuilder::new();
        gb.add(globset::Glob::new("**/junit*.xml").unwrap());
        gb.add(globset::Glob::new("**/junit.x").unwrap());
        let set = gb.build().unwrap();
        let limits = crate::boundary::Limits {
            max_file_bytes: 20,
            ..Default::default()
        };
        let written = extract_matching(&data[..], dest.path(), &set, limits).unwrap();
        assert_eq!(written, vec![dest.path().join("reports/junit.xml")]);
    }
}

#[cfg(test)]
mod listing_tests {
    use super::*;

    #[test]
    fn listed_paths_keep_only_safe_workspace_files() {
        let listing = "/workspace/reports/junit.xml\n/workspace/../etc/passwd\n/etc/shadow\n/workspace/.git/config\n12 /workspace/a b.txt\n";
        assert_eq!(
            listed_paths(listing),
            vec![(0, PathBuf::from("reports/junit.xml")), (12, PathBuf::from("a b.txt"))]
        );
    }

    #[test]
    fn extract_single_writes_under_dest_only() {
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            let mut h = tar::Header::new_gnu();
            h.set_size(12);
            h.set_mode(0o644);
            b.append_data(&mut h, "junit.xml", "<testsuite/>".as_bytes()).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let written = extract_single(data.as_slice(), dir.path(), Path::new("reports/junit.xml"), 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(written, dir.path().join("reports/junit.xml"));
        assert_eq!(fs::read_to_string(written).unwrap(), "<testsuite/>");
        assert!(
            extract_single(data.as_slice(), dir.path(), Path::new("../x.xml"), 1 << 20)
                .unwrap()
                .is_none()
        );
    }
}
