//! How GATE's result files (`sandbox.collect`) come out of the stopped suite container in
//! few archive downloads instead of one per file.
//!
//! The Engine API's archive endpoint takes one path, and a stopped container runs no
//! `tar` of a list, so each download is a file or a whole directory. A Maven project writes
//! one report per test class into one directory: hundreds of files, ~30 ms per download.
//! [`plan`] downloads a directory with several wanted files once and keeps only the wanted
//! entries; when that would still be many downloads (files scattered over many directories,
//! or a suite that forges a listing of thousands of paths), it downloads the workspace once.
//! Either way the number of API calls is bounded, and what is written is bounded by the
//! return path's caps, which [`extract_wanted`] enforces while reading.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::workspace;

/// A directory with at least this many wanted files is downloaded whole.
const FILES_FOR_A_DIRECTORY: usize = 4;
/// More downloads than this and the workspace is downloaded once instead.
const MAX_DOWNLOADS: usize = 32;

/// One archive download from the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Download {
    /// One file, by its workspace-relative path.
    File(PathBuf),
    /// A directory (workspace-relative; empty for the workspace itself) and the files
    /// wanted from it.
    Dir(PathBuf, Vec<PathBuf>),
}

/// The downloads that bring `wanted` (workspace-relative files, each listed once) back.
pub(crate) fn plan(wanted: &[PathBuf]) -> Vec<Download> {
    let mut by_dir: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for path in wanted {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        by_dir.entry(dir).or_default().push(path.clone());
    }
    let mut downloads = Vec::new();
    for (dir, files) in by_dir {
        // The workspace's top level holds the sources: not downloaded for a few reports.
        if files.len() >= FILES_FOR_A_DIRECTORY && !dir.as_os_str().is_empty() {
            downloads.push(Download::Dir(dir, files));
        } else {
            downloads.extend(files.into_iter().map(Download::File));
        }
    }
    if downloads.len() > MAX_DOWNLOADS {
        return vec![Download::Dir(PathBuf::new(), wanted.to_vec())];
    }
    downloads
}

/// What is left of the sync's byte budget and the per-file cap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    pub(crate) file_cap: u64,
    pub(crate) sync_left: u64,
}

impl Room {
    /// The most archive bytes one directory download is read for, kept files and skipped
    /// ones together: a listing can name a report that is not there (the suite prints
    /// after the mark), and the archive would then be read to its end, a sparse 1 TB
    /// file in the directory included.
    fn read_cap(self) -> u64 {
        self.sync_left.saturating_mul(2).saturating_add(64 << 20)
    }
}

/// What an extraction wrote and which wanted files the byte budget cut.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    pub(crate) written: Vec<PathBuf>,
    pub(crate) cut: Vec<PathBuf>,
    pub(crate) bytes: u64,
}

/// Writes the entries of the archive of directory `dir` (as the archive endpoint sends it:
/// every name starts with the directory's own name) that are in `wanted` to the same
/// workspace-relative paths under `dest`. Regular files only, each at most
/// `room.file_cap` bytes and all together at most `room.sync_left`; a file larger than
/// what is left is not kept (and listed as cut when the budget, not its own size, was the
/// limit). Reading stops once every wanted file was seen.
pub(crate) fn extract_wanted<R: Read>(
    reader: R,
    dest: &Path,
    dir: &Path,
    wanted: &HashSet<PathBuf>,
    room: Room,
) -> io::Result<Extracted> {
    let mut out = Extracted::default();
    let mut seen = HashSet::new();
    let mut archive = tar::Archive::new(reader.take(room.read_cap()));
    for entry in archive.entries()? {
        // The read cap ends the archive mid-entry: what was not seen is cut.
        let Ok(mut entry) = entry else {
            out.cut.extend(wanted.iter().filter(|w| !seen.contains(*w)).cloned());
            out.cut.sort();
            break;
        };
        let Some(rel) = workspace_path(dir, &entry.path()?) else {
            continue;
        };
        if !wanted.contains(&rel) {
            continue;
        }
        seen.insert(rel.clone());
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            let cap = room.file_cap.min(room.sync_left - out.bytes);
            match write_capped(&mut entry, dest, &rel, cap)? {
                Some(len) => {
                    out.bytes += len;
                    out.written.push(dest.join(&rel));
                }
                None if cap < room.file_cap => out.cut.push(rel),
                None => {}
            }
        }
        if seen.len() == wanted.len() {
            break;
        }
    }
    Ok(out)
}

