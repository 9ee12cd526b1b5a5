//! The Rust that graph.yaml defines: delivery-core's `generated` module, and the
//! compile-pass and compile-fail cases that pin the typestate down.
//!
//! - `delivery-core/src/generated.rs`: states, enums, transitions, commands, the edges as
//!   `CanTransitionTo` impls, the named transition methods, state accessors, and the
//!   runtime `AnyDeliveryOrder` with its dispatch and snapshot mapping.
//! - `delivery-core/tests/pass/path_*.rs`: every simple path from the initial state to a
//!   final state, driven through the typed API (path coverage).
//! - `delivery-core/tests/fail/*.rs`: every transition method on every state that lacks it,
//!   and every backwards `transition_to`.
//!
//! The text is built plainly and then formatted by rustfmt, so that it is what `cargo fmt`
//! would leave as it is.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::graph::{Field, FieldType, Graph, State, Transition, pascal_case};
use crate::{GENERATED_HEADER, Output, emit};

/// Every Rust file derived from the graph.
pub fn files(graph: &Graph) -> Vec<Output> {
    let mut files = vec![Output {
        path: "delivery-core/src/generated.rs".into(),
        contents: rust_file(&module(graph)),
    }];
    files.extend(pass_cases(graph));
    files.extend(fail_cases(graph));
    files
}

/// Where generated compile-test cases live; the drift test also looks here for stale ones.
pub const CASE_DIRS: [&str; 2] = ["delivery-core/tests/pass", "delivery-core/tests/fail"];

/// Formats Rust source with the workspace's rustfmt and puts the header on top.
fn rust_file(source: &str) -> String {
    let mut rustfmt = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rustfmt runs (it comes with the pinned toolchain)");
    rustfmt
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(source.as_bytes())
        .expect("rustfmt reads its input");
    let output = rustfmt.wait_with_output().expect("rustfmt finishes");
    assert!(
        output.status.success(),
        "rustfmt rejected generated code (a codegen bug):\n{}\n{source}",
        String::from_utf8_lossy(&output.stderr)
    );
    let formatted = String::from_utf8(output.stdout).expect("rustfmt writes UTF-8");
    format!("// {GENERATED_HEADER}\n\n{formatted}")
}

/// Appends formatted text to a `String` (writing to a `String` cannot fail).
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{ let _ = writeln!($out, $($arg)*); }};
}

fn state_type(state: &State) -> String {
    pascal_case(&state.name)
}

fn data_type(state: &State) -> String {
    if state.data.is_empty() {
        "()".into()
    } else {
        format!("{}Data", state_type(state))
    }
}

/// The Rust type of a field type.
fn rust_type(graph: &Graph, ty: FieldType) -> String {
    match ty {
        FieldType::Timestamp => "DateTime<Utc>".into(),
        FieldType::Enum(id) => graph.enums[id].name.clone(),
        builtin => builtin.name(graph).into(),
    }
}

fn field_type(graph: &Graph, field: &Field) -> String {
    let ty = rust_type(graph, field.ty);
    if field.optional {
        format!("Option<{ty}>")
    } else {
        ty
    }
}

/// Copy types are passed by value, the others (shared text) by reference.
fn is_copy(ty: FieldType) -> bool {
    matches!(ty, FieldType::Timestamp | FieldType::Enum(_))
}

fn doc(out: &mut String, text: &str) {
    for line in text.lines() {
        w!(out, "/// {line}");
    }
}

