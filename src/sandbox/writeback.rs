//! The way back from a container into the repository, through the return-path policy
//! ([`crate::boundary`]): the archive of a FORGE command's changes (upload mode) and the
//! check after a command in bind mode, where the container wrote the checkout itself.
//!
//! Nothing here follows a symbolic link on the host: parents are created one component at
//! a time and refused when one is a link, files go to a temporary file in their directory
//! that is renamed over the target, and removal never descends through a link.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::workspace::{self, Manifest};
use crate::boundary::{self, Boundary, Origin, Refusal, Refused, SyncBudget};

/// Stamps of the files and links under `dirs` (relative start points, `.` for the whole
/// tree), without following links and without git's and pace's own directories.
pub(crate) fn scan_dirs(repo: &Path, dirs: &[String]) -> io::Result<Manifest> {
    let mut manifest = Manifest::new();
    for dir in dirs {
        let start = if dir == "." { PathBuf::new() } else { PathBuf::from(dir) };
        walk(repo, start, &internal_at_any_depth, &mut |rel, meta| {
            if !meta.is_dir()
                && let Some(stamp) = workspace::stamp_of(meta)
            {
                manifest.insert(rel.to_path_buf(), stamp);
            }
        })?;
    }
    Ok(manifest)
}

/// Calls `visit` for every entry under `repo/start` (depth first, links not followed),
/// except the entries `skip` names (and what is below them).
fn walk(
    repo: &Path,
    start: PathBuf,
    skip: &dyn Fn(&Path) -> bool,
    visit: &mut dyn FnMut(&Path, &fs::Metadata),
) -> io::Result<()> {
    let mut stack = vec![start];
    while let Some(rel_dir) = stack.pop() {
        let entries = match fs::read_dir(repo.join(&rel_dir)) {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let rel = rel_dir.join(entry?.file_name());
            if skip(&rel) {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(repo.join(&rel)) else {
                continue;
            };
            visit(&rel, &meta);
            if meta.is_dir() {
                stack.push(rel);
            }
        }
    }
    Ok(())
}

/// Directories named like `.git` or `.pace` at any depth (what the host side never sends).
fn internal_at_any_depth(rel: &Path) -> bool {
    rel.file_name()
        .is_some_and(|n| boundary::is_internal_component(&n.to_string_lossy()))
}

/// The top-level `.git` and `.pace` only (bind mode hides those from the container; nested
/// ones must be seen to be policed).
fn internal_at_the_top(rel: &Path) -> bool {
    rel == Path::new(".git") || rel == Path::new(".pace")
}

/// Writes the entries of a `tar -c` stream into `repo`, each through the policy. Returns
/// every entry's path with `Ok(true)` written, `Ok(false)` unchanged, or the refusal.
pub(crate) fn write_back_archive<R: Read>(
    reader: R,
    repo: &Path,
    policy: &Boundary,
    budget: &mut SyncBudget,
) -> io::Result<Vec<(String, Result<bool, Refusal>)>> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    let mut results = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let shown = raw.to_string_lossy().into_owned();
        let Some(rel) = boundary::rel_string(&raw) else {
            results.push((shown, Err(Refusal::Unsafe)));
            continue;
        };
        let outcome = match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let executable = entry.header().mode().map(|m| m & 0o111 != 0).unwrap_or(false);
                // The caps hold for what the archive holds, not for what was asked for (a
                // forged report or a planted `tar` can send more).
                let verdict = policy
                    .check_path(&rel)
                    .and_then(|()| policy.check_size(entry.size()))
                    .and_then(|()| budget.take(entry.size()));
                match verdict {
                    Ok(()) => write_file(&mut entry, repo, &rel, executable, policy.limits.max_file_bytes)?,
                    Err(why) => Err(why),
                }
            }
            tar::EntryType::Symlink => match entry.link_name()? {
                Some(target) => {
                    let target = target.into_owned();
                    match policy.check_link(&rel, &target).and_then(|()| budget.take(0)) {
                        Ok(()) => write_link(repo, &rel, &target)?,
                        Err(why) => Err(why),
                    }
                }
                None => Err(Refusal::LinkEscapes(String::new())),
            },
            tar::EntryType::Link => Err(Refusal::NotRegular("a hard link")),
            tar::EntryType::Fifo => Err(Refusal::NotRegular("a named pipe")),
            tar::EntryType::Char | tar::EntryType::Block => Err(Refusal::NotRegular("a device")),
            _ => Err(Refusal::NotRegular("an unknown kind of file")),
        };
        results.push((rel, outcome));
    }
    Ok(results)
}

