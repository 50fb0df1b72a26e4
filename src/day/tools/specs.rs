//! Tools as data: one function per tool returns its [`ToolSpec`]; the lists serialise
//! straight into the request. Texts are stable (no dates, ids or settings) so the tools
//! stay inside the provider's prompt cache.

use serde_json::{Value, json};

use crate::llm::ToolSpec;

/// The SCRIBE documents `write_doc` accepts, in the order they are listed.
pub const SCRIBE_DOCS: [&str; 4] = ["product.md", "engineering.md", "security.md", "devops.md"];

fn spec(name: &str, description: &str, input_schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        input_schema,
    }
}

/// FORGE's tools in a fixed order; `confirm_red_phase` only when TDD is enforced.
pub fn forge_tools(tdd: bool) -> Vec<ToolSpec> {
    let mut tools = vec![read_file(), write_file(), list_files(), search(), run()];
    if tdd {
        tools.push(confirm_red_phase());
    }
    tools.push(complete_handoff());
    tools
}

/// SCRIBE's tools in a fixed order.
pub fn scribe_tools() -> Vec<ToolSpec> {
    vec![scribe_read_file(), list_dir(), write_doc(), finish()]
}

pub fn read_file() -> ToolSpec {
    spec(
        "read_file",
        "Read a text file of the repository. Reading a directory lists its entries instead. \
         Files over 256 KiB are cut with a note (use `search` to find the part you need). \
         `.git/`, `.pace/` and secret files such as `.env` cannot be read.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path relative to the repository root, e.g. `src/main.rs`"}
            },
            "required": ["path"]
        }),
    )
}

pub fn write_file() -> ToolSpec {
    spec(
        "write_file",
        "Create a file or replace its whole content; parent directories are created. Only \
         paths inside the source and test directories named in the instructions can be \
         written (at most 1 MiB). Returns the number of bytes written.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path relative to the repository root"},
                "content": {"type": "string", "description": "The complete new content of the file"}
            },
            "required": ["path", "content"]
        }),
    )
}

pub fn list_files() -> ToolSpec {
    spec(
        "list_files",
        "List the entries of a repository directory (default: the root); directories end \
         with `/`. With `recursive: true` the whole tree below is listed, without `.git`, \
         `.pace` and dependency or build directories such as `node_modules` and `target`.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Directory relative to the repository root (default `.`)"},
                "recursive": {"type": "boolean", "description": "List the whole tree below (default false)"}
            }
        }),
    )
}

pub fn search() -> ToolSpec {
    spec(
        "search",
        "Search the repository's text files for a regular expression (Rust regex syntax, \
         e.g. `fn\\s+parse_`, `(?i)todo`). Returns matching lines as `path:line: text`. \
         Binary files, `.git`, `.pace` and dependency or build directories are skipped.",
        json!({
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Regular expression to look for, line by line"},
                "path": {"type": "string", "description": "Directory or file to search in, relative to the repository root (default: everything)"},
                "max_results": {"type": "integer", "description": "Maximum number of matching lines (default 100, at most 500)"}
            },
            "required": ["pattern"]
        }),
    )
}

pub fn run() -> ToolSpec {
    spec(
        "run",
        "Run a shell command (`/bin/sh -c`) in the repository root inside an isolated \
         sandbox container: build, test, lint and format commands. The container holds no \
         credentials. The result starts with `exit code: N`; long output keeps its beginning \
         and its end. Files the command creates or changes are copied back into the \
         repository. Do not commit or push: pace commits your work after complete_handoff.",
        json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command, e.g. `cargo test 2>&1`"},
                "timeout_seconds": {"type": "integer", "description": "Time limit in seconds (default 120; the sandbox's limit caps it)"}
            },
            "required": ["command"]
        }),
    )
}

pub fn confirm_red_phase() -> ToolSpec {
    spec(
        "confirm_red_phase",
        "REQUIRED TDD checkpoint. Call this after writing the tests and running the test \
         suite, once at least one new test fails. Provide the failing test output as \
         evidence. Call it before writing any implementation code; complete_handoff is \
         refused until it has been called.",
        json!({
            "type": "object",
            "properties": {
                "failing_tests": {"type": "string", "description": "The test runner output showing at least one failing test"},
                "tests_written": {"type": "array", "items": {"type": "string"}, "description": "Paths of the test files written in this phase"}
            },
            "required": ["failing_tests", "tests_written"]
        }),
    )
}

