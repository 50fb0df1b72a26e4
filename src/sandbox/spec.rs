//! What a pace container is, as data: one pure function from the role, the settings, the
//! options a daemon refused, the run's labels, the workspace and the environment to the
//! Engine API's create body. No I/O and no daemon, so every limit, capability, network
//! and mount is unit-tested here; `container.rs` gathers the inputs and sends the body.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountTmpfsOptions, MountType};

use super::authz::Degradable;
use super::{LABEL_CREATED, LABEL_DAY, LABEL_PROJECT, LABEL_RUN_ID, LABEL_TIMEOUT, cache};
use crate::config::settings::{NetworkMode, SandboxSettings, WorkspaceMode};

/// Where the workspace lives in the container.
pub(crate) const WORKSPACE: &str = "/workspace";

/// The lifetime recorded on a FORGE session container: an attempt has no time bound of its
/// own (`forge.max_iterations` LLM calls of up to `llm.timeout_seconds` each), and removing
/// a live session of a concurrent run would break that run.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// What a container is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// GATE's suite (and `pace gate`): one command to completion.
    Gate,
    /// The dependency set-up phase: its own network, no result files, no offline settings.
    Setup,
    /// FORGE's long-lived session of one attempt.
    Forge,
}

impl Role {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Gate => "gate",
            Self::Setup => "setup",
            Self::Forge => "forge",
        }
    }
}

/// How `/workspace` gets its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Workspace {
    /// An anonymous volume the workspace is uploaded into (removed with the container).
    Upload,
    /// The checkout itself (`sandbox.workspace: bind`), at its canonical path, with the
    /// internal entries (`.git`, `.pace`) found there to be covered.
    Bind { host: PathBuf, hidden: Vec<Hidden> },
}

/// An entry of `boundary::INTERNAL_DIRS` that exists in the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hidden {
    pub name: &'static str,
    /// A directory (else a file: the `.git` of a worktree or submodule).
    pub dir: bool,
}

/// Everything a container's create body depends on.
pub(super) struct Spec<'a> {
    pub role: Role,
    pub settings: &'a SandboxSettings,
    /// Options a Docker authorization plugin refused in this run.
    pub degraded: &'a BTreeSet<Degradable>,
    pub run_id: &'a str,
    pub day: u32,
    /// `cache::project_id` of the repository.
    pub project: &'a str,
    /// Unix seconds (`pace.created`).
    pub created: u64,
    pub cmd: Vec<String>,
    pub workspace: Workspace,
    /// The dependency-cache volume to mount at `/cache`, when there is one.
    pub cache_volume: Option<&'a str>,
    /// The values of `sandbox.env`'s names.
    pub env: &'a [(String, String)],
    /// A set-up phase succeeded in this run (its toolchain caches are on the volume).
    pub prepared: bool,
    /// The container reads its stdin once, from an attached client (the workspace archive).
    pub stdin: bool,
    /// Behind the egress proxy (`sandbox.egress`): its internal network instead of
    /// [`network_for`]'s, and the variables naming the proxy.
    pub route: Option<&'a super::egress::Route>,
}

/// Whether the checkout is bind-mounted: asked for and not refused by the daemon.
pub(super) fn binds_workspace(settings: &SandboxSettings, degraded: &BTreeSet<Degradable>) -> bool {
    settings.workspace == WorkspaceMode::Bind && !degraded.contains(&Degradable::WorkspaceBind)
}

/// The container's name: the run, the role and a random part (several per run).
pub(super) fn container_name(run_id: &str, role: Role, random: u32) -> String {
    format!("pace-{}-{}-{random:08x}", sanitize(run_id), role.as_str())
}

/// The network a container of `role` joins. The one place this is decided: the set-up
/// phase has its own (`sandbox.setup_network`, as it downloads the dependencies); FORGE
/// and GATE `sandbox.network`.
pub(super) fn network_for(role: Role, settings: &SandboxSettings) -> String {
    match role {
        Role::Setup => settings.setup_network.clone(),
        Role::Gate | Role::Forge => match settings.network {
            NetworkMode::None => "none",
            NetworkMode::Bridge => "bridge",
            NetworkMode::Host => "host",
        }
        .to_string(),
    }
}

