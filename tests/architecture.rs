//! The dependency rule of ARCHITECTURE.md, checked on the source instead of held by
//! discipline: `day` uses the other modules and none of them uses `day`; the modules
//! below the commands form no import circle.
//!
//! A module's imports are the `crate::<module>` paths in its files outside `#[cfg(test)]`
//! code (tests may reach anywhere). Submodules count as their top-level module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer that turns the command line into calls: it may use everything.
const COMMAND_LAYER: [&str; 3] = ["lib", "main", "commands"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/day/tools/run.rs` → `day`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file without its test module (by convention the file's last item).
fn production_code(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

fn crate_paths(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

/// Which top-level module imports which, from `src/`.
fn import_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let from = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        // Inside a file of module `m`, `crate::m::...` is a path within itself.
        let used: Vec<String> = crate_paths(production_code(&text))
            .into_iter()
            .filter(|to| *to != from && modules.contains(to))
            .collect();
        graph.entry(from).or_default().extend(used);
    }
    graph
}

/// A circle through `start` among the modules of `graph`, if there is one.
fn circle_through(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![start.to_string()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_module_below_the_commands_uses_day() {
    let graph = import_graph();
    let users: Vec<&String> = graph
        .iter()
        .filter(|(from, to)| !COMMAND_LAYER.contains(&from.as_str()) && to.contains("day"))
        .map(|(from, _)| from)
        .collect();
    assert!(
        users.is_empty(),
        "`day` uses the other modules, never the reverse (ARCHITECTURE.md); imported by {users:?}"
    );
}

#[test]
fn the_modules_below_the_commands_form_no_circle() {
    let mut graph = import_graph();
    graph.retain(|from, _| !COMMAND_LAYER.contains(&from.as_str()));
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|m| circle_through(&graph, m))
        .map(|c| c.join(" → "))
        .collect();
    assert!(circles.is_empty(), "import circles (ARCHITECTURE.md): {circles:#?}");
}

#[test]
fn the_graph_sees_real_imports() {
    // The checks above would pass on an empty graph: make sure the scan finds what is there.
    let graph = import_graph();
    for (from, to) in [("day", "sandbox"), ("day", "llm"), ("platform", "git"), ("llm", "net")] {
        assert!(graph[from].contains(to), "{from} → {to} not found in {graph:?}");
    }
}
