//! `cloudformation/delivery-graph.yaml`: the graph versioned as AWS resources, and a reader
//! that extracts the graph back out of such a template.
//!
//! The template is built as a `serde_yaml` value, whose mappings keep insertion order, so
//! the text is valid YAML and stable. Intrinsic functions use their long form (`Ref:`,
//! `Fn::GetAtt:`) so that plain YAML readers, [`graph_of_template`] among them, see them.
//! The design is explained to the template's readers by [`design_comment`].

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use crate::emit::json;
use crate::graph::{Graph, StateId};

/// The SSM standard tier holds values up to 4 KB; a larger canonical JSON needs the
/// advanced tier.
const SSM_STANDARD_TIER_LIMIT: usize = 4096;
/// The Fail state a transition that does not leave the current state goes to.
const ILLEGAL_TRANSITION: &str = "IllegalTransition";
/// The Fail state a walk goes to when the input stops in a non-final state.
const UNFINISHED: &str = "Unfinished";
/// Logical ids of the template's resources.
const PARAMETER: &str = "GraphParameter";
const ROLE: &str = "StateMachineRole";
const MACHINE: &str = "StateMachine";
const VERSION: &str = "StateMachineVersion";
const ALIAS: &str = "StateMachineAlias";
/// The alias executions start through.
const ALIAS_NAME: &str = "live";
/// Precedes the graph's SHA-256 at the end of the SSM parameter and version descriptions.
const SHA256_LABEL: &str = "sha256 ";

/// The whole template text.
pub fn template(graph: &Graph) -> String {
    let json = json::canonical(graph);
    let sha256 = json::sha256_hex(&json);
    let template = map([
        ("AWSTemplateFormatVersion", "2010-09-09".into()),
        (
            "Description",
            format!(
                "The {} state graph {}: an SSM parameter holding its canonical JSON and a \
                 Step Functions state machine mirroring it.",
                graph.name, graph.version
            )
            .into(),
        ),
        ("Parameters", parameters()),
        ("Resources", resources(graph, &json, &sha256)),
        ("Outputs", outputs(graph, &sha256)),
    ]);
    let yaml = serde_yaml::to_string(&template).expect("a YAML value always serialises");
    format!(
        "# {}\n{}{yaml}",
        crate::GENERATED_HEADER,
        design_comment(graph)
    )
}

/// The comment below the header line: how a reader maps the template back to the graph.
fn design_comment(graph: &Graph) -> String {
    let example: Vec<String> = graph
        .simple_paths()
        .first()
        .into_iter()
        .flatten()
        .map(|&edge| {
            let t = &graph.transitions[edge];
            format!("\"{}\": \"{}\"", graph.states[t.from].name, t.name)
        })
        .collect();
    format!(
        "#
# GraphParameter holds the graph's canonical JSON, its identity, under
# /delivery/<Environment>/graph/v<major>. A new major version makes a new parameter; the
# old one is retained for the orders still living under it.
#
# StateMachine mirrors the graph in Amazon States Language: one state per graph state, of
# the same name. An execution walks one order's life; its input names, for each state the
# order has left, the transition it left by (the graph is acyclic, so no state is left
# twice), e.g.
#   {{\"transitions\": {{{}}}}}
# A non-final state is a Choice on $.transitions.<STATE>: one rule per outgoing edge
# (StringEquals the transition's name, Next its target state); any other name goes to the
# {ILLEGAL_TRANSITION} Fail state, and no name at all (the order still waits there for its
# next event) to the {UNFINISHED} Fail state. A final state is a Succeed state. The states
# call no AWS service, so the role the machine assumes grants nothing.
#
# StateMachineVersion publishes the definition once per graph version (its description
# names the version and the canonical JSON's SHA-256) and is retained; the alias `{ALIAS_NAME}`
# routes every execution to it.

",
        example.join(", ")
    )
}

fn parameters() -> Value {
    map([(
        "Environment",
        map([
            ("Type", "String".into()),
            (
                "Description",
                "The environment's name, used in the names of the resources.".into(),
            ),
            ("AllowedPattern", "^[a-z][a-z0-9-]{0,19}$".into()),
        ]),
    )])
}

fn resources(graph: &Graph, json: &str, sha256: &str) -> Value {
    let identity = format!(
        "{} graph {}, {SHA256_LABEL}{sha256}",
        graph.name, graph.version
    );
    map([
        (PARAMETER, graph_parameter(graph, json, &identity)),
        (ROLE, role(graph)),
        (MACHINE, state_machine(graph)),
        (VERSION, state_machine_version(&identity)),
        (ALIAS, state_machine_alias()),
    ])
}