fn module(graph: &Graph) -> String {
    let mut out = String::new();
    w!(
        out,
        "//! Everything graph.yaml defines: {} v{}.",
        graph.name,
        graph.version
    );
    w!(
        out,
        "//! Regenerate with `cargo codegen` after editing graph.yaml."
    );
    w!(
        out,
        "#![allow(clippy::all)] // Generated code is judged by its tests, not by lints."
    );
    w!(
        out,
        "use std::fmt;\nuse std::str::FromStr;\nuse std::sync::Arc;"
    );
    w!(
        out,
        "use chrono::{{DateTime, Utc}};\nuse serde::{{Deserialize, Serialize}};"
    );
    w!(out, "use crate::event::{{DeliveryEvent, EventMeta}};");
    w!(out, "use crate::order::{{DeliveryDetails, DeliveryOrder}};");
    w!(
        out,
        "use crate::runtime::{{CorruptRecord, Rejected, TransitionError}};"
    );
    w!(
        out,
        "use crate::typestate::{{CanTransitionTo, State, Succ, Zero, sealed::Sealed}};"
    );
    w!(
        out,
        "use crate::values::{{DeliveryId, GraphVersion, InvalidValue, OperatorId, PartnerOrderNumber, Text}};"
    );
    constants(&mut out, graph);
    name_enum(
        &mut out,
        "Role",
        "A role that may make transitions.",
        &graph
            .roles
            .iter()
            .map(|r| (r.name.clone(), r.description.clone()))
            .collect::<Vec<_>>(),
        "snake_case",
    );
    for e in &graph.enums {
        let values: Vec<_> = e
            .values
            .iter()
            .map(|v| (v.clone(), String::new()))
            .collect();
        name_enum(
            &mut out,
            &e.name,
            &e.description,
            &values,
            "SCREAMING_SNAKE_CASE",
        );
        if let Some(parent) = e.subset_of {
            subset_conversion(&mut out, &e.name, &graph.enums[parent].name, &e.values);
        }
    }
    delivery_state(&mut out, graph);
    transition_enum(&mut out, graph);
    commands(&mut out, graph);
    for (rank, state) in graph.states.iter().enumerate() {
        state_type_def(&mut out, graph, rank, state);
    }
    for edge in &graph.transitions {
        edge_impl(&mut out, graph, edge);
    }
    for (name, edges) in graph.transition_names() {
        transition_method(&mut out, graph, name, &edges);
    }
    any_order(&mut out, graph);
    state_fields(&mut out, graph);
    out
}

fn constants(out: &mut String, graph: &Graph) {
    let v = graph.version;
    let json = emit::json::canonical(graph);
    w!(
        out,
        "/// The version of graph.yaml this build was generated from."
    );
    w!(
        out,
        "pub const GRAPH_VERSION: GraphVersion = GraphVersion {{ major: {}, minor: {}, patch: {} }};",
        v.major,
        v.minor,
        v.patch
    );
    w!(
        out,
        "/// The graph as canonical JSON (what the CloudFormation parameter stores)."
    );
    w!(out, "pub const GRAPH_JSON: &str = {json:?};");
    w!(out, "/// SHA-256 of [`GRAPH_JSON`], hex.");
    w!(
        out,
        "pub const GRAPH_SHA256: &str = {:?};",
        emit::json::sha256_hex(&json)
    );
    w!(out, "/// The graph as a Mermaid state diagram.");
    w!(
        out,
        "pub const GRAPH_MERMAID: &str = {:?};",
        emit::mermaid::diagram(graph)
    );
}

