//! The file as written: every key of `pace.config.yaml`, all optional, each value with its
//! position. Filled by walking the [`Node`] tree so that every wrong type and unknown key is
//! reported (not just the first), then resolved into `Settings` by `config::resolve`.
//!
//! The shape is declared once per section with [`raw_struct!`]: the YAML key, the field, and
//! its type. The type decides how a scalar is read (type-driven): a string field takes any
//! scalar as text, a bool field takes YAML 1.1 booleans (`yes`/`no`/`on`/`off`), numbers must
//! be numbers. `null` means "not set" everywhere.

use std::time::Duration;

use super::diagnostic::{Sink, suggest};
use super::yaml::{Kind, Node};

/// A value and where it was written (1-based line and column of the value).
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub line: u64,
    pub column: u64,
}

impl<T> At<T> {
    pub fn new(value: T, node: &Node) -> Self {
        Self {
            value,
            line: node.line,
            column: node.column,
        }
    }
}

/// Reading one type out of a node; problems go to `sink`, `None` when unusable.
pub trait FromNode: Sized {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self>;
}

/// `a.b` (or `b` at the root).
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "<root>" } else { path }
}

pub fn type_error(node: &Node, path: &str, expected: &str, sink: &mut Sink) {
    sink.error(
        node.line,
        node.column,
        format!("`{}`: expected {expected}, found {}", shown(path), node.describe()),
    );
}

/// A plain (unquoted) scalar's text, else a type error.
fn plain_scalar<'n>(node: &'n Node, path: &str, expected: &str, sink: &mut Sink) -> Option<&'n str> {
    match &node.kind {
        Kind::Scalar { text, plain: true } => Some(text.as_str()),
        _ => {
            type_error(node, path, expected, sink);
            None
        }
    }
}

impl FromNode for String {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        match node.scalar() {
            Some(text) => Some(text.to_string()),
            None => {
                type_error(node, path, "a string", sink);
                None
            }
        }
    }
}

impl FromNode for bool {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        let expected = "a boolean (`true`/`false`)";
        let text = plain_scalar(node, path, expected, sink)?;
        match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => Some(true),
            "false" | "no" | "off" | "n" => Some(false),
            _ => {
                type_error(node, path, expected, sink);
                None
            }
        }
    }
}

macro_rules! from_node_int {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl FromNode for $ty {
            fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
                let text = plain_scalar(node, path, $expected, sink)?;
                match text.trim_start_matches('+').parse::<$ty>() {
                    Ok(value) => Some(value),
                    Err(_) => {
                        type_error(node, path, $expected, sink);
                        None
                    }
                }
            }
        }
    )*};
}

from_node_int!(u32 => "a non-negative integer", u64 => "a non-negative integer", i64 => "an integer");

impl FromNode for f64 {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        let text = plain_scalar(node, path, "a number", sink)?;
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Some(value),
            _ => {
                type_error(node, path, "a number", sink);
                None
            }
        }
    }
}

impl<T: FromNode> FromNode for At<T> {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        T::from_node(node, path, sink).map(|value| At::new(value, node))
    }
}

