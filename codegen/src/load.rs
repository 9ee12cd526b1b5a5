//! Parsing and validation of graph.yaml: its text in, a checked [`Graph`] or every problem
//! found out.
//!
//! [`raw`] mirrors the file with serde and keeps positions. A problem there (bad YAML, an
//! unknown or missing key) stops the load, since the checks would only repeat it. Otherwise
//! every check below runs and reports all it finds, and the [`Graph`] is built only when
//! none found anything.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::{fmt, iter};

use marked_yaml::Span;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::graph::{Enum, Field, FieldType, Graph, Role, State, Transition, Version};
use raw::{Name, RawEnum, RawGraph, RawState, RawTransition};

/// Parses and validates the graph in `source`; `file` names it in the diagnostics.
pub fn load(file: &str, source: &str) -> Result<Graph, Diagnostics> {
    let mut report = Report {
        file,
        diagnostics: Vec::new(),
    };
    let graph = raw::parse(source, &mut report).and_then(|raw| check(&raw, &mut report));
    graph.ok_or_else(|| report.finish())
}

/// The problems found so far in one file.
struct Report<'f> {
    file: &'f str,
    diagnostics: Vec<Diagnostic>,
}

impl Report<'_> {
    /// Records a problem at the start of `span`, or at the file's start for a blank span.
    fn error(&mut self, span: &Span, code: Code, message: impl Into<String>) {
        let (line, column) = span.start().map_or((1, 1), |at| (at.line(), at.column()));
        self.diagnostics.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            code,
            message: message.into(),
        });
    }

    fn is_clean(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// Every problem, in file order.
    fn finish(mut self) -> Diagnostics {
        self.diagnostics.sort_by_key(|d| (d.line, d.column));
        Diagnostics(self.diagnostics)
    }
}

/// The line a span starts on, for messages that point back at an earlier declaration.
fn line_of(span: &Span) -> usize {
    span.start().map_or(1, |at| at.line())
}

/// graph.yaml as written: serde types that keep every position, before any name resolves.
mod raw {
    use std::fmt;
    use std::marker::PhantomData;

    use marked_yaml::{Error, LoadError, LoaderOptions, Node, Span, Spanned};
    use serde::Deserialize;
    use serde::de::{Deserializer, MapAccess, Visitor};

    use super::{Report, line_of};
    use crate::diagnostic::Code;

    /// A name or other scalar, with where it is written.
    pub(super) type Name = Spanned<String>;