/// A fieldless enum of names: serde, `ALL`, `name()`, `Display`, `FromStr`.
fn name_enum(
    out: &mut String,
    name: &str,
    description: &str,
    values: &[(String, String)],
    case: &str,
) {
    doc(out, description);
    w!(
        out,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]"
    );
    w!(out, "#[serde(rename_all = \"{case}\")]\npub enum {name} {{");
    for (value, description) in values {
        doc(out, description);
        w!(out, "    {},", pascal_case(value));
    }
    w!(out, "}}");
    w!(out, "impl {name} {{");
    w!(out, "    /// Every value, in graph.yaml's order.");
    let all: Vec<_> = values
        .iter()
        .map(|(v, _)| format!("{name}::{}", pascal_case(v)))
        .collect();
    w!(
        out,
        "    pub const ALL: [{name}; {}] = [{}];",
        values.len(),
        all.join(", ")
    );
    w!(out, "    /// The name as graph.yaml and the wire spell it.");
    w!(
        out,
        "    pub const fn name(self) -> &'static str {{ match self {{"
    );
    for (value, _) in values {
        w!(out, "        {name}::{} => {value:?},", pascal_case(value));
    }
    w!(out, "    }} }}\n}}");
    w!(
        out,
        "impl fmt::Display for {name} {{ fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{ f.write_str(self.name()) }} }}"
    );
    w!(out, "impl FromStr for {name} {{ type Err = InvalidValue;");
    w!(
        out,
        "    fn from_str(raw: &str) -> Result<Self, InvalidValue> {{"
    );
    w!(
        out,
        "        Self::ALL.into_iter().find(|value| value.name() == raw).ok_or_else(|| InvalidValue {{"
    );
    w!(out, "            what: {:?},", name);
    let expected: Vec<_> = values.iter().map(|(v, _)| v.as_str()).collect();
    w!(
        out,
        "            why: format!(\"{{raw:?}} is not one of {}\"),",
        expected.join(", ")
    );
    w!(out, "        }})\n    }}\n}}");
}

fn subset_conversion(out: &mut String, name: &str, parent: &str, values: &[String]) {
    w!(
        out,
        "impl From<{name}> for {parent} {{ fn from(value: {name}) -> {parent} {{ match value {{"
    );
    for value in values {
        let variant = pascal_case(value);
        w!(out, "    {name}::{variant} => {parent}::{variant},");
    }
    w!(out, "}} }} }}");
}

fn delivery_state(out: &mut String, graph: &Graph) {
    let values: Vec<_> = graph
        .states
        .iter()
        .map(|s| (s.name.clone(), s.description.clone()))
        .collect();
    name_enum(
        out,
        "DeliveryState",
        "A state of the graph, known at run time.",
        &values,
        "SCREAMING_SNAKE_CASE",
    );
    w!(out, "impl DeliveryState {{");
    w!(out, "    /// Whether nothing leaves this state.");
    w!(
        out,
        "    pub const fn is_final(self) -> bool {{ match self {{"
    );
    for state in &graph.states {
        w!(
            out,
            "        DeliveryState::{} => {},",
            state_type(state),
            state.is_final
        );
    }
    w!(out, "    }} }}");
    w!(
        out,
        "    /// The transitions graph.yaml allows out of this state."
    );
    w!(
        out,
        "    pub const fn allowed_transitions(self) -> &'static [Transition] {{ match self {{"
    );
    for (id, state) in graph.states.iter().enumerate() {
        let mut names: Vec<String> = Vec::new();
        for edge in graph.outgoing(id) {
            let variant = format!("Transition::{}", pascal_case(&edge.name));
            if !names.contains(&variant) {
                names.push(variant);
            }
        }
        w!(
            out,
            "        DeliveryState::{} => &[{}],",
            state_type(state),
            names.join(", ")
        );
    }
    w!(out, "    }} }}\n}}");
}

fn transition_enum(out: &mut String, graph: &Graph) {
    let names = graph.transition_names();
    let values: Vec<_> = names
        .iter()
        .map(|(name, edges)| (name.to_string(), edges[0].description.clone()))
        .collect();
    name_enum(
        out,
        "Transition",
        "A transition of the graph, by name.",
        &values,
        "snake_case",
    );
    w!(out, "impl Transition {{");
    w!(
        out,
        "    /// The roles graph.yaml lets make this transition."
    );
    w!(
        out,
        "    pub const fn roles(self) -> &'static [Role] {{ match self {{"
    );
    for (name, edges) in &names {
        let roles: Vec<_> = edges[0]
            .roles
            .iter()
            .map(|&r| format!("Role::{}", pascal_case(&graph.roles[r].name)))
            .collect();
        w!(
            out,
            "        Transition::{} => &[{}],",
            pascal_case(name),
            roles.join(", ")
        );
    }
    w!(out, "    }} }}");
    w!(out, "    /// The states this transition leaves from.");
    w!(
        out,
        "    pub const fn sources(self) -> &'static [DeliveryState] {{ match self {{"
    );
    for (name, edges) in &names {
        let from: Vec<_> = edges
            .iter()
            .map(|e| format!("DeliveryState::{}", state_type(&graph.states[e.from])))
            .collect();
        w!(
            out,
            "        Transition::{} => &[{}],",
            pascal_case(name),
            from.join(", ")
        );
    }
    w!(out, "    }} }}");
    w!(out, "    /// The state this transition leads to.");
    w!(
        out,
        "    pub const fn target(self) -> DeliveryState {{ match self {{"
    );
    for (name, edges) in &names {
        w!(
            out,
            "        Transition::{} => DeliveryState::{},",
            pascal_case(name),
            state_type(&graph.states[edges[0].to])
        );
    }
    w!(out, "    }} }}\n}}");
}