/// The create body of a labelled, locked-down container.
pub(super) fn container_body(spec: Spec<'_>) -> ContainerCreateBody {
    let s = spec.settings;
    let volumes = match spec.workspace {
        // Upload mode: `/workspace` is an anonymous volume (removed with the container,
        // `remove(v=true)`). The root filesystem is deliberately not read-only: the archive
        // API refuses uploads into a read-only root unless the target is a volume, which
        // would break handing `/workspace` and `/cache` to a non-root user (an upload to
        // `/`), and test tools commonly write outside `/workspace` (`~/.cache`, `/tmp`).
        Workspace::Upload => Some(vec![WORKSPACE.to_string()]),
        Workspace::Bind { .. } => None,
    };
    ContainerCreateBody {
        image: Some(s.image.clone()),
        working_dir: Some(WORKSPACE.to_string()),
        env: Some(env(&spec)),
        labels: Some(labels(&spec)),
        user: s.user.clone(),
        tty: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        attach_stdin: spec.stdin.then_some(true),
        open_stdin: spec.stdin.then_some(true),
        stdin_once: spec.stdin.then_some(true),
        volumes,
        host_config: Some(host_config(&spec)),
        cmd: Some(spec.cmd),
        ..Default::default()
    }
}

/// The project and the container's own lifetime let a later run on a shared daemon tell
/// its project's leftovers from other projects' and still-running containers. A GATE or
/// set-up container lives at most `sandbox.timeout`; a FORGE session for a whole attempt,
/// which has no bound of its own.
fn labels(spec: &Spec<'_>) -> HashMap<String, String> {
    let lifetime = match spec.role {
        Role::Gate | Role::Setup => spec.settings.timeout,
        Role::Forge => SESSION_LIFETIME.max(spec.settings.timeout),
    };
    HashMap::from([
        (LABEL_RUN_ID.to_string(), spec.run_id.to_string()),
        (LABEL_DAY.to_string(), spec.day.to_string()),
        (LABEL_CREATED.to_string(), spec.created.to_string()),
        (LABEL_PROJECT.to_string(), spec.project.to_string()),
        (LABEL_TIMEOUT.to_string(), lifetime.as_secs().to_string()),
    ])
}

/// `sandbox.env`, then the cache's variables and, after a set-up phase, the offline
/// settings (a name `sandbox.env` sets wins over both).
fn env(spec: &Spec<'_>) -> Vec<String> {
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // Behind the egress proxy: the variables naming it (a name in `sandbox.env` wins).
    if let Some(route) = spec.route {
        env.extend(
            route
                .env
                .iter()
                .filter(|(name, _)| !spec.env.iter().any(|(n, _)| n == name))
                .map(|(name, value)| format!("{name}={value}")),
        );
    }
    if spec.cache_volume.is_none() {
        return env;
    }
    env.extend(cache::env_for(spec.env));
    // After a set-up phase the toolchains are told to stay offline (FORGE, GATE), unless
    // `sandbox.network` gives them a network to use.
    if spec.role != Role::Setup && spec.settings.network == NetworkMode::None && spec.prepared {
        env.extend(
            super::setup::OFFLINE_ENV
                .iter()
                .filter(|(name, _)| !spec.env.iter().any(|(n, _)| n == name))
                .map(|(name, value)| format!("{name}={value}")),
        );
    }
    env
}

/// Limits, dropped privileges and mounts, each option left out once the daemon refused it.
fn host_config(spec: &Spec<'_>) -> HostConfig {
    let s = spec.settings;
    let on = |d: Degradable| !spec.degraded.contains(&d);
    let memory = (s.memory_bytes > 0 && on(Degradable::Memory)).then_some(s.memory_bytes);
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    if let Workspace::Bind { host, hidden } = &spec.workspace {
        binds.push(format!("{}:{WORKSPACE}", host.display()));
        mounts = hidden.iter().map(hide).collect();
    }
    if let Some(volume) = spec.cache_volume {
        binds.push(format!("{volume}:{}", cache::CACHE_MOUNT));
    }
    HostConfig {
        network_mode: Some(
            spec.route
                .map_or_else(|| network_for(spec.role, s), |r| r.network.clone()),
        ),
        memory,
        memory_swap: memory,
        nano_cpus: (s.cpus > 0.0 && on(Degradable::Cpus)).then_some((s.cpus * 1e9) as i64),
        pids_limit: (s.pids_limit > 0 && on(Degradable::PidsLimit)).then_some(s.pids_limit),
        cap_drop: on(Degradable::CapDrop).then(|| vec!["ALL".to_string()]),
        security_opt: on(Degradable::SecurityOpt).then(|| vec!["no-new-privileges:true".to_string()]),
        privileged: Some(false),
        init: on(Degradable::Init).then_some(true),
        binds: (!binds.is_empty()).then_some(binds),
        mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    }
}

