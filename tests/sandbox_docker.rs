//! Integration tests: sandbox_docker