fn commands(out: &mut String, graph: &Graph) {
    let names = graph.transition_names();
    for (name, edges) in &names {
        let edge = edges[0];
        doc(
            out,
            &format!("The payload of `{name}`: {}", edge.description),
        );
        // An empty payload gets `Default`, so that it reads `ConfirmReceipt::default()`.
        let default = if edge.payload.is_empty() {
            ", Default"
        } else {
            ""
        };
        w!(
            out,
            "#[derive(Debug, Clone, PartialEq, Eq{default}, Serialize, Deserialize)]"
        );
        w!(out, "#[serde(deny_unknown_fields)]");
        w!(out, "pub struct {} {{", pascal_case(name));
        for field in &edge.payload {
            if field.optional {
                w!(
                    out,
                    "    #[serde(default, skip_serializing_if = \"Option::is_none\")]"
                );
            }
            w!(out, "    pub {}: {},", field.name, field_type(graph, field));
        }
        w!(out, "}}");
        w!(
            out,
            "impl From<{0}> for Command {{ fn from(payload: {0}) -> Command {{ Command::{0}(payload) }} }}",
            pascal_case(name)
        );
    }
    w!(
        out,
        "/// A transition with its payload: what a caller asks for when the state is known only at run time."
    );
    w!(
        out,
        "#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]"
    );
    w!(
        out,
        "#[serde(tag = \"transition\", rename_all = \"snake_case\")]\npub enum Command {{"
    );
    for (name, _) in &names {
        w!(out, "    {0}({0}),", pascal_case(name));
    }
    w!(out, "}}");
    w!(
        out,
        "impl Command {{ pub const fn transition(&self) -> Transition {{ match self {{"
    );
    for (name, _) in &names {
        w!(
            out,
            "    Command::{0}(_) => Transition::{0},",
            pascal_case(name)
        );
    }
    w!(out, "}} }} }}");
}

fn state_type_def(out: &mut String, graph: &Graph, rank: usize, state: &State) {
    let ty = state_type(state);
    doc(out, &format!("`{}`: {}", state.name, state.description));
    w!(
        out,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]\npub struct {ty};"
    );
    w!(out, "impl Sealed for {ty} {{}}");
    w!(out, "impl State for {ty} {{");
    w!(out, "    const NAME: &'static str = {:?};", state.name);
    w!(out, "    const IS_FINAL: bool = {};", state.is_final);
    w!(
        out,
        "    type Rank = {};",
        "Succ<".repeat(rank) + "Zero" + &">".repeat(rank)
    );
    w!(out, "    type Data = {};\n}}", data_type(state));
    if state.data.is_empty() {
        return;
    }
    doc(out, &format!("What an order carries in `{}`.", state.name));
    w!(
        out,
        "#[derive(Debug, Clone, PartialEq, Eq)]\npub struct {} {{",
        data_type(state)
    );
    for field in &state.data {
        w!(out, "    pub {}: {},", field.name, field_type(graph, field));
    }
    w!(out, "}}");
    w!(out, "impl DeliveryOrder<{ty}> {{");
    for field in &state.data {
        let base = rust_type(graph, field.ty);
        let (ret, body) = match (field.optional, is_copy(field.ty)) {
            (false, true) => (base, format!("self.data.{}", field.name)),
            (false, false) => (format!("&{base}"), format!("&self.data.{}", field.name)),
            (true, true) => (
                format!("Option<{base}>"),
                format!("self.data.{}", field.name),
            ),
            (true, false) => (
                format!("Option<&{base}>"),
                format!("self.data.{}.as_ref()", field.name),
            ),
        };
        w!(
            out,
            "    pub fn {}(&self) -> {ret} {{ {body} }}",
            field.name
        );
    }
    w!(out, "}}");
}