/// Bind mode: `.git` and `.pace` of the checkout are covered inside the container, so the
/// suite and FORGE's commands can neither read the remote's credentials in `.git/config`
/// nor write git's config, hooks or pace's artifacts. A directory gets an empty read-only
/// tmpfs over it; a file (`.git` of a worktree or submodule) `/dev/null`, read-only.
fn hide(entry: &Hidden) -> Mount {
    let target = Some(format!("{WORKSPACE}/{}", entry.name));
    if entry.dir {
        Mount {
            target,
            typ: Some(MountType::TMPFS),
            read_only: Some(true),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: Some(4096),
                ..Default::default()
            }),
            ..Default::default()
        }
    } else {
        Mount {
            target,
            source: Some("/dev/null".into()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        }
    }
}

/// A container-name-safe version of the run id.
fn sanitize(run_id: &str) -> String {
    let s: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() { "run".to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::settings::Settings;

    fn settings() -> SandboxSettings {
        let mut s = Settings::defaults(PathBuf::from("/nonexistent")).sandbox;
        s.image = "busybox:1".into();
        s.memory_bytes = 512 * 1024 * 1024;
        s.cpus = 1.5;
        s.pids_limit = 256;
        s.timeout = Duration::from_secs(600);
        s.network = NetworkMode::None;
        s.setup_network = "bridge".into();
        s
    }

    /// A GATE container in upload mode without a cache; `edit` changes the rest.
    fn body_with(
        settings: &SandboxSettings,
        degraded: &BTreeSet<Degradable>,
        edit: impl FnOnce(&mut Spec<'_>),
    ) -> ContainerCreateBody {
        let mut spec = Spec {
            role: Role::Gate,
            settings,
            degraded,
            run_id: "r-1",
            day: 3,
            project: "p0123",
            created: 1_700_000_000,
            cmd: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            workspace: Workspace::Upload,
            cache_volume: None,
            env: &[],
            prepared: false,
            stdin: false,
            route: None,
        };
        edit(&mut spec);
        container_body(spec)
    }

    fn body(edit: impl FnOnce(&mut Spec<'_>)) -> ContainerCreateBody {
        body_with(&settings(), &BTreeSet::new(), edit)
    }

    fn host(body: &ContainerCreateBody) -> &HostConfig {
        body.host_config.as_ref().unwrap()
    }

    /// Behind the egress proxy a container joins only the proxy's internal network and
    /// gets the variables naming it; a name in `sandbox.env` keeps the user's value.
    #[test]
    fn the_egress_route_replaces_the_network_and_names_the_proxy() {
        // `body`'s edit may set any borrowed field: the values live as long as the test.
        let route: &'static super::super::egress::Route = Box::leak(Box::new(super::super::egress::Route {
            network: "pace-egress-r1".into(),
            env: vec![
                ("HTTPS_PROXY".into(), "http://proxy:3128".into()),
                ("NO_PROXY".into(), "localhost".into()),
            ],
        }));
        let user: &'static [(String, String)] =
            Box::leak(Box::new([("NO_PROXY".to_string(), "internal.example".to_string())]));
        let routed = body(|spec| {
            spec.role = Role::Setup;
            spec.route = Some(route);
            spec.env = user;
        });
        assert_eq!(host(&routed).network_mode.as_deref(), Some("pace-egress-r1"));
        let env = env_of(&routed);
        assert!(env.contains(&"HTTPS_PROXY=http://proxy:3128".to_string()), "{env:?}");
        assert!(env.contains(&"NO_PROXY=internal.example".to_string()), "{env:?}");
        assert!(!env.contains(&"NO_PROXY=localhost".to_string()), "{env:?}");
        let without = body(|spec| spec.role = Role::Setup);
        assert_eq!(host(&without).network_mode.as_deref(), Some("bridge"));
    }

    fn env_of(body: &ContainerCreateBody) -> Vec<String> {
        body.env.clone().unwrap()
    }

    #[test]
    fn limits_come_from_the_settings_with_swap_equal_to_memory() {
        let b = body(|_| {});
        let h = host(&b);
        assert_eq!(h.memory, Some(512 * 1024 * 1024));
        assert_eq!(
            h.memory_swap,
            Some(512 * 1024 * 1024),
            "no swap beyond the memory limit"
        );
        assert_eq!(h.nano_cpus, Some(1_500_000_000));
        assert_eq!(h.pids_limit, Some(256));
        let mut unlimited = settings();
        unlimited.memory_bytes = 0;
        unlimited.cpus = 0.0;
        unlimited.pids_limit = 0;
        let b = body_with(&unlimited, &BTreeSet::new(), |_| {});
        let h = host(&b);
        assert_eq!(
            (h.memory, h.memory_swap, h.nano_cpus, h.pids_limit),
            (None, None, None, None)
        );
    }

    #[test]
    fn privileges_are_dropped_and_an_init_reaps() {
        let b = body(|_| {});
        let h = host(&b);
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(h.security_opt, Some(vec!["no-new-privileges:true".to_string()]));
        assert_eq!(h.privileged, Some(false));
        assert_eq!(h.init, Some(true));
        assert_eq!(b.image.as_deref(), Some("busybox:1"));
        assert_eq!(b.working_dir.as_deref(), Some(WORKSPACE));
        assert_eq!(b.tty, Some(false));
    }

    #[test]
    fn the_set_up_phase_has_its_own_network() {
        let mut s = settings();
        for (mode, name) in [
            (NetworkMode::None, "none"),
            (NetworkMode::Bridge, "bridge"),
            (NetworkMode::Host, "host"),
        ] {
            s.network = mode;
            for role in [Role::Gate, Role::Forge] {
                let b = body_with(&s, &BTreeSet::new(), |spec| spec.role = role);
                assert_eq!(host(&b).network_mode.as_deref(), Some(name), "{role:?}");
            }
            let b = body_with(&s, &BTreeSet::new(), |spec| spec.role = Role::Setup);
            assert_eq!(host(&b).network_mode.as_deref(), Some("bridge"));
        }
        s.setup_network = "pace-egress".into();
        assert_eq!(
            network_for(Role::Setup, &s),
            "pace-egress",
            "a named network is passed as is"
        );
        assert_eq!(network_for(Role::Gate, &s), "host");
    }

    #[test]
    fn upload_mode_gives_workspace_an_anonymous_volume_and_no_binds() {
        let b = body(|_| {});
        assert_eq!(b.volumes, Some(vec![WORKSPACE.to_string()]));
        assert_eq!(host(&b).binds, None);
        assert_eq!(host(&b).mounts, None);
    }

    #[test]
    fn bind_mode_mounts_the_checkout_and_covers_git_and_pace() {
        let b = body(|spec| {
            spec.workspace = Workspace::Bind {
                host: PathBuf::from("/builds/greeter"),
                hidden: vec![
                    Hidden {
                        name: ".git",
                        dir: false,
                    },
                    Hidden {
                        name: ".pace",
                        dir: true,
                    },
                ],
            };
            spec.cache_volume = Some("pace-cache-x");
        });
        assert_eq!(b.volumes, None);
        assert_eq!(
            host(&b).binds,
            Some(vec![
                "/builds/greeter:/workspace".to_string(),
                "pace-cache-x:/cache".to_string()
            ])
        );
        let mounts = host(&b).mounts.clone().unwrap();
        assert_eq!(mounts.len(), 2);
        let git = &mounts[0];
        assert_eq!(git.target.as_deref(), Some("/workspace/.git"));
        assert_eq!(git.typ, Some(MountType::BIND));
        assert_eq!(git.source.as_deref(), Some("/dev/null"));
        assert_eq!(git.read_only, Some(true));
        let pace = &mounts[1];
        assert_eq!(pace.target.as_deref(), Some("/workspace/.pace"));
        assert_eq!(pace.typ, Some(MountType::TMPFS));
        assert_eq!(pace.read_only, Some(true));
        assert_eq!(pace.tmpfs_options.as_ref().and_then(|t| t.size_bytes), Some(4096));
    }

    #[test]
    fn binding_is_what_was_asked_for_unless_refused() {
        let mut s = settings();
        assert!(!binds_workspace(&s, &BTreeSet::new()));
        s.workspace = WorkspaceMode::Bind;
        assert!(binds_workspace(&s, &BTreeSet::new()));
        assert!(!binds_workspace(&s, &BTreeSet::from([Degradable::WorkspaceBind])));
    }

    #[test]
    fn labels_name_the_run_the_project_and_the_lifetime_per_role() {
        let label = |b: &ContainerCreateBody, key: &str| b.labels.as_ref().unwrap().get(key).cloned();
        let b = body(|_| {});
        assert_eq!(label(&b, LABEL_RUN_ID).as_deref(), Some("r-1"));
        assert_eq!(label(&b, LABEL_DAY).as_deref(), Some("3"));
        assert_eq!(label(&b, LABEL_PROJECT).as_deref(), Some("p0123"));
        assert_eq!(label(&b, LABEL_CREATED).as_deref(), Some("1700000000"));
        assert_eq!(label(&b, LABEL_TIMEOUT).as_deref(), Some("600"));
        let setup = body(|spec| spec.role = Role::Setup);
        assert_eq!(label(&setup, LABEL_TIMEOUT).as_deref(), Some("600"));
        let forge = body(|spec| spec.role = Role::Forge);
        assert_eq!(label(&forge, LABEL_TIMEOUT).as_deref(), Some("43200"));
    }

    #[test]
    fn offline_settings_only_after_a_set_up_with_network_none() {
        let offline = super::super::setup::OFFLINE_ENV[0];
        let offline = format!("{}={}", offline.0, offline.1);
        let cached = |role, prepared| {
            env_of(&body(|spec| {
                spec.role = role;
                spec.cache_volume = Some("pace-cache-x");
                spec.prepared = prepared;
            }))
        };
        assert!(cached(Role::Gate, true).contains(&offline));
        assert!(cached(Role::Forge, true).contains(&offline));
        assert!(!cached(Role::Gate, false).contains(&offline), "no set-up ran");
        assert!(
            !cached(Role::Setup, true).contains(&offline),
            "the set-up itself downloads"
        );
        let mut bridge = settings();
        bridge.network = NetworkMode::Bridge;
        let env = env_of(&body_with(&bridge, &BTreeSet::new(), |spec| {
            spec.cache_volume = Some("pace-cache-x");
            spec.prepared = true;
        }));
        assert!(!env.contains(&offline), "a network to use: no offline settings");
        let uncached = env_of(&body(|spec| spec.prepared = true));
        assert!(uncached.is_empty(), "no cache, no cache variables: {uncached:?}");
    }

    #[test]
    fn a_name_in_sandbox_env_wins_over_cache_and_offline_values() {
        let (cache_name, _) = cache::CACHE_ENV[0];
        let (offline_name, _) = super::super::setup::OFFLINE_ENV[0];
        // `body`'s edit may set any borrowed field: the values live as long as the test.
        let given: &'static [(String, String)] = Box::leak(Box::new([
            (cache_name.to_string(), "mine".to_string()),
            (offline_name.to_string(), "mine too".to_string()),
        ]));
        let env = env_of(&body(|spec| {
            spec.env = given;
            spec.cache_volume = Some("pace-cache-x");
            spec.prepared = true;
        }));
        let set: Vec<&String> = env
            .iter()
            .filter(|e| e.starts_with(&format!("{cache_name}=")))
            .collect();
        assert_eq!(set, vec![&format!("{cache_name}=mine")]);
        let set: Vec<&String> = env
            .iter()
            .filter(|e| e.starts_with(&format!("{offline_name}=")))
            .collect();
        assert_eq!(set, vec![&format!("{offline_name}=mine too")]);
    }

    #[test]
    fn each_refused_option_is_left_out() {
        let s = settings();
        let check = |option: Degradable, off: fn(&HostConfig) -> bool| {
            let degraded = BTreeSet::from([option]);
            let b = body_with(&s, &degraded, |_| {});
            assert!(off(host(&b)), "{option:?} still set");
            // Only that one: everything else stays.
            assert_eq!(host(&b).privileged, Some(false));
        };
        check(Degradable::Memory, |h| h.memory.is_none() && h.memory_swap.is_none());
        check(Degradable::Cpus, |h| h.nano_cpus.is_none());
        check(Degradable::PidsLimit, |h| h.pids_limit.is_none());
        check(Degradable::CapDrop, |h| h.cap_drop.is_none());
        check(Degradable::SecurityOpt, |h| h.security_opt.is_none());
        check(Degradable::Init, |h| h.init.is_none());
        let all = BTreeSet::from([Degradable::Memory, Degradable::Init]);
        let b = body_with(&s, &all, |_| {});
        assert_eq!(host(&b).cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host(&b).pids_limit, Some(256));
    }

    #[test]
    fn stdin_is_opened_only_for_a_streamed_workspace() {
        let closed = body(|_| {});
        assert_eq!(
            (closed.open_stdin, closed.stdin_once, closed.attach_stdin),
            (None, None, None)
        );
        let open = body(|spec| spec.stdin = true);
        assert_eq!(
            (open.open_stdin, open.stdin_once, open.attach_stdin),
            (Some(true), Some(true), Some(true))
        );
    }

    #[test]
    fn container_names_are_safe_for_docker() {
        assert_eq!(
            container_name("20261202 r/1", Role::Gate, 0xab),
            "pace-20261202-r-1-gate-000000ab"
        );
        assert_eq!(container_name("", Role::Forge, 1), "pace-run-forge-00000001");
        // The run id is cut at 40 characters.
        assert_eq!(
            container_name(&"x".repeat(80), Role::Setup, 1),
            format!("pace-{}-setup-00000001", "x".repeat(40))
        );
    }
}
