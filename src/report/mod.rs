//! What people read: summaries, PROGRESS.md, JUnit, and the progress lines of a run.
pub mod dotenv;
pub mod junit;
pub mod printer;
pub mod progress;
pub mod summary;
