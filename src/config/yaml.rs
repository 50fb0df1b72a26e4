//! Reading a YAML file into a tree of positioned nodes that the validators walk.
//!
//! Two passes over the text:
//! 1. serde-saphyr with tight budgets and alias limits (`IgnoredAny`): syntax errors, alias
//!    bombs, excessive depth or node counts stop here with one positioned diagnostic.
//! 2. the same parser's event stream (granit-parser, re-exported by serde-saphyr) is turned
//!    into [`Node`]s that keep each scalar's source text, whether it was quoted, and its
//!    line/column. Duplicate keys are reported here (all of them), aliases are resolved,
//!    merge keys (`<<`) are applied.
//!
//! Scalars stay text: the validators decide the type from the field they fill (type-driven, so
//! `version: 1.0` into a string is `"1.0"`, and `yes`/`no` are booleans only for bool fields).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

use super::diagnostic::Sink;

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Nodes materialised through aliases, in total (a second guard behind the budget pass).
const MAX_ALIAS_NODES: usize = 100_000;
/// Nesting deeper than this is not a config file.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `text` is the scalar's value; `plain` is false for quoted, block and `!!str` scalars.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    /// 1-based.
    pub line: u64,
    /// 1-based.
    pub column: u64,
}

impl Node {
    /// A plain `~`, `null` or empty scalar (YAML null).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar, `None` for collections.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "null".into(),
            Kind::Scalar { text, plain: true } => format!("`{}`", shorten(text)),
            Kind::Scalar { text, .. } => format!("the quoted string `\"{}\"`", shorten(text)),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
        }
    }

    fn count(&self) -> usize {
        match &self.kind {
            Kind::Scalar { .. } => 1,
            Kind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Kind::Map(entries) => 1 + entries.iter().map(|(k, v)| k.count() + v.count()).sum::<usize>(),
        }
    }
}

fn shorten(text: &str) -> String {
    crate::text::truncate_chars(text, 40, "...")
}

/// Reads a file as UTF-8, refusing files over [`MAX_FILE_BYTES`]. Problems go to `sink`.
pub fn read_source(path: &Path, sink: &mut Sink) -> Option<String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) => {
            sink.error(0, 0, format!("cannot read `{}`: {err}", path.display()));
            return None;
        }
    };
    let mut bytes = Vec::new();
    if let Err(err) = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
        sink.error(0, 0, format!("cannot read `{}`: {err}", path.display()));
        return None;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        sink.error_hint(
            0,
            0,
            format!("`{}` is larger than 1 MiB; refusing to parse it", sink.file().display()),
            "a pace config or plan is a few kilobytes; check that the right file is named",
        );
        return None;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Some(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text)),
        Err(err) => {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            // `valid` is valid UTF-8 by construction.
            let prefix = String::from_utf8_lossy(valid);
            let line = prefix.matches('\n').count() as u64 + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
            sink.error_hint(
                line,
                column,
                format!("`{}` is not valid UTF-8", sink.file().display()),
                "save the file as UTF-8",
            );
            None
        }
    }
}

/// Parses the first YAML document of `text`. `None` when nothing usable came out (the
/// reason is in `sink`). An empty document is reported as an error.
pub fn parse(text: &str, sink: &mut Sink) -> Option<Node> {
    if let Err(err) = budget_pass(text) {
        let (line, column) = err.location().map_or((1, 1), |l| (l.line().max(1), l.column().max(1)));
        let message = saphyr_message(&err);
        if message.contains("Documents") {
            sink.error_hint(
                line,
                column,
                "the file holds more than one YAML document; pace reads one",
                "remove the extra `---` line",
            );
        } else if message.contains("recursion limit") || message.contains("Depth") {
            sink.error(line, column, "invalid YAML: nested too deeply");
        } else if message.contains("replay") || message.contains("budget breached") {
            sink.error_hint(
                line,
                column,
                message,
                "the file expands to too much data (a YAML alias bomb?); write the values out",
            );
        } else {
            sink.error(line, column, message);
        }
        return None;
    }
    let mut builder = Builder {
        events: Parser::new_from_str(text),
        anchors: HashMap::new(),
        alias_nodes: 0,
        sink,
    };
    match builder.document() {
        Ok(Some(node)) => Some(node),
        Ok(None) => {
            builder
                .sink
                .error_hint(1, 1, "the file is empty", "see the README for a minimal example");
            None
        }
        Err((line, column, message)) => {
            builder.sink.error(line, column, message);
            None
        }
    }
}

