//! Graceful degradation under a Docker authorization plugin (Bitbucket Pipelines' docker
//! service answers `403 authorization denied by plugin pipelines: <what> is not allowed`).
//!
//! pace never asks for `--privileged`; what such a plugin may refuse is one of the options
//! below. When a create or start is denied and the message names one of them, pace logs it,
//! drops that option and tries again (once per option); anything else stays an error.

use bollard::errors::Error as DockerError;

/// An option pace sets that a restricted daemon may refuse, in the order it is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Degradable {
    /// `HostConfig.SecurityOpt = ["no-new-privileges:true"]`.
    SecurityOpt,
    /// `HostConfig.CapDrop = ["ALL"]`.
    CapDrop,
    /// `HostConfig.PidsLimit`.
    PidsLimit,
    /// `HostConfig.Init`.
    Init,
    /// `HostConfig.Memory` / `MemorySwap`.
    Memory,
    /// `HostConfig.NanoCpus`.
    Cpus,
    /// The named dependency-cache volume (a `-v name:/cache` bind).
    CacheVolume,
    /// `sandbox.workspace: bind` (falls back to the tar upload).
    WorkspaceBind,
}

/// Each option, how a person would call it (for the log) and the words a denial uses for it.
const TABLE: &[(Degradable, &str, &[&str])] = &[
    (
        Degradable::SecurityOpt,
        "--security-opt no-new-privileges",
        &["security-opt", "securityopt", "no-new-privileges"],
    ),
    (Degradable::CapDrop, "--cap-drop ALL", &["cap-drop", "capdrop"]),
    (Degradable::PidsLimit, "--pids-limit", &["pids-limit", "pidslimit"]),
    (Degradable::Init, "--init", &["--init"]),
    (
        Degradable::Memory,
        "--memory",
        &["--memory", "memory-swap", "memoryswap"],
    ),
    (Degradable::Cpus, "--cpus", &["--cpus", "nanocpus", "nano-cpus"]),
    // A bind of anything outside the clone directory: the cache volume goes first, the
    // workspace bind only if the daemon still refuses.
    (
        Degradable::CacheVolume,
        "-v pace-cache-…:/cache",
        &["-v ", "--volume", "binds", "bind mount"],
    ),
    (
        Degradable::WorkspaceBind,
        "-v <repository>:/workspace",
        &["-v ", "--volume", "binds", "bind mount"],
    ),
];

impl Degradable {
    /// The option as a command-line flag (for messages).
    pub fn flag(self) -> &'static str {
        TABLE
            .iter()
            .find(|(d, _, _)| *d == self)
            .map_or("?", |(_, flag, _)| *flag)
    }
}

/// The message of an authorization-plugin denial, if `err` is one.
pub(super) fn denial(err: &DockerError) -> Option<&str> {
    match err {
        DockerError::DockerResponseServerError { status_code, message }
            if *status_code == 403 && message.to_ascii_lowercase().contains("authorization denied by plugin") =>
        {
            Some(message)
        }
        _ => None,
    }
}

/// Podman without its init binary (`catatonit`, a separate package on Debian) refuses
/// `--init` with a 500 (at create, attach or start): "container-init binary not found on
/// the host". The sandbox then runs without an init, as for a denial.
pub(super) fn missing_init(err: &DockerError) -> Option<&str> {
    match err {
        DockerError::DockerResponseServerError { message, .. }
            if message.contains("container-init binary not found") || message.contains("catatonit") =>
        {
            Some(message)
        }
        _ => None,
    }
}

/// The options a denial message names, in the order they should be given up.
pub(super) fn refused(message: &str) -> Vec<Degradable> {
    let text = format!(" {} ", message.to_ascii_lowercase().replace('_', "-"));
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '=' | ';' | '"' | '\'' | '(' | ')'))
        .filter(|w| !w.is_empty())
        .collect();
    TABLE
        .iter()
        .filter(|(d, _, keys)| {
            keys.iter().any(|k| text.contains(k))
                // "init" as a bare word ("Init is not allowed") but not inside other words.
                || (*d == Degradable::Init && words.iter().any(|w| w.trim_start_matches('-') == "init"))
                || (*d == Degradable::Memory && words.contains(&"memory"))
                || (*d == Degradable::Cpus && words.iter().any(|w| matches!(*w, "cpus" | "cpu")))
        })
        .map(|(d, _, _)| *d)
        .collect()
}

