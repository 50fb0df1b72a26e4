//! Configuration: `pace.config.yaml` (root, else `pace/pace.config.yaml`) and `plan.yaml`.
pub mod diagnostic;
pub mod settings;
pub mod yaml;
