//! Random acyclic graphs load; the same graphs with one edge back are cycles.
//!
//! A generated graph has states ranked 0..N: state 0 is initial, every other state has a
//! parent of lower rank (so the initial state reaches everything), extra edges only go
//! forward, and the sinks are the final states. States are declared in a shuffled order, so
//! the loader has to find the ranks itself. Each state carries a few fields from a pool
//! (one type per name) and every edge's payload supplies its target's fields.

use std::collections::BTreeSet;
use std::fmt::Write;

use codegen::{Code, load};
use proptest::prelude::*;

/// Field names with their one type.
const FIELDS: [(&str, &str); 5] = [
    ("note", "Text?"),
    ("reason", "Reason"),
    ("delivered_at", "Timestamp"),
    ("assignee", "OperatorId?"),
    ("partner_order_number", "PartnerOrderNumber"),
];

#[derive(Debug, Clone)]
struct Dag {
    /// Edges as (from rank, to rank), each pair once, always forward.
    edges: Vec<(usize, usize)>,
    /// Per rank, indices into `FIELDS`.
    data: Vec<BTreeSet<usize>>,
    /// Ranks in declaration order.
    declared: Vec<usize>,
}

impl Dag {
    fn count(&self) -> usize {
        self.data.len()
    }

    fn is_final(&self, state: usize) -> bool {
        self.edges.iter().all(|&(from, _)| from != state)
    }

    /// The states on a path from the initial state to `state`, `state` included.
    fn ancestors(&self, state: usize) -> Vec<usize> {
        let mut ancestors = vec![state];
        let mut at = state;
        // The first edge into a state is from its parent.
        while let Some(&(parent, _)) = self.edges.iter().find(|&&(_, to)| to == at) {
            ancestors.push(parent);
            at = parent;
        }
        ancestors
    }
}

fn state_name(rank: usize) -> String {
    format!("STATE_{rank}")
}

fn dag() -> impl Strategy<Value = Dag> {
    (2..=8_usize).prop_flat_map(|count| {
        let parents: Vec<_> = (1..count).map(|state| 0..state).collect();
        let extra = prop::collection::vec((0..count, 0..count), 0..count * 2);
        let data = prop::collection::vec(prop::collection::btree_set(0..FIELDS.len(), 0..3), count);
        let declared = Just((0..count).collect::<Vec<_>>()).prop_shuffle();
        (parents, extra, data, declared).prop_map(|(parents, extra, data, declared)| {
            let tree = parents
                .into_iter()
                .enumerate()
                .map(|(i, parent)| (parent, i + 1));
            let forward = extra
                .into_iter()
                .filter(|(a, b)| a != b)
                .map(|(a, b)| (a.min(b), a.max(b)));
            let mut edges: Vec<(usize, usize)> = Vec::new();
            for edge in tree.chain(forward) {
                if !edges.contains(&edge) {
                    edges.push(edge);
                }
            }
            Dag {
                edges,
                data,
                declared,
            }
        })
    })
}

/// A generated graph, and a back edge from a non-final state to one of its ancestors.
fn dag_with_back_edge() -> impl Strategy<Value = (Dag, (usize, usize))> {
    dag().prop_flat_map(|dag| {
        let open: Vec<_> = (0..dag.count()).filter(|&s| !dag.is_final(s)).collect();
        let back_edges: Vec<_> = open
            .iter()
            .flat_map(|&from| dag.ancestors(from).into_iter().map(move |to| (from, to)))
            .collect();
        (Just(dag), prop::sample::select(back_edges))
    })
}

fn render(dag: &Dag, back_edge: Option<(usize, usize)>) -> String {
    let mut yaml = String::from(
        "version: 1.2.3\nname: Random\nroles:\n  actor: Does everything.\n\
         enums:\n  Reason:\n    values: [LATE, LOST]\nstates:\n",
    );
    for &state in &dag.declared {
        writeln!(yaml, "  {}:", state_name(state)).unwrap();
        writeln!(yaml, "    initial: {}", state == 0).unwrap();
        writeln!(yaml, "    final: {}", dag.is_final(state)).unwrap();
        writeln!(yaml, "    data:{}", fields(dag, state)).unwrap();
    }
    yaml.push_str("transitions:\n");
    let edges = dag.edges.iter().chain(&back_edge);
    for (index, &(from, to)) in edges.enumerate() {
        writeln!(yaml, "  - name: edge_{index}").unwrap();
        writeln!(yaml, "    from: {}", state_name(from)).unwrap();
        writeln!(yaml, "    to: {}", state_name(to)).unwrap();
        writeln!(yaml, "    roles: [actor]").unwrap();
        writeln!(yaml, "    payload:{}", fields(dag, to)).unwrap();
    }
    yaml
}

/// The fields of `state` as an indented YAML mapping, or `{}` for none.
fn fields(dag: &Dag, state: usize) -> String {
    if dag.data[state].is_empty() {
        return " {}".to_owned();
    }
    let lines = dag.data[state].iter().map(|&i| {
        let (name, ty) = FIELDS[i];
        format!("\n      {name}: {ty}")
    });
    lines.collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn an_acyclic_graph_loads_in_rank_order(dag in dag()) {
        let yaml = render(&dag, None);
        let graph = load("random.yaml", &yaml).map_err(|d| TestCaseError::fail(format!("{d}{yaml}")))?;
        prop_assert_eq!(graph.states.len(), dag.count());
        prop_assert_eq!(graph.transitions.len(), dag.edges.len());
        for (edge, &(from, to)) in graph.transitions.iter().zip(&dag.edges) {
            prop_assert!(edge.from < edge.to, "{} goes back", edge.name);
            prop_assert_eq!(&graph.states[edge.from].name, &state_name(from));
            prop_assert_eq!(&graph.states[edge.to].name, &state_name(to));
        }
    }

    #[test]
    fn a_back_edge_is_reported_as_a_cycle_through_its_ends((dag, (from, to)) in dag_with_back_edge()) {
        let yaml = render(&dag, Some((from, to)));
        let diagnostics = load("random.yaml", &yaml).expect_err("a cycle must not load").0;
        prop_assert!(diagnostics.iter().all(|d| d.code == Code::Cycle), "{:?}", diagnostics);
        let ends = [state_name(from), state_name(to)];
        let names_both_ends = diagnostics.iter().any(|d| {
            let states: Vec<_> = d.message.trim_start_matches("cycle: ").split(" -> ").collect();
            ends.iter().all(|end| states.contains(&end.as_str()))
        });
        prop_assert!(names_both_ends, "no cycle names {:?}: {:?}", ends, diagnostics);
    }
}
