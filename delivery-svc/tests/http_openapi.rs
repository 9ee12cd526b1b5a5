//! The OpenAPI document: a reviewed snapshot, and its agreement with the RBAC table and
//! with graph.yaml.

use delivery_core::Transition;
use delivery_svc::auth::Operation;
use delivery_svc::http::openapi_json;
use serde_json::Value;

fn spec() -> Value {
    serde_json::from_str(&openapi_json()).expect("the spec is JSON")
}

/// Every operation of the spec, as ("METHOD /path", the operation).
fn operations(spec: &Value) -> impl Iterator<Item = (String, &Value)> {
    spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            let operations = operations.as_object().expect("operations");
            operations.iter().map(move |(method, operation)| {
                (format!("{} {path}", method.to_uppercase()), operation)
            })
        })
}

/// Every response of every operation, as ("METHOD /path", status, the response).
fn responses(spec: &Value) -> impl Iterator<Item = (String, &str, &Value)> {
    operations(spec).flat_map(|(operation, described)| {
        let responses = described["responses"].as_object().expect("responses");
        responses
            .iter()
            .map(move |(status, response)| (operation.clone(), status.as_str(), response))
    })
}

#[test]
fn the_spec_matches_its_reviewed_snapshot() {
    insta::assert_snapshot!("openapi", openapi_json());
}

#[test]
fn every_operation_of_the_spec_is_in_the_rbac_table_and_the_other_way_round() {
    let spec = spec();
    let mut documented: Vec<String> = operations(&spec)
        .filter(|(_, operation)| operation.get("security").is_some())
        .map(|(name, _)| name)
        .collect();
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
    for (operation, status, response) in responses(&spec) {
        if status.starts_with('4') || status.starts_with('5') {
            assert!(
                response["content"]
                    .get("application/problem+json")
                    .is_some(),
                "{operation} {status}"
            );
        }
    }
}

/// JSON in which no object names a key twice: deserialising it fails at the first repeat.
struct NoRepeatedKeys;

impl<'de> serde::Deserialize<'de> for NoRepeatedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NoRepeatedKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<NoRepeatedKeys>()?;
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("{key:?} twice")));
                    }
                }
                Ok(NoRepeatedKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<NoRepeatedKeys>()?.is_some() {}
                Ok(NoRepeatedKeys)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(NoRepeatedKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NoRepeatedKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NoRepeatedKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(NoRepeatedKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NoRepeatedKeys)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(NoRepeatedKeys)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Strict JSON parsers (openapi-generator's Jackson) refuse a spec that names a key twice;
/// lenient ones keep one of the two silently. The 429's RateLimit-* headers were declared
/// both by the response and for every response.
#[test]
fn the_spec_names_no_key_twice_in_one_object() {
    if let Err(err) = serde_json::from_str::<NoRepeatedKeys>(&openapi_json()) {
        panic!("the spec repeats a key: {err}");
    }
    assert!(serde_json::from_str::<NoRepeatedKeys>(r#"{"a": [{"b": 1, "b": 2}]}"#).is_err());
}

/// A JSON body is declared as exactly `application/json`: openapi-python-generator, for
/// one, reads no other media type as JSON, and its operations returned nothing while
/// responses were declared `application/json; charset=utf-8` (poem-openapi's `Json`).
#[test]
fn every_body_is_plain_json_or_problem_json() {
    let spec = spec();
    let request_bodies = operations(&spec).filter_map(|(operation, described)| {
        let body = described.get("requestBody")?;
        Some((operation, "request", body))
    });
    let mut others = Vec::new();
    for (operation, at, body) in request_bodies.chain(responses(&spec)) {
        let media_types = body["content"].as_object().into_iter().flatten();
        for (media_type, _) in media_types {
            if media_type != "application/json" && media_type != "application/problem+json" {
                others.push(format!("{operation} {at}: {media_type}"));
            }
        }
    }
    assert_eq!(others, Vec::<String>::new());
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
