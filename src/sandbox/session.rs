//! FORGE sessions: one long-lived container per attempt, `docker exec` per command, and an
//! incremental two-way sync of the writable directories whose cost follows what changed.
//!
//! Each command runs inside a wrapper script (one exec) that, in the container, lists the
//! writable directories (inode, size, ctime, mtime: a write with a backdated mtime still
//! changes the ctime) before and after the command and prints only the differences, plus
//! whether the command left processes behind. What changed comes back in one tar stream
//! (`tar -c` of exactly those paths, streamed from a second exec) and is written into the
//! repository through the return-path policy ([`crate::boundary`]): nothing else on the
//! runner is ever touched, and what is refused is reported.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::container::LogOutput;
use futures_util::StreamExt;

use super::container::{self, Sandbox};
use super::docker::{DockerClient, Frames};
use super::guard::ContainerGuard;
use super::output::HeadTail;
use super::spec::{Role, WORKSPACE};
use super::workspace::{self, Manifest, PackPlan};
use super::writeback;
use super::{EXEC_OUTPUT_CAP, ExecOutcome, SandboxError};
use crate::boundary::{self, Boundary, Origin, Refusal, Refused, SyncBudget};

/// Marks the start of the wrapper's report on its stdout (the command's own output goes to
/// stderr). A command can forge a report; that only makes pace fetch or skip paths, and
/// everything fetched still passes the policy.
const REPORT_MARK: &str = "\u{1}PACE-REPORT";

/// The wrapper: `$1` the command (empty: report only), `$2` how many paths to delete first,
/// `$3` which listing (`A`/`B`) is the baseline, `$4` `1` to list the baseline afresh (`0`:
/// the last command's listing still holds, nothing was synced in since), then the paths to
/// delete, then the writable directories to watch. POSIX sh plus find, stat and
/// awk, so busybox images work.
// (One awk reads the four listings, telling them apart by FILENAME, not NR==FNR: an empty
// listing would make the next one count as the first.)
const WRAPPER: &str = r#"cmd=$1; ndel=$2; base=$3; fresh=$4; shift 4
cd /workspace || exit 97
for t in find stat awk tar; do
  command -v "$t" >/dev/null 2>&1 || { echo "the sandbox image has no \`$t\` (FORGE's sessions need find, stat, awk and tar): use an image with them, e.g. busybox or a Debian-based one" >&2; exit 96; }
done
while [ "$ndel" -gt 0 ]; do rm -f -- "./$1"; shift; ndel=$((ndel-1)); done
S=/workspace/.pace
[ -d "$S" ] || mkdir -p "$S" 2>/dev/null
NL='
'
pace_list() { find "$@" -path ./.pace -prune -o ! -type d ! -name "*$NL*" -exec stat -c '%i/%s/%z/%y/%n' {} + 2>/dev/null; }
pace_outside() {
  for d in "$@"; do [ "$d" = . ] && return; done
  for d in "$@"; do set -- "$@" -path "./$d" -prune -o; shift; done
  find . -path ./.pace -prune -o "$@" ! -type d -newer "$S/started" -exec stat -c '%i/%s/%z/%y/%n' {} + 2>/dev/null | head -n 500
}
status=0
if [ "$base" = A ]; then next=B; else next=A; fi
if [ -n "$cmd" ]; then
  touch -d "@$(( $(date +%s) - 2 ))" "$S/started" 2>/dev/null || touch "$S/started"
  if [ "$fresh" = 1 ] || [ ! -f "$S/list.$base" ] || [ ! -f "$S/outside.$base" ]; then
    pace_list "$@" > "$S/list.$base"
    pace_outside "$@" > "$S/outside.$base"
  fi
  /bin/sh -c "$cmd" 1>&2 </dev/null
  status=$?