    #[derive(Debug, Deserialize)]
    #[serde(
        deny_unknown_fields,
        expecting = "a graph: a mapping with `version`, `name`, `roles`, `states` and `transitions`"
    )]
    pub(super) struct RawGraph {
        pub version: Name,
        pub name: Name,
        #[serde(default)]
        pub description: String,
        roles: Entries<Name, Checked<String>>,
        #[serde(default)]
        enums: Entries<Name, Checked<RawEnum>>,
        states: Entries<Name, Checked<RawState>>,
        transitions: Vec<Spanned<Checked<RawTransition>>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "an enum: a mapping with `values`")]
    pub(super) struct RawEnum {
        #[serde(default)]
        pub description: String,
        pub subset_of: Option<Name>,
        pub values: Vec<Name>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(
        deny_unknown_fields,
        expecting = "a state: a mapping of `initial`, `final`, `description` and `data`"
    )]
    pub(super) struct RawState {
        #[serde(default)]
        pub initial: bool,
        #[serde(default, rename = "final")]
        pub is_final: bool,
        #[serde(default)]
        pub description: String,
        /// Field name to type name (`Text`, `Text?`).
        #[serde(default)]
        pub data: Entries<Name, Name>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(
        deny_unknown_fields,
        expecting = "a transition: a mapping with `name`, `from`, `to` and `roles`"
    )]
    pub(super) struct RawTransition {
        pub name: Name,
        pub from: Name,
        pub to: Name,
        pub roles: Vec<Name>,
        #[serde(default)]
        pub description: String,
        #[serde(default)]
        pub payload: Entries<Name, Name>,
    }

    /// Parses `source`, or reports why it cannot be read as a graph file.
    pub(super) fn parse(source: &str, report: &mut Report) -> Option<RawGraph> {
        // By default marked-yaml keeps the last of two equal keys without a word.
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        let node = marked_yaml::parse_yaml_with_options(0, source, options)
            .map_err(|error| report_load_error(error, report))
            .ok()?;
        let raw: RawGraph = marked_yaml::from_node(&node)
            .map_err(|error| {
                let span = top_level_error_span(&error, &node);
                report.error(&span, Code::Schema, lowercase_first(&error.to_string()));
            })
            .ok()?;
        raw.report_entry_errors(report);
        report.is_clean().then_some(raw)
    }

    /// Where a schema error of the top level is. marked-yaml gives no position for an
    /// unknown key, so it is looked up among the top-level keys; else the file's start.
    fn top_level_error_span(error: &Error, top: &Node) -> Span {
        if let Some(at) = error.start_mark() {
            return Span::new_start(at);
        }
        let unknown_key = match (error, top.as_mapping()) {
            (Error::UnknownFieldError(key, ..), Some(top)) => {
                top.keys().find(|k| k.as_str() == key)
            }
            _ => None,
        };
        unknown_key.map_or(Span::new_blank(), |key| *key.span())
    }

    fn report_load_error(error: LoadError, report: &mut Report) {
        let (span, code, message) = match error {
            LoadError::DuplicateKey(keys) => (
                *keys.key.span(),
                Code::Duplicate,
                format!(
                    "`{}` is declared twice (first on line {})",
                    keys.key.as_str(),
                    line_of(keys.prev_key.span())
                ),
            ),
            LoadError::ScanError(at, scan) => (
                Span::new_start(at),
                Code::Syntax,
                format!("invalid YAML: {}", scan.info()),
            ),
            LoadError::TopLevelMustBeMapping(at) | LoadError::TopLevelMustBeSequence(at) => (
                Span::new_start(at),
                Code::Syntax,
                "the file must be a mapping of keys (`version:`, `states:`, ...)".to_owned(),
            ),
            LoadError::UnexpectedAnchor(at) => (
                Span::new_start(at),
                Code::Syntax,
                "YAML anchors are not supported".to_owned(),
            ),
            LoadError::MappingKeyMustBeScalar(at) => (
                Span::new_start(at),
                Code::Syntax,
                "a key must be a plain name".to_owned(),
            ),
            LoadError::UnexpectedTag(at) => (
                Span::new_start(at),
                Code::Syntax,
                "YAML tags are not supported".to_owned(),
            ),
        };
        report.error(&span, code, message);
    }

    /// marked-yaml capitalises some messages and serde none; diagnostics read as one voice.
    fn lowercase_first(message: &str) -> String {
        let mut chars = message.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_lowercase().chain(chars).collect()
        })
    }

    impl RawGraph {
        pub fn roles(&self) -> impl Iterator<Item = (&Name, &String)> {
            self.roles.checked()
        }

        pub fn enums(&self) -> impl Iterator<Item = (&Name, &RawEnum)> {
            self.enums.checked()
        }

        pub fn states(&self) -> impl Iterator<Item = (&Name, &RawState)> {
            self.states.checked()
        }

        pub fn transitions(&self) -> impl Iterator<Item = &RawTransition> {
            self.transitions.iter().filter_map(|t| t.0.as_ref().ok())
        }

        /// Reports every entry that did not deserialize, where it starts.
        fn report_entry_errors(&self, report: &mut Report) {
            self.roles.report_errors("role", report);
            self.enums.report_errors("enum", report);
            self.states.report_errors("state", report);
            for transition in &self.transitions {
                if let Err(message) = &transition.0 {
                    let message = format!("transition: {}", lowercase_first(message));
                    report.error(transition.span(), Code::Schema, message);
                }
            }
        }
    }

    /// An entry that deserialized, or the message of the error that stopped it. Keeping the
    /// error here, instead of failing the whole file, reports every bad entry at its own
    /// position (marked-yaml gives no position for an unknown or missing key).
    #[derive(Debug)]
    pub(super) struct Checked<T>(Result<T, String>);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Checked<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            Ok(Checked(
                T::deserialize(deserializer).map_err(|error| error.to_string()),
            ))
        }
    }

    /// A mapping's entries in file order: the order of the generated code. A `Vec` also keeps
    /// a repeated key, though none gets here: `parse` makes the YAML loader reject them.
    #[derive(Debug)]
    pub(super) struct Entries<K, V>(pub Vec<(K, V)>);

    impl<K, V> Default for Entries<K, V> {
        fn default() -> Self {
            Entries(Vec::new())
        }
    }

    impl<T> Entries<Name, Checked<T>> {
        fn checked(&self) -> impl Iterator<Item = (&Name, &T)> {
            self.0
                .iter()
                .filter_map(|(key, value)| Some((key, value.0.as_ref().ok()?)))
        }

        fn report_errors(&self, what: &str, report: &mut Report) {
            for (key, value) in &self.0 {
                if let Err(message) = &value.0 {
                    let message =
                        format!("{what} `{}`: {}", key.as_str(), lowercase_first(message));
                    report.error(key.span(), Code::Schema, message);
                }
            }
        }
    }

    impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Entries<K, V> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(EntriesVisitor(PhantomData))
        }
    }

    struct EntriesVisitor<K, V>(PhantomData<(K, V)>);

    impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<K, V> {
        type Value = Entries<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(Entries(entries))
        }
    }
}

