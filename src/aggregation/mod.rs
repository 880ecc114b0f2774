//! Aggregation (placeholder doc, rewritten below).
pub mod detect;
pub mod store;
