//! The day's state machine: agents in order, decisions, retries, backlog.
pub mod tools;