/// Runs every check on a file that parsed, and builds the graph when none found a problem.
fn check(raw: &RawGraph, report: &mut Report) -> Option<Graph> {
    let version = check_version(&raw.version, report);
    check_name(report, "machine", Case::Pascal, &raw.name);
    let roles = roles(raw, report);
    let enums = enums(raw, report);
    let enum_ids = ids(enums.iter().map(|e| e.name.as_str()));
    let states = states(raw, &enum_ids, report);
    let edges = edges(raw, &states, &roles, &enum_ids, report);
    check_initial_and_final(&states, report);
    check_edges(&states, &edges, report);
    check_shared_names(&edges, report);
    check_field_types_agree(&states, report);
    let order = check_shape(&states, &edges, report);
    check_data_flow(&enums, &states, &edges, report);
    if !report.is_clean() {
        return None;
    }
    let parts = Parts {
        version: version?,
        roles,
        enums,
        states,
        edges,
        order: order?,
    };
    parts.into_graph(raw)
}

/// A field as declared, its type resolved when it could be.
#[derive(Debug, PartialEq)]
struct FieldDecl<'r> {
    name: &'r Name,
    /// The type as written, without the `?`.
    type_name: &'r str,
    ty: Option<FieldType>,
    optional: bool,
}

/// A state as declared.
struct StateDecl<'r> {
    name: &'r Name,
    raw: &'r RawState,
    data: Vec<FieldDecl<'r>>,
}

/// A transition as declared, each name resolved when it could be.
struct Edge<'r> {
    raw: &'r RawTransition,
    from: Option<usize>,
    to: Option<usize>,
    roles: Vec<usize>,
    payload: Vec<FieldDecl<'r>>,
}

impl Edge<'_> {
    /// Where problems of this transition are reported: its `name:` value.
    fn span(&self) -> &Span {
        self.raw.name.span()
    }

    fn name(&self) -> &str {
        &self.raw.name
    }
}

/// `pick_up` (CREATED -> PICKED_UP): how messages name an edge.
impl fmt::Display for Edge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.raw;
        write!(f, "`{}` ({} -> {})", *raw.name, *raw.from, *raw.to)
    }
}

/// Each name's index in declaration order.
fn ids<'a>(names: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    names.enumerate().map(|(id, name)| (name, id)).collect()
}

fn check_version(text: &Name, report: &mut Report) -> Option<Version> {
    let version = parse_version(text);
    if version.is_none() {
        let message = format!(
            "version `{}` is not MAJOR.MINOR.PATCH (three numbers, e.g. 1.0.0)",
            text.as_str()
        );
        report.error(text.span(), Code::Version, message);
    }
    version
}

fn parse_version(text: &str) -> Option<Version> {
    fn number(part: &str) -> Option<u16> {
        // `u16::from_str` would also take a leading `+`.
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    }
    let mut parts = text.split('.').map(number);
    let version = Version {
        major: parts.next()??,
        minor: parts.next()??,
        patch: parts.next()??,
    };
    parts.next().is_none().then_some(version)
}

/// The naming conventions of graph.yaml, which the generated code relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// `pick_up`: transitions, roles, fields.
    Snake,
    /// `PICKED_UP`: states, enum values.
    ScreamingSnake,
    /// `FailureReason`: enums and the machine.
    Pascal,
}

