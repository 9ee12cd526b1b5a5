//! The validated graph: what every emitter reads.
//!
//! A [`Graph`] only comes out of [`crate::load`], which has checked it: names resolve,
//! exactly one initial state, every state reachable and able to reach a final state, no
//! cycle, and every field of a state supplied on every way into it. Emitters can therefore
//! index freely and never re-validate.

use std::fmt;

/// A semantic version, `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Index of a state in [`Graph::states`].
pub type StateId = usize;
/// Index of an enum in [`Graph::enums`].
pub type EnumId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub version: Version,
    /// The machine's name, e.g. `DeliveryOrder`.
    pub name: String,
    pub description: String,
    /// Roles in declaration order.
    pub roles: Vec<Role>,
    /// Enums in declaration order.
    pub enums: Vec<Enum>,
    /// States in a topological order (declaration order among equals): every transition
    /// goes from a lower index to a higher one, so a state's index is its rank.
    pub states: Vec<State>,
    /// Transitions (edges) in declaration order. Several edges may share a name (`fail`
    /// leaves two states); they then share one payload.
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// `snake_case`, e.g. `partner`.
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum {
    /// `PascalCase`, e.g. `FailureReason`.
    pub name: String,
    pub description: String,
    /// `SCREAMING_SNAKE_CASE` values in declaration order.
    pub values: Vec<String>,
    /// The enum whose values are a superset of these: a value of this enum converts into it.
    pub subset_of: Option<EnumId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `SCREAMING_SNAKE_CASE`, e.g. `PICKED_UP`.
    pub name: String,
    pub description: String,
    pub initial: bool,
    pub is_final: bool,
    /// The data an order carries while in this state.
    pub data: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// `snake_case`, e.g. `pick_up`.
    pub name: String,
    pub description: String,
    pub from: StateId,
    pub to: StateId,
    /// Indices into [`Graph::roles`].
    pub roles: Vec<usize>,
    pub payload: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// `snake_case`.
    pub name: String,
    pub ty: FieldType,
    pub optional: bool,
}

/// The vocabulary of field types a graph may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// The partner's own delivery order number.
    PartnerOrderNumber,
    /// An operator's identifier.
    OperatorId,
    /// An instant (RFC 3339 on the wire).
    Timestamp,
    /// Free text.
    Text,
    /// One of [`Graph::enums`].
    Enum(EnumId),
}

impl FieldType {
    /// The built-in type names, as written in graph.yaml.
    pub const BUILTIN: [(&'static str, FieldType); 4] = [
        ("PartnerOrderNumber", FieldType::PartnerOrderNumber),
        ("OperatorId", FieldType::OperatorId),
        ("Timestamp", FieldType::Timestamp),
        ("Text", FieldType::Text),
    ];

    /// The type's name as written in graph.yaml.
    pub fn name<'g>(&self, graph: &'g Graph) -> &'g str {
        match self {
            FieldType::Enum(id) => &graph.enums[*id].name,
            builtin => {
                Self::BUILTIN
                    .iter()
                    .find(|(_, ty)| ty == builtin)
                    .expect("every non-enum type is built in")
                    .0
            }
        }
    }
}

impl Graph {
    /// The one initial state.
    pub fn initial(&self) -> StateId {
        self.states
            .iter()
            .position(|s| s.initial)
            .expect("a loaded graph has exactly one initial state")
    }

    /// Edges leaving `state`, in declaration order.
    pub fn outgoing(&self, state: StateId) -> impl Iterator<Item = &Transition> {
        self.transitions.iter().filter(move |t| t.from == state)
    }

    /// Distinct transition names in order of first declaration, each with its edges.
    pub fn transition_names(&self) -> Vec<(&str, Vec<&Transition>)> {
        let mut names: Vec<(&str, Vec<&Transition>)> = Vec::new();
        for t in &self.transitions {
            match names.iter_mut().find(|(name, _)| *name == t.name) {
                Some((_, edges)) => edges.push(t),
                None => names.push((&t.name, vec![t])),
            }
        }
        names
    }

    /// Every simple path from the initial state to a final state, as edge indices into
    /// [`Graph::transitions`], in a deterministic order (depth first, declaration order).
    pub fn simple_paths(&self) -> Vec<Vec<usize>> {
        fn walk(g: &Graph, at: StateId, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if g.states[at].is_final {
                out.push(path.clone());
                return;
            }
            for (i, t) in g.transitions.iter().enumerate() {
                if t.from == at {
                    path.push(i);
                    walk(g, t.to, path, out);
                    path.pop();
                }
            }
        }
        let mut out = Vec::new();
        walk(self, self.initial(), &mut Vec::new(), &mut out);
        out
    }

    /// The data fields of every state, merged by name in order of first appearance: the
    /// columns a flat snapshot of any state needs. Every such column is optional in general.
    pub fn all_state_fields(&self) -> Vec<&Field> {
        let mut fields: Vec<&Field> = Vec::new();
        for field in self.states.iter().flat_map(|s| &s.data) {
            if !fields.iter().any(|f| f.name == field.name) {
                fields.push(field);
            }
        }
        fields
    }
}

/// `PICKED_UP` → `PickedUp`, `pick_up` → `PickUp`.
pub fn pascal_case(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let lower = part.to_ascii_lowercase();
            let mut chars = lower.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}
