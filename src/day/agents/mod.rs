//! The six agents. Each reads what it needs from the [`DayContext`](super::context::DayContext),
//! writes its artifact, and returns a typed result; decisions are made by `day::decide`.

pub mod forge;
pub mod gate;
pub mod prime;
pub mod review;
pub mod scribe;
pub mod turn;

pub const PRIME: &str = "PRIME";
pub const FORGE: &str = "FORGE";
pub const GATE: &str = "GATE";
pub const SENTINEL: &str = "SENTINEL";
pub const CONDUIT: &str = "CONDUIT";
pub const SCRIBE: &str = "SCRIBE";
