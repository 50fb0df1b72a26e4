//! Writing pace's own files inside a checkout that the code under test may have changed.
//!
//! A repository can carry, and a test suite or a FORGE command can leave, links such as
//! `.pace/day-2 -> /etc` or `PROGRESS.md -> ~/.bashrc`: a plain `fs::write` follows them and
//! overwrites files outside the checkout. Here a path is resolved one component at a time
//! from the repository root, each directory opened with `O_NOFOLLOW | O_DIRECTORY` relative
//! to the one before (`openat`), so:
//! - a symbolic link at any component is refused, never followed, and so is a component of
//!   the wrong type (a FIFO where a file goes, a file where a directory goes);
//! - a target file with other hard links is refused (it shares its content with another
//!   name, possibly outside the repository);
//! - missing directories are created with `mkdirat` inside the directory already opened;
//! - a file is replaced by a temporary file in the same directory renamed over it
//!   (`renameat`): a reader never sees half a file, a killed run never leaves one, and the
//!   old inode is never written to.
//!
//! Races. The root is the caller's and trusted. Below it, check and use happen on the same
//! open directory descriptors, so a component swapped for a link after it was opened is not
//! followed. What remains: a directory renamed away while pace holds it still receives the
//! file at its new place (inside the checkout: a container only sees its bind mount, and
//! rename cannot leave a mount), and the hard-link check is a snapshot (a link made later to
//! the file pace wrote exposes only what pace wrote). In upload mode the container is
//! stopped while pace writes; in bind mode a FORGE session may be alive and these are the
//! only windows it has.
//!
//! Errors name the path relative to the root and say what to do.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawMode};
use rustix::io::Errno;

/// Mode of a new file (the umask applies): pace's files are readable artifacts.
const NEW_FILE_MODE: RawMode = 0o644;
const NEW_DIR_MODE: RawMode = 0o755;
/// Prefix of the temporary file a write goes through (hidden, recognisable if a crash
/// leaves one behind).
const TEMP_PREFIX: &str = ".pace-write-";

#[derive(Debug, thiserror::Error)]
pub enum OwnFileError {
    #[error("`{path}` is a symbolic link (to {target}); pace never writes through links: remove it and re-run")]
    Symlink { path: PathBuf, target: String },
    #[error(
        "`{path}` has {links} hard links (its content is shared with another file, possibly outside the repository); pace never writes to a linked file: remove it and re-run"
    )]
    HardLink { path: PathBuf, links: u64 },
    #[error(
        "`{path}` is a {found}, not a {expected}; pace writes its files only as regular files in plain directories: remove it and re-run"
    )]
    WrongType {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
    },
    /// A caller passed a path that is not below the root (a bug in pace, not the checkout).
    #[error("`{path}` is not a path inside `{root}`")]
    Outside { path: PathBuf, root: PathBuf },
    #[error("cannot write `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl OwnFileError {
    /// Refused because of what is in the checkout (a link, a hard link, a wrong type), as
    /// opposed to an I/O failure: the user has to remove something before re-running.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Symlink { .. } | Self::HardLink { .. } | Self::WrongType { .. }
        )
    }

    fn io(path: &Path, source: impl Into<io::Error>) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
}

/// Also inside an `io::Error` made from it (e.g. by [`create_own_file`]): the error that
/// holds the `io::Error` asks [`own_file_error`].
impl crate::error::Hint for OwnFileError {
    fn exit_kind(&self) -> Option<crate::error::ExitKind> {
        // A link or special file in pace's own paths: the checkout has to be fixed (as for
        // a dirty work tree), re-running it as it is fails the same way.
        self.is_refusal().then_some(crate::error::ExitKind::Config)
    }
}

/// The [`OwnFileError`] an `io::Error` was made from, if it was: an error holding an
/// `io::Error` answers [`crate::error::Hint`] through it, so a refusal written as an I/O
/// error still exits 2.
pub fn own_file_error(err: &io::Error) -> Option<&OwnFileError> {
    err.get_ref()?.downcast_ref::<OwnFileError>()
}

