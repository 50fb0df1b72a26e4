//! One integration-test binary (faster to link, shared fakes in `support`).
#[macro_use]
mod support;

mod artifacts_links;
mod bench;
mod bitbucket;
mod config_validate;
mod day;
mod git_hardening;
mod gitlab;
mod images;
mod llm_providers;
mod redteam;
mod reliability_faults;
mod reliability_git;
mod reliability_input;
mod sandbox_conn;
mod sandbox_docker;
mod sandbox_more;
mod sandbox_ops;
mod sandbox_speed;
mod untrusted_text;