/// The canonical JSON, one parameter per major version, retained when a new major
/// version replaces it.
fn graph_parameter(graph: &Graph, json: &str, identity: &str) -> Value {
    let tier = if json.len() > SSM_STANDARD_TIER_LIMIT {
        "Advanced"
    } else {
        "Standard"
    };
    let name = format!("/delivery/${{Environment}}/graph/v{}", graph.version.major);
    retained(resource(
        "AWS::SSM::Parameter",
        map([
            ("Name", sub(&name)),
            ("Type", "String".into()),
            ("Tier", tier.into()),
            (
                "Description",
                format!("Canonical JSON of the {identity}").into(),
            ),
            ("Value", json.into()),
        ]),
    ))
}

/// The role the state machine assumes: trusted by Step Functions in this account only, and
/// without policies, because Choice, Succeed and Fail states call nothing.
fn role(graph: &Graph) -> Value {
    let trust = map([
        ("Effect", "Allow".into()),
        (
            "Principal",
            map([("Service", "states.amazonaws.com".into())]),
        ),
        ("Action", "sts:AssumeRole".into()),
        (
            "Condition",
            map([(
                "StringEquals",
                map([("aws:SourceAccount", reference("AWS::AccountId"))]),
            )]),
        ),
    ]);
    resource(
        "AWS::IAM::Role",
        map([
            (
                "Description",
                format!(
                    "Assumed by the {} state machine; grants nothing.",
                    graph.name
                )
                .into(),
            ),
            (
                "AssumeRolePolicyDocument",
                map([
                    ("Version", "2012-10-17".into()),
                    ("Statement", vec![trust].into()),
                ]),
            ),
        ]),
    )
}

fn state_machine(graph: &Graph) -> Value {
    resource(
        "AWS::StepFunctions::StateMachine",
        map([
            (
                "StateMachineName",
                sub(&format!("${{Environment}}-{}", graph.name)),
            ),
            ("StateMachineType", "STANDARD".into()),
            ("RoleArn", get_att(ROLE, "Arn")),
            ("Definition", definition(graph)),
        ]),
    )
}

/// Published from the machine's current revision; a new graph version changes the
/// description, which replaces the resource and so publishes a new version, while the old
/// one is retained for executions still running on it.
fn state_machine_version(identity: &str) -> Value {
    retained(resource(
        "AWS::StepFunctions::StateMachineVersion",
        map([
            ("StateMachineArn", reference(MACHINE)),
            (
                "StateMachineRevisionId",
                get_att(MACHINE, "StateMachineRevisionId"),
            ),
            ("Description", identity.into()),
        ]),
    ))
}

fn state_machine_alias() -> Value {
    let route = map([
        ("StateMachineVersionArn", reference(VERSION)),
        ("Weight", 100.into()),
    ]);
    resource(
        "AWS::StepFunctions::StateMachineAlias",
        map([
            ("Name", ALIAS_NAME.into()),
            (
                "Description",
                "Routes every execution to the current graph version.".into(),
            ),
            ("RoutingConfiguration", vec![route].into()),
        ]),
    )
}

fn outputs(graph: &Graph, sha256: &str) -> Value {
    let output = |description: &str, value: Value| {
        map([("Description", description.into()), ("Value", value)])
    };
    map([
        (
            "StateMachineArn",
            output("The state machine.", reference(MACHINE)),
        ),
        (
            "StateMachineVersionArn",
            output(
                "The state machine version of this graph version.",
                reference(VERSION),
            ),
        ),
        (
            "StateMachineAliasArn",
            output(&format!("The alias `{ALIAS_NAME}`."), reference(ALIAS)),
        ),
        (
            "GraphParameterName",
            output(
                "The SSM parameter holding the canonical JSON.",
                reference(PARAMETER),
            ),
        ),
        (
            "GraphVersion",
            output("The graph's version.", graph.version.to_string().into()),
        ),
        (
            "GraphSha256",
            output("The SHA-256 of the canonical JSON.", sha256.into()),
        ),
    ])
}

/// The state machine definition (see [`design_comment`]).
fn definition(graph: &Graph) -> Value {
    let mut states: Mapping = graph
        .states
        .iter()
        .enumerate()
        .map(|(id, state)| (state.name.clone().into(), to_value(&graph_state(graph, id))))
        .collect();
    let fail_states = [
        (
            ILLEGAL_TRANSITION,
            "The transition does not leave the state the order is in.",
        ),
        (
            UNFINISHED,
            "The order has not left a non-final state: it waits for its next event.",
        ),
    ];
    for (error, cause) in fail_states {
        let fail = AslState::Fail {
            error: error.to_owned(),
            cause: cause.to_owned(),
        };
        states.insert(error.into(), to_value(&fail));
    }
    to_value(&Definition {
        comment: format!("{} {}: {}", graph.name, graph.version, graph.description),
        start_at: graph.states[graph.initial()].name.clone(),
        states,
    })
}

