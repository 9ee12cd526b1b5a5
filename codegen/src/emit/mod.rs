//! Emitters: each turns a validated [`crate::Graph`] into the text of derived files.

pub mod cloudformation;
pub mod json;
pub mod mermaid;
pub mod rust;