/// Writes one regular file (at most `cap` bytes) if it differs from what is there.
fn write_file(
    content: &mut dyn Read,
    repo: &Path,
    rel: &str,
    executable: bool,
    cap: u64,
) -> io::Result<Result<bool, Refusal>> {
    let Some(dir) = parent_dirs(repo, rel)? else {
        return Ok(Err(Refusal::LinkEscapes("a parent directory that is a link".into())));
    };
    let target = repo.join(rel);
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    // The header's size was checked; this bounds a stream that lies about it.
    let copied = io::copy(&mut content.take(cap + 1), tmp.as_file_mut())?;
    if copied > cap {
        return Ok(Err(Refusal::TooLarge { size: copied, cap }));
    }
    tmp.as_file_mut().flush()?;
    let same_exec = fs::symlink_metadata(&target)
        .map(|m| m.is_file() && is_executable(&m) == executable)
        .unwrap_or(false);
    if same_exec && same_contents(tmp.path(), &target)? {
        return Ok(Ok(false));
    }
    set_mode(tmp.path(), executable)?;
    remove_entry(&target)?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(Ok(true))
}

fn write_link(repo: &Path, rel: &str, link: &Path) -> io::Result<Result<bool, Refusal>> {
    let target = repo.join(rel);
    if fs::read_link(&target).ok().as_deref() == Some(link) {
        return Ok(Ok(false));
    }
    if parent_dirs(repo, rel)?.is_none() {
        return Ok(Err(Refusal::LinkEscapes("a parent directory that is a link".into())));
    }
    remove_entry(&target)?;
    make_symlink(link, &target)?;
    Ok(Ok(true))
}

/// Creates the parent directories of `rel` under `repo` one by one; `None` when an
/// existing component is a link or not a directory (nothing is written through it).
fn parent_dirs(repo: &Path, rel: &str) -> io::Result<Option<PathBuf>> {
    let mut dir = repo.to_path_buf();
    let mut parts: Vec<&str> = rel.split('/').collect();
    parts.pop();
    for part in parts {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir)?,
            Err(e) => return Err(e),
        }
    }
    Ok(Some(dir))
}

/// Removes whatever is at `path` (a file, a link, or a whole directory) without following
/// links; missing is fine.
fn remove_entry(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        // `remove_dir_all` does not follow links inside the tree it removes.
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn make_symlink(link: &Path, target: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(link, target)
}

#[cfg(not(unix))]
fn make_symlink(_link: &Path, _target: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symlinks are not supported here",
    ))
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

#[cfg(unix)]
fn set_mode(path: &Path, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _executable: bool) -> io::Result<()> {
    Ok(())
}

/// Byte-for-byte comparison of two files (streamed).
fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (ma, mb) = match (fs::metadata(a), fs::symlink_metadata(b)) {
        (Ok(ma), Ok(mb)) if mb.is_file() => (ma, mb),
        _ => return Ok(false),
    };
    if ma.len() != mb.len() {
        return Ok(false);
    }
    let mut fa = io::BufReader::new(fs::File::open(a)?);
    let mut fb = io::BufReader::new(fs::File::open(b)?);
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// What one entry of the checkout looked like (bind mode compares two of these).
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryStat {
    kind: u8,
    /// Permission bits, set-id bits included.
    mode: u32,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
}

fn entry_stat(meta: &fs::Metadata) -> EntryStat {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        EntryStat {
            mode: meta.mode() & 0o7777,
            kind: if meta.file_type().is_symlink() {
                b'l'
            } else if meta.is_dir() {
                b'd'
            } else if meta.is_file() {
                b'f'
            } else {
                b'o'
            },
            size: if meta.is_dir() { 0 } else { meta.len() },
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            // A backdated mtime still moves the ctime; directories' own times change with
            // every entry added, so they count by kind only.
            ctime_ns: if meta.is_dir() {
                0
            } else {
                i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
            },
            inode: meta.ino(),
        }
    }
    #[cfg(not(unix))]
    {
        EntryStat {
            mode: 0,
            kind: if meta.is_dir() { b'd' } else { b'f' },
            size: meta.len(),
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
        }
    }
}

/// Bind mode: the checkout before a command, to find and police what the command changed.
pub(crate) struct BindSnapshot {
    entries: BTreeMap<PathBuf, EntryStat>,
}

impl BindSnapshot {
    pub(crate) fn take(repo: &Path) -> io::Result<Self> {
        let mut entries = BTreeMap::new();
        walk(repo, PathBuf::new(), &internal_at_the_top, &mut |rel, meta| {
            let mut stat = entry_stat(meta);
            if meta.is_dir() {
                stat.mtime_ns = 0;
                stat.inode = 0;
            }
            entries.insert(rel.to_path_buf(), stat);
        })?;
        Ok(Self { entries })
    }

