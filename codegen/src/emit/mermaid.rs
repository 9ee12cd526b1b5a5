//! `docs/graph.md`: the graph as a Mermaid state diagram and tables, for people.

use std::fmt::Write;

use crate::emit::json;
use crate::graph::{Field, Graph, Transition};

/// The Mermaid `stateDiagram-v2` text of `graph`: the initial arrow, one arrow per edge
/// labelled with the transition's name and roles, and an arrow out of every final state.
pub fn diagram(graph: &Graph) -> String {
    let mut text = String::from("stateDiagram-v2\n");
    writeln!(text, "    [*] --> {}", graph.states[graph.initial()].name).unwrap();
    for t in &graph.transitions {
        let (from, to) = (&graph.states[t.from].name, &graph.states[t.to].name);
        writeln!(
            text,
            "    {from} --> {to}: {} ({})",
            t.name,
            roles(graph, t)
        )
        .unwrap();
    }
    for state in graph.states.iter().filter(|s| s.is_final) {
        writeln!(text, "    {} --> [*]", state.name).unwrap();
    }
    text
}

/// The whole `docs/graph.md` page.
pub fn page(graph: &Graph) -> String {
    let mut page = format!("<!-- {} -->\n\n", crate::GENERATED_HEADER);
    writeln!(page, "# {} state graph {}\n", graph.name, graph.version).unwrap();
    writeln!(page, "{}\n", graph.description).unwrap();
    writeln!(
        page,
        "SHA-256 of the canonical JSON (the identity of this version, also in the \
         CloudFormation template): `{}`\n",
        json::sha256_hex(&json::canonical(graph))
    )
    .unwrap();
    writeln!(page, "```mermaid\n{}```\n", diagram(graph)).unwrap();
    page += &states_table(graph);
    page += &transitions_table(graph);
    page += &roles_table(graph);
    page += &enums_section(graph);
    page.truncate(page.trim_end().len());
    page.push('\n');
    page
}

fn states_table(graph: &Graph) -> String {
    let mut text = String::from("## States\n\n");
    text += "| rank | state | initial | final | data | description |\n";
    text += "|---:|---|---|---|---|---|\n";
    for (rank, state) in graph.states.iter().enumerate() {
        writeln!(
            text,
            "| {rank} | `{}` | {} | {} | {} | {} |",
            state.name,
            yes_or_blank(state.initial),
            yes_or_blank(state.is_final),
            fields(graph, &state.data),
            cell(&state.description)
        )
        .unwrap();
    }
    text + "\n"
}

fn transitions_table(graph: &Graph) -> String {
    let mut text = String::from("## Transitions\n\n");
    text += "| transition | from | to | roles | payload | description |\n";
    text += "|---|---|---|---|---|---|\n";
    for t in &graph.transitions {
        writeln!(
            text,
            "| `{}` | `{}` | `{}` | {} | {} | {} |",
            t.name,
            graph.states[t.from].name,
            graph.states[t.to].name,
            roles(graph, t),
            fields(graph, &t.payload),
            cell(&t.description)
        )
        .unwrap();
    }
    text + "\n"
}

fn roles_table(graph: &Graph) -> String {
    let mut text = String::from("## Roles\n\n| role | description |\n|---|---|\n");
    for role in &graph.roles {
        writeln!(text, "| `{}` | {} |", role.name, cell(&role.description)).unwrap();
    }
    text + "\n"
}

fn enums_section(graph: &Graph) -> String {
    let mut text = String::from("## Enums\n\n");
    for e in &graph.enums {
        writeln!(text, "### {}\n\n{}\n", e.name, e.description).unwrap();
        if let Some(superset) = e.subset_of {
            writeln!(text, "A subset of `{}`.\n", graph.enums[superset].name).unwrap();
        }
        for value in &e.values {
            writeln!(text, "- `{value}`").unwrap();
        }
        text += "\n";
    }
    text
}

fn roles(graph: &Graph, transition: &Transition) -> String {
    let names: Vec<&str> = transition
        .roles
        .iter()
        .map(|&r| graph.roles[r].name.as_str())
        .collect();
    names.join(", ")
}

/// Fields as written in graph.yaml (`name: Type?`), or a dash when there are none.
fn fields(graph: &Graph, fields: &[Field]) -> String {
    if fields.is_empty() {
        return "—".to_owned();
    }
    let written: Vec<String> = fields
        .iter()
        .map(|f| {
            let mark = if f.optional { "?" } else { "" };
            format!("`{}: {}{mark}`", f.name, f.ty.name(graph))
        })
        .collect();
    written.join(", ")
}

fn yes_or_blank(flag: bool) -> &'static str {
    if flag { "yes" } else { "" }
}

/// Free text made safe for one table cell: a `|` would end the cell, a newline the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
