//! Integration tests: day