/// How one field of the target state is filled on an edge: from the payload, from the
/// source state, or left empty (optional only; the loader checked that).
fn fill(graph: &Graph, target: &Field, edge: &Transition) -> (String, bool, bool) {
    let source = graph.states[edge.from]
        .data
        .iter()
        .find(|f| f.name == target.name);
    let from_payload = edge.payload.iter().find(|f| f.name == target.name);
    let (field, base, by_ref) = match (from_payload, source) {
        (Some(field), _) => (field, format!("payload.{}", field.name), true),
        (None, Some(field)) => (field, format!("from.{}", field.name), false),
        (None, None) => return ("None".into(), false, false),
    };
    let clone = if by_ref && !is_copy(field.ty) {
        ".clone()"
    } else {
        ""
    };
    let convert = field.ty != target.ty;
    let expr = match (field.optional, target.optional, convert) {
        (true, _, true) => format!("{base}{clone}.map(Into::into)"),
        (true, _, false) | (false, false, false) => format!("{base}{clone}"),
        (false, false, true) => format!("{base}{clone}.into()"),
        (false, true, false) => format!("Some({base}{clone})"),
        (false, true, true) => format!("Some({base}{clone}.into())"),
    };
    (expr, by_ref, !by_ref)
}

fn edge_impl(out: &mut String, graph: &Graph, edge: &Transition) {
    let (from, to) = (&graph.states[edge.from], &graph.states[edge.to]);
    let (from_ty, to_ty) = (state_type(from), state_type(to));
    let mut uses_payload = false;
    let mut uses_from = false;
    let mut body = String::new();
    if to.data.is_empty() {
        body.push_str("()");
    } else {
        w!(body, "{} {{", data_type(to));
        for field in &to.data {
            let (expr, payload, source) = fill(graph, field, edge);
            uses_payload |= payload;
            uses_from |= source;
            w!(body, "    {}: {expr},", field.name);
        }
        body.push('}');
    }
    let from_arg = if uses_from { "from" } else { "_from" };
    let payload_arg = if uses_payload { "payload" } else { "_payload" };
    w!(out, "/// `{}`: {} → {}.", edge.name, from.name, to.name);
    w!(out, "impl CanTransitionTo<{to_ty}> for {from_ty} {{");
    w!(out, "    const TRANSITION: &'static str = {:?};", edge.name);
    w!(out, "    type Payload = {};", pascal_case(&edge.name));
    w!(
        out,
        "    fn enter({from_arg}: {}, {payload_arg}: &{}) -> {} {{ {body} }}\n}}",
        data_type(from),
        pascal_case(&edge.name),
        data_type(to)
    );
}