fn budget_pass(text: &str) -> Result<serde::de::IgnoredAny, serde_saphyr::Error> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_nodes = 200_000;
    budget.max_events = 400_000;
    budget.max_documents = 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 100_000;
    // Duplicates are reported (all of them, with positions) by the tree builder.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options)
}

/// serde-saphyr's message without its own position suffix (we print positions first).
fn saphyr_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let cut = first.find(" at line ").map_or(first, |i| &first[..i]);
    let message = cut.trim_end_matches(['.', ':']).trim();
    if message.is_empty() {
        "invalid YAML".into()
    } else {
        format!("invalid YAML: {message}")
    }
}

type BuildError = (u64, u64, String);

struct Builder<'a, 's> {
    events: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    alias_nodes: usize,
    sink: &'s mut Sink,
}

fn pos(span: &Span) -> (u64, u64) {
    (span.start.line() as u64, span.start.col() as u64 + 1)
}

impl<'a> Builder<'a, '_> {
    fn next(&mut self) -> Result<(Event<'a>, Span), BuildError> {
        loop {
            match self.events.next() {
                None => return Err((1, 1, "unexpected end of YAML".into())),
                Some(Err(err)) => {
                    let m = err.marker();
                    return Err((
                        m.line() as u64,
                        m.col() as u64 + 1,
                        format!("invalid YAML: {}", err.info()),
                    ));
                }
                Some(Ok((Event::Comment(..), _))) => {}
                Some(Ok((event, span))) => return Ok((event, span)),
            }
        }
    }

    fn document(&mut self) -> Result<Option<Node>, BuildError> {
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd => {}
                Event::StreamEnd => return Ok(None),
                Event::DocumentStart(..) => {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::DocumentEnd) {
                        return Ok(None);
                    }
                    let node = self.node(event, span, 0)?;
                    // A plain empty document parses as one null scalar.
                    return Ok(if node.is_null() { None } else { Some(node) });
                }
                _ => {
                    return Err((pos(&span).0, pos(&span).1, "invalid YAML: unexpected event".into()));
                }
            }
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, BuildError> {
        let (line, column) = pos(&span);
        if depth > MAX_DEPTH {
            return Err((line, column, "YAML nested too deeply".into()));
        }
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tagged_str = tag.as_ref().is_some_and(|t| t.suffix() == "str");
                let plain = matches!(style, ScalarStyle::Plain) && !tagged_str;
                (
                    Node {
                        kind: Kind::Scalar {
                            text: text.into_owned(),
                            plain,
                        },
                        line,
                        column,
                    },
                    anchor,
                )
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                (
                    Node {
                        kind: Kind::Seq(items),
                        line,
                        column,
                    },
                    anchor,
                )
            }
            Event::MappingStart(_, anchor, _) => (self.mapping(line, column, depth)?, anchor),
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err((line, column, "alias to an unknown anchor".into()));
                };
                self.alias_nodes += target.count();
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err((line, column, "too many nodes through aliases (YAML alias bomb?)".into()));
                }
                let mut node = target.clone();
                node.line = line;
                node.column = column;
                return Ok(node);
            }
            _ => return Err((line, column, "invalid YAML: unexpected event".into())),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn mapping(&mut self, line: u64, column: u64, depth: usize) -> Result<Node, BuildError> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        let mut merged: Vec<(Node, Node)> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                break;
            }
            let key = self.node(event, span, depth + 1)?;
            let (event, span) = self.next()?;
            let value = self.node(event, span, depth + 1)?;
            if matches!(&key.kind, Kind::Scalar { text, plain: true } if text == "<<") {
                self.merge_source(&value, &mut merged);
                continue;
            }
            if let Some(text) = key.scalar()
                && let Some((first, _)) = entries.iter().find(|(k, _)| k.scalar() == Some(text))
            {
                let message = format!(
                    "duplicate key `{}` (first defined at line {})",
                    shorten(text),
                    first.line
                );
                self.sink
                    .error_hint(key.line, key.column, message, "remove one of them");
                continue;
            }
            entries.push((key, value));
        }
        for (key, value) in merged {
            if !entries
                .iter()
                .any(|(k, _)| k.scalar().is_some() && k.scalar() == key.scalar())
            {
                entries.push((key, value));
            }
        }
        Ok(Node {
            kind: Kind::Map(entries),
            line,
            column,
        })
    }

    /// Entries of a `<<` value (a mapping or a list of mappings); earlier sources win.
    fn merge_source(&mut self, value: &Node, merged: &mut Vec<(Node, Node)>) {
        let sources: Vec<&Node> = match &value.kind {
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![value],
        };
        for source in sources {
            match &source.kind {
                Kind::Map(entries) => {
                    for (k, v) in entries {
                        if !merged
                            .iter()
                            .any(|(m, _)| m.scalar().is_some() && m.scalar() == k.scalar())
                        {
                            merged.push((k.clone(), v.clone()));
                        }
                    }
                }
                _ => self.sink.error(
                    source.line,
                    source.column,
                    "a merge key `<<` needs a mapping (or a list of mappings)",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> (Option<Node>, Vec<String>) {
        let mut sink = Sink::new("t.yaml".into());
        let node = parse(text, &mut sink);
        (node, sink.diagnostics.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn keeps_positions_and_text() {
        let (node, diags) = parse_ok("a:\n  b: 1.0\n  c: 'yes'\n");
        assert!(diags.is_empty(), "{diags:?}");
        let Some(Node {
            kind: Kind::Map(entries),
            ..
        }) = node
        else {
            panic!("not a map")
        };
        let Kind::Map(inner) = &entries[0].1.kind else {
            panic!("not a map")
        };
        assert_eq!(inner[0].1.scalar(), Some("1.0"));
        assert_eq!((inner[0].0.line, inner[0].0.column), (2, 3));
        assert_eq!(
            inner[1].1.kind,
            Kind::Scalar {
                text: "yes".into(),
                plain: false
            }
        );
    }

    #[test]
    fn reports_every_duplicate() {
        let (_, diags) = parse_ok("a: 1\nb: 2\na: 3\nb: 4\n");
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert!(
            diags[0].starts_with("t.yaml:3:1: error: duplicate key `a`"),
            "{diags:?}"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let (node, diags) = parse_ok("a: [1, 2\nb: 3\n");
        assert!(node.is_none());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].starts_with("t.yaml:"), "{diags:?}");
    }

    #[test]
    fn aliases_and_merges_resolve() {
        let (node, diags) = parse_ok("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n");
        assert!(diags.is_empty(), "{diags:?}");
        let Some(Node {
            kind: Kind::Map(entries),
            ..
        }) = node
        else {
            panic!("not a map")
        };
        let Kind::Map(other) = &entries[1].1.kind else {
            panic!("not a map")
        };
        let y = other
            .iter()
            .find(|(k, _)| k.scalar() == Some("y"))
            .map(|(_, v)| v.scalar());
        assert_eq!(y, Some(Some("3")));
        assert_eq!(other.len(), 2);
    }

    #[test]
    fn empty_is_an_error() {
        for text in ["", "# only a comment\n", "---\n"] {
            let (node, diags) = parse_ok(text);
            assert!(node.is_none());
            assert_eq!(
                diags,
                vec!["t.yaml:1:1: error: the file is empty\n  hint: see the README for a minimal example"]
            );
        }
    }

    #[test]
    fn hostile_inputs_give_one_positioned_error() {
        let deep = format!("a: {}1{}\n", "[".repeat(500), "]".repeat(500));
        let keys = format!("a: 1\n{}", (0..3).map(|_| "\tb: 2\n").collect::<String>());
        for text in [
            "a: 1\n---\nb: 2\n",
            deep.as_str(),
            keys.as_str(),
            "a: *nope\n",
            "a: 'open\n",
        ] {
            let (node, diags) = parse_ok(text);
            assert!(node.is_none(), "{text:?}");
            assert_eq!(diags.len(), 1, "{text:?}: {diags:?}");
            assert!(
                diags[0].starts_with("t.yaml:") && !diags[0].starts_with("t.yaml: "),
                "{diags:?}"
            );
        }
    }
}
