//! Integration tests: llm_providers