impl Case {
    fn admits(self, name: &str) -> bool {
        match self {
            Case::Snake => is_words(name, |c| c.is_ascii_lowercase()),
            Case::ScreamingSnake => is_words(name, |c| c.is_ascii_uppercase()),
            Case::Pascal => {
                name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric())
            }
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Case::Snake => "snake_case",
            Case::ScreamingSnake => "SCREAMING_SNAKE_CASE",
            Case::Pascal => "PascalCase",
        })
    }
}

/// Words of `letter`s and digits joined by single underscores, starting with a letter.
fn is_words(name: &str, letter: impl Fn(char) -> bool) -> bool {
    name.starts_with(&letter)
        && name
            .split('_')
            .all(|word| !word.is_empty() && word.chars().all(|c| letter(c) || c.is_ascii_digit()))
}

/// Rust's keywords: a snake_case name becomes a Rust field or method name as it is.
const RUST_KEYWORDS: [&str; 52] = [
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield", "union",
];

fn check_name(report: &mut Report, what: &str, case: Case, name: &Name) {
    let problem = if !case.admits(name) {
        format!("is not {case}")
    } else if case == Case::Snake && RUST_KEYWORDS.contains(&name.as_str()) {
        "is a reserved word of the generated Rust code".to_owned()
    } else {
        return;
    };
    let message = format!("{what} name `{}` {problem}", name.as_str());
    report.error(name.span(), Code::Naming, message);
}

fn roles(raw: &RawGraph, report: &mut Report) -> Vec<Role> {
    raw.roles()
        .map(|(name, description)| {
            check_name(report, "role", Case::Snake, name);
            Role {
                name: name.as_str().to_owned(),
                description: description.clone(),
            }
        })
        .collect()
}

fn enums(raw: &RawGraph, report: &mut Report) -> Vec<Enum> {
    let declared: Vec<_> = raw.enums().collect();
    let ids = ids(declared.iter().map(|(name, _)| name.as_str()));
    declared
        .iter()
        .map(|&(name, decl)| {
            check_name(report, "enum", Case::Pascal, name);
            check_enum_values(name, decl, report);
            let subset_of = decl.subset_of.as_ref().and_then(|parent| {
                let id = resolve_parent(name, parent, &ids, report)?;
                check_subset_values(name, decl, declared[id], report);
                Some(id)
            });
            Enum {
                name: name.as_str().to_owned(),
                description: decl.description.clone(),
                values: decl.values.iter().map(|v| v.as_str().to_owned()).collect(),
                subset_of,
            }
        })
        .collect()
}

fn check_enum_values(name: &Name, decl: &RawEnum, report: &mut Report) {
    let mut seen = HashSet::new();
    for value in &decl.values {
        check_name(report, "enum value", Case::ScreamingSnake, value);
        if !seen.insert(value.as_str()) {
            let message = format!("enum `{}` lists `{}` twice", name.as_str(), value.as_str());
            report.error(value.span(), Code::Duplicate, message);
        }
    }
}

/// The enum `subset_of` names, if it names another declared enum.
fn resolve_parent(
    name: &Name,
    parent: &Name,
    ids: &HashMap<&str, usize>,
    report: &mut Report,
) -> Option<usize> {
    let problem = match ids.get(parent.as_str()) {
        None => "is not a declared enum",
        Some(_) if parent == name => "is the enum itself",
        Some(&id) => return Some(id),
    };
    let message = format!(
        "enum `{}`: subset_of `{}` {problem}",
        name.as_str(),
        parent.as_str()
    );
    report.error(parent.span(), Code::Subset, message);
    None
}

fn check_subset_values(
    name: &Name,
    decl: &RawEnum,
    (parent_name, parent): (&Name, &RawEnum),
    report: &mut Report,
) {
    for value in decl.values.iter().filter(|v| !parent.values.contains(*v)) {
        let message = format!(
            "enum `{}`: `{}` is not a value of its parent `{}`",
            name.as_str(),
            value.as_str(),
            parent_name.as_str()
        );
        report.error(value.span(), Code::Subset, message);
    }
}

fn states<'r>(
    raw: &'r RawGraph,
    enum_ids: &HashMap<&str, usize>,
    report: &mut Report,
) -> Vec<StateDecl<'r>> {
    raw.states()
        .map(|(name, state)| {
            check_name(report, "state", Case::ScreamingSnake, name);
            StateDecl {
                name,
                raw: state,
                data: fields(&state.data.0, enum_ids, report),
            }
        })
        .collect()
}

