//! Diagnostics of `codegen check`: what is wrong in a graph file, and where.
//!
//! Every problem is one line, `FILE:LINE:COL: error[CODE]: message`, with a 1-based line and
//! column, so editors and CI logs can jump to it. Codes are stable: docs/graph-format.md
//! lists them, and a code is never reused for another meaning.

use std::fmt;

use thiserror::Error;

/// One problem in a graph file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}:{line}:{column}: error[{code}]: {message}")]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
    pub code: Code,
    pub message: String,
}

/// Every problem found in a graph file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0
            .iter()
            .try_for_each(|diagnostic| writeln!(f, "{diagnostic}"))
    }
}

impl std::error::Error for Diagnostics {}

/// The kind of a problem. Displays as its stable code, e.g. `E017`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    Syntax,
    Schema,
    Version,
    Naming,
    Duplicate,
    UnknownState,
    UnknownType,
    UnknownRole,
    Subset,
    InitialCount,
    InitialFinal,
    LeavesFinal,
    ParallelEdges,
    SharedName,
    Unreachable,
    DeadEnd,
    Cycle,
    FieldNotSupplied,
    FieldTypeMismatch,
    FieldMaybeMissing,
    FieldTypeConflict,
}

impl Code {
    /// Every code, in code order.
    pub const ALL: [Code; 21] = [
        Code::Syntax,
        Code::Schema,
        Code::Version,
        Code::Naming,
        Code::Duplicate,
        Code::UnknownState,
        Code::UnknownType,
        Code::UnknownRole,
        Code::Subset,
        Code::InitialCount,
        Code::InitialFinal,
        Code::LeavesFinal,
        Code::ParallelEdges,
        Code::SharedName,
        Code::Unreachable,
        Code::DeadEnd,
        Code::Cycle,
        Code::FieldNotSupplied,
        Code::FieldTypeMismatch,
        Code::FieldMaybeMissing,
        Code::FieldTypeConflict,
    ];

    /// The stable code, e.g. `E017`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Code::Syntax => "E001",
            Code::Schema => "E002",
            Code::Version => "E003",
            Code::Naming => "E004",
            Code::Duplicate => "E005",
            Code::UnknownState => "E006",
            Code::UnknownType => "E007",
            Code::UnknownRole => "E008",
            Code::Subset => "E009",
            Code::InitialCount => "E010",
            Code::InitialFinal => "E011",
            Code::LeavesFinal => "E012",
            Code::ParallelEdges => "E013",
            Code::SharedName => "E014",
            Code::Unreachable => "E015",
            Code::DeadEnd => "E016",
            Code::Cycle => "E017",
            Code::FieldNotSupplied => "E018",
            Code::FieldTypeMismatch => "E019",
            Code::FieldMaybeMissing => "E020",
            Code::FieldTypeConflict => "E021",
        }
    }

    /// What the code means, in one line.
    pub fn explanation(&self) -> &'static str {
        match self {
            Code::Syntax => "the file is not valid YAML, or its top level is not a mapping",
            Code::Schema => "a key is unknown or missing, or a value has the wrong shape",
            Code::Version => "`version` is not MAJOR.MINOR.PATCH",
            Code::Naming => "a name breaks its naming convention, or is a reserved word",
            Code::Duplicate => "a name is declared twice where it must be unique",
            Code::UnknownState => "a transition names a state that is not declared",
            Code::UnknownType => "a field's type is neither built in nor a declared enum",
            Code::UnknownRole => "a transition names a role that is not declared",
            Code::Subset => "`subset_of` names no other enum, or a value is not in the parent enum",
            Code::InitialCount => "there is not exactly one initial state",
            Code::InitialFinal => "a state is both initial and final",
            Code::LeavesFinal => "a transition leaves a final state",
            Code::ParallelEdges => "two transitions join the same pair of states",
            Code::SharedName => "transitions sharing a name differ in payload, target or roles",
            Code::Unreachable => "a state cannot be reached from the initial state",
            Code::DeadEnd => "a state cannot reach a final state",
            Code::Cycle => "the transitions form a cycle",
            Code::FieldNotSupplied => "a transition leaves a required field of its target empty",
            Code::FieldTypeMismatch => "a transition fills a field with a value of another type",
            Code::FieldMaybeMissing => "a transition fills a required field from an optional one",
            Code::FieldTypeConflict => "two states give one field name different types",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
