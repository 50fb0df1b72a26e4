//! The progress of a run for people, on stderr (stdout stays for data): one line per
//! agent start and finish with duration, tokens and cost. The day emits [`Event`]s; only
//! the printer decides what is shown (`-q`, `-v`, terminal or not).
//!
//! Event text can come from the model or the repository (a warning quoting a model's
//! answer, the plan's target): [`Printer::emit`] passes every string of an event through
//! [`crate::inert::log`] before it adds its own colours and GitLab sections, so only
//! pace's escapes and section markers reach the terminal or the job log.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

#[derive(Debug, Clone)]
pub enum Event {
    DayStarted {
        day: u32,
        target: String,
        attempt: u32,
    },
    AgentStarted {
        agent: String,
        attempt: u32,
    },
    AgentFinished {
        agent: String,
        decision: Option<String>,
        duration: Duration,
        input_tokens: u64,
        output_tokens: u64,
        cache_read_tokens: u64,
        cache_write_tokens: u64,
        cost_usd: f64,
        /// What the agent found (hold reason, the suite's result, its error): the body of
        /// its GitLab section, under the progress line that is the section's header.
        detail: Vec<String>,
    },
    Info(String),
    Warning(String),
    /// A note from a library module about what it did instead (the sandbox dropping an
    /// option a daemon refused, a container kept): `pace: ` and the text, shown at every
    /// verbosity, as a warning is.
    Notice(String),
}

