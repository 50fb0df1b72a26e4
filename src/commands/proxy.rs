//! `pace proxy`: the egress allowlist's forward proxy, as pace starts it in the sidecar
//! container (`sandbox/egress.rs`). Serves until the container is removed.

use std::path::Path;

use crate::error::PaceError;
use crate::proxy::{Allowlist, Entry};

pub(super) async fn run(
    listen: &str,
    allow: Vec<Entry>,
    clients: Option<ipnet::IpNet>,
    log: &Path,
) -> Result<u8, PaceError> {
    crate::proxy::run(listen, Allowlist::new(allow).with_clients(clients), log)
        .await
        .map_err(|e| {
            PaceError::infra(format!(
                "pace proxy: cannot serve on `{listen}` with the tally at `{}`: {e}",
                log.display()
            ))
            .with_hint("pick a free `--listen` address and a writable `--log` file")
        })?;
    Ok(0)
}