/// A named transition: a sealed trait for "states this transition leaves from" with a
/// readable compile error, and the method on `DeliveryOrder<S>` bounded by it.
fn transition_method(out: &mut String, graph: &Graph, name: &str, edges: &[&Transition]) {
    let ty = pascal_case(name);
    let to_state = &graph.states[edges[0].to];
    let to_ty = state_type(to_state);
    let sources: Vec<_> = edges
        .iter()
        .map(|e| graph.states[e.from].name.as_str())
        .collect();
    let trait_name = format!("Can{ty}");
    doc(
        out,
        &format!("The states `{name}` leaves from: {}.", sources.join(", ")),
    );
    w!(out, "#[diagnostic::on_unimplemented(");
    w!(
        out,
        "    message = \"graph.yaml has no transition from {{Self}} to {to_ty}\","
    );
    w!(
        out,
        "    label = \"`{name}` is not a transition out of {{Self}}\","
    );
    w!(
        out,
        "    note = \"`{name}` goes from {} to {}\"",
        sources.join(" or "),
        to_state.name
    );
    w!(out, ")]");
    w!(
        out,
        "pub trait {trait_name}: CanTransitionTo<{to_ty}, Payload = {ty}> {{}}"
    );
    for edge in edges {
        w!(
            out,
            "impl {trait_name} for {} {{}}",
            state_type(&graph.states[edge.from])
        );
    }
    w!(out, "impl<S: State> DeliveryOrder<S> {{");
    doc(out, &format!("`{name}`: {}", edges[0].description));
    w!(
        out,
        "    pub fn {name}(self, payload: {ty}, meta: EventMeta) -> (DeliveryOrder<{to_ty}>, DeliveryEvent) where S: {trait_name} {{ self.transition_to::<{to_ty}>(payload, meta) }}"
    );
    w!(out, "}}");
}

fn any_order(out: &mut String, graph: &Graph) {
    w!(
        out,
        "/// A delivery order in any state: what stored data turns into."
    );
    w!(
        out,
        "#[derive(Debug, Clone, PartialEq)]\npub enum AnyDeliveryOrder {{"
    );
    for state in &graph.states {
        w!(out, "    {0}(DeliveryOrder<{0}>),", state_type(state));
    }
    w!(out, "}}");
    for state in &graph.states {
        w!(
            out,
            "impl From<DeliveryOrder<{0}>> for AnyDeliveryOrder {{ fn from(order: DeliveryOrder<{0}>) -> Self {{ AnyDeliveryOrder::{0}(order) }} }}",
            state_type(state)
        );
    }
    let each = |out: &mut String, expr: &str| {
        w!(out, "match self {{");
        for state in &graph.states {
            w!(
                out,
                "    AnyDeliveryOrder::{}(order) => {expr},",
                state_type(state)
            );
        }
        w!(out, "}}");
    };
    w!(out, "impl AnyDeliveryOrder {{");
    w!(out, "pub fn state(&self) -> DeliveryState {{");
    each(out, "order.state()");
    w!(out, "}}\npub fn id(&self) -> DeliveryId {{");
    each(out, "order.id()");
    w!(
        out,
        "}}\n/// The `seq` of the last event applied.\npub fn version(&self) -> u64 {{"
    );
    each(out, "order.version()");
    w!(out, "}}\npub fn details(&self) -> &DeliveryDetails {{");
    each(out, "order.details()");
    w!(out, "}}");
    dispatch(out, graph);
    w!(out, "}}");
}

fn dispatch(out: &mut String, graph: &Graph) {
    w!(
        out,
        "/// Takes `command` through the typed method for the current state, or hands the order back with why not."
    );
    w!(
        out,
        "pub(crate) fn dispatch(self, command: Command, meta: EventMeta) -> Result<(AnyDeliveryOrder, DeliveryEvent), Rejected> {{"
    );
    w!(out, "match (self, command) {{");
    for edge in &graph.transitions {
        w!(
            out,
            "(AnyDeliveryOrder::{}(order), Command::{}(payload)) => {{ let (order, event) = order.{}(payload, meta); Ok((order.into(), event)) }}",
            state_type(&graph.states[edge.from]),
            pascal_case(&edge.name),
            edge.name
        );
    }
    w!(
        out,
        "(order, command) => {{ let error = TransitionError::NotAllowed {{"
    );
    w!(out, "    current: order.state(),");
    w!(out, "    attempted: command.transition(),");
    w!(out, "    allowed: order.state().allowed_transitions(),");
    w!(
        out,
        "}}; Err(Rejected {{ order: Box::new(order), error }}) }}\n}}\n}}"
    );
}

