//! pace: runs one PACE sprint day in a git repository.

pub mod artifacts;
pub mod config;
pub mod day;
pub mod env;
pub mod error;
pub mod git;
pub mod llm;
pub mod platform;
pub mod redact;
pub mod report;
pub mod sandbox;
pub mod schemas;

pub fn run() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
