//! The agents' outputs: field names as in the original's docs (story card, handoff,
//! gate/sentinel/conduit reports), parsed from model text and validated.
//!
//! Validation returns every problem at once so the re-ask can name them all.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    Ship,
    Hold,
    Advisory,
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ship => "SHIP",
            Self::Hold => "HOLD",
            Self::Advisory => "ADVISORY",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoryCard {
    pub day: u32,
    pub agent: String,
    pub story: String,
    pub given: String,
    pub when: String,
    pub then: String,
    pub acceptance: Vec<String>,
    #[serde(default)]
    pub out_of_scope: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    pub day: u32,
    pub agent: String,
    pub commit: String,
    pub approach: String,
    pub risk: String,
    pub dependencies: String,
    pub built: String,
    pub edge_cases_tested: Vec<String>,
    pub known_gaps: Vec<String>,
    pub iterations_used: u32,
    pub tdd_red_phase_confirmed: bool,
    pub forge_cost_usd: f64,
    /// Files FORGE changed in this attempt (repository-relative).
    #[serde(default)]
    pub files_changed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionResult {
    pub criterion: String,
    pub result: String,
    pub evidence: String,
}

/// What the test run itself said: the verdict on the tests comes from here, never from
/// the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestRun {
    pub command: String,
    pub exit_code: i64,
    pub timed_out: bool,
    pub tests: u64,
    pub failures: u64,
    pub errors: u64,
    pub skipped: u64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TestRun {
    pub fn passed(&self) -> bool {
        self.exit_code == 0 && !self.timed_out && self.failures == 0 && self.errors == 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub day: u32,
    pub agent: String,
    pub criteria_results: Vec<CriterionResult>,
    #[serde(default)]
    pub blockers: Vec<String>,
    #[serde(default)]
    pub deferred: Vec<String>,
    pub gate_decision: Decision,
    #[serde(default)]
    pub hold_reason: String,
    #[serde(default)]
    pub test_run: TestRun,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub check: String,
    pub result: String,
    pub evidence: String,
}

/// SENTINEL and CONDUIT share this shape; only the decision key differs on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewReport {
    pub day: u32,
    pub agent: String,
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub advisories: Vec<String>,
    #[serde(default)]
    pub blockers: Vec<String>,
    pub decision: Decision,
    #[serde(default)]
    pub hold_reason: String,
}

impl ReviewReport {
    /// The file form: `sentinel_decision` / `conduit_decision` as in the original's docs.
    pub fn to_file_value(&self) -> Value {
        let key = format!("{}_decision", self.agent.to_ascii_lowercase());
        serde_json::json!({
            "day": self.day,
            "agent": self.agent,
            "findings": self.findings,
            "advisories": self.advisories,
            "blockers": self.blockers,
            key: self.decision,
            "hold_reason": self.hold_reason,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScribeReport {
    pub documents_written: Vec<String>,
    pub source_files_read: Vec<String>,
    pub tool_iterations: u32,
    pub missing_docs: Vec<String>,
    #[serde(default)]
    pub summary: String,
}

/// The model's text → a YAML value: the first fenced block if any, else the whole text.
/// The JSON schemas of the answers PRIME, GATE, SENTINEL and CONDUIT give, for the
/// providers' native structured output. They describe what the model writes (pace adds
/// `day`, `agent` and the test run itself) and follow the validation below: the same
/// parse functions read the JSON answer (JSON is YAML), so a schema that let through
/// what validation refuses would only cost a re-ask.
///
/// Written to OpenAI's strict rules (the strictest of the providers): every object has
/// `additionalProperties: false` and lists every property in `required`; optional fields
/// are required but may be empty (`[]`, `""`), which validation accepts; no length or
/// numeric keywords (outside the subset every strict mode accepts).
pub mod answer_schema {
    use serde_json::{Value, json};

    fn text() -> Value {
        json!({"type": "string"})
    }

    fn texts() -> Value {
        json!({"type": "array", "items": {"type": "string"}})
    }

    fn object(properties: &[(&str, Value)]) -> Value {
        let required: Vec<&str> = properties.iter().map(|(k, _)| *k).collect();
        let properties: serde_json::Map<String, Value> =
            properties.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect();
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }

    fn results(fields: [&str; 3], result_values: &[&str]) -> Value {
        let [name, result, evidence] = fields;
        json!({"type": "array", "items": object(&[
            (name, text()),
            (result, json!({"type": "string", "enum": result_values})),
            (evidence, text()),
        ])})
    }

    /// PRIME's story card (`parse_story_card`).
    pub fn story_card() -> Value {
        object(&[
            ("story", text()),
            ("given", text()),
            ("when", text()),
            ("then", text()),
            // At least one item: validation says so (length keywords are outside the
            // subset every provider's strict mode accepts).
            ("acceptance", texts()),
            ("out_of_scope", texts()),
        ])
    }

    /// GATE's criteria mapping (`parse_gate_criteria`).
    pub fn gate_criteria() -> Value {
        object(&[
            (
                "criteria_results",
                results(["criterion", "result", "evidence"], &["PASS", "FAIL", "PARTIAL"]),
            ),
            ("blockers", texts()),
            ("deferred", texts()),
            ("hold_reason", text()),
        ])
    }

    /// SENTINEL's or CONDUIT's review (`parse_review`): the decision key carries the
    /// agent's name (`sentinel_decision`).
    pub fn review(agent: &str) -> Value {
        let decision_key = format!("{}_decision", agent.to_ascii_lowercase());
        object(&[
            (
                "findings",
                results(["check", "result", "evidence"], &["PASS", "FAIL", "ADVISORY"]),
            ),
            ("advisories", texts()),
            ("blockers", texts()),
            (
                &decision_key,
                json!({"type": "string", "enum": ["SHIP", "HOLD", "ADVISORY"]}),
            ),
            ("hold_reason", text()),
        ])
    }
}

/// The model's YAML, with an error on one line a user and the model can act on: no source
/// snippet (the reason goes into the HOLD and the re-ask), and without serde-saphyr's advice
/// to programmers (its `DuplicateKeyPolicy` suggestion).
fn parse_model_yaml(body: &str) -> Result<Value, String> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(body, options).map_err(|e| {
        let message = e
            .to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
        format!("the answer is not valid YAML: {}", message.trim())
    })
}

pub fn yaml_from_model_text(text: &str) -> Result<Value, String> {
    let body = first_fenced_block(text).unwrap_or(text);
    if body.trim().is_empty() {
        return Err("the answer was empty; expected a YAML document".into());
    }
    let parsed: Result<Value, String> = parse_model_yaml(body);
    // A structured (JSON) answer after a line of prose (a paused turn continued) reads
    // as YAML text or not at all: the JSON object that ends the answer is the answer.
    let value = match parsed {
        Ok(v) if v.is_object() => v,
        other => match json_after_prose(text).and_then(|json| serde_json::from_str::<Value>(json).ok()) {
            Some(json) if json.is_object() => json,
            _ => other?,
        },
    };
    if !value.is_object() {
        return Err("the answer must be a YAML mapping (key: value lines)".into());
    }
    Ok(value)
}

/// From the first line that opens a JSON object to the end, when the answer ends with one.
fn json_after_prose(text: &str) -> Option<&str> {
    let text = text.trim_end();
    if !text.ends_with('}') {
        return None;
    }
    let start = text
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| text[i..].starts_with('{'))?;
    Some(&text[start..])
}

fn first_fenced_block(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    let body_start = after.find('\n')? + 1;
    let body = &after[body_start..];
    let end = body.find("```")?;
    Some(&body[..end])
}

/// Collects every schema problem of one document.
#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn require_string(&mut self, v: &Value, key: &str) {
        match v.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) => self.0.push(format!("`{key}` must not be empty")),
            Some(Value::Null) | None => self.0.push(format!("`{key}` is missing")),
            Some(other) => self
                .0
                .push(format!("`{key}` must be a string, got {}", type_name(other))),
        }
    }

    pub fn require_string_list(&mut self, v: &Value, key: &str, min_items: usize) {
        match v.get(key) {
            Some(Value::Array(items)) => {
                if items.len() < min_items {
                    self.0.push(format!("`{key}` needs at least {min_items} item(s)"));
                }
                if items.iter().any(|i| !i.is_string()) {
                    self.0.push(format!("`{key}` must be a list of strings"));
                }
            }
            Some(Value::Null) | None if min_items == 0 => {}
            Some(Value::Null) | None => self.0.push(format!("`{key}` is missing")),
            Some(other) => self.0.push(format!("`{key}` must be a list, got {}", type_name(other))),
        }
    }

    pub fn require_enum(&mut self, v: &Value, key: &str, allowed: &[&str]) {
        match v.get(key).and_then(Value::as_str) {
            Some(s) if allowed.contains(&s.trim().to_ascii_uppercase().as_str()) => {}
            Some(s) => self
                .0
                .push(format!("`{key}` must be one of {}, got `{s}`", allowed.join(", "))),
            None => self
                .0
                .push(format!("`{key}` is missing (one of {})", allowed.join(", "))),
        }
    }

    pub fn require_list_of_objects(&mut self, v: &Value, key: &str, fields: &[&str], enum_field: (&str, &[&str])) {
        let Some(items) = v.get(key).and_then(Value::as_array) else {
            self.0.push(format!("`{key}` is missing or not a list"));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            for field in fields {
                if item.get(field).and_then(Value::as_str).is_none() {
                    self.0.push(format!("`{key}[{i}].{field}` is missing or not a string"));
                }
            }
            let (name, allowed) = enum_field;
            if let Some(s) = item.get(name).and_then(Value::as_str)
                && !allowed.contains(&s.trim().to_ascii_uppercase().as_str())
            {
                self.0.push(format!(
                    "`{key}[{i}].{name}` must be one of {}, got `{s}`",
                    allowed.join(", ")
                ));
            }
        }
    }

    pub fn into_result(self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0.join("; "))
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The entries of the list under `key`, each converted by `make` (already validated).
fn items<T>(v: &Value, key: &str, make: impl Fn(&Value) -> T) -> Vec<T> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|list| list.iter().map(make).collect())
        .unwrap_or_default()
}

