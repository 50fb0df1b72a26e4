//! The command line (clap derive: the `///` comments are the help text).
// The `///` comments are `--help` text, not rustdoc: no Markdown rules for them.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

/// pace runs one PACE sprint day in a git repository: PRIME writes the story card, FORGE
/// writes the code, GATE runs the tests in a sandbox container while SENTINEL and CONDUIT
/// review the diff, SCRIBE keeps the context documents; then a merge request (SHIP) or an
/// escalation (HOLD) is opened.
///
/// Exit codes: 0 SHIP (also: paused, already shipped, sprint complete), 1 HOLD (also:
/// `--day next` at a held day without `--retry`), 2 configuration or usage error (also: a
/// day on the default branch), 3 plan error, 4 infrastructure error (Docker, LLM provider,
/// git push, platform API), 5 budget exhausted (work committed), 130/143 interrupted.
#[derive(Debug, Parser)]
#[command(name = "pace", version = env!("PACE_LONG_VERSION"), about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The sprint day to run: a number, or `next` for the first day of the plan that has
    /// not shipped (read from the committed `.pace/day-N/run.json`; a held day is run again
    /// only with `--retry`; after the last day: exit 0, "sprint complete")
    #[arg(long, env = "PACE_DAY", value_name = "N|next", value_parser = parse_day)]
    pub day: Option<DayArg>,

    /// Re-run a HOLD day after a human pushed a fix: the story card is kept, FORGE starts
    /// from the last hold reason and the new commits (with `--day next`: the held day is
    /// the next one only with this flag)
    #[arg(long, env = "PACE_RETRY", action = ArgAction::SetTrue)]
    pub retry: bool,

    /// Run the whole day but push nothing and open nothing (the local platform's files are
    /// written instead)
    #[arg(long, action = ArgAction::SetTrue)]
    pub dry_run: bool,

    /// The config file (default: `pace.config.yaml`, else `pace/pace.config.yaml`)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// More output (`-v` debug logs); `RUST_LOG` wins when set
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and the final line
    #[arg(short, long, global = true, action = ArgAction::SetTrue, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// `--day`: a day number, or `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayArg {
    Number(u32),
    /// The first day of the plan that has not shipped.
    Next,
}

impl DayArg {
    /// The number when one was given.
    pub fn number(self) -> Option<u32> {
        match self {
            Self::Number(n) => Some(n),
            Self::Next => None,
        }
    }
}

fn parse_day(value: &str) -> Result<DayArg, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("next") {
        return Ok(DayArg::Next);
    }
    value
        .parse::<u32>()
        .map(DayArg::Number)
        .map_err(|_| format!("`{value}` is neither a day number nor `next`"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the config and the plan; every problem at once, with file:line:column
    Validate,
    /// Check the Docker daemon, the sandbox image, git and the LLM key, with a hint for each
    /// failure
    Doctor,
    /// Run the build and test commands in the sandbox exactly as GATE does, streaming the
    /// output (reproduce a HOLD locally)
    Gate {
        /// The image to run in (default: `sandbox.image`)
        #[arg(long)]
        image: Option<String>,
    },
    /// Write pace.config.yaml, plan.yaml and the CI file for this repository
    ///
    /// Detects the stack (by its manifest at the root) and the platform (the CI job, else
    /// the `origin` remote); writes a commented pace.config.yaml, a plan.yaml with one
    /// example day and the platform's CI file at the repository root. Never replaces a file
    /// without `--force` (exit 2, nothing written). Asks to confirm on a terminal
    Init {
        /// Take what was detected without asking (also when stdin is not a terminal)
        #[arg(long, short = 'y', action = ArgAction::SetTrue)]
        yes: bool,
        /// Replace pace.config.yaml, plan.yaml and the CI file when they exist
        #[arg(long, action = ArgAction::SetTrue)]
        force: bool,
    },
    /// The egress allowlist's forward proxy (run by pace in a sidecar container; see
    /// docs/egress.md): HTTP CONNECT and plain HTTP, only to the `--allow` hosts
    #[command(hide = true)]
    Proxy {
        /// The address to listen on
        #[arg(long, default_value = "0.0.0.0:3128", value_name = "ADDR")]
        listen: String,
        /// An allowed host: `name`, `*.suffix`, optionally `:port` (without: tunnels to 443,
        /// plain HTTP to 80)
        #[arg(long = "allow", value_name = "HOST[:PORT]", value_parser = parse_allow)]
        allow: Vec<crate::proxy::Entry>,
        /// Where the tally of allowed and refused requests is written (YAML)
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// Serve only clients in this network (the set-up's internal one); others are
        /// closed unanswered and not counted
        #[arg(long, value_name = "CIDR")]
        clients: Option<ipnet::IpNet>,
    },
}

fn parse_allow(value: &str) -> Result<crate::proxy::Entry, String> {
    crate::proxy::Entry::parse(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_a_number_or_next() {
        assert_eq!(parse_day("3"), Ok(DayArg::Number(3)));
        assert_eq!(parse_day(" next "), Ok(DayArg::Next));
        assert_eq!(parse_day("NEXT"), Ok(DayArg::Next));
        assert_eq!(
            parse_day("tomorrow"),
            Err("`tomorrow` is neither a day number nor `next`".to_string())
        );
        assert!(parse_day("-1").is_err());
    }
}
