//! JUnit: counts from the suite's own reports, or a report synthesized by pace when the
//! suite wrote none (so GitLab's and Bitbucket's test tabs always have something).

use std::path::Path;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JunitCounts {
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
}

impl JunitCounts {
    pub fn add(&mut self, other: JunitCounts) {
        // Counts come from files the suite wrote: absurd values saturate, never overflow.
        self.tests = self.tests.saturating_add(other.tests);
        self.failures = self.failures.saturating_add(other.failures);
        self.errors = self.errors.saturating_add(other.errors);
        self.skipped = self.skipped.saturating_add(other.skipped);
    }
}

/// Sums the `<testsuite>` elements of one document (falls back to a `<testsuites>` root
/// when it has no `<testsuite>` children). Malformed input yields zero counts, never a panic.
pub fn parse_counts(xml: &str) -> JunitCounts {
    let mut total = JunitCounts::default();
    let mut found_suite = false;
    for tag in start_tags(xml, "testsuite") {
        found_suite = true;
        total.add(counts_of(tag));
    }
    if !found_suite {
        for tag in start_tags(xml, "testsuites") {
            total.add(counts_of(tag));
        }
    }
    total
}

fn start_tags<'a>(xml: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open_len = name.len() + 1;
    xml.match_indices('<').filter_map(move |(i, _)| {
        if !xml[i + 1..].starts_with(name) {
            return None;
        }
        let rest = &xml[i + open_len..];
        // `<testsuite` must not match `<testsuites`.
        let next = rest.chars().next()?;
        if !(next.is_whitespace() || next == '>' || next == '/') {
            return None;
        }
        let end = rest.find('>')?;
        Some(&rest[..end])
    })
}

fn counts_of(tag: &str) -> JunitCounts {
    JunitCounts {
        tests: attr(tag, "tests"),
        failures: attr(tag, "failures"),
        errors: attr(tag, "errors"),
        skipped: attr(tag, "skipped").max(attr(tag, "disabled")),
    }
}

fn attr(tag: &str, name: &str) -> u64 {
    let mut search = tag;
    while let Some(i) = search.find(name) {
        let before_ok = i == 0 || search.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = search[i + name.len()..].trim_start();
        if before_ok && let Some(rest) = rest.strip_prefix('=') {
            let rest = rest.trim_start();
            let quote = rest.chars().next().unwrap_or('"');
            let value: String = rest[quote.len_utf8().min(rest.len())..]
                .chars()
                .take_while(|c| *c != quote)
                .collect();
            // Some runners write floats ("3.0"); take the integer part.
            return value.split('.').next().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        }
        search = &search[i + name.len()..];
    }
    0
}

/// Counts over every collected JUnit-looking XML file.
pub fn counts_in_files(files: &[std::path::PathBuf]) -> Option<JunitCounts> {
    let mut total = JunitCounts::default();
    let mut any = false;
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "xml")) {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if text.contains("<testsuite") {
            any = true;
            total.add(parse_counts(&text));
        }
    }
    any.then_some(total)
}

fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A one-case report for a suite that wrote no JUnit: the test command passed or failed.
pub fn synthesize(command: &str, exit_code: i64, timed_out: bool, seconds: f64, tail: &str) -> String {
    let failed = exit_code != 0 || timed_out;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuite name=\"pace-gate\" tests=\"1\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\">\n",
        u8::from(failed)
    ));
    xml.push_str(&format!(
        "  <testcase classname=\"pace.gate\" name=\"{}\" time=\"{seconds:.3}\">\n",
        escape(command)
    ));
    if failed {
        let what = if timed_out {
            "timed out".to_string()
        } else {
            format!("exit code {exit_code}")
        };
        xml.push_str(&format!(
            "    <failure message=\"test command failed: {what}\">{}</failure>\n",
            escape(tail)
        ));
    }
    xml.push_str(&format!("    <system-out>{}</system-out>\n", escape(tail)));
    xml.push_str("  </testcase>\n</testsuite>\n");
    xml
}

/// Writes `gate/junit.xml` below `repo` without following links ([`crate::safe_write`]).
pub fn write_synthesized(repo: &Path, path: &Path, xml: &str) -> std::io::Result<()> {
    Ok(crate::safe_write::write(repo, path, xml.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_suites_and_ignores_testsuites_root() {
        let xml = r#"<testsuites tests="9"><testsuite name="a" tests="3" failures="1" errors="0" skipped="1"></testsuite>
            <testsuite name="b" tests='2' failures='0' errors='1'/></testsuites>"#;
        assert_eq!(
            parse_counts(xml),
            JunitCounts {
                tests: 5,
                failures: 1,
                errors: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn malformed_is_zero_not_panic() {
        for xml in [
            "<testsuite",
            "<testsuite tests=",
            "<testsuite tests=\"x\">",
            "",
            "<testsuite tests=\"3.0\" failures=\"1\">",
        ] {
            let _ = parse_counts(xml);
        }
        assert_eq!(parse_counts("<testsuite tests=\"3.0\" failures=\"1\">").tests, 3);
    }

    #[test]
    fn synthesized_report_round_trips() {
        let xml = synthesize("make test & <x>", 1, false, 1.5, "FAIL: x");
        assert_eq!(
            parse_counts(&xml),
            JunitCounts {
                tests: 1,
                failures: 1,
                errors: 0,
                skipped: 0
            }
        );
        assert!(xml.contains("make test &amp; &lt;x&gt;"));
    }
}