fn string(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn decision(v: &Value, key: &str) -> Decision {
    match string(v, key).to_ascii_uppercase().as_str() {
        "SHIP" => Decision::Ship,
        "ADVISORY" => Decision::Advisory,
        _ => Decision::Hold,
    }
}

pub fn parse_story_card(text: &str, day: u32) -> Result<StoryCard, String> {
    let v = yaml_from_model_text(text)?;
    let mut p = Problems::default();
    for key in ["story", "given", "when", "then"] {
        p.require_string(&v, key);
    }
    p.require_string_list(&v, "acceptance", 1);
    p.require_string_list(&v, "out_of_scope", 0);
    p.into_result()?;
    Ok(StoryCard {
        day,
        agent: "PRIME".into(),
        story: string(&v, "story"),
        given: string(&v, "given"),
        when: string(&v, "when"),
        then: string(&v, "then"),
        acceptance: strings(&v, "acceptance"),
        out_of_scope: strings(&v, "out_of_scope"),
    })
}

/// GATE's model part: the evidence per criterion. The decision is computed by GATE.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateMapping {
    pub criteria: Vec<CriterionResult>,
    pub blockers: Vec<String>,
    pub deferred: Vec<String>,
    pub hold_reason: String,
}

pub fn parse_gate_criteria(text: &str) -> Result<GateMapping, String> {
    let v = yaml_from_model_text(text)?;
    let mut p = Problems::default();
    p.require_list_of_objects(
        &v,
        "criteria_results",
        &["criterion", "result", "evidence"],
        ("result", &["PASS", "FAIL", "PARTIAL"]),
    );
    p.require_string_list(&v, "blockers", 0);
    p.require_string_list(&v, "deferred", 0);
    p.into_result()?;
    let criteria = items(&v, "criteria_results", |i| CriterionResult {
        criterion: string(i, "criterion"),
        result: string(i, "result").to_ascii_uppercase(),
        evidence: string(i, "evidence"),
    });
    Ok(GateMapping {
        criteria,
        blockers: strings(&v, "blockers"),
        deferred: strings(&v, "deferred"),
        hold_reason: string(&v, "hold_reason"),
    })
}