/// A final state succeeds; any other chooses among its outgoing edges.
fn graph_state(graph: &Graph, id: StateId) -> AslState {
    let state = &graph.states[id];
    if state.is_final {
        return AslState::Succeed {
            comment: state.description.clone(),
        };
    }
    let edges = graph.outgoing(id).map(|t| ChoiceRule {
        variable: transition_path(&state.name),
        is_present: None,
        string_equals: Some(t.name.clone()),
        next: graph.states[t.to].name.clone(),
    });
    AslState::Choice {
        comment: state.description.clone(),
        choices: std::iter::once(unfinished_rule(&state.name))
            .chain(edges)
            .collect(),
        default: ILLEGAL_TRANSITION.to_owned(),
    }
}

/// The first rule of every Choice: comparing a missing input field would be a runtime
/// error, so a state the order has not left is recognised first.
fn unfinished_rule(state: &str) -> ChoiceRule {
    ChoiceRule {
        variable: transition_path(state),
        is_present: Some(false),
        string_equals: None,
        next: UNFINISHED.to_owned(),
    }
}

/// Where an execution's input names the transition that left `state`.
fn transition_path(state: &str) -> String {
    format!("$.transitions.{state}")
}

/// The subset of Amazon States Language the definition uses, for writing and reading it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    comment: String,
    start_at: String,
    /// State name → [`AslState`], in rank order, then the Fail states.
    states: Mapping,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "Type", rename_all_fields = "PascalCase")]
enum AslState {
    Choice {
        comment: String,
        choices: Vec<ChoiceRule>,
        default: String,
    },
    Succeed {
        comment: String,
    },
    Fail {
        error: String,
        cause: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChoiceRule {
    variable: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_present: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    string_equals: Option<String>,
    next: String,
}

fn to_value(value: &impl Serialize) -> Value {
    serde_yaml::to_value(value).expect("ASL structs always serialise")
}

fn resource(resource_type: &str, properties: Value) -> Value {
    map([("Type", resource_type.into()), ("Properties", properties)])
}

fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// Retains the resource when it is deleted or replaced: old graph versions stay readable.
fn retained(mut resource: Value) -> Value {
    let policies = resource.as_mapping_mut().expect("a resource is a mapping");
    policies.insert("DeletionPolicy".into(), "Retain".into());
    policies.insert("UpdateReplacePolicy".into(), "Retain".into());
    resource
}

fn reference(logical_id: &str) -> Value {
    map([("Ref", logical_id.into())])
}

fn get_att(logical_id: &str, attribute: &str) -> Value {
    map([("Fn::GetAtt", vec![logical_id, attribute].into())])
}

fn sub(text: &str) -> Value {
    map([("Fn::Sub", text.into())])
}

/// What a template says the graph is, read back from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateGraph {
    /// The version in the SSM parameter's canonical JSON.
    pub version: String,
    /// The shape the state machine definition describes.
    pub state_machine: Shape,
    /// The shape the SSM parameter's canonical JSON describes.
    pub parameter: Shape,
    /// The SHA-256 of the SSM parameter's value, computed here.
    pub parameter_sha256: String,
    /// The SHA-256 the state machine version's description names.
    pub version_sha256: String,
}

/// The states and edges of a graph, sorted, so shapes from different sources compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub initial: String,
    pub states: Vec<String>,
    pub finals: Vec<String>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub name: String,
    pub to: String,
}

impl Shape {
    /// The shape of a loaded graph: what a template's shapes must equal.
    pub fn of(graph: &Graph) -> Shape {
        Shape::sorted(
            graph.states[graph.initial()].name.clone(),
            graph.states.iter().map(|s| s.name.clone()).collect(),
            graph
                .states
                .iter()
                .filter(|s| s.is_final)
                .map(|s| s.name.clone())
                .collect(),
            graph
                .transitions
                .iter()
                .map(|t| Edge {
                    from: graph.states[t.from].name.clone(),
                    name: t.name.clone(),
                    to: graph.states[t.to].name.clone(),
                })
                .collect(),
        )
    }

