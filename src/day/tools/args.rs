//! The JSON-schema side of the tools: building a spec, checking a call's arguments
//! against it (the router does this before any handler runs), and reading the arguments.

use serde_json::Value;

use crate::llm::ToolSpec;
use crate::text::truncate_chars;

/// Key the OpenAI adapter puts the raw text under when a call's arguments are not JSON.
pub const INVALID_ARGUMENTS_KEY: &str = "_invalid_arguments";

/// A tool's spec: what the model is shown.
pub(super) fn spec(name: &str, description: &str, input_schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        input_schema,
        anthropic_type: None,
    }
}

/// A string argument, `""` when missing: the router already refused wrong types, so this
/// default is only a second line of defence.
pub(super) fn arg_str<'v>(input: &'v Value, name: &str) -> &'v str {
    input.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// A list of strings from an array, or from a markdown bullet string (one item per line,
/// `- `/`* `/`• ` stripped, empty lines and lone bullets dropped).
pub(super) fn string_list(value: Option<&Value>) -> Vec<String> {
    let items: Vec<String> = match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => s.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    items
        .iter()
        .map(|line| {
            let t = line.trim();
            t.strip_prefix("- ")
                .or_else(|| t.strip_prefix("* "))
                .or_else(|| t.strip_prefix("• "))
                .unwrap_or(t)
                .trim()
                .to_string()
        })
        .filter(|t| !t.is_empty() && !matches!(t.as_str(), "-" | "*" | "•"))
        .collect()
}

/// Checks `input` against the spec's schema: an object, every required property present,
/// every present property of the declared type. Returns the `ERROR: ...` text otherwise.
pub(super) fn check_arguments(spec: &ToolSpec, input: &Value) -> Result<(), String> {
    let tool = spec.name.as_str();
    let Some(args) = input.as_object() else {
        return Err(format!(
            "ERROR: the arguments of {tool} must be a JSON object, got {}",
            type_name(input)
        ));
    };
    if let Some(raw) = args.get(INVALID_ARGUMENTS_KEY) {
        let raw = raw.as_str().map_or_else(|| raw.to_string(), str::to_string);
        let reason = match serde_json::from_str::<Value>(&raw) {
            Err(e) => e.to_string(),
            Ok(_) => "not a JSON object".to_string(),
        };
        return Err(format!(
            "ERROR: the arguments of {tool} are not valid JSON: {reason} (received {} characters starting with {:?}). Send the arguments as one JSON object",
            raw.chars().count(),
            truncate_chars(&raw, 120, "...")
        ));
    }
    let empty = serde_json::Map::new();
    let properties = spec
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = spec
        .input_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (arg, schema) in properties {
        let expected = schema.get("type").and_then(Value::as_str).unwrap_or("string");
        let value = args.get(arg).filter(|v| !v.is_null());
        match value {
            None if required.contains(&arg.as_str()) => {
                return Err(format!(
                    "ERROR: {tool} requires a '{arg}' argument ({})",
                    type_label(expected, item_type(schema))
                ));
            }
            Some(v) if !type_matches(expected, item_type(schema), v) => {
                return Err(format!(
                    "ERROR: {tool} requires a '{arg}' argument ({}), got {}",
                    type_label(expected, item_type(schema)),
                    type_name(v)
                ));
            }
            None | Some(_) => {}
        }
    }
    Ok(())
}

/// The declared type of an array's items (`"string"` when the schema does not say).
fn item_type(schema: &Value) -> &str {
    schema
        .pointer("/items/type")
        .and_then(Value::as_str)
        .unwrap_or("string")
}

fn type_matches(expected: &str, items: &str, v: &Value) -> bool {
    match expected {
        "string" => v.is_string(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        // Numbers (`view_range`): a JSON array of them, nothing else.
        "array" if items == "integer" => v.as_array().is_some_and(|a| a.iter().all(is_integer)),
        // Lists of strings; a markdown bullet string is accepted and split by the handler.
        "array" => v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "object" => v.is_object(),
        _ => true,
    }
}

fn is_integer(v: &Value) -> bool {
    v.is_u64() || v.is_i64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_label<'a>(expected: &'a str, items: &str) -> &'a str {
    match (expected, items) {
        ("array", "integer") => "array of integers",
        ("array", _) => "array of strings",
        (other, _) => other,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
