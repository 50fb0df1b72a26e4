//! Bounded views of command output: head + tail with an omission marker, the capped
//! `gate/output.log` (and how it is opened), and the "looks like a failed network access"
//! detector.

use std::collections::VecDeque;
use std::io;
use std::path::Path;

/// Keeps the first `head_cap` and the last `tail_cap` bytes of a stream of any length.
#[derive(Debug)]
pub(crate) struct HeadTail {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    total: u64,
}

impl HeadTail {
    pub(crate) fn new(head_cap: usize, tail_cap: usize) -> Self {
        Self {
            head_cap,
            tail_cap,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut chunk: &[u8]) {
        self.total += chunk.len() as u64;
        if self.head.len() < self.head_cap {
            let take = (self.head_cap - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        if self.tail_cap == 0 || chunk.is_empty() {
            return;
        }
        if chunk.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&chunk[chunk.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + chunk.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(chunk);
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Bytes neither in the head nor in the tail.
    pub(crate) fn omitted(&self) -> u64 {
        self.total - self.head.len() as u64 - self.tail.len() as u64
    }

    /// The head and the tail as (lossy) strings.
    pub(crate) fn parts(&self) -> (String, String) {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        (
            String::from_utf8_lossy(&self.head).into_owned(),
            String::from_utf8_lossy(&tail).into_owned(),
        )
    }

    /// Head, an `[... N bytes omitted ...]` marker when something was cut, and tail.
    pub(crate) fn joined(&self) -> String {
        let (head, tail) = self.parts();
        match self.omitted() {
            0 => head + &tail,
            n => format!("{head}\n[... {n} bytes omitted ...]\n{tail}"),
        }
    }
}

/// `gate/output.log` within `sandbox.log_limit`: a suite printing 50 GB must not fill the
/// runner's disk. The first half of the limit goes to the file as it arrives; the last
/// half waits in a ring buffer (in memory) and is written by [`LogCap::ending`] after a
/// marker that says how much was left out and which key sets the limit. Output within the
/// limit is written whole, without a marker. A limit of 0 keeps everything.
#[derive(Debug)]
/// Redacts a byte stream line by line (a secret split across two chunks is still found):
/// complete lines go out redacted, the unfinished one waits, up to [`Self::MAX_PENDING`].
pub(crate) struct RedactLines {
    redactor: crate::redact::Redactor,
    pending: Vec<u8>,
}

impl RedactLines {
    /// A line longer than this is let through in pieces (each redacted).
    const MAX_PENDING: usize = 64 * 1024;

    pub(crate) fn new(redactor: crate::redact::Redactor) -> Self {
        Self {
            redactor,
            pending: Vec::new(),
        }
    }

    /// The redacted complete lines of what arrived so far.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.redactor.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let cut = match self.pending.iter().rposition(|b| *b == b'\n') {
            Some(i) if self.pending.len() > Self::MAX_PENDING => i + 1,
            // Base64 wrapped over lines is redacted whole (a secret can be cut by the
            // break): lines that may continue into the next chunk wait for it.
            Some(i) => held_blob_start(&self.pending[..=i]),
            None if self.pending.len() > Self::MAX_PENDING => self.pending.len(),
            None => return Vec::new(),
        };
        if cut == 0 {
            return Vec::new();
        }
        let ready: Vec<u8> = self.pending.drain(..cut).collect();
        self.redact(&ready)
    }

    /// Whatever is left (the last line without a newline).
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        self.redact(&rest)
    }

    fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.redactor.redact(text).into_bytes(),
            // Binary output: redacted as text, invalid bytes replaced (it is a log).
            Err(_) => self.redactor.redact(&String::from_utf8_lossy(bytes)).into_bytes(),
        }
    }
}

/// Where the trailing lines of `lines` (complete lines) that end in a run of at least 20
/// base64 characters begin: a wrapped blob that may go on in the next line.
fn held_blob_start(lines: &[u8]) -> usize {
    let is_base64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-' | b'=');
    let mut start = lines.len();
    for line in lines[..lines.len().saturating_sub(1)].rsplit(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().rev().take_while(|b| is_base64(b)).count() < 20 {
            break;
        }
        // The line and its newline.
        start -= line.len() + 1 + usize::from(lines[..start].ends_with(b"\r\n"));
    }
    start
}

pub(crate) struct LogCap {
    limit: u64,
    /// Bytes still to write straight through.
    head_left: u64,
    tail_cap: usize,
    tail: VecDeque<u8>,
    left_out: u64,
}

impl LogCap {
    pub(crate) fn new(limit: u64) -> Self {
        let head = limit / 2;
        Self {
            limit,
            head_left: head,
            tail_cap: usize::try_from(limit - head).unwrap_or(usize::MAX),
            tail: VecDeque::new(),
            left_out: 0,
        }
    }