    /// Compares the checkout with this snapshot and undoes every change the policy refuses
    /// (new entries are removed, changed or deleted tracked files restored from HEAD).
    /// Git-ignored paths outside the writable directories are build output and stay, unless
    /// their name or link is refused. Returns the accepted changes inside the writable
    /// directories and what was refused.
    pub(crate) fn enforce(
        &self,
        repo: &Path,
        policy: &Boundary,
        origin: Origin,
    ) -> io::Result<(Vec<PathBuf>, Vec<Refused>)> {
        let after = Self::take(repo)?;
        let mut touched: BTreeSet<PathBuf> = after
            .entries
            .iter()
            .filter(|(p, s)| self.entries.get(*p) != Some(*s))
            .map(|(p, _)| p.clone())
            .collect();
        touched.extend(self.entries.keys().filter(|p| !after.entries.contains_key(*p)).cloned());

        let outside: Vec<PathBuf> = touched
            .iter()
            .filter(|p| boundary::rel_string(p).is_some_and(|r| !policy.inside_writable(&r)))
            .cloned()
            .collect();
        let ignored = workspace::ignored(repo, &outside)?;

        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        let mut undone: Vec<PathBuf> = Vec::new();
        for path in touched {
            if undone.iter().any(|u| path.starts_with(u)) {
                continue;
            }
            let now = after.entries.get(&path);
            let verdict = match boundary::rel_string(&path) {
                None => Err(Refusal::BadName),
                Some(rel) => verdict(repo, policy, &rel, now, ignored.contains(&path)),
            };
            match verdict {
                Ok(kept) => {
                    // The container's root can leave a set-user-ID root file in the checkout:
                    // what stays keeps its permission bits only.
                    if let Some(stat) = now.filter(|s| s.kind == b'f' && s.mode & 0o7000 != 0) {
                        set_mode(&repo.join(&path), stat.mode & 0o111 != 0)?;
                    }
                    if kept.is_some() && now.is_none_or(|s| s.kind != b'd') {
                        accepted.push(path);
                    }
                }
                Err(why) => {
                    let shown = boundary::rel_string(&path)
                        .and_then(|r| boundary::refused_prefix(&r))
                        .unwrap_or_else(|| path.clone());
                    undo(repo, &shown)?;
                    refused.push(Refused::new(shown.to_string_lossy(), &why, origin));
                    undone.push(shown);
                }
            }
        }
        refused.dedup_by(|a, b| a.path == b.path);
        Ok((accepted, refused))
    }
}

/// `Ok(Some(()))` an accepted change in a writable directory, `Ok(None)` one that is left
/// alone (ignored build output), `Err` refused.
fn verdict(
    repo: &Path,
    policy: &Boundary,
    rel: &str,
    now: Option<&EntryStat>,
    ignored: bool,
) -> Result<Option<()>, Refusal> {
    boundary::check_name(rel)?;
    let Some(now) = now else {
        // Deleted: fine inside the writable directories, undone (restored) elsewhere.
        return if policy.inside_writable(rel) || ignored {
            Ok(Some(()))
        } else {
            Err(Refusal::NotWritable(policy.describe_writable()))
        };
    };
    if now.kind == b'l' {
        let target = fs::read_link(repo.join(rel)).unwrap_or_default();
        if policy.check_link(rel, &target).is_err() && !(ignored && boundary::link_lexically_inside(rel, &target)) {
            return Err(Refusal::LinkEscapes(target.to_string_lossy().into_owned()));
        }
    }
    if now.kind == b'o' {
        return Err(Refusal::NotRegular("not a regular file, directory or link"));
    }
    if !policy.inside_writable(rel) {
        return if ignored {
            Ok(None)
        } else {
            Err(Refusal::NotWritable(policy.describe_writable()))
        };
    }
    if now.kind == b'f' {
        policy.check_size(now.size)?;
    }
    Ok(Some(()))
}

/// Puts `rel` back as HEAD has it (a tracked file), or removes it. Nothing is done through
/// a parent that is not a real directory (a link swapped in): that would act outside.
fn undo(repo: &Path, rel: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (real_parent(repo, rel)?, rel.file_name()) else {
        return Ok(());
    };
    let target = dir.join(name);
    let Some((blob, mode)) = head_blob(repo, rel) else {
        return remove_entry(&target);
    };
    remove_entry(&target)?;
    if mode == "120000" {
        make_symlink(Path::new(&String::from_utf8_lossy(&blob).into_owned()), &target)
    } else {
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        tmp.write_all(&blob)?;
        set_mode(tmp.path(), mode == "100755")?;
        tmp.persist(&target).map(|_| ()).map_err(|e| e.error)
    }
}

