//! `cargo codegen` regenerates every file derived from graph.yaml;
//! `cargo codegen check FILE` validates a graph file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Checks graph.yaml and regenerates every file derived from it")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a graph file; print diagnostics as FILE:LINE:COL: error[CODE]: message.
    Check { file: PathBuf },
    /// Regenerate the derived files from the workspace's graph.yaml (the default).
    Generate,
}

fn main() -> ExitCode {
    match Cli::parse().command.unwrap_or(Command::Generate) {
        Command::Check { file } => check(&file),
        Command::Generate => generate(),
    }
}

fn read_and_load(file: &std::path::Path) -> Result<codegen::Graph, ExitCode> {
    let source = match std::fs::read_to_string(file) {
        Ok(source) => source,
        Err(err) => {
            eprintln!("{}: error: cannot read: {err}", file.display());
            return Err(ExitCode::from(2));
        }
    };
    codegen::load(&file.display().to_string(), &source).map_err(|diagnostics| {
        eprint!("{diagnostics}");
        ExitCode::FAILURE
    })
}

fn check(file: &std::path::Path) -> ExitCode {
    match read_and_load(file) {
        Ok(graph) => {
            println!(
                "{}: ok: {} v{}, {} states, {} transitions",
                file.display(),
                graph.name,
                graph.version,
                graph.states.len(),
                graph.transitions.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn generate() -> ExitCode {
    let root = codegen::workspace_root();
    let graph = match read_and_load(&root.join("graph.yaml")) {
        Ok(graph) => graph,
        Err(code) => return code,
    };
    for output in codegen::outputs(&graph) {
        let path = root.join(&output.path);
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|old| old == output.contents);
        if unchanged {
            continue;
        }
        if let Some(dir) = path.parent()
            && let Err(err) = std::fs::create_dir_all(dir)
        {
            eprintln!("{}: error: {err}", dir.display());
            return ExitCode::FAILURE;
        }
        if let Err(err) = std::fs::write(&path, &output.contents) {
            eprintln!("{}: error: {err}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", output.path.display());
    }
    ExitCode::SUCCESS
}
