//! stub: owned by the emitter work.