/// The fields of a state's data or a transition's payload, their names checked and types
/// resolved.
fn fields<'r>(
    declared: &'r [(Name, Name)],
    enum_ids: &HashMap<&str, usize>,
    report: &mut Report,
) -> Vec<FieldDecl<'r>> {
    declared
        .iter()
        .map(|(name, written)| {
            check_name(report, "field", Case::Snake, name);
            let (type_name, optional) = match written.strip_suffix('?') {
                Some(type_name) => (type_name, true),
                None => (written.as_str(), false),
            };
            let ty = field_type(type_name, enum_ids);
            if ty.is_none() {
                let builtins = FieldType::BUILTIN.map(|(builtin, _)| builtin).join(", ");
                let message = format!(
                    "unknown type `{type_name}`: neither built in ({builtins}) nor a declared enum"
                );
                report.error(written.span(), Code::UnknownType, message);
            }
            FieldDecl {
                name,
                type_name,
                ty,
                optional,
            }
        })
        .collect()
}

fn field_type(name: &str, enum_ids: &HashMap<&str, usize>) -> Option<FieldType> {
    let builtin = FieldType::BUILTIN
        .iter()
        .find(|(builtin, _)| *builtin == name);
    builtin
        .map(|&(_, ty)| ty)
        .or_else(|| enum_ids.get(name).map(|&id| FieldType::Enum(id)))
}

fn edges<'r>(
    raw: &'r RawGraph,
    states: &[StateDecl],
    roles: &[Role],
    enum_ids: &HashMap<&str, usize>,
    report: &mut Report,
) -> Vec<Edge<'r>> {
    let state_ids = ids(states.iter().map(|s| s.name.as_str()));
    let role_ids = ids(roles.iter().map(|r| r.name.as_str()));
    raw.transitions()
        .map(|t| {
            check_name(report, "transition", Case::Snake, &t.name);
            Edge {
                raw: t,
                from: resolve(&state_ids, &t.from, Code::UnknownState, "state", report),
                to: resolve(&state_ids, &t.to, Code::UnknownState, "state", report),
                roles: edge_roles(&role_ids, t, report),
                payload: fields(&t.payload.0, enum_ids, report),
            }
        })
        .collect()
}

/// The id of a declared name, or a report that nothing of that name is declared.
fn resolve(
    ids: &HashMap<&str, usize>,
    name: &Name,
    code: Code,
    what: &str,
    report: &mut Report,
) -> Option<usize> {
    let id = ids.get(name.as_str()).copied();
    if id.is_none() {
        let message = format!("unknown {what} `{}`", name.as_str());
        report.error(name.span(), code, message);
    }
    id
}

fn edge_roles(ids: &HashMap<&str, usize>, t: &RawTransition, report: &mut Report) -> Vec<usize> {
    let mut roles = Vec::new();
    for name in &t.roles {
        let Some(id) = resolve(ids, name, Code::UnknownRole, "role", report) else {
            continue;
        };
        if roles.contains(&id) {
            let message = format!("role `{}` is listed twice", name.as_str());
            report.error(name.span(), Code::Duplicate, message);
        } else {
            roles.push(id);
        }
    }
    roles
}

fn check_initial_and_final(states: &[StateDecl], report: &mut Report) {
    let initials: Vec<_> = states.iter().filter(|s| s.raw.initial).collect();
    match initials.as_slice() {
        [] => report.error(
            &Span::new_blank(),
            Code::InitialCount,
            "no initial state: mark exactly one state `initial: true`",
        ),
        [first, extras @ ..] => {
            for extra in extras {
                let message = format!(
                    "state `{}` is a second initial state (`{}` is the first)",
                    extra.name.as_str(),
                    first.name.as_str()
                );
                report.error(extra.name.span(), Code::InitialCount, message);
            }
        }
    }
    for state in states.iter().filter(|s| s.raw.initial && s.raw.is_final) {
        let message = format!("state `{}` is both initial and final", state.name.as_str());
        report.error(state.name.span(), Code::InitialFinal, message);
    }
}