fi
pace_list "$@" > "$S/list.$next"
pace_outside "$@" > "$S/outside.$next"
printf '\001PACE-REPORT\nstatus %s\n' "$status"
awk 'function name(l,  i) { for (i = 0; i < 4; i++) l = substr(l, index(l, "/") + 1); return l }
  FILENAME == ARGV[1] { b[$0] = 1; bn[name($0)] = 1; next }
  FILENAME == ARGV[2] { an[name($0)] = 1; if (!($0 in b)) ch[++nc] = $0; next }
  FILENAME == ARGV[3] { ob[$0] = 1; next }
  !($0 in ob) { out[++no] = $0 }
  END {
    print "changed"; for (i = 1; i <= nc; i++) print ch[i]
    print "deleted"; for (l in bn) if (!(l in an)) print l
    print "outside"; for (i = 1; i <= no; i++) print out[i]
  }' "$S/list.$base" "$S/list.$next" "$S/outside.$base" "$S/outside.$next"
echo newlines
find "$@" -path ./.pace -prune -o -name "*$NL*" -print0 2>/dev/null | head -c 65536
exit "$status"
"#;

pub struct ExecSession {
    docker: DockerClient,
    guard: Option<ContainerGuard>,
    repo: PathBuf,
    bind: bool,
    owner: Option<(u64, u64)>,
    boundary: Boundary,
    /// Stamps of the files in the writable directories on the host, as last synced.
    host: Manifest,
    /// The writable directories that exist, as `find` start points (`.` for the whole tree).
    watched: Vec<String>,
    /// Everything refused in this session so far (the day lists it).
    refused: Vec<Refused>,
    /// Bind mode: the checkout after the last command was policed.
    bind_baseline: Option<writeback::BindSnapshot>,
    /// Processes of the idle container (init and its `sleep`), as the daemon counts them.
    idle_processes: usize,
    /// Which of the wrapper's two listings (`A`/`B`) the last command closed with.
    latest: Option<char>,
    /// `sandbox.network: none`: a failed command that adds a dependency gets advice.
    offline: bool,
}

pub(super) async fn start(sandbox: &Sandbox, repo: &Path) -> Result<ExecSession, SandboxError> {
    let boundary = sandbox.ctx.boundary.clone();
    let watched = watched_dirs(repo, &boundary);
    // The host's stamps are taken before the workspace is packed: the session may start
    // while other agents still write (it overlaps PRIME), and a file written after this
    // scan differs from its stamp, so the next command's sync sends it again. Taken after,
    // such a write would be missed.
    let host = writeback::scan_dirs(repo, &watched).map_err(|source| ws_err(repo, source))?;
    // The workspace goes in on the container's stdin where the image can unpack it, else
    // through the archive API.
    let guard = match sandbox.launch_session_unpacked(repo).await? {
        Some(guard) => guard,
        None => {
            let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), "sleep 2147483647".to_string()];
            sandbox.launch(Role::Forge, cmd, repo).await?.0
        }
    };
    tracing::debug!(container = %guard.name, files = host.len(), "sandbox: FORGE session started");
    // The set-up phase's workspace outputs, linked before the first command's listing so
    // that they count as unchanged (and the listing does not descend into them).
    if let Some(prepared) = sandbox.prepared().filter(|p| p.link && !guard.bind) {
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            super::setup::link_script(&prepared.dir),
        ];
        let mut said = HeadTail::new(1024, 1024);
        let code = run_exec(&sandbox.docker, &guard.id, cmd, &mut |out| {
            said.push(&out.clone().into_bytes());
        })
        .await?;
        if code != 0 {
            tracing::warn!(code, output = %said.joined(), "sandbox: linking the set-up's outputs into the FORGE session failed");
        }
    }
    let idle_processes = process_count(&sandbox.docker, &guard.id).await.unwrap_or(usize::MAX);
    Ok(ExecSession {
        docker: sandbox.docker.clone(),
        owner: sandbox.owner(),
        bind: guard.bind,
        guard: Some(guard),
        repo: repo.to_path_buf(),
        boundary,
        host,
        watched,
        refused: Vec::new(),
        bind_baseline: None,
        idle_processes,
        latest: None,
        offline: sandbox.ctx.settings.network == crate::config::settings::NetworkMode::None,
    })
}

