//! PLACEHOLDER
pub struct AttemptError;
