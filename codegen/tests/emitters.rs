//! The JSON, Mermaid and CloudFormation emitters on the real graph.yaml.

use codegen::Graph;
use codegen::emit::cloudformation::{self, Shape};
use codegen::emit::{json, mermaid};

fn graph() -> Graph {
    codegen::load("graph.yaml", include_str!("../../graph.yaml")).expect("graph.yaml loads")
}

#[test]
fn canonical_json() {
    insta::assert_snapshot!(json::canonical(&graph()));
}

#[test]
fn mermaid_page() {
    insta::assert_snapshot!(mermaid::page(&graph()));
}

#[test]
fn cloudformation_template() {
    insta::assert_snapshot!(cloudformation::template(&graph()));
}

#[test]
fn canonical_json_is_stable_under_regeneration() {
    let text = json::canonical(&graph());
    assert_eq!(json::canonical(&graph()), text);
    let reparsed: json::Document = serde_json::from_str(&text).expect("canonical JSON parses");
    assert_eq!(reparsed, json::Document::of(&graph()));
    assert_eq!(serde_json::to_string(&reparsed).unwrap(), text);
}

#[test]
fn generated_files_start_with_the_header() {
    let graph = graph();
    let header = codegen::GENERATED_HEADER;
    assert!(mermaid::page(&graph).starts_with(&format!("<!-- {header} -->\n")));
    assert!(cloudformation::template(&graph).starts_with(&format!("# {header}\n")));
}

#[test]
fn template_describes_exactly_graph_yaml() {
    let graph = graph();
    let read = cloudformation::graph_of_template(&cloudformation::template(&graph))
        .expect("the template reads back");
    assert_eq!(read.state_machine, Shape::of(&graph));
    assert_eq!(read.parameter, Shape::of(&graph));
    assert_eq!(read.version, graph.version.to_string());
    assert_eq!(read.parameter_sha256, read.version_sha256);
    assert_eq!(
        read.parameter_sha256,
        json::sha256_hex(&json::canonical(&graph))
    );
}

#[test]
fn template_of_another_graph_does_not_match() {
    let mut other = graph();
    other.transitions.pop();
    let read = cloudformation::graph_of_template(&cloudformation::template(&other)).unwrap();
    assert_ne!(read.state_machine, Shape::of(&graph()));
    assert_ne!(read.parameter, Shape::of(&graph()));
}

#[test]
fn ssm_tier_follows_the_size_of_the_json() {
    let tier = |graph: &Graph| {
        let template: serde_yaml::Value =
            serde_yaml::from_str(&cloudformation::template(graph)).unwrap();
        template["Resources"]["GraphParameter"]["Properties"]["Tier"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut graph = graph();
    assert_eq!(tier(&graph), "Standard");
    graph.description = "x".repeat(4096);
    assert_eq!(tier(&graph), "Advanced");
}