/// The writable directories that exist in the repository, as relative `find` start points.
fn watched_dirs(repo: &Path, boundary: &Boundary) -> Vec<String> {
    boundary
        .writable()
        .iter()
        .map(|d| if d.is_empty() { ".".to_string() } else { d.clone() })
        .filter(|d| std::fs::symlink_metadata(repo.join(d)).is_ok_and(|m| m.is_dir()))
        .collect()
}

fn ws_err(repo: &Path, source: std::io::Error) -> SandboxError {
    SandboxError::Workspace {
        path: repo.to_path_buf(),
        source,
    }
}

/// Which of the wrapper's two listings is a command's baseline, and whether it must be made
/// afresh; the closing listing goes to the other one.
#[derive(Debug, Clone, Copy)]
struct Listing {
    base: char,
    fresh: bool,
}

impl Listing {
    fn next(self) -> char {
        if self.base == 'A' { 'B' } else { 'A' }
    }
}

/// What the wrapper reported after a command.
#[derive(Debug, Default)]
struct Report {
    status: i64,
    /// `(size, path)` of files new or changed in the writable directories.
    changed: Vec<(u64, String)>,
    deleted: Vec<String>,
    /// Files changed outside the writable directories (never brought back, reported).
    outside: Vec<String>,
    /// Names containing a newline (never brought back).
    newline_names: Vec<String>,
}

impl Report {
    /// Parses the wrapper's stdout (`None` when it holds no report: the wrapper was killed).
    fn parse(stdout: &[u8]) -> Option<Self> {
        let start = find_last(stdout, REPORT_MARK.as_bytes())?;
        let body = &stdout[start + REPORT_MARK.len()..];
        let (text, nul_part) = match find_last(body, b"\nnewlines\n") {
            Some(i) => (&body[..i], &body[i + "\nnewlines\n".len()..]),
            None => (body, &b""[..]),
        };
        let text = String::from_utf8_lossy(text);
        let mut report = Report::default();
        let mut section = "";
        for line in text.lines() {
            match line {
                "changed" => section = "changed",
                "deleted" => section = "deleted",
                "outside" => section = "outside",
                _ if section.is_empty() => {
                    if let Some(s) = line.strip_prefix("status ") {
                        report.status = s.trim().parse().unwrap_or(-1);
                    }
                }
                _ if section == "changed" || section == "outside" => {
                    let mut fields = line.splitn(5, '/');
                    let (_inode, size, _c, _m) = (fields.next(), fields.next(), fields.next(), fields.next());
                    if let (Some(size), Some(name)) = (size.and_then(|s| s.parse().ok()), fields.next()) {
                        if section == "changed" {
                            report.changed.push((size, strip_dot(name)));
                        } else {
                            report.outside.push(strip_dot(name));
                        }
                    }
                }
                _ => report.deleted.push(strip_dot(line)),
            }
        }
        report.newline_names = nul_part
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| strip_dot(&String::from_utf8_lossy(s)))
            .collect();
        Some(report)
    }
}

/// The last `cap` bytes of a stream: the wrapper's stdout, which the command can also
/// write to (through `/proc`), must not grow pace's memory without bound. The report comes
/// last, so the tail is what matters.
struct Tail {
    cap: usize,
    bytes: Vec<u8>,
}

impl Tail {
    /// Room for a report of the largest sync (10,000 paths of ~100 bytes) and then some.
    const REPORT_CAP: usize = 16 * 1024 * 1024;