/// `repo/<parent of rel>` when every component of it is a real directory.
fn real_parent(repo: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    let mut dir = repo.to_path_buf();
    if let Some(parent) = rel.parent() {
        for comp in parent.components() {
            let std::path::Component::Normal(name) = comp else {
                return Ok(None);
            };
            dir.push(name);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Some(dir))
}

/// The contents and mode of `rel` in HEAD, if tracked there as a file or link.
fn head_blob(repo: &Path, rel: &Path) -> Option<(Vec<u8>, String)> {
    let listed = git(repo).args(["ls-tree", "-z", "HEAD", "--"]).arg(rel).output().ok()?;
    let line = String::from_utf8_lossy(&listed.stdout).into_owned();
    let mut fields = line.split(['\t', '\0']).next()?.split(' ');
    let (mode, kind, oid) = (fields.next()?, fields.next()?, fields.next()?);
    if kind != "blob" {
        return None;
    }
    let blob = git(repo).args(["cat-file", "blob", oid]).output().ok()?;
    blob.status.success().then(|| (blob.stdout, mode.to_string()))
}

/// Git for reading HEAD in a checkout the container could write: no program the tree
/// configures may run (the full hardening lives in `crate::git`).
fn git(repo: &Path) -> Command {
    let mut cmd = crate::git::hardened_command(repo);
    cmd.stdin(Stdio::null()).stderr(Stdio::null());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            for (name, kind, body, link) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(*kind);
                h.set_mode(0o644);
                h.set_size(body.len() as u64);
                if *kind == tar::EntryType::Symlink {
                    b.append_link(&mut h, name, link).unwrap();
                } else {
                    b.append_data(&mut h, name, *body).unwrap();
                }
            }
            b.finish().unwrap();
        }
        data
    }

    #[test]
    fn archive_entries_pass_the_policy() {
        let repo = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(repo.path().join("src")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path(), repo.path().join("src/out")).unwrap();
        let data = archive(&[
            ("src/ok.rs", tar::EntryType::Regular, b"fn main() {}", ""),
            (
                "src/lib/.git/config",
                tar::EntryType::Regular,
                b"[core]\nfsmonitor = touch /tmp/x",
                "",
            ),
            ("src/.GIT/config", tar::EntryType::Regular, b"x", ""),
            (".gitlab-ci.yml", tar::EntryType::Regular, b"x", ""),
            ("src/.gitattributes", tar::EntryType::Regular, b"* filter=x", ""),
            ("src/big.bin", tar::EntryType::Regular, &[0u8; 100], ""),
            ("src/up", tar::EntryType::Symlink, b"", "../../etc"),
            ("src/abs", tar::EntryType::Symlink, b"", "/etc/passwd"),
            ("src/rel", tar::EntryType::Symlink, b"", "ok.rs"),
            ("src/out/x", tar::EntryType::Regular, b"through a link", ""),
            ("src/fifo", tar::EntryType::Fifo, b"", ""),
        ]);
        let limits = boundary::Limits {
            max_file_bytes: 50,
            ..Default::default()
        };
        let policy = Boundary::new(&["src"], limits);
        let results = write_back_archive(data.as_slice(), repo.path(), &policy, &mut SyncBudget::new(limits)).unwrap();
        let accepted: Vec<&str> = results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(true)))
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(accepted, vec!["src/ok.rs", "src/rel"]);
        assert_eq!(results.iter().filter(|(_, r)| r.is_err()).count(), 9);
        assert!(!repo.path().join("src/lib").exists());
        assert!(!repo.path().join(".gitlab-ci.yml").exists());
        assert!(
            fs::read_dir(outside.path()).unwrap().next().is_none(),
            "wrote through a link"
        );
        // The same archive again: nothing differs.
        let again = write_back_archive(data.as_slice(), repo.path(), &policy, &mut SyncBudget::new(limits)).unwrap();
        assert!(again.iter().all(|(_, r)| !matches!(r, Ok(true))));
    }

    #[test]
    fn scan_dirs_skips_internal_and_links() {
        let repo = tempfile::tempdir().unwrap();
        fs::create_dir_all(repo.path().join("src/a/.git")).unwrap();
        fs::write(repo.path().join("src/a/.git/config"), "x").unwrap();
        fs::write(repo.path().join("src/a/b.rs"), "x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc", repo.path().join("src/etc")).unwrap();
        let m = scan_dirs(repo.path(), &["src".to_string()]).unwrap();
        let names: Vec<_> = m.keys().map(|p| p.to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["src/a/b.rs", "src/etc"]);
    }
}