impl From<OwnFileError> for io::Error {
    fn from(e: OwnFileError) -> Self {
        let kind = match &e {
            OwnFileError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::PermissionDenied,
        };
        io::Error::new(kind, e)
    }
}

/// What a component is expected to be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Dir,
    File,
}

impl Expect {
    fn name(self) -> &'static str {
        match self {
            Self::Dir => "directory",
            Self::File => "regular file",
        }
    }
}

/// The directory that holds the target, opened without following links, and the target's
/// name in it.
struct Parent {
    dir: OwnedFd,
    name: OsString,
    /// The target relative to the root, for messages.
    shown: PathBuf,
}

/// Replaces (or creates) `path` with `content`, creating missing directories. An existing
/// file keeps its permission bits (an executable script stays executable).
pub fn write(root: &Path, path: &Path, content: &[u8]) -> Result<(), OwnFileError> {
    let parent = open_parent(root, path, true)?.ok_or_else(|| not_found(root, path))?;
    let mode = existing_file_mode(&parent)?;
    let (tmp_name, tmp) = create_temp(&parent)?;
    let written = (|| {
        let mut file = File::from(tmp);
        file.write_all(content)?;
        if let Some(mode) = mode {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
        }
        rustix::fs::renameat(&parent.dir, &tmp_name, &parent.dir, &parent.name)?;
        Ok::<(), io::Error>(())
    })();
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(&parent.dir, &tmp_name, AtFlags::empty());
        return Err(OwnFileError::io(&parent.shown, e));
    }
    Ok(())
}

/// Creates `path` and its missing parents as directories; an existing one must be a plain
/// directory at every component.
pub fn create_dir_all(root: &Path, path: &Path) -> Result<(), OwnFileError> {
    let (comps, shown) = relative(root, path)?;
    let mut dir = open_root(root)?;
    let mut so_far = PathBuf::new();
    for comp in &comps {
        so_far.push(comp);
        dir = open_dir(&dir, comp, &so_far, true)?.ok_or_else(|| not_found(root, &shown))?;
    }
    Ok(())
}

/// Opens `path` for writing from its start, creating it and its directories: for a file
/// another component streams into (e.g. `gate/output.log`). Refuses a link at every
/// component and a file with other hard links; the file is truncated only after those
/// checks.
pub fn create_own_file(root: &Path, path: &Path) -> io::Result<File> {
    let parent = open_parent(root, path, true)?.ok_or_else(|| not_found(root, path))?;
    let file = open_target(&parent, OFlags::WRONLY | OFlags::CREATE, OFlags::empty())?;
    file.set_len(0).map_err(|e| OwnFileError::io(&parent.shown, e))?;
    Ok(file)
}

/// Opens `path` for reading and appending (created if missing), with the same refusals as
/// [`create_own_file`]. Each later write goes to the inode opened here, whatever happens
/// to the path afterwards.
pub fn open_append(root: &Path, path: &Path) -> Result<File, OwnFileError> {
    let parent = open_parent(root, path, true)?.ok_or_else(|| not_found(root, path))?;
    open_target(&parent, OFlags::RDWR | OFlags::APPEND | OFlags::CREATE, OFlags::APPEND)
}

/// Creates `path` with `content` only if nothing has that name yet (atomically: the
/// content is complete before the name appears). `false` when the name exists.
pub fn create_new(root: &Path, path: &Path, content: &[u8]) -> Result<bool, OwnFileError> {
    let parent = open_parent(root, path, true)?.ok_or_else(|| not_found(root, path))?;
    let (tmp_name, tmp) = create_temp(&parent)?;
    let linked = File::from(tmp).write_all(content).and_then(|()| {
        // `linkat` fails on an existing name, whatever it is (a link there is not followed).
        match rustix::fs::linkat(&parent.dir, &tmp_name, &parent.dir, &parent.name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST) => Ok(false),
            Err(e) => Err(e.into()),
        }
    });
    let _ = rustix::fs::unlinkat(&parent.dir, &tmp_name, AtFlags::empty());
    linked.map_err(|e| OwnFileError::io(&parent.shown, e))
}

