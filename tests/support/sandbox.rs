//! The one way tests build a [`SandboxContext`]: the busybox test image, 60 s, 256 MiB,
//! one CPU, the greeter's writable directories, and a run id unique to the test.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pace::config::settings::{SandboxSettings, Settings};
use pace::sandbox::SandboxContext;

use super::docker::busybox_image;

/// A context whose run id starts with `t-{name}-{pid}-`; `edit` changes the settings
/// (the values of `settings.env`'s names are read from the test's environment).
pub fn context(name: &str, day: u32, edit: impl FnOnce(&mut SandboxSettings)) -> SandboxContext {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut settings = Settings::defaults(PathBuf::from("/nonexistent")).sandbox;
    settings.image = busybox_image();
    settings.timeout = Duration::from_secs(60);
    settings.memory_bytes = 256 * 1024 * 1024;
    settings.cpus = 1.0;
    edit(&mut settings);
    let env = settings
        .env
        .iter()
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v)))
        .collect();
    SandboxContext {
        settings,
        run_id: format!("t-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)),
        day,
        env,
        boundary: pace::boundary::Boundary::new(&["src/", "tests/"], Default::default()),
        redactor: Default::default(),
        registry_login: Default::default(),
        events: Default::default(),
    }
}
