//! Parsing and validation of graph.yaml (stub: owned by the loader work).
