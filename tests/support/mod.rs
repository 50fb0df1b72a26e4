//! Shared test helpers: temp git repos, fake servers, local Docker images.
#![allow(dead_code)]

#[macro_use]
pub mod docker;
pub mod dockerd;
pub mod fake_bitbucket;
pub mod fake_gitlab;
pub mod fake_jira;
pub mod fake_llm;
pub mod project;
pub mod sandbox;
pub mod scenario;
pub mod scripts;