/// An edge may not leave a final state, nor share its source and its name, or its source
/// and its target, with an edge declared before it.
fn check_edges(states: &[StateDecl], edges: &[Edge], report: &mut Report) {
    let mut by_name = HashMap::new();
    let mut by_target = HashMap::new();
    for edge in edges {
        let Some(from) = edge.from else { continue };
        let source = states[from].name.as_str();
        if states[from].raw.is_final {
            let message = format!("transition {edge} leaves final state `{source}`");
            report.error(edge.span(), Code::LeavesFinal, message);
        }
        if let Some(first) = first_of(&mut by_name, (from, edge.name()), edge) {
            let message = format!(
                "state `{source}` has two transitions `{}` (the first on line {})",
                edge.name(),
                line_of(first.span())
            );
            report.error(edge.span(), Code::Duplicate, message);
        }
        let Some(to) = edge.to else { continue };
        if let Some(first) = first_of(&mut by_target, (from, to), edge) {
            let message = format!(
                "transition {edge} joins the same two states as `{}` on line {}: \
                 one edge per pair, since the typestate names an edge by its target",
                first.name(),
                line_of(first.span())
            );
            report.error(edge.span(), Code::ParallelEdges, message);
        }
    }
}

/// The value first recorded under `key`, or `None` after recording `value` as the first.
fn first_of<K: std::hash::Hash + Eq, V: Copy>(
    seen: &mut HashMap<K, V>,
    key: K,
    value: V,
) -> Option<V> {
    match seen.entry(key) {
        Entry::Occupied(first) => Some(*first.get()),
        Entry::Vacant(slot) => {
            slot.insert(value);
            None
        }
    }
}

/// Edges sharing a name are one transition to the generated code: one payload type, one
/// target state, one list of roles.
fn check_shared_names(edges: &[Edge], report: &mut Report) {
    let mut by_name = HashMap::new();
    for edge in edges {
        let Some(first) = first_of(&mut by_name, edge.name(), edge) else {
            continue;
        };
        let differences: Vec<_> = [
            ("payload", !same_payload(first, edge)),
            (
                "target state",
                first.to.zip(edge.to).is_some_and(|(a, b)| a != b),
            ),
            ("roles", !same_roles(first, edge)),
        ]
        .into_iter()
        .filter_map(|(what, differs)| differs.then_some(what))
        .collect();
        if !differences.is_empty() {
            let message = format!(
                "transition {edge} differs from `{}` on line {} in its {}: \
                 edges sharing a name share one payload, target state and roles",
                first.name(),
                line_of(first.span()),
                differences.join(" and ")
            );
            report.error(edge.span(), Code::SharedName, message);
        }
    }
}

fn same_payload(a: &Edge, b: &Edge) -> bool {
    a.payload.len() == b.payload.len() && a.payload.iter().all(|f| b.payload.contains(f))
}

fn same_roles(a: &Edge, b: &Edge) -> bool {
    let set = |e: &Edge| e.roles.iter().copied().collect::<HashSet<_>>();
    set(a) == set(b)
}

/// A field name has one type in every state: a flat snapshot of any state has one column
/// per name (see [`Graph::all_state_fields`]).
fn check_field_types_agree(states: &[StateDecl], report: &mut Report) {
    let mut first_by_name = HashMap::new();
    for state in states {
        for field in &state.data {
            let first = first_of(&mut first_by_name, field.name.as_str(), (state.name, field));
            let Some((first_state, first)) = first else {
                continue;
            };
            if first.ty.zip(field.ty).is_some_and(|(a, b)| a != b) {
                let message = format!(
                    "field `{}` of `{}` is {}, but `{}` (line {}) declares it {}: \
                     a field name has one type in every state",
                    field.name.as_str(),
                    state.name.as_str(),
                    field.type_name,
                    first_state.as_str(),
                    line_of(first_state.span()),
                    first.type_name
                );
                report.error(field.name.span(), Code::FieldTypeConflict, message);
            }
        }
    }
}

