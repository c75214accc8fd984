//! raw bindings
