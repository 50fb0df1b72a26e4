//! The tools as one enum: [`Tool::of`] gives a toolset's tools in the order the model sees
//! them, [`Tool::spec`] their specs (serialised straight into the request) and
//! [`Tool::call`] is the one place a call reaches its handler. Each tool's spec and handler
//! live together in its own file. Spec texts are stable (no dates, ids or settings) so the
//! tools stay inside the provider's prompt cache.
//!
//! FORGE reads through the editor's `view` (line numbers, ranges): one way to read, the
//! one Claude is trained on. `read_file` is no longer offered but still answered
//! ([`Tool::accepted`]), for histories and cassettes recorded before the editor and for
//! models that call it from habit.

use serde_json::Value;

use super::{
    ToolContext, ToolOutcome, Toolset, complete_handoff, confirm_red_phase, edit, finish, list_dir, list_files,
    read_file, run, scribe_read_file, search, write_doc, write_file,
};
use crate::llm::ToolSpec;

/// Every tool of FORGE and SCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The text editor (`str_replace_based_edit_tool`): `view`, `str_replace`, `insert`, `create`.
    Edit,
    ReadFile,
    WriteFile,
    ListFiles,
    Search,
    Run,
    ConfirmRedPhase,
    CompleteHandoff,
    /// SCRIBE's `read_file` (prefixes, docs root, smaller cap).
    ScribeReadFile,
    ListDir,
    WriteDoc,
    Finish,
}

impl Tool {
    /// The tools of `toolset` in a fixed order; `confirm_red_phase` only when TDD is
    /// enforced.
    pub fn of(toolset: Toolset) -> Vec<Self> {
        match toolset {
            Toolset::Forge { tdd } => {
                let mut tools = vec![Self::Edit, Self::WriteFile, Self::ListFiles, Self::Search, Self::Run];
                if tdd {
                    tools.push(Self::ConfirmRedPhase);
                }
                tools.push(Self::CompleteHandoff);
                tools
            }
            Toolset::Scribe => vec![Self::ScribeReadFile, Self::ListDir, Self::WriteDoc, Self::Finish],
        }
    }

    /// The tools of `toolset` a call may reach: those offered ([`Tool::of`]) and, for
    /// FORGE, `read_file`, which the editor's `view` replaced (see the module docs).
    pub fn accepted(toolset: Toolset) -> Vec<Self> {
        let mut tools = Self::of(toolset);
        if matches!(toolset, Toolset::Forge { .. }) {
            tools.push(Self::ReadFile);
        }
        tools
    }

    /// The tool of `toolset` the model calls `name`, if it has one.
    pub fn find(toolset: Toolset, name: &str) -> Option<Self> {
        Self::accepted(toolset).into_iter().find(|t| t.name() == name)
    }

    /// The name the model calls it by.
    pub fn name(self) -> &'static str {
        match self {
            Self::Edit => edit::NAME,
            Self::ReadFile => read_file::NAME,
            Self::WriteFile => write_file::NAME,
            Self::ListFiles => list_files::NAME,
            Self::Search => search::NAME,
            Self::Run => run::NAME,
            Self::ConfirmRedPhase => confirm_red_phase::NAME,
            Self::CompleteHandoff => complete_handoff::NAME,
            Self::ScribeReadFile => scribe_read_file::NAME,
            Self::ListDir => list_dir::NAME,
            Self::WriteDoc => write_doc::NAME,
            Self::Finish => finish::NAME,
        }
    }

    pub fn spec(self) -> ToolSpec {
        match self {
            Self::Edit => edit::spec(),
            Self::ReadFile => read_file::spec(),
            Self::WriteFile => write_file::spec(),
            Self::ListFiles => list_files::spec(),
            Self::Search => search::spec(),
            Self::Run => run::spec(),
            Self::ConfirmRedPhase => confirm_red_phase::spec(),
            Self::CompleteHandoff => complete_handoff::spec(),
            Self::ScribeReadFile => scribe_read_file::spec(),
            Self::ListDir => list_dir::spec(),
            Self::WriteDoc => write_doc::spec(),
            Self::Finish => finish::spec(),
        }
    }

    /// Runs the handler. Arguments were checked against [`Tool::spec`] by the router.
    pub(super) async fn call(self, ctx: &mut ToolContext<'_>, input: &Value) -> ToolOutcome {
        match self {
            Self::Edit => edit::call(ctx, input),
            Self::ReadFile => read_file::call(ctx, input),
            Self::WriteFile => write_file::call(ctx, input),
            Self::ListFiles => list_files::call(ctx, input),
            Self::Search => search::call(ctx, input),
            Self::Run => run::call(ctx, input).await,
            Self::ConfirmRedPhase => confirm_red_phase::call(ctx, input),
            Self::CompleteHandoff => complete_handoff::call(ctx, input),
            Self::ScribeReadFile => scribe_read_file::call(ctx, input),
            Self::ListDir => list_dir::call(ctx, input),
            Self::WriteDoc => write_doc::call(ctx, input),
            Self::Finish => finish::call(ctx, input),
        }
    }
}

