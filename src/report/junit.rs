//! JUnit: counts from the suite's own reports, or a report synthesized by pace when the
//! suite wrote none (so GitLab's and Bitbucket's test tabs always have something).

use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

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
/// when it has no `<testsuite>` children). Comments, CDATA and processing instructions
/// are not elements and count nothing. Malformed input counts what came before the
/// error, never panics.
pub fn parse_counts(xml: &str) -> JunitCounts {
    let mut suites = JunitCounts::default();
    let mut roots = JunitCounts::default();
    let mut found_suite = false;
    let mut reader = Reader::from_str(xml);
    // Runners write sloppy XML; a wrong closing tag must not hide the counts.
    reader.config_mut().check_end_names = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(tag) | Event::Empty(tag)) => match tag.name().as_ref() {
                b"testsuite" => {
                    found_suite = true;
                    suites.add(counts_of(&tag));
                }
                b"testsuites" => roots.add(counts_of(&tag)),
                _ => {}
            },
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if found_suite { suites } else { roots }
}

fn counts_of(tag: &BytesStart<'_>) -> JunitCounts {
    let attr = |name: &str| attr(tag, name);
    JunitCounts {
        tests: attr("tests"),
        failures: attr("failures"),
        errors: attr("errors"),
        skipped: attr("skipped").max(attr("disabled")),
    }
}

/// The attribute's integer value; 0 when it is missing or not a number.
fn attr(tag: &BytesStart<'_>, name: &str) -> u64 {
    let Ok(Some(value)) = tag.try_get_attribute(name) else {
        return 0;
    };
    let text = String::from_utf8_lossy(&value.value);
    // Some runners write floats ("3.0"); take the integer part.
    text.split('.').next().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// The most bytes of collected JUnit read into memory, per file and in all. A suite can
/// leave a sparse 2 GiB `junit.xml` (2 GiB of memory once read); real reports are far
/// smaller. A file beyond it is skipped and the gate report says so.
pub const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;

/// The suite's JUnit reports among the collected files, read within [`MAX_REPORT_BYTES`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reports {
    /// Each report's text (XML files with a `<testsuite` element), in the given order.
    pub texts: Vec<String>,
    /// One sentence per XML file that was not read, for the gate report.
    pub skipped: Vec<String>,
}

impl Reports {
    /// Counts over all reports; `None` when there is none.
    pub fn counts(&self) -> Option<JunitCounts> {
        let mut total = JunitCounts::default();
        for text in &self.texts {
            total.add(parse_counts(text));
        }
        (!self.texts.is_empty()).then_some(total)
    }
}

/// Reads the JUnit-looking XML files of `files`, skipping any that would take the bytes
/// read past [`MAX_REPORT_BYTES`] (the size is checked before reading, and the read is
/// bounded too, in case the file grows meanwhile).
pub fn read_reports(files: &[std::path::PathBuf]) -> Reports {
    let mut reports = Reports::default();
    let mut budget = MAX_REPORT_BYTES;
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "xml")) {
        let skipped = |size: u64| {
            format!(
                "JUnit report `{}` ({size} bytes) was not read: pace reads at most {} MiB of JUnit; the counts come from the other reports or the exit status",
                file.display(),
                MAX_REPORT_BYTES / (1024 * 1024)
            )
        };
        let Ok(handle) = std::fs::File::open(file) else {
            continue;
        };
        let size = handle.metadata().map_or(0, |m| m.len());
        if size > budget {
            reports.skipped.push(skipped(size));
            continue;
        }
        let mut bytes = Vec::new();
        if std::io::Read::read_to_end(&mut std::io::Read::take(handle, budget + 1), &mut bytes).is_err() {
            continue;
        }
        if bytes.len() as u64 > budget {
            reports.skipped.push(skipped(bytes.len() as u64));
            continue;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if text.contains("<testsuite") {
            budget -= bytes.len() as u64;
            reports.texts.push(text);
        }
    }
    reports
}

/// Counts over every collected JUnit-looking XML file (within [`MAX_REPORT_BYTES`]).
pub fn counts_in_files(files: &[std::path::PathBuf]) -> Option<JunitCounts> {
    read_reports(files).counts()
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
    fn commented_out_suites_count_nothing() {
        let xml = r#"<?xml version="1.0"?>
<!-- an old run: <testsuite tests="5" failures="5"> -->
<testsuites><testsuite name="a" tests="2" failures="1"><![CDATA[<testsuite tests="7">]]></testsuite></testsuites>"#;
        assert_eq!(
            parse_counts(xml),
            JunitCounts {
                tests: 2,
                failures: 1,
                errors: 0,
                skipped: 0
            }
        );
        // Only a comment: no suite, and no `<testsuites>` root to fall back to.
        assert_eq!(
            parse_counts(r#"<!-- <testsuite tests="5"/> -->"#),
            JunitCounts::default()
        );
    }

    #[test]
    fn nested_suites_and_sloppy_closing_tags_still_count() {
        let xml = r#"<testsuite tests="1" skipped="0" disabled="2"><testsuite tests="3" errors="1"></testcase></testsuite></testsuite>"#;
        assert_eq!(
            parse_counts(xml),
            JunitCounts {
                tests: 4,
                failures: 0,
                errors: 1,
                skipped: 2
            }
        );
    }

    #[test]
    fn an_oversized_report_is_skipped_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("junit-small.xml");
        std::fs::write(&small, r#"<testsuite tests="2" failures="1"/>"#).unwrap();
        // Sparse: 2 GiB on paper, nothing on disk; reading it would take 2 GiB of memory.
        let huge = dir.path().join("junit-huge.xml");
        let file = std::fs::File::create(&huge).unwrap();
        std::io::Write::write_all(&mut &file, br#"<testsuite tests="1000" failures="0">"#).unwrap();
        file.set_len(2 << 30).unwrap();
        let reports = read_reports(&[huge.clone(), small]);
        assert_eq!(reports.texts.len(), 1);
        assert_eq!(
            reports.counts(),
            Some(JunitCounts {
                tests: 2,
                failures: 1,
                errors: 0,
                skipped: 0
            })
        );
        assert_eq!(reports.skipped.len(), 1);
        assert!(
            reports.skipped[0].contains(&format!("`{}` (2147483648 bytes) was not read", huge.display())),
            "{:?}",
            reports.skipped
        );
        // Alone, it leaves no counts: GATE falls back to the exit status.
        assert_eq!(counts_in_files(&[huge]), None);
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