/// The flat form of every state's data: all fields optional, each set only where the state
/// has it.
fn state_fields(out: &mut String, graph: &Graph) {
    let all = graph.all_state_fields();
    w!(
        out,
        "/// Every state's data as optional fields: the columns of a flat record."
    );
    w!(
        out,
        "#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]\npub struct StateFields {{"
    );
    for field in &all {
        w!(
            out,
            "    #[serde(default, skip_serializing_if = \"Option::is_none\")]"
        );
        w!(
            out,
            "    pub {}: Option<{}>,",
            field.name,
            rust_type(graph, field.ty)
        );
    }
    w!(out, "}}");
    w!(out, "impl AnyDeliveryOrder {{");
    w!(out, "/// This order's state data as flat fields.");
    w!(
        out,
        "pub fn state_fields(&self) -> StateFields {{ match self {{"
    );
    for state in &graph.states {
        let ty = state_type(state);
        let binding = if state.data.is_empty() { "_" } else { "order" };
        w!(out, "AnyDeliveryOrder::{ty}({binding}) => StateFields {{");
        for field in &state.data {
            let value = format!("order.data.{}", field.name);
            let value = match (field.optional, is_copy(field.ty)) {
                (false, true) => format!("Some({value})"),
                (false, false) => format!("Some({value}.clone())"),
                (true, true) => value,
                (true, false) => format!("{value}.clone()"),
            };
            w!(out, "    {}: {value},", field.name);
        }
        if state.data.len() < all.len() {
            w!(out, "    ..StateFields::default()");
        }
        w!(out, "}},");
    }
    w!(out, "}} }}");
    w!(
        out,
        "/// An order from flat parts, refusing fields that do not fit the state."
    );
    w!(
        out,
        "pub(crate) fn from_parts(id: DeliveryId, details: Arc<DeliveryDetails>, version: u64, state: DeliveryState, fields: StateFields) -> Result<Self, CorruptRecord> {{"
    );
    w!(out, "match state {{");
    for state in &graph.states {
        let ty = state_type(state);
        w!(out, "DeliveryState::{ty} => {{");
        for field in &all {
            if !state.data.iter().any(|f| f.name == field.name) {
                w!(
                    out,
                    "if fields.{0}.is_some() {{ return Err(CorruptRecord::UnexpectedField {{ state, field: {0:?} }}); }}",
                    field.name
                );
            }
        }
        let data = if state.data.is_empty() {
            "()".to_string()
        } else {
            let mut data = format!("{} {{", data_type(state));
            for field in &state.data {
                if field.optional {
                    let _ = write!(data, "{0}: fields.{0},", field.name);
                } else {
                    let _ = write!(
                        data,
                        "{0}: fields.{0}.ok_or(CorruptRecord::MissingField {{ state, field: {0:?} }})?,",
                        field.name
                    );
                }
            }
            data + "}"
        };
        w!(
            out,
            "Ok(AnyDeliveryOrder::{ty}(DeliveryOrder {{ id, details, version, data: {data} }}))\n}}"
        );
    }
    w!(out, "}} }}\n}}");
}

/// A sample value of a field type, as Rust source, for generated test cases.
fn sample(graph: &Graph, field: &Field) -> String {
    let value = match field.ty {
        FieldType::PartnerOrderNumber => "\"PN-0001\".parse().unwrap()".to_string(),
        FieldType::OperatorId => "\"operator-1\".parse().unwrap()".to_string(),
        FieldType::Text => "\"a note\".parse().unwrap()".to_string(),
        FieldType::Timestamp => "support::at()".to_string(),
        FieldType::Enum(id) => {
            let e = &graph.enums[id];
            format!("{}::{}", e.name, pascal_case(&e.values[0]))
        }
    };
    if field.optional {
        format!("Some({value})")
    } else {
        value
    }
}

