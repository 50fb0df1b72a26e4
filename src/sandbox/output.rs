//! Bounded views of command output: head + tail with an omission marker, and the
//! "looks like a failed network access" detector.

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
        if self.found {
            return;
        }
        const KEEP: usize = 64;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn network_scan_across_chunks() {
        let mut scan = NetworkFailureScan::default();
        scan.push(b"curl: (6) Could not res");
        assert!(!scan.found());
        scan.push(b"olve host: example.com");
        assert!(scan.found());
    }
}