/// Reachability, dead ends and cycles; the states' topological order when there is one.
fn check_shape(states: &[StateDecl], edges: &[Edge], report: &mut Report) -> Option<Vec<usize>> {
    // Only with both ends of every edge known: an unknown state is reported already.
    let pairs = edges
        .iter()
        .map(|e| e.from.zip(e.to))
        .collect::<Option<Vec<_>>>()?;
    let count = states.len();
    let initials: Vec<_> = (0..count).filter(|&s| states[s].raw.initial).collect();
    if let Some(&initial) = initials.first() {
        let reached = reach(count, &initials, pairs.iter().copied());
        for state in states
            .iter()
            .zip(reached)
            .filter_map(|(s, r)| (!r).then_some(s))
        {
            let message = format!(
                "state `{}` cannot be reached from the initial state `{}`",
                state.name.as_str(),
                states[initial].name.as_str()
            );
            report.error(state.name.span(), Code::Unreachable, message);
        }
    }
    let finals: Vec<_> = (0..count).filter(|&s| states[s].raw.is_final).collect();
    let ending = reach(count, &finals, pairs.iter().map(|&(from, to)| (to, from)));
    for state in states
        .iter()
        .zip(ending)
        .filter_map(|(s, e)| (!e).then_some(s))
    {
        let message = format!("state `{}` cannot reach a final state", state.name.as_str());
        report.error(state.name.span(), Code::DeadEnd, message);
    }
    for (edge, cycle) in cycles(count, &pairs, initials.iter().copied().chain(0..count)) {
        let names: Vec<_> = cycle.iter().map(|&s| states[s].name.as_str()).collect();
        let message = format!("cycle: {}", names.join(" -> "));
        report.error(edges[edge].span(), Code::Cycle, message);
    }
    topological_order(count, &pairs)
}

/// Which of `count` states a walk from `starts` along `edges` (`(from, to)`) can reach.
fn reach(
    count: usize,
    starts: &[usize],
    edges: impl Iterator<Item = (usize, usize)> + Clone,
) -> Vec<bool> {
    let mut reached = vec![false; count];
    let mut todo = starts.to_vec();
    while let Some(state) = todo.pop() {
        if !std::mem::replace(&mut reached[state], true) {
            todo.extend(
                edges
                    .clone()
                    .filter(|&(from, _)| from == state)
                    .map(|(_, to)| to),
            );
        }
    }
    reached
}

/// Every cycle a depth-first search meets, one per back edge: the index of that edge in
/// `edges`, and the states round the cycle from the edge's source back to it. `roots` are
/// searched from in order; starting at the initial state makes the edge that goes back
/// towards it the one blamed.
fn cycles(
    count: usize,
    edges: &[(usize, usize)],
    roots: impl Iterator<Item = usize>,
) -> Vec<(usize, Vec<usize>)> {
    let mut search = CycleSearch {
        edges,
        done: vec![false; count],
        path: Vec::new(),
        found: Vec::new(),
    };
    for root in roots {
        if !search.done[root] {
            search.visit(root);
        }
    }
    search.found
}

struct CycleSearch<'e> {
    edges: &'e [(usize, usize)],
    /// States whose every edge has been followed.
    done: Vec<bool>,
    /// The states from the root to the one being searched.
    path: Vec<usize>,
    found: Vec<(usize, Vec<usize>)>,
}

impl CycleSearch<'_> {
    fn visit(&mut self, state: usize) {
        self.path.push(state);
        let edges = self.edges;
        for (edge, &(_, to)) in edges.iter().enumerate().filter(|(_, e)| e.0 == state) {
            if let Some(start) = self.path.iter().position(|&s| s == to) {
                let cycle = iter::once(state).chain(self.path[start..].iter().copied());
                self.found.push((edge, cycle.collect()));
            } else if !self.done[to] {
                self.visit(to);
            }
        }
        self.path.pop();
        self.done[state] = true;
    }
}

/// Kahn's algorithm, taking the first declared of the states ready at each step, so the
/// order is stable; `None` when there is a cycle.
fn topological_order(count: usize, edges: &[(usize, usize)]) -> Option<Vec<usize>> {
    let mut incoming = vec![0_usize; count];
    for &(_, to) in edges {
        incoming[to] += 1;
    }
    let mut placed = vec![false; count];
    let mut order = Vec::with_capacity(count);
    while let Some(next) = (0..count).find(|&s| !placed[s] && incoming[s] == 0) {
        placed[next] = true;
        order.push(next);
        for &(_, to) in edges.iter().filter(|(from, _)| *from == next) {
            incoming[to] -= 1;
        }
    }
    (order.len() == count).then_some(order)
}

