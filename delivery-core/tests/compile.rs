//! The typestate's promises, checked by the compiler: every legal path compiles and runs
//! (`tests/pass`), every illegal or backwards transition does not (`tests/fail`, one case
//! per file, with the expected error beside it). Most cases are generated from graph.yaml.
//! After a deliberate change of the messages: `TRYBUILD=overwrite cargo test -p delivery-core --test compile`.

#[test]
fn legal_paths_compile_and_run() {
    trybuild::TestCases::new().pass("tests/pass/*.rs");
}

#[test]
fn illegal_transitions_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/fail/*.rs");
}