    /// Takes the next chunk of output; returns the part to write to the file now.
    pub(crate) fn push<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        if self.limit == 0 {
            return chunk;
        }
        let now = usize::try_from(self.head_left).unwrap_or(usize::MAX).min(chunk.len());
        self.head_left -= now as u64;
        let (head, rest) = chunk.split_at(now);
        self.keep(rest);
        head
    }

    fn keep(&mut self, rest: &[u8]) {
        if rest.is_empty() {
            return;
        }
        if rest.len() >= self.tail_cap {
            self.left_out += (self.tail.len() + rest.len() - self.tail_cap) as u64;
            self.tail.clear();
            self.tail.extend(&rest[rest.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + rest.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.left_out += overflow as u64;
        self.tail.extend(rest);
    }

    /// Bytes that will not be in the file.
    pub(crate) fn left_out(&self) -> u64 {
        self.left_out
    }

    /// What follows the head in the file: the marker (when something was left out), then
    /// the tail in two slices.
    pub(crate) fn ending(&self) -> (Option<String>, (&[u8], &[u8])) {
        let marker = (self.left_out > 0).then(|| {
            format!(
                "\n[pace: {} of output omitted here; `sandbox.log_limit` ({}) keeps the first {} and the last {}]\n",
                size(self.left_out),
                size(self.limit),
                size(self.limit / 2),
                size(self.limit - self.limit / 2),
            )
        });
        (marker, self.tail.as_slices())
    }
}

/// `268435456` as `256 MiB`; sizes that are not whole KiB or MiB in bytes (exact counts
/// matter more than round numbers here).
fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else if bytes == 1 {
        "1 byte".to_string()
    } else {
        format!("{bytes} bytes")
    }
}

/// Creates `path` for a log, writing through no symbolic link under `repo` (see
/// [`crate::safe_write::create_own_file`]): a suite can leave links in the repository (bind
/// mode), and following one would let it overwrite any file the runner's user can write.
/// A `path` outside `repo` (tests, benchmarks) is created plainly.
pub(crate) fn create_log_file(repo: &Path, path: &Path) -> io::Result<std::fs::File> {
    if path.starts_with(repo) {
        return crate::safe_write::create_own_file(repo, path);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Output fragments of a command that tried to reach the network and could not.
const NETWORK_FAILURES: [&str; 7] = [
    "Could not resolve host",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "getaddrinfo",
    "ENOTFOUND",
    "dial tcp",
    "Connection refused",
];

/// Scans a stream chunk by chunk (matches across chunk boundaries too).
#[derive(Debug, Default)]
pub(crate) struct NetworkFailureScan {
    carry: Vec<u8>,
    found: bool,
}

impl NetworkFailureScan {
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        const KEEP: usize = 64;
        if self.found {
            return;
        }
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(chunk);
        self.found = NETWORK_FAILURES
            .iter()
            .any(|needle| contains(&window, needle.as_bytes()));
        let start = window.len().saturating_sub(KEEP);
        self.carry = window.split_off(start);
    }

    pub(crate) fn found(&self) -> bool {
        self.found
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The sentence shown when a sandboxed command without network failed on network access.
pub(crate) fn network_hint() -> String {
    "the sandbox has no network (`sandbox.network: none`) and the command seems to have tried to reach it; \
     vendor the dependencies into the repository or image, or set `sandbox.network: bridge` in pace.config.yaml"
        .to_string()
}

/// Splits what GATE's wrapper prints after the suite (its trailer: the workspace's file
/// listing, or why it could not unpack the workspace) off the container's stdout. The
/// trailer starts at a mark pace makes up for each run and hands the wrapper on its stdin,
/// so the mark is in no argument, exported variable or file the suite can read. Bytes that could be
/// the start of the mark are held back until the next chunk tells.
#[derive(Debug)]
pub(crate) struct TrailerSplit {
    mark: Vec<u8>,
    held: Vec<u8>,
    trailer: Option<Vec<u8>>,
    cap: usize,
    overflowed: bool,
}

impl TrailerSplit {
    /// `cap`: the most trailer bytes kept; more marks it [`Self::overflowed`].
    pub(crate) fn new(mark: &str, cap: usize) -> Self {
        Self {
            mark: mark.as_bytes().to_vec(),
            held: Vec::new(),
            trailer: None,
            cap,
            overflowed: false,
        }
    }

    /// The part of `chunk` (stdout) that belongs to the suite's output.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if let Some(trailer) = &mut self.trailer {
            let room = self.cap.saturating_sub(trailer.len());
            trailer.extend_from_slice(&chunk[..room.min(chunk.len())]);
            self.overflowed |= chunk.len() > room;
            return Vec::new();
        }
        let mut bytes = std::mem::take(&mut self.held);
        bytes.extend_from_slice(chunk);
        if let Some(at) = bytes.windows(self.mark.len()).position(|w| w == self.mark.as_slice()) {
            self.trailer = Some(Vec::new());
            let rest = bytes.split_off(at + self.mark.len());
            bytes.truncate(at);
            let _ = self.push(&rest);
            return bytes;
        }
        // The longest end of `bytes` that the mark starts with waits for the next chunk.
        let keep = (1..self.mark.len().min(bytes.len() + 1))
            .rev()
            .find(|n| bytes.ends_with(&self.mark[..*n]))
            .unwrap_or(0);
        self.held = bytes.split_off(bytes.len() - keep);
        bytes
    }

    /// Held-back bytes that turned out not to be the mark (the stream has ended).
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    /// What followed the mark; `None` when the wrapper printed none.
    pub(crate) fn trailer(&self) -> Option<&[u8]> {
        self.trailer.as_deref()
    }

    /// The trailer was longer than its cap (and is cut).
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_split_finds_the_mark_across_chunks_and_holds_back_only_its_prefix() {
        let mark = "MARKabcdef";
        let stream = b"suite out MARKnot it MARKabcdef listing\n12 /workspace/a\n";
        for size in 1..stream.len() {
            let mut split = TrailerSplit::new(mark, 1024);
            let mut log = Vec::new();
            for chunk in stream.chunks(size) {
                log.extend(split.push(chunk));
            }
            log.extend(split.finish());
            assert_eq!(log, b"suite out MARKnot it ", "chunks of {size}");
            assert_eq!(
                split.trailer(),
                Some(&b" listing\n12 /workspace/a\n"[..]),
                "chunks of {size}"
            );
        }
        // No mark: everything is output, also a held-back prefix at the end.
        let mut split = TrailerSplit::new(mark, 1024);
        let mut log = split.push(b"ends with MARKab");
        assert_eq!(log, b"ends with ");
        log.extend(split.finish());
        assert_eq!(log, b"ends with MARKab");
        assert_eq!(split.trailer(), None);
        // The trailer is capped.
        let mut split = TrailerSplit::new(mark, 4);
        assert!(split.push(b"MARKabcdef123456").is_empty());
        assert_eq!(split.trailer(), Some(&b"1234"[..]));
        assert!(split.overflowed());
    }

    #[test]
    fn head_tail_bounded_and_marked() {
        let mut ht = HeadTail::new(4, 4);
        for chunk in [&b"abc"[..], b"defgh", b"ij", b"klmnop"] {
            ht.push(chunk);
        }
        assert_eq!(ht.total(), 16);
        let (h, t) = ht.parts();
        assert_eq!(h, "abcd");
        assert_eq!(t, "mnop");
        assert_eq!(ht.omitted(), 8);
        assert_eq!(ht.joined(), "abcd\n[... 8 bytes omitted ...]\nmnop");
    }

    #[test]
    fn head_tail_short_output_is_whole() {
        let mut ht = HeadTail::new(4, 4);
        ht.push(b"abcdef");
        assert_eq!(ht.joined(), "abcdef");
    }

    /// The file `LogCap` produces for `chunks`.
    fn capped(limit: u64, chunks: &[&[u8]]) -> (Vec<u8>, u64) {
        let mut cap = LogCap::new(limit);
        let mut file = Vec::new();
        for chunk in chunks {
            file.extend_from_slice(cap.push(chunk));
        }
        let (marker, (a, b)) = cap.ending();
        file.extend_from_slice(marker.unwrap_or_default().as_bytes());
        file.extend_from_slice(a);
        file.extend_from_slice(b);
        (file, cap.left_out())
    }

    #[test]
    fn log_cap_keeps_head_marker_and_tail() {
        let (file, left_out) = capped(8, &[b"abc", b"defgh", b"ij", b"klmnop"]);
        assert_eq!(left_out, 8);
        assert_eq!(
            String::from_utf8(file).unwrap(),
            "abcd\n[pace: 8 bytes of output omitted here; `sandbox.log_limit` (8 bytes) keeps the first 4 bytes and the last 4 bytes]\nmnop"
        );
    }

    #[test]
    fn log_cap_exactly_at_the_limit_is_whole() {
        let chunks: [&[u8]; 3] = [b"abc", b"defg", b"h"];
        assert_eq!(capped(8, &chunks), (b"abcdefgh".to_vec(), 0));
        // One byte more: one byte left out, the marker says so.
        let (file, left_out) = capped(8, &[b"abc", b"defg", b"hi"]);
        assert_eq!(left_out, 1);
        let text = String::from_utf8(file).unwrap();
        assert!(
            text.starts_with("abcd\n[pace: 1 byte of output omitted here;"),
            "{text}"
        );
        assert!(text.ends_with("]\nfghi"), "{text}");
    }

    #[test]
    fn log_cap_smaller_than_one_chunk() {
        let chunk: Vec<u8> = (0..100u8).collect();
        let (file, left_out) = capped(4, &[&chunk]);
        assert_eq!(left_out, 96);
        assert_eq!(&file[..2], &[0, 1]);
        assert_eq!(&file[file.len() - 2..], &[98, 99]);
        assert!(String::from_utf8_lossy(&file).contains("[pace: 96 bytes of output omitted here;"));
        // A limit of 1: no head, a one-byte tail.
        let (file, left_out) = capped(1, &[&chunk, b"z"]);
        assert_eq!(left_out, 100);
        assert!(file.starts_with(b"\n[pace: 100 bytes"));
        assert!(file.ends_with(b"]\nz"));
    }

    #[test]
    fn log_cap_zero_keeps_everything() {
        let big = vec![b'x'; 10_000];
        assert_eq!(capped(0, &[&big, b"end"]).1, 0);
        assert_eq!(capped(0, &[&big, b"end"]).0.len(), 10_003);
    }

    #[test]
    fn log_cap_names_sizes() {
        let mut cap = LogCap::new(256 * 1024 * 1024);
        assert_eq!(cap.push(&[0; 1]), &[0]);
        assert!(cap.ending().0.is_none());
        assert_eq!(size(256 * 1024 * 1024), "256 MiB");
        assert_eq!(size(64 * 1024), "64 KiB");
        assert_eq!(size(1000), "1000 bytes");
    }

    #[test]
    fn redact_lines_finds_a_secret_split_across_chunks() {
        let mut lines = RedactLines::new(crate::redact::Redactor::new(vec!["s3cret-value-42".into()]));
        let mut out = lines.push(b"token: s3cret-");
        out.extend(lines.push(b"value-42\nnext line, then "));
        out.extend(lines.push(b"czNjcmV0LXZhbHVlLTQy"));
        out.extend(lines.finish());
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, "token: [REDACTED]\nnext line, then [REDACTED]");
        let mut open = RedactLines::new(crate::redact::Redactor::default());
        assert_eq!(open.push(b"no secrets, no waiting"), b"no secrets, no waiting");
    }

    #[test]
    fn redact_lines_finds_a_wrapped_base64_secret_whose_lines_arrive_apart() {
        use base64::Engine as _;
        let secret = "glpat-Zk9Q2vX8mN4pR7tY1wE3";
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}{secret}", "p".repeat(30)));
        let (first, second) = encoded.split_at(50);
        let mut lines = RedactLines::new(crate::redact::Redactor::new(vec![secret.into()]));
        let mut out = lines.push(format!("ok\r\ndata: {first}\r\n").as_bytes());
        assert_eq!(out, b"ok\r\n", "the line that may go on waits");
        out.extend(lines.push(format!("{second}\r\nafter\n").as_bytes()));
        out.extend(lines.finish());
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(REDACTED_MARK) && out.ends_with("after\n"), "{out}");
        assert!(!out.contains(&encoded[44..60]), "{out}");
    }

    const REDACTED_MARK: &str = crate::redact::REDACTED;

    #[test]
    fn log_file_is_created_through_no_link() {
        use std::os::unix::fs::symlink;
        let repo = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();

        // Missing directories are created; a file with another hard link (one elsewhere) is
        // refused, never truncated.
        let log = repo.path().join(".pace/day-1/gate/output.log");
        std::io::Write::write_all(&mut create_log_file(repo.path(), &log).unwrap(), b"one").unwrap();
        std::io::Write::write_all(&mut create_log_file(repo.path(), &log).unwrap(), b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "two");
        std::fs::remove_file(&log).unwrap();
        std::fs::hard_link(&victim, &log).unwrap();
        let err = create_log_file(repo.path(), &log).unwrap_err();
        assert!(err.to_string().contains("hard link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");

        // A link as the file itself.
        std::fs::remove_file(&log).unwrap();
        symlink(&victim, &log).unwrap();
        let err = create_log_file(repo.path(), &log).unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");

        // A link as a directory on the way (`.pace/day-2` -> outside).
        symlink(outside.path(), repo.path().join(".pace/day-2")).unwrap();
        let err = create_log_file(repo.path(), &repo.path().join(".pace/day-2/output.log")).unwrap_err();
        assert!(err.to_string().contains(".pace/day-2` is a symbolic link"), "{err}");
        assert!(!outside.path().join("output.log").exists());
    }

    #[test]
    fn network_scan_across_chunks() {
        let mut scan = NetworkFailureScan::default();
        scan.push(b"curl: (6) Could not res");
        assert!(!scan.found());
        scan.push(b"olve host: example.com");
        assert!(scan.found());
    }
}