    fn new() -> Self {
        Self {
            cap: Self::REPORT_CAP,
            bytes: Vec::new(),
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        if chunk.len() >= self.cap {
            self.bytes.clear();
            self.bytes.extend_from_slice(&chunk[chunk.len() - self.cap..]);
            return;
        }
        let over = (self.bytes.len() + chunk.len()).saturating_sub(self.cap);
        if over > 0 {
            self.bytes.drain(..over);
        }
        self.bytes.extend_from_slice(chunk);
    }
}

fn strip_dot(name: &str) -> String {
    name.strip_prefix("./").unwrap_or(name).to_string()
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

impl ExecSession {
    fn id(&self) -> &str {
        self.guard.as_ref().map_or("", |g| g.id.as_str())
    }

    /// The container's name (for logs and `sandbox.keep`).
    pub fn container_name(&self) -> &str {
        self.guard.as_ref().map_or("", |g| g.name.as_str())
    }

    /// Runs `/bin/sh -c command` in `/workspace` after syncing the repository files that
    /// changed since the last call, then brings what the command changed back into the
    /// repository through the return-path policy.
    pub async fn exec(&mut self, command: &str, timeout: Duration) -> Result<ExecOutcome, SandboxError> {
        if self.bind {
            return self.exec_bind(command, timeout).await;
        }
        let (deleted_on_host, synced) = self.sync_in().await?;
        // The last command's closing listing is this one's baseline unless something was
        // synced in since (or there is none yet): then the wrapper lists afresh.
        let listing = Listing {
            base: self.latest.unwrap_or('A'),
            fresh: synced || self.latest.is_none(),
        };
        self.latest = Some(listing.next());

        let mut view = HeadTail::new(EXEC_OUTPUT_CAP / 2, EXEC_OUTPUT_CAP / 2);
        let (report, timed_out) = self
            .run_wrapped(command, &deleted_on_host, listing, timeout, &mut view)
            .await?;
        // A command that left processes behind (a server, a fork bomb holding every pid)
        // would starve the next one: each `run` is self-contained, so they are stopped. The
        // daemon is asked while the changes come back (a leftover process writing meanwhile
        // only adds files that still pass the policy).
        let mut refused = Vec::new();
        let (docker, id, idle) = (self.docker.clone(), self.id().to_string(), self.idle_processes);
        let (left, changed) = tokio::join!(
            async move { !timed_out && process_count(&docker, &id).await.is_none_or(|n| n > idle) },
            self.sync_out(&report, &mut refused)
        );
        let changed = changed?;
        if left {
            tracing::debug!(
                container = self.id(),
                "sandbox: the command left processes running; restarting"
            );
            self.restart().await?;
            view.push(b"\n[pace: processes the command left running were stopped]\n");
        }
        self.report_outside_writes(&report, &mut refused);
        self.refused.extend(refused.iter().cloned());
        if self.offline
            && report.status != 0
            && let Some(advice) = super::setup::dependency_advice(command)
        {
            view.push(format!("\n[pace: {advice}]\n").as_bytes());
        }
        Ok(ExecOutcome {
            exit_code: report.status,
            timed_out,
            output: view.joined(),
            changed,
            refused,
        })
    }

    /// The wrapper for `command` within `timeout`, and its report: after a timeout, or when
    /// the wrapper could not finish, the command's processes are stopped and the changes
    /// listed on their own. True when it timed out.
    async fn run_wrapped(
        &self,
        command: &str,
        deletions: &[String],
        listing: Listing,
        timeout: Duration,
        view: &mut HeadTail,
    ) -> Result<(Report, bool), SandboxError> {
        let ran = tokio::time::timeout(timeout, self.wrapper_into(command, deletions, listing, view)).await;
        let (report, timed_out) = match ran {
            Ok(result) => (result?, false),
            Err(_) => {
                self.restart().await?;
                view.push(
                    format!(
                        "\n[pace: the command timed out after {} s and was killed]\n",
                        timeout.as_secs()
                    )
                    .as_bytes(),
                );
                (None, true)
            }
        };
        let report = match report {
            Some(r) => r,
            // Timed out, or the wrapper could not finish (killed, or a fork bomb holds every
            // pid): stop whatever the command left, then list once more on its own.
            None => {
                if !timed_out {
                    self.restart().await?;
                    view.push(b"\n[pace: the command's processes were stopped]\n");
                }
                self.ensure_running().await?;
                let mut again = self.wrapper(listing).await?;
                again.status = if timed_out { 137 } else { -1 };
                again
            }
        };
        Ok((report, timed_out))
    }

    /// Runs the wrapper for `command` with the output shown to the model in `view`; the
    /// report is `None` when the wrapper did not get to print it.
    async fn wrapper_into(
        &self,
        command: &str,
        deletions: &[String],
        listing: Listing,
        view: &mut HeadTail,
    ) -> Result<Option<Report>, SandboxError> {
        let mut stdout = Tail::new();
        run_exec(
            &self.docker,
            self.id(),
            self.wrapper_cmd(command, deletions, listing),
            &mut |out| match out {
                LogOutput::StdOut { message } => stdout.push(message),
                other => view.push(&other.clone().into_bytes()),
            },
        )
        .await?;
        Ok(Report::parse(&stdout.bytes))
    }

    /// The wrapper without a command: the closing listing against `listing`'s baseline and
    /// the report alone.
    async fn wrapper(&self, listing: Listing) -> Result<Report, SandboxError> {
        let mut sink = HeadTail::new(1024, 1024);
        self.wrapper_into("", &[], listing, &mut sink).await?.ok_or_else(|| {
            ws_err(
                &self.repo,
                std::io::Error::other(format!(
                    "listing the workspace in the container failed: {}",
                    sink.joined().trim()
                )),
            )
        })
    }

    fn wrapper_cmd(&self, command: &str, deletions: &[String], listing: Listing) -> Vec<String> {
        let mut cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            WRAPPER.to_string(),
            "pace-run".to_string(),
            command.to_string(),
            deletions.len().to_string(),
            listing.base.to_string(),
            if listing.fresh { "1" } else { "0" }.to_string(),
        ];
        cmd.extend(deletions.iter().cloned());
        cmd.extend(self.watched.iter().cloned());
        cmd
    }

    /// Uploads what FORGE's tools changed in the writable directories since the last sync;
    /// returns what they deleted (the wrapper removes it before the command) and whether
    /// anything changed in the container.
    async fn sync_in(&mut self) -> Result<(Vec<String>, bool), SandboxError> {
        let current = writeback::scan_dirs(&self.repo, &self.watched).map_err(|source| ws_err(&self.repo, source))?;
        let changed: Vec<PathBuf> = current
            .iter()
            .filter(|(p, s)| self.host.get(*p) != Some(*s))
            .map(|(p, _)| p.clone())
            .collect();
        let removed: Vec<String> = self
            .host
            .keys()
            .filter(|p| !current.contains_key(*p))
            .filter_map(|p| boundary::rel_string(p))
            .collect();
        if !changed.is_empty() {
            let plan = PackPlan {
                repo: self.repo.clone(),
                files: changed.clone(),
                owner: self.owner,
                stamp_mtime: None,
            };
            container::upload(&self.docker, self.id(), plan).await?;
            tracing::debug!(count = changed.len(), "sandbox: changed files uploaded");
        }
        self.host = current;
        let synced = !changed.is_empty() || !removed.is_empty();
        Ok((removed, synced))
    }

    /// Brings the reported changes back: refused paths are listed, the rest streamed in one
    /// archive and written through the policy; deletions are applied.
    async fn sync_out(&mut self, report: &Report, refused: &mut Vec<Refused>) -> Result<Vec<PathBuf>, SandboxError> {
        let mut seen_prefixes = BTreeSet::new();
        let mut refuse = |path: &str, why: &Refusal, refused: &mut Vec<Refused>| {
            // A refused directory (`src/lib/.git`) is listed once, not once per file.
            let shown =
                boundary::refused_prefix(path).map_or_else(|| path.to_string(), |p| p.to_string_lossy().into_owned());
            if seen_prefixes.insert(shown.clone()) {
                refused.push(Refused::new(shown, why, Origin::Run));
            }
        };
        for name in &report.newline_names {
            refuse(name, &Refusal::BadName, refused);
        }
        let ignored = self.ignored_new_files(report);
        let mut budget = SyncBudget::new(self.boundary.limits);
        let mut wanted = Vec::new();
        for (size, path) in &report.changed {
            let verdict = self
                .boundary
                .check_path(path)
                .and_then(|()| self.boundary.check_size(*size))
                .and_then(|()| budget.take(*size));
            match verdict {
                // New files git ignores are build output, not work: left in the container.
                Ok(()) if ignored.contains(Path::new(path)) => {}
                Ok(()) => wanted.push(path.clone()),
                Err(why) => refuse(path, &why, refused),
            }
        }
        let mut changed = Vec::new();
        if !wanted.is_empty() {
            let fetched = self.fetch(&wanted).await?;
            for (path, result) in fetched {
                match result {
                    Ok(true) => changed.push(PathBuf::from(&path)),
                    Ok(false) => {}
                    Err(why) => refuse(&path, &why, refused),
                }
            }
        }
        for path in &report.deleted {
            if self.boundary.check_path(path).is_err() {
                continue;
            }
            match workspace::delete(&self.repo, Path::new(path)) {
                Ok(true) => changed.push(PathBuf::from(path)),
                Ok(false) => {}
                Err(e) => tracing::warn!(path, error = %e, "sandbox: cannot delete a file the command deleted"),
            }
        }
        self.restamp(&changed);
        changed.sort();
        changed.dedup();
        Ok(changed)
    }

    /// The files `report` names as changed that are new to the host and that git ignores.
    fn ignored_new_files(&self, report: &Report) -> std::collections::HashSet<PathBuf> {
        let unknown: Vec<PathBuf> = report
            .changed
            .iter()
            .map(|(_, p)| PathBuf::from(p))
            .filter(|p| !self.host.contains_key(p))
            // Only paths the policy could accept reach git (a forged `../x` must not).
            .filter(|p| boundary::rel_string(p).is_some_and(|r| self.boundary.check_path(&r).is_ok()))
            .collect();
        workspace::ignored(&self.repo, &unknown).unwrap_or_else(|e| {
            // A path git refuses to look at (beyond a link) is simply not ignored; the
            // write-back refuses what goes through links.
            tracing::debug!(error = %e, "sandbox: git check-ignore failed; treating the paths as not ignored");
            std::collections::HashSet::default()
        })
    }

    /// What was written or deleted is now the host's state: not uploaded again.
    fn restamp(&mut self, changed: &[PathBuf]) {
        for path in changed {
            match workspace::stamp(&self.repo, path) {
                Ok(Some(s)) => {
                    self.host.insert(path.clone(), s);
                }
                _ => {
                    self.host.remove(path);
                }
            }
        }
    }

    /// Streams `tar -c` of `paths` out of the container and writes each entry through the
    /// policy. Returns each path with whether it was written (`false`: same contents).
    async fn fetch(&self, paths: &[String]) -> Result<Vec<(String, Result<bool, Refusal>)>, SandboxError> {
        let mut results = Vec::new();
        let mut budget = Some(SyncBudget::new(self.boundary.limits));
        // Batches keep the argument list well under the kernel's limit.
        for batch in paths.chunks(500) {
            let mut cmd = vec!["tar".to_string(), "-cf".to_string(), "-".to_string(), "--".to_string()];
            cmd.extend(batch.iter().cloned());
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
            let (repo, boundary) = (self.repo.clone(), self.boundary.clone());
            let stream =
                futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
            let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(Box::pin(stream)));
            let mut batch_budget = budget.take().unwrap_or_else(|| SyncBudget::new(boundary.limits));
            let writer = tokio::task::spawn_blocking(move || {
                let written = writeback::write_back_archive(reader, &repo, &boundary, &mut batch_budget);
                (written, batch_budget)
            });
            let mut stderr = Vec::new();
            let (_, mut output) = start_exec(&self.docker, self.id(), cmd).await?;
            while let Some(frame) = output.next().await {
                match frame? {
                    LogOutput::StdOut { message } => {
                        // The extractor stopped reading (an error): it says why below.
                        let stopped = tx.send(Ok(message)).await.is_err();
                        if stopped {
                            break;
                        }
                    }
                    // tar's complaints are for the debug log: a planted `tar` may flood them.
                    LogOutput::StdErr { message } if stderr.len() < 64 * 1024 => stderr.extend_from_slice(&message),
                    _ => {}
                }
            }
            drop(tx);
            let (written, left) = writer
                .await
                .map_err(|e| ws_err(&self.repo, std::io::Error::other(e.to_string())))?;
            budget = Some(left);
            if !stderr.is_empty() {
                tracing::debug!(stderr = %String::from_utf8_lossy(&stderr), "sandbox: tar in the container");
            }
            results.extend(written.map_err(|source| ws_err(&self.repo, source))?);
        }
        Ok(results)
    }

