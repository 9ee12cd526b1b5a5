//! Diagnostics of `codegen check` (stub: owned by the loader work).
