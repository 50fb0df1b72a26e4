//! One integration-test binary (faster to link, shared fakes in `support`).
mod support;

mod bench;
mod config_validate;
mod day;
mod llm_providers;
mod sandbox_docker;
mod sandbox_more;