    /// Reports files the command wrote outside the writable directories (never brought
    /// back). Git-ignored ones (build output) are left out.
    fn report_outside_writes(&self, report: &Report, refused: &mut Vec<Refused>) {
        if report.outside.is_empty() {
            return;
        }
        let as_paths: Vec<PathBuf> = report.outside.iter().map(PathBuf::from).collect();
        let ignored = workspace::ignored(&self.repo, &as_paths).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for path in &report.outside {
            if ignored.contains(Path::new(path)) {
                continue;
            }
            let why = self
                .boundary
                .check_path(path)
                .err()
                .unwrap_or_else(|| Refusal::NotWritable(self.boundary.describe_writable()));
            let shown =
                boundary::refused_prefix(path).map_or_else(|| path.clone(), |p| p.to_string_lossy().into_owned());
            if seen.insert(shown.clone()) {
                refused.push(Refused::new(shown, &why, Origin::Run));
            }
        }
    }

    /// Bind mode: the container writes the repository directly; what it changed passes the
    /// policy afterwards (refused changes are undone) and is reported.
    async fn exec_bind(&mut self, command: &str, timeout: Duration) -> Result<ExecOutcome, SandboxError> {
        let mut view = HeadTail::new(EXEC_OUTPUT_CAP / 2, EXEC_OUTPUT_CAP / 2);
        let cmd = vec!["/bin/sh".to_string(), "-c".to_string(), command.to_string()];
        // The baseline is the checkout as the last command left it (after its refused
        // changes were undone), so a write between commands is policed too.
        let before = match self.bind_baseline.take() {
            Some(b) => b,
            None => writeback::BindSnapshot::take(&self.repo).map_err(|source| ws_err(&self.repo, source))?,
        };
        let ran = tokio::time::timeout(
            timeout,
            run_exec(&self.docker, self.id(), cmd, &mut |out| {
                view.push(&out.clone().into_bytes());
            }),
        )
        .await;
        let (exit_code, timed_out) = match ran {
            Ok(result) => {
                let code = result?;
                // Processes left behind could write the checkout after it is policed: they
                // are stopped first (the daemon counts them; the command cannot forge that).
                if self.left_processes().await {
                    self.restart().await?;
                    view.push(b"\n[pace: processes the command left running were stopped]\n");
                }
                (code, false)
            }
            Err(_) => {
                self.restart().await?;
                view.push(
                    format!(
                        "\n[pace: the command timed out after {} s and was killed]\n",
                        timeout.as_secs()
                    )
                    .as_bytes(),
                );
                (137, true)
            }
        };
        let (changed, refused) = before
            .enforce(&self.repo, &self.boundary, Origin::Run)
            .map_err(|source| ws_err(&self.repo, source))?;
        self.bind_baseline =
            Some(writeback::BindSnapshot::take(&self.repo).map_err(|source| ws_err(&self.repo, source))?);
        self.refused.extend(refused.iter().cloned());
        Ok(ExecOutcome {
            exit_code,
            timed_out,
            output: view.joined(),
            changed,
            refused,
        })
    }