/// The content of one of pace's files; `None` when it (or a directory on the way) is
/// missing. Links are refused as for writes: a linked file could show something from
/// outside the checkout.
pub fn read_to_string(root: &Path, path: &Path) -> Result<Option<String>, OwnFileError> {
    let Some(parent) = open_parent(root, path, false)? else {
        return Ok(None);
    };
    let mut file = match open_existing(&parent, OFlags::RDONLY) {
        Ok(f) => f,
        Err(OwnFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| OwnFileError::io(&parent.shown, e))?;
    Ok(Some(text))
}

/// Removes `path` if it exists (a link at the final name is removed itself, which is
/// harmless; a link above it is refused).
pub fn remove_file(root: &Path, path: &Path) -> Result<(), OwnFileError> {
    let Some(parent) = open_parent(root, path, false)? else {
        return Ok(());
    };
    match rustix::fs::unlinkat(&parent.dir, &parent.name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(OwnFileError::io(&parent.shown, e)),
    }
}

/// Checks, without creating anything, that `path` could be written: no component that
/// exists is a link or of the wrong type, and an existing file has no other hard links.
/// `is_dir` says what the last component is meant to be.
pub fn check(root: &Path, path: &Path, is_dir: bool) -> Result<(), OwnFileError> {
    let Some(parent) = open_parent(root, path, false)? else {
        return Ok(());
    };
    if is_dir {
        open_dir(&parent.dir, &parent.name, &parent.shown, false).map(|_| ())
    } else {
        existing_file_mode(&parent).map(|_| ())
    }
}

/// Checks every entry directly inside the directory `path` (if it exists) as [`check`]
/// would: no links, no hard-linked files; subdirectories are not entered. Entries named in
/// `linked_ok` may have other hard links (a file pace never writes into, such as the lock,
/// which [`create_new`] links into place), and another run's temporary files are skipped.
pub fn check_entries(root: &Path, path: &Path, linked_ok: &[&str]) -> Result<(), OwnFileError> {
    let Some(parent) = open_parent(root, path, false)? else {
        return Ok(());
    };
    let Some(dir) = open_dir(&parent.dir, &parent.name, &parent.shown, false)? else {
        return Ok(());
    };
    let listing = rustix::fs::Dir::read_from(&dir).map_err(|e| OwnFileError::io(&parent.shown, e))?;
    for entry in listing {
        let entry = entry.map_err(|e| OwnFileError::io(&parent.shown, e))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        // A concurrent write's temporary file: created with `O_EXCL`, never opened again.
        if name == "." || name == ".." || name.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
            continue;
        }
        let shown = parent.shown.join(name);
        let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(OwnFileError::io(&shown, e)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => return Err(symlink_error(&dir, name, &shown)),
            FileType::RegularFile if link_count(&st) > 1 && !linked_ok.iter().any(|ok| name == *ok) => {
                return Err(OwnFileError::HardLink {
                    path: shown,
                    links: link_count(&st),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// `path` (relative, or absolute under `root`) as normal components, and as shown to
/// people (relative to the root).
fn relative(root: &Path, path: &Path) -> Result<(Vec<OsString>, PathBuf), OwnFileError> {
    let outside = || OwnFileError::Outside {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
    };
    let rel = if path.is_absolute() {
        path.strip_prefix(root).map_err(|_| outside())?
    } else {
        path
    };
    let mut comps = Vec::new();
    for comp in rel.components() {
        match comp {
            Component::Normal(c) => comps.push(c.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
    }
    if comps.is_empty() {
        return Err(outside());
    }
    let shown = comps.iter().collect();
    Ok((comps, shown))
}

fn open_root(root: &Path) -> Result<OwnedFd, OwnFileError> {
    rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| OwnFileError::io(root, e))
}

/// Opens every directory above the target (creating missing ones when `create`); `None`
/// when one is missing and `create` is false.
fn open_parent(root: &Path, path: &Path, create: bool) -> Result<Option<Parent>, OwnFileError> {
    let (mut comps, shown) = relative(root, path)?;
    let name = comps.pop().unwrap_or_default();
    let mut dir = open_root(root)?;
    let mut so_far = PathBuf::new();
    for comp in &comps {
        so_far.push(comp);
        match open_dir(&dir, comp, &so_far, create)? {
            Some(next) => dir = next,
            None => return Ok(None),
        }
    }
    Ok(Some(Parent { dir, name, shown }))
}

/// Opens the directory `name` in `parent` without following a link; creates it when
/// missing and `create`, else `None`.
fn open_dir(parent: &OwnedFd, name: &OsStr, shown: &Path, create: bool) -> Result<Option<OwnedFd>, OwnFileError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // Twice: a directory created here may be removed again before it is opened.
    for _ in 0..2 {
        match rustix::fs::openat(parent, name, flags, Mode::empty()) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::NOENT) if create => match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(NEW_DIR_MODE)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(OwnFileError::io(shown, e)),
            },
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(classify(parent, name, shown, Expect::Dir, e)),
        }
    }
    Err(OwnFileError::io(shown, Errno::NOENT))
}

/// The permission bits of the existing target, `None` when it does not exist; refuses a
/// link, a non-file and a file with other hard links.
fn existing_file_mode(parent: &Parent) -> Result<Option<RawMode>, OwnFileError> {
    match rustix::fs::statat(&parent.dir, &parent.name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => {
            check_stat(&parent.dir, &parent.name, &parent.shown, &st)?;
            Ok(Some(st.st_mode & 0o7777))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(OwnFileError::io(&parent.shown, e)),
    }
}

/// The target is a regular file with one link.
fn check_stat(dir: &OwnedFd, name: &OsStr, shown: &Path, st: &rustix::fs::Stat) -> Result<(), OwnFileError> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Symlink => Err(symlink_error(dir, name, shown)),
        FileType::RegularFile if link_count(st) > 1 => Err(OwnFileError::HardLink {
            path: shown.to_path_buf(),
            links: link_count(st),
        }),
        FileType::RegularFile => Ok(()),
        other => Err(OwnFileError::WrongType {
            path: shown.to_path_buf(),
            found: type_name(other),
            expected: Expect::File.name(),
        }),
    }
}

/// Opens the target with `flags` plus `O_NOFOLLOW`; `O_NONBLOCK` while opening so a FIFO
/// planted at the name cannot block pace (it is then refused), replaced by `keep` after.
fn open_target(parent: &Parent, flags: OFlags, keep: OFlags) -> Result<File, OwnFileError> {
    let fd = rustix::fs::openat(
        &parent.dir,
        &parent.name,
        flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(NEW_FILE_MODE),
    )
    .map_err(|e| classify(&parent.dir, &parent.name, &parent.shown, Expect::File, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| OwnFileError::io(&parent.shown, e))?;
    check_stat(&parent.dir, &parent.name, &parent.shown, &st)?;
    rustix::fs::fcntl_setfl(&fd, keep).map_err(|e| OwnFileError::io(&parent.shown, e))?;
    Ok(File::from(fd))
}

/// Opens an existing target for reading (same refusals, except that a hard-linked file
/// may be read).
fn open_existing(parent: &Parent, flags: OFlags) -> Result<File, OwnFileError> {
    let fd = rustix::fs::openat(
        &parent.dir,
        &parent.name,
        flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::NOENT => OwnFileError::io(&parent.shown, e),
        e => classify(&parent.dir, &parent.name, &parent.shown, Expect::File, e),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| OwnFileError::io(&parent.shown, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(OwnFileError::WrongType {
            path: parent.shown.clone(),
            found: type_name(FileType::from_raw_mode(st.st_mode)),
            expected: Expect::File.name(),
        });
    }
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(|e| OwnFileError::io(&parent.shown, e))?;
    Ok(File::from(fd))
}

/// A new, exclusively created temporary file next to the target.
fn create_temp(parent: &Parent) -> Result<(OsString, OwnedFd), OwnFileError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut last = Errno::EXIST;
    for _ in 0..16 {
        let name = OsString::from(format!("{TEMP_PREFIX}{:016x}", fastrand::u64(..)));
        match rustix::fs::openat(&parent.dir, &name, flags, Mode::from_raw_mode(NEW_FILE_MODE)) {
            Ok(fd) => return Ok((name, fd)),
            Err(Errno::EXIST) => last = Errno::EXIST,
            Err(e) => return Err(OwnFileError::io(&parent.shown, e)),
        }
    }
    Err(OwnFileError::io(&parent.shown, last))
}

/// Turns a failed open into the reason a person can act on: a link, a wrong type, or the
/// I/O error itself.
fn classify(dir: &OwnedFd, name: &OsStr, shown: &Path, expect: Expect, error: Errno) -> OwnFileError {
    let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return OwnFileError::io(shown, error);
    };
    let found = FileType::from_raw_mode(st.st_mode);
    let matches = match expect {
        Expect::Dir => found == FileType::Directory,
        Expect::File => found == FileType::RegularFile,
    };
    if found == FileType::Symlink {
        symlink_error(dir, name, shown)
    } else if !matches {
        OwnFileError::WrongType {
            path: shown.to_path_buf(),
            found: type_name(found),
            expected: expect.name(),
        }
    } else {
        OwnFileError::io(shown, error)
    }
}

fn symlink_error(dir: &impl AsFd, name: &OsStr, shown: &Path) -> OwnFileError {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())
        .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned())
        .unwrap_or_else(|_| "an unreadable target".into());
    OwnFileError::Symlink {
        path: shown.to_path_buf(),
        target,
    }
}

