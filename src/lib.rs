//! pace: runs one PACE sprint day in a git repository.

pub mod config;
pub mod day;
pub mod env;
pub mod error;
pub mod llm;
pub mod plan;
pub mod redact;
pub mod sandbox;

pub fn run() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
