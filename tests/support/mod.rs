//! Shared test helpers: temp git repos, fake servers, local Docker images.
#![allow(dead_code)]

pub mod docker;
