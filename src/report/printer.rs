//! The progress of a run for people, on stderr (stdout stays for data): one line per
//! agent start and finish with duration, tokens and cost. The day emits [`Event`]s; only
//! the printer decides what is shown (`-q`, `-v`, terminal or not).

use std::io::{IsTerminal, Write};
use std::time::Duration;

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
        cost_usd: f64,
    },
    Info(String),
    Warning(String),
}

#[derive(Debug, Clone)]
pub struct Printer {
    verbosity: Verbosity,
    color: bool,
}

impl Printer {
    pub fn new(verbosity: Verbosity, no_color: bool) -> Self {
        let color = !no_color && std::io::stderr().is_terminal();
        Self { verbosity, color }
    }

    pub fn quiet() -> Self {
        Self {
            verbosity: Verbosity::Quiet,
            color: false,
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
        let line = match event {
            Event::Warning(w) => Some(format!("{} {w}", self.paint("33", "warning:"))),
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
                cost_usd,
            } => {
                let d = decision.clone().unwrap_or_else(|| "done".into());
                let colored = match d.as_str() {
                    "SHIP" | "PASS" | "done" => self.paint("32", &d),
                    "ADVISORY" => self.paint("33", &d),
                    _ => self.paint("31", &d),
                };
                Some(format!(
                    "  ✓ {agent:<8} {colored:<8} {:>6.1}s  {input_tokens} in / {output_tokens} out  ${cost_usd:.4}",
                    duration.as_secs_f64()
                ))
            }
            Event::Info(i) => Some(format!("  {i}")),
        };
        if let Some(line) = line {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }
}