/// FORGE's specs in a fixed order; `confirm_red_phase` only when TDD is enforced.
pub fn forge_tools(tdd: bool) -> Vec<ToolSpec> {
    Tool::of(Toolset::Forge { tdd }).into_iter().map(Tool::spec).collect()
}

/// SCRIBE's specs in a fixed order.
pub fn scribe_tools() -> Vec<ToolSpec> {
    Tool::of(Toolset::Scribe).into_iter().map(Tool::spec).collect()
}

// Here rather than beside `ToolContext` so the context does not depend on the tools.
impl ToolContext<'_> {
    /// The specs to send with each request, in a stable order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        Tool::of(self.toolset).into_iter().map(Tool::spec).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(tools: &[ToolSpec]) -> Vec<&str> {
        tools.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn forge_order_and_tdd() {
        assert_eq!(
            names(&forge_tools(true)),
            [
                "str_replace_based_edit_tool",
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
    fn each_tool_is_found_by_the_name_in_its_spec() {
        for toolset in [Toolset::Forge { tdd: true }, Toolset::Scribe] {
            for tool in Tool::accepted(toolset) {
                assert_eq!(tool.spec().name, tool.name());
                assert_eq!(Tool::find(toolset, tool.name()), Some(tool));
            }
        }
        assert_eq!(Tool::find(Toolset::Scribe, "read_file"), Some(Tool::ScribeReadFile));
        assert_eq!(
            Tool::find(Toolset::Forge { tdd: true }, "read_file"),
            Some(Tool::ReadFile)
        );
        assert_eq!(Tool::find(Toolset::Forge { tdd: false }, "confirm_red_phase"), None);
        assert_eq!(Tool::find(Toolset::Forge { tdd: true }, "write_doc"), None);
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
        let handoff = complete_handoff::spec();
        let required = handoff.input_schema["required"].as_array().cloned().unwrap_or_default();
        assert!(!required.contains(&json!("commit")));
    }

    /// The specs are what the recorded example day was offered, to the byte: a replayed day
    /// must see the same tools.
    #[test]
    fn specs_match_the_recorded_example_cassette() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/greeter/cassette/day-1.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        let recorded = |agent: &str| -> Value {
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["request"]["agent"] == agent)
                .map(|e| e["request"]["tools"].clone())
                .unwrap()
        };
        assert_eq!(recorded("FORGE"), serde_json::to_value(forge_tools(true)).unwrap());
        assert_eq!(recorded("SCRIBE"), serde_json::to_value(scribe_tools()).unwrap());
    }

    #[test]
    fn specs_are_stable() {
        assert_eq!(forge_tools(true), forge_tools(true));
        // The editor's type (`text_editor_20250728`) is a fixed version name of the API,
        // not a date that changes.
        let text: Vec<String> = forge_tools(true)
            .iter()
            .map(|t| format!("{} {} {}", t.name, t.description, t.input_schema))
            .collect();
        assert!(!text.concat().contains("202"), "no dates in tool text");
    }

    /// `read_file` is not offered to FORGE (the editor's `view` reads) but still answered.
    #[test]
    fn forge_reads_through_the_editor_and_read_file_still_answers() {
        let offered = names(&forge_tools(true)).join(" ");
        assert!(!offered.contains("read_file"), "{offered}");
        assert_eq!(
            Tool::find(Toolset::Forge { tdd: false }, "read_file"),
            Some(Tool::ReadFile)
        );
        let editor = Tool::Edit.spec();
        assert_eq!(editor.anthropic_type.as_deref(), Some("text_editor_20250728"));
        assert_eq!(
            editor.input_schema["properties"]["command"]["enum"],
            json!(["view", "str_replace", "insert", "create"])
        );
    }
}
