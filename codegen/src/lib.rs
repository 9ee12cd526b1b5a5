//! Reads graph.yaml, checks it, and writes every file derived from it.
//!
//! - [`load`] parses and validates a graph file into a [`Graph`], or returns
//!   [`Diagnostics`] in the `FILE:LINE:COL: error[CODE]: message` form.
//! - [`graph`] is the validated model every emitter reads.
//! - [`emit`] turns a [`Graph`] into files: the Rust typestate module of delivery-core,
//!   the CloudFormation template, the Mermaid page and the canonical JSON.
//! - [`outputs`] lists every derived file with its contents; the binary writes them and the
//!   drift test compares them with what is checked in.

pub mod diagnostic;
pub mod emit;
pub mod graph;
mod load;

use std::path::PathBuf;

pub use diagnostic::{Code, Diagnostic, Diagnostics};
pub use graph::Graph;
pub use load::load;

/// The first line of every generated file, after the comment leader of its language.
pub const GENERATED_HEADER: &str = "generated from graph.yaml by cargo codegen, do not edit";

/// One derived file: where it lives (relative to the workspace root) and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub path: PathBuf,
    pub contents: String,
}

/// Every file derived from the graph.
pub fn outputs(graph: &Graph) -> Vec<Output> {
    let mut outputs = vec![
        Output {
            path: "cloudformation/delivery-graph.yaml".into(),
            contents: emit::cloudformation::template(graph),
        },
        Output {
            path: "docs/graph.md".into(),
            contents: emit::mermaid::page(graph),
        },
    ];
    outputs.extend(emit::rust::files(graph));
    outputs
}

/// The workspace root, found from this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("codegen lives one level below the workspace root")
        .to_path_buf()
}
