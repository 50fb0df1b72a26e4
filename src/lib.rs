//! pace: runs one PACE sprint day in a git repository.
//!
//! `main` calls [`run`]; everything else is a library so the tests can drive it.

use std::process::ExitCode;

use clap::Parser;

pub mod artifacts;
pub mod boundary;
pub mod check;
pub mod cli;
mod commands;
pub mod config;
pub mod day;
pub mod env;
pub mod error;
pub mod git;
pub mod inert;
pub mod llm;
pub mod net;
pub mod platform;
pub mod proxy;
pub mod redact;
pub mod report;
pub mod safe_write;
pub mod sandbox;
pub mod schemas;
pub mod text;

/// Parses the command line, runs the command, renders any error and maps it to the
/// exit code (one place for both).
#[allow(clippy::print_stderr, reason = "the one place an error is rendered for people")]
pub fn run() -> ExitCode {
    let cli = cli::Cli::parse();
    let env = env::Env::from_process();
    commands::init_logging(cli.verbose, cli.quiet, &env);
    match commands::dispatch(cli, env) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(err.kind.code())
        }
    }
}