/// The first option named by `message` that is still in use (`active`), if any.
pub(super) fn next_to_drop(message: &str, active: impl Fn(Degradable) -> bool) -> Option<Degradable> {
    refused(message).into_iter().find(|d| active(*d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Degradable::*;

    #[test]
    fn recognises_plugin_denials_only() {
        let denied = DockerError::DockerResponseServerError {
            status_code: 403,
            message: "authorization denied by plugin pipelines: --privileged=true is not allowed".into(),
        };
        assert!(denial(&denied).is_some());
        let other = DockerError::DockerResponseServerError {
            status_code: 403,
            message: "forbidden".into(),
        };
        assert!(denial(&other).is_none());
        let not_403 = DockerError::DockerResponseServerError {
            status_code: 500,
            message: "authorization denied by plugin x: y".into(),
        };
        assert!(denial(&not_403).is_none());
    }

    #[test]
    fn recognises_podman_without_catatonit() {
        let podman = DockerError::DockerResponseServerError {
            status_code: 500,
            message: "container-init binary not found on the host: stat /usr/libexec/podman/catatonit: no such file or directory".into(),
        };
        assert!(missing_init(&podman).is_some());
        assert!(denial(&podman).is_none());
        let other = DockerError::DockerResponseServerError {
            status_code: 500,
            message: "no such image".into(),
        };
        assert!(missing_init(&other).is_none());
    }

    #[test]
    fn names_the_refused_option() {
        let cases: &[(&str, &[Degradable])] = &[
            (
                "authorization denied by plugin pipelines: -v only supports $BITBUCKET_CLONE_DIR and its subdirectories",
                &[CacheVolume, WorkspaceBind],
            ),
            (
                "authorization denied by plugin pipelines: --security-opt is not allowed",
                &[SecurityOpt],
            ),
            (
                "authorization denied by plugin pipelines: SecurityOpt=[no-new-privileges:true] is not allowed",
                &[SecurityOpt],
            ),
            (
                "authorization denied by plugin pipelines: --cap-drop is not allowed",
                &[CapDrop],
            ),
            (
                "authorization denied by plugin pipelines: CapDrop is not allowed",
                &[CapDrop],
            ),
            (
                "authorization denied by plugin pipelines: --pids-limit is not allowed",
                &[PidsLimit],
            ),
            (
                "authorization denied by plugin pipelines: PidsLimit is not allowed",
                &[PidsLimit],
            ),
            (
                "authorization denied by plugin pipelines: --init is not allowed",
                &[Init],
            ),
            ("authorization denied by plugin pipelines: Init is not allowed", &[Init]),
            (
                "authorization denied by plugin pipelines: --memory is not allowed",
                &[Memory],
            ),
            (
                "authorization denied by plugin pipelines: NanoCpus is not allowed",
                &[Cpus],
            ),
            (
                "authorization denied by plugin pipelines: --privileged=true is not allowed",
                &[],
            ),
            ("authorization denied by plugin pipelines: --mounts is not allowed", &[]),
            // "initial" or "initialise" must not count as `--init`.
            ("authorization denied by plugin pipelines: initial check failed", &[]),
        ];
        for (message, expected) in cases {
            assert_eq!(&refused(message), expected, "{message}");
        }
    }

    #[test]
    fn drops_the_first_option_still_in_use() {
        let msg = "authorization denied by plugin pipelines: -v only supports $BITBUCKET_CLONE_DIR";
        assert_eq!(next_to_drop(msg, |_| true), Some(CacheVolume));
        assert_eq!(next_to_drop(msg, |d| d != CacheVolume), Some(WorkspaceBind));
        assert_eq!(next_to_drop(msg, |d| d != CacheVolume && d != WorkspaceBind), None);
        assert_eq!(CacheVolume.flag(), "-v pace-cache-…:/cache");
    }
}