    /// Starts the container again if a command stopped it (`kill 1`).
    async fn ensure_running(&self) -> Result<(), SandboxError> {
        let running = self
            .docker
            .state(self.id())
            .await
            .ok()
            .flatten()
            .and_then(|s| s.running)
            .unwrap_or(false);
        if running {
            return Ok(());
        }
        self.docker.restart(self.id()).await
    }

    /// Whether processes other than the idle container's own are running. Asked of the
    /// daemon, not the wrapper: the command can forge the wrapper's report.
    async fn left_processes(&self) -> bool {
        match process_count(&self.docker, self.id()).await {
            Some(n) => n > self.idle_processes,
            // Unknown: stop whatever may be there (the safe side).
            None => true,
        }
    }

    /// Bind mode, at the end of the attempt: stops the container and polices the checkout
    /// once more, so nothing a process wrote after the last command's check escapes it.
    /// Call before FORGE's work is committed; what is refused joins [`Self::take_refused`].
    pub async fn finish(&mut self) -> Result<(), SandboxError> {
        if !self.bind {
            return Ok(());
        }
        self.docker.kill(self.id()).await;
        let _ = self.docker.wait(self.id()).await;
        let Some(before) = self.bind_baseline.take() else {
            return Ok(());
        };
        let (_, refused) = before
            .enforce(&self.repo, &self.boundary, Origin::Run)
            .map_err(|source| ws_err(&self.repo, source))?;
        self.refused.extend(refused);
        Ok(())
    }