pub fn parse_review(text: &str, day: u32, agent: &str) -> Result<ReviewReport, String> {
    let v = yaml_from_model_text(text)?;
    let decision_key = format!("{}_decision", agent.to_ascii_lowercase());
    let mut p = Problems::default();
    p.require_list_of_objects(
        &v,
        "findings",
        &["check", "result", "evidence"],
        ("result", &["PASS", "FAIL", "ADVISORY"]),
    );
    p.require_string_list(&v, "advisories", 0);
    p.require_string_list(&v, "blockers", 0);
    p.require_enum(&v, &decision_key, &["SHIP", "HOLD", "ADVISORY"]);
    p.into_result()?;
    let findings = items(&v, "findings", |i| Finding {
        check: string(i, "check"),
        result: string(i, "result").to_ascii_uppercase(),
        evidence: string(i, "evidence"),
    });
    let report = ReviewReport {
        day,
        agent: agent.to_string(),
        findings,
        advisories: strings(&v, "advisories"),
        blockers: strings(&v, "blockers"),
        decision: decision(&v, &decision_key),
        hold_reason: string(&v, "hold_reason"),
    };
    check_review_consistency(&report)?;
    Ok(report)
}

/// The decision rules of the original's docs: HOLD needs a reason, ADVISORY needs advisories.
fn check_review_consistency(r: &ReviewReport) -> Result<(), String> {
    match r.decision {
        Decision::Hold if r.hold_reason.is_empty() && r.blockers.is_empty() => {
            Err("a HOLD needs a specific `hold_reason` (or `blockers`)".into())
        }
        Decision::Advisory if r.advisories.is_empty() => {
            Err("an ADVISORY needs at least one item in `advisories`".into())
        }
        _ => Ok(()),
    }
}

