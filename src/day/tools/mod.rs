//! FORGE and SCRIBE tools: specs, dispatch, handlers, path confinement, eviction.