impl<T: FromNode> FromNode for Vec<T> {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        let Kind::Seq(items) = &node.kind else {
            type_error(node, path, "a list", sink);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match T::from_node(item, &format!("{path}[{i}]"), sink) {
                Some(value) => out.push(value),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// A field: `None` for `null`, a type error leaves it `None` too (already reported).
pub fn field<T: FromNode>(node: &Node, path: &str, sink: &mut Sink) -> Option<At<T>> {
    if node.is_null() {
        return None;
    }
    At::<T>::from_node(node, path, sink)
}

/// Reports a key the section does not know, with a suggestion when one is close.
pub fn unknown_key(key: &Node, name: &str, path: &str, known: &[&str], sink: &mut Sink) {
    let mut message = format!("unknown key `{name}` in `{}`", shown(path));
    if let Some(close) = suggest(name, known) {
        message.push_str(&format!(" (did you mean `{close}`?)"));
    }
    sink.error(key.line, key.column, message);
}

/// Declares a raw section: `"yaml_key" => field: Type`, plus the keys of the original that
/// pace accepts but ignores (one warning each). `ignored: ["*"]` accepts any other key silently.
macro_rules! raw_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $key:literal => $field:ident : $ty:ty ),* $(,)?
        }
        ignored: [$($ign:literal),* $(,)?]
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( pub $field: Option<$crate::config::raw::At<$ty>>, )*
            /// Position of the section itself (for "missing key" errors).
            pub line: u64,
            pub column: u64,
            /// Keys present with a value that was already reported as wrong.
            pub invalid: Vec<&'static str>,
        }

        impl $name {
            pub const KEYS: &'static [&'static str] = &[$($key),*];
            pub const IGNORED: &'static [&'static str] = &[$($ign),*];

            /// Whether `key` was written but its value was already reported (so a
            /// "missing" error would be noise).
            pub fn reported(&self, key: &str) -> bool {
                self.invalid.contains(&key)
            }
        }

        impl $crate::config::raw::FromNode for $name {
            fn from_node(
                node: &$crate::config::yaml::Node,
                path: &str,
                sink: &mut $crate::config::diagnostic::Sink,
            ) -> Option<Self> {
                use $crate::config::raw::{field, join, type_error, unknown_key};
                let $crate::config::yaml::Kind::Map(entries) = &node.kind else {
                    type_error(node, path, "a mapping", sink);
                    return None;
                };
                let mut out = Self { line: node.line, column: node.column, ..Self::default() };
                for (key_node, value) in entries {
                    let Some(key) = key_node.scalar() else {
                        type_error(key_node, path, "a string key", sink);
                        continue;
                    };
                    let child = join(path, key);
                    match key {
                        $( $key => {
                            out.$field = field::<$ty>(value, &child, sink);
                            if out.$field.is_none() && !value.is_null() {
                                out.invalid.push($key);
                            }
                        } )*
                        _ if Self::IGNORED.contains(&key) => sink.warning(
                            key_node.line,
                            key_node.column,
                            format!("pace does not implement `{child}`; it is ignored"),
                        ),
                        _ if Self::IGNORED.contains(&"*") => {}
                        _ => unknown_key(key_node, key, path, Self::KEYS, sink),
                    }
                }
                Some(out)
            }
        }
    };
}
pub(crate) use raw_struct;

/// `sandbox.memory`: bytes, or a number with `k`/`m`/`g`/`t` (binary units, optional `b`/`ib`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory(pub i64);

impl FromNode for Memory {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        let expected = "a memory size such as `2g`, `512m` or a number of bytes";
        let Some(text) = node.scalar() else {
            type_error(node, path, expected, sink);
            return None;
        };
        match parse_memory(text) {
            Some(bytes) if bytes > 0 => Some(Memory(bytes)),
            _ => {
                type_error(node, path, expected, sink);
                None
            }
        }
    }
}

pub fn parse_memory(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let unit_start = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(unit_start);
    let number: i64 = digits.parse().ok()?;
    let shift = match unit.trim_start().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    number.checked_mul(1_i64 << shift)
}

/// `sandbox.log_limit`: a size as for [`Memory`], where `0` is allowed (no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromNode for ByteSize {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        let expected = "a size such as `256m`, `1g`, a number of bytes, or `0` for no limit";
        let Some(text) = node.scalar() else {
            type_error(node, path, expected, sink);
            return None;
        };
        match parse_memory(text).and_then(|bytes| u64::try_from(bytes).ok()) {
            Some(bytes) => Some(ByteSize(bytes)),
            None => {
                type_error(node, path, expected, sink);
                None
            }
        }
    }
}

/// `sandbox.timeout`: seconds, or `90s`, `15m`, `1h`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl FromNode for Seconds {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        let expected = "a duration such as `900`, `90s`, `15m` or `1h`";
        let Some(text) = node.scalar() else {
            type_error(node, path, expected, sink);
            return None;
        };
        match parse_duration(text) {
            Some(d) if !d.is_zero() => Some(Seconds(d)),
            _ => {
                type_error(node, path, expected, sink);
                None
            }
        }
    }
}

pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(value.checked_mul(unit)?)?;
    }
    number.is_empty().then_some(Duration::from_secs(total))
}

/// `platform.tracker`: a name (`jira`) or a section `{type, project}`.
#[derive(Debug, Clone, PartialEq)]
pub enum RawTracker {
    Name(String),
    Section(RawTrackerSection),
}

impl FromNode for RawTracker {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        match &node.kind {
            Kind::Map(_) => RawTrackerSection::from_node(node, path, sink).map(RawTracker::Section),
            Kind::Scalar { text, .. } => Some(RawTracker::Name(text.clone())),
            Kind::Seq(_) => {
                type_error(
                    node,
                    path,
                    "a tracker name (`jira`) or a mapping with `type` and `project`",
                    sink,
                );
                None
            }
        }
    }
}