fn payload_literal(graph: &Graph, edge: &Transition) -> String {
    let fields: Vec<_> = edge
        .payload
        .iter()
        .map(|f| format!("{}: {}", f.name, sample(graph, f)))
        .collect();
    format!("{} {{ {} }}", pascal_case(&edge.name), fields.join(", "))
}

/// Every simple path from the initial state to a final one, as a program that drives it
/// through the typed API and checks each event.
fn pass_cases(graph: &Graph) -> Vec<Output> {
    graph
        .simple_paths()
        .into_iter()
        .map(|path| {
            let names: Vec<_> = path.iter().map(|&i| graph.transitions[i].name.as_str()).collect();
            let mut main = String::new();
            w!(main, "//! Path coverage: {}.", names.join(" → "));
            w!(main, "#[path = \"../support/mod.rs\"] mod support;\nuse delivery_core::*;\nuse support::{{details, meta}};");
            w!(main, "fn main() {{");
            w!(main, "let (order, event) = DeliveryOrder::create(support::id(), details(), meta(Role::System));");
            w!(main, "assert_eq!((event.seq, event.to), (1, DeliveryState::Created));");
            for (step, &i) in path.iter().enumerate() {
                let edge = &graph.transitions[i];
                let role = pascal_case(&graph.roles[edge.roles[0]].name);
                w!(main, "let (order, event) = order.{}({}, meta(Role::{role}));", edge.name, payload_literal(graph, edge));
                w!(
                    main,
                    "assert_eq!((event.seq, event.from, event.to), ({}, Some(DeliveryState::{}), DeliveryState::{}));",
                    step + 2,
                    state_type(&graph.states[edge.from]),
                    state_type(&graph.states[edge.to])
                );
            }
            w!(main, "assert!(order.state().is_final());");
            w!(main, "assert_eq!(order.version(), {});", path.len() + 1);
            w!(main, "}}");
            Output {
                path: format!("delivery-core/tests/pass/path_{}.rs", names.join("_then_")).into(),
                contents: rust_file(&main),
            }
        })
        .collect()
}

/// Every transition method on every state that lacks it, and every backwards edge named by
/// its target: each must fail to compile with the graph's own words.
fn fail_cases(graph: &Graph) -> Vec<Output> {
    let mut cases = Vec::new();
    for (name, edges) in graph.transition_names() {
        for (id, state) in graph.states.iter().enumerate() {
            if edges.iter().any(|e| e.from == id) {
                continue;
            }
            let source = format!(
                "//! `{name}` is not a transition out of {}.\nuse delivery_core::*;\nfn illegal(order: DeliveryOrder<{}>, payload: {}, meta: EventMeta) {{ let _ = order.{name}(payload, meta); }}\nfn main() {{}}",
                state.name,
                state_type(state),
                pascal_case(name),
            );
            cases.push(Output {
                path: format!(
                    "delivery-core/tests/fail/{name}_on_{}.rs",
                    state.name.to_ascii_lowercase()
                )
                .into(),
                contents: rust_file(&source),
            });
        }
    }
    for (from_id, from) in graph.states.iter().enumerate() {
        for to in &graph.states[..from_id] {
            cases.push(back_edge_case(from, to));
        }
    }
    cases
}

fn back_edge_case(from: &State, to: &State) -> Output {
    let source = format!(
        "//! Going back from {} to {} would close a cycle: the graph has no such edge.\nuse delivery_core::*;\nfn back<P>(order: DeliveryOrder<{}>, payload: P, meta: EventMeta) {{ let _ = order.transition_to::<{}>(payload, meta); }}\nfn main() {{}}",
        from.name,
        to.name,
        state_type(from),
        state_type(to),
    );
    Output {
        path: format!(
            "delivery-core/tests/fail/back_from_{}_to_{}.rs",
            from.name.to_ascii_lowercase(),
            to.name.to_ascii_lowercase()
        )
        .into(),
        contents: rust_file(&source),
    }
}