fn not_found(root: &Path, path: &Path) -> OwnFileError {
    OwnFileError::io(&relative(root, path).map(|(_, s)| s).unwrap_or_default(), Errno::NOENT)
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn link_count(st: &rustix::fs::Stat) -> u64 {
    st.st_nlink as u64
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "named pipe",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "special file",
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    /// A repository and a directory outside it holding `victim.txt`.
    struct Fixture {
        _dir: tempfile::TempDir,
        repo: PathBuf,
        outside: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let repo = dir.path().join("repo");
            let outside = dir.path().join("outside");
            std::fs::create_dir_all(&repo).unwrap();
            std::fs::create_dir_all(&outside).unwrap();
            std::fs::write(outside.join("victim.txt"), "untouched\n").unwrap();
            Self {
                _dir: dir,
                repo,
                outside,
            }
        }

        fn victim(&self) -> String {
            std::fs::read_to_string(self.outside.join("victim.txt")).unwrap()
        }

        /// Nothing but `victim.txt` outside.
        fn outside_names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.outside)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    #[test]
    fn writes_create_directories_and_replace_files_keeping_their_mode() {
        let f = Fixture::new();
        write(&f.repo, Path::new(".pace/day-1/run.json"), b"{}").unwrap();
        assert_eq!(
            std::fs::read_to_string(f.repo.join(".pace/day-1/run.json")).unwrap(),
            "{}"
        );
        let script = f.repo.join("run.sh");
        std::fs::write(&script, "old").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o751)).unwrap();
        write(&f.repo, &script, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&script).unwrap(), "new");
        let mode = std::fs::metadata(&script).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o751);
        let leftovers: Vec<_> = std::fs::read_dir(&f.repo)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn a_link_at_any_component_is_refused_and_nothing_outside_changes() {
        for (link, write_to) in [
            (".pace", ".pace/victim.txt"),
            (".pace/day-2", ".pace/day-2/victim.txt"),
            (".pace/day-2", ".pace/day-2/gate/output.log"),
            (".pace/day-2/gate", ".pace/day-2/gate/victim.txt"),
        ] {
            let f = Fixture::new();
            if let Some(parent) = Path::new(link).parent() {
                std::fs::create_dir_all(f.repo.join(parent)).unwrap();
            }
            symlink(&f.outside, f.repo.join(link)).unwrap();
            let err = write(&f.repo, Path::new(write_to), b"pwned").unwrap_err();
            assert!(err.is_refusal(), "{write_to}: {err}");
            assert_eq!(
                err.to_string(),
                format!(
                    "`{link}` is a symbolic link (to {}); pace never writes through links: remove it and re-run",
                    f.outside.display()
                )
            );
            assert!(create_dir_all(&f.repo, Path::new(write_to)).unwrap_err().is_refusal());
            assert!(create_own_file(&f.repo, Path::new(write_to)).is_err());
            assert!(open_append(&f.repo, Path::new(write_to)).unwrap_err().is_refusal());
            assert!(create_new(&f.repo, Path::new(write_to), b"x").unwrap_err().is_refusal());
            assert!(check(&f.repo, Path::new(write_to), false).unwrap_err().is_refusal());
            assert_eq!(f.victim(), "untouched\n", "{write_to}");
            assert_eq!(f.outside_names(), ["victim.txt"], "{write_to}");
        }
    }

    #[test]
    fn a_link_at_the_file_itself_is_refused_by_every_writer() {
        let f = Fixture::new();
        symlink(f.outside.join("victim.txt"), f.repo.join("PROGRESS.md")).unwrap();
        let progress = Path::new("PROGRESS.md");
        assert!(matches!(
            write(&f.repo, progress, b"x"),
            Err(OwnFileError::Symlink { .. })
        ));
        let err = create_own_file(&f.repo, progress).unwrap_err();
        assert!(err.to_string().contains("`PROGRESS.md` is a symbolic link"), "{err}");
        // Still a refusal (exit 2) for whoever only sees the `io::Error`.
        let inside = own_file_error(&err).and_then(crate::error::Hint::exit_kind);
        assert_eq!(inside, Some(crate::error::ExitKind::Config));
        assert!(own_file_error(&io::Error::other("disk full")).is_none());
        assert!(matches!(
            open_append(&f.repo, progress),
            Err(OwnFileError::Symlink { .. })
        ));
        assert!(matches!(
            read_to_string(&f.repo, progress),
            Err(OwnFileError::Symlink { .. })
        ));
        assert!(matches!(
            check(&f.repo, progress, false),
            Err(OwnFileError::Symlink { .. })
        ));
        assert!(!create_new(&f.repo, progress, b"x").unwrap());
        assert_eq!(f.victim(), "untouched\n");
        // Removing it removes the link, not what it points to.
        remove_file(&f.repo, progress).unwrap();
        assert_eq!(f.victim(), "untouched\n");
    }

    #[test]
    fn a_dangling_link_is_not_created_through() {
        let f = Fixture::new();
        symlink(f.outside.join("new-dir"), f.repo.join("test-results")).unwrap();
        let err = write(&f.repo, Path::new("test-results/pace-day-1.xml"), b"<x/>").unwrap_err();
        assert!(matches!(err, OwnFileError::Symlink { .. }), "{err}");
        assert_eq!(f.outside_names(), ["victim.txt"]);
    }

    #[test]
    fn a_hard_linked_file_is_refused_before_it_is_truncated() {
        let f = Fixture::new();
        std::fs::hard_link(f.outside.join("victim.txt"), f.repo.join("PROGRESS.md")).unwrap();
        let progress = Path::new("PROGRESS.md");
        let err = write(&f.repo, progress, b"x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`PROGRESS.md` has 2 hard links (its content is shared with another file, possibly outside the repository); pace never writes to a linked file: remove it and re-run"
        );
        assert!(create_own_file(&f.repo, progress).is_err());
        assert!(matches!(
            open_append(&f.repo, progress),
            Err(OwnFileError::HardLink { .. })
        ));
        assert_eq!(f.victim(), "untouched\n");
    }

    #[test]
    fn special_files_and_wrong_types_are_refused_without_blocking() {
        let f = Fixture::new();
        let fifo = f.repo.join("output.log");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let err = create_own_file(&f.repo, Path::new("output.log")).unwrap_err();
        assert!(err.to_string().contains("is a named pipe, not a regular file"), "{err}");
        std::fs::write(f.repo.join(".pace"), "a file").unwrap();
        let err = write(&f.repo, Path::new(".pace/day-1/run.json"), b"{}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`.pace` is a regular file, not a directory"),
            "{err}"
        );
        assert!(matches!(
            write(&f.repo, Path::new("../outside/victim.txt"), b"x"),
            Err(OwnFileError::Outside { .. })
        ));
        assert!(matches!(
            write(&f.repo, &f.outside.join("victim.txt"), b"x"),
            Err(OwnFileError::Outside { .. })
        ));
        assert_eq!(f.victim(), "untouched\n");
    }

    #[test]
    fn own_files_open_appends_and_create_new_is_exclusive() {
        let f = Fixture::new();
        let log = Path::new(".pace/day-1/gate/output.log");
        create_own_file(&f.repo, log)
            .unwrap()
            .write_all(b"first run, long\n")
            .unwrap();
        create_own_file(&f.repo, log).unwrap().write_all(b"second\n").unwrap();
        assert_eq!(std::fs::read_to_string(f.repo.join(log)).unwrap(), "second\n");
        let t = Path::new(".pace/day-1/transcript.jsonl");
        open_append(&f.repo, t).unwrap().write_all(b"1\n").unwrap();
        let mut again = open_append(&f.repo, t).unwrap();
        let mut seen = String::new();
        again.read_to_string(&mut seen).unwrap();
        assert_eq!(seen, "1\n");
        again.write_all(b"2\n").unwrap();
        assert_eq!(read_to_string(&f.repo, t).unwrap().as_deref(), Some("1\n2\n"));
        let lock = Path::new(".pace/pipeline.lock");
        assert!(create_new(&f.repo, lock, b"pid=1").unwrap());
        assert!(!create_new(&f.repo, lock, b"pid=2").unwrap());
        assert_eq!(read_to_string(&f.repo, lock).unwrap().as_deref(), Some("pid=1"));
        remove_file(&f.repo, lock).unwrap();
        assert_eq!(read_to_string(&f.repo, lock).unwrap(), None);
        assert_eq!(read_to_string(&f.repo, Path::new("missing/x")).unwrap(), None);
    }

    #[test]
    fn entries_are_checked_one_level_deep() {
        let f = Fixture::new();
        std::fs::create_dir_all(f.repo.join(".pace/day-1/gate")).unwrap();
        std::fs::write(f.repo.join(".pace/day-1/summary.md"), "ok").unwrap();
        check_entries(&f.repo, Path::new(".pace/day-1"), &[]).unwrap();
        check_entries(&f.repo, Path::new(".pace/day-9"), &[]).unwrap();
        // The lock while another run links it into place: two links, not a refusal.
        std::fs::write(f.repo.join(".pace/day-1/.pace-write-0123"), "pid=1").unwrap();
        std::fs::hard_link(
            f.repo.join(".pace/day-1/.pace-write-0123"),
            f.repo.join(".pace/day-1/pipeline.lock"),
        )
        .unwrap();
        check_entries(&f.repo, Path::new(".pace/day-1"), &["pipeline.lock"]).unwrap();
        assert!(matches!(
            check_entries(&f.repo, Path::new(".pace/day-1"), &[]),
            Err(OwnFileError::HardLink { .. })
        ));
        std::fs::remove_file(f.repo.join(".pace/day-1/pipeline.lock")).unwrap();
        symlink(f.outside.join("victim.txt"), f.repo.join(".pace/day-1/run.json")).unwrap();
        let err = check_entries(&f.repo, Path::new(".pace/day-1"), &[]).unwrap_err();
        assert!(
            err.to_string().starts_with("`.pace/day-1/run.json` is a symbolic link"),
            "{err}"
        );
    }
}
