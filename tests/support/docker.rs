//! Local test images built without a registry.