raw_struct! {
    pub struct RawTrackerSection {
        "type" => kind: String,
        "project" => project: String,
    }
    ignored: []
}

raw_struct! {
    /// The whole `pace.config.yaml`.
    pub struct RawConfig {
        "framework_version" => framework_version: String,
        "product" => product: RawProduct,
        "sprint" => sprint: RawSprint,
        "source" => source: RawSource,
        "tech" => tech: RawTech,
        "platform" => platform: RawPlatform,
        "advisory" => advisory: RawAdvisory,
        "reporter" => reporter: RawReporter,
        "llm" => llm: RawLlm,
        "cost_control" => cost_control: RawCostControl,
        "forge" => forge: RawForge,
        "releases" => releases: Vec<At<RawRelease>>,
        "release" => release: RawRelease,
        "sandbox" => sandbox: RawSandbox,
        "budget" => budget: RawBudget,
        "git" => git: RawGit,
    }
    ignored: ["notifications", "alerts", "cron", "training", "updates", "plugins"]
}

raw_struct! {
    pub struct RawProduct {
        "name" => name: String,
        "description" => description: String,
    }
    ignored: ["github_org"]
}

raw_struct! {
    pub struct RawSprint {
        "duration_days" => duration_days: u32,
        "clearance_every" => clearance_every: u32,
    }
    ignored: []
}

raw_struct! {
    pub struct RawSource {
        "dirs" => dirs: Vec<At<RawSourceDir>>,
        "docs_dir" => docs_dir: String,
        "test_dirs" => test_dirs: Vec<At<String>>,
    }
    ignored: []
}

raw_struct! {
    pub struct RawSourceDir {
        "name" => name: String,
        "path" => path: String,
        "language" => language: String,
        "description" => description: String,
    }
    ignored: []
}

raw_struct! {
    pub struct RawTech {
        "primary_language" => primary_language: String,
        "secondary_language" => secondary_language: String,
        "ci_system" => ci_system: String,
        "test_command" => test_command: String,
        "build_command" => build_command: String,
        "setup_command" => setup_command: String,
    }
    ignored: []
}

raw_struct! {
    pub struct RawPlatform {
        "type" => kind: String,
        "ci" => ci: String,
        "tracker" => tracker: RawTracker,
        "target_branch" => target_branch: String,
        "wait_for_ci" => wait_for_ci: bool,
        "allow_default_branch" => allow_default_branch: bool,
    }
    ignored: []
}

raw_struct! {
    pub struct RawAdvisory {
        "push_to_issues" => push_to_issues: bool,
    }
    ignored: []
}

raw_struct! {
    pub struct RawReporter {
        "timezone" => timezone: String,
    }
    ignored: []
}

raw_struct! {
    pub struct RawLlm {
        "provider" => provider: String,
        "model" => model: String,
        "analysis_model" => analysis_model: String,
        "base_url" => base_url: String,
        "api_key_env" => api_key_env: String,
        "cassette" => cassette: String,
        "max_retries" => max_retries: u32,
        "timeout_seconds" => timeout_seconds: u64,
        "limits" => limits: RawLlmLimits,
        "prices" => prices: RawPrices,
        "structured_output" => structured_output: String,
    }
    ignored: []
}

raw_struct! {
    /// One model's price in `llm.prices`, USD per million tokens.
    pub struct RawPrice {
        "input" => input: f64,
        "output" => output: f64,
        "cache_read" => cache_read: f64,
        "cache_write" => cache_write: f64,
    }
    ignored: []
}

/// `llm.prices`: model name → [`RawPrice`]. The keys are model names, not fixed fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawPrices(pub Vec<(At<String>, At<RawPrice>)>);

impl FromNode for RawPrices {
    fn from_node(node: &Node, path: &str, sink: &mut Sink) -> Option<Self> {
        let Kind::Map(entries) = &node.kind else {
            type_error(node, path, "a mapping of model names to prices", sink);
            return None;
        };
        let mut out = Vec::new();
        for (key_node, value) in entries {
            let Some(model) = key_node.scalar() else {
                type_error(key_node, path, "a model name", sink);
                continue;
            };
            if let Some(price) = At::<RawPrice>::from_node(value, &join(path, model), sink) {
                out.push((At::new(model.to_string(), key_node), price));
            }
        }
        Some(Self(out))
    }
}

