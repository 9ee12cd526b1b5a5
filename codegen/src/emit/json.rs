//! The canonical JSON of a graph: its identity.
//!
//! The CloudFormation template stores it in an SSM parameter (with its SHA-256 in the state
//! machine version's description), the Rust emitter embeds it, and the service serves it at
//! `GET /v1/graph`. It must therefore be byte-stable: it is compact, and every object is a
//! struct below whose keys serialise in declaration order, whatever serde_json features
//! the build enables. The keys, in order:
//!
//! - graph: `version`, `name`, `description`, `roles` (names), `enums`, `states`,
//!   `transitions`;
//! - enum: `name`, `values`, `subset_of` (an enum name or `null`);
//! - state: `name`, `rank` (its index: every transition goes to a higher rank), `initial`,
//!   `final`, `data`;
//! - transition (one per edge, in declaration order): `name`, `from`, `to`, `roles`,
//!   `payload`;
//! - field: `name`, `type` (as written in graph.yaml, without `?`), `optional`.
//!
//! Descriptions other than the graph's are documentation and stay out of it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::graph::{Field, Graph};

/// The canonical JSON text of `graph`.
pub fn canonical(graph: &Graph) -> String {
    serde_json::to_string(&Document::of(graph)).expect("a document of strings always serialises")
}

/// The lower-case hexadecimal SHA-256 of `text`'s UTF-8 bytes.
pub fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// The canonical document; also what readers of the canonical JSON parse it into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub version: String,
    pub name: String,
    pub description: String,
    pub roles: Vec<String>,
    pub enums: Vec<EnumEntry>,
    pub states: Vec<StateEntry>,
    pub transitions: Vec<TransitionEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumEntry {
    pub name: String,
    pub values: Vec<String>,
    pub subset_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    pub name: String,
    pub rank: usize,
    pub initial: bool,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub data: Vec<FieldEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionEntry {
    pub name: String,
    pub from: String,
    pub to: String,
    pub roles: Vec<String>,
    pub payload: Vec<FieldEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub optional: bool,
}

impl Document {
    pub fn of(graph: &Graph) -> Document {
        let fields = |fields: &[Field]| -> Vec<FieldEntry> {
            fields
                .iter()
                .map(|field| FieldEntry {
                    name: field.name.clone(),
                    ty: field.ty.name(graph).to_owned(),
                    optional: field.optional,
                })
                .collect()
        };
        Document {
            version: graph.version.to_string(),
            name: graph.name.clone(),
            description: graph.description.clone(),
            roles: graph.roles.iter().map(|role| role.name.clone()).collect(),
            enums: graph
                .enums
                .iter()
                .map(|e| EnumEntry {
                    name: e.name.clone(),
                    values: e.values.clone(),
                    subset_of: e.subset_of.map(|id| graph.enums[id].name.clone()),
                })
                .collect(),
            states: graph
                .states
                .iter()
                .enumerate()
                .map(|(rank, state)| StateEntry {
                    name: state.name.clone(),
                    rank,
                    initial: state.initial,
                    is_final: state.is_final,
                    data: fields(&state.data),
                })
                .collect(),
            transitions: graph
                .transitions
                .iter()
                .map(|t| TransitionEntry {
                    name: t.name.clone(),
                    from: graph.states[t.from].name.clone(),
                    to: graph.states[t.to].name.clone(),
                    roles: t
                        .roles
                        .iter()
                        .map(|&r| graph.roles[r].name.clone())
                        .collect(),
                    payload: fields(&t.payload),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_the_standard_digest() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
