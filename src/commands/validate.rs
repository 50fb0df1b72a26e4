//! `pace validate`: every config and plan problem at once (the loader's diagnostics),
//! or one line saying what is valid.

use std::path::Path;

use super::common;
use crate::env::Env;
use crate::error::PaceError;

pub(super) fn run(explicit: Option<&Path>, env: &Env) -> Result<u8, PaceError> {
    let loaded = common::load(explicit, env)?;
    let s = &loaded.settings;
    println!(
        "{} and {} are valid: {} day(s) planned of a {}-day sprint",
        s.config_path.display(),
        s.plan_path.display(),
        loaded.plan.days.len(),
        s.sprint.duration_days
    );
    Ok(0)
}
