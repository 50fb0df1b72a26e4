//! Integration tests: config_validate
