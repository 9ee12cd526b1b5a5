//! `cargo codegen check`: a small bad graph for every diagnostic code, and the real graph.yaml.
//!
//! Each `tests/check/*.yaml` is an invalid graph ending in `# expect: ` comment lines: exactly
//! the diagnostics `load` reports for it, in order. (Comments at the end shift no position.)

use std::fs;

use codegen::{Code, Graph, load};

const EXPECT: &str = "# expect: ";

struct Case {
    file: String,
    source: String,
}

impl Case {
    fn expected(&self) -> String {
        let lines = self
            .source
            .lines()
            .filter_map(|line| line.strip_prefix(EXPECT));
        lines.map(|line| format!("{line}\n")).collect()
    }

    fn actual(&self) -> String {
        match load(&self.file, &self.source) {
            Ok(_) => "(no diagnostic: the graph loaded)\n".to_owned(),
            Err(diagnostics) => diagnostics.to_string(),
        }
    }
}

fn cases() -> Vec<Case> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check");
    let mut cases: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| Case {
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
            source: fs::read_to_string(&path).unwrap(),
        })
        .collect();
    cases.sort_by(|a, b| a.file.cmp(&b.file));
    cases
}

#[test]
fn each_bad_graph_reports_exactly_its_expected_diagnostics() {
    let cases = cases();
    assert!(!cases.is_empty(), "no case in tests/check");
    let failures: Vec<_> = cases
        .iter()
        .filter_map(|case| {
            let (expected, actual) = (case.expected(), case.actual());
            (expected != actual).then(|| {
                format!(
                    "{}\n--- expected\n{expected}--- actual\n{actual}",
                    case.file
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_code_has_a_case() {
    let expected: String = cases().iter().map(Case::expected).collect();
    let missing: Vec<_> = Code::ALL
        .iter()
        .filter(|code| !expected.contains(&format!("error[{code}]")))
        .collect();
    assert!(
        missing.is_empty(),
        "no tests/check case expects {missing:?}"
    );
}

#[test]
fn codes_are_numbered_in_order() {
    for (index, code) in Code::ALL.iter().enumerate() {
        assert_eq!(code.to_string(), format!("E{:03}", index + 1), "{code:?}");
    }
}

#[test]
fn every_code_is_documented_with_its_meaning() {
    let doc = fs::read_to_string(codegen::workspace_root().join("docs/graph-format.md")).unwrap();
    let undocumented: Vec<_> = Code::ALL
        .iter()
        .filter(|code| !doc.contains(&format!("| {code} | {} |", code.explanation())))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/graph-format.md has no table row `| CODE | explanation |` for {undocumented:?}"
    );
}

fn real_graph_source() -> String {
    fs::read_to_string(codegen::workspace_root().join("graph.yaml")).unwrap()
}

fn state_names(graph: &Graph) -> Vec<&str> {
    graph.states.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn the_real_graph_loads_in_topological_order() {
    let graph =
        load("graph.yaml", &real_graph_source()).unwrap_or_else(|d| panic!("graph.yaml:\n{d}"));
    assert_eq!(
        state_names(&graph),
        [
            "CREATED",
            "PICKED_UP",
            "DELIVERED",
            "DELIVERY_CONFIRMED",
            "DELIVERY_FAILED",
            "PENDING_BY_OPERATOR",
            "RESOLVED",
        ]
    );
    assert_eq!(graph.transitions.len(), 8);
    assert_eq!(graph.initial(), 0);
    for edge in &graph.transitions {
        assert!(edge.from < edge.to, "`{}` goes back", edge.name);
    }
}

#[test]
fn states_are_ranked_whatever_their_declaration_order() {
    let source = "\
version: 0.1.0
name: Shuffled
roles:
  customer: Owns the order.
states:
  DONE:
    final: true
  HELD: {}
  SENT: {}
  CREATED:
    initial: true
transitions:
  - { name: send, from: CREATED, to: SENT, roles: [customer] }
  - { name: hold, from: CREATED, to: HELD, roles: [customer] }
  - { name: deliver, from: SENT, to: DONE, roles: [customer] }
  - { name: release, from: HELD, to: DONE, roles: [customer] }
";
    let graph = load("shuffled.yaml", source).unwrap_or_else(|d| panic!("{d}"));
    // CREATED first; HELD and SENT are both ready next, and HELD is declared first.
    assert_eq!(state_names(&graph), ["CREATED", "HELD", "SENT", "DONE"]);
    let edges: Vec<_> = graph
        .transitions
        .iter()
        .map(|t| (t.name.as_str(), t.from, t.to))
        .collect();
    assert_eq!(
        edges,
        [
            ("send", 0, 2),
            ("hold", 0, 1),
            ("deliver", 2, 3),
            ("release", 1, 3)
        ]
    );
}

#[test]
fn a_back_edge_in_the_real_graph_is_a_cycle_reported_at_that_edge() {
    let source = real_graph_source();
    let list = source
        .find("\ntransitions:\n")
        .expect("graph.yaml has `transitions:`")
        + 1;
    let (before, after) = source.split_at(list + "transitions:\n".len());
    let back_edge =
        "  - name: reopen\n    from: PENDING_BY_OPERATOR\n    to: CREATED\n    roles: [operator]\n";
    let line = before.lines().count() + 1;

    let diagnostics = load("graph.yaml", &format!("{before}{back_edge}{after}")).unwrap_err();

    assert_eq!(
        diagnostics.to_string(),
        format!(
            "graph.yaml:{line}:11: error[E017]: cycle: PENDING_BY_OPERATOR -> CREATED -> \
             PICKED_UP -> DELIVERED -> DELIVERY_FAILED -> PENDING_BY_OPERATOR\n"
        )
    );
}
