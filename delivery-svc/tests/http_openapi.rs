//! The OpenAPI document: a reviewed snapshot, and its agreement with the RBAC table and
//! with graph.yaml.

use delivery_core::Transition;
use delivery_svc::auth::Operation;
use delivery_svc::http::openapi_json;
use serde_json::Value;

fn spec() -> Value {
    serde_json::from_str(&openapi_json()).expect("the spec is JSON")
}

#[test]
fn the_spec_matches_its_reviewed_snapshot() {
    insta::assert_snapshot!("openapi", openapi_json());
}

#[test]
fn every_operation_of_the_spec_is_in_the_rbac_table_and_the_other_way_round() {
    let spec = spec();
    let mut documented: Vec<String> = Vec::new();
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            if operation.get("security").is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    // The live updates' WebSocket is in the table but not in the spec, which cannot
    // describe one.
    let mut table: Vec<String> = Operation::ALL
        .iter()
        .filter(|operation| operation.permission().path != delivery_svc::http::live::PATH)
        .map(|operation| {
            let permission = operation.permission();
            format!("{} {}", permission.method, permission.path)
        })
        .collect();
    documented.sort();
    table.sort();
    assert_eq!(documented, table);
}

#[test]
fn the_transition_body_has_one_variant_per_transition_of_graph_yaml() {
    let spec = spec();
    let mapping = spec["components"]["schemas"]["TransitionRequest"]["discriminator"]["mapping"]
        .as_object()
        .expect("a discriminator mapping");
    let mut variants: Vec<&str> = mapping.keys().map(String::as_str).collect();
    let mut transitions: Vec<&str> = Transition::ALL.iter().map(|t| t.name()).collect();
    variants.sort_unstable();
    transitions.sort_unstable();
    assert_eq!(variants, transitions);
}

#[test]
fn every_error_is_documented_as_problem_json() {
    let spec = spec();
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"]
                            .get("application/problem+json")
                            .is_some(),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

/// Every `allOf` of the spec, as (where, member) for each member that is not an object
/// schema (a `$ref` is followed to the schema it names).
fn non_object_all_of_members(spec: &Value) -> Vec<String> {
    fn walk(node: &Value, at: &str, schemas: &Value, found: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                for member in map
                    .get("allOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let resolved = match member["$ref"].as_str() {
                        Some(target) => {
                            let name = target.trim_start_matches("#/components/schemas/");
                            &schemas[name]
                        }
                        None => member,
                    };
                    if resolved["type"] != "object" {
                        found.push(format!("{at}: {member}"));
                    }
                }
                for (key, child) in map {
                    walk(child, &format!("{at}/{key}"), schemas, found);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{index}"), schemas, found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(spec, "#", &spec["components"]["schemas"], &mut found);
    found
}

/// openapi-python-client (and other generators) take `allOf` only over object schemas: a
/// field that wrapped a `$ref` to a string schema in `allOf` to add its description made
/// the generator drop the whole model (Problem, TransitionResult, ...), and every response
/// that used it.
#[test]
fn no_allof_over_a_non_object() {
    let spec = spec();
    assert_eq!(non_object_all_of_members(&spec), Vec::<String>::new());
}