impl Event {
    /// The event with every string made inert for a terminal or a job log.
    fn inert(&self) -> Self {
        let log = |s: &str| crate::inert::log(s);
        match self {
            Self::DayStarted { day, target, attempt } => Self::DayStarted {
                day: *day,
                target: log(target),
                attempt: *attempt,
            },
            Self::AgentStarted { agent, attempt } => Self::AgentStarted {
                agent: log(agent),
                attempt: *attempt,
            },
            Self::AgentFinished {
                agent,
                decision,
                duration,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                cost_usd,
                detail,
            } => Self::AgentFinished {
                agent: log(agent),
                decision: decision.as_deref().map(log),
                duration: *duration,
                input_tokens: *input_tokens,
                output_tokens: *output_tokens,
                cache_read_tokens: *cache_read_tokens,
                cache_write_tokens: *cache_write_tokens,
                cost_usd: *cost_usd,
                detail: detail.iter().map(|l| log(l)).collect(),
            },
            Self::Info(i) => Self::Info(log(i)),
            Self::Warning(w) => Self::Warning(log(w)),
            Self::Notice(n) => Self::Notice(log(n)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Printer {
    verbosity: Verbosity,
    color: bool,
    /// Present only on a terminal: the agents running now, drawn by a spinner thread.
    spinner: Option<Arc<Mutex<SpinnerState>>>,
    /// In a GitLab job (`GITLAB_CI=true`): each agent's start time (unix seconds) and attempt,
    /// so its finish is emitted as a collapsible section of the job log.
    sections: Option<Arc<Mutex<OpenSections>>>,
}

/// Agent → (start in unix seconds, attempt).
type OpenSections = HashMap<String, (u64, u32)>;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A section of a GitLab job log (GitLab's documented `section_start`/`section_end`
/// markers): `title` is the header line, `body` what unfolds; `collapsed` folds it.
pub fn gitlab_section(name: &str, start: u64, end: u64, title: &str, body: &[String], collapsed: bool) -> String {
    let options = if collapsed { "[collapsed=true]" } else { "" };
    let mut out = format!("\x1b[0Ksection_start:{start}:{name}{options}\r\x1b[0K{title}\n");
    for line in body {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("\x1b[0Ksection_end:{end}:{name}\r\x1b[0K"));
    out
}

#[derive(Debug, Default)]
struct SpinnerState {
    running: Vec<(String, Instant)>,
    /// A status line is on screen and must be cleared before the next line.
    drawn: bool,
}

const SPINNER_FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

fn clear_status(state: &mut SpinnerState, err: &mut impl Write) {
    if state.drawn {
        let _ = write!(err, "\r\x1b[2K");
        state.drawn = false;
    }
}

/// Redraws `⠋ GATE 3s, SENTINEL 2s` every 100 ms while agents run; stops when the
/// printer is dropped everywhere.
fn spawn_spinner(state: &Arc<Mutex<SpinnerState>>) {
    let weak = Arc::downgrade(state);
    let _ = std::thread::Builder::new().name("pace-spinner".into()).spawn(move || {
        let mut frame = 0usize;
        while let Some(state) = weak.upgrade() {
            if let Ok(mut s) = state.lock()
                && !s.running.is_empty()
            {
                let agents: Vec<String> = s
                    .running
                    .iter()
                    .map(|(a, t)| format!("{a} {}s", t.elapsed().as_secs()))
                    .collect();
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[2K  {} {}",
                    SPINNER_FRAMES[frame % SPINNER_FRAMES.len()],
                    agents.join(", ")
                );
                let _ = err.flush();
                s.drawn = true;
            }
            drop(state);
            frame += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    });
}

impl Printer {
    pub fn new(verbosity: Verbosity, no_color: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let spinner = (terminal && verbosity == Verbosity::Normal).then(|| {
            let state = Arc::new(Mutex::new(SpinnerState::default()));
            spawn_spinner(&state);
            state
        });
        Self {
            verbosity,
            color: !no_color && terminal,
            spinner,
            sections: None,
        }
    }

    pub fn quiet() -> Self {
        Self {
            verbosity: Verbosity::Quiet,
            color: false,
            spinner: None,
            sections: None,
        }
    }

    /// In a GitLab job: a start line streams when an agent starts (long agents stay
    /// visible), and its finish is a section spanning the agent's run, collapsed when it
    /// finished green, expanded otherwise.
    #[must_use]
    pub fn with_gitlab_sections(mut self, enabled: bool) -> Self {
        self.sections = enabled.then(|| Arc::new(Mutex::new(HashMap::new())));
        self
    }

    /// The finished agent as a GitLab section, when sections are on.
    fn section(&self, agent: &str, decision: &str, line: &str, detail: &[String]) -> Option<String> {
        let sections = self.sections.as_ref()?;
        let (start, attempt) = sections.lock().ok()?.remove(agent).unwrap_or((unix_now(), 1));
        let name = format!("pace_{}_{attempt}", agent.to_ascii_lowercase());
        let green = matches!(decision, "SHIP" | "PASS" | "done");
        Some(gitlab_section(&name, start, unix_now(), line, detail, green))
    }

    fn track(&self, event: &Event) {
        let Some(state) = &self.spinner else { return };
        let Ok(mut s) = state.lock() else { return };
        match event {
            Event::AgentStarted { agent, .. } => s.running.push((agent.clone(), Instant::now())),
            Event::AgentFinished { agent, .. } => s.running.retain(|(a, _)| a != agent),
            _ => {}
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn emit(&self, event: &Event) {
        let event = &event.inert();
        if let Some(line) = self.render(event) {
            let mut err = std::io::stderr().lock();
            match self.spinner.as_ref().and_then(|s| s.lock().ok()) {
                Some(mut state) => {
                    clear_status(&mut state, &mut err);
                    let _ = writeln!(err, "{line}");
                }
                None => {
                    let _ = writeln!(err, "{line}");
                }
            }
        }
    }

    /// The text `event` prints (`None`: nothing at this verbosity); tracks running agents
    /// and open sections. `event` is already inert.
    fn render(&self, event: &Event) -> Option<String> {
        let line = match event {
            Event::Warning(w) => Some(format!("{} {w}", self.paint("33", "warning:"))),
            Event::Notice(n) => Some(format!("pace: {n}")),
            _ if self.verbosity == Verbosity::Quiet => None,
            Event::DayStarted { day, target, attempt } => Some(format!(
                "{} Day {day} (attempt {attempt}): {target}",
                self.paint("1", "pace")
            )),
            Event::AgentStarted { agent, attempt } => Some(format!("  ▶ {agent:<8} started (attempt {attempt})")),
            Event::AgentFinished {
                agent,
                decision,
                duration,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                cost_usd,
                detail,
            } => {
                let d = decision.clone().unwrap_or_else(|| "done".into());
                // Prompt-cache tokens, when there are any (they are billed apart).
                let cache = if cache_read_tokens + cache_write_tokens > 0 {
                    format!(" / {cache_read_tokens} cache read / {cache_write_tokens} cache write")
                } else {
                    String::new()
                };
                // Pad before painting: escape codes must not count as width.
                let padded = format!("{d:<8}");
                // The mark says the same as the colour, for logs without colour: a failed
                // or holding agent never gets a check mark.
                let (mark, colored) = match d.as_str() {
                    "SHIP" | "PASS" | "done" => ("✓", self.paint("32", &padded)),
                    "ADVISORY" => ("!", self.paint("33", &padded)),
                    _ => ("✗", self.paint("31", &padded)),
                };
                let line = format!(
                    "  {mark} {agent:<8} {colored} {:>6.1}s  {input_tokens} in / {output_tokens} out{cache}  ${cost_usd:.4}",
                    duration.as_secs_f64()
                );
                // The header already says decision, time, tokens and cost: the body is
                // what the agent found, indented under it.
                let body: Vec<String> = detail
                    .iter()
                    .flat_map(|d| d.lines().map(|l| format!("    {l}")).collect::<Vec<_>>())
                    .collect();
                self.section(agent, &d, &line, &body).or(Some(line))
            }
            Event::Info(i) => Some(format!("  {i}")),
        };
        self.track(event);
        if let (Some(sections), Event::AgentStarted { agent, attempt }) = (&self.sections, event)
            && let Ok(mut open) = sections.lock()
        {
            open.insert(agent.clone(), (unix_now(), *attempt));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_sections_use_the_documented_markers() {
        let green = gitlab_section("pace_gate_1", 100, 112, "  ✓ GATE SHIP", &["detail".into()], true);
        assert_eq!(
            green,
            "\x1b[0Ksection_start:100:pace_gate_1[collapsed=true]\r\x1b[0K  ✓ GATE SHIP\ndetail\n\x1b[0Ksection_end:112:pace_gate_1\r\x1b[0K"
        );
        let red = gitlab_section("pace_gate_2", 1, 2, "x", &[], false);
        assert!(red.starts_with("\x1b[0Ksection_start:1:pace_gate_2\r"), "{red:?}");
    }

    #[test]
    fn the_progress_line_shows_cache_tokens_when_there_are_any() {
        let p = Printer {
            verbosity: Verbosity::Normal,
            color: false,
            spinner: None,
            sections: None,
        };
        let finished = |read, write| Event::AgentFinished {
            agent: "FORGE".into(),
            decision: None,
            duration: Duration::from_secs(2),
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: read,
            cache_write_tokens: write,
            cost_usd: 0.5,
            detail: Vec::new(),
        };
        let line = p.render(&finished(700, 300)).unwrap();
        assert!(
            line.contains("10 in / 5 out / 700 cache read / 300 cache write  $0.5000"),
            "{line}"
        );
        let line = p.render(&finished(0, 0)).unwrap();
        assert!(line.contains("10 in / 5 out  $0.5000"), "{line}");
    }

    /// A model's text in a warning, the plan's target or a decision cannot forge a section,
    /// a hyperlink or an overwritten line: only pace's own markers are in the output.
    #[test]
    fn event_text_cannot_forge_sections_or_escapes() {
        let p = Printer {
            verbosity: Verbosity::Normal,
            color: false,
            spinner: None,
            sections: Some(Arc::new(Mutex::new(HashMap::new()))),
        };
        let forged = "\x1b[0Ksection_start:1:evil[collapsed=true]\r\x1b[0K\x1b]8;;http://evil\x07ok\x1b]8;;\x07\rPASS";
        let events = [
            Event::Warning(format!("FORGE answer was invalid ({forged})")),
            Event::Info(forged.into()),
            Event::DayStarted {
                day: 1,
                target: forged.into(),
                attempt: 1,
            },
            Event::AgentStarted {
                agent: "GATE".into(),
                attempt: 1,
            },
            Event::AgentFinished {
                agent: "GATE".into(),
                decision: Some(format!("SHIP{forged}")),
                duration: Duration::from_secs(1),
                input_tokens: 1,
                output_tokens: 1,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                cost_usd: 0.0,
                detail: vec![forged.into()],
            },
        ];
        let out: String = events
            .iter()
            .filter_map(|e| p.render(&e.inert()))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(out.matches("section_start:").count(), 1, "{out:?}");
        assert_eq!(out.matches("section_end:").count(), 1, "{out:?}");
        // pace's own section: two `ESC [0K` and one `\r` around each marker.
        assert_eq!(out.matches('\x1b').count(), 4, "{out:?}");
        assert_eq!(out.matches('\r').count(), 2, "{out:?}");
        assert!(!out.contains("http://evil") && out.contains("ok\nPASS"), "{out:?}");
    }

    #[test]
    fn a_green_agent_is_a_collapsed_section_a_red_one_expanded() {
        let p = Printer::quiet().with_gitlab_sections(true);
        p.track(&Event::AgentStarted {
            agent: "GATE".into(),
            attempt: 2,
        });
        if let Some(s) = &p.sections {
            s.lock().unwrap().insert("GATE".into(), (10, 2));
            s.lock().unwrap().insert("FORGE".into(), (10, 1));
        }
        let green = p.section("GATE", "SHIP", "line", &["d".into()]).unwrap();
        assert!(
            green.contains("section_start:10:pace_gate_2[collapsed=true]"),
            "{green:?}"
        );
        let red = p.section("FORGE", "HOLD", "line", &["d".into()]).unwrap();
        assert!(red.contains("section_start:10:pace_forge_1\r"), "{red:?}");
        assert!(Printer::quiet().section("GATE", "SHIP", "l", &["d".into()]).is_none());
    }

    fn finished(agent: &str, decision: &str, detail: &[&str]) -> Event {
        Event::AgentFinished {
            agent: agent.into(),
            decision: Some(decision.into()),
            duration: Duration::from_secs(2),
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: 0.01,
            detail: detail.iter().map(|d| (*d).to_string()).collect(),
        }
    }

    #[test]
    fn a_failed_agent_gets_no_check_mark() {
        let p = Printer::quiet();
        let p = Printer {
            verbosity: Verbosity::Normal,
            ..p
        };
        let line = |e: &Event| p.render(e).unwrap_or_default();
        assert!(line(&finished("GATE", "SHIP", &[])).starts_with("  ✓ GATE"));
        assert!(line(&finished("SCRIBE", "ERROR", &[])).starts_with("  ✗ SCRIBE   ERROR"));
        assert!(line(&finished("SENTINEL", "HOLD", &[])).starts_with("  ✗ SENTINEL HOLD"));
        assert!(line(&finished("CONDUIT", "ADVISORY", &[])).starts_with("  ! CONDUIT  ADVISORY"));
    }

    #[test]
    fn a_section_body_is_the_agent_s_detail_not_its_header_again() {
        let p = Printer {
            verbosity: Verbosity::Normal,
            ..Printer::quiet().with_gitlab_sections(true)
        };
        let out = p
            .render(&finished(
                "GATE",
                "HOLD",
                &["suite `sh t.sh` exited 1", "hold: 1 test fails"],
            ))
            .unwrap();
        let body: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(
            body[..2],
            ["    suite `sh t.sh` exited 1", "    hold: 1 test fails"],
            "{out:?}"
        );
        assert_eq!(out.matches("GATE").count(), 1, "the header only once: {out:?}");
    }

    #[test]
    fn a_notice_reads_as_it_did_when_printed_directly_even_when_quiet() {
        let event = Event::Notice("kept sandbox container `pace-r-gate-1` (sandbox.keep)".into());
        for printer in [Printer::quiet(), Printer::new(Verbosity::Verbose, true)] {
            assert_eq!(
                printer.render(&event).as_deref(),
                Some("pace: kept sandbox container `pace-r-gate-1` (sandbox.keep)")
            );
        }
        // What a daemon said cannot move the cursor or colour the terminal.
        let Event::Notice(forged) = Event::Notice("refused (\x1b[2Kdenied)".into()).inert() else {
            unreachable!()
        };
        assert!(!forged.contains('\x1b'), "{forged:?}");
    }
}
