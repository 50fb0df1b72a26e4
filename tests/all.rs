//! One integration-test binary (faster to link, shared fakes in `support`).
// Test code may unwrap, panic and print, and is not held to the pedantic lints of the
// library (Cargo.toml [lints]): a failing test says where with its own message.
#![allow(
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    unreachable_pub
)]
#[macro_use]
mod support;

mod architecture;
mod artifacts_links;
mod bench;
mod bitbucket;
mod config_validate;
mod daily;
mod day;
mod day_overlap;
mod docker_hints;
mod edit_day;
mod egress;
mod exit_paths;
mod git_hardening;
mod gitlab;
mod images;
mod init;
mod llm_answers;
mod llm_cost;
mod llm_providers;
mod podman;
mod redteam;
mod redteam2;
mod redteam3;
mod redteam4;
mod registry_auth;
mod reliability_faults;
mod reliability_git;
mod reliability_input;
mod sandbox_conn;
mod sandbox_docker;
mod sandbox_more;
mod sandbox_ops;
mod sandbox_speed;
mod setup_maven;
mod setup_npm;
mod setup_phase;
mod structured;
mod untrusted_text;
