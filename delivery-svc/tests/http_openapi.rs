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
    let mut table: Vec<String> = Operation::ALL
        .iter()
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