raw_struct! {
    pub struct RawLlmLimits {
        "forge_input_tokens" => forge_input_tokens: u32,
        "forge_output_tokens" => forge_output_tokens: u32,
        "analysis_input_tokens" => analysis_input_tokens: u32,
        "analysis_output_tokens" => analysis_output_tokens: u32,
    }
    ignored: []
}

raw_struct! {
    pub struct RawCostControl {
        "max_story_ac" => max_story_ac: u32,
        "max_story_cost_usd" => max_story_cost_usd: f64,
    }
    ignored: []
}

raw_struct! {
    pub struct RawForge {
        "tdd_enforcement" => tdd_enforcement: bool,
        "coverage_rule" => coverage_rule: bool,
        "max_iterations" => max_iterations: u32,
        "retry_iterations" => retry_iterations: u32,
        "max_retries" => max_retries: u32,
        "setup_on_change" => setup_on_change: bool,
    }
    ignored: ["compression_model", "file_hints_enabled", "file_hints_confidence_threshold", "fork_enabled"]
}

raw_struct! {
    pub struct RawRelease {
        "name" => name: String,
        "release_days" => release_days: u32,
        "sprint_days" => sprint_days: u32,
        "plan_file" => plan_file: String,
        "status" => status: String,
    }
    ignored: []
}

raw_struct! {
    pub struct RawSandbox {
        "image" => image: String,
        "network" => network: String,
        "env" => env: Vec<At<String>>,
        "memory" => memory: Memory,
        "cpus" => cpus: f64,
        "pids_limit" => pids_limit: i64,
        "timeout" => timeout: Seconds,
        "user" => user: String,
        "keep" => keep: bool,
        "collect" => collect: Vec<At<String>>,
        "workspace" => workspace: String,
        "caches" => caches: bool,
        "log_limit" => log_limit: ByteSize,
        "pull" => pull: String,
        "setup_network" => setup_network: String,
        "egress" => egress: Vec<At<String>>,
        "egress_for_tests" => egress_for_tests: bool,
    }
    ignored: []
}

raw_struct! {
    pub struct RawBudget {
        "max_usd" => max_usd: f64,
        "max_tokens" => max_tokens: u64,
        "max_minutes" => max_minutes: f64,
    }
    ignored: []
}

raw_struct! {
    pub struct RawGit {
        "author_name" => author_name: String,
        "author_email" => author_email: String,
    }
    ignored: []
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_duration_formats() {
        assert_eq!(parse_memory("2g"), Some(2 << 30));
        assert_eq!(parse_memory("512M"), Some(512 << 20));
        assert_eq!(parse_memory("1GiB"), Some(1 << 30));
        assert_eq!(parse_memory("1048576"), Some(1_048_576));
        assert_eq!(parse_memory("2 gigs"), None);
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15x"), None);
        assert_eq!(parse_duration("m"), None);
    }

    fn walk(text: &str) -> Vec<String> {
        let mut sink = Sink::new("c.yaml".into());
        if let Some(root) = crate::config::yaml::parse(text, &mut sink) {
            let _ = RawConfig::from_node(&root, "", &mut sink);
        }
        sink.diagnostics.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn structural_type_errors() {
        assert_eq!(
            walk("- a\n"),
            vec!["c.yaml:1:1: error: `<root>`: expected a mapping, found a list"]
        );
        assert_eq!(
            walk("? [a]\n: 1\n"),
            vec!["c.yaml:1:3: error: `<root>`: expected a string key, found a list"]
        );
        assert_eq!(
            walk("llm: fast\n"),
            vec!["c.yaml:1:6: error: `llm`: expected a mapping, found `fast`"]
        );
        assert_eq!(
            walk("sandbox:\n  env: [A, {b: 1}]\n"),
            vec!["c.yaml:2:12: error: `sandbox.env[1]`: expected a string, found a mapping"]
        );
        assert_eq!(
            walk("sandbox:\n  log_limit: lots\n"),
            vec![
                "c.yaml:2:14: error: `sandbox.log_limit`: expected a size such as `256m`, `1g`, a number of bytes, or `0` for no limit, found `lots`"
            ]
        );
        assert!(walk("sandbox: {log_limit: 0}\n").is_empty());
        // null means "not set"; YAML 1.1 booleans for bool fields; numbers as text for strings.
        assert!(walk("llm: ~\nadvisory: {push_to_issues: On}\nframework_version: 1.0\n").is_empty());
    }
}