    fn sorted(
        initial: String,
        mut states: Vec<String>,
        mut finals: Vec<String>,
        mut edges: Vec<Edge>,
    ) -> Shape {
        states.sort();
        finals.sort();
        edges.sort();
        Shape {
            initial,
            states,
            finals,
            edges,
        }
    }
}

/// Why a template could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not YAML, or not the expected structure: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("the SSM parameter's value is not canonical graph JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Malformed(String),
}

/// Reads the graph back out of a template: from the state machine definition and from the
/// SSM parameter's canonical JSON, each on its own, so a test can check both against the
/// graph. Resources are found by type, not logical id.
pub fn graph_of_template(template_yaml: &str) -> Result<TemplateGraph, ReadError> {
    let template: Value = serde_yaml::from_str(template_yaml)?;
    let parameter_json = property_str(&template, "AWS::SSM::Parameter", "Value")?;
    let document: json::Document = serde_json::from_str(parameter_json)?;
    let definition: Definition = serde_yaml::from_value(
        property(&template, "AWS::StepFunctions::StateMachine", "Definition")?.clone(),
    )?;
    let version_description = property_str(
        &template,
        "AWS::StepFunctions::StateMachineVersion",
        "Description",
    )?;
    let (_, version_sha256) = version_description
        .rsplit_once(SHA256_LABEL)
        .ok_or_else(|| malformed("the state machine version's description names no SHA-256"))?;
    Ok(TemplateGraph {
        version: document.version.clone(),
        state_machine: shape_of_definition(&definition)?,
        parameter: shape_of_document(&document)?,
        parameter_sha256: json::sha256_hex(parameter_json),
        version_sha256: version_sha256.to_owned(),
    })
}

fn shape_of_definition(definition: &Definition) -> Result<Shape, ReadError> {
    let (mut states, mut finals, mut edges) = (Vec::new(), Vec::new(), Vec::new());
    for (name, state) in &definition.states {
        let name = name
            .as_str()
            .ok_or_else(|| malformed("a state name is not a string"))?
            .to_owned();
        match serde_yaml::from_value(state.clone())? {
            AslState::Choice { choices, .. } => {
                for rule in choices {
                    if rule.variable != transition_path(&name) {
                        return Err(malformed(format!(
                            "state {name} reads {}, not its own transition",
                            rule.variable
                        )));
                    }
                    if let Some(transition) = rule.string_equals {
                        edges.push(Edge {
                            from: name.clone(),
                            name: transition,
                            to: rule.next,
                        });
                    }
                }
                states.push(name);
            }
            AslState::Succeed { .. } => {
                finals.push(name.clone());
                states.push(name);
            }
            // Fail states end illegal or unfinished walks; they are no graph states.
            AslState::Fail { .. } => {}
        }
    }
    Ok(Shape::sorted(
        definition.start_at.clone(),
        states,
        finals,
        edges,
    ))
}

fn shape_of_document(document: &json::Document) -> Result<Shape, ReadError> {
    let initial = document
        .states
        .iter()
        .find(|s| s.initial)
        .ok_or_else(|| malformed("the canonical JSON has no initial state"))?;
    Ok(Shape::sorted(
        initial.name.clone(),
        document.states.iter().map(|s| s.name.clone()).collect(),
        document
            .states
            .iter()
            .filter(|s| s.is_final)
            .map(|s| s.name.clone())
            .collect(),
        document
            .transitions
            .iter()
            .map(|t| Edge {
                from: t.from.clone(),
                name: t.name.clone(),
                to: t.to.clone(),
            })
            .collect(),
    ))
}

/// The property `key` of the one resource of type `resource_type`.
fn property<'t>(
    template: &'t Value,
    resource_type: &str,
    key: &str,
) -> Result<&'t Value, ReadError> {
    let resources = template
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| malformed("the template has no Resources"))?;
    let mut of_type = resources
        .values()
        .filter(|r| r.get("Type").and_then(Value::as_str) == Some(resource_type));
    let resource = match (of_type.next(), of_type.next()) {
        (Some(resource), None) => resource,
        _ => {
            return Err(malformed(format!(
                "the template has not exactly one {resource_type}"
            )));
        }
    };
    resource
        .get("Properties")
        .and_then(|p| p.get(key))
        .ok_or_else(|| malformed(format!("the {resource_type} has no {key}")))
}

fn property_str<'t>(
    template: &'t Value,
    resource_type: &str,
    key: &str,
) -> Result<&'t str, ReadError> {
    property(template, resource_type, key)?
        .as_str()
        .ok_or_else(|| malformed(format!("the {resource_type}'s {key} is not a string")))
}

fn malformed(why: impl Into<String>) -> ReadError {
    ReadError::Malformed(why.into())
}
