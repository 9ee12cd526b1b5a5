//! Model-based: random command sequences applied to `AnyDeliveryOrder` agree at every step
//! with a reference interpreter that reads graph.yaml itself (with serde_yaml, sharing no
//! code with the generator); the events rebuild the same order; every run ends in a final
//! state within the graph's depth.

mod support;

use std::collections::BTreeMap;

use delivery_core::*;
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

/// graph.yaml as the reference sees it: names only.
#[derive(Debug, Deserialize)]
struct Reference {
    roles: BTreeMap<String, String>,
    enums: BTreeMap<String, RefEnum>,
    states: BTreeMap<String, RefState>,
    transitions: Vec<RefEdge>,
}

#[derive(Debug, Deserialize)]
struct RefEnum {
    values: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RefState {
    #[serde(default)]
    initial: bool,
    #[serde(default, rename = "final")]
    is_final: bool,
}

#[derive(Debug, Deserialize)]
struct RefEdge {
    name: String,
    from: String,
    to: String,
    roles: Vec<String>,
    #[serde(default)]
    payload: BTreeMap<String, String>,
}

impl Reference {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../graph.yaml");
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn initial(&self) -> &str {
        let initial: Vec<_> = self.states.iter().filter(|(_, s)| s.initial).collect();
        assert_eq!(initial.len(), 1);
        initial[0].0
    }

    fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.transitions.iter().map(|t| t.name.as_str()).collect();
        names.dedup();
        names.sort_unstable();
        names.dedup();
        names
    }

    fn edge(&self, from: &str, name: &str) -> Option<&RefEdge> {
        self.transitions
            .iter()
            .find(|t| t.from == from && t.name == name)
    }

    fn allowed(&self, from: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .transitions
            .iter()
            .filter(|t| t.from == from)
            .map(|t| t.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    fn roles_of(&self, name: &str) -> &[String] {
        &self
            .transitions
            .iter()
            .find(|t| t.name == name)
            .unwrap()
            .roles
    }

    /// The longest path's length, by depth-first search (the graph is small).
    fn depth(&self, from: &str) -> usize {
        self.transitions
            .iter()
            .filter(|t| t.from == from)
            .map(|t| 1 + self.depth(&t.to))
            .max()
            .unwrap_or(0)
    }

    /// A command for `name` as JSON, with payload values picked by `seed`.
    fn command(&self, name: &str, seed: usize) -> Command {
        let edge = self.transitions.iter().find(|t| t.name == name).unwrap();
        let mut body = json!({ "transition": name });
        for (field, ty) in &edge.payload {
            let (ty, optional) = match ty.strip_suffix('?') {
                Some(ty) => (ty, true),
                None => (ty.as_str(), false),
            };
            if optional && seed.is_multiple_of(3) {
                continue;
            }
            body[field] = match ty {
                "PartnerOrderNumber" => json!(format!("PN-{seed}")),
                "OperatorId" => json!(format!("operator-{seed}")),
                "Text" => json!(format!("note {seed}")),
                "Timestamp" => json!("2026-11-24T12:30:00Z"),
                enum_name => {
                    let values = &self.enums[enum_name].values;
                    Value::from(values[seed % values.len()].clone())
                }
            };
        }
        serde_json::from_value(body).expect("the reference's payload is the generated one")
    }
}

fn role(name: &str) -> Role {
    name.parse().unwrap()
}

fn start() -> (AnyDeliveryOrder, Vec<DeliveryEvent>) {
    let (order, event) = DeliveryOrder::create(
        support::id(),
        support::details(),
        support::meta(Role::System),
    );
    (order.into(), vec![event])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn apply_agrees_with_the_reference(steps in prop::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 0..24)) {
        let reference = Reference::load();
        let names = reference.names();
        let roles: Vec<&String> = reference.roles.keys().collect();
        let (mut order, mut events) = start();
        let mut state = reference.initial().to_string();
        for (pick, role_pick, seed) in steps {
            let name = names[pick % names.len()];
            let actor_role = roles[role_pick % roles.len()];
            let before = order.clone();
            let result = order.apply(reference.command(name, seed), support::meta(role(actor_role)));
            let role_ok = reference.roles_of(name).contains(actor_role);
            order = match (result, reference.edge(&state, name)) {
                (Ok((next, event)), Some(edge)) if role_ok => {
                    prop_assert_eq!(next.state().name(), edge.to.as_str());
                    prop_assert_eq!(event.from.map(|s| s.name()), Some(state.as_str()));
                    prop_assert_eq!(event.seq, before.version() + 1);
                    state = edge.to.clone();
                    events.push(event);
                    next
                }
                (Err(rejected), edge) => {
                    prop_assert_eq!(&*rejected.order, &before, "a refused command hands the order back unchanged");
                    match rejected.error {
                        TransitionError::RoleNotAllowed { role, transition, .. } => {
                            prop_assert!(!role_ok);
                            prop_assert_eq!(role.name(), actor_role.as_str());
                            prop_assert_eq!(transition.name(), name);
                        }
                        TransitionError::NotAllowed { current, attempted, allowed } => {
                            prop_assert!(role_ok && edge.is_none(), "{name} by {actor_role} from {state} refused by the graph");
                            prop_assert_eq!(current.name(), state.as_str());
                            prop_assert_eq!(attempted.name(), name);
                            let mut allowed: Vec<&str> = allowed.iter().map(|t| t.name()).collect();
                            allowed.sort_unstable();
                            prop_assert_eq!(allowed, reference.allowed(&state));
                        }
                    }
                    *rejected.order
                }
                (Ok(_), edge) => {
                    return Err(TestCaseError::fail(format!(
                        "{name} by {actor_role} from {state} accepted; reference edge {edge:?}, role ok {role_ok}"
                    )));
                }
            };
        }
        prop_assert_eq!(&AnyDeliveryOrder::from_events(events.clone()).unwrap(), &order);
        prop_assert_eq!(&AnyDeliveryOrder::from_snapshot(order.snapshot()).unwrap(), &order);
        let stored: Vec<DeliveryEvent> = serde_json::from_str(&serde_json::to_string(&events).unwrap()).unwrap();
        prop_assert_eq!(stored, events);
    }

    #[test]
    fn every_run_ends_in_a_final_state_within_the_depth(picks in prop::collection::vec((any::<usize>(), any::<usize>()), 32)) {
        let reference = Reference::load();
        let depth = reference.depth(reference.initial());
        let (mut order, _) = start();
        let mut taken = 0;
        for (pick, seed) in picks {
            if order.state().is_final() {
                break;
            }
            let allowed = order.state().allowed_transitions();
            prop_assert!(!allowed.is_empty(), "{} is not final yet has no way out", order.state());
            let transition = allowed[pick % allowed.len()];
            let actor = transition.roles()[seed % transition.roles().len()];
            let (next, _) = order.apply(reference.command(transition.name(), seed), support::meta(actor)).unwrap();
            order = next;
            taken += 1;
        }
        prop_assert!(order.state().is_final(), "stuck in {} after {taken} steps", order.state());
        prop_assert!(reference.states[order.state().name()].is_final, "graph.yaml does not call {} final", order.state());
        prop_assert!(taken <= depth);
    }
}