/// The fields of an accepted `complete_handoff` that come from the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HandoffFields {
    pub approach: String,
    pub risk: String,
    pub dependencies: String,
    pub built: String,
    pub edge_cases_tested: Vec<String>,
    pub known_gaps: Vec<String>,
}

/// `complete_handoff` input → the handoff's model fields (lists coerced from bullets).
pub fn handoff_fields(input: &Value) -> Result<HandoffFields, String> {
    let mut p = Problems::default();
    for key in ["approach", "risk", "built"] {
        p.require_string(input, key);
    }
    p.into_result()?;
    Ok(HandoffFields {
        approach: string(input, "approach"),
        risk: string(input, "risk"),
        dependencies: string(input, "dependencies"),
        built: string(input, "built"),
        edge_cases_tested: bullet_list(input.get("edge_cases_tested")),
        known_gaps: bullet_list(input.get("known_gaps")),
    })
}

/// A list, or a markdown bullet string turned into one (models send both).
pub fn bullet_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(|s| s.trim().to_string()))
            .collect(),
        Some(Value::String(s)) => s
            .lines()
            .map(|l| l.trim().trim_start_matches(['-', '*']).trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenAI's strict rules, the strictest of the providers': every object forbids extra
    /// properties and requires every property; no length keywords.
    fn assert_strict(schema: &Value, at: &str) {
        if schema["type"] == "object" {
            assert_eq!(schema["additionalProperties"], Value::Bool(false), "{at}");
            let required: Vec<&str> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for (name, property) in schema["properties"].as_object().unwrap() {
                assert!(required.contains(&name.as_str()), "{at}.{name} is not required");
                assert_strict(property, &format!("{at}.{name}"));
            }
        }
        for keyword in ["minItems", "maxItems", "minLength", "maxLength", "pattern"] {
            assert!(schema.get(keyword).is_none(), "{at} uses `{keyword}`");
        }
        if let Some(items) = schema.get("items") {
            assert_strict(items, &format!("{at}[]"));
        }
    }

    fn property_names(schema: &Value) -> Vec<String> {
        let mut names: Vec<String> = schema["properties"].as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    /// The artifact's keys minus what pace fills in itself.
    fn artifact_keys(artifact: &Value, pace_fills: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = artifact
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !pace_fills.contains(&k.as_str()))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn answer_schemas_are_strict_and_match_the_artifacts() {
        let card = answer_schema::story_card();
        let gate = answer_schema::gate_criteria();
        let review = answer_schema::review("SENTINEL");
        for (name, schema) in [("story_card", &card), ("gate_criteria", &gate), ("review", &review)] {
            assert_strict(schema, name);
        }

        // A real answer per schema: parsed and validated by the YAML path's functions,
        // and its artifact has exactly the schema's fields (plus what pace adds).
        let answer = serde_json::json!({
            "story": "As a user I greet", "given": "g", "when": "w", "then": "t",
            "acceptance": ["prints Hello"], "out_of_scope": [],
        });
        let parsed = parse_story_card(&answer.to_string(), 3).unwrap();
        assert_eq!(parsed.acceptance, vec!["prints Hello".to_string()]);
        let artifact = serde_json::to_value(&parsed).unwrap();
        assert_eq!(property_names(&card), artifact_keys(&artifact, &["day", "agent"]));

        let answer = serde_json::json!({
            "criteria_results": [{"criterion": "c", "result": "PASS", "evidence": "ok"}],
            "blockers": [], "deferred": [], "hold_reason": "",
        });
        let mapping = parse_gate_criteria(&answer.to_string()).unwrap();
        assert_eq!(mapping.criteria[0].result, "PASS");
        let report = serde_json::to_value(GateReport {
            day: 1,
            agent: "GATE".into(),
            criteria_results: mapping.criteria,
            blockers: mapping.blockers,
            deferred: mapping.deferred,
            gate_decision: Decision::Ship,
            hold_reason: mapping.hold_reason,
            test_run: TestRun::default(),
        })
        .unwrap();
        assert_eq!(
            property_names(&gate),
            artifact_keys(&report, &["day", "agent", "gate_decision", "test_run"])
        );
        let item = &gate["properties"]["criteria_results"]["items"];
        assert_eq!(property_names(item), artifact_keys(&report["criteria_results"][0], &[]));

        let answer = serde_json::json!({
            "findings": [{"check": "secrets", "result": "PASS", "evidence": "none"}],
            "advisories": [], "blockers": [], "sentinel_decision": "SHIP", "hold_reason": "",
        });
        let parsed = parse_review(&answer.to_string(), 1, "SENTINEL").unwrap();
        assert_eq!(parsed.decision, Decision::Ship);
        let file = parsed.to_file_value();
        assert_eq!(property_names(&review), artifact_keys(&file, &["day", "agent"]));
        assert!(
            answer_schema::review("CONDUIT")["required"]
                .to_string()
                .contains("conduit_decision")
        );
    }

    #[test]
    fn a_json_answer_after_a_line_of_prose_is_read() {
        let text = "Mapping the evidence.\n{\"criteria_results\": [], \"blockers\": [\"b\"], \"deferred\": [], \"hold_reason\": \"\"}";
        assert_eq!(parse_gate_criteria(text).unwrap().blockers, vec!["b".to_string()]);
        let broken = "Mapping the evidence.\n{\"criteria_results\": [";
        assert!(parse_gate_criteria(broken).unwrap_err().contains("not valid YAML"));
        let duplicate = yaml_from_model_text("Day: 10\nDay: 11\n").unwrap_err();
        assert!(duplicate.contains("duplicate mapping key: Day"), "{duplicate}");
        assert!(
            !duplicate.contains("DuplicateKeyPolicy") && !duplicate.contains('\n'),
            "{duplicate}"
        );
    }

    #[test]
    fn a_json_answer_that_fails_validation_names_the_problem() {
        let answer = serde_json::json!({
            "story": "s", "given": "g", "when": "w", "then": "t", "acceptance": [], "out_of_scope": [],
        });
        let problem = parse_story_card(&answer.to_string(), 1).unwrap_err();
        assert_eq!(problem, "`acceptance` needs at least 1 item(s)");
    }

    #[test]
    fn story_card_from_fenced_yaml() {
        let text = "Here:\n```yaml\nstory: As a user, when I greet, I see hello.\ngiven: a name\nwhen: greet runs\nthen: it prints hello\nacceptance:\n  - prints hello NAME\nout_of_scope: []\n```\n";
        let card = parse_story_card(text, 3).unwrap();
        assert_eq!(card.day, 3);
        assert_eq!(card.acceptance, vec!["prints hello NAME"]);
    }

    #[test]
    fn story_card_lists_every_problem() {
        let err = parse_story_card("story: x\nacceptance: []\n", 1).unwrap_err();
        for needle in [
            "`given` is missing",
            "`when` is missing",
            "`then` is missing",
            "`acceptance` needs at least 1",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    #[test]
    fn review_hold_without_reason_is_invalid() {
        let err = parse_review("findings: []\nsentinel_decision: HOLD\n", 1, "SENTINEL").unwrap_err();
        assert!(err.contains("hold_reason"), "{err}");
    }

    #[test]
    fn invalid_yaml_is_reported() {
        assert!(
            yaml_from_model_text("story: [unclosed")
                .unwrap_err()
                .contains("not valid YAML")
        );
        assert!(yaml_from_model_text("just words").is_err());
    }

    #[test]
    fn bullets_become_lists() {
        let v = serde_json::json!("- a\n- b\n\n-\n");
        assert_eq!(bullet_list(Some(&v)), vec!["a", "b"]);
    }
}