/// Every field of a target state comes, on every edge into it, from the payload field of
/// the same name, else the source state's field of the same name, else (when optional)
/// nowhere.
fn check_data_flow(enums: &[Enum], states: &[StateDecl], edges: &[Edge], report: &mut Report) {
    for edge in edges {
        let (Some(from), Some(to)) = (edge.from, edge.to) else {
            continue;
        };
        let (source, target) = (&states[from], &states[to]);
        for wanted in &target.data {
            let field = wanted.name.as_str();
            let supplied = field_named(&edge.payload, field)
                .map(|given| (given, "the payload"))
                .or_else(|| {
                    field_named(&source.data, field).map(|given| (given, source.name.as_str()))
                });
            let into = target.name.as_str();
            let (code, message) = match supplied {
                None if wanted.optional => continue,
                None => (
                    Code::FieldNotSupplied,
                    format!(
                        "required field `{field}` of {into} is supplied by neither the payload \
                         nor {}",
                        source.name.as_str()
                    ),
                ),
                Some((given, by)) if !compatible(given.ty, wanted.ty, enums) => (
                    Code::FieldTypeMismatch,
                    format!(
                        "`{field}` of {into} is {}, but `{field}` of {by} is {}",
                        wanted.type_name, given.type_name
                    ),
                ),
                Some((given, by)) if given.optional && !wanted.optional => (
                    Code::FieldMaybeMissing,
                    format!("`{field}` of {into} is required, but `{field}` of {by} is optional"),
                ),
                Some(_) => continue,
            };
            report.error(edge.span(), code, format!("transition {edge}: {message}"));
        }
    }
}

fn field_named<'a, 'r>(fields: &'a [FieldDecl<'r>], name: &str) -> Option<&'a FieldDecl<'r>> {
    fields.iter().find(|f| f.name.as_str() == name)
}

/// A value of type `given` fits a field of type `wanted`: the same type, or an enum that is
/// a subset of it. An unknown type fits anything (it is reported already).
fn compatible(given: Option<FieldType>, wanted: Option<FieldType>, enums: &[Enum]) -> bool {
    let Some((given, wanted)) = given.zip(wanted) else {
        return true;
    };
    match (given, wanted) {
        (FieldType::Enum(subset), FieldType::Enum(parent)) => {
            subset == parent || enums[subset].subset_of == Some(parent)
        }
        _ => given == wanted,
    }
}

/// Everything a [`Graph`] is made of, once every check passed.
struct Parts<'r> {
    version: Version,
    roles: Vec<Role>,
    enums: Vec<Enum>,
    states: Vec<StateDecl<'r>>,
    edges: Vec<Edge<'r>>,
    /// Declaration indices of the states in topological order.
    order: Vec<usize>,
}

impl Parts<'_> {
    /// `None` only if something is unresolved, which a clean report rules out.
    fn into_graph(self, raw: &RawGraph) -> Option<Graph> {
        let mut rank = vec![0; self.order.len()];
        for (position, &state) in self.order.iter().enumerate() {
            rank[state] = position;
        }
        let states = self
            .order
            .iter()
            .map(|&id| {
                let decl = &self.states[id];
                Some(State {
                    name: decl.name.as_str().to_owned(),
                    description: decl.raw.description.clone(),
                    initial: decl.raw.initial,
                    is_final: decl.raw.is_final,
                    data: resolved(&decl.data)?,
                })
            })
            .collect::<Option<_>>()?;
        let transitions = self
            .edges
            .iter()
            .map(|edge| {
                Some(Transition {
                    name: edge.name().to_owned(),
                    description: edge.raw.description.clone(),
                    from: rank[edge.from?],
                    to: rank[edge.to?],
                    roles: edge.roles.clone(),
                    payload: resolved(&edge.payload)?,
                })
            })
            .collect::<Option<_>>()?;
        Some(Graph {
            version: self.version,
            name: raw.name.as_str().to_owned(),
            description: raw.description.clone(),
            roles: self.roles,
            enums: self.enums,
            states,
            transitions,
        })
    }
}

fn resolved(fields: &[FieldDecl]) -> Option<Vec<Field>> {
    fields
        .iter()
        .map(|f| {
            Some(Field {
                name: f.name.as_str().to_owned(),
                ty: f.ty?,
                optional: f.optional,
            })
        })
        .collect()
}