    /// Kills every process of the session (by killing the container) and starts it again;
    /// `/workspace` lives on the container's volume and survives.
    async fn restart(&self) -> Result<(), SandboxError> {
        let id = self.id();
        tracing::debug!(container = id, "sandbox: restarting the session container");
        self.docker.kill(id).await;
        let _ = self.docker.wait(id).await;
        self.docker.restart(id).await
    }

    /// What this session refused so far, handed over once (the day records it).
    pub fn take_refused(&mut self) -> Vec<Refused> {
        std::mem::take(&mut self.refused)
    }

    /// Stops and removes the container (unless `sandbox.keep`).
    pub async fn close(mut self) -> Result<(), SandboxError> {
        match self.guard.take() {
            Some(guard) => guard.remove().await,
            None => Ok(()),
        }
    }
}

/// The container's processes as the daemon lists them (`docker top`).
async fn process_count(docker: &DockerClient, id: &str) -> Option<usize> {
    docker.process_count(id).await.ok()
}

/// Starts `cmd` in `/workspace` and returns the exec's id and its output frames.
async fn start_exec(docker: &DockerClient, id: &str, cmd: Vec<String>) -> Result<(String, Frames), SandboxError> {
    docker.exec(id, cmd, WORKSPACE).await
}

/// Runs `cmd` in `/workspace` of the container, feeding its output frames to `sink`;
/// returns the exit code.
async fn run_exec(
    docker: &DockerClient,
    id: &str,
    cmd: Vec<String>,
    sink: &mut (dyn FnMut(&LogOutput) + Send),
) -> Result<i64, SandboxError> {
    let (exec_id, mut output) = start_exec(docker, id, cmd).await?;
    while let Some(chunk) = output.next().await {
        sink(&chunk?);
    }
    // The stream ends as the process exits; the exit code may lag a moment behind.
    for _ in 0..100 {
        let (running, exit_code) = docker.exec_state(id, &exec_id).await?;
        if !running {
            return Ok(exit_code.unwrap_or(-1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_parsing() {
        let mut out = b"noise from a forged channel\n".to_vec();
        out.extend_from_slice(
            "\u{1}PACE-REPORT\nstatus 3\nchanged\n12/5/2026-12-02 03:00:00.1 +0000/2026-12-02 03:00:00.1 +0000/src/a b.rs\n13/7/x/y/./src/.git/config\ndeleted\n./src/gone.rs\nnewlines\nsrc/a\nb\0"
                .as_bytes(),
        );
        let r = Report::parse(&out).unwrap();
        assert_eq!(r.status, 3);
        assert_eq!(
            r.changed,
            vec![(5, "src/a b.rs".to_string()), (7, "src/.git/config".to_string())]
        );
        assert_eq!(r.deleted, vec!["src/gone.rs"]);
        assert_eq!(r.newline_names, vec!["src/a\nb"]);
        assert!(Report::parse(b"no report").is_none());
    }
}