pub fn complete_handoff() -> ToolSpec {
    spec(
        "complete_handoff",
        "Signal that the implementation is complete; call this as your final action. pace \
         commits your changes itself, so do not run git commit and do not look up a commit \
         SHA (`commit` is optional and ignored). Describe the work for the reviewers.",
        json!({
            "type": "object",
            "properties": {
                "commit": {"type": "string", "description": "Ignored: pace commits the work and records the SHA"},
                "approach": {"type": "string", "description": "How the story was implemented and why this way"},
                "risk": {"type": "string", "description": "Risk of the change (low, medium or high) and the reason"},
                "dependencies": {"type": "string", "description": "New or changed dependencies, or `none`"},
                "built": {"type": "string", "description": "What now exists: files, functions, behaviour"},
                "edge_cases_tested": {"type": "array", "items": {"type": "string"}, "description": "Edge cases covered by tests"},
                "known_gaps": {"type": "array", "items": {"type": "string"}, "description": "What is not done or not tested (empty if nothing)"}
            },
            "required": ["approach", "risk", "dependencies", "built", "edge_cases_tested", "known_gaps"]
        }),
    )
}

pub fn scribe_read_file() -> ToolSpec {
    spec(
        "read_file",
        "Read a text file. Prefix `docs:` reads from the documentation directory, `repo:` or \
         no prefix from the repository. Examples: `docs:product/mvp.md`, `repo:README.md`, \
         `go.mod`. Files over 64 KiB are cut with a note.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Path with an optional `docs:` or `repo:` prefix"}
            },
            "required": ["path"]
        }),
    )
}

pub fn list_dir() -> ToolSpec {
    spec(
        "list_dir",
        "List one directory level as `dir  name` / `file  name` lines. Prefix `docs:` lists \
         the documentation directory, `repo:` or no prefix the repository. Examples: `docs:`, \
         `docs:technical`, `.`, `src`.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "Directory with an optional `docs:` or `repo:` prefix"}
            },
            "required": ["path"]
        }),
    )
}

pub fn write_doc() -> ToolSpec {
    spec(
        "write_doc",
        "Write one context document (the whole document, Markdown). Allowed names: \
         product.md, engineering.md, security.md, devops.md.",
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": SCRIBE_DOCS, "description": "Which document"},
                "content": {"type": "string", "description": "The complete Markdown document"}
            },
            "required": ["name", "content"]
        }),
    )
}

pub fn finish() -> ToolSpec {
    spec(
        "finish",
        "Call this once all four documents are written, as your final action.",
        json!({
            "type": "object",
            "properties": {
                "summary": {"type": "string", "description": "What was written and from which sources"}
            },
            "required": ["summary"]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tools: &[ToolSpec]) -> Vec<&str> {
        tools.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn forge_order_and_tdd() {
        assert_eq!(
            names(&forge_tools(true)),
            [
                "read_file",
                "write_file",
                "list_files",
                "search",
                "run",
                "confirm_red_phase",
                "complete_handoff"
            ]
        );
        assert!(!names(&forge_tools(false)).contains(&"confirm_red_phase"));
        assert_eq!(names(&scribe_tools()), ["read_file", "list_dir", "write_doc", "finish"]);
    }

    #[test]
    fn schemas_are_objects_with_known_required_properties() {
        for tool in forge_tools(true).into_iter().chain(scribe_tools()) {
            assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
            let props = tool.input_schema["properties"].as_object().cloned().unwrap_or_default();
            for req in tool.input_schema["required"].as_array().cloned().unwrap_or_default() {
                let req = req.as_str().unwrap_or_default().to_string();
                assert!(props.contains_key(&req), "{}: {req}", tool.name);
            }
            assert!(!tool.description.is_empty());
        }
        // The model does not need a SHA: pace commits.
        let handoff = complete_handoff();
        let required = handoff.input_schema["required"].as_array().cloned().unwrap_or_default();
        assert!(!required.contains(&json!("commit")));
    }

    #[test]
    fn specs_are_stable() {
        assert_eq!(forge_tools(true), forge_tools(true));
        let text = serde_json::to_string(&forge_tools(true)).unwrap_or_default();
        assert!(!text.contains("202"), "no dates in tool text");
    }
}