/// The workspace-relative path of an archive entry of directory `dir`: the entry's name
/// without its first component (the directory's own name), under `dir`. `None` for the
/// directory itself and for names that are not plain relative paths.
fn workspace_path(dir: &Path, name: &Path) -> Option<PathBuf> {
    let mut components = name.components();
    components.next()?;
    let inner = components.as_path();
    let rel = dir.join(inner);
    (inner.components().next().is_some() && rel.components().all(|c| matches!(c, Component::Normal(_)))).then_some(rel)
}

/// Writes `content` to `dest/rel` through no link, or removes what it wrote when it holds
/// more than `cap` bytes. Returns the length written.
fn write_capped(content: &mut impl Read, dest: &Path, rel: &Path, cap: u64) -> io::Result<Option<u64>> {
    fs::create_dir_all(dest)?;
    let dir = workspace::safe_parent_dirs(dest, rel)?;
    let Some(name) = rel.file_name() else {
        return Ok(None);
    };
    let target = dir.join(name);
    workspace::remove_non_dir(&target)?;
    let mut out = fs::File::create(&target)?;
    let len = io::copy(&mut content.take(cap + 1), &mut out)?;
    if len > cap {
        drop(out);
        fs::remove_file(&target)?;
        return Ok(None);
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_few_files_are_downloaded_one_by_one() {
        let wanted = paths(&["junit.xml", "target/reports/a.xml", "target/reports/b.xml"]);
        assert_eq!(
            plan(&wanted),
            wanted.into_iter().map(Download::File).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_directory_of_reports_is_one_download() {
        let mut names: Vec<String> = (0..300)
            .map(|i| format!("target/surefire-reports/TEST-{i}.xml"))
            .collect();
        names.push("coverage.xml".into());
        let wanted: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
        let downloads = plan(&wanted);
        assert_eq!(downloads.len(), 2, "{downloads:?}");
        assert_eq!(downloads[0], Download::File("coverage.xml".into()));
        assert!(
            matches!(&downloads[1], Download::Dir(dir, files) if dir == Path::new("target/surefire-reports") && files.len() == 300)
        );
    }

    #[test]
    fn many_top_level_reports_stay_single_downloads_until_the_bound() {
        let few: Vec<PathBuf> = (0..MAX_DOWNLOADS).map(|i| PathBuf::from(format!("r{i}.xml"))).collect();
        assert!(plan(&few).iter().all(|d| matches!(d, Download::File(_))));
        let many: Vec<PathBuf> = (0..=MAX_DOWNLOADS)
            .map(|i| PathBuf::from(format!("r{i}.xml")))
            .collect();
        assert_eq!(plan(&many), vec![Download::Dir(PathBuf::new(), many.clone())]);
    }

    /// A suite that lists 10,000 files in 10,000 directories costs one download.
    #[test]
    fn a_forged_listing_of_scattered_paths_is_one_download() {
        let forged: Vec<PathBuf> = (0..10_000).map(|i| PathBuf::from(format!("d{i}/x/r.xml"))).collect();
        assert_eq!(plan(&forged).len(), 1);
    }

    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            for (name, kind, content) in entries {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(*kind);
                h.set_size(content.len() as u64);
                h.set_mode(0o644);
                if *kind == tar::EntryType::Symlink {
                    h.set_link_name("/etc/passwd").unwrap();
                }
                b.append_data(&mut h, name, *content).unwrap();
            }
        }
        data
    }

    #[test]
    fn only_wanted_regular_files_are_written_within_the_caps() {
        use tar::EntryType::{Regular, Symlink};
        let data = archive(&[
            ("reports/a.xml", Regular, b"<a/>"),
            ("reports/big.bin", Regular, &[0u8; 4096]),
            ("reports/link.xml", Symlink, b""),
            ("reports/sub/b.xml", Regular, b"<b/>"),
            ("reports/huge.xml", Regular, &[b'x'; 100]),
            ("reports/late.xml", Regular, b"<late/>"),
        ]);
        let dest = tempfile::tempdir().unwrap();
        let wanted: HashSet<PathBuf> = paths(&[
            "target/reports/a.xml",
            "target/reports/link.xml",
            "target/reports/sub/b.xml",
            "target/reports/huge.xml",
            "target/reports/late.xml",
        ])
        .into_iter()
        .collect();
        let room = Room {
            file_cap: 64,
            sync_left: 10,
        };
        let out = extract_wanted(data.as_slice(), dest.path(), Path::new("target/reports"), &wanted, room).unwrap();
        let at = |p: &str| dest.path().join(p);
        assert_eq!(
            out.written,
            vec![at("target/reports/a.xml"), at("target/reports/sub/b.xml")]
        );
        assert_eq!(fs::read_to_string(at("target/reports/sub/b.xml")).unwrap(), "<b/>");
        // Larger than what is left of the budget (8 of 10 bytes used): cut, and listed.
        assert_eq!(out.cut, paths(&["target/reports/huge.xml", "target/reports/late.xml"]));
        assert_eq!(out.bytes, 8);
        for absent in [
            "target/reports/big.bin",
            "target/reports/link.xml",
            "target/reports/huge.xml",
        ] {
            assert!(fs::symlink_metadata(at(absent)).is_err(), "{absent}");
        }
    }

    /// A listed report that is not there (a forged listing line) made the extractor read
    /// the whole archive, a sparse giant in the directory included: reading stops at the
    /// read cap and the reports not seen by then are cut.
    #[test]
    fn a_missing_wanted_file_does_not_make_the_whole_archive_read() {
        use tar::EntryType::Regular;
        let mut data = archive(&[("reports/a.xml", Regular, b"<a/>")]);
        data.truncate(data.len() - 1024); // no end-of-archive blocks: more entries follow
        // A 1 TiB "sparse" non-report after it: its header, then content without end.
        let mut giant = tar::Header::new_gnu();
        giant.set_path("reports/zzz.bin").unwrap();
        giant.set_size(1 << 40);
        giant.set_entry_type(Regular);
        giant.set_cksum();
        data.extend_from_slice(giant.as_bytes());
        let dest = tempfile::tempdir().unwrap();
        let wanted: HashSet<PathBuf> = paths(&["reports/a.xml", "reports/ghost.xml"]).into_iter().collect();
        let room = Room {
            file_cap: 64,
            sync_left: 64,
        };
        let mut endless = std::io::Cursor::new(data).chain(std::io::repeat(b'x'));
        let out = extract_wanted(&mut endless, dest.path(), Path::new("reports"), &wanted, room).unwrap();
        assert_eq!(out.written, vec![dest.path().join("reports/a.xml")]);
        assert!(out.cut.contains(&PathBuf::from("reports/ghost.xml")), "{:?}", out.cut);
    }

    #[test]
    fn the_workspace_archive_maps_to_top_level_paths_and_refuses_escapes() {
        assert_eq!(
            workspace_path(Path::new(""), Path::new("workspace/junit.xml")),
            Some("junit.xml".into())
        );
        assert_eq!(
            workspace_path(Path::new("a"), Path::new("a/b/c.xml")),
            Some("a/b/c.xml".into())
        );
        assert_eq!(workspace_path(Path::new("a"), Path::new("a")), None);
        assert_eq!(workspace_path(Path::new("a"), Path::new("a/../../etc/passwd")), None);
    }

    #[test]
    fn a_link_on_the_way_in_dest_is_refused() {
        let data = archive(&[("reports/a.xml", tar::EntryType::Regular, b"<a/>")]);
        let dest = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("reports")).unwrap();
        let wanted: HashSet<PathBuf> = paths(&["reports/a.xml"]).into_iter().collect();
        let room = Room {
            file_cap: 64,
            sync_left: 64,
        };
        assert!(extract_wanted(data.as_slice(), dest.path(), Path::new("reports"), &wanted, room).is_err());
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
    }
}
